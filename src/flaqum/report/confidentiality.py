"""What a hospital may see: its own numbers, anonymous peers, and nothing about a small group.

The rules (also printed in every report's methods appendix, see ``RULES``):

1. **Minimum group size.** No number (mean, interval, percentage, n) describes fewer than
   ``k = min_group_size`` respondents. A hospital, a team, an item or a stakeholder dimension
   with fewer than ``k`` answers is shown as "fewer than k responses" and its values are
   removed from the data handed to the template (never hidden only by styling).
2. **Complementary suppression of teams.** A hospital total is the sum of its teams, so one
   hidden team could be recovered from the total and the other teams. Within a hospital, when
   teams are hidden for rule 1, further teams (the smallest shown ones) are withheld until at
   least two teams with respondents are hidden *and* together they hold at least ``k``
   respondents. The status is decided once per survey on each team's smallest n over the
   survey's team scales and applied to every scale of that survey, so that no team is hidden
   on one scale and shown on another (which would let the shown n stand in for the hidden
   one); the rule is then checked again on each scale.
3. **Other hospitals are anonymous.** A hospital's report receives other hospitals only as
   unlabelled values of hospitals with at least ``k`` respondents (no id, name or team), and
   consortium summaries over all hospitals. Every rendered report is scanned for other
   hospitals' names, ids and team names before it is written (``scan_report``); a hit fails
   the render.

The Maturity Matrix is the hospital's own self-assessment (one answer per hospital, not
personal answers): rule 1 does not apply to it; peers enter it only as a consortium median.
"""

from __future__ import annotations

import base64
import html as html_lib
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.report.data import WaveResults

Z95, Z998 = 1.959964, 3.090232

RULES = (
    "No number in this report describes fewer than {k} respondents: a team, item or group "
    'with fewer than {k} answers is listed as "fewer than {k} responses" without any value. '
    "Because your hospital's total includes every team, hiding a single small team would not "
    "be enough (it could be worked out from the total and the other teams). Whenever a team "
    "is hidden, further teams, the smallest first, are withheld until at least two teams with "
    'a combined {k} or more respondents are hidden; they are marked "withheld to protect a '
    'smaller team". Other hospitals appear only as anonymous marks and consortium averages. '
    "The Maturity Matrix is your hospital's own self-assessment and is shown in full."
)

SMALL, WITHHELD, SHOWN = "small", "withheld", "shown"
SIDE_LABELS = {"staff": "Professionals", "patients": "Patients and kin"}


def status_text(status: str, k: int) -> str:
    return {
        SMALL: f"fewer than {k} responses",
        WITHHELD: "withheld to protect a smaller team",
    }.get(status, "")


def complementary_status(n: pd.Series, k: int, hidden: pd.Series | None = None) -> pd.Series:
    """Per group: 'shown', 'small' (n < k) or 'withheld' (complementary suppression).

    ``hidden`` marks groups already hidden by an earlier decision (kept hidden, as 'withheld'
    unless they are small). Groups of n = 0 count as hidden but protect no one.
    """
    n = pd.Series(n, dtype=float).fillna(0)
    status = pd.Series(np.where(n < k, SMALL, SHOWN), index=n.index, dtype=object)
    if hidden is not None:
        status[(status == SHOWN) & hidden.reindex(n.index, fill_value=False)] = WITHHELD
    while True:
        hid = (status != SHOWN) & (n > 0)
        if not ((status == SMALL) & (n > 0)).any():
            break
        if hid.sum() >= 2 and n[hid].sum() >= k:
            break
        shown = n[status == SHOWN].sort_values(kind="stable")
        if shown.empty:
            break
        status[shown.index[0]] = WITHHELD
    return status


def _se(df: pd.DataFrame) -> pd.Series:
    se = df["eb_se"] if "eb_se" in df else pd.Series(np.nan, index=df.index)
    from_ci = (df["ci_high"] - df["ci_low"]) / (2 * Z95)
    return se.fillna(from_ci)


def _is_suppressed(df: pd.DataFrame, k: int) -> pd.Series:
    flag = (
        df["suppressed"].astype(str).str.lower().isin(["true", "1"])
        if "suppressed" in df
        else False
    )
    return (df["n"].fillna(0) < k) | flag


