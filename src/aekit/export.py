"""ONNX export of a trained autoencoder: its encoder, its decoder or both, with the run's scaling inside.

The graph takes what ``aekit encode`` takes and gives what it writes: the **encoder** maps raw rows in
the data's own units (float32, ``(N, D)``, image data flattened as the run's files hold it) through the
run's :class:`~aekit.data.Transform` and the encoder to the codes of
:meth:`~aekit.model.Autoencoder.encode_array` (the posterior mean for the VAE family, the top-k code
of a k-sparse run, the bits of a semantic-hashing run); the **decoder** maps codes to the decoded
rows of :meth:`~aekit.model.Autoencoder.decode_array`, the scaling inverted; the **autoencoder**
chains the two (:meth:`~aekit.model.Autoencoder.reconstruct_array`). The batch axis is dynamic.

==============  ============  ===================  ===================================
part            input         output               equals
==============  ============  ===================  ===================================
encoder         ``rows``      ``codes``            ``encode_array(rows)``
decoder         ``codes``     ``rows``             ``decode_array(codes)``
autoencoder     ``rows``      ``reconstructions``  ``reconstruct_array(rows)``
==============  ============  ===================  ===================================

The graph is traced by PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``)
at opset :data:`OPSET`: on aekit's models it gives the same graphs as the ``torch.export``-based
exporter (``exporter="dynamo"``, which needs onnxscript) some thirty times faster and without printing
anything. The file is checked by ``onnx.checker.check_model`` (with shape inference), carries the
run's description in its metadata (``aekit_version``, ``variant``, ``part``, ``input``, ``output``,
``scaling``) and is written atomically: a temporary file renamed onto the output, which an existing
file is only with ``overwrite``.

>>> aekit.export_onnx("runs/vae-mnist", "encoder.onnx", part="encoder")        # doctest: +SKIP
>>> import onnxruntime
>>> session = onnxruntime.InferenceSession("encoder.onnx")                     # doctest: +SKIP
>>> codes = session.run(None, {"rows": rows.astype("float32")})[0]             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigError
from .io import atomic_path, load
from .model import Autoencoder
from .version import __version__

__all__ = ["EXPORTERS", "OPSET", "PARTS", "ExportGraph", "export_onnx"]

#: what can be exported: the encoder (rows -> codes), the decoder (codes -> rows) or both (rows -> rows)
PARTS = ("encoder", "decoder", "autoencoder")
#: PyTorch's two ONNX exporters: the TorchScript-based tracer (the default) and the torch.export-based one
EXPORTERS = ("torchscript", "dynamo")
#: the ONNX opset of the graphs (both exporters write it natively; onnxruntime runs it from 1.14 on)
OPSET = 18
#: A protobuf message, and so an ONNX file holding its weights, is at most 2 GiB.
MAX_BYTES = 2**31 - 2**20
#: the names of each part's input and output
NAMES = {"encoder": ("rows", "codes"), "decoder": ("codes", "rows"), "autoencoder": ("rows", "reconstructions")}


class ExportGraph(nn.Module):
    """The module that is traced into the ONNX graph: ``part`` of ``model`` with the run's scaling.

    The encoder side applies the transform as :meth:`~aekit.data.Transform.apply` does,
    ``(x - shift) / scale`` in float32, then :meth:`~aekit.model.Autoencoder.encode`; the decoder
    side :meth:`~aekit.model.Autoencoder.decode`, then ``x * scale + shift``
    (:meth:`~aekit.data.Transform.invert`). Without a transform, or with the identity ``"none"``,
    the graph holds no scaling at all.

    Shape:
        - Input: :math:`(N, D)` raw rows (encoder, autoencoder) or :math:`(N, latent)` codes (decoder)
        - Output: :math:`(N, latent)` codes (encoder) or :math:`(N, D)` rows (decoder, autoencoder)
    """

    shift: torch.Tensor | None
    scale: torch.Tensor | None

    def __init__(self, model: Autoencoder, part: str):
        super().__init__()
        self.model = model
        self.part = part
        transform = model.transform
        device = next(model.parameters()).device
        scaled = transform is not None and transform.kind != "none"
        for name in ("shift", "scale"):
            value = torch.as_tensor(getattr(transform, name), device=device) if scaled else None
            self.register_buffer(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.part != "decoder":
            if self.shift is not None and self.scale is not None:
                x = (x - self.shift) / self.scale
            x = self.model.encode(x)
        if self.part != "encoder":
            x = self.model.decode(x)
            if self.shift is not None and self.scale is not None:
                x = x * self.scale + self.shift
        return x


def export_onnx(
    model: Autoencoder | str | os.PathLike,
    output: str | os.PathLike,
    *,
    part: str = "encoder",
    overwrite: bool = False,
    exporter: str = "torchscript",
) -> Path:
    """Write ``part`` of a trained autoencoder as an ONNX graph with the run's scaling inside it.

    Parameters
    ----------
    model : Autoencoder or path
        A model (:func:`aekit.load`, :func:`aekit.fit`; its ``transform`` goes into the graph) or a
        run directory.
    output : path
        The ``.onnx`` file to write.
    part : {"encoder", "decoder", "autoencoder"}
        ``encoder``: raw rows (float32 ``(N, D)`` in the data's units) to the codes of
        :meth:`~aekit.model.Autoencoder.encode_array`; ``decoder``: codes ``(N, latent)`` to rows in
        the data's units as :meth:`~aekit.model.Autoencoder.decode_array` gives them;
        ``autoencoder``: raw rows to their reconstructions
        (:meth:`~aekit.model.Autoencoder.reconstruct_array`).
    overwrite : bool
        Replace an existing ``output`` (else it is refused, before anything is computed).
    exporter : {"torchscript", "dynamo"}
        PyTorch's exporter: the TorchScript-based tracer (``torch.onnx.export(..., dynamo=False)``,
        fast and quiet) or the ``torch.export``-based one (needs onnxscript; seconds per graph).

    Returns
    -------
    Path
        ``output``, holding a checked ONNX model whose input and output (named as in the module's
        table) have a dynamic batch axis ``N``.

    Raises
    ------
    ConfigError
        An unknown part or exporter, an output that is not a ``.onnx`` file or exists without
        ``overwrite``, a model that is not float32 or whose weights exceed the 2 GiB of one ONNX
        file, a variant that cannot be exported (:meth:`aekit.variants.Variant.export_reason`), or
        the onnx extra missing.
    RunError
        A run directory that cannot be loaded, or an output that cannot be written.
    """
    if part not in PARTS:
        raise ConfigError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise ConfigError(f"{output}: the output must be an .onnx file")
    if output.is_dir():
        raise ConfigError(f"{output} is a folder; name the .onnx file to write")
    if output.exists() and not overwrite:
        raise ConfigError(f"{output} already exists; pass --overwrite to replace it")
    onnx = _onnx(exporter)
    if isinstance(model, (str, os.PathLike)):
        model = load(Path(model))
    elif not isinstance(model, Autoencoder):
        raise ConfigError(f"export_onnx takes an Autoencoder or a run directory, got {type(model).__name__}")
    reason = model.variant.export_reason(part)
    if reason is not None:
        raise ConfigError(f"the {part} of {model.variant.describe()} cannot be exported to ONNX: {reason}")
    _check_weights(model, part)
    proto = onnx.load_model_from_string(_trace(model, part, exporter))
    names = NAMES[part]
    transform = model.transform
    onnx.helper.set_model_props(
        proto,
        {
            "aekit_version": __version__,
            "variant": model.config.variant,
            "part": part,
            "input": f"{names[0]}: float32 (N, {_width(model, names[0])})" + _units(model, names[0]),
            "output": f"{names[1]}: float32 (N, {_width(model, names[1])})" + _units(model, names[1]),
            "scaling": "none" if transform is None else transform.kind,
        },
    )
    proto.doc_string = f"aekit: the {part} of a {model.config.variant} run ({model.variant.code_name})"
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(output) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return output


def _width(model: Autoencoder, name: str) -> int:
    return model.config.latent if name == "codes" else model.config.input_dim


def _units(model: Autoencoder, name: str) -> str:
    return f", {model.variant.code_name}" if name == "codes" else ", in the data's units"


def _check_weights(model: Autoencoder, part: str) -> None:
    """Refuse a model that is not float32 or whose weights of ``part`` exceed one ONNX file."""
    params = list(model.parameters())
    if any(p.dtype != torch.float32 for p in params):
        raise ConfigError("only float32 models can be exported (aekit trains and loads float32 models)")
    used: dict[int, nn.Parameter] = {}
    if part != "decoder" or model.config.tied:  # a tied decoder uses the encoder's weights
        used.update((id(p), p) for p in model.encoder.parameters())
    if part != "encoder":
        used.update((id(p), p) for p in model.decoder.parameters())
    size = sum(p.numel() * p.element_size() for p in used.values())
    if size > MAX_BYTES:
        raise ConfigError(
            f"the {part}'s weights take {size / 2**30:.2f} GiB, more than the 2 GiB one ONNX file can hold"
        )


def _onnx(exporter: str) -> Any:
    """The onnx package (and for the dynamo exporter onnxscript), or a one-line ConfigError naming the
    extra that installs them."""
    try:
        import onnx

        if exporter == "dynamo":
            import onnxscript  # noqa: F401 (torch.onnx's torch.export-based exporter needs it)
    except ImportError as e:
        raise ConfigError(f"ONNX export needs the onnx extra: pip install 'aekit[onnx]' ({e})") from None
    return onnx


#: Loggers of the torch.export-based exporter that warn on every export about what does not matter here:
#: optional torchvision operators, and a Python number read from a tensor (a k-sparse run's k).
QUIET_LOGGERS = ("torch.onnx._internal.exporter._registration", "torch.fx.experimental.symbolic_shapes")


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Only errors from the loggers ``names``, and nothing on stderr unless the block fails, while the
    block runs: torch.export prints the partial graph of a first attempt to stderr (a k-sparse run's k,
    read from a tensor, stops its strict mode) before the ONNX exporter's next attempt succeeds."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _trace(model: Autoencoder, part: str, exporter: str) -> bytes:
    """The serialized ONNX model of ``part`` of ``model`` (in eval mode), traced by ``exporter``."""
    graph = ExportGraph(model, part)
    names = NAMES[part]
    device = next(model.parameters()).device
    # two rows: a batch of one could be traced into a graph that broadcasts where it should not
    example = torch.zeros(2, _width(model, names[0]), device=device)
    was_training = model.training
    graph.eval()  # the model too: the code of inference (no corruption, no sampling)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the legacy exporter's deprecation notice, and the tracer's note that a Python number read
            # from a tensor becomes a constant: the trained model's numbers (e.g. the k of a k-sparse run)
            # are the graph's constants; the tests compare every variant's graph with the model's output
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=Warning)
            warnings.filterwarnings("ignore", message=r"The feature will be removed", category=Warning)
            warnings.filterwarnings("ignore", message=r"Converting a tensor to a Python", category=Warning)
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            if exporter == "torchscript":
                buffer = io.BytesIO()
                torch.onnx.export(
                    graph,
                    (example,),
                    buffer,  # type: ignore[arg-type]  # (typed as a path; the TorchScript exporter takes a file too)
                    dynamo=False,
                    input_names=[names[0]],
                    output_names=[names[1]],
                    dynamic_axes={names[0]: {0: "N"}, names[1]: {0: "N"}},
                    opset_version=OPSET,
                )
                return buffer.getvalue()
            with _quiet(QUIET_LOGGERS):
                program = torch.onnx.export(
                    graph,
                    (example,),
                    dynamo=True,
                    input_names=[names[0]],
                    output_names=[names[1]],
                    dynamic_shapes=({0: torch.export.Dim("N")},),
                    opset_version=OPSET,
                    verbose=False,
                )
            assert program is not None, "the dynamo exporter returns the program"
            return program.model_proto.SerializeToString()
    finally:
        model.train(was_training)
