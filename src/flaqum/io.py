"""Reading a source file in any supported format, keeping its labels and missing codes.

``read_source`` is the one reader of raw files, used by validation and by ingest alike. It
returns the data with every column as read (ids as strings) and a ``SourceMeta`` holding SPSS
variable labels, value labels and declared (user-missing) values where the format has them, the
text encoding a CSV was read in, the sheets of a workbook, and warnings about the reading.

What it does with a file that is not quite right:

- CSV: read as UTF-8 (a byte-order mark is dropped); a file that is not valid UTF-8 is read as
  Windows-1252 (cp1252, what Excel writes for "CSV (Comma delimited)") with a warning that
  names the encoding and the first row with such a character (rule "text encoding"); a file
  that is neither is an error.
- Excel: the first sheet is read; ``SourceMeta.sheets`` names them all, so that validation can
  say which sheet was read when the data seem to be on another one.
- Column names are text; two columns with the same name are an error (rule "unique column
  names"), as is an empty file, a file with no columns or one that cannot be parsed (rules "a
  source has a header and rows", "readable file"). Every such error is an ``InputError``
  naming the file.

SPSS user-missing values are kept as data in the columns (the codebook decides what is missing)
and as ``DeclaredMissing`` (discrete values and ``lo``-``hi`` ranges, never enumerated: a range
``98 THRU HIGHEST`` is the pair ``(98, inf)``). ``classify_answers`` is the one rule that says
which answers are valid, missing or wrong, for validation and ingest alike:

- the codebook's response range and its ``missing_codes`` decide;
- a value the file declares missing that lies inside the response range stays a valid answer
  (validation warns: "file's missing codes differ from the codebook");
- a value outside the range that the file declares missing but the codebook does not list is
  missing (validation warns: "missing code not in the codebook");
- a value that is not finite, outside the range and not a missing code, or not whole is an error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flaqum.errors import InputError

EXTENSIONS = (".sav", ".zsav", ".por", ".dta", ".sas7bdat", ".csv", ".xlsx")
KINDS = {
    ".sav": "SPSS",
    ".zsav": "SPSS",
    ".por": "SPSS portable",
    ".dta": "Stata",
    ".sas7bdat": "SAS",
    ".csv": "CSV",
    ".xlsx": "Excel",
}
# Text that parses as a number but is not one a survey or register can hold.
NAN_WORDS = frozenset({"nan", "+nan", "-nan"})
EMPTY_RULE = "a source has a header and rows"


@dataclass(frozen=True)
class ReadWarning:
    """Something about how a file was read that its owner should know (e.g. its encoding)."""

    rule: str
    message: str
    row: int | None = None
    column: str | None = None
    value: object = None


@dataclass(frozen=True)
class DeclaredMissing:
    """The values a file declares missing for one column: discrete values and closed ranges.

    Ranges are kept as ``(lo, hi)``; SPSS's ``LOWEST`` and ``HIGHEST`` are ``-inf`` and ``inf``.
    """

    values: tuple[float, ...] = ()
    ranges: tuple[tuple[float, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.values or self.ranges)

    def mask(self, x: np.ndarray) -> np.ndarray:
        """Which entries of ``x`` the file declares missing (vectorised)."""
        out = np.isin(x, np.asarray(self.values, float)) if self.values else np.zeros(len(x), bool)
        for lo, hi in self.ranges:
            out |= (x >= lo) & (x <= hi)
        return out

    def overlaps(self, lo: float, hi: float) -> bool:
        """Whether any declared value or range falls inside ``[lo, hi]``."""
        return any(lo <= v <= hi for v in self.values) or any(
            a <= hi and b >= lo for a, b in self.ranges
        )

    def describe(self) -> str:
        """As SPSS writes it: ``8, 9, 98 THRU HIGHEST``."""
        parts = [_num(v) for v in self.values]
        for lo, hi in self.ranges:
            a = "LOWEST" if lo == -np.inf else _num(lo)
            b = "HIGHEST" if hi == np.inf else _num(hi)
            parts.append(f"{a} THRU {b}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "values": [float(v) for v in self.values],
            "ranges": [[_bound(lo), _bound(hi)] for lo, hi in self.ranges],
        }


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _bound(v: float):
    return "LOWEST" if v == -np.inf else "HIGHEST" if v == np.inf else float(v)


@dataclass
class SourceMeta:
    path: str
    format: str
    column_labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict] = field(default_factory=dict)
    user_missing: dict[str, DeclaredMissing] = field(default_factory=dict)
    encoding: str | None = None
    sheets: list[str] = field(default_factory=list)
    warnings: list[ReadWarning] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {
            "path": self.path,
            "format": self.format,
            "column_labels": self.column_labels,
            "value_labels": {
                c: {str(k): v for k, v in d.items()} for c, d in self.value_labels.items()
            },
            "user_missing": {c: [float(x) for x in d.values] for c, d in self.user_missing.items()},
        }
        ranges = {c: d.to_dict()["ranges"] for c, d in self.user_missing.items() if d.ranges}
        if ranges:
            out["user_missing_ranges"] = ranges
        if self.encoding not in (None, "utf-8"):
            out["encoding"] = self.encoding
        return out


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


def _spss_missing(meta) -> dict[str, DeclaredMissing]:
    """Declared missing values and ranges per column, as data (a range is never enumerated)."""
    values: dict[str, list] = {}
    ranges: dict[str, list] = {}
    for col, rs in (getattr(meta, "missing_ranges", None) or {}).items():
        for r in rs:
            lo, hi = r["lo"], r["hi"]
            if isinstance(lo, str) or isinstance(hi, str):
                continue  # a string column's missing values: not answers to score
            lo, hi = _extreme(float(lo)), _extreme(float(hi))
            if lo == hi:
                values.setdefault(col, []).append(lo)
            else:
                ranges.setdefault(col, []).append((lo, hi))
    for col, vals in (getattr(meta, "missing_user_values", None) or {}).items():
        values.setdefault(col, []).extend(float(v) for v in vals if not isinstance(v, str))
    return {
        c: DeclaredMissing(tuple(values.get(c, ())), tuple(ranges.get(c, ())))
        for c in dict.fromkeys([*values, *ranges])
        if values.get(c) or ranges.get(c)
    }


def _extreme(v: float) -> float:
    """SPSS writes LOWEST and HIGHEST as the largest doubles; keep them as -inf and inf."""
    big = np.finfo(float).max
    return np.inf if v >= big else -np.inf if v <= -big else v


def _first_non_utf8(path: Path, header: list[str]) -> ReadWarning:
    """Where the first byte that is not UTF-8 is: the row, column and value as read in cp1252."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
        pos = None
    except UnicodeDecodeError as exc:
        pos = exc.start
    row = column = value = None
    if pos is not None:
        line_no = raw.count(b"\n", 0, pos)  # 0 = the header
        start = raw.rfind(b"\n", 0, pos) + 1
        end = raw.find(b"\n", pos)
        line = raw[start : None if end < 0 else end].decode("cp1252", errors="replace")
        fields = next(csv.reader([line.rstrip("\r")]), [])
        for k, f in enumerate(fields):
            if any(ord(c) > 127 for c in f):
                value = f
                column = header[k] if line_no > 0 and k < len(header) else None
                break
        row = line_no if line_no > 0 else None
    return ReadWarning(
        "text encoding",
        "the file is not UTF-8; it was read as Windows-1252 (cp1252), the encoding Excel uses "
        "for 'CSV (Comma delimited)'. Check that names with accents read correctly, or save the "
        "file as 'CSV UTF-8 (Comma delimited)'",
        row=row,
        column=column,
        value=value,
    )