def scale_meta(study: Study, scale_ids) -> pd.DataFrame:
    """Label, source, unit, level and response range of each scale, in report order."""
    order = {s: i for i, s in enumerate(study.sources)}
    level_order = {"total": 0, None: 1, "factor": 2, "driver": 3, "building_block": 4}
    rows = []
    for sid in scale_ids:
        try:
            sc, inst = study.scale(sid), study.instrument_of(sid)
        except KeyError:
            continue
        label = sc.label
        if sc.level == "factor":
            label = f"{sc.label} ({SIDE_LABELS.get(inst.source, inst.source).lower()})"
        rows.append(
            {
                "scale": sid,
                "label": label,
                "instrument": inst.id,
                "instrument_label": inst.label,
                "source": inst.source,
                "unit": inst.unit,
                "level": sc.level,
                "parent": sc.parent,
                "rmin": inst.rmin,
                "rmax": inst.rmax,
                "_key": (
                    order.get(inst.source, 99),
                    inst.unit != "team",
                    inst.id.endswith("_global"),
                    inst.id,
                    level_order.get(sc.level, 5),
                ),
            }
        )
    meta = pd.DataFrame(rows)
    if meta.empty:
        return meta
    return meta.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


@dataclass
class HospitalView:
    """Everything one hospital's report may show, already confidential."""

    hospital_id: str
    hospital_name: str
    wave: str
    k: int
    n_hospitals: int
    respondents: dict[str, int]
    scales: pd.DataFrame
    peers: dict[str, np.ndarray]
    teams: pd.DataFrame
    change: pd.DataFrame | None
    items: pd.DataFrame
    stakeholders: pd.DataFrame
    maturity: pd.DataFrame
    maturity_processes: pd.DataFrame
    psychometrics: pd.DataFrame | None
    baseline_level: float | None = None
    ambition_year: int | None = None
    agreement_threshold: float = 0.7
    notes: list[str] = field(default_factory=list)


def _hospital_scales(res: WaveResults, study: Study, hid: str, k: int):
    hosp = res.hospitals.copy()
    hosp["se"] = _se(hosp)
    hosp["hidden"] = _is_suppressed(hosp, k)
    meta = scale_meta(study, list(dict.fromkeys(hosp["scale"])))
    rows, peers = [], {}
    for m in meta.itertuples(index=False):
        d = hosp[hosp["scale"] == m.scale]
        ok = d[~d["hidden"]]
        own = d[d["hospital_id"] == hid]
        others = ok[ok["hospital_id"] != hid]
        peers[m.scale] = others.sort_values("eb_mean")[["eb_mean", "se"]].to_numpy(float)
        cmean = ok["eb_mean"].mean() if len(ok) else np.nan
        row = {**m._asdict(), "consortium_mean": cmean, "n_hospitals": len(ok)}
        row["q1"], row["q3"] = ok["eb_mean"].quantile([0.25, 0.75]) if len(ok) else [np.nan] * 2
        if own.empty:
            row.update(n=0, status=SMALL)
        else:
            o = own.iloc[0]
            row["n"] = int(o["n"]) if pd.notna(o["n"]) else 0
            row["status"] = SMALL if o["hidden"] else SHOWN
            if not o["hidden"]:
                se = float(o["se"])
                row.update(
                    mean=float(o["eb_mean"]),
                    se=se,
                    ci_low=float(o["ci_low"]) if pd.notna(o["ci_low"]) else o["eb_mean"] - Z95 * se,
                    ci_high=float(o["ci_high"])
                    if pd.notna(o["ci_high"])
                    else o["eb_mean"] + Z95 * se,
                    lo998=float(o["eb_mean"]) - Z998 * se,
                    hi998=float(o["eb_mean"]) + Z998 * se,
                )
        if row["status"] == SMALL:
            row["n"] = np.nan  # the hospital's own n below k is not shown either
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in ("mean", "se", "ci_low", "ci_high", "lo998", "hi998"):
        if c not in out:
            out[c] = np.nan
    out["signal"] = np.select(
        [out["lo998"] > out["consortium_mean"], out["hi998"] < out["consortium_mean"]],
        ["higher", "lower"],
        default="common",
    )
    out.loc[out["status"] != SHOWN, "signal"] = ""
    return out, peers


