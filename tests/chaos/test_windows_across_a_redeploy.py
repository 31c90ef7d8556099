"""A new deployment comes up while traffic runs: what the old one answered meanwhile stays in the old one's windows.

The new deployment is made outside the pipeline (as by a redeploy killed before it recorded
it, or by hand), so compute_accuracy discovers it and counts it as serving from its
``created_at``; the old deployment keeps answering until the new one is healthy (its replica
waits at a gate here). Those answers are records of the old deployment after the new one's
start: compute_accuracy used to stop reading the old deployment there, so they were in no
window (the recomputation from the raw records found 200 stored against 400 recorded).
"""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_OK
from tests.chaos.gates import Gate
from tests.chaos.recompute import assert_windows_recomputed
from tests.faults.rig import HOUR
from tests.local.support import wait_build, wait_deployment
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

#: The project's model function, but a replica whose deployment names a GATE waits there first (a build does not).
GATED = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "if os.environ.get('GATE'):\n"
    "    with open(os.environ['GATE']) as _gate:\n"
    "        _gate.read()\n"
    "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))\n"
    "from monitoring.serving.predict import predict  # noqa: E402,F401\n"
)


def test_predictions_the_old_deployment_answered_while_the_new_one_came_up_stay_in_its_windows(rig, gates):
    gate = Gate(gates / "v2")
    (rig.root / "models").mkdir(exist_ok=True)
    (rig.root / "models" / "gated_predict.py").write_text(GATED)
    api, project, model, old = rig.ctx.platform.api.client, rig.ws.project_id, rig.model, rig.live()
    runtime = api.list_runtimes().runtimes[0].image_identifier
    body = {"file_path": "models/gated_predict.py", "function_name": "predict", "runtime_identifier": runtime}
    build = api.create_model_build(body, project, model.id)
    assert wait_build(api, project, model.id, build.id).status == "built"
    window = rig.at(1.1) // HOUR * HOUR
    new = api.create_model_deployment(
        {"replicas": 1, "environment": {**old.environment, "GATE": str(gate.path)}}, project, model.id, build.id
    )
    status = lambda: api.get_model_deployment(project, model.id, build.id, new.id).status  # noqa: E731
    wait_for(lambda: status() == "deploying", "the new deployment to start its replica")
    served = rig.traffic()  # the new deployment is not healthy yet: the old one answers
    assert served.fields["deployment"] == old.id and served.fields["predictions"] == 200
    gate.open()
    assert wait_deployment(api, project, model.id, build.id, new.id).status == "deployed"

    rig.at(2.05)
    rig.traffic()  # to the new deployment; posts the labels of the old one's answers
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-3000:]
    rows = rig.ctx.store.deployments(rig.cfg.model.name)
    assert [(r.deployment_crn, r.reason) for r in rows[-2:]] == [(old.crn, "bootstrap"), (rig.live().crn, "discovered")]
    assert rows[-1].deployed_ms < window + HOUR  # it counts from its creation, inside the old one's last window
    stored = {w.start_ms: w for w in rig.ctx.store.windows(deployment_crn=old.crn)}
    # the template's 200 predictions of that hour and the 200 answered while the new one came up
    assert (stored[window].predictions, stored[window].labelled) == (400, 400)
    assert_windows_recomputed(rig.ctx.store, rig.cfg, rig.ws.workspace_dir / "metrics.db", rig.ctx.artifacts_dir)
