"""The ``aekit`` command: a thin layer over the library.

A user mistake prints one line ``aekit: error: ...`` and exits with status 2, without a traceback;
so does a file that cannot be written (a read-only or full disk, a name too long). Only the command
that is run gets its parser built, from the configuration dataclasses read without importing torch
(:func:`aekit.config.lookup`), so that ``--help``, ``--version``, ``variants``, ``info`` and
argument errors answer at once; torch is imported by the commands that compute.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:  # annotations only: numpy is imported by the commands that compute
    import numpy as np

from .config import NotStatic, add_arguments, check_seed, coerce, given, lookup, static_calls, static_value
from .errors import AekitError, ConfigError, RunError
from .io import atomic_path
from .version import __version__

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with aekit's error format: one line ``aekit: error: ...`` on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"aekit: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")

    def parse_args(  # one signature for argparse's overloads: a namespace given is the one returned
        self,
        args: Iterable[str] | None = None,
        namespace: Any = None,
    ) -> Any:
        """argparse's, but an unknown argument is reported by the (sub)command it was given to."""
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            command = getattr(parsed, "command", None)
            levels: dict[str | None, str] = {"train": "variant", "pretrain": "method"}
            level = levels.get(command)
            names = [command, getattr(parsed, level, None) if level else None]
            prog = " ".join([self.prog, *(n for n in names if isinstance(n, str))])
            Parser(prog=prog, add_help=False).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


class _Unbuilt:
    """Stands for the parser of a command that is not run: its options are not added."""

    def __getattr__(self, name: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self


_UNBUILT = _Unbuilt()


class _Commands:
    """A subparsers action that builds only the command ``argv`` names: the others are listed (name
    and summary, for ``--help`` and the choice check) and their ``add_parser`` returns :data:`_UNBUILT`.
    ``argv=None`` builds them all."""

    def __init__(self, action: Any, argv: Sequence[str] | None):
        self.action = action
        self.argv = None if argv is None else list(argv)
        names = [a for a in self.argv or () if not a.startswith("-")]
        self.wanted = names[0] if names else None

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        p = self.action.add_parser(name, **kwargs)
        return p if self.argv is None or name == self.wanted else _UNBUILT

    def rest(self) -> list[str] | None:
        """The arguments after the command's name (None: build everything)."""
        if self.argv is None:
            return None
        return self.argv[self.argv.index(self.wanted) + 1 :] if self.wanted in self.argv else []


def _seed(text: str) -> int:
    """argparse type of the seed flags: an integer from 0 to 2**63 - 1."""
    try:
        return check_seed(int(text))
    except (ValueError, ConfigError):
        raise argparse.ArgumentTypeError(f"seeds are integers from 0 to 2**63 - 1, got {text!r}") from None


@dataclasses.dataclass
class _Entry:
    """A registry entry as read from a variant file (:func:`_variants`)."""

    name: str
    summary: str
    defaults: dict[str, Any]
    option_defaults: dict[str, Any]
    load_options: Callable[[], type]
    layerwise: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @functools.cached_property
    def options(self) -> type:
        return self.load_options()


_REGISTER = ("name", "summary", "options", "defaults", "option_defaults", "layerwise")  # variants.register's parameters


def _static_variants() -> list[_Entry]:
    """The ``@register(...)`` lines of the variant files, read without running them (nor importing torch)."""
    folder = Path(__file__).parent / "variants"
    entries = []
    for path in sorted(folder.glob("*.py")):
        if path.stem == "__init__":
            continue
        for args, kwargs in static_calls(f"{__package__}.variants.{path.stem}", "register"):
            bound = {**dict(zip(_REGISTER, args)), **kwargs}
            if set(bound) - set(_REGISTER) or not {"name", "summary"} <= set(bound):
                raise NotStatic(f"{path}: a register(...) call of another form")
            name, summary = bound["name"](), bound["summary"]()  # both given (checked above)
            defaults, option_defaults, layerwise = (
                bound[k]() if k in bound else None for k in ("defaults", "option_defaults", "layerwise")
            )
            options = bound.get("options") or functools.partial(static_value, f"{__package__}.variants", "NoOptions")
            entries.append(
                _Entry(name, summary, dict(defaults or {}), dict(option_defaults or {}), options, dict(layerwise or {}))
            )
    return sorted(entries, key=lambda e: e.name)


def _variants() -> list[Any]:
    """The registered variants, by name: the registry's own entries once it is imported (it imports
    torch), else read from the variant files' ``@register(...)`` lines (the same names, summaries,
    defaults and options classes; tests/test_cli_errors.py checks that they agree)."""
    if f"{__package__}.variants" not in sys.modules:
        try:
            return _static_variants()
        except NotStatic:
            pass
    from . import variants

    return variants.specs()


def _variant(name: str) -> Any:
    spec = next((s for s in _variants() if s.name == name), None)
    if spec is None:
        raise ConfigError(f"unknown variant {name!r}; known variants: {', '.join(s.name for s in _variants())}")
    return spec


def _layerwise() -> Any:
    """The entry of the variant with layer-wise pretraining (``aekit pretrain``): as
    :func:`aekit.variants.layerwise`, from the entries :func:`_variants` reads."""
    found = [s for s in _variants() if s.layerwise]
    if len(found) != 1:
        raise ConfigError(f"expected one variant with layer-wise pretraining, found {len(found)}")
    return found[0]


def _train_groups(spec: Any) -> list[tuple[str, type, dict[str, Any]]]:
    """``(dest prefix, dataclass, the defaults aekit.fit applies over the class's own)`` of the flags
    of ``aekit train VARIANT``: data, model (with the variant's registered defaults), variant options,
    training."""
    return [
        ("data.", lookup(f"{__package__}.data.config", "DataConfig"), {}),
        ("model.", lookup(f"{__package__}.model", "ModelConfig"), spec.defaults),
        ("opt.", spec.options, spec.option_defaults),
        ("train.", lookup(f"{__package__}.train", "TrainConfig"), {}),
    ]


def _add_train(sub: _Commands) -> None:
    train = sub.add_parser(
        "train",
        help="train a variant and write a run directory",
        description="Train a registered variant; `aekit train VARIANT --help` lists its options.",
    )
    if train is _UNBUILT:
        return
    vsub = _Commands(
        train.add_subparsers(dest="variant", metavar="VARIANT", parser_class=Parser, required=True), sub.rest()
    )
    for spec in _variants():
        p = vsub.add_parser(spec.name, help=spec.summary, description=spec.summary)
        if p is _UNBUILT:
            continue
        p.add_argument(
            "--out",
            type=Path,
            default=None,
            help="run directory (default: runs/VARIANT-TIMESTAMP, with -2, -3 ... added if that exists)",
        )
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.add_argument(
            "--nproc",
            type=int,
            default=None,
            metavar="N",
            help="train data-parallel in N processes on this machine, as `torchrun --nproc-per-node N "
            "-m aekit train ...` would (--batch-size is the global batch)",
        )
        tracking = p.add_argument_group("experiment tracking")
        tracking.add_argument(
            "--tensorboard",
            nargs="?",
            const="",
            default=None,
            metavar="DIR",
            help="log to TensorBoard event files in DIR (default: RUN_DIR/tensorboard): the loss terms and the "
            "learning rate every 10 steps, every number of each epoch's history, reconstructions and prior "
            "samples of image data, the test codes in the embedding projector (needs aekit[tensorboard])",
        )
        tracking.add_argument(
            "--mlflow",
            nargs="?",
            const="",
            default=None,
            metavar="URI",
            help="log to the MLflow tracking store URI (default: file:RUN_DIR/mlruns): the configuration as "
            "parameters, the same metrics, the run directory's files as artifacts; --resume continues the "
            "same MLflow run (needs aekit[mlflow])",
        )
        titles = {"data.": "data", "model.": "model", "opt.": f"{spec.name} options", "train.": "training"}
        for prefix, cls, defaults in _train_groups(spec):
            exclude = ("variant", "input_dim", "image_shape", "options") if prefix == "model." else ()
            add_arguments(p, cls, exclude=exclude, group_title=titles[prefix], dest_prefix=prefix, defaults=defaults)
        p.set_defaults(func=_cmd_train)


def _new_run_dir(name: str) -> list[Path]:
    """A new, empty folder ``runs/NAME-TIMESTAMP`` (``-2``, ``-3`` ... added when that exists: two runs
    started in the same second get two folders), made here so that no other process can take it.
    Returns it, then ``runs`` if this call made that too (see :func:`_remove_if_empty`)."""
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        made = [] if base.parent.is_dir() else [base.parent]
        base.parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            out = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                out.mkdir()
                return [out, *made]
            except FileExistsError:
                continue
    except OSError as e:
        raise RunError(f"{base}: cannot create the run directory ({e.strerror or e})") from None
    raise RunError(f"{base}: cannot find a free run directory name")


def _remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders :func:`_new_run_dir` made, innermost first, where the command that failed
    left them empty (a run with a checkpoint is kept, for ``--resume``)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _cmd_train(args: argparse.Namespace) -> int:
    spec = _variant(args.variant)
    kwargs: dict[str, Any] = {}
    for prefix, cls, _ in _train_groups(spec):
        values = given(args, cls, prefix)
        coerce(cls, values)  # an ill-typed value is refused here, before torch is imported
        kwargs.update(values)
    data = kwargs.pop("data", None)  # None: digits, or on --resume the run's own data
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    callbacks: list[Any] = []
    if args.tensorboard is not None or args.mlflow is not None:  # a missing extra: one line, before any work
        from .tracking import from_flags

        callbacks = from_flags(args.tensorboard, args.mlflow)
    made: list[Path] = []
    if args.nproc is not None and args.nproc != 1:  # start the processes; each runs this command
        from .distributed import launch, strip_option

        made = [] if args.out else _new_run_dir(args.variant)  # named once, for all of them
        out = args.out or made[0]
        argv = strip_option(getattr(args, "argv", None) or sys.argv[1:], "--nproc")
        status = launch(args.nproc, [*argv, *(("--out", str(out)) if args.out is None else ())])
        _remove_if_empty(made)
        return status
    from . import distributed
    from .fitting import fit

    out = args.out
    if distributed.init_from_env():
        if out is None:
            made = _new_run_dir(args.variant) if distributed.is_main() else []
            out = made[0] if made else None
        out = distributed.broadcast(out)  # one run directory, named by rank 0
    elif out is None:
        made = _new_run_dir(args.variant)
        out = made[0]
    progress = False if args.quiet else None
    try:
        model = fit(
            args.variant,
            data,
            out=out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=progress,
            callbacks=callbacks,
            **kwargs,
        )
    except BaseException:
        _remove_if_empty(made)
        raise
    if distributed.active():
        global _left_process_group
        _left_process_group = True
        if not distributed.leave():  # rank 0 reports
            return 0
    last = model.history[-1] if model.history else {}
    summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k.endswith("_loss"))
    if args.resume and model.start_epoch == len(model.history):
        print(
            f"nothing to resume: the run has already finished after {len(model.history)} epoch(s); nothing was "
            f"written (pass a larger --epochs to train it longer)"
        )
    else:
        print(f"trained {args.variant} for {len(model.history)} epoch(s)" + (f": {summary}" if summary else ""))
    print(f"run directory: {out}")
    figures = sorted((out / "figures").glob("*.png"))
    if figures:
        print("figures: " + ", ".join(str(f) for f in figures))
    return 0