def _hospital_teams(
    res: WaveResults, study: Study, hid: str, k: int, meta: pd.DataFrame, threshold: float
) -> pd.DataFrame:
    team_scales = meta[meta["unit"] == "team"]
    reg = res.team_register[res.team_register["hospital_id"] == hid]
    names = dict(zip(reg["team_id"].astype(str), reg["team_name"].astype(str), strict=False))
    t = res.teams[res.teams["hospital_id"] == hid].copy()
    t["team_id"] = t["team_id"].astype(str)
    t["se"] = _se(t)
    agr = None
    if res.agreement is not None and not res.agreement.empty:
        agr = res.agreement[res.agreement["hospital_id"] == hid][["team_id", "scale", "rwg_j"]]
        agr = agr.assign(team_id=agr["team_id"].astype(str))
    out = []
    for _source, sm in team_scales.groupby("source", sort=False):
        ts = t[t["scale"].isin(sm["scale"])]
        # a team's size is its smallest n over the survey's team scales (0 where it has none)
        wide = ts.pivot_table(index="team_id", columns="scale", values="n", aggfunc="first")
        wide = wide.reindex(columns=list(sm["scale"]))
        size = wide.fillna(0).min(axis=1)
        size = size.reindex(size.index.union(list(names)), fill_value=0)
        base = complementary_status(size, k)
        for sid in sm["scale"]:
            d = ts[ts["scale"] == sid].set_index("team_id").reindex(size.index)
            d["n"] = d["n"].fillna(0)
            flagged = _is_suppressed(d, k)
            st = complementary_status(d["n"], k, hidden=(base != SHOWN) | flagged)
            d = d.assign(status=st.values, scale=sid, team_name=[names.get(i, i) for i in d.index])
            if agr is not None:
                a = agr[agr["scale"] == sid].set_index("team_id")["rwg_j"]
                d["rwg_j"] = a.reindex(d.index).to_numpy(float)
            else:
                d["rwg_j"] = np.nan
            out.append(d.reset_index(drop=True))
    if not out:
        return pd.DataFrame(
            columns=[
                "scale",
                "team_name",
                "n",
                "mean",
                "ci_low",
                "ci_high",
                "lo998",
                "hi998",
                "rwg_j",
                "low_agreement",
                "status",
            ]
        )
    d = pd.concat(out, ignore_index=True)
    shown = d["status"] == SHOWN
    view = pd.DataFrame(
        {
            "scale": d["scale"],
            "team_name": d["team_name"],
            "status": d["status"],
            "n": d["n"].where(shown),
            "mean": d["eb_mean"].where(shown),
            "ci_low": d["ci_low"].where(shown),
            "ci_high": d["ci_high"].where(shown),
            "lo998": (d["eb_mean"] - Z998 * d["se"]).where(shown),
            "hi998": (d["eb_mean"] + Z998 * d["se"]).where(shown),
            "rwg_j": d["rwg_j"].where(shown),
        }
    )
    view["low_agreement"] = view["rwg_j"] < threshold
    return view


def _change(res: WaveResults, hid: str, k: int, meta: pd.DataFrame) -> pd.DataFrame | None:
    if res.change is None or res.change.empty:
        return None
    c = res.change[res.change["hospital_id"] == hid]
    if c.empty:
        return None
    c = meta[["scale", "label", "source", "rmin", "rmax"]].merge(c, on="scale", how="inner")
    ok = (c["n"].fillna(0) >= k) & (c["n_previous"].fillna(0) >= k)
    out = c[["scale", "label", "source", "rmin", "rmax", "previous_wave"]].copy()
    for col in ("n_previous", "n", "change", "se", "ci_low", "ci_high"):
        out[col] = c[col].where(ok)
    out["status"] = np.where(ok, SHOWN, SMALL)
    return out.reset_index(drop=True)


def _positive_from(inst) -> float:
    r = inst.response
    return float(r.get("positive_from", (inst.rmin + inst.rmax) / 2 + 0.5))


def item_table(study: Study, responses: dict[str, pd.DataFrame], hid: str, k: int) -> pd.DataFrame:
    """Per item of every survey instrument: the hospital's n, mean, % positive and % missing
    (blank where fewer than k answered), and the consortium's % positive."""
    rows = []
    for source, df in responses.items():
        if df is None or df.empty:
            continue
        own = df[df["hospital_id"] == hid]
        n_resp = len(own)
        for inst in study.instruments_for(source):
            if "response" not in inst.raw:
                continue
            pos = _positive_from(inst)
            for item, text in inst.items.items():
                if item not in df.columns:
                    continue
                x, allx = own[item].to_numpy(float), df[item].to_numpy(float)
                n = int(np.isfinite(x).sum())
                nall = np.isfinite(allx).sum()
                row = {
                    "source": source,
                    "instrument": inst.id,
                    "instrument_label": inst.label,
                    "item": item,
                    "text": text,
                    "reverse": item in inst.reverse_items,
                    "consortium_mean": np.nanmean(allx) if nall else np.nan,
                    "consortium_pct_positive": 100 * np.nansum(allx >= pos) / nall
                    if nall
                    else np.nan,
                }
                if n >= k and n_resp >= k:
                    row.update(
                        n=n,
                        mean=float(np.nanmean(x)),
                        pct_positive=100 * float(np.sum(x >= pos)) / n,
                        pct_missing=100 * (1 - n / n_resp),
                        status=SHOWN,
                    )
                else:
                    row.update(
                        n=np.nan, mean=np.nan, pct_positive=np.nan, pct_missing=np.nan, status=SMALL
                    )
                rows.append(row)
    return pd.DataFrame(rows)


