"""Reading a source file in any supported format, keeping its labels and missing codes.

``read_source`` returns the data with every column as read (ids as strings) and a ``SourceMeta``
holding SPSS variable labels, value labels and user-missing codes where the format has them.
Unreadable files raise an ``InputError`` naming the file and what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flaqum.errors import InputError

EXTENSIONS = (".sav", ".zsav", ".por", ".dta", ".sas7bdat", ".csv", ".xlsx")


@dataclass
class SourceMeta:
    path: str
    format: str
    column_labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict] = field(default_factory=dict)
    user_missing: dict[str, list] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "column_labels": self.column_labels,
            "value_labels": {
                c: {str(k): v for k, v in d.items()} for c, d in self.value_labels.items()
            },
            "user_missing": {c: [float(x) for x in v] for c, v in self.user_missing.items()},
        }


def find_source(wave_dir: Path | str, stem: str) -> Path | None:
    """The file ``<stem>.<ext>`` in the wave folder; an error if several formats are present."""
    wave_dir = Path(wave_dir)
    hits = [
        wave_dir / f"{stem}{ext}" for ext in EXTENSIONS if (wave_dir / f"{stem}{ext}").is_file()
    ]
    hits += [
        p for p in wave_dir.glob(f"{stem}.*") if p.suffix.lower() in EXTENSIONS and p not in hits
    ]
    if len(hits) > 1:
        raise InputError(
            wave_dir,
            f"source {stem!r} is present in several files {[p.name for p in hits]}; "
            "keep exactly one",
            rule="one file per source",
        )
    return hits[0] if hits else None


def _spss_missing(meta) -> dict[str, list]:
    out: dict[str, list] = {}
    for col, ranges in (getattr(meta, "missing_ranges", None) or {}).items():
        vals = []
        for r in ranges:
            lo, hi = r["lo"], r["hi"]
            if lo == hi:
                vals.append(lo)
            else:
                vals.extend(np.arange(lo, hi + 1).tolist())
        out[col] = vals
    for col, vals in (getattr(meta, "missing_user_values", None) or {}).items():
        out.setdefault(col, []).extend(v for v in vals if not isinstance(v, str))
    return out


def read_source(path: Path | str) -> tuple[pd.DataFrame, SourceMeta]:
    """Read one raw file. User-missing SPSS codes are kept as values (the codebook decides)."""
    import pyreadstat

    path = Path(path)
    ext = path.suffix.lower()
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty (0 bytes)", rule="a source has a header and rows")
    try:
        if ext in (".sav", ".zsav"):
            df, m = pyreadstat.read_sav(str(path), user_missing=True)
        elif ext == ".por":
            df, m = pyreadstat.read_por(str(path))
        elif ext == ".dta":
            df, m = pyreadstat.read_dta(str(path))
        elif ext == ".sas7bdat":
            df, m = pyreadstat.read_sas7bdat(str(path))
        elif ext == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            m = None
        elif ext == ".xlsx":
            df = pd.read_excel(path, dtype=str)
            m = None
        else:
            raise InputError(
                path,
                f"unsupported extension {ext!r}; use one of {EXTENSIONS}",
                rule="supported formats",
            )
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(
            path, "the file has no header and no rows", rule="a source has a header and rows"
        ) from None
    except Exception as exc:  # pyreadstat.ReadstatError, UnicodeDecodeError, zip errors, ...
        kind = {
            ".sav": "SPSS",
            ".zsav": "SPSS",
            ".por": "SPSS portable",
            ".dta": "Stata",
            ".sas7bdat": "SAS",
            ".csv": "CSV",
            ".xlsx": "Excel",
        }.get(ext, ext)
        raise InputError(
            path,
            f"cannot be read as {kind} ({type(exc).__name__}: {exc}); "
            "is the file truncated or of another format?",
            rule="readable file",
        ) from None
    if m is not None:
        meta = SourceMeta(
            path=str(path),
            format=ext.lstrip("."),
            column_labels={
                c: lab for c, lab in zip(m.column_names, m.column_labels, strict=False) if lab
            },
            value_labels=dict(m.variable_value_labels or {}),
            user_missing=_spss_missing(m),
        )
    else:
        meta = SourceMeta(path=str(path), format=ext.lstrip("."))
    if len(df.columns) == 0:
        raise InputError(path, "the file has no columns", rule="a source has a header and rows")
    return df, meta


def as_id(series: pd.Series) -> pd.Series:
    """Ids as strings: numeric ids lose a trailing '.0'; missing stays missing."""
    if pd.api.types.is_numeric_dtype(series):
        out = series.map(
            lambda v: None if pd.isna(v) else (str(int(v)) if float(v).is_integer() else str(v))
        )
    else:
        out = series.map(lambda v: None if pd.isna(v) else str(v).strip())
    out = out.where(out != "", None)
    return out.astype("string")