def _write_array(path: Path, arr: np.ndarray) -> None:
    import numpy as np

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise ConfigError(f"{path}: output must end in .npy or .csv")
    with atomic_path(path) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        else:
            np.savetxt(tmp, arr, delimiter=",", fmt="%.8g")


def _input(args: argparse.Namespace) -> Any:
    from .data import load_data

    return load_data(args.input, label_column=getattr(args, "label_column", None))


def _cmd_encode(args: argparse.Namespace) -> int:
    from .io import load

    model = load(args.run)
    if args.stream:  # data larger than memory: only the codes are held
        from .data.stream import encode

        codes = encode(model, args.input, batch_size=args.batch_size, label_column=args.label_column)
    else:
        ds = _input(args)
        codes = model.encode_array(ds.x, batch_size=args.batch_size, where=ds.source)
    _write_array(args.output, codes)
    print(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {args.output}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from .anomaly import anomaly_scores
    from .io import load

    if args.per_feature and args.complexity:
        raise ConfigError("--per-feature and --complexity do not combine: the correction is not a sum over features")
    model = load(args.run)
    ds = _input(args)
    scores = anomaly_scores(
        model,
        ds.x,
        elbo_samples=args.elbo_samples,
        batch_size=args.batch_size,
        where=ds.source,
        complexity=args.complexity,
        error=args.error,
        smoothing=args.smoothing,
    )
    if args.per_feature:
        from .anomaly import feature_scores

        shares = feature_scores(
            model, ds.x, batch_size=args.batch_size, where=ds.source, error=args.error, smoothing=args.smoothing
        )
        _write_array(args.output, shares)
        top: list[int] = np.argsort(-shares.mean(axis=0))[:5].tolist() if len(shares) else []
        print(
            f"wrote {shares.shape[0]} x {shares.shape[1]} per-feature contributions (each row sums to the "
            f"row's score) to {args.output}; largest mean contributions: "
            + (", ".join(f"feature {j} {shares[:, j].mean():.4g}" for j in top) or "none")
        )
        return 0
    _write_array(args.output, scores[:, None])
    from .metrics import ResidualNorm

    what = model.variant.score_units(complexity=bool(args.complexity), norm=ResidualNorm(args.error, args.smoothing))
    q = np.quantile(scores, [0.5, 0.9, 0.99]) if len(scores) else [float("nan")] * 3
    print(
        f"wrote {len(scores)} anomaly scores ({what}) to {args.output}; median {q[0]:.4g}, "
        f"90% {q[1]:.4g}, 99% {q[2]:.4g}"
    )
    return 0


#: rows drawn in a .png grid written by ``reconstruct`` / ``denoise``
GRID_IMAGES = 64


def _write_reconstructions(args: argparse.Namespace, what: str) -> int:
    """Reconstruct INPUT with the run's model and write it (.npy, .csv, or for image data a
    .png grid of the first :data:`GRID_IMAGES` inputs above their reconstructions)."""
    from .evaluation import denoise
    from .io import load

    model = load(args.run)
    ds = _input(args)
    png = args.output.suffix.lower() == ".png"
    if png and ds.image_shape is None:
        raise ConfigError(f"{args.output}: a .png grid needs image data; {ds.source} has flat rows")
    recon = denoise(model, ds.x[:GRID_IMAGES] if png else ds.x, batch_size=args.batch_size, where=ds.source)
    if png:
        from .plots import reconstruction_grid

        reconstruction_grid(
            ds.x[:GRID_IMAGES],
            recon,
            ds.image_shape,
            args.output,
            n=GRID_IMAGES,
            title=f"{ds.source}: inputs and their {what}",
        )
        print(f"wrote a grid of {len(recon)} inputs and their {what} to {args.output}")
        return 0
    if ds.image_shape is not None and args.output.suffix.lower() == ".npy":
        recon = recon.reshape(-1, *ds.image_shape)
    _write_array(args.output, recon)
    print(f"wrote {recon.shape[0]} {what} to {args.output}")
    return 0


def _cmd_reconstruct(args: argparse.Namespace) -> int:
    return _write_reconstructions(args, "reconstructions")


def _cmd_denoise(args: argparse.Namespace) -> int:
    return _write_reconstructions(args, "denoised reconstructions")


def _write_images(
    path: Path, images: np.ndarray, image_shape: Any, what: str, cols: int, row_labels: Any = None
) -> None:
    """Write decoded rows as a .png grid (image data only), .npy (image-shaped for image data) or .csv."""
    if path.suffix.lower() == ".png":
        if image_shape is None:
            raise ConfigError(f"{path}: a .png grid needs a model trained on image data; write .npy or .csv")
        from .plots import image_grid

        image_grid(images, image_shape, path, cols=cols, title=what, row_labels=row_labels)
    else:
        _write_array(
            path,
            images.reshape(-1, *image_shape) if image_shape is not None and path.suffix.lower() == ".npy" else images,
        )
    print(f"wrote {len(images)} {what} to {path}")


def _image_shape(model: Any) -> Any:
    shape = model.config.image_shape
    return tuple(shape) if shape is not None else None


def _cmd_generate(args: argparse.Namespace) -> int:
    from .io import load
    from .latent import sample

    model = load(args.run)
    images = sample(model, args.n, seed=args.seed, temperature=args.temperature)
    _write_images(args.output, images, _image_shape(model), "samples from the prior", cols=8)
    return 0


def _rows(ds: Any, indices: Sequence[int], flag: str) -> list[np.ndarray]:
    bad = [i for i in indices if not -len(ds) <= i < len(ds)]
    if bad:
        raise ConfigError(f"{flag}: row {bad[0]} is out of range for {ds.source} ({len(ds)} rows)")
    return [ds.x[i] for i in indices]


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None


def _cmd_interpolate(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import load
    from .latent import interpolate

    model = load(args.run)
    ds = _input(args)
    pairs = _int_list(args.rows, "--rows")
    if len(pairs) < 2 or len(pairs) % 2:
        raise ConfigError(f"--rows takes pairs of row indices (I,J[,I,J...]), got {args.rows!r}")
    rows = _rows(ds, pairs, "--rows")
    images = np.concatenate(
        [interpolate(model, rows[i], rows[i + 1], args.steps, method=args.method) for i in range(0, len(rows), 2)]
    )
    _write_images(
        args.output,
        images,
        _image_shape(model),
        f"{args.method} interpolations ({len(pairs) // 2} path(s) of {args.steps})",
        cols=args.steps,
    )
    return 0


def _cmd_traverse(args: argparse.Namespace) -> int:
    from .io import load
    from .latent import traverse

    model = load(args.run)
    ds = _input(args) if args.input is not None else None
    x = _rows(ds, [args.row], "--row")[0] if ds is not None else None
    dims = _int_list(args.dims, "--dims") if args.dims else None
    images, dims, _ = traverse(
        model, x, dims=dims, steps=args.steps, limit=args.limit, data=ds.x if ds is not None else None
    )
    _write_images(
        args.output,
        images,
        _image_shape(model),
        f"latent traversals ({len(dims)} dimension(s) x {args.steps} values in +-{args.limit:g})",
        cols=args.steps,
        row_labels=[f"z{d}" for d in dims],
    )
    return 0


def _run_args(
    p: argparse.ArgumentParser, input_help: str | None, output_help: str, optional_input: bool = False
) -> None:
    """The positional DIR [INPUT] and the required -o OUTPUT shared by the data commands."""
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    if input_help is not None:
        optional: dict[str, Any] = {"nargs": "?", "default": None} if optional_input else {}
        p.add_argument("input", metavar="INPUT", help=input_help, **optional)
        p.add_argument("--label-column", default=None, help="label column of a CSV / Parquet input (dropped)")
    p.add_argument("-o", "--output", type=Path, required=True, help=output_help)


def _batch_size_arg(p: argparse.ArgumentParser) -> None:
    """``--batch-size``: rows per batch of the commands that run a model over data."""
    p.add_argument("--batch-size", type=int, default=4096, help="rows per batch (default: 4096)")


def _add_latent(sub: Any) -> None:
    out_help = "output: .png (a grid, for image data), .npy or .csv"
    p = sub.add_parser(
        "generate",
        help="sample from a VAE's prior and decode",
        description="Draw codes from the prior N(0, I) of a VAE-family run and write the decoded "
        "means (pixel probabilities for a Bernoulli decoder).",
    )
    _run_args(p, None, out_help)
    p.add_argument("-n", type=int, default=64, help="number of samples (default: 64)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the draw (default: 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="scale of the prior's std (default: 1)")
    p.set_defaults(func=_cmd_generate)
    p = sub.add_parser(
        "interpolate",
        help="decode paths between the codes of pairs of inputs",
        description="Encode pairs of rows of INPUT (posterior means for VAEs), walk the straight "
        "line or the great circle between their codes and decode each point.",
    )
    _run_args(p, "data holding the rows (file, folder or built-in set)", out_help)
    p.add_argument("--rows", default="0,1", help="pairs of row indices I,J[,I,J...] (default: 0,1)")
    p.add_argument("--steps", type=int, default=10, help="points per path, ends included (default: 10)")
    p.add_argument("--method", default="linear", choices=("linear", "spherical"), help="path (default: linear)")
    p.set_defaults(func=_cmd_interpolate)
    p = sub.add_parser(
        "traverse",
        help="vary one code dimension at a time and decode",
        description="Latent traversals: starting from the code of one row of INPUT (or the prior "
        "mean 0 without INPUT), set one dimension to values in [-limit, limit] prior "
        "standard deviations (for models without a prior: standard deviations of the "
        "codes of INPUT) and decode; one grid row per dimension.",
    )
    _run_args(p, "data holding the base row", out_help, optional_input=True)
    p.add_argument("--row", type=int, default=0, help="row of INPUT whose code is varied (default: 0)")
    p.add_argument("--dims", default=None, help="comma-separated dimensions (default: all)")
    p.add_argument("--steps", type=int, default=9, help="values per dimension (default: 9)")
    p.add_argument("--limit", type=float, default=3.0, help="half-width of the range (default: 3)")
    p.set_defaults(func=_cmd_traverse)


NOISE_FLAGS = ("sigma", "nu", "noise_seed")


def _noise(name: str) -> Any:
    """A constant of :mod:`aekit.noise` (read without importing torch)."""
    return lookup(f"{__package__}.noise", name)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite number (NaN, infinities) replaced by None: JSON has no NaN, so
    aekit writes ``null`` for a metric that is not a number (e.g. a ratio to a zero error)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(value: Any, **kwargs: Any) -> str:
    """Strict JSON (RFC 8259) of ``value``: non-finite numbers become ``null`` (:func:`_finite`)."""
    return json.dumps(_finite(value), allow_nan=False, **kwargs)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate

    noise_kwargs = {k: getattr(args, k) for k in NOISE_FLAGS if getattr(args, k) is not None}
    if noise_kwargs and args.noise is None:
        flags = ", ".join("--" + k.replace("_", "-") for k in noise_kwargs)
        raise ConfigError(f"{flags}: used only with --noise {{{','.join(_noise('NOISE_KINDS'))}}}")
    if args.ranges is not None and args.bits is None:
        raise ConfigError("--ranges: used only with --bits B")
    result = evaluate(
        args.run,
        data=args.data,
        split=args.split,
        pca=not args.no_pca,
        noise=args.noise,
        iw_samples=args.iw_samples,
        bits=args.bits,
        ranges=args.ranges or "minmax",
        **noise_kwargs,
    )
    text = _json(result, indent=2)
    if args.output:
        with atomic_path(args.output) as tmp:
            tmp.write_text(text + "\n")
    print(text)
    return 0


#: safetensors' dtype codes: (the name io.tensors_digest hashes, bytes per value)
_DTYPES = {
    "F64": ("torch.float64", 8),
    "F32": ("torch.float32", 4),
    "F16": ("torch.float16", 2),
    "BF16": ("torch.bfloat16", 2),
    "I64": ("torch.int64", 8),
    "I32": ("torch.int32", 4),
    "I16": ("torch.int16", 2),
    "I8": ("torch.int8", 1),
    "U8": ("torch.uint8", 1),
    "BOOL": ("torch.bool", 1),
}


def _parameter_count(path: Path) -> int | None:
    """The number of float32 values in the model file ``path`` (the parameters: aekit's buffers are
    integers or float64), read without torch once its checksum is verified: the digest of
    :func:`aekit.io.tensors_digest`, computed from the bytes. None for a file that is not a whole
    aekit model file with a matching checksum (torch then reads it and says what is wrong)."""
    import hashlib

    from .io import CHECKSUM_KEY

    try:
        raw = path.read_bytes()
    except OSError:
        return None
    n = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else -1
    if sys.byteorder != "little" or not 2 <= n <= len(raw) - 8 or raw[8:9] != b"{":
        return None
    try:
        header = json.loads(raw[8 : 8 + n])
        meta = header.pop("__metadata__", {})
        expected = meta[CHECKSUM_KEY]
        h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != CHECKSUM_KEY}, sort_keys=True).encode())
        data, count = memoryview(raw)[8 + n :], 0
        for name in sorted(header):
            dtype, shape, (start, end) = header[name]["dtype"], header[name]["shape"], header[name]["data_offsets"]
            torch_name, itemsize = _DTYPES[dtype]
            size = math.prod(shape)
            if (
                not all(type(d) is int and d >= 0 for d in shape)
                or type(start) is not int
                or type(end) is not int
                or not 0 <= start <= end <= len(data)
                or end - start != size * itemsize
            ):
                return None
            h.update(json.dumps([name, torch_name, list(shape)]).encode())
            h.update(data[start:end])
            count += size if dtype == "F32" else 0
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return count if h.hexdigest() == expected else None


