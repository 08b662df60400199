"""Validation of one wave's raw files against the codebooks and the registers.

``validate_wave(study, wave_dir)`` reads every declared source and returns a ``Validation``:
errors stop the wave, warnings are carried to the reports. Each finding names the file, the row
(1-based record number; in a CSV, line = row + 1), the column, the value and the rule broken.
All checks are vectorised so that a national wave (1.5 million rows) validates in seconds; a
rule that fires on many rows lists the first ``MAX_PER_RULE`` and counts the rest. Validation
never raises on bad data: whatever a file holds becomes a finding.

The rules, by the name a finding carries:

- Files: "required source", "one file per source", "readable file" (empty, truncated, not the
  format its name says), "a source has a header and rows", "unique column names", "text
  encoding" (a CSV that is not UTF-8 is read as Windows-1252, with a warning; neither is an
  error), "fields match the header", "supported formats".
- Columns: "required column" (with a hint when a CSV seems to use ';' as delimiter, or when a
  workbook has other sheets than the first, which is the one read), "unknown column like an
  item" (a misspelt item), "unknown column" (a warning: kept as is).
- Ids (every id, hospital and team column of every source): "id present" (not empty), "id
  alphabet" (``flaqum.ids``: letters, digits, ``_ . -``, starting with a letter or digit, at
  most 64 characters, not a name the pipeline uses), "unique id", "ids unique ignoring case"
  (in the registers: ``H1`` and ``h1`` would name the same file on Windows and macOS),
  "hospital in register", "team in register", "team registered under another hospital". The
  wave folder's name is an id too.
- Item answers: "numeric answer", "finite number", "whole number", "response range" (outside
  the codebook's range and not a missing code). Which answers are missing is decided by
  ``io.classify_answers``, the rule ingest applies as well: the codebook decides; a value the
  file declares missing inside the response range stays an answer (warning "file's missing
  codes differ from the codebook"); one outside the range that only the file declares missing
  is missing (warning "missing code not in the codebook").
- Declared numeric columns (types number, integer, count, exposure in a source's ``columns``,
  and an instrument's integer or number ``variables``): "numeric value", "finite number" (no
  ``inf``, ``nan``), "plausible magnitude" (``|x| < PLAUSIBLE_MAX``, 1e15), "whole number",
  "non-negative count", "positive exposure".
- Warnings on the data: "high item missingness", "straight-lining", "too few answers to score",
  "team below reporting minimum".

``summary`` holds ``rows`` per source, ``hospitals`` (the sorted ids of the organisations
register that pass the id check; always present, empty when the register could not be read),
and where they apply ``straightliners`` and ``small_teams``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.errors import InputError
from flaqum.ids import ID_REGEX, RESERVED, check_id
from flaqum.io import (
    EXTENSIONS,
    SourceMeta,
    as_id,
    classify_answers,
    find_source,
    numeric_values,
    read_source,
)

MAX_PER_RULE = 20  # rows listed per rule and column in validation.json; the rest are counted
SHOW_PER_RULE = 5  # findings printed per rule by ``Validation.text``
PLAUSIBLE_MAX = 1e15  # no count, exposure or measurement in a hospital register comes near
NUMERIC_TYPES = ("number", "integer", "count", "exposure")


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``1 respondent``, ``2 respondents``, ``1,191 answers``."""
    n = int(n)
    word = noun if n == 1 else (plural_form or _plural(noun))
    return f"{n:,} {word}"


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"


def _listing(values, most: int = 5) -> str:
    vals = [_show(v) for v in values]
    return ", ".join(vals[:most]) + (", ..." if len(vals) > most else "")


def _show(v) -> str:
    if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


