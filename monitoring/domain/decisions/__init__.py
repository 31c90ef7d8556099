"""Thresholds and decisions: each policy's result on a window, warn-only checks ranked, one action per run."""
