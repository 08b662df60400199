"""Hostile and messy input (issue 8): whatever a raw file holds, validation answers with a
located finding (file, row, column, value, rule), never a traceback, and never changes the file.

Each test breaks a private copy of a small synthetic wave one way and asserts the exact line a
data manager reads (``str(finding)``). ``validate`` below also checks that every raw file is
byte-identical after validation.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from flaqum.errors import InputError
from flaqum.ingest import process_source
from flaqum.io import (
    DeclaredMissing,
    _spss_missing,
    as_id,
    classify_answers,
    numeric_values,
    read_source,
)
from flaqum.validate import MAX_PER_RULE, Finding, Validation, plural, validate_wave

ID_RULE = (
    "an id is 1-64 characters of letters, digits, '_', '.' or '-', starting with a letter or "
    "a digit"
)


def digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.is_symlink()
    }


def validate(study, wave):
    """Validate, and check that no raw file changed."""
    before = digest(wave)
    v = validate_wave(study, wave)
    assert digest(wave) == before
    json.dumps(v.to_dict(), allow_nan=False, default=str)  # strict JSON, whatever the input
    return v


def only(findings, rule):
    hits = [f for f in findings if f.rule == rule]
    assert hits, f"no finding with rule {rule!r}; got {[(f.rule, f.message) for f in findings]}"
    return hits


def none_of(findings, rule):
    assert not [f for f in findings if f.rule == rule], [str(f) for f in findings]


def read_sav(path):
    return pyreadstat.read_sav(str(path), user_missing=True)


def write_sav(df, path, missing_ranges=None):
    pyreadstat.write_sav(df, str(path), missing_ranges=missing_ranges or {})


def edit_csv(path, **cells):
    """Set cells given as column=(row_index, value) in a CSV read as text."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col, (i, value) in cells.items():
        df.loc[i, col] = value
    df.to_csv(path, index=False)
    return df


# ---------------------------------------------------------------------------------------------
# 1. Ids are a validated type


def test_hospital_id_with_shell_characters(study, wave_copy):
    p = wave_copy / "organisations.csv"
    edit_csv(p, hospital_id=(0, "H30$(touch PWNED)"))
    f = only(validate(study, wave_copy).errors, "id alphabet")
    assert [str(x) for x in f] == [
        f"{p}, row 1, column 'hospital_id', value 'H30$(touch PWNED)': hospital_id contains "
        f"characters not allowed in an id (' ', '$', '(', ')'); {ID_RULE} [rule: id alphabet]"
    ]
    assert not (wave_copy / "PWNED").exists()


def test_team_id_with_path_traversal(study, wave_copy):
    p = wave_copy / "teams.csv"
    edit_csv(p, team_id=(2, "../../../PWNED_TRAVERSAL"))
    f = only(validate(study, wave_copy).errors, "id alphabet")[0]
    assert str(f) == (
        f"{p}, row 3, column 'team_id', value '../../../PWNED_TRAVERSAL': team_id contains "
        f"characters not allowed in an id ('/'); {ID_RULE} [rule: id alphabet]"
    )


def test_reserved_hidden_and_long_ids(study, wave_copy):
    p = wave_copy / "organisations.csv"
    edit_csv(p, hospital_id=(0, "Consortium"))
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    df.loc[1, "respondent_id"] = ".hidden"
    df.loc[2, "respondent_id"] = "R" * 65
    write_sav(df, s, {c: [8, 9] for c in df.columns if c[:2] in ("PS", "TC", "QS")})
    got = {
        (f.file, f.row, f.column): str(f)
        for f in only(validate(study, wave_copy).errors, "id alphabet")
    }
    assert got[(str(p), 1, "hospital_id")] == (
        f"{p}, row 1, column 'hospital_id', value 'Consortium': hospital_id 'Consortium' is a "
        "name the pipeline uses for its own files (consortium, research); choose another id "
        "[rule: id alphabet]"
    )
    assert got[(str(s), 2, "respondent_id")] == (
        f"{s}, row 2, column 'respondent_id', value '.hidden': respondent_id must start with a "
        f"letter or a digit; {ID_RULE} [rule: id alphabet]"
    )
    assert got[(str(s), 3, "respondent_id")] == (
        f"{s}, row 3, column 'respondent_id', value '{'R' * 65}': respondent_id is 65 "
        "characters long; at most 64 are allowed [rule: id alphabet]"
    )


