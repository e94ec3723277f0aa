"""The sparse (Ng 2011) and k-sparse (Makhzani & Frey 2014) autoencoders."""

import math

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, Callback, ConfigError, ModelConfig, TrainConfig, Trainer
from aekit.cli import main
from aekit.losses import kl_sparsity, l1_activity
from aekit.train import Interrupted
from aekit.variants.ksparse import scheduled_k
from helpers import InterruptAt


def _model(variant, seed=0, **kw):
    torch.manual_seed(seed)
    options = kw.pop("options", {})
    return Autoencoder(ModelConfig(variant=variant, input_dim=64, hidden=(32,), latent=kw.pop("latent", 16),
                                   options=options, **kw))


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- sparse ---------------------------------------------------------------------------------
def test_kl_sparsity_equals_the_formula_on_a_hand_computed_case():
    code = torch.tensor([[0.1, 0.5, 0.9], [0.3, 0.1, 0.7]])
    rho = 0.05
    expected = sum(rho * math.log(rho / q) + (1 - rho) * math.log((1 - rho) / (1 - q)) for q in (0.2, 0.3, 0.8))
    assert kl_sparsity(code, rho).item() == pytest.approx(expected, rel=1e-5)
    model = _model("sparse", code_activation="sigmoid", options={"beta": 2.0, "rho": rho})
    terms = model.variant.penalty(None, code, code, model)
    assert set(terms) == {"kl_sparsity"} and terms["kl_sparsity"].item() == pytest.approx(2 * expected, rel=1e-5)
    assert kl_sparsity(torch.full((4, 3), rho), rho).item() == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(kl_sparsity(torch.tensor([[0.0, 1.0]]), rho).item())


def test_l1_term_is_lambda_times_mean_summed_magnitude():
    code = torch.randn(5, 7)
    per = code.abs().sum(1)
    assert torch.allclose(l1_activity(code, "none"), per) and torch.allclose(l1_activity(code), per.mean())
    model = _model("sparse", code_activation="sigmoid", options={"beta": 1.0, "l1": 0.3})
    terms = model.variant.penalty(None, code, code.sigmoid(), model)
    assert set(terms) == {"kl_sparsity", "l1"}
    assert terms["l1"].item() == pytest.approx(0.3 * code.sigmoid().sum(1).mean().item(), rel=1e-6)
    relu = _model("sparse", code_activation="relu", options={"l1": 0.5})
    out = relu(torch.rand(6, 64))
    assert set(out.losses) == {"recon", "l1"}
    assert out.losses["l1"].item() == pytest.approx(0.5 * out.code.abs().sum(1).mean().item(), rel=1e-6)


def test_default_penalty_follows_the_code_units():
    sig = _model("sparse", code_activation="sigmoid").variant
    assert (sig.beta, sig.l1) == (3.0, 0.0)
    lin = _model("sparse").variant  # a bare ModelConfig has a linear code: L1 instead of KL
    assert lin.beta == 0.0 and lin.l1 > 0
    assert aekit.variants.get("sparse").defaults == {"code_activation": "sigmoid"}


@pytest.mark.parametrize("kw, match", [
    ({"options": {"rho": 0.0}}, "rho must be between 0 and 1"),
    ({"options": {"rho": 1.0}}, "rho must be between 0 and 1"),
    ({"options": {"beta": -1.0}}, "beta must be a non-negative number"),
    ({"options": {"l1": float("nan")}}, "l1 must be a non-negative number"),
    ({"options": {"beta": 0.0, "l1": 0.0}}, "use the ae variant"),
    ({"code_activation": "relu", "options": {"l1": 0.0}}, "use the ae variant"),
    ({"code_activation": "relu", "options": {"beta": 3.0}}, "needs sigmoid code units"),
    ({"options": {"sparsity": 0.1}}, "unknown option"),
])
def test_bad_sparse_options_are_refused(kw, match):
    with pytest.raises(ConfigError, match=match):
        _model("sparse", **kw)


def test_sparse_code_is_far_sparser_than_a_sigmoid_ae(digits01):
    common = dict(hidden=(64,), latent=32, loss="bce", epochs=6, progress=False, figures=False)
    ae = aekit.fit("ae", digits01, code_activation="sigmoid", **common)
    sparse = aekit.fit("sparse", digits01, rho=0.05, beta=3.0, **common)
    assert sparse.config.code_activation == "sigmoid"
    codes_ae, codes_sparse = ae.encode_array(digits01), sparse.encode_array(digits01)
    mean_ae, mean_sparse = codes_ae.mean(), codes_sparse.mean()  # about 0.83 and 0.06
    assert mean_sparse < 0.15 and mean_sparse < 0.2 * mean_ae
    last = sparse.history[-1]
    assert {"train_kl_sparsity", "train_mean_activation", "train_active_fraction",
            "val_mean_activation", "val_active_fraction"} <= set(last)
    assert "train_l1" not in last
    assert last["val_mean_activation"] == pytest.approx(mean_sparse, abs=0.02)
    assert sparse.history[0]["train_mean_activation"] > last["train_mean_activation"]
    assert 0 <= last["val_active_fraction"] < 0.1 < 0.5 < (codes_ae > 0.5).mean()


