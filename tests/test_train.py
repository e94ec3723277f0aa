import json
import math

import pytest
import torch
from torch import nn

from aekit import Autoencoder, Callback, ModelConfig, TrainConfig, Trainer, TrainingError
from aekit.train import CHECKPOINT, Interrupted
from helpers import InterruptAt


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Autoencoder(ModelConfig(input_dim=64, hidden=(32,), latent=6, **kw))


def _data(digits01):
    x = torch.from_numpy(digits01)
    return x[:1000], x[1000:1300]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("cfg", [
    dict(epochs=4, batch_size=64, schedule="cosine", optimizer="sgd", lr=0.05, clip_grad=1.0),
    dict(epochs=3, batch_size=100, schedule="onecycle", optimizer="adamw", weight_decay=1e-2, checkpoint_every=3),
    dict(epochs=3, batch_size=128, optimizer="adam", patience=5),
])
@pytest.mark.parametrize("interrupt_step", [7, 16])
def test_interrupted_run_resumes_to_bit_identical_weights(tmp_path, digits01, cfg, interrupt_step):
    train, val = _data(digits01)
    straight = _model()
    hist_a = Trainer(straight, TrainConfig(**cfg), run_dir=tmp_path / "a").fit(train, val)

    first = _model()
    with pytest.raises(Interrupted):
        Trainer(first, TrainConfig(**cfg), run_dir=tmp_path / "b",
                callbacks=[InterruptAt(interrupt_step)]).fit(train, val)
    # a fresh process would rebuild the model from scratch (different init seed on purpose)
    resumed = _model(seed=123)
    hist_b = Trainer(resumed, TrainConfig(**cfg), run_dir=tmp_path / "b").fit(train, val, resume=True)
    assert _same_weights(straight, resumed)
    assert [r["train_loss"] for r in hist_a] == [r["train_loss"] for r in hist_b]
    assert [r["val_loss"] for r in hist_a] == [r["val_loss"] for r in hist_b]


def test_resume_with_more_epochs_equals_longer_run(tmp_path, digits01):
    train, val = _data(digits01)
    long = _model()
    Trainer(long, TrainConfig(epochs=4), run_dir=tmp_path / "a").fit(train, val)
    short = _model()
    Trainer(short, TrainConfig(epochs=2), run_dir=tmp_path / "b").fit(train, val)
    resumed = _model()
    Trainer(resumed, TrainConfig(epochs=4), run_dir=tmp_path / "b").fit(train, val, resume=True)
    assert _same_weights(long, resumed)


def test_same_seed_same_weights_and_other_seed_differs(digits01):
    train, val = _data(digits01)
    a, b, c = _model(), _model(), _model()
    Trainer(a, TrainConfig(epochs=2, seed=1)).fit(train, val)
    Trainer(b, TrainConfig(epochs=2, seed=1)).fit(train, val)
    Trainer(c, TrainConfig(epochs=2, seed=2)).fit(train, val)
    assert _same_weights(a, b) and not _same_weights(a, c)


class Bomb(nn.Module):
    """A toy model whose loss becomes NaN at a given call: the trainer must stop cleanly."""

    def __init__(self, at):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))
        self.calls, self.at = 0, at

    def forward(self, x):
        if self.training:
            self.calls += 1
        loss = (self.w * x[:, :3]).pow(2).sum(1).mean()
        if self.calls >= self.at:
            loss = loss * float("nan")

        class Out:
            losses = {"toy": loss, "other": loss.detach() * 0}
        return Out()


def test_non_finite_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(tmp_path, digits01):
    train, _ = _data(digits01)
    model = Bomb(at=20)  # 1000 rows / 100 per batch: NaN in the 2nd epoch
    trainer = Trainer(model, TrainConfig(epochs=5, batch_size=100), run_dir=tmp_path)
    with pytest.raises(TrainingError, match=r"non-finite \(toy=nan.*epoch 2.*last good checkpoint"):
        trainer.fit(train)
    meta_trainer = Trainer(Bomb(at=10 ** 9), TrainConfig(epochs=5, batch_size=100), run_dir=tmp_path)
    meta_trainer.fit(train, resume=True)  # the kept checkpoint is good and resumable
    assert len(meta_trainer.history) == 5
    assert all(math.isfinite(r["train_loss"]) for r in meta_trainer.history)