def test_ids_unique_ignoring_case_in_registers(study, wave_copy):
    p = wave_copy / "organisations.csv"
    orgs = pd.read_csv(p, dtype=str)
    orgs = pd.concat([orgs, orgs.iloc[[0]].assign(hospital_id=orgs.hospital_id[0].lower())])
    orgs.to_csv(p, index=False)
    t = wave_copy / "teams.csv"
    teams = pd.read_csv(t, dtype=str)
    other = teams.hospital_id[teams.hospital_id != teams.hospital_id[0]].iloc[0]
    teams = pd.concat(
        [
            teams,
            teams.iloc[[1]].assign(team_id=teams.team_id[1].lower()),
            # the same id in two cases under two hospitals: no clash, no finding
            teams.iloc[[0, 0]].assign(
                team_id=["T99", "t99"], hospital_id=[teams.hospital_id[0], other]
            ),
        ]
    )
    teams.to_csv(t, index=False)
    errors = validate(study, wave_copy).errors
    h, n = orgs.hospital_id.iloc[0], len(orgs)
    tid, m = teams.team_id.iloc[1], len(teams) - 2
    assert [str(f) for f in only(errors, "ids unique ignoring case")] == [
        f"{p}, row {n}, column 'hospital_id', value '{h.lower()}': hospital_id "
        f"'{h.lower()}' differs only in letter case from '{h}' in row 1; ids must be unique "
        "ignoring case, because they name files and on Windows and macOS 'H1' and 'h1' are the "
        "same file [rule: ids unique ignoring case]",
        f"{t}, row {m}, column 'team_id', value '{tid.lower()}': team_id '{tid.lower()}' "
        f"differs only in letter case from '{tid}' in row 2; ids must be unique ignoring case, "
        "because they name files and on Windows and macOS 'H1' and 'h1' are the same file "
        "[rule: ids unique ignoring case]",
    ]


def test_wave_folder_name_is_an_id(study, wave_copy, tmp_path):
    bad = tmp_path / "raw" / "2024 1;rm"
    shutil.copytree(wave_copy, bad)
    f = only(validate(study, bad).errors, "id alphabet")[0]
    assert str(f) == (
        f"{bad}, value '2024 1;rm': the wave's folder name contains characters not allowed in "
        f"an id (' ', ';'); {ID_RULE} [rule: id alphabet]"
    )


def test_empty_id_is_reported_once_per_row(study, wave_copy):
    # maturity's id and hospital column are the same column: one finding, not two
    p = wave_copy / "maturity.csv"
    edit_csv(p, hospital_id=(1, ""))
    f = only(validate(study, wave_copy).errors, "id present")
    assert [str(x) for x in f] == [
        f"{p}, row 2, column 'hospital_id': hospital_id is empty [rule: id present]"
    ]


# ---------------------------------------------------------------------------------------------
# 2. The hospitals of the wave, for the DAG


def test_summary_lists_the_valid_hospitals(study, wave_copy):
    orgs = pd.read_csv(wave_copy / "organisations.csv", dtype=str)
    v = validate(study, wave_copy)
    assert v.to_dict()["summary"]["hospitals"] == sorted(orgs.hospital_id)
    edit_csv(wave_copy / "organisations.csv", hospital_id=(0, "../x"))
    v = validate(study, wave_copy)
    assert v.summary["hospitals"] == sorted(orgs.hospital_id[1:])
    assert all(isinstance(h, str) for h in v.summary["hospitals"])


def test_summary_hospitals_is_empty_when_the_register_is_unreadable(study, wave_copy):
    (wave_copy / "organisations.csv").write_text("")
    v = validate(study, wave_copy)
    assert v.status == "fail" and v.to_dict()["summary"]["hospitals"] == []


# ---------------------------------------------------------------------------------------------
# 3. SPSS user-missing values: the codebook decides


