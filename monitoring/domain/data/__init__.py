"""Data: the synthetic scenario, data sets read and replayed, model requests, ground truth joined to predictions."""
