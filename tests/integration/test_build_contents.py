"""A model build carries what the model needs: a module the build lacks fails the release by name, even
where the checkout running the tests has it (a replica sees only its build, as in CML)."""

from __future__ import annotations

import pytest

from monitoring.core.errors import RedeployError
from monitoring.workflows.release import release
from monitoring.workflows.retrain import fit_candidate, initial_frame, sample_request, save_candidate
from tests.integration.support import SMALL_REPLAYS
from tests.project import REPO


def test_a_build_without_the_trainer_module_its_pickled_model_imports_fails_verification_naming_it(make_pipeline):
    """The credit trainer's pipeline pickles ``examples.credit.trainer.with_ratios``: loading the
    artifact imports that module. Trained with it, then built without it, the model cannot serve."""
    pipeline = make_pipeline(SMALL_REPLAYS["credit"], do_bootstrap=False, example="credit")
    ctx, cfg = pipeline.ctx, pipeline.cfg
    candidate = fit_candidate(ctx, initial_frame(ctx))
    version, rel = save_candidate(ctx, candidate, None, "bootstrap")
    trainer = pipeline.root / "examples/credit/trainer.py"
    assert (REPO / "examples/credit/trainer.py").is_file()  # the checkout keeps its copy
    trainer.unlink()  # what a build that leaves the module out holds
    model = ctx.platform.api.create_model(cfg.model.name, cfg.model.description, cfg.model.auth_enabled)
    with pytest.raises(RedeployError) as failed:
        release(ctx, model, rel, version, "bootstrap", sample_request(ctx, candidate.holdout))
    message = str(failed.value)
    assert f"deploying {version} failed" in message, message
    assert "No module named 'examples.credit.trainer'" in message, message
    assert ctx.platform.api.live_deployment(model) is None  # nothing serves a model that cannot load
    assert ctx.store.current_deployment(cfg.model.name) is None
