"""Measurement-invariance comparisons of a wave (``results/<wave>/psychometrics/invariance.csv``).

Three kinds, each a configural / metric / scalar sequence of multi-group CFAs
(:func:`flaqum.psychometrics.measurement_invariance`):

- ``<column>``: across the respondent groups of a source named in config
  ``psychometrics.invariance_groups`` (e.g. professions): do the groups read the items alike?
- ``wave``: this wave against the previous one: is change in a score change in the construct?
- ``mirror``: the professionals' against the patients' Quickscan (instruments linked by
  ``mirror:`` in their codebooks, same item ids): can the two stakeholders be compared?

Groups smaller than ``psychometrics.invariance_min_group`` respondents are left out and named
in the ``note``. Scales with fewer than 4 items are skipped (a one-factor model with 3 items is
just identified: it has no fit to compare).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.psychometrics import measurement_invariance
from flaqum.utils import get_logger

INVARIANCE_COLUMNS = [
    "comparison", "source", "scale", "groups", "n", "model", "chi2", "df", "cfi", "tli",
    "rmsea", "srmr", "delta_cfi", "holds", "note",
]
MIN_ITEMS = 4

log = get_logger()


def _models(study: Study, source: str) -> dict[str, dict[str, list[str]] | None]:
    """Scale id -> factor structure (None: one factor on the scale's items).

    A scale whose instrument declares a ``factor_model`` and that is the parent of those
    factors is fitted with that multi-factor structure; the factors themselves are not fitted
    again on their own.
    """
    out: dict[str, dict[str, list[str]] | None] = {}
    factor_children = set()
    for inst in study.instruments_for(source):
        fm = inst.raw.get("factor_model")
        scales = inst.scales
        if fm:
            factor_children.update(fm)
            parents = {scales[f].parent for f in fm if scales[f].parent}
            for p in parents:
                out[p] = {f: list(scales[f].items) for f in fm}
    for sid, sc in study.scales_for(source).items():
        if sid in out or sid in factor_children or len(sc.items) < MIN_ITEMS:
            continue
        if study.instrument_of(sid).unit not in ("team", "hospital"):
            continue
        out[sid] = None
    return out


def _items_of(scale_items: list[str], factors: dict | None) -> list[str]:
    return [i for f in factors.values() for i in f] if factors else scale_items


def compare(
    data: pd.DataFrame, group: pd.Series, items: list[str], factors: dict | None,
    min_group: int,
) -> tuple[pd.DataFrame | None, str, int]:
    present = [i for i in items if i in data.columns]
    if len(present) < len(items):
        return None, f"items missing: {', '.join(sorted(set(items) - set(present)))}", 0
    g = group.astype("string")
    complete = data[items].notna().all(axis=1) & g.notna()
    sizes = g[complete].value_counts()
    small = sizes[sizes < min_group]
    keep = complete & g.isin(sizes[sizes >= min_group].index)
    note = (
        f"left out (fewer than {min_group} complete): {', '.join(map(str, small.index))}"
        if len(small)
        else ""
    )
    if g[keep].nunique() < 2:
        return None, note or "fewer than two groups", int(keep.sum())
    table = measurement_invariance(
        data.loc[keep, items].reset_index(drop=True), g[keep].reset_index(drop=True), factors
    )
    return table, note, int(keep.sum())


def invariance_report(
    study: Study, wave: str, current: dict[str, pd.DataFrame],
    previous: dict[str, pd.DataFrame], previous_wave: str | None,
) -> pd.DataFrame:
    conf = study.config.get("psychometrics", {})
    groups_by_source = conf.get("invariance_groups", {})
    min_group = int(conf.get("invariance_min_group", 100))
    rows = []

    def add(comparison, source, sid, data, group, items, factors):
        table, note, n = compare(data, group, items, factors, min_group)
        labels = ", ".join(sorted(map(str, group.dropna().astype(str).unique())))
        if table is None:
            rows.append(pd.DataFrame([{
                "comparison": comparison, "source": source, "scale": sid, "groups": labels,
                "n": n, "note": note or "not fitted",
            }]))
            return
        table = table.assign(
            comparison=comparison, source=source, scale=sid, groups=labels, n=n,
            note=(table["note"].fillna("") + ("; " if note else "") + note).str.strip("; ")
            if "note" in table else note,
        )
        rows.append(table)
        log.info(f"invariance {comparison} {source}/{sid}: done ({n} respondents)")

    for source, df in current.items():
        models = _models(study, source)
        for sid, factors in models.items():
            items = _items_of(list(study.scale(sid).items), factors)
            for col in groups_by_source.get(source, []):
                if col in df.columns:
                    add(col, source, sid, df, df[col], items, factors)
            if source in previous:
                both = pd.concat([previous[source], df], ignore_index=True)
                waves = pd.Series(
                    [previous_wave] * len(previous[source]) + [wave] * len(df), dtype="string"
                )
                add("wave", source, sid, both, waves, items, factors)
    # mirrored instruments across sources
    for inst in study.instruments.values():
        other = inst.raw.get("mirror")
        if not other or inst.id > other or other not in study.instruments:
            continue
        mate = study.instruments[other]
        if inst.source not in current or mate.source not in current:
            continue
        models = _models(study, inst.source)
        parents = [s for s in inst.scales if s in models]
        for sid in parents:
            factors = models[sid]
            items = _items_of(list(inst.scales[sid].items), factors)
            a, b = current[inst.source], current[mate.source]
            both = pd.concat([a.reindex(columns=items), b.reindex(columns=items)],
                             ignore_index=True)
            grp = pd.Series([inst.source] * len(a) + [mate.source] * len(b), dtype="string")
            add("mirror", f"{inst.source}+{mate.source}", sid, both, grp, items, factors)
    if not rows:
        return pd.DataFrame(columns=INVARIANCE_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    for c in INVARIANCE_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[INVARIANCE_COLUMNS + [c for c in out.columns if c not in INVARIANCE_COLUMNS]]
