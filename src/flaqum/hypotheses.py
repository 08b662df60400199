"""Outcome hypotheses: the specification, its checks, and the data a model is fitted on.

A hypothesis is a YAML file (``config/hypotheses/<id>.yaml``, schema
``src/flaqum/schemas/hypothesis.schema.yaml``, linked as ``workflow/schemas``). This module

1. reads it into a :class:`Hypothesis` (:func:`load_hypothesis`: the schema, its defaults,
   which the schema holds, and the rules a schema cannot express) and, before any job runs,
   checks every hypothesis against the study's codebooks and sources
   (:func:`check_hypotheses`: every problem at once, each naming the file, the key, the value
   and the rule, with "did you mean" for a near miss),
2. reads one wave's inputs (:func:`read_inputs`, ids as text; the paths are
   :data:`flaqum.outputs.WAVE_FILES`), names their id columns ``hospital_id`` and
   ``team_id`` (:func:`canonical_ids`), and builds the analysis table at the hypothesis'
   level (:func:`assemble_data`), and
3. turns the complete rows of that table into the numeric design of the model
   (:class:`Design`: outcome, exposure, model matrix, clusters, and the estimated scores
   whose uncertainty the plausible values carry), with the values no model can take named
   (text where a number is needed, a non-finite number, a number beyond ``LARGE`` = 1e150 in
   size, a negative count: each with its column and unit).

Fitting, plausible values and the Benjamini-Hochberg summary are :mod:`flaqum.outcomes`.

What a hypothesis can name (:func:`study_names`, the same lookup as :func:`assemble_data`): a
scale id of a survey codebook (its EB mean in ``hospitals.csv``, at team level in ``teams.csv``
and otherwise the hospital's; ``hospital:<scale>`` takes the hospital's), a maturity score, or
a column declared in the config under ``sources.organisations``, ``sources.outcomes``,
``sources.maturity`` (and at team level ``sources.team_outcomes``). A register column that is
not declared is not required by validation, so it may be missing from a wave: declare it.

The analysis table's rows are sorted by their ids, so a result does not depend on the order of
the rows in the files.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flaqum.config import Study, check_schema, read_yaml, schema_defaults
from flaqum.errors import ConfigError, InputError
from flaqum.ids import check_id

HOSPITAL = "hospital_id"
TEAM = "team_id"
TEAM_KEYS = [HOSPITAL, TEAM]
HOSPITAL_PREFIX = "hospital:"  # a predictor "hospital:psych_safety" at team level: hospital EB mean
COUNT_FAMILIES = ("poisson", "negative_binomial")
# Larger numbers cannot enter a model: their squares (sums of squares, X'X) overflow doubles.
LARGE = 1e150
#: The files of a wave a hypothesis reads (keys of :data:`flaqum.outputs.WAVE_FILES`): the
#: multilevel tables, the maturity scores, the registers and the (optional) outcomes.
INPUTS = ("hospitals", "teams", "maturity", "organisations", "outcomes", "team_outcomes")
# The sources whose files a hypothesis reads besides the multilevel tables.
READ_SOURCES = tuple(k for k in INPUTS if k not in ("hospitals", "teams"))
# The level an outcome source is measured at (rule: the outcome is at the hypothesis' level).
SOURCE_LEVEL = {"outcomes": "hospital", "team_outcomes": "team"}


class NotInWave(ConfigError):
    """A name the study declares (checked before the run) that this wave's data lack."""


# --------------------------------------------------------------------------------------------
# The specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a hypothesis explains (the ``outcome`` mapping of its file)."""

    column: str
    source: str  # "outcomes", "team_outcomes" or "scale"
    exposure: str | None  # count models: offset log(exposure); binomial: the trials
    scores: str  # a scale outcome: its EB ("eb") or raw ("raw") mean


@dataclass(frozen=True)
class PlausibleValues:
    """The second, two-stage fit (the ``plausible_values`` mapping)."""

    draws: int  # M; 0 switches the fit off
    seed: int  # the one random generator of the hypothesis
    condition_on_outcome: bool


