"""Write the credit example's data: synthetic loan applications and their repayment outcome, seeded.

Run from the project root: ``python examples/credit/make_data.py`` (its files are committed; the
same seed writes the same rows). Nothing here runs in the pipeline: it reads the Parquet files.

A small consumer lender. Each row is one approved application: when it was made (``applied_at``),
when its outcome was known (``outcome_at``, 14 to 30 days later: the first instalment paid or
missed) and the outcome (``risk``: ``good``, or ``bad`` for an early payment default). The chance of
``bad`` is a logistic function of the repayment burden (the monthly instalment against the monthly
income), the current account, savings, the length of employment, age, purpose, housing, the loan's
duration and other credits.

- ``data/applications_2025.parquet``: 2025, 2,400 applications, the first model's training data.
- ``data/applications_2026.parquet``: January to October 2026, 2,000 applications, replayed as
  traffic. From March on (``DRIFT_FROM``) the lender also takes applications at an online retail
  partner's checkout: the form gains the employment type ``gig`` (platform work, a category the
  first model never saw; those applicants mostly bank elsewhere, so their current account here is
  ``none``, which used to mean a safe applicant), and interest rates rise, so the same burden and
  renting default more often (a concept shift).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260101
#: Applications a month: one month is replayed per pipeline hour (``speed: 720``).
PER_MONTH = 200
DRIFT_FROM = datetime(2026, 3, 1, tzinfo=timezone.utc)
#: The share of applications from the online partner after ``DRIFT_FROM``: employment ``gig``.
PARTNER_SHARE = 0.3
HERE = Path(__file__).resolve().parent

PURPOSES = ["car_new", "car_used", "furniture", "electronics", "education", "business", "repairs", "vacation"]
PURPOSE_P = [0.16, 0.14, 0.17, 0.2, 0.07, 0.1, 0.08, 0.08]
HOUSING = ["own", "rent", "free"]
EMPLOYMENT = ["unemployed", "lt_1y", "1_4y", "4_7y", "ge_7y"]
CHECKING = ["none", "negative", "lt_200", "ge_200"]
CHECKING_P = [0.38, 0.27, 0.27, 0.08]
SAVINGS = ["lt_100", "100_500", "500_1000", "ge_1000", "unknown"]
SAVINGS_P = [0.55, 0.12, 0.07, 0.07, 0.19]
DURATIONS = [6, 9, 12, 15, 18, 24, 30, 36, 48, 60]
DURATION_P = [0.04, 0.05, 0.18, 0.06, 0.12, 0.2, 0.07, 0.14, 0.1, 0.04]

#: Log-odds of a default, per category (before ``SHARPNESS``).
RISK = {
    "purpose": {"car_new": 0.1, "car_used": -0.3, "furniture": 0.0, "electronics": -0.1, "education": 0.5}
    | {"business": 0.6, "repairs": 0.1, "vacation": 0.8},
    "employment": {"unemployed": 1.4, "lt_1y": 0.7, "1_4y": 0.1, "4_7y": -0.4, "ge_7y": -0.8, "gig": 3.0},
    "checking_account": {"none": -1.4, "negative": 1.4, "lt_200": 0.5, "ge_200": -0.9},
    "savings": {"lt_100": 0.5, "100_500": 0.1, "500_1000": -0.5, "ge_1000": -1.0, "unknown": -0.4},
}
#: How sharply the log-odds separate good from bad applicants (the data's noise).
SHARPNESS = 2.0


def _times(rng: np.random.Generator, start: datetime, months: int) -> pd.DatetimeIndex:
    """``PER_MONTH`` application times in each of ``months`` months from ``start``, in order."""
    first = pd.Timestamp(start)
    month_starts = [first + pd.DateOffset(months=m) for m in range(months + 1)]
    applied = []
    for m in range(months):
        span = (month_starts[m + 1] - month_starts[m]).total_seconds()
        offsets = np.sort(rng.uniform(0, span, PER_MONTH))
        applied.extend(month_starts[m] + pd.to_timedelta(offsets.round(), unit="s"))
    return pd.DatetimeIndex(applied).as_unit("us")


def _applicants(rng: np.random.Generator, drifted: np.ndarray) -> dict[str, np.ndarray]:
    """The application form of each applicant; the partner's ones (``gig``) only where ``drifted``."""
    n = drifted.size
    age = np.clip(rng.gamma(5.0, 4.0, n) + 19, 19, 75).round()
    by_age = np.clip((age - 19) / 40, 0, 1)
    ones = np.ones(n)
    weights = np.stack(
        [0.07 - 0.03 * by_age, 0.22 - 0.12 * by_age, 0.36 - 0.1 * by_age, 0.17 * ones, 0.18 + 0.25 * by_age]
    )
    cumulative = np.cumsum(weights / weights.sum(axis=0), axis=0)  # older applicants have worked longer
    employment = np.array(EMPLOYMENT, dtype=object)[np.minimum((rng.random(n) > cumulative).sum(axis=0), 4)]
    gig = drifted & (rng.random(n) < PARTNER_SHARE)
    employment[gig] = "gig"
    housing = np.where(rng.random(n) < 0.25 + 0.5 * by_age, "own", np.where(rng.random(n) < 0.85, "rent", "free"))
    purpose = rng.choice(PURPOSES, n, p=PURPOSE_P)
    purpose[gig] = rng.choice(["electronics", "furniture", "vacation"], int(gig.sum()), p=[0.5, 0.3, 0.2])
    checking = rng.choice(CHECKING, n, p=CHECKING_P)
    checking[gig] = np.where(rng.random(int(gig.sum())) < 0.85, "none", checking[gig])  # new to the bank
    savings = rng.choice(SAVINGS, n, p=SAVINGS_P)
    duration = rng.choice(DURATIONS, n, p=DURATION_P)
    amount = np.clip(np.exp(rng.normal(7.6 + 0.012 * duration, 0.6)), 250, 20_000).round(-1)
    amount[gig] = np.clip(amount[gig] * 0.6, 250, None).round(-1)  # smaller loans at the partner's checkout
    income = np.exp(rng.normal(7.55 + 0.25 * by_age, 0.35)).round(-1)
    income[employment == "unemployed"] *= 0.45
    return {
        "credit_amount": amount,
        "duration_months": duration,
        "monthly_income": income.round(-1),
        "age": age,
        "existing_credits": rng.choice([0, 1, 2, 3, 4], n, p=[0.35, 0.38, 0.17, 0.07, 0.03]),
        "purpose": purpose,
        "housing": housing,
        "employment": employment,
        "checking_account": checking,
        "savings": savings,
        "own_telephone": rng.random(n) < 0.42 + 0.2 * by_age,
    }