def test_missing_range_to_highest(study, wave_copy):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    df.loc[[0, 4, 9], "PS4"] = 98
    write_sav(df, s, {"PS4": [{"lo": 98, "hi": float("inf")}]})
    _, meta = read_sav(s)
    assert meta.missing_ranges["PS4"] == [{"lo": 98.0, "hi": float("inf")}]
    v = validate(study, wave_copy)
    assert v.status == "pass", v.text()
    f = only(v.warnings, "missing code not in the codebook")
    assert [str(x) for x in f] == [
        f"{s}, column 'PS4', value '98': PS4: 3 answers with code 98, which the file declares "
        "missing (98 THRU HIGHEST) and the codebook does not list (missing codes [8, 9]), are "
        "treated as missing; add 98 to response.missing_codes in psychological_safety.yaml to "
        "make this explicit [rule: missing code not in the codebook]"
    ]
    assert (f[0].count, f[0].unit) == (3, "answer")
    out, labels = process_source(study, "staff", *read_source(s))
    assert out["PS4"].iloc[[0, 4, 9]].isna().all()
    assert labels["user_missing_ranges"] == {"PS4": [[98.0, "HIGHEST"]]}


def test_missing_code_inside_the_response_range_is_kept(study, wave_copy):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    n7 = int((df["PS2"] == 7).sum())
    assert n7 > 1
    write_sav(df, s, {"PS2": [7, 8, 9]})
    v = validate(study, wave_copy)
    assert v.status == "pass"
    f = only(v.warnings, "file's missing codes differ from the codebook")
    assert [str(x) for x in f] == [
        f"{s}, column 'PS2', value '7, 8, 9': PS2: the file declares 7, 8, 9 as missing, but 7 "
        "lies inside the response range 1-7 of psychological_safety. The codebook's range was "
        f"kept: {n7} answers with this value count as valid; if they are not answers, set them "
        "to missing in the file [rule: file's missing codes differ from the codebook]"
    ]
    assert (f[0].count, f[0].unit) == (n7, "answer")
    out, _ = process_source(study, "staff", *read_source(s))
    assert int((out["PS2"] == 7).sum()) == n7  # validation and ingest agree: kept


def test_spss_highest_as_the_largest_double_is_not_enumerated():
    class Meta:
        missing_ranges = {
            "a": [{"lo": 98.0, "hi": np.finfo(float).max}, {"lo": 8.0, "hi": 8.0}],
            "b": [{"lo": -np.finfo(float).max, "hi": 0.0}],
            "s": [{"lo": "x", "hi": "x"}],
        }
        missing_user_values = {}

    got = _spss_missing(Meta)
    assert got == {
        "a": DeclaredMissing((8.0,), ((98.0, np.inf),)),
        "b": DeclaredMissing((), ((-np.inf, 0.0),)),
    }
    assert got["a"].describe() == "8, 98 THRU HIGHEST"
    assert got["b"].describe() == "LOWEST THRU 0"
    x = np.array([1, 7, 8, 9, 98, 1e300, np.nan, np.inf])
    a = classify_answers(x, 1, 7, [9], got["a"])
    assert a.valid.tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert a.missing_code.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    assert a.extra_declared.tolist() == [0, 0, 1, 0, 1, 1, 0, 0]
    assert a.not_finite.tolist() == [0, 0, 0, 0, 0, 0, 0, 1]


# ---------------------------------------------------------------------------------------------
# 4. Non-finite or absurd numbers


def test_non_finite_and_absurd_numbers_in_outcomes(study, wave_copy):
    p = wave_copy / "outcomes.csv"
    edit_csv(
        p,
        deaths=(0, "inf"),
        admissions=(1, "nan"),
        patient_days=(2, "1e308"),
        bed_occupancy_pct=(3, "-Infinity"),
    )
    errors = validate(study, wave_copy).errors
    assert sorted(str(f) for f in only(errors, "finite number")) == [
        f"{p}, row 1, column 'deaths', value 'inf': deaths must be a finite number "
        "[rule: finite number]",
        f"{p}, row 2, column 'admissions', value 'nan': admissions must be a finite number "
        "[rule: finite number]",
        f"{p}, row 4, column 'bed_occupancy_pct', value '-Infinity': bed_occupancy_pct must be "
        "a finite number [rule: finite number]",
    ]
    assert [str(f) for f in only(errors, "plausible magnitude")] == [
        f"{p}, row 3, column 'patient_days', value 1e+308: patient_days is implausibly large: "
        "its absolute value must be below 1e+15 [rule: plausible magnitude]"
    ]


