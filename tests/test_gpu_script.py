"""benchmarks/gpu.sh (the VAE throughput and FLOP/s tables on a GPU), run on the CPU with its tiny budget
(QUICK=1) on a small Fashion-MNIST look-alike, recording into a temporary file, never the repository's."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_data import fake_fashion

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_writes_both_tables_at_both_batch_sizes(tmp_path):
    pytest.importorskip("pythae")  # a peer of the benchmarks (the bench extra), not of the tests
    tracked = {p: p.read_bytes() for p in (ROOT / "benchmarks").glob("RESULTS*.md")}
    results = tmp_path / "RESULTS.md"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "DEVICE": "cpu",
        "QUICK": "1",
        "RESULTS": str(results),
        "AEKIT_DATA": str(fake_fashion(tmp_path / "fm", n_train=1100, n_test=200)),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert {p: p.read_bytes() for p in (ROOT / "benchmarks").glob("RESULTS*.md")} == tracked

    def rows(section: str) -> list[list[str]]:
        body = re.search(rf"<!-- {section}:start -->(.*?)<!-- {section}:end -->", text, re.S)
        assert body is not None, f"no {section} section"
        assert "(reduced run)" in body.group(1)
        lines = [ln for ln in body.group(1).splitlines() if ln.startswith("| ") and not ln.startswith("| batch ")]
        return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]

    # the CPU's sections (on a GPU: vae_throughput_cuda, flops_cuda)
    vae = rows("vae_throughput_t1")
    contenders = [
        "aekit (aekit.fit, run directory)",
        "Pythae TrainingPipeline",
        "hand-written PyTorch loop",
        "aekit --precision bfloat16 (opt-in)",
        "GEMMs alone (bound for any float32 loop)",
    ]
    assert [(r[0], r[1]) for r in vae] == [(b, c) for b in ("128", "1024") for c in contenders]
    assert all(float(r[2].replace(",", "")) > 0 for r in vae)
    assert "At batch 128: Wall clock: aekit / Pythae" in text and "At batch 1024: Wall clock" in text
    flops = rows("flops_t1")
    steps = ["aekit Trainer", "bare PyTorch step (fused Adam)", "GEMMs alone"]
    assert [(r[0], r[1]) for r in flops] == [(b, s) for b in ("128", "1024") for s in steps]
    assert all(float(r[4]) > 0 for r in flops)  # GFLOP/s
    assert "Reference: float32 4096 x 4096 `torch.mm`" in text
