"""Benchmarks and metrics; imported only by `informer bench` and `make demo`."""
