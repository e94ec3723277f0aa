"""The disentangling members of the VAE family: beta-TCVAE's KL split and its estimators, FactorVAE's
discriminator (an auxiliary model with its own optimizer, checkpointed for an exact resume), DIP-VAE's
covariance penalty, and the dSprites networks of the literature."""

import math

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, ModelConfig, TrainConfig, Trainer
from aekit.model import parameter_count
from aekit.nn import ConvDecoder, ConvEncoder
from aekit.train import CHECKPOINT, Interrupted, read_checkpoint
from aekit.variants.dipvae import dip_penalty
from aekit.variants.factorvae import permute_dims
from aekit.variants.tcvae import (
    compiled_kl_decomposition,
    kl_decomposition,
    log_stratified_weights,
    pairwise_log_density,
)
from helpers import InterruptAt

EPS32 = float(np.finfo(np.float32).eps)


def _correlated(n, rho, generator, dtype=torch.float64):
    """``n`` draws of the 2-d Gaussian with unit variances and correlation ``rho``."""
    chol = torch.linalg.cholesky(torch.tensor([[1.0, rho], [rho, 1.0]], dtype=dtype))
    return torch.randn(n, 2, generator=generator, dtype=dtype) @ chol.T


# -- beta-TCVAE -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_the_three_terms_sum_to_the_estimated_kl_up_to_float32_rounding(estimator):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 5, generator=g) * 2
    logvar = torch.randn(64, 5, generator=g) - 1
    z = mu + torch.exp(0.5 * logvar) * torch.randn(64, 5, generator=g)
    t = kl_decomposition(z, mu, logvar, dataset_size=1000, estimator=estimator)
    assert all(v.dtype == torch.float32 for v in t.values())
    # four means of log densities, each rounded to a few ulps of the largest density involved
    scale = float(pairwise_log_density(z, mu, logvar).sum(2).abs().max()) + math.log(64 * 1000)
    assert abs(float(t["mi"] + t["tc"] + t["dim_kl"] - t["kl"])) <= 16 * EPS32 * scale
    # and that KL is the Monte Carlo estimate of the closed form (to 5 standard errors of the batch mean)
    per_row = -0.5 * (logvar + 1 + (z - mu).pow(2) / logvar.exp() - 1) - (-0.5 * z.pow(2))
    closed = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
    se = float(per_row.sum(1).std()) / math.sqrt(64)
    assert abs(float(t["kl"] - closed)) < 5 * se


def test_the_compiled_estimator_gives_the_eager_terms_and_gradients_to_float32_rounding():
    """compile_estimator=True (torch.compile's fused loops) changes only the order of float32 sums: each term is
    a mean over B rows of log-sum-exps over B posteriors of sums over the latent dimensions, so the two
    agree to some (latent + B) ulps of the largest log density involved. One estimator (the benchmark's):
    a compilation costs some 25 s."""
    pytest.importorskip("torch._inductor")
    estimator = "mws"
    g = torch.Generator().manual_seed(1)
    b, k = 48, 6
    mu = (torch.randn(b, k, generator=g) * 2).requires_grad_()
    logvar = (torch.randn(b, k, generator=g) - 1).requires_grad_()
    z = (mu.detach() + torch.exp(0.5 * logvar.detach()) * torch.randn(b, k, generator=g)).requires_grad_()
    eager = kl_decomposition(z, mu, logvar, dataset_size=1000, estimator=estimator)
    fused = compiled_kl_decomposition()(z, mu, logvar, 1000, estimator)
    scale = float(pairwise_log_density(z, mu, logvar).detach().sum(2).abs().max()) + math.log(b * 1000)
    tol = (k + b) * EPS32 * scale
    for name in ("mi", "tc", "dim_kl", "kl"):
        f, e = float(fused[name].detach()), float(eager[name].detach())
        assert abs(f - e) <= tol, (name, f, e, tol)
    weights = {"mi": 1.0, "tc": 6.0, "dim_kl": 1.0}
    grads_e = torch.autograd.grad(sum(w * eager[n] for n, w in weights.items()), (z, mu, logvar))
    grads_f = torch.autograd.grad(sum(w * fused[n] for n, w in weights.items()), (z, mu, logvar))
    for ge, gf in zip(grads_e, grads_f):
        # a gradient entry is a softmax-weighted sum of B terms of the size of the densities' slopes
        bound = 8 * (k + b) * EPS32 * float(ge.abs().max() + 1)
        assert float((ge - gf).abs().max()) <= bound