def stakeholder_table(
    study: Study, responses: dict[str, pd.DataFrame], hid: str, k: int
) -> pd.DataFrame:
    """Mirrored instruments (``mirror:`` in the codebooks) per dimension: the hospital's mean of
    each side, the gap (second side minus first) and the consortium's gap."""
    pairs = []
    for inst in study.instruments.values():
        m = inst.raw.get("mirror")
        if m and m in study.instruments and inst.raw.get("dimensions"):
            pair = tuple(
                sorted(
                    (inst.id, m),
                    key=lambda i: list(study.sources).index(study.instruments[i].source),
                )
            )
            if pair not in pairs:
                pairs.append(pair)
    rows = []
    for a, b in pairs:
        ia, ib = study.instruments[a], study.instruments[b]
        dims: dict[str, list[str]] = {}
        for item, dim in ia.raw["dimensions"].items():
            dims.setdefault(dim, []).append(item)
        for dim, items in dims.items():
            row = {
                "dimension": dim,
                "label": dim.replace("_", " ").capitalize(),
                "side_a": SIDE_LABELS.get(ia.source, ia.label),
                "side_b": SIDE_LABELS.get(ib.source, ib.label),
            }
            cons = {}
            for side, inst in (("a", ia), ("b", ib)):
                df = responses.get(inst.source)
                if df is None or not set(items) <= set(df.columns):
                    row[f"n_{side}"] = row[f"mean_{side}"] = np.nan
                    continue
                score = df[items].mean(axis=1)
                g = score.groupby(df["hospital_id"]).agg(["count", "mean"])
                okh = g[g["count"] >= k]
                cons[side] = okh["mean"].mean()
                if hid in g.index and g.loc[hid, "count"] >= k:
                    row[f"n_{side}"] = int(g.loc[hid, "count"])
                    row[f"mean_{side}"] = float(g.loc[hid, "mean"])
                else:
                    row[f"n_{side}"] = row[f"mean_{side}"] = np.nan
            row["gap"] = row["mean_b"] - row["mean_a"]
            row["consortium_gap"] = cons.get("b", np.nan) - cons.get("a", np.nan)
            row["rmin"], row["rmax"] = ia.rmin, ia.rmax
            rows.append(row)
    return pd.DataFrame(rows)