def test_non_finite_answers_and_variables(study, wave_copy):
    m = wave_copy / "maturity.csv"
    edit_csv(m, MM01=(0, "Infinity"), MM02=(1, "NaN"))
    o = wave_copy / "organisations.csv"
    edit_csv(o, beds=(2, "1e308"))
    errors = validate(study, wave_copy).errors
    assert sorted(str(f) for f in only(errors, "finite number")) == [
        f"{m}, row 1, column 'MM01', value 'Infinity': answer to MM01 is not a finite number "
        "[rule: finite number]",
        f"{m}, row 2, column 'MM02', value 'NaN': answer to MM02 is not a finite number "
        "[rule: finite number]",
    ]
    assert [str(f) for f in only(errors, "plausible magnitude")] == [
        f"{o}, row 3, column 'beds', value 1e+308: beds is implausibly large: its absolute "
        "value must be below 1e+15 [rule: plausible magnitude]"
    ]
    none_of(errors, "response range")


def test_infinite_answer_in_sav(study, wave_copy):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    df.loc[4, "PS1"] = np.inf
    write_sav(df, s, {"PS1": [8, 9]})
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "finite number")] == [
        f"{s}, row 5, column 'PS1', value 'inf': answer to PS1 is not a finite number "
        "[rule: finite number]"
    ]
    none_of(errors, "response range")


# ---------------------------------------------------------------------------------------------
# 5. Registers and files that cannot be read


def test_empty_register(study, wave_copy):
    p = wave_copy / "organisations.csv"
    p.write_text("")
    f = only(validate(study, wave_copy).errors, "a source has a header and rows")
    assert [str(x) for x in f] == [
        f"{p}: the file is empty (0 bytes) [rule: a source has a header and rows]"
    ]


def test_xlsx_that_is_not_a_workbook(study, wave_copy):
    (wave_copy / "organisations.csv").unlink()
    p = wave_copy / "organisations.xlsx"
    p.write_text("hospital_id,hospital_name\nH01,x\n")
    f = only(validate(study, wave_copy).errors, "readable file")
    assert [str(x) for x in f] == [
        f"{p}: cannot be read as Excel (ValueError: Excel file format cannot be determined, you "
        "must specify an engine manually.); is the file truncated or of another format? "
        "[rule: readable file]"
    ]


def test_cp1252_csv_is_read_with_a_warning(study, wave_copy):
    p = wave_copy / "organisations.csv"
    df = pd.read_csv(p, dtype=str)
    df.loc[2, "hospital_name"] = "AZ Sint-Elisabeth Zoë – Zottegem"
    df.to_csv(p, index=False, encoding="cp1252")
    v = validate(study, wave_copy)
    assert v.status == "pass", v.text()
    f = only(v.warnings, "text encoding")
    assert [str(x) for x in f] == [
        f"{p}, row 3, column 'hospital_name', value 'AZ Sint-Elisabeth Zoë – Zottegem': the "
        "file is not UTF-8; it was read as Windows-1252 (cp1252), the encoding Excel uses for "
        "'CSV (Comma delimited)'. Check that names with accents read correctly, or save the "
        "file as 'CSV UTF-8 (Comma delimited)' [rule: text encoding]"
    ]
    data, meta = read_source(p)
    assert data.loc[2, "hospital_name"] == "AZ Sint-Elisabeth Zoë – Zottegem"
    assert meta.encoding == "cp1252"


