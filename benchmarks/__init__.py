"""aekit benchmarks: side-by-side measurements that print a table and update RESULTS.md."""
