"""Run every benchmark and rewrite RESULTS.md: ``python -m benchmarks``."""

from . import ae_vs_pca, denoising, linear_probe, pretraining, rbm, throughput

throughput.main([])
ae_vs_pca.main([])
denoising.main([])
linear_probe.main([])
rbm.main([])
pretraining.main([])
