"""Where a wave's outputs live and how stale ones go (flaqum.outputs), and the config read from
the command line (flaqum.config)."""

from __future__ import annotations

import os

import pytest
from conftest import DEMO

from flaqum.config import load_study, read_yaml
from flaqum.errors import ConfigError
from flaqum.outputs import clear_failed_wave, raw_manifest, stale_reports


def test_manifest_follows_content_not_time_stamps(tmp_path):
    f = tmp_path / "teams.csv"
    f.write_text("team_id,hospital_id\nT1,H1\n")
    os.utime(f, (1_000_000_000, 1_000_000_000))
    before = raw_manifest([f])
    f.write_text("team_id,hospital_id\nT1,H2\n")
    os.utime(f, (900_000_000, 900_000_000))  # older than before, as `cp -p` can leave it
    after = raw_manifest([f])
    assert list(before) == ["teams.csv"] and before != after
    assert len(after["teams.csv"]) == 64


def test_a_failed_wave_keeps_only_its_findings(tmp_path):
    for rel in ("data/processed/w1/staff.parquet", "results/w1/validation.json",
                "results/w1/multilevel/teams.csv", "reports/w1/H1.html",
                "reports/w1/research/consortium.html", "results/w2/validation.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    removed = {str(p) for p in clear_failed_wave(tmp_path, "w1")}
    assert removed == {"data/processed/w1/staff.parquet", "results/w1/multilevel",
                       "reports/w1/H1.html", "reports/w1/research"}
    assert not (tmp_path / "reports/w1").exists()
    assert not (tmp_path / "data/processed/w1").exists()
    assert [p.name for p in (tmp_path / "results/w1").iterdir()] == ["validation.json"]
    assert (tmp_path / "results/w2/validation.json").exists()
    with pytest.raises(ValueError, match="not allowed"):
        clear_failed_wave(tmp_path, "../w2")


def test_stale_reports_are_those_without_a_hospital(tmp_path):
    folder = tmp_path / "reports/w1"
    (folder / "research").mkdir(parents=True)
    for name in ("H1.html", "H2.html", "H2.pdf", "research/consortium.html"):
        (folder / name).write_text("x")
    assert [p.name for p in stale_reports(tmp_path, "w1", ["H1"])] == ["H2.html", "H2.pdf"]


def test_nested_config_from_the_command_line_gets_its_types():
    """`snakemake --config report='{batches: 50}'` hands over {'batches': '50'} (YAML's
    BaseLoader): the schema's types are restored, so the README's example works."""
    config = read_yaml(DEMO / "config/config.yaml")
    config["report"] = {"batches": "50", "engine": "jupyter"}
    config["multilevel"] = {"agreement_threshold": "0.6", "cross_level_predictor": "null"}
    study = load_study(config, root=DEMO)
    assert study.config["report"]["batches"] == 50
    assert study.config["multilevel"]["agreement_threshold"] == 0.6
    assert study.config["multilevel"]["cross_level_predictor"] is None
    config["report"] = {"batches": "fifty"}
    with pytest.raises(ConfigError, match="at report/batches: 'fifty' is not of type 'integer'"):
        load_study(config, root=DEMO)


def test_min_group_size_below_three_needs_the_override():
    config = read_yaml(DEMO / "config/config.yaml")
    config["min_group_size"] = 2
    with pytest.raises(ConfigError, match="at min_group_size: 2 is below 3"):
        load_study(config, root=DEMO)
    config["allow_min_group_size_below_3"] = True
    assert load_study(config, root=DEMO).min_group_size == 2
