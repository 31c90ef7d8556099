"""Slices: metrics per segment of the traffic, each with its bounds, judged against the reference with false-discovery control."""
