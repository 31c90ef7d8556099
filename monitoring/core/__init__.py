"""Shared kernel: errors, durations, logging, paths, progress, database access (the clocks are `cmlbase.clock`'s)."""
