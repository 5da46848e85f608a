"""Benchmark of the mapper against Beam's ReadFromDatastore and a bare client (see README.md)."""