def test_stratified_weights_are_those_of_the_paper_and_each_row_sums_to_one():
    n, b = 1000, 6
    w = log_stratified_weights(b, n, dtype=torch.float64).exp()
    m = b - 1
    assert torch.allclose(w.sum(1), torch.ones(b, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.allclose(torch.diagonal(w), torch.full((b,), 1 / n, dtype=torch.float64))
    nxt = w[torch.arange(b), (torch.arange(b) + 1) % b]
    assert torch.allclose(nxt, torch.full((b,), (n - m) / (n * m), dtype=torch.float64))
    assert ((w - 1 / m).abs() < 1e-15).sum() == b * (b - 2)  # 1/M everywhere else
    assert torch.equal(log_stratified_weights(1, n), torch.zeros(1, 1))  # one row: its own posterior
    with pytest.raises(aekit.ConfigError, match="cannot be smaller"):
        log_stratified_weights(8, 5)


def test_the_stratified_estimate_of_q_z_is_unbiased_on_a_toy_data_set():
    """E over random batches of sum_j w_ij q(z_i | x_j) is the exact (1/N) sum_n q(z_i | x_n) of the whole
    set, for the joint density and each marginal, to 4 standard errors of the R batches."""
    g = torch.Generator().manual_seed(1)
    n, b, r = 40, 8, 20000
    mu = _correlated(n, 0.8, g)
    logvar = torch.full((n, 2), math.log(0.25), dtype=torch.float64)
    z = mu[:1] + 0.5 * torch.randn(1, 2, generator=g, dtype=torch.float64)  # a draw of q(z | x_0)
    logq = pairwise_log_density(z, mu, logvar)[0]  # (n, 2): log q(z_k | x_n)
    dens = torch.cat([logq.sum(1, keepdim=True), logq], 1).exp()  # joint, marginal 0, marginal 1
    exact = dens.mean(0)
    w = log_stratified_weights(b, n, dtype=torch.float64).exp()
    others = torch.stack([torch.randperm(n - 1, generator=g)[: b - 1] + 1 for _ in range(r)])
    pos = torch.randint(b, (r,), generator=g)  # where x_0 sits in the batch
    batch = torch.empty(r, b, dtype=torch.long)
    for i in range(r):
        batch[i] = torch.cat([others[i, : pos[i]], torch.zeros(1, dtype=torch.long), others[i, pos[i] :]])
    est = torch.einsum("rb,rbc->rc", w[pos], dens[batch])
    se = est.std(0) / math.sqrt(r)
    assert ((est.mean(0) - exact).abs() < 4 * se).all(), (est.mean(0), exact, se)


def test_the_minibatch_estimates_of_mi_tc_and_dim_kl_match_a_gaussian_in_closed_form():
    """x ~ N(0, [[1, rho], [rho, 1]]), q(z|x) = N(x, s^2 I): q(z) = N(0, Sigma + s^2 I), whose TC, the
    index-code MI and the dimension-wise KL are known; the stratified estimator on batches of the
    population (N huge) recovers each to 5 standard errors of the batch means plus its O(1/B) bias."""
    g = torch.Generator().manual_seed(2)
    rho, s2, b, r = 0.8, 0.25, 1024, 8
    var = 1 + s2
    corr = rho / var
    closed = {
        "tc": -0.5 * math.log(1 - corr**2),
        "mi": 0.5 * math.log((var**2 - rho**2) / s2**2),
        "dim_kl": 2 * 0.5 * (var - 1 - math.log(var)),
    }
    got = {k: [] for k in closed}
    for _ in range(r):
        mu = _correlated(b, rho, g)
        logvar = torch.full_like(mu, math.log(s2))
        z = mu + math.sqrt(s2) * torch.randn(b, 2, generator=g, dtype=torch.float64)
        t = kl_decomposition(z, mu, logvar, dataset_size=10**12, estimator="mss")
        for k in closed:
            got[k].append(float(t[k]))
    for k, value in closed.items():
        mean, se = np.mean(got[k]), np.std(got[k], ddof=1) / math.sqrt(r)
        assert abs(mean - value) < 5 * se + 0.02, (k, mean, value, se)


def test_beta_tcvae_takes_the_data_set_size_from_the_trainer(digits01):
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(variant="beta-tcvae", input_dim=64, hidden=(16,), latent=3, loss="bce"))
    assert int(model.variant.dataset_size) == 0
    train = torch.from_numpy(digits01[:300])
    hist = Trainer(model, TrainConfig(epochs=1, batch_size=64)).fit(train)
    assert int(model.variant.dataset_size) == 300
    rec = hist[-1]
    assert rec["train_mi_nats"] + rec["train_tc_nats"] + rec["train_dim_kl_nats"] == pytest.approx(
        rec["train_kl_mc_nats"], rel=1e-4
    )
    fixed = Autoencoder(
        ModelConfig(variant="beta-tcvae", input_dim=64, hidden=(16,), latent=3, options={"dataset_size": 5000})
    )
    Trainer(fixed, TrainConfig(epochs=1, batch_size=64)).fit(train)
    assert int(fixed.variant.dataset_size) == 5000


# -- FactorVAE --------------------------------------------------------------------------------------------
def _factor_model(**options):
    opts = {"disc_layers": 2, "disc_units": 64, **options}
    return Autoencoder(ModelConfig(variant="factor-vae", input_dim=64, hidden=(16,), latent=2, options=opts))


def test_permute_dims_permutes_each_column_independently():
    z = torch.arange(40.0).reshape(20, 2)
    p = permute_dims(z, torch.Generator().manual_seed(0))
    for k in range(2):
        assert sorted(p[:, k].tolist()) == z[:, k].tolist()
    assert not torch.equal(p, z) and not torch.equal((p[:, 1] - p[:, 0]), torch.ones(20))


def test_the_discriminator_tells_permuted_from_joint_codes_and_estimates_their_tc():
    torch.manual_seed(0)
    model = _factor_model(disc_lr=1e-3)
    v = model.variant
    assert {id(p) for p in model.optimized_parameters()}.isdisjoint(id(p) for p in v.discriminator.parameters())
    v.auxiliary_optimizer()
    g = torch.Generator().manual_seed(3)
    rho = 0.9
    for _ in range(600):
        v.discriminator_step(_correlated(512, rho, g, torch.float32))
    joint = _correlated(4096, rho, g, torch.float32)
    with torch.no_grad():
        _, accuracy = v.discriminator_loss(joint[:2048], permute_dims(joint[2048:]))
        tc = float(v.tc_estimate(joint))
    assert float(accuracy) > 0.6  # chance is 0.5
    assert tc == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.15)  # 0.830 nats


