"""Operator-facing entry points: job runner, CLI, demo, graph, report, analysis."""