def _plain_config(cfg: dict[str, Any]) -> bool:
    """Whether ``cfg`` has what ``aekit info`` shows, well typed, for a registered variant."""
    m, data, transform = cfg.get("model"), cfg.get("data"), cfg.get("transform")
    if not (isinstance(m, dict) and isinstance(data, dict) and (transform is None or isinstance(transform, dict))):
        return False
    hidden = m.get("hidden")
    ints = [m.get("input_dim"), *(hidden if isinstance(hidden, list) else [None]), m.get("latent")]
    return (
        all(type(v) is int and v > 0 for v in ints)
        and isinstance(m.get("options"), dict)
        and all(isinstance(m.get(k), str) for k in ("variant", "architecture", "loss"))
        and m["variant"] in {s.name for s in _variants()}
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import CLASSIFIER_KIND, HISTORY, MODEL, read_config, read_json

    cfg = read_config(args.run)
    n_params = None
    if cfg.get("kind") != CLASSIFIER_KIND and _plain_config(cfg):  # without torch
        n_params = _parameter_count(Path(args.run) / MODEL)
    if n_params is None:  # torch builds the model, and says what is wrong with the run
        from .io import load

        model = load(args.run)
        cfg = model.run_config
        n_params = sum(p.numel() for p in model.parameters())
    m = cfg["model"]
    info: dict[str, Any] = {
        "run": str(args.run),
        "variant": m["variant"],
        "architecture": m["architecture"],
        "layers": [m["input_dim"], *m["hidden"], m["latent"]],
        "parameters": n_params,
        "loss": m["loss"],
        "options": m["options"],
        "data": cfg["data"]["data"],
        "splits": cfg.get("splits"),
        "scale": cfg["transform"]["kind"] if cfg.get("transform") else None,
        "created": cfg.get("created"),
        "aekit_version": cfg.get("aekit_version"),
    }
    hist_path = Path(args.run) / HISTORY
    if hist_path.exists():
        hist = read_json(hist_path)
        if isinstance(hist, list) and hist and isinstance(hist[-1], dict):
            info["epochs"] = len(hist)
            info["last_epoch"] = {k: v for k, v in hist[-1].items() if k.endswith("loss") or k.startswith("val_")}
    if args.json:
        print(_json(info, indent=2))
    else:
        width = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{width}}  {_json(v) if isinstance(v, (dict, list)) else v}")
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    specs = _variants()
    width = max(len(spec.name) for spec in specs)
    for spec in specs:
        print(f"{spec.name:<{width}}  {spec.summary}")
    return 0


