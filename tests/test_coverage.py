"""A small, seeded coverage study of the main hospital-level hypothesis (issue 11).

``climate_mortality`` (deaths with exposure expected_deaths ~ team_collab, Poisson, one row per
hospital) at 30 hospitals, the Triangle Study's size. Each replication draws a consortium the
way ``flaqum.simulate`` draws its hospital outcomes (beds by hospital type times a lognormal
factor, admissions = beds x U(35, 50), expected deaths = admissions x U(0.015, 0.03), deaths ~
Poisson(expected x exp(beta (T - mu))) with beta and mu of ``simulate.TRUTH``), gives the model
the predictor as an empirical-Bayes mean of T measured with a hospital-specific error (eb =
mu + lambda (T + e - mu), lambda = tau^2 / (tau^2 + se^2), as the multilevel stage gives), and
fits it with :func:`flaqum.outcomes.fit_hypothesis`. Whether the 95% interval of the slope covers
beta is counted over the replications.

Why this design and not ``bench/coverage.py``: the bench runs the whole pipeline (generate,
ingest, score, multilevel, hypotheses; several seconds a replication), far beyond a test's
budget. Here only the hospital table and the hypothesis fit are simulated, so 200 replications
run in about 15 s on an idle core (the plain fit only: plausible values are switched off, they
multiply the cost by 20 and the bench covers them).

Why 200 replications and a bound of 0.90: the Monte-Carlo SE of a coverage near 0.95 is
sqrt(0.95 x 0.05 / 200) = 0.015, so a correct interval falls below 0.90 with probability
P(z < -3.2) < 0.001, while the asymptotic inference (HC1 sandwich, normal reference; what the
pipeline used before issue 11) covered 0.85 in the full pipeline (issue 11;
bench/results/2026-12-01-coverage.md). The seeds are fixed, so the test is deterministic. The
other two tests show that the bound can fail: the old inference covers less on the same replications
(0.925 against 0.965 here: this simplified design lacks the metric and shrinkage errors of the
full pipeline, where it covered 0.85), and intervals whose SEs are as much too small as the
pipeline's HC1 SEs were (SD/SE 1.28) fall below 0.90.
"""

import numpy as np
import pandas as pd
import pytest

from flaqum import outcomes
from flaqum.simulate import HOSPITAL_TYPE_P, HOSPITAL_TYPES, TRUTH

BETA = TRUTH["outcomes"]["beta_team_collab_mortality"]
MU = TRUTH["team_collab"]["mu"]
TAU = 0.155  # SD of true hospital means of team_collab: sqrt(var_hospital + var_team / ~20 teams)
BEDS = {"general": 350, "teaching": 650, "university": 1100, "specialised": 180}
N_HOSPITALS = 30
REPS = 200
SEED = 11_000
HYP = {
    "id": "climate_mortality",
    "description": "coverage test",
    "level": "hospital",
    "family": "poisson",
    "outcome": {"source": "outcomes", "column": "deaths", "exposure": "expected_deaths"},
    "predictors": ["team_collab"],
    "covariates": [],
    "predictor_scores": "eb",
    "standardize": False,
    "robust": True,
    "waves": "all",
    "plausible_values": {"draws": 0, "seed": 1, "condition_on_outcome": True},
}


def consortium(seed: int, n: int = N_HOSPITALS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    htype = rng.choice(HOSPITAL_TYPES, size=n, p=HOSPITAL_TYPE_P)
    beds = np.array([BEDS[t] for t in htype]) * rng.lognormal(0, 0.3, n)
    expected = np.round(np.round(beds * rng.uniform(35, 50, n)) * rng.uniform(0.015, 0.03, n), 1)
    true = MU + rng.normal(0, TAU, n)
    se = rng.uniform(0.03, 0.08, n)  # SE of a hospital's raw mean (hundreds of staff)
    lam = TAU**2 / (TAU**2 + se**2)
    eb = MU + lam * (true + rng.normal(0, se) - MU)
    deaths = rng.poisson(expected * np.exp(BETA * (true - MU)))
    return pd.DataFrame(
        {
            "hospital_id": [f"H{i:02d}" for i in range(1, n + 1)],
            "deaths": deaths,
            "expected_deaths": expected,
            "team_collab": eb,
            "team_collab__se": np.sqrt(lam) * se,
        }
    )


def intervals(inference: str) -> pd.DataFrame:
    """estimate, se, df, ci_low, ci_high of the slope in each replication."""
    saved = outcomes.INFERENCE
    outcomes.INFERENCE = inference
    try:
        rows = []
        for r in range(REPS):
            res = outcomes.fit_hypothesis(HYP, consortium(SEED + r))
            rows.append(next(e for e in res["estimates"] if e["term"] == "team_collab"))
    finally:
        outcomes.INFERENCE = saved
    return pd.DataFrame(rows)


def coverage(lo, hi) -> tuple[float, float]:
    hits = (np.asarray(lo) <= BETA) & (BETA <= np.asarray(hi))
    p = float(hits.mean())
    return p, float(np.sqrt(p * (1 - p) / hits.size))


@pytest.fixture(scope="module")
def fits():
    return {inf: intervals(inf) for inf in ("small_sample", "asymptotic")}


def test_hospital_level_interval_covers_at_least_90_percent(fits):
    new = fits["small_sample"]
    p, mcse = coverage(new["ci_low"], new["ci_high"])
    assert p >= 0.90, f"coverage {p:.3f} (MC SE {mcse:.3f}) of climate_mortality at 30 hospitals"
    assert p <= 0.99, f"coverage {p:.3f}: the interval is far wider than it needs to be"
    assert (new["df"] == N_HOSPITALS - 2).all()  # t reference on n - p df


def test_the_old_inference_is_closer_to_failing(fits):
    """HC1 with a normal reference (before issue 11) covers less on the same replications."""
    p_new, _ = coverage(fits["small_sample"]["ci_low"], fits["small_sample"]["ci_high"])
    p_old, _ = coverage(fits["asymptotic"]["ci_low"], fits["asymptotic"]["ci_high"])
    assert p_old < p_new
    assert (fits["asymptotic"]["se"] < fits["small_sample"]["se"]).mean() > 0.9


def test_the_bound_fails_for_standard_errors_as_small_as_the_issue_found(fits):
    """The full pipeline's HC1 SEs of this hypothesis were 1.28 times too small (issue 11:
    SD/SE 1.28, coverage 0.85). The same shortfall applied to the intervals of these
    replications takes them below the bound: the first test can fail."""
    new = fits["small_sample"]
    half = (new["ci_high"] - new["ci_low"]) / 2 / 1.28
    p, _ = coverage(new["estimate"] - half, new["estimate"] + half)
    assert p < 0.90
