"""CML job: Send one cycle of synthetic traffic to the deployed model and post delayed ground truth.

Head of the chain is simulate_traffic (the only scheduled job); each dependent runs only when
its parent succeeded. Success is a normal return: never sys.exit(0) (CML may mark it failed).
"""

import sys

from monitoring.app.jobrun import run_job
from monitoring.workflows.traffic import simulate_traffic


def main(argv=None) -> int:
    return run_job("simulate_traffic", simulate_traffic, argv)


if __name__ == "__main__":
    exit_code = main()
    if exit_code:
        sys.exit(exit_code)
