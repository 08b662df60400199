"""flaqum.invariance: multi-group CFA sequences against lavaan, and the invariance table of a
source (fixtures from tests/fixtures/r/psych_reference.R).

Tolerance: 1e-6 on chi2 and the fit measures of the configural, metric and scalar models
against ``lavaan::cfa(group = , group.equal = )`` (observed ~1e-8).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.factor_data import simulate_one_factor
from support.lavaan_fixture import CFA, FIT_KEYS, FIT_TOL, THREE, X9, holzinger_swineford

from flaqum import invariance as inv
from flaqum.ingest import process_source
from flaqum.io import find_source, read_source
from flaqum.scoring import score_source


@pytest.fixture(scope="module")
def hs():
    return holzinger_swineford()


@pytest.fixture(scope="module")
def staff(small_consortium, study):
    """The processed and scored staff survey of the small consortium's first wave."""
    root, _ = small_consortium
    df, meta = read_source(find_source(root / "2024-1", "staff"))
    proc, _ = process_source(study, "staff", df, meta)
    return proc, score_source(study, "staff", proc)


@pytest.mark.parametrize(
    "factors,key", [(THREE, "hs_invariance"), (None, "hs_one_factor_invariance")]
)
def test_measurement_invariance_matches_lavaan(hs, factors, key):
    mi = inv.measurement_invariance(hs[X9], hs["school"], factors).set_index("model")
    assert list(mi.index) == ["configural", "metric", "scalar"]
    for model in mi.index:
        ref = CFA[key][model]["fit"]
        for rk, pk in FIT_KEYS:
            want = pytest.approx(ref[rk], abs=FIT_TOL, rel=FIT_TOL)
            assert mi.loc[model, pk] == want, (model, pk)
    assert mi["converged"].all() and (mi["n_groups"] == 2).all() and (mi["n"] == 301).all()
    d = mi["cfi"].diff()
    np.testing.assert_allclose(mi["delta_cfi"].to_numpy()[1:], d.to_numpy()[1:])
    assert mi.loc["metric", "holds"] == (d["metric"] > -0.01)
    assert not mi.loc["scalar", "holds"]  # HS scalar invariance fails (delta CFI -0.04)
    assert pd.isna(mi.loc["configural", "holds"])


def test_invariance_holds_for_identical_populations_and_fails_for_shifted_intercepts():
    rng = np.random.default_rng(7)
    lam = [0.8, 0.7, 0.6, 0.7, 0.6]
    a, b = simulate_one_factor(lam, 3000, rng), simulate_one_factor(lam, 3000, rng)
    g = pd.Series(["a"] * 3000 + ["b"] * 3000)
    same = inv.measurement_invariance(pd.concat([a, b], ignore_index=True), g)
    assert same["holds"].iloc[1:].all()
    b2 = b.copy()
    b2["q0"] += 0.8  # item bias in group b: intercept differs, loadings do not
    mi = inv.measurement_invariance(pd.concat([a, b2], ignore_index=True), g).set_index("model")
    assert mi.loc["metric", "holds"] and not mi.loc["scalar", "holds"]


def test_invariance_drops_small_groups_and_names_them():
    rng = np.random.default_rng(9)
    X = simulate_one_factor([0.7, 0.6, 0.7, 0.6], 1210, rng)
    g = pd.Series(["big"] * 600 + ["other"] * 600 + ["tiny"] * 10)
    mi = inv.measurement_invariance(X, g)
    assert (mi["n_groups"] == 2).all() and mi["note"].str.contains("tiny").all()
    assert mi["groups"].eq("big; other").all() and mi["converged"].all()
    one = inv.measurement_invariance(X.iloc[:610], g.iloc[:610])
    assert not one["converged"].any() and one["note"].str.contains("two groups").all()


def test_invariance_table_by_profession(study, staff):
    proc, scores = staff
    table = inv.invariance_table(study, "staff", proc, scores, "profession")
    assert list(table.columns[:4]) == ["scale", "group_col", "factors", "model"]
    assert (table["group_col"] == "profession").all()
    # the quickscan's three-factor model, labelled by its total scale, and each other >= 4 items
    assert set(table["scale"]) == {"psych_safety", "team_collab", "qs_prof_total"}
    qs = table[table["scale"] == "qs_prof_total"]
    assert qs["factors"].iloc[0] == "qs_prof_person+qs_prof_safe+qs_prof_org"
    assert list(qs["model"]) == ["configural", "metric", "scalar"]
    assert (qs["df"].diff().dropna() > 0).all()
    assert table["converged"].all() and (table["n_groups"] >= 2).all()
