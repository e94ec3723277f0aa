"""MkDocs hook: the pages that are generated from the code at build time, so that they cannot drift.

- ``variants/index.md`` and one page per registered variant, ``variants/<name>.md``: the variant's
  summary, the hand-written ``docs/variants/<name>.md`` (what it adds, its formula, its paper) when
  there is one, the options table read from its options dataclass, the model defaults it registers,
  a figure drawn at build time from the variant's own functions (:data:`FIGURES`: every built-in
  variant has one; the few that train a model train it for seconds, on digits), and its ``aekit
  train NAME --help``. The nav's "Variants" section is filled in from the registry (:func:`on_config`).
- ``cli.md``: the help of every command and sub-command of ``aekit.cli.build_parser()``.
- ``benchmarks.md``: ``benchmarks/RESULTS.md`` itself, with its figure.
- Mathematics: ``pymdownx.arithmatex`` (generic mode) marks ``$...$`` and ``$$...$$``; this hook
  renders each formula at build time with matplotlib's mathtext into an SVG image embedded in the
  page, so the site needs no JavaScript and no network to show its formulas. A formula that mathtext
  cannot parse fails the build.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import html
import io
import logging
import os
import re
import typing
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
#: the width argparse formats the help to (it reads $COLUMNS), so the pages do not depend on the terminal
HELP_COLUMNS = "100"
log = logging.getLogger("mkdocs.hooks.aekit")


# -- the variants ---------------------------------------------------------------------------------
#: the order of the variants in the nav and the overview: the family's, from the plain autoencoder on;
#: a variant not named here comes after these, in the registry's (alphabetical) order
ORDER = (
    "ae",
    "linear",
    "denoising",
    "sparse",
    "ksparse",
    "contractive",
    "deep",
    "vae",
    "beta-vae",
    "capacity-vae",
    "beta-tcvae",
    "factor-vae",
    "dip-vae-i",
    "dip-vae-ii",
    "hashing",
    "vq-vae",
    "compressive",
)


def _specs() -> list:
    from aekit import variants

    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(variants.specs(), key=lambda s: (rank.get(s.name, len(ORDER)), s.name))


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def _type_name(tp) -> str:
    text = tp if isinstance(tp, str) else getattr(tp, "__name__", None) or str(tp)
    return str(text).replace("typing.", "").replace("NoneType", "None").replace(" | ", " or ")


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _options_table(spec) -> str:
    fields = dataclasses.fields(spec.options)
    if not fields:
        return "This variant has no options of its own: it is configured by the shared model and training options.\n"
    hints = typing.get_type_hints(spec.options)
    only = {name: method for method, names in spec.layerwise.items() for name in names}
    rows = [
        "Generated from the options dataclass "
        f"`{spec.options.__module__}.{spec.options.__name__}`. Each option is a `--flag` of "
        f"`aekit train {spec.name}` and, spelt with underscores (`--k-start`: `k_start`), a key of `model.options` "
        "in the run's `config.json`, a keyword of `aekit.fit` and a key of the scikit-learn estimators' `options`.\n",
        "| option | default | type | choices | help |",
        "|---|---|---|---|---|",
    ]
    for f in fields:
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        choices = ", ".join(f"`{c}`" for c in f.metadata.get("choices") or ())
        help_ = _cell(f.metadata.get("help", ""))
        if f.name in only:
            help_ += f" (`--pretrain {only[f.name]}` only)"
        rows.append(
            f"| `{flag}` | `{_default(f)!r}` | `{_type_name(hints.get(f.name, f.type))}` | {choices} | {help_} |"
        )
    return "\n".join(rows) + "\n"


def _defaults(spec) -> str:
    if not spec.defaults:
        return ""
    shown = ", ".join(f"`{k}={v!r}`" for k, v in spec.defaults.items())
    return f"\nModel defaults this variant registers (a flag given on the command line still wins): {shown}.\n"


def _train_help(name: str) -> str:
    from aekit.cli import build_parser

    with _columns():
        parser = build_parser(["train", name, "--help"])
        train = _subparsers(parser)["train"]
        return _subparsers(train)[name].format_help()


def _intro(name: str) -> tuple[str, str | None]:
    """The hand-written part of a variant's page and its H1 (None: the file has none)."""
    path = DOCS / "variants" / f"{name}.md"
    if not path.exists():
        return "", None
    text = path.read_text()
    m = re.match(r"#\s+(.+)\n", text)
    return (text[m.end() :], m.group(1).strip()) if m else (text, None)


