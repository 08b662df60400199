"""flaqum.cfa against lavaan (fixtures from tests/fixtures/r/psych_reference.R).

Tolerances. The CFA is an iterative ML fit: the requirement is 1e-3 against lavaan; held here
to 1e-6 on chi2 and the fit measures (observed ~1e-8) and 1e-4 on the loadings (observed 5e-6:
lavaan's own convergence tolerance is the limit), for the single-group one- and three-factor
models. The multi-group (invariance) fits are tested in test_invariance.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.factor_data import simulate_one_factor
from support.lavaan_fixture import CFA, FIT_KEYS, FIT_TOL, FIX, THREE, X9, holzinger_swineford

from flaqum import cfa

LOAD_TOL = 1e-4
FIT_KEYS = [
    *FIT_KEYS,
    ("baseline.chisq", "baseline_chi2"),
    ("baseline.df", "baseline_df"),
]


@pytest.fixture(scope="module")
def hs():
    return holzinger_swineford()


@pytest.fixture(scope="module")
def bfi():
    return pd.read_csv(FIX / "psych_bfi_agree.csv")


def assert_fit(r: cfa.CFAResult, ref: dict, loadings: bool = True):
    assert r.converged and ref["converged"] in (True, None)
    for rk, pk in FIT_KEYS:
        assert getattr(r, pk) == pytest.approx(ref["fit"][rk], abs=FIT_TOL, rel=FIT_TOL), pk
    assert r.n == ref["nobs"]
    if loadings:
        L = ref["loadings"]
        np.testing.assert_allclose(r.loadings.loc[L["item"]].to_numpy(), L["std"], atol=LOAD_TOL)
        np.testing.assert_allclose(
            r.raw_loadings.loc[L["item"]].to_numpy(), L["raw"], atol=LOAD_TOL
        )


def test_one_factor_cfa_matches_lavaan(hs, bfi):
    assert_fit(cfa.cfa_one_factor(hs[X9]), CFA["hs_one_factor"])
    r = cfa.cfa_one_factor(bfi)  # listwise: rows with a missing answer are dropped
    assert_fit(r, CFA["bfi_agree_one_factor"])
    L = r.loadings
    assert r.omega == pytest.approx(L.sum() ** 2 / (L.sum() ** 2 + (1 - L**2).sum()), abs=1e-12)


def test_three_factor_cfa_matches_lavaan(hs):
    r = cfa.cfa_one_factor(hs[X9], THREE)
    assert_fit(r, CFA["hs_three_factor"])
    assert 0 < r.omega < 1 and list(r.factor_cov.index) == list(THREE)


def test_cfa_is_scale_invariant_and_reports_raw_units(hs):
    a = cfa.cfa_one_factor(hs[X9], THREE)
    c = np.array([1000, 1, 0.01, 5, 5, 5, 1e4, 1, 1])
    b = cfa.cfa_one_factor(hs[X9] * c, THREE)
    assert b.converged and b.chi2 == pytest.approx(a.chi2, rel=1e-9)
    np.testing.assert_allclose(b.loadings, a.loadings, atol=1e-7)
    marker = np.array([1000, 1000, 1000, 5, 5, 5, 1e4, 1e4, 1e4])
    np.testing.assert_allclose(b.raw_loadings / a.raw_loadings, c / marker, rtol=1e-6)
    np.testing.assert_allclose(b.residual_variances / a.residual_variances, c**2, rtol=1e-6)


def test_cfa_recovers_known_loadings_and_omega():
    rng = np.random.default_rng(6)
    lam = np.array([0.8, 0.7, 0.6, 0.5, 0.4, 0.75])
    r = cfa.cfa_one_factor(simulate_one_factor(lam, 20_000, rng))
    assert r.converged
    np.testing.assert_allclose(r.loadings.to_numpy(), lam, atol=0.02)
    true_omega = lam.sum() ** 2 / (lam.sum() ** 2 + (1 - lam**2).sum())
    assert r.omega == pytest.approx(true_omega, abs=0.01)
    assert r.cfi > 0.995 and r.rmsea < 0.02 and r.srmr < 0.01 and r.df == 9


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
        r = cfa.cfa_one_factor(data)
        assert not r.converged and np.isnan(r.cfi) and np.isnan(r.omega), why
        assert r.loadings.isna().all() and list(r.loadings.index) == list(data.columns)
        assert r.message, why
    # three items: just identified, a perfect fit
    r = cfa.cfa_one_factor(good[["q0", "q1", "q2"]])
    assert r.converged and r.df == 0 and r.chi2 == pytest.approx(0, abs=1e-8)
    assert r.cfi == 1 and r.tli == 1 and r.rmsea == 0
