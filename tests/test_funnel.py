"""flaqum.funnel against base-R transcriptions of FunnelPlotR (tests/fixtures/r/funnel_reference.R)
and against values derived by hand."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flaqum import funnel as fn

FIX = Path(__file__).parent / "fixtures" / "r"
REF = json.loads((FIX / "funnel_reference.json").read_text())
DATA = pd.read_csv(FIX / "funnel_data.csv", dtype={"hospital_id": str})
KEYS = ("ll95", "ul95", "ll998", "ul998")


def _close(a, b, tol=1e-6):
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol)


def _rows(dataset, method):
    d = DATA[DATA["dataset"] == dataset]
    if dataset == "rate":
        ind = fn.Indicator("r", "rate", "observed", "expected", "rate", 1000.0)
        out = fn.funnel_table(d, [ind], trim_method=method)
        # back to the O/E scale of the reference
        for c in fn.LIMIT_COLUMNS:
            out[c] = out[c] / out["target"]
        return out
    return fn.funnel(d["hospital_id"], d["observed"], d["expected"], trim_method=method)


@pytest.mark.parametrize("key", sorted(REF))
def test_matches_funnelplotr(key):
    dataset, method = key.split("/")
    ref = REF[key]
    out = _rows(dataset, method)
    assert list(out["hospital_id"]) == ref["hospital_id"]
    _close(out["z"], ref["z"])
    _close(out["phi"].iloc[0], ref["phi"])
    _close(out["tau2"].iloc[0], ref["tau2"])
    assert bool(out["overdispersed"].iloc[0]) == ref["adjusted"]
    for k in KEYS:
        _close(out[f"poisson_{k}"], ref["poisson"][k])
        _close(out[f"od_{k}"], ref["od"][k])
    outside95 = ~out["signal"].eq("within")
    outside998 = out["signal"].str.endswith("99.8%")
    assert list(outside95.astype(int)) == ref["outlier95"]
    assert list(outside998.astype(int)) == ref["outlier998"]


def test_the_fixture_covers_both_decisions():
    assert {REF[k]["adjusted"] for k in REF} == {True, False}
    assert any(sum(REF[k]["outlier998"]) for k in REF)


def test_trimmed_z_as_r():
    ref = REF["overdispersed/winsorise"]
    d = DATA[DATA["dataset"] == "overdispersed"]
    z = fn.zscores(d["observed"], d["expected"])
    _close(fn.winsorise(z), ref["z_trimmed"])
    ref = REF["overdispersed/truncate"]
    kept = fn.truncate(z)
    assert list(kept) == [v is not None for v in ref["z_trimmed"]]
    assert int(kept.sum()) == ref["n"]


def test_hand_values():
    # one hospital, O = 20 and E = 10: z = sqrt(10) log 2
    assert fn.zscores([20], [10])[0] == pytest.approx(math.sqrt(10) * math.log(2), rel=1e-12)
    # three z-scores without trimming effect on phi: z = (1, -1, 2) winsorised at 10% of 3
    # values: type-7 quantiles at 0.1 and 0.9 of (-1, 1, 2) are -0.6 and 1.8
    w = fn.winsorise([1.0, -1.0, 2.0])
    assert list(w) == pytest.approx([1.0, -0.6, 1.8])
    # tau2 by hand: E = (10, 20, 40), z = (2, -2, 2) (no trimming at 0%):
    # phi = 4; tau2 = (3*4 - 2) / (70 - 2100/70) = 10 / 40 = 0.25
    e = np.array([10.0, 20.0, 40.0])
    o = e * np.exp(np.array([2.0, -2.0, 2.0]) / np.sqrt(e))
    d = fn.dispersion(fn.zscores(o, e), e, trim=1e-9)
    assert d["phi"] == pytest.approx(4.0)
    assert d["tau2"] == pytest.approx(0.25)
    # OD limit at E = 10 with tau2 = 0.25: exp(1.959964 * sqrt(0.1 + 0.25))
    assert fn.od_limits([10.0], 0.25)["ul95"][0] == pytest.approx(
        math.exp(1.959964 * math.sqrt(0.35)), rel=1e-12
    )


def test_poisson_limits_are_exact_poisson():
    # at E = 1 the exact 95% lower limit of O/E is qchisq(0.025, 2) / 2 = -log(0.975)
    lim = fn.poisson_limits([1.0])
    assert lim["ll95"][0] == pytest.approx(-math.log(0.975), rel=1e-10)
    # limits narrow as E grows, and surround 1
    lim = fn.poisson_limits([5.0, 50.0, 500.0])
    assert np.all(np.diff(lim["ul998"]) < 0) and np.all(np.diff(lim["ll998"]) > 0)
    assert np.all(lim["ll998"] < lim["ll95"]) and np.all(lim["ul95"] < lim["ul998"])
    assert np.all((lim["ll95"] < 1) & (lim["ul95"] > 1))


def test_no_overdispersion_no_tau():
    e = np.array([100.0, 100.0, 100.0, 100.0])
    d = fn.dispersion(fn.zscores(e, e), e)
    assert d["phi"] == 0 and d["tau2"] == 0 and not d["overdispersed"]


def test_funnel_table_rate_and_missing():
    out = pd.DataFrame(
        {
            "hospital_id": ["A", "B", "C", "D", "E"],
            "deaths": [10, 20, 30, None, 5],
            "expected_deaths": [12.0, 18.0, 30.0, 20.0, 0.0],
            "incidents_reported": [10, 40, 30, 20, 50],
            "patient_days": [1000, 2000, 3000, 4000, 5000],
        }
    )
    t = fn.funnel_table(out)
    assert list(t.columns) == fn.COLUMNS
    smr = t[t["indicator"] == "smr"]
    # D (no deaths) and E (no expected deaths) are left out and counted
    assert list(smr["hospital_id"]) == ["A", "B", "C"]
    assert set(smr["n_missing"]) == {2}
    assert list(smr["value"]) == pytest.approx([10 / 12, 20 / 18, 1.0])
    rate = t[t["indicator"] == "incident_rate"]
    pooled = 150 / 15000
    assert list(rate["target"]) == pytest.approx([pooled * 1000] * 5)
    assert list(rate["value"]) == pytest.approx([10.0, 20.0, 10.0, 5.0, 10.0])
    # the expected count of a rate is patient days x the pooled rate
    assert list(rate["expected"]) == pytest.approx([10.0, 20.0, 30.0, 40.0, 50.0])
    # limits are on the shown scale: they surround the target
    assert (rate["ll95"] < rate["target"]).all() and (rate["ul95"] > rate["target"]).all()


def test_funnel_table_without_columns_is_empty():
    t = fn.funnel_table(pd.DataFrame({"hospital_id": ["A"], "admissions": [3]}))
    assert t.empty and list(t.columns) == fn.COLUMNS


def test_curves_pass_through_the_hospitals_limits():
    d = DATA[DATA["dataset"] == "overdispersed"].rename(
        columns={"observed": "deaths", "expected": "expected_deaths"}
    )
    t = fn.funnel_table(d, [fn.INDICATORS[0]])
    c = fn.curves(t, fn.INDICATORS[0], points=400)
    # interpolating the curve at a hospital's E gives (nearly) its limit
    h = t.iloc[0]
    assert np.interp(h["denominator"], c["x"], c["ul95"]) == pytest.approx(h["ul95"], rel=1e-3)
