"""Ingest (types, labels, missing codes, reverse keys) and scoring (min_items)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from flaqum.errors import InputError
from flaqum.ingest import ingest_source, require_pass
from flaqum.io import as_id, read_source
from flaqum.scoring import score_source
from flaqum.utils import read_parquet_meta
from flaqum.validate import validate_wave


def test_ingest_recodes_reverse_items_and_missing_codes(study, wave_copy, tmp_path):
    raw, _ = pyreadstat.read_sav(str(wave_copy / "staff.sav"), user_missing=True)
    out = tmp_path / "staff.parquet"
    n = ingest_source(study, wave_copy, "staff", out)
    df = pd.read_parquet(out)
    assert n == len(raw) == len(df)
    # PS1 is reverse-keyed on 1-7: stored as 8 - answer; 8 and 9 are missing codes
    r = raw["PS1"].to_numpy()
    valid = (r >= 1) & (r <= 7)
    np.testing.assert_array_equal(df["PS1"].to_numpy()[valid], 8 - r[valid])
    assert df["PS1"].isna().sum() == (~valid).sum() > 0
    # PS2 is not reversed
    r2 = raw["PS2"].to_numpy()
    v2 = (r2 >= 1) & (r2 <= 7)
    np.testing.assert_array_equal(df["PS2"].to_numpy()[v2], r2[v2])
    # global ratings on 0-10 with missing codes 98/99
    assert df["QSG1"].max() <= 10 and (raw["QSG1"] >= 98).any()
    # ids are strings, labels travel in the metadata
    assert (
        str(df["hospital_id"].dtype) == "string" and df["respondent_id"].str.startswith("S").all()
    )
    meta = read_parquet_meta(out)
    assert meta["column_labels"]["PS1"].startswith("If you make a mistake")
    assert meta["value_labels"]["PS1"]["9.0"] == "No answer"
    assert meta["user_missing"]["PS1"] == [8.0, 9.0]
    assert "reverse-keyed" in meta["recoded"]["PS1"] and "PS2" not in meta["recoded"]


def test_ids_stay_strings():
    assert as_id(pd.Series(["0042", " 7 ", None, ""])).tolist() == ["0042", "7", pd.NA, pd.NA]
    assert as_id(pd.Series([42.0, 7.0, np.nan])).tolist() == ["42", "7", pd.NA]


def test_csv_and_xlsx_read_the_same(tmp_path):
    df = pd.DataFrame({"hospital_id": ["0042", "0043"], "beds": ["120", "300"]})
    df.to_csv(tmp_path / "organisations.csv", index=False)
    df.to_excel(tmp_path / "organisations.xlsx", index=False)
    a, _ = read_source(tmp_path / "organisations.csv")
    b, _ = read_source(tmp_path / "organisations.xlsx")
    assert a["hospital_id"].tolist() == b["hospital_id"].tolist() == ["0042", "0043"]


def test_stata_source(study, wave_copy, tmp_path):
    raw, _ = pyreadstat.read_sav(str(wave_copy / "patients.sav"), user_missing=True)
    (wave_copy / "patients.sav").unlink()
    pyreadstat.write_dta(raw, str(wave_copy / "patients.dta"))
    assert validate_wave(study, wave_copy).status == "pass"
    ingest_source(study, wave_copy, "patients", tmp_path / "p.parquet")
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == len(raw)


def test_require_pass_shows_the_errors(study, wave_copy, tmp_path):
    (wave_copy / "teams.csv").unlink()
    v = validate_wave(study, wave_copy)
    v.write(tmp_path / "validation.json")
    with pytest.raises(InputError) as exc:
        require_pass(tmp_path / "validation.json")
    msg = str(exc.value)
    assert "failed validation" in msg and "required source 'teams' is missing" in msg


def test_scoring_min_items(study):
    scale = study.scales_for("staff")["psych_safety"]  # 7 items, min_items 5
    items = {i: [6.0, 6.0, np.nan, 2.0] for i in scale.items}
    df = pd.DataFrame(items)
    # respondent 0: all 7 answered; 1: 5 answered; 2: 4 answered -> no score; 3: all 2
    df.loc[1, ["PS6", "PS7"]] = np.nan
    df.loc[2, ["PS1", "PS2", "PS3", "PS4"]] = [1.0, 2.0, 3.0, 4.0]
    df.loc[0, "PS7"] = 1.0
    df["respondent_id"] = ["a", "b", "c", "d"]
    df["hospital_id"] = "H1"
    df["team_id"] = "T1"
    for other in study.scales_for("staff").values():
        for i in other.items:
            if i not in df:
                df[i] = np.nan
    scores = score_source(study, "staff", df)
    np.testing.assert_allclose(
        scores["psych_safety"].to_numpy(), [(6 * 6 + 1) / 7, 6.0, np.nan, 2.0]
    )
    assert scores["team_collab"].isna().all()
    assert list(scores.columns[:3]) == ["respondent_id", "hospital_id", "team_id"]