def test_cli_lists_the_options(capsys):
    for variant, flags in (("sparse", ("--rho", "--beta", "--l1")),
                           ("ksparse", ("--k ", "--alpha", "--k-start", "--k-schedule"))):
        with pytest.raises(SystemExit):
            main(["train", variant, "--help"])
        text = capsys.readouterr().out
        assert all(f in text for f in flags)


# -- k-sparse -------------------------------------------------------------------------------
def test_training_keeps_exactly_k_units_and_encoding_round_alpha_k():
    model = _model("ksparse", options={"k": 5, "alpha": 1.5})
    x = torch.rand(32, 64)  # continuous random inputs: no ties among code units
    h = model.encoder(x)
    z = model(x).code
    assert ((z != 0).sum(1) == 5).all()
    top = h.topk(5, dim=1).indices
    assert torch.equal(z.gather(1, top), h.gather(1, top))
    model.eval()
    assert ((model.encode(x) != 0).sum(1) == 8).all()  # round(7.5), halves up
    assert ((model(x).code != 0).sum(1) == 8).all()
    assert model.variant.kept(False) == 8
    wide = _model("ksparse", options={"k": 12, "alpha": 3.0}).eval()
    assert ((wide.encode(x) != 0).sum(1) == 16).all()  # at most the code size


def test_gradient_flows_only_through_the_kept_units():
    model = _model("ksparse", options={"k": 4})
    seen = {}

    def keep(module, inputs, out):
        out.retain_grad()
        seen["h"] = out

    model.encoder.register_forward_hook(keep)
    out = model(torch.rand(16, 64))
    out.loss.backward()
    g, kept = seen["h"].grad, out.code != 0
    assert (g[~kept] == 0).all()
    assert (g[kept] != 0).all()


def test_default_k_is_clamped_to_the_code_size_and_explicit_k_is_checked():
    assert _model("ksparse", latent=4).variant.k == 4
    assert _model("ksparse", latent=64).variant.k == 25
    assert _model("ksparse", options={"k": 4, "k_start": 10}).variant.k_current.item() == 4  # no trainer: k


@pytest.mark.parametrize("options, match", [
    ({"k": 0}, "k must be at least 1"),
    ({"k": 17}, r"k=17 exceeds the code size \(latent=16\)"),
    ({"k": 4, "k_start": 17}, "k_start=17 exceeds the code size"),
    ({"k": 8, "k_start": 4}, "k_start=4 must be at least k=8"),
    ({"alpha": 0.0}, "alpha must be a positive number"),
    ({"k_schedule": 0.0}, r"k_schedule must be in \(0, 1\]"),
    ({"k_schedule": 1.5}, r"k_schedule must be in \(0, 1\]"),
])
def test_bad_ksparse_options_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        _model("ksparse", options=options)


def test_schedule_values():
    ks = [scheduled_k(t, 100, 5, 25, 0.5) for t in range(100)]
    assert ks[0] == 25 and ks[25] == 15 and all(k == 5 for k in ks[50:])
    assert all(a >= b for a, b in zip(ks, ks[1:]))
    assert all(scheduled_k(t, 100, 5, None, 0.5) == 5 for t in (0, 10, 99))


class RecordK(Callback):
    """Records the k of each training step (the model's own callbacks run first and set it)."""

    def __init__(self):
        self.ks = []

    def on_train_begin(self, trainer):
        self.ks.append(trainer.model.variant.kept(True))

    def on_step_end(self, trainer, step, losses):
        if step < trainer.total_steps:
            self.ks.append(trainer.model.variant.kept(True))


def test_trainer_drives_the_schedule(digits01):
    model = _model("ksparse", options={"k": 3, "k_start": 15, "k_schedule": 0.5})
    rec = RecordK()
    hist = Trainer(model, TrainConfig(epochs=2, batch_size=100),
                   callbacks=[rec]).fit(torch.from_numpy(digits01[:1000]))
    total = 20
    assert rec.ks == [scheduled_k(t, total, 3, 15, 0.5) for t in range(total)]
    assert rec.ks[0] == 15 and rec.ks[10:] == [3] * 10
    assert hist[0]["train_k"] == pytest.approx(np.mean(rec.ks[:10])) and hist[1]["train_k"] == 3
    assert model.variant.kept(True) == 3


