"""Figures for a run directory: loss curves per term, originals vs reconstructions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_path

FIGURES = "figures"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path, title: str | None = None, *, ax: Any = None, fontsize: int = 9) -> Path:
    """Title the figure (``ax``'s title, else the figure's), lay it out and write it as a PNG, atomically."""
    if title:
        if ax is not None:
            ax.set_title(title, fontsize=fontsize)
        else:
            fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def loss_curves(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One panel per loss term (and the total), training and validation against epoch; with no
    epoch in ``history``, one panel that says so."""
    plt = _pyplot()
    if not history:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
        ax.text(0.5, 0.5, "no training epochs", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
        return _save(fig, path)
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
        if ax.lines:
            ax.legend()
        if all((r.get(f"train_{term}") or 0) > 0 for r in history):
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(terms) :]:
        ax.axis("off")
    return _save(fig, path)


def reconstruction_grid(
    originals: np.ndarray,
    reconstructions: np.ndarray,
    image_shape: Sequence[int],
    path: str | Path,
    n: int = 16,
    title: str | None = None,
) -> Path:
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
    return _save(fig, path, title)


def image_grid(
    images: np.ndarray,
    image_shape: Sequence[int],
    path: str | Path,
    cols: int = 8,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Images in a grid of ``cols`` columns, filled row by row (samples, interpolations, traversals)."""
    plt = _pyplot()
    n = len(images)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(0.9 * cols + (0.6 if row_labels else 0), 0.9 * rows + 0.3), squeeze=False
    )
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
    return _save(fig, path, title)


def _as_image(row: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    c, h, w = image_shape
    img = np.asarray(row).reshape(c, h, w)
    return img[0] if c == 1 else np.clip(np.moveaxis(img[:3], 0, -1), 0, None) / max(float(img.max()), 1e-12)


def run_figures(run_dir: str | Path, model: Any, history: Sequence[dict[str, Any]], splits: Any) -> list[Path]:
    """Write the standard figures of a finished run into ``run_dir/figures`` (the loss curves only
    when it trained at least one epoch)."""
    fig_dir = Path(run_dir) / FIGURES
    written = [loss_curves(history, fig_dir / "loss.png")] if history else []
    ds = splits.test if len(splits.test) else (splits.val if len(splits.val) else splits.train)
    if ds.image_shape is not None:
        x = ds.x[:16]
        written.append(
            reconstruction_grid(
                x,
                model.reconstruct_array(x),
                ds.image_shape,
                fig_dir / "reconstructions.png",
                title=f"{ds.source}: originals and reconstructions",
            )
        )
        if model.variant.prior is not None:
            written += generative_figures(fig_dir, model, ds)
    return written


def generative_figures(fig_dir: str | Path, model: Any, ds: Any, seed: int = 0, grid: Any = None) -> list[Path]:
    """Samples from the prior, interpolations between pairs of ``ds``'s images, and latent traversals
    of its first image, for a model with a prior (``model.variant.prior``) on image data. ``grid`` draws each figure
    (:func:`image_grid` by default; :func:`image_mosaic` is faster)."""
    from .latent import interpolate, sample, traverse

    draw = grid or image_grid
    fig_dir = Path(fig_dir)
    shape = ds.image_shape
    written = [
        draw(
            sample(model, 64, seed=seed),
            shape,
            fig_dir / "samples.png",
            title=f"{model.config.variant}: 64 samples from the prior",
        )
    ]
    pairs = [(2 * i, 2 * i + 1) for i in range(min(4, len(ds) // 2))]
    if pairs:
        rows = np.concatenate([interpolate(model, ds.x[a], ds.x[b], 10) for a, b in pairs])
        written.append(
            draw(
                rows,
                shape,
                fig_dir / "interpolations.png",
                cols=10,
                title="linear interpolation between the codes of two test images",
            )
        )
    images, dims, _ = traverse(model, ds.x[0], dims=range(min(model.config.latent, 16)), steps=9)
    written.append(
        draw(
            images,
            shape,
            fig_dir / "traversals.png",
            cols=9,
            row_labels=[f"z{d}" for d in dims],
            title="latent traversals: one dimension from -3 to 3, the others fixed",
        )
    )
    return written


def image_mosaic(
    images: np.ndarray,
    image_shape: Sequence[int],
    path: str | Path,
    cols: int = 8,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """:func:`image_grid` drawn as one tiled image (one pixel apart) in a single panel: the same
    layout and grey scale over all images, many times faster for large grids."""
    plt = _pyplot()
    imgs = [_as_image(row, image_shape) for row in np.asarray(images)]
    n = len(imgs)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    h = imgs[0].shape[0]
    rgb = imgs[0].ndim == 3
    lo, hi = (0.0, 1.0) if rgb else (float(np.nanmin(imgs)), float(np.nanmax(imgs)))
    out = _tile(imgs, cols)
    fig, ax = plt.subplots(figsize=(0.9 * cols + (0.6 if row_labels else 0), 0.9 * rows + 0.3))
    if rgb:
        ax.imshow(np.nan_to_num(out, nan=1.0), interpolation="nearest")
    else:
        ax.imshow(out, cmap=plt.get_cmap("gray").with_extremes(bad="white"), vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([r * (h + 1) + (h - 1) / 2 for r in range(len(row_labels or []))])
    ax.set_yticklabels(list(row_labels or []), fontsize=7)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return _save(fig, path, title, ax=ax)


# -- figures of the HTML report (aekit.report) ------------------------------------------------
def code_scatter(
    points: np.ndarray,
    labels: np.ndarray | None,
    path: str | Path,
    axis_labels: Sequence[str] = ("z0", "z1"),
    title: str | None = None,
    max_classes: int = 20,
) -> Path:
    """A 2-D scatter of codes (or of their projection), one colour per label with a legend when
    there are at most ``max_classes`` labels, a colour bar over the sorted labels otherwise."""
    plt = _pyplot()
    pts = np.asarray(points, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    style = {"s": 7, "alpha": 0.75, "linewidths": 0}
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], color="tab:blue", **style)
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if len(classes) <= max_classes:
            cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
            for i, c in enumerate(classes):
                m = labels == c
                ax.scatter(pts[m, 0], pts[m, 1], color=cmap(i % cmap.N), label=str(c), **style)
            ax.legend(
                title="label", fontsize=8, markerscale=2.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False
            )
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], c=np.searchsorted(classes, labels), cmap="viridis", **style)
            fig.colorbar(sc, ax=ax, label="label (rank)")
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.grid(alpha=0.3)
    return _save(fig, path, title, ax=ax, fontsize=10)


def mutual_info_heatmap(
    matrix: np.ndarray, factor_names: Sequence[str], path: str | Path, title: str | None = None
) -> Path:
    """The ``(K, F)`` mutual information of each code dimension (row) with each factor (column),
    normalized by the factor's entropy, as a heat map on [0, 1] with the values written in."""
    plt = _pyplot()
    m = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(1.2 * m.shape[1] + 2.2, 0.32 * m.shape[0] + 1.4))
    im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(m.shape[1]), [str(f) for f in factor_names])
    ax.set_yticks(range(m.shape[0]), [f"z{i}" for i in range(m.shape[0])])
    ax.set_xlabel("factor")
    ax.set_ylabel("code dimension")
    if m.size <= 400:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="I(z_i; v_j) / H(v_j)")
    return _save(fig, path, title, ax=ax, fontsize=10)