@dataclass(frozen=True)
class Hypothesis:
    """One outcome hypothesis, every key filled in (docs/hypotheses.md defines each).

    :func:`load_hypothesis` makes one from a checked file; :meth:`from_dict` from a mapping
    (tests, notebooks) with the schema's defaults, unchecked. The defaults are the schema's
    only: no field has one here.
    """

    id: str
    description: str
    level: str  # "hospital" or "team"
    family: str  # "gaussian", "poisson", "negative_binomial" or "binomial"
    outcome: Outcome
    predictors: list[str]
    covariates: list[str]
    predictor_scores: str  # "eb" or "raw"
    standardize: bool
    robust: bool
    measurement_error: str  # "none" or "reliability"
    plausible_values: PlausibleValues
    waves: str | list[str]  # "all" or wave names

    @classmethod
    def from_dict(cls, data: Mapping) -> Hypothesis:
        """A hypothesis from the mapping of its file, with the defaults of the schema (and the
        outcome's source: ``outcomes`` at hospital level, ``team_outcomes`` at team level)."""
        full = schema_defaults(dict(data), "hypothesis")
        out = {"exposure": None, **full["outcome"]}
        out.setdefault("source", "outcomes" if full["level"] == "hospital" else "team_outcomes")
        return cls(
            **{
                **full,
                "outcome": Outcome(**out),
                "predictors": list(full["predictors"]),
                "covariates": list(full["covariates"]),
                "plausible_values": PlausibleValues(**full["plausible_values"]),
            }
        )

    def applies(self, wave: str | None) -> bool:
        """Whether the hypothesis is to be fitted in ``wave`` (its ``waves``: "all" or a list;
        ``None``, no wave named: yes)."""
        return wave is None or self.waves == "all" or wave in self.waves


def as_hypothesis(hyp: Hypothesis | Mapping) -> Hypothesis:
    """``hyp`` as a :class:`Hypothesis` (a mapping through :meth:`Hypothesis.from_dict`)."""
    return hyp if isinstance(hyp, Hypothesis) else Hypothesis.from_dict(hyp)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _rule_problems(hyp: Hypothesis, path: Path) -> list[str]:
    """The rules a schema cannot express, each broken one as a message naming the file, the
    key, the value and the rule (``hyp`` has passed the schema and has its defaults)."""
    problems = []
    if hyp.id != path.stem:
        problems.append(f"{path}: at id: {hyp.id!r} must equal the file name {path.stem!r}")
    else:
        why = check_id(hyp.id, "the hypothesis id")
        if why:
            problems.append(f"{path}: at id: {hyp.id!r}: {why}")
    out = hyp.outcome
    needs = SOURCE_LEVEL.get(out.source)
    if needs and hyp.level != needs:
        what = f"are {needs} outcomes and need" if out.source == "outcomes" else "needs"
        problems.append(
            f"{path}: at outcome/source: {out.source!r} {what} level {needs!r}, not "
            f"{hyp.level!r} (rule: the outcome is measured at the hypothesis' level)"
        )
    if hyp.family == "binomial" and not out.exposure:
        problems.append(
            f"{path}: at outcome/exposure: family 'binomial' needs the number of trials as "
            f"outcome.exposure (rule: binomial successes come with their trials)"
        )
    if out.source == "scale" and hyp.family != "gaussian":
        problems.append(
            f"{path}: at family: a scale outcome ({out.column!r}) is a mean score; use "
            f"family 'gaussian', not {hyp.family!r}"
        )
    if out.exposure and hyp.family == "gaussian":
        problems.append(
            f"{path}: at outcome/exposure: family 'gaussian' takes no exposure "
            f"(rule: exposure is the offset of a count model or the trials of a binomial one)"
        )
    names = list(hyp.predictors) + list(hyp.covariates)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(f"{path}: at predictors/covariates: {dup} listed more than once")
    if out.column in names:
        problems.append(
            f"{path}: at outcome/column: {out.column!r} is also a predictor or covariate"
        )
    return problems


def _read(path: Path) -> dict:
    """The YAML of a hypothesis file; a file that is not UTF-8 text is a located error."""
    try:
        return read_yaml(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"position {exc.start}); save the file as UTF-8"
        ) from None


def load_hypothesis(path: Path | str) -> Hypothesis:
    """Read ``config/hypotheses/<id>.yaml``, check it and fill in the defaults.

    Raises :class:`~flaqum.errors.ConfigError` naming the file, the key and the rule broken
    (every rule broken, one per line). The checks against a study's codebooks and sources are
    :func:`check_hypotheses`.
    """
    path = Path(path)
    data = _read(path)
    check_schema(data, "hypothesis", path)
    hyp = Hypothesis.from_dict(data)
    problems = _rule_problems(hyp, path)
    if problems:
        raise ConfigError("\n".join(problems))
    return hyp


# --------------------------------------------------------------------------------------------
# Checking the hypotheses against the study, before any job runs
# --------------------------------------------------------------------------------------------


