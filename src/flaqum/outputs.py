"""Where a wave's outputs live, what they were made from, and how stale ones are removed.

- ``raw_manifest``: the sha256 of each raw file of a wave. The DAG gives it to validation as a
  parameter, so a raw file replaced by different content re-runs the wave even when the new
  file carries an older modification time (``cp -p``, unzip), which Snakemake's time stamps
  alone would miss.
- ``clear_failed_wave``: when a wave fails validation, everything made from its earlier,
  valid state is removed (processed data, results, reports), so no later step and no reader
  takes an old result for the current one. Only ``validation.json`` (the findings) stays.
- ``stale_reports``: reports of hospitals that are no longer in the wave's register.
- ``run_summary`` also removes the outputs the DAG names as stale: a valid wave's change since
  the previous wave, once no earlier wave passes validation (one failed on a rerun).

Every path is built from a wave name and hospital ids that passed ``flaqum.ids``, and every
removal is checked to stay inside the study folder.
"""

from __future__ import annotations

import hashlib
import shutil
from functools import lru_cache
from pathlib import Path

from flaqum.ids import check_id

# The folders, relative to the study folder, that hold what the pipeline makes of a wave.
WAVE_FOLDERS = ("data/processed/{wave}", "results/{wave}", "reports/{wave}")
RESEARCH_FOLDER = "research"  # reports/<wave>/research/: the consortium report, never a hospital's

#: Where the stages write a wave's files, relative to the study folder, by the name their
#: readers use (docs/outputs.md defines each file): the one list of these paths. The DAG's
#: input functions (``workflow/rules/common.smk``), the hypotheses
#: (:data:`flaqum.hypotheses.INPUTS`) and the reports (``flaqum.report.data.wave_paths``) read
#: it; the rules' ``output:`` keep their paths written out, as Snakemake shows them, and
#: ``tests/test_outputs.py`` checks that each path here is one a rule writes.
WAVE_FILES = {
    "validation": "results/{wave}/validation.json",
    # processed data (ingest): the registers, the maturity matrix's items, the outcomes
    "organisations": "data/processed/{wave}/organisations.parquet",
    "team_register": "data/processed/{wave}/teams.parquet",
    "maturity_items": "data/processed/{wave}/maturity.parquet",
    "outcomes": "data/processed/{wave}/outcomes.parquet",
    "team_outcomes": "data/processed/{wave}/team_outcomes.parquet",
    # scores, psychometrics, multilevel models
    "maturity": "results/{wave}/scores/maturity.parquet",
    "scales": "results/{wave}/psychometrics/scales.csv",
    "items": "results/{wave}/psychometrics/items.csv",
    "agreement": "results/{wave}/psychometrics/agreement.csv",
    "invariance": "results/{wave}/psychometrics/invariance.csv",
    "variance": "results/{wave}/multilevel/variance.csv",
    "teams": "results/{wave}/multilevel/teams.csv",
    "hospitals": "results/{wave}/multilevel/hospitals.csv",
    "adjusted": "results/{wave}/multilevel/adjusted.csv",
    "change": "results/{wave}/multilevel/change.csv",
    # outcome hypotheses, the research team's extra results, the report statistics
    "hypotheses": "results/{wave}/hypotheses/summary.csv",
    "funnel": "results/{wave}/funnel.csv",
    "planning": "results/{wave}/planning.csv",
    "planning_hospitals": "results/{wave}/planning_hospitals.csv",
    **{
        f"bench_{name}": f"results/{{wave}}/benchmark/{name}.csv"
        for name in ("items", "scales", "stakeholders", "maturity", "peers", "trends")
    },
}
#: A source's processed data and scores (``{source}``: its name in the config).
SOURCE_FILES = {
    "processed": "data/processed/{wave}/{source}.parquet",
    "scores": "results/{wave}/scores/{source}.parquet",
}


def wave_file(key: str, wave: str, source: str | None = None) -> str:
    """The path of a wave's file :data:`WAVE_FILES` names ``key`` (or, with ``source``, of
    :data:`SOURCE_FILES`), relative to the study folder."""
    if source is not None:
        return SOURCE_FILES[key].format(wave=wave, source=source)
    return WAVE_FILES[key].format(wave=wave)