def filter_grid(
    filters: np.ndarray,
    path: str | Path,
    image_shape: Sequence[int] | None = None,
    cols: int = 16,
    title: str | None = None,
) -> Path:
    """First-layer filters: with ``image_shape`` (C, H, W) each row of ``filters`` is drawn as an
    image, scaled on its own and symmetric around 0 (blue negative, red positive; RGB for 3
    channels); without it the rows are drawn as one heat map of units by input features."""
    plt = _pyplot()
    w = np.asarray(filters, dtype=np.float64)
    if image_shape is None:
        m = max(float(np.abs(w).max()), 1e-12)
        fig, ax = plt.subplots(figsize=(min(10.0, 3.0 + 0.08 * w.shape[1]), min(8.0, 1.5 + 0.12 * len(w))))
        im = ax.imshow(w, aspect="auto", cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        fig.colorbar(im, ax=ax, label="weight")
        ax.set_xlabel("input feature")
        ax.set_ylabel("unit")
    else:
        n = len(w)
        cols = max(1, min(cols, n))
        rows = math.ceil(n / cols)
        fig, ax = plt.subplots(figsize=(0.62 * cols, 0.62 * rows + 0.35))
        ax.axis("off")
        mosaic = filter_mosaic(w, image_shape, cols)
        if mosaic.ndim == 3:
            ax.imshow(mosaic, interpolation="nearest")
        else:
            ax.imshow(
                mosaic, cmap=plt.get_cmap("RdBu_r").with_extremes(bad="white"), vmin=-1, vmax=1, interpolation="nearest"
            )
    return _save(fig, path, title)


def filter_mosaic(filters: np.ndarray, image_shape: Sequence[int], cols: int, gap: int = 1) -> np.ndarray:
    """Tile filters (rows of ``filters``, each of shape ``image_shape`` (C, H, W)) into one array,
    each divided by its largest magnitude (so in [-1, 1]), ``gap`` pixels apart: NaN gaps and
    shape ``(H', W')`` for one channel (channel 0 when not 3), values mapped to [0, 1] with white
    gaps and shape ``(H', W', 3)`` for three."""
    c, h, w = image_shape
    f = np.asarray(filters, dtype=np.float64).reshape(len(filters), c, h, w)
    f = f / np.maximum(np.abs(f).reshape(len(f), -1).max(1), 1e-12)[:, None, None, None]
    rgb = c == 3
    tiles = [0.5 + 0.5 * np.moveaxis(img, 0, -1) if rgb else img[0] for img in f]
    return _tile(tiles, cols, gap, fill=1.0 if rgb else np.nan)


def _tile(tiles: Sequence[np.ndarray], cols: int, gap: int = 1, fill: float = np.nan) -> np.ndarray:
    """Equal-sized ``(H, W)`` or ``(H, W, 3)`` tiles laid out row by row, ``cols`` to a row, ``gap``
    pixels of ``fill`` apart, as one array."""
    h, w = tiles[0].shape[:2]
    rows = math.ceil(len(tiles) / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, *tiles[0].shape[2:]), fill)
    for i, tile in enumerate(tiles):
        r, k = divmod(i, cols)
        out[r * (h + gap) : r * (h + gap) + h, k * (w + gap) : k * (w + gap) + w] = tile
    return out


