"""One self-contained HTML report of a run directory: :func:`report`.

The page holds the configuration, the evaluation metrics, the loss curves per term, the
reconstructions, a 2-D view of the test codes coloured by label, samples, interpolations and
traversals for the VAE family, the disentanglement of a dSprites run (MIG and the code-by-factor
mutual information, and a table of disentanglement_lib's other scores), the first-layer filters,
the histogram of the code units' mean activations and the pretraining record. Figures are drawn
with matplotlib into PNG files in a temporary folder and embedded as base64 ``data:`` URIs; the
style sheet is inline. The page loads nothing from anywhere (no scripts, fonts or images from
the network) and every piece of text from the run is HTML-escaped. It is written atomically
(``report.html`` in the run by default).
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import io, plots
from .errors import AekitError, ConfigError

REPORT = "report.html"
EVALUATION = "evaluation.json"
#: rows of the shown split encoded for the code view and the activation statistics (a seeded subset)
MAX_CODES = 5000
#: images shown in the reconstruction grid, filters shown
GRID_IMAGES = 16
MAX_FILTERS = 64
#: a list in a table cell longer than this is summarised
MAX_LIST = 16


@dataclass(frozen=True)
class Section:
    """One part of the page: an anchor ``id``, a heading and its HTML body."""

    id: str
    title: str
    body: str


# -- HTML pieces (pure functions) --------------------------------------------------------------
def esc(value: Any) -> str:
    """``value`` as text, HTML-escaped (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A compact, readable rendering of a configuration or metric value (not escaped)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_LIST:
            shown = ", ".join(fmt(v) for v in value[:4])
            return f"[{shown}, ...] ({len(value)} values)"
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str) if value else "{}"
    return str(value)


def flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, value)`` pairs of a nested dict; lists stay values."""
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += flatten(v, key + ".")
        else:
            rows.append((key, v))
    return rows


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, cls: str = "kv") -> str:
    """An HTML table of formatted, escaped cells."""
    head = "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td{_num(c)}>{esc(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{head}<tbody>{body}</tbody></table>'


def _num(value: Any) -> str:
    """The class attribute of a numeric cell (right-aligned)."""
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return ' class="n"' if numeric else ""


def figure(png: Path, caption: str) -> str:
    """A ``<figure>`` embedding the PNG file ``png`` as a data URI."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1f2328; background: #f6f8fa; line-height: 1.45; }