def _variant_page(spec) -> str:
    intro, title = _intro(spec.name)
    out = [f"# {title or '`' + spec.name + '`'}\n", f"*{spec.summary}*\n", intro.strip() + "\n" if intro else ""]
    figure = FIGURES.get(spec.name)
    if figure:
        out.append(f"![{figure[1]}](figures/{spec.name}.svg)\n\n*{figure[1]}*\n")
    out += ["## Options\n", _options_table(spec), _defaults(spec)]
    out.append(
        f"## Command line\n\n```sh\naekit train {spec.name} --out runs/{spec.name}\n```\n\n"
        f'??? note "aekit train {spec.name} --help"\n\n' + _indent("```text\n" + _train_help(spec.name) + "```") + "\n"
    )
    return "\n".join(out)


def _variants_index(specs) -> str:
    out = [
        "# Variants\n",
        "The family members registered in this installation (`aekit variants` lists the same), generated "
        "from `aekit.variants.specs()` at build time. Each page says what the variant adds to the plain "
        "autoencoder, its objective and its paper, and lists its options.\n",
        "| variant | what it is |",
        "|---|---|",
    ]
    out += [f"| [`{s.name}`]({s.name}.md) | {_cell(s.summary)} |" for s in specs]
    out.append(
        "\nHow a variant is written, and the hooks a family member overrides, are in "
        "[the architecture](../architecture.md#variants).\n"
    )
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("    " + line if line else "" for line in text.splitlines())


# -- figures drawn at build time from the variants' own functions ----------------------------------
def _fig_sparse(plt):
    import numpy as np

    from aekit.variants.sparse import BETA_DEFAULT

    r = np.linspace(0.002, 0.6, 300)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for rho in (0.05, 0.1, 0.2):
        kl = rho * np.log(rho / r) + (1 - rho) * np.log((1 - rho) / (1 - r))
        ax.plot(r, BETA_DEFAULT * kl, label=f"rho = {rho}")
    ax.set(xlabel="mean activation rho_hat_j of a code unit", ylabel="beta KL(rho || rho_hat_j)", ylim=(0, 3))
    ax.legend(frameon=False)
    return fig


def _fig_ksparse(plt):
    from aekit.variants.ksparse import scheduled_k

    steps = 1000
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for k, k_start in ((25, 100), (10, 40), (25, None)):
        ax.plot(
            range(steps),
            [scheduled_k(t, steps, k, k_start, 0.5) for t in range(steps)],
            label=f"k = {k}, k_start = {k_start}",
        )
    ax.set(xlabel="optimizer step (of 1000; k_schedule 0.5)", ylabel="k in use")
    ax.legend(frameon=False)
    return fig


def _fig_capacity(plt):
    from aekit.variants.vae import capacity_at, warmup_weight

    steps = 1000
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 2.6))
    a.plot(range(steps), [capacity_at(t, 25.0, 800) for t in range(steps)])
    a.set(xlabel="optimizer step", ylabel="C (nats)", title="capacity 25, capacity_steps 800")
    b.plot(range(steps), [warmup_weight(t, 300) for t in range(steps)])
    b.set(xlabel="optimizer step", ylabel="KL weight / beta", title="warmup 300")
    fig.tight_layout()
    return fig


def _fig_denoising(plt):
    import torch
    from sklearn.datasets import load_digits

    from aekit import noise

    x = torch.tensor(load_digits().data[:1] / 16.0, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    panels = [("clean", x)] + [
        (
            f"{kind}",
            noise.corrupt(x, kind, nu=0.25, sigma=0.3, clip=(0.0, 1.0) if kind == "gaussian" else None, generator=g),
        )
        for kind in noise.NOISE_KINDS
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.6 * len(panels), 1.9))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img.reshape(8, 8).numpy(), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return fig