@dataclass
class Finding:
    level: str  # "error" | "warning"
    rule: str
    message: str
    file: str | None = None
    row: int | None = None
    column: str | None = None
    value: object = None
    count: int = 1  # how many cases (in ``unit``) this finding stands for
    unit: str = "finding"

    @classmethod
    def from_error(cls, level: str, exc: InputError, default_rule: str = "readable file"):
        """A finding from an ``InputError``: its bare message, its place, its rule, once each."""
        return cls(
            level,
            exc.rule or default_rule,
            exc.message,
            file=None if exc.file is None else str(exc.file),
            row=exc.row,
            column=exc.column,
            value=exc.value,
            unit="file",
        )

    @classmethod
    def from_dict(cls, level: str, d: dict) -> Finding:
        return cls(
            level,
            d["rule"],
            d["message"],
            d.get("file"),
            d.get("row"),
            d.get("column"),
            d.get("value"),
            d.get("count", 1),
            d.get("unit", "finding"),
        )

    def to_dict(self) -> dict:
        v = self.value
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and np.isnan(v):
            v = None
        elif isinstance(v, float) and np.isinf(v):
            v = str(v)  # JSON has no infinity
        return {
            "file": self.file,
            "row": self.row,
            "column": self.column,
            "value": v,
            "rule": self.rule,
            "message": self.message,
            "count": self.count,
            "unit": self.unit,
        }

    def __str__(self) -> str:
        where = [self.file or ""]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        value = self.to_dict()["value"]
        if value is not None:
            where.append(f"value {value!r}")
        more = ""
        if self.row is not None and self.count > 1:
            more = f" (and {plural(self.count - 1, 'more ' + self.unit)})"
        return f"{', '.join(w for w in where if w)}: {self.message}{more} [rule: {self.rule}]"


@dataclass
class Validation:
    wave: str
    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    written_to: str | None = None

    @property
    def status(self) -> str:
        return "fail" if self.errors else "pass"

    def add(self, level, rule, message, **kw):
        (self.errors if level == "error" else self.warnings).append(
            Finding(level, rule, message, **kw)
        )

    def add_error(self, exc: InputError, level: str = "error") -> None:
        (self.errors if level == "error" else self.warnings).append(Finding.from_error(level, exc))

    def add_rows(self, level, rule, message_fn, file, rows, column=None, values=None, unit="value"):
        """One finding per offending row, for the first MAX_PER_RULE rows; count the rest."""
        rows = np.asarray(rows)
        n = len(rows)
        for k, r in enumerate(rows[:MAX_PER_RULE]):
            v = None if values is None else values[k]
            self.add(
                level,
                rule,
                message_fn(v, int(r)),
                file=str(file),
                row=int(r) + 1,
                column=column,
                value=v,
                unit=unit,
            )
        if n > MAX_PER_RULE:
            last = self.errors if level == "error" else self.warnings
            last[-1].count = n - MAX_PER_RULE + 1

    def flag(self, level, rule, message_fn, file, mask, column=None, values=None, unit="value"):
        """The rows where ``mask`` is true as findings (:meth:`add_rows`); nothing when it is
        nowhere true. ``values``: the column's values over all rows (a Series or an array),
        of which the flagged rows' are shown."""
        rows = np.flatnonzero(np.asarray(mask, bool))
        if not len(rows):
            return
        if isinstance(values, pd.Series):
            values = _values(values, rows)
        elif values is not None:
            values = np.asarray(values)[rows]
        self.add_rows(level, rule, message_fn, file, rows, column, values, unit)

    def to_dict(self) -> dict:
        return {
            "wave": self.wave,
            "status": self.status,
            "n_errors": sum(f.count for f in self.errors),
            "n_warnings": sum(f.count for f in self.warnings),
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "summary": self.summary,
        }

    def write(self, path: Path | str) -> None:
        from flaqum.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, default=str))
        self.written_to = str(path)

    def text(self, limit: int = SHOW_PER_RULE, json_path: Path | str | None = None) -> str:
        """The readable account for the data manager: every rule broken, with its first
        ``limit`` findings and the count of the rest, and where the full list is."""
        groups = {
            level: _by_rule(findings)
            for level, findings in (("error", self.errors), ("warning", self.warnings))
        }
        n_err, n_warn = len(groups["error"]), len(groups["warning"])
        lines = [
            f"Wave {self.wave}: validation {self.status.upper()} - "
            + (f"{plural(n_err, 'rule')} with errors" if n_err else "no errors")
            + ", "
            + (f"{plural(n_warn, 'rule')} with warnings" if n_warn else "no warnings")
        ]
        for level, by_rule in groups.items():
            for rule, fs in by_rule.items():
                units = {f.unit for f in fs}
                unit = units.pop() if len(units) == 1 else "finding"
                total = sum(f.count for f in fs) if unit != "finding" else len(fs)
                head = f"  {level.upper()} {rule}: {plural(total, unit)}"
                cols = {f.column for f in fs}
                if all(f.row is None for f in fs) and len(fs) > 1 and len(cols) > 1:
                    head += f" (summed over {len(cols)} columns)"
                lines.append(head)
                shown = fs[: max(0, limit)]
                lines += [f"    {f}" for f in shown]
                rest = total - (sum(f.count for f in shown) if unit != "finding" else len(shown))
                if rest > 0:
                    lines.append(f"    ... and {plural(rest, 'more ' + unit)} (rule {rule})")
        where = json_path or self.written_to
        if self.errors or self.warnings:
            if where:
                lines.append(
                    f"All findings: {where} (it lists the first {MAX_PER_RULE} rows of each "
                    "rule and column, and counts the rest)."
                )
            else:
                lines.append(
                    "The findings are not written to a file; add --json <file> to write them "
                    f"(the first {MAX_PER_RULE} rows of each rule and column, and the count of "
                    "the rest)."
                )
        return "\n".join(lines)


