"""Measurement-invariance comparisons of a wave (``results/<wave>/psychometrics/invariance.csv``).

Three kinds, each a configural / metric / scalar sequence of multi-group CFAs of every factor
model of a source (:func:`flaqum.psychometrics.invariance_table`: an instrument's declared
``factor_model``, else each scale of at least four items as one factor):

- ``<column>``: across the respondent groups of a source named in config
  ``psychometrics.invariance_groups`` (e.g. professions): do the groups read the items alike?
- ``wave``: this wave against the previous one: is change in a score change in the construct?
- ``mirror``: the professionals' against the patients' Quickscan (instruments linked by
  ``mirror:`` in their codebooks, same item ids): can the two stakeholders be compared?

Groups with fewer than ``psychometrics.invariance_min_group`` complete respondents are left
out of a comparison and named in its ``note``.
"""

from __future__ import annotations

import pandas as pd

from flaqum.config import Study
from flaqum.psychometrics import INVARIANCE_COLUMNS as MODEL_COLUMNS
from flaqum.psychometrics import invariance_table
from flaqum.utils import get_logger

INVARIANCE_COLUMNS = ["comparison", "source", "scale", "factors", "groups", *MODEL_COLUMNS]
GROUP = "_group"  # the grouping column added for the wave and mirror comparisons

log = get_logger()


def _compare(study: Study, comparison: str, label: str, source: str, data: pd.DataFrame,
             group_col: str, min_group: int) -> pd.DataFrame:
    table = invariance_table(study, source, data, data, group_col, min_group)
    log.info(f"invariance {comparison} {label}: {table['scale'].nunique()} models")
    return table.drop(columns="group_col").assign(comparison=comparison, source=label)


def invariance_report(
    study: Study, wave: str, current: dict[str, pd.DataFrame],
    previous: dict[str, pd.DataFrame], previous_wave: str | None,
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
                [previous[source][common].assign(**{GROUP: previous_wave}),
                 df[common].assign(**{GROUP: wave})],
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
        table = _compare(study, "mirror", f"{inst.source}+{mate.source}", inst.source, both,
                         GROUP, min_group)
        frames.append(table[table["scale"].isin([*inst.scales, inst.id])])
    if not frames:
        return pd.DataFrame(columns=INVARIANCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[INVARIANCE_COLUMNS]
