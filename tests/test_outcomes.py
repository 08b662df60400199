"""Outcome hypotheses: recovery of known effects from simulated data, plausible values, BH
q-values, schema messages, degenerate models, determinism.

Every data set here is simulated from true parameters stated in the test; the checks compare
estimates with those parameters, not with stored numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flaqum.errors import ConfigError
from flaqum.hypotheses import PlausibleValues, assemble_data, load_hypothesis
from flaqum.outcomes import (
    fit_hypothesis,
    result_to_json,
    run_hypothesis,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
# The demo's hypotheses as the tests know them (the shipped config/ is the user's to edit)
DEMO_HYPOTHESES = ROOT / "tests" / "fixtures" / "demo_study" / "config" / "hypotheses"
SHIPPED = sorted(DEMO_HYPOTHESES.glob("*.yaml"))


# ------------------------------------------------------------------------------------------
# Simulation
# ------------------------------------------------------------------------------------------


def _eb(rng, true, tau2, mu, noise_sd):
    """Observed means of `true` with error `noise_sd`, and their EB posterior mean and SD under
    true ~ N(mu, tau2): the eb_mean/eb_se the multilevel stage would hand over."""
    noise_sd = np.broadcast_to(np.asarray(noise_sd, float), true.shape)
    raw = true + rng.normal(0, noise_sd)
    lam = tau2 / (tau2 + noise_sd**2)
    return raw, mu + lam * (raw - mu), np.sqrt(lam * noise_sd**2)


def _rows(scale, ids, raw, eb, se, team_ids=None):
    df = pd.DataFrame({"scale": scale, "hospital_id": ids})
    if team_ids is not None:
        df["team_id"] = team_ids
    df["n"] = 12
    df["raw_mean"], df["eb_mean"], df["eb_se"] = raw, eb, se
    df["ci_low"], df["ci_high"] = eb - 1.96 * se, eb + 1.96 * se
    df["suppressed"] = False
    return df


def simulate_wave(
    seed=1,
    n_hosp=30,
    teams_per=10,
    *,
    b_incidents=0.4,
    b_mm=0.25,
    b_pat=0.6,
    b_mort=-0.3,
    team_noise=0.45,
    hosp_noise=0.08,
    alpha=0.2,
):
    """A wave's inputs with known effects.

    - team psych_safety P = 5 + 0.3 z_h + 0.45 z_t + b_mm (mm_total - 3), mm_total ~ N(3, 0.8^2)
    - incidents ~ NB2(mu = patient_days * exp(log 0.01 + b_incidents (P - 5)), alpha)
    - hospital qs_pat_total = 1 + b_pat qs_prof_total + N(0, 0.15^2)
    - deaths ~ Poisson(expected_deaths * exp(b_mort (team_collab - 4)))
    """
    rng = np.random.default_rng(seed)
    hosp = [f"{i:04d}" for i in range(1, n_hosp + 1)]  # "0001": an id, not a number
    mm = rng.normal(3, 0.8, n_hosp)
    h_eff = rng.normal(0, 0.3, n_hosp)
    team_h = np.repeat(np.arange(n_hosp), teams_per)
    team_id = [f"T{j % teams_per:02d}" for j in range(n_hosp * teams_per)]  # reused per hospital
    mm_total_t = mm[team_h]
    ps_true = 5 + h_eff[team_h] + rng.normal(0, 0.45, team_h.size) + b_mm * (mm_total_t - 3)
    tau2 = float(np.var(ps_true))
    ps_raw, ps_eb, ps_se = _eb(rng, ps_true, tau2, float(np.mean(ps_true)), team_noise)
    days = rng.uniform(2000, 8000, team_h.size).round()
    mu = days * np.exp(np.log(0.01) + b_incidents * (ps_true - 5))
    incidents = rng.poisson(rng.gamma(1 / alpha, alpha * mu))
    teams = _rows("psych_safety", np.array(hosp)[team_h], ps_raw, ps_eb, ps_se, team_id)

    prof_true = rng.normal(3.8, 0.3, n_hosp)
    prof_raw, prof_eb, prof_se = _eb(rng, prof_true, 0.09, 3.8, hosp_noise)
    pat = 1 + b_pat * prof_true + rng.normal(0, 0.15, n_hosp)
    collab_true = rng.normal(4, 0.4, n_hosp)
    collab_raw, collab_eb, collab_se = _eb(rng, collab_true, 0.16, 4.0, hosp_noise)
    ps_h_raw = pd.Series(ps_raw).groupby(team_h).mean().to_numpy()
    expected = rng.uniform(40, 120, n_hosp)
    deaths = rng.poisson(expected * np.exp(b_mort * (collab_true - 4)))
    hospitals = pd.concat(
        [
            _rows("qs_prof_total", hosp, prof_raw, prof_eb, prof_se),
            _rows("qs_pat_total", hosp, pat, pat, np.full(n_hosp, 0.02)),
            _rows("team_collab", hosp, collab_raw, collab_eb, collab_se),
            _rows("psych_safety", hosp, ps_h_raw, ps_h_raw, np.full(n_hosp, 0.05)),
        ],
        ignore_index=True,
    )
    maturity = pd.DataFrame(
        {
            "respondent_id": hosp,
            "hospital_id": hosp,
            "team_id": "",
            "mm_total": mm,
            "mm_culture": rng.normal(3, 1, n_hosp),
        }
    )
    outcomes = pd.DataFrame(
        {
            "hospital_id": hosp,
            "admissions": rng.integers(5000, 20000, n_hosp),
            "deaths": deaths,
            "expected_deaths": expected,
        }
    )
    team_outcomes = pd.DataFrame(
        {
            "hospital_id": np.array(hosp)[team_h],
            "team_id": team_id,
            "patient_days": days,
            "incidents_reported": incidents,
        }
    )
    organisations = pd.DataFrame(
        {
            "hospital_id": hosp,
            "hospital_name": [f"Hospital {h}" for h in hosp],
            "hospital_type": rng.choice(["general", "university"], n_hosp),
            "beds": rng.integers(150, 1200, n_hosp),
            "region": "Flanders",
            "network": "N1",
        }
    )
    return {
        "hospitals": hospitals,
        "teams": teams,
        "maturity": maturity,
        "outcomes": outcomes,
        "team_outcomes": team_outcomes,
        "organisations": organisations,
    }


def hyp(id="h", **kw):
    base = {
        "id": id,
        "description": "test",
        "level": "hospital",
        "family": "gaussian",
        "outcome": {"source": "scale", "column": "qs_pat_total", "scores": "eb"},
        "predictors": ["qs_prof_total"],
        "covariates": [],
        "predictor_scores": "eb",
        "standardize": False,
        "robust": True,
        "waves": "all",
        "plausible_values": {"draws": 20, "seed": 7, "condition_on_outcome": True},
    }
    base.update(kw)
    return base


def shipped(name):
    return load_hypothesis(DEMO_HYPOTHESES / f"{name}.yaml")


def term(est, name):
    return next(e for e in est if e["term"] == name)


def within(e, truth, k=3.0):
    return abs(e["estimate"] - truth) <= k * e["se"]


def _check_pv_se(pv):
    """The score's uncertainty is added: total SE > the SE of a fit with the scores as known
    (the mean within-imputation SE), by a positive fraction of missing information."""
    assert pv["fraction_missing_info"] > 0
    assert pv["se"] > pv["se_within"]
    assert pv["se"] ** 2 == pytest.approx(pv["se_within"] ** 2 / (1 - pv["fraction_missing_info"]))


# ------------------------------------------------------------------------------------------
# Loading and the schema
# ------------------------------------------------------------------------------------------


def test_shipped_hypotheses_load():
    """Each hypothesis the user finds in config/hypotheses/ loads, whatever it declares."""
    for p in sorted((ROOT / "config" / "hypotheses").glob("*.yaml")):
        assert load_hypothesis(p).id == p.stem


def test_demo_hypotheses_as_the_tests_know_them():
    assert {p.stem for p in SHIPPED} >= {
        "maturity_psych_safety",
        "psych_safety_incident_reporting",
        "prof_quickscan_patient_quickscan",
        "climate_mortality",
    }
    for p in SHIPPED:
        h = load_hypothesis(p)
        assert h.id == p.stem
        assert h.standardize is False
        assert h.plausible_values.draws > 0


def _write(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


GOOD = """id: {id}
description: x
level: hospital
family: poisson
outcome: {{source: outcomes, column: deaths, exposure: expected_deaths}}
predictors: [team_collab]
"""


def test_schema_error_names_file_key_and_value(tmp_path):
    p = _write(tmp_path, "bad", GOOD.format(id="bad").replace("poisson", "poison"))
    with pytest.raises(ConfigError) as exc:
        load_hypothesis(p)
    msg = str(exc.value)
    assert str(p) in msg and "at family" in msg and "poison" in msg


def test_unknown_key_and_missing_required(tmp_path):
    p = _write(tmp_path, "typo", GOOD.format(id="typo") + "standardise: true\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*\n.*standardise"):
        load_hypothesis(p)
    p = _write(
        tmp_path, "nopred", GOOD.format(id="nopred").replace("predictors: [team_collab]\n", "")
    )
    with pytest.raises(ConfigError, match=r"nopred\.yaml(.|\n)*predictors"):
        load_hypothesis(p)


def test_rules_beyond_the_schema(tmp_path):
    p = _write(tmp_path, "other", GOOD.format(id="not_other"))
    with pytest.raises(ConfigError, match=r"other\.yaml: at id: 'not_other'"):
        load_hypothesis(p)
    p = _write(
        tmp_path,
        "binom",
        GOOD.format(id="binom")
        .replace("poisson", "binomial")
        .replace(", exposure: expected_deaths", ""),
    )
    with pytest.raises(ConfigError, match=r"binom\.yaml: at outcome/exposure: .*trials"):
        load_hypothesis(p)
    p = _write(tmp_path, "lvl", GOOD.format(id="lvl").replace("level: hospital", "level: team"))
    with pytest.raises(ConfigError, match=r"lvl\.yaml: at outcome/source"):
        load_hypothesis(p)


def test_defaults_filled(tmp_path):
    h = load_hypothesis(_write(tmp_path, "dflt", GOOD.format(id="dflt")))
    assert h.standardize is False and h.robust is True and h.covariates == []
    assert h.predictor_scores == "eb" and h.waves == "all" and h.measurement_error == "none"
    assert h.outcome.scores == "eb" and h.outcome.source == "outcomes"
    assert h.plausible_values == PlausibleValues(draws=20, seed=20261122, condition_on_outcome=True)


def test_unknown_predictor_names_the_hypothesis():
    with pytest.raises(ConfigError, match=r"hypothesis h: at predictors: 'qs_nonexistent'"):
        assemble_data(hyp(predictors=["qs_nonexistent"]), simulate_wave())


# ------------------------------------------------------------------------------------------
# The analysis table
# ------------------------------------------------------------------------------------------


def test_assemble_team_level_cross_level_and_ids():
    w = simulate_wave(n_hosp=12, teams_per=4)
    h = shipped("maturity_psych_safety")
    d = assemble_data(h, w, wave="2025-1")
    assert len(d) == 12 * 4  # team "T00" in 12 hospitals is 12 teams
    assert d["hospital_id"].iloc[0] == "0001"
    # the hospital's maturity score is repeated on each of its teams
    assert (d.groupby("hospital_id")["mm_total"].nunique() == 1).all()
    m = w["maturity"].set_index("hospital_id")["mm_total"]
    assert np.allclose(d["mm_total"], m.loc[d["hospital_id"]].to_numpy())
    assert d.attrs["scores_used"]["mm_total"]["level"] == "hospital"


def test_assemble_hospital_level_covariates_and_raw_scores():
    w = simulate_wave()
    d = assemble_data(hyp(covariates=["hospital_type", "beds"], predictor_scores="raw"), w)
    assert list(d.columns[:1]) == ["hospital_id"] and len(d) == 30
    raw = w["hospitals"].query("scale == 'qs_prof_total'")["raw_mean"].to_numpy()
    assert np.allclose(d["qs_prof_total"], raw)
    assert "qs_prof_total__se" not in d.columns  # raw means carry no eb_se
    r = fit_hypothesis(hyp(covariates=["hospital_type", "beds"], predictor_scores="raw"), d)
    terms = [e["term"] for e in r["estimates"]]
    assert terms == ["Intercept", "qs_prof_total", "hospital_type[university]", "beds"]
    assert [e["focal"] for e in r["estimates"]] == [False, True, False, False]
    assert r["plausible_values"] is None
    assert r["scores_used"]["qs_prof_total"]["score"] == "raw_mean"


# ------------------------------------------------------------------------------------------
# Recovery of the truth
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_hosp", [30, 200])
def test_gaussian_hospital_level_recovers_slope(n_hosp):
    b = 0.6
    w = simulate_wave(seed=3, n_hosp=n_hosp, teams_per=2, b_pat=b)
    h = shipped("prof_quickscan_patient_quickscan")
    r = run_hypothesis(h, w, "w1")
    e = term(r["estimates"], "qs_prof_total")
    assert r["n"] == n_hosp and r["se_type"] == "HC3 sandwich"
    assert r["correction"]["se_type"] == "HC3" and r["correction"]["reference"] == "t"
    assert r["correction"]["df"]["qs_prof_total"] == n_hosp - 2 == e["df"]
    assert e["ci_low"] < b < e["ci_high"]
    pv = term(r["plausible_values"]["estimates"], "qs_prof_total")
    assert pv["ci_low"] < b < pv["ci_high"]
    _check_pv_se(pv)
    assert r["diagnostics"]["converged"] is True
    assert r["scores_used"]["qs_prof_total"]["plausible_values"] is True


def test_poisson_mortality_ratio_recovers_slope():
    b = -0.3
    w = simulate_wave(seed=4, n_hosp=200, teams_per=2, b_mort=b)
    r = run_hypothesis(shipped("climate_mortality"), w, "w1")
    e = term(r["estimates"], "team_collab")
    assert within(e, b)
    assert e["exp_estimate"] == pytest.approx(np.exp(e["estimate"]))
    assert e["exp_ci_low"] < e["exp_estimate"] < e["exp_ci_high"]
    assert r["effect_scale"] == "rate_ratio"
    pv = term(r["plausible_values"]["estimates"], "team_collab")
    assert within(pv, b)
    _check_pv_se(pv)
    assert 0.5 < r["diagnostics"]["pearson_chi2_over_df"] < 2  # Poisson: no overdispersion


def test_negative_binomial_team_level_recovers_slope_and_alpha():
    b, alpha = 0.4, 0.2
    w = simulate_wave(seed=1, n_hosp=30, teams_per=10, b_incidents=b, alpha=alpha)
    r = run_hypothesis(shipped("psych_safety_incident_reporting"), w, "w1")
    assert r["n"] == 300 and r["n_clusters"] == 30
    assert r["se_type"].startswith("cluster-robust by hospital_id")
    d = r["diagnostics"]
    assert d["converged"] and d["alpha"] == pytest.approx(alpha, abs=0.1)
    plain = term(r["estimates"], "psych_safety")
    pv = term(r["plausible_values"]["estimates"], "psych_safety")
    assert within(plain, b)  # regression calibration on EB means
    assert within(pv, b)  # plausible values conditioned on the outcome
    _check_pv_se(pv)
    assert r["scores_used"]["psych_safety"]["reliability"] < 0.7  # a noisy team score


def test_unconditional_plausible_values_attenuate():
    """Draws from N(eb_mean, eb_se^2) alone ignore the outcome and shrink the slope towards 0 by
    about the score's reliability; the outcome-conditioned draws do not."""
    b = 0.4
    w = simulate_wave(seed=1, n_hosp=30, teams_per=10, b_incidents=b)
    h = shipped("psych_safety_incident_reporting")
    cond = run_hypothesis(h, w, "w1")
    h2 = replace(h, plausible_values=replace(h.plausible_values, condition_on_outcome=False))
    unc = run_hypothesis(h2, w, "w1")
    rel = cond["scores_used"]["psych_safety"]["reliability"]
    b_cond = term(cond["plausible_values"]["estimates"], "psych_safety")["estimate"]
    b_unc = term(unc["plausible_values"]["estimates"], "psych_safety")["estimate"]
    b_plain = term(cond["estimates"], "psych_safety")["estimate"]
    se_plain = term(cond["estimates"], "psych_safety")["se"]
    assert abs(b_cond - b_plain) < 0.5 * se_plain  # conditioned: no attenuation
    assert b_unc == pytest.approx(rel * b_cond, rel=0.2)  # unconditional: x reliability
    assert b_unc < b_cond - 2 * se_plain
    assert unc["plausible_values"]["method"].startswith("unconditional")


