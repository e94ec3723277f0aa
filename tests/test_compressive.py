"""The compressive autoencoder (Ballé et al. 2017; Theis et al. 2017): integer codes, their code
length under the learned logistic density, the training quantizations, the rate weight's trade, exact
storage by aekit compress, spatial codes and exact resume."""

import math

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, ConfigError, ModelConfig, TrainConfig, Trainer
from aekit import compress as C
from aekit.train import Interrupted
from aekit.variants.compressive import Compressive, logistic_bits
from helpers import InterruptAt, run_cli


def _model(arch="mlp", seed=0, **options):
    torch.manual_seed(seed)
    base = {"input_dim": 64, "hidden": (16,), "latent": 6}
    if arch == "conv":  # 8x8 -> 4x4 -> 2x2: 4 positions of 3 channels
        base.update(image_shape=(1, 8, 8), architecture="conv", hidden=(4, 8), latent=12)
    model = Autoencoder(ModelConfig(variant="compressive", loss="mse", options=options, **base))
    assert isinstance(model.variant, Compressive)
    return model


def _logistic_cdf(t):
    return 1.0 / (1.0 + np.exp(-t))


def test_code_length_is_minus_log2_of_the_logistic_mass_of_the_unit_interval():
    y = torch.tensor([-40.0, -7.0, -2.0, -0.5, 0.0, 0.3, 1.0, 3.0, 9.0], dtype=torch.float64)
    loc, log_scale = torch.tensor(0.4, dtype=torch.float64), torch.tensor(math.log(1.7), dtype=torch.float64)
    got = logistic_bits(y, loc, log_scale).numpy()
    yy, m, s = y.numpy(), 0.4, 1.7
    # the mass computed in float64 on the tail where it is small (the exact value, far from rounding)
    upper, lower = (yy + 0.5 - m) / s, (yy - 0.5 - m) / s
    p = np.where(yy > m, _logistic_cdf(-lower) - _logistic_cdf(-upper), _logistic_cdf(upper) - _logistic_cdf(lower))
    want = -np.log2(np.maximum(p, 2.0**-30))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got[0] == pytest.approx(30.0)  # far out: the floor of the probability, 30 bits
    # over the integers the masses sum to one (a coder's model): -30 .. 30 leave out the two tails beyond
    # +-30.5, each at most F(-30.1 / 1.7) < 2.1e-8, and none of them is floored
    k = torch.arange(-30, 31, dtype=torch.float64)
    assert float((2.0 ** -logistic_bits(k, loc, log_scale)).sum()) == pytest.approx(1.0, abs=5e-8)


