"""Hostile and messy input, end to end through the DAG (issue 8).

One small consortium (CSV files, so each case edits plain text), run through Snakemake several
times, in order: each test states what a user did to the raw files or the config, and what
must follow. The unit-level cases (every validation rule, the report scan, escaping,
unfittable hypotheses) live in test_validate_hostile.py, test_report_hostile.py and
test_hypotheses_hostile.py; here is what only the whole DAG can show:

- an id with shell or path syntax never reaches a shell or a path (nothing is created, inside
  the project or outside), and validation names it;
- a bad wave never blocks a good one, and the run's end says once what failed and exits 1;
- free text (a hospital name with HTML) is shown as text in the report;
- outputs follow the raw files' content (not their time stamps), the settings (min_group_size
  re-runs what it affects and nothing else), and the register (a removed hospital's report
  is removed); a wave that fails on a rerun keeps nothing of its earlier outputs, and the
  later waves are rebuilt without it (no change since it, no trend through it).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from conftest import DEMO, make_project, run_snakemake

from flaqum.config import load_study
from flaqum.simulate import generate_consortium

pytestmark = pytest.mark.slow

HOSTILE_NAME = 'ZNA <b onmouseover="alert(2)">Maas</b> & $(touch PWNED_NAME)'
SHELL_ID = "H30$(touch PWNED)"
TRAVERSAL_ID = "../../../PWNED_TRAVERSAL"
OLD = 946684800  # 2000-01-01: an older time stamp than any output, as `cp -p` or unzip give


def sha(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def mtimes(proj: Path, top: str) -> dict:
    base = proj / top
    return {str(p.relative_to(proj)): p.stat().st_mtime_ns for p in base.rglob("*") if p.is_file()}


def pwned(root: Path) -> list[Path]:
    return [p for p in root.rglob("*PWNED*")]


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text content."""

    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project whose first wave is good (with a hostile hospital name), whose second wave
    has a shell id and a path id, and with a wave folder whose name is not an id."""
    root = tmp_path_factory.mktemp("hostile")
    raw = root / "source"
    study = load_study(DEMO / "config" / "config.yaml", root=DEMO)
    generate_consortium(
        raw,
        study,
        n_hospitals=5,
        waves=("2024-1", "2025-2"),
        seed=11,
        fmt="csv",
        scale=0.2,
        join_late=0,
    )
    proj = make_project(root / "p", raw)
    orgs = proj / "data/raw/2024-1/organisations.csv"
    df = pd.read_csv(orgs, dtype=str)
    df.loc[0, "hospital_name"] = HOSTILE_NAME
    df.to_csv(orgs, index=False)
    bad = proj / "data/raw/2025-2/organisations.csv"
    df = pd.read_csv(bad, dtype=str)
    df.loc[0, "hospital_id"] = SHELL_ID
    df.loc[1, "hospital_id"] = TRAVERSAL_ID
    df.to_csv(bad, index=False)
    shutil.copytree(raw / "2024-1", proj / "data/raw/bad wave")
    # a register that cannot be read: found by validation, never while the DAG is built
    shutil.copytree(raw / "2024-1", proj / "data/raw/2026-1")
    (proj / "data/raw/2026-1/organisations.csv").write_bytes(b"")
    before = sha(proj / "data/raw")
    res = run_snakemake(proj, check=False)
    return {"root": root, "proj": proj, "raw": raw, "before": before, "res": res}


def test_ids_never_reach_a_shell_or_a_path(project):
    proj, res = project["proj"], project["res"]
    assert res.returncode == 1, res.stderr[-3000:]
    assert pwned(project["root"].parent) == [], "an id or a name ran or wrote something"
    v = json.loads((proj / "results/2025-2/validation.json").read_text())
    assert v["status"] == "fail"
    ids = {(e["row"], e["value"]) for e in v["errors"] if e["rule"] == "id alphabet"}
    assert {(1, SHELL_ID), (2, TRAVERSAL_ID)} <= ids
    assert not (proj / "data/processed/2025-2").exists()
    assert not (proj / "reports/2025-2").exists()
    assert sha(proj / "data/raw") == project["before"], "a raw file was written to"


def test_a_bad_wave_does_not_block_the_good_one(project):
    proj, res = project["proj"], project["res"]
    hospitals = pd.read_csv(proj / "data/raw/2024-1/organisations.csv", dtype=str)["hospital_id"]
    for h in hospitals:
        assert (proj / f"reports/2024-1/{h}.html").exists()
    assert (proj / "reports/2024-1/research/consortium.html").exists()
    assert not (proj / "reports/2024-1/consortium.html").exists()
    assert (proj / "results/2024-1/provenance.json").exists()
    out = res.stdout + res.stderr
    # the run's end says it once, with the findings and where all of them are
    assert out.count("Wave 2025-2 failed validation; nothing of it was processed") == 1
    assert out.count("results/2025-2/validation.json") >= 1
    assert out.count(f"value {SHELL_ID!r}") == 1
    assert "data/raw/bad wave: not processed: wave folder name contains characters" in out
    assert "1 of 3 wave(s) processed: 2024-1; failed validation: 2025-2, 2026-1" in out
    empty = json.loads((proj / "results/2026-1/validation.json").read_text())["errors"]
    assert [(e["file"], e["rule"]) for e in empty] == [
        ("data/raw/2026-1/organisations.csv", "a source has a header and rows")
    ]
    assert "Traceback" not in out
    assert not (proj / "results/run_summary.json").exists()


def test_free_text_is_escaped_in_the_report(project):
    proj = project["proj"]
    html = (proj / "reports/2024-1/H01.html").read_text()
    parsed = Tags()
    parsed.feed(html)
    assert not [t for t, a in parsed.tags if t == "b"]
    assert not [a for _, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert HOSTILE_NAME in "".join(parsed.text)


def test_outputs_are_readable_as_the_umask_allows(project):
    proj = project["proj"]
    mask = os.umask(0o022)
    os.umask(mask)
    for p in [
        proj / "results/2024-1/validation.json",
        proj / "reports/2024-1/H01.html",
        proj / "data/processed/2024-1/staff.parquet",
        proj / "results/2024-1/multilevel/teams.csv",
    ]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == 0o666 & ~mask, f"{p}: {oct(mode)}"


def test_fixed_wave_and_new_content_with_older_time_stamps(project):
    """The data manager fixes the bad wave by copying the right files with `cp -p` (older
    time stamps), renames a team in the good wave the same way, takes a hospital out of the
    good wave, and removes the folder that was not a wave."""
    proj, raw = project["proj"], project["raw"]
    shutil.rmtree(proj / "data/raw/bad wave")
    shutil.rmtree(proj / "data/raw/2026-1")
    fixed = proj / "data/raw/2025-2/organisations.csv"
    shutil.copy2(raw / "2025-2/organisations.csv", fixed)
    os.utime(fixed, (OLD, OLD))
    wave = proj / "data/raw/2024-1"
    teams = pd.read_csv(wave / "teams.csv", dtype=str)
    first = teams.index[teams["hospital_id"] == "H01"][0]
    teams.loc[first, "team_name"] = "Renamed ward"
    gone = "H05"
    for name in (
        "teams",
        "organisations",
        "maturity",
        "outcomes",
        "team_outcomes",
        "staff",
        "patients",
    ):
        path = wave / f"{name}.csv"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        if name == "teams":
            df = teams
        df[df["hospital_id"] != gone].to_csv(path, index=False)
        os.utime(path, (OLD, OLD))
    res = run_snakemake(proj, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert json.loads((proj / "results/2025-2/validation.json").read_text())["status"] == "pass"
    assert (proj / "reports/2025-2/H01.html").exists()
    assert "Renamed ward" in (proj / "reports/2024-1/H01.html").read_text()
    assert not (proj / f"reports/2024-1/{gone}.html").exists()
    assert f"removed reports/2024-1/{gone}.html" in out
    summary = json.loads((proj / "results/run_summary.json").read_text())
    assert summary["status"] == "pass" and summary["waves_processed"] == ["2024-1", "2025-2"]
    again = run_snakemake(proj, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_raising_min_group_size_rebuilds_what_it_affects_only(project):
    proj = project["proj"]
    config = proj / "config/config.yaml"
    text = config.read_text()
    assert "min_group_size: 5" in text
    processed = mtimes(proj, "data/processed")
    scores = mtimes(proj, "results/2024-1/scores")
    config.write_text(text.replace("min_group_size: 5", "min_group_size: 12"))
    run_snakemake(proj)
    assert mtimes(proj, "data/processed") == processed, "raw data were ingested again"
    assert mtimes(proj, "results/2024-1/scores") == scores, "scores were computed again"
    teams = pd.read_csv(proj / "results/2024-1/multilevel/teams.csv")
    assert (teams["n"] < 12).any()
    assert teams.loc[teams["n"] < 12, "suppressed"].all()
    assert teams.loc[teams["n"] < 12, "eb_mean"].isna().all()
    html = (proj / "reports/2024-1/H01.html").read_text()
    assert "fewer than 12" in html
    config.write_text(text)


def test_min_group_size_below_three_is_refused(project):
    res = run_snakemake(project["proj"], "-n", "--config", "min_group_size=2", check=False)
    assert res.returncode != 0
    assert "at min_group_size: 2 is below 3" in res.stdout + res.stderr


def test_a_wave_that_fails_on_a_rerun_keeps_nothing_old(project):
    proj = project["proj"]
    teams = proj / "data/raw/2024-1/teams.csv"
    pd.read_csv(teams, dtype=str).drop(columns=["team_name"]).to_csv(teams, index=False)
    second = mtimes(proj, "reports/2025-2")
    second_html = (proj / "reports/2025-2/H01.html").read_text()
    res = run_snakemake(proj, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 1
    assert out.count("required column 'team_name' is missing") == 1
    assert not (proj / "reports/2024-1").exists()
    assert not (proj / "data/processed/2024-1").exists()
    assert [p.name for p in (proj / "results/2024-1").iterdir()] == ["validation.json"]
    # the good wave is processed, and compared with no wave that fails: its change since
    # 2024-1 is removed and its reports no longer show 2024-1 (they did before)
    assert "2024-1" in second_html
    assert not (proj / "results/2025-2/multilevel/change.csv").exists()
    assert out.count("removed results/2025-2/multilevel/change.csv") == 1
    for h in second:
        html = (proj / h).read_text() if h.endswith(".html") else ""
        assert "2024-1" not in html, h
    assert set(mtimes(proj, "reports/2025-2")) == set(second)
    trends = pd.read_csv(proj / "results/2025-2/benchmark/trends.csv", dtype=str)
    assert set(trends["wave"]) == {"2025-2"}
