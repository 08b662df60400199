"""flaqum.planning: Spearman-Brown and its inverse, the minimal detectable change, the tables."""

import math

import numpy as np
import pandas as pd
import pytest

from flaqum import planning as pl
from flaqum.agreement import icc1, icc2


def test_inverse_gives_back_the_reliability():
    for icc in (0.02, 0.1, 0.26, 0.5):
        for r in (0.5, 0.7, 0.8, 0.9):
            k = pl.respondents_needed(icc, r)
            assert pl.spearman_brown(icc, k) == pytest.approx(r, rel=1e-12)


def test_hand_values():
    # ICC1 = .20, R = .70: k = .7 * .8 / (.2 * .3) = 9.333..., so 10 respondents
    assert pl.respondents_needed(0.2, 0.7) == pytest.approx(0.56 / 0.06)
    # R = .80: k = .8 * .8 / (.2 * .2) = 16 exactly
    assert pl.respondents_needed(0.2, 0.8) == pytest.approx(16.0)
    # Spearman-Brown: 16 respondents at ICC1 .2: 3.2 / 4.0 = .8
    assert pl.spearman_brown(0.2, 16) == pytest.approx(0.8)
    # MDC at SE .1: (1.959964 + 0.841621) * sqrt(.02) = 0.39621
    assert pl.mdc(0.1) == pytest.approx(2.801585 * math.sqrt(0.02), rel=1e-6)
    assert pl.mdc(0.1, 0.2) == pytest.approx(2.801585 * math.sqrt(0.05), rel=1e-6)


def test_not_defined_without_team_variance():
    assert np.isnan(pl.respondents_needed(0.0, 0.7))
    assert np.isnan(pl.respondents_needed(-0.05, 0.7))
    with pytest.raises(ValueError, match="between 0 and 1"):
        pl.respondents_needed(0.2, 1.0)


def test_icc2_is_spearman_brown_of_icc1_at_the_mean_team_size():
    # multilevel::ICC2 on balanced data equals Spearman-Brown of ICC1 at the team size
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(40), 8)
    y = rng.normal(size=40)[g] * 0.6 + rng.normal(size=g.size)
    assert icc2(y, g) == pytest.approx(float(pl.spearman_brown(icc1(y, g), 8)), rel=1e-10)


def test_planning_scales_table():
    scales = pd.DataFrame(
        {
            "scale": ["a", "b", "m"],
            "icc1": [0.2, 0.1, np.nan],
            "icc2": [0.7, 0.5, np.nan],
            "n_respondents": [100, 100, 30],
            "n_teams": [10, 10, np.nan],
        }
    )
    agreement = pd.DataFrame({"scale": ["a"] * 4 + ["b"] * 2, "n": [8, 10, 16, 20, 30, 5]})
    t = pl.planning_scales(scales, agreement)
    assert list(t.columns) == pl.SCALE_COLUMNS
    assert list(t["scale"]) == ["a", "b"]  # no ICC1, no row
    a = t.iloc[0]
    assert a["respondents_70"] == 10 and a["respondents_80"] == 16
    assert a["teams_reaching_70"] == pytest.approx(3 / 4)  # 10, 16, 20
    assert a["teams_reaching_80"] == pytest.approx(2 / 4)  # 16, 20
    assert a["mean_team_size"] == 10
    b = t.iloc[1]
    # ICC1 .1, R .7: k = .7 * .9 / (.1 * .3) = 21
    assert b["respondents_70"] == 21 and b["teams_reaching_70"] == pytest.approx(1 / 2)


def test_planning_hospitals_table():
    h = pd.DataFrame(
        {
            "scale": ["a", "a"],
            "hospital_id": ["H1", "H2"],
            "n": [200, 3],
            "eb_se": [0.05, np.nan],
            "suppressed": [False, True],
        }
    )
    t = pl.planning_hospitals(h)
    assert list(t.columns) == pl.HOSPITAL_COLUMNS
    assert t["mdc"].iloc[0] == pytest.approx(float(pl.mdc(0.05)))
    assert np.isnan(t["mdc"].iloc[1])