def test_utf8_with_bom_reads_cleanly(study, wave_copy):
    p = wave_copy / "organisations.csv"
    df = pd.read_csv(p, dtype=str)
    df.loc[0, "hospital_name"] = "Zoë"
    df.to_csv(p, index=False, encoding="utf-8-sig")
    assert p.read_bytes().startswith(b"\xef\xbb\xbf")
    v = validate(study, wave_copy)
    assert v.status == "pass", v.text()
    none_of(v.warnings, "text encoding")
    none_of(v.warnings, "unknown column")
    assert read_source(p)[0].columns[0] == "hospital_id"


def test_text_that_is_neither_utf8_nor_cp1252(study, wave_copy):
    p = wave_copy / "organisations.csv"
    p.write_bytes(p.read_bytes().replace(b"UZ", b"U\x81Z", 1))
    f = only(validate(study, wave_copy).errors, "text encoding")
    assert [str(x) for x in f] == [
        f"{p}: the file is neither UTF-8 nor Windows-1252 (cp1252) text; save it as 'CSV UTF-8 "
        "(Comma delimited)' [rule: text encoding]"
    ]


def test_semicolon_delimited_csv(study, wave_copy):
    p = wave_copy / "organisations.csv"
    df = pd.read_csv(p, dtype=str)
    df.to_csv(p, index=False, sep=";")
    header = ";".join(df.columns)  # the register's columns, the optional *_invited included
    assert header.startswith("hospital_id;hospital_name;hospital_type;beds;region;network")
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "required column")] == [
        f"{p}: 6 required columns are missing ('hospital_id', 'hospital_name', 'hospital_type', "
        "'beds', 'region', 'network'); the header reads as 1 column "
        f"('{header}'): the file seems to use "
        "';' as delimiter; save it with ',' as delimiter (in Excel: 'CSV UTF-8 (Comma "
        "delimited)') or as .xlsx [rule: required column]"
    ]


def test_xlsx_whose_first_sheet_is_not_the_data(study, wave_copy):
    csv = wave_copy / "organisations.csv"
    df = pd.read_csv(csv, dtype=str)
    csv.unlink()
    p = wave_copy / "organisations.xlsx"
    with pd.ExcelWriter(p) as xw:
        pd.DataFrame({"Read me": ["Hospital register, 2024"]}).to_excel(
            xw, sheet_name="Info", index=False
        )
        df.to_excel(xw, sheet_name="Data", index=False)
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "required column")] == [
        f"{p}: 6 required columns are missing ('hospital_id', 'hospital_name', 'hospital_type', "
        "'beds', 'region', 'network'); the workbook has 2 sheets ('Info', 'Data') and only the "
        "first, 'Info', is read: put the data on the first sheet [rule: required column]"
    ]


def test_xlsx_register_on_its_first_sheet_passes(study, wave_copy):
    csv = wave_copy / "organisations.csv"
    df = pd.read_csv(csv, dtype=str)
    csv.unlink()
    df.to_excel(wave_copy / "organisations.xlsx", index=False)
    v = validate(study, wave_copy)
    assert v.status == "pass", v.text()
    assert v.summary["hospitals"] == sorted(df.hospital_id)


# ---------------------------------------------------------------------------------------------
# 6. Messages once


def test_input_error_keeps_its_bare_message():
    e = InputError("x.csv", "it broke", row=3, column="c", value="v", rule="r")
    assert e.message == "it broke"
    assert str(e) == "file x.csv, row 3, column 'c', value 'v': it broke [rule: r]"
    f = Finding.from_error("error", e)
    assert str(f) == "x.csv, row 3, column 'c', value 'v': it broke [rule: r]"


def test_read_error_printed_once(study, wave_copy):
    p = wave_copy / "staff.sav"
    p.write_bytes(p.read_bytes()[:500])
    f = only(validate(study, wave_copy).errors, "readable file")[0]
    line = str(f)
    assert line.startswith(f"{p}: cannot be read as SPSS (")
    assert line.endswith("is the file truncated or of another format? [rule: readable file]")
    assert line.count("[rule:") == 1 and line.count(str(p)) == 1


def test_several_files_for_one_source_printed_once(study, wave_copy):
    df, _ = read_sav(wave_copy / "staff.sav")
    df.to_csv(wave_copy / "staff.csv", index=False)
    f = only(validate(study, wave_copy).errors, "one file per source")
    assert [str(x) for x in f] == [
        f"{wave_copy}: source 'staff' is present in several files ['staff.sav', 'staff.csv']; "
        "keep exactly one [rule: one file per source]"
    ]


