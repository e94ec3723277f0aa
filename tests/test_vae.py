"""The VAE family: KL, reparameterization, likelihood bounds, schedules, sampling and latent uses."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, ConfigError, ModelConfig, TrainConfig, Trainer
from aekit.evaluation import likelihood_bounds
from aekit.latent import interpolate, sample, slerp, traverse
from aekit.losses import gaussian_kl, gaussian_kl_per_dim, gaussian_log_density, gaussian_nll
from aekit.train import Interrupted
from aekit.variants.vae import VAE, capacity_at, warmup_weight
from helpers import InterruptAt, run_cli, tiny_dsprites_run


def _vae(variant="vae", seed=0, **kw):
    """A VAE-family model on 64 features; keyword arguments that are not model fields are options."""
    torch.manual_seed(seed)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    cfg = dict(input_dim=64, hidden=(32,), latent=4, loss="bce")
    cfg.update({k: v for k, v in kw.items() if k in fields})
    cfg["options"] = {**cfg.get("options", {}), **{k: v for k, v in kw.items() if k not in fields}}
    return Autoencoder(ModelConfig(variant=variant, **cfg))


@pytest.fixture(scope="session")
def binary_digits(digits01):
    return (digits01 > 0.5).astype(np.float32)


@pytest.fixture(scope="session")
def trained(binary_digits):
    """A small VAE with a 2-dimensional code trained on binarized digits."""
    return aekit.fit("vae", binary_digits, hidden=(64,), latent=2, epochs=30, lr=3e-3, progress=False,
                     figures=False, scale="none")


def test_analytic_kl_matches_a_monte_carlo_estimate():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 5, generator=g)
    logvar = torch.randn(3, 5, generator=g) * 0.5
    z = VAE.reparameterize(mu, logvar, samples=200_000, generator=g).reshape(200_000, 3, 5)
    mc = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z)).mean(0)
    exact = gaussian_kl(mu, logvar, reduction="none")
    assert torch.allclose(mc, exact, rtol=0.02, atol=0.02)
    assert torch.allclose(gaussian_kl_per_dim(mu, logvar).sum(1), exact)
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).item() == 0.0


def test_reparameterized_samples_have_the_posterior_mean_and_variance_and_carry_gradients():
    mu = torch.tensor([[1.5, -2.0, 0.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.01)]], requires_grad=True)
    z = VAE.reparameterize(mu, logvar, samples=100_000, generator=torch.Generator().manual_seed(1))
    assert z.shape == (100_000, 3)
    assert torch.allclose(z.mean(0), mu[0], atol=0.02)
    assert torch.allclose(z.var(0), logvar[0].exp(), rtol=0.02)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.full_like(mu, 100_000.0))  # dz/dmu = 1 for every draw
    assert logvar.grad.abs().sum() > 0


def test_gaussian_decoder_nll_is_the_normal_log_density():
    g = torch.Generator().manual_seed(0)
    mean, x = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    log_scale = torch.randn(6, generator=g) * 0.3
    ref = -torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).sum(1)
    assert torch.allclose(gaussian_nll(mean, x, log_scale, reduction="none"), ref, atol=1e-5)
    assert torch.allclose(gaussian_log_density(x, mean, 2 * log_scale), -ref, atol=1e-5)


def test_vae_loss_terms_are_reconstruction_plus_beta_kl(digits01):
    x = torch.from_numpy(digits01[:32])
    for variant, beta in (("vae", 1.0), ("beta-vae", 4.0)):
        model = _vae(variant)
        assert model.variant.options.beta == beta
        out = model(x)
        assert set(out.losses) == {"recon", "kl"}
        assert torch.allclose(out.losses["kl"], beta * out.metrics["kl_nats"])
        assert out.code.shape == (32, 4)
    model = _vae("vae", beta=0.5)
    out = model(x)
    assert torch.allclose(out.losses["kl"], 0.5 * out.metrics["kl_nats"])


def test_several_samples_average_the_reconstruction_term(digits01):
    x = torch.from_numpy(digits01[:16])
    model = _vae(samples=8)
    torch.manual_seed(3)
    out = model(x)
    assert out.reconstruction.shape == x.shape and out.code.shape == (16, 4)
    torch.manual_seed(3)
    h = model.encoder(x)
    mu, logvar = model.variant.posterior(h)
    z = VAE.reparameterize(mu, logvar, 8)
    ref = model.reconstruction_nll(model.decoder(z), x.repeat(8, 1))
    assert torch.allclose(out.losses["recon"], ref)


def test_encode_is_the_posterior_mean_and_dynamic_binarization_draws_binary_targets(digits01):
    x = torch.from_numpy(digits01[:8])
    model = _vae(binarize=True).eval()
    mu, _ = model.variant.posterior(model.encoder(x))
    assert torch.equal(model.encode(x), mu)
    drawn = model.variant.resample(x)
    assert set(drawn.unique().tolist()) <= {0.0, 1.0} and not torch.equal(drawn, x)
    assert torch.equal(_vae().variant.resample(x), x)


def test_learned_decoder_sigma_is_trained_and_a_vae_needs_a_linear_code(digits01):
    model = aekit.fit("vae", digits01, loss="mse", learn_sigma=True, sigma=0.5, hidden=(32,), latent=3,
                      epochs=3, progress=False, figures=False)
    log_sigma = model.variant.log_sigma.detach()
    assert log_sigma.shape == (64,) and not torch.allclose(log_sigma, torch.full((64,), math.log(0.5)))
    with pytest.raises(ConfigError, match="code_activation 'linear'"):
        _vae(code_activation="sigmoid")
    with pytest.raises(ConfigError, match="learn_sigma"):
        _vae(learn_sigma=True)
    with pytest.raises(ConfigError, match="capacity and warmup"):
        _vae("capacity-vae", warmup=10)
    with pytest.raises(ConfigError, match="samples"):
        _vae(samples=0)


def test_capacity_and_warmup_schedules():
    assert [capacity_at(t, 25.0, 100) for t in (0, 50, 100, 500)] == [0.0, 12.5, 25.0, 25.0]
    assert [warmup_weight(t, 4) for t in (0, 1, 2, 4, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert warmup_weight(0, 0) == 1.0


def test_capacity_vae_raises_c_linearly_over_training(digits01):
    x = torch.from_numpy(digits01[:640])
    model = _vae("capacity-vae", capacity=10.0)
    assert model.variant.options.gamma == 1000.0
    Trainer(model, TrainConfig(epochs=4, batch_size=64)).fit(x)  # 40 steps; C reaches 10 at the end
    assert int(model.variant.step) == 40 and int(model.variant.total_steps) == 40
    assert model.variant.capacity_now() == 10.0
    out = model.train()(x[:64])
    assert torch.allclose(out.losses["kl"], 1000.0 * (out.metrics["kl_nats"] - 10.0).abs(), rtol=1e-5)
    model = _vae("capacity-vae", capacity=10.0, capacity_steps=20)
    hist = Trainer(model, TrainConfig(epochs=4, batch_size=64)).fit(x)
    caps = [r["train_capacity"] for r in hist]
    assert caps[0] < caps[1] < caps[2] == caps[3] == 10.0  # mean C per epoch: rising, then C_max
    assert caps[0] == pytest.approx(np.mean([capacity_at(t, 10.0, 20) for t in range(10)]))


def test_warmup_weights_the_kl_term_by_the_step(digits01):
    x = torch.from_numpy(digits01[:640])
    model = _vae(warmup=20)
    hist = Trainer(model, TrainConfig(epochs=3, batch_size=64)).fit(x)
    weights = [r["train_kl_weight"] for r in hist]
    assert weights[0] == pytest.approx(np.mean([t / 20 for t in range(10)]))
    assert weights[2] == 1.0


def test_history_has_kl_per_dimension_and_active_units(digits01):
    x = torch.from_numpy(digits01[:1000])
    model = _vae(latent=6)
    hist = Trainer(model, TrainConfig(epochs=5, batch_size=50, lr=3e-3)).fit(x)
    for r in hist:
        assert len(r["kl_per_dim"]) == 6
        assert sum(r["kl_per_dim"]) == pytest.approx(r["train_kl_nats"], rel=1e-4)
        assert 0 <= r["active_units"] <= 6
    assert hist[-1]["active_units"] >= 1
    # an active unit carries KL; an inactive one (posterior = prior) carries almost none
    mu = model.eval().encode(x)
    var = mu.var(0)
    assert int((var > 0.01).sum()) == pytest.approx(hist[-1]["active_units"], abs=1)


def test_vae_resumes_bit_identically(tmp_path, digits01):
    x = torch.from_numpy(digits01[:640])
    cfg = TrainConfig(epochs=3, batch_size=64)
    opts = dict(capacity=5.0, samples=2)
    straight = _vae("capacity-vae", **opts)
    hist_a = Trainer(straight, cfg, run_dir=tmp_path / "a").fit(x)
    first = _vae("capacity-vae", **opts)
    with pytest.raises(Interrupted):
        Trainer(first, cfg, run_dir=tmp_path / "b", callbacks=[InterruptAt(13)]).fit(x)
    resumed = _vae("capacity-vae", seed=9, **opts)
    hist_b = Trainer(resumed, cfg, run_dir=tmp_path / "b").fit(x, resume=True)
    sa, sb = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [r["kl_per_dim"] for r in hist_a] == [r["kl_per_dim"] for r in hist_b]


def test_importance_weighted_bound_is_above_the_elbo_and_tightens_with_k(trained, binary_digits):
    X = binary_digits[:200]
    bounds = {k: likelihood_bounds(trained, X, k, seed=1) for k in (1, 10, 100, 1000)}
    nll = [bounds[k]["nll_iw"] for k in (1, 10, 100, 1000)]
    assert nll == sorted(nll, reverse=True) and nll[0] - nll[-1] > 0.1
    assert nll[0] == pytest.approx(bounds[1]["nelbo"], abs=0.5)  # K = 1 is the ELBO (sampled KL)
    for k in (10, 100, 1000):
        assert bounds[k]["nll_iw"] <= bounds[k]["nelbo"]  # log p(x) >= IW bound >= ELBO
        assert bounds[k]["nelbo"] == pytest.approx(bounds[k]["recon"] + bounds[k]["kl"])


def test_importance_weighted_estimate_approaches_the_exact_marginal_likelihood(trained, binary_digits):
    """With a 2-dimensional code, log p(x) = log int p(x|z) p(z) dz by quadrature on a dense grid."""
    X = torch.from_numpy(binary_digits[:20])
    grid = torch.linspace(-7, 7, 561, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    z = torch.cartesian_prod(grid, grid)
    with torch.inference_mode():
        logits = trained.decoder(z.float())
        log_pz = gaussian_log_density(z)
        exact = []
        for x in X:
            log_px_z = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none").sum(1).double()
            exact.append(float(torch.logsumexp(log_px_z + log_pz, 0) + 2 * math.log(step)))
    exact_nll = -np.mean(exact)
    bounds = likelihood_bounds(trained, X.numpy(), 5000, seed=0)
    assert bounds["nll_iw"] == pytest.approx(exact_nll, abs=0.05)
    assert bounds["nelbo"] > exact_nll


def test_evaluate_reports_the_likelihood_for_vaes(trained, binary_digits):
    result = aekit.evaluate(trained, binary_digits[:100], iw_samples=20)
    assert set(result["likelihood"]) >= {"nelbo", "nll_iw", "iw_samples"}
    assert result["likelihood"]["iw_samples"] == 20
    assert "likelihood" not in aekit.evaluate(trained, binary_digits[:100], iw_samples=0)


def test_sampling_is_seeded_and_needs_a_prior(trained, digits01):
    a, b = sample(trained, 10, seed=3), sample(trained, 10, seed=3)
    assert a.shape == (10, 64) and np.array_equal(a, b)
    assert not np.array_equal(a, sample(trained, 10, seed=4))
    assert 0 <= a.min() and a.max() <= 1  # Bernoulli means
    ae = aekit.fit("ae", digits01, hidden=(16,), latent=2, epochs=1, progress=False, figures=False)
    with pytest.raises(ConfigError, match="prior"):
        sample(ae, 4)


def test_interpolation_paths(trained, binary_digits):
    a, b = binary_digits[0], binary_digits[1]
    path = interpolate(trained, a, b, steps=5)
    codes = trained.encode_array(np.stack([a, b]))
    ends = trained.batched(codes, trained.decode, 10)
    assert path.shape == (5, 64) and np.allclose(path[[0, -1]], ends, atol=1e-6)
    p, q = np.array([3.0, 0.0]), np.array([0.0, 3.0])
    arc = slerp(p, q, np.linspace(0, 1, 7))
    assert np.allclose(np.linalg.norm(arc, axis=1), 3.0) and np.allclose(arc[[0, -1]], [p, q])
    assert np.allclose(slerp(p, 2 * p, np.array([0.5])), [1.5 * p])  # parallel: the straight line
    with pytest.raises(ConfigError, match="method"):
        interpolate(trained, a, b, method="cubic")


def test_traversal_varies_one_dimension_at_a_time(trained, binary_digits, digits01):
    images, dims, values = traverse(trained, binary_digits[0], steps=5, limit=2.0)
    assert images.shape == (10, 64) and dims == [0, 1] and values.shape == (2, 5)
    base = trained.encode_array(binary_digits[:1])[0]
    assert np.allclose(values[0], base[0] + np.linspace(-2, 2, 5))
    assert not np.allclose(images[0], images[4])
    ae = aekit.fit("ae", digits01, hidden=(16,), latent=3, epochs=1, progress=False, figures=False)
    with pytest.raises(ConfigError, match="needs data"):
        traverse(ae, digits01[0])
    images, dims, values = traverse(ae, digits01[0], dims=[2], steps=3, data=digits01[:100])
    assert images.shape == (3, 64) and dims == [2]
    with pytest.raises(ConfigError, match="dims"):
        traverse(trained, dims=[5])


def test_cli_generate_interpolate_traverse_and_figures(tmp_path, capsys):
    run = tmp_path / "vae"
    assert run_cli(["train", "beta-vae", "--data", "digits", "--hidden", "32", "--latent", "3", "--epochs", "2",
                    "--out", str(run), "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["model"]["options"]["beta"] == 4.0
    for name in ("samples", "interpolations", "traversals"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 1000
    assert run_cli(["generate", str(run), "-n", "12", "-o", str(tmp_path / "s.npy"), "--seed", "2"]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (12, 1, 8, 8) and s.max() <= 16.0 + 1e-4  # back in the data's units (digits: 0..16)
    assert run_cli(["generate", str(run), "-o", str(tmp_path / "s.png")]) == 0
    assert run_cli(["interpolate", str(run), "digits", "--rows", "0,1,5,6", "--steps", "4", "--method",
                    "spherical", "-o", str(tmp_path / "i.csv")]) == 0
    assert np.loadtxt(tmp_path / "i.csv", delimiter=",").shape == (8, 64)
    assert run_cli(["traverse", str(run), "digits", "--row", "3", "--dims", "0,2", "-o", str(tmp_path / "t.png")]) == 0
    assert run_cli(["evaluate", str(run), "--iw-samples", "10", "--no-pca"]) == 0
    assert "nll_iw" in capsys.readouterr().out
    for argv, message in (
            (["interpolate", str(run), "digits", "--rows", "0", "-o", str(tmp_path / "x.png")], "pairs"),
            (["interpolate", str(run), "digits", "--rows", "0,99999", "-o", str(tmp_path / "x.png")], "out of range"),
            (["traverse", str(run), "--dims", "7", "-o", str(tmp_path / "x.png")], "dims"),
            (["generate", str(run), "-n", "0", "-o", str(tmp_path / "x.png")], "n must be"),
            (["generate", str(run), "-o", str(tmp_path / "x.txt")], ".npy or .csv")):
        assert run_cli(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("aekit: error:") and message in err and "Traceback" not in err
        assert not (tmp_path / "x.png").exists()


def test_evaluate_scores_the_mig_of_a_dsprites_run(tmp_path, monkeypatch):
    tiny_dsprites_run(tmp_path / "run", monkeypatch)
    result = aekit.evaluate(tmp_path / "run", pca=False, iw_samples=5)
    assert 0 <= result["mig"]["mig"] <= 1 and len(result["mig"]["gaps"]) == 5
    matrix = np.array(result["mig"]["normalized_mutual_info"])  # code dimensions x factors, in [0, 1]
    assert matrix.shape == (4, 5) and (matrix >= 0).all() and (matrix <= 1 + 1e-9).all()
    assert result["likelihood"]["iw_samples"] == 5


@pytest.mark.parametrize("options", [{}, {"warmup": 10}, {"capacity": 5.0}])
def test_the_training_forward_pass_reads_nothing_back_from_the_device(options):
    """The loss of a training step traces into one graph (torch.compile's dynamo): no host read
    such as the schedules' step (int(self.step) was one, a sync per step on an accelerator and a
    graph break), once the trainer's callback has set the step."""
    import torch._dynamo

    torch._dynamo.reset()
    model = Autoencoder(ModelConfig(variant="vae", input_dim=16, hidden=(8,), latent=2, options=options))
    model.train()
    model.variant.set_step(3, 100)

    def loss(x):
        return sum(model(x).losses.values())

    explained = torch._dynamo.explain(loss)(torch.rand(4, 16))
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    model.variant.load_state_dict(model.variant.state_dict())  # a loaded state: read from the buffer again
    assert model.variant._host_step is None and model.variant.current_step() == 3