def _fig_hashing(plt):
    import numpy as np

    h = np.linspace(-6, 6, 400)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.plot(h, 1 / (1 + np.exp(-h)), label="sigma(h): the gradient's path")
    ax.plot(h, (h > 0).astype(float), label="[h > 0]: what the decoder sees")
    ax.set(xlabel="code unit's input h", ylabel="code value")
    ax.legend(frameon=False)
    return fig


def _fig_ae(plt):
    import torch

    from aekit.losses import bernoulli_cross_entropy, squared_error

    r = torch.linspace(0.005, 0.995, 300)[:, None]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for x in (0.0, 0.7):
        target = torch.full_like(r, x)
        ce = bernoulli_cross_entropy(torch.logit(r), target, reduction="none")
        floor = bernoulli_cross_entropy(torch.logit(target.clamp(1e-6, 1 - 1e-6)), target, reduction="none")
        (line,) = ax.plot(r, ce - floor, label=f"cross-entropy less its minimum, x = {x}")
        ax.plot(
            r,
            squared_error(r, target, reduction="none"),
            ls="--",
            color=line.get_color(),
            label=f"squared error, x = {x}",
        )
    ax.set(xlabel="reconstruction x_hat of one pixel", ylabel="loss", ylim=(0, 2))
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _fig_linear(plt):
    import numpy as np

    from aekit.fitting import fit
    from aekit.variants.linear import affine_maps

    x = np.random.default_rng(0).multivariate_normal([0, 0], [[3.0, 1.6], [1.6, 1.2]], size=400).astype(np.float32)
    model = fit("linear", x, latent=1, epochs=200, lr=1e-2, scale="none", progress=False, figures=False, seed=0)
    v = affine_maps(model)[2][:, 0].numpy()
    v /= np.linalg.norm(v)
    pc = np.linalg.svd(x - x.mean(0), full_matrices=False)[2][0]
    angle = np.degrees(np.arccos(min(1.0, abs(float(v @ pc)))))
    m, t = x.mean(0), np.array([-4.0, 4.0])
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.scatter(x[:, 0], x[:, 1], s=4, alpha=0.4, color="0.5")
    ax.plot(m[0] + t * pc[0], m[1] + t * pc[1], lw=5, alpha=0.4, label="first principal component")
    ax.plot(m[0] + t * v[0], m[1] + t * v[1], lw=1.2, color="k", label=f"decoder column V ({angle:.1f} degrees off)")
    ax.set(xlabel="x_1", ylabel="x_2", aspect="equal")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_deep(plt):
    from sklearn.datasets import load_digits

    from aekit.variants.stacks import train_rbm

    rbm = train_rbm(load_digits().data / 16.0, 24, epochs=20, seed=0)
    fig, axes = plt.subplots(3, 8, figsize=(6, 2.4))
    for ax, w in zip(axes.flat, rbm.weight.detach()):
        lim = float(w.abs().max())
        ax.imshow(w.reshape(8, 8).numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.axis("off")
    return fig


def _fig_contractive(plt):
    import torch

    from aekit.losses import contractive_sigmoid_penalty

    a = torch.linspace(-8, 8, 400)
    h = torch.sigmoid(a)[:, None]
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for norm in (0.5, 1.0, 2.0):
        ax.plot(
            a, contractive_sigmoid_penalty(h, torch.full((1, 1), norm), reduction="none"), label=f"||W_j|| = {norm}"
        )
    ax.plot(a, h[:, 0] / 4, color="0.6", ls=":", label="h_j / 4, the unit's output")
    ax.set(xlabel="pre-activation W_j x + b_j of one sigmoid code unit", ylabel="(h_j (1 - h_j))^2 ||W_j||^2")
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _fig_vae(plt):
    import torch

    from aekit.losses import gaussian_kl_per_dim

    m, lv = torch.meshgrid(torch.linspace(-3, 3, 201), torch.linspace(-6, 3, 201), indexing="xy")
    kl = gaussian_kl_per_dim(m.reshape(-1, 1), lv.reshape(-1, 1)).reshape(m.shape)
    fig, ax = plt.subplots(figsize=(5, 3))
    lines = ax.contour(m, lv, kl, levels=[0.1, 0.5, 1, 2, 3, 4], cmap="viridis")
    ax.clabel(lines, fontsize=7)
    ax.plot([0], [0], "k+", ms=10)
    ax.set(xlabel="posterior mean mu_j", ylabel="posterior log-variance log sigma_j^2")
    return fig


def _fig_beta_vae(plt):
    import numpy as np
    from sklearn.datasets import load_digits

    from aekit.fitting import fit

    x = load_digits().data.astype(np.float32) / 16.0
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for beta in (1.0, 2.0, 3.0):
        model = fit(
            "beta-vae", x, beta=beta, latent=10, hidden=(128,), epochs=40, lr=3e-3, batch_size=64,
            progress=False, figures=False, seed=0,
        )  # fmt: skip
        kl = sorted(model.history[-1]["kl_per_dim"], reverse=True)
        ax.plot(range(1, len(kl) + 1), kl, marker="o", ms=3, label=f"beta = {beta:g}: {sum(kl):.2f} nats in all")
    ax.set(xlabel="code dimension, in order of its KL", ylabel="KL of the dimension (nats)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _white(n: int, generator):
    """``n`` rows of two columns whose sample mean is 0 and sample covariance the identity, exactly
    (normal draws, whitened)."""
    import torch

    e = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    e = e - e.mean(0)
    return e @ torch.linalg.inv(torch.linalg.cholesky(e.T @ e / n)).T


def _correlated(e, rho: float, scale: float = 1.0):
    """The white rows ``e`` (:func:`_white`) mixed to standard deviations ``scale`` and correlation ``rho``."""
    import torch

    return torch.stack([e[:, 0], rho * e[:, 0] + (1 - rho**2) ** 0.5 * e[:, 1]], 1) * scale


def _dip_weights(name: str) -> tuple[str, float, float]:
    """The DIP kind and the weights lambda_od, lambda_d that the registered variant ``name`` defaults to."""
    from aekit import variants

    o = variants.get(name).options()
    return o.kind, o.lambda_od, o.lambda_d_factor * o.lambda_od


def _fig_tcvae(plt):
    import math

    import numpy as np
    import torch

    from aekit.variants.tcvae import kl_decomposition

    g = torch.Generator().manual_seed(0)
    e = _white(512, g)
    rhos = np.linspace(0, 0.95, 12)
    terms: dict[str, list[float]] = {"mi": [], "tc": [], "dim_kl": []}
    for rho in rhos:
        mu = _correlated(e, float(rho), 0.95)
        logvar = torch.full_like(mu, math.log(0.1))
        z = mu + logvar.mul(0.5).exp() * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
        parts = kl_decomposition(z, mu, logvar, 60000, "mss")
        for k in terms:
            terms[k].append(float(parts[k]))
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for k, label in (
        ("mi", "index-code MI"),
        ("tc", "total correlation (weight beta)"),
        ("dim_kl", "dimension-wise KL"),
    ):
        ax.plot(rhos, terms[k], marker="o", ms=3, label=label)
    ax.set(xlabel="correlation of the two dimensions' posterior means", ylabel="nats per row")
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_factor_vae(plt):
    import numpy as np
    import torch

    from aekit.variants.factorvae import permute_dims

    g = torch.Generator().manual_seed(0)
    z = _correlated(_white(600, g), 0.85)
    fig, axes = plt.subplots(1, 2, figsize=(6, 2.9), sharex=True, sharey=True)
    for ax, (title, v) in zip(axes, (("z ~ q(z)", z), ("permute_dims(z) ~ prod_j q(z_j)", permute_dims(z, g)))):
        ax.scatter(v[:, 0], v[:, 1], s=3, alpha=0.5)
        ax.set(title=f"{title}\ncorrelation {np.corrcoef(v.numpy().T)[0, 1]:.2f}", xlabel="z_1", aspect="equal")
    axes[0].set_ylabel("z_2")
    fig.tight_layout()
    return fig


def _fig_dip_i(plt):
    import numpy as np
    import torch

    from aekit.variants.dipvae import dip_penalty

    kind, lambda_od, lambda_d = _dip_weights("dip-vae-i")
    e = _white(4096, torch.Generator().manual_seed(0))
    rhos = np.linspace(-0.9, 0.9, 37)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for sd in (0.8, 1.0, 1.2):
        vals = []
        for rho in rhos:
            mu = _correlated(e, float(rho), sd)
            vals.append(float(dip_penalty(mu, torch.zeros_like(mu), kind, lambda_od, lambda_d)))
        ax.plot(rhos, vals, label=f"sd of each mu_j = {sd}")
    ax.set(
        xlabel="correlation of two posterior means",
        ylabel="DIP-i penalty",
        title=f"lambda_od {lambda_od:g}, lambda_d {lambda_d:g}",
    )
    ax.legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def _fig_dip_ii(plt):
    import math

    import numpy as np
    import torch

    from aekit.variants.dipvae import dip_penalty

    kind, lambda_od, lambda_d = _dip_weights("dip-vae-ii")
    e = _white(4096, torch.Generator().manual_seed(0))
    s2 = np.linspace(0.0, 1.2, 49)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    for var_mu in (0.25, 0.5, 1.0):
        mu = _correlated(e, 0.0, var_mu**0.5)
        vals = [
            float(dip_penalty(mu, torch.full_like(mu, math.log(max(s, 1e-12))), kind, lambda_od, lambda_d)) for s in s2
        ]
        ax.plot(s2, vals, label=f"Var[mu_j] = {var_mu}")
    ax.set(
        xlabel="posterior variance sigma_j^2 of every row",
        ylabel="DIP-ii penalty",
        title=f"lambda_od {lambda_od:g}, lambda_d {lambda_d:g}",
    )
    ax.legend(frameon=False, fontsize=8)
    return fig


def _fig_vq_vae(plt):
    import torch

    from aekit.variants.vqvae import nearest

    g = torch.Generator().manual_seed(3)
    codebook = torch.rand(12, 2, generator=g) * 4 - 2
    x, y = torch.meshgrid(torch.linspace(-2.5, 2.5, 300), torch.linspace(-2.5, 2.5, 300), indexing="xy")
    cells = nearest(torch.stack([x.reshape(-1), y.reshape(-1)], 1), codebook).reshape(x.shape)
    z = torch.rand(40, 2, generator=g) * 4.4 - 2.2
    q = codebook[nearest(z, codebook)]
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(cells.numpy(), extent=(-2.5, 2.5, -2.5, 2.5), origin="lower", cmap="tab20", alpha=0.35)
    for a, b in zip(z, q):
        ax.annotate("", xy=b.tolist(), xytext=a.tolist(), arrowprops={"arrowstyle": "->", "lw": 0.6, "color": "0.3"})
    ax.scatter(z[:, 0], z[:, 1], s=8, color="0.3", label="encoder outputs z_e(x)")
    ax.scatter(codebook[:, 0], codebook[:, 1], s=50, marker="*", color="k", label="codebook vectors e_j")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=2)
    ax.set(xticks=[], yticks=[])
    return fig


def _fig_compressive(plt):
    import torch

    from aekit.variants.compressive import logistic_bits

    y = torch.linspace(-6, 6, 601)
    k = torch.arange(-6, 7, dtype=torch.float32)
    fig, ax = plt.subplots(figsize=(4.6, 3))
    for scale in (0.5, 1.0, 2.0):
        log_scale = torch.tensor(scale).log()
        (line,) = ax.plot(y, logistic_bits(y, torch.tensor(0.0), log_scale), lw=1, label=f"scale s = {scale:g}")
        ax.scatter(k, logistic_bits(k, torch.tensor(0.0), log_scale), s=10, color=line.get_color())
    ax.set(xlabel="code value (dots: the integers a code holds)", ylabel="bits", ylim=(0, 16))
    ax.legend(frameon=False, fontsize=8)
    return fig


#: variant -> (drawing function, caption)
FIGURES = {
    "sparse": (_fig_sparse, "The KL sparsity penalty of one code unit (beta = 3) against its mean activation."),
    "ksparse": (_fig_ksparse, "The k of each optimizer step, from scheduled_k: lowered linearly from k_start to k."),
    "capacity-vae": (_fig_capacity, "The capacity target C and the KL warm-up factor over training."),
    "denoising": (_fig_denoising, "A digit and its three corruptions at the default nu = 0.25, sigma = 0.3."),
    "hashing": (_fig_hashing, "The straight-through code: binary forward, the logistic's gradient backward."),
    "ae": (
        _fig_ae,
        "The two reconstruction losses of one pixel of target x (aekit.losses): cross-entropy, the default on "
        "data in [0, 1], penalises a confident wrong pixel far more than squared error does.",
    ),
    "linear": (
        _fig_linear,
        "A 1-d linear autoencoder trained on 400 correlated 2-d points (lr 0.01, stopped on the validation "
        "loss): its decoder spans the first principal component.",
    ),
    "deep": (
        _fig_deep,
        "The weights of a 24-unit first-layer RBM trained on digits by train_rbm (CD-1, 20 epochs, H&S's "
        "other defaults): the features pretraining starts the deep autoencoder from.",
    ),
    "contractive": (
        _fig_contractive,
        "The closed-form penalty of one sigmoid code unit: largest where the unit is most sensitive to its "
        "input, near 0 where it saturates.",
    ),
    "vae": (_fig_vae, "The KL of one code dimension's posterior N(mu, sigma^2) from the prior N(0, 1), in nats."),
    "beta-vae": (
        _fig_beta_vae,
        "The KL of each code dimension after 40 epochs on digits (10-d code, one hidden layer of 128): a "
        "larger beta closes dimensions.",
    ),
    "beta-tcvae": (
        _fig_tcvae,
        "The three terms of the KL split (kl_decomposition, minibatch-stratified, 512 rows) of a 2-d code "
        "whose posterior means are correlated: the total correlation grows with the correlation.",
    ),
    "factor-vae": (
        _fig_factor_vae,
        "What the discriminator tells apart: codes with correlated dimensions, and the same codes with each "
        "dimension shuffled across rows by permute_dims.",
    ),
    "dip-vae-i": (
        _fig_dip_i,
        "The DIP-i penalty of two posterior means at the variant's default weights: zero only for "
        "uncorrelated means of unit variance.",
    ),
    "dip-vae-ii": (
        _fig_dip_ii,
        "The DIP-ii penalty of uncorrelated means at the variant's default weights: the posterior variance "
        "counts too, so its minimum is at Var[mu_j] + sigma_j^2 = 1.",
    ),
    "compressive": (
        _fig_compressive,
        "The code length of one value under the learned logistic of its channel (location 0, logistic_bits): "
        "a value far from the location costs more bits, the more so the narrower the density.",
    ),
    "vq-vae": (
        _fig_vq_vae,
        "Quantisation by nearest: each encoder output is replaced by its nearest codebook vector; the cells "
        "are the regions each vector takes.",
    ),
}


def _draw(fn) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "aekit", "font.size": 9}):
        fig = fn(plt)
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
    return buf.getvalue()


