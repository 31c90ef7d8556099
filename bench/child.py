"""Run one measured step in this (fresh) process: ``python -m bench.child STEP PARAMS_JSON``.

The last stdout line is ``BENCH-RESULT {json}``; the parent parses it.
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback

#: step name -> "module:function"; each function takes the params dict and returns a JSON-able dict.
STEPS = {
    "windows": "bench.windows_case:run",
    "bootstrap": "bench.workspace:bootstrap_step",
    "accuracy_fill": "bench.accuracy_case:fill",
    "accuracy_run": "bench.accuracy_case:run_job",
    "traffic_seed": "bench.traffic_case:seed",
    "traffic_ours": "bench.traffic_case:ours",
    "thirdparty_columns": "bench.thirdparty:write_columns",
    "dashboard_fill": "bench.dashboard_case:fill",
    "dashboard_serve": "bench.dashboard_case:serve",
    "ground_truth_fill": "bench.ground_truth_case:fill",
    "ground_truth_seed": "bench.ground_truth_case:seed",
    "ground_truth_ours": "bench.ground_truth_case:ours",
}
RESULT_PREFIX = "BENCH-RESULT "


def main(argv: list[str]) -> int:
    """Returns 0 with a result line, 1 when the step raised (traceback on stderr), 2 on bad usage."""
    if len(argv) != 2 or argv[0] not in STEPS:
        print(f"usage: python -m bench.child {{{'|'.join(STEPS)}}} PARAMS_JSON", file=sys.stderr)
        return 2
    module, func = STEPS[argv[0]].split(":")
    try:
        result = getattr(importlib.import_module(module), func)(json.loads(argv[1]))
    except Exception:  # noqa: BLE001 - reported to the parent, which marks the case failed
        traceback.print_exc()
        return 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
