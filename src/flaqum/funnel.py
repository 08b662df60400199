"""Funnel plots of outcome ratios between hospitals, with overdispersion-adjusted limits.

Definitions (Spiegelhalter 2005a, "Funnel plots for comparing institutional performance",
Stat Med 24:1185-1202; 2005b, "Handling over-dispersion of performance indicators", Qual Saf
Health Care 14:347-351), computed as the R package FunnelPlotR (0.6.0, nhs-r-community) does
for standardised ratios (``funnel_plot(data_type = "SR", sr_method = "SHMI")``):

Indicators
    Each is a count O per hospital against an expected count E. Observed/expected deaths
    (the standardised mortality ratio): O = ``deaths``, E = ``expected_deaths``, shown as the
    ratio O / E with target 1. Incidents per patient day: O = ``incidents_reported``,
    E = ``patient_days`` x r, with r = sum(incidents) / sum(patient days) over the hospitals
    plotted (indirect standardisation to the consortium's rate), shown as the rate
    O / patient days per 1,000 patient days = (O / E) x r x 1,000 with target r x 1,000.

z-scores
    On the log scale: y = log(O / E), s = 1 / sqrt(E), z = y / s = sqrt(E) log(O / E)
    (FunnelPlotR ``transformed_zscore``, SHMI version).

Overdispersion
    The z-scores are winsorised at ``trim`` (10%) at each end: values below the 10th
    percentile set to it, above the 90th set to it (R ``quantile`` type 7; FunnelPlotR
    ``winsorisation``, as Spiegelhalter 2005b). ``trim_method="truncate"`` instead drops the
    z-scores outside the middle 80% of ranks as NHS Digital's SHMI does (FunnelPlotR
    ``truncation``: rank groups floor(rank x 10 / (n + 1)), keeping groups 1 to 8).
    With the n z-scores kept, phi = sum(z^2) / n (the dispersion ratio; ``phi_func``), and the
    additive random-effects variance (DerSimonian-Laird form, ``tau_func``)

        tau2 = max(0, (n phi - (n - 1)) / (sum(w) - sum(w^2) / sum(w))),  w = 1 / s^2 = E,

    and tau2 = 0 when n phi < n - 1. The data call for the adjustment when phi > 1: then the
    limits are the overdispersion-adjusted ones, otherwise the Poisson ones (FunnelPlotR's
    rule). ``dispersion_p`` is Spiegelhalter's test of n phi against chi-squared with n - 1
    degrees of freedom, reported for information.

Control limits around the target, for an expected count E
    Poisson (exact; FunnelPlotR ``calculate_limits`` with ``draw_adjusted = FALSE``):
    lower = qchisq(a, 2E) / (2E), upper = qchisq(1 - a, 2(E + 1)) / (2E), a = 0.025 (95%)
    or 0.001 (99.8%). Overdispersion-adjusted: exp(-/+ z_a sqrt(1/E + tau2)), z = 1.959964 and
    3.090232. Both are multiplied by the target. A hospital is outside a limit when its value
    is strictly beyond it (FunnelPlotR ``outliers_func``).

Differences from ``FunnelPlotR::funnel_plot``: expected counts are not rounded to two decimals
(``SHMI_rounding = FALSE``), and its SHMI default trims by truncation, here by winsorisation
(Spiegelhalter's choice; both are available and both are checked against base-R transcriptions
of FunnelPlotR's functions in ``tests/fixtures/r/funnel_reference.R``).

A hospital without a value of O or E, or with E <= 0, is left out (and counted in
``n_missing``). An indicator needs at least ``MIN_HOSPITALS`` hospitals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from flaqum.constants import Z95_FUNNEL, Z998

__all__ = [
    "Indicator",
    "INDICATORS",
    "COLUMNS",
    "zscores",
    "winsorise",
    "truncate",
    "dispersion",
    "Dispersion",
    "poisson_limits",
    "od_limits",
    "funnel",
    "funnel_table",
]

MIN_HOSPITALS = 3


@dataclass(frozen=True)
class Indicator:
    id: str
    label: str
    numerator: str
    denominator: str
    kind: str  # "ratio": E is the denominator; "rate": E = denominator x pooled rate
    per: float = 1.0  # a rate is shown per this many units of the denominator
    axis: str = "Expected"  # what the x-axis shows (E, or the denominator for a rate)


INDICATORS = (
    Indicator(
        "smr",
        "Observed / expected deaths (standardised mortality ratio)",
        "deaths",
        "expected_deaths",
        "ratio",
        1.0,
        "Expected deaths",
    ),
    Indicator(
        "incident_rate",
        "Incidents reported per 1,000 patient days",
        "incidents_reported",
        "patient_days",
        "rate",
        1000.0,
        "Patient days",
    ),
)

COLUMNS = [
    "indicator",
    "hospital_id",
    "observed",
    "denominator",
    "expected",
    "ratio",
    "value",
    "target",
    "z",
    "n_hospitals",
    "n_missing",
    "phi",
    "tau2",
    "dispersion_p",
    "overdispersed",
    "limits",
    "ll95",
    "ul95",
    "ll998",
    "ul998",
    "poisson_ll95",
    "poisson_ul95",
    "poisson_ll998",
    "poisson_ul998",
    "od_ll95",
    "od_ul95",
    "od_ll998",
    "od_ul998",
    "signal",
]


LIMIT_COLUMNS = [c for c in COLUMNS if c.endswith(("95", "998"))]


class Dispersion(TypedDict):
    """What :func:`dispersion` returns."""

    n: int
    phi: float
    tau2: float
    p: float
    overdispersed: bool


def zscores(observed: ArrayLike, expected: ArrayLike) -> np.ndarray:
    """z = sqrt(E) log(O / E) (unadjusted; -inf where O = 0)."""
    o, e = np.asarray(observed, float), np.asarray(expected, float)
    with np.errstate(divide="ignore"):
        return np.sqrt(e) * np.log(o / e)


def winsorise(z: ArrayLike, trim: float = 0.1) -> np.ndarray:
    """z with values beyond the trim and 1 - trim quantiles (type 7) set to them."""
    z = np.asarray(z, float)
    lo, hi = np.quantile(z, [trim, 1 - trim])
    return np.clip(z, lo, hi)


def truncate(z: ArrayLike, trim: float = 0.1) -> np.ndarray:
    """A mask of the z-scores kept by NHS Digital's truncation (FunnelPlotR ``truncation``)."""
    z = np.asarray(z, float)
    k = 1 / trim
    sp = np.floor(stats.rankdata(z, method="average") * k / (len(z) + 1))
    return (sp > 0) & (sp < k - 1)


