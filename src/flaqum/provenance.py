"""What made a wave's results: ``results/<wave>/provenance.json``.

Written once every output of a valid wave exists: the package version, the git commit of the
workflow (and whether its tree had uncommitted changes), the sha256 of the effective config,
of each codebook and hypothesis file and of each raw file, the versions of the numerical
dependencies, and the list of the wave's outputs. A rerun of a published analysis compares
its own record with this one.

``stamp`` is the short form carried by each hypothesis JSON (its ``provenance`` block) and
each report's Methods: package version, commit, dirty, date. The date is the day (UTC), so a
re-render on the same day gives the same bytes, and ``SOURCE_DATE_EPOCH`` (seconds since
1970, the reproducible-builds convention) sets it, so a rerun of a published analysis can
give the reports it published byte for byte. These are file contents, not Snakemake inputs,
so they never re-trigger a job.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import flaqum
from flaqum.errors import ConfigError

DEPENDENCIES = (
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "pyarrow",
    "pyreadstat",
    "matplotlib",
    "snakemake",
    "nbconvert",
    "nbclient",
    "typst",
    "uharfbuzz",
)


def _git(repo: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def code_version(repo: Path | str | None = None) -> dict:
    """Package version and, where the workflow is a git checkout, its commit and dirtiness."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no") if commit else None
    package = Path(flaqum.__file__).resolve().parent
    return {
        "package_version": flaqum.__version__,
        "package_path": str(package),
        # false: the package was installed from elsewhere, so the commit below is the
        # workflow's, not necessarily the package's (compare package_version)
        "package_in_checkout": package == (repo / "src" / "flaqum").resolve(),
        "git_commit": commit,
        "git_dirty": (bool(status) if status is not None else None),
    }


def dependency_versions() -> dict[str, str | None]:
    """Installed versions of the numerical and rendering dependencies, and of Python."""
    out = {"python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def config_hash(config: dict) -> str:
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def wave_provenance(
    wave: str,
    config: dict,
    raw: dict[str, str],
    codebooks: dict[str, str],
    hypotheses: dict[str, str],
    outputs,
    repo: Path | str | None = None,
) -> dict:
    return {
        "wave": wave,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **code_version(repo),
        "python_dependencies": dependency_versions(),
        "config_sha256": config_hash(config),
        "codebooks_sha256": codebooks,
        "hypotheses_sha256": hypotheses,
        "raw_sha256": raw,
        "outputs": sorted(map(str, outputs)),
    }


def _package_checkout() -> Path | None:
    """The git checkout whose ``src/flaqum`` is the imported package, or None (installed)."""
    package = Path(flaqum.__file__).resolve().parent
    root = package.parents[1]
    return root if package.parent.name == "src" and (root / ".git").exists() else None


@lru_cache(maxsize=8)
def _stamp(repo: str | None) -> tuple:
    if repo is None:
        return (None, None)
    info = code_version(repo)
    return (info["git_commit"], info["git_dirty"])


def stamp(repo: Path | str | None = None) -> dict:
    """``{version, commit, dirty, date}``: what made a hypothesis result or a report.

    ``commit`` is that of ``repo``, by default the checkout the package was imported from
    (None when the package is an installed copy, or git is absent); ``dirty`` says whether
    its tracked files had uncommitted changes; ``date`` is today (UTC, ISO 8601), or the day
    of ``SOURCE_DATE_EPOCH`` when that is set.
    """
    where = repo if repo is not None else _package_checkout()
    commit, dirty = _stamp(str(where) if where is not None else None)
    return {
        "version": flaqum.__version__,
        "commit": commit,
        "dirty": dirty,
        "date": _today(),
    }


def _today() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC).date().isoformat()
        except (ValueError, OverflowError, OSError):
            raise ConfigError(
                f"SOURCE_DATE_EPOCH={epoch!r}: not a whole number of seconds since 1970-01-01 "
                "(rule: the reproducible-builds convention, e.g. 1767225600)"
            ) from None
    return datetime.now(UTC).date().isoformat()


def stamp_text(s: dict | None = None) -> str:
    """One line for a report's Methods: "flaqum 0.1.0, commit 1a2b3c4d5e6f (uncommitted
    changes), 2026-12-02"."""
    s = s or stamp()
    parts = [f"flaqum {s['version']}"]
    if s["commit"]:
        dirty = " (uncommitted changes)" if s["dirty"] else ""
        parts.append(f"commit {s['commit'][:12]}{dirty}")
    parts.append(s["date"])
    return ", ".join(parts)
