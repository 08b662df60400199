"""Measurement invariance of the scales (``results/<wave>/psychometrics/invariance.csv``).

What each number is and how it is computed (columns: docs/outputs.md):

``measurement_invariance``
    Configural, metric (loadings equal) and scalar (loadings and intercepts equal; latent means
    free in all groups but the first) multi-group CFA, as lavaan's ``cfa(group = ,
    group.equal = c("loadings") / c("loadings", "intercepts"))``, each fitted by the exact ML
    engine of :mod:`flaqum.cfa` (chi2, df, cfi, tli, rmsea and srmr as
    ``lavaan::fitMeasures``). delta_cfi is the change from the previous step; ``holds`` is
    delta_cfi > -0.01 (Chen 2007). One row per model: the columns ``MODEL_COLUMNS``.

``invariance_table``
    That sequence for every factor model of a source across the levels of one grouping column:
    an instrument's declared ``factor_model`` (a correlated-factor model), else each scale of
    at least four items as one factor.

``invariance_report``
    Every comparison of a wave (the rows of ``invariance.csv``, columns ``INVARIANCE_COLUMNS``),
    three kinds, each a configural / metric / scalar sequence of ``invariance_table``:

    - ``<column>``: across the respondent groups of a source named in config
      ``psychometrics.invariance_groups`` (e.g. professions): do the groups read the items
      alike?
    - ``wave``: this wave against the previous one: is change in a score change in the
      construct?
    - ``mirror``: the professionals' against the patients' Quickscan (instruments linked by
      ``mirror:`` in their codebooks, same item ids): can the two stakeholders be compared?

    Groups with fewer than ``psychometrics.invariance_min_group`` complete respondents are left
    out of a comparison and named in its ``note``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from flaqum.cfa import fit_cfa, nan_result
from flaqum.config import Study
from flaqum.utils import get_logger

__all__ = [
    "measurement_invariance",
    "invariance_table",
    "invariance_report",
    "MODEL_COLUMNS",
    "INVARIANCE_COLUMNS",
    "CHEN_DELTA_CFI",
]

#: The columns of one invariance sequence (one row per model), as ``measurement_invariance``
#: returns them.
MODEL_COLUMNS = [
    "model",
    "chi2",
    "df",
    "cfi",
    "tli",
    "rmsea",
    "srmr",
    "delta_cfi",
    "holds",
    "n",
    "n_groups",
    "converged",
    "note",
]
#: The columns of ``invariance.csv``: every comparison of a wave.
INVARIANCE_COLUMNS = ["comparison", "source", "scale", "factors", "groups", *MODEL_COLUMNS]
#: A step of the invariance sequence holds while CFI drops by less than this (Chen 2007).
CHEN_DELTA_CFI = -0.01
GROUP = "_group"  # the grouping column added for the wave and mirror comparisons

log = get_logger()


def measurement_invariance(
    items: pd.DataFrame,
    group: pd.Series,
    factors: dict[str, list[str]] | None = None,
    min_group_n: int | None = None,
) -> pd.DataFrame:
    """Configural, metric and scalar invariance across the groups of ``group``.

    One row per model with chi2, df, cfi, tli, rmsea, srmr, delta_cfi (against the previous
    model), holds (delta_cfi > -0.01, Chen 2007; NA for the configural model), n, n_groups,
    converged and a note (groups left out for having fewer than ``min_group_n`` complete rows,
    default max(20, 2 x items), or a singular covariance matrix; non-convergence).
    """
    items = pd.DataFrame(items)
    p = items.shape[1]
    min_n = min_group_n if min_group_n is not None else max(20, 2 * p)
    rows = []
    prev_cfi = np.nan
    for model, equal in (
        ("configural", ()),
        ("metric", ("loadings",)),
        ("scalar", ("loadings", "intercepts")),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = fit_cfa(
                    items,
                    factors,
                    group=pd.Series(np.asarray(group)),
                    equal=equal,
                    min_group_n=min_n,
                )
        except (np.linalg.LinAlgError, ValueError) as exc:
            r = nan_result(list(items.columns), f"failed: {exc}")
        delta = r.cfi - prev_cfi if model != "configural" else np.nan
        holds = (
            pd.NA
            if model == "configural" or not np.isfinite(delta)
            else bool(delta > CHEN_DELTA_CFI)
        )
        note = r.message.replace("converged; ", "").replace("converged", "").strip("; ")
        rows.append(
            {
                "model": model,
                "chi2": r.chi2,
                "df": r.df,
                "cfi": r.cfi,
                "tli": r.tli,
                "rmsea": r.rmsea,
                "srmr": r.srmr,
                "delta_cfi": delta,
                "holds": holds,
                "n": r.n,
                "n_groups": len(r.groups),
                "converged": r.converged,
                "note": note,
                "groups": "; ".join(map(str, r.groups)),
            }
        )
        prev_cfi = r.cfi
    out = pd.DataFrame(rows, columns=[*MODEL_COLUMNS, "groups"])
    out["holds"] = out["holds"].astype("boolean")
    return out


# --------------------------------------------------------------------------------------------
# The sequence for every factor model of a source
# --------------------------------------------------------------------------------------------


def _factor_models(
    study: Study, source: str
) -> list[tuple[str, dict[str, list[str]] | None, list[str]]]:
    """(label, factors, items) of each model to test: an instrument's factor_model, else each
    scale with at least four items as one factor."""
    out: list[tuple[str, dict[str, list[str]] | None, list[str]]] = []
    for inst in study.instruments_for(source):
        scales = inst.scales
        fm = inst.raw.get("factor_model") or []
        if fm:
            factors = {s: list(scales[s].items) for s in fm}
            parents = {scales[s].parent for s in fm}
            label = parents.pop() if len(parents) == 1 and None not in parents else inst.id
            items = [i for s in fm for i in scales[s].items]
            out.append((label, factors, items))
            continue
        for sid, sc in scales.items():
            if len(sc.items) >= 4:
                out.append((sid, None, list(sc.items)))
    return out


def invariance_table(
    study: Study,
    source: str,
    processed: pd.DataFrame,
    scores: pd.DataFrame,
    group_col: str,
    min_group_n: int | None = None,
) -> pd.DataFrame:
    """Measurement invariance of each factor model of a source across the levels of group_col.

    An instrument with a ``factor_model`` is tested as that correlated-factor model (labelled
    with the factors' common parent scale); otherwise each scale with at least four items as one
    factor. ``group_col`` is a column of ``processed`` or, failing that, of ``scores`` (rows
    aligned). Columns: scale, group_col (the grouping column's name), factors, groups (the
    levels compared), then those of :func:`measurement_invariance`.
    """
    processed = processed.reset_index(drop=True)
    if group_col in processed.columns:
        g = processed[group_col]
    elif group_col in scores.columns:
        g = scores.reset_index(drop=True)[group_col]
    else:
        raise KeyError(f"grouping column {group_col!r} is in neither processed nor scores")
    g = g.astype("string")
    frames = []
    for label, factors, items in _factor_models(study, source):
        present = [i for i in items if i in processed.columns]
        if not present:
            continue  # an instrument not in these data (not fielded in a wave compared)
        if len(present) < len(items):
            res = pd.DataFrame({"model": ["configural", "metric", "scalar"]})
            for c in MODEL_COLUMNS[1:]:
                res[c] = np.nan
            res["converged"] = False
            res["note"] = f"items missing from the data: {sorted(set(items) - set(present))}"
        else:
            res = measurement_invariance(processed[present], g, factors, min_group_n)
        if "groups" not in res:
            res["groups"] = ""
        res.insert(0, "factors", "+".join(factors) if factors else label)
        res.insert(0, "group_col", group_col)
        res.insert(0, "scale", label)
        frames.append(res)
    cols = ["scale", "group_col", "factors", *MODEL_COLUMNS, "groups"]
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------
# The comparisons of a wave
# --------------------------------------------------------------------------------------------


def _compare(
    study: Study,
    comparison: str,
    label: str,
    source: str,
    data: pd.DataFrame,
    group_col: str,
    min_group: int,
) -> pd.DataFrame:
    table = invariance_table(study, source, data, data, group_col, min_group)
    log.info(f"invariance {comparison} {label}: {table['scale'].nunique()} models")
    return table.drop(columns="group_col").assign(comparison=comparison, source=label)


def invariance_report(
    study: Study,
    wave: str,
    current: dict[str, pd.DataFrame],
    previous: dict[str, pd.DataFrame],
    previous_wave: str | None,
) -> pd.DataFrame:
    """Every comparison of the wave; ``current``/``previous``: processed data by source."""
    conf = study.config["psychometrics"]  # defaults: the config schema
    groups_by_source = conf["invariance_groups"]
    min_group = int(conf["invariance_min_group"])
    frames = []
    for source, df in current.items():
        for col in groups_by_source.get(source, []):
            if col in df.columns:
                frames.append(_compare(study, col, source, source, df, col, min_group))
        if source in previous:
            # only what both waves have: an instrument fielded in one of them is left out
            common = previous[source].columns.intersection(df.columns)
            both = pd.concat(
                [
                    previous[source][common].assign(**{GROUP: previous_wave}),
                    df[common].assign(**{GROUP: wave}),
                ],
                ignore_index=True,
            )
            frames.append(_compare(study, "wave", source, source, both, GROUP, min_group))
    for inst in study.instruments.values():
        other = inst.raw.get("mirror")
        if not other or inst.id > other or other not in study.instruments:
            continue
        mate = study.instruments[other]
        if inst.source not in current or mate.source not in current:
            continue
        both = pd.concat(
            [current[s].assign(**{GROUP: s}) for s in (inst.source, mate.source)],
            ignore_index=True,
        )
        table = _compare(
            study, "mirror", f"{inst.source}+{mate.source}", inst.source, both, GROUP, min_group
        )
        frames.append(table[table["scale"].isin([*inst.scales, inst.id])])
    if not frames:
        return pd.DataFrame(columns=INVARIANCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[INVARIANCE_COLUMNS]