header { background: #24292f; color: #fff; padding: 1.2rem 2rem; }
header h1 { margin: 0 0 .4rem 0; font-size: 1.5rem; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem; margin: 0; font-size: .9rem; }
header dt { color: #b1bac4; } header dd { margin: 0; }
nav { padding: .6rem 2rem; background: #fff; border-bottom: 1px solid #d0d7de; font-size: .9rem; }
nav a { margin-right: 1rem; color: #0969da; text-decoration: none; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 2rem 2rem; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: .6rem 1.2rem 1rem;
          margin: 1rem 0; }
h2 { font-size: 1.2rem; border-bottom: 1px solid #d8dee4; padding-bottom: .3rem; }
h3 { font-size: 1rem; margin: .8rem 0 .3rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: .3rem 1.5rem;
        align-items: start; }
table { border-collapse: collapse; font-size: .85rem; margin: .3rem 0; }
th, td { border: 1px solid #d0d7de; padding: .2rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tbody tr:nth-child(even) { background: #fafbfc; }
td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: nowrap; }
table.kv td + td { word-break: break-word; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .6rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; background: #fff; }
figcaption { font-size: .85rem; color: #57606a; }
.note { color: #57606a; font-style: italic; }
footer { text-align: center; color: #57606a; font-size: .8rem; padding-bottom: 1.5rem; }
"""


def render(title: str, header: Sequence[tuple[str, Any]], sections: Sequence[Section]) -> str:
    """The whole page: a header with ``(term, value)`` pairs, a table of contents and the sections."""
    from .version import __version__

    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(fmt(v))}</dd>" for k, v in header)
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><dl>{dl}</dl></header><nav>{nav}</nav><main>{body}</main>"
        f"<footer>written by aekit {esc(__version__)} on {esc(now)}; self-contained, nothing loaded "
        f"from elsewhere</footer></body></html>\n"
    )


# -- numbers (pure functions) ----------------------------------------------------------------
def codes_2d(codes: np.ndarray, seed: int = 0) -> tuple[np.ndarray, tuple[str, str]]:
    """A 2-D view of codes: the codes themselves for 2 dimensions, their projection on the first
    two principal components for more (signs fixed so the largest loading is positive), the code
    against a seeded jitter for 1. Returns the points and the axis labels."""
    z = np.asarray(codes, dtype=np.float64)
    if z.shape[1] == 2:
        return z, ("z0", "z1")
    if z.shape[1] == 1:
        jitter = np.random.default_rng(seed).uniform(-1, 1, len(z))
        return np.column_stack([z[:, 0], jitter]), ("z0", "random jitter")
    centred = z - z.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2, [np.argmax(np.abs(v)) for v in vt[:2]]].diagonal())[:, None]
    ratio = s**2 / max(float((s**2).sum()), 1e-300)
    return centred @ vt.T, (f"PC 1 ({ratio[0]:.0%} of the code variance)", f"PC 2 ({ratio[1]:.0%})")


def first_layer_filters(encoder: Any, image_shape: Sequence[int] | None) -> tuple[np.ndarray, Any, str]:
    """The first layer of an encoder as filters: ``(weights (units, features), shape of a filter
    as (C, H, W) or None, description)``. A first ``Linear`` layer gives one filter per unit,
    image-shaped when its inputs are the image's pixels; a first ``Conv2d`` its kernels."""
    from torch import nn

    layer = next((m for m in encoder.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
    if layer is None:
        raise ConfigError("the encoder has no linear or convolutional layer")
    w = layer.weight.detach().cpu().numpy().astype(np.float64)
    if isinstance(layer, nn.Conv2d):
        return (
            w.reshape(len(w), -1),
            tuple(w.shape[1:]),
            (f"first convolution: {w.shape[0]} kernels of {w.shape[1]}x{w.shape[2]}x{w.shape[3]}"),
        )
    shape = tuple(image_shape) if image_shape is not None and int(np.prod(image_shape)) == w.shape[1] else None
    return w, shape, f"first linear layer: {w.shape[0]} units of {w.shape[1]} inputs"


# -- sections -------------------------------------------------------------------------------
def _config_section(cfg: dict[str, Any]) -> Section:
    skip = {"format", "format_version", "scores"}
    top = [(k, v) for k, v in cfg.items() if k not in skip and not isinstance(v, dict)]
    groups = [("run", top)] + [(k, flatten(v)) for k, v in cfg.items() if isinstance(v, dict) and k not in skip]
    body = "".join(f"<div><h3>{esc(name)}</h3>{table(rows, ('key', 'value'))}</div>" for name, rows in groups if rows)
    return Section(
        "configuration", "Configuration", f'<p>From <code>config.json</code>.</p><div class="grid">{body}</div>'
    )


def _metrics_body(result: dict[str, Any], source: str) -> str:
    parts = [f"<p>{esc(source)}</p>"]
    ae, pca = result.get("autoencoder"), result.get("pca")
    rest = dict(result)
    if isinstance(rest.get("mig"), dict):  # the matrix has a section of its own
        rest["mig"] = {k: v for k, v in rest["mig"].items() if k != "normalized_mutual_info"}
    if isinstance(rest.get("disentanglement"), dict):  # its settings are told in its own section
        rest["disentanglement"] = {k: v for k, v in rest["disentanglement"].items() if k != "settings"}
    if isinstance(ae, dict) and isinstance(pca, dict):
        keys = [k for k in ae if k in pca]
        parts.append(
            "<h3>autoencoder against PCA with the same code size</h3>"
            + table([(k, ae[k], pca[k]) for k in keys], ("measure", "autoencoder", "PCA"), cls="kv")
        )
        rest["autoencoder"] = {k: v for k, v in ae.items() if k not in keys}
        rest["pca"] = {k: v for k, v in pca.items() if k not in keys}
    rows = [(k, v) for k, v in flatten(rest) if v != {}]
    parts.append("<h3>all measures</h3>" + table(rows, ("measure", "value"), cls="kv"))
    return "".join(parts)


def _disentanglement_section(result: dict[str, Any] | None, tmp: Path) -> Section | None:
    """The MIG of a dSprites run (``result["mig"]`` from :func:`aekit.evaluate`): per factor its gap
    and the two code dimensions sharing most of it, and the whole normalized mutual information."""
    mig = result.get("mig") if isinstance(result, dict) else None
    if not isinstance(mig, dict) or not isinstance(mig.get("normalized_mutual_info"), list):
        return None
    m = np.asarray(mig["normalized_mutual_info"], dtype=np.float64)
    names = mig.get("factor_names") or [f"v{j}" for j in range(m.shape[1])]
    if m.ndim != 2 or m.shape[0] < 2 or m.shape[1] != len(names) or len(mig.get("gaps") or []) != len(names):
        raise io.RunError(
            "evaluation: mig.normalized_mutual_info is not a (code dimensions, factors) matrix "
            "matching mig.gaps and mig.factor_names"
        )
    rows = []
    for j, name in enumerate(names):
        first, second = np.argsort(m[:, j])[::-1][:2]
        rows.append((name, mig["gaps"][j], f"z{first} ({m[first, j]:.3f})", f"z{second} ({m[second, j]:.3f})"))
    body = (
        f"<p>Mutual Information Gap (Chen et al. 2018, as disentanglement_lib computes it): "
        f"<b>{esc(fmt(mig.get('mig')))}</b>. A factor held by one code dimension alone has a gap near 1; "
        f"one spread over several dimensions, or held by none, a gap near 0.</p>"
        + table(rows, ("factor", "gap", "most informative dimension", "runner-up"), cls="kv")
        + figure(
            plots.mutual_info_heatmap(m, names, tmp / "mutual_info.png"),
            "mutual information of each code dimension with each factor, divided by the factor's entropy",
        )
    )
    return Section("disentanglement", "Disentanglement", body)


#: the rows of the disentanglement scores table: (key path in result["disentanglement"], score, what it is)
_SCORE_ROWS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (
        ("beta_vae", "eval_accuracy"),
        "BetaVAE score (Higgins et al. 2017)",
        "accuracy of a linear classifier naming the factor held fixed from mean |z1 - z2| of pairs; chance 1 / factors",
    ),
    (
        ("factor_vae", "eval_accuracy"),
        "FactorVAE score (Kim & Mnih 2018)",
        "accuracy of a majority vote naming the fixed factor from the least-varying dimension; chance 1 / factors",
    ),
    (
        ("dci", "disentanglement"),
        "DCI disentanglement (Eastwood & Williams 2018)",
        "how much each dimension matters for one factor only (boosted-tree importances)",
    ),
    (("dci", "completeness"), "DCI completeness", "how much each factor is captured by one dimension only"),
    (("dci", "informativeness_test"), "DCI informativeness", "test accuracy of the boosted trees predicting factors"),
    (
        ("sap",),
        "SAP (Kumar et al. 2018)",
        "mean gap between the two dimensions that best predict a factor alone (linear SVM accuracy)",
    ),
    (
        ("modularity",),
        "Modularity (Ridgeway & Mozer 2018)",
        "how much each dimension's mutual information is about one factor only",
    ),
    (
        ("explicitness", "test"),
        "Explicitness (Ridgeway & Mozer 2018)",
        "ROC-AUC of logistic regressions predicting each factor from the code; chance 0.5",
    ),
    (("mig",), "MIG, disentanglement_lib's draw", "as above, on the points these scores draw"),
)


def _scores_section(result: dict[str, Any] | None) -> Section | None:
    """disentanglement_lib's other scores of a dSprites run (``result["disentanglement"]`` from
    :func:`aekit.evaluate`, :func:`aekit.disentanglement.dsprites_scores`): one row a score."""
    scores = result.get("disentanglement") if isinstance(result, dict) else None
    if not isinstance(scores, dict):
        return None
    rows = []
    for path, name, what in _SCORE_ROWS:
        value: Any = scores
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            rows.append((name, value, what))
    if not rows:
        return None
    settings = scores.get("settings")
    if not isinstance(settings, dict):
        settings = {}
    body = (
        "<p>Scores of disentanglement_lib (Locatello et al. 2019) with its definitions, at "
        f"<b>{esc(fmt(settings.get('scale')))}</b> of its sample sizes (seed {esc(fmt(settings.get('seed')))}): "
        "quick estimates, noisier than disentanglement_lib's own at scale 1. Higher is better; "
        "each is at most 1.</p>" + table(rows, ("score", "value", "what it measures"), cls="kv")
    )
    return Section("disentanglement-scores", "Disentanglement scores", body)


def _history_section(run_dir: Path, tmp: Path) -> Section:
    path = run_dir / io.HISTORY
    history = io.read_json(path) if path.exists() else None
    if not history:
        return Section("losses", "Loss curves", note("no training epochs recorded (history.json is absent or empty)."))
    if not isinstance(history, list) or not all(isinstance(r, dict) and "epoch" in r for r in history):
        raise io.RunError(f"{path}: not an aekit training history")
    png = plots.loss_curves(history, tmp / "loss.png")
    last = history[-1]
    rows = [(k, v) for k, v in last.items() if k.startswith(("train_", "val_"))]
    seconds = sum(r.get("seconds") or 0 for r in history)
    body = (
        figure(
            png,
            "each loss term (and the total) per epoch: training (solid) and validation (dashed); "
            "a log scale where every value is positive",
        )
        + f"<h3>last epoch ({esc(last['epoch'])}, {len(history)} recorded, {seconds:.3g} s of training)</h3>"
        + table(rows, ("term", "value"), cls="kv")
    )
    return Section("losses", "Loss curves", body)


def _pretrain_section(run_dir: Path, tmp: Path) -> Section | None:
    path = run_dir / io.PRETRAIN
    if not path.exists():
        return None
    record = io.read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("layers"), list):
        raise io.RunError(f"{path}: not an aekit pretraining record")
    rows = []
    for layer in record["layers"]:
        hist = layer.get("history") or []
        last = hist[-1] if hist else {}
        settings = {k: v for k, v in layer.items() if k not in ("layer", "n_visible", "n_hidden", "history")}
        rows.append(
            (
                layer.get("layer"),
                f"{layer.get('n_visible')} - {layer.get('n_hidden')}",
                len(hist),
                *(last.get(k) for k in plots.PRETRAIN_MEASURES[:3]),
                fmt(settings),
            )
        )
    body = (
        f"<p>Greedy layer-wise pretraining by <b>{esc(record.get('method', '?'))}</b> in "
        f"{esc(fmt(record.get('seconds')))} s (from <code>pretrain.json</code>).</p>"
        + table(
            rows,
            ("layer", "units", "epochs", "reconstruction error", "pseudo log-likelihood", "train loss", "settings"),
            cls="kv",
        )
        + figure(plots.pretrain_curves(record, tmp / "pretrain.png"), "per-epoch history of each pretrained layer")
    )
    return Section("pretraining", "Pretraining", body)


def _filters_section(encoder: Any, image_shape: Any, tmp: Path) -> Section:
    w, shape, what = first_layer_filters(encoder, image_shape)
    n = min(len(w), MAX_FILTERS)
    caption = (f"{what}; the first {n} shown" if n < len(w) else what) + (
        ", each scaled on its own, blue negative, red positive"
        if shape is not None
        else ": weights of each unit (row) on each input feature"
    )
    png = plots.filter_grid(w[:n], tmp / "filters.png", image_shape=shape)
    return Section("filters", "First-layer filters", figure(png, caption))


def _activation_section(model: Any, codes: np.ndarray, split: str, tmp: Path) -> Section:
    target, marks = model.variant.activation_marks()
    mean = codes.mean(0)
    rows: list[tuple[str, Any]] = [
        ("code units", codes.shape[1]),
        ("rows", len(codes)),
        ("mean activation", float(codes.mean())),
        (
            "mean activation of a unit: min / median / max",
            f"{mean.min():.4g} / {np.median(mean):.4g} / {mean.max():.4g}",
        ),
        ("entries exactly zero", float((codes == 0).mean())),
        ("non-zero units per row (mean)", float((codes != 0).sum(1).mean())),
        ("units zero on every row (dead)", int((codes == 0).all(0).sum())),
    ]
    rows[3:3] = marks  # the variant's own measures (e.g. the sparse code's target rho)
    png = plots.activation_histograms(codes, tmp / "activations.png", target=target)
    return Section(
        "activations",
        "Code activations",
        figure(png, f"mean activation of each code unit over the {split} split, and all activations")
        + table(rows, ("measure", "value"), cls="kv"),
    )


def _data_sections(model: Any, ds: Any, split: str, tmp: Path) -> list[Section]:
    """Reconstructions, the code view, generative figures and activations of the rows of ``ds``."""
    sections = []
    x = ds.x[:GRID_IMAGES].reshape(min(len(ds), GRID_IMAGES), -1)
    recon = model.reconstruct_array(x, where=ds.source)
    if ds.image_shape is not None:  # rows of 8 originals, each above its row of 8 reconstructions
        pad = [np.full((8 - len(x[i : i + 8]), x.shape[1]), np.nan, np.float32) for i in range(0, len(x), 8)]
        rows = np.concatenate(
            [part for i, gap in zip(range(0, len(x), 8), pad) for part in (x[i : i + 8], gap, recon[i : i + 8], gap)]
        )
        png = plots.image_mosaic(
            rows,
            ds.image_shape,
            tmp / "reconstructions.png",
            cols=8,
            row_labels=["original", "reconstruction"] * len(pad),
        )
        body = figure(png, f"the first {len(x)} images of the {split} split (top rows) and their reconstructions")
    else:
        png = plots.feature_reconstructions(x, recon, tmp / "reconstructions.png")
        body = figure(png, f"features of the first rows of the {split} split and their reconstructions")
    sections.append(Section("reconstructions", "Reconstructions", body))
    if ds.image_shape is None:
        outliers = _outlier_section(model, ds, split)
        if outliers is not None:
            sections.append(outliers)

    rows = np.random.default_rng(0).permutation(len(ds))[:MAX_CODES] if len(ds) > MAX_CODES else np.arange(len(ds))
    codes = model.encode_array(ds.x[rows], where=ds.source)
    labels = ds.y[rows] if ds.y is not None else None
    points, axes = codes_2d(codes)
    how = {1: "the 1-D code against a random jitter", 2: "the 2-D codes"}.get(
        codes.shape[1], f"the {codes.shape[1]}-D codes projected on their first two principal components"
    )
    what = model.variant.code_name
    png = plots.code_scatter(points, labels, tmp / "codes.png", axis_labels=axes)
    caption = f"{what} of {len(codes)} rows of the {split} split: {how}, " + (
        "coloured by label" if labels is not None else "no labels in this data"
    )
    sections.append(Section("codes", "Code space", figure(png, caption)))

    prior = model.variant.prior
    if prior is not None:
        if ds.image_shape is not None and len(ds) >= 1:
            pngs = plots.generative_figures(tmp, model, ds, grid=plots.image_mosaic)
            captions = {
                "samples": f"64 samples from the prior {prior.description}, decoded means",
                "interpolations": f"decoded straight paths between the codes of pairs of {split} images",
                "traversals": f"latent traversals of the first {split} image: one code dimension from -3 "
                f"to 3, the others fixed (rows z0, z1, ...)",
            }
            body = "".join(figure(p, captions.get(p.stem, p.stem)) for p in pngs)
        else:
            body = note("samples, interpolations and traversals are drawn for image data only.")
        sections.append(Section("generative", "Samples, interpolations, traversals", body))
    sections.append(_activation_section(model, codes, split, tmp))
    return sections


def _outlier_section(model: Any, ds: Any, split: str, top: int = 10) -> Section | None:
    """The ``top`` most anomalous rows of the split, each with its score and the three features that
    contribute most to it (:func:`aekit.anomaly.feature_scores`); None where the model's score is
    not a sum over features (the VAE family's ELBO)."""
    from .anomaly import feature_scores

    try:
        shares = feature_scores(model, ds.x, where=ds.source)
    except AekitError:
        return None
    scores = shares.sum(axis=1)
    rows = []
    for i in np.argsort(-scores, kind="stable")[:top]:
        best = np.argsort(-shares[i], kind="stable")[:3]
        rows.append([int(i), float(scores[i]), ", ".join(f"{j} ({shares[i, j] / scores[i]:.0%})" for j in best)])
    body = table(rows, ("row", "score", "top features (share of the score)"), cls="data") + note(
        f"squared reconstruction error of the {split} rows in the data's units; the median row scores "
        f"{fmt(float(np.median(scores)))}."
    )
    return Section("outliers", "Most anomalous rows", body)


def _evaluation(run_dir: Path, model: Any, test_x: Any, own_splits: Any, evaluate: bool, why: str) -> tuple[Any, str]:
    """The metrics to show and where they come from (``(None, reason)`` when there are none): the
    run's ``evaluation.json``, else :func:`aekit.evaluate` on the test split of the run's own data
    ``own_splits`` (already loaded) or on the rows ``test_x``; ``why`` says why neither is possible."""
    path = run_dir / EVALUATION
    if path.exists():
        result = io.read_json(path)
        if not isinstance(result, dict):
            raise io.RunError(f"{path}: not an aekit evaluation (a JSON object)")
        return result, f"From {EVALUATION} in the run directory (aekit evaluate)."
    if not evaluate:
        return None, f"Not computed (no {EVALUATION} in the run directory and evaluation was turned off)."
    from .evaluation import evaluate as run_evaluation

    if own_splits is not None:
        return (
            run_evaluation(model, splits=own_splits),
            "Computed for this report by aekit.evaluate on the run's test split.",
        )
    if test_x is not None:
        return run_evaluation(model, test_x), "Computed for this report by aekit.evaluate on the given data's split."
    return None, f"Not computed. {why}"


def _sizes(splits: Any) -> str:
    """``"1258 train / 180 val / 359 test rows"`` from ``config.json["splits"]``."""
    if not isinstance(splits, dict):
        return "split sizes not recorded"
    return " / ".join(f"{splits[k]} {k}" for k in ("train", "val", "test") if k in splits) + " rows"


def _split(splits: Any) -> tuple[Any, str]:
    for name in ("test", "val", "train"):
        ds = getattr(splits, name)
        if len(ds):
            return ds, name
    raise ConfigError("the run's data has no rows")


def _autoencoder_page(
    run_dir: Path, cfg: dict[str, Any], tmp: Path, data: Any, evaluate: bool
) -> tuple[list[tuple[str, Any]], list[Section]]:
    from .config import from_dict
    from .data import IN_MEMORY, DataConfig, load_run_splits

    model = io.load(run_dir)
    m = model.config
    data_cfg = from_dict(DataConfig, cfg["data"]) if cfg.get("data") else DataConfig()
    reloadable = data_cfg.data != IN_MEMORY
    ds, split, problem, splits = None, "test", None, None
    if data is not None or reloadable:
        try:
            splits = load_run_splits(data_cfg, data, m.image_shape)
            ds, split = _split(splits)
        except AekitError as e:
            problem = f"The data could not be loaded, so the figures that need it are left out: {e}"
    else:
        problem = (
            "The run was trained on in-memory data: pass the same data (data=..., or --data FILE) to add "
            "reconstructions, codes and samples."
        )
    history_path = run_dir / io.HISTORY
    epochs = len(io.read_json(history_path) or []) if history_path.exists() else 0
    header = [
        ("run directory", str(run_dir)),
        ("variant", m.variant),
        ("model", f"{m.architecture} {'-'.join(map(str, [m.input_dim, *m.hidden, m.latent]))}, loss {m.loss}"),
        ("parameters", sum(p.numel() for p in model.parameters())),
        ("data", f"{data_cfg.data} ({_sizes(cfg.get('splits'))})"),
        ("epochs", epochs),
        ("created", cfg.get("created")),
        ("aekit version", cfg.get("aekit_version")),
    ]

    sections = [_config_section(cfg)]
    own = reloadable and data is None and ds is not None
    result, source = _evaluation(
        run_dir, model, ds.x if ds is not None else None, splits if own else None, evaluate=evaluate, why=problem or ""
    )
    sections.append(
        Section("evaluation", "Evaluation", _metrics_body(result, source) if result is not None else note(source))
    )
    disentanglement = _disentanglement_section(result, tmp)
    if disentanglement is not None:
        sections.append(disentanglement)
    scores = _scores_section(result)
    if scores is not None:
        sections.append(scores)
    sections.append(_history_section(run_dir, tmp))
    if problem is not None:
        sections.append(Section("data", "Data", note(problem)))
    if ds is not None:
        sections += _data_sections(model, ds, split, tmp)
    sections.append(_filters_section(model.encoder, m.image_shape, tmp))
    pre = _pretrain_section(run_dir, tmp)
    if pre is not None:
        sections.append(pre)
    return header, sections


def _classifier_page(run_dir: Path, cfg: dict[str, Any], tmp: Path) -> tuple[list[tuple[str, Any]], list[Section]]:
    """A fine-tuned classifier (aekit finetune): configuration, accuracies, training curves, filters."""
    from .classifier import load_classifier

    clf = load_classifier(run_dir)
    m = clf.autoencoder.config
    header = [
        ("run directory", str(run_dir)),
        ("kind", "classifier (softmax on an encoder's code)"),
        ("encoder", f"{m.variant}: {m.architecture} {'-'.join(map(str, [m.input_dim, *m.hidden, m.latent]))}"),
        ("classes", len(cfg.get("classes") or [])),
        ("source run", cfg.get("source_run")),
        ("data", (cfg.get("data") or {}).get("data")),
        ("created", cfg.get("created")),
        ("aekit version", cfg.get("aekit_version")),
    ]
    scores = cfg.get("scores") or {}
    sections = [
        _config_section(cfg),
        Section(
            "evaluation",
            "Accuracy",
            table(sorted(scores.items()), ("measure", "value"), cls="kv")
            if scores
            else note("no scores recorded in config.json."),
        ),
        _history_section(run_dir, tmp),
        _filters_section(clf.autoencoder.encoder, m.image_shape, tmp),
    ]
    return header, sections


def report(run_dir: str | Path, out: str | Path | None = None, *, data: Any = None, evaluate: bool = True) -> Path:
    """Write one self-contained HTML report of a run directory and return its path.

    Parameters
    ----------
    run_dir : path
        A run directory (``aekit train``, ``aekit.fit(..., out=...)``, ``aekit pretrain``); a
        fine-tuned classifier's directory gets a shorter page (accuracies, curves, filters).
    out : path, optional
        The HTML file to write (default ``run_dir/report.html``), written atomically.
    data : path, array or Dataset, optional
        The data to draw reconstructions and codes from, split as the run split its own; by
        default the run's own data (needed only for a run trained on in-memory data).
    evaluate : bool
        Without ``evaluation.json`` in the run directory, compute :func:`aekit.evaluate`
        (the default) or leave the metrics out.

    Returns
    -------
    Path
        ``out``.
    """
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not (run_dir / io.CONFIG).exists():
        raise io.RunError(f"{run_dir} is not an aekit run directory (it has no {io.CONFIG})")
    cfg = io.read_config(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; give the report a file name such as {out / REPORT}")
    with tempfile.TemporaryDirectory(prefix="aekit-report-") as tmp:
        if cfg.get("kind") == io.CLASSIFIER_KIND:
            header, sections = _classifier_page(run_dir, cfg, Path(tmp))
        else:
            header, sections = _autoencoder_page(run_dir, cfg, Path(tmp), data, evaluate)
        page = render(f"aekit report: {run_dir.resolve().name}", header, sections)
    io.atomic_write_bytes(out, page.encode("utf-8"))
    return out