def test_cross_level_gaussian_cluster_robust():
    b = 0.25
    w = simulate_wave(seed=6, n_hosp=60, teams_per=8, b_mm=b, team_noise=0.1)
    r = run_hypothesis(shipped("maturity_psych_safety"), w, "w1")
    e = term(r["estimates"], "mm_total")
    assert r["n_clusters"] == 60
    assert within(e, b)
    assert r["plausible_values"] is None  # maturity scores carry no eb_se
    assert any("no predictor has an eb_se" in m for m in r["diagnostics"]["warnings"])
    # a naive (non-clustered) SE would be smaller: mm_total varies only between hospitals
    naive = run_hypothesis(replace(shipped("maturity_psych_safety"), robust=False), w, "w1")
    assert term(naive["estimates"], "mm_total")["se"] < e["se"]


def test_standardize_gives_per_sd_effects():
    w = simulate_wave(seed=3, n_hosp=200, teams_per=2)
    h = shipped("prof_quickscan_patient_quickscan")
    per_point = term(run_hypothesis(h, w)["estimates"], "qs_prof_total")["estimate"]
    per_sd = term(run_hypothesis(replace(h, standardize=True), w)["estimates"], "qs_prof_total")[
        "estimate"
    ]
    sd = w["hospitals"].query("scale == 'qs_prof_total'")["eb_mean"].std(ddof=1)
    assert per_sd == pytest.approx(per_point * sd)


