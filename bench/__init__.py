"""Benchmarks (not tests): ``python -m bench`` prints time, peak RSS and ratios against the seed's way."""
