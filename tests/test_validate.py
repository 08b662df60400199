"""Every bad input the issue lists gets a finding whose message names file, row, column, value
and rule. The data are a small synthetic wave broken one way at a time."""

from __future__ import annotations

import pandas as pd
import pyreadstat

from flaqum.validate import edit_distance, validate_wave


def read_sav(path):
    df, meta = pyreadstat.read_sav(str(path), user_missing=True)
    return df, meta


def write_sav(df, path, meta=None):
    missing = {}
    if meta is not None:
        missing = {
            c: [r["lo"] for r in v]
            for c, v in (meta.missing_ranges or {}).items()
            if c in df.columns
        }
    pyreadstat.write_sav(df, str(path), missing_ranges=missing)


def only(findings, rule):
    hits = [f for f in findings if f.rule == rule]
    assert hits, f"no finding with rule {rule!r}; got {[(f.rule, f.message) for f in findings]}"
    return hits


def test_clean_wave_passes_with_expected_warnings(study, wave_copy, small_consortium):
    v = validate_wave(study, wave_copy)
    assert v.status == "pass", v.text()
    rules = {f.rule for f in v.warnings}
    # the generator plants straight-liners and teams below the reporting minimum
    assert "straight-lining" in rules
    assert "team below reporting minimum" in rules
    _, truth = small_consortium
    n_flat = sum(v.summary["straightliners"].values())
    assert n_flat >= truth["waves"]["2024-1"]["straightliners"]["staff"]


def test_missing_required_source(study, wave_copy):
    (wave_copy / "staff.sav").unlink()
    v = validate_wave(study, wave_copy)
    f = only(v.errors, "required source")[0]
    assert "required source 'staff' is missing" in f.message
    assert f.file.endswith("staff")
    # an optional source may be absent
    (wave_copy / "team_outcomes.csv").unlink()
    assert not any("team_outcomes" in e.message for e in validate_wave(study, wave_copy).errors)


def test_truncated_sav(study, wave_copy):
    p = wave_copy / "staff.sav"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    f = only(validate_wave(study, wave_copy).errors, "readable file")[0]
    assert f.file == str(p)
    assert "cannot be read as SPSS" in f.message and "truncated" in f.message


def test_not_a_sav_at_all(study, wave_copy):
    (wave_copy / "patients.sav").write_text("respondent_id,hospital_id\n1,H01\n")
    f = only(validate_wave(study, wave_copy).errors, "readable file")[0]
    assert "patients.sav" in f.file and "cannot be read as SPSS" in f.message


def test_empty_file(study, wave_copy):
    (wave_copy / "organisations.csv").write_text("")
    f = only(validate_wave(study, wave_copy).errors, "a source has a header and rows")[0]
    assert f.file.endswith("organisations.csv") and "empty" in f.message


def test_header_without_rows(study, wave_copy):
    (wave_copy / "teams.csv").write_text("team_id,hospital_id,team_name,team_type\n")
    f = only(validate_wave(study, wave_copy).errors, "a source has a header and rows")[0]
    assert f.file.endswith("teams.csv") and "no rows" in f.message


