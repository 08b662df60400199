"""Scale scores: the mean of a respondent's answered items, if at least ``min_items`` answered.

Items arrive from ingest with missing codes as missing and reverse-keyed items recoded, so a
score is a plain mean. One row per respondent: respondent_id, hospital_id, team_id (strings),
one column per scale, and the source's declared extra columns (case-mix covariates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flaqum.config import Scale, Study


def score_scale(items: pd.DataFrame, scale: Scale) -> pd.Series:
    X = items[list(scale.items)].to_numpy(float)
    answered = (~np.isnan(X)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(X, axis=1) / answered
    return pd.Series(np.where(answered >= scale.min_items, mean, np.nan), index=items.index)


def score_source(
    study: Study, source: str, df: pd.DataFrame, wave: str | None = None
) -> pd.DataFrame:
    """Scores of the processed data ``df`` (id columns under their canonical names, see
    ``Study.canonical_ids``); an absent team or hospital level is an empty column."""
    spec = study.sources[source]
    ids = study.canonical_ids(source)
    out = pd.DataFrame({"respondent_id": df[ids[spec["id"]]].astype("string")})
    for col in ("hospital_id", "team_id"):
        out[col] = (
            df[col].astype("string")
            if col in df.columns
            else pd.Series(pd.NA, index=df.index, dtype="string")
        )
    for col in spec.get("columns", {}):
        if col in df.columns:
            out[col] = df[col]
    for sid, scale in study.scales_for(source, wave).items():  # the instruments of the wave
        out[sid] = score_scale(df, scale)
    return out
