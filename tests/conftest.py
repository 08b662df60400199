"""Shared fixtures: the repository's study, and small synthetic consortia made once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The demo study's config as the tests know it (a copy: the shipped config/ is the user's)
DEMO = ROOT / "tests" / "fixtures" / "demo_study"
sys.path.insert(0, str(ROOT / "src"))

from flaqum.config import load_study  # noqa: E402
from flaqum.simulate import generate_consortium  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.fixture(scope="session")
def study():
    return load_study(DEMO / "config" / "config.yaml", root=DEMO)


@pytest.fixture(scope="session")
def small_consortium(tmp_path_factory, study):
    """8 hospitals, two waves, SPSS surveys: the shape of the demo at a fraction of its size."""
    out = tmp_path_factory.mktemp("consortium")
    truth = generate_consortium(
        out, study, n_hospitals=8, waves=("2024-1", "2025-2"), seed=7, scale=0.25, join_late=1
    )
    return out, truth


@pytest.fixture
def wave_copy(tmp_path, small_consortium):
    """A private copy of the first small wave, safe to break."""
    src, _ = small_consortium
    dst = tmp_path / "raw" / "2024-1"
    shutil.copytree(src / "2024-1", dst)
    return dst


def make_project(tmp_path: Path, raw_src: Path | None = None, waves=None) -> Path:
    """A working directory with the workflow (symlinked) and its own config and data."""
    proj = tmp_path / "project"
    proj.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow"):
        target = proj / name
        if not target.exists():
            target.symlink_to(ROOT / name)
    if not (proj / "config").exists():
        shutil.copytree(DEMO / "config", proj / "config")
    raw = proj / "data" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if raw_src is not None:
        for w in waves or [p.name for p in raw_src.iterdir() if p.is_dir()]:
            shutil.copytree(raw_src / w, raw / w)
    return proj


def run_snakemake(proj: Path, *args, check=True, timeout=900):
    env = dict(os.environ)
    env.setdefault("MPLBACKEND", "Agg")
    res = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", "--nocolor", *args],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and res.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-8000:]}"
        )
    return res
