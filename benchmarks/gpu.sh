#!/usr/bin/env bash
# The training step on a GPU: the Fashion-MNIST VAE throughput table (aekit, Pythae's TrainingPipeline and
# a hand-written loop, batch 128 and 1024; benchmarks.vae_throughput) and the 784-1000-500-250-30
# autoencoder's achieved matrix FLOP/s against the device's own measured float32 matmul rate (an 8192 x 8192
# torch.mm; benchmarks.flops), data and models on the device, every clock read after torch.cuda.synchronize(),
# float32 products without TF32 (torch's default; the text records the setting). Writes the sections
# "vae_throughput_cuda" and "flops_cuda" of benchmarks/RESULTS.md, beside the CPU ones.
#
#   benchmarks/gpu.sh
#   DEVICE=cpu QUICK=1 benchmarks/gpu.sh    # the tiny-budget smoke run, into benchmarks/RESULTS-quick.md
#
# Sized for under 8 minutes on one H200: 3 repeats of each, the VAE for 3 epochs on the 60,000 training images
# at each batch size, the FLOP/s on 65,536 rows at batch 128, 512, 1024 and 4096. The size is an estimate, not a
# measurement (no GPU was at hand when it was written): about 3 minutes, from about 15 s of start-up a script,
# about 1 ms a launch-bound step of batch 128 for aekit and the hand-written loop (1,407 steps a 3-epoch call),
# and Pythae's image-by-image DataLoader on the host at some 5 s a 3-epoch call; even at 2.5x that, under 8.
# Environment: DEVICE (cuda), BATCHES (the VAE's batch sizes, 128,1024), FLOPS_BATCHES (128,512,1024,4096;
# 128,1024 with QUICK), ROWS (the FLOP/s rows, 65536), REPEATS (3), THREADS (host torch threads, 1),
# QUICK=1 (each script's --quick: 1 epoch on 10,000 images, 2,048 rows, 1 repeat, into RESULTS-quick.md),
# RESULTS (record both tables in this Markdown file instead), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
[ -x .venv/bin/python ] && [ "$PYTHON" = python ] && PYTHON=.venv/bin/python
DEVICE=${DEVICE:-cuda}
COMMON=(--device "$DEVICE" --threads "${THREADS:-1}" --repeats "${REPEATS:-3}")
[ "${QUICK:-0}" = 1 ] && COMMON+=(--quick)
[ -n "${RESULTS:-}" ] && COMMON+=(--results "$RESULTS")
if [ "${QUICK:-0}" = 1 ]; then FLOPS_BATCHES=${FLOPS_BATCHES:-128,1024}; else FLOPS_BATCHES=${FLOPS_BATCHES:-128,512,1024,4096}; fi
"$PYTHON" -m benchmarks.vae_throughput "${COMMON[@]}" --batch-sizes "${BATCHES:-128,1024}" --no-profile
"$PYTHON" -m benchmarks.flops "${COMMON[@]}" --batch-sizes "$FLOPS_BATCHES" --rows "${ROWS:-65536}" --no-profile
