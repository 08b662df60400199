"""The sections of the reports, built from the confidential view: text, tables and figures.

``hospital_content`` returns a JSON-serialisable dict (section -> list of blocks) that the
template lays out with ``flaqum.report.layout``; it contains nothing that the view does not,
so the confidentiality of a report is decided in ``confidentiality.hospital_view``.
A block is {"kind": "markdown", "text"} | {"kind": "figure", "title", "svg", "caption"} |
{"kind": "table", "html", "caption"}.

Free text (hospital and team names, scale and item labels, waves) goes into Markdown only
through ``escape.md`` (``tx`` here) or, for the names of hospitals and teams, ``escape.ident``
(which also marks them for the confidentiality scan); numbers through ``tables.num`` and
``signed``. Titles and captions stay plain text (they become alt text too) and are escaped
where they are written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.report import figures, tables
from flaqum.report.confidentiality import (
    HospitalView,
    hospital_view,
    rules_text,
    scale_meta,
    status_text,
)
from flaqum.report.data import WaveResults
from flaqum.report.escape import clean, ident
from flaqum.report.escape import md as tx
from flaqum.report.shape import Shape, study_shape
from flaqum.report.tables import num, signed, span

WHO = {"staff": "professionals", "patients": "patients and their kin"}


def md(text: str) -> dict:
    return {"kind": "markdown", "text": text}


def fig_block(fig, title: str, caption: str, key: str) -> dict:
    svg = figures.to_svg(fig, alt=f"{title}. {caption}", key=key)
    return {"kind": "figure", "title": title, "svg": svg, "caption": caption}


def table_block(html: str, caption: str = "") -> dict:
    return {"kind": "table", "html": html, "caption": caption}


def conversation_points(v: HospitalView, n: int = 3) -> list[str]:
    """The n things most worth a conversation, at most one per kind where possible."""
    cands = []  # (kind, strength, text)
    for r in v.scales[v.scales["status"] == "shown"].itertuples(index=False):
        z = abs(r.mean - r.consortium_mean) / r.se if r.se else 0
        who = WHO.get(r.source, "respondents")
        if r.signal == "lower":
            cands.append(
                (
                    "lower",
                    z / 3.09,
                    (
                        f"**{tx(r.label)}** is clearly lower than in the consortium "
                        f"({num(r.mean)} against an average of {num(r.consortium_mean)} on "
                        f"{span(r.rmin, r.rmax)}). What do your {who} say gets in the way?"
                    ),
                )
            )
        elif r.signal == "higher":
            cands.append(
                (
                    "higher",
                    0.6 * z / 3.09,
                    (
                        f"**{tx(r.label)}** is clearly higher than in the consortium "
                        f"({num(r.mean)} against {num(r.consortium_mean)}). What makes this "
                        "work, and what can others learn from it?"
                    ),
                )
            )
    if v.change is not None:
        for r in v.change[v.change["status"] == "shown"].itertuples(index=False):
            z = abs(r.change) / r.se if r.se else 0
            if r.ci_high < 0:
                cands.append(
                    (
                        "decline",
                        z / 1.96,
                        (
                            f"**{tx(r.label)}** fell by {num(abs(r.change))} points since "
                            f"{tx(r.previous_wave)} (95% interval {num(abs(r.ci_high))} to "
                            f"{num(abs(r.ci_low))}). What changed?"
                        ),
                    )
                )
            elif r.ci_low > 0:
                cands.append(
                    (
                        "rise",
                        0.5 * z / 1.96,
                        (
                            f"**{tx(r.label)}** rose by {num(r.change)} points since "
                            f"{tx(r.previous_wave)} (95% interval {num(r.ci_low)} to "
                            f"{num(r.ci_high)}). What did you do?"
                        ),
                    )
                )
    st = v.stakeholders
    if st is not None and not st.empty:
        d = st.dropna(subset=["gap"])
        if not d.empty:
            # against the consortium's gap; with no consortium, the gap itself
            ref = d["consortium_gap"] if v.compare else 0
            r = d.loc[(d["gap"] - ref).abs().idxmax()]
            excess = r["gap"] - (r["consortium_gap"] if v.compare else 0)
            if abs(excess) > 0.15:
                more = "more" if r["gap"] > 0 else "less"
                than = (
                    f" where the consortium's is {signed(r['consortium_gap'])}" if v.compare else ""
                )
                cands.append(
                    (
                        "stakeholders",
                        abs(excess) / 0.25,
                        (
                            f"On **{tx(r['label'].lower())}**, {tx(r['side_b'].lower())} are "
                            f"{more} positive than your {tx(r['side_a'].lower())} "
                            f"({num(r['mean_b'])} against {num(r['mean_a'])}), a gap of "
                            f"{signed(r['gap'])}{than}. Do you recognise each other's view?"
                        ),
                    )
                )
    tv = v.teams
    if tv is not None and not tv.empty:
        low = tv[tv["low_agreement"].fillna(False).astype(bool)]
        for sid, g in low.groupby("scale", sort=False):
            label = v.scales.set_index("scale").loc[sid, "label"]
            names = ", ".join(ident(t) for t in sorted(g["team_name"]))
            cands.append(
                (
                    "agreement",
                    len(g) / 2,
                    (
                        f"In {len(g)} team{'s' if len(g) > 1 else ''} ({names}) members disagree "
                        f"about **{tx(label.lower())}**: the team average hides different "
                        "experiences. Who feels differently, and why?"
                    ),
                )
            )
    mat = v.maturity
    if mat is not None and not mat.empty and v.baseline_level is not None:
        drv = mat[(mat["level"] == "driver") & (mat["value"] < v.baseline_level)]
        if not drv.empty:
            r = drv.loc[drv["value"].idxmin()]
            cands.append(
                (
                    "maturity",
                    (v.baseline_level - r["value"]) / 0.5,
                    (
                        f"On the Maturity Matrix, **{tx(r['label'])}** is at level "
                        f"{num(r['value'], 1)}, the furthest of your drivers from the baseline "
                        f"level {tx(v.baseline_level)} that the {_whole(v)} aims to reach on all "
                        f"core processes by {tx(v.ambition_year)}. Which core process comes "
                        "first?"
                    ),
                )
            )
    cands.sort(key=lambda c: -c[1])
    picked, kinds = [], set()
    for c in cands:
        if c[0] not in kinds and len(picked) < n:
            picked.append(c)
            kinds.add(c[0])
    for c in cands:
        if c not in picked and len(picked) < n:
            picked.append(c)
    return [c[2] for c in sorted(picked, key=lambda c: -c[1])]


def _whole(v: HospitalView) -> str:
    """What the hospital belongs to: the consortium, or the study where it is the only one."""
    return "consortium" if v.compare else "study"


def _alone(v: HospitalView) -> str:
    """Why a hospital is not compared with others (a sentence)."""
    name = ident(v.hospital_name)
    if v.shape is not None and v.shape.n_organisations > 1:
        where = "the only hospital with results in this wave"
    else:
        where = "the only organisation in this study"
    shows = (
        "your scores and how your teams differ from each other and from your average"
        if v.has_teams
        else "your scores"
    )
    if v.shape is None or v.shape.previous_wave:
        shows += ", and what changed since the previous wave"
    return (
        f"{name} is {where}, so this report does not compare it with other hospitals: it "
        f"shows {shows}. "
    )


def _glance(v: HospitalView) -> list[dict]:
    k = v.k

    def who(s):
        return WHO.get(s) or tx(s)

    resp = ", ".join(
        f"fewer than {k} {who(s)}" if n is None else (f"no {who(s)}" if n == 0 else f"{n} {who(s)}")
        for s, n in v.respondents.items()
    )
    shown = v.scales[v.scales["status"] == "shown"]
    n_hi, n_lo = int((shown["signal"] == "higher").sum()), int((shown["signal"] == "lower").sum())
    if not v.compare:
        summary = (
            f"In wave {tx(v.wave)}, {resp} of {ident(v.hospital_name)} answered the survey. "
            + _alone(v)
        )
        return [md(summary), table_block(tables.glance_table(v.scales, v.change, k, False))]
    summary = (
        f"In wave {tx(v.wave)}, {resp} of {ident(v.hospital_name)} answered the survey, one of "
        f"{v.n_hospitals} hospitals in the consortium. "
    )
    if n_hi or n_lo:
        summary += (
            f"On {n_hi} of {len(v.scales)} scales your hospital is clearly higher than the "
            f"consortium average (blue) and on {n_lo} clearly lower (orange); on the others the "
            "difference is within the usual variation between hospitals (grey). "
        )
    else:
        summary += "On every scale your hospital is within the usual range of the consortium. "
    fig = figures.glance(v.scales, v.peers, k)
    return [
        md(summary),
        fig_block(
            fig,
            "Where your hospital stands on each scale",
            "Each row is a scale. The diamond is your hospital's score minus the consortium "
            "average, the thick bar its 95% interval and the thin bar its 99.8% interval; grey "
            "ticks are the other hospitals. Blue or orange means clearly higher or lower than "
            "the consortium (the 99.8% interval does not cross the dashed line); grey is "
            "common variation.",
            "glance",
        ),
        table_block(tables.glance_table(v.scales, v.change, k)),
    ]


def _between(v: HospitalView) -> list[dict]:
    if not v.compare:
        return []  # left out, heading and all: the glance says why
    fig = figures.between_hospitals(v.scales, v.peers)
    return [
        md(
            "Each panel shows all hospitals of the consortium on one scale, from lowest to "
            "highest, with your hospital marked *you*. The other hospitals are anonymous. Scores "
            "are adjusted averages: a hospital's average is pulled slightly towards the "
            "consortium average when few people answered, so small samples do not produce "
            "extreme scores by chance. What matters is not the position in the row but whether "
            "the interval crosses the dashed consortium average."
        ),
        fig_block(
            fig,
            "Your hospital among all hospitals of the consortium",
            "Dots are hospitals' adjusted averages with 95% (thick) and 99.8% (thin) intervals, "
            "ordered from lowest to highest; the dashed line is the consortium average. Blue "
            "and orange hospitals differ clearly from the average; grey ones do not.",
            "between",
        ),
    ]


def _teams(v: HospitalView) -> list[dict]:
    if not v.has_teams:
        return []  # the surveys have no teams: left out, heading and all
    out = [
        md(
            f"Team scores come from the professionals' survey. Teams with fewer than {v.k} "
            "responses are listed without any value; a second small team may be withheld so that "
            "no team's answers can be worked out from the others. A hollow dot and "
            f"\u25b2 mark teams whose members disagree (agreement rwg below "
            f"{num(v.agreement_threshold)}): their average hides different experiences."
        )
    ]
    tv = v.teams
    if tv is None or tv.empty:
        return out + [md("No team-level scales were measured in this wave.")]
    sc = v.scales.set_index("scale")
    for sid, d in tv.groupby("scale", sort=False):
        r = sc.loc[sid]
        hm = r["mean"] if r["status"] == "shown" else None
        fig = figures.teams(
            d, r["label"], (r["rmin"], r["rmax"]), hm, r["consortium_mean"], v.agreement_threshold
        )
        out.append(md(f"### {tx(r['label'])}"))
        out.append(
            fig_block(
                fig,
                f"{clean(r['label'])}: your teams",
                "Each row is a team, ordered by score, with its 95% interval. The solid line is "
                + (
                    "your hospital, the dashed line the consortium average. "
                    if v.compare
                    else "your hospital's average. "
                )
                + "Blue or orange teams differ clearly from your hospital's average (99.8% "
                "interval); grey teams do not.",
                f"teams_{sid}",
            )
        )
        hidden = d[d["status"] != "shown"]
        if len(hidden):
            out.append(
                md(
                    "Not shown: "
                    + "; ".join(
                        f"{ident(t.team_name)} ({status_text(t.status, v.k)})"
                        for t in hidden.sort_values("team_name").itertuples()
                    )
                )
            )
        out.append(table_block(tables.teams_table(d, v.k, v.agreement_threshold)))
    return out


def _maturity(v: HospitalView) -> list[dict]:
    if v.shape is not None and v.shape.maturity:
        return [md(v.shape.maturity)]
    mat, proc = v.maturity, v.maturity_processes
    if mat is None or mat.empty or mat["value"].isna().all():
        return [md("Your hospital did not return a Maturity Matrix self-assessment in this wave.")]
    b = v.baseline_level
    out = []
    if b is not None and not proc.empty:
        n_at = int((proc["value"] >= b).sum())
        n_tot = int(proc["value"].notna().sum())
        text = (
            f"**{n_at} of {len(proc)} core processes** are at baseline level ({tx(b)}) or "
            f"above in your self-assessment ({n_tot} assessed). The {_whole(v)}'s ambition is "
            f"a baseline level on all {len(proc)} core processes by {tx(v.ambition_year)}."
        )
        if v.compare:
            med = int(proc.groupby("item")["consortium_median"].first().ge(b).sum())
            text += (
                f" For comparison, the consortium median reaches baseline on {med} core processes."
            )
        out.append(md(text))
    out.append(
        fig_block(
            figures.maturity(mat, b, v.ambition_year, median=v.compare),
            "Maturity Matrix: your drivers and building blocks",
            "Each row is one of the six drivers (bold, diamond) or one of its building blocks "
            "(dot): "
            + (
                "your level against the consortium median (grey bar). "
                if v.compare
                else "your level. "
            )
            + "Orange is below the baseline "
            f"level the {_whole(v)} aims for (dashed line), blue is at or above it.",
            "maturity",
        )
    )
    out.append(table_block(tables.maturity_table(mat, b, median=v.compare)))
    if b is not None and not proc.empty:
        below = proc[proc["value"] < b]
        if len(below):
            rows = [
                [r.item, r.block, r.text, tables.num(r.value, 0)]
                for r in below.itertuples(index=False)
            ]
            out.append(md(f"Core processes below the baseline level ({len(below)}):"))
            out.append(
                table_block(
                    tables.html_table(
                        rows,
                        ["Process", "Building block", "Core process", "Your level"],
                        cls="processes",
                        numeric={3},
                    )
                )
            )
    return out


def _stakeholders(v: HospitalView) -> list[dict]:
    if v.shape is not None and v.shape.stakeholders:
        return [md(v.shape.stakeholders)]
    st = v.stakeholders
    if st is None or st.empty:
        return [md("No mirrored patient and professional questionnaires in this wave.")]
    a, b = clean(st["side_a"].iloc[0]), clean(st["side_b"].iloc[0])
    return [
        md(
            f"The Quickscan asks the same questions of your {tx(a.lower())} and your "
            f"{tx(b.lower())} ({tx(a)} and {tx(b)} below). Where they differ, each group sees "
            "something the other does not."
        ),
        fig_block(
            figures.stakeholders(st),
            "How patients and professionals see quality, per dimension",
            f"For each quality dimension, the average answer of your {a.lower()} (circle) and "
            f"your {b.lower()} (square); the grey bar is the gap between them.",
            "stakeholders",
        ),
        table_block(tables.stakeholder_table(st, v.k, consortium=v.compare)),
    ]


def _trend_waves(v: HospitalView) -> list[str]:
    """The waves (up to this one) in which the hospital has a result on some scale."""
    t = v.trend
    if t is None or t.empty:
        return []
    return sorted(t.loc[t["status"] != "absent", "wave"].astype(str).unique())


def _trend(v: HospitalView) -> list[dict]:
    """Every wave the hospital took part in, against the consortium: a small-multiples figure
    (``figures.trend``) and its numbers (``tables.trend_table``), with the change since the
    wave before exactly as in the glance table. With one wave only, why there is no trend."""
    waves = _trend_waves(v)
    if len(waves) < 2:
        if v.no_respondents:
            return [
                md(
                    f"Nobody at {ident(v.hospital_name)} answered the surveys in wave "
                    f"{tx(v.wave)}, so this report cannot show what changed since the previous "
                    "wave."
                )
            ]
        if v.shape is not None and not v.shape.previous_wave:
            return [
                md(
                    f"There is no earlier wave to compare with: wave {tx(v.wave)} is the "
                    "study's first. The next report will show what changed."
                )
            ]
        return [
            md(
                f"{ident(v.hospital_name)} did not take part in the previous wave, so there is "
                "no trend yet. The next report will show what changed."
            )
        ]
    t = v.trend
    t = t[t["wave"].astype(str) >= waves[0]]
    others = " against the consortium average" if v.compare else ""
    text = (
        f"Your scores in every wave {ident(v.hospital_name)} took part in "
        f"({', '.join(tx(w) for w in waves)}){others}, each with its 95% interval. "
        "A change is clear when the interval of the change (in the table) lies entirely above "
        "or below zero. Changes come from a model fitted on both waves together, so they can "
        "differ slightly from the difference of the two scores shown."
    )
    absent = t[t["status"] == "absent"]
    if len(absent):
        text += " A gap in a line is a wave in which your hospital did not take part."
    if (t["status"] == "small").any():
        text += f" Where fewer than {v.k} people answered, no score is shown."
    caption = (
        "Each panel is a scale: your hospital's score in each wave (navy diamond, 95% interval)"
        + (" against the consortium average (grey circle, 95% interval)" if v.compare else "")
        + ". Panels of scales with the same answer range share their vertical range."
    )
    return [
        md(text),
        fig_block(
            figures.trend(t, v.k, consortium=v.compare),
            "Your scores in every wave" + (", against the consortium" if v.compare else ""),
            caption,
            "trend",
        ),
        table_block(
            tables.trend_table(t, v.k, consortium=v.compare),
            "What changed since the previous wave: every wave's score with its 95% interval"
            + (", the consortium average" if v.compare else "")
            + " and the change since the wave before.",
        ),
    ]


def _peers(v: HospitalView) -> list[dict]:
    """The hospital against its peer group (hospitals sharing its value of the register column
    ``report.peers.column``): median and middle half per scale, beside the consortium's. A
    group below ``report.peers.min_hospitals`` is not shown, and the report says why, once."""
    if not v.compare:
        return []
    pg, label = v.peer_group, v.peer_label
    if pg is None or pg.empty or label is None:
        return [md(v.peer_note)] if v.peer_note else []
    n = int(pg["n_hospitals"].max())
    out = [
        md(
            f"### Hospitals like yours\n\nYour hospital is compared here with the {n} "
            f"{tx(label)} of the consortium that have results (your hospital included), as "
            "well as with all hospitals. For each scale: the median of their scores and the "
            "middle half of them (from the lower to the upper quartile). No single hospital "
            "is shown." + (f" {tx(v.peer_note)}" if v.peer_note else "")
        ),
        fig_block(
            figures.peers(pg, v.scales, label),
            f"Your hospital, {clean(label)} and the consortium",
            "Each row is a scale, as distances from the consortium median (dashed line): the "
            f"middle half of {clean(label)} (dark bar, tick: their median), the middle half of "
            "all hospitals (light bar, tick: their median), and your score with its 95% "
            "interval (diamond).",
            "peers",
        ),
        table_block(tables.peers_table(pg, v.scales, v.k, label)),
    ]
    return out


def _items(v: HospitalView) -> list[dict]:
    it = v.items
    if it is None or it.empty:
        return [md("No item-level data in this wave.")]
    out = [
        md(
            "For every question: how many answered, the average answer, the share of positive "
            "answers (for example *agree* or *strongly agree*) and the share who did not answer"
            + (", with the consortium's share of positive answers" if v.compare else "")
            + ". Questions marked (r) are worded "
            "negatively; for them a positive answer is disagreeing. Questions with fewer than "
            f"{v.k} answers show no values."
        )
    ]
    for (_, label), d in it.groupby(["instrument", "instrument_label"], sort=False):
        out.append(md(f"### {tx(label)}"))
        out.append(table_block(tables.items_table(d, v.k, consortium=v.compare)))
    return out


def _reading(v: HospitalView) -> list[dict]:
    if v.compare:
        colours = (
            "- **Colours.** Grey is *common variation*: differences that chance and the usual "
            "differences between hospitals explain. Blue (higher) and orange (lower) are "
            "*signals*: "
            "the 99.8% interval lies entirely on one side of the consortium average, which chance "
            "alone rarely produces. Your hospital is the large dark-edged diamond; other hospitals "
            "are anonymous.\n"
            "- **No ranking.** A position in a row of hospitals is not a grade: most hospitals "
            "differ "
            "by less than their uncertainty. Look at signals and at changes over time.\n"
        )
    elif v.has_teams:
        colours = (
            "- **Colours.** Grey is *common variation*: differences that chance alone can "
            "explain. Blue (higher) and orange (lower) are *signals*: a team whose 99.8% interval "
            "lies entirely on one side of your hospital's average, or a change whose 95% interval "
            "lies entirely on one side of zero, which chance alone rarely produces.\n"
            "- **No ranking.** A team's position in a row of teams is not a grade: most teams "
            "differ by less than their uncertainty. Look at signals and at changes over time.\n"
        )
    else:
        colours = (
            "- **Colours.** Grey is *common variation*: a change that chance alone can explain. "
            "Blue (higher) and orange (lower) are *signals*: a change whose 95% interval lies "
            "entirely on one side of zero, which chance alone rarely produces.\n"
        )
    return [
        md(
            "- **Scores** are averages on each questionnaire's answer scale (for example 1 to 7). "
            "Higher is always better: negatively worded questions are reversed before scoring.\n"
            "- **Intervals.** A score from a sample is uncertain. The thick bar (95% interval) and "
            "the thin bar (99.8% interval) show the range of values compatible with the answers. "
            "Two scores whose intervals overlap a lot may not really differ.\n"
            + colours
            + f"- **Small groups** (fewer than {v.k} responses) are never shown, to protect the "
            "people "
            "who answered."
        )
    ]


_INTERVALS = (
    "Intervals are the estimate plus or minus 1.96 (95%) and 3.09 (99.8%) standard errors. "
)
_CHANGE = (
    "Changes between waves compare {who} with itself; their intervals combine the "
    "uncertainty of both waves."
)


def _model_text(v: HospitalView) -> str:
    """How the scores were estimated, for the study's design."""
    reml = "(restricted maximum likelihood, as the R package lme4)"
    if v.compare and v.has_teams:
        return (
            "Scores are analysed with a multilevel model that separates differences between "
            "hospitals, between teams within a hospital and between people within a team "
            f"{reml}. A hospital's or team's score "
            "is its *empirical Bayes* estimate: its own average, pulled towards the consortium "
            "average in proportion to how uncertain it is. "
            + _INTERVALS
            + _CHANGE.format(who="a hospital")
        )
    if v.compare:
        return (
            "Scores are analysed with a multilevel model that separates differences between "
            f"hospitals and between people within a hospital {reml}. A hospital's score is its "
            "*empirical Bayes* estimate: its own average, pulled towards the consortium average "
            "in proportion to how uncertain it is. " + _INTERVALS + _CHANGE.format(who="a hospital")
        )
    if v.has_teams:
        return (
            "Scores are analysed with a multilevel model that separates differences between "
            f"teams and between people within a team {reml}. Your hospital's score is the "
            "model's overall average; a team's score is its *empirical Bayes* estimate: its own "
            "average, pulled towards your hospital's average in proportion to how uncertain it "
            "is. " + _INTERVALS + _CHANGE.format(who="your hospital")
        )
    return (
        "Your hospital's score on a scale is the average over everyone who answered. "
        + _INTERVALS
        + _CHANGE.format(who="your hospital")
    )


