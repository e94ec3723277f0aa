"""The ``aekit`` command: a thin layer over the library.

A user mistake prints ``aekit: error: ...`` and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__, variants
from .config import add_arguments, given
from .errors import AekitError, ConfigError
from .io import atomic_path
from .noise import DEFAULT_NU, DEFAULT_SIGMA, NOISE_KINDS

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with aekit's error format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"aekit: error: {message}\n")
        sys.exit(EXIT_USAGE)


def _add_train(sub: Any) -> None:
    from .api import DataConfig
    from .model import ModelConfig
    from .train import TrainConfig

    train = sub.add_parser("train", help="train a variant and write a run directory",
                           description="Train a registered variant; `aekit train VARIANT --help` lists its options.")
    vsub = train.add_subparsers(dest="variant", metavar="VARIANT", parser_class=Parser, required=True)
    for spec in variants.specs():
        p = vsub.add_parser(spec.name, help=spec.summary, description=spec.summary)
        p.add_argument("--out", type=Path, default=None,
                       help="run directory (default: runs/VARIANT-TIMESTAMP)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        add_arguments(p, DataConfig, group_title="data", dest_prefix="data.")
        add_arguments(p, ModelConfig, exclude=("variant", "input_dim", "image_shape", "options"),
                      group_title="model", dest_prefix="model.")
        add_arguments(p, spec.options, group_title=f"{spec.name} options", dest_prefix="opt.")
        add_arguments(p, TrainConfig, group_title="training", dest_prefix="train.")
        p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .api import DataConfig, fit
    from .model import ModelConfig
    from .train import TrainConfig

    spec = variants.get(args.variant)
    kwargs: dict[str, Any] = {}
    for prefix, cls in (("data.", DataConfig), ("model.", ModelConfig), ("opt.", spec.options),
                        ("train.", TrainConfig)):
        kwargs.update(given(args, cls, prefix))
    data = kwargs.pop("data", "digits")
    if args.resume and args.out is None:
        raise ConfigError("--resume needs --out DIR, the run to continue")
    out = args.out or Path("runs") / f"{args.variant}-{time.strftime('%Y%m%d-%H%M%S')}"
    progress = False if args.quiet else None
    model = fit(args.variant, data, out=out, resume=args.resume, overwrite=args.overwrite,
                progress=progress, **kwargs)
    last = model.history[-1] if model.history else {}
    summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k.endswith("_loss"))
    print(f"trained {args.variant} for {len(model.history)} epoch(s): {summary}")
    print(f"run directory: {out}")
    figures = sorted((out / "figures").glob("*.png"))
    if figures:
        print("figures: " + ", ".join(str(f) for f in figures))
    return 0


def _write_array(path: Path, arr: np.ndarray) -> None:
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
    ds = _input(args)
    codes = model.encode_array(ds.x, batch_size=args.batch_size, where=ds.source)
    _write_array(args.output, codes)
    print(f"wrote {codes.shape[0]} codes of size {codes.shape[1]} to {args.output}")
    return 0


#: rows drawn in a .png grid written by ``reconstruct`` / ``denoise``
GRID_IMAGES = 64


def _write_reconstructions(args: argparse.Namespace, what: str) -> int:
    """Reconstruct INPUT with the run's model and write it (.npy, .csv, or for image data a
    .png grid of the first :data:`GRID_IMAGES` inputs above their reconstructions)."""
    from .api import denoise
    from .io import load
    model = load(args.run)
    ds = _input(args)
    png = args.output.suffix.lower() == ".png"
    if png and ds.image_shape is None:
        raise ConfigError(f"{args.output}: a .png grid needs image data; {ds.source} has flat rows")
    recon = denoise(model, ds.x[:GRID_IMAGES] if png else ds.x, batch_size=args.batch_size, where=ds.source)
    if png:
        from .plots import reconstruction_grid
        reconstruction_grid(ds.x[:GRID_IMAGES], recon, ds.image_shape, args.output, n=GRID_IMAGES,
                            title=f"{ds.source}: inputs and their {what}")
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


NOISE_FLAGS = ("sigma", "nu", "noise_seed")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import evaluate
    noise_kwargs = {k: getattr(args, k) for k in NOISE_FLAGS if getattr(args, k) is not None}
    if noise_kwargs and args.noise is None:
        flags = ", ".join("--" + k.replace("_", "-") for k in noise_kwargs)
        raise ConfigError(f"{flags}: used only with --noise {{{','.join(NOISE_KINDS)}}}")
    result = evaluate(args.run, data=args.data, split=args.split, pca=not args.no_pca, noise=args.noise,
                      **noise_kwargs)
    text = json.dumps(result, indent=2)
    if args.output:
        with atomic_path(args.output) as tmp:
            tmp.write_text(text + "\n")
    print(text)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import HISTORY, load, read_json
    model = load(args.run)
    cfg = model.run_config
    n_params = sum(p.numel() for p in model.parameters())
    m = cfg["model"]
    info: dict[str, Any] = {
        "run": str(args.run), "variant": m["variant"], "architecture": m["architecture"],
        "layers": [m["input_dim"], *m["hidden"], m["latent"]], "parameters": n_params,
        "loss": m["loss"], "options": m["options"], "data": cfg["data"]["data"], "splits": cfg.get("splits"),
        "scale": cfg["transform"]["kind"] if cfg.get("transform") else None,
        "created": cfg.get("created"), "aekit_version": cfg.get("aekit_version"),
    }
    hist_path = Path(args.run) / HISTORY
    if hist_path.exists():
        hist = read_json(hist_path)
        if hist:
            info["epochs"] = len(hist)
            info["last_epoch"] = {k: v for k, v in hist[-1].items() if k.endswith("loss") or k.startswith("val_")}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for k, v in info.items():
            print(f"{k:<{width}}  {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return 0


def _cmd_variants(args: argparse.Namespace) -> int:
    width = max(len(n) for n in variants.names())
    for spec in variants.specs():
        print(f"{spec.name:<{width}}  {spec.summary}")
    return 0


def build_parser() -> Parser:
    parser = Parser(prog="aekit", description="The classical autoencoder family: train, encode, reconstruct, "
                                               "evaluate.")
    parser.add_argument("--version", action="version", version=f"aekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)
    _add_train(sub)
    grid = f"; for image data also .png, a grid of the first {GRID_IMAGES} inputs and their {{}}"
    for name, func, what, formats in (
            ("encode", _cmd_encode, "codes", ""),
            ("reconstruct", _cmd_reconstruct, "reconstructions", grid.format("reconstructions")),
            ("denoise", _cmd_denoise, "denoised reconstructions", grid.format("denoised versions"))):
        p = sub.add_parser(name, help=f"write the {what} of INPUT", description=f"Write the {what} of INPUT "
                           f"(a file, folder or built-in set name) as .npy or .csv{formats}."
                           + (" INPUT holds noisy data in the units of the training data; the run is "
                              "best a denoising one (aekit train denoising)." if name == "denoise" else ""))
        p.add_argument("run", type=Path, metavar="DIR", help="run directory")
        p.add_argument("input", metavar="INPUT", help="data to process")
        p.add_argument("-o", "--output", type=Path, required=True,
                       help=f"output file (.npy or .csv{formats and ' or .png'})")
        p.add_argument("--label-column", default=None, help="label column of a CSV / Parquet input (dropped)")
        p.add_argument("--batch-size", type=int, default=4096, help="rows per batch (default: 4096)")
        p.set_defaults(func=func)
    p = sub.add_parser("evaluate", help="reconstruction error against the PCA baseline, as JSON",
                       description="Per-example summed squared error (as Hinton & Salakhutdinov 2006 report it), "
                                   "MSE per value, and PCA with the same code size fitted on the same training split.")
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    p.add_argument("--data", default=None, help="data to evaluate (default: the run's own data)")
    p.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                   help="split of the run's data to evaluate (default: test)")
    p.add_argument("--no-pca", action="store_true", help="skip the PCA baseline")
    noise = p.add_argument_group("denoising", "corrupt the clean data in model space with a seeded corruption "
                                 "(Vincent et al. 2008), denoise it with the model and report psnr_noisy and "
                                 "psnr_denoised (mean per-example PSNR in dB; data range 1 with the unit scaling, "
                                 "whose [0, 1] also clips gaussian noise; else the clean data's max - min)")
    noise.add_argument("--noise", default=None, choices=NOISE_KINDS, help="corruption process")
    noise.add_argument("--sigma", type=float, default=None,
                       help=f"standard deviation of the gaussian noise (default: {DEFAULT_SIGMA})")
    noise.add_argument("--nu", type=float, default=None,
                       help=f"fraction of the entries corrupted by mask and salt_pepper (default: {DEFAULT_NU})")
    noise.add_argument("--noise-seed", type=int, default=None, help="seed of the corruption (default: 0)")
    p.add_argument("-o", "--output", type=Path, default=None, help="also write the JSON here")
    p.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("info", help="describe a run directory")
    p.add_argument("run", type=Path, metavar="DIR", help="run directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("variants", help="list the registered variants")
    p.set_defaults(func=_cmd_variants)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AekitError as e:
        from .train import Interrupted
        if isinstance(e, Interrupted):
            sys.stderr.write(f"aekit: {e}\n")
            return EXIT_INTERRUPTED
        sys.stderr.write(f"aekit: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("aekit: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 1
