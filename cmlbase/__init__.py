"""What the monitoring library and the local CML workspace both stand on; it imports neither of them.

``clock`` (time as an input; the workspace's warp clock, which its engines read), ``durations``
(``90s``, ``30m``), ``logs`` (key=value lines, the process's secret redaction), ``db`` (one SQL
layer over SQLite and PostgreSQL, with the driver's own errors), ``mounts`` (the file system
holding a path) and ``metrics_store`` (where a local workspace keeps its metrics by default).
Each package raises its own errors: ``monitoring.core`` and ``localcml.core`` build on these.
"""
