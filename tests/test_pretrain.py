"""Layer-wise pretraining (Hinton & Salakhutdinov 2006; Vincent et al. 2010): the RBM against
brute-force enumeration, contrastive divergence, Gibbs sampling, DBN and denoising stacks,
unrolling, the deep variant, ``aekit pretrain`` / ``finetune`` / ``classify``."""

import itertools
import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import pretrain
from aekit.classifier import finetune, load_classifier
from aekit.errors import ConfigError, DataError
from aekit.model import Autoencoder, ModelConfig
from aekit.pretrain import RBM, cd_gradient, rbms_from_model, stack_denoising, train_dbn, train_rbm, unroll
from helpers import run_cli


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rbm(n_visible=4, n_hidden=3, visible="bernoulli", hidden="bernoulli", std=1.0, seed=0):
    """A random RBM in float64 with non-zero biases."""
    rbm = RBM(n_visible, n_hidden, visible, hidden, init_std=std, generator=_gen(seed), dtype=torch.float64)
    with torch.no_grad():
        rbm.visible_bias.copy_(torch.randn(n_visible, generator=_gen(seed + 1), dtype=torch.float64))
        rbm.hidden_bias.copy_(torch.randn(n_hidden, generator=_gen(seed + 2), dtype=torch.float64))
    return rbm