def test_dead_units_on_a_crafted_case(digits01):
    model = _model("ksparse", latent=6, options={"k": 2})
    last = model.encoder.linears[-1]
    with torch.no_grad():  # units 2..5 are constant -100: never in the top 2, and never trained
        last.weight[2:] = 0
        last.bias[2:] = -100
    hist = Trainer(model, TrainConfig(epochs=2, batch_size=100)).fit(torch.from_numpy(digits01[:500]))
    assert [(r["dead_units"], r["dead_fraction"]) for r in hist] == [(4, 4 / 6)] * 2
    # the counts of the running epoch: units 0 and 1 are selected by every example
    model.train()
    model(torch.from_numpy(digits01[:50]))
    assert model.variant.selected.tolist() == [50, 50, 0, 0, 0, 0]


def test_dead_units_in_the_history_of_a_fit_and_the_model_round_trips(digits01, tmp_path):
    model = aekit.fit("ksparse", digits01, out=tmp_path / "run", hidden=(64,), latent=32, k=5, k_start=20,
                      loss="bce", epochs=3, progress=False, figures=False)
    for r in model.history:
        assert isinstance(r["dead_units"], int) and 0 <= r["dead_units"] <= 27
        assert r["dead_fraction"] == r["dead_units"] / 32
    assert model.history[0]["train_k"] > model.history[-1]["train_k"] == 5
    loaded = aekit.load(tmp_path / "run")
    assert loaded.variant.kept(True) == 5
    assert np.array_equal(loaded.encode_array(digits01[:20]), model.encode_array(digits01[:20]))


def test_tied_weights(digits01):
    model = _model("ksparse", tied=True, options={"k": 4})
    assert not [k for k in model.state_dict() if k.startswith("decoder") and k.endswith("weight")]
    x = torch.from_numpy(digits01[:256])
    assert ((model(x).code != 0).sum(1) == 4).all()
    hist = Trainer(model, TrainConfig(epochs=3, batch_size=32, lr=3e-3)).fit(x)
    assert hist[-1]["train_recon"] < 0.8 * hist[0]["train_recon"]
    assert all("dead_units" in r for r in hist)


@pytest.mark.parametrize("interrupt_step", [6, 13])
def test_interrupted_run_with_the_schedule_resumes_bit_identically(tmp_path, digits01, interrupt_step):
    train, val = torch.from_numpy(digits01[:1000]), torch.from_numpy(digits01[1000:1300])
    cfg = TrainConfig(epochs=3, batch_size=128)
    options = {"k": 3, "k_start": 14, "k_schedule": 0.75}

    straight = _model("ksparse", options=options)
    hist_a = Trainer(straight, cfg, run_dir=tmp_path / "a").fit(train, val)

    first = _model("ksparse", options=options)
    with pytest.raises(Interrupted):
        Trainer(first, cfg, run_dir=tmp_path / "b",
                callbacks=[InterruptAt(interrupt_step)]).fit(train, val)
    resumed = _model("ksparse", seed=123, options=options)
    hist_b = Trainer(resumed, cfg, run_dir=tmp_path / "b").fit(train, val, resume=True)
    assert _same_weights(straight, resumed)
    keys = ("train_loss", "val_loss", "train_k", "dead_units")
    assert [[r[k] for k in keys] for r in hist_a] == [[r[k] for k in keys] for r in hist_b]


def test_a_ksparse_training_step_traces_into_one_graph_and_a_loaded_state_reads_k_again():
    """The scheduled k is read from the host's copy that follow_schedule keeps (int(k_current) was a
    read back from the device every step: a sync on an accelerator and a graph break under --compile), and
    the selections are counted at a fixed length (bincount's output shape depends on the data)."""
    import torch._dynamo

    torch._dynamo.reset()
    model = _model("ksparse", latent=6, options={"k": 2, "k_start": 5})
    model.train()
    model.variant.follow_schedule(0, 100)

    def loss(x):
        return sum(model(x).losses.values())

    explained = torch._dynamo.explain(loss)(torch.rand(8, model.config.input_dim))
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
    state = model.variant.state_dict()
    state["k_current"] = torch.tensor(3)
    model.variant.load_state_dict(state)  # a loaded state: k from the buffer, not the stale host copy
    assert model.variant.kept(True) == 3


def test_index_counts_is_bincount_at_a_fixed_length():
    from aekit.nn import index_counts

    idx = torch.tensor([[0, 3], [3, 5], [3, 0]])
    assert index_counts(idx, 7).tolist() == torch.bincount(idx.flatten(), minlength=7).tolist() == [2, 0, 0, 3, 0, 1, 0]
    assert index_counts(torch.zeros(0, dtype=torch.long), 3).tolist() == [0, 0, 0]