def _declared(study: Study, source: str) -> set[str]:
    """The columns declared under ``sources.<source>.columns`` and the ``variables`` of the
    source's codebooks (e.g. hospital_type, beds of the organisations register); ids left
    out. Validation requires both in every wave."""
    spec = study.sources.get(source)
    if not spec:
        return set()
    ids = {spec.get("id"), spec.get("hospital"), spec.get("team")}
    names = set(spec.get("columns") or {})
    for inst in study.instruments_for(source):
        names |= set(inst.raw.get("variables", {}))
    return {c for c in names if c not in ids}


def study_names(study: Study) -> dict[str, set[str]]:
    """What a hypothesis can name, by where :func:`assemble_data` finds it in a wave.

    - ``survey_scales``: scale ids of the survey sources' codebooks (their EB means are rows
      of ``hospitals.csv``); ``team_scales``: those of survey sources with a team column
      (rows of ``teams.csv``);
    - ``maturity``: the maturity scores (scale ids of the maturity codebook) and the columns
      declared for the maturity source;
    - ``organisations``, ``outcomes``, ``team_outcomes``: the columns declared for each
      (an undeclared column is not required by validation, so it may be absent from a wave).
    """
    survey = [s for s, spec in study.sources.items() if spec["kind"] == "survey"]
    return {
        "survey_scales": {sid for s in survey for sid in study.scales_for(s)},
        "team_scales": {
            sid for s in survey if study.sources[s].get("team") for sid in study.scales_for(s)
        },
        "maturity": (
            set(study.scales_for("maturity")) | _declared(study, "maturity")
            if "maturity" in study.sources
            else set()
        ),
        "organisations": _declared(study, "organisations"),
        "outcomes": _declared(study, "outcomes"),
        "team_outcomes": _declared(study, "team_outcomes"),
    }


def _hospital_pool(names: dict[str, set[str]]) -> set[str]:
    return names["survey_scales"] | names["maturity"] | names["organisations"] | names["outcomes"]


PREDICTOR_RULE = {
    "hospital": "at hospital level a predictor or covariate is a survey scale id, a maturity "
    "score, or a column declared under sources.organisations, sources.outcomes or "
    "sources.maturity in the config",
    "team": "at team level a predictor or covariate is a survey scale id ('hospital:<scale>' "
    "for the hospital's mean), a maturity score, or a column declared under "
    "sources.team_outcomes, sources.organisations, sources.outcomes or "
    "sources.maturity in the config",
}


def _suggest(name: str, pool: set[str], prefix: str = "") -> str:
    near = difflib.get_close_matches(name, sorted(pool), n=1, cutoff=0.6)
    return f"; did you mean {prefix + near[0]!r}?" if near else ""


def _elsewhere(study: Study, name: str) -> str:
    """Where else ``name`` is declared, when that is a place hypotheses do not read."""
    for source, spec in study.sources.items():
        if source in READ_SOURCES:
            continue
        if name in (spec.get("columns") or {}):
            unit = "respondent" if spec["kind"] == "survey" else spec["kind"]
            return (
                f" ({name!r} is a {unit} column of source {source!r}, which the "
                f"hypotheses do not read)"
            )
    return ""


def _study_problems(study: Study, hyp: Hypothesis, path: Path) -> list[str]:
    """A hypothesis (past the schema and its rules) against the study's codebooks and sources."""
    names = study_names(study)
    hosp = _hospital_pool(names)
    level = hyp.level
    problems = []
    roles = [("predictors", n) for n in hyp.predictors]
    roles += [("covariates", n) for n in hyp.covariates]
    for key, name in roles:
        prefix = HOSPITAL_PREFIX if name.startswith(HOSPITAL_PREFIX) else ""
        base = name.removeprefix(HOSPITAL_PREFIX)
        pool = hosp if prefix or level == "hospital" else hosp | names["team_outcomes"]
        if base in pool:
            continue
        elsewhere = _elsewhere(study, base)
        problems.append(
            f"{path}: at {key}: {name!r} is not a scale, a maturity score or a declared "
            f"column the hypotheses read{elsewhere} (rule: {PREDICTOR_RULE[level]})"
            + ("" if elsewhere else _suggest(base, pool, prefix))
        )
    out = hyp.outcome
    source, col = out.source, out.column
    if source == "scale":
        pool = (
            names["team_scales"] if level == "team" else names["survey_scales"] | names["maturity"]
        )
        if col not in pool:
            rule = (
                "a team-level scale outcome is a scale id of a survey codebook whose "
                "source has a team column"
                if level == "team"
                else "a hospital-level scale outcome is a scale id of a survey codebook or a "
                "maturity score"
            )
            problems.append(
                f"{path}: at outcome/column: {col!r} is not such a scale (rule: "
                f"{rule}){_suggest(col, pool)}"
            )
        return problems
    if source not in study.sources:
        problems.append(
            f"{path}: at outcome/source: {source!r} is not a source declared in the config "
            f"(rule: an outcome is read from a declared source; declared: "
            f"{sorted(study.sources)})"
        )
        return problems
    if col not in names[source]:
        problems.append(
            f"{path}: at outcome/column: {col!r} is not a column declared under "
            f"sources.{source}.columns in the config (rule: an outcome column is declared, so "
            f"that validation requires and types it in every wave){_suggest(col, names[source])}"
        )
    exposure = out.exposure
    if exposure:
        tables = [source] + (
            [t for t in ("outcomes", "organisations") if t != source] if level == "hospital" else []
        )
        pool = set().union(*(names[t] for t in tables))
        if exposure not in pool:
            where = " or ".join(f"sources.{t}" for t in tables)
            problems.append(
                f"{path}: at outcome/exposure: {exposure!r} is not a column declared under "
                f"{where} in the config (rule: the exposure is a declared column beside the "
                f"outcome){_suggest(exposure, pool)}"
            )
    return problems


