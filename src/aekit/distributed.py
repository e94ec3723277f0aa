"""Data-parallel training in several processes (PyTorch ``DistributedDataParallel``).

A process takes part in a distributed run when ``torchrun`` (or ``aekit train --nproc N``,
which starts the processes the same way on one machine) gave it the environment variables
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`init_from_env` joins that process group once per process: gloo for tensors on the
CPU, NCCL for tensors on CUDA devices (both where CUDA is available).

How the :class:`~aekit.train.Trainer` trains with ``W`` processes (:class:`DataParallel`):

- every process draws the same permutation of the training rows (same seed), cuts it into
  the same global batches of ``batch_size`` rows, and takes its own contiguous part of each
  (``batch_size / W`` rows, up to one more or less);
- the model is wrapped in ``DistributedDataParallel``, which averages the gradients over the
  processes; each process's loss is weighted by its share of the batch, so the averaged
  gradient is the gradient of the mean loss over the whole global batch, the same as one
  process with the same batch size (up to the order of floating-point sums);
- the logged losses are sums over all processes; only rank 0 validates, shows progress and
  writes the run directory (configuration, checkpoints, history, model, figures); every
  process reads the checkpoint on resume (a shared file system across machines);
- a signal that reaches any process (Ctrl-C, SIGTERM) stops all of them after the same step.

Loss terms computed from statistics of the whole batch (the ``sparse`` variant's KL penalty
on the batch-mean activation) are computed per process, over its ``batch_size / W`` rows, and
statistics a variant gathers in buffers during training (VAE posterior statistics, k-sparse
selection counts) come from rank 0's rows (``DistributedDataParallel`` broadcasts rank 0's
buffers).
"""

from __future__ import annotations

import atexit
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .errors import AekitError, ConfigError, DataError, RunError, TrainingError

#: the variables torchrun sets for each process, read by :func:`init_from_env`
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
#: how long a collective waits for a missing process before failing
TIMEOUT = datetime.timedelta(minutes=10)
#: seconds the launcher waits for the other processes after one failed, before killing them
GRACE_SECONDS = 20.0
#: exit status of an interrupted (checkpointed) training process (``aekit.cli.EXIT_INTERRUPTED``)
INTERRUPTED = 130

_owned = False  # this module initialised the process group (and tears it down at exit)


class DistributedError(TrainingError):
    """A process of a distributed run cannot start, or lost contact with the others."""


# -- the process group -----------------------------------------------------------------------
def _env_int(name: str) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def launched() -> bool:
    """True when torchrun's environment describes a run of more than one process."""
    return "WORLD_SIZE" in os.environ and _env_int("WORLD_SIZE") > 1


def initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def active() -> bool:
    """True inside a process group of more than one process."""
    return initialized() and torch.distributed.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return torch.distributed.get_rank() if initialized() else 0


def world_size() -> int:
    """The number of processes (1 outside a process group)."""
    return torch.distributed.get_world_size() if initialized() else 1


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; 0 when not launched)."""
    return _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0


def is_main() -> bool:
    """True for rank 0, the process that writes files (and outside any process group)."""
    return rank() == 0


def backend() -> str:
    """``gloo`` on a machine without CUDA; else gloo for CPU tensors and NCCL for CUDA tensors."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_from_env() -> bool:
    """Join the process group described by torchrun's environment variables, once per process.

    Returns True when this process is (now) in a process group of several processes; False
    when the environment describes no distributed run (nothing is done). The group is torn
    down at exit (or by :func:`teardown`).
    """
    global _owned
    if initialized():
        return active()
    if not launched():
        return False
    if not torch.distributed.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed; it cannot train in several processes")
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE is set but {', '.join(missing)} is not; start the processes with "
            f"torchrun or aekit train --nproc"
        )
    if torch.cuda.is_available() and local_rank() < torch.cuda.device_count():
        torch.cuda.set_device(local_rank())
    try:
        torch.distributed.init_process_group(backend(), timeout=TIMEOUT)
    except (RuntimeError, ValueError) as e:
        raise DistributedError(
            f"cannot join the process group at {os.environ['MASTER_ADDR']}:"
            f"{os.environ['MASTER_PORT']} as rank {os.environ['RANK']} "
            f"({str(e).splitlines()[0]})"
        ) from None
    _owned = True
    atexit.register(teardown)
    return active()