def test_on_the_cpu_a_non_finite_loss_stops_before_its_update(digits01):
    """The CPU path reads every step's loss (it is on the host already): training stops at step k
    itself, with the weights from before step k."""
    train, _ = _data(digits01)
    model = Bomb(at=7)
    seen = []

    class Weights(Callback):
        def on_step_end(self, trainer, step, losses):
            seen.append(model.w.detach().clone())

    with pytest.raises(TrainingError, match=r"step 7\b"):
        Trainer(model, TrainConfig(epochs=1, batch_size=100), callbacks=[Weights()]).fit(train)
    assert len(seen) == 6 and torch.equal(model.w.detach(), seen[-1])


@pytest.mark.parametrize("every, at", [(4, 6), (4, 8), (4, 10), (3, 2)])
def test_a_deferred_finiteness_check_stops_by_the_next_read_and_names_the_first_bad_step(
    tmp_path, digits01, monkeypatch, every, at
):
    """On an accelerator the loss is read every N steps (no host sync per step): a NaN at step k
    stops training at the first read after it (step k rounded up to N, or the epoch's end), names
    step k, and no checkpoint is written between k and the stop (checkpoint_every=1 forces a read
    before each)."""
    monkeypatch.setattr(Trainer, "finite_check_every", every)
    train, _ = _data(digits01)
    model = Bomb(at=at)
    steps = []

    class Steps(Callback):
        def on_step_end(self, trainer, step, losses):
            steps.append(step)

    cfg = TrainConfig(epochs=1, batch_size=100)
    with pytest.raises(TrainingError, match=rf"epoch 1, step {at}\b"):
        Trainer(model, cfg, callbacks=[Steps()]).fit(train)
    assert steps[-1] == min(-(-at // every) * every, 10)  # the read after step k, or the epoch's last step
    # with a checkpoint after every step, each one is preceded by a read: the kept one is finite
    with pytest.raises(TrainingError, match=rf"step {at}\b.*last good checkpoint"):
        Trainer(Bomb(at=at), TrainConfig(epochs=1, batch_size=100, checkpoint_every=1), run_dir=tmp_path).fit(train)
    resumed = Trainer(Bomb(at=10**9), TrainConfig(epochs=1, batch_size=100), run_dir=tmp_path)
    resumed.fit(train, resume=True)
    assert resumed.global_step == 10 and math.isfinite(resumed.history[-1]["train_loss"])


def test_callbacks_read_a_steps_loss_terms_lazily_as_floats(digits01):
    train, _ = _data(digits01)
    got = []

    class Read(Callback):
        def on_step_end(self, trainer, step, losses):
            got.append((sorted(losses), losses["toy"], dict(losses)["other"]))

    Trainer(Bomb(at=10**9), TrainConfig(epochs=1, batch_size=500), callbacks=[Read()]).fit(train)
    assert [g[0] for g in got] == [["other", "toy"]] * 2
    assert all(isinstance(t, float) and t > 0 and o == 0.0 for _, t, o in got)


def test_early_stopping_and_history_file(tmp_path, digits01):
    train, val = _data(digits01)
    model = _model()
    # lr so small that the validation loss cannot improve by min_delta
    hist = Trainer(model, TrainConfig(epochs=10, lr=1e-9, patience=2, min_delta=1.0),
                   run_dir=tmp_path).fit(train, val)
    assert len(hist) == 3 and hist[-1]["early_stop"]
    on_disk = json.loads((tmp_path / "history.json").read_text())
    assert on_disk == json.loads(json.dumps(hist))
    assert {"train_loss", "train_recon", "val_loss", "val_recon", "lr", "samples_per_second"} <= set(hist[0])


def test_restore_best_keeps_the_best_validation_weights(digits01):
    train, val = _data(digits01)
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    model = _model()
    hist = Trainer(model, TrainConfig(epochs=4, lr=0.3, optimizer="sgd", momentum=0.99),
                   callbacks=[Snap()]).fit(train, val)
    best = min(hist, key=lambda r: r["val_loss"])["epoch"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in snapshots[best].items())


@pytest.mark.parametrize("schedule, check", [
    ("constant", lambda lrs: all(l == lrs[0] for l in lrs)),
    ("cosine", lambda lrs: lrs[0] > lrs[len(lrs) // 2] > lrs[-1] and lrs[-1] < 1e-6),
    ("onecycle", lambda lrs: max(lrs) == pytest.approx(1e-2, rel=0.02) and lrs[0] < 1.5e-3 and lrs[-1] < 1e-3),
])
def test_schedules(schedule, check, digits01):
    train, _ = _data(digits01)
    lrs = []

    class LR(Callback):
        def on_step_end(self, trainer, step, losses):
            lrs.append(trainer.optimizer.param_groups[0]["lr"])

    Trainer(_model(), TrainConfig(epochs=3, lr=1e-2, schedule=schedule), callbacks=[LR()]).fit(train)
    assert len(lrs) == 3 * math.ceil(1000 / 128)
    assert check(lrs)


def test_gradient_clipping_bounds_the_update_norm(digits01):
    train, _ = _data(digits01)
    norms = []
    model = _model()
    trainer = Trainer(model, TrainConfig(epochs=1, clip_grad=0.01))

    class Watch(Callback):
        def on_train_begin(self, trainer):
            trainer.optimizer.register_step_pre_hook(
                lambda opt, *a: norms.append(torch.norm(torch.stack(
                    [p.grad.norm() for g in opt.param_groups for p in g["params"]])).item()))

    trainer.callbacks.append(Watch())
    trainer.fit(train)
    assert norms and max(norms) <= 0.01 * (1 + 1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_reduces_the_loss(optimizer, digits01):
    train, val = _data(digits01)
    from aekit.train import evaluate_terms
    model = _model()
    before = evaluate_terms(model, val)["recon"]
    hist = Trainer(model, TrainConfig(epochs=5, optimizer=optimizer, lr=1e-2 if optimizer != "sgd" else 0.05)
                   ).fit(train, val)
    assert hist[-1]["val_loss"] < 0.5 * before


def test_callbacks_see_every_step_and_epoch_and_can_stop(digits01):
    train, _ = _data(digits01)
    seen = {"steps": 0, "epochs": 0, "begin": 0, "end": 0}

    class Count(Callback):
        def on_train_begin(self, t): seen["begin"] += 1
        def on_step_end(self, t, step, losses):
            seen["steps"] += 1
            assert set(losses) == {"recon"}
        def on_epoch_end(self, t, record):
            seen["epochs"] += 1
            if record["epoch"] == 2:
                t.stop()
        def on_train_end(self, t): seen["end"] += 1

    hist = Trainer(_model(), TrainConfig(epochs=10, batch_size=250), callbacks=[Count()]).fit(train)
    assert seen == {"steps": 8, "epochs": 2, "begin": 1, "end": 1} and len(hist) == 2


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, digits01):
    from aekit import RunError
    train, _ = _data(digits01)
    with pytest.raises(RunError, match="nothing to resume"):
        Trainer(_model(), TrainConfig(epochs=1), run_dir=tmp_path).fit(train, resume=True)
    assert not (tmp_path / CHECKPOINT).exists()


class Measured(nn.Module):
    """A toy model that reports a metric next to its loss term."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x):
        from aekit.model import Output
        loss = (self.w * x[:, :3]).pow(2).sum(1).mean()
        return Output(x, x, {"toy": loss}, x, {"mean_input": x.mean()})


def test_metrics_are_logged_but_not_optimised(digits01):
    train, val = _data(digits01)
    hist = Trainer(Measured(), TrainConfig(epochs=1, batch_size=1000)).fit(train, val)
    rec = hist[0]
    assert rec["train_mean_input"] == pytest.approx(float(train.mean()), rel=1e-5)
    assert rec["val_mean_input"] == pytest.approx(float(val.mean()), rel=1e-5)
    assert rec["train_loss"] == rec["train_toy"] and rec["val_loss"] == rec["val_toy"]


# -- bfloat16 mixed precision -----------------------------------------------------------------------
def _digits_fit(out, precision, callbacks=(), resume=False, variant="ae", **extra):
    import aekit
    X = aekit.load_data("digits").x[:640]
    kw = dict(latent=4, hidden=(32,), epochs=4, batch_size=64, seed=0, scale="unit", progress=False,
              figures=False, precision=precision, **extra)
    return aekit.fit(variant, X, out=out, callbacks=callbacks, resume=resume, **kw)


class LayerDtypes(Callback):
    """Records the dtype of every Linear layer's output in training steps (forward hooks)."""

    def on_train_begin(self, trainer):
        self.seen = set()
        for m in trainer.model.modules():
            if isinstance(m, nn.Linear):
                m.register_forward_hook(lambda mod, i, o: self.seen.add(o.dtype) if mod.training else None)


@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_bfloat16_mixed_precision_trains_in_bfloat16_and_keeps_float32_weights(tmp_path, variant):
    dtypes32, dtypes16 = LayerDtypes(), LayerDtypes()
    full = _digits_fit(tmp_path / "f32", "float32", [dtypes32], variant=variant)
    mixed = _digits_fit(tmp_path / "bf16", "bfloat16", [dtypes16], variant=variant)
    assert dtypes32.seen == {torch.float32} and dtypes16.seen == {torch.bfloat16}  # the products ran in bfloat16
    assert all(p.dtype == torch.float32 for p in mixed.parameters())  # weights (and the optimizer) in float32
    assert not torch.equal(full.encoder[0].weight, mixed.encoder[0].weight)  # a different arithmetic...
    a, b = full.history[-1], mixed.history[-1]
    for key in ("train_loss", "val_loss"):  # ...that trains as well: within 3% of float32
        assert b[key] == pytest.approx(a[key], rel=0.03), key
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["train"]["precision"] == "bfloat16"


def test_bfloat16_runs_are_deterministic_and_resume_exactly(tmp_path):
    once = _digits_fit(tmp_path / "a", "bfloat16", checkpoint_every=1).state_dict()
    again = _digits_fit(tmp_path / "b", "bfloat16", checkpoint_every=1).state_dict()
    assert all(torch.equal(once[k], again[k]) for k in once)
    with pytest.raises(Interrupted):
        _digits_fit(tmp_path / "cut", "bfloat16", [InterruptAt(13)], checkpoint_every=1)
    resumed = _digits_fit(tmp_path / "cut", "bfloat16", resume=True, checkpoint_every=1).state_dict()
    assert all(torch.equal(once[k], resumed[k]) for k in once)


def test_unknown_precision_is_refused():
    from aekit.errors import ConfigError
    with pytest.raises(ConfigError, match="precision"):
        _digits_fit(None, "float16")


# -- torch.compile ----------------------------------------------------------------------------------
class StepLosses(Callback):
    """Every step's summed loss, as a float."""

    def on_train_begin(self, trainer):
        self.losses = []

    def on_step_end(self, trainer, step, terms):
        self.losses.append(sum(terms[k] for k in terms))


def test_the_compiled_step_gives_the_eager_losses_to_float32_rounding_and_is_deterministic(tmp_path):
    """TrainConfig.compile runs the same arithmetic in other loops: fused elementwise work and float32
    sums in another order. The VAE with dynamic binarization draws random numbers in its forward pass
    (binarization, reparameterization); they must be the eager generator's, or the losses would differ
    by the sampling noise (tenths of a nat), not by rounding. 640 rows in batches of 64 and no
    validation split: one batch shape, one compilation (some 20-40 s)."""
    pytest.importorskip("torch._inductor")
    eager, fused, again = StepLosses(), StepLosses(), StepLosses()
    kw = dict(variant="vae", binarize=True, val_fraction=0.0, test_fraction=0.0)  # 4 epochs of 10 batches of 64
    a = _digits_fit(tmp_path / "eager", "float32", [eager], **kw)
    b = _digits_fit(tmp_path / "compiled", "float32", [fused], compile=True, **kw)
    c = _digits_fit(tmp_path / "again", "float32", [again], compile=True, **kw)
    assert len(eager.losses) == len(fused.losses) == 4 * 640 // 64
    # the first step, from the same weights: each term is a mean over B = 64 rows of sums over D = 64
    # features (or the latent's 4), so a reordering moves it by at most (D + B) ulps of its size
    eps32 = torch.finfo(torch.float32).eps
    assert abs(fused.losses[0] - eager.losses[0]) <= (64 + 64) * eps32 * abs(eager.losses[0])
    # later steps start from weights that differ by that rounding, carried through Adam's updates
    # (whose normalised steps turn a gradient difference into one of the same relative size): the
    # losses stay within some thousand ulps, far below the sampling noise a different draw would give
    for e, f in zip(eager.losses, fused.losses):
        assert abs(f - e) <= 1e-4 * abs(e)
    sb, sc = b.state_dict(), c.state_dict()
    assert fused.losses == again.losses and all(torch.equal(sb[k], sc[k]) for k in sb)  # same seed, same run
    assert not all(torch.equal(a.state_dict()[k], sb[k]) for k in sb)  # and the compiled loops did run
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["train"]["compile"] is True
