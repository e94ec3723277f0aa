import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aekit import Autoencoder, ConfigError, ModelConfig, variants
from aekit.losses import bernoulli_cross_entropy, squared_error
from aekit.nn import ConvDecoder, ConvEncoder, MLP


def test_mlp_layers_and_activations():
    m = MLP([10, 7, 3], activation="tanh", last_activation="sigmoid")
    assert [l.out_features for l in m.linears] == [7, 3]
    y = m(torch.randn(5, 10))
    assert y.shape == (5, 3) and (y > 0).all() and (y < 1).all()


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 7, 9), (2, 5, 5)])
def test_conv_pair_restores_any_image_size(shape):
    enc = ConvEncoder(shape, [4, 8], latent=6)
    dec = ConvDecoder(shape, [4, 8], latent=6)
    x = torch.randn(3, *shape)
    z = enc(x)
    assert z.shape == (3, 6)
    assert dec(z).shape == x.shape


def test_squared_error_is_per_example_sum_mean_over_batch():
    a, b = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    per = ((a - b) ** 2).reshape(4, -1).sum(1)
    assert torch.allclose(squared_error(a, b, "none"), per)
    assert torch.allclose(squared_error(a, b), per.mean())


def test_bernoulli_cross_entropy_matches_formula_and_is_stable():
    logits, x = torch.randn(5, 7), torch.rand(5, 7)
    p = torch.sigmoid(logits)
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)
    assert torch.allclose(bernoulli_cross_entropy(logits, x, "none"), manual, atol=1e-5)
    big = torch.tensor([[200.0, -200.0]])
    value = bernoulli_cross_entropy(big, torch.tensor([[0.0, 1.0]]))
    assert math.isfinite(value.item()) and value.item() == pytest.approx(400.0)


def _config(variant, arch, **kw):
    """A small model of ``variant``; the variant's registered defaults (e.g. the linear
    variant's linear units and squared error) win over the test's choices, except a loss left to
    be chosen from the data (``auto``: there are no data here)."""
    base = dict(input_dim=64, hidden=(32,), latent=4, **kw)
    if arch == "conv":
        base.update(image_shape=(1, 8, 8), architecture="conv", hidden=(8, 16))
    defaults = {k: v for k, v in variants.get(variant).defaults.items() if (k, v) != ("loss", "auto")}
    return ModelConfig(variant=variant, **{**base, **defaults})


REGISTRY_CASES = [(spec.name, arch) for spec in variants.specs() for arch in spec.cls.architectures]


@pytest.mark.parametrize("variant, arch", REGISTRY_CASES)
def test_every_variant_forward_backward_and_learns(variant, arch, digits01):
    torch.manual_seed(0)
    model = Autoencoder(_config(variant, arch, loss="bce"))
    x = torch.from_numpy(digits01[:256])
    out = model(x)
    assert out.reconstruction.shape == x.shape and out.code.shape == (256, 4)
    assert "recon" in out.losses and all(v.dim() == 0 for v in out.losses.values())
    assert torch.allclose(out.loss, sum(out.losses.values()))
    out.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss = model(x).loss
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert math.isfinite(loss.item()) and loss.item() < 0.8 * first


def test_reconstruction_loss_is_against_the_clean_input_and_uses_sigmoid_for_bce(digits01):
    model = Autoencoder(_config("ae", "mlp", loss="bce"))
    x = torch.from_numpy(digits01[:8])
    out = model(x)
    assert torch.allclose(out.reconstruction, torch.sigmoid(out.logits))
    expected = F.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / 8
    assert torch.allclose(out.losses["recon"], expected, rtol=1e-5)


def test_encode_and_numpy_helpers(digits01):
    model = Autoencoder(_config("ae", "mlp")).eval()
    codes = model.encode_array(digits01[:10])
    assert codes.shape == (10, 4) and codes.dtype == np.float32
    assert model.reconstruct_array(digits01[:10]).shape == (10, 64)
    with pytest.raises(Exception, match="expected rows of 64 features"):
        model.encode_array(np.zeros((3, 5)))


@pytest.mark.parametrize("kw, match", [
    ({"variant": "nope"}, "unknown variant"),
    ({"latent": 0}, "positive"),
    ({"hidden": (1 << 22,)}, "absurdly large"),
    ({"architecture": "conv"}, "needs image data"),
    ({"activation": "wat"}, "unknown activation"),
])
def test_bad_model_configs_are_refused_before_allocation(kw, match):
    cfg = dict(input_dim=64, hidden=(16,), latent=4)
    cfg.update(kw)
    with pytest.raises(ConfigError, match=match):
        Autoencoder(ModelConfig(**cfg))


def test_tied_decoder_uses_the_transposed_encoder_weights(digits01):
    model = Autoencoder(ModelConfig(input_dim=64, hidden=(32,), latent=6, tied=True))
    enc = model.encoder.linears
    dec = [m for m in model.decoder if hasattr(m, "source")]
    assert [d.source[0] for d in dec] == list(reversed(enc))
    n_untied = sum(p.numel() for p in Autoencoder(ModelConfig(input_dim=64, hidden=(32,), latent=6)).parameters())
    assert sum(p.numel() for p in model.parameters()) == n_untied - 2 * (64 * 32 + 32 * 6) + (64 * 32 + 32 * 6)
    assert not [k for k in model.state_dict() if k.startswith("decoder") and k.endswith("weight")]
    x = torch.from_numpy(digits01[:4])
    h = torch.relu(enc[0](x))
    z = enc[1](h)
    expected = torch.relu(z @ enc[1].weight + dec[0].bias) @ enc[0].weight + dec[1].bias
    assert torch.allclose(model(x).reconstruction, expected, atol=1e-6)
    with pytest.raises(ConfigError, match="mlp architecture only"):
        Autoencoder(ModelConfig(input_dim=64, image_shape=(1, 8, 8), architecture="conv", hidden=(4,), tied=True))


def test_a_variant_refuses_architectures_it_is_not_defined_for():
    for spec in variants.specs():
        for arch in {"mlp", "conv"} - set(spec.cls.architectures):
            with pytest.raises(ConfigError):
                Autoencoder(ModelConfig(variant=spec.name, input_dim=64, image_shape=(1, 8, 8), architecture=arch,
                                        hidden=(8,), latent=4))