def teardown() -> None:
    """Leave the process group if :func:`init_from_env` joined it."""
    global _owned
    if _owned and initialized():
        torch.distributed.destroy_process_group()
    _owned = False


def leave() -> bool:
    """End a distributed command: wait for every process, then leave the process group together
    (before the interpreter's exit, whose finalization may otherwise meet gloo's threads still at work).

    Returns True on rank 0, the one process that reports, and outside a process group.
    """
    if not active():
        return True
    barrier()
    main = is_main()
    teardown()
    return main


def barrier() -> None:
    """Wait for every process (nothing outside a process group)."""
    if active():
        torch.distributed.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj``, on every process (``obj`` itself outside a process group)."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


_ERRORS = {cls.__name__: cls for cls in (ConfigError, DataError, RunError, TrainingError, DistributedError)}


def on_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on rank 0 only (the others wait) and return its result on rank 0, None elsewhere.

    An error on rank 0 is raised on every process: the same aekit error class and sentence
    (other exceptions stay on rank 0, the others raise :class:`DistributedError`).
    """
    if not active():
        return fn(*args, **kwargs)
    result, failure, error = None, None, None
    if is_main():
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # re-raised below, after the others heard of it
            error = e
            name = type(e).__name__ if isinstance(e, AekitError) and type(e).__name__ in _ERRORS else ""
            failure = (name, str(e) if name else f"rank 0 failed: {type(e).__name__}: {e}")
    failure = broadcast(failure)
    if error is not None:
        raise error
    if failure is not None:
        raise _ERRORS.get(failure[0], DistributedError)(failure[1])
    return result


def local_device(device: torch.device) -> torch.device:
    """The device of this process for the configured ``device``: ``cuda`` (no index) becomes
    ``cuda:LOCAL_RANK`` in a distributed run."""
    if device.type != "cuda" or device.index is not None or not launched():
        return device
    index, count = local_rank(), torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"process {index} on this machine has no GPU of its own ({count} visible); start at most "
            f"{count} processes per machine or train with --device cpu"
        )
    return torch.device("cuda", index)


def peer_failure(error: BaseException) -> str | None:
    """One sentence for an error raised because another process stopped (None for others)."""
    dist_error = getattr(torch.distributed, "DistError", None)
    text = str(error)
    lost = (
        "Connection closed by peer",
        "Connection reset by peer",
        "Broken pipe",
        "Socket Timeout",
        "NCCL communicator was aborted",
        "failed to recv",
        "Timed out",
    )
    if (dist_error is not None and isinstance(error, dist_error)) or (
        isinstance(error, RuntimeError) and any(s in text for s in lost)
    ):
        first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
        return f"rank {rank()} lost contact with the other training processes ({first[:200]})"
    return None


# -- what the Trainer does differently ----------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _mix(*values: int) -> int:
    """A 64-bit hash of integers (splitmix64 steps): seeds of the other processes' RNG streams."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 31)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 29
    return h