def _fit_factor(out, callbacks=(), resume=False):
    X = aekit.load_data("digits").x[:640]
    return aekit.fit(
        "factor-vae",
        X,
        out=out,
        callbacks=callbacks,
        resume=resume,
        latent=3,
        hidden=(16,),
        epochs=2,
        batch_size=64,
        seed=0,
        scale="unit",
        val_fraction=0.1,
        test_fraction=0.0,
        progress=False,
        figures=False,
        disc_layers=2,
        disc_units=32,
    )


@pytest.mark.parametrize("stop", [9, 12])  # after epoch 1 (9 steps of 576 rows), in epoch 2
def test_an_interrupted_factor_vae_run_resumes_bit_identically(tmp_path, stop):
    straight = _fit_factor(tmp_path / "a")
    with pytest.raises(Interrupted):
        _fit_factor(tmp_path / "b", [InterruptAt(stop)])
    tensors, meta = read_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert any(k.startswith("auxoptim.") for k in tensors) and meta["auxiliary_optimizer"] is not None
    resumed = _fit_factor(tmp_path / "b", resume=True)
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    assert [r["train_disc_loss"] for r in straight.history] == [r["train_disc_loss"] for r in resumed.history]


def test_the_discriminator_is_trained_by_its_own_step_only(digits01):
    torch.manual_seed(0)
    model = _factor_model()
    before = {k: v.clone() for k, v in model.variant.discriminator.state_dict().items()}
    train = torch.from_numpy(digits01[:256])
    cfg = TrainConfig(epochs=1, batch_size=64)
    trainer = Trainer(model, cfg)
    assert all(
        id(p) not in {id(q) for q in model.variant.discriminator.parameters()} for p in model.optimized_parameters()
    )
    hist = trainer.fit(train)
    after = model.variant.discriminator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert 0 <= hist[-1]["train_disc_accuracy"] <= 1 and math.isfinite(hist[-1]["train_tc_nats"])
    assert trainer.optimizer is not None and len(trainer.optimizer.param_groups[0]["params"]) == len(
        model.optimized_parameters()
    )


