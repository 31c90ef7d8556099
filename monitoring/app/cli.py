"""The ``cml-monitor`` command: jobs, bootstrap, job graph, local workspace, demo, decisions, lineage, state, analysis, dashboard."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from monitoring.core.errors import EXIT_INTERNAL, ConfigError, MonitoringError

JOBS = {
    "simulate-traffic": ("simulate_traffic", "monitoring.workflows.traffic"),
    "ground-truth": ("ground_truth", "monitoring.workflows.ground_truth"),
    "compute-accuracy": ("compute_accuracy", "monitoring.workflows.accuracy"),
    "evaluate-thresholds": ("evaluate_thresholds", "monitoring.workflows.evaluate"),
    "redeploy": ("redeploy", "monitoring.workflows.redeploy"),
    "check-deployment": ("check_deployment", "monitoring.workflows.adoption"),
}


HELP = {
    "check-deployment": "call the live deployment once and check its record against the contract (exit 4 if not)",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="pipeline YAML (default: config/pipeline.yaml)")
    p.add_argument("--project-root", default=os.getcwd(), help="project directory (default: working dir)")


def _write(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)


def cmd_job(args: argparse.Namespace) -> int:
    import importlib

    from monitoring.app.jobrun import run_job

    name, module = JOBS[args.command]
    workflow = getattr(importlib.import_module(module), name)
    return run_job(
        name, workflow, ["--project-root", args.project_root] + (["--config", args.config] if args.config else [])
    )


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from monitoring.app.jobrun import run_job
    from monitoring.app.wiring import build_context, offline_context
    from monitoring.workflows.bootstrap import bootstrap, train_only

    argv = ["--project-root", args.project_root] + (["--config", args.config] if args.config else [])
    if args.train_only:  # training needs no platform and no store: nothing is started or created
        return run_job("bootstrap", train_only, argv, wiring=offline_context)
    return run_job("bootstrap", lambda ctx: bootstrap(ctx, force=args.force), argv, wiring=build_context)


def cmd_rollback(args: argparse.Namespace) -> int:
    import getpass

    from monitoring.app.jobrun import run_job
    from monitoring.app.wiring import build_context
    from monitoring.workflows.rollback import rollback

    argv = ["--project-root", args.project_root] + (["--config", args.config] if args.config else [])
    person = args.by or os.environ.get("HADOOP_USER_NAME") or getpass.getuser()
    return run_job("rollback", lambda ctx: rollback(ctx, args.to, args.reason, person), argv, wiring=build_context)


def cmd_graph(args: argparse.Namespace) -> int:
    from monitoring.app import application, graph
    from monitoring.app.job_fields import config_for_jobs, secret_names
    from monitoring.app.wiring import config_path

    root = Path(args.project_root)
    if args.action == "amp":
        from monitoring.app.amp import amp_metadata

        config = config_for_jobs(config_path(args.config, root), root)
        _write(yaml.safe_dump(amp_metadata(_config(args), config), sort_keys=False), args.out)
        return 0
    ctx = _context(args)  # loads the config once
    cfg, api = ctx.cfg, ctx.platform.api
    if args.action == "export":
        _write(yaml.safe_dump(graph.export(api, secret_names(cfg)), sort_keys=False), args.out)
        return 0
    source = graph.read_graph_file(args.graph_file) if args.graph_file else None
    specs = source.jobs if source else None
    runtime = source.runtime_identifier if source else None
    # A graph file names each job's config itself; otherwise every job reads the config used here.
    config = None if source and not args.config else config_for_jobs(config_path(args.config, root), root)
    if args.action == "plan":
        changes = graph.plan(api, cfg, specs, runtime_identifier=runtime, config=config)
        if cfg.dashboard.enabled:
            changes.append(application.plan_application(api, cfg, runtime_identifier=runtime, config=config))
    else:
        timezone = source.timezone if source else None
        changes = graph.apply(api, cfg, specs, runtime_identifier=runtime, timezone=timezone, config=config)
        if cfg.dashboard.enabled:
            changes.append(application.apply_application(api, cfg, runtime_identifier=runtime, config=config))
    if config:
        print(f"every job reads {config} (CML_MONITOR_CONFIG in its environment, relative to the project root)")
    for change in changes:
        print(change.line())
    return 0


def cmd_local(args: argparse.Namespace) -> int:
    from monitoring.cmlclient import local_workspace

    cfg = _config(args)
    if args.action == "reset":
        print(f"removed {local_workspace.reset(cfg, args.project_root)}")
        return 0
    if args.action == "down":
        local_workspace.stop(cfg, args.project_root)
        print("local workspace stopped")
        return 0
    env = local_workspace.start(cfg, args.project_root)
    if args.action == "env":
        print(local_workspace.shell_exports(env))
    else:
        print(
            f"local CML workspace at {env['CDSW_API_URL'].removesuffix('/api/v1')} "
            f"(project {env['CDSW_PROJECT_ID']}, dir {local_workspace.workspace_dir(cfg, args.project_root)})"
        )
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    from monitoring.cmlclient import local_workspace

    return local_workspace.faults_command(_config(args), args.project_root, args.rest)


def cmd_demo(args: argparse.Namespace) -> int:
    from monitoring.app.demo import run_demo
    from monitoring.app.job_fields import config_for_jobs
    from monitoring.app.wiring import config_path

    root = Path(args.project_root).resolve()
    config = config_for_jobs(config_path(args.config, root), root)  # the jobs read what the demo read
    return run_demo(_config(args), root, Path(args.out), cycles=args.cycles, config=config)


def cmd_decisions(args: argparse.Namespace) -> int:
    from monitoring.domain.decisions.decision import format_decisions
    from monitoring.state.health import open_existing

    cfg = _config(args)
    store = open_existing(cfg, Path(args.project_root).resolve())
    print(format_decisions(store.list_decisions(model=cfg.model.name, limit=args.limit), fmt=args.format))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from monitoring.workflows.lineage import format_lineage, lineage

    sys.stdout.write(format_lineage(lineage(_context(args), args.version), args.format))
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    from monitoring.app.wiring import recovery
    from monitoring.workflows.recovery import admin

    cfg, root = _config(args), Path(args.project_root).resolve()
    if args.action == "backup":
        return admin.backup(cfg, root, args.out)
    if args.action == "restore" and not args.file:
        raise ConfigError("cml-monitor state restore: name the backup FILE to restore")
    rec = recovery(cfg, root)
    if args.action == "check":
        return admin.check(rec)
    if args.action == "restore":
        return admin.restore(rec, args.file)
    from monitoring.workflows.recovery.rebuild import rebuild

    return rebuild(rec)


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def cmd_analyze(args: argparse.Namespace) -> int:
    from monitoring.app.analyze import DumpSpec, analyze_dump
    from monitoring.core.durations import parse_duration, to_ms

    if args.config:
        if args.features or args.categorical or args.classes or args.task != "classification":
            raise ConfigError(
                "--config gives the model spec: leave out --task, --features, --categorical and --classes"
            )
        from monitoring.config.pipeline import load_config

        cfg = load_config(args.config)
        spec = DumpSpec.from_config(cfg)
        window = parse_duration(args.window) if args.window else cfg.windows.length
    else:
        keys = (args.prediction_key, args.label_key, args.features_key, args.probability_key, args.probabilities_key)
        classes = [int(c) if c.lstrip("-").isdigit() else c for c in _names(args.classes) or []] or None
        spec = DumpSpec.from_flags(
            args.task, _names(args.features), _names(args.categorical) or (), classes, keys, args.metric
        )
        window = parse_duration(args.window or "1h")
    reference = to_ms(parse_duration(args.reference)) if args.reference else None
    summary = analyze_dump(args.dump, to_ms(window), Path(args.out), spec=spec, reference_ms=reference)
    print(summary.summary_line())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from monitoring.app.report import write_report
    from monitoring.state.health import open_existing

    cfg = _config(args)
    store = open_existing(cfg, Path(args.project_root).resolve())
    path = write_report(cfg, store, Path(args.out))
    print(f"wrote {path}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from monitoring.app.dashboard.server import app_port, create_app, serve
    from monitoring.core.logs import configure_logging

    configure_logging("dashboard")
    root = Path(args.project_root).resolve()
    port = args.port if args.port is not None else app_port()
    serve(
        create_app(_config(args), root), port, ready=lambda p: print(f"dashboard at http://127.0.0.1:{p}/", flush=True)
    )
    return 0


def cmd_contract(args: argparse.Namespace) -> int:
    from monitoring.app.wiring import config_path, offline_context
    from monitoring.workflows.contract_check import SUFFIX, write_contract

    root = Path(args.project_root).resolve()
    cfg = _config(args)
    out = Path(args.out) if args.out else config_path(args.config, root).parent / f"{cfg.model.name}{SUFFIX}"
    path = write_contract(offline_context(cfg, root), out if out.is_absolute() else root / out)
    print(f"wrote {path}; to use it, set retraining.contract.path: {path.resolve().relative_to(root).as_posix()}")
    return 0


def _config(args: argparse.Namespace):
    from monitoring.app.wiring import load_project_config

    return load_project_config(args.config, args.project_root)


def _context(args: argparse.Namespace):
    from monitoring.app.wiring import build_context

    return build_context(_config(args), args.project_root)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cml-monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (job, _) in JOBS.items():
        p = sub.add_parser(name, help=HELP.get(name, f"run the {job} job once, here"))
        _common(p)
        p.set_defaults(func=cmd_job)
    p = sub.add_parser("bootstrap", help="train v1, create the model, build, deploy and verify it")
    _common(p)
    p.add_argument("--force", action="store_true", help="deploy a new version even if one serves")
    p.add_argument("--train-only", action="store_true", help="only train and save the artifact")
    p.set_defaults(func=cmd_bootstrap)
    p = sub.add_parser("rollback", help="deploy an earlier version again (verified, rolled back on failure), once")
    _common(p)
    p.add_argument("--to", required=True, help="the version: an artifact version (v2) or a registered version id")
    p.add_argument("--reason", required=True, help="why (recorded with the decision)")
    p.add_argument("--by", default=None, help="who (default: $HADOOP_USER_NAME, else the login name)")
    p.set_defaults(func=cmd_rollback)
    p = sub.add_parser("graph", help="the CML job graph: plan | apply | export | amp")
    _common(p)
    p.add_argument("action", choices=["plan", "apply", "export", "amp"])
    p.add_argument(
        "--graph-file",
        help="apply/plan a graph exported from another project (its jobs keep their config unless --config)",
    )
    p.add_argument("--out", help="write export/amp output to this file")
    p.set_defaults(func=cmd_graph)
    p = sub.add_parser("local", help="the embedded local CML workspace: env | up | down | reset")
    _common(p)
    p.add_argument("action", choices=["env", "up", "down", "reset"])
    p.set_defaults(func=cmd_local)
    p = sub.add_parser("faults", help="local workspace fault plan: add 'endpoint=503 x3' | list | clear")
    _common(p)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_faults)
    p = sub.add_parser("demo", help="the whole closed loop on a fresh local workspace")
    _common(p)
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--out", default="demo-output")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("decisions", help="list recorded decisions")
    _common(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_decisions)
    p = sub.add_parser("lineage", help="where the serving model (or --version V) came from: build, registry, run, data")
    _common(p)
    p.add_argument("--version", default=None, help="a version (v3) instead of the serving one")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_lineage)
    p = sub.add_parser("state", help="the pipeline's state store: check | backup [--out F] | restore FILE | rebuild")
    _common(p)
    p.add_argument("action", choices=["check", "backup", "restore", "rebuild"])
    p.add_argument("file", nargs="?", help="restore: the backup file")
    p.add_argument("--out", help="backup: write here (default: backups/ beside the store)")
    p.set_defaults(func=cmd_state)
    p = sub.add_parser("analyze", help="window metrics from an exported read_metrics dump")
    p.add_argument("dump")
    p.add_argument("--window", default=None, help="window length (default: the config's windows.length, else 1h)")
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="read the dump as this pipeline YAML's model spec says")
    p.add_argument("--task", choices=["classification", "regression"], default="classification")
    p.add_argument("--features", help="comma-separated feature names (default: all found)")
    p.add_argument("--categorical", help="comma-separated features read as categories (the rest are numbers)")
    p.add_argument("--classes", help="comma-separated classes, in order (default: those found in the dump)")
    p.add_argument("--metric", help="the metric to plot (default: accuracy, or mae for regression)")
    p.add_argument("--reference", help="measure drift against the dump's first span, e.g. 1d (default: no drift)")
    p.add_argument("--prediction-key", default="prediction")
    p.add_argument("--label-key", default="final_label")
    p.add_argument("--features-key", default="input_features")
    p.add_argument("--probability-key", default="probability")
    p.add_argument("--probabilities-key", default="probabilities")
    p.set_defaults(func=cmd_analyze)
    p = sub.add_parser("report", help="HTML report of windows, decisions and deployments")
    _common(p)
    p.add_argument("--out", default="report")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("contract", help="learn the data contract from data.training into an editable YAML file")
    _common(p)
    p.add_argument("--out", default=None, help="default: <config dir>/<model name>.contract.yaml")
    p.set_defaults(func=cmd_contract)
    p = sub.add_parser("dashboard", help="serve the live dashboard (read-only) on 127.0.0.1, as a CML Application")
    _common(p)
    p.add_argument(
        "--port", type=int, default=None, help="default: $CDSW_APP_PORT, else $CDSW_READONLY_PORT, else 8090"
    )
    p.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MonitoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.action:
            print(f"what to do: {exc.action}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a CLI prints, it does not dump a traceback on users
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
