"""Planning the next wave: respondents per team for a reliable team mean, and the smallest
change in a hospital's mean that the next wave could detect.

Respondents per team (Bliese 2000, "Within-group agreement, non-independence, and reliability:
implications for data aggregation and analysis", in Klein and Kozlowski (eds), Multilevel
theory, research, and methods in organizations, pp. 349-381)
    The reliability of a team mean of k respondents, ICC(2), follows from ICC(1) by the
    Spearman-Brown formula, ICC(2) = k ICC(1) / (1 + (k - 1) ICC(1)) (``multilevel::ICC2``
    equals this at the mean team size k = N / J). Solved for k, the respondents a team needs
    for a reliability R:

        k = R (1 - ICC(1)) / (ICC(1) (1 - R)),

    rounded up to whole respondents (``respondents_70``, ``respondents_80`` for R = .70 and
    .80). Not defined for ICC(1) <= 0 (no variance between teams to measure). ``icc1`` and
    ``icc2`` come from ``psychometrics/scales.csv``; the share of this wave's teams that
    already have that many respondents from ``psychometrics/agreement.csv`` (``n`` per team).

Minimal detectable change of a hospital's mean (two-sided level alpha, power 1 - beta)
    MDC = (z_{1 - alpha/2} + z_{1 - beta}) sqrt(SE_now^2 + SE_next^2),

    with SE_now the hospital's ``eb_se`` in ``multilevel/hospitals.csv`` (the standard error of
    its shrunken mean this wave) and SE_next assumed equal to SE_now (the same number of
    respondents next wave): MDC = 2.8016 sqrt(2) SE_now = 3.962 SE_now for alpha = .05 and
    power .80. It is the true change that a test of the difference of the two waves' means
    (as in ``multilevel/change.csv``) would find with probability .80 (Cohen 1988, ch. 1;
    the normal approximation, ignoring the small covariance of two waves' means).
    Suppressed hospitals (fewer than ``min_group_size`` respondents) have no value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [
    "spearman_brown",
    "respondents_needed",
    "mdc",
    "planning_scales",
    "planning_hospitals",
    "SCALE_COLUMNS",
    "HOSPITAL_COLUMNS",
]

RELIABILITIES = (0.70, 0.80)

SCALE_COLUMNS = [
    "scale",
    "icc1",
    "icc2",
    "n_teams",
    "mean_team_size",
    "needed_70",
    "needed_80",
    "respondents_70",
    "respondents_80",
    "teams_reaching_70",
    "teams_reaching_80",
]

HOSPITAL_COLUMNS = ["scale", "hospital_id", "n", "eb_se", "se_next", "mdc", "suppressed"]


def spearman_brown(icc1: ArrayLike, k: ArrayLike) -> np.ndarray | float:
    """Reliability of the mean of k respondents: k ICC1 / (1 + (k - 1) ICC1)."""
    icc1, k = np.asarray(icc1, float), np.asarray(k, float)
    return k * icc1 / (1 + (k - 1) * icc1)


def respondents_needed(icc1: ArrayLike, reliability: float) -> np.ndarray | float:
    """k with spearman_brown(icc1, k) == reliability (not rounded); NaN where ICC1 <= 0 or
    outside (0, 1)."""
    icc1 = np.asarray(icc1, float)
    r = float(reliability)
    if not 0 < r < 1:
        raise ValueError(f"reliability must be between 0 and 1, not {reliability!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        k = r * (1 - icc1) / (icc1 * (1 - r))
    return np.where((icc1 > 0) & (icc1 < 1), k, np.nan)


def mdc(
    se_now: ArrayLike,
    se_next: ArrayLike | None = None,
    alpha: float = 0.05,
    power: float = 0.80,
) -> np.ndarray | float:
    """(z_{1-alpha/2} + z_power) sqrt(se_now^2 + se_next^2); se_next defaults to se_now."""
    se_now = np.asarray(se_now, float)
    se_next = se_now if se_next is None else np.asarray(se_next, float)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return z * np.sqrt(se_now**2 + se_next**2)


def planning_scales(scales: pd.DataFrame, agreement: pd.DataFrame | None) -> pd.DataFrame:
    """One row per scale with an ICC(1) (``SCALE_COLUMNS``)."""
    s = scales[scales["icc1"].notna()].copy() if "icc1" in scales else scales.iloc[0:0].copy()
    out = pd.DataFrame({"scale": s["scale"], "icc1": s["icc1"], "icc2": s["icc2"]})
    out["n_teams"] = s["n_teams"] if "n_teams" in s else np.nan
    out["mean_team_size"] = s["n_respondents"] / s["n_teams"] if "n_teams" in s else np.nan
    for r in RELIABILITIES:
        tag = f"{round(r * 100)}"
        k = respondents_needed(out["icc1"], r)
        out[f"needed_{tag}"] = k
        out[f"respondents_{tag}"] = np.ceil(k - 1e-9)  # a whole number of respondents
    sizes = (
        agreement.groupby("scale")["n"].apply(lambda x: np.asarray(x, float))
        if agreement is not None and not agreement.empty
        else pd.Series(dtype=object)
    )
    for tag in ("70", "80"):
        out[f"teams_reaching_{tag}"] = [
            float(np.mean(sizes[sc] >= k)) if sc in sizes.index and np.isfinite(k) else np.nan
            for sc, k in zip(out["scale"], out[f"respondents_{tag}"], strict=True)
        ]
    out["respondents_70"] = out["respondents_70"].astype("Int64")
    out["respondents_80"] = out["respondents_80"].astype("Int64")
    return out[SCALE_COLUMNS].reset_index(drop=True)


def planning_hospitals(hospitals: pd.DataFrame) -> pd.DataFrame:
    """One row per scale x hospital of ``multilevel/hospitals.csv`` (``HOSPITAL_COLUMNS``)."""
    h = hospitals
    supp = (
        h["suppressed"].astype(str).str.lower().isin(["true", "1"])
        if "suppressed" in h
        else pd.Series(False, index=h.index)
    )
    se = h["eb_se"].where(~supp)
    out = pd.DataFrame(
        {
            "scale": h["scale"],
            "hospital_id": h["hospital_id"].astype(str),
            "n": h["n"],
            "eb_se": se,
            "se_next": se,
            "mdc": mdc(se),
            "suppressed": supp,
        }
    )
    return out[HOSPITAL_COLUMNS].reset_index(drop=True)