@pytest.mark.parametrize("variant, options", [
    ("capacity-vae", {}), ("vae", {"warmup": 10}), ("beta-tcvae", {"warmup": 10}), ("factor-vae", {"warmup": 10}),
    ("dip-vae-i", {"warmup": 10}),
])
def test_a_scheduled_weight_changes_every_step_without_recompiling_a_compiled_step(variant, options):
    """The KL weight, capacity or warm-up factor moves every step; a compiled step (--compile) reads it from
    a tensor, so that no guard on the step number fails and the graph is traced once, and gives the eager
    terms. Dynamo alone (backend "eager": the traced graph run by the same aten kernels, no code
    generation): the property is the tracing's, not the compiler's."""
    import torch._dynamo
    model = _vae(variant, **options).train()
    model.variant.set_step(0, 40)
    x = torch.rand(16, 64, generator=torch.Generator().manual_seed(0))

    def terms(fn, s):
        model.variant.set_step(s)
        torch.manual_seed(s)  # the reparameterization's draws
        with torch.no_grad():
            return {k: float(v) for k, v in fn(x).items()}

    torch._dynamo.reset()
    traced = torch.compile(lambda xb: model(xb).losses, backend="eager", fullgraph=True)
    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            compiled = [terms(traced, s) for s in (0, 3, 7, 20)]
    finally:
        torch._dynamo.reset()
    eager = [terms(lambda xb: model(xb).losses, s) for s in (0, 3, 7, 20)]
    for c, e in zip(compiled, eager):
        assert c.keys() == e.keys() and all(c[k] == pytest.approx(e[k], rel=1e-6) for k in e)
    weights = []
    for s in (0, 3):
        model.variant.set_step(s)
        weights.append(model.variant.schedule_value())
    assert weights[0] != weights[1]  # the schedule does move between these steps
