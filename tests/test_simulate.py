"""The synthetic consortium: deterministic per seed, shaped like the study, truth written."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pyreadstat

from flaqum.simulate import TRUTH, generate_consortium


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_for_a_seed(study, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_consortium(a, study, n_hospitals=4, seed=3, scale=0.1)
    generate_consortium(b, study, n_hospitals=4, seed=3, scale=0.1)
    generate_consortium(c, study, n_hospitals=4, seed=4, scale=0.1)
    assert digest(a) == digest(b) != digest(c)


def test_shape_of_the_study(small_consortium):
    out, truth = small_consortium
    w1, w2 = out / "2024-1", out / "2025-2"
    for w in (w1, w2):
        assert {p.name for p in w.iterdir()} == {
            "staff.sav",
            "patients.sav",
            "maturity.csv",
            "organisations.csv",
            "teams.csv",
            "outcomes.csv",
            "team_outcomes.csv",
        }
    staff, meta = pyreadstat.read_sav(str(w1 / "staff.sav"), user_missing=True)
    teams = pd.read_csv(w1 / "teams.csv", dtype=str)
    n_teams = teams.groupby("hospital_id").size()
    assert n_teams.between(8, 40).all()
    # team ids repeat across hospitals: only (hospital, team) is a key
    assert (
        teams["team_id"].duplicated().any()
        and not teams.duplicated(["hospital_id", "team_id"]).any()
    )
    sizes = staff.groupby(["hospital_id", "team_id"]).size()
    assert sizes.min() >= 2 and sizes.max() <= 40 and (sizes < 5).any()
    # SPSS metadata as data managers get it
    assert meta.missing_ranges["PS1"] == [{"lo": 8.0, "hi": 8.0}, {"lo": 9.0, "hi": 9.0}]
    assert meta.variable_value_labels["PS1"][8.0] == "Not applicable"
    assert (
        dict(zip(meta.column_names, meta.column_labels, strict=True))["PS4"]
        == "It is safe to take a risk on this team."
    )
    assert (staff["PS1"] == 8).any() and (staff["PS1"] == 9).any() and staff["PS1"].isna().any()
    # one hospital joins in the second wave
    h1 = set(pd.read_csv(w1 / "organisations.csv", dtype=str)["hospital_id"])
    h2 = set(pd.read_csv(w2 / "organisations.csv", dtype=str)["hospital_id"])
    assert len(h2 - h1) == 1 and h1 < h2
    gt = json.loads((out / "ground_truth.json").read_text())
    assert gt["parameters"]["psych_safety"]["var_team"] == TRUTH["psych_safety"]["var_team"]
    assert (
        set(gt["waves"]["2025-2"]["changed_hospitals"])
        and not gt["waves"]["2024-1"]["changed_hospitals"]
    )


def test_maturity_and_outcomes(small_consortium):
    out, truth = small_consortium
    mm1 = pd.read_csv(out / "2024-1" / "maturity.csv", dtype={"hospital_id": str})
    mm2 = pd.read_csv(out / "2025-2" / "maturity.csv", dtype={"hospital_id": str})
    items = [c for c in mm1.columns if c.startswith("MM")]
    assert len(items) == 52 and mm1[items].isin(range(1, 6)).all().all()
    common = mm1.merge(mm2, on="hospital_id", suffixes=("_1", "_2"))
    growth = common[[f"{i}_2" for i in items]].to_numpy().mean(1) - common[
        [f"{i}_1" for i in items]
    ].to_numpy().mean(1)
    assert growth.mean() > 0  # maturity grows between waves, as stated
    o = pd.read_csv(out / "2024-1" / "outcomes.csv")
    assert (o["deaths"] >= 0).all() and (o["expected_deaths"] > 0).all()
    to = pd.read_csv(out / "2024-1" / "team_outcomes.csv")
    assert (to["patient_days"] > 0).all()
    np.testing.assert_allclose(o["patient_days"].sum(), to["patient_days"].sum())
