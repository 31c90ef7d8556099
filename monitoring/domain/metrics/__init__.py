"""The math of the task's metrics: per-group tables, scoring kernels, confidence bounds, drift against a reference."""