def _values(series: pd.Series, rows) -> np.ndarray:
    """The values of the rows a finding lists (only the first ``MAX_PER_RULE`` are shown)."""
    return series.iloc[np.asarray(rows)[:MAX_PER_RULE]].to_numpy(object)


def _by_rule(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.rule, []).append(f)
    return out


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (small strings: column names)."""
    a, b = str(a).lower(), str(b).lower()
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def required_columns(study: Study, source: str, wave: str | None = None) -> list[str]:
    spec = study.sources[source]
    cols = [spec["id"]]
    for key in ("hospital", "team"):
        if spec.get(key) and spec[key] not in cols:
            cols.append(spec[key])
    cols += [c for c in spec.get("columns", {}) if c not in cols]
    for inst in study.instruments_for(source, wave):
        cols += [i for i in inst.items if i not in cols]
        cols += [v for v in inst.raw.get("variables", {}) if v not in cols]
    return cols


def optional_columns(study: Study, source: str) -> list[str]:
    """Columns a source may have that no codebook declares (a declared variable is required):
    the organisations register's ``<survey>_invited`` counts, which give the reports' response
    rates (``report.confidentiality.invited_counts``)."""
    if source != "organisations":
        return []
    return [f"{s}_invited" for s, spec in study.sources.items() if spec["kind"] == "survey"]


def id_columns(spec: dict) -> list[str]:
    """The id, hospital and team columns of a source, each once."""
    return list(dict.fromkeys(spec[k] for k in ("id", "hospital", "team") if spec.get(k)))


def check_items(
    val: Validation, study: Study, source: str, df: pd.DataFrame, meta: SourceMeta, file: str
) -> dict[str, np.ndarray]:
    """Type, range and missing-code checks of every item; returns the valid answers (NaN else)."""
    cleaned = {}
    for inst in study.instruments_for(source, val.wave):
        if "response" not in inst.raw:
            continue
        lo, hi = inst.rmin, inst.rmax
        codes = sorted(inst.missing_codes)
        for item in inst.items:
            if item not in df.columns:
                continue
            num = numeric_values(df[item])
            val.flag(
                "error",
                "numeric answer",
                lambda v, r, it=item: f"answer to {it} is not a number",
                file,
                num.not_a_number,
                item,
                df[item],
            )
            declared = meta.user_missing.get(item)
            ans = classify_answers(num.x, lo, hi, codes, declared)
            val.flag(
                "error",
                "finite number",
                lambda v, r, it=item: f"answer to {it} is not a finite number",
                file,
                ans.not_finite | num.not_finite,
                item,
                df[item],
            )
            lab = f"{inst.id} answers run {lo}-{hi}, missing codes {codes}"
            val.flag(
                "error",
                "whole number",
                lambda v, r, it=item, lab=lab: f"{it}: the answer is not a whole number ({lab})",
                file,
                ans.not_whole,
                item,
                ans.x,
            )
            val.flag(
                "error",
                "response range",
                lambda v, r, it=item, lab=lab: (
                    f"{it}: value outside the response range and not a missing code ({lab})"
                ),
                file,
                ans.out_of_range,
                item,
                ans.x,
            )
            _warn_declared_missing(val, inst, item, declared, ans, file)
            cleaned[item] = ans.cleaned()
    return cleaned


def _warn_declared_missing(val, inst, item, declared, ans, file) -> None:
    """Where the file's declared missing values and the codebook disagree: say what was done."""
    if not declared:
        return
    lo, hi = inst.rmin, inst.rmax
    codebook = Path(inst.path).name
    n_kept = int(ans.kept_declared.sum())
    if n_kept:
        vals = np.unique(ans.x[ans.kept_declared])
        val.add(
            "warning",
            "file's missing codes differ from the codebook",
            f"{item}: the file declares {declared.describe()} as missing, but "
            f"{_listing(vals)} {'lies' if len(vals) == 1 else 'lie'} inside the response range "
            f"{lo}-{hi} of {inst.id}. The codebook's range was kept: "
            f"{plural(n_kept, 'answer')} with {'this value' if len(vals) == 1 else 'these values'} "
            f"{'counts' if n_kept == 1 else 'count'} as valid; if they are not answers, set "
            "them to missing in the file",
            file=str(file),
            column=item,
            value=declared.describe(),
            count=n_kept,
            unit="answer",
        )
    n_extra = int(ans.extra_declared.sum())
    if n_extra:
        vals = np.unique(ans.x[ans.extra_declared])
        shown = _listing(vals)
        val.add(
            "warning",
            "missing code not in the codebook",
            f"{item}: {plural(n_extra, 'answer')} with {'code' if len(vals) == 1 else 'codes'} "
            f"{shown}, which the file declares missing ({declared.describe()}) and the codebook "
            f"does not list (missing codes {sorted(inst.missing_codes)}), "
            f"{'is' if n_extra == 1 else 'are'} treated as missing; add "
            f"{shown} to response.missing_codes in {codebook} to make this explicit",
            file=str(file),
            column=item,
            value=shown,
            count=n_extra,
            unit="answer",
        )