def activation_histograms(
    codes: np.ndarray, path: str | Path, target: float | None = None, title: str | None = None
) -> Path:
    """Left: the histogram of the mean activation of each code unit over the rows of ``codes``
    (with the sparsity ``target`` as a dashed line); right: the histogram of all activations."""
    plt = _pyplot()
    z = np.asarray(codes, dtype=np.float64)
    mean = z.mean(0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.3))
    left.hist(mean, bins=int(min(30, max(5, len(mean)))), color="tab:blue", alpha=0.85)
    if target is not None:
        left.axvline(target, color="tab:red", ls="--", label=f"target rho = {target:g}")
        left.legend(fontsize=8)
    left.set_xlabel("mean activation of a code unit")
    left.set_ylabel("units")
    left.set_title(f"{z.shape[1]} code units", fontsize=9)
    right.hist(z.ravel(), bins=50, color="tab:gray")
    right.set_yscale("log")
    right.set_xlabel("activation")
    right.set_ylabel("entries (log scale)")
    right.set_title(f"all {z.size} activations ({float((z == 0).mean()):.0%} exactly zero)", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, path, title, fontsize=10)


def feature_reconstructions(
    originals: np.ndarray, reconstructions: np.ndarray, path: str | Path, n: int = 4, title: str | None = None
) -> Path:
    """For rows that are not images: each of the first ``n`` rows' features and their
    reconstruction, one panel per row."""
    plt = _pyplot()
    n = max(1, min(n, len(originals)))
    d = np.asarray(originals).shape[1]
    marker = d <= 60
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 1.5 * n + 0.6), squeeze=False, sharex=True)
    f = np.arange(d)
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(f, originals[i], "-", marker="o" if marker else None, ms=3, lw=1, label="input")
        ax.plot(f, reconstructions[i], "--", marker="s" if marker else None, ms=3, lw=1, label="reconstruction")
        ax.set_ylabel(f"row {i}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=2, loc="upper right")
    axes[-1, 0].set_xlabel("feature")
    return _save(fig, path, title)


#: per-epoch measures of a pretrained layer drawn by :func:`pretrain_curves`, when present
PRETRAIN_MEASURES = ("reconstruction_error", "pseudo_log_likelihood", "train_loss", "val_loss")


def pretrain_curves(record: dict[str, Any], path: str | Path) -> Path:
    """The per-epoch history of each pretrained layer (``pretrain.json``): one panel per measure,
    one line per layer."""
    plt = _pyplot()
    layers = record.get("layers") or []
    measures = [
        k
        for k in PRETRAIN_MEASURES
        if any(r.get(k) is not None for layer in layers for r in layer.get("history") or [])
    ]
    measures = measures or ["train_loss"]
    fig, axes = plt.subplots(1, len(measures), figsize=(4.2 * len(measures), 3.2), squeeze=False)
    for ax, key in zip(axes.flat, measures):
        for layer in layers:
            hist = layer.get("history") or []
            ys = [np.nan if r.get(key) is None else r[key] for r in hist]
            if hist and not all(np.isnan(ys)):
                ax.plot(
                    [r.get("epoch", i + 1) for i, r in enumerate(hist)],
                    ys,
                    marker=".",
                    label=f"layer {layer.get('layer', '?')}",
                )
        ax.set_title(key.replace("_", " "), fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)