# -- layer-wise pretraining and supervised fine-tuning (aekit.pretrain, aekit.classifier) -------
def _new_run_flags(p: Any, default: str) -> None:
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"run directory (default: runs/{default}-TIMESTAMP, with -2, -3 ... added if that exists)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_pretraining(sub: _Commands) -> None:
    """``aekit pretrain rbm|dae``, ``aekit finetune`` and ``aekit classify``."""
    p = sub.add_parser(
        "pretrain",
        help="greedy layer-wise pretraining: a stack of RBMs or denoising autoencoders",
        description="Train a stack layer by layer and write it, unrolled into a deep autoencoder "
        "(the deep variant: encoder = the stack, decoder = its transposes), as a run "
        "directory with pretrain.json; `aekit finetune`, `encode`, `evaluate` take it.",
    )
    if p is not _UNBUILT:
        _add_pretrain_methods(
            _Commands(p.add_subparsers(dest="method", metavar="METHOD", parser_class=Parser, required=True), sub.rest())
        )

    p = sub.add_parser(
        "finetune",
        help="supervised fine-tuning: a softmax head on a run's encoder, trained on labels",
        description="Put a softmax (logistic regression) layer on the code of the autoencoder in DIR "
        "and fine-tune encoder and head on the cross-entropy of the labels (Vincent et al. "
        "2010); write a classifier run directory and print the test accuracy.",
    )
    if p is not _UNBUILT:
        p.add_argument(
            "run", type=Path, metavar="DIR", help="run directory of an autoencoder (e.g. aekit pretrain dae)"
        )
        p.add_argument("--data", default=None, help="labelled data (default: the run's own data, split as the run was)")
        p.add_argument(
            "--labels",
            default=None,
            help="a labels file (.npy, or text with one label per row) aligned "
            "with the data rows, or the label column of CSV / Parquet data "
            "(default: the data's own labels, e.g. digits, fashion-mnist)",
        )
        _new_run_flags(p, "finetune")
        add_arguments(
            p,
            lookup(f"{__package__}.data.config", "DataConfig"),
            exclude=("data", "label_column", "scale", "stream", "buffer_mb"),
            group_title="data",
            dest_prefix="data.",
        )
        add_arguments(p, lookup(f"{__package__}.train", "TrainConfig"), group_title="training", dest_prefix="train.")
        p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser(
        "classify",
        help="predict classes with a fine-tuned classifier",
        description="Predict the class of every row of INPUT with the classifier in DIR (written by "
        "aekit finetune); print the accuracy when INPUT carries labels.",
    )
    p.add_argument("run", type=Path, metavar="DIR", help="classifier run directory")
    p.add_argument("input", metavar="INPUT", help="data to classify (a file, folder or built-in set name)")
    p.add_argument("-o", "--output", type=Path, default=None, help="write the predicted labels (.npy or .csv)")
    p.add_argument("--label-column", default=None, help="label column of a CSV / Parquet input")
    _batch_size_arg(p)
    p.set_defaults(func=_cmd_classify)


