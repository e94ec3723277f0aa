"""The linear autoencoder learns the PCA subspace; the contractive penalty is the exact
Frobenius norm of the encoder's Jacobian and makes the encoder contract."""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

import aekit
from aekit import Autoencoder, ConfigError, ModelConfig, TrainConfig, Trainer
from aekit.cli import build_parser
from aekit.losses import contractive_sigmoid_penalty, jacobian_frobenius_sq
from aekit.variants.linear import affine_maps


def _pca(x, k):
    pca = PCA(k).fit(x)
    error = ((pca.inverse_transform(pca.transform(x)) - x) ** 2).sum(1).mean()
    return pca.components_.T, error


_F32_EPS = torch.finfo(torch.float32).eps  # 2^-23, the spacing of float32 numbers in [1, 2)
_F32_U = _F32_EPS / 2  # the unit roundoff: |fl(a op b) - a op b| <= u |a op b|


def _max_angle_deg(a, b):
    return math.degrees(subspace_angles(np.asarray(a, np.float64), np.asarray(b, np.float64)).max())


# -- linear ------------------------------------------------------------------------------------
def test_linear_autoencoder_spans_the_pca_subspace(digits01):
    k = 5
    model = aekit.fit("linear", digits01, latent=k, epochs=1500, patience=None, batch_size=len(digits01), lr=0.05,
                      val_fraction=0.0, test_fraction=0.0, scale="none", progress=False)
    cfg = model.config
    assert (cfg.hidden, cfg.activation, cfg.code_activation, cfg.loss) == ((), "linear", "linear", "mse")
    assert [type(m).__name__ for m in (*model.encoder, *model.decoder)] == ["Linear", "Linear"]
    components, pca_error = _pca(digits01, k)
    _, _, V, c = affine_maps(model)
    weight = model.decoder.linears[0].weight.detach().double()
    # affine_maps reads V off in float32 as decode(I) - decode(0) = fl(fl(w + c) - c) (the products
    # with 1 and 0 are exact): the sum rounds once, |error| <= u |w + c|, the difference once more,
    # <= u |w|, so |V - w| <= 2u (|w| + |c|) = eps (|w| + |c|) to first order (u = 2^-24, the unit
    # roundoff; eps = 2^-23). Where |w| << |c| (the weights of pixels that are always 0) that is a
    # large relative error, so no fixed rtol holds on every machine: measured up to 1.8e-4 with
    # two threads, where the bound held at 0.53 of itself.
    assert ((V - weight).abs() <= _F32_EPS * (weight.abs() + c.abs()[:, None])).all()
    assert _max_angle_deg(V, components) < 1.0
    error = ((model.reconstruct_array(digits01) - digits01) ** 2).sum(1).mean()
    assert error <= 1.01 * pca_error


def test_deep_linear_autoencoder_spans_the_pca_subspace(digits01):
    k = 4
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(variant="linear", input_dim=64, hidden=(16,), latent=k,
                                    activation="linear"))
    x = torch.from_numpy(digits01)
    Trainer(model, TrainConfig(epochs=1000, patience=None, batch_size=len(x), lr=0.05)).fit(x)
    first, second = model.decoder.linears
    product = (second.weight @ first.weight).detach()
    W, b, V, c = affine_maps(model.eval())
    # Worst-case float32 error bounds (u = 2^-24; a sum of n products errs by <= n u |terms|, Higham's
    # gamma_n to first order) from the magnitudes: decode(e_j) = W2 fl(W1_j + b1) + b2 and decode(0)
    # = W2 b1 + b2 err by <= (n + 2) u M and (n + 1) u M with M = |W2| (|W1| + |b1|) + |b2| and n = 16
    # hidden units, their difference by u |V| <= u M, the float32 product by n u |W2| |W1| <= n u M:
    # |V - product| <= (3n + 4) u M. Measured at most 0.034 of it.
    w1, b1, w2, b2 = (t.detach().double() for t in (first.weight, first.bias, second.weight, second.bias))
    M = w2.abs() @ (w1.abs() + b1.abs()[:, None]) + b2.abs()[:, None]
    n = len(b1)
    assert ((V - product.double()).abs() <= (3 * n + 4) * _F32_U * M).all()
    # encode(x) = A2 fl(A1 x + a1) + a2 in float32 errs by <= (d + n + 2) u E(x), E(x) = |A2|
    # (|A1| |x| + |a1|) + |a2|, d = 64 inputs; b = encode(0) by <= (n + 1) u E(0); each column W_i =
    # encode(e_i) - b by <= (d + n + 2 + n + 1 + 1) u E(e_i) = (d + 2n + 4) u E(e_i), which x @ W.T
    # sums with weights |x_i| (its float64 rounding is negligible). Measured at most 0.0052 of the
    # bound (about 4e-7).
    A1, A2 = (lin.weight.detach().double() for lin in model.encoder.linears)
    a1, a2 = (lin.bias.detach().double() for lin in model.encoder.linears)
    d, ax = x.shape[1], x.double().abs()
    gain, offset = A2.abs() @ A1.abs(), A2.abs() @ a1.abs() + a2.abs()   # E(x) = gain |x| + offset
    bound = _F32_U * ((d + n + 2) * (ax @ gain.T + offset) + (n + 1) * offset
                      + (d + 2 * n + 4) * (ax @ gain.T + ax.sum(1, keepdim=True) * offset))
    assert ((model.encode(x).double() - (x.double() @ W.T + b)).abs() <= bound).all()
    components, pca_error = _pca(digits01, k)
    assert _max_angle_deg(product, components) < 1.0
    error = ((model.reconstruct_array(digits01) - digits01) ** 2).sum(1).mean()
    assert error <= 1.01 * pca_error