# -- the command-line reference ---------------------------------------------------------------------
class _columns:
    def __enter__(self):
        self.old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = HELP_COLUMNS

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = self.old


def _subparsers(parser) -> dict:
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cli() -> str:
    from aekit.cli import build_parser

    with _columns():
        parser = build_parser()
        out = [
            "# CLI reference\n",
            "Generated from `aekit.cli.build_parser()` at build time: the help of every command and "
            "sub-command, as `aekit COMMAND --help` prints it.\n",
            "```text\n" + parser.format_help() + "```\n",
        ]
        for name, sub in _subparsers(parser).items():
            out.append(f"## `aekit {name}`\n\n```text\n{sub.format_help()}```\n")
            nested = _subparsers(sub)
            if name == "train":
                out.append(
                    "Every variant is a sub-command of `aekit train` with the shared model, data and training "
                    "options and its own. The shared ones, as `aekit train ae --help` lists them:\n\n"
                    f"```text\n{nested['ae'].format_help()}```\n\n"
                    "Each variant's page has its own `--help`: "
                    + ", ".join(f"[`{v}`](variants/{v}.md)" for v in nested)
                    + ".\n"
                )
                continue
            for method, msub in nested.items():
                out.append(f"### `aekit {name} {method}`\n\n```text\n{msub.format_help()}```\n")
    return "\n".join(out)


