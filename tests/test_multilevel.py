"""flaqum.multilevel against lme4 (fixtures from tests/fixtures/r/lme4_reference.R; no R needed).

Tolerances. Against lme4 fitted with a tight optimiser ("tight" in the JSONs) the exact solver
agrees to 1e-5 relative on variances, fixed effects, SEs, conditional modes and SDs (observed:
~1e-6 at worst, typically 1e-8) and to 1e-8 relative on REMLcrit; against lme4's default
optimiser to 1e-4 (lme4's own optimiser tolerance is the limit there; the requirement is 1e-3).
The statsmodels path (a test oracle: tests/support/statsmodels_mixedlm.py) is held to 1e-3
against lme4, and to the exact solver to 1e-6 where its BFGS converges (covariates data) and
5e-6 where it falls back to Powell (sim3: the REML surface is flat in var_hospital, and Powell
stops on a relative change in the criterion of 1e-14).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.statsmodels_mixedlm import fit_nested_statsmodels

from flaqum import multilevel as ml

FIX = Path(__file__).resolve().parent / "fixtures" / "r"
IDS = {"hospital_id": str, "team_id": str, "batch": str, "cask": str, "Batch": str}


def data(name: str) -> pd.DataFrame:
    return pd.read_csv(FIX / f"lme4_{name}.csv", dtype=IDS)


def ref(name: str, which: str = "tight") -> dict:
    return json.loads((FIX / f"lme4_{name}.json").read_text())[which]


def assert_rel(actual, expected, rtol, atol=0.0, what=""):
    a, e = np.asarray(actual, float), np.asarray(expected, float)
    assert a.shape == e.shape, what
    bad = np.abs(a - e) > rtol * np.abs(e) + atol
    worst = np.max(np.abs(a - e))
    assert not bad.any(), f"{what}: max |diff| {worst:.3g} ({a[bad][:3]} vs {e[bad][:3]})"


# name, fit_nested keyword arguments, lme4 names of (hospital, team) variances
CASES = {
    "pastes": (dict(y="strength", hospital="batch", team="cask"), ("batch", "cask:batch")),
    "sim3": (dict(y="score"), ("hospital_id", "hospital_id:team_id")),
    "dyestuff": (dict(y="Yield", hospital="Batch", team=None), ("Batch", None)),
}


def by_key(frame: pd.DataFrame, keys: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    def key(f):
        return pd.Index(f[cols].astype(str).agg("|".join, axis=1))

    idx, want = key(frame), key(keys)
    assert idx.is_unique and set(want) <= set(idx)
    return frame.set_index(idx).loc[want]


@pytest.mark.parametrize("which,rtol", [("tight", 1e-5), ("default", 1e-4)])
@pytest.mark.parametrize("name", list(CASES))
def test_exact_solver_matches_lme4(name, which, rtol):
    kw, (hname, tname) = CASES[name]
    fit = ml.fit_nested(data(name), **kw)
    r = ref(name, which)
    assert fit.converged and not fit.singular and not r["isSingular"]
    assert_rel(fit.intercept, next(iter(r["fixef"].values())), rtol, what="intercept")
    assert_rel(fit.intercept_se, next(iter(r["se"].values())), rtol, what="intercept SE")
    assert_rel(fit.var_residual, r["variances"]["Residual"], rtol, what="var_residual")
    assert_rel(fit.var_hospital, r["variances"][hname], rtol, what="var_hospital")
    if tname is not None:
        assert_rel(fit.var_team, r["variances"][tname], rtol, what="var_team")
    assert_rel(
        fit.reml_criterion, r["REMLcrit"], 1e-8 if which == "tight" else 1e-6, what="REMLcrit"
    )
    sd = np.sqrt(fit.var_residual)
    H = pd.DataFrame(r["hospitals"])
    h = by_key(fit.hospitals, H, ["hospital_id"])
    assert_rel(h["ranef"], H["mode"], rtol, 1e-6 * sd, "hospital modes")
    assert_rel(h["ranef_sd"], H["cond_sd"], rtol, what="hospital condVar SD")
    assert_rel(h["eb_mean"], H["coef"], rtol, what="hospital coef()")
    assert_rel(h["eb_se"], H["cond_sd"], rtol, what="hospital eb_se")
    if tname is not None:
        T = pd.DataFrame(r["teams"])
        t = by_key(fit.teams, T, ["hospital_id", "team_id"])
        assert len(fit.teams) == len(T) == fit.n_teams
        assert_rel(t["ranef"], T["mode"], rtol, 1e-6 * sd, "team modes")
        assert_rel(t["ranef_sd"], T["cond_sd"], rtol, what="team condVar SD")
        assert_rel(t["ranef_hospital"], T["hospital_mode"], rtol, 1e-6 * sd, "team's hosp mode")
        assert_rel(t["eb_mean"], T["coef_sum"], rtol, what="team eb_mean")
        assert_rel(t["eb_se"], T["sum_sd"], rtol, what="team eb_se (hospital + team)")
        assert_rel(t["ci_high"] - t["ci_low"], 2 * 1.96 * T["sum_sd"].to_numpy(), rtol)


@pytest.mark.parametrize("name", ["pastes", "sim3"])
def test_total_eb_se_adds_fixed_effect_uncertainty_as_the_full_mme(name):
    kw, _ = CASES[name]
    cond = ml.fit_nested(data(name), **kw)
    fit = ml.fit_nested(data(name), **kw, eb_se="total")
    r = ref(name)
    H, T = pd.DataFrame(r["hospitals"]), pd.DataFrame(r["teams"])
    assert_rel(by_key(fit.hospitals, H, ["hospital_id"])["eb_se"], H["total_sd"], 1e-5)
    assert_rel(by_key(fit.teams, T, ["hospital_id", "team_id"])["eb_se"], T["total_sd"], 1e-5)
    assert (fit.teams["eb_se"] > cond.teams["eb_se"]).all()
    assert_rel(fit.teams["eb_mean"], cond.teams["eb_mean"], 1e-12)


def test_singular_dyestuff2_is_flagged_not_raised():
    r = ref("dyestuff2")
    assert r["isSingular"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = ml.fit_nested(data("dyestuff2"), "Yield", hospital="Batch", team=None)
    assert fit.singular and fit.converged
    assert fit.theta["hospital"] < ml.SINGULAR_TOL
    assert fit.var_hospital < 1e-10 and fit.vpc_hospital < 1e-10
    assert_rel(fit.var_residual, r["variances"]["Residual"], 1e-8)
    assert_rel(fit.intercept, r["fixef"]["(Intercept)"], 1e-10)
    assert_rel(fit.reml_criterion, r["REMLcrit"], 1e-10)
    # every hospital is shrunk all the way to the intercept
    assert_rel(fit.hospitals["eb_mean"], np.full(6, fit.intercept), 1e-10)
    assert (fit.hospitals["eb_se"] < 1e-6).all()
    assert not fit.teams.shape[0] and fit.n_teams == 0
    # the 3-level solver on a dataset with one collapsed level also flags and keeps the other
    d = data("sim3")
    d["score"] = d.groupby("hospital_id")["score"].transform(lambda s: s - s.mean())
    fit3 = ml.fit_nested(d, "score")
    assert fit3.singular and fit3.converged
    assert fit3.theta["hospital"] < ml.SINGULAR_TOL < fit3.theta["team"]


def test_singular_statsmodels_path_does_not_raise():
    fit = fit_nested_statsmodels(data("dyestuff2"), "Yield", hospital="Batch", team=None)
    assert fit.singular
    assert fit.var_hospital < 1e-6 * fit.var_residual
    assert_rel(fit.var_residual, ref("dyestuff2")["variances"]["Residual"], 1e-4)


def test_repeated_team_labels_are_nested_within_hospitals():
    d = data("pastes")
    assert d["cask"].nunique() == 3  # a, b, c in every batch
    fit = ml.fit_nested(d, "strength", hospital="batch", team="cask")
    assert fit.n_teams == 30 and fit.n_hospitals == 10
    assert (fit.teams["n"] == 2).all()
    # the same model with globally unique team keys gives the same fit
    d2 = d.assign(sample=d["batch"] + ":" + d["cask"])
    fit2 = ml.fit_nested(d2, "strength", hospital="batch", team="sample")
    for k in ("var_hospital", "var_team", "var_residual", "reml_criterion"):
        assert_rel(getattr(fit, k), getattr(fit2, k), 1e-10, what=k)
    # and the statsmodels path nests too
    sm = fit_nested_statsmodels(d, "strength", hospital="batch", team="cask")
    assert sm.n_teams == 30
    assert_rel(sm.var_team, ref("pastes")["variances"]["cask:batch"], 1e-3)
    # treating the labels as crossed (3 "teams") would be a different, wrong model
    crossed = ml.fit_nested(d.assign(all="x"), "strength", hospital="batch", team="cask").var_team
    assert crossed == pytest.approx(fit.var_team)
    wrong = ml.fit_nested(d, "strength", hospital=None, team="cask")
    assert wrong.n_teams == 3 and abs(wrong.var_team - fit.var_team) > 1.0


def test_team_only_model_is_the_two_level_model():
    d = data("dyestuff")
    by_h = ml.fit_nested(d, "Yield", hospital="Batch", team=None)
    by_t = ml.fit_nested(d, "Yield", hospital=None, team="Batch")
    assert by_t.var_hospital == 0.0 and by_t.n_hospitals == 0 and by_t.n_teams == 6
    assert_rel(by_t.var_team, by_h.var_hospital, 1e-10)
    assert_rel(by_t.teams["eb_mean"], by_h.hospitals["eb_mean"], 1e-10)
    assert_rel(by_t.teams["eb_se"], by_h.hospitals["eb_se"], 1e-10)
    assert by_t.hospitals.empty


COVS = ["C(profession)", "tenure", "maturity"]


def test_covariates_exact_and_statsmodels_match_lme4():
    d = data("covariates")
    r = ref("covariates")
    names = ["Intercept", "C(profession)[T.nurse]", "C(profession)[T.other]", "tenure", "maturity"]
    for fit, rtol in (
        (ml.fit_nested(d, "score", covariates=COVS), 1e-5),
        (fit_nested_statsmodels(d, "score", covariates=COVS), 1e-3),
    ):
        fe = fit.fixed_effects
        assert list(fe["term"]) == names, fit.method
        assert_rel(fe["estimate"], list(r["fixef"].values()), rtol, what=f"{fit.method} fixef")
        assert_rel(fe["se"], list(r["se"].values()), rtol, what=f"{fit.method} se")
        assert_rel(fit.var_hospital, r["variances"]["hospital_id"], rtol)
        assert_rel(fit.var_team, r["variances"]["hospital_id:team_id"], rtol)
        assert_rel(fit.var_residual, r["variances"]["Residual"], rtol)
        assert_rel(fit.reml_criterion, r["REMLcrit"], 1e-8, what=f"{fit.method} REMLcrit")
        sd = np.sqrt(fit.var_residual)
        H, T = pd.DataFrame(r["hospitals"]), pd.DataFrame(r["teams"])
        h = by_key(fit.hospitals, H, ["hospital_id"])
        t = by_key(fit.teams, T, ["hospital_id", "team_id"])
        assert_rel(h["ranef"], H["mode"], rtol, rtol * sd, f"{fit.method} hospital modes")
        assert_rel(h["ranef_sd"], H["cond_sd"], rtol)
        assert_rel(t["ranef"], T["mode"], rtol, rtol * sd, f"{fit.method} team modes")
        assert_rel(t["ranef_sd"], T["cond_sd"], rtol)
        assert_rel(t["eb_se"], T["sum_sd"], rtol)
        # maturity is constant within hospitals: it enters each hospital's eb_mean at its value
        b = fe.set_index("term")["estimate"]
        mat = d.groupby("hospital_id")["maturity"].first().loc[h["hospital_id"]]
        fixed = h["eb_mean"].to_numpy() - h["ranef"].to_numpy() - b["maturity"] * mat.to_numpy()
        assert np.ptp(fixed) < 1e-10  # the case-mix part is the same for every hospital


@pytest.mark.parametrize("name,covs,rtol", [("covariates", COVS, 1e-6), ("sim3", [], 5e-6)])
def test_exact_solver_agrees_with_statsmodels(name, covs, rtol):
    d = data(name)
    ex = ml.fit_nested(d, "score", covariates=covs)
    sm = fit_nested_statsmodels(d, "score", covariates=covs)
    assert sm.converged and ex.converged
    for k in ("var_hospital", "var_team", "var_residual", "intercept", "intercept_se"):
        assert_rel(getattr(sm, k), getattr(ex, k), rtol, what=k)
    assert_rel(sm.fixed_effects["estimate"], ex.fixed_effects["estimate"], rtol)
    assert_rel(sm.reml_criterion, ex.reml_criterion, 1e-12)
    sd = np.sqrt(ex.var_residual)
    assert_rel(sm.teams["eb_mean"], ex.teams["eb_mean"], rtol, rtol * sd)
    assert_rel(sm.teams["eb_se"], ex.teams["eb_se"], 10 * rtol)
    assert_rel(sm.hospitals["eb_se"], ex.hospitals["eb_se"], 10 * rtol)


def test_fit_change_matches_lme4_wave_model():
    d = data("change")
    r = ref("change")
    fit = ml.fit_change(d, "score", wave_col="wave")
    assert fit.waves == ("2024-1", "2025-1") and fit.converged and not fit.singular
    assert_rel([fit.intercept, fit.wave_effect], list(r["fixef"].values()), 1e-5)
    assert_rel(fit.wave_effect_se, r["se"]["wave2"], 1e-5)
    assert_rel(fit.var_hospital, r["variances"]["hw"], 1e-5)
    assert_rel(fit.var_team, r["variances"]["hwt"], 1e-5)
    assert_rel(fit.reml_criterion, r["REMLcrit"], 1e-8)
    C = pd.DataFrame(r["changes"])
    both = set(d.loc[d.wave == "2024-1", "hospital_id"]) & set(
        d.loc[d.wave == "2025-1", "hospital_id"]
    )
    assert set(fit.changes["hospital_id"]) == both == set(C["hospital_id"])
    assert not {"H001", "H023", "H024"} & both
    ch = fit.changes.set_index("hospital_id").loc[C["hospital_id"]]
    assert_rel(ch["change"], C["change"], 1e-5, 1e-7)
    assert_rel(ch["change_se"], C["total_sd"], 1e-5)
    cond = ml.fit_change(d, "score", wave_col="wave", include_fixed=False)
    assert_rel(
        cond.changes.set_index("hospital_id").loc[C["hospital_id"], "change_se"], C["cond_sd"], 1e-5
    )
    assert_rel(ch["ci_high"] - ch["ci_low"], 2 * 1.96 * ch["change_se"], 1e-12)
    with pytest.raises(ValueError, match="exactly two waves"):
        ml.fit_change(d.assign(wave="one"), "score", wave_col="wave")


def test_gradient_is_the_derivative_of_the_criterion():
    d = data("covariates")
    X, _ = ml._design(d, "C(profession) + tenure + maturity")
    g = ml._nest(d["hospital_id"].to_numpy(), d["team_id"].to_numpy())
    s = ml._sufficient(d["score"].to_numpy(), X, g)
    for lt, lh in [(0.2, 0.07), (1.5, 0.4), (0.01, 2.0)]:
        _, grad = ml._reml(lt, lh, s)
        e = 1e-6
        fd = [
            (ml._reml(lt + e, lh, s, False) - ml._reml(lt - e, lh, s, False)) / (2 * e),
            (ml._reml(lt, lh + e, s, False) - ml._reml(lt, lh - e, s, False)) / (2 * e),
        ]
        assert_rel(grad, fd, 1e-5, 1e-4)


def test_recovery_and_interval_coverage_from_known_truth():
    """200 hospitals, 4-16 teams of 2-30, truth var_h 0.05, var_t 0.15, var_e 0.8, mu 5."""
    rng = np.random.default_rng(4242)
    H, vh, vt, ve, mu = 200, 0.05, 0.15, 0.8, 5.0
    k = rng.integers(4, 17, H)
    hot = np.repeat(np.arange(H), k)
    size = rng.integers(2, 31, len(hot))
    b, u = rng.normal(0, np.sqrt(vh), H), rng.normal(0, np.sqrt(vt), len(hot))
    trow = np.repeat(np.arange(len(hot)), size)
    d = pd.DataFrame(
        {
            "hospital_id": [f"H{h:03d}" for h in hot[trow]],
            "team_id": [f"T{t:02d}" for t in np.concatenate([np.arange(m) for m in k])[trow]],
            "score": mu + b[hot[trow]] + u[trow] + rng.normal(0, np.sqrt(ve), len(trow)),
        }
    )
    fit = ml.fit_nested(d, "score", eb_se="total")
    assert fit.converged and not fit.singular
    assert abs(fit.intercept - mu) < 3 * fit.intercept_se
    assert fit.var_hospital == pytest.approx(vh, rel=0.35)
    assert fit.var_team == pytest.approx(vt, rel=0.15)
    assert fit.var_residual == pytest.approx(ve, rel=0.03)
    # intervals of team means (mu + b + u) and hospital means (mu + b): ~95% coverage
    teams = fit.teams.sort_values(["hospital_id", "team_id"])
    key = pd.DataFrame({"h": hot, "t": np.concatenate([np.arange(m) for m in k])})
    truth_t = mu + b[key["h"]] + u
    order = np.lexsort((key["t"], key["h"]))
    cov_t = np.mean(
        (teams["ci_low"].to_numpy() <= truth_t[order])
        & (truth_t[order] <= teams["ci_high"].to_numpy())
    )
    hosp = fit.hospitals.sort_values("hospital_id")
    truth_h = mu + b
    lo, hi = hosp["ci_low"].to_numpy(), hosp["ci_high"].to_numpy()
    cov_h = np.mean((lo <= truth_h) & (truth_h <= hi))
    assert 0.93 <= cov_t <= 0.97, cov_t
    assert 0.90 <= cov_h <= 0.99, cov_h
    # shrinkage: EB means are closer to the truth than raw means
    assert np.mean((teams["eb_mean"].to_numpy() - truth_t[order]) ** 2) < np.mean(
        (teams["raw_mean"].to_numpy() - truth_t[order]) ** 2
    )


def test_missing_scores_are_dropped():
    d = data("sim3")
    holes = d.copy()
    holes.loc[holes.index % 7 == 0, "score"] = np.nan
    fit = ml.fit_nested(holes, "score")
    ref_fit = ml.fit_nested(d[d.index % 7 != 0], "score")
    assert fit.n_dropped == int((d.index % 7 == 0).sum())
    assert fit.n_respondents == ref_fit.n_respondents == len(d) - fit.n_dropped
    assert fit.var_team == ref_fit.var_team and fit.intercept == ref_fit.intercept


def test_bad_input_messages():
    d = data("sim3")
    with pytest.raises(KeyError, match="not in the data: nope"):
        ml.fit_nested(d, "nope")
    with pytest.raises(ValueError, match="only 1 group"):
        ml.fit_nested(d[d.hospital_id == "H001"], "score")
    with pytest.raises(ValueError, match="every group has one respondent"):
        ml.fit_nested(d.assign(team_id=np.arange(len(d)).astype(str)), "score")
    with pytest.raises(ValueError, match="no rows with a value"):
        ml.fit_nested(d.assign(score=np.nan), "score")


def test_contract_rows_and_suppression():
    fit = ml.fit_nested(data("sim3"), "score")
    row = ml.variance_row(fit, "psych_safety")
    assert list(row) == ml.VARIANCE_COLUMNS
    assert row["vpc_hospital"] + row["vpc_team"] < 1
    assert row["vpc_hospital"] == pytest.approx(
        fit.var_hospital / (fit.var_hospital + fit.var_team + fit.var_residual)
    )
    teams = ml.teams_table(fit, "psych_safety", min_group_size=5)
    hosp = ml.hospitals_table(fit, "psych_safety", min_group_size=5)
    assert list(teams.columns) == ml.TEAM_COLUMNS
    assert list(hosp.columns) == ml.HOSPITAL_COLUMNS
    small = teams["n"] < 5
    assert small.any() and (~small).any()
    assert (teams["suppressed"] == small).all()
    masked = teams.loc[small, ["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]]
    assert masked.isna().all().all()
    kept = teams.loc[~small, ["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]]
    assert kept.notna().all().all()
    assert not hosp["suppressed"].any()
    # the fit itself is untouched
    assert fit.teams["eb_mean"].notna().all()
    # apply_suppression works on any frame with n
    out = ml.apply_suppression(pd.DataFrame({"n": [1, 10], "eb_mean": [1.0, 2.0]}), 5)
    assert out["suppressed"].tolist() == [True, False] and np.isnan(out["eb_mean"][0])


def test_the_fast_design_equals_patsys():
    """fit_nested builds main-effects designs itself (speed); they must be patsy's exactly."""
    import patsy

    from flaqum.multilevel import _simple_design

    rng = np.random.default_rng(3)
    d = pd.DataFrame(
        {
            "profession": pd.Series(
                rng.choice(["nurse", "physician", "allied health"], 200), dtype="string"
            ),
            "tenure": rng.normal(10, 3, 200),
            "maturity": rng.normal(3, 1, 200),
        }
    )
    rhs = "C(profession) + tenure + maturity"
    X, names = _simple_design(d, rhs)
    ref = patsy.dmatrix(rhs, d.astype({"profession": object}), return_type="dataframe")
    assert names == list(ref.columns)
    np.testing.assert_array_equal(X, ref.to_numpy())
    assert _simple_design(d, "C(profession):tenure") is None  # interactions go to patsy
