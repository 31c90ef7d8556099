"""Rehearse schedules faster than real time: fast-forward a running workspace's clock from fire to fire.

``python -m localcml.rehearsal --dir W status`` shows the workspace clock and the next fires.
``python -m localcml.rehearsal --dir W fast-forward --from -24h --until now`` moves the clock
back 24 hours, then lets the daemon's scheduler jump from each fire to the next whenever nothing
runs, until it reaches real time again: a day of hourly schedules, with every job run, build and
deployment taking its real time, in the minutes that work takes. ``--fires N`` stops after N
fires; ``--until`` takes ``now``, an ISO 8601 time, or a duration from now (``+6h``, ``-2h``).
Records, runs and builds are stamped on the workspace clock (``W/clock.json``), which every
engine and replica reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

from cmlbase.clock import WarpClock, iso_ms
from cmlbase.durations import parse_duration
from localcml.core.errors import ConfigError, PlatformError
from localcml.daemon import read_info


def when_ms(text: str, now_ms: int) -> int:
    """``now``, an ISO 8601 time, or ``+DURATION``/``-DURATION`` from ``now_ms``, in ms since the epoch.

    Raises:
        ConfigError: naming the text and the accepted forms.
    """
    text = text.strip()
    try:
        if text == "now":
            return now_ms
        if text[:1] in "+-":
            delta = int(parse_duration(text[1:]).total_seconds() * 1000)
            return now_ms + delta if text[0] == "+" else now_ms - delta
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("give a time zone (e.g. Z or +02:00)")
        return int(moment.timestamp() * 1000)
    except ValueError as exc:
        raise ConfigError(f"time {text!r}: expected now, an ISO 8601 time with a zone, or +6h / -2h ({exc})") from None


def _call(workspace_dir: Path, method: str, body: dict | None = None) -> dict:
    info = read_info(workspace_dir)
    if info is None:
        raise PlatformError(f"no local workspace runs in {workspace_dir}: start it first (`cml-monitor local up`)")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{info['url']}/local/v1/scheduler",
        data=data,
        method=method,
        headers={"authorization": f"Bearer {info['api_key']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise PlatformError(f"the workspace refused: HTTP {exc.code}: {exc.read()[:300]!r}") from None


def scheduler_status(workspace_dir: str | Path) -> dict:
    """The running workspace's clock, next fires and fast-forward request.

    Raises:
        PlatformError: no workspace runs in ``workspace_dir``.
    """
    return _call(Path(workspace_dir), "GET")


def fast_forward(
    workspace_dir: str | Path, until_ms: int, fires: int | None = None, start_ms: int | None = None
) -> dict:
    """Ask the running workspace to skip idle time up to ``until_ms`` (or ``fires`` fires).

    Args:
        workspace_dir: W of a running workspace.
        until_ms: where the clock may go at most (workspace time).
        fires: stop after this many fires (None: no limit).
        start_ms: first set the clock to this time (e.g. a day ago, to replay it up to now).

    Returns:
        The scheduler's status after the request.

    Raises:
        PlatformError: no workspace runs in ``workspace_dir``, or it refused.
    """
    workspace_dir = Path(workspace_dir)
    if start_ms is not None:
        WarpClock(workspace_dir / "clock.json").set_now(start_ms)
    return _call(workspace_dir, "POST", {"fast_forward_until_ms": int(until_ms), "fires": fires})


def _show(status: dict) -> None:
    print(f"workspace clock {iso_ms(status['now_ms'])}")
    forward = status.get("fast_forward")
    if forward:
        print(
            f"fast-forward until {iso_ms(forward['until_ms'])}"
            + (f", {forward['fires']} fire(s) left" if forward["fires"] is not None else "")
        )
    for fire in status["next_fires"]:
        print(f"next {iso_ms(fire['at_ms'])}  {fire['name']} ({fire['job_id']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcml.rehearsal", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(".cml-local"), help="the workspace directory W")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("status", help="the workspace clock and the next fires")
    forward = sub.add_parser("fast-forward", help="jump from fire to fire while nothing runs")
    forward.add_argument("--from", dest="start", default=None, help="first set the clock to this time (e.g. -24h)")
    forward.add_argument("--until", default="now", help="how far (now, an ISO time, +6h; default now)")
    forward.add_argument("--fires", type=int, default=None, help="stop after this many fires")
    args = parser.parse_args(argv)
    try:
        if args.action == "status":
            _show(scheduler_status(args.dir))
            return 0
        real = time.time_ns() // 1_000_000
        start = when_ms(args.start, real) if args.start else None
        status = fast_forward(args.dir, when_ms(args.until, real), args.fires, start)
        _show(status)
    except (ConfigError, PlatformError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
