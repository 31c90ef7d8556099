"""The dashboard as a Flask application: pages, JSON endpoints and its own static files; served on loopback.

CML puts its own authentication in front of an application and forwards to the port it gives
it (``CDSW_APP_PORT``; older workspaces ``CDSW_READONLY_PORT``); the application binds loopback.
Nothing is loaded from outside the application: charts are inline SVG drawn here, the style
sheet is served from ``/static``, pages carry no script, and the Content-Security-Policy says so.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.serving import make_server

from cmlbase.clock import Clock, clock_from_env, iso_ms
from monitoring.app.dashboard.charts import Axis, coverage_chart, drift_heatmap, metric_chart, versions_strip
from monitoring.app.dashboard.content import DECISIONS_PER_PAGE, Content
from monitoring.app.dashboard.timerange import PRESETS, TimeRange, parse_range
from monitoring.app.dashboard.views import DEFAULT_CONFIDENCE, downsample, drift_grid, number
from monitoring.config.pipeline import DriftPolicy, PipelineConfig
from monitoring.core.errors import ConfigError, DataError
from monitoring.core.logs import KV
from monitoring.state import history
from monitoring.state.store import StateStore

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SCHEMA_FILE = HERE / "schema.json"
#: The ports CML gives an application, in the order they are tried.
PORT_VARIABLES = ("CDSW_APP_PORT", "CDSW_READONLY_PORT")
DEFAULT_PORT = 8090
LOOPBACK = "127.0.0.1"
#: Most decisions or windows one JSON request returns.
API_LIMIT = 100_000
#: PSI limit for the heatmap's colours when no drift policy sets one.
DEFAULT_PSI_LIMIT = 0.25
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def app_port(env: dict[str, str] | None = None) -> int:
    """The port CML gives the application (``CDSW_APP_PORT``, else ``CDSW_READONLY_PORT``), else 8090.

    Raises:
        ConfigError: the variable is set but not a port number.
    """
    env = os.environ if env is None else env
    for name in PORT_VARIABLES:
        if env.get(name):
            try:
                port = int(env[name])
            except ValueError:
                raise ConfigError(f"{name}: expected a port number, got {env[name]!r}") from None
            if not 0 < port < 65536:
                raise ConfigError(f"{name}: expected a port number, got {port}")
            return port
    return DEFAULT_PORT


class Dashboard:
    """Opens the state store read-only on first need (it may not exist when the application starts)."""

    def __init__(self, cfg: PipelineConfig, project_root: Path, clock: Clock):
        self.cfg, self.root, self.clock = cfg, project_root, clock
        self._content: Content | None = None

    def content(self) -> Content:
        """The content reader.

        Raises:
            DataError: no state store yet, or one this release cannot read.
        """
        if self._content is None:
            store = StateStore(self.cfg.state.url, base_dir=self.root, read_only=True)
            self._content = Content(store, self.cfg)
        return self._content

    def psi_limit(self) -> float:
        limits = [p.max_psi for p in self.cfg.thresholds.policies if isinstance(p, DriftPolicy)]
        return min(limits) if limits else DEFAULT_PSI_LIMIT


@functools.lru_cache(maxsize=8192)
def _iso(ms: int | None) -> str:
    """ISO time of a page's many timestamps (the same ones recur: windows, decisions, ticks)."""
    return "-" if ms is None else iso_ms(int(ms))


def _range(dash: Dashboard, content: Content, model: str) -> TimeRange:
    return parse_range(request.args, dash.clock.now_ms(), history.window_span(content.store, model))


def _link(path: str, rng: TimeRange, **extra: Any) -> str:
    return f"{path}?{urlencode({**extra, **rng.query()})}"


