"""``lifecycle.builds: registry``: the challenger that passes the gate becomes a registered version, built from it."""

from __future__ import annotations

import json

from monitoring.app import cli
from monitoring.cmlclient.registry import Registry
from monitoring.core.errors import EXIT_DATA, EXIT_OK, EXIT_REDEPLOY_FAILED
from monitoring.lifecycle.experiment_run import DECISION_TAG
from monitoring.workflows.context import version_of
from monitoring.workflows.training_runs import REGISTERED_TAG, VERSION_TAG
from tests.lifecycle.conftest import MLFLOW_MARKS, client

pytestmark = MLFLOW_MARKS


def _versions(rig):
    registry = Registry(rig.ctx.platform.api)
    model_id = registry.find_model_id(rig.cfg.model.name)
    return [] if model_id is None else registry.versions(model_id)


def test_registered_built_crowned_traced_and_rolled_back_once(rig, capsys):
    rig.reconfigure(lifecycle={"experiments": "auto", "builds": "registry"})
    code, verdict = rig.job("redeploy")
    assert code == EXIT_OK and verdict["status"] == "deployed", rig.last_log[-3000:]
    (version,) = _versions(rig)
    assert version.run_id == verdict["experiment_run"] and "champion" in version.aliases
    assert version.tags[DECISION_TAG] == rig.template_decision and version.tags[VERSION_TAG] == "v2"
    live = rig.live()
    build = next(b for b in rig.builds() if b.id == live.build_id)
    assert build.registered_model_version_id == version.version_id
    run = client().get_run(version.run_id)
    assert run.data.tags[REGISTERED_TAG] == version.version_id  # run, version and decision name each other

    # lineage: deployment -> build -> registered version -> run -> data window and decision
    args = ["--project-root", str(rig.root), "--config", str(rig.config_path)]
    assert cli.main(["lineage", *args, "--format", "json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["version"] == "v2" and chain["deployment"]["id"] == live.id and chain["build"]["id"] == build.id
    assert chain["registered_version"]["id"] == version.version_id and chain["run"]["run_id"] == version.run_id
    assert int(chain["run"]["params"]["window_start_ms"]) < int(chain["run"]["params"]["window_end_ms"])
    assert chain["decision"]["id"] == rig.template_decision and chain["decision"]["action"] == "redeploy"
    assert cli.main(["lineage", *args, "--version", "v1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{rig.cfg.model.name} v1\n") and "registered_version: none" in text

    # rollback to v1 (an artifact), exactly once; then to v2's registered version
    back = [*args, "--to", "v1", "--reason", "v2 misroutes premium customers", "--by", "ana"]
    assert cli.main(["rollback", *back]) == 0
    assert version_of(rig.live()) == "v1"
    again = cli.main(["rollback", *back])
    out = capsys.readouterr().out
    assert again == 0 and "was already acted on" in out and "nothing done twice" in out
    assert len([d for d in rig.deployments() if d.status == "deployed"]) == 1
    (decision,) = [d for d in rig.ctx.store.list_decisions(rig.cfg.model.name) if d.action.value == "rollback"]
    assert (
        decision.outcome == "rolled_back" and decision.reason == "rollback to v1 by ana: v2 misroutes premium customers"
    )
    forward = [*args, "--to", version.version_id, "--reason", "the premium fix is in v2 after all", "--by", "ana"]
    assert cli.main(["rollback", *forward]) == 0
    live = rig.live()
    assert version_of(live) == "v2"
    assert next(b for b in rig.builds() if b.id == live.build_id).registered_model_version_id == version.version_id
    assert "champion" in _versions(rig)[0].aliases
    # the registered version deleted under us: lineage says so, a rollback to it is refused (exit 4)
    capsys.readouterr()
    rig.ctx.platform.api.client.delete_registered_model_version(version.model_id, version.version_id)
    assert cli.main(["lineage", *args, "--format", "json"]) == 0
    chain = json.loads(capsys.readouterr().out)
    assert chain["registered_version"] == {"id": version.version_id, "missing": "deleted from the registry"}
    gone = [*args, "--to", version.version_id, "--reason", "once more", "--by", "ana"]
    assert cli.main(["rollback", *gone]) == EXIT_DATA
    assert "no registered version of that name (deleted, or never registered)" in capsys.readouterr().out


def test_a_failed_registry_build_keeps_v1_serving_and_the_version_stays_a_challenger(rig):
    rig.reconfigure(lifecycle={"experiments": "auto", "builds": "registry"})
    before = rig.live()
    rig.ws.inject("build=fail")
    code, verdict = rig.job("redeploy")
    assert code == EXIT_REDEPLOY_FAILED and verdict["status"] == "failed", rig.last_log[-3000:]
    assert rig.live().id == before.id
    (version,) = _versions(rig)
    assert version.aliases == ("challenger",)  # registered whole, never crowned