def _warn_quality(val, study, source, cleaned, ids, file):
    cfg = study.config["validation"]
    n = len(ids)
    for inst in study.instruments_for(source, val.wave):
        items = [i for i in inst.items if i in cleaned]
        if not items or n == 0:
            continue
        X = np.column_stack([cleaned[i] for i in items])
        answered = ~np.isnan(X)
        # item missingness
        pct = 100 * (1 - answered.mean(axis=0))
        for i, p in zip(items, pct, strict=True):
            if p > cfg["max_item_missing_pct"]:
                val.add(
                    "warning",
                    "high item missingness",
                    f"{i}: {p:.1f}% missing (threshold {cfg['max_item_missing_pct']}%)",
                    file=file,
                    column=i,
                    value=round(float(p), 1),
                    unit="item",
                )
        # straight-lining: every answered item identical, on an instrument with reverse-keyed
        # items or at least straightline_min_items answers
        k_ans = answered.sum(axis=1)
        Xf = np.where(answered, X, np.nan)
        with np.errstate(invalid="ignore"):
            same = np.nanmax(Xf, axis=1, initial=-np.inf) == np.nanmin(Xf, axis=1, initial=np.inf)
        flat = same & (k_ans >= cfg["straightline_min_items"])
        val.flag(
            "warning",
            "straight-lining",
            lambda v, r, inst=inst: f"respondent gave the same answer to all {inst.id} items",
            file,
            flat,
            "respondent_id",
            ids,
            unit="respondent",
        )
        if flat.any():
            val.summary.setdefault("straightliners", {})[f"{source}/{inst.id}"] = int(flat.sum())
        for sid, scale in inst.scales.items():
            s_items = [i for i in scale.items if i in cleaned]
            if not s_items:
                continue
            k = np.column_stack([~np.isnan(cleaned[i]) for i in s_items]).sum(axis=1)
            few = (k < scale.min_items) & (k > 0)
            n_few = int(few.sum())
            if n_few:
                m = scale.min_items - 1
                answered_text = f"{m}" if m == 1 else f"fewer than {scale.min_items}"
                val.add(
                    "warning",
                    "too few answers to score",
                    f"{plural(n_few, 'respondent')} answered {answered_text} of the "
                    f"{len(s_items)} items of {sid} (min_items {scale.min_items}): "
                    f"no {sid} score for {'this respondent' if n_few == 1 else 'them'}",
                    file=file,
                    column=sid,
                    count=n_few,
                    value=n_few,
                    unit="respondent",
                )