# -- the benchmark results ---------------------------------------------------------------------------
def _benchmarks() -> tuple[str, list[str]]:
    text = RESULTS.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    text = re.sub(r"<!-- [\w-]+:(start|end) -->\n", "", text)
    text = re.sub(r"^# aekit benchmark results\n", "", text)
    head = (
        "# Benchmark results\n\n"
        "This page is `benchmarks/RESULTS.md`, included at build time: `make bench` rewrites that file "
        "(`make bench-quick` writes the reduced runs to `benchmarks/RESULTS-quick.md` instead), so the "
        "numbers here are always the recorded ones. How to run each benchmark is on "
        "[the benchmarks' own page](benchmarking.md).\n"
    )
    return head + text, images


# -- mathematics, rendered at build time -------------------------------------------------------------
_MATH = re.compile(
    r'<(span|div) class="arithmatex">\s*\\[(\[]\s*(.*?)\s*\\[)\]]\s*</\1>',
    re.S,
)
#: TeX that mathtext spells differently (or not at all): rewritten before parsing
_TEX = [
    (r"\\[lr]Vert(?![A-Za-z])", r"\\Vert"),
    (r"\\[lr]vert(?![A-Za-z])", "|"),
    (r"\\le(?![A-Za-z])", r"\\leq"),
    (r"\\ge(?![A-Za-z])", r"\\geq"),
    (r"\\(textstyle|displaystyle)(?![A-Za-z])", ""),
    (r"\\(tfrac|dfrac)(?![A-Za-z])", r"\\frac"),
    (r"\\mid(?![A-Za-z])", "|"),
    (r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])", r"\\frac{\1}{\2}"),  # TeX's \frac12
]


