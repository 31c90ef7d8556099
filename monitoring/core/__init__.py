"""Shared kernel: errors, clock, durations, logging, paths, progress, database access."""
