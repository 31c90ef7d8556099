"""``python -m bench [--quick] [--only a,b,c,d] [--pg]``: run the cases, print and write the table.

Cases: (a) window metrics from N records, ours vs json_normalize + pandas; (b) the compute_accuracy
job over 10M stored predictions, full then incremental; (c) traffic to the local model endpoint,
ours vs sequential call_model; (d) Evidently and NannyML on the same records (separate venv);
(e) ``cml-monitor analyze`` of a 500k-record dump end to end, ours vs the seed's way; (f) the
dashboard's pages with 10,000 windows and 1,000 decisions in the state store.
Each measured step runs in a fresh process. Writes ``OUT/results.json`` and ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.cases import Options, run_cases
from bench.measure import machine
from bench.table import machine_line, text_table, write
from monitoring.core.durations import parse_duration

QUICK = {
    "window_sizes": (20_000, 100_000),
    "job_size": 200_000,
    "traffic_rows": 200,
    "analyze_size": 100_000,
    "ground_truth_rows": 1_000,
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (about 2 minutes)")
    parser.add_argument("--only", default="a,b,c,e,f,g", help="comma-separated cases among a-g (default a,b,c,e,f,g)")
    parser.add_argument("--pg", action="store_true", help="also run (b) on a throwaway PostgreSQL server")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-output"), help="output directory (default bench-output)"
    )
    parser.add_argument("--job-size", type=int, help="records stored for (b) (default 10,000,000)")
    parser.add_argument("--ground-truth-rows", type=int, help="labels for (g) (default 5,000)")
    parser.add_argument("--replicas", type=int, default=2, help="model replicas for (c) (default 2)")
    parser.add_argument(
        "--concurrency",
        default="4,16",
        help="simulate_traffic concurrencies for (c), comma-separated (default 4,16; 4 is the config's)",
    )
    parser.add_argument(
        "--latency",
        default="0ms",
        help="(c): latency the workspace adds to every model and metrics call, e.g. 50ms (default none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects of (b) and (c)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Returns 0 when every case ran (targets missed are results, not errors), 1 if a case failed."""
    args = parse(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("a", "b", "c", "d", "e", "f", "g")]
    if unknown:
        print(f"--only: unknown case(s) {', '.join(unknown)}; choose among a,b,c,d,e,f,g", file=sys.stderr)
        return 2
    out_dir = args.out.resolve()
    try:
        concurrency = tuple(int(c) for c in args.concurrency.split(",") if c.strip())
    except ValueError:
        print(f"--concurrency: expected comma-separated integers, got {args.concurrency!r}", file=sys.stderr)
        return 2
    try:
        latency_ms = int(parse_duration(args.latency).total_seconds() * 1000)
    except ValueError as exc:
        print(f"--latency: {exc}", file=sys.stderr)
        return 2
    opt = Options(
        out_dir=out_dir,
        replicas=args.replicas,
        concurrency=concurrency,
        postgres=args.pg,
        keep=args.keep,
        latency_ms=latency_ms,
    )
    if args.quick:
        for key, value in QUICK.items():
            setattr(opt, key, value)
    if args.job_size:
        opt.job_size = args.job_size
    if args.ground_truth_rows:
        opt.ground_truth_rows = args.ground_truth_rows
    facts = machine()
    print(f"machine: {machine_line(facts)}", flush=True)
    started = time.monotonic()
    rows, failures = run_cases(names, opt)
    options = {
        "cases": names,
        "quick": args.quick,
        "pg": args.pg,
        "window_sizes": opt.window_sizes,
        "job_size": opt.job_size,
        "traffic_rows": opt.traffic_rows,
        "ground_truth_rows": opt.ground_truth_rows,
        "analyze_size": opt.analyze_size,
        "replicas": opt.replicas,
        "concurrency": opt.concurrency,
        "latency_ms": opt.latency_ms,
        "wall_s": round(time.monotonic() - started, 1),
    }
    rows = write(out_dir, rows, facts, options, opt.raw, failures)
    print()
    print(f"machine: {machine_line(facts)}")
    print(text_table(rows))
    for failure in failures:
        print(f"FAILED {failure}")
    print(f"\nwrote {out_dir / 'results.json'} and {out_dir / 'results.md'} ({options['wall_s']} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
