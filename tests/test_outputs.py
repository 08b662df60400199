"""Where a wave's outputs live and how stale ones go (flaqum.outputs), and the config read from
the command line (flaqum.config)."""

from __future__ import annotations

import os
import re

import pytest
from conftest import DEMO, ROOT

from flaqum.config import load_study, read_yaml
from flaqum.errors import ConfigError
from flaqum.outputs import (
    SOURCE_FILES,
    WAVE_FILES,
    clear_failed_wave,
    raw_manifest,
    run_summary,
    stale_reports,
    wave_file,
)


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


def _rule_outputs() -> list[re.Pattern]:
    """The paths the rules write (the quoted paths in their ``output:`` blocks), as patterns
    in which a wildcard stands for any name."""
    out = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.findall(r"^    output:\n((?:        .*\n|\n)+)", smk.read_text(), re.M):
            for path in re.findall(r'"([^"]*\{wave\}[^"]*)"', block):
                parts = re.split(r"(\{[a-z_]+\})", path)
                out.append(
                    re.compile(
                        "".join(
                            "{wave}"
                            if p == "{wave}"
                            else "[^/]+"
                            if p.startswith("{")
                            else re.escape(p)
                            for p in parts
                        )
                    )
                )
    return out


def test_every_path_of_the_one_list_is_written_by_a_rule():
    """flaqum.outputs holds the paths the readers use; the rules' outputs are written out in
    the rule files. A renamed output that the list does not follow fails here."""
    outputs = _rule_outputs()
    assert len(outputs) > 20
    for key, path in {**WAVE_FILES, **SOURCE_FILES}.items():
        probe = path.replace("{source}", "staff")
        assert any(p.fullmatch(probe) for p in outputs), f"{key}: no rule writes {path}"
    assert wave_file("hospitals", "2024-1") == "results/2024-1/multilevel/hospitals.csv"
    assert wave_file("processed", "2024-1", "staff") == "data/processed/2024-1/staff.parquet"


def test_a_failed_wave_keeps_only_its_findings(tmp_path):
    for rel in (
        "data/processed/w1/staff.parquet",
        "results/w1/validation.json",
        "results/w1/multilevel/teams.csv",
        "reports/w1/H1.html",
        "reports/w1/research/consortium.html",
        "results/w2/validation.json",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    removed = {str(p) for p in clear_failed_wave(tmp_path, "w1")}
    assert removed == {
        "data/processed/w1/staff.parquet",
        "results/w1/multilevel",
        "reports/w1/H1.html",
        "reports/w1/research",
    }
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


def test_the_run_summary_removes_a_change_without_a_valid_previous_wave(tmp_path):
    change = tmp_path / "results/w2/multilevel/change.csv"
    change.parent.mkdir(parents=True)
    change.write_text("x")
    (tmp_path / "results/w2/multilevel/teams.csv").write_text("x")
    stale = ["results/w2/multilevel/change.csv", "results/w3/multilevel/change.csv"]
    record, text = run_summary(tmp_path, ["w2"], [], {}, {"w2": []}, stale=stale)
    assert record["outputs_removed"] == ["results/w2/multilevel/change.csv"]
    assert not change.exists() and (tmp_path / "results/w2/multilevel/teams.csv").exists()
    assert "removed results/w2/multilevel/change.csv: no earlier wave passes" in text
    with pytest.raises(ValueError, match="wave must start with a letter"):
        run_summary(tmp_path, ["w2"], [], {}, {}, stale=["results/../w2/x.csv"])


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
