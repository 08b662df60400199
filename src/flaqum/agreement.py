"""Between-group reliability and within-group agreement: ICC(1), ICC(2), rwg(j) and awg.

The definitions are those of docs/outputs.md (agreement.csv, scales.csv) and reproduce the R
package ``multilevel`` (Bliese), version 2.7 as shipped by Debian:

``icc1``, ``icc2``
    From the one-way ANOVA of y on the group factor, as ``multilevel::ICC1`` / ``ICC2`` on
    ``aov(y ~ as.factor(group))``: with MSB, MSW the between and within mean squares and
    k = N / J the plain mean group size,
    ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW)   (may be negative),
    ICC(2) = (MSB - MSW) / MSB.

``rwg_j``
    James, Demaree and Wolf (1984) with a uniform null distribution of A response options,
    null variance s2_EU = (A^2 - 1) / 12. For a group whose J items have mean observed
    variance S (each item's sample variance, divisor n - 1),
    rwg(j) = J (1 - S / s2_EU) / (J (1 - S / s2_EU) + S / s2_EU),
    with S set to s2_EU (rwg(j) = 0) where S exceeds the null variance, as ``multilevel::rwg.j``.

``awg``
    Brown and Hauenstein (2005), as ``multilevel::awg`` on the response range [L, H]: per item
    with mean M, variance s2 and k raters,
    a_wg = 1 - 2 s2 / (((H + L) M - M^2 - H L) * k / (k - 1)),
    missing (NaN) where M < (L (k - 1) + H) / k or M > (H (k - 1) + L) / k (the maximum
    possible variance is not defined there), and 1 where M equals L or H. The multi-item
    index is the mean of the item indices that are not missing (``mean(..., na.rm = TRUE)``:
    NaN when all are). ``multilevel::awg`` does not enforce Brown and Hauenstein's advice of
    at least A - 1 raters; neither does this module (``n`` is returned so a caller can).

Missing answers. multilevel 2.7 deletes respondents listwise (``na.exclude``) before
splitting by group. Here each item's mean and variance within a group use the answers present
for that item (pairwise; identical to listwise on complete data, the default of multilevel
2.8, as docs/outputs.md states): an item with fewer than two answers in a group is left out of
that group's index (and out of J), and a group with fewer than two respondents (rows with at
least one answer) gets NaN, like ``nrow(Q) > 1`` in R. ``n`` counts those respondents.

Groups may be a Series or a DataFrame of key columns (e.g. hospital_id and team_id: team ids
are unique only within a hospital, so a team is always the pair). Rows with a missing key are
left out. Everything is a numpy reduction over rows (``np.bincount``) with one pass per item:
nothing loops over groups, so millions of respondents in 100,000 teams take well under a
second per scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias, TypedDict

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "icc1",
    "icc2",
    "icc_oneway",
    "rwg_j",
    "awg",
    "null_variance",
    "GroupCodes",
    "Groups",
    "OnewayAnova",
    "group_codes",
    "agreement_by_group",
    "numeric_matrix",
]


def null_variance(n_options: int) -> float:
    """Variance of the uniform ("rectangular") null distribution over A options: (A^2 - 1)/12."""
    return (float(n_options) ** 2 - 1.0) / 12.0


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


@dataclass
class GroupCodes:
    """Integer codes of each row's group (-1: key missing) and the groups' labels (sorted)."""

    codes: np.ndarray  # (N,) int64, -1 where a key is missing
    labels: pd.Index  # (G,) Index, or MultiIndex for several key columns

    @property
    def n_groups(self) -> int:
        return len(self.labels)


#: A ``groups`` argument: codes made by :func:`group_codes`, one key per row (a Series or an
#: array) or nested keys (a DataFrame, e.g. hospital_id and team_id).
Groups: TypeAlias = "GroupCodes | pd.DataFrame | pd.Series | ArrayLike"


class OnewayAnova(TypedDict):
    """What :func:`icc_oneway` returns (NaN where undefined)."""

    msb: float
    msw: float
    k: float
    n: int
    n_groups: int
    icc1: float
    icc2: float


def group_codes(groups: pd.DataFrame | pd.Series | ArrayLike) -> GroupCodes:
    """Codes of a Series (one key) or a DataFrame (nested keys: a group is the tuple of keys)."""
    if isinstance(groups, pd.DataFrame):
        cols = list(groups.columns)
        parts = [pd.factorize(groups[c], sort=True) for c in cols]
        codes = np.zeros(len(groups), dtype=np.int64)
        missing = np.zeros(len(groups), dtype=bool)
        for c, u in parts:
            missing |= c < 0
            codes = codes * np.int64(max(len(u), 1)) + np.maximum(c, 0)
        codes[missing] = -1
        unit, keys = pd.factorize(codes, sort=True)
        unit = np.asarray(unit, dtype=np.int64)
        keys = np.asarray(keys, dtype=np.int64)
        if len(keys) and keys[0] == -1:  # the missing-key code sorts first: drop it
            unit = unit - 1
            keys = keys[1:]
        levels = []
        rem = keys.copy()
        for _c, u in reversed(parts):
            m = np.int64(max(len(u), 1))
            levels.append(np.asarray(u)[rem % m] if len(u) else np.asarray([], dtype=object))
            rem = rem // m
        levels.reverse()
        labels = pd.MultiIndex.from_arrays(levels, names=cols)
        return GroupCodes(unit, labels)
    ser = pd.Series(groups)
    codes, uniques = pd.factorize(ser, sort=True)
    return GroupCodes(
        np.asarray(codes, dtype=np.int64), pd.Index(uniques, name=ser.name or "group")
    )


def _as_codes(groups: Groups, n: int) -> GroupCodes:
    gc = groups if isinstance(groups, GroupCodes) else group_codes(groups)
    if len(gc.codes) != n:
        raise ValueError(f"groups has {len(gc.codes)} rows, the data {n}")
    return gc


def numeric_matrix(items: pd.DataFrame | ArrayLike) -> np.ndarray:
    """Items as a float (N, p) array, NaN for missing (nullable dtypes and text coerced)."""
    if isinstance(items, pd.DataFrame):
        if all(pd.api.types.is_numeric_dtype(t) for t in items.dtypes):
            return items.to_numpy(dtype=float, na_value=np.nan)
        return items.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    X = np.asarray(items, dtype=float)
    return X[:, None] if X.ndim == 1 else X


# --------------------------------------------------------------------------------------------
# ICC(1), ICC(2)
# --------------------------------------------------------------------------------------------


def icc_oneway(y: ArrayLike, groups: Groups) -> OnewayAnova:
    """The one-way ANOVA behind ICC(1)/ICC(2): msb, msw, k (= N/J), n, n_groups, icc1, icc2."""
    yv = np.asarray(pd.to_numeric(pd.Series(np.asarray(y)), errors="coerce"), dtype=float)
    gc = _as_codes(groups, len(yv))
    keep = (gc.codes >= 0) & np.isfinite(yv)
    yv, codes = yv[keep], gc.codes[keep]
    out: OnewayAnova = {
        "msb": np.nan,
        "msw": np.nan,
        "k": np.nan,
        "n": int(len(yv)),
        "n_groups": 0,
        "icc1": np.nan,
        "icc2": np.nan,
    }
    if len(yv) == 0:
        return out
    codes = np.unique(codes, return_inverse=True)[1]  # only groups with data
    J = int(codes.max()) + 1
    N = len(yv)
    nj = np.bincount(codes, minlength=J).astype(float)
    means = np.bincount(codes, weights=yv, minlength=J) / nj
    grand = yv.mean()
    ssb = float(np.sum(nj * (means - grand) ** 2))
    ssw = float(np.sum((yv - means[codes]) ** 2))
    out.update({"n_groups": J, "k": N / J})
    if J < 2 or N - J < 1:
        return out
    msb, msw = ssb / (J - 1), ssw / (N - J)
    k = N / J
    out.update({"msb": msb, "msw": msw})
    with np.errstate(invalid="ignore", divide="ignore"):
        out["icc1"] = float((msb - msw) / (msb + (k - 1) * msw)) if msb + (k - 1) * msw else np.nan
        out["icc2"] = float((msb - msw) / msb) if msb else np.nan
    return out


def icc1(y: ArrayLike, groups: Groups) -> float:
    """ICC(1) of y between groups, as ``multilevel::ICC1(aov(y ~ as.factor(groups)))``.

    Missing y (and rows with a missing group) are dropped first. NaN with fewer than two groups
    or no within-group degrees of freedom.
    """
    return icc_oneway(y, groups)["icc1"]


def icc2(y: ArrayLike, groups: Groups) -> float:
    """ICC(2), the reliability of group means, as ``multilevel::ICC2`` (see :func:`icc1`)."""
    return icc_oneway(y, groups)["icc2"]


# --------------------------------------------------------------------------------------------
# Per group and item: count, mean, variance
# --------------------------------------------------------------------------------------------


def _group_item_stats(X: np.ndarray, codes: np.ndarray, G: int):
    """Respondents per group (rows with any answer), and per group x item: n, mean, variance.

    Two passes per item (mean, then squared deviations), as R's ``mean``/``var``.
    """
    keep = codes >= 0
    X, codes = X[keep], codes[keep]
    present = ~np.isnan(X)
    n_resp = np.bincount(codes, weights=present.any(axis=1), minlength=G)
    p = X.shape[1]
    n = np.empty((G, p))
    mean = np.full((G, p), np.nan)
    var = np.full((G, p), np.nan)
    for k in range(p):
        ok = present[:, k]
        c, x = codes[ok], X[ok, k]
        nk = np.bincount(c, minlength=G).astype(float)
        sk = np.bincount(c, weights=x, minlength=G)
        with np.errstate(invalid="ignore", divide="ignore"):
            mk = sk / nk
            dev = x - mk[c]
            ss = np.bincount(c, weights=dev * dev, minlength=G)
            vk = np.where(nk >= 2, ss / (nk - 1), np.nan)
        n[:, k], mean[:, k], var[:, k] = nk, np.where(nk > 0, mk, np.nan), vk
    return n_resp.astype(np.int64), n, mean, var


def _rwg_j_from_stats(n_resp, var, null: float) -> np.ndarray:
    J = np.sum(~np.isnan(var), axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.nansum(var, axis=1) / J
        S = np.minimum(S, null)  # multilevel: if (S > ranvar) S <- ranvar
        r = S / null
        out = J * (1 - r) / (J * (1 - r) + r)
    out[(J == 0) | (n_resp < 2)] = np.nan
    return out


def _awg_from_stats(n_resp, n, mean, var, low: float, high: float) -> np.ndarray:
    H, L = float(high), float(low)
    k, M = n, mean
    with np.errstate(invalid="ignore", divide="ignore"):
        a = 1 - (2 * var) / (((H + L) * M - M**2 - H * L) * (k / (k - 1)))
        a = np.where(M < (L * (k - 1) + H) / k, np.nan, a)
        a = np.where(M > (H * (k - 1) + L) / k, np.nan, a)
        a = np.where((M == H) | (M == L), 1.0, a)
    a = np.where(k >= 2, a, np.nan)  # a single rater has no variance
    valid = ~np.isnan(a)
    cnt = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid, a, 0.0).sum(axis=1) / cnt
    out[(cnt == 0) | (n_resp < 2)] = np.nan
    return out


def _frame(gc: GroupCodes, n_resp, col: str, values) -> pd.DataFrame:
    out = pd.DataFrame({"n": n_resp, col: values}, index=gc.labels)
    return out[out["n"] > 0]


def rwg_j(items: pd.DataFrame, groups: Groups, n_options: int) -> pd.DataFrame:
    """rwg(j) per group (James, Demaree and Wolf 1984), as ``multilevel::rwg.j``.

    ``items``: one column per item, rows aligned with ``groups`` (a Series, or a DataFrame of
    nested keys). ``n_options``: A, the number of response options (null variance
    (A^2 - 1)/12). Returns a frame indexed by group with ``n`` (respondents with any answer)
    and ``rwg_j``; groups with fewer than two respondents get NaN. See the module docstring for
    missing answers. Groups without any answer are left out.
    """
    X = numeric_matrix(items)
    gc = _as_codes(groups, len(X))
    n_resp, _n, _mean, var = _group_item_stats(X, gc.codes, gc.n_groups)
    return _frame(gc, n_resp, "rwg_j", _rwg_j_from_stats(n_resp, var, null_variance(n_options)))


def awg(items: pd.DataFrame, groups: Groups, low: float, high: float) -> pd.DataFrame:
    """a_wg per group (Brown and Hauenstein 2005), as ``multilevel::awg(range = c(low, high))``.

    Returns a frame indexed by group with ``n`` and ``awg`` (multi-item: the mean of the item
    indices that are defined). See the module docstring for the NaN rules and missing answers.
    """
    X = numeric_matrix(items)
    gc = _as_codes(groups, len(X))
    n_resp, n, mean, var = _group_item_stats(X, gc.codes, gc.n_groups)
    return _frame(gc, n_resp, "awg", _awg_from_stats(n_resp, n, mean, var, low, high))


def agreement_by_group(
    items: pd.DataFrame,
    groups: Groups,
    n_options: int | None,
    low: float | None,
    high: float | None,
) -> pd.DataFrame:
    """``n``, ``rwg_j`` and ``awg`` per group from one pass over the data (NaN without a range)."""
    X = numeric_matrix(items)
    gc = _as_codes(groups, len(X))
    n_resp, n, mean, var = _group_item_stats(X, gc.codes, gc.n_groups)
    if n_options is None or low is None or high is None:
        r = a = np.full(gc.n_groups, np.nan)
    else:
        r = _rwg_j_from_stats(n_resp, var, null_variance(n_options))
        a = _awg_from_stats(n_resp, n, mean, var, low, high)
    out = pd.DataFrame({"n": n_resp, "rwg_j": r, "awg": a}, index=gc.labels)
    return out[out["n"] > 0]