def test_binomial_recovers_slope():
    rng = np.random.default_rng(8)
    w = simulate_wave(seed=8, n_hosp=200, teams_per=2)
    x = w["hospitals"].query("scale == 'team_collab'")["eb_mean"].to_numpy()
    trials = rng.integers(50, 300, 200)
    w["outcomes"]["readmissions"] = rng.binomial(trials, 1 / (1 + np.exp(-(-2 + 0.5 * (x - 4)))))
    w["outcomes"]["admissions"] = trials
    h = hyp(
        family="binomial",
        outcome={"source": "outcomes", "column": "readmissions", "exposure": "admissions"},
        predictors=["team_collab"],
        plausible_values={"draws": 0, "seed": 1, "condition_on_outcome": True},
    )
    r = run_hypothesis(h, w)
    e = term(r["estimates"], "team_collab")
    assert within(e, 0.5) and r["effect_scale"] == "odds_ratio"
    assert term(r["estimates"], "Intercept")["estimate"] == pytest.approx(-2 - 0.5 * 4, abs=0.5)


# ------------------------------------------------------------------------------------------
# Multiple testing
# ------------------------------------------------------------------------------------------


def _fake(id, p, wave="w1"):
    return {
        "id": id,
        "wave": wave,
        "n": 30,
        "family": "gaussian",
        "level": "hospital",
        "predictors": ["x"],
        "scores_used": {"x": {"score": "eb_mean"}},
        "estimates": [
            {
                "term": "Intercept",
                "focal": False,
                "estimate": 1.0,
                "se": 1.0,
                "ci_low": -1.0,
                "ci_high": 3.0,
                "p": 0.001,
            },
            {
                "term": "x",
                "focal": True,
                "estimate": 0.5,
                "se": 0.2,
                "ci_low": 0.1,
                "ci_high": 0.9,
                "p": p,
            },
        ],
        "plausible_values": None,
    }


