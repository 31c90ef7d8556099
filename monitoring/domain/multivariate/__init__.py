"""Multivariate drift (a domain classifier: reference against window) and each window's data quality."""
