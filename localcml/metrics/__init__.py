"""Model metrics: the store, its HTTP service, and the ``cdsw`` SDK functions that call it."""