def _methods(v: HospitalView, labels: dict[str, str]) -> list[dict]:
    out = [md(f"### Psychometrics of each scale (whole {_whole(v)})")]
    if v.psychometrics is not None and not v.psychometrics.empty:
        out.append(table_block(tables.psychometrics_table(v.psychometrics, labels)))
        text = (
            "Alpha and omega measure how consistently a scale's questions measure one thing "
            "(0.70 or more is usually considered good). CFI (0.95 or more) and RMSEA (0.06 or "
            "less) say how well a one-factor model fits."
        )
        if v.has_teams:
            text += (
                " ICC(1) is the share of differences "
                "between people that lies between teams; ICC(2) is how reliably a team's average "
                "distinguishes teams. rwg is the agreement within a team (1 is full agreement)."
            )
        out.append(md(text))
    else:
        out.append(md("The psychometric analysis was not available for this wave."))
    rules = rules_text(
        v.k,
        teams=v.has_teams,
        others=v.compare,
        maturity=v.shape is None or v.shape.maturity is None,
    )
    out.append(md("### The model\n" + _model_text(v) + "\n\n### Confidentiality\n" + rules))
    return out


def hospital_content(v: HospitalView, top_n: int = 3) -> dict:
    labels = dict(zip(v.scales["scale"], v.scales["label"], strict=False))
    points = conversation_points(v, top_n)
    conv = [
        md(
            "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))
            if points
            else (
                "Nothing stands out: every score is within the usual range."
                if v.compare
                else "Nothing stands out in this wave's results."
            )
        )
    ]
    return {
        "kind": "hospital",
        "title": f"{clean(v.hospital_name)}: feedback report, wave {clean(v.wave)}",
        "hospital_name": v.hospital_name,
        "hospital_id": v.hospital_id,
        "wave": v.wave,
        "sections": {
            "heading": [
                md(
                    f"**{ident(v.hospital_name)}**, wave {tx(v.wave)}. Confidential: prepared "
                    f"for {ident(v.hospital_name)} only."
                    + (" Other hospitals appear anonymously." if v.compare else "")
                )
            ],
            "glance": _glance(v),
            "conversation": conv,
            "between": _between(v) + _peers(v),
            "teams": _teams(v),
            "maturity": _maturity(v),
            "stakeholders": _stakeholders(v),
            "trend": _trend(v),
            "items": _items(v),
            "reading": _reading(v),
            "methods": _methods(v, labels),
        },
    }


