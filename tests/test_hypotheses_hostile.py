"""Hostile and messy input to the outcome hypotheses: every case ends in a located message or a
result that says why it has no numbers, never a traceback or a silent blank.

1. Hypothesis files are checked against the study before any job runs
   (:func:`flaqum.hypotheses.check_hypotheses`): all problems at once, each naming the file, the
   key, the value and the rule, with "did you mean" for a near miss.
2. Values no model can take (missing, constant, text, inf, 1e308, negative counts) give
   ``status: not_fitted`` with the reason, ``n`` 0, and a summary row that says so; the
   Benjamini-Hochberg family states its size (``n_tested``).
3. A numerical failure of the fit is a reason; a programming error propagates.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from test_outcomes import hyp, shipped, simulate_wave

import flaqum
from flaqum import outcomes
from flaqum.config import load_study
from flaqum.errors import ConfigError, InputError
from flaqum.hypotheses import (
    assemble_data,
    canonical_ids,
    check_hypotheses,
    hypothesis_problems,
    load_hypothesis,
    read_inputs,
    study_names,
)
from flaqum.outcomes import (
    fit_hypothesis,
    not_applicable_result,
    result_to_json,
    run_hypothesis,
    summarise,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "fixtures" / "demo_study"  # the demo as the tests know it
HYPOTHESES = DEMO / "config" / "hypotheses"

GOOD = """id: {id}
description: x
level: hospital
family: poisson
outcome: {{source: outcomes, column: deaths, exposure: expected_deaths}}
predictors: [team_collab]
"""


def write(folder: Path, name: str, text: str) -> Path:
    p = folder / f"{name}.yaml"
    p.write_text(text)
    return p


def good(folder: Path, name: str, **replace: str) -> Path:
    text = GOOD.format(id=name)
    for old, new in replace.items():
        text = text.replace(old, new)
    return write(folder, name, text)


def problems_of(study, path) -> str:
    with pytest.raises(ConfigError) as exc:
        check_hypotheses(study, [path])
    return str(exc.value)


# ------------------------------------------------------------------------------------------
# 1. Checked against the study before any job runs
# ------------------------------------------------------------------------------------------


def test_demo_hypotheses_pass_the_study_check(study):
    check_hypotheses(study, sorted(HYPOTHESES.glob("*.yaml")))
    check_hypotheses(study, [])  # no hypotheses: nothing to check


def test_typo_in_a_predictor_is_caught_with_did_you_mean(study, tmp_path):
    p = write(
        tmp_path,
        "typo",
        (HYPOTHESES / "prof_quickscan_patient_quickscan.yaml")
        .read_text()
        .replace("id: prof_quickscan_patient_quickscan", "id: typo")
        .replace("predictors: [qs_prof_total]", "predictors: [qs_pat_totl]"),
    )
    msg = problems_of(study, p)
    assert msg.startswith("1 problem(s) in 1 outcome hypothesis file(s); no job was started")
    assert f"{p}: at predictors: 'qs_pat_totl' is not a scale" in msg
    assert "did you mean 'qs_pat_total'?" in msg
    assert "rule: at hospital level a predictor or covariate is a survey scale id" in msg


def test_every_problem_of_every_file_is_listed_at_once(study, tmp_path):
    a = good(
        tmp_path,
        "a",
        **{"[team_collab]": "[team_colab, mm_totl]", "column: deaths": "column: death"},
    )
    b = good(tmp_path, "b", **{"id: b": "id: not_b", "poisson": "poison"})  # schema error
    c = good(tmp_path, "c", **{"exposure: expected_deaths": "exposure: expected_death"})
    with pytest.raises(ConfigError) as exc:
        check_hypotheses(study, [c, b, a])
    msg = str(exc.value)
    assert msg.startswith("5 problem(s) in 3 outcome hypothesis file(s)")
    lines = msg.splitlines()
    assert any(f"{a}: at predictors: 'team_colab'" in x and "'team_collab'?" in x for x in lines)
    assert any(f"{a}: at predictors: 'mm_totl'" in x and "'mm_total'?" in x for x in lines)
    assert any(
        f"{a}: at outcome/column: 'death' is not a column declared under sources.outcomes.columns"
        in x
        and "'deaths'?" in x
        for x in lines
    )
    assert any(f"{b} breaks the hypothesis schema" in x for x in lines)
    assert "at family: 'poison' is not one of" in msg
    assert any(
        f"{c}: at outcome/exposure: 'expected_death' is not a column declared under "
        "sources.outcomes or sources.organisations in the config"
        in x
        and "'expected_deaths'?" in x
        for x in lines
    )
    assert msg.index(str(a)) < msg.index(str(b)) < msg.index(str(c))  # files in name order


def test_a_file_that_is_not_utf8_is_located(study, tmp_path):
    p = tmp_path / "latin.yaml"
    p.write_bytes(
        GOOD.format(id="latin").replace("description: x", "description: caf\xe9").encode("cp1252")
    )
    msg = problems_of(study, p)
    assert f"{p}: not UTF-8 text (byte b'\\xe9' at position" in msg
    with pytest.raises(ConfigError, match="save the file as UTF-8"):
        load_hypothesis(p)


def test_rules_beyond_the_schema_are_all_reported(study, tmp_path):
    p = good(tmp_path, "many", **{"id: many": "id: other", "level: hospital": "level: team"})
    found = hypothesis_problems(study, p)
    assert f"{p}: at id: 'other' must equal the file name 'many'" in found
    assert any(f"{p}: at outcome/source: 'outcomes' are hospital outcomes" in x for x in found)


@pytest.mark.parametrize(
    "name, why",
    [
        ("consortium", "a name the pipeline uses for its own files"),
        ("h" * 65, "is too long (schema rule: maxLength)"),
    ],
)
def test_hypothesis_id_is_a_valid_id(study, tmp_path, name, why):
    p = good(tmp_path, name)
    msg = problems_of(study, p)
    assert str(p) in msg and "at id: " in msg and why in msg


def test_columns_the_hypotheses_do_not_read_are_named_as_such(study, tmp_path):
    p = good(
        tmp_path,
        "where",
        **{
            "[team_collab]": "[team_collab, profession]",
            "predictors": "covariates: [team_type]\npredictors",
        },
    )
    msg = problems_of(study, p)
    assert "'profession' is a respondent column of source 'staff'" in msg
    assert "at covariates: 'team_type'" in msg
    assert "'team_type' is a register column of source 'teams'" in msg


def test_a_register_column_must_be_declared(study, tmp_path):
    """The assembly would take any column of the organisations file, but only declared
    columns (config ``columns`` or a codebook's ``variables``) are required by validation in
    every wave: an undeclared one is refused here."""
    p = good(tmp_path, "floors", **{"[team_collab]": "[team_collab, floors]"})
    msg = problems_of(study, p)
    assert f"{p}: at predictors: 'floors' is not a scale, a maturity score or a declared" in msg
    assert "sources.organisations" in msg
    cfg = copy.deepcopy(study.config)
    cfg["sources"]["organisations"]["columns"] = {"floors": "integer"}
    declared = load_study(cfg, root=DEMO)
    check_hypotheses(declared, [p])


def test_codebook_variables_of_a_register_are_declared(study, tmp_path):
    """hospital_type and beds are variables of the organisations codebook: accepted."""
    p = good(tmp_path, "ctx", **{"[team_collab]": "[team_collab, beds, hospital_type]"})
    check_hypotheses(study, [p])


def test_levels_follow_the_assembly(study, tmp_path):
    """At team level a hospital's score or outcome joins its teams (cross-level) and
    'hospital:' takes a scale's hospital mean; at hospital level a team outcome is unknown."""
    text = (HYPOTHESES / "psych_safety_incident_reporting.yaml").read_text()
    ok = write(
        tmp_path,
        "cross",
        text.replace("id: psych_safety_incident_reporting", "id: cross").replace(
            "[psych_safety]", "['hospital:team_collab', mm_total, expected_deaths]"
        ),
    )
    check_hypotheses(study, [ok])
    bad = good(tmp_path, "teamcol", **{"[team_collab]": "[team_collab, 'hospital:patient_dayz']"})
    msg = problems_of(study, bad)
    assert "'hospital:patient_dayz'" in msg and "did you mean 'hospital:patient_days'?" in msg
    team_only = write(
        tmp_path,
        "team_only",
        GOOD.format(id="team_only")
        .replace(
            "outcome: {source: outcomes, column: deaths, exposure: expected_deaths}",
            "outcome: {source: scale, column: qs_pat_total, scores: raw}",
        )
        .replace("family: poisson", "family: gaussian")
        .replace("level: hospital", "level: team"),
    )
    check_hypotheses(study, [team_only])  # patients are surveyed in teams


def test_outcome_source_must_be_declared(study, tmp_path):
    cfg = copy.deepcopy(study.config)
    del cfg["sources"]["outcomes"]
    no_outcomes = load_study(cfg, root=DEMO)
    p = good(tmp_path, "nosrc")
    msg = problems_of(no_outcomes, p)
    assert f"{p}: at outcome/source: 'outcomes' is not a source declared in the config" in msg


def test_scale_outcome_typo(study, tmp_path):
    p = write(
        tmp_path,
        "scaletypo",
        (HYPOTHESES / "maturity_psych_safety.yaml")
        .read_text()
        .replace("id: maturity_psych_safety", "id: scaletypo")
        .replace("column: psych_safety", "column: psych_safty"),
    )
    msg = problems_of(study, p)
    assert f"{p}: at outcome/column: 'psych_safty'" in msg and "'psych_safety'?" in msg


def test_accepted_names_resolve_in_the_assembly(study):
    """What the check accepts, the assembly finds (for the columns the simulated wave has)."""
    w = simulate_wave(n_hosp=12, teams_per=3)
    names = study_names(study)
    cols = {c for k in ("maturity", "outcomes") for c in w[k].columns}
    hospital = [
        n
        for n in sorted(names["survey_scales"] | names["maturity"] | names["outcomes"])
        if n in cols or n in set(w["hospitals"]["scale"])
    ]
    assert {"team_collab", "mm_total", "expected_deaths"} <= set(hospital)
    for level, outcome in (
        ("hospital", {"source": "outcomes", "column": "admissions"}),
        ("team", {"source": "team_outcomes", "column": "patient_days"}),
    ):
        for name in hospital:
            if name == outcome["column"]:
                continue
            h = hyp(level=level, outcome=outcome, predictors=[name], family="poisson")
            assert name in assemble_data(h, w).columns


# ------------------------------------------------------------------------------------------
# 2. Values no model can take: not fitted, with the reason
# ------------------------------------------------------------------------------------------


def _not_fitted(r, *needles):
    assert r["status"] == "not_fitted", r["reason"]
    assert r["n"] == 0
    for needle in needles:
        assert needle in r["reason"], r["reason"]
    assert r["reason"] in r["diagnostics"]["warnings"]
    assert all(e["estimate"] is None and e["p"] is None for e in r["estimates"])
    assert r["plausible_values"] is None
    json.loads(result_to_json(r))  # strict JSON
    return r


def _as_float(w, table, col):
    w[table][col] = w[table][col].astype(float)
    return w


def test_all_missing_outcome():
    w = _as_float(simulate_wave(seed=2), "outcomes", "deaths")
    w["outcomes"]["deaths"] = np.nan
    r = _not_fitted(
        run_hypothesis(shipped("climate_mortality"), w, "w1"),
        "too few rows to fit: 0 complete rows",
        "of 30 hospitals, missing: deaths in 30",
    )
    assert r["diagnostics"]["n_rows"] == 30 and r["diagnostics"]["n_complete"] == 0


def test_constant_outcome():
    w = simulate_wave(seed=2)
    w["hospitals"].loc[w["hospitals"].scale == "qs_pat_total", "raw_mean"] = 4.0
    _not_fitted(
        run_hypothesis(shipped("prof_quickscan_patient_quickscan"), w, "w1"),
        "the outcome qs_pat_total has the same value (4) in all 30 hospitals",
    )


@pytest.mark.parametrize(
    "value, what",
    [
        (np.inf, "a non-finite value, e.g. inf"),
        (-np.inf, "a non-finite value, e.g. -inf"),
        (1e308, "a value too large to model, e.g. 1e+308"),
    ],
)
@pytest.mark.parametrize(
    "column, role",
    [("deaths", "outcome"), ("team_collab", "predictor"), ("expected_deaths", "exposure")],
)
def test_non_finite_or_absurd_value_in_the_assembled_frame(value, what, column, role):
    w = simulate_wave(seed=2)
    h = shipped("climate_mortality")
    data = assemble_data(h, w, "w1")
    data[column] = data[column].astype(float)
    data.loc[3, column] = value
    r = _not_fitted(
        fit_hypothesis(h, data, "w1"), f"{role} {column!r} has {what} for hospital_id '0004'"
    )
    assert r["diagnostics"]["converged"] is False


def test_several_bad_values_are_counted_and_every_column_named():
    w = simulate_wave(seed=2)
    h = shipped("climate_mortality")
    data = assemble_data(h, w, "w1")
    data["deaths"] = data["deaths"].astype(float)
    data.loc[[1, 5], "deaths"] = np.inf
    data.loc[7, "team_collab"] = -1e200
    _not_fitted(
        fit_hypothesis(h, data, "w1"),
        "outcome 'deaths' has 2 non-finite values",
        "predictor 'team_collab' has a value too large to model, e.g. -1e+200",
    )


def test_text_and_negative_counts_in_the_outcome():
    w = simulate_wave(seed=2)
    h = shipped("climate_mortality")
    data = assemble_data(h, w, "w1")
    data["deaths"] = data["deaths"].astype(object)
    data.loc[0, "deaths"] = "n/a"
    _not_fitted(
        fit_hypothesis(h, data, "w1"),
        "outcome 'deaths' has a non-numeric value, e.g. 'n/a' for hospital_id '0001'",
    )
    data = assemble_data(h, w, "w1")
    data.loc[2, "deaths"] = -3
    _not_fitted(
        fit_hypothesis(h, data, "w1"),
        "outcome 'deaths' has a negative value, e.g. -3",
        "a count is 0 or more",
    )


def test_non_finite_standard_error_of_a_score():
    w = simulate_wave(seed=2)
    sel = w["hospitals"].index[w["hospitals"].scale == "team_collab"][4]
    w["hospitals"].loc[sel, "eb_se"] = np.inf
    _not_fitted(
        run_hypothesis(shipped("climate_mortality"), w, "w1"),
        "standard error 'team_collab__se' has a non-finite or too large value, e.g. "
        "inf for hospital_id '0005'",
    )


def test_team_level_names_the_team():
    w = simulate_wave(seed=2, n_hosp=10, teams_per=3)
    w["team_outcomes"]["patient_days"] = w["team_outcomes"]["patient_days"].astype(float)
    w["team_outcomes"].loc[4, "patient_days"] = np.inf
    _not_fitted(
        run_hypothesis(shipped("psych_safety_incident_reporting"), w, "w1"),
        "exposure 'patient_days' has a non-finite value, e.g. inf for hospital_id "
        "'0002', team_id 'T01'",
    )


def test_counts_without_events_and_binomial_without_failures():
    w = simulate_wave(seed=2)
    w["outcomes"]["deaths"] = 0
    _not_fitted(
        run_hypothesis(shipped("climate_mortality"), w, "w1"),
        "the outcome deaths is 0 in all 30 hospitals",
        "no events",
    )
    w = simulate_wave(seed=2)
    w["outcomes"]["readmissions"] = w["outcomes"]["admissions"]
    h = hyp(
        family="binomial",
        outcome={"source": "outcomes", "column": "readmissions", "exposure": "admissions"},
        predictors=["team_collab"],
    )
    _not_fitted(run_hypothesis(h, w), "equals its trials in all 30 hospitals")


def test_constant_predictor_is_named():
    w = simulate_wave(seed=2)
    w["hospitals"].loc[w["hospitals"].scale == "team_collab", "eb_mean"] = 4.0
    _not_fitted(
        run_hypothesis(shipped("climate_mortality"), w, "w1"),
        "rank deficient",
        "team_collab is constant in the 30 complete rows",
    )


def test_zero_standard_error_has_no_test(monkeypatch):
    """A fit whose standard errors are 0 (an outcome reproduced exactly) gives no p-value: not
    fitted, rather than a row that silently leaves the q-value family."""
    real = outcomes._fit_family

    def exact(*args, **kwargs):
        out = real(*args, **kwargs)
        return {**out, "cov": np.zeros_like(np.asarray(out["cov"], float))}

    monkeypatch.setattr(outcomes, "_fit_family", exact)
    _not_fitted(
        run_hypothesis(shipped("prof_quickscan_patient_quickscan"), simulate_wave(), "w1"),
        "no standard error for qs_prof_total",
    )


def test_summary_states_status_reason_and_the_size_of_the_bh_family():
    w = simulate_wave(seed=5)
    good_results = [
        run_hypothesis(shipped(n), w, "w1")
        for n in ("climate_mortality", "psych_safety_incident_reporting")
    ]
    bad = copy.deepcopy(w)
    bad["hospitals"].loc[bad["hospitals"].scale == "qs_pat_total", "raw_mean"] = 4.0
    not_fitted = run_hypothesis(shipped("prof_quickscan_patient_quickscan"), bad, "w1")
    placeholder = not_applicable_result(
        shipped("maturity_psych_safety"), "w1", "not declared for wave w1 (waves: ['w2'])"
    )
    table, out = summarise([*good_results, not_fitted, placeholder])
    assert list(table.columns[-3:]) == ["status", "reason", "n_tested"]
    plain = table[table.fit == "plain"]
    assert plain.set_index("hypothesis")["status"].to_dict() == {
        "climate_mortality": "fitted",
        "psych_safety_incident_reporting": "fitted",
        "prof_quickscan_patient_quickscan": "not_fitted",
        "maturity_psych_safety": "not_applicable",
    }
    assert (table["n_tested"][table.fit == "plain"] == 2).all()  # q over the 2 with a p-value
    assert (table["n_tested"][table.fit == "plausible_values"] == 2).all()
    row = plain.set_index("hypothesis").loc["prof_quickscan_patient_quickscan"]
    assert row["n"] == 0 and pd.isna(row["p"]) and pd.isna(row["q"])
    assert "has the same value" in row["reason"]
    na = plain.set_index("hypothesis").loc["maturity_psych_safety"]
    assert na["term"] == "mm_total" and na["reason"].startswith("not declared for wave w1")
    by_id = {r["id"]: r for r in out}
    assert by_id["climate_mortality"]["multiple_testing"]["n_tested"] == {
        "plain": 2,
        "plausible_values": 2,
    }
    # the q-values are those of the two fitted hypotheses alone
    alone, _ = summarise(good_results)
    assert np.allclose(table.loc[table.status == "fitted", "q"], alone["q"])


def test_failed_plausible_values_keep_a_row_with_the_reason(monkeypatch):
    def collinear(design, plain, rng, condition):
        X = design.X.copy()
        X[:, 1] = 1.0  # every refit is rank deficient
        return X

    monkeypatch.setattr(outcomes, "_draw_plausible", collinear)
    w = simulate_wave(seed=5)
    table, _ = summarise([run_hypothesis(shipped("climate_mortality"), w, "w1")])
    pv = table[table.fit == "plausible_values"].iloc[0]
    assert pv["status"] == "not_fitted" and pv["n"] == 0 and pd.isna(pv["p"])
    assert "fewer than 2 plausible-value fits converged" in pv["reason"]
    assert pv["n_tested"] == 0
    plain = table[table.fit == "plain"].iloc[0]
    assert plain["status"] == "fitted" and plain["n_tested"] == 1


def test_id_columns_named_by_the_config(study):
    """A study whose outcome file calls its hospital column 'org': without canonical_ids a
    located message (not a KeyError), with it the hypothesis fits."""
    w = simulate_wave(seed=2)
    w["outcomes"] = w["outcomes"].rename(columns={"hospital_id": "org"})
    with pytest.raises(
        InputError,
        match=r"file outcomes, column 'hospital_id': no "
        r"'hospital_id' column to join 'deaths' on",
    ):
        run_hypothesis(shipped("climate_mortality"), w, "w1")
    cfg = copy.deepcopy(study.config)
    cfg["sources"]["outcomes"].update(id="org", hospital="org")
    other = load_study(cfg, root=DEMO)
    r = run_hypothesis(shipped("climate_mortality"), canonical_ids(other, w), "w1")
    assert r["status"] == "fitted" and r["n"] == 30
    assert "org" in w["outcomes"].columns  # the caller's tables are not changed


def test_absent_optional_outcome_source_is_not_applicable():
    w = simulate_wave(seed=2)
    del w["outcomes"]
    r = run_hypothesis(shipped("climate_mortality"), w, "w1")
    assert r["status"] == "not_applicable" and r["n"] == 0 and r["estimates"] == []
    assert r["reason"] == (
        "no outcomes file in this wave: the outcome 'deaths' was not delivered (an optional source)"
    )


def test_a_wave_the_hypothesis_is_not_declared_for_is_not_applicable():
    """The placeholder is the package's (run_hypothesis), not the rule script's: no input is
    needed to write it, and the reason names the wave and the declared ones."""
    later = replace(shipped("climate_mortality"), waves=["2025-2"])
    r = run_hypothesis(later, {}, "2024-1")
    assert r["status"] == "not_applicable" and r["n"] == 0 and r["estimates"] == []
    assert r["reason"] == "not declared for wave 2024-1 (waves: ['2025-2'])"
    assert r["id"] == "climate_mortality" and r["outcome"]["column"] == "deaths"
    assert run_hypothesis(later, simulate_wave(seed=2), "2025-2")["status"] == "fitted"


def test_read_inputs_reads_ids_as_text_and_only_the_hypotheses_files(tmp_path):
    w = simulate_wave(seed=2)
    w["hospitals"].to_csv(tmp_path / "hospitals.csv", index=False)
    w["outcomes"].to_parquet(tmp_path / "outcomes.parquet")
    got = read_inputs(
        {
            "hospitals": tmp_path / "hospitals.csv",
            "outcomes": str(tmp_path / "outcomes.parquet"),
            "spec": "config/hypotheses/climate_mortality.yaml",
        }
    )
    assert set(got) == {"hospitals", "outcomes"}
    assert got["hospitals"]["hospital_id"].iloc[0] == "0001"  # not the number 1
    r = run_hypothesis(shipped("climate_mortality"), {**w, **got}, "w1")
    assert r == run_hypothesis(shipped("climate_mortality"), w, "w1")


# ------------------------------------------------------------------------------------------
# 3. Numerical failures are reasons, programming errors propagate
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        TypeError("unsupported operand"),
        KeyError("alpha"),
        AttributeError("'NoneType' object has no attribute 'x'"),
        ZeroDivisionError("float division by zero"),
    ],
)
def test_programming_errors_in_the_fit_propagate(monkeypatch, error):
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(outcomes, "_fit_family", broken)
    with pytest.raises(type(error)):
        run_hypothesis(shipped("climate_mortality"), simulate_wave(seed=2), "w1")