def _int_arg(name: str, default: int, most: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {text!r}") from None
    if not 0 <= value <= most:
        raise ConfigError(f"{name}: expected 0 to {most}, got {value}")
    return value


def _target(dash: Dashboard) -> tuple[Content, str, TimeRange]:
    """The content, the model asked for and the range asked for."""
    content = dash.content()
    model = _model_arg(content)
    return content, model, _range(dash, content, model)


def _model_arg(content: Content) -> str:
    model = request.args.get("model") or content.cfg.model.name
    if model not in content.models():
        raise ConfigError(f"model: no model {model!r} in this state store")
    return model


def create_app(cfg: PipelineConfig, project_root: str | os.PathLike, clock: Clock | None = None) -> Flask:
    """The dashboard application for one project.

    Args:
        cfg: the pipeline config (state store, model, policies).
        project_root: the project directory (a relative state URL resolves against it).
        clock: the pipeline's clock (default: the environment's, wall or the workspace's warp).
    """
    app = Flask(__name__, static_folder=str(HERE / "static"), template_folder=str(HERE / "templates"))
    dash = Dashboard(cfg, Path(project_root).resolve(), clock or clock_from_env())
    app.jinja_env.globals.update(iso=_iso, presets=PRESETS)
    app.jinja_env.filters["num"] = number
    app.jinja_env.filters["pct"] = lambda v: "-" if v is None else f"{v:.0%}"

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(ConfigError)
    def _bad_request(exc: ConfigError):
        return _error(str(exc), 400)

    @app.errorhandler(DataError)
    def _no_data(exc: DataError):
        return _error(str(exc), 503)

    def _error(message: str, status: int):
        if request.path.startswith("/api/"):
            return jsonify({"error": message}), status
        rng = parse_range({}, dash.clock.now_ms(), None)
        page = render_template(
            "message.html",
            title=cfg.model.name,
            message=message,
            status=status,
            rng=rng,
            link=lambda path, **kw: _link(path, rng, **kw),
        )
        return page, status

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    @app.get("/")
    def index():
        content = dash.content()
        rng = parse_range(request.args, dash.clock.now_ms(), None)
        statuses = [content.status(m) for m in content.models()]
        return render_template(
            "index.html", statuses=statuses, rng=rng, link=lambda path, **kw: _link(path, rng, **kw), title="models"
        )

    @app.get("/model")
    def model_page():
        content, model, rng = _target(dash)
        info, points = content.windows(model, rng)
        buckets = downsample(points, rng.since_ms, rng.until_ms, cfg.dashboard.max_points, info.direction)
        grid = drift_grid(points, cfg, rng.since_ms, rng.until_ms)
        axis = Axis(rng.since_ms, rng.until_ms)
        decisions, total = content.decisions(model, rng, DECISIONS_PER_PAGE, _int_arg("offset", 0, API_LIMIT))
        charts = {
            "metric": metric_chart(buckets, info, axis, content.redeploys(model, rng)),
            "coverage": coverage_chart(buckets, axis),
            "versions": versions_strip(content.deployments(model, rng), axis),
            "drift": drift_heatmap(grid, axis, dash.psi_limit()),
        }
        return render_template(
            "model.html",
            title=model,
            model=model,
            status=content.status(model),
            info=info,
            charts=charts,
            windows=len(points),
            buckets=len(buckets),
            recent=list(reversed(points[-10:])),
            decisions=decisions,
            total=total,
            offset=_int_arg("offset", 0, API_LIMIT),
            per_page=DECISIONS_PER_PAGE,
            rng=rng,
            link=lambda path, **kw: _link(path, rng, **kw),
            psi_limit=dash.psi_limit(),
            default_confidence=DEFAULT_CONFIDENCE,
        )

    @app.get("/api/v1/status")
    def api_status():
        content = dash.content()
        now = dash.clock.now_ms()
        return jsonify({"generated_ms": now, "models": [content.status(m) for m in content.models()]})

    @app.get("/api/v1/windows")
    def api_windows():
        content, model, rng = _target(dash)
        info, points = content.windows(model, rng)
        limit = _int_arg("limit", API_LIMIT, API_LIMIT)
        return jsonify(
            {
                "model": model,
                "range": rng.to_dict(),
                "metric": info.to_dict(),
                "total": len(points),
                "windows": [p.to_dict() for p in points[-limit:] if limit],
            }
        )

    @app.get("/api/v1/decisions")
    def api_decisions():
        content, model, rng = _target(dash)
        limit = _int_arg("limit", DECISIONS_PER_PAGE, API_LIMIT)
        offset = _int_arg("offset", 0, API_LIMIT)
        decisions, total = content.decisions(model, rng, limit, offset)
        return jsonify({"model": model, "range": rng.to_dict(), "total": total, "decisions": decisions})

    @app.get("/api/v1/schema")
    def api_schema():
        return jsonify(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))

    return app


def serve(app: Flask, port: int, host: str = LOOPBACK, ready: Callable[[int], None] | None = None) -> None:
    """Serve ``app`` until interrupted (threaded: a slow page does not block the JSON endpoints).

    Args:
        port: the port (0: any free one, told to ``ready``).
        host: the address to bind; loopback, as CML forwards to it.
        ready: called with the bound port once the server listens.
    """
    server = make_server(host, port, app, threaded=True)
    log.info("dashboard listening %s", KV(url=f"http://{host}:{server.server_port}/"))
    if ready is not None:
        ready(server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