def _add_pretrain_methods(msub: _Commands) -> None:
    spec = _layerwise()
    options, methods = spec.options, spec.layerwise
    defaults = {f.name: f.default for f in dataclasses.fields(options)}
    for method, summary in (
        (
            "rbm",
            (
                "restricted Boltzmann machines trained by CD-k or persistent CD, stacked into a deep belief "
                "net (Hinton & Salakhutdinov 2006)"
            ),
        ),
        (
            "dae",
            (
                "one-hidden-layer denoising autoencoders, each trained on the clean codes of the layer below "
                "(Vincent et al. 2010)"
            ),
        ),
    ):
        own = methods[method]
        m = msub.add_parser(method, help=summary, description=summary[0].upper() + summary[1:] + ".")
        if m is _UNBUILT:
            continue
        m.add_argument(
            "--hidden",
            required=True,
            metavar="N,N,...",
            help="layer widths, bottom to top (500: one layer 784-500 on Fashion-MNIST)",
        )
        m.add_argument(
            "--top",
            choices=("sigmoid", "linear"),
            default="sigmoid",
            help="units of the top layer: sigmoid (binary) or linear (H&S's code layer) (default: sigmoid)",
        )
        m.add_argument(
            "--visible",
            choices=("bernoulli", "gaussian"),
            default="bernoulli",
            help="units of the data: bernoulli for values in [0, 1], gaussian for standardised real "
            "values (use --scale standard) (default: bernoulli)",
        )
        m.add_argument(
            "--epochs",
            dest="opt.pretrain_epochs",
            type=int,
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"passes over the data, per layer (default: {defaults['pretrain_epochs']})",
        )
        m.add_argument(
            "--batch-size",
            dest="opt.pretrain_batch_size",
            type=int,
            default=argparse.SUPPRESS,
            metavar="N",
            help=f"examples per update (default: {defaults['pretrain_batch_size']})",
        )
        m.add_argument(
            "--seed", type=_seed, default=0, help="seed of initialisation, data order and sampling (default: 0)"
        )
        _new_run_flags(m, f"pretrain-{method}")
        add_arguments(m, lookup(f"{__package__}.data.config", "DataConfig"), group_title="data", dest_prefix="data.")
        skip = (
            "pretrain",
            "pretrain_epochs",
            "pretrain_batch_size",
            *(f for other in methods.values() for f in other if f not in own),
        )
        add_arguments(m, options, exclude=skip, group_title=f"{method} options", dest_prefix="opt.")
        m.set_defaults(func=_cmd_pretrain)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from .data import DataConfig
    from .fitting import fit
    from .model import ModelConfig
    from .variants import layerwise

    spec = layerwise()
    widths = (
        ()
        if not args.hidden.replace(",", "").strip()
        else coerce(ModelConfig, {"hidden": args.hidden}, where="pretrain")["hidden"]
    )
    if not widths:
        raise ConfigError("--hidden needs at least one layer width")
    kwargs = {**given(args, DataConfig, "data."), **given(args, spec.options, "opt.")}
    data = kwargs.pop("data", "digits")
    made = [] if args.out else _new_run_dir(f"pretrain-{args.method}")
    out = args.out or made[0]
    try:
        model = fit(
            spec.name,
            data,
            out=out,
            overwrite=args.overwrite,
            progress=False if args.quiet else None,
            figures=False,
            pretrain=args.method,
            epochs=0,
            seed=args.seed,
            hidden=widths[:-1],
            latent=widths[-1],
            code_activation=args.top,
            loss="bce" if args.visible == "bernoulli" else "mse",
            **kwargs,
        )
    except BaseException:
        _remove_if_empty(made)
        raise
    record = model.pretrain_record
    what = "RBM" if args.method == "rbm" else "denoising layer"
    sizes = "-".join(map(str, [model.config.input_dim, *widths]))
    print(f"pretrained {len(widths)} {what}(s), {sizes}, in {record['seconds']:.1f} s")
    for layer in record["layers"]:
        last = layer["history"][-1] if layer["history"] else {}
        shown = ", ".join(
            f"{k}={v:.4g}"
            for k, v in last.items()
            if k in ("reconstruction_error", "pseudo_log_likelihood", "train_loss") and v is not None
        )
        print(
            f"  layer {layer['layer']} ({layer['n_visible']}-{layer['n_hidden']}), epoch {last.get('epoch', 0)}: "
            f"{shown}"
        )
    print(f"run directory: {out}")
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from .classifier import finetune
    from .data import DataConfig
    from .train import TrainConfig

    kwargs = {**given(args, DataConfig, "data."), **given(args, TrainConfig, "train.")}
    made = [] if args.out else _new_run_dir("finetune")
    out = args.out or made[0]
    try:
        clf = finetune(
            args.run,
            args.data,
            args.labels,
            out=out,
            overwrite=args.overwrite,
            progress=False if args.quiet else None,
            **kwargs,
        )
    except BaseException:
        _remove_if_empty(made)
        raise
    s = clf.scores
    split = next(name for name in ("test", "val", "train") if f"{name}_accuracy" in s)
    print(
        f"fine-tuned a softmax classifier on the encoder of {args.run} for {len(clf.history)} epoch(s): "
        f"{split} accuracy {s[f'{split}_accuracy']:.4f} (n={s[f'n_{split}']}, {len(clf.classes)} classes)"
    )
    print(f"run directory: {out}")
    return 0


def _cmd_classify(args: argparse.Namespace) -> int:
    import numpy as np

    from .classifier import load_classifier

    clf = load_classifier(args.run)
    ds = _input(args)
    predicted = clf.predict_array(ds.x, batch_size=args.batch_size, where=ds.source)
    if args.output is not None:
        numeric = predicted.dtype.kind in "biuf"
        _write_array(args.output, predicted if numeric else np.searchsorted(clf.classes, predicted))
        print(f"wrote {len(predicted)} predicted {'labels' if numeric else 'class indices'} to {args.output}")
    if ds.y is not None:
        print(f"accuracy on {ds.source}: {float((predicted == ds.y).mean()):.4f} (n={len(predicted)})")
    elif args.output is None:
        raise ConfigError(f"{ds.source} has no labels to score against; pass -o FILE to write the predictions")
    return 0