def test_bh_q_values_match_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, 0.5]
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.5 -> p*m/rank 0.025, 0.025, 0.05, 0.05, 0.5,
    # then the running minimum from the largest rank down
    expected = [0.025, 0.05, 0.05, 0.025, 0.5]
    results = [_fake(f"h{i}", pi) for i, pi in enumerate(p)] + [_fake("other_wave", 0.01, "w2")]
    table, out = summarise(results)
    q = [term(r["estimates"], "x")["q"] for r in out[:5]]
    assert q == pytest.approx(expected)
    assert term(out[5]["estimates"], "x")["q"] == pytest.approx(0.01)  # its own wave: m = 1
    assert all(term(r["estimates"], "Intercept")["q"] is None for r in out)
    assert "q" not in results[0]["estimates"][1]  # inputs untouched
    assert list(table.columns)[:4] == ["wave", "hypothesis", "fit", "term"]
    assert len(table) == 6
    assert table.loc[table.hypothesis == "h1", "q"].item() == pytest.approx(0.05)


def test_summarise_real_results_and_json():
    w = simulate_wave(seed=5)
    res = [run_hypothesis(p, w, "w1") for p in SHIPPED]
    table, out = summarise(res)
    assert set(table["hypothesis"]) == {p.stem for p in SHIPPED}
    assert set(table["fit"]) == {"plain", "plausible_values"}
    for r in out:
        text = result_to_json(r)  # strict JSON: no NaN
        back = json.loads(text)
        assert back["id"] == r["id"]
        for e in back["estimates"]:
            assert ("q" in e) and (e["q"] is None or 0 <= e["q"] <= 1)
        assert set(back["diagnostics"]) >= {
            "converged",
            "aic",
            "deviance",
            "pearson_chi2_over_df",
            "alpha",
            "n_dropped_missing",
            "warnings",
        }