def hypothesis_problems(study: Study, path: Path | str) -> list[str]:
    """Every problem of one hypothesis file: its schema, its rules, then the study."""
    path = Path(path)
    try:
        data = _read(path)
        check_schema(data, "hypothesis", path)
    except ConfigError as exc:
        return [str(exc)]
    hyp = Hypothesis.from_dict(data)
    return _rule_problems(hyp, path) + _study_problems(study, hyp, path)


def check_hypotheses(study: Study, paths: Iterable[Path | str]) -> None:
    """Check hypothesis files against their schema, their rules and the study, before any job
    runs (Snakemake calls this while it builds the DAG).

    Raises one :class:`~flaqum.errors.ConfigError` listing every problem found, each naming
    the file, the key, the value and the rule, with "did you mean" for a near miss among the
    names the hypothesis could use (:func:`study_names`).
    """
    found = {path: hypothesis_problems(study, path) for path in sorted(Path(p) for p in paths)}
    problems = [p for probs in found.values() for p in probs]
    if problems:
        files = sum(1 for probs in found.values() if probs)
        raise ConfigError(
            f"{len(problems)} problem(s) in {files} outcome hypothesis file(s); no job was "
            f"started:\n" + "\n".join(f"- {p}" for p in problems)
        )


def canonical_ids(study: Study, wave_inputs: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The wave's inputs with the id columns of the register and outcome tables named as the
    hypotheses join them: the source's hospital column as ``hospital_id``, its team column as
    ``team_id`` (the processed files keep the names of the raw files; the multilevel tables
    and scores already use these)."""
    out = dict(wave_inputs)
    for key in ("organisations", "outcomes", "team_outcomes"):
        spec, df = study.sources.get(key), out.get(key)
        if spec is None or df is None:
            continue
        hosp = spec.get("hospital") or (spec["id"] if key != "team_outcomes" else None)
        team = spec.get("team") or (spec["id"] if key == "team_outcomes" else None)
        ren = {
            col: canon
            for col, canon in ((hosp, HOSPITAL), (team, TEAM))
            if col and col != canon and col in df.columns and canon not in df.columns
        }
        if ren:
            out[key] = df.rename(columns=ren)
    return out


def read_inputs(paths: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """The wave's files a hypothesis reads, by their key in :data:`INPUTS` (other keys of
    ``paths``, such as a rule's ``spec``, are left alone): CSV files with the ids as text,
    parquet files as written. For a wave of a study folder, ``paths`` is
    ``{key: flaqum.outputs.wave_file(key, wave)}`` for the keys whose files exist (the
    outcomes are optional sources)."""
    return {
        key: (
            pd.read_csv(path, dtype={HOSPITAL: str, TEAM: str})
            if str(path).endswith(".csv")
            else pd.read_parquet(path)
        )
        for key, path in paths.items()
        if key in INPUTS
    }


# --------------------------------------------------------------------------------------------
# The analysis table
# --------------------------------------------------------------------------------------------


def _ids(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.copy()
    for k in keys:
        df[k] = df[k].astype("string").astype(object)
    return df


def _scale_table(wave_inputs: dict, table: str, scale: str, score: str) -> pd.DataFrame | None:
    """A scale's rows of hospitals.csv/teams.csv: keys, value, se (None if the scale is absent)."""
    df = wave_inputs.get(table)
    if df is None or "scale" not in df.columns:
        return None
    keys = [HOSPITAL] if table == "hospitals" else TEAM_KEYS
    rows = df[df["scale"].astype(str) == scale]
    if rows.empty:
        return None
    rows = _ids(rows, keys)
    col = "eb_mean" if score == "eb" else "raw_mean"
    out = rows[keys].copy()
    out["value"] = pd.to_numeric(rows[col], errors="coerce").to_numpy()
    if score == "eb" and "eb_se" in rows.columns:
        out["se"] = pd.to_numeric(rows["eb_se"], errors="coerce").to_numpy()
        if "raw_mean" in rows.columns:  # for measurement_error: reliability
            out["raw"] = pd.to_numeric(rows["raw_mean"], errors="coerce").to_numpy()
    else:
        out["se"] = np.nan
    if out.duplicated(keys).any():
        dup = out.loc[out.duplicated(keys), keys].iloc[0].tolist()
        raise InputError(
            table + ".csv",
            f"scale {scale!r} has more than one row for {dup}",
            rule="one row per scale x unit",
        )
    return out


def _column_table(wave_inputs: dict, table: str, column: str) -> pd.DataFrame | None:
    df = wave_inputs.get(table)
    if df is None or column not in df.columns:
        return None
    keys = TEAM_KEYS if table == "team_outcomes" else [HOSPITAL]
    absent = [k for k in keys if k not in df.columns]
    if absent:
        raise InputError(
            table,
            f"no {' or '.join(map(repr, absent))} column to join "
            f"{column!r} on (columns: {list(df.columns)[:8]})",
            column=absent[0],
            rule="the hypotheses join tables on hospital_id and team_id; "
            "canonical_ids names a source's id columns so",
        )
    out = _ids(df[keys + [column]], keys).rename(columns={column: "value"})
    if out.duplicated(keys).any():
        raise InputError(
            table, f"more than one row per {'/'.join(keys)}", column=column, rule="one row per unit"
        )
    out["se"] = np.nan
    return out


def _resolve(name: str, level: str, wave_inputs: dict, score: str) -> tuple[pd.DataFrame, dict]:
    """Find a predictor/covariate: its table (keys, value, se) and where it came from."""
    searched = []
    if level == "team" and not name.startswith(HOSPITAL_PREFIX):
        tab = _scale_table(wave_inputs, "teams", name, score)
        if tab is not None:
            return tab, {"table": "teams.csv", "level": "team", "score": f"{score}_mean"}
        tab = _column_table(wave_inputs, "team_outcomes", name)
        if tab is not None:
            return tab, {"table": "team_outcomes", "level": "team", "score": "observed"}
        searched += ["teams.csv (scale)", "team_outcomes"]
    base = name.removeprefix(HOSPITAL_PREFIX)
    tab = _scale_table(wave_inputs, "hospitals", base, score)
    if tab is not None:
        return tab, {"table": "hospitals.csv", "level": "hospital", "score": f"{score}_mean"}
    for table in ("maturity", "organisations", "outcomes"):
        tab = _column_table(wave_inputs, table, base)
        if tab is not None:
            kind = "maturity score" if table == "maturity" else "observed"
            return tab, {"table": table, "level": "hospital", "score": kind}
    searched += ["hospitals.csv (scale)", "maturity", "organisations", "outcomes"]
    avail = sorted(k for k in INPUTS if k in wave_inputs)
    raise NotInWave(
        f"{name!r} not found in {', '.join(searched)} (inputs present: {avail}); a scale id, a "
        f"maturity column (mm_*), or a column of organisations/outcomes is expected"
    )


def _outcome_table(hyp: Hypothesis, wave_inputs: dict) -> tuple[pd.DataFrame, dict]:
    out = hyp.outcome
    level, source, col = hyp.level, out.source, out.column
    if source == "scale":
        table = "teams" if level == "team" else "hospitals"
        score = out.scores
        tab = _scale_table(wave_inputs, table, col, score)
        where = {"table": f"{table}.csv", "level": level, "score": f"{score}_mean"}
        if tab is None and level == "hospital":
            tab = _column_table(wave_inputs, "maturity", col)
            where = {"table": "maturity", "level": "hospital", "score": "maturity score"}
        if tab is None:
            raise NotInWave(f"outcome scale {col!r} not found in {table}.csv")
        return tab, where
    tab = _column_table(wave_inputs, source, col)
    if tab is None:
        present = source in wave_inputs
        raise ConfigError(
            f"outcome column {col!r} not found in {source}"
            + ("" if present else f" ({source} is missing for this wave)")
        )
    return tab, {"table": source, "level": level, "score": "observed"}


def assemble_data(
    hyp: Hypothesis | Mapping, wave_inputs: dict[str, pd.DataFrame], wave: str | None = None
) -> pd.DataFrame:
    """The analysis table of one hypothesis: one row per hospital or per team (hospital_id,
    team_id), sorted by id.

    ``wave_inputs`` holds DataFrames keyed ``hospitals``, ``teams`` (the multilevel CSVs),
    ``maturity``, ``outcomes``, ``team_outcomes``, ``organisations`` (:data:`INPUTS`, read by
    :func:`read_inputs`). Columns: the ids, the outcome (``outcome.column``), its exposure,
    each predictor and covariate under its own name and, for a score with a standard error,
    ``<name>__se``. Units missing a value keep NaN (the fit drops them and counts them).
    Provenance is in ``df.attrs["scores_used"]``.
    """
    hyp = as_hypothesis(hyp)
    level = hyp.level
    keys = TEAM_KEYS if level == "team" else [HOSPITAL]
    score = hyp.predictor_scores
    where: dict[str, dict] = {}
    try:
        y_tab, where_y = _outcome_table(hyp, wave_inputs)
    except ConfigError as exc:  # a NotInWave stays one: the wave lacks it
        raise type(exc)(f"hypothesis {hyp.id}: at outcome/column: {exc}") from None
    ycol = hyp.outcome.column
    data = y_tab[keys + ["value"]].rename(columns={"value": ycol})
    if y_tab["se"].notna().any():  # kept for the outcome's reliability, not drawn
        data[f"{ycol}__se"] = y_tab["se"].to_numpy()
    where[ycol] = {"role": "outcome", **where_y}
    exposure = hyp.outcome.exposure
    if exposure:
        etab = _column_table(wave_inputs, hyp.outcome.source, exposure)
        if etab is None and level == "hospital":
            for table in ("outcomes", "organisations"):
                etab = _column_table(wave_inputs, table, exposure)
                if etab is not None:
                    break
        if etab is None:
            raise ConfigError(
                f"hypothesis {hyp.id}: at outcome/exposure: column {exposure!r} not found "
                f"beside the outcome in {hyp.outcome.source}"
            )
        data = data.merge(
            etab[keys + ["value"]].rename(columns={"value": exposure}), on=keys, how="outer"
        )
    roles = [(p, "predictor") for p in hyp.predictors]
    roles += [(c, "covariate") for c in hyp.covariates]
    for name, role in roles:
        try:
            tab, src = _resolve(name, level, wave_inputs, score)
        except ConfigError as exc:  # a NotInWave stays one: the wave lacks it
            raise type(exc)(f"hypothesis {hyp.id}: at {role}s: {exc}") from None
        on = TEAM_KEYS if src["level"] == "team" else [HOSPITAL]
        extra = ["raw"] if "raw" in tab.columns else []
        cols = tab[on + ["value", "se", *extra]].rename(
            columns={"value": name, "se": f"{name}__se", "raw": f"{name}__raw"}
        )
        if cols[f"{name}__se"].isna().all():
            cols = cols.drop(columns=[f"{name}__se", *(f"{name}__raw" for _ in extra)])
        # cross-level: a hospital's value joins every team of that hospital
        data = data.merge(cols, on=on, how="outer" if on == keys else "left")
        where[name] = {"role": role, **src}
    data = data.sort_values(keys, kind="mergesort").reset_index(drop=True)
    data.attrs["scores_used"] = where
    data.attrs["hypothesis"] = hyp.id
    if wave is not None:
        data.attrs["wave"] = wave
    return data


# --------------------------------------------------------------------------------------------
# The design
# --------------------------------------------------------------------------------------------


class Design:
    """The numeric design of one hypothesis: the complete rows of its analysis table
    (:func:`assemble_data`) as outcome, exposure (and offset), model matrix ``X`` with its
    term ``names`` and ``focal`` terms, hospital clusters (team level), the estimated scores
    whose uncertainty the plausible values carry (``noisy``), and the values no model can
    take (``problems``). Rows dropped for a missing value are counted, not silently lost."""

    def __init__(self, hyp: Hypothesis, data: pd.DataFrame):
        self.family = hyp.family
        self.level = hyp.level
        ycol = hyp.outcome.column
        exposure = hyp.outcome.exposure
        preds, covs = list(hyp.predictors), list(hyp.covariates)
        self.ycol = ycol
        self.warnings: list[str] = []
        missing = [c for c in [ycol, exposure, *preds, *covs] if c and c not in data.columns]
        if missing:
            raise ConfigError(f"hypothesis {hyp.id}: columns {missing} not in the data")
        roles = {
            ycol: "outcome",
            **({exposure: "exposure"} if exposure else {}),
            **{c: "predictor" for c in preds},
            **{c: "covariate" for c in covs},
        }
        # values that are there but cannot enter a model: data errors, never dropped quietly
        self.problems = _value_problems(data, roles, self.family, self.level)
        complete = self._complete_rows(data, ycol, exposure, list(roles))
        self.n_dropped = int((~complete).sum())
        df = data.loc[complete].reset_index(drop=True)
        self.df = df
        self.n = len(df)
        self.y = pd.to_numeric(df[ycol], errors="coerce").to_numpy(float)
        self.exposure = (
            pd.to_numeric(df[exposure], errors="coerce").to_numpy(float) if exposure else None
        )
        with np.errstate(all="ignore"):
            self.offset = (
                np.log(self.exposure) if exposure and self.family in COUNT_FAMILIES else None
            )
        self._terms(data, preds, covs, hyp.standardize)
        self.groups = (
            pd.factorize(df[HOSPITAL].astype(str), sort=True)[0] if self.level == "team" else None
        )
        self.n_clusters = int(len(np.unique(self.groups))) if self.groups is not None else None

    def _complete_rows(
        self, data: pd.DataFrame, ycol: str, exposure: str | None, need: list[str]
    ) -> pd.Series:
        """The rows with every value present (the others counted in ``missing``) and, in
        count and binomial models, a positive exposure and no more successes than trials
        (the rows dropped for these, each rule with a warning)."""
        present = data[need].notna()
        complete = present.all(axis=1)
        self.n_rows = len(data)
        self.missing = {c: int((~present[c]).sum()) for c in need if not present[c].all()}
        if exposure and self.family in COUNT_FAMILIES + ("binomial",):
            expo = pd.to_numeric(data[exposure], errors="coerce")
            bad = complete & ~(expo > 0)
            if bad.any():
                self.warnings.append(
                    f"{int(bad.sum())} rows with {exposure} <= 0 dropped (an exposure must be "
                    f"positive)"
                )
            complete &= expo > 0
        if self.family == "binomial":
            yv = pd.to_numeric(data[ycol], errors="coerce")
            bad = complete & (yv > pd.to_numeric(data[exposure], errors="coerce"))
            if bad.any():
                self.warnings.append(f"{int(bad.sum())} rows with {ycol} > {exposure} dropped")
            complete &= ~bad
        return complete

    def _terms(
        self, data: pd.DataFrame, preds: list[str], covs: list[str], standardize: bool
    ) -> None:
        """The model matrix ``X`` of the complete rows: an intercept, each numeric predictor
        or covariate as it is (focal predictors per SD with ``standardize``), each text one as
        dummies against its first level in sorted order; ``names``, ``focal`` and the
        estimated scores (:meth:`_noisy`)."""
        df = self.df
        cols: list[np.ndarray] = [np.ones(self.n)]
        names = ["Intercept"]
        self.focal: list[str] = []
        self.noisy: dict[str, dict] = {}  # predictor -> eb, se, units, column, centre, scale
        for name in preds + covs:
            is_pred = name in preds
            s = df[name]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                x = s.to_numpy(float)
                centre, scale = 0.0, 1.0
                if is_pred and standardize:
                    sd = float(np.std(x, ddof=1)) if self.n > 1 else float("nan")
                    if np.isfinite(sd) and sd > 0:
                        centre, scale = float(np.mean(x)), sd
                    else:
                        self.warnings.append(f"{name} has no variance; not standardised")
                cols.append((x - centre) / scale)
                names.append(name)
                if is_pred:
                    self.focal.append(name)
                    self._noisy(data, name, x, len(cols) - 1, centre, scale)
            else:
                levels = sorted(s.astype(str).unique())
                for lev in levels[1:]:
                    cols.append((s.astype(str) == lev).to_numpy(float))
                    term = f"{name}[{lev}]"
                    names.append(term)
                    if is_pred:
                        self.focal.append(term)
                if is_pred and len(levels) > 1:
                    self.warnings.append(f"{name} is categorical: reference level {levels[0]!r}")
        self.X = np.column_stack(cols) if cols else np.empty((self.n, 0))
        self.names = names

    def _noisy(
        self, data: pd.DataFrame, name: str, x: np.ndarray, col: int, centre: float, scale: float
    ) -> None:
        """A focal predictor that is an estimated score (an EB mean with a positive
        ``eb_se``): its values, standard errors, units (a team's or a hospital's), column of
        ``X`` and raw means, for the plausible values and the reliability correction."""
        df = self.df
        se_col = f"{name}__se"
        if se_col not in df.columns:
            return
        se = pd.to_numeric(df[se_col], errors="coerce").to_numpy(float)
        if np.isnan(se).any():
            self.warnings.append(
                f"{name}: {int(np.isnan(se).sum())} units without eb_se; their "
                f"score is taken as known"
            )
            se = np.nan_to_num(se, nan=0.0)
        if not (se > 0).any():
            return
        unit_level = (
            "team"
            if self.level == "team" and not self._is_hospital_level(data, name)
            else "hospital"
        )
        ukeys = TEAM_KEYS if unit_level == "team" else [HOSPITAL]
        labels = df[ukeys[0]].astype(str)
        for key in ukeys[1:]:  # the same labels as "\x1f".join, row-wise
            labels = labels + "\x1f" + df[key].astype(str)
        units = pd.factorize(labels, sort=True)[0]
        raw_col = f"{name}__raw"
        raw = (
            pd.to_numeric(df[raw_col], errors="coerce").to_numpy(float)
            if raw_col in df.columns
            else None
        )
        self.noisy[name] = {
            "eb": x,
            "se": se,
            "units": units,
            "col": col,
            "centre": centre,
            "scale": scale,
            "raw": raw,
            "level": unit_level,
        }

    @staticmethod
    def _is_hospital_level(data: pd.DataFrame, name: str) -> bool:
        src = data.attrs.get("scores_used", {}).get(name, {})
        if src:
            return src.get("level") == "hospital"
        # without provenance: hospital level if constant within every hospital
        return bool((data.groupby(HOSPITAL)[name].nunique(dropna=True) <= 1).all())


def _show(value: Any) -> str:
    """A value as a user reads it: numbers plain (1e+308, -3), text quoted."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return repr(str(value))


def _unit(data: pd.DataFrame, index: Any, level: str) -> str:
    keys = [k for k in (TEAM_KEYS if level == "team" else [HOSPITAL]) if k in data.columns]
    if not keys:
        return f"row {index}"
    return ", ".join(f"{k} {str(data.at[index, k])!r}" for k in keys)


def _flagged(
    data: pd.DataFrame, mask: pd.Series, col: str, what: str, role: str, level: str, rule: str
) -> str:
    idx = mask[mask].index
    first = idx[0]
    count = f"{len(idx)} {what}s" if len(idx) > 1 else f"a {what}"
    return (
        f"{role} {col!r} has {count}, e.g. {_show(data.at[first, col])} for "
        f"{_unit(data, first, level)} (rule: {rule})"
    )


def _value_problems(
    data: pd.DataFrame, roles: dict[str, str], family: str, level: str
) -> list[str]:
    """Values present in the analysis table that no model can take: text where a number is
    needed (outcome, exposure), infinite or too large numbers (``LARGE``), and negative
    counts. Each message names the column, the first unit, how many rows and the rule."""
    problems = []
    for col, role in roles.items():
        s = data[col]
        if role in ("outcome", "exposure"):
            v = pd.to_numeric(s, errors="coerce")
            text = s.notna() & v.isna()
            if text.any():
                problems.append(
                    _flagged(
                        data, text, col, "non-numeric value", role, level, f"the {role} is a number"
                    )
                )
        elif pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            v = s
        else:
            continue  # a categorical predictor or covariate: its values are labels
        x = pd.Series(v.to_numpy(dtype=float, na_value=np.nan), index=data.index)
        inf = pd.Series(np.isinf(x), index=data.index)
        if inf.any():
            problems.append(
                _flagged(
                    data,
                    inf,
                    col,
                    "non-finite value",
                    role,
                    level,
                    "a model takes finite numbers only",
                )
            )
        huge = np.isfinite(x) & (x.abs() > LARGE)
        if huge.any():
            problems.append(
                _flagged(
                    data,
                    huge,
                    col,
                    "value too large to model",
                    role,
                    level,
                    f"at most {LARGE:g} in size, so that sums of squares stay finite",
                )
            )
        negative = np.isfinite(x) & (x < 0)
        if role == "outcome" and family != "gaussian" and negative.any():
            problems.append(
                _flagged(data, negative, col, "negative value", role, level, "a count is 0 or more")
            )
        se_col = f"{col}__se"
        if role == "predictor" and se_col in data.columns:
            se = pd.Series(
                pd.to_numeric(data[se_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan),
                index=data.index,
            )
            bad = np.isinf(se) | (se.abs() > LARGE)
            if bad.any():
                problems.append(
                    _flagged(
                        data,
                        bad,
                        se_col,
                        "non-finite or too large value",
                        "standard error",
                        level,
                        f"a model takes finite numbers at most {LARGE:g} in size",
                    )
                )
    return problems
