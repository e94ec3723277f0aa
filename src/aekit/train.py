"""The Trainer: it knows one thing about a model — that ``model(x).losses`` is a dict of
named scalar terms whose sum is minimised. It never branches on the variant.

Checkpoints are one safetensors file holding the model, the optimizer state, the best
weights so far, the RNG states and the data order of the current epoch, with the rest of
the state (epoch, step, schedule, early-stopping counters, history) as JSON metadata, and a
SHA-256 checksum of it all. They are written atomically (fsynced, then renamed into place; the
one replaced stays as ``checkpoint.prev.safetensors``), so a run killed at any moment resumes
from the last one, or from the previous one if the last is corrupted, and ends with the same
weights as an uninterrupted run (CPU, same seed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import distributed
from .callbacks import Callback, progress_bar
from .config import option
from .errors import ConfigError, RunError, TrainingError
from .io import (
    CHECKPOINT_FILES,
    HISTORY,
    atomic_write_json,
    read_safetensors,
    remove_stale_temporaries,
    write_safetensors,
)

#: arithmetic of the training forward pass (TrainConfig.precision)
PRECISIONS = ("float32", "bfloat16")
#: what a resumed run starts from, newest first: the newest checkpoint, and the one before it, kept so
#: that a corrupted newest one can fall back on it
CHECKPOINTS = CHECKPOINT_FILES
CHECKPOINT, PREVIOUS_CHECKPOINT = CHECKPOINTS
_log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings (saved as ``config.json["train"]``)."""

    epochs: int = option(
        300,
        "most passes over the training data (0: none, e.g. pretraining only); training ends earlier "
        "when the validation loss stops improving (--patience)",
    )
    batch_size: int = option(128, "examples per step")
    lr: float = option(1e-3, "learning rate (the peak rate for onecycle)")
    optimizer: str = option("adam", "optimizer", choices=("adam", "adamw", "sgd"))
    momentum: float = option(0.9, "momentum (sgd)")
    weight_decay: float = option(0.0, "weight decay (L2 for adam/sgd, decoupled for adamw)")
    schedule: str = option(
        "constant", "learning-rate schedule over all steps", choices=("constant", "cosine", "onecycle")
    )
    clip_grad: float | None = option(None, "clip the gradient norm to this value")
    patience: int | None = option(
        20,
        "stop after this many epochs without validation improvement (the training loss's without a "
        "validation split); none: train all --epochs",
    )
    min_delta: float = option(0.0, "smallest validation improvement that counts for early stopping")
    restore_best: bool = option(True, "keep the weights of the best validation epoch at the end")
    checkpoint_every: int = option(0, "also checkpoint every N steps inside an epoch (0: at epoch ends only)")
    checkpoint_seconds: float = option(
        10.0,
        "at an epoch end, checkpoint only when this many seconds have passed since the last checkpoint "
        "(the first and the last epoch, an early stop and an interruption always checkpoint; a resumed "
        "run repeats at most this much training, exactly; 0: every epoch end)",
    )
    seed: int = option(0, "seed of initialisation, data order and noise")
    device: str = option("cpu", "torch device: cpu, cuda, cuda:1, or auto")
    precision: str = option(
        "float32",
        "arithmetic of the training forward pass: float32, or bfloat16 mixed "
        "precision (matrix products and convolutions in bfloat16 under torch.autocast; weights, "
        "optimizer, losses and evaluation in float32): about 1.4x faster training on CPUs with "
        "AVX-512 BF16 or AMX and on recent GPUs, with rounding of about 3 significant digits",
        choices=PRECISIONS,
    )
    compile: bool = option(
        False,
        "compile the training forward pass and its loss with torch.compile (inductor fuses the "
        "elementwise work and its gradients; needs a C++ compiler on the CPU): tens of seconds of "
        "compilation on the first step of each batch shape, then faster steps; it changes the order "
        "of float32 sums, so a compiled run and an eager one agree to rounding, not bit for bit",
    )

    def validate(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"train.epochs must be >= 0 (0: no gradient training), got {self.epochs}")
        if self.batch_size <= 0:
            raise ConfigError(f"train.batch_size must be positive, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"train.lr must be a positive number, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(f"train.weight_decay must be a number >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if self.patience is not None and self.patience <= 0:
            raise ConfigError(f"train.patience must be positive, got {self.patience}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ConfigError(f"train.clip_grad must be positive, got {self.clip_grad}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"train.checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not (math.isfinite(self.checkpoint_seconds) and self.checkpoint_seconds >= 0):
            raise ConfigError(f"train.checkpoint_seconds must be a number >= 0, got {self.checkpoint_seconds}")

    def resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(self.device)
        except RuntimeError:
            raise ConfigError(f"train.device {self.device!r} is not a torch device") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"train.device is {self.device!r} but no CUDA device is available")
        return dev


class Interrupted(TrainingError):
    """Training was interrupted (SIGINT / SIGTERM or ``trainer.interrupt()``); a checkpoint was saved."""


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg``; Adam/AdamW use the fused kernel where torch has one."""
    fused: dict[str, Any] = {"fused": True}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


def make_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    """A per-step torch scheduler for ``cfg.schedule`` (None for constant)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total_steps, 2))
    return None


