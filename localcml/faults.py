"""Fault injection for the local workspace: named fault points with counters, kept in ``W/faults.json``.

A fault is written ``POINT=ACTION[:ARG] [xN|always] [skip=N]``, for example ``endpoint=503 x3``,
``endpoint=delay:2s x2``, ``api.create_model_deployment=500-after x1``, ``api.*=503 x2``,
``build=fail``, ``deploy=never-healthy:3s``, ``metrics.track_delayed_metrics=unavailable x5``,
``job.redeploy=kill:after_build``, ``latency.*=delay:50ms always``. Each time a fault point is reached, the first active fault of
that point (or of its family wildcard, ``api.*``) lets ``skip`` calls pass, then fires ``xN``
times (default once; ``always`` until cleared). The plan lives in a file so that the daemon,
job-run engines and model replicas all observe it; every change is made under a file lock.

``latency.model`` and ``latency.metrics`` (or ``latency.*``) are standing, not counted: while
such an entry is in the plan, every model call and every metrics call a client makes (``call_model``,
``track_delayed_metrics``, ``read_metrics``, ``track_aggregate_metrics``) waits that long in the
workspace before it is served, to rehearse CML's round trips. A replica writing its own
prediction's record is not delayed.

Rehearse from a shell: ``python -m localcml.faults --dir .cml-local add "endpoint=503 x3"``,
``... list``, ``... clear``. See docs/faults.md for every point and action.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cmlbase.durations import parse_duration
from cmlbase.logs import KV
from localcml.core.errors import ConfigError
from localcml.models.replica import UNHEALTHY_ENV  # noqa: F401 - re-exported: replicas of a never-healthy deploy

log = logging.getLogger(__name__)

FAULTS_FILE = "faults.json"
LOCK_FILE = ".faults.lock"
WORKSPACE_ENV = "CML_MONITOR_WORKSPACE"
#: Steps of a job run's work at which the workspace can SIGKILL its engine (``job.<name>=kill:<step>``):
#: a build the run created becomes built, a deployment it created becomes deployed.
KILL_STEPS = ("after_build", "after_deploy")
METRICS_FUNCTIONS = ("model_metrics", "read_metrics", "track_delayed_metrics", "track_aggregate_metrics")
#: Actions allowed at each point family.
ACTIONS: dict[str, tuple[str, ...]] = {
    "endpoint": ("status", "status-after", "delay", "drop", "drop-after", "refuse", "not-json", "no-uuid"),
    "api": ("status", "status-after", "delay", "timeout", "drop", "drop-after"),
    "build": ("fail",),
    "deploy": ("never-healthy",),
    "metrics": ("locked", "unavailable"),
    "job": ("kill",),
    "latency": ("delay",),
    "tracking": ("status",),
}
#: Calls a ``latency.<name>`` entry delays.
LATENCY_POINTS = ("model", "metrics")
_SPEC = re.compile(r"^\s*(?P<point>[A-Za-z_.*-]+)\s*=\s*(?P<action>\S+)(?P<rest>(\s+\S+)*)\s*$")
_STATUS = re.compile(r"^(?P<code>[1-5]\d\d)(?P<after>-after(-create)?)?$")
_NAME = re.compile(r"^[A-Za-z0-9_*-]+$")


@dataclass(frozen=True)
class Fault:
    """One entry of a fault plan.

    Attributes:
        point: ``endpoint``, ``api.<operation>`` (snake case, or ``api.*``), ``build``, ``deploy``,
            ``metrics.<function>`` (or ``metrics.*``), ``job.<script stem>`` (or ``job.*``).
        action: one of ``ACTIONS[family]``.
        status: the HTTP status of ``status``/``status-after`` actions.
        seconds: how long ``delay``/``timeout``/``never-healthy`` hold.
        step: the step of a ``kill`` action (one of ``KILL_STEPS``).
        times: how many more times it fires (None: always).
        skip: calls still let through before it fires.
        fired: how many times it has fired.
    """

    point: str
    action: str
    status: int | None = None
    seconds: float | None = None
    step: str | None = None
    times: int | None = 1
    skip: int = 0
    fired: int = 0

    @property
    def family(self) -> str:
        return self.point.split(".", 1)[0]

    @property
    def active(self) -> bool:
        return self.times is None or self.times > 0

    def matches(self, point: str) -> bool:
        return self.point == point or (self.point.endswith(".*") and point.startswith(self.point[:-1]))

    def spec(self) -> str:
        """The fault written back as text (``parse(f.spec())`` gives the same fault, ``fired`` aside)."""
        if self.action in ("status", "status-after"):
            action = f"{self.status}" + ("-after" if self.action == "status-after" else "")
        elif self.step is not None:
            action = f"{self.action}:{self.step}"
        elif self.seconds is not None:
            action = f"{self.action}:{self.seconds:g}s"
        else:
            action = self.action
        count = "always" if self.times is None else f"x{self.times}"
        return f"{self.point}={action} {count}" + (f" skip={self.skip}" if self.skip else "")

    @classmethod
    def parse(cls, text: str) -> Fault:
        """A fault from its text form.

        Raises:
            ConfigError: naming the text and what was expected.
        """
        m = _SPEC.match(text or "")
        if m is None:
            raise ConfigError(
                f"fault {text!r}: expected POINT=ACTION[:ARG] [xN|always] [skip=N], e.g. 'endpoint=503 x3'"
            )
        point, action_text = m["point"], m["action"]
        family, _, name = point.partition(".")
        if family not in ACTIONS:
            raise ConfigError(
                f"fault {text!r}: unknown point {point!r}; points are endpoint, build, deploy, "
                "api.<operation>, metrics.<function>, job.<script name>, latency.<model|metrics>"
            )
        _check_point_name(text, family, name)
        fields = _parse_action(text, family, action_text)
        times, skip = 1, 0
        for word in (m["rest"] or "").split():
            if word == "always":
                times = None
            elif re.fullmatch(r"x\d+", word) and int(word[1:]) >= 1:
                times = int(word[1:])
            elif re.fullmatch(r"skip=\d+", word):
                skip = int(word[5:])
            else:
                raise ConfigError(f"fault {text!r}: {word!r} is not a count (xN with N >= 1, or always) nor skip=N")
        if family == "latency" and (times is not None or skip):
            raise ConfigError(f"fault {text!r}: latency is standing, write it with 'always' (clear it to end it)")
        return cls(point=point, times=times, skip=skip, **fields)


def _check_point_name(text: str, family: str, name: str) -> None:
    if family in ("endpoint", "build", "deploy", "tracking"):
        if name:
            raise ConfigError(f"fault {text!r}: point {family!r} takes no suffix")
        return
    if not name or not _NAME.match(name):
        raise ConfigError(f"fault {text!r}: point {family}.<name> needs a name (or *)")
    if family == "api" and name != "*":
        from localcml.core.spec import method_name, operations

        known = {method_name(op) for op in operations()}
        if name not in known:
            raise ConfigError(
                f"fault {text!r}: {name!r} is not an API v2 operation of the local workspace; one of {sorted(known)}"
            )
    if family == "latency" and name != "*" and name not in LATENCY_POINTS:
        raise ConfigError(f"fault {text!r}: {name!r} is not one of {list(LATENCY_POINTS)} (or *)")
    if family == "metrics" and name != "*" and name not in METRICS_FUNCTIONS:
        raise ConfigError(f"fault {text!r}: {name!r} is not one of {list(METRICS_FUNCTIONS)}")


def _seconds(text: str, arg: str) -> float:
    try:
        return parse_duration(arg).total_seconds()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"fault {text!r}: {arg!r} is not a duration such as 500ms or 2s ({exc})") from None


def _parse_action(text: str, family: str, action_text: str) -> dict:
    name, _, arg = action_text.partition(":")
    status = _STATUS.match(name)
    if status:
        action = "status-after" if status["after"] else "status"
        fields: dict = {"action": action, "status": int(status["code"])}
        if int(status["code"]) < 400:
            raise ConfigError(f"fault {text!r}: status {status['code']} is not an error (use 400-599)")
    else:
        fields = {"action": name}
        if name in ("delay", "timeout", "never-healthy"):
            if arg:
                fields["seconds"] = _seconds(text, arg)
            elif name == "delay":
                raise ConfigError(f"fault {text!r}: delay needs a duration, e.g. delay:2s")
        elif name == "kill":
            if arg not in KILL_STEPS:
                raise ConfigError(f"fault {text!r}: kill needs a step, one of {list(KILL_STEPS)} (kill:after_build)")
            fields["step"] = arg
        elif arg:
            raise ConfigError(f"fault {text!r}: action {name!r} takes no argument")
    if fields["action"] not in ACTIONS[family]:
        allowed = ", ".join(
            "NNN" if a == "status" else "NNN-after" if a == "status-after" else a for a in ACTIONS[family]
        )
        raise ConfigError(f"fault {text!r}: action {action_text!r} is not possible at {family}; use one of {allowed}")
    return fields


class FaultPlan:
    """The fault plan of one workspace directory, shared by every process through ``W/faults.json``.

    Args:
        workspace_dir: W.
    """

    def __init__(self, workspace_dir: str | Path):
        self.workspace_dir = Path(workspace_dir)
        self.path = self.workspace_dir / FAULTS_FILE
        self._seen: tuple[tuple[int, int], list[Fault]] | None = None

    @classmethod
    def from_env(cls) -> FaultPlan | None:
        """The plan of the workspace this process runs in (``$CML_MONITOR_WORKSPACE``), if any."""
        workspace = os.environ.get(WORKSPACE_ENV)
        return cls(workspace) if workspace else None

    # -- storage ---------------------------------------------------------------------------
    def _read(self) -> list[Fault]:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise ConfigError(
                f"{self.path}: the fault plan is not valid JSON ({exc}); run `python -m localcml.faults clear`"
            ) from None
        try:
            return [Fault(**entry) for entry in data.get("faults", [])]
        except (TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{self.path}: an entry of the fault plan is not a fault ({exc}); run `python -m localcml.faults clear`"
            ) from None

    def _write(self, faults: list[Fault]) -> None:
        tmp = self.path.with_name(f".{FAULTS_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"faults": [asdict(f) for f in faults]}, indent=1))
        os.replace(tmp, self.path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        with open(self.workspace_dir / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- changing the plan -----------------------------------------------------------------
    def add(self, *specs: str | Fault) -> list[Fault]:
        """Append faults (text or ``Fault``); returns them as stored.

        Raises:
            ConfigError: a text that is not a valid fault.
        """
        new = [s if isinstance(s, Fault) else Fault.parse(s) for s in specs]
        with self._locked():
            self._write(self._read() + new)
        for fault in new:
            log.warning("fault planned %s", KV(fault=fault.spec()))
        return new

    def clear(self, point: str | None = None) -> int:
        """Remove every fault (or those of one point); returns how many were removed."""
        with self._locked():
            faults = self._read()
            kept = [f for f in faults if point is not None and f.point != point]
            self._write(kept)
        return len(faults) - len(kept)

    # -- reading it ------------------------------------------------------------------------
    def faults(self) -> list[Fault]:
        """Every fault of the plan, exhausted ones included (they keep their ``fired`` count)."""
        return self._read()

    def latency(self, point: str) -> float:
        """Seconds of standing latency planned at ``point`` (``latency.model``...); 0.0 when none.

        Cheap on every call: the plan is re-read only when its file changes.
        """
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return 0.0
        stamp = (st.st_mtime_ns, st.st_size)
        if self._seen is None or self._seen[0] != stamp:
            self._seen = (stamp, self._read())
        found = next((f for f in self._seen[1] if f.family == "latency" and f.matches(point)), None)
        return found.seconds or 0.0 if found is not None else 0.0

    def fired(self, point: str) -> int:
        """How many times faults planned at exactly ``point`` have fired."""
        return sum(f.fired for f in self._read() if f.point == point)

    def take(self, point: str) -> Fault | None:
        """Called at a fault point: the fault that fires now (its counters updated), or None.

        Cheap when nothing is planned there: the file is read without the lock first.
        """
        if not self.path.is_file() or not any(f.active and f.matches(point) for f in self._read()):
            return None
        with self._locked():
            faults = self._read()
            for i, fault in enumerate(faults):
                if not (fault.active and fault.matches(point)):
                    continue
                if fault.skip > 0:
                    faults[i] = replace(fault, skip=fault.skip - 1)
                    self._write(faults)
                    return None
                fired = replace(fault, times=None if fault.times is None else fault.times - 1, fired=fault.fired + 1)
                faults[i] = fired
                self._write(faults)
                break
            else:
                return None
        log.warning("fault injected %s", KV(point=point, fault=fault.spec(), fired=fired.fired))
        return fired


def admin(plan: FaultPlan):
    """The handler of ``/local/v1/faults``: ``GET`` the plan; ``POST {"add": [...], "clear": true | "<point>"}``."""
    from localcml.core.bodies import json_object
    from localcml.core.errors import UNIMPLEMENTED, ApiError, invalid

    def handle(method: str, raw: bytes) -> dict:
        if method == "POST":
            change = json_object(raw, "fault plan change")
            if set(change) - {"add", "clear"}:
                raise invalid('fault plan change: expected {"add": ["endpoint=503 x3", ...], "clear": true}')
            clear, add = change.get("clear"), change.get("add") or []
            if not isinstance(add, list) or not all(isinstance(a, str) for a in add):
                raise invalid("fault plan change: 'add' must be a list of fault texts")
            try:
                if clear:
                    plan.clear(clear if isinstance(clear, str) else None)
                plan.add(*add)
            except ConfigError as exc:
                raise invalid("; ".join(exc.problems)) from None
        elif method != "GET":
            raise ApiError(UNIMPLEMENTED, "Method Not Allowed")
        return {"faults": [{"spec": f.spec(), "fired": f.fired} for f in plan.faults()]}

    return handle


def take(point: str) -> Fault | None:
    """The fault firing now at ``point`` in this process's workspace (None outside a local workspace)."""
    plan = FaultPlan.from_env()
    return plan.take(point) if plan is not None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localcml.faults", description="Plan faults in a local CML workspace (see docs/faults.md)."
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"the workspace directory W (default ${WORKSPACE_ENV} or .cml-local)"
    )
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="add faults, e.g. 'endpoint=503 x3'")
    add.add_argument("faults", nargs="+")
    clear = sub.add_parser("clear", help="remove every fault, or those of one point")
    clear.add_argument("point", nargs="?")
    sub.add_parser("list", help="show the plan with how often each fault fired")
    args = parser.parse_args(argv)
    plan = FaultPlan(args.dir or os.environ.get(WORKSPACE_ENV) or ".cml-local")
    try:
        if args.action == "add":
            for fault in plan.add(*args.faults):
                print(f"added   {fault.spec()}")
        elif args.action == "clear":
            print(f"removed {plan.clear(args.point)} fault(s)")
        else:
            for fault in plan.faults():
                print(f"{fault.spec():<60} fired {fault.fired}")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
