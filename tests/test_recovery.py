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
from conftest import DEMO

from flaqum.hypotheses import load_hypothesis
from flaqum.multilevel import fit_nested
from flaqum.outcomes import run_hypothesis
from flaqum.simulate import TRUTH, generate_consortium
from flaqum.testing.recovery import attenuation as recovery_attenuation
from flaqum.testing.recovery import hypothesis_inputs, score_wave

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big_wave(tmp_path_factory, study):
    out = tmp_path_factory.mktemp("recovery")
    truth = generate_consortium(
        out, study, n_hospitals=200, waves=("w1",), seed=11, fmt="csv", scale=0.5
    )
    wave = out / "w1"
    return truth, score_wave(study, wave, out), wave


def _ci_covers(est, se, true, z=2.58):
    return abs(est - true) <= z * se


def attenuation(scores, truth, block, scale):
    """:func:`flaqum.testing.recovery.attenuation` on this module's wave."""
    return recovery_attenuation(scores, truth["waves"]["w1"], block, scale)


@pytest.mark.parametrize(
    "scale, block", [("psych_safety", "psych_safety"), ("team_collab", "team_collab")]
)
def test_variance_components_cover_the_truth(big_wave, scale, block):
    truth, scores, _ = big_wave
    t = truth["waves"]["w1"]["scales"][block]
    fit = fit_nested(scores["staff"], scale)
    n_h, n_t = fit.n_hospitals, fit.n_teams
    lam2 = attenuation(scores["staff"], truth, block, scale) ** 2
    assert 0.8 < lam2 <= 1.0
    # the marginal hospital variance includes the maturity effect (the null model has no
    # predictor); Wald-type standard errors of variance estimates: v * sqrt(2 / (groups - 1))
    var_h = t["var_hospital_marginal"] * lam2
    se_h = var_h * np.sqrt(2 / (n_h - 1))
    assert _ci_covers(fit.var_hospital, se_h, var_h), (fit.var_hospital, var_h)
    var_t = t["var_team"] * lam2
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
    _, scores, wave = big_wave
    return hypothesis_inputs(scores, wave)


# (hypothesis, focal term, stated effect, the effect's metric: (predictor's block and scale,
# and for a score outcome the outcome's source, block and scale))
EFFECTS = [
    (
        "psych_safety_incident_reporting",
        "psych_safety",
        ("outcomes", "beta_psych_safety_incidents"),
        ("staff", "psych_safety", "psych_safety"),
        None,
    ),
    (
        "climate_mortality",
        "team_collab",
        ("outcomes", "beta_team_collab_mortality"),
        ("staff", "team_collab", "team_collab"),
        None,
    ),
    (
        "prof_quickscan_patient_quickscan",
        "qs_prof_total",
        ("qs_pat", "delta_prof"),
        ("staff", "qs_prof", "qs_prof_total"),
        ("patients", "qs_pat", "qs_pat_total"),
    ),
    # the generator puts gamma on the observed mm_total itself: no attenuation of the predictor
    (
        "maturity_psych_safety",
        "mm_total",
        ("psych_safety", "gamma_maturity"),
        None,
        ("staff", "psych_safety", "psych_safety"),
    ),
]


@pytest.mark.parametrize("hypothesis, term, truth_key, predictor, outcome", EFFECTS)
def test_outcome_effects_cover_the_truth(
    big_wave, wave_inputs, hypothesis, term, truth_key, predictor, outcome
):
    """The 99% interval of each focal effect covers the stated effect on the observed metric
    (a per-point effect of a score scales with 1 / its slope on the latent score; an effect on
    a score outcome with the outcome's slope)."""
    truth, scores, _ = big_wave
    hyp = load_hypothesis(DEMO / "config" / "hypotheses" / f"{hypothesis}.yaml")
    true = TRUTH[truth_key[0]][truth_key[1]]
    if predictor:
        true /= attenuation(scores[predictor[0]], truth, predictor[1], predictor[2])
    if outcome:
        true *= attenuation(scores[outcome[0]], truth, outcome[1], outcome[2])
    res = run_hypothesis(hyp, wave_inputs, "w1")
    est = next(e for e in res["estimates"] if e["term"] == term)
    assert _ci_covers(est["estimate"], est["se"], true), (est, true)