def test_codes_are_integers_outside_training_and_bits_is_their_code_length():
    model = _model().eval()
    x = torch.rand(10, 64) * 3
    h = model.encoder(x)
    z = model.encode(x)
    assert torch.equal(z, torch.round(h)) and torch.equal(z, torch.round(z))
    out = model(x)
    v = model.variant
    want = logistic_bits(torch.round(h), v.loc, v.log_scale).sum(1).mean()
    assert torch.allclose(out.metrics["bits"], want, rtol=1e-6, atol=0)
    assert torch.allclose(out.losses["rate"], v.options.rate_weight * want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("quantization", ["mixed", "noise", "ste"])
def test_training_quantizations_feed_the_decoder_and_the_rate_as_documented(quantization):
    model = _model(quantization=quantization).train()
    v = model.variant
    h = (torch.randn(32, 6) * 3).requires_grad_(True)
    torch.manual_seed(5)
    z, terms = v.bottleneck(h)
    torch.manual_seed(5)
    noisy = h.detach() + (torch.rand_like(h) - 0.5)
    if quantization == "noise":
        assert torch.equal(z.detach(), noisy)
    else:
        assert torch.equal(z.detach(), torch.round(h.detach()))
    rated = torch.round(h.detach()) if quantization == "ste" else noisy
    want = logistic_bits(rated, v.loc, v.log_scale).sum(1).mean() * v.options.rate_weight
    assert torch.allclose(terms["rate"], want, rtol=1e-6, atol=0)
    (g,) = torch.autograd.grad(z.sum(), h)
    assert torch.equal(g, torch.ones_like(h))  # rounding passes the gradient straight through


def test_a_larger_rate_weight_gives_a_shorter_code_and_a_larger_error(digits01):
    x = torch.from_numpy(digits01)
    train, val = x[:1400], x[1400:]
    runs = {}
    for weight in (0.01, 0.5):
        model = _model(rate_weight=weight, seed=0)
        hist = Trainer(model, TrainConfig(epochs=25, batch_size=64, lr=3e-3, patience=None)).fit(train, val)
        runs[weight] = hist[-1]
    lo, hi = runs[0.01], runs[0.5]
    assert hi["val_bits"] < 0.5 * lo["val_bits"]  # measured 4.9 against 15.1 bits
    assert hi["val_recon"] > 1.1 * lo["val_recon"]  # measured 3.43 against 2.57


def test_integer_quantizer_stores_integer_codes_exactly():
    rng = np.random.default_rng(0)
    codes = np.round(rng.normal(0, 3, size=(500, 4))).astype(np.float64)
    codes[:, 3] = 2.0  # a constant dimension
    q = C.Quantizer.integers(codes)
    span = int((codes.max(0) - codes.min(0)).max()) + 1
    assert q.bits == math.ceil(math.log2(span)) + 1 and np.all(q.step == 1.0)
    np.testing.assert_array_equal(q.dequantize(q.quantize(codes)), codes)
    beyond = np.stack([codes.min(0) - span // 2, codes.max(0) + span // 2])  # half a span out, each side
    np.testing.assert_array_equal(q.dequantize(q.quantize(beyond)), beyond)
    assert C.Quantizer.integers(np.zeros((3, 2))).bits == 2


def test_aekit_compress_stores_a_compressive_runs_codes_exactly(tmp_path, capsys):
    run = tmp_path / "run"
    aekit.fit("compressive", "digits", hidden=(32,), latent=8, epochs=3, loss="mse", out=run, progress=False,
              figures=False)
    codes = tmp_path / "codes.npz"
    assert run_cli(["compress", str(run), "digits", "-o", str(codes)]) == 0
    assert "integer codes stored exactly" in capsys.readouterr().out
    model = aekit.load(run)
    packed = C.load_codes(codes)
    x = aekit.load_data("digits").x
    np.testing.assert_array_equal(packed.quantizer.dequantize(packed.symbols), model.encode_array(x))
    assert packed.entropy is not None and packed.meta["ranges"] == "integers"


def test_spatial_codes_share_a_density_per_channel_and_bad_shapes_are_refused():
    model = _model("conv", code_dim=3)
    v = model.variant
    assert (v.channels, v.positions) == (3, 4) and v.loc.shape == (3,)
    x = torch.rand(5, 64)
    assert model.encode(x).shape == (5, 12) and model(x).reconstruction.shape[0] == 5
    with pytest.raises(ConfigError, match="pass --latent 8"):
        _model("conv", code_dim=2)
    with pytest.raises(ConfigError, match="rate_weight"):
        _model(rate_weight=-1.0)


def test_an_interrupted_run_resumes_bit_identical(tmp_path, digits01):
    """The training noise comes from torch's global generator, which the trainer checkpoints."""
    x = torch.from_numpy(digits01)
    train, val = x[:640], x[640:800]
    cfg = {"epochs": 3, "batch_size": 64, "checkpoint_every": 4}
    straight = _model(quantization="noise")
    hist_a = Trainer(straight, TrainConfig(**cfg), run_dir=tmp_path / "a").fit(train, val)
    first = _model(quantization="noise")
    with pytest.raises(Interrupted):
        Trainer(first, TrainConfig(**cfg), run_dir=tmp_path / "b", callbacks=[InterruptAt(13)]).fit(train, val)
    resumed = _model(seed=123, quantization="noise")
    hist_b = Trainer(resumed, TrainConfig(**cfg), run_dir=tmp_path / "b").fit(train, val, resume=True)
    sa, sb = straight.state_dict(), resumed.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    drop = ("seconds", "samples_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in hist_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in hist_b
    ]
