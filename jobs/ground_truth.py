"""CML job: Read new ground truth from a business system, join it to logged predictions, post each label once.

Head of the production chain (the only scheduled job); each dependent runs only when its parent
succeeded. Success is a normal return: never sys.exit(0) (CML may mark it failed).
"""

import sys

from monitoring.app.jobrun import run_job
from monitoring.workflows.ground_truth import ground_truth


def main(argv=None) -> int:
    return run_job("ground_truth", ground_truth, argv)


if __name__ == "__main__":
    exit_code = main()
    if exit_code:
        sys.exit(exit_code)
