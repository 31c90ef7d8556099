"""The examples' own configs, data and trainers (examples/<name>/), read from the project's copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.config.pipeline import load_config
from monitoring.domain.data.replay import ReplayPlan, build_plan
from monitoring.domain.data.sources import load_dataset, read_table, select_rows
from monitoring.domain.data.sources.tables import RawTable
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.training.estimators import fit
from monitoring.domain.training.predictions import score
from tests.project import REPO

CHURN = REPO / "examples" / "churn"
CREDIT = REPO / "examples" / "credit"


def replayed(cfg) -> tuple[RawTable, ReplayPlan]:
    """The rows ``data.replay`` selects, and the plan that replays them."""
    source = cfg.data.replay.source
    table, _ = select_rows(read_table(source, REPO, "data.replay.source"), source)
    return table, build_plan(table, cfg.data.replay, cfg.model)


@pytest.fixture(scope="module")
def churn():
    return load_config(CHURN / "pipeline.yaml")


@pytest.fixture(scope="module")
def churn_replay(churn):
    return replayed(churn)


def raw_churn() -> pd.DataFrame:
    return pd.read_csv(CHURN / "data" / "telco_customer_churn.csv", dtype=str, keep_default_na=False)


def test_churn_trains_with_its_own_trainer_and_takes_blank_charges_as_missing(churn, churn_replay):
    spec = churn.model
    frame = load_dataset(churn.data.training, spec, REPO, "data.training")
    raw = raw_churn()
    training_ids = select_rows(read_table(churn.data.training, REPO, "t"), churn.data.training)[0].frame["customerID"]
    blanks = raw.set_index("customerID").loc[training_ids, "TotalCharges"].str.strip().eq("")
    assert len(frame) == 3000 and int(frame["TotalCharges"].isna().sum()) == int(blanks.sum())
    assert set(frame["Churn"]) == {"No", "Yes"} and frame["SeniorCitizen"].isin(["0", "1"]).all()
    fitted = fit(frame, spec, seed=0, project_root=REPO)
    assert fitted.trainer == "examples.churn.trainer:train" and fitted.capabilities.has_proba
    _, plan = churn_replay
    before = plan.rows[plan.event_ms < int(churn.data.replay.drift.after.timestamp() * 1000)]
    metrics = score(fitted.estimator, before, spec, fitted.capabilities)
    majority = before["Churn"].value_counts(normalize=True).max()
    assert metrics["accuracy"] > majority + 0.03 and metrics["roc_auc"] > 0.75


def test_churn_replays_the_other_customers_and_drifts_dsl_ones_after_its_date(churn, churn_replay):
    table, plan = churn_replay
    training = select_rows(read_table(churn.data.training, REPO, "t"), churn.data.training)[0].frame
    replayed = table.frame
    assert len(plan) == len(replayed) == 7043 - 3000
    assert not set(training["customerID"]) & set(replayed["customerID"])
    drift = churn.data.replay.drift
    after = plan.event_ms >= int(drift.after.timestamp() * 1000)
    assert np.all(np.diff(plan.event_ms) == 12_000)  # one row every 12 s, in file order (no time column)
    original = replayed["Churn"].to_numpy()  # the plan keeps the selected order: no times to sort by
    changed = plan.rows["Churn"].to_numpy() != original
    dsl = replayed["InternetService"].eq("DSL").to_numpy()
    assert not changed[~after].any() and not changed[~dsl].any()
    assert not changed[original == "Yes"].any()  # drifted rows are labelled "Yes": only "No" ones change
    assert 0.7 < plan.drifted / (after & dsl).sum() < 0.9  # share 0.8 of the matching rows, seeded
    would_change = after & dsl & (original == "No")
    assert 0.7 < changed.sum() / would_change.sum() < 0.9


def test_housing_is_the_amp_scenario_trained_to_october_and_replayed_november_to_april():
    cfg = load_config(REPO / "examples" / "housing" / "pipeline.yaml")
    spec = cfg.model
    assert spec.task == "regression" and spec.classes == [] and "zipcode" in spec.categorical_features
    frame = load_dataset(cfg.data.training, spec, REPO, "data.training")
    raw = pd.read_csv(REPO / "examples" / "housing" / "data" / "kc_house_data.csv.gz", dtype=str)
    sold = pd.to_datetime(raw["date"], format="%Y%m%dT%H%M%S", utc=True)
    assert len(raw) == 21_613 and len(frame) == int((sold < "2014-11-01").sum())
    assert frame["price"].dtype == np.float64 and frame["zipcode"].map(type).eq(str).all()
    replay = cfg.data.replay
    _, plan = replayed(cfg)
    assert len(plan) == int(((sold >= "2014-11-01") & (sold < "2015-05-01")).sum())
    lead_days = (plan.label_ms - plan.event_ms) / 86_400_000
    assert lead_days.min() >= 0 and lead_days.max() <= 59 and lead_days.mean() == pytest.approx(29.5, abs=1)
    assert np.all(np.diff(plan.event_ms) >= 0) and plan.start_ms == int(replay.start.timestamp() * 1000)
    month = 30 * 86_400_000  # speed 720: a month of data set time per pipeline hour
    assert plan.data_time(0, 3_600_000) - plan.start_ms == month


@pytest.fixture(scope="module")
def credit():
    return load_config(CREDIT / "pipeline.yaml")


@pytest.fixture(scope="module")
def credit_v1(credit):
    """The first model, trained by the example's own trainer on its 2025 Parquet file."""
    return fit(load_dataset(credit.data.training, credit.model, REPO, "data.training"), credit.model, 0, REPO)