def _cache_dir() -> Path:
    """Where rendered formulas are kept between builds (a formula takes about 40 ms to render); the key
    holds the formula, the rewriting rules and matplotlib's version, so a stale entry is never used."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aekit-docs-math"


@functools.cache
def _math_img(tex: str, display: bool) -> str:
    import matplotlib

    key = hashlib.sha256(repr((tex, display, _TEX, matplotlib.__version__, MATH_STYLE)).encode()).hexdigest()
    cached = _cache_dir() / f"{key}.html"
    try:
        return cached.read_text()
    except OSError:
        pass
    img = _render_tex(tex, display)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(img)
        os.replace(tmp, cached)
    except OSError:  # a read-only home: render every time
        pass
    return img


#: bump to invalidate the cache when the rendering below changes
MATH_STYLE = 1


def _render_tex(tex: str, display: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager, mathtext

    src = tex
    for pattern, repl in _TEX:
        src = re.sub(pattern, repl, src)
    with matplotlib.rc_context({"mathtext.fontset": "cm", "svg.fonttype": "path", "svg.hashsalt": "aekit"}):
        size = 10.0
        prop = font_manager.FontProperties(size=size)
        try:
            _, height, depth, _, _ = mathtext.MathTextParser("path").parse(f"${src}$", dpi=72, prop=prop)
            buf = io.BytesIO()
            mathtext.math_to_image(f"${src}$", buf, prop=prop, format="svg")
        except ValueError as e:
            raise PluginError(f"mathtext cannot render the formula {tex!r}: {str(e).splitlines()[0]}") from e
    svg = re.sub(rb"<metadata>.*?</metadata>", b"", buf.getvalue(), flags=re.S)
    data = base64.b64encode(svg).decode()
    scale = 1.15 if display else 1.0
    style = f"height:{height * scale / size:.3f}em;vertical-align:{-depth * scale / size:.3f}em"
    alt = html.escape(tex, quote=True)
    img = f'<img class="math" alt="{alt}" title="{alt}" style="{style}" src="data:image/svg+xml;base64,{data}">'
    return f'<div class="math-display">{img}</div>' if display else img


def _render_math(content: str) -> str:
    def repl(m: re.Match) -> str:
        return _math_img(html.unescape(m.group(2)), m.group(1) == "div")

    return _docstring_markup(_MATH.sub(repl, content))


#: what mkdocstrings leaves of the Sphinx markup in the docstrings: ``:func:`name``` and ``:math:`tex```
#: roles (a role, then the code span), and ``.. math::`` paragraphs
_ROLE = re.compile(r":(?:py:)?(func|class|meth|data|mod|attr|exc|obj|const|math):<code>(.*?)</code>", re.S)
_MATH_DIRECTIVE = re.compile(r"<p>\.\. math::\s*(.*?)</p>", re.S)


def _lenient_math(tex: str, display: bool) -> str:
    """A docstring's formula as an image, or as code where mathtext cannot parse it (the docstrings are
    written for Sphinx; a formula of the hand-written pages that fails fails the build instead)."""
    try:
        return _math_img(tex, display)
    except PluginError:
        code = f"<code>{html.escape(tex)}</code>"
        return f"<pre>{code}</pre>" if display else code


def _docstring_markup(content: str) -> str:
    def role(m: re.Match) -> str:
        kind, text = m.group(1), m.group(2)
        if kind == "math":
            return _lenient_math(html.unescape(text), False)
        if text.startswith("~"):  # Sphinx's ~: show the last component only
            text = text[1:].rsplit(".", 1)[-1]
        return f"<code>{text}</code>"

    content = _MATH_DIRECTIVE.sub(lambda m: _lenient_math(html.unescape(m.group(1)).strip(), True), content)
    return _ROLE.sub(role, content)


# -- MkDocs events -----------------------------------------------------------------------------------
def on_config(config):
    """Fill the nav's ``Variants`` section (an entry whose value is ``variants/index.md``) from the registry."""
    pages = [{"Overview": "variants/index.md"}] + [{s.name: f"variants/{s.name}.md"} for s in _specs()]
    for entry in config["nav"] or ():
        if isinstance(entry, dict):
            for key, value in entry.items():
                if value == "variants/index.md":
                    entry[key] = pages
    return config


