"""CML job: Compute per-window accuracy (and drift) from the model metrics store, incrementally.

Head of the chain is simulate_traffic (the only scheduled job); each dependent runs only when
its parent succeeded. Success is a normal return: never sys.exit(0) (CML may mark it failed).
"""

import sys

from monitoring.app.jobrun import run_job
from monitoring.workflows.accuracy import compute_accuracy


def main(argv=None) -> int:
    return run_job("compute_accuracy", compute_accuracy, argv)


if __name__ == "__main__":
    exit_code = main()
    if exit_code:
        sys.exit(exit_code)
