"""CML Application: the live monitoring dashboard, read-only, on the port CML gives applications.

``graph apply`` creates the application with this script; CML's own authentication sits in
front of it and forwards to ``127.0.0.1:$CDSW_APP_PORT``. Locally: ``cml-monitor dashboard``.
Arguments are ignored: CML's engine wrapper adds its own (``-f <kernel file>``); the port comes
from the environment and the config from ``CML_MONITOR_CONFIG``, which ``graph apply`` sets.
"""

import sys

from monitoring.app.cli import main

if __name__ == "__main__":
    exit_code = main(["dashboard"])
    if exit_code:
        sys.exit(exit_code)
