"""Monitoring math and data: records, windows, metrics, drift, thresholds, decisions, training."""