# -- DIP-VAE ----------------------------------------------------------------------------------------------
def test_dip_penalty_is_the_squared_distance_of_the_covariance_from_the_identity():
    g = torch.Generator().manual_seed(4)
    mu = torch.randn(500, 3, generator=g, dtype=torch.float64)
    centred = mu - mu.mean(0)
    white = centred @ torch.linalg.inv(torch.linalg.cholesky(centred.T @ centred / 500)).T  # Cov = I
    logvar = torch.full_like(mu, math.log(0.5))
    assert float(dip_penalty(white, logvar, "i", 10.0, 100.0)) == pytest.approx(0.0, abs=1e-20)
    # II adds E[sigma^2] = 0.5 to the diagonal: 3 * (0.5)^2 * lambda_d
    assert float(dip_penalty(white, logvar, "ii", 10.0, 4.0)) == pytest.approx(3 * 0.25 * 4.0, rel=1e-12)
    cov = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=torch.float64)
    shaped = white @ torch.linalg.cholesky(cov).T
    expected = 10.0 * 2 * (0.5**2 + 0.3**2) + 100.0 * (1.0**2 + 0.0 + 0.5**2)
    assert float(dip_penalty(shaped, logvar, "i", 10.0, 100.0)) == pytest.approx(expected, rel=1e-12)


def test_dip_vae_ii_is_the_registered_second_kind():
    ii = Autoencoder(ModelConfig(variant="dip-vae-ii", input_dim=64, hidden=(8,), latent=2))
    i = Autoencoder(ModelConfig(variant="dip-vae-i", input_dim=64, hidden=(8,), latent=2))
    assert (ii.variant.options.kind, ii.variant.options.lambda_d_factor) == ("ii", 1.0)
    assert (i.variant.options.kind, i.variant.options.lambda_d_factor) == ("i", 10.0)


# -- the dSprites networks --------------------------------------------------------------------------------
def test_the_burgess_network_has_the_papers_layers_and_its_parameters_are_counted():
    enc = ConvEncoder((1, 64, 64), (32, 32, 64, 64), 20, kernel=4, dense=(256,))
    dec = ConvDecoder((1, 64, 64), (32, 32, 64, 64), 10, kernel=4, dense=(256,))
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (4, 4), (2, 2))] * 2 + [
        (64, (4, 4), (2, 2))
    ] * 2
    assert [m.out_features for m in enc.head.linears] == [256, 20]
    x = torch.rand(2, 1, 64, 64)
    assert enc.features(x).shape == (2, 64, 4, 4) and enc(x).shape == (2, 20)
    assert [m.out_features for m in dec.head.linears] == [256, 1024] and dec(torch.randn(2, 10)).shape == x.shape
    cfg = ModelConfig(
        variant="vae",
        input_dim=4096,
        image_shape=(1, 64, 64),
        architecture="conv",
        hidden=(32, 32, 64, 64),
        latent=10,
        conv_kernel=4,
        conv_dense=(256,),
    )
    assert parameter_count(cfg, 2) == sum(p.numel() for p in Autoencoder(cfg).parameters())


@pytest.mark.parametrize("shape", [(1, 7, 9), (2, 5, 5), (1, 28, 28)])
def test_kernel_4_convolutions_restore_odd_sizes(shape):
    enc = ConvEncoder(shape, [4, 8], latent=3, kernel=4, dense=(6,))
    dec = ConvDecoder(shape, [4, 8], latent=3, kernel=4, dense=(6,))
    x = torch.randn(3, *shape)
    assert dec(enc(x)).shape == x.shape


def test_bad_convolution_settings_are_refused():
    with pytest.raises(aekit.ConfigError, match="conv_kernel"):
        ModelConfig(input_dim=64, image_shape=(1, 8, 8), architecture="conv", hidden=(4,), conv_kernel=5).validate()
    with pytest.raises(aekit.ConfigError, match="leave nothing"):
        ModelConfig(input_dim=64, image_shape=(1, 8, 8), architecture="conv", hidden=(4,) * 4, conv_kernel=4).validate()


# -- the GPU benchmark, on the CPU with a tiny budget -----------------------------------------------------
@pytest.mark.slow
def test_the_gpu_script_trains_the_five_models_and_writes_the_table(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "STEPS": "1",
        "EVERY": "1000000",
        "TRAIN": "100",
        "MIG_N": "100",
        "SCORES_SCALE": "0.001",
        "OMP_NUM_THREADS": "1",
    }
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_disentanglement.sh"), "--results", str(results), "--jobs", "1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = results.read_text()
    assert "disentanglement_gpu:start" in text and "Settings: dlib" in text and "batch 64, Adam lr 0.0001" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model ")]
    assert len(rows) == 10  # VAE, beta-VAE, capacity-annealed, beta-TCVAE, FactorVAE: MIG, then the other scores
    import json

    curves = json.loads((tmp_path / "disentanglement_gpu.json").read_text())
    assert [r["samples"] for r in curves] == [2 * 64] * 5  # 99 training rows: one epoch, 2 steps of 64
    assert all(0 <= r["mig"] <= 1 for r in curves)
