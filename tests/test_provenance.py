"""What made a result: the version in one place, and the stamp carried by hypothesis results
and reports (``flaqum.provenance``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import flaqum
from flaqum import provenance
from flaqum.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once():
    """pyproject.toml reads the version from ``flaqum.__version__``; nowhere else holds it."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"]
    assert "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "flaqum.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", flaqum.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {flaqum.__version__}" in changelog


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_stamp_names_the_checkout_the_package_came_from(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    s = provenance.stamp()
    assert s["version"] == flaqum.__version__
    assert s["date"] == datetime.now(UTC).date().isoformat()
    package = Path(flaqum.__file__).resolve().parent
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    if package.parent.name != "src" or head.returncode != 0:
        assert s["commit"] is None and s["dirty"] is None  # an installed copy
        return
    status = subprocess.run(
        ["git", "-C", str(package), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    assert s["commit"] == head.stdout.strip()
    assert s["dirty"] is bool(status.stdout.strip())


def test_stamp_of_a_folder_that_is_not_a_checkout(tmp_path):
    s = provenance.stamp(tmp_path)
    assert s["commit"] is None and s["dirty"] is None
    assert s["version"] == flaqum.__version__


def test_source_date_epoch_sets_the_date(monkeypatch):
    """A rerun can date its reports as the published ones (reproducible-builds convention)."""
    day = datetime(2026, 3, 4, 23, 59, tzinfo=UTC)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(day.timestamp())))
    assert provenance.stamp()["date"] == "2026-03-04"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH='yesterday': not a whole number"):
        provenance.stamp()


def test_stamp_text():
    s = {"version": "1.2.3", "commit": "0123456789abcdef0123", "dirty": False, "date": "2026-01-02"}
    assert provenance.stamp_text(s) == "flaqum 1.2.3, commit 0123456789ab, 2026-01-02"
    dirty = provenance.stamp_text({**s, "dirty": True})
    assert dirty == "flaqum 1.2.3, commit 0123456789ab (uncommitted changes), 2026-01-02"
    bare = provenance.stamp_text({**s, "commit": None, "dirty": None})
    assert bare == "flaqum 1.2.3, 2026-01-02"


def test_dependency_versions_name_python_and_the_numerical_libraries():
    deps = provenance.dependency_versions()
    assert deps["python"].startswith("3.")
    for name in ("numpy", "scipy", "pandas", "statsmodels"):
        assert deps[name] == __import__(name).__version__


def test_the_lock_pins_every_dependency_of_pyproject():
    """requirements.lock (README: rerunning an analysis) pins each direct dependency and dev
    extra of pyproject.toml to one version that meets its range; regenerate it when not."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#", "-")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.split(";")[0].strip()
    wanted = meta["dependencies"] + meta["optional-dependencies"]["dev"]
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in pins, f"requirements.lock does not pin {spec.name}"
        assert spec.specifier.contains(pins[name]), (spec, pins[name])
