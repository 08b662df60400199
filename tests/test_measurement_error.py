"""``measurement_error: reliability``: the reliability-corrected slope of an estimated score
(flaqum.outcomes._measurement_error), recovered on simulated hospitals with stated truth.

Truth: T_h ~ N(3.6, 0.25^2) per hospital, y_h = 1 + 0.6 T_h + N(0, 0.2^2). The multilevel stage
would deliver the raw mean raw_h = T_h + e_h, e_h ~ N(0, s_h^2) with s_h ~ U(0.1, 0.25) (a
reliability of the raw means around 0.7), the EB mean eb_h = m + lambda_h (raw_h - m) and
eb_se_h = sqrt(lambda_h) s_h, lambda_h = tau^2 / (tau^2 + s_h^2). The slope on raw means is
attenuated by their reliability; divided by it, it recovers 0.6, as does the slope on EB means
(regression calibration).
"""

import numpy as np
import pandas as pd
import pytest

from flaqum.hypotheses import assemble_data, load_hypothesis
from flaqum.outcomes import fit_hypothesis

BETA, TAU, MU = 0.6, 0.25, 3.6


def wave(seed: int, n: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    true = MU + rng.normal(0, TAU, n)
    s = rng.uniform(0.1, 0.25, n)
    raw = true + rng.normal(0, s)
    lam = TAU**2 / (TAU**2 + s**2)
    eb = raw.mean() + lam * (raw - raw.mean())
    ids = [f"H{i:04d}" for i in range(1, n + 1)]
    hospitals = pd.DataFrame(
        {
            "scale": "qs_prof_total",
            "hospital_id": ids,
            "n": 200,
            "raw_mean": raw,
            "eb_mean": eb,
            "eb_se": np.sqrt(lam) * s,
        }
    )
    outcomes = pd.DataFrame({"hospital_id": ids, "y": 1 + BETA * true + rng.normal(0, 0.2, n)})
    return {
        "hospitals": hospitals,
        "outcomes": outcomes,
        "true_lambda": float(TAU**2 / (TAU**2 + np.mean(s**2))),
    }


def hyp(correction="reliability"):
    return {
        "id": "me",
        "description": "",
        "level": "hospital",
        "family": "gaussian",
        "outcome": {"source": "outcomes", "column": "y"},
        "predictors": ["qs_prof_total"],
        "covariates": [],
        "predictor_scores": "eb",
        "standardize": False,
        "robust": True,
        "waves": "all",
        "measurement_error": correction,
        "plausible_values": {"draws": 0, "seed": 1, "condition_on_outcome": True},
    }


def fit(w, correction="reliability"):
    inputs = {k: v for k, v in w.items() if k != "true_lambda"}
    h = hyp(correction)
    return fit_hypothesis(h, assemble_data(h, inputs))


def test_large_consortium_recovers_the_true_slope():
    w = wave(1, 3000)
    r = fit(w)
    me = r["measurement_error"]
    assert me["correction"] == "reliability"
    info = me["estimated_predictors"]["qs_prof_total"]
    assert info["reliability_raw"] == pytest.approx(w["true_lambda"], abs=0.03)
    row = me["estimates"][0]
    assert row["estimate_raw"] == pytest.approx(BETA * w["true_lambda"], abs=3 * row["se_raw"])
    assert abs(row["estimate"] - BETA) < 3 * row["se"]
    assert row["ci_low"] < BETA < row["ci_high"]
    plain = next(e for e in r["estimates"] if e["term"] == "qs_prof_total")
    assert abs(plain["estimate"] - BETA) < 3 * plain["se"]  # EB means: regression calibration


def test_thirty_hospitals_corrected_slope_is_unbiased_and_covers():
    """100 consortia of 30 hospitals: the corrected slope is unbiased (mean within 3 MC SE of
    0.6) and its delta-method interval covers at least 0.88 (MC SE about 0.022)."""
    est, hit = [], []
    for seed in range(100, 200):
        row = fit(wave(seed, 30))["measurement_error"]["estimates"][0]
        est.append(row["estimate"])
        hit.append(row["ci_low"] <= BETA <= row["ci_high"])
    est = np.array(est)
    assert abs(est.mean() - BETA) < 3 * est.std(ddof=1) / np.sqrt(est.size)
    assert np.mean(hit) >= 0.88


def test_default_says_the_predictor_is_estimated_without_correcting():
    r = fit(wave(2, 30), correction="none")
    me = r["measurement_error"]
    assert me["correction"] == "none" and me["estimates"] is None
    note = me["estimated_predictors"]["qs_prof_total"]["note"]
    assert "estimated score" in note and "measurement_error: reliability" in note


def test_yaml_key_is_validated(tmp_path):
    from flaqum.errors import ConfigError

    p = tmp_path / "me.yaml"
    p.write_text(
        "id: me\ndescription: x\nlevel: hospital\nfamily: gaussian\n"
        "outcome: {source: outcomes, column: y}\npredictors: [qs_prof_total]\n"
        "measurement_error: reliability\n"
    )
    assert load_hypothesis(p).measurement_error == "reliability"
    p.write_text(p.read_text().replace("reliability", "simex"))
    with pytest.raises(ConfigError, match="measurement_error"):
        load_hypothesis(p)
