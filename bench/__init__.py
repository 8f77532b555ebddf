"""Benchmarks: `python -m bench` (or `make bench`) runs them all; `python -m bench.<name>` runs one."""
