"""The wave's multilevel tables (flaqum.multilevel_tables): what the multilevel and change rules
write.

Data come from the nested random-intercept model with stated parameters
(``simulate_nested``); the tests check the tables' shape, the suppression rule, and that the
change model recovers a stated change of chosen hospitals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flaqum.multilevel_tables import (
    ADJUSTED_COLUMNS,
    CHANGE_COLUMNS,
    change_table,
    multilevel_tables,
)
from flaqum.simulate import simulate_nested

TRUE_SHIFT = 0.6  # the change of the "improving" hospitals between the two waves
IMPROVING = ["H001", "H002", "H003", "H004"]


def as_scores(d: pd.DataFrame, scale="psych_safety", seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = d.rename(columns={"score": scale}).copy()
    out["respondent_id"] = [f"R{i}" for i in range(len(out))]
    out["profession"] = rng.choice(["nurse", "physician", "allied health"], len(out))
    for c in ("hospital_id", "team_id", "respondent_id"):
        out[c] = out[c].astype("string")
    return out


@pytest.fixture(scope="module")
def waves():
    first = as_scores(simulate_nested(40, (3, 12), (2, 30), 0.1, 0.1, 0.6, 4.5, seed=3))
    second = as_scores(simulate_nested(40, (3, 12), (2, 30), 0.1, 0.1, 0.6, 4.5, seed=4), seed=1)
    # hospital levels persist across waves; the improving hospitals move by TRUE_SHIFT
    level = first.groupby("hospital_id")["psych_safety"].mean()
    second["psych_safety"] += (
        level.reindex(second["hospital_id"]).to_numpy()
        - 4.5
        + np.where(second["hospital_id"].isin(IMPROVING), TRUE_SHIFT, 0.0)
    )
    return first, second


def test_multilevel_tables_follow_the_contract_and_suppress(study, waves):
    first, _ = waves
    maturity = pd.DataFrame(
        {
            "hospital_id": pd.Series(sorted(first["hospital_id"].unique()), dtype="string"),
        }
    )
    maturity["mm_total"] = np.linspace(2, 4, len(maturity))
    t = multilevel_tables(study, "staff", first, maturity)
    v = t["variance"].set_index("scale").loc["psych_safety"]
    assert v["n_hospitals"] == 40 and v["converged"]
    assert v["vpc_hospital"] + v["vpc_team"] < 1
    teams = t["teams"]
    small = teams["n"] < study.min_group_size
    assert small.any() and teams.loc[small, "suppressed"].all()
    masked = ["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]
    assert teams.loc[small, masked].isna().all().all()
    assert teams.loc[~small, "eb_mean"].notna().all()
    adj = t["adjusted"]
    assert list(adj.columns) == ADJUSTED_COLUMNS
    assert set(adj["model"]) == {"casemix", "cross_level"}
    # profession has no effect in these data: its coefficients are near zero
    prof = adj[(adj["model"] == "casemix") & adj["term"].str.startswith("C(profession)")]
    assert (prof["estimate"].abs() < 4 * prof["se"]).all()


def test_change_recovers_the_stated_shift(study, waves):
    first, second = waves
    ch = change_table(study, "staff", second, first, "2025-2", "2024-1")
    assert list(ch.columns) == CHANGE_COLUMNS
    assert set(ch["previous_wave"]) == {"2024-1"}
    c = ch[ch["scale"] == "psych_safety"].set_index("hospital_id")
    assert len(c) == 40
    up = c.loc[IMPROVING]
    rest = c.drop(IMPROVING)
    # the improving hospitals' changes exceed the others' by about TRUE_SHIFT
    diff = up["change"].mean() - rest["change"].mean()
    assert diff == pytest.approx(TRUE_SHIFT, abs=0.25)
    assert (up["ci_low"] > rest["change"].mean()).mean() >= 0.75
    assert (c["ci_low"] < c["change"]).all() and (c["change"] < c["ci_high"]).all()


def test_change_suppresses_a_hospital_small_in_either_wave(study, waves):
    first, second = waves
    tiny = first[first["hospital_id"] == "H005"].head(3)
    first = pd.concat([first[first["hospital_id"] != "H005"], tiny], ignore_index=True)
    ch = change_table(study, "staff", second, first, "2025-2", "2024-1")
    row = ch[(ch["scale"] == "psych_safety") & (ch["hospital_id"] == "H005")].iloc[0]
    assert row["suppressed"] and np.isnan(row["change"]) and np.isnan(row["ci_low"])