def _read_csv(path: Path) -> tuple[pd.DataFrame, list, str, list[ReadWarning]]:
    """The data, the header as written, the encoding used and warnings about it."""
    opts = dict(dtype=str, keep_default_na=False)
    for enc in ("utf-8-sig", "cp1252"):
        try:
            header = pd.read_csv(path, header=None, nrows=1, encoding=enc, **opts)
            df = pd.read_csv(path, na_values=[""], encoding=enc, **opts)
        except UnicodeDecodeError:
            continue
        names = [str(c) for c in header.iloc[0].tolist()] if len(header) else []
        if not isinstance(df.index, pd.RangeIndex):
            # pandas reads surplus leading fields as an index and shifts every column
            raise InputError(
                path,
                f"the first row has {len(df.columns) + df.index.nlevels} fields but the header "
                f"names {len(df.columns)} columns, so the values would shift to other columns; "
                "remove the delimiter at the end of the rows, or name every column in the header",
                row=1,
                rule="fields match the header",
            )
        if enc == "cp1252":
            return df, names, "cp1252", [_first_non_utf8(path, names)]
        return df, names, "utf-8", []
    raise InputError(
        path,
        "the file is neither UTF-8 nor Windows-1252 (cp1252) text; save it as "
        "'CSV UTF-8 (Comma delimited)'",
        rule="text encoding",
    )


