"""Decoding CML read_metrics records into columns: one public entry, a fast path and a general path, and dumps."""