def _read(val: Validation, path: Path):
    try:
        df, meta = read_source(path)
    except InputError as exc:
        val.add_error(exc)
        return None, None
    for w in meta.warnings:
        val.add(
            "warning",
            w.rule,
            w.message,
            file=str(path),
            row=w.row,
            column=w.column,
            value=w.value,
            unit="file",
        )
    return df, meta


def validate_wave(study: Study, wave_dir: Path | str, wave: str | None = None) -> Validation:
    """All checks of one wave. Never raises on bad data: findings go into the result."""
    wave_dir = Path(wave_dir)
    val = Validation(wave or wave_dir.name)
    val.summary["hospitals"] = []
    # instruments this wave does not field (codebook key waves): a note, not a finding
    val.summary["instruments_not_fielded"] = study.not_fielded(val.wave)
    bad_name = check_id(val.wave, "the wave's folder name")
    if bad_name:
        val.add("error", "id alphabet", bad_name, file=str(wave_dir), value=val.wave, unit="file")
    frames: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    for source, spec in study.sources.items():
        try:
            path = find_source(wave_dir, source)
        except InputError as exc:
            val.add_error(exc)
            continue
        if path is None:
            if spec["required"]:
                val.add(
                    "error",
                    "required source",
                    f"required source {source!r} is missing: expected {source}.<ext> with ext "
                    f"one of {' '.join(EXTENSIONS)}",
                    file=str(wave_dir / source),
                    unit="file",
                )
            continue
        df, meta = _read(val, path)
        if df is None:
            continue
        files[source] = str(path)
        if len(df) == 0:
            val.add(
                "error",
                "a source has a header and rows",
                "the file has a header but no rows",
                file=str(path),
                unit="file",
            )
            continue
        _check_columns(val, study, source, df, meta, path)
        _check_ids(val, spec, df, path)
        frames[source] = df
        cleaned = check_items(val, study, source, df, meta, str(path))
        if spec["kind"] == "survey" and spec["id"] in df.columns:
            _warn_quality(val, study, source, cleaned, df[spec["id"]].to_numpy(), str(path))
        _check_numeric_columns(val, study, source, df, str(path))
        val.summary.setdefault("rows", {})[source] = len(df)

    _check_keys(val, study, frames, files)
    return val


def _missing_instruments(val, study, source, df, path, missing: list[str]) -> list[str]:
    """One error for each instrument expected in the wave whose items are all absent (rather
    than one per item); returns the missing columns left to report one by one."""
    gone = set(missing)
    for inst in study.instruments_for(source, val.wave):
        items = list(inst.items)
        if items and all(i in gone for i in items):
            waves = "all waves" if inst.waves == "all" else "waves " + ", ".join(inst.waves)
            val.add(
                "error",
                "expected instrument",
                f"instrument {inst.id!r} is expected in wave {val.wave} but none of its "
                f"{plural(len(items), 'item')} ({_listing([repr(i) for i in items], 3)}) is "
                f"in the file; its codebook {inst.path} fields it in {waves}. If it was not "
                "fielded in this wave, list the waves it was fielded in under 'waves:' there",
                file=str(path),
                value=inst.id,
                unit="instrument",
            )
            gone -= set(items)
    return [c for c in missing if c in gone]