def dispersion(
    z: ArrayLike, expected: ArrayLike, trim: float = 0.1, trim_method: str = "winsorise"
) -> Dispersion:
    """phi, tau2 and the test of overdispersion from the unadjusted z-scores."""
    z, e = np.asarray(z, float), np.asarray(expected, float)
    if trim_method == "winsorise":
        zk, w = winsorise(z, trim), e
    elif trim_method == "truncate":
        keep = truncate(z, trim)
        zk, w = z[keep], e[keep]
    else:
        raise ValueError(f"trim_method must be 'winsorise' or 'truncate', not {trim_method!r}")
    n = len(zk)
    phi = float(np.sum(zk**2) / n)
    if n * phi < n - 1:
        tau2 = 0.0
    else:
        tau2 = max(0.0, (n * phi - (n - 1)) / (np.sum(w) - np.sum(w**2) / np.sum(w)))
    return {
        "n": n,
        "phi": phi,
        "tau2": float(tau2),
        "p": float(stats.chi2.sf(n * phi, n - 1)),
        "overdispersed": bool(phi > 1),
    }


def poisson_limits(expected: ArrayLike) -> dict[str, np.ndarray]:
    """Exact Poisson limits of O / E around 1 for expected counts E (95% and 99.8%)."""
    e = np.asarray(expected, float)
    return {
        "ll95": stats.chi2.ppf(0.025, 2 * e) / 2 / e,
        "ul95": stats.chi2.ppf(0.975, 2 * (e + 1)) / 2 / e,
        "ll998": stats.chi2.ppf(0.001, 2 * e) / 2 / e,
        "ul998": stats.chi2.ppf(0.999, 2 * (e + 1)) / 2 / e,
    }


def od_limits(expected: ArrayLike, tau2: float) -> dict[str, np.ndarray]:
    """Overdispersion-adjusted limits of O / E around 1: exp(-/+ z sqrt(1/E + tau2))."""
    sd = np.sqrt(1 / np.asarray(expected, float) + tau2)
    return {
        "ll95": np.exp(-Z95_FUNNEL * sd),
        "ul95": np.exp(Z95_FUNNEL * sd),
        "ll998": np.exp(-Z998 * sd),
        "ul998": np.exp(Z998 * sd),
    }


