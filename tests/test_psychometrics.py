"""flaqum.psychometrics against psych (fixtures from tests/fixtures/r/psych_reference.R), and the
psychometrics tables of a source.

Tolerances. Alpha, its Feldt interval, r.drop and alpha-if-deleted are closed forms: 1e-8
against psych::alpha (observed ~1e-15). The CFA behind omega, the fit columns and the loadings
is tested against lavaan in test_cfa.py, measurement invariance in test_invariance.py.
"""

from __future__ import annotations

import json
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
    assert (
        list(scales.columns)
        == ps.SCALE_COLUMNS
        == [
            "scale",
            "instrument",
            "n_respondents",
            "n_items",
            "alpha",
            "alpha_ci_low",
            "alpha_ci_high",
            "omega",
            "cfi",
            "tli",
            "rmsea",
            "srmr",
            "icc1",
            "icc2",
            "rwg_j_mean",
            "rwg_j_median",
            "awg_mean",
            "n_teams",
        ]
    )
    assert list(items.columns) == [
        "scale",
        "item",
        "n",
        "mean",
        "sd",
        "pct_missing",
        "item_total_r",
        "alpha_if_deleted",
        "loading",
    ]
    assert list(agreement.columns) == [
        "scale",
        "hospital_id",
        "team_id",
        "n",
        "rwg_j",
        "awg",
        "suppressed",
    ]
    want = study.scales_for("staff")
    assert list(scales["scale"]) == list(want)
    assert len(items) == sum(len(s.items) for s in want.values())
    assert scales[["alpha", "omega", "cfi", "icc1", "rwg_j_mean", "awg_mean"]].notna().all().all()
    assert (
        (scales["alpha_ci_low"] < scales["alpha"]) & (scales["alpha"] < scales["alpha_ci_high"])
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
    assert row["icc1"] == pytest.approx(
        ag.icc1(scores["psych_safety"], scores[["hospital_id", "team_id"]])
    )
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
    full = ag.rwg_j(
        proc[list(study.scale("psych_safety").items)], scores[["hospital_id", "team_id"]], 7
    )
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
