"""Shared helpers of the benchmark scripts: machine description, tables, RESULTS.md sections."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
#: Where the reduced (``--quick``) runs record their tables, so that smoke figures never replace
#: the full ones (``make bench-quick``; not committed).
QUICK_RESULTS = Path(__file__).with_name("RESULTS-quick.md")
HEADER = ("# aekit benchmark results\n\n"
          "Each section is rewritten by the script named in it; rerun its command to reproduce it. "
          "Only the throughput tables compare speed (measured alternately in one process); the times in the "
          "other tables are indicative wall-clock figures, some taken while other jobs shared the cores.\n")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU model, cores, torch version and thread count, Python."""
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} with "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}")


def load_note(start: float) -> str:
    """The machine's 1-minute load average at the start and now (the cores may be shared)."""
    return (f"Load average {start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} "
            f"cores shared with other jobs.")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)
    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def command() -> str:
    return "python -m " + " ".join(shlex.quote(a) for a in [_module(), *sys.argv[1:]])


def _module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def record(name: str, title: str, body: str, cmd: str | None = None, results: Path = RESULTS) -> None:
    """Replace section ``name`` of ``results`` (RESULTS.md; between HTML comment markers) with ``body``."""
    stamp = datetime.date.today().isoformat()
    section = (f"<!-- {name}:start -->\n## {title}\n\n"
               f"Measured {stamp} on {machine()}.  \nReproduce: `{cmd or command()}`\n\n{body.strip()}\n"
               f"<!-- {name}:end -->")
    text = results.read_text() if results.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    tmp = results.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(results)


def publish(name: str, title: str, body: str, save: bool = True, quick: bool = False,
            results: Path | None = None) -> None:
    """Print a benchmark's table and, with ``save``, record it: in RESULTS.md, or for a reduced
    (``--quick``, ``quick=True``) run in RESULTS-quick.md, titled "(reduced run)"; ``results``
    names another file instead (the tests' temporary one). With ``save=False`` it is only printed."""
    print(body)
    if not save:
        return
    if quick:
        record(name, title + " (reduced run)", body, results=results or QUICK_RESULTS)
    else:
        record(name, title, body, results=results or RESULTS)


def sync(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (an accelerator runs asynchronously): call before every
    clock reading of a timed region. Nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_note(device: torch.device) -> str:
    """A sentence naming the accelerator and how float32 matrix products run on it ('' on the CPU)."""
    if device.type != "cuda":
        return ""
    p = torch.cuda.get_device_properties(device)
    tf32 = torch.backends.cuda.matmul.allow_tf32  # set_float32_matmul_precision("high") turns it on too
    return (f"Device {device}: {p.name} ({p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}); float32 matrix "
            f"products {'in TF32 (reduced precision)' if tf32 else 'in full float32 (TF32 off, the torch default)'}.")