def limits(expected: ArrayLike, tau2: float, adjusted: bool) -> dict[str, np.ndarray]:
    """The limits used: adjusted where the data are overdispersed, Poisson otherwise."""
    return od_limits(expected, tau2) if adjusted else poisson_limits(expected)


def _signal(value, lim) -> np.ndarray:
    out = np.full(len(value), "within", dtype=object)
    out[value > lim["ul95"]] = "above 95%"
    out[value > lim["ul998"]] = "above 99.8%"
    out[value < lim["ll95"]] = "below 95%"
    out[value < lim["ll998"]] = "below 99.8%"
    return out


def funnel(
    hospital_id: Iterable[str],
    observed: ArrayLike,
    expected: ArrayLike,
    trim: float = 0.1,
    trim_method: str = "winsorise",
) -> pd.DataFrame:
    """One row per hospital of an O/E funnel (target 1): ratio, z, phi, tau2, both sets of
    limits at the hospital's E, the limits used and where the hospital lies against them."""
    o, e = np.asarray(observed, float), np.asarray(expected, float)
    z = zscores(o, e)
    d = dispersion(z, e, trim, trim_method)
    pl, ol = poisson_limits(e), od_limits(e, d["tau2"])
    used = ol if d["overdispersed"] else pl
    ratio = o / e
    out = pd.DataFrame(
        {
            "hospital_id": list(hospital_id),
            "observed": o,
            "expected": e,
            "ratio": ratio,
            "z": z,
            "n_hospitals": len(o),
            "phi": d["phi"],
            "tau2": d["tau2"],
            "dispersion_p": d["p"],
            "overdispersed": d["overdispersed"],
            "limits": "overdispersion-adjusted" if d["overdispersed"] else "Poisson",
        }
    )
    for key in ("ll95", "ul95", "ll998", "ul998"):
        out[key] = used[key]
        out[f"poisson_{key}"] = pl[key]
        out[f"od_{key}"] = ol[key]
    out["signal"] = _signal(ratio, used)
    return out


def funnel_table(
    outcomes: pd.DataFrame,
    indicators: Iterable[Indicator] = INDICATORS,
    trim: float = 0.1,
    trim_method: str = "winsorise",
) -> pd.DataFrame:
    """The funnel of each indicator whose columns the outcomes table has (``COLUMNS``).

    Limits and values are on the shown scale: ratios for ``ratio`` indicators, rates per
    ``per`` for ``rate`` indicators (each limit of O/E times the target)."""
    frames = []
    for ind in indicators:
        if ind.numerator not in outcomes or ind.denominator not in outcomes:
            continue
        d = outcomes[["hospital_id", ind.numerator, ind.denominator]].copy()
        num = pd.to_numeric(d[ind.numerator], errors="coerce")
        den = pd.to_numeric(d[ind.denominator], errors="coerce")
        ok = num.notna() & den.notna() & (den > 0) & (num >= 0)
        if int(ok.sum()) < MIN_HOSPITALS:
            continue
        d, num, den = d[ok], num[ok].astype(float), den[ok].astype(float)
        rate = num.sum() / den.sum() if ind.kind == "rate" else 1.0
        target = rate * ind.per if ind.kind == "rate" else 1.0
        f = funnel(d["hospital_id"].astype(str), num, den * rate, trim, trim_method)
        f.insert(0, "indicator", ind.id)
        f["denominator"] = den.to_numpy()
        f["n_missing"] = int((~ok).sum())
        f["target"] = target
        f["value"] = f["ratio"] * target
        for c in LIMIT_COLUMNS:
            f[c] = f[c] * target
        frames.append(f[COLUMNS])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    return pd.concat(frames, ignore_index=True)


def curves(rows: pd.DataFrame, indicator: Indicator, points: int = 200) -> pd.DataFrame:
    """The limits drawn on a funnel plot, on a grid of the x-axis (E for a ratio, the
    denominator for a rate) from the indicator's rows of ``funnel_table`` (tau2, target and
    the choice of limits come from there)."""
    r = rows.iloc[0]
    x = np.asarray(rows["denominator"], float)
    lo = max(x.min() * 0.8, 1e-9)
    grid = np.geomspace(lo, x.max() * 1.1, points)
    rate = r["target"] / indicator.per if indicator.kind == "rate" else 1.0
    lim = limits(grid * rate, float(r["tau2"]), bool(r["overdispersed"]))
    out = pd.DataFrame({"x": grid})
    for key, v in lim.items():
        out[key] = v * r["target"]
    return out