# ---------------------------------------------------------------------------------------------
# 7. The data manager's view


def test_text_lists_first_rows_per_rule_and_counts_the_rest(study, wave_copy, tmp_path):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    df["PS6"] = 42.0
    write_sav(df, s, {"PS6": [8, 9]})
    v = validate(study, wave_copy)
    out = tmp_path / "validation.json"
    v.write(out)
    lines = v.text(limit=2).splitlines()
    n = len(df)
    assert lines[0] == "Wave 2024-1: validation FAIL - 1 rule with errors, 4 rules with warnings"
    i = lines.index(f"  ERROR response range: {n:,} values")
    msg = (
        "PS6: value outside the response range and not a missing code (psychological_safety "
        "answers run 1-7, missing codes [8, 9]) [rule: response range]"
    )
    assert lines[i + 1 : i + 4] == [
        f"    {s}, row 1, column 'PS6', value 42.0: {msg}",
        f"    {s}, row 2, column 'PS6', value 42.0: {msg}",
        f"    ... and {n - 2:,} more values (rule response range)",
    ]
    assert lines[-1] == (
        f"All findings: {out} (it lists the first {MAX_PER_RULE} rows of each rule and column, "
        "and counts the rest)."
    )
    # the warnings are printed too, each rule with its first rows
    assert any(line.startswith("  WARNING straight-lining: ") for line in lines)
    assert any(line.startswith("  WARNING too few answers to score: ") for line in lines)
    saved = json.loads(out.read_text())
    assert len([e for e in saved["errors"] if e["rule"] == "response range"]) == MAX_PER_RULE
    assert sum(e["count"] for e in saved["errors"]) == n


def test_text_without_a_file_says_so():
    v = Validation("w")
    v.add(
        "warning",
        "unknown column",
        "column 'x' is not in the codebooks; kept as is",
        file="a.csv",
        column="x",
        unit="column",
    )
    assert v.text().splitlines() == [
        "Wave w: validation PASS - no errors, 1 rule with warnings",
        "  WARNING unknown column: 1 column",
        "    a.csv, column 'x': column 'x' is not in the codebooks; kept as is "
        "[rule: unknown column]",
        "The findings are not written to a file; add --json <file> to write them (the first "
        f"{MAX_PER_RULE} rows of each rule and column, and the count of the rest).",
    ]


def test_fractional_answer_is_not_a_whole_number(study, wave_copy):
    p = wave_copy / "maturity.csv"
    edit_csv(p, MM07=(3, "3.5"))
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "whole number")] == [
        f"{p}, row 4, column 'MM07', value 3.5: MM07: the answer is not a whole number "
        "(maturity_matrix answers run 1-5, missing codes [9]) [rule: whole number]"
    ]
    none_of(errors, "response range")


def test_too_few_answers_counts_respondents(study, wave_copy):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    global_items = list(study.scale("qs_prof_global").items)
    k = len(global_items)
    df.loc[:, global_items] = 4.0
    df.loc[[0], global_items[1:]] = np.nan  # one respondent answers 1 of the k items
    ps = list(study.scale("psych_safety").items)
    df.loc[:, ps] = 4.0
    df.loc[[1, 2], ps[:4]] = np.nan  # two answer 3 of 7
    write_sav(df, s, {c: [8, 9] for c in [*global_items, *ps]})
    v = validate(study, wave_copy)
    few = {f.column: f for f in only(v.warnings, "too few answers to score")}
    g, p = few["qs_prof_global"], few["psych_safety"]
    assert g.message == (
        f"1 respondent answered 1 of the {k} items of qs_prof_global (min_items 2): no "
        "qs_prof_global score for this respondent"
    )
    assert p.message == (
        "2 respondents answered fewer than 5 of the 7 items of psych_safety (min_items 5): no "
        "psych_safety score for them"
    )
    assert (g.count, g.unit, p.count, p.unit) == (1, "respondent", 2, "respondent")
    text = v.text()
    assert "1 respondents" not in text and "1-1" not in text


