"""End-to-end runs of the Snakemake DAG on a small synthetic consortium.

They check what users rely on: raw files are never written to, a wave that fails validation
stops with a readable message and leaves no processed data, a new wave dropped into data/raw
is processed without rebuilding the first, and the workflow is lint-clean.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import ROOT, make_project, run_snakemake

from flaqum.benchmark import (
    ITEM_COLUMNS,
    MATURITY_COLUMNS,
    PEER_COLUMNS,
    STAKEHOLDER_COLUMNS,
    TREND_COLUMNS,
)

pytestmark = pytest.mark.slow


def checksums(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def outputs(proj, wave):
    files = {}
    for top in ("data/processed", "results", "reports"):
        base = proj / top / wave
        if base.exists():
            for p in base.rglob("*"):
                if p.is_file():
                    files[str(p.relative_to(proj))] = p.stat().st_mtime_ns
    return files


@pytest.fixture(scope="module")
def first_wave_project(tmp_path_factory, small_consortium):
    raw_src, truth = small_consortium
    proj = make_project(tmp_path_factory.mktemp("e2e"), raw_src, waves=["2024-1"])
    before = checksums(proj / "data" / "raw")
    res = run_snakemake(proj)
    return proj, before, res, raw_src, truth


def test_whole_dag_runs_and_raw_files_are_untouched(first_wave_project):
    proj, before, res, _, _ = first_wave_project
    assert checksums(proj / "data" / "raw") == before
    v = json.loads((proj / "results/2024-1/validation.json").read_text())
    assert v["status"] == "pass" and v["errors"] == []
    assert {w["rule"] for w in v["warnings"]} >= {"straight-lining", "team below reporting minimum"}
    for f in ("warning", "file", "row", "column", "value", "rule", "message"):
        assert f == "warning" or f in v["warnings"][0]
    scores = pd.read_parquet(proj / "results/2024-1/scores/staff.parquet")
    assert {"respondent_id", "hospital_id", "team_id", "psych_safety", "team_collab"} <= set(scores)
    assert all(
        str(scores[c].dtype) == "string" for c in ("respondent_id", "hospital_id", "team_id")
    )
    for source in ("staff", "patients", "maturity", "organisations", "teams", "outcomes"):
        assert (proj / f"data/processed/2024-1/{source}.parquet").exists()
    # no temporary files are left beside the outputs
    assert not list(proj.rglob("*.part"))


def test_new_wave_is_processed_without_rebuilding_the_first(first_wave_project):
    proj, _, _, raw_src, _ = first_wave_project
    first = outputs(proj, "2024-1")
    assert first
    shutil.copytree(raw_src / "2025-2", proj / "data/raw/2025-2")
    dry = run_snakemake(proj, "-n", "--quiet", "rules")
    run_snakemake(proj)
    assert outputs(proj, "2024-1") == first, "outputs of the first wave were rebuilt"
    second = outputs(proj, "2025-2")
    assert "results/2025-2/scores/staff.parquet" in second
    assert "2024-1" not in dry.stdout.replace("2024-1 ->", "")
    # and a third run has nothing to do
    again = run_snakemake(proj, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # one report of the second wave, named on the command line, is planned with its inputs,
    # its change since the first wave among them (not left "<TBD>" behind a checkpoint, which
    # made the job run without them)
    hid = sorted(p.stem for p in (proj / "reports/2025-2").glob("*.pdf"))[0]
    aside = proj / "aside"
    aside.mkdir()
    for ext in ("html", "pdf"):
        shutil.move(proj / f"reports/2025-2/{hid}.{ext}", aside / f"{hid}.{ext}")
    try:
        one = run_snakemake(proj, "-n", f"reports/2025-2/{hid}.pdf")
    finally:
        for ext in ("html", "pdf"):
            shutil.move(aside / f"{hid}.{ext}", proj / f"reports/2025-2/{hid}.{ext}")
        aside.rmdir()
    planned = one.stdout + one.stderr
    assert "rule render_reports" in planned and "<TBD>" not in planned, planned[-3000:]
    assert "results/2025-2/multilevel/change.csv" in planned


def test_failed_validation_stops_the_wave_and_leaves_nothing(tmp_path, small_consortium):
    raw_src, _ = small_consortium
    proj = make_project(tmp_path, raw_src, waves=["2024-1"])
    p = proj / "data/raw/2024-1/teams.csv"
    teams = pd.read_csv(p, dtype=str)
    teams.drop(columns=["team_name"]).to_csv(p, index=False)
    res = run_snakemake(proj, check=False)
    assert res.returncode != 0
    v = json.loads((proj / "results/2024-1/validation.json").read_text())
    assert v["status"] == "fail"
    assert any(e["rule"] == "required column" and e["column"] == "team_name" for e in v["errors"])
    out = res.stdout + res.stderr
    assert "failed validation" in out and "required column 'team_name' is missing" in out
    assert not list((proj / "data").glob("processed/2024-1/*.parquet"))
    assert not (proj / "results/2024-1/scores").exists()


def test_invalid_config_stops_before_running(tmp_path):
    proj = make_project(tmp_path)
    res = run_snakemake(proj, "-n", "--config", "min_group_size=five", check=False)
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "Invalid configuration" in out and "min_group_size" in out


def test_lint_and_format_are_clean(tmp_path, small_consortium):
    raw_src, _ = small_consortium
    proj = make_project(tmp_path, raw_src, waves=["2024-1"])
    shutil.copy(ROOT / "environment.yml", proj / "environment.yml")
    lint = run_snakemake(proj, "--lint")
    assert "Congratulations, your workflow is in a good condition" in lint.stdout + lint.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow/rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr


OUTPUT_COLUMNS = {
    "psychometrics/scales.csv": [
        "scale",
        "instrument",
        "n_respondents",
        "n_items",
        "alpha",
        "alpha_ci_low",
        "alpha_ci_high",
        "omega",
        "cfi",
        "tli",
        "rmsea",
        "srmr",
        "icc1",
        "icc2",
        "rwg_j_mean",
        "rwg_j_median",
        "awg_mean",
        "n_teams",
    ],
    "psychometrics/items.csv": [
        "scale",
        "item",
        "n",
        "mean",
        "sd",
        "pct_missing",
        "item_total_r",
        "alpha_if_deleted",
        "loading",
    ],
    "multilevel/variance.csv": [
        "scale",
        "n_respondents",
        "n_teams",
        "n_hospitals",
        "intercept",
        "var_hospital",
        "var_team",
        "var_residual",
        "vpc_hospital",
        "vpc_team",
        "converged",
        "singular",
    ],
    "multilevel/teams.csv": [
        "scale",
        "hospital_id",
        "team_id",
        "n",
        "raw_mean",
        "eb_mean",
        "eb_se",
        "ci_low",
        "ci_high",
        "suppressed",
    ],
    "multilevel/hospitals.csv": [
        "scale",
        "hospital_id",
        "n",
        "raw_mean",
        "eb_mean",
        "eb_se",
        "ci_low",
        "ci_high",
        "suppressed",
    ],
    # the report statistics (flaqum.benchmark; every column in docs/outputs.md)
    "benchmark/items.csv": ITEM_COLUMNS,
    "benchmark/stakeholders.csv": STAKEHOLDER_COLUMNS,
    "benchmark/maturity.csv": MATURITY_COLUMNS,
    "benchmark/peers.csv": PEER_COLUMNS,
    "benchmark/trends.csv": TREND_COLUMNS,
}


def test_statistics_follow_the_contract(first_wave_project, study):
    proj = first_wave_project[0]
    res = proj / "results/2024-1"
    for name, cols in OUTPUT_COLUMNS.items():
        table = pd.read_csv(res / name, dtype={"hospital_id": str, "team_id": str})
        assert list(table.columns[: len(cols)]) == cols, name
        assert len(table) > 0, name
    scales = pd.read_csv(res / "psychometrics/scales.csv")
    survey_scales = set(study.scales_for("staff")) | set(study.scales_for("patients"))
    assert survey_scales <= set(scales["scale"])
    teams = pd.read_csv(res / "multilevel/teams.csv", dtype={"hospital_id": str, "team_id": str})
    small = teams[teams["n"] < study.min_group_size]
    assert len(small) > 0, "the small consortium should have teams below the minimum"
    assert small["suppressed"].all()
    assert small[["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]].isna().all().all()
    summary = pd.read_csv(res / "hypotheses/summary.csv")
    declared = {p.stem for p in (proj / "config/hypotheses").glob("*.yaml")}
    assert set(summary["hypothesis"]) == declared


def test_every_hospital_gets_a_report_naming_no_other(first_wave_project):
    proj = first_wave_project[0]
    orgs = pd.read_csv(proj / "data/raw/2024-1/organisations.csv", dtype=str)
    names = dict(zip(orgs["hospital_id"], orgs["hospital_name"], strict=True))
    assert (proj / "reports/2024-1/research/consortium.html").exists()
    assert not (proj / "reports/2024-1/consortium.html").exists()
    for hid in names:
        html = (proj / f"reports/2024-1/{hid}.html").read_text()
        assert names[hid] in html
        for other, name in names.items():
            if other != hid:
                assert name not in html, f"{hid}'s report names {other}"


def test_reports_come_with_pdfs_progress_and_the_engine_named_once(first_wave_project):
    """Each hospital's HTML has its A4 PDF beside it; the console shows one line per rendered
    report and names the engine once; naming the engine already in use re-renders nothing,
    and switching the PDF off is a setting that re-renders."""
    import re

    proj, _, res, _, _ = first_wave_project
    orgs = pd.read_csv(proj / "data/raw/2024-1/organisations.csv", dtype=str)
    for hid in orgs["hospital_id"]:
        pdf = proj / f"reports/2024-1/{hid}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF-"), hid
    out = res.stdout + res.stderr
    shown = re.findall(r"^report 2024-1 batch \d+: (\d+)/(\d+) (\S+) \([\d.]+ s\)$", out, re.M)
    assert sorted(h for _, _, h in shown) == sorted(orgs["hospital_id"])
    engine = [line for line in out.splitlines() if line.startswith("reports: ")]
    assert len(engine) == 1, engine
    if shutil.which("quarto") is None:
        assert "Quarto is not used (not on PATH)" in engine[0]
        assert "A4 PDF by the built-in Typst writer (no Quarto PDF)" in engine[0]
        # (provenance.json records the config as written, so it alone is re-written)
        again = run_snakemake(proj, "-n", "--config", "report={engine: jupyter}")
        planned = again.stdout + again.stderr
        for rule in ("render_reports", "hospital_report", "consortium_report"):
            assert f"rule {rule}" not in planned, planned[-3000:]
    off = run_snakemake(proj, "-n", "--config", "report={pdf: false}")
    planned = off.stdout + off.stderr
    assert "rule render_reports" in planned and "hospital_report" in planned


def test_a_new_hypothesis_file_adds_a_target(first_wave_project, tmp_path):
    proj = first_wave_project[0]
    spec = proj / "config/hypotheses/collab_incidents.yaml"
    spec.write_text(
        "id: collab_incidents\n"
        "description: Teams that collaborate better report more incidents per patient day.\n"
        "level: team\nfamily: negative_binomial\n"
        "outcome: {source: team_outcomes, column: incidents_reported, exposure: patient_days}\n"
        "predictors: [team_collab]\ncovariates: []\nstandardize: false\nrobust: true\n"
        "waves: all\n"
    )
    try:
        target = "results/2024-1/hypotheses/collab_incidents.json"
        run_snakemake(proj, target)
        result = json.loads((proj / target).read_text())
        assert result["id"] == "collab_incidents" and result["n"] > 0
        summary = pd.read_csv(proj / "results/2024-1/hypotheses/summary.csv")
        assert "collab_incidents" in set(summary["hypothesis"])
        assert summary["q"].notna().any()
    finally:
        spec.unlink()


def test_results_are_deterministic(tmp_path, small_consortium):
    """Two runs from scratch write the same numbers (to 1e-9)."""
    raw_src, _ = small_consortium
    tables = [
        "multilevel/variance.csv",
        "multilevel/hospitals.csv",
        "psychometrics/scales.csv",
        "hypotheses/summary.csv",
    ]
    runs = []
    for name in ("a", "b"):
        proj = make_project(tmp_path / name, raw_src, waves=["2024-1"])
        run_snakemake(proj, *[f"results/2024-1/{t}" for t in tables])
        runs.append(proj)
    for t in tables:
        a = pd.read_csv(runs[0] / "results/2024-1" / t)
        b = pd.read_csv(runs[1] / "results/2024-1" / t)
        pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12)
