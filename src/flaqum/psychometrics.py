"""Reliability and item statistics of the scales, and the psychometrics tables of a source.

What ``results/<wave>/psychometrics/{scales,items,agreement}.csv`` hold (docs/outputs.md)
and how each number is defined:

``cronbach_alpha``
    ``psych::alpha`` (raw_alpha) on the pairwise-complete item covariance matrix C of items
    already keyed alike (reverse-keyed items are recoded at ingest; no ``check.keys``):
    alpha = p / (p - 1) * (1 - tr(C) / sum(C)); ``item_total_r`` is psych's ``r.drop``
    (the item against the sum of the other items, from C); ``alpha_if_deleted`` is the alpha of
    C without the item. The 95% interval is Feldt's, as ``psych::alpha.ci`` (the "Feldt" line
    that ``psych::alpha`` prints): 1 - (1 - alpha) F(q; n - 1, (n - 1)(p - 1)). As in psych, an
    item without variance is left out (and listed in ``dropped``). Two deliberate differences,
    neither of which touches alpha itself: rows with no answer at all are left out of n (psych
    counts every row), and with two items alpha_if_deleted is NaN (one item has no alpha; psych
    prints a covariance ratio there).

    Why not ``pingouin.cronbach_alpha`` (dropped as a dependency): on the psych fixtures
    (tests/fixtures/r/psych_alpha.json) pingouin 0.7 gives the same alpha (to 1e-15), but it
    rounds the Feldt interval to three decimals (up to 4e-4 from psych's), counts rows with no
    answer in n, keeps an item without variance in alpha (psych and we leave it out: 0.744
    against 0.793 on a test set with one constant item), and has no ``r.drop`` or
    alpha-if-deleted, which items.csv needs from the same covariance matrix.

``scale_psychometrics``
    The three tables of docs/outputs.md for one source. omega, cfi, tli, rmsea, srmr and the
    item loadings come from the one-factor CFA of :mod:`flaqum.cfa` (as ``lavaan::cfa``);
    ICC(1), ICC(2), rwg(j) and awg come from :mod:`flaqum.agreement` with teams keyed by
    (hospital_id, team_id). Measurement invariance (``invariance.csv``) is
    :mod:`flaqum.invariance`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from flaqum import agreement as ag
from flaqum.cfa import cfa_one_factor, nan_result
from flaqum.config import Instrument, Study

__all__ = [
    "AlphaResult",
    "cronbach_alpha",
    "pairwise_cov",
    "feldt_ci",
    "scale_psychometrics",
    "SCALE_COLUMNS",
    "ITEM_COLUMNS",
    "AGREEMENT_COLUMNS",
]

SCALE_COLUMNS = [
    "scale",
    "instrument",
    "n_respondents",
    "n_items",
    "alpha",
    "alpha_ci_low",
    "alpha_ci_high",
    "omega",
    "cfi",
    "tli",
    "rmsea",
    "srmr",
    "icc1",
    "icc2",
    "rwg_j_mean",
    "rwg_j_median",
    "awg_mean",
    "n_teams",
]
ITEM_COLUMNS = [
    "scale",
    "item",
    "n",
    "mean",
    "sd",
    "pct_missing",
    "item_total_r",
    "alpha_if_deleted",
    "loading",
]
AGREEMENT_COLUMNS = ["scale", "hospital_id", "team_id", "n", "rwg_j", "awg", "suppressed"]


# --------------------------------------------------------------------------------------------
# Cronbach's alpha
# --------------------------------------------------------------------------------------------


@dataclass
class AlphaResult:
    """Cronbach's alpha of a set of items (see the module docstring for the definitions)."""

    alpha: float
    ci_low: float
    ci_high: float
    n: int
    item_total_r: pd.Series
    alpha_if_deleted: pd.Series
    n_items: int = 0
    dropped: list[str] = field(default_factory=list)


