"""Benchmarks of aidc-thermo: `python -m benchmarks run [--quick] [--only NAME]`."""