def _check_columns(val, study, source, df, meta, path) -> None:
    """Required columns present (with a hint where the file's shape explains it), misspelt
    items, and columns no codebook knows."""
    req = required_columns(study, source, val.wave)
    missing = [c for c in req if c not in df.columns]
    missing = _missing_instruments(val, study, source, df, path, missing)
    header = [str(c) for c in df.columns]
    hint = ""
    if missing and meta.format == "csv" and any(";" in c for c in header):
        hint = (
            f"the header reads as {plural(len(header), 'column')} "
            f"({_listing([repr(c) for c in header], 3)}): the file seems to use ';' as "
            "delimiter; save it with ',' as delimiter (in Excel: 'CSV UTF-8 (Comma "
            "delimited)') or as .xlsx"
        )
    elif missing and len(meta.sheets) > 1:
        hint = (
            f"the workbook has {plural(len(meta.sheets), 'sheet')} "
            f"({', '.join(repr(s) for s in meta.sheets)}) and only the first, "
            f"{meta.sheets[0]!r}, is read: put the data on the first sheet"
        )
    if hint:
        val.add(
            "error",
            "required column",
            f"{plural(len(missing), 'required column')} "
            f"{'is' if len(missing) == 1 else 'are'} missing "
            f"({_listing([repr(c) for c in missing], 8)}); {hint}",
            file=str(path),
            column=missing[0] if len(missing) == 1 else None,
            unit="file",
        )
        return
    for c in missing:
        val.add(
            "error",
            "required column",
            f"required column {c!r} is missing",
            file=str(path),
            column=c,
            unit="column",
        )
    known = set(req) | set(optional_columns(study, source))
    elsewhere = {  # items of the source's instruments that this wave does not field
        item: inst
        for inst in study.instruments_for(source)
        if not inst.fielded_in(val.wave)
        for item in inst.items
    }
    dist = study.config["validation"]["misspelt_item_distance"]
    for col in header:
        if col in known:
            continue
        near = [c for c in missing if edit_distance(col, c) <= dist]
        near = near or [c for c in req if c.lower() == col.lower()]
        if near:
            val.add(
                "error",
                "unknown column like an item",
                f"unknown column {col!r} looks like a misspelling of {near[0]!r}",
                file=str(path),
                column=col,
                value=col,
                unit="column",
            )
        elif col in elsewhere:
            inst = elsewhere[col]
            val.add(
                "warning",
                "instrument not fielded",
                f"column {col!r} is an item of {inst.id!r}, which this wave does not field "
                f"(its codebook lists waves {', '.join(inst.waves)}): not checked, not scored",
                file=str(path),
                column=col,
                unit="column",
            )
        else:
            val.add(
                "warning",
                "unknown column",
                f"column {col!r} is not in the codebooks; kept as is",
                file=str(path),
                column=col,
                unit="column",
            )


def _check_ids(val: Validation, spec: dict, df: pd.DataFrame, path: Path) -> None:
    """Every id column: present and an id (``flaqum.ids``). Ids are replaced by their text."""
    for col in id_columns(spec):
        if col not in df.columns:
            continue
        ids = as_id(df[col])
        val.flag(
            "error",
            "id present",
            lambda v, r, col=col: f"{col} is empty",
            path,
            ids.isna().to_numpy(),
            col,
            unit="row",
        )
        ok = ids.str.fullmatch(ID_REGEX) & ~ids.str.lower().isin(RESERVED)
        val.flag(
            "error",
            "id alphabet",
            lambda v, r, col=col: check_id(v, col) or f"{col} is not a valid id",
            path,
            ~ok.to_numpy(bool, na_value=True),
            col,
            ids,
        )
        df[col] = ids


def _valid_ids(ids: pd.Series) -> list[str]:
    """The distinct ids of a column that pass the id check, sorted."""
    ids = ids.dropna()
    ok = ids.str.fullmatch(ID_REGEX) & ~ids.str.lower().isin(RESERVED)
    return sorted({str(h) for h in ids[ok.to_numpy(bool, na_value=False)]})