# -- nearest-neighbour search and compression over the codes (aekit.search, aekit.compress) -----
def _add_search(sub: _Commands) -> None:
    """``aekit index``, ``aekit search``, ``aekit compress`` and ``aekit decompress``."""
    compress, search = f"{__package__}.compress", f"{__package__}.search"
    p = sub.add_parser(
        "index",
        help="index the codes of DATA for nearest-neighbour search (FAISS)",
        description="Encode every row of DATA with the run in DIR (posterior means for VAEs) and "
        "write a FAISS index of the codes as the directory INDEX: index.faiss + index.json (which "
        "records the index kind and its parameters). By default the codes are whitened and "
        "compared by cosine similarity in an exact index; --binary indexes bits compared by "
        "Hamming distance; --index hnsw / ivfpq / ivf are approximate indexes for large "
        "collections. Row ids are the rows' positions in DATA.",
    )
    if p is not _UNBUILT:  # the constants are read only for the command that is run
        p.add_argument("run", type=Path, metavar="DIR", help="run directory")
        p.add_argument("input", metavar="DATA", help="data to index (a file, folder or built-in set name)")
        p.add_argument("-o", "--output", type=Path, required=True, metavar="INDEX", help="index directory to write")
        metric = lookup(search, "DEFAULT_METRIC")
        p.add_argument(
            "--metric",
            choices=lookup(search, "METRICS"),
            default=metric,
            help=f"l2: squared Euclidean distance; cosine: 1 - cosine similarity (default: {metric})",
        )
        whiten = lookup(search, "DEFAULT_WHITEN")
        p.add_argument(
            "--whiten",
            action=argparse.BooleanOptionalAction,
            default=whiten,
            help="whiten the codes (fitted on DATA's codes, applied to the queries alike) before they are "
            f"compared (default: {'on' if whiten else 'off'})",
        )
        p.add_argument(
            "--binary",
            nargs="?",
            const="threshold",
            default=None,
            choices=lookup(search, "BINARIZATIONS"),
            help="index bits, packed, compared by Hamming distance: each code dimension thresholded at its "
            "mean (threshold, the default of --binary; a hashing run's 0/1 codes keep their bits) or "
            "after whitening and an ITQ rotation (itq)",
        )
        p.add_argument(
            "--index",
            dest="kind",
            choices=lookup(search, "KINDS"),
            default="flat",
            help="flat: exact (default); hnsw: HNSW graph; ivfpq: inverted lists of product-quantized "
            "codes (float codes); ivf: inverted lists (binary codes)",
        )
        p.add_argument(
            "--hnsw-m", type=int, default=None, help=f"hnsw: neighbours per node (default: {lookup(search, 'HNSW_M')})"
        )
        p.add_argument(
            "--ef-construction",
            type=int,
            default=None,
            help=f"hnsw: candidates while building (default: {lookup(search, 'HNSW_EF_CONSTRUCTION')})",
        )
        p.add_argument(
            "--ef-search",
            type=int,
            default=None,
            help=f"hnsw: candidates while searching (default: {lookup(search, 'HNSW_EF_SEARCH')})",
        )
        p.add_argument("--nlist", type=int, default=None, help="ivf, ivfpq: inverted lists (default: about sqrt(rows))")
        p.add_argument(
            "--nprobe",
            type=int,
            default=None,
            help=f"ivf, ivfpq: lists searched per query (default: {lookup(search, 'IVF_NPROBE')}, at most nlist)",
        )
        p.add_argument(
            "--pq-m",
            type=int,
            default=None,
            help="ivfpq: sub-quantizers of 8 bits, dividing the "
            "code size (default: the largest divisor up to half the code size)",
        )
        p.add_argument("--overwrite", action="store_true", help="replace an existing index directory")
        p.add_argument("--label-column", default=None, help="label column of a CSV / Parquet input (dropped)")
        _batch_size_arg(p)
        p.set_defaults(func=_cmd_index)

    p = sub.add_parser(
        "search",
        help="the k nearest indexed rows of each QUERY row, in code space",
        description="Encode the rows of QUERY with the run that built INDEX and print (or write) the "
        "ids and distances of their k nearest indexed rows, nearest first.",
    )
    p.add_argument("index", type=Path, metavar="INDEX", help="index directory (aekit index)")
    p.add_argument("input", metavar="QUERY", help="query data (a file, folder or built-in set name)")
    p.add_argument("-k", type=int, default=10, help="neighbours per query (default: 10)")
    p.add_argument("--rows", default=None, help="comma-separated rows of QUERY to search for (default: all)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="write the neighbours: .json (ids and distances), .csv (query,rank,id,distance), "
        ".npz (ids, distances, queries) or .npy (ids only)",
    )
    p.add_argument("--run", type=Path, default=None, help="the run directory that built the index, if it moved")
    p.add_argument(
        "--ef-search", type=int, default=None, help="hnsw index: candidates while searching (default: the index's own)"
    )
    p.add_argument(
        "--nprobe",
        type=int,
        default=None,
        help="ivf / ivfpq index: lists searched per query (default: the index's own)",
    )
    p.add_argument(
        "--recall",
        action="store_true",
        help="also report recall@k against the exact nearest neighbours of the raw rows (e.g. pixels), "
        "found by brute force among the indexed data",
    )
    p.add_argument("--label-column", default=None, help="label column of a CSV / Parquet input (dropped)")
    _batch_size_arg(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser(
        "compress",
        help="quantize the codes of DATA to a few bits per dimension and range-code them (.npz)",
        description="Encode DATA with the run in DIR and quantize each code dimension uniformly to "
        "--bits bits over a range fitted on the codes of the run's training split (a VQ-VAE: its "
        "codebook indices); range-code the symbols with a per-dimension model of the quantized "
        "training codes; write the stream, the model's counts and the ranges as an .npz without "
        "pickling, and print the bytes per input and the distortion on DATA.",
    )
    if p is not _UNBUILT:  # the constants are read only for the command that is run
        _run_args(p, "data to compress (a file, folder or built-in set name)", "compressed codes (.npz)")
        quantile = lookup(compress, "DEFAULT_QUANTILE")
        p.add_argument(
            "--bits",
            type=int,
            default=8,
            help=f"bits per code dimension, 1 to {lookup(compress, 'MAX_BITS')} (default: 8)",
        )
        p.add_argument(
            "--ranges",
            choices=lookup(compress, "RANGES"),
            default="minmax",
            help="per-dimension range: min and max of the training codes, or their [q, 1-q] quantiles "
            "(default: minmax)",
        )
        p.add_argument("--quantile", type=float, default=quantile, help=f"q of --ranges quantile (default: {quantile})")
        p.add_argument(
            "--no-entropy",
            dest="entropy",
            action="store_false",
            help="store the symbols as they are (uint8 / uint16, --bits each) instead of range-coding them",
        )
        _batch_size_arg(p)
        p.set_defaults(func=_cmd_compress)

    p = sub.add_parser(
        "decompress",
        help="decode compressed codes (aekit compress) with their run",
        description="Dequantize the codes in CODES (written by aekit compress with the run in DIR) "
        "and decode them, in the units of the training data.",
    )
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    p.add_argument("codes", type=Path, metavar="CODES", help="compressed codes (.npz)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help=f"output: .npy, .csv, or for image data .png (a grid of the first {GRID_IMAGES})",
    )
    _batch_size_arg(p)
    p.set_defaults(func=_cmd_decompress)


def _cmd_index(args: argparse.Namespace) -> int:

    from .io import load
    from .search import build_index, save_index

    if args.output.exists() and not args.overwrite:  # before the (possibly long) encoding
        raise ConfigError(f"{args.output} already exists; pass --overwrite to replace it")
    model = load(args.run)
    ds = _input(args)
    t0 = time.perf_counter()
    index = build_index(
        model,
        ds,
        args.metric,
        kind=args.kind,
        binary=args.binary,
        whiten=args.whiten and args.binary is None,
        data=args.input,
        run=args.run,
        batch_size=args.batch_size,
        **_index_params(args),
    )
    seconds = time.perf_counter() - t0
    save_index(index, args.output, overwrite=args.overwrite)
    what = f"{index.dim}-bit binary codes" if index.binary else f"codes of size {index.dim}"
    how = ", ".join([index.metric, *(["whitened"] if index.meta["whiten"] else []), index.meta["faiss_index"]])
    print(f"indexed {index.rows} {what} ({how}) in {seconds:.2f} s: {args.output}")
    return 0


def _index_params(args: argparse.Namespace) -> dict[str, Any]:
    """The index parameters given on the command line (``aekit index``), by FAISS's names."""
    names = {
        "hnsw_m": "M",
        "ef_construction": "efConstruction",
        "ef_search": "efSearch",
        "nlist": "nlist",
        "nprobe": "nprobe",
        "pq_m": "pq_m",
    }
    given = {name: getattr(args, flag) for flag, name in names.items() if getattr(args, flag) is not None}
    known = set(lookup(f"{__package__}.search", "PARAMS")[args.kind])
    wrong = [f"--{flag.replace('_', '-')}" for flag, name in names.items() if name in given and name not in known]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} does not apply to --index {args.kind}")
    return given


def _search_output(path: Path, payload: dict[str, Any]) -> None:
    import numpy as np

    suffix = path.suffix.lower()
    ids, dist, queries = payload["ids"], payload["distances"], payload["queries"]
    if suffix not in (".json", ".csv", ".npy", ".npz"):
        raise ConfigError(f"{path}: output must end in .json, .csv, .npz or .npy")
    with atomic_path(path) as tmp:
        if suffix == ".json":  # one line per key: the id and distance lists stay compact
            items = {**payload, "ids": ids.tolist(), "distances": dist.tolist(), "queries": queries.tolist()}
            tmp.write_text(
                "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in items.items()) + "\n}\n"
            )
        elif suffix == ".csv":
            rank = np.tile(np.arange(ids.shape[1]), len(ids))
            table = np.column_stack([np.repeat(queries, ids.shape[1]), rank, ids.ravel()])
            lines = ["query,rank,id,distance"] + [f"{q},{r},{i},{d:.8g}" for (q, r, i), d in zip(table, dist.ravel())]
            tmp.write_text("\n".join(lines) + "\n")
        else:
            with open(tmp, "wb") as f:
                if suffix == ".npy":
                    np.save(f, ids, allow_pickle=False)
                else:
                    np.savez(f, allow_pickle=False, ids=ids, distances=dist, queries=queries)