def build_hospital(res: WaveResults, study: Study, hospital_id: str) -> dict:
    top = int(study.config["report"]["top_conversation_items"])  # schema default
    return hospital_content(hospital_view(res, study, hospital_id), top)


# --- consortium report ----------------------------------------------------------------------


def _named_hospitals(
    res: WaveResults, meta: pd.DataFrame, labels: dict, names: dict, k: int
) -> list[dict]:
    """Every hospital by name on each main scale (figures) and on every scale (table)."""
    from flaqum.report.confidentiality import _is_suppressed, _se

    hosp = res.hospitals.copy()
    hosp["se"] = _se(hosp)
    hidden = _is_suppressed(hosp, k)
    for c in ("eb_mean", "ci_low", "ci_high", "se", "raw_mean"):
        if c in hosp:
            hosp.loc[hidden, c] = np.nan
    hosp["name"] = hosp["hospital_id"].map(names).fillna(hosp["hospital_id"])
    blocks = []
    main = meta[meta["level"].isin(["total"]) | meta["level"].isna()]
    for m in main.itertuples(index=False):
        d = hosp[(hosp["scale"] == m.scale)].dropna(subset=["eb_mean"])
        if d.empty:
            continue
        blocks.append(
            fig_block(
                figures.named_caterpillar(d, m.label, (m.rmin, m.rmax)),
                f"{clean(m.label)}: all hospitals",
                "Adjusted hospital averages with 95% and 99.8% intervals; the "
                "dashed line is the average of hospitals.",
                f"named_{m.scale}",
            )
        )
    # one row per hospital id (two hospitals may share a name), ordered by name
    wide = hosp.pivot_table(index="hospital_id", columns="scale", values="eb_mean", aggfunc="first")
    wide = wide.reindex(columns=[s for s in meta["scale"] if s in wide.columns])
    order = sorted(wide.index, key=lambda i: (names.get(i, i), i))
    rows = [[names.get(i, i)] + [tables.num(x) for x in wide.loc[i]] for i in order]
    blocks.append(
        table_block(
            tables.html_table(
                rows,
                ["Hospital"] + [labels.get(s, s) for s in wide.columns],
                cls="wide",
                numeric=set(range(1, len(wide.columns) + 1)),
                ident={0},
            ),
            f"Adjusted averages; blank where fewer than {k} respondents.",
        )
    )
    return blocks


