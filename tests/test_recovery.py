"""Recovery on the synthetic consortium: the pipeline's estimates cover the stated truth.

The generator (flaqum.simulate) draws data from the parameters in ``TRUTH``. Here the package's
own stages score the generated surveys, fit the multilevel model and the outcome hypotheses, and
the estimates are compared with those parameters. A 200-hospital wave keeps the sampling error
of the hospital variance small enough to test against (about 10%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from flaqum.ingest import ingest_source
from flaqum.multilevel import fit_nested
from flaqum.outcomes import load_hypothesis, run_hypothesis
from flaqum.scoring import score_source
from flaqum.simulate import TRUTH, generate_consortium

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_wave(tmp_path_factory, study):
    out = tmp_path_factory.mktemp("recovery")
    truth = generate_consortium(out, study, n_hospitals=200, waves=("w1",), seed=11, fmt="csv",
                                scale=0.5)
    wave = out / "w1"
    scores = {}
    for source in ("staff", "patients", "maturity"):
        ingest_source(study, wave, source, out / f"{source}.parquet")
        scores[source] = score_source(study, source, pd.read_parquet(out / f"{source}.parquet"))
    return truth, scores, wave


def _ci_covers(est, se, true, z=2.58):
    return abs(est - true) <= z * se


@pytest.mark.parametrize("scale, block", [("psych_safety", "psych_safety"),
                                          ("team_collab", "team_collab")])
def test_variance_components_cover_the_truth(big_wave, scale, block):
    truth, scores, _ = big_wave
    t = truth["waves"]["w1"]["scales"][block]
    fit = fit_nested(scores["staff"], scale)
    n_h, n_t = fit.n_hospitals, fit.n_teams
    # the marginal hospital variance includes the maturity effect (the null model has no
    # predictor); Wald-type standard errors of variance estimates: v * sqrt(2 / (groups - 1))
    var_h = t["var_hospital_marginal"]
    se_h = var_h * np.sqrt(2 / (n_h - 1))
    assert _ci_covers(fit.var_hospital, se_h, var_h), (fit.var_hospital, var_h)
    var_t = t["var_team"]
    assert _ci_covers(fit.var_team, var_t * np.sqrt(2 / (n_t - n_h)), var_t), (fit.var_team, var_t)
    # residual: person variance plus item noise and rounding, shrunk a little by clipping
    assert fit.var_residual == pytest.approx(t["var_residual_approx"], rel=0.12)
    assert fit.converged and not fit.singular


def test_hospital_intervals_cover_the_true_means(big_wave):
    truth, scores, _ = big_wave
    fit = fit_nested(scores["staff"], "psych_safety")
    true = pd.Series(truth["waves"]["w1"]["hospitals"]["psych_safety"])
    h = fit.hospitals.set_index("hospital_id")
    # the stated means are on the latent metric; the observed score differs by a constant
    # (rounding and clipping at the scale ends): compare after removing the mean difference
    shift = (h["eb_mean"] - true.reindex(h.index)).mean()
    inside = ((h["ci_low"] - shift <= true) & (true <= h["ci_high"] - shift)).mean()
    assert 0.88 <= inside <= 0.995, inside


@pytest.fixture(scope="module")
def wave_inputs(big_wave):
    truth, scores, wave = big_wave
    teams, hospitals = [], []
    for source, scale_ids in (("staff", ["psych_safety", "team_collab", "qs_prof_total"]),
                              ("patients", ["qs_pat_total"])):
        for sid in scale_ids:
            fit = fit_nested(scores[source], sid)
            teams.append(fit.teams.assign(scale=sid))
            hospitals.append(fit.hospitals.assign(scale=sid))
    ids = {"hospital_id": str, "team_id": str}
    return {
        "teams": pd.concat(teams, ignore_index=True),
        "hospitals": pd.concat(hospitals, ignore_index=True),
        "maturity": scores["maturity"],
        "outcomes": pd.read_csv(wave / "outcomes.csv", dtype=ids),
        "team_outcomes": pd.read_csv(wave / "team_outcomes.csv", dtype=ids),
        "organisations": pd.read_csv(wave / "organisations.csv", dtype=ids),
    }


@pytest.mark.parametrize("hypothesis, term, truth_key", [
    ("psych_safety_incident_reporting", "psych_safety",
     ("outcomes", "beta_psych_safety_incidents")),
    ("climate_mortality", "team_collab", ("outcomes", "beta_team_collab_mortality")),
    ("prof_quickscan_patient_quickscan", "qs_prof_total", ("qs_pat", "delta_prof")),
    ("maturity_psych_safety", "mm_total", ("psych_safety", "gamma_maturity")),
])
def test_outcome_effects_cover_the_truth(wave_inputs, hypothesis, term, truth_key):
    hyp = load_hypothesis(ROOT / "config" / "hypotheses" / f"{hypothesis}.yaml")
    true = TRUTH[truth_key[0]][truth_key[1]]
    res = run_hypothesis(hyp, wave_inputs, "w1")
    est = next(e for e in res["estimates"] if e["term"] == term)
    assert est["ci_low"] <= true <= est["ci_high"], (est, true)