def _check_numeric_columns(val, study, source, df, file):
    """Declared numeric columns: finite numbers of a plausible size; counts whole and >= 0;
    exposures > 0."""
    spec = study.sources[source]
    types = {c: t for c, t in spec.get("columns", {}).items() if t in NUMERIC_TYPES}
    for inst in study.instruments_for(source, val.wave):
        for v, d in inst.raw.get("variables", {}).items():
            if d["type"] in ("integer", "number"):
                types[v] = d["type"]
    for c, typ in types.items():
        if c not in df.columns:
            continue
        num = numeric_values(df[c])
        x = num.x
        present = np.isfinite(x)
        raw = df[c]  # text as written, for values that are not numbers
        checks = [
            ("numeric value", num.not_a_number, "must be a number", raw),
            ("finite number", num.not_finite, "must be a finite number", raw),
            (
                "plausible magnitude",
                present & (np.abs(x) >= PLAUSIBLE_MAX),
                f"is implausibly large: its absolute value must be below {PLAUSIBLE_MAX:.0e}",
                x,
            ),
        ]
        if typ in ("count", "integer"):
            checks.append(
                ("whole number", present & (x != np.round(x)), "must be a whole number", x)
            )
        if typ == "count":
            checks.append(
                ("non-negative count", present & (x < 0), "is a count and cannot be negative", x)
            )
        if typ == "exposure":
            checks.append(
                ("positive exposure", present & (x <= 0), "is an exposure and must be above 0", x)
            )
        for rule, mask, text, values in checks:
            val.flag(
                "error", rule, lambda v, r, c=c, text=text: f"{c} {text}", file, mask, c, values
            )


def _check_case_collisions(val, df, key, file) -> None:
    """Register ids that differ only by letter case (``H1``, ``h1``): one file on Windows/macOS."""
    id_col = key[-1]
    if not all(c in df.columns for c in key) or df[id_col].isna().all():
        return
    lower = [df[c].str.lower() for c in key]
    pos = pd.Series(np.arange(len(df)), index=df.index)
    first = pos.groupby(lower, dropna=True, sort=False).transform("first").to_numpy()
    has = ~np.isnan(first.astype(float))
    first_i = np.where(has, first, 0).astype(int)
    differs = np.zeros(len(df), bool)
    for c in key:
        v = df[c].fillna("").to_numpy(object)
        differs |= (v != v[first_i]).astype(bool)
    ids = df[id_col].to_numpy(object)
    val.flag(
        "error",
        "ids unique ignoring case",
        lambda v, r, c=id_col: (
            f"{c} {v!r} differs only in letter case from {ids[first_i[r]]!r} in row "
            f"{first_i[r] + 1}; ids must be unique ignoring case, because they name files "
            "and on Windows and macOS 'H1' and 'h1' are the same file"
        ),
        file,
        has & differs,
        id_col,
        ids,
        unit="row",
    )


ONE_ORGANISATION = "_organisation"  # the column added where a source has no hospital column


def _one_organisation(val: Validation, study: Study, frames: dict, files: dict) -> dict:
    """Each source's spec for the key checks. A survey, team source or team register without
    a hospital column belongs to the study's one organisation: the organisations register must
    then hold exactly one, and that id stands in for the missing column (as ingest does)."""
    specs = {s: dict(study.sources[s]) for s in frames}
    in_teams = {"survey", "team"}
    lacking = [
        s
        for s, spec in specs.items()
        if not spec.get("hospital")
        and (spec["kind"] in in_teams or (spec["kind"] == "register" and spec.get("team")))
    ]
    if not lacking:
        return specs
    hospitals = val.summary.get("hospitals", [])
    if len(hospitals) != 1:
        val.add(
            "error",
            "one organisation",
            f"{', '.join(lacking)} {'has' if len(lacking) == 1 else 'have'} no hospital column, "
            "so every respondent and team belongs to one organisation; the organisations "
            f"register must then hold exactly one, and it holds {len(hospitals)}",
            file=files.get("organisations"),
            value=len(hospitals),
            unit="finding",
        )
        return specs
    for s in lacking:
        frames[s] = frames[s].assign(**{ONE_ORGANISATION: hospitals[0]})
        specs[s]["hospital"] = ONE_ORGANISATION
    return specs


