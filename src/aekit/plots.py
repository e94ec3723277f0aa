"""Figures for a run directory: loss curves per term, originals vs reconstructions."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .io import atomic_path

FIGURES = "figures"


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def loss_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One panel per loss term (and the total), training and validation against epoch."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    terms = sorted({k[6:] for r in history for k in r if k.startswith("train_")})
    terms = [t for t in terms if t != "loss"]
    if len(terms) != 1:  # with a single term the total is that term: one panel says it all
        terms = ["loss", *terms]
    cols = min(3, len(terms))
    rows = math.ceil(len(terms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms):
        for split, style in (("train", "-"), ("val", "--")):
            ys = [r.get(f"{split}_{term}") for r in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], style, marker=".", label=split)
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        if all((r.get(f"train_{term}") or 0) > 0 for r in history):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, Path(path))


def reconstruction_grid(originals: np.ndarray, reconstructions: np.ndarray, image_shape: Sequence[int],
                        path: str | Path, n: int = 16, title: str | None = None) -> Path:
    """Two rows per block: originals above their reconstructions."""
    plt = _pyplot()
    n = min(n, len(originals))
    cols = min(n, 8)
    blocks = math.ceil(n / cols)
    fig, axes = plt.subplots(2 * blocks, cols, figsize=(1.1 * cols, 2.3 * blocks), squeeze=False)
    lo, hi = float(np.min(originals[:n])), float(np.max(originals[:n]))
    for i in range(blocks * cols):
        b, c = divmod(i, cols)
        for r, src in enumerate((originals, reconstructions)):
            ax = axes[2 * b + r, c]
            ax.axis("off")
            if i < n:
                ax.imshow(_as_image(src[i], image_shape), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if c == 0:
            axes[2 * b, 0].set_title("original", fontsize=7, loc="left")
            axes[2 * b + 1, 0].set_title("reconstruction", fontsize=7, loc="left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def image_grid(images: np.ndarray, image_shape: Sequence[int], path: str | Path, cols: int = 8,
               title: str | None = None, row_labels: Sequence[str] | None = None) -> Path:
    """Images in a grid of ``cols`` columns, filled row by row (samples, interpolations, traversals)."""
    plt = _pyplot()
    n = len(images)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.9 * cols + (0.6 if row_labels else 0), 0.9 * rows + 0.3),
                             squeeze=False)
    lo, hi = float(np.min(images)), float(np.max(images))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if i < n:
            ax.imshow(_as_image(images[i], image_shape), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    for r, label in enumerate(row_labels or []):
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))


def _as_image(row: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    c, h, w = image_shape
    img = np.asarray(row).reshape(c, h, w)
    return img[0] if c == 1 else np.clip(np.moveaxis(img[:3], 0, -1), 0, None) / max(float(img.max()), 1e-12)


def run_figures(run_dir: str | Path, model: Any, history: Sequence[dict[str, Any]], splits: Any) -> list[Path]:
    """Write the standard figures of a finished run into ``run_dir/figures``."""
    fig_dir = Path(run_dir) / FIGURES
    written = [loss_curves(history, fig_dir / "loss.png")]
    ds = splits.test if len(splits.test) else (splits.val if len(splits.val) else splits.train)
    if ds.image_shape is not None:
        x = ds.x[:16]
        written.append(reconstruction_grid(x, model.reconstruct_array(x), ds.image_shape,
                                           fig_dir / "reconstructions.png",
                                           title=f"{ds.source}: originals and reconstructions"))
        if model.variant.generative:
            written += generative_figures(fig_dir, model, ds)
    return written


def generative_figures(fig_dir: str | Path, model: Any, ds: Any, seed: int = 0) -> list[Path]:
    """Samples from the prior, interpolations between pairs of ``ds``'s images, and latent traversals
    of its first image, for a model of the VAE family on image data."""
    from .latent import interpolate, sample, traverse
    fig_dir = Path(fig_dir)
    shape = ds.image_shape
    written = [image_grid(sample(model, 64, seed=seed), shape, fig_dir / "samples.png",
                          title=f"{model.config.variant}: 64 samples from the prior")]
    pairs = [(2 * i, 2 * i + 1) for i in range(min(4, len(ds) // 2))]
    if pairs:
        rows = np.concatenate([interpolate(model, ds.x[a], ds.x[b], 10) for a, b in pairs])
        written.append(image_grid(rows, shape, fig_dir / "interpolations.png", cols=10,
                                  title="linear interpolation between the codes of two test images"))
    images, dims, _ = traverse(model, ds.x[0], dims=range(min(model.config.latent, 16)), steps=9)
    written.append(image_grid(images, shape, fig_dir / "traversals.png", cols=9,
                              row_labels=[f"z{d}" for d in dims],
                              title="latent traversals: one dimension from -3 to 3, the others fixed"))
    return written
