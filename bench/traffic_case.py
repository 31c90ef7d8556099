"""Case (c): traffic to the local model endpoint, predictions/s and labels/s.

Seed: one ``cdsw.call_model`` per row, sequentially, then one ``cdsw.track_delayed_metrics`` per
row (the lab's ``06_model_simulation.py``). Ours: the ``simulate_traffic`` workflow (threaded,
keep-alive sessions), then its ``post_due_labels`` once the label delay has passed.
"""

from __future__ import annotations

from bench.measure import measured
from bench.workspace import context


def _rows(ctx, n: int) -> tuple[list[dict], list[int]]:
    from monitoring.domain.data.scenario import TelcoScenario

    cfg = ctx.cfg
    frame = TelcoScenario.from_config(cfg).generate(n, ctx.rng(10_000, 1), drift_level=0.0)
    names = list(cfg.model.feature_names)
    requests_ = [{k: float(v) for k, v in zip(names, values)} for values in frame[names].to_numpy(dtype=float)]
    return requests_, [int(y) for y in frame[cfg.model.label.name].to_numpy()]


def seed(params: dict) -> dict:
    """``n`` sequential ``call_model`` calls, then ``n`` sequential ``track_delayed_metrics`` calls."""
    ctx = context(params["root"])
    from monitoring.cmlclient import cml

    cdsw = cml.sdk()
    model = ctx.require_model()
    requests_, labels = _rows(ctx, int(params["n"]))
    api_key = ctx.platform.model_api_key
    uuids, failed = [], 0
    with measured() as predict:
        for request in requests_:
            out = cdsw.call_model(model.access_key, request, api_key=api_key)
            if out.get("success"):
                uuids.append(out["response"]["uuid"])
            else:
                failed += 1
    with measured() as label:
        for uuid, y in zip(uuids, labels):
            cdsw.track_delayed_metrics({ctx.cfg.windows.label_key: y}, uuid)
    return {
        "predictions": len(uuids),
        "failed": failed,
        "labels": len(uuids),
        "predict": predict.to_dict(),
        "label": label.to_dict(),
    }


def ours(params: dict) -> dict:
    """One ``simulate_traffic`` cycle, then ``post_due_labels`` after the label delay.

    ``params["concurrency"]`` (optional) overrides ``scenario.concurrency`` (requests and label posts).
    """
    from monitoring.core.durations import to_ms
    from monitoring.workflows.traffic import post_due_labels, simulate_traffic

    ctx = context(params["root"])
    if params.get("concurrency"):  # one deployment, several client concurrencies
        cfg = ctx.cfg
        ctx.cfg = cfg.model_copy(
            update={"scenario": cfg.scenario.model_copy(update={"concurrency": int(params["concurrency"])})}
        )
        ctx.platform.metrics.concurrency = int(params["concurrency"])
    clock = ctx.platform.clock
    with measured() as predict:
        outcome = simulate_traffic(ctx)
    clock.set_now(clock.now_ms() + to_ms(ctx.cfg.scenario.label_delay) + 60_000)
    with measured() as label:
        posted = post_due_labels(ctx, clock.now_ms(), ctx.cfg.windows.label_key).posted
    return {
        "predictions": outcome.fields["predictions"],
        "failed": outcome.fields["failed"],
        "labels": posted,
        "predict": predict.to_dict(),
        "label": label.to_dict(),
    }