# ------------------------------------------------------------------------------------------
# Degenerate models, missing data, determinism
# ------------------------------------------------------------------------------------------


def _small(n):
    w = simulate_wave(seed=9, n_hosp=n, teams_per=2)
    return w


@pytest.mark.parametrize(
    "name",
    [
        "prof_quickscan_patient_quickscan",
        "climate_mortality",
        "psych_safety_incident_reporting",
        "maturity_psych_safety",
    ],
)
def test_too_few_rows_does_not_crash(name):
    w = _small(1)
    r = run_hypothesis(shipped(name), w, "w1")
    assert r["diagnostics"]["converged"] is False
    assert any("too few rows" in m for m in r["diagnostics"]["warnings"])
    json.loads(result_to_json(r))


def test_constant_predictor_does_not_crash():
    w = simulate_wave(seed=2)
    w["hospitals"].loc[w["hospitals"].scale == "team_collab", "eb_mean"] = 4.0
    r = run_hypothesis(shipped("climate_mortality"), w, "w1")
    assert r["diagnostics"]["converged"] is False
    assert any("rank deficient" in m for m in r["diagnostics"]["warnings"])
    assert term(r["estimates"], "team_collab")["estimate"] is None


def test_perfect_separation_does_not_crash():
    w = simulate_wave(seed=2)
    x = w["hospitals"].query("scale == 'team_collab'")["eb_mean"].to_numpy()
    w["outcomes"]["admissions"] = 50
    w["outcomes"]["readmissions"] = np.where(x > np.median(x), 50, 0)
    h = hyp(
        family="binomial",
        outcome={"source": "outcomes", "column": "readmissions", "exposure": "admissions"},
        predictors=["team_collab"],
    )
    r = run_hypothesis(h, w)
    assert r["diagnostics"]["converged"] is False
    assert r["diagnostics"]["warnings"]
    json.loads(result_to_json(r))