def _check_keys(val: Validation, study: Study, frames: dict, files: dict) -> None:
    """Unique ids, and every hospital and team known to the registers."""
    orgs = frames.get("organisations")
    ocol = study.sources.get("organisations", {}).get("hospital") or study.sources.get(
        "organisations", {}
    ).get("id")
    hosp_known = None
    if orgs is not None and ocol in orgs.columns:
        hosp_known = set(orgs[ocol].dropna())
        val.summary["hospitals"] = _valid_ids(orgs[ocol])
    specs = _one_organisation(val, study, frames, files)
    teams = frames.get("teams")
    tspec = specs.get("teams", {})
    th, tt = tspec.get("hospital"), tspec.get("id")
    team_pairs = None
    if teams is not None and th and tt and {th, tt} <= set(teams.columns):
        team_pairs = pd.MultiIndex.from_frame(teams[[th, tt]].astype(object))
        val.flag(
            "error",
            "unique id",
            lambda v, r: f"team {v} is registered twice",
            files["teams"],
            team_pairs.duplicated() & teams[tt].notna().to_numpy(),
            tt,
            teams[tt].to_numpy(object),
            unit="row",
        )
    min_n = study.min_group_size
    for source, df in frames.items():
        spec = specs[source]
        file = files[source]
        id_col = spec["id"]
        unique_key = [id_col]
        if spec["kind"] == "team" or (spec["kind"] == "register" and spec.get("team")):
            unique_key = [spec["hospital"], id_col]
        if all(c in df.columns for c in unique_key) and source != "teams":
            val.flag(
                "error",
                "unique id",
                lambda v, r, c=id_col: f"duplicate {c}: already used in an earlier row",
                file,
                df.duplicated(unique_key, keep="first").to_numpy() & df[id_col].notna().to_numpy(),
                id_col,
                df[id_col],
                unit="row",
            )
        if spec["kind"] == "register":
            _check_case_collisions(val, df, unique_key, file)
        hcol = spec.get("hospital")
        if hosp_known is not None and hcol in df.columns and source != "organisations":
            val.flag(
                "error",
                "hospital in register",
                lambda v, r: f"hospital {v} is not in the hospital register (organisations)",
                file,
                ~df[hcol].isin(hosp_known).to_numpy() & df[hcol].notna().to_numpy(),
                hcol,
                df[hcol],
            )
        tcol = spec.get("team")
        if (
            team_pairs is not None
            and tcol in df.columns
            and hcol in df.columns
            and source != "teams"
        ):
            pairs = pd.MultiIndex.from_frame(df[[hcol, tcol]].astype(object))
            unknown = ~pairs.isin(team_pairs) & df[tcol].notna().to_numpy()
            if unknown.any():
                registered = df[tcol].isin(teams[tt].dropna()).to_numpy()
                hv = df[hcol].to_numpy(object)
                tv = df[tcol].to_numpy(object)
                other = np.flatnonzero(unknown & registered)
                if len(other):
                    listed = set(tv[other[:MAX_PER_RULE]])
                    sub = teams.loc[teams[tt].isin(listed), [tt, th]].dropna()
                    owners = {t: sorted(g[th]) for t, g in sub.groupby(tt)}
                    val.add_rows(
                        "error",
                        "team registered under another hospital",
                        lambda v, r, hv=hv, owners=owners: (
                            f"team {v} of hospital {hv[r]} is not in the team register under "
                            f"that hospital; it is registered under "
                            f"{plural(len(owners.get(v, [])), 'other hospital')}: "
                            + ", ".join(owners.get(v, [])[:3])
                            + (", ..." if len(owners.get(v, [])) > 3 else "")
                        ),
                        file,
                        other,
                        tcol,
                        tv[other],
                    )
                val.flag(
                    "error",
                    "team in register",
                    lambda v, r: f"team {v} is not in the team register",
                    file,
                    unknown & ~registered,
                    tcol,
                    tv,
                )
        if spec["kind"] == "survey" and tcol in df.columns and hcol in df.columns:
            sizes = df.groupby([hcol, tcol], observed=True).size()
            small = sizes[sizes < min_n]
            if len(small):
                val.add(
                    "warning",
                    "team below reporting minimum",
                    f"{len(small):,} of {plural(len(sizes), 'team')} "
                    f"{'has' if len(small) == 1 else 'have'} fewer than {min_n} respondents; "
                    f"{'its' if len(small) == 1 else 'their'} values are suppressed in reports",
                    file=file,
                    column=tcol,
                    value=int(len(small)),
                    count=int(len(small)),
                    unit="team",
                )
                val.summary.setdefault("small_teams", {})[source] = [
                    {"hospital_id": h, "team_id": t, "n": int(n)} for (h, t), n in small.items()
                ]
