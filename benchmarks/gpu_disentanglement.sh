#!/usr/bin/env bash
# dSprites MIG against samples seen for the VAE, beta-VAE, capacity-annealed beta-VAE, beta-TCVAE and
# FactorVAE with disentanglement_lib's settings (Burgess et al.'s conv net, latent 10, batch 64, Adam
# lr 1e-4, all 737,280 images), the five trained at once on one GPU; writes the table (and the figure
# and a JSON of the curves) to the "disentanglement_gpu" section of benchmarks/RESULTS.md.
#
#   benchmarks/gpu_disentanglement.sh [more benchmarks.disentanglement flags]
#
# Sized for under 8 minutes on one H200: STEPS=60000 steps of batch 64 per model (3.84 M samples, a fifth
# of disentanglement_lib's 300,000 steps), MIG every 10,000 steps. The size is an estimate (about 4 ms a
# step per process with five processes sharing the GPU, plus about 90 s to render the images and score
# MIG), not a measurement: raise STEPS towards 300000 where the time allows. Environment: DEVICE (cuda),
# STEPS, EVERY (samples between MIG scores), TRAIN (images), MIG_N (combinations scored), SCORES_SCALE
# (fraction of disentanglement_lib's sample sizes for the other scores of the final models; default 1,
# its own), DCI=1 (also DCI: scikit-learn's boosted trees on the CPU, minutes a model), PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
[ -x .venv/bin/python ] && [ "$PYTHON" = python ] && PYTHON=.venv/bin/python
STEPS=${STEPS:-60000}
EXTRA=()
[ -n "${EVERY:-}" ] && EXTRA+=(--every "$EVERY")
[ -z "${EVERY:-}" ] && EXTRA+=(--every $((STEPS * 64 / 6)))
[ "${DCI:-0}" = 1 ] && EXTRA+=(--dci)
exec "$PYTHON" -m benchmarks.disentanglement --settings dlib --device "${DEVICE:-cuda}" --steps "$STEPS" \
    --train "${TRAIN:-737280}" --mig-n "${MIG_N:-10000}" --scores-scale "${SCORES_SCALE:-1}" --jobs 5 "${EXTRA[@]}" "$@"
