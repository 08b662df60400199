"""Ingest: one raw source of a wave to typed, labelled parquet.

Ids become strings, item answers become numbers, and reverse-keyed items are recoded as
``min + max - x`` so that a higher value always means a better experience. Which answers are
missing is decided by ``io.classify_answers``, the same rule validation reports on: the
codebook's response range and missing codes decide; a value the file declares missing (SPSS
user-missing) stays an answer when it lies inside the response range and is missing when it
lies outside; anything that is not a valid answer is stored as missing. Labels (variable,
value, declared missing values) travel in the parquet's metadata. Run only after the wave passed
validation: bad values have been reported there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from flaqum.config import Study
from flaqum.errors import InputError
from flaqum.io import as_id, classify_answers, find_source, numeric_values, read_source
from flaqum.utils import write_parquet


def require_pass(validation_json: Path | str) -> None:
    """Stop with the validation's readable summary if the wave failed."""
    from flaqum.validate import Finding

    data = json.loads(Path(validation_json).read_text())
    if data["status"] != "pass":
        errs = data["errors"]
        lines = [
            f"Wave {data['wave']} failed validation with {data['n_errors']} error(s); "
            f"fix the raw files and re-run. Details: {validation_json}"
        ]
        for e in errs[:15]:
            lines.append(f"  {Finding.from_dict('error', e)}")
        raise InputError(validation_json, "\n".join(lines))


def _canonical(study: Study, source: str, out: pd.DataFrame, hospitals=None) -> pd.DataFrame:
    """Id columns under their canonical names (``Study.canonical_ids``). A respondent or team
    source without a hospital column belongs to the study's one organisation (validation has
    checked that the register holds exactly one): ``hospital_id`` is that id."""
    names = study.canonical_ids(source)
    clash = [c for raw, c in names.items() if raw != c and c in out.columns]
    if clash:
        raise InputError(
            study.sources[source].get("id"),
            f"columns {clash} exist besides the id columns that are renamed to them "
            f"({names}); rename or drop them",
            rule="canonical id columns",
        )
    out = out.rename(columns=names)
    spec = study.sources[source]
    in_teams = spec["kind"] in ("survey", "team") or (
        spec["kind"] == "register" and spec.get("team")
    )
    if not spec.get("hospital") and in_teams and hospitals:
        if len(hospitals) == 1:
            out.insert(1, "hospital_id", pd.array([hospitals[0]] * len(out), dtype="string"))
    return out


def process_source(
    study: Study, source: str, df: pd.DataFrame, meta, hospitals=None, wave: str | None = None
) -> tuple[pd.DataFrame, dict]:
    spec = study.sources[source]
    out = df.copy()
    for key in ("id", "hospital", "team"):
        col = spec.get(key)
        if col and col in out.columns:
            out[col] = as_id(out[col])
    for col, typ in spec.get("columns", {}).items():
        if col in out.columns:
            out[col] = (
                pd.to_numeric(out[col], errors="coerce")
                if typ != "string"
                else out[col].astype("string")
            )
    recoded = {}
    for inst in study.instruments_for(source, wave):
        for var, d in inst.raw.get("variables", {}).items():
            if var in out.columns:
                out[var] = (
                    pd.to_numeric(out[var], errors="coerce")
                    if d["type"] in ("integer", "number")
                    else out[var].astype("string")
                )
        if "response" not in inst.raw:
            continue
        lo, hi = inst.rmin, inst.rmax
        rev = inst.reverse_items
        for item in inst.items:
            if item not in out.columns:
                continue
            answers = classify_answers(
                numeric_values(out[item]).x,
                lo,
                hi,
                inst.missing_codes,
                meta.user_missing.get(item),
            )
            x = answers.cleaned()
            if item in rev:
                x = lo + hi - x
                recoded[item] = f"reverse-keyed: stored as {lo} + {hi} - answer"
            out[item] = x
    if spec["kind"] in ("hospital", "team") and not study.instruments_for(source, wave):
        for col in out.columns:
            if col not in study.canonical_ids(source):
                num = pd.to_numeric(out[col], errors="coerce")
                if num.notna().sum() == out[col].notna().sum():
                    out[col] = num
    out = _canonical(study, source, out, hospitals)
    labels = meta.to_dict()
    labels["recoded"] = recoded
    for inst in study.instruments_for(source, wave):
        for item, text in inst.items.items():
            labels["column_labels"].setdefault(item, text)
    return out, labels


def ingest_source(
    study: Study,
    wave_dir: Path | str,
    source: str,
    out_path: Path | str,
    hospitals=None,
    wave: str | None = None,
) -> int:
    """``hospitals``: the wave's hospital ids (validation's summary), for a source without a
    hospital column in a one-organisation study."""
    path = find_source(wave_dir, source)
    if path is None:
        raise InputError(Path(wave_dir) / source, f"source {source!r} not found")
    df, meta = read_source(path)
    out, labels = process_source(study, source, df, meta, hospitals, wave)
    write_parquet(out, out_path, {"source": source, "file": str(path), **labels})
    return len(out)