def on_files(files, config):
    specs = _specs()
    for spec in specs:  # a hand-written variants/<name>.md is the intro of the generated page
        existing = files.get_file_from_path(f"variants/{spec.name}.md")
        if existing is not None:
            files.remove(existing)
    names = {s.name for s in specs}
    for path in sorted((DOCS / "variants").glob("*.md")):
        if path.stem not in names:  # e.g. a variant not registered in this installation: its intro stays out
            stale = files.get_file_from_path(f"variants/{path.name}")
            if stale is not None:
                files.remove(stale)
            log.info("docs/variants/%s is the intro of no registered variant: left out", path.name)
    files.append(File.generated(config, "variants/index.md", content=_variants_index(specs)))
    for spec in specs:
        files.append(File.generated(config, f"variants/{spec.name}.md", content=_variant_page(spec)))
        if spec.name in FIGURES:
            files.append(
                File.generated(config, f"variants/figures/{spec.name}.svg", content=_draw(FIGURES[spec.name][0]))
            )
    files.append(File.generated(config, "cli.md", content=_cli()))
    text, images = _benchmarks()
    files.append(File.generated(config, "benchmarks.md", content=text))
    for image in images:
        files.append(File.generated(config, image, content=(RESULTS.parent / image).read_bytes()))
    return files


def on_page_content(html_text, page, config, files):
    try:
        return _render_math(html_text)
    except PluginError as e:
        raise PluginError(f"{page.file.src_uri}: {e}") from None