# -- checkpoint files ------------------------------------------------------------------------
_META_KEY = "aekit_trainer"
_META_FIELDS = (
    "epoch",
    "step_in_epoch",
    "global_step",
    "total_steps",
    "optimizer",
    "schedule",
    "best",
    "bad_epochs",
    "stopped",
    "history",
    "epoch_sums",
    "epoch_count",
)
_STATE_TENSORS = ("rng.torch", "rng.shuffle", "order")


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the JSON state of a checkpoint written by :meth:`Trainer.save_checkpoint`,
    its checksum verified; RunError for a missing, truncated, corrupted or foreign file (a pickle is
    refused unread)."""
    tensors, metadata = read_safetensors(path)
    try:
        meta = json.loads(metadata[_META_KEY])
    except (KeyError, TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise RunError(f"{path}: not an aekit checkpoint (no training state in its metadata)")
    missing = [k for k in _META_FIELDS if k not in meta] + [k for k in _STATE_TENSORS if k not in tensors]
    if missing:
        raise RunError(f"{path}: not a complete aekit checkpoint (missing {', '.join(missing)})")
    return tensors, meta


# -- optimizer state <-> (tensors, JSON) ---------------------------------------------------
def _flatten_optimizer(state: dict[str, Any], prefix: str = "optim.") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], prefix: str = "optim."
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


#: the checkpoint's tensors of an auxiliary optimizer (a variant's own, e.g. FactorVAE's discriminator)
_AUX_PREFIX = "auxoptim."


class Trainer:
    """Minimise the sum of a model's named loss terms.

    Parameters
    ----------
    model : nn.Module
        Returns an object with a ``losses`` dict of scalar tensors from ``model(x)``. A model with a
        ``training_callbacks()`` method (an :class:`~aekit.model.Autoencoder` whose variant follows a
        schedule) contributes the callbacks it returns, ahead of ``callbacks``. A model with
        ``optimized_parameters()`` has only those updated by the optimizer; one whose
        ``auxiliary_optimizer()`` returns an optimizer (a variant that trains an auxiliary model, e.g.
        FactorVAE's discriminator) has ``auxiliary_step(x, out)`` called after every optimizer step on
        the same batch, and that optimizer's state checkpointed with the rest.
    config : TrainConfig
    run_dir : path, optional
        Where ``checkpoint.safetensors`` and ``history.json`` are written.
    callbacks : sequence of Callback
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.
    """

    # the state of a fit (set by fit(), or restored by _resume())
    _best: float | None
    _best_state: dict[str, torch.Tensor] | None
    _sums: dict[str, float]

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        run_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool | None = None,
    ):
        self.model = model
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        own = getattr(model, "training_callbacks", None)
        self.callbacks = [*(own() if callable(own) else ()), *callbacks]
        self.progress = sys.stderr.isatty() if progress is None else progress
        distributed.init_from_env()  # under torchrun: join the process group (once per process)
        self.device = distributed.local_device(config.resolve_device())
        self.history: list[dict[str, Any]] = []
        self._saved_at: float | None = None  # monotonic time of the current fit's last checkpoint
        #: the metrics of the step a callback's ``on_step_end`` is told of (the variant's and its
        #: auxiliary model's, e.g. a VAE's ``kl_nats``), floats read only when asked for
        self.step_metrics: Mapping[str, float] = {}
        self._stop = False
        self._interrupt = False

    # -- progress, for callbacks ---------------------------------------------------------------
    @property
    def global_step(self) -> int:
        """Optimizer steps taken so far (restored on resume)."""
        return self._global_step

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run (epochs x steps per epoch)."""
        return self._total_steps

    @property
    def train_size(self) -> int:
        """Rows of the training set of the current fit (all processes' together)."""
        return self._train_size

    # -- control -------------------------------------------------------------------------------
    def stop(self) -> None:
        """End training after the current epoch (like early stopping)."""
        self._stop = True

    def interrupt(self) -> None:
        """Checkpoint after the current step and raise :class:`Interrupted`."""
        self._interrupt = True

    # -- state ---------------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, torch.Tensor]:
        t = {f"model.{k}": v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        opt_t, self._opt_meta = _flatten_optimizer(self.optimizer.state_dict())
        t.update(opt_t)
        self._aux_meta = None
        if self._aux_opt is not None:
            aux_t, self._aux_meta = _flatten_optimizer(self._aux_opt.state_dict(), _AUX_PREFIX)
            t.update(aux_t)
        if self._best_state is not None:
            t.update({f"best.{k}": v for k, v in self._best_state.items()})
        t["rng.torch"] = torch.get_rng_state()
        t["rng.shuffle"] = self._gen.get_state()
        t["order"] = self._order.cpu()
        if torch.cuda.is_available() and self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return t

    def save_checkpoint(self) -> Path:
        """Write the full training state atomically to ``run_dir/checkpoint.safetensors``."""
        if self.run_dir is None:
            raise RunError("this trainer has no run directory to checkpoint into")
        tensors = self._state_tensors()
        meta = {
            "epoch": self._epoch,
            "step_in_epoch": self._pos,
            "global_step": self._global_step,
            "total_steps": self._total_steps,
            "optimizer": self._opt_meta,
            "auxiliary_optimizer": self._aux_meta,
            "schedule": self._sched.state_dict() if self._sched is not None else None,
            "best": self._best,
            "bad_epochs": self._bad_epochs,
            "stopped": self._stop,
            "history": self.history,
            "epoch_sums": self._sums,
            "epoch_count": self._count,
        }
        # checksummed, fsynced, renamed into place; the one it replaces stays as PREVIOUS_CHECKPOINT
        self._saved_at = time.monotonic()
        return write_safetensors(self.run_dir / CHECKPOINT, tensors, {_META_KEY: json.dumps(meta)}, keep_previous=True)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (RunError for a missing, truncated,
        corrupted or foreign file, before any state is changed)."""
        path = Path(path)
        self._apply_checkpoint(path, *read_checkpoint(path))

    def _resume(self) -> Path:
        """Restore the newest good checkpoint of ``run_dir``: ``checkpoint.safetensors``, else (with a
        warning) the previous one; RunError when there is none or none is good."""
        if self.run_dir is None:
            raise RunError(f"nothing to resume: no run directory to read {CHECKPOINT} from")
        remove_stale_temporaries(self.run_dir, (CHECKPOINT, HISTORY))
        found = [self.run_dir / name for name in CHECKPOINTS if (self.run_dir / name).exists()]
        if not found:
            raise RunError(f"nothing to resume: no {CHECKPOINT} in {self.run_dir}")
        problems = []
        for path in found:
            try:
                state = read_checkpoint(path)
            except RunError as e:
                problems.append(str(e))
                continue
            if problems:
                _log.warning("aekit: warning: %s; resuming from the previous checkpoint %s", problems[-1], path)
            self._apply_checkpoint(path, *state)
            return path
        raise RunError(f"cannot resume {self.run_dir}: no good checkpoint ({'; '.join(problems)})")

    def _apply_checkpoint(self, path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        done, partial = meta["epoch"], meta["step_in_epoch"] > 0
        if self.config.epochs < done + partial:
            trained = f"{done} epoch(s)" + (" and part of the next" if partial else "")
            raise ConfigError(
                f"{path}: the run has already trained {trained}, more than epochs="
                f"{self.config.epochs}; pass at least {done + partial} epochs to resume it"
            )
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state)
        except RuntimeError as e:
            raise RunError(f"{path}: checkpoint does not fit this model ({str(e).splitlines()[0]})") from None
        self.model.to(self.device)
        self.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        if self._aux_opt is not None:
            if meta.get("auxiliary_optimizer") is None:
                raise RunError(f"{path}: the checkpoint holds no state of the model's auxiliary optimizer")
            self._aux_opt.load_state_dict(_unflatten_optimizer(tensors, meta["auxiliary_optimizer"], _AUX_PREFIX))
        if self._sched is not None and meta["schedule"] is not None:
            self._sched.load_state_dict(meta["schedule"])
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self._best_state = best or None
        torch.set_rng_state(tensors["rng.torch"])
        self._gen.set_state(tensors["rng.shuffle"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self._order = tensors["order"].to(self.device)
        if self._sched is not None and meta["total_steps"] != self._total_steps:
            raise RunError(
                f"{path}: cannot change the number of epochs or the batch size when resuming a run "
                f"with the {self.config.schedule} schedule"
            )
        self._epoch, self._pos = meta["epoch"], meta["step_in_epoch"]
        self._global_step = meta["global_step"]
        self._best, self._bad_epochs, self._stop = meta["best"], meta["bad_epochs"], meta["stopped"]
        self.history = meta["history"]
        self._sums, self._count = meta["epoch_sums"], meta["epoch_count"]

    # -- the loop ------------------------------------------------------------------------------
    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None, *, resume: bool = False) -> list[dict]:
        """Train on the rows of ``train`` (validating on ``val`` each epoch); return the history.

        ``train`` and ``val`` are tensors, or :class:`aekit.data.stream.StreamingRows` for data read
        from disk a window at a time. With ``resume=True`` the state is restored from ``run_dir/checkpoint.safetensors``
        and training continues exactly where it stopped.
        """
        cfg = self.config
        if len(train) == 0:
            raise ConfigError("the training set is empty")
        train = train.to(self.device)
        val = val.to(self.device) if val is not None and len(val) else None
        n, b = len(train), cfg.batch_size
        steps_per_epoch = math.ceil(n / b)
        self.model.to(self.device)
        self._dp = distributed.DataParallel(self.device)  # several processes: each its part of every batch
        wrapped = self._dp.wrap(self.model)
        self._forward: Callable[[torch.Tensor], Any] = compiled(wrapped) if cfg.compile else wrapped
        self.progress = self.progress and self._dp.is_main
        own_params = getattr(self.model, "optimized_parameters", None)
        self.optimizer = make_optimizer(own_params() if callable(own_params) else self.model.parameters(), cfg)
        own_aux = getattr(self.model, "auxiliary_optimizer", None)
        self._aux_opt = own_aux() if callable(own_aux) else None
        if self._aux_opt is not None and self._dp.active:
            raise ConfigError(
                "a model that trains an auxiliary model of its own (its own optimizer and step) cannot be "
                "trained data-parallel: the auxiliary model's gradients are not averaged across processes"
            )
        self._train_size = n  # every process holds the whole set and trains on its part of each batch
        self._total_steps = cfg.epochs * steps_per_epoch
        self._sched = make_schedule(self.optimizer, cfg, self._total_steps)
        self._gen = torch.Generator().manual_seed(cfg.seed)
        self._order = _shuffled(train, self._gen).to(self.device)
        self._epoch = self._pos = self._global_step = 0
        self._saved_at = None
        self._best = None
        self._best_state = None
        self._bad_epochs = 0
        self._sums = {}
        self._count = 0
        self.history = []
        if resume:
            self._resume()
            if len(self._order) != n:
                raise RunError(
                    f"cannot resume: the checkpoint was made on {len(self._order)} training rows, this data has {n}"
                )
            if not self._dp.is_main:  # the checkpoint's partial sums of the epoch are all processes'
                self._sums, self._count = dict.fromkeys(self._sums, 0.0), 0
            follow = getattr(train, "follow", None)
            if callable(follow):  # streamed data reads ahead in the restored order
                follow(self._order)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with _SignalGuard(self):
            while self._epoch < cfg.epochs and not self._stop:
                self._run_epoch(train, val, steps_per_epoch)
        if cfg.restore_best and self._best_state is not None:
            self.model.load_state_dict(self._best_state)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return self.history

    def _run_epoch(self, train: torch.Tensor, val: torch.Tensor | None, steps: int) -> None:
        cfg, model, dp = self.config, self.model, self._dp
        b = cfg.batch_size
        if self._pos == 0:
            self._sums, self._count = {}, 0
        # tensors (floats after the distributed collection at a checkpoint, until the next step adds to them)
        sums: dict[str, Any] = {k: torch.tensor(v, dtype=torch.float64) for k, v in self._sums.items()}
        t0 = time.perf_counter()
        done_before = self._count
        bar = progress_bar(self.progress, steps, self._pos, f"epoch {self._epoch + 1}/{cfg.epochs}")
        model.train()
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]
        check_every = self.finite_check_every
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)  # the epoch's first non-finite step
        # bfloat16: the forward under autocast; the backward pass and the update in float32
        amp = (
            functools.partial(torch.autocast, self.device.type, torch.bfloat16)
            if cfg.precision == "bfloat16"
            else contextlib.nullcontext
        )
        try:
            for step in range(self._pos, steps):
                batch = self._order[step * b : (step + 1) * b]
                rows, nb = dp.shard(batch)  # all of it, or this process's part of the global batch
                xb = train[rows]
                dp.seed_step(cfg.seed, self._global_step)
                with amp():
                    out = self._forward(xb)
                loss = sum(out.losses.values())
                self.optimizer.zero_grad(set_to_none=True)
                (loss * dp.loss_weight(nb, len(batch)) if dp.active else loss).backward()
                if dp.active:
                    value = loss.item()  # summed over the processes in sync_step below
                elif check_every == 1:  # the host holds the value already (CPU): checked before the update
                    if not math.isfinite(loss.item()):
                        self._diverged(out.losses, step)
                else:  # on an accelerator: the first non-finite step noted on the device, read every N steps
                    bad = ~torch.isfinite(loss.detach())
                    first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
                if cfg.clip_grad is not None:
                    nn.utils.clip_grad_norm_(params, cfg.clip_grad, foreach=True)
                self.optimizer.step()
                if self._sched is not None:
                    self._sched.step()
                # a variant's own model (e.g. a discriminator): its update on the same batch, its metrics
                aux = model.auxiliary_step(xb, out) if self._aux_opt is not None else {}  # type: ignore[operator]
                for k, v in [*_named_values(out), *((METRIC + k, v) for k, v in aux.items())]:
                    d = v.detach().double() * nb
                    sums[k] = sums[k] + d if k in sums else d
                self._count += nb
                self._global_step += 1
                self._pos = step + 1
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0 or step == steps - 1:
                        bar.set_postfix(
                            {k.removeprefix(METRIC): f"{float(v) / self._count:.4g}" for k, v in sums.items()},
                            refresh=False,
                        )
                if self.callbacks:
                    terms = _Floats(out.losses)  # read (a host sync each) only by a callback that asks
                    self.step_metrics = _Floats({**getattr(out, "metrics", {}), **aux})
                    for cb in self.callbacks:
                        cb.on_step_end(self, self._global_step, terms)
                interrupt = self._interrupt
                checkpointing = interrupt or bool(
                    cfg.checkpoint_every and self._global_step % cfg.checkpoint_every == 0 and self._pos < steps
                )
                if check_every > 1 and (checkpointing or step == steps - 1 or (step + 1) % check_every == 0):
                    self._check_finite(first_bad, out.losses)  # before any checkpoint or epoch end
                if dp.active:  # every process stops (or diverges) at the same step
                    value, interrupt = dp.sync_step(value, nb, len(batch), interrupt)
                    if not math.isfinite(value):
                        self._diverged(out.losses, step)
                    checkpointing = checkpointing or interrupt
                if checkpointing:
                    if dp.active:
                        sums, self._count = dp.collect(sums, self._count)
                    self._sums = {k: float(v) for k, v in sums.items()}
                    if self.run_dir is not None and dp.is_main:
                        self.save_checkpoint()
                    if interrupt:
                        distributed.barrier()  # no process exits before rank 0 has saved
                        raise Interrupted(
                            f"training interrupted at epoch {self._epoch + 1}, step {self._pos}; resume with --resume"
                        )
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.perf_counter() - t0
        if dp.active:  # the epoch's sums over all processes
            sums, (self._count, done_before) = dp.total(sums, self._count, done_before)
        record: dict[str, Any] = {
            "epoch": self._epoch + 1,
            "step": self._global_step,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        record.update(_summary("train", {k: float(v) / self._count for k, v in sums.items()}))
        if val is not None and dp.is_main:
            record.update(_summary("val", evaluate_terms(model, val, batch_size=max(1024, b), metrics=True)))
        record["seconds"] = elapsed
        record["samples_per_second"] = (self._count - done_before) / elapsed if elapsed > 0 else None
        record = dp.broadcast(record)  # rank 0's validation and timing, the same record everywhere
        monitored = record.get("val_loss", record["train_loss"])
        if self._best is None or monitored < self._best - cfg.min_delta:
            self._best, self._bad_epochs = monitored, 0
            if cfg.restore_best and val is not None:
                self._best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            self._bad_epochs += 1
            if cfg.patience is not None and self._bad_epochs >= cfg.patience:
                record["early_stop"] = True
                self._stop = True
        self.history.append(record)
        self._epoch += 1
        self._pos = 0
        self._order = _shuffled(train, self._gen).to(self.device)
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)
        self._sums, self._count = {}, 0
        self._stop, interrupt = dp.any(self._stop, self._interrupt)  # the same decision in every process
        if self.run_dir is not None and dp.is_main:
            if self._epoch_checkpoint_due(interrupt):
                self.save_checkpoint()
            atomic_write_json(self.run_dir / HISTORY, self.history)
        if interrupt:
            distributed.barrier()
            raise Interrupted(f"training interrupted after epoch {self._epoch}; resume with --resume")

    def _epoch_checkpoint_due(self, interrupt: bool) -> bool:
        """Whether this epoch end writes a checkpoint: the first of the fit, the last (all epochs
        run or an early stop), an interruption, or ``checkpoint_seconds`` since the last one. Each
        checkpoint costs a serialisation, checksum and fsync of the weights, the optimizer's moments
        and the best state (tens of milliseconds for a small model): at every end of short epochs
        it was a fifth of a small run's time. Resuming from an older checkpoint repeats the epochs
        since, bit for bit."""
        if interrupt or self._stop or self._epoch >= self.config.epochs or self._saved_at is None:
            return True
        return time.monotonic() - self._saved_at >= self.config.checkpoint_seconds

    @property
    def finite_check_every(self) -> int:
        """Optimizer steps between two reads of the loss's finiteness on the host: 1 on the CPU,
        where the value is on the host already and a non-finite loss stops training before its
        update; :data:`FINITE_CHECK_EVERY` on an accelerator, where every read waits for the
        device (a non-finite step is noted on the device, and training stops at the next read,
        which comes before every checkpoint and epoch end: the last good checkpoint stays)."""
        return 1 if self.device.type == "cpu" else FINITE_CHECK_EVERY

    def _check_finite(self, first_bad: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        step = int(first_bad)
        if step >= 0:
            self._diverged(losses, step)

    def _diverged(self, losses: dict[str, torch.Tensor], step: int) -> None:
        vals = {k: float(v.detach()) for k, v in losses.items()}
        bad = ", ".join(f"{k}={v}" for k, v in vals.items() if not math.isfinite(v))
        where = (
            f"; the last good checkpoint is kept in {self.run_dir / CHECKPOINT}"
            if self.run_dir is not None and (self.run_dir / CHECKPOINT).exists()
            else ""
        )
        raise TrainingError(
            f"the loss became non-finite ({bad}) at epoch {self._epoch + 1}, step {step + 1}; "
            f"try a lower --lr or --clip-grad{where}"
        )


METRIC = "metric:"


def compiled(forward: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    """``forward`` through ``torch.compile`` for :attr:`TrainConfig.compile`: one graph per batch shape
    (``dynamic=False``: the full batches and an epoch's last, shorter one), and the random draws
    (reparameterization, dynamic binarization, corruption) from the eager generators
    (``fallback_random``), so that a compiled step draws the same numbers as an eager one and the
    seed still fixes them."""
    return torch.compile(forward, dynamic=False, options={"fallback_random": True})


#: :attr:`Trainer.finite_check_every` on an accelerator.
FINITE_CHECK_EVERY = 32


class _Floats(Mapping):
    """A step's loss terms as floats for the callbacks, each read from its tensor (a host sync on
    an accelerator) only when a callback asks for it."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self._tensors = tensors
        self._values: dict[str, float] = {}

    def __getitem__(self, key: str) -> float:
        if key not in self._values:
            self._values[key] = float(self._tensors[key].detach())
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def _shuffled(train: Any, generator: torch.Generator) -> torch.Tensor:
    """An epoch's order of the training rows: a uniform permutation, or the data's own
    (:class:`aekit.data.stream.StreamingRows` shuffles by shard and within windows)."""
    own = getattr(train, "permutation", None)
    return own(generator) if callable(own) else torch.randperm(len(train), generator=generator)


def _named_values(out: Any) -> list[tuple[str, torch.Tensor]]:
    """Loss terms by name, then metrics (logged, not optimised) with the ``metric:`` prefix."""
    return [*out.losses.items(), *((METRIC + k, v) for k, v in getattr(out, "metrics", {}).items())]


def _summary(split: str, means: dict[str, float]) -> dict[str, float]:
    """History entries ``{split}_{name}`` for every term and metric, and ``{split}_loss``, the
    sum of the loss terms."""
    out = {f"{split}_{k.removeprefix(METRIC)}": v for k, v in means.items()}
    out[f"{split}_loss"] = sum(v for k, v in means.items() if not k.startswith(METRIC))
    return out


def evaluate_terms(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, metrics: bool = False
) -> dict[str, float]:
    """Mean of each loss term (and, with ``metrics=True``, each metric, prefixed ``metric:``) over
    the rows of ``x`` in eval mode (no corruption, no dropout)."""
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    try:
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xb = x[i : i + batch_size]
                out = model(xb)
                for k, v in _named_values(out) if metrics else out.losses.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * len(xb)
    finally:
        model.train(was)
    return {k: v / len(x) for k, v in sums.items()}


class _SignalGuard:
    """Turn SIGINT / SIGTERM into a checkpoint after the current step (main thread only).

    Further signals change nothing: the trainer still finishes the step and writes the checkpoint,
    so that a double Ctrl-C (or torchrun passing one Ctrl-C on a second time) ends like a single
    one, with a run that ``--resume`` continues; a signal that arrived in the middle of writing the
    checkpoint would otherwise leave none. A step is short, and a process killed outright (SIGKILL)
    resumes from its last checkpoint as well."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.trainer._interrupt = True

    def __enter__(self) -> _SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, h in self.previous.items():
            signal.signal(s, h)