@pytest.mark.parametrize(
    "error",
    [
        np.linalg.LinAlgError("Singular matrix"),
        ValueError("NaN, inf or invalid value detected in weights"),
        OverflowError("math range error"),
        FloatingPointError("overflow encountered in exp"),
    ],
)
def test_numerical_failures_are_reasons(monkeypatch, error):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(outcomes, "_fit_family", failing)
    r = run_hypothesis(shipped("climate_mortality"), simulate_wave(seed=2), "w1")
    _not_fitted(r, f"the model fit failed: {type(error).__name__}: {error}")


def test_convergence_warning_is_a_flag_with_its_reason(monkeypatch):
    real = outcomes._fit_family

    def slow(*args, **kwargs):
        out = real(*args, **kwargs)
        warnings.warn("IRLS did not converge in 100 iterations", ConvergenceWarning, stacklevel=1)
        return {**out, "converged": False}

    monkeypatch.setattr(outcomes, "_fit_family", slow)
    r = run_hypothesis(shipped("climate_mortality"), simulate_wave(seed=2), "w1")
    _not_fitted(r, "the fit did not converge (ConvergenceWarning: IRLS did not converge")


# ------------------------------------------------------------------------------------------
# End to end: the DAG writes the status, and the check runs before any job
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dag_writes_status_reason_and_bh_family(tmp_path, small_consortium):
    from conftest import make_project, run_snakemake

    raw_src, _ = small_consortium
    proj = make_project(tmp_path, raw_src, waves=["2024-1"])
    hyps = proj / "config" / "hypotheses"
    # a hypothesis for another wave only, and one whose outcome has no events in this wave
    write(hyps, "later_only", GOOD.format(id="later_only") + "waves: ['2025-2']\n")
    write(
        hyps,
        "no_events",
        GOOD.format(id="no_events")
        .replace("deaths", "readmissions")
        .replace("exposure: expected_readmissions", "exposure: admissions"),
    )
    out_csv = proj / "data/raw/2024-1/outcomes.csv"
    o = pd.read_csv(out_csv, dtype={"hospital_id": str})
    o["readmissions"] = 0
    o.to_csv(out_csv, index=False)
    res = run_snakemake(proj, "results/2024-1/hypotheses/summary.csv")
    table = pd.read_csv(proj / "results/2024-1/hypotheses/summary.csv")
    plain = table[table.fit == "plain"].set_index("hypothesis")
    assert plain.loc["later_only", "status"] == "not_applicable"
    assert plain.loc["later_only", "reason"] == "not declared for wave 2024-1 (waves: ['2025-2'])"
    assert plain.loc["no_events", "status"] == "not_fitted"
    assert "the outcome readmissions is 0 in all" in plain.loc["no_events", "reason"]
    assert plain.loc["no_events", "n"] == 0
    shipped_ids = [p.stem for p in sorted(HYPOTHESES.glob("*.yaml"))]
    assert (plain.loc[shipped_ids, "status"] == "fitted").all()
    assert (table.loc[table.fit == "plain", "n_tested"] == len(shipped_ids)).all()
    for name in shipped_ids:  # the demo's own specification draws no warning of the project's
        r = json.loads((proj / f"results/2024-1/hypotheses/{name}.json").read_text())
        assert not any("shrunken EB mean" in m for m in r["diagnostics"]["warnings"])
        # what made it (flaqum.provenance.stamp): the package's version, the day of the fit
        assert set(r["provenance"]) == {"version", "commit", "dirty", "date"}
        assert r["provenance"]["version"] == flaqum.__version__
        fitted_on = date.fromisoformat(r["provenance"]["date"])  # (the run may span midnight)
        assert 0 <= (datetime.now(UTC).date() - fitted_on).days <= 1
    assert "no_events (2024-1): not_fitted: the outcome readmissions is 0" in res.stderr


@pytest.mark.slow
def test_typo_stops_the_dag_before_any_job(tmp_path):
    """Active once workflow/rules/common.smk calls check_hypotheses at parse time."""
    if "check_hypotheses" not in (ROOT / "workflow/rules/common.smk").read_text():
        pytest.skip("common.smk does not call check_hypotheses yet")
    from conftest import make_project, run_snakemake

    proj = make_project(tmp_path)
    write(
        proj / "config" / "hypotheses",
        "typo",
        GOOD.format(id="typo").replace("[team_collab]", "[qs_pat_totl]"),
    )
    res = run_snakemake(proj, "-n", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "config/hypotheses/typo.yaml: at predictors: 'qs_pat_totl'" in out
    assert "did you mean 'qs_pat_total'?" in out
    assert "Traceback" not in out
