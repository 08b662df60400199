"""The config and codebooks: schema and rule violations give messages naming file and key."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import DEMO, ROOT

from flaqum.config import load_instrument, load_study
from flaqum.errors import ConfigError
from flaqum.hypotheses import check_hypotheses


def test_shipped_config_is_valid():
    """The shipped config/ is the user's to edit (README): it is checked for validity only,
    as a run checks it (config and codebooks against their schemas and rules, each hypothesis
    against the study), whatever instruments, items and hypotheses it holds."""
    shipped = load_study(ROOT / "config" / "config.yaml", root=ROOT)
    assert shipped.instruments and shipped.scales_for("staff")
    check_hypotheses(shipped, sorted((ROOT / "config" / "hypotheses").glob("*.yaml")))


def test_demo_study_codebooks(study):
    """The demo study as the tests know it (tests/fixtures/demo_study, the ``study`` fixture)."""
    staff = study.scales_for("staff")
    assert {"psych_safety", "team_collab", "qs_prof_total"} <= set(staff)
    ps = staff["psych_safety"]
    assert ps.items == tuple(f"PS{i}" for i in range(1, 8))
    assert ps.reverse == ("PS1", "PS3", "PS5")
    mm = study.instruments["maturity_matrix"]
    levels = [s.level for s in mm.scales.values()]
    assert len(mm.items) == 52
    assert levels.count("driver") == 6 and levels.count("building_block") == 19
    # each core process sits in exactly one building block, each block under a driver
    blocks = [s for s in mm.scales.values() if s.level == "building_block"]
    assert sorted(i for b in blocks for i in b.items) == sorted(mm.items)
    assert all(mm.scales[b.parent].level == "driver" for b in blocks)
    # the two Quickscan versions are mirrored item for item
    prof, pat = (
        study.instruments["quickscan_professionals"],
        study.instruments["quickscan_patients"],
    )
    assert list(prof.items) == list(pat.items) and len(prof.items) == 15
    assert prof.raw["dimensions"] == pat.raw["dimensions"]


def _codebook_dir(tmp_path, mutate):
    d = tmp_path / "instruments"
    shutil.copytree(DEMO / "config" / "instruments", d)
    path = d / "psychological_safety.yaml"
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return d, path


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda d: d.update(scoring="mean"),
            ["psychological_safety.yaml", "(top level)", "Additional properties", "'scoring'"],
        ),
        (
            lambda d: d["scales"]["psych_safety"]["items"].append("PS8"),
            [
                "psychological_safety.yaml",
                "scales/psych_safety/items",
                "PS8",
                "not defined under items",
            ],
        ),
        (
            lambda d: d["scales"]["psych_safety"]["reverse"].append("TC2"),
            ["scales/psych_safety/reverse", "TC2", "reverse-keyed item must belong to its scale"],
        ),
        (
            lambda d: d["scales"]["psych_safety"].update(min_items=9),
            ["scales/psych_safety/min_items", "exceeds"],
        ),
        (
            lambda d: d["response"].update(missing_codes=[7, 9]),
            ["response/missing_codes", "[7]", "inside the response range"],
        ),
        (lambda d: d.update(unit="ward"), ["at unit", "'ward' is not one of"]),
    ],
)
def test_codebook_errors_name_file_key_and_rule(tmp_path, mutate, expected):
    d, path = _codebook_dir(tmp_path, mutate)
    with pytest.raises(ConfigError) as exc:
        load_study(DEMO / "config" / "config.yaml", root=DEMO, instruments_dir=d)
    for text in expected:
        assert text in str(exc.value)


def test_duplicate_scale_id_across_instruments(tmp_path):
    d, _ = _codebook_dir(tmp_path, lambda x: None)
    other = yaml.safe_load((d / "team_collaboration.yaml").read_text())
    other["scales"]["psych_safety"] = other["scales"].pop("team_collab")
    (d / "team_collaboration.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(ConfigError, match=r"scale id also defined in .*psychological_safety"):
        load_study(DEMO / "config" / "config.yaml", root=DEMO, instruments_dir=d)


def test_codebook_id_must_match_file_name(tmp_path):
    p = tmp_path / "safety.yaml"
    shutil.copy(DEMO / "config" / "instruments" / "psychological_safety.yaml", p)
    with pytest.raises(ConfigError, match="must equal the file name 'safety'"):
        load_instrument(p)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(min_group_size="five"), ["at min_group_size", "'five' is not of type"]),
        (lambda c: c.update(min_groupsize=5), ["Additional properties", "'min_groupsize'"]),
        (lambda c: c["sources"]["staff"].update(kind="people"), ["at sources/staff/kind"]),
        (lambda c: c.update(waves=["2024 1"]), ["at waves/0", "does not match"]),
        (lambda c: c["report"].update(engine="pandoc"), ["at report/engine"]),
    ],
)
def test_invalid_config_is_reported(mutate, expected):
    cfg = yaml.safe_load((DEMO / "config" / "config.yaml").read_text())
    mutate(cfg)
    with pytest.raises(ConfigError) as exc:
        load_study(cfg, root=DEMO)
    for text in expected:
        assert text in str(exc.value)


def test_instrument_for_undeclared_source(tmp_path):
    d, _ = _codebook_dir(tmp_path, lambda x: x.update(source="nurses"))
    with pytest.raises(ConfigError, match="'nurses' is not a source declared"):
        load_study(DEMO / "config" / "config.yaml", root=DEMO, instruments_dir=d)