def _cmd_search(args: argparse.Namespace) -> int:
    import numpy as np

    from .search import exact_neighbours, indexed_rows, load_index, load_run, recall_at_k, search

    index = load_index(args.index)
    if not 1 <= args.k <= index.rows:
        raise ConfigError(f"-k must be between 1 and the {index.rows} indexed rows, got {args.k}")
    index.set_search_params(efSearch=args.ef_search, nprobe=args.nprobe)
    model = load_run(index, args.run)
    ds = _input(args)
    if args.rows is not None:
        queries = np.array([i % len(ds) for i in _int_list(args.rows, "--rows")], dtype=np.int64)
        if not len(queries):
            raise ConfigError("--rows names no row")
        _rows(ds, _int_list(args.rows, "--rows"), "--rows")
    else:
        queries = np.arange(len(ds), dtype=np.int64)
    x = ds.x[queries]
    ids, dist = search(index, model, x, args.k, batch_size=args.batch_size, where=ds.source)
    payload: dict[str, Any] = {
        "index": str(args.index),
        "query": ds.source,
        "k": args.k,
        "metric": index.metric,
        "distance": {
            "l2": "squared Euclidean distance between " + ("whitened codes" if index.meta.get("whiten") else "codes"),
            "cosine": "1 - cosine similarity of " + ("whitened codes" if index.meta.get("whiten") else "codes"),
            "hamming": "Hamming distance between binary codes (differing bits)",
        }[index.metric],
        "index_kind": index.kind,
        "queries": queries,
        "ids": ids,
        "distances": dist,
    }
    if args.recall:
        exact, _ = exact_neighbours(indexed_rows(index), x, args.k)
        payload["recall_at_k"] = recall_at_k(ids, exact)
    if args.output is not None:
        _search_output(args.output, payload)
        print(f"wrote the {args.k} nearest neighbours of {len(ids)} queries to {args.output}")
    else:
        for q, row_ids, row_d in zip(queries, ids, dist):
            print(f"{q}: " + " ".join(f"{i}:{d:.4g}" for i, d in zip(row_ids, row_d)))
    if args.recall:
        print(
            f"recall@{args.k} of the code-space neighbours against the exact neighbours of the raw rows: "
            f"{payload['recall_at_k']:.4f} ({len(ids)} queries)"
        )
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    from .compress import compress_run, entropy_bits

    done = compress_run(
        args.run,
        args.input,
        args.output,
        bits=args.bits,
        ranges=args.ranges,
        quantile=args.quantile,
        batch_size=args.batch_size,
        label_column=args.label_column,
        entropy=args.entropy,
    )
    packed, q, em = done.codes, done.codes.quantizer, done.codes.entropy
    quantized = {
        "codebook": "indices into the model's codebook (nothing fitted; --bits and --ranges do not apply)",
        "integers": f"the integer codes stored exactly, {done.fitted_on} (--bits and --ranges do not apply)",
    }.get(packed.meta.get("ranges", ""), f"ranges ({args.ranges}) fitted on {done.fitted_on}")
    n = max(1, len(packed.symbols))
    size = args.output.stat().st_size
    coded = (
        f"range-coded, {done.stream_bytes / n:.1f} bytes per input in the stream (the model's counts "
        f"{em.nbytes:,} bytes before deflate)"
        if em is not None and done.stream_bytes is not None
        else "stored raw"
    )
    print(
        f"wrote {len(packed.symbols)} codes of size {q.dim} at {q.bits} bits to {args.output} ({size:,} bytes): "
        f"{packed.bits_per_input} bits per input raw, empirical entropy {entropy_bits(packed.symbols):.1f}; "
        f"{coded}; {quantized}"
    )
    print(
        f"distortion on {done.source} (model space): per-example squared error {done.per_example_squared_error:.4g}, "
        f"PSNR {done.psnr:.2f} dB"
    )
    return 0


def _cmd_decompress(args: argparse.Namespace) -> int:
    from .compress import decompress_run

    model, packed, rows = decompress_run(args.run, args.codes, batch_size=args.batch_size)
    png = args.output.suffix.lower() == ".png"
    _write_images(
        args.output,
        rows[:GRID_IMAGES] if png else rows,
        _image_shape(model),
        f"decompressed rows ({packed.quantizer.bits}-bit codes)",
        cols=8,
    )
    return 0


# -- one self-contained HTML report of a run (aekit.report) ---------------------------------------
def _add_report(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report of a run",
        description="Write one HTML file with everything embedded (no network needed to view it): "
        "the configuration, the evaluation metrics (evaluation.json, else computed), the "
        "loss curves per term, reconstructions, a 2-D view of the test codes coloured by "
        "label, samples, interpolations and traversals for the VAE family, the first-"
        "layer filters, code activations and the pretraining record.",
    )
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    p.add_argument("-o", "--output", type=Path, default=None, help="HTML file to write (default: DIR/report.html)")
    p.add_argument(
        "--data",
        default=None,
        help="data to draw reconstructions and codes from, split as the run "
        "split its own (default: the run's own data)",
    )
    p.add_argument(
        "--no-evaluate",
        action="store_true",
        help="without evaluation.json in DIR, leave the metrics out instead of computing them",
    )
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import report

    out = report(args.run, args.output, data=args.data, evaluate=not args.no_evaluate)
    print(f"wrote the report of {args.run} to {out}")
    return 0