def test_plural():
    assert plural(1, "respondent") == "1 respondent"
    assert plural(2, "respondent") == "2 respondents"
    assert plural(1191, "answer") == "1,191 answers"
    assert plural(0, "value") == "0 values"
    assert plural(3, "more team") == "3 more teams"
    assert plural(2, "match") == "2 matches"
    assert plural(2, "category") == "2 categories"


def test_cli_validate_prints_findings(study, wave_copy, tmp_path, monkeypatch, capsys):
    from conftest import DEMO

    from flaqum.cli import main

    edit_csv(wave_copy / "maturity.csv", MM07=(3, "3.5"))
    out = tmp_path / "v.json"
    monkeypatch.chdir(DEMO)  # its config/config.yaml: the demo as the tests know it
    assert main(["validate", str(wave_copy), "--json", str(out), "--limit", "1"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Wave 2024-1: validation FAIL - 1 rule with errors, 3 rules with warnings"
    assert printed[1:3] == [
        "  ERROR whole number: 1 value",
        f"    {wave_copy / 'maturity.csv'}, row 4, column 'MM07', value 3.5: MM07: the answer is "
        "not a whole number (maturity_matrix answers run 1-5, missing codes [9]) "
        "[rule: whole number]",
    ]
    assert any(line.startswith("  WARNING straight-lining: ") for line in printed)
    assert any(
        line.startswith("    ... and ") and "(rule straight-lining)" in line for line in printed
    )
    assert printed[-1].startswith(f"All findings: {out} ")
    assert json.loads(out.read_text())["status"] == "fail"


# ---------------------------------------------------------------------------------------------
# 8. Raw values that used to crash validation


def test_duplicate_column_names(study, wave_copy):
    p = wave_copy / "teams.csv"
    lines = p.read_text().splitlines()
    lines[0] = lines[0].replace("team_name", "team_id")
    p.write_text("\n".join(lines) + "\n")
    f = only(validate(study, wave_copy).errors, "unique column names")
    assert [str(x) for x in f] == [
        f"{p}, column 'team_id': the header names column 'team_id' twice (columns 1 and 3); "
        "give every column its own name [rule: unique column names]"
    ]


def test_duplicate_column_names_in_xlsx(study, wave_copy):
    csv = wave_copy / "organisations.csv"
    df = pd.read_csv(csv, dtype=str)
    csv.unlink()
    p = wave_copy / "organisations.xlsx"
    df.to_excel(p, index=False)
    book = openpyxl.load_workbook(p)
    sheet = book.active
    sheet.cell(row=1, column=len(df.columns) + 2, value="beds")  # after a blank header cell
    book.save(p)
    f = only(validate(study, wave_copy).errors, "unique column names")
    assert [str(x) for x in f] == [
        f"{p}, column 'beds': the header names column 'beds' twice (columns 4 and "
        f"{len(df.columns) + 2}); give every column its own name [rule: unique column names]"
    ]


def test_number_as_column_name_in_xlsx(study, wave_copy):
    csv = wave_copy / "organisations.csv"
    df = pd.read_csv(csv, dtype=str)
    csv.unlink()
    p = wave_copy / "organisations.xlsx"
    df.to_excel(p, index=False)
    book = openpyxl.load_workbook(p)
    book.active.cell(row=1, column=len(df.columns) + 1, value=2024)
    book.save(p)
    v = validate(study, wave_copy)
    assert v.status == "pass", v.text()
    assert [str(f) for f in only(v.warnings, "unknown column")] == [
        f"{p}, column '2024': column '2024' is not in the codebooks; kept as is "
        "[rule: unknown column]"
    ]


def test_all_empty_columns(study, wave_copy):
    p = wave_copy / "outcomes.csv"
    df = pd.read_csv(p, dtype=str)
    df["deaths"] = ""
    df.to_csv(p, index=False)
    m = wave_copy / "maturity.csv"
    mat = pd.read_csv(m, dtype=str)
    mat["hospital_id"] = ""
    mat.to_csv(m, index=False)
    errors = validate(study, wave_copy).errors
    assert not [f for f in errors if f.file == str(p)]
    f = only(errors, "id present")
    assert [(x.file, x.row) for x in f] == [(str(m), r + 1) for r in range(len(mat))]


def test_mixed_types_in_an_id_column():
    ids = as_id(pd.Series([1, "1.0", 2.0, " H3 ", None, np.nan, "", "0042", 7.5], dtype=object))
    assert ids.tolist()[:4] == ["1", "1.0", "2", "H3"]
    assert ids.isna().tolist() == [False] * 4 + [True] * 3 + [False] * 2
    assert ids.tolist()[7:] == ["0042", "7.5"]
    assert as_id(pd.Series([1.0, 42.0, np.nan])).tolist()[:2] == ["1", "42"]


def test_mixed_types_in_an_xlsx_register(study, wave_copy):
    csv = wave_copy / "organisations.csv"
    df = pd.read_csv(csv, dtype=str)
    csv.unlink()
    p = wave_copy / "organisations.xlsx"
    df.to_excel(p, index=False)
    book = openpyxl.load_workbook(p)
    book.active.cell(row=2, column=1, value=1)  # a number among text ids
    book.active.cell(row=3, column=1, value="1.0")
    book.save(p)
    v = validate(study, wave_copy)
    assert v.summary["hospitals"] == sorted(["1", "1.0", *df.hospital_id[2:]])
    assert v.status == "fail"  # the staff and patients files name hospitals no longer registered
    only(v.errors, "hospital in register")


def test_string_item_column_in_sav(study, wave_copy):
    s = wave_copy / "staff.sav"
    df, _ = read_sav(s)
    df["PS1"] = ["" if np.isnan(x) else str(int(x)) for x in df["PS1"]]
    df.loc[6, "PS1"] = "agree"
    write_sav(df, s)
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "numeric answer")] == [
        f"{s}, row 7, column 'PS1', value 'agree': answer to PS1 is not a number "
        "[rule: numeric answer]"
    ]
    n = numeric_values(pd.Series(["", "  ", "3", "x"]))
    assert n.not_a_number.tolist() == [False, False, False, True]


