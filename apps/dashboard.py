"""CML Application: the live monitoring dashboard, read-only, on the port CML gives applications.

``graph apply`` creates the application with this script; CML's own authentication sits in
front of it and forwards to ``127.0.0.1:$CDSW_APP_PORT``. Locally: ``cml-monitor dashboard``.
"""

import sys

from monitoring.app.cli import main

if __name__ == "__main__":
    exit_code = main(["dashboard", *sys.argv[1:]])
    if exit_code:
        sys.exit(exit_code)
