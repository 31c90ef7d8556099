"""Shared kernel: configuration, errors, clock, durations, logging, database access."""
