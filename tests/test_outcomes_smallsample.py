"""The hypothesis path (``flaqum.outcomes.fit_hypothesis``) against sandwich / clubSandwich.

tests/test_smallsample.py checks the sandwich formulas one by one; this file checks that a
hypothesis fitted the way the pipeline fits it reports the same standard errors and degrees of
freedom as R, to 1e-6 relative (issue 11), on the fixture data of
``tests/fixtures/r/sandwich_reference.R`` and ``sandwich_negbin_reference.R``:

- hospital level (one row per hospital): ``sandwich::vcovHC(fit, type = "HC3")`` of ``lm``,
  ``glm(family = poisson)`` and ``MASS::glm.nb``, df = n - p;
- team level (clustered by hospital): ``clubSandwich::coef_test(fit, vcov = "CR2", cluster =
  hospital_id, test = "Satterthwaite")`` of the same three models, SE and df per term.

The fixture predictors carry no standard error, so no plausible values are drawn.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from flaqum.outcomes import fit_hypothesis

FIX = Path(__file__).resolve().parent / "fixtures" / "r"
REF = json.loads((FIX / "sandwich_reference.json").read_text())
NB = json.loads((FIX / "sandwich_negbin_reference.json").read_text())
RTOL = 1e-6


def _hyp(level, family, column, exposure, predictors):
    source = "outcomes" if level == "hospital" else "team_outcomes"
    return {
        "id": f"fixture_{level}_{family}",
        "description": "R fixture",
        "level": level,
        "family": family,
        "outcome": {"source": source, "column": column, "exposure": exposure},
        "predictors": predictors,
        "covariates": [],
        "predictor_scores": "eb",
        "standardize": False,
        "robust": True,
        "waves": "all",
        "plausible_values": {"draws": 20, "seed": 1, "condition_on_outcome": True},
    }


def _data(level):
    name = "sandwich_hospitals.csv" if level == "hospital" else "sandwich_teams.csv"
    return pd.read_csv(FIX / name, dtype={"hospital_id": str, "team_id": str})


CASES = {  # name: level, family, outcome, exposure, predictors, R reference
    "hospital_ols": ("hospital", "gaussian", "y", None, ["x1", "x2"], REF["hospital_ols"]),
    "hospital_poisson": (
        "hospital",
        "poisson",
        "deaths",
        "exposure",
        ["x1", "x2"],
        REF["hospital_poisson"],
    ),
    "hospital_negbin": (
        "hospital",
        "negative_binomial",
        "deaths",
        "exposure",
        ["x1", "x2"],
        NB["hospital_negbin"],
    ),
    "team_ols": ("team", "gaussian", "y", None, ["xh", "xt"], REF["team_ols"]),
    "team_poisson": ("team", "poisson", "incidents", "exposure", ["xh", "xt"], REF["team_poisson"]),
    "team_negbin": (
        "team",
        "negative_binomial",
        "incidents",
        "exposure",
        ["xh", "xt"],
        NB["team_negbin"],
    ),
}


def _fit(name):
    level, family, col, expo, preds, ref = CASES[name]
    return fit_hypothesis(_hyp(level, family, col, expo, preds), _data(level)), ref


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("hospital")])
def test_hospital_level_hc3_and_residual_df_equal_r(name):
    r, ref = _fit(name)
    assert r["status"] == "fitted"
    est = r["estimates"]
    np.testing.assert_allclose([e["estimate"] for e in est], ref["coef"], rtol=RTOL)
    np.testing.assert_allclose([e["se"] for e in est], ref["HC3"]["se"], rtol=RTOL)
    n, p = 30, 3
    assert all(e["df"] == n - p for e in est)
    assert r["correction"]["se_type"] == "HC3" and r["correction"]["reference"] == "t"
    assert r["correction"]["df"] == {"x1": n - p, "x2": n - p}
    assert r["se_type"] == "HC3 sandwich" and "HC3" in r["correction"]["why"]
    for e in est:  # the interval and p-value use t(n - p)
        crit = stats.t.ppf(0.975, n - p)
        assert e["ci_high"] == pytest.approx(e["estimate"] + crit * e["se"], rel=1e-12)
        assert e["p"] == pytest.approx(
            2 * stats.t.sf(abs(e["estimate"] / e["se"]), n - p), rel=1e-9
        )


@pytest.mark.parametrize("name", [n for n in CASES if n.startswith("team")])
def test_team_level_cr2_and_satterthwaite_df_equal_clubsandwich(name):
    r, ref = _fit(name)
    assert r["status"] == "fitted" and r["n_clusters"] == ref["n_clusters"]
    est = r["estimates"]
    ct = ref["coef_test"]
    np.testing.assert_allclose([e["estimate"] for e in est], ref["coef"], rtol=RTOL)
    np.testing.assert_allclose([e["se"] for e in est], ct["SE"], rtol=RTOL)
    np.testing.assert_allclose([e["df"] for e in est], ct["df_Satt"], rtol=RTOL)
    np.testing.assert_allclose([e["p"] for e in est], ct["p_Satt"], rtol=1e-5, atol=1e-12)
    corr = r["correction"]
    assert corr["se_type"] == "CR2" and corr["clustered_by"] == "hospital_id"
    assert corr["df_method"].startswith("Satterthwaite")
    np.testing.assert_allclose([corr["df"]["xh"], corr["df"]["xt"]], ct["df_Satt"][1:], rtol=RTOL)


def test_negbin_alpha_equals_one_over_theta():
    for name in ("hospital_negbin", "team_negbin"):
        r, ref = _fit(name)
        assert r["diagnostics"]["alpha"] == pytest.approx(1 / ref["theta"], rel=1e-5)


def test_overdispersed_poisson_is_detected_and_noted():
    """The fixture's hospital deaths have a hospital effect (sd 0.2 on the log scale): far more
    variance than Poisson. The sandwich does not assume Var = mu, so the SE is the HC3 one
    (checked above); the JSON says so."""
    r, _ = _fit("hospital_poisson")
    od = r["diagnostics"]["overdispersion"]
    assert od["detected"] is True and od["pearson_chi2_over_df"] > 2 and od["p"] < 0.05
    assert "sandwich" in od["handling"]
    assert any(
        w.startswith("overdispersion: Pearson chi2/df") for w in r["diagnostics"]["warnings"]
    )
    model = fit_hypothesis(
        {**_hyp("hospital", "poisson", "deaths", "exposure", ["x1", "x2"]), "robust": False},
        _data("hospital"),
    )
    assert "quasi-Poisson" in model["diagnostics"]["overdispersion"]["handling"]
    assert model["correction"]["se_type"] == "model"