class DataParallel:
    """The Trainer's view of the processes training one model together.

    Outside a process group (or with one process) every method is a cheap identity, so the
    single-process loop is unchanged.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.active = active()
        self.rank = rank()
        self.world = world_size()
        self.is_main = self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to call in training: ``DistributedDataParallel(model)`` (which makes every
        process start from rank 0's weights and averages the gradients), or ``model`` itself."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids, output_device=ids[0] if ids else None)

    def shard(self, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        """This process's rows of a global batch of row indices, and how many of them are real.

        Every process gets a contiguous part (sizes differ by at most one). A process left
        without rows (a last batch smaller than the number of processes) gets the batch's
        first row, with weight zero, so that it still takes part in the gradient average.
        """
        if not self.active:
            return batch, len(batch)
        rows = torch.tensor_split(batch, self.world)[self.rank]
        return (rows, len(rows)) if len(rows) else (batch[:1], 0)

    def loss_weight(self, n_local: int, n_global: int) -> float:
        """Factor on this process's mean loss so that the average over the processes of the
        gradients equals the gradient of the mean loss over the global batch."""
        return n_local * self.world / n_global

    def seed_step(self, seed: int, step: int) -> None:
        """Give the processes other than rank 0 their own random stream for ``step``, a
        function of (seed, step, rank): noise differs between processes, and a resumed run
        draws the same as an uninterrupted one (rank 0's stream is the checkpointed one)."""
        if self.active and not self.is_main:
            torch.manual_seed(_mix(seed, step, self.rank))

    def sync_step(self, value: float, n_local: int, n_global: int, interrupt: bool) -> tuple[float, bool]:
        """The mean loss of the global batch and whether any process was interrupted."""
        t = torch.tensor(
            [value * n_local if n_local else 0.0, float(interrupt)], dtype=torch.float64, device=self.device
        )
        torch.distributed.all_reduce(t)
        return float(t[0]) / n_global, bool(t[1] > 0)

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true when it is true on any process."""
        if not self.active:
            return flags
        t = torch.tensor([float(f) for f in flags], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return tuple(bool(v > 0) for v in t)

    def total(self, sums: dict[str, Any], *counts: int) -> tuple[dict[str, float], list[int]]:
        """Sums of the named values and of the counts over all processes."""
        names = sorted(sums)
        t = torch.tensor(
            [*(float(c) for c in counts), *(float(sums[k]) for k in names)], dtype=torch.float64, device=self.device
        )
        torch.distributed.all_reduce(t)
        values = t.tolist()
        return dict(zip(names, values[len(counts) :])), [round(v) for v in values[: len(counts)]]

    def collect(self, sums: dict[str, Any], count: int) -> tuple[dict[str, float], int]:
        """Move the partial sums of an epoch to rank 0 (the others keep zeros): the totals are
        unchanged and rank 0's, which a checkpoint stores, are those of all processes."""
        totals, (n,) = self.total(sums, count)
        if self.is_main:
            return totals, n
        return dict.fromkeys(totals, 0.0), 0

    def broadcast(self, obj: Any) -> Any:
        return broadcast(obj) if self.active else obj


# -- aekit train --nproc N ------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on this machine right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(rank_: int, nproc: int, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment torchrun gives process ``rank_`` of ``nproc`` on one machine."""
    env = dict(os.environ if base is None else base)
    env.update(
        RANK=str(rank_),
        LOCAL_RANK=str(rank_),
        WORLD_SIZE=str(nproc),
        LOCAL_WORLD_SIZE=str(nproc),
        GROUP_RANK="0",
        ROLE_RANK=str(rank_),
        ROLE_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: a worker gets SIGTERM (and checkpoints) when the launcher dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def strip_option(argv: Sequence[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (or an abbreviation argparse accepted)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        flag = arg.split("=", 1)[0]
        if len(flag) > 3 and name.startswith(flag):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m aekit ARGV`` in ``nproc`` processes on this machine, as torchrun would
    (``--nproc-per-node nproc`` with a free port on 127.0.0.1), and return the exit status:
    0 when every process succeeded, else the status of the first that failed.

    A SIGINT or SIGTERM to this process is passed on once to every worker (which checkpoint
    after the current step); when one worker fails, the others get SIGTERM and, after
    :data:`GRACE_SECONDS`, SIGKILL.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    if launched():
        raise ConfigError("--nproc cannot be used in a process that torchrun started; torchrun starts the processes")
    port = free_port()
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aekit", *argv],
            env=worker_env(r, nproc, port),
            start_new_session=True,
            preexec_fn=preexec,
        )
        for r in range(nproc)
    ]
    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        forwarded.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[s] = signal.signal(s, forward)
        except ValueError:  # not the main thread: signals stay with the caller
            break
    status = 0
    failed_at: float | None = None
    try:
        while any(p.poll() is None for p in procs):
            for p in procs:
                code = p.poll()
                if code and not status:
                    status = code
                    if code != INTERRUPTED and not forwarded:  # a failure, not a stop they all make
                        failed_at = time.monotonic()
                        for q in procs:
                            if q.poll() is None:
                                q.terminate()
            if failed_at is not None and time.monotonic() - failed_at > GRACE_SECONDS:
                for q in procs:
                    if q.poll() is None:
                        q.kill()
            time.sleep(0.05)
        if not status:
            status = next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if status < 0:  # killed by a signal: the shell's convention
        status = 128 - status
    return status