def test_all_zero_counts_negative_binomial_is_not_fitted_and_says_why():
    """No events at all: the intercept's MLE is minus infinity and the slope is not
    identified, so there is nothing to estimate; the result says so instead of a number."""
    w = simulate_wave(seed=2, n_hosp=10, teams_per=3)
    w["team_outcomes"]["incidents_reported"] = 0
    n_teams = len(w["team_outcomes"])
    r = run_hypothesis(shipped("psych_safety_incident_reporting"), w, "w1")
    assert r["status"] == "not_fitted" and r["n"] == 0
    assert r["reason"].startswith(f"the outcome incidents_reported is 0 in all {n_teams} teams")
    assert r["reason"] in r["diagnostics"]["warnings"]
    assert r["diagnostics"]["converged"] is False
    assert r["diagnostics"]["n_rows"] == r["diagnostics"]["n_complete"] == n_teams
    assert {e["term"] for e in r["estimates"]} == {"Intercept", "psych_safety"}
    assert all(e[k] is None for e in r["estimates"] for k in ("estimate", "se", "p"))
    assert r["plausible_values"] is None
    assert json.loads(result_to_json(r))["status"] == "not_fitted"


def test_missing_values_are_dropped_and_counted():
    w = simulate_wave(seed=2)
    w["outcomes"].loc[[0, 1], "deaths"] = np.nan
    w["outcomes"].loc[2, "expected_deaths"] = 0  # no exposure: cannot be an offset
    w["outcomes"] = w["outcomes"].iloc[:-1]  # a hospital without outcomes
    r = run_hypothesis(shipped("climate_mortality"), w, "w1")
    assert r["n"] == 26 and r["diagnostics"]["n_dropped_missing"] == 4
    assert any("expected_deaths <= 0" in m for m in r["diagnostics"]["warnings"])