def _read_xlsx(path: Path) -> tuple[pd.DataFrame, list, list[str]]:
    """The first sheet (ids as text), its header as written, and the names of all sheets."""
    with pd.ExcelFile(path) as book:
        sheets = [str(s) for s in book.sheet_names]
        df = pd.read_excel(book, sheet_name=0, dtype=str)
        header = pd.read_excel(book, sheet_name=0, header=None, nrows=1, dtype=str)
    names = ["" if pd.isna(c) else str(c) for c in header.iloc[0].tolist()] if len(header) else []
    return df, names, sheets


def read_source(path: Path | str) -> tuple[pd.DataFrame, SourceMeta]:
    """Read one raw file. User-missing SPSS codes are kept as values (the codebook decides)."""
    import pyreadstat

    path = Path(path)
    ext = path.suffix.lower()
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(
            path, f"the file cannot be opened ({exc.strerror})", rule="readable file"
        ) from None
    if size == 0:
        raise InputError(path, "the file is empty (0 bytes)", rule=EMPTY_RULE)
    header: list | None = None
    encoding, sheets, warnings = None, [], []
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
            df, header, encoding, warnings = _read_csv(path)
            m = None
        elif ext == ".xlsx":
            df, header, sheets = _read_xlsx(path)
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
        raise InputError(path, "the file has no header and no rows", rule=EMPTY_RULE) from None
    except Exception as exc:  # pyreadstat.ReadstatError, parser errors, zip errors, ...
        raise InputError(
            path,
            f"cannot be read as {KINDS.get(ext, ext)} ({type(exc).__name__}: {exc}); "
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
        meta = SourceMeta(path=str(path), format=ext.lstrip("."), encoding=encoding, sheets=sheets)
    meta.warnings.extend(warnings)
    if len(df.columns) == 0:
        hint = ""
        if len(sheets) > 1:
            hint = (
                f"; only the first of its sheets {sheets} is read ({sheets[0]!r}): "
                "put the data on the first sheet"
            )
        raise InputError(path, f"the file has no columns{hint}", rule=EMPTY_RULE)
    df.columns = [str(c) for c in df.columns]
    _check_header(path, header)
    return df, meta


def _check_header(path: Path, header: list | None) -> None:
    """Two columns with one name are an error (pandas would rename the second 'x.1')."""
    if not header:
        return
    seen: dict[str, int] = {}
    for k, name in enumerate(header, 1):
        name = name.strip()
        if not name:
            continue
        if name in seen:
            raise InputError(
                path,
                f"the header names column {name!r} twice (columns {seen[name]} and {k}); "
                "give every column its own name",
                column=name,
                rule="unique column names",
            )
        seen[name] = k


@dataclass(frozen=True)
class Numbers:
    """A column as numbers: ``x`` (NaN where empty), and which entries are bad."""

    x: np.ndarray
    not_a_number: np.ndarray  # present but not a number ('agree', '1,5')
    not_finite: np.ndarray  # inf, -inf, 'Infinity', 'nan' written out, 1e400


def numeric_values(series: pd.Series) -> Numbers:
    """A column as float, the same way for validation and ingest.

    Empty text (``""``, spaces only, as in an SPSS string column) is missing, not an error.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        x = series.to_numpy(float, na_value=np.nan)
        return Numbers(x, np.zeros(len(x), bool), np.isinf(x))
    x = np.asarray(pd.to_numeric(series, errors="coerce"), dtype=float)
    not_a_number = np.zeros(len(x), bool)
    not_finite = np.isinf(x)
    unparsed = np.isnan(x) & series.notna().to_numpy(bool)
    if unparsed.any():  # only the entries that did not parse: empty text, 'nan', words
        text = series[unparsed].astype(str).str.strip()
        word = text.str.lower().isin(NAN_WORDS).to_numpy(bool)
        not_finite[unparsed] = word
        not_a_number[unparsed] = (text != "").to_numpy(bool) & ~word
    return Numbers(x, not_a_number, not_finite)


@dataclass(frozen=True)
class Answers:
    """Every answer to one item sorted into what it is (boolean arrays, one entry per row)."""

    x: np.ndarray
    valid: np.ndarray  # an answer in the response range, whole
    missing_code: np.ndarray  # a codebook missing code, or a code the file declares missing
    kept_declared: np.ndarray  # declared missing by the file but inside the range: kept
    extra_declared: np.ndarray  # declared missing by the file only, outside the range: missing
    not_finite: np.ndarray
    not_whole: np.ndarray  # inside the range but not a whole number (3.5)
    out_of_range: np.ndarray  # outside the range and no missing code

    def cleaned(self) -> np.ndarray:
        """The answers with everything that is not a valid answer set to NaN."""
        return np.where(self.valid, self.x, np.nan)


def classify_answers(
    x: np.ndarray,
    lo: float,
    hi: float,
    codebook_codes,
    declared: DeclaredMissing | None = None,
) -> Answers:
    """The one rule for which answers are valid, missing or wrong (see the module docstring)."""
    x = np.asarray(x, float)
    present = ~np.isnan(x)
    not_finite = np.isinf(x)
    finite = present & ~not_finite
    inside = finite & (x >= lo) & (x <= hi)
    codes = list(codebook_codes)
    code = finite & np.isin(x, codes) if codes else np.zeros(len(x), bool)
    by_file = declared.mask(x) & finite if declared else np.zeros(len(x), bool)
    kept = inside & by_file
    extra = finite & ~inside & ~code & by_file
    missing_code = code | extra
    whole = x == np.round(x)
    return Answers(
        x=x,
        valid=inside & whole,
        missing_code=missing_code,
        kept_declared=kept,
        extra_declared=extra,
        not_finite=not_finite,
        not_whole=inside & ~whole,
        out_of_range=finite & ~inside & ~missing_code,
    )


def as_id(series: pd.Series) -> pd.Series:
    """Ids as strings: numeric ids lose a trailing '.0'; missing stays missing.

    A numeric cell inside a text column (an Excel or Stata column of mixed types) is written
    the same way as in a numeric column, so ``1`` and ``1.0`` are both the id ``"1"``; text is
    kept as written (``"0042"``, ``"1.0"``), without surrounding spaces.
    """
    if pd.api.types.is_bool_dtype(series):
        series = series.astype(object)
    if pd.api.types.is_numeric_dtype(series):
        x = series.to_numpy(float, na_value=np.nan)
        whole = np.isfinite(x) & (x == np.round(x)) & (np.abs(x) < 2.0**53)
        out = pd.Series(pd.NA, index=series.index, dtype="string")
        out[whole] = x[whole].astype(np.int64).astype(str)
        other = ~np.isnan(x) & ~whole
        if other.any():
            out[other] = series[other].map(_numeric_id)
    elif pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        out = series.astype("string").str.strip()
    else:
        out = series.map(
            lambda v: (
                None
                if v is None or (not isinstance(v, str) and pd.isna(v))
                else _numeric_id(v)
                if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                else str(v).strip()
            )
        )
    out = out.astype("string")
    return out.where(out != "", None).astype("string")


def _numeric_id(v) -> str | None:
    if pd.isna(v):
        return None
    f = float(v)
    return str(int(f)) if f.is_integer() else str(v)
