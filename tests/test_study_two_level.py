"""A study that is not the demo, run from its own folder (issue 9).

``tests/fixtures/study_two_level`` is shaped unlike the demo: the smallest config (one staff
survey, the two registers, min_group_size), its own column names (org_id, unit_id), one
instrument on a 0-4 scale with missing code 9 and reverse keys, respondents in teams of ONE
organisation (two levels), no patients, no maturity, no outcomes, no hypotheses. It runs with
the package installed non-editable (``pip install --target``), from another working
directory, as ``snakemake -s <project>/Snakefile -d <study>``; its numbers must equal lme4,
psych and multilevel on the same data (``tests/fixtures/r/study_two_level_reference.R``):
1e-6 for closed forms (alpha, ICC1, ICC2, raw means), 1e-3 relative for the REML fits
(variances, intercept, EB means and their SDs; both optimisers stop at their own tolerance).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

STUDY = ROOT / "tests/fixtures/study_two_level"
REFERENCE = json.loads((ROOT / "tests/fixtures/r/study_two_level.json").read_text())
WAVE = "2025-1"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    site = tmp / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    study = tmp / "study"
    shutil.copytree(STUDY, study)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in study.rglob("data/raw/*/*")}
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MPLBACKEND": "Agg"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(study),
            "--cores",
            "2",
            "--nocolor",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return {"study": study, "site": site, "before": before, "elsewhere": elsewhere, "res": res}


def table(run, name):
    return pd.read_csv(
        run["study"] / "results" / WAVE / name, dtype={"hospital_id": str, "team_id": str}
    )


def test_runs_from_its_own_folder_with_the_installed_package(run):
    study = run["study"]
    assert not list(run["elsewhere"].iterdir()), "something was written to the working directory"
    for p, digest in run["before"].items():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == digest
    prov = json.loads((study / f"results/{WAVE}/provenance.json").read_text())
    assert Path(prov["package_path"]).is_relative_to(run["site"]), prov["package_path"]
    assert (study / f"reports/{WAVE}/1.html").exists()
    assert (study / f"reports/{WAVE}/research/consortium.html").exists()
    summary = json.loads((study / "results/run_summary.json").read_text())
    assert summary["status"] == "pass" and summary["waves_processed"] == [WAVE]


def test_closed_forms_equal_psych_and_multilevel(run):
    scales = table(run, "psychometrics/scales.csv").set_index("scale")
    for sid, ref in REFERENCE["scales"].items():
        assert scales.loc[sid, "alpha"] == pytest.approx(ref["alpha"]["raw_alpha"], abs=1e-6)
        assert scales.loc[sid, "icc1"] == pytest.approx(ref["icc"]["icc1"], abs=1e-6)
        assert scales.loc[sid, "icc2"] == pytest.approx(ref["icc"]["icc2"], abs=1e-6)


def test_two_level_fit_equals_lmer(run):
    variance = table(run, "multilevel/variance.csv").set_index("scale")
    teams = table(run, "multilevel/teams.csv")
    hospitals = table(run, "multilevel/hospitals.csv").set_index("scale")
    for sid, ref in REFERENCE["scales"].items():
        fit = ref["lmer"]["tight"]
        row = variance.loc[sid]
        assert row["n_hospitals"] == 1 and row["n_teams"] == 50
        assert pd.isna(row["var_hospital"]) and pd.isna(row["vpc_hospital"])
        assert row["n_respondents"] == fit["nobs"]
        assert row["intercept"] == pytest.approx(fit["fixef"]["(Intercept)"], rel=1e-3)
        assert row["var_team"] == pytest.approx(fit["variances"]["unit_id"], rel=1e-3)
        assert row["var_residual"] == pytest.approx(fit["variances"]["Residual"], rel=1e-3)
        # the one organisation's mean is the model's intercept, with its standard error
        assert hospitals.loc[sid, "eb_mean"] == pytest.approx(fit["fixef"]["(Intercept)"], rel=1e-3)
        assert hospitals.loc[sid, "eb_se"] == pytest.approx(fit["se"]["(Intercept)"], rel=1e-3)
        ours = teams[teams["scale"] == sid].set_index("team_id")
        assert set(ours["hospital_id"]) == {"1"}
        ref_teams = pd.DataFrame(fit["teams"]).set_index("team_id")
        assert set(ours.index) == set(ref_teams.index)
        for t, r in ref_teams.iterrows():
            assert ours.loc[t, "n"] == r["n"]
            if r["n"] < 5:  # below min_group_size: blank in every file
                assert ours.loc[t, "suppressed"] and pd.isna(ours.loc[t, "eb_mean"])
                continue
            assert ours.loc[t, "raw_mean"] == pytest.approx(r["raw_mean"], abs=1e-6)
            assert ours.loc[t, "eb_mean"] == pytest.approx(r["eb_mean"], rel=1e-3)
            assert ours.loc[t, "eb_se"] == pytest.approx(r["cond_sd"], rel=1e-3)


def test_without_an_organisation_column_the_numbers_are_the_same(run, tmp_path):
    """The same survey with no hospital column anywhere (staff, teams register): one
    organisation by design; validation, scores and the fit are those of the run above."""
    import yaml

    study = tmp_path / "study"
    shutil.copytree(STUDY, study)
    for name in ("staff", "teams"):
        p = study / f"data/raw/{WAVE}/{name}.csv"
        pd.read_csv(p, dtype=str, keep_default_na=False).drop(columns=["org_id"]).to_csv(
            p, index=False
        )
    cfg_path = study / "config/config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    for s in ("staff", "teams"):
        cfg["sources"][s].pop("hospital")
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    target = f"results/{WAVE}/multilevel/teams.csv"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(study),
            "--cores",
            "2",
            "--nocolor",
            target,
            f"results/{WAVE}/multilevel/variance.csv",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(run["site"])},
    )
    assert res.returncode == 0, res.stderr[-4000:]
    pd.testing.assert_frame_equal(
        pd.read_csv(study / target, dtype={"hospital_id": str}),
        pd.read_csv(run["study"] / target, dtype={"hospital_id": str}),
    )


def _study_with_a_second_wave(tmp_path, drop_new_items=False):
    """The fixture with a second wave that also fields a new instrument (workload), declared
    for that wave only (codebook key ``waves``)."""
    import numpy as np

    study = tmp_path / "study"
    shutil.copytree(STUDY, study)
    (study / "config/instruments/workload.yaml").write_text(
        "id: workload\nlabel: Workload\nreference: test fixture\nsource: staff\nunit: team\n"
        "waves: ['2026-1']\nresponse: {min: 0, max: 4, missing_codes: [9]}\n"
        "scales:\n  workload:\n    label: Workload\n    items: [WL1, WL2, WL3]\n"
        "    min_items: 2\nitems:\n  WL1: I have enough time for my work.\n"
        "  WL2: My workload is manageable.\n  WL3: I can take my breaks.\n"
    )
    new = study / "data/raw/2026-1"
    shutil.copytree(study / f"data/raw/{WAVE}", new)
    staff = pd.read_csv(new / "staff.csv", dtype=str, keep_default_na=False)
    if not drop_new_items:
        rng = np.random.default_rng(5)
        for item in ("WL1", "WL2", "WL3"):
            staff[item] = rng.integers(0, 5, len(staff)).astype(str)
    staff.to_csv(new / "staff.csv", index=False)
    return study


def _snakemake(study, cwd, *targets, site=None):
    env = {**os.environ, **({"PYTHONPATH": str(site)} if site else {})}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(ROOT / "Snakefile"),
            "-d",
            str(study),
            "--cores",
            "2",
            "--nocolor",
            *targets,
        ],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
        env=env,
    )


def test_an_instrument_fielded_in_one_wave_only(run, tmp_path):
    study = _study_with_a_second_wave(tmp_path)
    res = _snakemake(
        study,
        tmp_path,
        "results/2026-1/multilevel/change.csv",
        "results/2026-1/psychometrics/scales.csv",
        "results/2025-1/psychometrics/scales.csv",
        site=run["site"],
    )
    assert res.returncode == 0, res.stderr[-4000:]
    first = json.loads((study / f"results/{WAVE}/validation.json").read_text())
    assert first["status"] == "pass"
    assert first["summary"]["instruments_not_fielded"] == {"workload": ["2026-1"]}
    scored = {
        w: set(pd.read_parquet(study / f"results/{w}/scores/staff.parquet").columns)
        for w in (WAVE, "2026-1")
    }
    assert "workload" in scored["2026-1"] and "workload" not in scored[WAVE]
    scales = {
        w: set(pd.read_csv(study / f"results/{w}/psychometrics/scales.csv")["scale"])
        for w in (WAVE, "2026-1")
    }
    assert scales[WAVE] == set(REFERENCE["scales"])
    assert scales["2026-1"] == set(REFERENCE["scales"]) | {"workload"}
    change = pd.read_csv(study / "results/2026-1/multilevel/change.csv")
    assert set(change["scale"]) == set(REFERENCE["scales"])  # the scales both waves have


def test_an_expected_instrument_that_is_missing_is_one_located_error(run, tmp_path):
    study = _study_with_a_second_wave(tmp_path, drop_new_items=True)
    res = _snakemake(study, tmp_path, "results/2026-1/validation.json", site=run["site"])
    assert res.returncode == 0, res.stderr[-4000:]
    errors = json.loads((study / "results/2026-1/validation.json").read_text())["errors"]
    assert [(e["rule"], e["file"], e["value"]) for e in errors] == [
        ("expected instrument", "data/raw/2026-1/staff.csv", "workload")
    ]
    assert "none of its 3 items ('WL1', 'WL2', 'WL3') is in the file" in errors[0]["message"]