def test_deterministic_and_independent_of_row_order():
    w = simulate_wave(seed=5)
    a = [result_to_json(run_hypothesis(p, w, "w1")) for p in SHIPPED]
    b = [result_to_json(run_hypothesis(p, w, "w1")) for p in SHIPPED]
    assert a == b
    shuffled = {k: v.sample(frac=1, random_state=0) for k, v in w.items()}
    c = [result_to_json(run_hypothesis(p, shuffled, "w1")) for p in SHIPPED]
    assert a == c


def test_hospital_score_at_team_level_draws_per_hospital():
    w = simulate_wave(seed=2, n_hosp=20, teams_per=5)
    h = replace(shipped("psych_safety_incident_reporting"), predictors=["hospital:team_collab"])
    d = assemble_data(h, w)
    assert (d.groupby("hospital_id")["hospital:team_collab"].nunique() == 1).all()
    r = fit_hypothesis(h, d, "w1")
    used = r["scores_used"]["hospital:team_collab"]
    assert used["level"] == "hospital" and used["plausible_values"] is True
    assert r["plausible_values"]["draws_converged"] == r["plausible_values"]["draws"]
    assert r["scores_used"]["incidents_reported"]["score"] == "observed"


def test_scale_outcome_reports_its_reliability():
    hyp = shipped("maturity_psych_safety")
    hyp = replace(hyp, outcome=replace(hyp.outcome, scores="eb"))
    r = run_hypothesis(hyp, simulate_wave(seed=2), "w1")
    assert 0 < r["scores_used"]["psych_safety"]["reliability"] < 1
    assert r["scores_used"]["psych_safety"]["plausible_values"] is False


# ------------------------------------------------------------------------------------------
# Status of a result, and the demo's own specification
# ------------------------------------------------------------------------------------------


def test_fitted_result_states_status_and_counts():
    w = simulate_wave(seed=2)
    w["outcomes"].loc[[0, 1], "deaths"] = np.nan
    r = run_hypothesis(shipped("climate_mortality"), w, "w1")
    assert r["status"] == "fitted" and r["reason"] is None
    d = r["diagnostics"]
    assert r["n"] == d["n_complete"] == 28 and d["n_rows"] == 30
    assert d["n_dropped_missing"] == d["n_rows"] - d["n_complete"]


def test_shipped_demo_draws_no_specification_warning():
    """The demo models what the docs recommend: a score outcome as its raw (observed) mean,
    EB predictors with plausible values; no warning about its own specification."""
    w = simulate_wave(seed=5)
    for p in SHIPPED:
        r = run_hypothesis(p, w, "w1")
        assert r["status"] == "fitted", (p.stem, r["reason"])
        assert not any("shrunken EB mean" in m for m in r["diagnostics"]["warnings"]), p.stem
    r = run_hypothesis(shipped("prof_quickscan_patient_quickscan"), w, "w1")
    assert r["outcome"]["scores"] == "raw"
    assert r["scores_used"]["qs_pat_total"]["score"] == "raw_mean"
    assert r["scores_used"]["qs_prof_total"]["plausible_values"] is True
    # an EB outcome still draws the warning
    h = shipped("prof_quickscan_patient_quickscan")
    h = replace(h, outcome=replace(h.outcome, scores="eb"))
    eb = run_hypothesis(h, w, "w1")
    assert any("shrunken EB mean" in m for m in eb["diagnostics"]["warnings"])


def test_shipped_hypotheses_point_to_files_the_pipeline_writes():
    text = (DEMO_HYPOTHESES / "maturity_psych_safety.yaml").read_text()
    assert "cross_level.csv" not in text
    assert "results/<wave>/multilevel/adjusted.csv" in text and "model == cross_level" in text
    models = (ROOT / "src" / "flaqum" / "multilevel_tables.py").read_text()
    assert 'models["cross_level"]' in models and '"adjusted"' in models
