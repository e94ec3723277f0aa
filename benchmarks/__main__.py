"""Run every benchmark and rewrite RESULTS.md: ``python -m benchmarks``."""

from . import ae_vs_pca, throughput

throughput.main([])
ae_vs_pca.main([])