def _log_odds(form: dict[str, np.ndarray], drifted: np.ndarray) -> np.ndarray:
    """Log-odds of a default; after the drift, interest rates are higher and burden and renting weigh more."""
    amount, duration = form["credit_amount"], form["duration_months"]
    rate = np.where(drifted, 0.115, 0.07)  # a year's interest
    burden = amount * (1 + rate * duration / 12) / duration / form["monthly_income"]
    housing = form["housing"]
    logit = (
        -2.2
        + np.where(drifted, 12.0, 7.0) * burden
        + 0.012 * (duration - 24)
        - 0.02 * (form["age"] - 35).clip(max=15)
        + 0.15 * form["existing_credits"]
        + np.where(housing == "rent", np.where(drifted, 0.8, 0.2), np.where(housing == "free", 0.1, -0.2))
        - 0.15 * form["own_telephone"]
    )
    for column, risk in RISK.items():
        logit += np.vectorize(risk.get)(form[column])
    return SHARPNESS * logit


def applications(rng: np.random.Generator, start: datetime, months: int) -> pd.DataFrame:
    """``PER_MONTH`` applications in each of ``months`` months from ``start``, with their outcome, as written."""
    applied_at = _times(rng, start, months)
    n = applied_at.size
    drifted = np.asarray(applied_at >= pd.Timestamp(DRIFT_FROM))
    form = _applicants(rng, drifted)
    bad = rng.random(n) < 1 / (1 + np.exp(-_log_odds(form, drifted)))
    not_stated = rng.random(n) < 0.04  # income left blank on the form: a missing value
    outcome_after = pd.to_timedelta(rng.integers(14 * 86_400, 30 * 86_400 + 1, n), unit="s")
    return pd.DataFrame(
        {
            "application_id": [f"A{t.year}-{i:05d}" for i, t in enumerate(applied_at, 1)],
            "applied_at": applied_at,
            "outcome_at": applied_at + outcome_after,
            "credit_amount": form["credit_amount"],
            "duration_months": form["duration_months"].astype(np.int64),
            "monthly_income": np.where(not_stated, np.nan, form["monthly_income"]),
            "age": form["age"].astype(np.int64),
            "existing_credits": form["existing_credits"].astype(np.int64),
            # categories as a data team writes them: pandas categoricals, and a boolean
            "purpose": pd.Categorical(form["purpose"]),
            "housing": pd.Categorical(form["housing"], categories=HOUSING),
            "employment": pd.Categorical(form["employment"]),
            "checking_account": pd.Categorical(form["checking_account"], categories=CHECKING),
            "savings": pd.Categorical(form["savings"], categories=SAVINGS),
            "own_telephone": form["own_telephone"],
            "risk": pd.Categorical(np.where(bad, "bad", "good"), categories=["good", "bad"]),
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "data", help="folder to write the Parquet files to")
    out = parser.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    parts = {
        "applications_2025.parquet": applications(rng, datetime(2025, 1, 1, tzinfo=timezone.utc), 12),
        "applications_2026.parquet": applications(rng, datetime(2026, 1, 1, tzinfo=timezone.utc), 10),
    }
    for name, frame in parts.items():
        frame.to_parquet(out / name, index=False, compression="zstd")
        bad = (frame["risk"] == "bad").mean()
        print(f"{name}: {len(frame)} applications, {bad:.1%} bad, {(out / name).stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
