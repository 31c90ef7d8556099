"""Windows: records grouped into disjoint windows, each window's metrics and bounds, and the headline metric."""