def _not_in_study(shape: Shape) -> list[tuple[str, str]]:
    """(part, why) for each part of the reports that the study's data cannot fill."""
    out = []
    if not shape.compare:
        out.append(
            (
                "Between hospitals",
                "Not applicable: the study has one organisation."
                if shape.n_organisations <= 1
                else "Not applicable: fewer than two hospitals have results in this wave.",
            )
        )
    if not shape.teams:
        out.append(("Between teams", "Not applicable: the surveys have no teams."))
    if shape.maturity:
        out.append(("Maturity Matrix", shape.maturity))
    if shape.stakeholders:
        out.append(("Patients and professionals", shape.stakeholders))
    return out


def _variance_blocks(var: pd.DataFrame, labels: dict[str, str], shape: Shape) -> list[dict]:
    """The variance partition (figure and table) with the levels the design has: no hospital
    columns with one organisation, no team columns without teams."""
    has_h = bool(var["vpc_hospital"].notna().any())
    has_t = bool(var["vpc_team"].notna().any())
    cols = [
        ("Scale", lambda r: labels.get(r.scale, r.scale), True),
        ("Respondents", lambda r: tables.count(r.n_respondents), True),
        ("Teams", lambda r: tables.count(r.n_teams), has_t),
        ("Hospitals", lambda r: tables.count(r.n_hospitals), has_h),
        ("Intercept", lambda r: tables.num(r.intercept), True),
        ("Between hospitals", lambda r: tables.pct(100 * r.vpc_hospital), has_h),
        ("Between teams", lambda r: tables.pct(100 * r.vpc_team), has_t),
        (
            "Converged",
            lambda r: "yes" if str(r.converged).lower() in ("true", "1") else "no",
            True,
        ),
    ]
    cols = [c for c in cols if c[2]]
    rows = [[f(r) for _, f, _ in cols] for r in var.itertuples(index=False)]
    header = [h for h, _, _ in cols]
    parts = []
    if has_h:
        parts.append("between hospitals (dark)")
    if has_t:
        parts.append("between teams within hospitals (blue)" if has_h else "between teams (blue)")
    parts.append(
        "between people within teams (light grey)"
        if has_t
        else "between people within hospitals (light grey)"
        if has_h
        else "between people (light grey)"
    )
    caption = "Share of each scale's variance " + ", ".join(parts[:-1])
    caption += (" and " if len(parts) > 1 else "") + parts[-1] + "."
    out = [
        fig_block(
            figures.variance_partition(var, labels),
            "Where the variation lies: variance partition of each scale",
            caption,
            "variance",
        ),
        table_block(
            tables.html_table(
                rows,
                header,
                cls="variance",
                numeric=set(range(1, len(header) - 1)),
            )
        ),
    ]
    if not has_h:
        out.append(
            md(
                "No variance between hospitals: "
                + (
                    "the study has one organisation, and the intercept is its average."
                    if shape.n_organisations <= 1
                    else "fewer than two hospitals have results in this wave."
                )
            )
        )
    return out