def test_required_column_missing(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    write_sav(df.drop(columns=["PS4"]), p, meta)
    f = only(validate_wave(study, wave_copy).errors, "required column")[0]
    assert f.column == "PS4" and "required column 'PS4' is missing" in f.message


def test_misspelt_item_column(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    write_sav(df.rename(columns={"TC3": "TC_3"}), p, meta)
    errors = validate_wave(study, wave_copy).errors
    f = only(errors, "unknown column like an item")[0]
    assert f.column == "TC_3" and "misspelling of 'TC3'" in f.message
    assert only(errors, "required column")[0].column == "TC3"


def test_value_outside_range_not_a_missing_code(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    df.loc[4, "PS2"] = 12
    df.loc[9, "TC1"] = 0
    df.loc[11, "PS3"] = 9  # a declared missing code: fine
    write_sav(df, p, meta)
    found = only(validate_wave(study, wave_copy).errors, "response range")
    assert {(f.row, f.column, f.value) for f in found} == {(5, "PS2", 12.0), (10, "TC1", 0.0)}
    msg = str([f for f in found if f.column == "PS2"][0])
    assert msg == (
        f"{p}, row 5, column 'PS2', value 12.0: PS2: value outside the response range and not a "
        "missing code (psychological_safety answers run 1-7, missing codes [8, 9]) "
        "[rule: response range]"
    )


def test_non_numeric_answer_in_csv(study, wave_copy):
    df, meta = read_sav(wave_copy / "patients.sav")
    (wave_copy / "patients.sav").unlink()
    df["QS03"] = df["QS03"].astype(object)
    df.loc[2, "QS03"] = "agree"
    df.to_csv(wave_copy / "patients.csv", index=False)
    f = only(validate_wave(study, wave_copy).errors, "numeric answer")[0]
    assert (f.row, f.column, f.value) == (3, "QS03", "agree")
    assert "patients.csv" in f.file


def test_duplicate_respondent_ids(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    df.loc[7, "respondent_id"] = df.loc[3, "respondent_id"]
    write_sav(df, p, meta)
    f = only(validate_wave(study, wave_copy).errors, "unique id")[0]
    assert (f.row, f.column, f.value) == (8, "respondent_id", df.loc[3, "respondent_id"])
    assert "duplicate respondent_id" in f.message


def test_team_not_in_register(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    df.loc[0, "team_id"] = "T99"
    write_sav(df, p, meta)
    f = only(validate_wave(study, wave_copy).errors, "team in register")[0]
    assert (f.row, f.column, f.value) == (1, "team_id", "T99")
    assert "team T99 is not in the team register" in f.message


def test_team_registered_under_another_hospital(study, wave_copy):
    teams = pd.read_csv(wave_copy / "teams.csv", dtype=str)
    counts = teams.groupby("hospital_id").size()
    small_h, big_h = counts.idxmin(), counts.idxmax()
    extra = sorted(
        set(teams.loc[teams.hospital_id == big_h, "team_id"])
        - set(teams.loc[teams.hospital_id == small_h, "team_id"])
    )[0]
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    row = df.index[df.hospital_id == small_h][0]
    df.loc[row, "team_id"] = extra
    write_sav(df, p, meta)
    f = only(validate_wave(study, wave_copy).errors, "team registered under another hospital")[0]
    assert (f.row, f.column, f.value) == (row + 1, "team_id", extra)
    assert f"team {extra} of hospital {small_h}" in f.message
    owners = sorted(teams.loc[teams.team_id == extra, "hospital_id"])
    assert f"registered under {len(owners)} other hospitals: {owners[0]}" in f.message


def test_hospital_not_in_register(study, wave_copy):
    p = wave_copy / "patients.sav"
    df, meta = read_sav(p)
    df.loc[5, "hospital_id"] = "H77"
    write_sav(df, p, meta)
    f = only(validate_wave(study, wave_copy).errors, "hospital in register")[0]
    assert (f.row, f.column, f.value) == (6, "hospital_id", "H77")
    assert "hospital H77 is not in the hospital register" in f.message


def test_negative_count_and_zero_exposure_in_outcomes(study, wave_copy):
    p = wave_copy / "outcomes.csv"
    df = pd.read_csv(p, dtype=str)
    df.loc[1, "deaths"] = "-3"
    df.loc[2, "expected_deaths"] = "0"
    df.to_csv(p, index=False)
    errors = validate_wave(study, wave_copy).errors
    f = only(errors, "non-negative count")[0]
    assert (f.row, f.column, f.value) == (2, "deaths", -3.0)
    g = only(errors, "positive exposure")[0]
    assert (g.row, g.column) == (3, "expected_deaths")


def test_many_errors_are_counted_not_listed(study, wave_copy):
    p = wave_copy / "staff.sav"
    df, meta = read_sav(p)
    df["PS6"] = 42
    write_sav(df, p, meta)
    v = validate_wave(study, wave_copy)
    found = only(v.errors, "response range")
    assert len(found) == 20
    assert sum(f.count for f in found) == len(df)
    assert v.to_dict()["n_errors"] >= len(df)


def test_edit_distance():
    assert edit_distance("PS4", "PS4") == 0
    assert edit_distance("PS_4", "PS4") == 1
    assert edit_distance("tc3", "TC3") == 0
    assert edit_distance("QS01", "QS10") == 2
