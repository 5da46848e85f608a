"""Benchmark of the mapper against Beam's ReadFromDatastore and a bare client (see bench/README.md and docs/performance.md)."""
