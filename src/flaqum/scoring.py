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


def score_source(study: Study, source: str, df: pd.DataFrame) -> pd.DataFrame:
    spec = study.sources[source]
    out = pd.DataFrame({"respondent_id": df[spec["id"]].astype("string")})
    out["hospital_id"] = df[spec["hospital"]].astype("string")
    team = spec.get("team")
    out["team_id"] = (
        df[team].astype("string")
        if team and team in df.columns
        else pd.Series(pd.NA, index=df.index, dtype="string")
    )
    for col in spec.get("columns", {}):
        if col in df.columns:
            out[col] = df[col]
    for sid, scale in study.scales_for(source).items():
        out[sid] = score_scale(df, scale)
    return out
