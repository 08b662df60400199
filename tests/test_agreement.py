"""flaqum.agreement against multilevel 2.7 (fixtures from tests/fixtures/r/psych_reference.R).

Tolerances. ICC(1), ICC(2), rwg(j) and awg are closed forms: held to 1e-8 against R (observed
~1e-14). The NaN pattern of awg (groups of one rater, means too close to an end of the scale,
all items undefined) must be R's exactly. Behaviour R 2.7 does not have (pairwise use of
answers with missing items) is checked against a computation by hand, and the statistical
behaviour against data simulated from stated truths.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flaqum import agreement as ag

FIX = Path(__file__).resolve().parent / "fixtures" / "r"
REF = json.loads((FIX / "psych_agreement.json").read_text())
LEAD = [f"LEAD{i:02d}" for i in range(1, 12)]
TSIG = [f"TSIG{i:02d}" for i in range(1, 4)]
HOST = [f"HOSTIL{i:02d}" for i in range(1, 6)]
TOL = 1e-8


@pytest.fixture(scope="module")
def bh():
    return pd.read_csv(FIX / "psych_bh1996.csv")


@pytest.fixture(scope="module")
def lq():
    return pd.read_csv(FIX / "psych_lq2002.csv")


@pytest.fixture(scope="module")
def small():
    return pd.read_csv(FIX / "psych_small_teams.csv")


def as_series(ref: dict, col: str) -> pd.Series:
    values = [np.nan if v is None else v for v in ref[col]]
    return pd.Series(values, index=ref["group"], dtype=float)


def assert_matches(result: pd.DataFrame, ref: dict, col: str):
    want = as_series(ref, col)
    got = result[col].copy()
    got.index = got.index.astype(str)
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index]
    np.testing.assert_array_equal(got.isna().to_numpy(), want.isna().to_numpy(), err_msg=col)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=TOL, err_msg=col)
    n = result["n"].copy()
    n.index = n.index.astype(str)
    np.testing.assert_array_equal(n.loc[want.index].to_numpy(), ref["n"])


# --------------------------------------------------------------------------------------------
# Against multilevel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("var", ["WBEING", "HRS", "LEAD"])
def test_icc_matches_multilevel_bh1996(bh, var):
    ref = REF["icc"][f"bh1996_{var.lower()}"]
    assert ag.icc1(bh[var], bh["GRP"]) == pytest.approx(ref["icc1"], abs=TOL)
    assert ag.icc2(bh[var], bh["GRP"]) == pytest.approx(ref["icc2"], abs=TOL)


def test_icc_matches_multilevel_lq2002_and_small_teams(lq, small):
    ref = REF["icc"]["lq2002_tsig01"]
    assert ag.icc1(lq["TSIG01"], lq["COMPID"]) == pytest.approx(ref["icc1"], abs=TOL)
    assert ag.icc2(lq["TSIG01"], lq["COMPID"]) == pytest.approx(ref["icc2"], abs=TOL)
    y = small["i1"] + small["i2"] + small["i3"]
    assert ag.icc1(y, small["team"]) == pytest.approx(REF["icc_small"]["icc1"], abs=TOL)
    assert ag.icc2(y, small["team"]) == pytest.approx(REF["icc_small"]["icc2"], abs=TOL)


@pytest.mark.parametrize("name,cols", [("lead", LEAD), ("tsig", TSIG), ("hostil", HOST)])
def test_rwg_j_matches_multilevel(lq, name, cols):
    assert_matches(
        ag.rwg_j(lq[cols], lq["COMPID"], n_options=5), REF["rwg_j"][f"lq2002_{name}"], "rwg_j"
    )


def test_rwg_j_matches_multilevel_small_teams(small):
    # single raters (NaN), identical answers (1), variance above the null (truncated to 0)
    res = ag.rwg_j(small[["i1", "i2", "i3"]], small["team"], n_options=5)
    assert_matches(res, REF["rwg_j_small"], "rwg_j")
    assert (res["rwg_j"] == 0).sum() >= 2 and (res["rwg_j"] == 1).sum() >= 2


@pytest.mark.parametrize(
    "name,cols,rng",
    [
        ("lead", LEAD, (1, 5)),
        ("tsig", TSIG, (1, 5)),
        ("hostil", HOST, (0, 4)),
        ("hostil01", ["HOSTIL01"], (0, 4)),
    ],
)
def test_awg_matches_multilevel(lq, name, cols, rng):
    assert_matches(ag.awg(lq[cols], lq["COMPID"], *rng), REF["awg"][f"lq2002_{name}"], "awg")


@pytest.mark.parametrize(
    "cols,key", [(["i1", "i2", "i3"], "small_teams"), (["i1"], "small_teams_i1")]
)
def test_awg_edge_rules_match_multilevel(small, cols, key):
    res = ag.awg(small[cols], small["team"], 1, 5)
    assert_matches(res, REF["awg"][key], "awg")
    ref = as_series(REF["awg"][key], "awg")
    assert ref.isna().sum() >= 2 and (ref == 1).sum() >= 2  # the fixture reaches the edge rules


# --------------------------------------------------------------------------------------------
# Missing answers (pairwise), by hand
# --------------------------------------------------------------------------------------------


def test_rwg_j_and_awg_use_the_answers_present_for_each_item():
    items = pd.DataFrame(
        {"a": [1, 2, 3, 4, 5, 5], "b": [2, np.nan, 3, 4, np.nan, np.nan], "c": [3, 3, 3, 2, 4, 3]},
        dtype=float,
    )
    team = pd.Series(["x", "x", "x", "y", "y", "y"])
    r = ag.rwg_j(items, team, n_options=5)
    a = ag.awg(items, team, 1, 5)
    null = 2.0

    def rwg(S, J):
        return J * (1 - S / null) / (J * (1 - S / null) + S / null)

    # team x: var(a) = var(1,2,3) = 1, var(b) = var(2,3) = 0.5, var(c) = 0 -> S = 0.5, J = 3
    S = (1 + 0.5 + 0) / 3
    assert r.loc["x", "rwg_j"] == pytest.approx(rwg(S, 3))
    # team y: b has a single answer -> left out, J = 2: var(a) = var(4,5,5) = 1/3, var(c) = 1
    S = (1 / 3 + 1) / 2
    assert r.loc["y", "rwg_j"] == pytest.approx(rwg(S, 2))
    assert r["n"].tolist() == [3, 3]

    def awg_item(x, L=1.0, H=5.0):
        x = np.asarray(x, float)
        k, M, v = len(x), x.mean(), x.var(ddof=1)
        if M < (L * (k - 1) + H) / k or M > (H * (k - 1) + L) / k:
            return np.nan
        if M in (L, H):
            return 1.0
        return 1 - 2 * v / (((H + L) * M - M**2 - H * L) * k / (k - 1))

    want_x = np.nanmean([awg_item([1, 2, 3]), awg_item([2, 3]), awg_item([3, 3, 3])])
    want_y = np.nanmean([awg_item([4, 5, 5]), awg_item([2, 4, 3])])
    assert a.loc["x", "awg"] == pytest.approx(want_x)
    assert a.loc["y", "awg"] == pytest.approx(want_y)


def test_complete_data_pairwise_equals_listwise(lq):
    # on complete rows the pairwise rule is R's listwise rule: adding an all-missing row
    # (dropped by R) must change nothing
    extra = pd.DataFrame({c: [np.nan] for c in TSIG})
    X = pd.concat([lq[TSIG], extra], ignore_index=True)
    g = pd.concat([lq["COMPID"], pd.Series([lq["COMPID"].iloc[0]])], ignore_index=True)
    assert_matches(ag.rwg_j(X, g, 5), REF["rwg_j"]["lq2002_tsig"], "rwg_j")


# --------------------------------------------------------------------------------------------
# Simulated truths
# --------------------------------------------------------------------------------------------


def test_icc1_recovers_the_between_team_share():
    rng = np.random.default_rng(1)
    J, k, var_b, var_w = 1500, 10, 0.2, 0.8
    team = np.repeat(np.arange(J), k)
    y = rng.normal(0, np.sqrt(var_b), J)[team] + rng.normal(0, np.sqrt(var_w), J * k)
    truth = var_b / (var_b + var_w)
    assert ag.icc1(y, team) == pytest.approx(truth, abs=0.02)
    assert ag.icc2(y, team) == pytest.approx(k * truth / (1 + (k - 1) * truth), abs=0.02)


def test_uniform_answers_give_rwg_near_zero_identical_answers_give_one():
    rng = np.random.default_rng(2)
    J, k = 200, 400
    team = np.repeat(np.arange(J), k)
    X = pd.DataFrame(rng.integers(1, 6, size=(J * k, 5)).astype(float))
    r = ag.rwg_j(X, team, 5)
    # S / null is ~1 +- 3%: about half the teams truncate at 0, the rest stay small
    assert r["rwg_j"].median() < 0.05 and r["rwg_j"].max() < 0.6
    a = ag.awg(X, team, 1, 5)
    assert abs(a["awg"].mean()) < 0.1  # uniform answers: observed variance is near the maximum/2
    same = pd.DataFrame({"a": [3.0] * 6, "b": [4.0] * 6, "c": [5.0] * 6})
    t = pd.Series([1, 1, 1, 2, 2, 2])
    assert ag.rwg_j(same, t, 5)["rwg_j"].tolist() == [1.0, 1.0]
    assert ag.awg(same, t, 1, 5)["awg"].tolist() == [1.0, 1.0]


# --------------------------------------------------------------------------------------------
# Edge cases and grouping
# --------------------------------------------------------------------------------------------


def test_edge_cases_single_team_single_rater_missing_item():
    y = pd.Series([1.0, 2.0, 3.0, np.nan])
    assert np.isnan(ag.icc1(y, pd.Series(["a"] * 4)))  # one team: no between-team variance
    assert np.isnan(ag.icc2(y, pd.Series(["a", "b", "c", "d"])))  # no within-team df
    items = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [np.nan, np.nan, np.nan]})
    r = ag.rwg_j(items, pd.Series(["t", "t", "u"]), 5)
    assert r.loc["u", "n"] == 1 and np.isnan(r.loc["u", "rwg_j"])
    # an item nobody answered is left out: same as the one-item index
    one = ag.rwg_j(items[["a"]], pd.Series(["t", "t", "u"]), 5)
    assert r.loc["t", "rwg_j"] == pytest.approx(one.loc["t", "rwg_j"]) == pytest.approx(0.75)
    assert np.isnan(ag.awg(items, pd.Series(["t", "t", "u"]), 1, 5).loc["u", "awg"])
    # rows without a group are left out; groups with no answers do not appear
    r = ag.rwg_j(pd.DataFrame({"a": [1.0, 2.0, np.nan, 5.0]}), pd.Series(["t", "t", "v", None]), 5)
    assert r.index.tolist() == ["t"]


def test_nested_keys_make_a_team_per_hospital():
    keys = pd.DataFrame(
        {
            "hospital_id": ["H1", "H1", "H2", "H2", "H2"],
            "team_id": ["ICU", "ICU", "ICU", "ICU", None],
        }
    )
    items = pd.DataFrame({"a": [1.0, 1.0, 5.0, 5.0, 3.0]})
    r = ag.rwg_j(items, keys, 5)
    assert list(r.index) == [("H1", "ICU"), ("H2", "ICU")]
    assert r["rwg_j"].tolist() == [1.0, 1.0]
    flat = ag.rwg_j(items.iloc[:4], keys["team_id"].iloc[:4], 5)  # wrongly pooled: one team
    assert len(flat) == 1 and flat["rwg_j"].iloc[0] == 0.0
    y = pd.Series([1.0, 2.0, 5.0, 6.0, 9.0])
    assert ag.icc1(y, keys) == pytest.approx(ag.icc1(y.iloc[:4], pd.Series(["a", "a", "b", "b"])))


def test_two_million_respondents_in_seconds():
    rng = np.random.default_rng(3)
    N, J = 2_000_000, 100_000
    team = pd.Series(rng.integers(0, J, N))
    X = pd.DataFrame(rng.integers(1, 6, size=(N, 7)).astype(float))
    X.iloc[rng.integers(0, N, 50_000), 2] = np.nan
    t = time.perf_counter()
    out = ag.agreement_by_group(X, team, 5, 1, 5)
    ag.icc1(X[0], team)
    elapsed = time.perf_counter() - t
    assert len(out) == J and out["rwg_j"].notna().all()
    assert elapsed < 10, f"{elapsed:.1f} s"
