"""CML job: Act once on the latest decision: retrain, challenge, build, deploy, verify, roll back on failure.

Head of the chain is simulate_traffic (the only scheduled job); each dependent runs only when
its parent succeeded. Success is a normal return: never sys.exit(0) (CML may mark it failed).
"""

import sys

from monitoring.app.jobrun import run_job
from monitoring.workflows.redeploy import redeploy


def main(argv=None) -> int:
    return run_job("redeploy", redeploy, argv)


if __name__ == "__main__":
    exit_code = main()
    if exit_code:
        sys.exit(exit_code)