def maturity_tables(study: Study, res: WaveResults, hid: str):
    """The hospital's driver and building-block scores with the consortium median, and its
    core processes (items) with their level."""
    mat = res.maturity
    scales = [c for c in mat.columns if c not in ("respondent_id", "hospital_id", "team_id")]
    meta = scale_meta(study, scales)
    if meta.empty:
        return pd.DataFrame(), pd.DataFrame(), None
    own = mat[mat["hospital_id"] == hid]
    rows = []
    for m in meta.itertuples(index=False):
        rows.append(
            {
                **m._asdict(),
                "value": float(own[m.scale].iloc[0]) if len(own) else np.nan,
                "consortium_median": float(mat[m.scale].median()),
            }
        )
    inst = study.instrument_of(meta["scale"].iloc[0])
    baseline = inst.raw.get("baseline_level")
    block_of = {}
    for sc in inst.scales.values():
        if sc.level == "building_block":
            for it in sc.items:
                block_of[it] = sc.label
    items = res.maturity_items
    own_items = items[items["hospital_id"] == hid]
    proc = []
    for item, text in inst.items.items():
        if item in items.columns:
            proc.append(
                {
                    "item": item,
                    "text": text,
                    "block": block_of.get(item, ""),
                    "value": float(own_items[item].iloc[0]) if len(own_items) else np.nan,
                    "consortium_median": float(items[item].median()),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(proc), baseline


def hospital_view(res: WaveResults, study: Study, hospital_id: str) -> HospitalView:
    """The confidential view of one hospital (see the module docstring for the rules)."""
    k = study.min_group_size
    hid = str(hospital_id)
    name = res.hospital_name(hid)
    threshold = float(study.config.get("multilevel", {}).get("agreement_threshold", 0.7))
    scales, peers = _hospital_scales(res, study, hid, k)
    teams = _hospital_teams(res, study, hid, k, scales, threshold)
    items = item_table(study, res.responses, hid, k)
    stake = stakeholder_table(study, res.responses, hid, k)
    maturity, processes, baseline = maturity_tables(study, res, hid)
    respondents = {}
    for source, df in res.responses.items():
        n = int((df["hospital_id"] == hid).sum()) if df is not None else 0
        respondents[source] = n if n >= k else None
    psy = None
    if res.scales is not None and not res.scales.empty:
        psy = res.scales.copy()
    return HospitalView(
        hospital_id=hid,
        hospital_name=name,
        wave=res.wave,
        k=k,
        n_hospitals=res.organisations["hospital_id"].nunique(),
        respondents=respondents,
        scales=scales,
        peers=peers,
        teams=teams,
        change=_change(res, hid, k, scales),
        items=items,
        stakeholders=stake,
        maturity=maturity,
        maturity_processes=processes,
        psychometrics=psy,
        baseline_level=baseline,
        ambition_year=study.config.get("report", {}).get("ambition_year"),
        agreement_threshold=threshold,
    )


# --- the scan of a rendered report ---------------------------------------------------------

_DATA_URI = re.compile(r"data:([\w/+.-]+);base64,([A-Za-z0-9+/=\s]+)")


def report_text(html: str) -> str:
    """The report's HTML with every base64 data URI of a text type (SVG, JSON, HTML) decoded
    and appended, and entities unescaped: what a reader or a script could extract."""
    parts = [html]
    for mime, payload in _DATA_URI.findall(html):
        if mime.startswith("image/svg") or mime.startswith("text/") or "json" in mime:
            try:
                parts.append(base64.b64decode(payload).decode("utf-8", "replace"))
            except ValueError:
                continue
    return html_lib.unescape("\n".join(parts))


def forbidden_identifiers(res: WaveResults, hospital_id: str) -> dict[str, set[str]]:
    """Other hospitals' names and ids, and the team names that only other hospitals have."""
    orgs = res.organisations
    others = orgs[orgs["hospital_id"].astype(str) != hospital_id]
    own_teams = set(
        res.team_register.loc[res.team_register["hospital_id"] == hospital_id, "team_name"].astype(
            str
        )
    )
    other_teams = set(
        res.team_register.loc[res.team_register["hospital_id"] != hospital_id, "team_name"].astype(
            str
        )
    )
    out = {
        "hospital id": set(others["hospital_id"].astype(str)),
        "team name": other_teams - own_teams,
    }
    if "hospital_name" in others:
        out["hospital name"] = set(others["hospital_name"].dropna().astype(str))
    own = orgs.loc[orgs["hospital_id"].astype(str) == hospital_id]
    allowed = set(own_teams) | {hospital_id}
    if "hospital_name" in own:
        allowed |= set(own["hospital_name"].dropna().astype(str))
    out["_allowed"] = allowed
    return out


def _spans(terms, text):
    """(start, end, term) of every whole-word occurrence of any term, overlaps included."""
    if not terms:
        return []
    alt = "|".join(map(re.escape, sorted(terms, key=len, reverse=True)))
    out = []
    for m in re.finditer(rf"(?<!\w)(?=({alt})(?!\w))", text):
        out.append((m.start(), m.start() + len(m.group(1)), m.group(1)))
    return out


def scan_report(html: str, forbidden: dict[str, set[str]]) -> list[str]:
    """Every forbidden identifier found in the report's text (whole words, any case).

    An occurrence inside one of the strings under ``_allowed`` (the hospital's own name and
    team names) does not count: another hospital's team "Surgery" inside an own "Vascular
    surgery" is not a leak, but an own "Surgery" does not excuse another's "Cardiac surgery".
    """
    text = report_text(html).lower()
    kind_of = {}
    for kind, values in forbidden.items():
        if not kind.startswith("_"):
            for v in values:
                if v:
                    kind_of.setdefault(v.lower(), f"{kind} {v!r}")
    allowed = _spans({a.lower() for a in forbidden.get("_allowed", ()) if a}, text)
    hits = set()
    for start, end, term in _spans(set(kind_of), text):
        if not any(a <= start and end <= b for a, b, _ in allowed):
            hits.add(kind_of[term])
    hits = sorted(hits)
    return hits