def pairwise_cov(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Covariances from pairwise-complete observations (as R's ``cov(use = "pairwise")``).

    Three matrix products instead of a loop over pairs: with M the answered mask and X0 the
    answers centred at their column means (0 where missing), n_ij = M'M, the pair sums are
    X0'M and the cross-products X0'X0. Returns (C, n_ij); C is NaN where n_ij < 2.
    """
    M = ~np.isnan(X)
    with np.errstate(invalid="ignore"):
        centre = np.nanmean(np.where(M.any(axis=0), X, 0.0), axis=0) if len(X) else 0.0
    centre = np.where(np.isfinite(centre), centre, 0.0)
    X0 = np.where(M, X - centre, 0.0)
    Mf = M.astype(float)
    nij = Mf.T @ Mf
    sx = X0.T @ Mf  # sx[i, j]: sum of x_i over rows where i and j are answered
    sxy = X0.T @ X0
    with np.errstate(invalid="ignore", divide="ignore"):
        C = (sxy - sx * sx.T / nij) / (nij - 1)
    C[nij < 2] = np.nan
    return C, nij


def _alpha_of(C: np.ndarray) -> float:
    p = C.shape[0]
    if p < 2:
        return np.nan
    total = C.sum()
    return float((1 - np.trace(C) / total) * p / (p - 1)) if total else np.nan


def feldt_ci(alpha: float, n: int, p: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt's interval for alpha, as ``psych::alpha.ci`` (lower, upper)."""
    if not np.isfinite(alpha) or n < 2 or p < 2:
        return np.nan, np.nan
    q = 1 - level
    df1, df2 = n - 1, (n - 1) * (p - 1)
    return (
        float(1 - (1 - alpha) * stats.f.ppf(1 - q / 2, df1, df2)),
        float(1 - (1 - alpha) * stats.f.ppf(q / 2, df1, df2)),
    )


def cronbach_alpha(items: pd.DataFrame) -> AlphaResult:
    """Cronbach's alpha from pairwise-complete covariances, as ``psych::alpha`` raw_alpha.

    ``items`` holds one column per item, keyed alike. Returns alpha with its Feldt 95%
    interval, n (rows with at least one answer), the corrected item-total correlations
    (``r.drop``) and alpha if the item is deleted, both indexed by item.
    """
    items = pd.DataFrame(items)
    names = [str(c) for c in items.columns]
    X = ag.numeric_matrix(items)
    X = X[~np.isnan(X).all(axis=1)] if X.size else X.reshape(0, len(names))
    n = int(len(X))
    nan_items = pd.Series(np.nan, index=names, dtype=float)
    if n == 0 or not names:
        return AlphaResult(np.nan, np.nan, np.nan, n, nan_items, nan_items.copy(), 0, names)
    C_all, _ = pairwise_cov(X)  # its diagonal: each item's variance over its answers
    bad = ~(np.diag(C_all) > 0)
    dropped = [nm for nm, b in zip(names, bad, strict=True) if b]
    keep = np.flatnonzero(~bad)
    p = len(keep)
    r_drop = nan_items.copy()
    a_drop = nan_items.copy()
    if p < 2:
        return AlphaResult(np.nan, np.nan, np.nan, n, r_drop, a_drop, p, dropped)
    C = C_all[np.ix_(keep, keep)]
    alpha = _alpha_of(C) if np.isfinite(C).all() else np.nan
    lo, hi = feldt_ci(alpha, n, p)
    if np.isfinite(C).all():
        colsum = C.sum(axis=0)
        total = C.sum()
        diag = np.diag(C)
        # item i against the sum of the others: cov = colsum_i - C_ii; var(rest) = sum(C[-i,-i])
        rest = total - 2 * colsum + diag
        with np.errstate(invalid="ignore", divide="ignore"):
            rd = (colsum - diag) / np.sqrt(diag * rest)
        for j, i in enumerate(keep):
            r_drop.iloc[i] = rd[j]
            if p > 2:
                m = np.ones(p, bool)
                m[j] = False
                a_drop.iloc[i] = _alpha_of(C[np.ix_(m, m)])
    return AlphaResult(alpha, lo, hi, n, r_drop, a_drop, p, dropped)


# --------------------------------------------------------------------------------------------
# The tables of docs/outputs.md
# --------------------------------------------------------------------------------------------


def _team_keys(scores: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    hosp = scores["hospital_id"].astype("string")
    team = scores["team_id"].astype("string") if "team_id" in scores else None
    has_team = team is not None and bool(team.notna().any())
    if has_team:
        return pd.DataFrame({"hospital_id": hosp, "team_id": team}), True
    return pd.DataFrame({"hospital_id": hosp}), False


def _response(inst: Instrument) -> tuple[int | None, float | None, float | None]:
    if "response" not in inst.raw:
        return None, None, None
    lo, hi = inst.rmin, inst.rmax
    return hi - lo + 1, float(lo), float(hi)


def scale_psychometrics(
    study: Study,
    source: str,
    processed: pd.DataFrame,
    scores: pd.DataFrame,
    min_group_size: int = 5,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The scales, items and agreement tables (docs/outputs.md) of one source.

    ``processed``: the ingested items (missing codes NaN, reverse-keyed items recoded);
    ``scores``: respondent_id, hospital_id, team_id and one column per scale, rows aligned with
    ``processed``. Teams are (hospital_id, team_id) pairs. n_respondents counts respondents with
    a scale score; ICC(1)/ICC(2) are of the scale score between teams (between hospitals when
    the source has no teams); rwg_j_mean/median and awg_mean summarise the teams with at least
    two respondents; n_teams counts teams with at least one score. The CFA (one factor over the
    scale's items) is skipped when there are fewer than twice as many complete rows as items.
    ``agreement``: one row per scale x team, rwg_j and awg empty where n < min_group_size.
    """
    if len(processed) != len(scores):
        raise ValueError(
            f"processed ({len(processed)} rows) and scores ({len(scores)} rows) are not aligned"
        )
    processed = processed.reset_index(drop=True)
    scores = scores.reset_index(drop=True)
    keys, has_team = _team_keys(scores)
    codes = ag.group_codes(keys)
    n_rows = len(processed)
    scale_rows, item_rows, agree_frames = [], [], []
    for sid, scale in study.scales_for(source).items():
        inst = study.instrument_of(sid)
        present = [i for i in scale.items if i in processed.columns]
        if sid not in scores:
            continue  # an instrument this wave does not field (not scored)
        X = None
        if present:
            X = pd.DataFrame(ag.numeric_matrix(processed[present]), columns=present)
        y = (
            pd.to_numeric(scores[sid], errors="coerce")
            if sid in scores
            else pd.Series(np.nan, index=scores.index)
        )
        row: dict[str, object] = dict.fromkeys(SCALE_COLUMNS, np.nan)
        row.update(
            scale=sid,
            instrument=inst.id,
            n_items=len(scale.items),
            n_respondents=int(y.notna().sum()),
        )
        alpha = cfa = None
        if present:
            alpha = cronbach_alpha(X)
            row.update(alpha=alpha.alpha, alpha_ci_low=alpha.ci_low, alpha_ci_high=alpha.ci_high)
            n_complete = int((~X.isna().any(axis=1)).sum())
            if n_complete >= 2 * len(present):
                cfa = cfa_one_factor(X)
            else:
                cfa = nan_result(
                    present,
                    f"CFA skipped: {n_complete} complete rows for "
                    f"{len(present)} items (needs twice as many)",
                    n_complete,
                )
            row.update(omega=cfa.omega, cfi=cfa.cfi, tli=cfa.tli, rmsea=cfa.rmsea, srmr=cfa.srmr)
        # between-group reliability of the score
        grp = codes if has_team else ag.group_codes(keys["hospital_id"])
        icc = ag.icc_oneway(y.to_numpy(float), grp)
        row.update(icc1=icc["icc1"], icc2=icc["icc2"])
        if has_team:
            scored = np.bincount(
                codes.codes[(codes.codes >= 0) & y.notna().to_numpy()], minlength=codes.n_groups
            )
            row["n_teams"] = int((scored > 0).sum())
        else:
            row["n_teams"] = 0
        # within-team agreement
        if has_team and present:
            A, lo, hi = _response(inst)
            agr = ag.agreement_by_group(X, codes, A, lo, hi)
            row.update(
                rwg_j_mean=float(agr["rwg_j"].mean()) if agr["rwg_j"].notna().any() else np.nan,
                rwg_j_median=float(agr["rwg_j"].median()) if agr["rwg_j"].notna().any() else np.nan,
                awg_mean=float(agr["awg"].mean()) if agr["awg"].notna().any() else np.nan,
            )
            fr = agr.reset_index()
            fr.insert(0, "scale", sid)
            fr["suppressed"] = fr["n"] < min_group_size
            fr.loc[fr["suppressed"], ["rwg_j", "awg"]] = np.nan
            agree_frames.append(fr[AGREEMENT_COLUMNS])
        scale_rows.append(row)
        # items
        for it in scale.items:
            irow: dict[str, object] = dict.fromkeys(ITEM_COLUMNS, np.nan)
            irow.update(scale=sid, item=it)
            if it in present:
                x = X[it]
                irow.update(
                    n=int(x.notna().sum()),
                    mean=x.mean(),
                    sd=x.std(ddof=1),
                    pct_missing=100.0 * x.isna().sum() / n_rows if n_rows else np.nan,
                )
                irow["item_total_r"] = alpha.item_total_r.get(it, np.nan)
                irow["alpha_if_deleted"] = alpha.alpha_if_deleted.get(it, np.nan)
                irow["loading"] = cfa.loadings.get(it, np.nan)
            else:
                irow.update(n=0, pct_missing=100.0)
            item_rows.append(irow)
    scales = pd.DataFrame(scale_rows, columns=SCALE_COLUMNS)
    scales[["n_respondents", "n_items", "n_teams"]] = scales[
        ["n_respondents", "n_items", "n_teams"]
    ].astype("int64")
    items = pd.DataFrame(item_rows, columns=ITEM_COLUMNS)
    items["n"] = items["n"].astype("int64")
    if agree_frames:
        agreement = pd.concat(agree_frames, ignore_index=True)
    else:
        agreement = pd.DataFrame({c: pd.Series(dtype=object) for c in AGREEMENT_COLUMNS})
    for c in ("hospital_id", "team_id"):
        agreement[c] = agreement[c].astype("string")
    agreement["n"] = agreement["n"].astype("int64")
    agreement["suppressed"] = agreement["suppressed"].astype(bool)
    return scales, items, agreement