def test_credit_data_is_what_its_seeded_script_writes_and_stays_small(tmp_path, capsys):
    from examples.credit import make_data

    make_data.main(["--out", str(tmp_path)])
    assert "applications_2026.parquet: 2000 applications" in capsys.readouterr().out
    for name in ("applications_2025.parquet", "applications_2026.parquet"):
        committed = CREDIT / "data" / name
        assert committed.stat().st_size < 200_000, f"{name}: keep the example's data small"
        pd.testing.assert_frame_equal(pd.read_parquet(committed), pd.read_parquet(tmp_path / name))


def test_credit_reads_parquet_types_and_trains_with_its_own_trainer(credit, credit_v1):
    spec = credit.model
    raw = pd.read_parquet(CREDIT / "data" / "applications_2025.parquet")
    # what the file holds: pandas categoricals, a boolean, integers, timestamps and missing incomes
    assert isinstance(raw["employment"].dtype, pd.CategoricalDtype) and raw["own_telephone"].dtype == bool
    assert raw["applied_at"].dt.tz is not None and raw["duration_months"].dtype == np.int64
    frame = load_dataset(credit.data.training, spec, REPO, "data.training")
    assert len(frame) == len(raw) == 2400
    assert frame["own_telephone"].isin(["True", "False"]).all() and frame["employment"].map(type).eq(str).all()
    assert frame["duration_months"].dtype == np.float64
    assert int(frame["monthly_income"].isna().sum()) == int(raw["monthly_income"].isna().sum()) > 0
    assert set(frame["risk"]) == {"good", "bad"} and frame["risk"].dtype == object
    assert credit_v1.trainer == "examples.credit.trainer:train"
    assert set(credit_v1.capabilities.proba_classes) == {"good", "bad"}


def test_credit_replays_2026_where_a_new_employment_type_and_a_concept_shift_start_in_march(credit, credit_v1):
    spec, (_, plan) = credit.model, replayed(credit)
    training = load_dataset(credit.data.training, spec, REPO, "data.training")
    assert len(plan) == 2000 and plan.drifted == 0  # the drift is in the data, not modelled
    assert np.all(np.diff(plan.event_ms) >= 0) and plan.start_ms == int(credit.data.replay.start.timestamp() * 1000)
    lag_days = (plan.label_ms - plan.event_ms) / 86_400_000
    assert lag_days.min() >= 14 and lag_days.max() <= 30
    march = int(pd.Timestamp("2026-03-01", tz="UTC").value // 1_000_000)
    before, after = plan.rows[plan.event_ms < march], plan.rows[plan.event_ms >= march]
    assert "gig" not in set(training["employment"]) and "gig" not in set(before["employment"])
    assert 0.2 < (after["employment"] == "gig").mean() < 0.4
    # v1 catches the defaults of the months it knows, and misses most of them from March on
    known = score(credit_v1.estimator, before, spec, credit_v1.capabilities)
    shifted = score(credit_v1.estimator, after, spec, credit_v1.capabilities)
    assert known["recall"] > 0.8 and known["accuracy"] > 0.8 and known["roc_auc"] > 0.85, known
    assert shifted["recall"] < 0.55 and shifted["accuracy"] < known["accuracy"] - 0.1, shifted
    gig = after[after["employment"] == "gig"]
    assert score(credit_v1.estimator, gig, spec, credit_v1.capabilities)["recall"] < 0.3
    # the new category alone is a drift on employment far past the example's warn limit
    reference = ReferenceStats.fit(training, spec.feature_names, kinds=spec.kinds)
    limit = credit.thresholds.policies[-1].max_psi
    assert reference.psi("employment", before["employment"].to_numpy()) < limit
    assert reference.psi("employment", after["employment"].to_numpy()) > 4 * limit