def _states(n):
    """All 2^n binary vectors, shape (2^n, n), float64."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _exact_log_p(rbm):
    """log p(v) of every binary visible state (Bernoulli visible units), by enumeration."""
    v = _states(rbm.n_visible)
    neg_f = -rbm.free_energy(v)
    return v, neg_f - torch.logsumexp(neg_f, 0)


# -- the RBM against brute-force enumeration --------------------------------------------------
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_and_conditionals_match_enumeration_of_the_joint(visible):
    rbm = _rbm(visible=visible)
    hs = _states(3)                                                          # all 8 hidden states
    v = _states(4) if visible == "bernoulli" else torch.randn(10, 4, generator=_gen(5), dtype=torch.float64)
    with torch.no_grad():
        neg_e = -torch.stack([rbm.energy(v, h.expand(len(v), -1)) for h in hs], 1)   # (N, 8)
        assert torch.allclose(rbm.free_energy(v), -torch.logsumexp(neg_e, 1), atol=1e-10)
        p_h_given_v = torch.softmax(neg_e, 1) @ hs                           # P(h_j = 1 | v)
        assert torch.allclose(rbm.hidden_mean(v), p_h_given_v, atol=1e-10)
        if visible == "bernoulli":                                           # P(v_i = 1 | h) over all 16 v
            vs = _states(4)
            neg_e_v = -torch.stack([rbm.energy(vs, h.expand(16, -1)) for h in hs], 0)  # (8, 16)
            assert torch.allclose(rbm.visible_mean(hs), torch.softmax(neg_e_v, 1) @ vs, atol=1e-10)
        else:                      # E is quadratic in v with unit curvature: v | h ~ N(W^T h + b, I)
            m = rbm.visible_mean(hs)
            gap = rbm.energy(v[:8], hs) - rbm.energy(m, hs)
            assert torch.allclose(gap, 0.5 * (v[:8] - m).pow(2).sum(1), atol=1e-10)


def test_linear_hidden_units_are_gaussian_with_unit_variance():
    rbm = _rbm(3, 2, hidden="linear", std=0.5)
    v = _states(3)
    with torch.no_grad():
        m = rbm.hidden_mean(v)
        assert torch.allclose(m, v @ rbm.weight.T + rbm.hidden_bias)
        h = torch.randn(8, 2, generator=_gen(3), dtype=torch.float64) * 2
        assert torch.allclose(rbm.energy(v, h) - rbm.energy(v, m), 0.5 * (h - m).pow(2).sum(1), atol=1e-10)
        # F(v) = -log of the integral over h of exp(-E(v, h)), by quadrature on a grid
        grid = torch.linspace(-12, 12, 801, dtype=torch.float64)
        hh = torch.cartesian_prod(grid, grid)
        step = (grid[1] - grid[0]) ** 2
        for row in v:
            neg_e = -rbm.energy(row.expand(len(hh), -1), hh)
            assert rbm.free_energy(row[None])[0].item() == pytest.approx(
                -(torch.logsumexp(neg_e, 0) + torch.log(step)).item(), abs=1e-6)
        _, s = rbm.sample_hidden(v[5:6].expand(40000, -1), _gen(4))
    assert torch.allclose(s.mean(0), m[5], atol=0.03) and torch.allclose(s.var(0), torch.ones(2, dtype=s.dtype),
                                                                          atol=0.03)


def test_pseudo_log_likelihood_is_an_unbiased_estimate_of_the_exact_one():
    rbm = _rbm()
    v = _states(4)[[3, 9, 14]]
    with torch.no_grad():
        exact = torch.zeros(len(v), dtype=torch.float64)
        for i in range(4):                     # sum_i log p(v_i | v_-i) = sum_i log sigmoid(F(v~i) - F(v))
            flipped = v.clone()
            flipped[:, i] = 1 - flipped[:, i]
            exact += torch.nn.functional.logsigmoid(rbm.free_energy(flipped) - rbm.free_energy(v))
        draws = rbm.pseudo_log_likelihood(v.repeat(20000, 1), _gen(1)).reshape(20000, 3).mean(0)
    assert torch.allclose(draws, exact, rtol=0.03)
    with pytest.raises(ConfigError, match="Bernoulli visible"):
        _rbm(visible="gaussian").pseudo_log_likelihood(v)


def test_free_energy_and_reconstruction_agree_with_scikit_learn(digits01):
    from sklearn.neural_network import BernoulliRBM
    rbm = _rbm(64, 10, std=0.1)
    sk = BernoulliRBM(n_components=10).fit(digits01[:20])
    sk.components_ = rbm.weight.detach().numpy().copy()
    sk.intercept_hidden_, sk.intercept_visible_ = rbm.hidden_bias.detach().numpy(), rbm.visible_bias.detach().numpy()
    v = torch.from_numpy(digits01[:50]).double()
    with torch.no_grad():
        assert np.allclose(rbm.free_energy(v).numpy(), sk._free_energy(v.numpy()))
        assert np.allclose(rbm.hidden_mean(v).numpy(), sk.transform(v.numpy()))


# -- contrastive divergence -------------------------------------------------------------------
@pytest.mark.parametrize("visible, hidden", list(itertools.product(pretrain.VISIBLE_UNITS, pretrain.HIDDEN_UNITS)))
@pytest.mark.parametrize("persistent", [False, True])
def test_cd_gradient_is_minus_the_gradient_of_the_free_energy_gap(visible, hidden, persistent):
    rbm = _rbm(5, 3, visible, hidden, std=0.3)
    v = torch.rand(16, 5, generator=_gen(7), dtype=torch.float64)
    chain = torch.bernoulli(torch.full((12, 3), 0.5, dtype=torch.float64), generator=_gen(2)) if persistent else None
    with torch.no_grad():
        g = cd_gradient(rbm, v, k=2, chain=chain, generator=_gen(1))
    assert [t.shape for t in g[:3]] == [p.shape for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    assert g.negative.shape == ((12, 5) if persistent else (16, 5)) and g.chain.shape[1] == 3
    gap = rbm.free_energy(v).mean() - rbm.free_energy(g.negative).mean()
    grads = torch.autograd.grad(gap, [rbm.weight, rbm.visible_bias, rbm.hidden_bias])
    for ours, reference in zip(g[:3], grads):
        assert torch.allclose(ours, -reference, atol=1e-10)


def test_cd1_points_uphill_on_the_exact_log_likelihood_and_training_climbs_it():
    rbm = _rbm(std=0.1)
    data = _states(4)[[0, 3, 12, 15]].repeat(500, 1)       # four of the sixteen patterns
    v_all, log_p = _exact_log_p(rbm)
    mean_ll = lambda r: (_exact_log_p(r)[1][(data[:4] * torch.tensor([8., 4, 2, 1])).sum(1).long()]).mean()
    exact = torch.autograd.grad(mean_ll(rbm), [rbm.weight, rbm.visible_bias, rbm.hidden_bias])
    with torch.no_grad():
        g = cd_gradient(rbm, data, k=1, generator=_gen(1))
    cos = sum((a * b).sum() for a, b in zip(g[:3], exact)) / (
        math.sqrt(sum(a.pow(2).sum() for a in g[:3])) * math.sqrt(sum(b.pow(2).sum() for b in exact)))
    assert cos > 0.8                                          # same direction as the true gradient
    before = mean_ll(rbm).item()
    trained = train_rbm(data[:400], 3, seed=0, rbm=rbm, epochs=20, batch_size=20)
    assert mean_ll(trained).item() > before + 0.5


def test_gibbs_samples_of_a_trained_rbm_follow_its_exact_distribution():
    data = _states(4)[[0, 3, 5, 12, 15]].repeat(200, 1).float()
    rbm = train_rbm(data, 3, seed=0, epochs=20, batch_size=50)
    rbm = rbm.double()
    v, log_p = _exact_log_p(rbm)
    with torch.no_grad():
        start = torch.bernoulli(torch.full((40000, 4), 0.5, dtype=torch.float64), generator=_gen(2))
        samples = rbm.gibbs(start, steps=100, generator=_gen(3))
    index = (samples * torch.tensor([8.0, 4, 2, 1], dtype=torch.float64)).sum(1).long()
    empirical = torch.bincount(index, minlength=16).double() / len(index)
    tv = 0.5 * (empirical - log_p.exp()).abs().sum().item()
    assert log_p.exp().max() > 0.1 and tv < 0.03              # a peaked distribution, matched


def test_train_rbm_history_momentum_schedule_and_determinism(digits01):
    a = train_rbm(digits01, 16, seed=3, epochs=7, batch_size=100, monitor=500)
    assert [h["epoch"] for h in a.history] == list(range(1, 8))
    assert [h["momentum"] for h in a.history] == [0.5] * 5 + [0.9] * 2
    errors = [h["reconstruction_error"] for h in a.history]
    assert errors[-1] < 0.7 * errors[0] and all(h["pseudo_log_likelihood"] < 0 for h in a.history)
    b = train_rbm(digits01, 16, seed=3, epochs=7, batch_size=100, monitor=500)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.visible_bias, b.visible_bias)
    g = train_rbm((digits01 - digits01.mean(0)) / (digits01.std(0) + 0.1), 8, visible="gaussian", epochs=2, lr=0.001)
    assert g.history[-1]["pseudo_log_likelihood"] is None and math.isfinite(g.history[-1]["reconstruction_error"])


# -- stacks and unrolling ---------------------------------------------------------------------
def test_dbn_trains_each_rbm_on_the_hidden_probabilities_of_the_one_below(digits01):
    x = digits01[:300]
    dbn = train_dbn(x, [16, 4], seed=5, epochs=2, lr=0.1, code_lr=0.001)
    assert [(r.visible, r.hidden) for r in dbn] == [("bernoulli", "bernoulli"), ("bernoulli", "linear")]
    with torch.no_grad():
        codes = dbn[0].hidden_mean(torch.from_numpy(x))
    second = train_rbm(codes, 4, hidden="linear", seed=6, epochs=2, lr=0.001)
    assert torch.equal(dbn[1].weight, second.weight) and torch.equal(dbn[1].hidden_bias, second.hidden_bias)


def test_each_denoising_layer_reconstructs_its_clean_input(digits01):
    # with every entry masked (nu = 1) a layer can only learn the constant best reconstruction of
    # its target: the mean of its *clean* input (the zeros it is fed would give ~0)
    x = torch.from_numpy(digits01[:200])
    layers = stack_denoising(x, [8, 4], noise="mask", nu=1.0, epochs=60, batch_size=100, lr=0.05, seed=0)
    assert [tuple(layer.weight.shape) for layer in layers] == [(8, 64), (4, 8)]
    with torch.no_grad():
        codes = torch.sigmoid(x @ layers[0].weight.T + layers[0].hidden_bias)
        for layer, clean in zip(layers, (x, codes)):
            out = torch.sigmoid(torch.sigmoid(layer.hidden_bias) @ layer.weight + layer.visible_bias)
            assert (out - clean.mean(0)).abs().max() < 0.05
    assert layers[1].history[-1]["train_loss"] < layers[1].history[0]["train_loss"]


@pytest.mark.parametrize("method", ["rbm", "dae"])
@pytest.mark.parametrize("tied", [False, True])
def test_the_unrolled_decoder_is_the_transpose_of_the_encoder(method, tied, digits01):
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(variant="deep", input_dim=64, hidden=(16, 8), latent=4, activation="sigmoid",
                                    loss="bce", tied=tied, options={"pretrain": method, "pretrain_epochs": 1}))
    record = model.variant.pretrain(model, torch.from_numpy(digits01[:300]), seed=0, train_layer=pretrain.train_layer)
    assert record["method"] == method and [layer["n_hidden"] for layer in record["layers"]] == [16, 8, 4]
    assert all(len(layer["history"]) == 1 for layer in record["layers"])
    json.dumps(record)
    enc = model.encoder.linears
    dec = [m for m in model.decoder if hasattr(m, "bias")][::-1]
    for e, d in zip(enc, dec):
        weight = d.weight if not tied else d.source[0].weight
        assert torch.equal(weight, e.weight.T if not tied else e.weight)
        assert d.bias.shape == (e.in_features,)
    if method == "rbm":
        rbms = rbms_from_model(model)
        assert [(r.visible, r.hidden) for r in rbms][-1] == ("bernoulli", "linear")
        assert torch.equal(rbms[1].weight, enc[1].weight) and torch.equal(rbms[0].visible_bias, dec[0].bias)


def test_unroll_refuses_a_stack_of_another_shape():
    model = Autoencoder(ModelConfig(variant="deep", input_dim=64, hidden=(16,), latent=4, activation="sigmoid"))
    with pytest.raises(ConfigError, match="encoder layers"):
        unroll(model, [RBM(64, 16)])
    with pytest.raises(ConfigError, match="layer 2"):
        unroll(model, [RBM(64, 16), RBM(16, 5)])


# -- the deep variant and the command line ----------------------------------------------------
TINY = ["--hidden", "16", "--latent", "4", "--pretrain-epochs", "2", "--epochs", "1", "--quiet"]


def test_train_deep_with_rbm_pretraining_end_to_end_and_deterministic(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert run_cli(["train", "deep", "--pretrain", "rbm", *TINY, "--out", str(run)]) == 0
    record = json.loads((runs[0] / "pretrain.json").read_text())
    assert record["method"] == "rbm" and len(record["layers"]) == 2
    assert record["layers"][0]["visible"] == "bernoulli" and record["layers"][1]["hidden"] == "linear"
    assert set(record["layers"][0]["history"][0]) >= {"epoch", "reconstruction_error", "pseudo_log_likelihood"}
    a, b = (load_file(str(run / "model.safetensors")) for run in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = aekit.load(runs[0])
    assert model.config.activation == "sigmoid" and model.config.loss == "bce"


def test_pretrain_cli_writes_a_loadable_stack_and_finetune_classifies(tmp_path, capsys):
    rbm_dir, dae_dir, clf_dir = tmp_path / "rbm", tmp_path / "dae", tmp_path / "clf"
    assert run_cli(["pretrain", "rbm", "--hidden", "16,8", "--epochs", "2", "--out", str(rbm_dir), "--quiet"]) == 0
    assert "pseudo_log_likelihood" in capsys.readouterr().out
    rbms = rbms_from_model(aekit.load(rbm_dir))
    assert [(r.n_visible, r.n_hidden, r.hidden) for r in rbms] == [(64, 16, "bernoulli"), (16, 8, "bernoulli")]
    assert not (rbm_dir / "history.json").exists() and (rbm_dir / "pretrain.json").exists()
    assert run_cli(["pretrain", "dae", "--hidden", "32", "--epochs", "5", "--dae-lr", "0.01", "--out", str(dae_dir),
                    "--quiet"]) == 0
    assert run_cli(["finetune", str(dae_dir), "--epochs", "15", "--lr", "0.01", "--out", str(clf_dir),
                    "--quiet"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.8                                                     # chance: 0.1
    config = json.loads((clf_dir / "config.json").read_text())
    assert config["kind"] == "classifier" and config["scores"]["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert run_cli(["classify", str(clf_dir), "digits", "-o", str(tmp_path / "pred.npy")]) == 0
    assert "accuracy on digits" in capsys.readouterr().out
    predicted = np.load(tmp_path / "pred.npy")
    clf = load_classifier(clf_dir)
    assert predicted.shape == (1797,) and set(np.unique(predicted)) <= set(range(10))
    assert (clf.predict_array(aekit.load_data("digits").x) == predicted).all()
    assert run_cli(["info", str(clf_dir)]) == 2                               # not an autoencoder run
    assert "aekit classify" in capsys.readouterr().err


def test_finetune_python_api_with_arrays_and_a_labels_file(tmp_path, digits01):
    model = aekit.fit("deep", digits01, pretrain="rbm", hidden=(), latent=24, code_activation="sigmoid",
                      pretrain_epochs=3, epochs=0, progress=False)
    labels = np.array(["even", "odd"])[aekit.load_data("digits").y % 2]
    clf = finetune(model, digits01, labels, epochs=5, lr=0.01, progress=False, test_fraction=0.25)
    assert list(clf.classes) == ["even", "odd"] and clf.scores["n_test"] == round(0.25 * len(digits01))
    assert clf.scores["test_accuracy"] > 0.75
    np.save(tmp_path / "y.npy", aekit.load_data("digits").y)
    clf = finetune(model, digits01, str(tmp_path / "y.npy"), epochs=1, progress=False)
    assert list(clf.classes) == list(range(10))
    assert clf.predict_proba_array(digits01[:5]).shape == (5, 10)


@pytest.mark.parametrize("argv, match", [
    (["train", "deep", "--pretrain", "rbm", "--activation", "relu"], "rbm pretraining needs logistic hidden units"),
    (["train", "deep", "--architecture", "conv"], "mlp architecture only"),
    (["train", "deep", "--cd-k", "0"], "cd_k must be positive"),
    (["train", "deep", "--pretrain-epochs", "0"], "pretrain_epochs must be positive"),
    (["pretrain", "rbm", "--hidden", ","], "at least one layer width"),
    (["pretrain", "rbm", "--hidden", "8,x"], "comma-separated list of integers"),
    (["pretrain", "dae", "--hidden", "8", "--nu", "2"], "nu must be in"),
    (["finetune", "no/such/run"], "no such run directory"),
])
def test_bad_input_is_one_clear_error(argv, match, tmp_path, capsys):
    assert run_cli([*argv, "--out", str(tmp_path / "run")] if argv[0] != "finetune" else argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and err.count("aekit: error:") == 1
    assert not (tmp_path / "run").exists()


def test_finetune_and_classify_refuse_bad_labels_and_runs(tmp_path, capsys, digits01):
    run = tmp_path / "ae"
    assert run_cli(["pretrain", "rbm", "--hidden", "8", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    np.save(tmp_path / "x.npy", digits01[:100])
    np.save(tmp_path / "short.npy", np.zeros(7, dtype=int))
    for argv, match in [
            (["finetune", str(run), "--data", str(tmp_path / "x.npy")], "no labels"),
            (["finetune", str(run), "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "short.npy")],
             "100 rows but 7 labels"),
            (["finetune", str(run), "--labels", "nothing-here"], "no such labels file"),
            (["classify", str(run), "digits"], "not a classifier run")]:
        assert run_cli([*argv, "--out", str(tmp_path / "clf")] if argv[0] == "finetune" else argv) == 2, argv
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err
    assert not (tmp_path / "clf").exists()
    with pytest.raises(DataError, match="NaN"):
        train_rbm(np.full((4, 3), np.nan), 2)
    with pytest.raises(DataError, match=r"values in \[0, 1\]"):
        train_rbm(np.full((4, 3), 2.0), 2)
