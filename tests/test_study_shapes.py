"""Fast checks of the study shapes the pipeline accepts (issue 9); the end-to-end runs are in
test_study_two_level.py."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO, ROOT

from flaqum.cli import main as cli
from flaqum.config import load_study, read_yaml
from flaqum.errors import ConfigError
from flaqum.multilevel_tables import multilevel_tables
from flaqum.outcomes import run_hypothesis
from flaqum.validate import validate_wave

STUDY = ROOT / "tests/fixtures/study_two_level"


def test_the_organisations_register_is_required():
    config = read_yaml(STUDY / "config/config.yaml")
    del config["sources"]["organisations"]
    with pytest.raises(ConfigError, match="no 'organisations' source"):
        load_study(config, root=STUDY)


def test_validate_reads_the_codebooks_beside_the_config(tmp_path, capsys, monkeypatch):
    study = tmp_path / "study"
    shutil.copytree(STUDY, study)
    monkeypatch.chdir(tmp_path)  # not the study folder
    code = cli(
        ["--config", str(study / "config/config.yaml"), "validate", str(study / "data/raw/2025-1")]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "unknown column" not in out and "too few answers to score" in out


def test_items_of_an_instrument_the_wave_does_not_field(tmp_path):
    study = tmp_path / "study"
    shutil.copytree(STUDY, study)
    text = (study / "config/instruments/work_climate.yaml").read_text()
    (study / "config/instruments/work_climate.yaml").write_text(
        text.replace("unit: team\n", "unit: team\nwaves: ['2026-1']\n", 1)
    )
    s = load_study(study / "config/config.yaml", root=study)
    val = validate_wave(s, study / "data/raw/2025-1", "2025-1")
    assert val.status == "pass"
    assert val.summary["instruments_not_fielded"] == {"work_climate": ["2026-1"]}
    rules = {f.rule for f in val.warnings}
    assert "instrument not fielded" in rules and "response range" not in rules
    note = next(f for f in val.warnings if f.rule == "instrument not fielded")
    assert "an item of 'work_climate', which this wave does not field" in note.message


def test_a_design_without_teams_has_no_team_variance():
    rng = np.random.default_rng(3)
    h = np.repeat([f"H{i}" for i in range(12)], 40)
    y = rng.normal(0, 0.4, 12).repeat(40) + rng.normal(3, 1, len(h))
    s = load_study(DEMO / "config/config.yaml", root=DEMO)
    scores = pd.DataFrame(
        {
            "respondent_id": np.arange(len(h)).astype(str),
            "hospital_id": h,
            "team_id": pd.Series(pd.NA, index=range(len(h)), dtype="string"),
            "psych_safety": y,
        }
    )
    tables = multilevel_tables(s, "staff", scores)
    row = tables["variance"].set_index("scale").loc["psych_safety"]
    assert row["n_teams"] == 0 and np.isnan(row["var_team"]) and np.isnan(row["vpc_team"])
    assert row["var_hospital"] > 0 and tables["teams"].empty
    assert len(tables["hospitals"]) == 12


def test_a_hypothesis_whose_input_this_wave_lacks_is_not_applicable():
    hyp = read_yaml(DEMO / "config/hypotheses/climate_mortality.yaml")
    hyp["predictors"] = ["mm_total"]
    hospitals = pd.DataFrame({"scale": ["team_collab"], "hospital_id": ["H1"]})
    inputs = {
        "hospitals": hospitals,
        "teams": hospitals.assign(team_id="T1"),
        "organisations": pd.DataFrame({"hospital_id": ["H1"]}),
        "outcomes": pd.DataFrame({"hospital_id": ["H1"], "deaths": [1], "expected_deaths": [1.0]}),
    }
    result = run_hypothesis(hyp, inputs, "2025-1")
    assert result["status"] == "not_applicable"
    reason = result["reason"]
    assert "not in this wave's data" in reason and "'mm_total' not found" in reason
