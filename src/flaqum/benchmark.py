"""The report statistics of a wave: every number a hospital's report quotes that the multilevel
stage does not already write, per hospital, in files (``results/<wave>/benchmark/``).

The reports read these files; ``report.confidentiality`` then applies the report's rules
(minimum group size, complementary suppression, minimum peer group) when it builds a
hospital's view. As in the other results files, a value describing fewer than
``min_group_size`` respondents is blank here too (``suppressed`` is True and ``n`` kept), so a
table handed on cannot leak it (docs/confidentiality.md). Definitions (docs/outputs.md lists
every column):

- **% positive** of an item: the share of its answers at or above the item's positive
  threshold, ``response.positive_from`` in the instrument's codebook (after reverse keying;
  default the midpoint plus one half, ``(min + max) / 2 + 0.5``, docs/codebooks.md). For the
  demo's 1-5 agreement items that is 4 or above (agree, strongly agree), for the 1-7
  psychological safety items 5 or above, and for the 0-10 global ratings of the Quickscan 8
  or above (``positive_from: 8``, as the "8-10" top box of the NHS Staff Survey and AHRQ
  SOPS ratings). The consortium's % positive and mean pool every respondent of the wave
  (respondent-weighted), as ``mean(x >= positive_from, na.rm = TRUE)`` in R.
- **% positive** of a scale: the mean of its items' % positive, as AHRQ SOPS scores a
  composite (the NHS Staff Survey and SOPS headline beside the scale's mean).
- **Stakeholder gap** per dimension of a mirrored pair of instruments (``mirror:``): a
  respondent's dimension score is the mean of the dimension's items they answered; a side's
  mean is the mean of its respondents' scores; the gap is the second side's mean minus the
  first's (patients and kin minus professionals) with Welch's 95% interval, as R's
  ``t.test(b, a)$conf.int`` (``var.equal = FALSE``). The interval treats respondents as
  independent: professionals answer within teams, so it is somewhat too narrow where teams
  differ. The consortium's gap is the mean of the hospitals' side means (hospitals with at
  least ``min_group_size`` on that side) of the second side minus that of the first, with
  Welch's interval over those hospital means.
- **Maturity**: the hospital's score per driver and building block and each core process's
  level; the consortium median is ``median(x, na.rm = TRUE)`` over the hospitals that
  returned the matrix. ``processes_at_baseline`` counts the hospital's core processes at or
  above the codebook's ``baseline_level``; its consortium median, minimum and maximum are
  taken over the hospitals that assessed at least one process ("the median hospital reaches
  X of 52", not the number of processes whose median reaches the baseline).
- **Peers**: hospitals with the same value in a register column (config
  ``report.peers.column``, default ``hospital_type``). Per scale and peer group, the median
  and quartiles (R's default ``quantile(x, c(.25, .5, .75))``, type 7, as pandas) of the
  hospitals' empirical-Bayes means in ``multilevel/hospitals.csv`` (the means the consortium
  comparison uses), over the hospitals with at least ``min_group_size`` respondents, and
  their number. ``shown`` is False for a group of fewer than ``report.peers.min_hospitals``
  hospitals: no report shows it.
- **Trends**: per wave up to this one, each hospital's EB mean with its 95% interval from that
  wave's ``hospitals.csv``, the consortium mean (the unweighted mean of the hospitals' EB
  means with at least ``min_group_size`` respondents, as the report's "consortium average")
  with its t interval over hospitals (``t.test(x)$conf.int``), and the change since the wave
  before from that wave's ``change.csv`` (a model fitted on both waves, so it can differ
  slightly from the difference of the two single-wave means).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from flaqum.config import Instrument, Study
from flaqum.constants import Z95

ITEM_COLUMNS = [
    "hospital_id",
    "source",
    "instrument",
    "item",
    "reverse",
    "positive_from",
    "n_respondents",
    "n",
    "mean",
    "pct_positive",
    "pct_missing",
    "suppressed",
    "consortium_n",
    "consortium_mean",
    "consortium_pct_positive",
]
SCALE_COLUMNS = [
    "hospital_id",
    "scale",
    "n_items",
    "pct_positive",
    "suppressed",
    "consortium_pct_positive",
]
STAKEHOLDER_COLUMNS = [
    "hospital_id",
    "dimension",
    "instrument_a",
    "instrument_b",
    "n_a",
    "mean_a",
    "sd_a",
    "n_b",
    "mean_b",
    "sd_b",
    "gap",
    "gap_se",
    "gap_ci_low",
    "gap_ci_high",
    "suppressed",
    "consortium_n_hospitals_a",
    "consortium_n_hospitals_b",
    "consortium_mean_a",
    "consortium_mean_b",
    "consortium_gap",
    "consortium_gap_ci_low",
    "consortium_gap_ci_high",
]
MATURITY_COLUMNS = [
    "hospital_id",
    "kind",
    "measure",
    "level",
    "value",
    "consortium_median",
    "consortium_min",
    "consortium_max",
    "consortium_n_hospitals",
]
PEER_COLUMNS = [
    "scale",
    "column",
    "group",
    "n_hospitals",
    "median",
    "q1",
    "q3",
    "min_hospitals",
    "shown",
]
TREND_COLUMNS = [
    "wave",
    "scale",
    "hospital_id",
    "n",
    "mean",
    "se",
    "ci_low",
    "ci_high",
    "suppressed",
    "consortium_n_hospitals",
    "consortium_mean",
    "consortium_ci_low",
    "consortium_ci_high",
    "previous_wave",
    "n_previous",
    "change",
    "change_se",
    "change_ci_low",
    "change_ci_high",
]


def positive_from(inst: Instrument) -> float:
    """The lowest answer counted as positive: the codebook's ``response.positive_from``, or
    the midpoint plus one half (docs/codebooks.md)."""
    r = inst.response
    return float(r.get("positive_from", (inst.rmin + inst.rmax) / 2 + 0.5))


def _flag(df: pd.DataFrame) -> pd.Series:
    if "suppressed" not in df:
        return pd.Series(False, index=df.index)
    return df["suppressed"].astype(str).str.lower().isin(["true", "1"])


def hidden_hospitals(df: pd.DataFrame, k: int) -> pd.Series:
    """Rows of ``multilevel/hospitals.csv`` (or ``teams.csv``) that no report shows: fewer
    than k respondents, or flagged ``suppressed``."""
    return (df["n"].fillna(0) < k) | _flag(df)


def standard_error(df: pd.DataFrame) -> pd.Series:
    """``eb_se``, or where it is blank, the half-width of the 95% interval over 1.96."""
    se = df["eb_se"] if "eb_se" in df else pd.Series(np.nan, index=df.index)
    from_ci = (df["ci_high"] - df["ci_low"]) / (2 * Z95)
    return se.fillna(from_ci)


def _ids(hospitals: Iterable[object]) -> list[str]:
    return [str(h) for h in dict.fromkeys(hospitals)]


# --- items ----------------------------------------------------------------------------------


def item_stats(
    study: Study,
    responses: dict[str, pd.DataFrame],
    hospitals: Iterable[object],
    k: int | None = None,
) -> pd.DataFrame:
    """items.csv: per hospital (each of ``hospitals``, with or without respondents) and item
    of every survey instrument with a response scale: n, mean, % positive, % missing and the
    consortium's n, mean and % positive (module docstring). With ``k``, a hospital row with
    fewer than k answers or k respondents has its values blank and ``suppressed`` True."""
    hospitals = _ids(hospitals)
    parts = []
    for source, df in responses.items():
        if df is None or df.empty:
            continue
        hid = df["hospital_id"].astype(str)
        n_resp = hid.value_counts().reindex(hospitals, fill_value=0)
        for inst in study.instruments_for(source):
            if "response" not in inst.raw:
                continue
            pos = positive_from(inst)
            items = [i for i in inst.items if i in df.columns]
            if not items:
                continue
            x = df[items].astype(float)
            answered = x.notna()
            g_n = answered.groupby(hid).sum().reindex(hospitals, fill_value=0)
            g_sum = x.groupby(hid).sum(min_count=1).reindex(hospitals)
            g_pos = (x >= pos).groupby(hid).sum().reindex(hospitals, fill_value=0)
            nall = answered.sum()
            for item in items:
                n = g_n[item].astype(int)
                nr = n_resp.astype(int)
                with np.errstate(invalid="ignore", divide="ignore"):
                    mean = g_sum[item] / n.where(n > 0)
                    pct = 100 * g_pos[item] / n.where(n > 0)
                    missing = 100 * (1 - n / nr.where(nr > 0))
                allx = x[item].to_numpy(float)
                na = int(nall[item])
                parts.append(
                    pd.DataFrame(
                        {
                            "hospital_id": hospitals,
                            "source": source,
                            "instrument": inst.id,
                            "item": item,
                            "reverse": item in inst.reverse_items,
                            "positive_from": pos,
                            "n_respondents": nr.to_numpy(),
                            "n": n.to_numpy(),
                            "mean": mean.to_numpy(float),
                            "pct_positive": pct.to_numpy(float),
                            "pct_missing": missing.to_numpy(float),
                            "consortium_n": na,
                            "consortium_mean": np.nanmean(allx) if na else np.nan,
                            "consortium_pct_positive": 100 * np.nansum(allx >= pos) / na
                            if na
                            else np.nan,
                        }
                    )
                )
    if not parts:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    out["suppressed"] = False
    if k is not None:
        small = (out["n"] < k) | (out["n_respondents"] < k)
        out.loc[small, ["mean", "pct_positive", "pct_missing"]] = np.nan
        out["suppressed"] = small
    return out[ITEM_COLUMNS]


def scale_positive(study: Study, items: pd.DataFrame) -> pd.DataFrame:
    """scales.csv: per hospital and scale of a survey instrument, the scale's % positive as
    AHRQ SOPS computes a composite's: the mean of its items' % positive (``items``, as
    ``item_stats`` writes them), and the consortium's likewise from the items' consortium %
    positive. Blank (``suppressed``) where any of the scale's items is blank for the
    hospital."""
    if items.empty:
        return pd.DataFrame(columns=SCALE_COLUMNS)
    parts = []
    for inst_id, d in items.groupby("instrument", sort=False):
        inst = study.instruments[inst_id]
        for sid, sc in inst.scales.items():
            its = [i for i in sc.items if i in set(d["item"])]
            if not its:
                continue
            x = d[d["item"].isin(its)]
            g = x.groupby("hospital_id", sort=False)
            pct = g["pct_positive"].mean()
            blank = g["pct_positive"].apply(lambda v: v.isna().any())
            cons = x.drop_duplicates("item")["consortium_pct_positive"].mean()
            parts.append(
                pd.DataFrame(
                    {
                        "hospital_id": pct.index.astype(str),
                        "scale": sid,
                        "n_items": len(its),
                        "pct_positive": pct.where(~blank).to_numpy(float),
                        "suppressed": blank.to_numpy(bool),
                        "consortium_pct_positive": cons,
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=SCALE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SCALE_COLUMNS]


# --- stakeholders ---------------------------------------------------------------------------


def _welch(m_a, s_a, n_a, m_b, s_b, n_b):
    """(b - a, se, ci_low, ci_high) of Welch's two-sample t interval (R ``t.test(b, a)``)."""
    m_a, s_a, n_a, m_b, s_b, n_b = (np.asarray(v, float) for v in (m_a, s_a, n_a, m_b, s_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = s_a**2 / n_a, s_b**2 / n_b
        se = np.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
        q = stats.t.ppf(0.975, df)
    gap = m_b - m_a
    return gap, se, gap - q * se, gap + q * se


def stakeholder_stats(
    study: Study,
    responses: dict[str, pd.DataFrame],
    hospitals: Iterable[object],
    k: int,
    pairs: Iterable[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """stakeholders.csv: per hospital and dimension of each mirrored pair of instruments, both
    sides' n, mean and SD, the gap (second side minus first) with Welch's 95% interval, and
    the consortium's (module docstring). A side with fewer than k respondents is blank, and so
    is the gap."""
    from flaqum.report.shape import mirrored_pairs

    hospitals = _ids(hospitals)
    rows = []
    for a, b in mirrored_pairs(study) if pairs is None else pairs:
        ia, ib = study.instruments[a], study.instruments[b]
        dims: dict[str, list[str]] = {}
        for item, dim in ia.raw["dimensions"].items():
            dims.setdefault(dim, []).append(item)
        for dim, items in dims.items():
            d = pd.DataFrame(
                {"hospital_id": hospitals, "dimension": dim, "instrument_a": a, "instrument_b": b}
            )
            for side, inst in (("a", ia), ("b", ib)):
                df = responses.get(inst.source)
                cols = {f"n_{side}": np.nan, f"mean_{side}": np.nan, f"sd_{side}": np.nan}
                cons = {
                    f"consortium_mean_{side}": np.nan,
                    f"consortium_sd_{side}": np.nan,
                    f"consortium_n_hospitals_{side}": 0,
                }
                if df is not None and set(items) <= set(df.columns):
                    score = df[items].mean(axis=1)
                    g = score.groupby(df["hospital_id"].astype(str)).agg(["count", "mean", "std"])
                    okh = g[g["count"] >= k]
                    cons = {
                        f"consortium_mean_{side}": okh["mean"].mean(),
                        f"consortium_sd_{side}": okh["mean"].std(),
                        f"consortium_n_hospitals_{side}": len(okh),
                    }
                    g = g.reindex(hospitals)
                    cols = {
                        f"n_{side}": g["count"].fillna(0).to_numpy(),
                        f"mean_{side}": g["mean"].to_numpy(float),
                        f"sd_{side}": g["std"].to_numpy(float),
                    }
                d = d.assign(**cols, **cons)
            rows.append(d)
    if not rows:
        return pd.DataFrame(columns=STAKEHOLDER_COLUMNS)
    out = pd.concat(rows, ignore_index=True)
    for side in ("a", "b"):
        small = out[f"n_{side}"] < k
        out.loc[small, [f"mean_{side}", f"sd_{side}"]] = np.nan
    out["suppressed"] = (out["n_a"] < k) | (out["n_b"] < k)
    gap, se, lo, hi = _welch(
        out["mean_a"], out["sd_a"], out["n_a"], out["mean_b"], out["sd_b"], out["n_b"]
    )
    out["gap"], out["gap_se"], out["gap_ci_low"], out["gap_ci_high"] = gap, se, lo, hi
    cgap, _, clo, chi = _welch(
        out["consortium_mean_a"],
        out["consortium_sd_a"],
        out["consortium_n_hospitals_a"],
        out["consortium_mean_b"],
        out["consortium_sd_b"],
        out["consortium_n_hospitals_b"],
    )
    out["consortium_gap"], out["consortium_gap_ci_low"], out["consortium_gap_ci_high"] = (
        cgap,
        clo,
        chi,
    )
    for c in ("n_a", "n_b", "consortium_n_hospitals_a", "consortium_n_hospitals_b"):
        out[c] = out[c].astype(int)
    return out[STAKEHOLDER_COLUMNS]


# --- maturity -------------------------------------------------------------------------------


def maturity_stats(
    study: Study,
    maturity: pd.DataFrame,
    maturity_items: pd.DataFrame,
    hospitals: Iterable[object],
) -> pd.DataFrame:
    """maturity.csv: per hospital, its score on each Maturity Matrix scale (``kind`` scale)
    and its level on each core process (``kind`` process), with the consortium median; and
    (``kind`` count) the number of its core processes at or above the baseline level
    (``processes_at_baseline``) and assessed (``processes_assessed``), with the consortium's
    median, minimum and maximum of that number (module docstring)."""
    hospitals = _ids(hospitals)
    cols = [c for c in maturity.columns if c not in ("respondent_id", "hospital_id", "team_id")]
    scales = []
    for c in cols:
        try:
            study.scale(c)
        except KeyError:
            continue
        scales.append(c)
    if not scales:
        return pd.DataFrame(columns=MATURITY_COLUMNS)
    inst = study.instrument_of(scales[0])
    parts = []

    def block(frame, measures, kind, level_of):
        f = frame.assign(hospital_id=frame["hospital_id"].astype(str))
        f = f.drop_duplicates("hospital_id").set_index("hospital_id").reindex(hospitals)
        for m in measures:
            parts.append(
                pd.DataFrame(
                    {
                        "hospital_id": hospitals,
                        "kind": kind,
                        "measure": m,
                        "level": level_of(m),
                        "value": f[m].to_numpy(float),
                        "consortium_median": float(frame[m].median()),
                        "consortium_min": float(frame[m].min()),
                        "consortium_max": float(frame[m].max()),
                        "consortium_n_hospitals": int(frame[m].notna().sum()),
                    }
                )
            )

    block(maturity, scales, "scale", lambda s: study.scale(s).level)
    items = [i for i in inst.items if i in maturity_items.columns]
    block(maturity_items, items, "process", lambda s: "process")
    baseline = inst.raw.get("baseline_level")
    if baseline is not None and items:
        x = maturity_items[items].astype(float)
        counts = pd.DataFrame(
            {
                "hospital_id": maturity_items["hospital_id"].astype(str),
                "processes_at_baseline": (x >= float(baseline)).sum(axis=1).astype(float),
                "processes_assessed": x.notna().sum(axis=1).astype(float),
            }
        )
        assessed = counts[counts["processes_assessed"] > 0]
        f = counts.drop_duplicates("hospital_id").set_index("hospital_id").reindex(hospitals)
        for m in ("processes_at_baseline", "processes_assessed"):
            parts.append(
                pd.DataFrame(
                    {
                        "hospital_id": hospitals,
                        "kind": "count",
                        "measure": m,
                        "level": "total",
                        "value": f[m].where(f["processes_assessed"] > 0).to_numpy(float),
                        "consortium_median": float(assessed[m].median()),
                        "consortium_min": float(assessed[m].min()),
                        "consortium_max": float(assessed[m].max()),
                        "consortium_n_hospitals": len(assessed),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)[MATURITY_COLUMNS]


# --- peers and the consortium ---------------------------------------------------------------


def shown_means(hospitals_ml: pd.DataFrame, k: int) -> pd.DataFrame:
    """The hospitals' EB means that reports compare with (at least k respondents)."""
    d = hospitals_ml[~hidden_hospitals(hospitals_ml, k)]
    return d.assign(hospital_id=d["hospital_id"].astype(str)).dropna(subset=["eb_mean"])


def peer_stats(
    hospitals_ml: pd.DataFrame,
    organisations: pd.DataFrame,
    column: str | None,
    min_hospitals: int,
    k: int,
) -> pd.DataFrame:
    """peers.csv: per scale and peer group (the hospitals sharing a value of ``column`` in the
    organisations register), the number of hospitals with results, the median and quartiles
    of their EB means (type 7), and whether a report may show it (``n_hospitals >=
    min_hospitals``). No rows when ``column`` is None or not in the register."""
    if not column or column not in organisations.columns:
        return pd.DataFrame(columns=PEER_COLUMNS)
    group = organisations.assign(hospital_id=organisations["hospital_id"].astype(str))
    group = group.drop_duplicates("hospital_id").set_index("hospital_id")[column]
    d = shown_means(hospitals_ml, k)
    d = d.assign(group=d["hospital_id"].map(group)).dropna(subset=["group"])
    d["group"] = d["group"].astype(str)
    rows = []
    for (scale, grp), g in d.groupby(["scale", "group"], sort=True):
        q = g["eb_mean"].quantile([0.25, 0.5, 0.75])
        rows.append(
            {
                "scale": scale,
                "column": column,
                "group": grp,
                "n_hospitals": len(g),
                "median": q[0.5],
                "q1": q[0.25],
                "q3": q[0.75],
                "min_hospitals": int(min_hospitals),
                "shown": len(g) >= min_hospitals,
            }
        )
    return pd.DataFrame(rows, columns=PEER_COLUMNS)


def consortium_means(hospitals_ml: pd.DataFrame, k: int) -> pd.DataFrame:
    """Per scale: the number of hospitals with at least k respondents, the unweighted mean of
    their EB means (the reports' "consortium average") with its t interval over hospitals (R
    ``t.test(x)$conf.int``; blank with one hospital)."""
    d = shown_means(hospitals_ml, k)
    g = d.groupby("scale", sort=False)["eb_mean"].agg(["count", "mean", "std"])
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, g["count"] - 1) * g["std"] / np.sqrt(g["count"])
    return pd.DataFrame(
        {
            "scale": g.index,
            "consortium_n_hospitals": g["count"].astype(int).to_numpy(),
            "consortium_mean": g["mean"].to_numpy(float),
            "consortium_ci_low": (g["mean"] - half).to_numpy(float),
            "consortium_ci_high": (g["mean"] + half).to_numpy(float),
        }
    )


# --- trends ---------------------------------------------------------------------------------


def trend_table(
    hospitals_by_wave: dict[str, pd.DataFrame],
    change_by_wave: dict[str, pd.DataFrame | None],
    k: int,
) -> pd.DataFrame:
    """trends.csv: per wave (in name order), scale and hospital of that wave's
    ``hospitals.csv``: its EB mean with SE and 95% interval (blank where suppressed), the
    consortium's mean and interval that wave (``consortium_means``), and the change since the
    wave before from that wave's ``change.csv`` (blank where suppressed there)."""
    parts = []
    for wave in sorted(hospitals_by_wave):
        h = hospitals_by_wave[wave]
        if h is None or h.empty:
            continue
        hidden = hidden_hospitals(h, k)
        d = pd.DataFrame(
            {
                "wave": wave,
                "scale": h["scale"].to_numpy(),
                "hospital_id": h["hospital_id"].astype(str).to_numpy(),
                "n": h["n"].to_numpy(float),
                "mean": h["eb_mean"].where(~hidden).to_numpy(float),
                "se": standard_error(h).where(~hidden).to_numpy(float),
                "ci_low": h["ci_low"].where(~hidden).to_numpy(float),
                "ci_high": h["ci_high"].where(~hidden).to_numpy(float),
                "suppressed": hidden.to_numpy(bool),
            }
        )
        d = d.merge(consortium_means(h, k), on="scale", how="left")
        ch = change_by_wave.get(wave)
        if ch is not None and not ch.empty:
            c = ch.assign(hospital_id=ch["hospital_id"].astype(str))
            bad = (c["n"].fillna(0) < k) | (c["n_previous"].fillna(0) < k) | _flag(c)
            c = pd.DataFrame(
                {
                    "scale": c["scale"],
                    "hospital_id": c["hospital_id"],
                    "previous_wave": c["previous_wave"].astype(str),
                    "n_previous": c["n_previous"],
                    "change": c["change"].where(~bad),
                    "change_se": c["se"].where(~bad),
                    "change_ci_low": c["ci_low"].where(~bad),
                    "change_ci_high": c["ci_high"].where(~bad),
                }
            )
            d = d.merge(c, on=["scale", "hospital_id"], how="left")
        parts.append(d)
    if not parts:
        return pd.DataFrame(columns=TREND_COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    for c in TREND_COLUMNS:
        if c not in out:
            out[c] = np.nan
    out["consortium_n_hospitals"] = out["consortium_n_hospitals"].fillna(0).astype(int)
    return out[TREND_COLUMNS]


# --- the stage ------------------------------------------------------------------------------


def wave_benchmark(
    study: Study,
    organisations: pd.DataFrame,
    responses: dict[str, pd.DataFrame],
    hospitals_ml: pd.DataFrame,
    maturity: pd.DataFrame | None,
    maturity_items: pd.DataFrame | None,
    hospitals_by_wave: dict[str, pd.DataFrame],
    change_by_wave: dict[str, pd.DataFrame | None],
) -> dict[str, pd.DataFrame]:
    """The six tables of ``results/<wave>/benchmark/`` (items, scales, stakeholders, maturity,
    peers, trends) for one wave; ``hospitals_by_wave`` and ``change_by_wave`` hold this wave's and
    every earlier wave's multilevel results."""
    k = study.min_group_size
    peers = study.config["report"]["peers"]
    ids = _ids(organisations["hospital_id"].astype(str))
    if maturity is not None and not maturity.empty and maturity_items is not None:
        mat = maturity_stats(study, maturity, maturity_items, ids)
    else:
        mat = pd.DataFrame(columns=MATURITY_COLUMNS)
    items = item_stats(study, responses, ids, k)
    return {
        "items": items,
        "scales": scale_positive(study, items),
        "stakeholders": stakeholder_stats(study, responses, ids, k),
        "maturity": mat,
        "peers": peer_stats(
            hospitals_ml, organisations, peers.get("column"), int(peers["min_hospitals"]), k
        ),
        "trends": trend_table(hospitals_by_wave, change_by_wave, k),
    }