def consortium_content(res: WaveResults, study: Study) -> dict:
    """The research team's overview: every hospital named; suppressed values still blank."""
    k = study.min_group_size
    orgs = res.organisations
    ids = orgs["hospital_id"].astype(str)
    shown = orgs["hospital_name"] if "hospital_name" in orgs else ids
    names = dict(zip(ids, [clean(n) or i for n, i in zip(shown, ids, strict=True)], strict=True))
    meta = scale_meta(study, list(dict.fromkeys(res.hospitals["scale"])))
    labels = dict(zip(meta["scale"], meta["label"], strict=False))
    shape = study_shape(res, study)
    sec: dict[str, list[dict]] = {}
    # overview
    n_resp = {s: len(d) for s, d in res.responses.items() if d is not None}
    hospitals = (
        f"{len(names)} hospitals"
        if len(names) != 1
        else f"one organisation ({ident(next(iter(names.values())))})"
    )
    sec["overview"] = [
        md(
            f"For the research team only: this report names every hospital. Wave "
            f"{tx(res.wave)}: {hospitals}, "
            + ", ".join(f"{n} {WHO.get(s) or tx(s)}" for s, n in n_resp.items())
            + f". Minimum group size for reporting: {k} (values of smaller groups are blank here "
            "too)."
        )
    ]
    missing = _not_in_study(shape)
    if missing:
        sec["overview"].append(
            md(
                "What this study's data cannot show, here and in the hospitals' reports:\n\n"
                + "\n".join(f"- **{part}.** {why}" for part, why in missing)
            )
        )
    # validation
    v = res.validation or {}
    warn = pd.DataFrame(v.get("warnings", []))
    blocks = [
        md(
            f"Validation status: **{tx(v.get('status', 'unknown'))}**, "
            f"{tx(v.get('n_errors', len(v.get('errors', []))))} errors, "
            f"{tx(v.get('n_warnings', len(warn)))} warnings (each rule lists its first rows in "
            "validation.json and counts the rest)."
        )
    ]
    if not warn.empty:
        g = (
            warn.assign(count=warn.get("count", 1))
            .groupby(["file", "rule"], as_index=False)
            .agg(findings=("count", "sum"), example=("message", "first"))
        )
        blocks.append(
            table_block(
                tables.html_table(
                    [
                        [r.file, r.rule, str(r.findings), r.example]
                        for r in g.itertuples(index=False)
                    ],
                    ["File", "Rule", "Findings", "Example"],
                    cls="validation",
                    numeric={2},
                )
            )
        )
    sec["validation"] = blocks
    # variance
    if res.variance is not None and not res.variance.empty:
        var = res.variance.set_index("scale").reindex(meta["scale"]).dropna(how="all")
        var = var.reset_index()
        sec["variance"] = _variance_blocks(var, labels, shape)
    else:
        sec["variance"] = [md("The variance partition is not available for this wave.")]
    # hospitals, named (left out, heading and all, when there are not two to compare)
    sec["hospitals"] = _named_hospitals(res, meta, labels, names, k) if shape.compare else []
    # psychometrics
    sec["psychometrics"] = (
        [table_block(tables.psychometrics_table(res.scales, labels))]
        if res.scales is not None and not res.scales.empty
        else [md("Psychometrics not available.")]
    )
    # hypotheses
    h = res.hypotheses
    na = pd.DataFrame()
    if h is not None and "status" in h.columns:
        # hypotheses that cannot be tested on this study's data (``not_applicable``, reason)
        is_na = h["status"].astype(str) == "not_applicable"
        na, h = h[is_na], h[~is_na]
    if shape.hypotheses:
        sec["hypotheses"] = [md(shape.hypotheses)]
    elif h is not None and not h.empty:
        rows = [
            [
                str(r.hypothesis),
                str(r.term),
                tables.num(r.estimate, 3),
                tables.interval(r.ci_low, r.ci_high, 3),
                tables.num(r.p, 3),
                tables.num(r.q, 3),
                tables.count(r.n),
                str(r.family),
                str(r.level),
            ]
            for r in h.itertuples(index=False)
        ]
        sec["hypotheses"] = [
            md("q is the Benjamini-Hochberg adjusted p-value over all hypotheses of the wave."),
            table_block(
                tables.html_table(
                    rows,
                    [
                        "Hypothesis",
                        "Term",
                        "Estimate",
                        "95% interval",
                        "p",
                        "q",
                        "n",
                        "Family",
                        "Level",
                    ],
                    cls="hypotheses",
                    numeric={2, 4, 5, 6},
                )
            ),
        ]
    elif na.empty:
        sec["hypotheses"] = [md("No hypothesis results for this wave.")]
    else:
        sec["hypotheses"] = []
    if not na.empty:
        why = na["reason"] if "reason" in na.columns else pd.Series("", index=na.index)
        sec["hypotheses"].append(
            md(
                "Not applicable to this study's data:\n\n"
                + "\n".join(
                    f"- **{tx(hyp)}**" + (f": {tx(r)}" if clean(r) else "")
                    for hyp, r in zip(na["hypothesis"], why, strict=True)
                )
            )
        )
    return {
        "kind": "consortium",
        "title": f"FlaQuM Triangle Study: consortium report, wave {clean(res.wave)}",
        "wave": res.wave,
        "sections": sec,
    }