@lru_cache(maxsize=4096)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sha256(path: Path | str) -> str:
    """The file's sha256 (computed once per process for a given size and time stamp)."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def raw_manifest(files) -> dict[str, str]:
    """``{file name: sha256}`` of the given raw files (names only: the folder is the wave)."""
    return {Path(f).name: sha256(f) for f in sorted(map(str, files))}


def _inside(root: Path, path: Path) -> Path:
    root, resolved = root.resolve(), path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"{path} is outside the study folder {root}")
    return resolved


def _check_wave(wave: str) -> None:
    why = check_id(wave, "wave")
    if why:
        raise ValueError(why)


def clear_failed_wave(root: Path | str, wave: str) -> list[Path]:
    """Remove what earlier runs made of ``wave`` except its validation findings; returns the
    removed paths (relative to ``root``)."""
    _check_wave(wave)
    root = Path(root)
    removed = []
    for pattern in WAVE_FOLDERS:
        folder = root / pattern.format(wave=wave)
        if not folder.exists():
            continue
        keep = ("validation.json",) if pattern.startswith("results/") else ()
        for child in sorted(folder.iterdir()):
            if child.name in keep:
                continue
            target = _inside(root, child)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
            removed.append(child.relative_to(root))
        if not keep:
            _inside(root, folder).rmdir()
    return removed


def stale_reports(root: Path | str, wave: str, hospitals) -> list[Path]:
    """Hospital reports under ``reports/<wave>/`` whose hospital is not in ``hospitals``."""
    _check_wave(wave)
    folder = Path(root) / "reports" / wave
    if not folder.is_dir():
        return []
    keep = set(map(str, hospitals))
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".html", ".pdf") and p.stem not in keep
    )


def run_summary(
    root: Path | str,
    waves,
    failed,
    invalid_waves: dict[str, str],
    hospitals: dict[str, list[str]],
    raw_dir: str = "data/raw",
    shown: int = 3,
    stale=(),
) -> tuple[dict, str]:
    """The end of a run: (record, text). Removes reports of hospitals no longer in a valid
    wave's register, and the ``stale`` outputs (paths relative to ``root``, each a wave's
    change since a wave that no longer passes validation); lists each failed wave's first
    findings and where all of them are; names wave folders that are not waves and hypotheses
    that could not be fitted.
    ``shown``: findings listed per rule broken (validation.json has them all)."""
    import json

    import pandas as pd

    from flaqum.validate import Finding, Validation

    root = Path(root)
    lines: list[str] = []
    removed = []
    for wave, ids in hospitals.items():
        for path in stale_reports(root, wave, ids):
            path.unlink()
            removed.append(str(path.relative_to(root)))
            lines.append(
                f"removed {path.relative_to(root)}: hospital {path.stem!r} is no longer in the "
                f"organisations register of wave {wave}"
            )
    outputs_removed = []
    for rel in stale:
        path = root / rel
        _check_wave(Path(rel).parts[1])
        if path.is_file():
            _inside(root, path).unlink()
            outputs_removed.append(str(rel))
            lines.append(
                f"removed {rel}: no earlier wave passes validation now, so there is no change "
                "to show"
            )
    not_fitted = []
    for wave in waves:
        summary = root / wave_file("hypotheses", wave)
        if wave in failed or not summary.exists():
            continue
        table = pd.read_csv(summary, dtype=str)
        if "status" in table:
            bad = table[table["status"] == "not_fitted"].drop_duplicates("hypothesis")
            for _, row in bad.iterrows():
                hyp, reason = row["hypothesis"], row.get("reason", "")
                not_fitted.append({"wave": wave, "hypothesis": hyp, "reason": reason})
                lines.append(
                    f"hypothesis {hyp} ({wave}) could not be fitted: {reason} "
                    f"(results/{wave}/hypotheses/{hyp}.json)"
                )
    for name, why in invalid_waves.items():
        lines.append(f"{raw_dir}/{name}: not processed: {why}")
    errors = {}
    for wave in failed:
        path = root / wave_file("validation", wave)
        data = json.loads(path.read_text())
        errors[wave] = data["n_errors"]
        lines.append(
            f"Wave {wave} failed validation; nothing of it was processed. Its errors, "
            f"the first {shown} of each rule:"
        )
        found = Validation(wave, errors=[Finding.from_dict("error", e) for e in data["errors"]])
        lines += found.text(limit=shown, json_path=path.relative_to(root)).splitlines()[1:]
    ok = [w for w in waves if w not in failed]
    head = f"{len(ok)} of {len(waves)} wave(s) processed" + (f": {', '.join(ok)}" if ok else "")
    if failed:
        head += f"; failed validation: {', '.join(failed)}"
    record = {
        "waves_processed": ok,
        "waves_failed": {w: {"errors": errors[w]} for w in failed},
        "not_waves": invalid_waves,
        "reports_removed": removed,
        "outputs_removed": outputs_removed,
        "hypotheses_not_fitted": not_fitted,
        "status": "fail" if failed or invalid_waves else "pass",
    }
    return record, "\n".join([head, *lines])
