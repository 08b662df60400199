"""flaqum.psychometrics against psych and lavaan (fixtures from tests/fixtures/r/psych_reference.R).

Tolerances. Alpha, its Feldt interval, r.drop and alpha-if-deleted are closed forms: 1e-8
against psych::alpha (observed ~1e-15). The CFA is an iterative ML fit: the requirement is
1e-3 against lavaan; held here to 1e-6 on chi2 and the fit measures (observed ~1e-8) and
1e-4 on the loadings (observed 5e-6: lavaan's own convergence tolerance is the limit), for the
single-group one- and three-factor models and the configural / metric / scalar invariance
models. semopy, the package dependency, is checked to reach the same chi2 on a single group.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flaqum import agreement as ag
from flaqum import psychometrics as ps
from flaqum.ingest import process_source
from flaqum.io import find_source, read_source
from flaqum.scoring import score_source

FIX = Path(__file__).resolve().parent / "fixtures" / "r"
ALPHA = json.loads((FIX / "psych_alpha.json").read_text())
CFA = json.loads((FIX / "psych_cfa.json").read_text())
X9 = [f"x{i}" for i in range(1, 10)]
THREE = {"visual": X9[:3], "textual": X9[3:6], "speed": X9[6:]}
FIT_TOL = 1e-6
LOAD_TOL = 1e-4
FIT_KEYS = [("chisq", "chi2"), ("df", "df"), ("cfi", "cfi"), ("tli", "tli"), ("rmsea", "rmsea"),
            ("srmr", "srmr"), ("baseline.chisq", "baseline_chi2"), ("baseline.df", "baseline_df")]


@pytest.fixture(scope="module")
def hs():
    return pd.read_csv(FIX / "psych_hs1939.csv")


@pytest.fixture(scope="module")
def bfi():
    return pd.read_csv(FIX / "psych_bfi_agree.csv")


@pytest.fixture(scope="module")
def lq():
    return pd.read_csv(FIX / "psych_lq2002.csv")


# --------------------------------------------------------------------------------------------
# Cronbach's alpha against psych::alpha
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["bfi_agree", "lq2002_tsig", "lq2002_lead"])
def test_alpha_matches_psych(key, bfi, lq):
    ref = ALPHA[key]
    data = bfi if key == "bfi_agree" else lq[ref["items"]]
    r = ps.cronbach_alpha(data)
    assert r.alpha == pytest.approx(ref["raw_alpha"], abs=1e-8)
    assert r.ci_low == pytest.approx(ref["feldt_lower"], abs=1e-8)
    assert r.ci_high == pytest.approx(ref["feldt_upper"], abs=1e-8)
    assert r.n == ref["n_obs"] and r.n_items == len(ref["items"])
    assert list(r.item_total_r.index) == ref["items"]
    np.testing.assert_allclose(r.item_total_r.to_numpy(), ref["r_drop"], atol=1e-8)
    np.testing.assert_allclose(r.alpha_if_deleted.to_numpy(), ref["alpha_drop"], atol=1e-8)


def test_bfi_has_missing_answers_so_pairwise_matters(bfi):
    # the fixture exercises pairwise covariances: listwise deletion gives another alpha
    assert bfi.isna().any(axis=1).sum() > 50
    listwise = ps.cronbach_alpha(bfi.dropna())
    assert abs(listwise.alpha - ALPHA["bfi_agree"]["raw_alpha"]) > 1e-4


def test_pairwise_cov_equals_pandas():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(500, 4)) + rng.normal(size=(500, 1))
    X[rng.random(X.shape) < 0.15] = np.nan
    C, n = ps.pairwise_cov(X)
    np.testing.assert_allclose(C, pd.DataFrame(X).cov().to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(np.diag(n), (~np.isnan(X)).sum(axis=0))


def test_alpha_edge_cases():
    rng = np.random.default_rng(5)
    t = rng.normal(size=300)
    df = pd.DataFrame({f"i{k}": t + rng.normal(size=300) for k in range(4)})
    full = ps.cronbach_alpha(df)
    # an item without variance is left out (as psych does) and named
    r = ps.cronbach_alpha(df.assign(const=3.0))
    assert r.dropped == ["const"] and r.n_items == 4
    assert r.alpha == pytest.approx(full.alpha) and np.isnan(r.item_total_r["const"])
    # two items: alpha exists, alpha without one of them does not
    two = ps.cronbach_alpha(df[["i0", "i1"]])
    assert np.isfinite(two.alpha) and two.alpha_if_deleted.isna().all()
    # one item, no rows, all missing: NaN, no exception
    for bad in (df[["i0"]], df.iloc[:0], pd.DataFrame({"a": [np.nan] * 5, "b": [np.nan] * 5})):
        res = ps.cronbach_alpha(bad)
        assert np.isnan(res.alpha) and np.isnan(res.ci_low)
    # rows with no answer at all do not count in n (psych would count them)
    assert ps.cronbach_alpha(pd.concat([df, df.iloc[:3] * np.nan])).n == 300


# --------------------------------------------------------------------------------------------
# CFA against lavaan
# --------------------------------------------------------------------------------------------


def assert_fit(r: ps.CFAResult, ref: dict, loadings: bool = True):
    assert r.converged and ref["converged"] in (True, None)
    for rk, pk in FIT_KEYS:
        assert getattr(r, pk) == pytest.approx(ref["fit"][rk], abs=FIT_TOL, rel=FIT_TOL), pk
    assert r.n == ref["nobs"]
    if loadings:
        L = ref["loadings"]
        np.testing.assert_allclose(r.loadings.loc[L["item"]].to_numpy(), L["std"], atol=LOAD_TOL)
        np.testing.assert_allclose(r.raw_loadings.loc[L["item"]].to_numpy(), L["raw"],
                                   atol=LOAD_TOL)


def test_one_factor_cfa_matches_lavaan(hs, bfi):
    assert_fit(ps.cfa_one_factor(hs[X9]), CFA["hs_one_factor"])
    r = ps.cfa_one_factor(bfi)  # listwise: rows with a missing answer are dropped
    assert_fit(r, CFA["bfi_agree_one_factor"])
    L = r.loadings
    assert r.omega == pytest.approx(L.sum() ** 2 / (L.sum() ** 2 + (1 - L**2).sum()), abs=1e-12)


def test_three_factor_cfa_matches_lavaan(hs):
    r = ps.cfa_one_factor(hs[X9], THREE)
    assert_fit(r, CFA["hs_three_factor"])
    assert 0 < r.omega < 1 and list(r.factor_cov.index) == list(THREE)


def test_cfa_is_scale_invariant_and_reports_raw_units(hs):
    a = ps.cfa_one_factor(hs[X9], THREE)
    c = np.array([1000, 1, 0.01, 5, 5, 5, 1e4, 1, 1])
    b = ps.cfa_one_factor(hs[X9] * c, THREE)
    assert b.converged and b.chi2 == pytest.approx(a.chi2, rel=1e-9)
    np.testing.assert_allclose(b.loadings, a.loadings, atol=1e-7)
    marker = np.array([1000, 1000, 1000, 5, 5, 5, 1e4, 1e4, 1e4])
    np.testing.assert_allclose(b.raw_loadings / a.raw_loadings, c / marker, rtol=1e-6)
    np.testing.assert_allclose(b.residual_variances / a.residual_variances, c**2, rtol=1e-6)


@pytest.mark.parametrize("factors,key", [(THREE, "hs_invariance"),
                                         (None, "hs_one_factor_invariance")])
def test_measurement_invariance_matches_lavaan(hs, factors, key):
    mi = ps.measurement_invariance(hs[X9], hs["school"], factors).set_index("model")
    assert list(mi.index) == ["configural", "metric", "scalar"]
    for model in mi.index:
        ref = CFA[key][model]["fit"]
        for rk, pk in FIT_KEYS[:6]:
            want = pytest.approx(ref[rk], abs=FIT_TOL, rel=FIT_TOL)
            assert mi.loc[model, pk] == want, (model, pk)
    assert mi["converged"].all() and (mi["n_groups"] == 2).all() and (mi["n"] == 301).all()
    d = mi["cfi"].diff()
    np.testing.assert_allclose(mi["delta_cfi"].to_numpy()[1:], d.to_numpy()[1:])
    assert mi.loc["metric", "holds"] == (d["metric"] > -0.01)
    assert not mi.loc["scalar", "holds"]  # HS scalar invariance fails (delta CFI -0.04)
    assert pd.isna(mi.loc["configural", "holds"])


def test_semopy_reaches_the_same_chi2(bfi):
    semopy = pytest.importorskip("semopy")
    data = bfi.dropna()
    m = semopy.Model("A =~ A1 + A2 + A3 + A4 + A5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(data)
        chi2 = float(semopy.calc_stats(m).T.loc["chi2"].iloc[0])
    assert chi2 == pytest.approx(ps.cfa_one_factor(data).chi2, rel=1e-3)


def simulate_one_factor(loadings, n, rng):
    lam = np.asarray(loadings)
    f = rng.normal(size=n)
    e = rng.normal(size=(n, len(lam))) * np.sqrt(1 - lam**2)
    X = 3 + (f[:, None] * lam + e) * np.linspace(0.8, 1.5, len(lam))  # unequal item scales
    return pd.DataFrame(X, columns=[f"q{k}" for k in range(len(lam))])


def test_cfa_recovers_known_loadings_and_omega():
    rng = np.random.default_rng(6)
    lam = np.array([0.8, 0.7, 0.6, 0.5, 0.4, 0.75])
    r = ps.cfa_one_factor(simulate_one_factor(lam, 20_000, rng))
    assert r.converged
    np.testing.assert_allclose(r.loadings.to_numpy(), lam, atol=0.02)
    true_omega = lam.sum() ** 2 / (lam.sum() ** 2 + (1 - lam**2).sum())
    assert r.omega == pytest.approx(true_omega, abs=0.01)
    assert r.cfi > 0.995 and r.rmsea < 0.02 and r.srmr < 0.01 and r.df == 9


def test_invariance_holds_for_identical_populations_and_fails_for_shifted_intercepts():
    rng = np.random.default_rng(7)
    lam = [0.8, 0.7, 0.6, 0.7, 0.6]
    a, b = simulate_one_factor(lam, 3000, rng), simulate_one_factor(lam, 3000, rng)
    g = pd.Series(["a"] * 3000 + ["b"] * 3000)
    same = ps.measurement_invariance(pd.concat([a, b], ignore_index=True), g)
    assert same["holds"].iloc[1:].all()
    b2 = b.copy()
    b2["q0"] += 0.8  # item bias in group b: intercept differs, loadings do not
    mi = ps.measurement_invariance(pd.concat([a, b2], ignore_index=True), g).set_index("model")
    assert mi.loc["metric", "holds"] and not mi.loc["scalar", "holds"]


def test_cfa_degenerate_input_gives_nan_never_raises():
    rng = np.random.default_rng(8)
    good = simulate_one_factor([0.7, 0.7, 0.7, 0.7], 200, rng)
    cases = {
        "an item has no variance": good.assign(q1=2.0),
        "at least 3 items": good[["q0", "q1"]],
        "too few complete rows": good.iloc[:3],
        "too few complete rows (0)": good * np.nan,
        "singular": good.assign(q3=good["q0"] + good["q1"]),
    }
    for why, data in cases.items():
        r = ps.cfa_one_factor(data)
        assert not r.converged and np.isnan(r.cfi) and np.isnan(r.omega), why
        assert r.loadings.isna().all() and list(r.loadings.index) == list(data.columns)
        assert r.message, why
    # three items: just identified, a perfect fit
    r = ps.cfa_one_factor(good[["q0", "q1", "q2"]])
    assert r.converged and r.df == 0 and r.chi2 == pytest.approx(0, abs=1e-8)
    assert r.cfi == 1 and r.tli == 1 and r.rmsea == 0


def test_invariance_drops_small_groups_and_names_them():
    rng = np.random.default_rng(9)
    X = simulate_one_factor([0.7, 0.6, 0.7, 0.6], 1210, rng)
    g = pd.Series(["big"] * 600 + ["other"] * 600 + ["tiny"] * 10)
    mi = ps.measurement_invariance(X, g)
    assert (mi["n_groups"] == 2).all() and mi["note"].str.contains("tiny").all()
    assert mi["groups"].eq("big; other").all() and mi["converged"].all()
    one = ps.measurement_invariance(X.iloc[:610], g.iloc[:610])
    assert not one["converged"].any() and one["note"].str.contains("two groups").all()


# --------------------------------------------------------------------------------------------
# The tables of docs/outputs.md on a small synthetic consortium
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ingested(small_consortium, study):
    root, _ = small_consortium
    out = {}
    for source in ("staff", "maturity"):
        df, meta = read_source(find_source(root / "2024-1", source))
        proc, _ = process_source(study, source, df, meta)
        out[source] = (proc, score_source(study, source, proc))
    return out


def test_scale_psychometrics_contract_columns(study, ingested):
    proc, scores = ingested["staff"]
    scales, items, agreement = ps.scale_psychometrics(study, "staff", proc, scores)
    assert list(scales.columns) == ps.SCALE_COLUMNS == [
        "scale", "instrument", "n_respondents", "n_items", "alpha", "alpha_ci_low",
        "alpha_ci_high", "omega", "cfi", "tli", "rmsea", "srmr", "icc1", "icc2", "rwg_j_mean",
        "rwg_j_median", "awg_mean", "n_teams"]
    assert list(items.columns) == ["scale", "item", "n", "mean", "sd", "pct_missing",
                                   "item_total_r", "alpha_if_deleted", "loading"]
    assert list(agreement.columns) == ["scale", "hospital_id", "team_id", "n", "rwg_j", "awg",
                                       "suppressed"]
    want = study.scales_for("staff")
    assert list(scales["scale"]) == list(want)
    assert len(items) == sum(len(s.items) for s in want.values())
    assert scales[["alpha", "omega", "cfi", "icc1", "rwg_j_mean", "awg_mean"]].notna().all().all()
    assert ((scales["alpha_ci_low"] < scales["alpha"]) & (scales["alpha"] < scales["alpha_ci_high"])
            ).all()
    ps_row = scales.set_index("scale").loc["psych_safety"]
    x = proc[list(want["psych_safety"].items)]
    assert ps_row["alpha"] == pytest.approx(ps.cronbach_alpha(x).alpha)
    assert ps_row["n_respondents"] == scores["psych_safety"].notna().sum()
    it = items[items["scale"] == "psych_safety"].set_index("item")
    assert it.loc["PS1", "pct_missing"] == pytest.approx(100 * proc["PS1"].isna().mean())
    assert it.loc["PS2", "mean"] == pytest.approx(proc["PS2"].mean())
    assert it["loading"].between(0.2, 1).all()


def test_teams_are_nested_in_hospitals(study, ingested):
    proc, scores = ingested["staff"]
    scales, _, agreement = ps.scale_psychometrics(study, "staff", proc, scores)
    pairs = scores.loc[scores["psych_safety"].notna(), ["hospital_id", "team_id"]].drop_duplicates()
    assert pairs["team_id"].nunique() < len(pairs)  # the same team id in several hospitals
    row = scales.set_index("scale").loc["psych_safety"]
    assert row["n_teams"] == len(pairs)
    assert row["icc1"] == pytest.approx(ag.icc1(scores["psych_safety"],
                                                scores[["hospital_id", "team_id"]]))
    assert row["icc1"] != pytest.approx(ag.icc1(scores["psych_safety"], scores["team_id"]))
    a = agreement[agreement["scale"] == "psych_safety"]
    assert not a.duplicated(["hospital_id", "team_id"]).any()
    assert a["n"].sum() == proc[list(study.scale("psych_safety").items)].notna().any(axis=1).sum()
    # suppression: rwg/awg blank below min_group_size, and only the teams with n >= 2 in means
    small = a[a["n"] < 5]
    assert a["suppressed"].eq(a["n"] < 5).all() and small[["rwg_j", "awg"]].isna().all().all()
    assert len(small) > 0
    _, _, a3 = ps.scale_psychometrics(study, "staff", proc, scores, min_group_size=3)
    assert a3["suppressed"].sum() < agreement["suppressed"].sum()
    full = ag.rwg_j(proc[list(study.scale("psych_safety").items)],
                    scores[["hospital_id", "team_id"]], 7)
    assert row["rwg_j_mean"] == pytest.approx(full["rwg_j"].mean())
    assert row["rwg_j_median"] == pytest.approx(full["rwg_j"].median())


def test_source_without_teams_and_the_maturity_matrix(study, ingested):
    proc, scores = ingested["staff"]
    no_team = scores.assign(team_id=pd.Series(pd.NA, index=scores.index, dtype="string"))
    scales, _, agreement = ps.scale_psychometrics(study, "staff", proc, no_team)
    assert agreement.empty and list(agreement.columns) == ps.AGREEMENT_COLUMNS
    assert scales[["rwg_j_mean", "rwg_j_median", "awg_mean"]].isna().all().all()
    assert (scales["n_teams"] == 0).all()
    row = scales.set_index("scale").loc["psych_safety"]
    assert row["icc1"] == pytest.approx(ag.icc1(scores["psych_safety"], scores["hospital_id"]))

    mproc, mscores = ingested["maturity"]
    scales, items, agreement = ps.scale_psychometrics(study, "maturity", mproc, mscores)
    total = scales.set_index("scale").loc["mm_total"]
    assert total["n_items"] == 52 and np.isfinite(total["alpha"])
    assert np.isnan(total["omega"]) and np.isnan(total["cfi"])  # 8 hospitals < 2 x 52 items
    assert items.loc[items["scale"] == "mm_total", "loading"].isna().all()
    assert agreement.empty and scales["icc1"].isna().all()


def test_invariance_table_by_profession(study, ingested):
    proc, scores = ingested["staff"]
    inv = ps.invariance_table(study, "staff", proc, scores, "profession")
    assert list(inv.columns[:4]) == ["scale", "group_col", "factors", "model"]
    assert (inv["group_col"] == "profession").all()
    # the quickscan's three-factor model, labelled by its total scale, and each other >= 4 items
    assert set(inv["scale"]) == {"psych_safety", "team_collab", "qs_prof_total"}
    qs = inv[inv["scale"] == "qs_prof_total"]
    assert qs["factors"].iloc[0] == "qs_prof_person+qs_prof_safe+qs_prof_org"
    assert list(qs["model"]) == ["configural", "metric", "scalar"]
    assert (qs["df"].diff().dropna() > 0).all()
    assert inv["converged"].all() and (inv["n_groups"] >= 2).all()