def test_team_register_row_without_hospital(study, wave_copy):
    p = wave_copy / "teams.csv"
    edit_csv(p, hospital_id=(0, ""))
    errors = validate(study, wave_copy).errors
    assert [str(f) for f in only(errors, "id present")] == [
        f"{p}, row 1, column 'hospital_id': hospital_id is empty [rule: id present]"
    ]


def test_broken_link_in_the_wave_folder(study, wave_copy):
    p = wave_copy / "outcomes.csv"
    p.unlink()
    p.symlink_to(wave_copy / "does-not-exist.csv")
    f = only(validate(study, wave_copy).errors, "readable file")
    assert [str(x) for x in f] == [
        f"{p}: the file cannot be opened (No such file or directory) [rule: readable file]"
    ]


def test_rows_with_more_fields_than_the_header(study, wave_copy):
    # a delimiter at the end of every data row: pandas would shift every value one column
    p = wave_copy / "organisations.csv"
    lines = p.read_text().splitlines()
    n = len(lines[0].split(","))
    p.write_text("\n".join([lines[0]] + [line + "," for line in lines[1:]]) + "\n")
    f = only(validate(study, wave_copy).errors, "fields match the header")
    assert [str(x) for x in f] == [
        f"{p}, row 1: the first row has {n + 1} fields but the header names {n} columns, so "
        "the values would shift to other columns; remove the delimiter at the end of the rows, "
        "or name every column in the header [rule: fields match the header]"
    ]


@pytest.mark.parametrize(
    "content",
    [b"\n\n", b"a,b\n1,2,3,4\n1\n", b"\x00\x00\x00", b'"unterminated\n1,2\n'],
    ids=["blank-lines", "ragged", "nul-bytes", "open-quote"],
)
def test_garbage_csv_is_a_finding(study, wave_copy, content):
    p = wave_copy / "organisations.csv"
    p.write_bytes(content)
    v = validate(study, wave_copy)
    assert v.status == "fail"
    assert [f for f in v.errors if f.file == str(p)]
    assert v.summary["hospitals"] == []