@pytest.mark.parametrize("kw, bad", [
    ({"hidden": (8,), "activation": "relu"}, "activation='relu'"),
    ({"code_activation": "sigmoid"}, "code_activation='sigmoid'"),
    ({"output_activation": "sigmoid"}, "output_activation='sigmoid'"),
    ({"loss": "bce"}, "loss='bce'"),
    ({"architecture": "conv", "image_shape": (1, 8, 8), "hidden": (4,)}, "architecture='conv'"),
])
def test_linear_variant_refuses_nonlinear_settings(kw, bad):
    cfg = dict(variant="linear", input_dim=64, hidden=(), latent=3, activation="linear")
    cfg.update(kw)
    with pytest.raises(ConfigError, match=f"linear variant.*{bad}"):
        Autoencoder(ModelConfig(**cfg))


# -- contractive -------------------------------------------------------------------------------
def _brute_force_penalty(encoder, x):
    """Mean over examples of the summed squared entries of autograd's Jacobian of each row."""
    total = 0
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: encoder(v.unsqueeze(0)).squeeze(0), xi,
                                                 create_graph=True)
        total = total + jac.pow(2).sum()
    return total / len(x)


ENCODERS = {
    "sigmoid layer (closed form)": dict(input_dim=64, hidden=(), latent=6, code_activation="sigmoid"),
    "tanh/relu MLP": dict(input_dim=64, hidden=(16, 8), latent=5, activation="tanh", code_activation="relu"),
    "conv": dict(input_dim=64, image_shape=(1, 8, 8), architecture="conv", hidden=(3, 4), latent=3,
                 activation="tanh"),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_contractive_penalty_is_the_exact_jacobian_norm_and_trains_the_encoder(name, digits01):
    torch.manual_seed(0)
    lam = 0.3
    model = Autoencoder(ModelConfig(variant="contractive", options={"lam": lam}, **ENCODERS[name])).double()
    assert model.variant.closed_form == (name == "sigmoid layer (closed form)")
    x = torch.from_numpy(digits01[:6]).double()
    out = model(x)
    expected = _brute_force_penalty(model.encoder, model._to_encoder(x))
    assert out.losses["contractive"].item() == pytest.approx(lam * expected.item(), rel=1e-5)
    norms = torch.stack([_brute_force_penalty(model.encoder, model._to_encoder(x[i:i + 1])) for i in range(6)])
    assert out.metrics["jacobian_norm"].item() == pytest.approx(norms.sqrt().mean().item(), rel=1e-5)
    params = list(model.encoder.parameters())
    # biases of a last linear layer do not enter the Jacobian: their gradient is absent or zero
    grads = torch.autograd.grad(out.losses["contractive"], params, allow_unused=True, materialize_grads=True)
    reference = torch.autograd.grad(lam * expected, params, allow_unused=True, materialize_grads=True)
    for g, r in zip(grads, reference):
        assert torch.isfinite(g).all()
        assert torch.allclose(g, r, rtol=1e-5, atol=1e-10)
    weights = [g for g, p in zip(grads, params) if p.dim() > 1]
    assert all(g.abs().sum() > 0 for g in weights)


def test_penalty_functions_agree_on_a_sigmoid_layer():
    torch.manual_seed(0)
    layer = torch.nn.Linear(7, 4)
    encoder = torch.nn.Sequential(layer, torch.nn.Sigmoid())
    x = torch.randn(5, 7)
    closed = contractive_sigmoid_penalty(encoder(x), layer.weight, reduction="none")
    exact = jacobian_frobenius_sq(encoder, x, reduction="none")
    assert closed.shape == (5,) and torch.allclose(closed, exact, rtol=1e-5)
    assert torch.allclose(jacobian_frobenius_sq(encoder, x), exact.mean())


@pytest.mark.parametrize("hidden, code_activation", [((), "sigmoid"), ((32,), "tanh")])
def test_contractive_training_shrinks_the_jacobian_compared_with_a_plain_autoencoder(
        digits01, hidden, code_activation):
    settings = dict(hidden=hidden, latent=8, activation="tanh", code_activation=code_activation, epochs=4, loss="mse",
                    batch_size=64, lr=3e-3, seed=0, progress=False)
    plain = aekit.fit("ae", digits01, **settings)
    contractive = aekit.fit("contractive", digits01, lam=1.0, **settings)
    x = torch.from_numpy(digits01[:500])

    def mean_norm(model):
        return jacobian_frobenius_sq(model.encoder, x, reduction="none").sqrt().mean().item()

    assert mean_norm(contractive) < 0.8 * mean_norm(plain)
    last = contractive.history[-1]
    assert {"train_contractive", "train_jacobian_norm", "val_jacobian_norm"} <= set(last)
    assert last["val_jacobian_norm"] > 0


def test_contractive_lam_is_a_cli_flag_and_is_validated(capsys):
    args = build_parser().parse_args(["train", "contractive", "--lam", "0.5"])
    assert float(getattr(args, "opt.lam")) == 0.5
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "contractive", "--help"])
    assert "--lam" in capsys.readouterr().out
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="lam must be a finite number >= 0"):
            Autoencoder(ModelConfig(variant="contractive", input_dim=64, options={"lam": bad}))