# -- ONNX export (aekit.export) -----------------------------------------------------------------------
def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a run's encoder, decoder or both as an ONNX graph",
        description="Write the encoder (raw rows to codes, as `aekit encode` gives them), the decoder "
        "(codes to rows in the data's units) or the whole autoencoder (raw rows to reconstructions) "
        "of the run in DIR as an ONNX file, with the run's scaling inside the graph and a dynamic "
        "batch axis; inputs and outputs are float32.",
    )
    _run_args(p, None, "ONNX file to write (.onnx)")
    p.add_argument(
        "--part",
        choices=lookup(f"{__package__}.export", "PARTS"),
        default="encoder",
        help="what the graph computes (default: encoder)",
    )
    p.add_argument(
        "--exporter",
        choices=lookup(f"{__package__}.export", "EXPORTERS"),
        default="torchscript",
        help="PyTorch's exporter: the TorchScript tracer, or torch.export (slower; needs onnxscript) "
        "(default: torchscript)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import NAMES, export_onnx

    export_onnx(args.run, args.output, part=args.part, overwrite=args.overwrite, exporter=args.exporter)
    source, target = NAMES[args.part]
    print(f"wrote the {args.part} of {args.run} ({source} -> {target}) to {args.output}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The ``aekit`` parser. Given the arguments ``argv`` to parse, only the command they name gets its
    options (and for ``train`` / ``pretrain`` only the variant / method): the other commands are listed
    by name and summary, which is all that parsing ``argv`` needs."""
    parser = Parser(prog="aekit", description="The classical autoencoder family: train, encode, reconstruct, evaluate.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = _Commands(parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True), argv)
    _add_train(sub)
    _add_pretraining(sub)
    grid = f"; for image data also .png, a grid of the first {GRID_IMAGES} inputs and their {{}}"
    for name, func, what, formats in (
        ("encode", _cmd_encode, "codes", ""),
        ("reconstruct", _cmd_reconstruct, "reconstructions", grid.format("reconstructions")),
        ("denoise", _cmd_denoise, "denoised reconstructions", grid.format("denoised versions")),
    ):
        p = sub.add_parser(
            name,
            help=f"write the {what} of INPUT",
            description=f"Write the {what} of INPUT "
            f"(a file, folder or built-in set name) as .npy or .csv{formats}."
            + (
                " INPUT holds noisy data in the units of the training data; the run is "
                "best a denoising one (aekit train denoising)."
                if name == "denoise"
                else ""
            ),
        )
        _run_args(p, "data to process", f"output file (.npy or .csv{formats and ' or .png'})")
        _batch_size_arg(p)
        if name == "encode":
            p.add_argument(
                "--stream",
                action="store_true",
                help="read INPUT (a .npy file or a folder of .npy / Parquet shards) a piece at a time, not whole",
            )
        p.set_defaults(func=func)
    p = sub.add_parser(
        "score",
        help="write the anomaly score of each row of INPUT",
        description="Write one anomaly score per row of INPUT (higher: less like the training "
        "data): the summed squared reconstruction error in the data's units, or minus "
        "the evidence lower bound in nats for the VAE family.",
    )
    _run_args(p, "data to score", "output file (.npy or .csv, one score per row)")
    p.add_argument(
        "--elbo-samples", type=int, default=32, help="VAE family: Monte Carlo draws of the ELBO per row (default: 32)"
    )
    _batch_size_arg(p)
    p.add_argument(
        "--complexity",
        action="store_true",
        help="correct the scores by each row's input complexity, its zlib size in bits once quantized "
        "to 8 bits over the training data's range (Serra et al. 2020): the error per bit, or minus "
        "the ELBO less the size in nats",
    )
    p.add_argument(
        "--error",
        choices=("squared", "absolute"),
        default="squared",
        help="sum the residual's squares or its absolute values (default: squared); not for the VAE family's ELBO",
    )
    p.add_argument(
        "--smoothing",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="smooth each image's residual with a Gaussian of SIGMA pixels before summing it (default: 0, "
        "none); image data only. `--error absolute --smoothing 1 --complexity` scored best on "
        "Fashion-MNIST one-class (benchmarks/RESULTS.md)",
    )
    p.add_argument(
        "--per-feature",
        action="store_true",
        help="write each feature's contribution instead (rows x features: its squared reconstruction "
        "error, or what --error and --smoothing sum; each row sums to the row's score); not for the VAE family's ELBO",
    )
    p.set_defaults(func=_cmd_score)
    p = sub.add_parser(
        "evaluate",
        help="reconstruction error against the PCA baseline, as JSON",
        description="Per-example summed squared error (as Hinton & Salakhutdinov 2006 report it), "
        "MSE per value, and PCA with the same code size fitted on the same training "
        "split, as strict JSON: a value that is not a finite number (e.g. the ratio to a "
        "PCA error of 0 on constant data) is null.",
    )
    if p is not _UNBUILT:  # the constants are read only for the command that is run
        p.add_argument("run", type=Path, metavar="DIR", help="run directory")
        p.add_argument("--data", default=None, help="data to evaluate (default: the run's own data)")
        p.add_argument(
            "--split",
            default="test",
            choices=("test", "val", "train", "all"),
            help="split of the run's data to evaluate (default: test)",
        )
        p.add_argument("--no-pca", action="store_true", help="skip the PCA baseline")
        noise = p.add_argument_group(
            "denoising scores",
            "corrupt the clean data in model space with a seeded "
            "corruption (Vincent et al. 2008), denoise it with the model and report psnr_noisy and "
            "psnr_denoised (mean per-example PSNR in dB; data range 1 with the unit scaling, "
            "whose [0, 1] also clips gaussian noise; else the clean data's max - min)",
        )
        noise.add_argument("--noise", default=None, choices=_noise("NOISE_KINDS"), help="corruption process")
        noise.add_argument(
            "--sigma",
            type=float,
            default=None,
            help=f"standard deviation of the gaussian noise (default: {_noise('DEFAULT_SIGMA')})",
        )
        noise.add_argument(
            "--nu",
            type=float,
            default=None,
            help=f"fraction of the entries corrupted by mask and salt_pepper (default: {_noise('DEFAULT_NU')})",
        )
        noise.add_argument("--noise-seed", type=_seed, default=None, help="seed of the corruption (default: 0)")
        p.add_argument(
            "--iw-samples",
            type=int,
            default=100,
            help="VAE family: importance samples per example for the -log p(x) estimate reported with "
            "the negative ELBO (Burda et al. 2016; default: 100, 0 to skip)",
        )
        comp = p.add_argument_group(
            "compression",
            "quantize the codes (and PCA's) uniformly to --bits bits per "
            "dimension over ranges fitted on the training codes; add `compression`: bits per "
            "input (fixed and the symbols' empirical entropy), per-example squared error and "
            "PSNR",
        )
        comp.add_argument("--bits", type=int, default=None, help="bits per code dimension, 1 to 16")
        comp.add_argument(
            "--ranges",
            choices=("minmax", "quantile"),
            default=None,
            help="per-dimension range of the quantizer (default: minmax)",
        )
        p.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")
        p.set_defaults(func=_cmd_evaluate)
    _add_latent(sub)
    _add_search(sub)
    _add_report(sub)
    _add_export(sub)
    p = sub.add_parser("info", help="describe a run directory")
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("variants", help="list the registered variants")
    p.set_defaults(func=_cmd_variants)
    return parser


def _os_error(e: OSError) -> str:
    """One sentence for an OSError that no aekit code turned into an AekitError."""
    where = ": ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    return f"{where}: {e.strerror}" if where and e.strerror else (e.strerror or str(e) or type(e).__name__)


def _set_signals(handler: Any) -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            signal.signal(s, handler)


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT / SIGTERM of the ``aekit`` program outside training: KeyboardInterrupt, once; the signals
    that follow are ignored while the process reports it and exits (a second Ctrl-C must not break
    that with a traceback from an exit handler)."""
    _set_signals(signal.SIG_IGN)
    raise KeyboardInterrupt


def _interruption(e: BaseException | None, chain: bool = True) -> AekitError | None:
    """``e`` if it is a training interruption (aekit.train.Interrupted), else (with ``chain``) the one
    that it arrived on top of, if any."""
    train = sys.modules.get(f"{__package__}.train")  # (not imported: there was none)
    while e is not None and train is not None:
        if isinstance(e, train.Interrupted):
            return e
        e = e.__context__ if chain else None
    return None


def _interrupted(e: BaseException) -> int:
    """Report an interruption (one line) and return its exit status."""
    interruption = _interruption(e)
    if interruption is None:
        sys.stderr.write("aekit: interrupted\n")
        return EXIT_INTERRUPTED
    from .distributed import is_main

    if is_main():  # every process of a distributed run stopped at the same step
        sys.stderr.write(f"aekit: {interruption}\n")
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status.

    Without ``argv`` (the ``aekit`` program itself: ``sys.argv``) SIGINT and SIGTERM interrupt a command
    once, and once it is interrupted the signals that follow are ignored while the process exits;
    called with ``argv``, main leaves the signal handlers as they are.
    """
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    args.argv = argv  # for `aekit train --nproc N`, which runs the same command in N processes
    if program:
        _set_signals(_interrupt_once)  # the Trainer takes them over while it trains
    try:
        status = _run(args, program)
    except KeyboardInterrupt as e:  # one that came while an error or an interruption was being reported
        status = _interrupted(e)
    if program and _left_process_group:
        # Gloo's worker threads can still hold work objects whose destruction during interpreter
        # finalization aborts the process ("terminate called without an active exception", exit 134),
        # now and then, after a run that has written everything: end here, the files closed and synced.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


#: set once a distributed ``aekit train`` has left its process group (see :func:`main`)
_left_process_group = False


def _run(args: argparse.Namespace, program: bool) -> int:
    try:
        return args.func(args)
    except AekitError as e:
        if _interruption(e, chain=False) is not None:
            if program:
                _set_signals(signal.SIG_IGN)
            return _interrupted(e)
        sys.stderr.write(f"aekit: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as e:
        if program:
            _set_signals(signal.SIG_IGN)
        return _interrupted(e)
    except BrokenPipeError:
        return 1
    except OSError as e:  # a file that cannot be read or written, where no aekit code said so
        sys.stderr.write(f"aekit: error: {_os_error(e)}\n")
        return EXIT_USAGE
    except RuntimeError as e:  # a distributed run: another process stopped
        from .distributed import peer_failure

        message = peer_failure(e)
        if message is None:
            raise
        sys.stderr.write(f"aekit: error: {message}\n")
        return 1
