"""The sections of the reports, built from the confidential view: text, tables and figures.

``hospital_content`` returns a JSON-serialisable dict (section -> list of blocks) that the
template lays out with ``flaqum.report.layout``; it contains nothing that the view does not,
so the confidentiality of a report is decided in ``confidentiality.hospital_view``.
A block is {"kind": "markdown", "text"} | {"kind": "figure", "title", "svg", "caption"} |
{"kind": "table", "html", "caption"}; a table that a text quotes has an ``id``, and a text
that quotes numbers (the summary, the conversation points) carries ``quotes`` and ``labels``
(``Quotes``): every number it writes is the exact string of a cell of one of the report's
tables (the same formatter, ``tables.num``/``signed``/``interval``), with its interval
where it has one, and the content dict lists them all under ``quotes``
(tests/test_report_numbers.py looks each one up).

Definitions the texts rely on: a scale's **% positive** is the mean of its items' % positive
(the AHRQ SOPS composite; ``confidentiality.scale_pct_positive``), an item's the share of
answers at or above the codebook's ``positive_from``; the **Maturity Matrix** comparison is
the median over hospitals of each hospital's count of core processes at baseline or above
(``confidentiality.maturity_baseline_summary``); a **patients-professionals gap** in a
conversation point is the difference of two mirrored scales' scores (``scale_gaps``), with a
95% interval from sqrt(se_a^2 + se_b^2), and is a point only where that interval excludes 0.
**Colours**: blue and orange mean "clearly higher / lower than the figure's reference line"
in every figure, decided by the interval that is drawn; the Maturity Matrix is filled or
hollow, not coloured. Each figure's text alternative states its result (``standing_text``,
``teams_alt``, ``maturity_alt``, ``stakeholders_alt``).

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
from flaqum.provenance import stamp_text
from flaqum.report import figures, frames, tables
from flaqum.report.confidentiality import (
    SIDE_LABELS,
    Z95,
    Z998,
    HospitalView,
    hospital_view,
    rules_text,
    scale_meta,
    status_text,
)
from flaqum.report.data import WaveResults
from flaqum.report.escape import clean, ident
from flaqum.report.escape import md as tx
from flaqum.report.shape import SURVEY_NAMES, Shape, study_shape
from flaqum.report.tables import num, signed, span

WHO = {"staff": "professionals", "patients": "patients and their kin"}


def md(text: str) -> dict:
    return {"kind": "markdown", "text": text}


def fig_block(fig, title: str, caption: str, key: str, alt: str | None = None) -> dict:
    """A figure; its text alternative is ``alt`` (what the figure shows: the result, computed
    from the same data) after the title, or the caption where no result is given."""
    svg = figures.to_svg(fig, alt=f"{title}. {alt or caption}", key=key)
    return {"kind": "figure", "title": title, "svg": svg, "caption": caption}


def table_block(html: str, caption: str = "", tid: str = "") -> dict:
    """A table; ``tid`` names it for the quotes of the texts (``Quotes``)."""
    block = {"kind": "table", "html": html, "caption": caption}
    if tid:
        block["id"] = tid
    return block


class Quotes:
    """The numbers a text quotes from the report's own tables, recorded as it is written.

    Each number goes into the text through ``cell`` (the exact string of one table cell, or one
    number of a cell that holds several, such as "+0.12 (0.01 to 0.23)") or ``count`` (how many
    rows of a table column hold a word, as "clearly lower"); other text with digits in it
    (wave names, a scale's label, the baseline level) through ``label``. The markdown block
    carries the records (``quotes``, ``labels``), so a test can look every quoted number up in
    the table it names (tests/test_report_numbers.py). A table is named by its block's
    ``id``, a row by the text of its first cell, a column by its header."""

    def __init__(self, section: str):
        self.section = section
        self.quotes: list[dict] = []
        self.labels: list[str] = []

    def cell(self, text: str, table: str, row, column: str) -> str:
        self.quotes.append(
            {
                "section": self.section,
                "table": table,
                "row": clean(row),
                "column": column,
                "text": text,
            }
        )
        return text

    def count(self, n: int, table: str, column: str, contains: str = "") -> str:
        """``n``, the number of rows whose cell in ``column`` contains ``contains`` (any
        non-empty cell for "")."""
        text = str(int(n))
        self.quotes.append(
            {
                "section": self.section,
                "table": table,
                "row": None,
                "column": column,
                "count": contains,
                "text": text,
            }
        )
        return text

    def label(self, text: str) -> str:
        """Text written as it is (already escaped) that is not a number from a table."""
        self.labels.append(text)
        return text

    def block(self, text: str) -> dict:
        return {**md(text), "quotes": list(self.quotes), "labels": list(self.labels)}


#: The header of the glance table's change column and of the summary's (``tables``).
_CHANGE_COL = "Change since last wave (95% interval)"


def scale_gaps(v: HospitalView) -> pd.DataFrame:
    """Per pair of mirrored scales (``HospitalView.mirrored``): both groups' scores as the
    glance table shows them, the gap (b minus a) with its 95% interval from the two scores'
    standard errors (independent samples: sqrt(se_a^2 + se_b^2)), and the consortium's gap
    (the difference of the two consortium averages)."""
    cols = ["label", "a", "b", "mean_a", "mean_b", "gap", "se", "gap_low", "gap_high"]
    if not v.mirrored:
        return pd.DataFrame(columns=[*cols, "consortium_gap", "side_a", "side_b"])
    return pd.DataFrame(_gap_rows(v))


def _gap_rows(v: HospitalView) -> list[dict]:
    """``scale_gaps``' rows, as dicts."""
    sc = {r.scale: r for r in v.scale_rows()}
    rows = []
    for p in v.mirrored:
        a, b = sc[p["a"]], sc[p["b"]]
        ok_a, ok_b = a.status == "shown", b.status == "shown"
        ma, mb = (a.mean if ok_a else np.nan), (b.mean if ok_b else np.nan)
        se = float(np.hypot(a.se, b.se)) if ok_a and ok_b else np.nan
        gap = mb - ma
        rows.append(
            {
                "label": p["label"],
                "a": p["a"],
                "b": p["b"],
                "mean_a": ma,
                "mean_b": mb,
                "gap": gap,
                "se": se,
                "gap_low": gap - Z95 * se,
                "gap_high": gap + Z95 * se,
                "consortium_gap": b.consortium_mean - a.consortium_mean,
                "side_a": clean(SIDE_LABELS.get(a.source, a.source)),
                "side_b": clean(SIDE_LABELS.get(b.source, b.source)),
            }
        )
    return rows


def _points(v: HospitalView) -> list[tuple[str, float, str, Quotes]]:
    """Every candidate conversation point: (kind, strength, text, its quotes)."""
    cands = []
    sc_compare = v.compare
    scales = v.scale_rows()
    labels = {r.scale: r.label for r in scales}
    for r in scales:
        if r.status != "shown":
            continue
        z = abs(r.mean - r.consortium_mean) / r.se if r.se else 0
        who = WHO.get(r.source, "respondents")
        if r.signal not in ("lower", "higher") or not sc_compare:
            continue
        q = Quotes("conversation")
        name = q.label(tx(r.label))
        ci = tables.interval(r.ci_low, r.ci_high)
        facts = (
            f"your score is {q.cell(num(r.mean), 'glance', r.label, 'Your score')} (95% "
            f"interval {q.cell(ci, 'glance', r.label, '95% interval')}) against a consortium "
            f"average of {q.cell(num(r.consortium_mean), 'glance', r.label, 'Consortium average')}"
            f", on a scale of {q.cell(span(r.rmin, r.rmax), 'glance', r.label, 'Range')}"
        )
        if r.signal == "lower":
            text = (
                f"**{name}** is clearly lower than in the consortium: {facts}. What do your "
                f"{who} say gets in the way?"
            )
            cands.append(("lower", z / Z998, text, q))
        else:
            text = (
                f"**{name}** is clearly higher than in the consortium: {facts}. What makes this "
                "work, and what can others learn from it?"
            )
            cands.append(("higher", 0.6 * z / Z998, text, q))
    if v.change is not None:
        for r in frames.rows(v.change):
            if r.status != "shown" or not (r.ci_high < 0 or r.ci_low > 0):
                continue
            z = abs(r.change) / r.se if r.se else 0
            q = Quotes("conversation")
            row = labels.get(r.scale, r.label)
            name = q.label(tx(row))
            prev = q.label(tx(r.previous_wave))
            chg = (
                f"a change of {q.cell(signed(r.change), 'glance', row, _CHANGE_COL)} points (95% "
                f"interval {q.cell(num(r.ci_low), 'glance', row, _CHANGE_COL)} to "
                f"{q.cell(num(r.ci_high), 'glance', row, _CHANGE_COL)})"
            )
            if r.ci_high < 0:
                text = f"**{name}** fell clearly since wave {prev}: {chg}. What changed?"
                cands.append(("decline", z / Z95, text, q))
            else:
                text = f"**{name}** rose clearly since wave {prev}: {chg}. What did you do?"
                cands.append(("rise", 0.5 * z / Z95, text, q))
    gaps = _gap_rows(v) if v.mirrored else []
    if gaps:
        d = [r for r in gaps if pd.notna(r["gap"]) and pd.notna(r["se"])]
        # a gap is a difference only where its 95% interval does not include 0
        d = [r for r in d if r["gap_low"] > 0 or r["gap_high"] < 0]
        if d:
            gap, se = (np.array([r[c] for r in d], float) for c in ("gap", "se"))
            ref = 0
            if v.compare:
                ref = np.array([r["consortium_gap"] for r in d], float)
                ref = np.where(np.isnan(ref), 0, ref)
            with np.errstate(divide="ignore", invalid="ignore"):
                far = np.abs(gap - ref) / se
            r = d[int(np.nanargmax(far))]  # idxmax: the first of the largest
            a, b = r["side_a"], r["side_b"]
            gap_col = f"Gap ({b} minus {a})"
            q = Quotes("conversation")
            more = "more" if r["gap"] > 0 else "less"
            cgap = signed(r["consortium_gap"])
            gcol = "Gap in the consortium"
            than = (
                f", where the consortium's is {q.cell(cgap, 'gaps', r['label'], gcol)}"
                if v.compare
                else ""
            )
            text = (
                f"On **{q.label(tx(r['label'].lower()))}**, your {tx(b.lower())} are {more} "
                f"positive than your {tx(a.lower())}: "
                f"{q.cell(num(r['mean_b']), 'gaps', r['label'], b)} against "
                f"{q.cell(num(r['mean_a']), 'gaps', r['label'], a)}, a gap of "
                f"{q.cell(signed(r['gap']), 'gaps', r['label'], gap_col)} (95% interval "
                + q.cell(
                    tables.interval(r["gap_low"], r["gap_high"]),
                    "gaps",
                    r["label"],
                    "95% interval of the gap",
                )
                + f"){than}. Do you recognise each other's view?"
            )
            # worth a conversation in proportion to how far it is from the consortium's gap
            ref = r["consortium_gap"] if v.compare and pd.notna(r["consortium_gap"]) else 0
            z = abs(r["gap"] - ref) / r["se"]
            cands.append(("stakeholders", 0.5 * z / Z95, text, q))
    tv = v.teams
    if tv is not None and not tv.empty:
        low: dict = {}  # per scale (in order), the names of its teams whose members disagree
        for t in frames.rows(tv[["scale", "team_name", "low_agreement"]]):
            if pd.notna(t.low_agreement) and bool(t.low_agreement) and pd.notna(t.scale):
                low.setdefault(t.scale, []).append(t.team_name)
        for sid, g in low.items():
            label = labels[sid]
            q = Quotes("conversation")
            names = q.label(", ".join(ident(t) for t in sorted(g)))
            n = q.count(
                len(g),
                f"teams_{sid}",
                tables.agreement_header(v.agreement_threshold),
                "members disagree",
            )
            text = (
                f"In {n} team{'s' if len(g) > 1 else ''} ({names}) members disagree "
                f"about **{q.label(tx(label.lower()))}**: the team average hides different "
                "experiences. Who feels differently, and why?"
            )
            cands.append(("agreement", len(g) / 2, text, q))
    mat = v.maturity
    if mat is not None and not mat.empty and v.baseline_level is not None:
        drv = [
            r
            for r in frames.rows(mat[["level", "label", "value"]])
            if r.level == "driver" and r.value < v.baseline_level
        ]
        if drv:
            r = min(drv, key=lambda r: r.value)._asdict()  # idxmin: the first of the lowest
            q = Quotes("conversation")
            text = (
                f"On the Maturity Matrix, **{q.label(tx(r['label']))}** is at level "
                f"{q.cell(num(r['value']), 'maturity', r['label'], 'Your level')}, the furthest "
                f"of your drivers from the baseline level {q.label(tx(v.baseline_level))} that "
                f"the {_whole(v)} aims to reach on all core processes by "
                f"{q.label(tx(v.ambition_year))}. Which core process comes first?"
            )
            cands.append(("maturity", (v.baseline_level - r["value"]) / 0.5, text, q))
    return cands


def _pick(cands: list, n: int) -> list:
    """The n strongest candidates, one per kind first."""
    cands = sorted(cands, key=lambda c: -c[1])
    picked, kinds = [], set()
    for c in cands:
        if c[0] not in kinds and len(picked) < n:
            picked.append(c)
            kinds.add(c[0])
    for c in cands:
        if not any(c is p for p in picked) and len(picked) < n:
            picked.append(c)
    return sorted(picked, key=lambda c: -c[1])


def conversation_records(v: HospitalView, n: int = 3) -> list[tuple[str, Quotes]]:
    """The n things most worth a conversation, at most one per kind where possible: each
    point's text with the table cells it quotes."""
    return [(c[2], c[3]) for c in _pick(_points(v), n)]


def conversation_points(v: HospitalView, n: int = 3) -> list[str]:
    """The n things most worth a conversation, at most one per kind where possible."""
    return [text for text, _ in conversation_records(v, n)]


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


def _names_list(labels) -> str:
    return ", ".join(clean(x) for x in labels)


def standing_text(v: HospitalView) -> str:
    """Where the hospital stands against the consortium, as a sentence (the glance figure's and
    the between-hospitals figure's text alternative), from the same signals as the figures."""
    shown = [r for r in v.scale_rows() if r.status == "shown"]
    n = len(shown)
    if not n:
        return "Your hospital has no score shown on any scale in this wave."
    hi = [r.label for r in shown if r.signal == "higher"]
    lo = [r.label for r in shown if r.signal == "lower"]
    parts = []
    if len(lo):
        parts.append(
            f"Your hospital is clearly lower than the consortium on {len(lo)} of {n} scales: "
            f"{_names_list(lo)}"
        )
    if len(hi):
        parts.append(
            ("clearly higher" if parts else "Your hospital is clearly higher than the consortium")
            + (f" on {len(hi)}" if parts else f" on {len(hi)} of {n} scales")
            + f": {_names_list(hi)}"
        )
    rest = n - len(hi) - len(lo)
    if parts:
        parts.append(f"within the usual range on {rest}")
        return "; ".join(parts) + "."
    return f"Your hospital is within the usual range of the consortium on all {n} scales shown."


def _glance(v: HospitalView) -> list[dict]:
    k = v.k

    def who(s):
        return WHO.get(s) or tx(s)

    resp = ", ".join(
        f"fewer than {k} {who(s)}" if n is None else (f"no {who(s)}" if n == 0 else f"{n} {who(s)}")
        for s, n in v.respondents.items()
    )
    signals = [r.signal for r in v.scale_rows() if r.status == "shown"]
    n_hi, n_lo = signals.count("higher"), signals.count("lower")
    if not v.compare:
        summary = (
            f"In wave {tx(v.wave)}, {resp} of {ident(v.hospital_name)} answered the survey. "
            + _alone(v)
        )
        return [
            md(summary),
            table_block(tables.glance_table(v.scales, v.change, k, False), tid="glance"),
        ]
    summary = (
        f"In wave {tx(v.wave)}, {resp} of {ident(v.hospital_name)} answered the survey, one of "
        f"{v.n_hospitals} hospitals in the consortium. "
    )
    if n_hi or n_lo:
        summary += (
            standing_text(v) + " In the figure, blue is clearly higher than the consortium "
            "average, orange clearly lower, and grey within the usual variation between "
            "hospitals. "
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
            "common variation. The table below gives the numbers.",
            "glance",
            alt=standing_text(v),
        ),
        table_block(tables.glance_table(v.scales, v.change, k), tid="glance"),
    ]


def _between(v: HospitalView) -> list[dict]:
    if not v.compare:
        return []  # left out, heading and all: the glance says why
    fig = figures.between_hospitals(v.scales, v.peers)
    return [
        md(
            "Each panel shows all hospitals of the consortium on one scale, from lowest to "
            "highest, with your hospital marked *you*. The other hospitals are anonymous. Scores "
            "are shrunken averages: a hospital's average is pulled slightly towards the "
            "consortium average when few people answered, so small samples do not produce "
            "extreme scores by chance. What matters is not the position in the row but whether "
            "the interval crosses the dashed consortium average."
        ),
        fig_block(
            fig,
            "Your hospital among all hospitals of the consortium",
            "Dots are hospitals' shrunken averages with 95% (thick) and 99.8% (thin) intervals, "
            "ordered from lowest to highest; the dashed line is the consortium average. Blue "
            "and orange hospitals are clearly higher or lower than the average (their 99.8% "
            "interval does not cross the line); grey ones are not.",
            "between",
            alt=standing_text(v)
            + f" Each panel shows the {int(v.scales['n_hospitals'].max())} hospitals with "
            "results, anonymous; the table below gives the consortium average, the middle half "
            "of hospitals and your score per scale.",
        ),
        table_block(
            tables.between_table(v.scales, v.k),
            "The middle half of hospitals: from the hospital a quarter of the way up the row "
            "to the one three quarters of the way up.",
            tid="between",
        ),
    ]


def teams_alt(d: pd.DataFrame, hospital_mean) -> str:
    """What a team chart shows, as a sentence (no team names: the table below has them)."""
    cols = ["status", "lo998", "hi998", "low_agreement"]
    s = [r for r in frames.rows(d[cols]) if r.status == "shown"]
    n = len(s)
    if not n:
        return "No team has enough responses to be shown."
    text = f"{n} teams shown."
    if hospital_mean is not None and pd.notna(hospital_mean):
        above = sum(r.lo998 > hospital_mean for r in s)
        below = sum(r.hi998 < hospital_mean for r in s)
        text = (
            f"Of {n} teams shown, {above} clearly above your hospital's average, {below} "
            f"clearly below and {n - above - below} within the usual variation."
        )
    low = sum(bool(r.low_agreement) for r in s if pd.notna(r.low_agreement))
    if low:
        text += f" Members disagree in {low} team{'s' if low > 1 else ''}."
    return text + " The table below names each team with its score."


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
    sc = {r.scale: r for r in v.scale_rows()}
    for sid, d in tv.groupby("scale", sort=False):
        r = sc[sid]
        hm = r.mean if r.status == "shown" else None
        fig = figures.teams(
            d, r.label, (r.rmin, r.rmax), hm, r.consortium_mean, v.agreement_threshold
        )
        out.append(md(f"### {tx(r.label)}"))
        out.append(
            fig_block(
                fig,
                f"{clean(r.label)}: your teams",
                "Each row is a team, ordered by score, with its 95% (thick) and 99.8% (thin) "
                "interval. The solid line is "
                + (
                    "your hospital, the dashed line the consortium average. "
                    if v.compare
                    else "your hospital's average. "
                )
                + "Blue or orange teams are clearly higher or lower than your hospital's average "
                "(their 99.8% interval does not cross the solid line); grey teams are not.",
                f"teams_{sid}",
                alt=teams_alt(d, hm),
            )
        )
        hidden = d[d["status"] != "shown"]
        if len(hidden):
            out.append(
                md(
                    "Not shown: "
                    + "; ".join(
                        f"{ident(t.team_name)} ({status_text(t.status, v.k)})"
                        for t in frames.rows(hidden.sort_values("team_name"))
                    )
                )
            )
        out.append(
            table_block(tables.teams_table(d, v.k, v.agreement_threshold, hm), tid=f"teams_{sid}")
        )
    return out


def maturity_alt(mat: pd.DataFrame, baseline) -> str:
    """What the Maturity Matrix chart shows, as a sentence."""
    rows = [r for r in frames.rows(mat[["level", "label", "value"]]) if pd.notna(r.value)]
    drv = [r for r in rows if r.level == "driver"]
    bb = [r for r in rows if r.level == "building_block"]
    if baseline is None:
        return f"Your level on {len(drv)} drivers and {len(bb)} building blocks."
    below = [r for r in drv if r.value < baseline]
    # in the order of sort_values("value") (numpy's quicksort of the values)
    below = [below[i] for i in np.argsort([r.value for r in below], kind="quicksort")]
    text = (
        f"Of your {len(drv)} drivers, {len(below)} are below the baseline level {clean(baseline)}"
    )
    if len(below):
        text += ": " + ", ".join(f"{clean(r.label)} ({num(r.value)})" for r in below)
    n_bb = sum(r.value < baseline for r in bb)
    return text + (
        f"; {n_bb} of {len(bb)} building blocks are below it. The table below gives each level."
    )


def _maturity(v: HospitalView) -> list[dict]:
    if v.shape is not None and v.shape.maturity:
        return [md(v.shape.maturity)]
    mat, proc = v.maturity, v.maturity_processes
    if mat is None or mat.empty or mat["value"].isna().all():
        return [md("Your hospital did not return a Maturity Matrix self-assessment in this wave.")]
    b = v.baseline_level
    out = []
    mb = v.maturity_baseline
    if b is not None and not proc.empty and mb is not None:
        half = tables.half
        n_tot = int(proc["value"].notna().sum())
        n = mb["n_processes"]
        text = (
            f"**{half(mb['own'])} of {n} core processes** are at baseline level ({tx(b)}) or "
            f"above in your self-assessment ({n_tot} assessed). The {_whole(v)}'s ambition is "
            f"a baseline level on all {n} core processes by {tx(v.ambition_year)}."
        )
        if v.compare and pd.notna(mb["consortium_median"]):
            text += (
                f" For comparison, the median hospital has {half(mb['consortium_median'])} of "
                f"{n} core processes at baseline or above (from {half(mb['consortium_min'])} to "
                f"{half(mb['consortium_max'])} over the {mb['consortium_n_hospitals']} "
                "hospitals that returned a self-assessment)."
            )
        out.append(md(text))
        out.append(
            table_block(
                tables.maturity_baseline_table(
                    mb, b, consortium=v.compare and pd.notna(mb["consortium_median"])
                ),
                tid="maturity_baseline",
            )
        )
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
            + "A hollow mark is below the baseline "
            f"level the {_whole(v)} aims for (dashed line), a filled mark at or above it.",
            "maturity",
            alt=maturity_alt(mat, b),
        )
    )
    out.append(table_block(tables.maturity_table(mat, b, median=v.compare), tid="maturity"))
    if b is not None and not proc.empty:
        below = proc[proc["value"] < b]
        if len(below):
            out.append(
                md(
                    f"The {len(below)} core processes below the baseline level are listed in "
                    "the appendix."
                )
            )
    return out


def _processes(v: HospitalView) -> list[dict]:
    """The core processes below the baseline level: an appendix (a list to work from, up to
    52 rows, which would otherwise push the body of the printed report past ten pages)."""
    if v.shape is not None and v.shape.maturity:
        return []
    b, proc = v.baseline_level, v.maturity_processes
    if proc is None:
        return []
    out = []
    if b is not None and not proc.empty:
        below = proc[proc["value"] < b]
        if len(below):
            rows = [[r.item, r.block, r.text, tables.num(r.value, 0)] for r in frames.rows(below)]
            out.append(
                md(
                    f"The {len(below)} core processes of the Maturity Matrix that your "
                    f"hospital rates below the baseline level ({tables.num(b, 0)}):"
                )
            )
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


def stakeholders_alt(st: pd.DataFrame) -> str:
    """What the stakeholders chart shows, as a sentence."""
    d = st.dropna(subset=["gap"])
    if d.empty:
        return "Too few answers on one side to compare the two groups."
    a, b = clean(st["side_a"].iloc[0]), clean(st["side_b"].iloc[0])
    more = int((d["gap"] > 0).sum())
    r = d.loc[d["gap"].abs().idxmax()]
    return (
        f"{b} are more positive than {a.lower()} on {more} of {len(d)} dimensions and less "
        f"positive on {int((d['gap'] < 0).sum())}; the largest gap is on "
        f"{clean(r['label']).lower()} ({signed(r['gap'])}). The table below gives both averages "
        "per dimension."
    )


def _stakeholders(v: HospitalView) -> list[dict]:
    if v.shape is not None and v.shape.stakeholders:
        return [md(v.shape.stakeholders)]
    st = v.stakeholders
    if st is None or st.empty:
        return [md("No mirrored patient and professional questionnaires in this wave.")]
    a, b = clean(st["side_a"].iloc[0]), clean(st["side_b"].iloc[0])
    out = [
        md(
            f"The Quickscan asks the same questions of your {tx(a.lower())} and your "
            f"{tx(b.lower())} ({tx(a)} and {tx(b)} below). Where they differ, each group sees "
            "something the other does not."
        )
    ]
    gaps = scale_gaps(v)
    if not gaps.empty:
        ga, gb = gaps["side_a"].iloc[0], gaps["side_b"].iloc[0]
        out.append(
            md(
                "On each scale both groups answer (the scores of the glance table), the gap "
                "with its 95% interval. A gap whose interval includes 0 may be chance."
            )
        )
        out.append(
            table_block(
                tables.scale_gap_table(gaps, ga, gb, v.k, consortium=v.compare),
                "The gap's interval combines the two scores' standard errors (two independent "
                "samples).",
                tid="gaps",
            )
        )
    out += [
        md("Per quality dimension (a few questions each: a finer and less certain view):"),
        fig_block(
            figures.stakeholders(st),
            "How patients and professionals see quality, per dimension",
            f"For each quality dimension, the average answer of your {a.lower()} (circle) and "
            f"your {b.lower()} (square); the grey bar is the gap between them.",
            "stakeholders",
            alt=stakeholders_alt(st),
        ),
        table_block(tables.stakeholder_table(st, v.k, consortium=v.compare), tid="stakeholders"),
    ]
    return out


def _peer_cells(v: HospitalView) -> dict[str, str]:
    """Per scale, where the hospital's score lies against the middle half (first to third
    quartile) of its peer group's scores, in words; empty (the summary shows "\u2014") where
    the view carries no peer group (``peer_group``: scale, q1, q3, status) or the group is too
    small for a scale to be shown."""
    pg = getattr(v, "peer_group", None)
    if not isinstance(pg, pd.DataFrame) or pg.empty:
        return {}
    if not {"scale", "q1", "q3", "status"} <= set(pg.columns):
        return {}
    sc = {s.scale: s for s in v.scale_rows()}
    out = {}
    for r in frames.rows(pg):
        if r.status != "shown" or r.scale not in sc or sc[r.scale].status != "shown":
            continue
        m = sc[r.scale].mean
        out[r.scale] = (
            "above the middle half"
            if m > r.q3
            else "below the middle half"
            if m < r.q1
            else "in the middle half"
        )
    return out


def _summary(v: HospitalView) -> list[dict]:
    """One page first: who answered, a headline per scale, where the hospital stands and what
    changed (the three conversation points follow in the template)."""
    out = []
    q = Quotes("summary")
    names = {s: SURVEY_NAMES.get(s, f"{s} survey").capitalize() for s in v.respondents}
    # where the register records no invitations, the table says "not recorded" and "unknown"
    out.append(
        table_block(tables.response_table(v.respondents, v.invited, names, v.k), tid="response")
    )
    text = []
    col = "Against the consortium"
    shown = v.scales[v.scales["status"] == "shown"]
    if v.compare and len(shown):
        sig = shown["signal"]
        parts = [
            f"clearly {w} than the consortium on "
            + q.count((sig == key).sum(), "summary", col, f"clearly {w}")
            for key, w in (("lower", "lower"), ("higher", "higher"))
            if (sig == key).any()
        ]
        if (sig == "common").any():
            parts.append(
                "within the usual range on "
                + q.count((sig == "common").sum(), "summary", col, "usual range")
            )
        text.append(
            f"Of the {q.count(len(shown), 'summary', col)} scales with a score, your hospital is "
            + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
            + "."
        )
    ch = v.change
    if ch is not None and not ch.empty and (ch["status"] == "shown").any():
        c = ch[ch["status"] == "shown"]
        chcol = "Change since last wave"
        prev = q.label(tx(clean(ch["previous_wave"].iloc[0])))
        n_up, n_down = int((c["ci_low"] > 0).sum()), int((c["ci_high"] < 0).sum())
        if n_up or n_down:
            up = q.count(n_up, "summary", chcol, "clear rise")
            down = q.count(n_down, "summary", chcol, "clear fall")
            text.append(
                f"Since wave {prev}, {up} scale{'s' if n_up != 1 else ''} rose clearly and "
                f"{down} fell clearly; on the others the change is within what chance alone "
                "could produce."
            )
        else:
            text.append(
                f"Since wave {prev}, no scale rose or fell clearly: every change is within what "
                "chance alone could produce."
            )
    mb = v.maturity_baseline
    if mb is not None and pd.notna(mb["own"]) and v.baseline_level is not None:
        mcol = f"Core processes at baseline level ({num(v.baseline_level, 0)}) or above"
        n = mb["n_processes"]
        t = (
            "In the Maturity Matrix self-assessment, your hospital has "
            + q.cell(f"{tables.half(mb['own'])} of {n}", "maturity_baseline", "Your hospital", mcol)
            + " core processes at the baseline level or above"
        )
        if v.compare and pd.notna(mb["consortium_median"]):
            t += (
                "; the median hospital has "
                + q.cell(
                    f"{tables.half(mb['consortium_median'])} of {n}",
                    "maturity_baseline",
                    "Median hospital",
                    mcol,
                )
                + " (range over hospitals "
                + q.cell(
                    f"{tables.half(mb['consortium_min'])} to {tables.half(mb['consortium_max'])}",
                    "maturity_baseline",
                    "Range over hospitals",
                    mcol,
                )
                + ")"
            )
        text.append(t + ".")
    if text:
        out.append(q.block(" ".join(text)))
    peers = _peer_cells(v)
    caption = "% positive: the average of the scale's questions' % positive. "
    if v.compare:
        caption += (
            "Clearly higher or lower: the 99.8% interval lies wholly on one side of the "
            "consortium average. "
        )
        if peers:
            label = clean(getattr(v, "peer_label", None) or "your peer group")
            caption += (
                f"Against peers: your score against the middle half (first to third quartile) "
                f"of {label}; \u2014 where the group is too small to be shown. "
            )
        else:
            caption += "Against peers: \u2014, no peer group in this report. "
    caption += (
        "A clear rise or fall: the change's 95% interval (in the glance table) lies wholly on "
        "one side of zero."
    )
    out.append(
        table_block(
            tables.summary_table(v.scales, v.change, v.k, consortium=v.compare, peers=peers),
            caption,
            tid="summary",
        )
    )
    return out


def _positive_text(v: HospitalView) -> str:
    """What "% positive" counts, from the codebooks' thresholds (``positive_from``)."""
    it = v.items
    if it is None or it.empty:
        return ""
    if "positive_from" not in it:  # an item table without the thresholds: the rule in words
        return (
            "- **% positive** is the share of answers at or above the positive answer set in "
            "the questionnaire's codebook (for example agree or strongly agree on a 1\u20135 "
            "scale, 8 or more on a 0\u201310 rating). Negatively worded questions are reversed "
            "first. A scale's % positive is the average of its questions' % positive (as the "
            "AHRQ SOPS surveys report their composites).\n"
        )
    parts = []
    # as groupby(["rmin", "rmax", "positive_from"], sort=False): the keys in the order they
    # come (a key with a blank left out), each with its first row's labels
    labels_of = frames.column(it["positive_labels"]) if "positive_labels" in it else None
    first: dict = {}
    for i, key in enumerate(frames.rows(it[["rmin", "rmax", "positive_from"]])):
        if not any(map(pd.isna, key)):
            first.setdefault(tuple(key), "" if labels_of is None else labels_of[i])
    for (lo, hi, pos), labels in first.items():
        part = f"{num(pos, 0)} or more on the {span(lo, hi)} questions"
        if labels:
            part += f" ({tx(labels)})"
        if part not in parts:
            parts.append(part)
    return (
        "- **% positive** is the share of answers at or above the positive answer set in the "
        "questionnaire's codebook: " + "; ".join(parts) + ". Negatively worded questions are "
        "reversed first. A scale's % positive is the average of its questions' % positive (as "
        "the AHRQ SOPS surveys report their composites), shown only where every question of "
        "the scale is.\n"
    )


def _trend_waves(v: HospitalView) -> list[str]:
    """The waves (up to this one) in which the hospital has a result on some scale."""
    t = v.trend
    if t is None or t.empty:
        return []
    return sorted(t.loc[t["status"] != "absent", "wave"].astype(str).unique())


def trend_alt(v: HospitalView, waves: list[str]) -> str:
    """What the trend figure shows, as a sentence: the waves, and since the previous wave on how
    many scales the hospital's score rose or fell clearly (the change's 95% interval wholly on
    one side of zero), from the same numbers as the table."""
    text = f"Your scores in {len(waves)} waves, {clean(waves[0])} to {clean(waves[-1])}"
    text += ", against the consortium average. " if v.compare else ". "
    ch = v.change
    shown = [r for r in frames.rows(ch) if r.status == "shown"] if ch is not None else []
    if not shown:
        return text + "No change since the previous wave can be shown."
    up = [r.label for r in shown if r.ci_low > 0]
    down = [r.label for r in shown if r.ci_high < 0]
    prev = clean(shown[0].previous_wave)
    parts = []
    if len(up):
        parts.append(f"rose clearly on {len(up)} of {len(shown)} scales ({_names_list(up)})")
    if len(down):
        parts.append(f"fell clearly on {len(down)} of {len(shown)} ({_names_list(down)})")
    if not parts:
        return text + f"Since {prev}, no score changed by more than chance alone could produce."
    return text + f"Since {prev}, your score " + " and ".join(parts) + "; the others within chance."


def peers_alt(v: HospitalView, label: str) -> str:
    """What the peers figure shows, as a sentence: on how many scales the hospital's score lies
    above, in or below the middle half of its peer group (``_peer_cells``)."""
    cells = _peer_cells(v)
    if not cells:
        return f"No scale has a score of yours to set against {clean(label)}."
    n = len(cells)
    above = [s for s, c in cells.items() if c.startswith("above")]
    below = [s for s, c in cells.items() if c.startswith("below")]
    text = (
        f"Against the middle half of {clean(label)}, your score is above it on {len(above)} of "
        f"{n} scales, in it on {n - len(above) - len(below)} and below it on {len(below)}"
    )
    if below:  # their labels (every row of each scale, as .loc by the scale index)
        names = [r.label for s in below for r in v.scale_rows() if r.scale == s]
        text += f" ({_names_list(names)})"
    return text + "."


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
            alt=trend_alt(v, waves),
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
            alt=peers_alt(v, label),
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
    signals = (
        "- **Colours.** Blue and orange mean the same in every figure: a *signal*, clearly "
        "higher (blue) or clearly lower (orange) than the reference line drawn in that figure, "
        "which its legend names. Grey is *common variation*: differences that chance"
        + (" and the usual differences between hospitals" if v.compare else "")
        + " explain. A score is a signal where its 99.8% interval (the thin bar) lies entirely "
        "on one side of the reference"
    )
    refs = []
    if v.compare:
        refs.append("the consortium average for your hospital and the other hospitals")
    if v.has_teams:
        refs.append("your hospital's average for a team")
    signals += (": " + "; ".join(refs) if refs else "") + (
        ". A change is a signal where its 95% interval lies entirely on one side of zero."
    )
    if v.maturity is not None and not v.maturity.empty:
        signals += (
            " The Maturity Matrix uses no colour: a hollow mark is below the baseline level, a "
            "filled one at or above it."
        )
    signals += "\n"
    if v.compare:
        signals += (
            "- **Your hospital** is the large dark-edged diamond; other hospitals are "
            "anonymous.\n"
            "- **No ranking.** A position in a row of hospitals is not a grade: most hospitals "
            "differ by less than their uncertainty. Look at signals and at changes over time.\n"
        )
    elif v.has_teams:
        signals += (
            "- **No ranking.** A team's position in a row of teams is not a grade: most teams "
            "differ by less than their uncertainty. Look at signals and at changes over time.\n"
        )
    return [
        md(
            "- **Scores** are averages on each questionnaire's answer scale (for example 1 to 7). "
            "Higher is always better: negatively worded questions are reversed before scoring.\n"
            + _positive_text(v)
            + "- **Intervals.** A score from a sample is uncertain. The thick bar (95% interval) "
            "and the thin bar (99.8% interval) show the range of values compatible with the "
            "answers. Two scores whose intervals overlap a lot may not really differ.\n"
            + signals
            + "- **Numbers** are rounded to two decimals (percentages to whole numbers) and "
            "written the same way in the text, the tables and the figures; a value that rounds "
            "to zero is written 0.00.\n"
            + f"- **Small groups** (fewer than {v.k} responses) are never shown, to protect the "
            "people who answered."
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
        # scale labels, the Maturity Matrix's included (never a raw id such as mm_total)
        if v.maturity is not None and not v.maturity.empty:
            labels = {**dict(zip(v.maturity["scale"], v.maturity["label"], strict=False)), **labels}
        out.append(table_block(tables.psychometrics_table(v.psychometrics, labels)))
        text = (
            "Alpha and omega measure how consistently a scale's questions measure one thing "
            "(0.70 or more is usually considered good). CFI (0.95 or more) and RMSEA (0.06 or "
            "less) say how well a one-factor model fits. For a scale of 3 items or fewer they "
            "are *not testable*: with 3 items the one-factor model is saturated (it has as many "
            "parameters as the answers have variances and covariances), so it fits perfectly "
            "whatever the answers; with 2 it cannot be estimated on its own."
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
    out[-1]["text"] += f"\n\n### This report\nMade by {tx(stamp_text())}."  # provenance.stamp
    return out


def hospital_content(v: HospitalView, top_n: int = 3) -> dict:
    labels = dict(zip(v.scales["scale"], v.scales["label"], strict=False))
    points = conversation_records(v, top_n)
    if points:
        merged = Quotes("conversation")
        for _, q in points:
            merged.quotes += q.quotes
            merged.labels += q.labels
        conv = [merged.block("\n".join(f"{i}. {p}" for i, (p, _) in enumerate(points, 1)))]
        conv[0]["points"] = [{"text": p, "quotes": q.quotes, "labels": q.labels} for p, q in points]
    else:
        conv = [
            md(
                "Nothing stands out: every score is within the usual range."
                if v.compare
                else "Nothing stands out in this wave's results."
            )
        ]
    summary = _summary(v)
    quotes = [x for b in conv + summary for x in b.get("quotes", [])]
    return {
        "kind": "hospital",
        "quotes": quotes,
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
                    # an instrument of the study that this wave did not field (shape.py)
                    + (f" {v.shape.not_fielded}" if v.shape and v.shape.not_fielded else "")
                )
            ],
            "summary": summary,
            "glance": _glance(v),
            "conversation": conv,
            "between": _between(v) + _peers(v),
            "teams": _teams(v),
            "maturity": _maturity(v),
            "stakeholders": _stakeholders(v),
            "trend": _trend(v),
            "items": _items(v),
            "processes": _processes(v),
            "reading": _reading(v),
            "methods": _methods(v, labels),
        },
    }


def build_hospital(res: WaveResults, study: Study, hospital_id: str, tables=None) -> dict:
    """The hospital's report content; ``tables``: the wave's ``confidentiality.wave_tables``
    (shared by the reports of a render batch)."""
    top = int(study.config["report"]["top_conversation_items"])  # schema default
    return hospital_content(hospital_view(res, study, hospital_id, tables), top)


# --- consortium report ----------------------------------------------------------------------


def _named_hospitals(
    res: WaveResults, meta: pd.DataFrame, labels: dict, names: dict, k: int
) -> list[dict]:
    """Every hospital by name on each main scale (figures) and on every scale (one table per
    source, so that each fits the page)."""
    from flaqum.report.confidentiality import _is_suppressed, _se

    hosp = res.hospitals.copy()
    hosp["se"] = _se(hosp)
    hidden = _is_suppressed(hosp, k)
    for c in ("eb_mean", "ci_low", "ci_high", "se", "raw_mean"):
        if c in hosp:
            hosp.loc[hidden, c] = np.nan
    hosp["name"] = hosp["hospital_id"].map(names).fillna(hosp["hospital_id"])
    blocks = []
    for m in _main(meta).itertuples(index=False):
        d = hosp[(hosp["scale"] == m.scale)].dropna(subset=["eb_mean"])
        if d.empty:
            continue
        blocks.append(
            fig_block(
                figures.named_caterpillar(d, m.label, (m.rmin, m.rmax)),
                f"{clean(m.label)}: all hospitals",
                f"Hospitals' {SHRUNKEN} averages with 95% and 99.8% intervals (the colour "
                "follows the 99.8% interval: blue above, orange below the average of "
                "hospitals); the dashed line is the average of hospitals.",
                f"named_{m.scale}",
            )
        )
    # one row per hospital id (two hospitals may share a name), ordered by name; per source,
    # tables of whole instruments with at most TABLE_SCALES scale columns each, so that each
    # fits the page
    parts = [(s, p) for s, m in _by_source(meta, hosp["scale"].unique()) for p in _pack(m)]
    for source, part in parts:
        d = hosp[hosp["scale"].isin(part["scale"])]
        wide = d.pivot_table(
            index="hospital_id", columns="scale", values="eb_mean", aggfunc="first"
        )
        wide = wide.reindex(columns=[s for s in part["scale"] if s in wide.columns])
        n = d.groupby("hospital_id")["n"].max()
        ids = _hospital_rows(names, set(d["hospital_id"]))
        rows = [
            [names.get(i, i), tables.count(n.get(i)) if n.get(i, 0) >= k else f"<{k}"]
            + ([tables.num(x) for x in wide.loc[i]] if i in wide.index else [""] * wide.shape[1])
            for i in ids
        ]
        blocks.append(
            table_block(
                tables.html_table(
                    rows,
                    ["Hospital", "n"] + [_short(labels.get(s, s)) for s in wide.columns],
                    cls="wide",
                    numeric=set(range(1, len(wide.columns) + 2)),
                    ident={0},
                ),
                f"{_who(source).capitalize()}: {SHRUNKEN} averages; n: respondents (the most "
                f"on any of these scales); blank where fewer than {k} respondents.",
            )
        )
    return blocks


TABLE_SCALES = 5  # scale columns of a table of all hospitals


def _pack(m: pd.DataFrame, most: int = TABLE_SCALES) -> list[pd.DataFrame]:
    """A source's scales in groups of whole instruments (in report order) of at most ``most``
    scales; an instrument with more is split."""
    parts, cur = [], []
    for _, g in m.groupby("instrument", sort=False):
        rows = [r for _, r in g.iterrows()]
        if cur and len(cur) + len(rows) > most:
            parts.append(cur)
            cur = []
        cur += rows
        while len(cur) > most:
            parts.append(cur[:most])
            cur = cur[most:]
    if cur:
        parts.append(cur)
    return [pd.DataFrame(p) for p in parts]


def _short(label: str) -> str:
    """A scale label without the side it belongs to ("(professionals)"), for a table of one
    source whose caption names it."""
    from flaqum.report.confidentiality import SIDE_LABELS

    for side in SIDE_LABELS.values():
        label = label.replace(f" ({side.lower()})", "")
    return label


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


# --- consortium report: the research team's sections (issue 10, item 12 and 13) ------------

SHRUNKEN = "shrunken (empirical Bayes)"
UP, DOWN = "\u2191", "\u2193"


def _p(x) -> str:
    """A p- or q-value: 3 decimals, "<0.001" below that."""
    if tables._missing(x):
        return ""
    return "<0.001" if float(x) < 0.001 else tables.num(x, 3)


def _suppressed(df: pd.DataFrame, k: int, n_cols=("n",)) -> pd.Series:
    """True where the results file marks a row suppressed or a count is below k."""
    out = pd.Series(False, index=df.index)
    if "suppressed" in df:
        out |= df["suppressed"].astype(str).str.lower().isin(["true", "1"])
    for c in n_cols:
        if c in df:
            out |= pd.to_numeric(df[c], errors="coerce") < k
    return out


def _main(meta: pd.DataFrame) -> pd.DataFrame:
    """The scales a summary table shows: totals and scales without a level (not the factors,
    drivers or building blocks below a total)."""
    return meta[meta["level"].isin(["total"]) | meta["level"].isna()]


def _by_source(meta: pd.DataFrame, scales) -> list[tuple[str, pd.DataFrame]]:
    """(source, its rows of ``meta``) for the scales given, in report order."""
    m = meta[meta["scale"].isin(list(scales))]
    return [(s, m[m["source"] == s]) for s in dict.fromkeys(m["source"])]


def _who(source: str) -> str:
    return WHO.get(source) or clean(source)


def _hospital_rows(names: dict, ids) -> list[str]:
    """Hospital ids ordered by name (two hospitals may share a name)."""
    return sorted(ids, key=lambda i: (names.get(i, i), i))


def _change_blocks(res: WaveResults, meta: pd.DataFrame, labels: dict, names: dict, k: int):
    """Each hospital's change since the previous wave (change.csv): a summary per scale and,
    per source, one column per main scale."""
    ch = res.change
    if ch is None or ch.empty:
        return []
    ch = ch.copy()
    supp = _suppressed(ch, k, ("n", "n_previous"))
    ch.loc[supp, ["change", "ci_low", "ci_high"]] = np.nan
    waves = ch["previous_wave"].dropna() if "previous_wave" in ch else pd.Series(dtype=str)
    prev = f"wave {clean(str(waves.iloc[0]))}" if len(waves) else "the previous wave"
    up = ch["ci_low"] > 0
    down = ch["ci_high"] < 0
    rows = []
    for m in meta[meta["scale"].isin(ch["scale"])].itertuples(index=False):
        d = ch[ch["scale"] == m.scale]
        shown = d["change"].notna()
        rows.append(
            [
                m.label,
                tables.count(int(shown.sum())),
                tables.count(int(up[d.index].sum())),
                tables.count(int(down[d.index].sum())),
                tables.signed(d["change"].median()),
                tables.interval(d["change"].min(), d["change"].max()),
            ]
        )
    out = [
        md(
            f"Change of each hospital's {SHRUNKEN} average from {tx(prev)} to wave "
            f"{tx(res.wave)} (multilevel/change.csv: both waves in one model, so the "
            "averages differ slightly from the tables above). A change is clear when its 95% "
            "interval excludes 0."
        ),
        table_block(
            tables.html_table(
                rows,
                [
                    "Scale",
                    "Hospitals",
                    f"Clearly up {UP}",
                    f"Clearly down {DOWN}",
                    "Median change",
                    "Range",
                ],
                cls="change-summary",
                numeric={1, 2, 3, 4, 5},
            ),
            f"Hospitals with fewer than {k} respondents in either wave are not counted.",
        ),
    ]
    main = _main(meta)
    for source, m in _by_source(main, ch["scale"]):
        cols = list(m["scale"])
        d = ch[ch["scale"].isin(cols)]
        ids = _hospital_rows(names, d["hospital_id"].unique())
        cell = {
            (r.hospital_id, r.scale): (
                ""
                if pd.isna(r.change)
                else tables.signed(r.change)
                + (f" {UP}" if r.ci_low > 0 else f" {DOWN}" if r.ci_high < 0 else "")
            )
            for r in d.itertuples(index=False)
        }
        rows = [[names.get(i, i)] + [cell.get((i, s), "") for s in cols] for i in ids]
        out.append(
            table_block(
                tables.html_table(
                    rows,
                    ["Hospital"] + [_short(labels.get(s, s)) for s in cols],
                    cls="change",
                    numeric=set(range(1, len(cols) + 1)),
                    ident={0},
                ),
                f"{_who(source).capitalize()}: change in scale points since {prev}; "
                f"{UP} / {DOWN} the 95% interval lies above / below 0 (intervals in "
                f"change.csv); blank where fewer than {k} respondents in either wave.",
            )
        )
    return out


def _consortium_trends(res: WaveResults, meta: pd.DataFrame, names: dict, k: int) -> list:
    """Trends over every wave, per hospital (issue 10, item 8): a hook for the trend stage;
    empty until its results are read here."""
    return []


def _agreement_blocks(
    res: WaveResults, meta: pd.DataFrame, labels: dict, names: dict, threshold: float, k: int
) -> list[dict]:
    """Within-team agreement (agreement.csv) per scale, and the teams below the threshold."""
    a = res.agreement
    if a is None or a.empty:
        return []
    a = a[~_suppressed(a, k) & a["rwg_j"].notna()]
    rows = []
    for m in meta[meta["scale"].isin(a["scale"])].itertuples(index=False):
        d = a[a["scale"] == m.scale]
        r, w = d["rwg_j"], d["awg"].dropna()
        rows.append(
            [
                m.label,
                tables.count(len(d)),
                tables.num(r.median()),
                tables.interval(r.quantile(0.25), r.quantile(0.75)),
                tables.count(int((r < threshold).sum())),
                tables.num(w.median()) if len(w) else "",
                tables.interval(w.quantile(0.25), w.quantile(0.75)) if len(w) else "",
            ]
        )
    out = [
        md(
            f"Agreement within teams of at least {k} respondents: rwg(j) (James, Demaree and "
            "Wolf 1984, uniform null) and a_wg (Brown and Hauenstein 2005), from "
            f"psychometrics/agreement.csv. A team with rwg(j) below {tables.num(threshold)} "
            "(config multilevel.agreement_threshold) is flagged in its hospital's report as "
            "a team whose members disagree."
        ),
        table_block(
            tables.html_table(
                rows,
                [
                    "Scale",
                    "Teams",
                    "Median rwg(j)",
                    "Middle half",
                    f"Below {tables.num(threshold)}",
                    "Median a_wg",
                    "Middle half",
                ],
                cls="agreement",
                numeric={1, 2, 3, 4, 5, 6},
            ),
            "Middle half: the 25th to the 75th percentile over teams.",
        ),
    ]
    low = a[a["rwg_j"] < threshold]
    if low.empty:
        out.append(md(f"No team is below {tables.num(threshold)} on any scale."))
        return out
    reg = res.team_register
    tname = (
        {
            (str(h), str(t)): clean(n)
            for h, t, n in zip(reg["hospital_id"], reg["team_id"], reg["team_name"], strict=True)
        }
        if reg is not None and "team_name" in reg
        else {}
    )
    rows = []
    for (h, t), d in sorted(
        low.groupby(["hospital_id", "team_id"]), key=lambda x: (names.get(x[0][0], x[0][0]), x[0])
    ):
        scales = ", ".join(
            f"{labels.get(s, s)} {_below(v, threshold)}"
            for s, v in zip(d["scale"], d["rwg_j"], strict=True)
        )
        rows.append([names.get(h, h), tname.get((h, t)) or t, tables.count(d["n"].max()), scales])
    out.append(
        table_block(
            tables.html_table(
                rows,
                [
                    "Hospital",
                    "Team",
                    "Respondents",
                    f"Scales with rwg(j) below {tables.num(threshold)}",
                ],
                cls="low-agreement",
                numeric={2},
                ident={0, 1},
            ),
            f"{len(rows)} teams below the threshold on at least one scale.",
        )
    )
    return out


def _below(x: float, threshold: float) -> str:
    """A value below a threshold with enough decimals (3 or more) to show that it is."""
    digits = 3
    while float(tables.num(x, digits).replace(tables.MINUS, "-")) >= threshold and digits < 8:
        digits += 1
    return tables.num(x, digits)


_COMPARISON = {"wave": "waves", "mirror": "professionals vs patients (mirrored Quickscan)"}


def _invariance_decision(steps: dict) -> str:
    """The level of invariance reached (Chen 2007: a step holds when CFI drops by less than
    .01)."""
    conf = steps.get("configural")
    if conf is None or pd.isna(conf.get("cfi")):
        return "not tested"

    def holds(step):
        r = steps.get(step)
        return r is not None and str(r.get("holds")).lower() in ("true", "1")

    if not holds("metric"):
        return "configural only: loadings differ"
    if not holds("scalar"):
        return "metric: loadings equal, intercepts differ (compare relations, not means)"
    return "scalar: means comparable"


def _invariance_blocks(inv: pd.DataFrame | None, labels: dict) -> list[dict]:
    if inv is None:  # not among the report's inputs
        return []
    if inv.empty:
        return [md("Measurement invariance was not tested in this wave.")]
    rows, notes = [], []
    keys = ["comparison", "source", "scale", "factors"]
    for key, d in inv.groupby(keys, sort=False, dropna=False):
        steps = {r["model"]: r for r in d.to_dict("records")}
        c = steps.get("configural", {})

        def cfi(step, steps=steps):
            r = steps.get(step)
            if r is None or pd.isna(r.get("cfi")):
                return ""
            delta = r.get("delta_cfi")
            return tables.num(r["cfi"], 3) + (
                f" ({tables.signed(delta, 3)})" if not pd.isna(delta) else ""
            )

        comp, scale = key[0], key[2]
        rows.append(
            [
                _COMPARISON.get(comp, clean(comp).replace("_", " ")),
                labels.get(scale, clean(scale)),
                clean(c.get("groups", "")),
                tables.count(c.get("n")),
                cfi("configural"),
                cfi("metric"),
                cfi("scalar"),
                tables.num(steps.get("scalar", {}).get("rmsea"), 3),
                _invariance_decision(steps),
            ]
        )
        for r in d.itertuples(index=False):
            if isinstance(r.note, str) and r.note.strip():
                notes.append(f"{_COMPARISON.get(comp, comp)}, {labels.get(scale, scale)}: {r.note}")
    out = [
        md(
            "Multi-group CFA across groups (psychometrics/invariance.csv): configural (same "
            "structure), metric (equal loadings), scalar (equal loadings and intercepts). A "
            "step holds when CFI drops by less than .01 from the step before (Chen 2007); "
            "only under scalar invariance can the groups' means be compared."
        ),
        table_block(
            tables.html_table(
                rows,
                [
                    "Across",
                    "Factor model",
                    "Groups",
                    "n",
                    "CFI configural",
                    "CFI metric (\u0394)",
                    "CFI scalar (\u0394)",
                    "RMSEA scalar",
                    "Invariance",
                ],
                cls="invariance",
                numeric={3, 4, 5, 6, 7},
            ),
        ),
    ]
    if notes:
        out.append(md("Notes:\n\n" + "\n".join(f"- {tx(n)}" for n in dict.fromkeys(notes))))
    return out


def _term_label(term: str, labels: dict) -> str:
    """``C(profession)[T.nurse]`` -> "profession: nurse (vs reference)"; a scale id -> label."""
    import re

    m = re.fullmatch(r"C\((.+?)\)\[T\.(.+)\]", str(term))
    if m:
        return f"{m.group(1)}: {m.group(2)}"
    return labels.get(term, clean(term))


def _adjusted_blocks(
    adj: pd.DataFrame | None, labels: dict, meta: pd.DataFrame, study: Study
) -> list[dict]:
    """The case-mix and cross-level models (adjusted.csv): variance explained per scale, the
    maturity effect, and the case-mix terms."""
    if adj is None:  # not among the report's inputs
        return []
    if adj.empty:
        return [
            md(
                "No case-mix or cross-level model was fitted in this wave (config "
                "multilevel.covariates, multilevel.cross_level_predictor)."
            )
        ]
    order = [s for s in meta["scale"] if s in set(adj["scale"])]
    first = adj.drop_duplicates(["scale", "model"]).set_index(["scale", "model"])
    cl = adj[(adj["model"] == "cross_level")]
    predictor = [t for t in cl["term"].unique() if t != "Intercept" and not str(t).startswith("C(")]
    pred = predictor[0] if predictor else None
    rows = []
    for s in order:

        def get(model, col, s=s):
            return first[col].get((s, model), np.nan) if (s, model) in first.index else np.nan

        eff = cl[(cl["scale"] == s) & (cl["term"] == pred)] if pred else cl.iloc[0:0]
        e = eff.iloc[0] if len(eff) else None
        rows.append(
            [
                labels.get(s, s),
                tables.count(
                    get("casemix", "n_respondents")
                    if not pd.isna(get("casemix", "n_respondents"))
                    else get("cross_level", "n_respondents")
                ),
                tables.pct(100 * get("casemix", "r2_hospital")),
                tables.pct(100 * get("casemix", "r2_team")),
                tables.signed(e["estimate"], 3) if e is not None else "",
                tables.interval(e["ci_low"], e["ci_high"], 3) if e is not None else "",
                _p(e["p"]) if e is not None else "",
                tables.pct(100 * get("cross_level", "r2_hospital")),
            ]
        )
    pm = scale_meta(study, [pred]) if pred else pd.DataFrame()
    pl = str(pm["label"].iloc[0]) if not pm.empty else (pred or "the maturity score")
    out = [
        md(
            "Case-mix-adjusted models add the respondents' case-mix covariates (config "
            "multilevel.covariates) to the variance model; the cross-level model adds the "
            f"hospital's {tx(pl)} as well (multilevel/adjusted.csv). Variance explained: the "
            "share of the between-hospital (or between-team) variance of variance.csv that "
            "the model accounts for (negative when the covariates explain nothing and the "
            "estimate moves by chance). These are adjustments of the model, not of the "
            f"{SHRUNKEN} averages shown elsewhere in this report."
        ),
        table_block(
            tables.html_table(
                rows,
                [
                    "Scale",
                    "n",
                    "Case-mix: between hospitals explained",
                    "between teams explained",
                    f"Cross-level: {pl} per point",
                    "95% interval",
                    "p",
                    "between hospitals explained",
                ],
                cls="adjusted",
                numeric={1, 2, 3, 4, 5, 6, 7},
            ),
            "Estimates in scale points per point of the predictor; p two-sided (normal).",
        ),
    ]
    cm = adj[(adj["model"] == "casemix") & (adj["term"] != "Intercept")]
    if not cm.empty:
        terms = list(dict.fromkeys(cm["term"]))
        cell = {
            (
                r.scale,
                r.term,
            ): f"{tables.signed(r.estimate)} ({tables.interval(r.ci_low, r.ci_high)})"
            for r in cm.itertuples(index=False)
        }
        rows = [
            [labels.get(s, s)] + [cell.get((s, t), "") for t in terms]
            for s in order
            if any((s, t) in cell for t in terms)
        ]
        out.append(
            table_block(
                tables.html_table(
                    rows,
                    ["Scale"] + [_term_label(t, labels) for t in terms],
                    cls="casemix",
                    numeric=set(range(1, len(terms) + 1)),
                ),
                "Case-mix model: each category against the reference category (the first in "
                "alphabetical order), in scale points with its 95% interval.",
            )
        )
    return out


_FIT = {"plain": "plain", "plausible_values": "plausible values"}
_LOG_LINK = {"poisson": "rate ratio", "negative_binomial": "rate ratio", "binomial": "odds ratio"}


def _estimate_scale(doc: dict, term: str, labels: dict) -> str:
    """What the estimate measures, e.g. "log rate ratio per point of Team collaboration"."""
    unit = "SD" if doc.get("standardize") else "point"
    per = f"per {unit} of {labels.get(term, clean(term))}"
    family = str(doc.get("family", ""))
    if family in _LOG_LINK:
        return f"log {_LOG_LINK[family]} {per}"
    return f"difference in the outcome {per}"


def _se_text(doc: dict, est: dict, fit: str) -> str:
    corr = doc.get("correction") or {}
    if fit == "plausible_values":
        pv = doc.get("plausible_values") or {}
        label = f"{clean(pv.get('combined_by', 'Rubin'))}"
    else:
        label = clean(corr.get("label") or doc.get("se_type") or "")
    df = est.get("df")
    if df is None:
        df = (corr.get("df") or {}).get(est.get("term"))
    if df is not None and not pd.isna(df) and np.isfinite(float(df)):
        label += f"; df {tables.num(df, 1)}"
    return label


def _hypothesis_rows(docs: list[dict], labels: dict) -> tuple[list[list[str]], list[str]]:
    rows, described = [], []
    for doc in sorted(docs, key=lambda d: str(d.get("id"))):
        if str(doc.get("status", "fitted")) == "not_applicable":
            continue
        described.append(
            f"- **{tx(doc.get('id'))}** ({tx(doc.get('level', ''))} level, "
            f"{tx(doc.get('family', ''))}): {tx(doc.get('description', ''))}"
        )
        family = str(doc.get("family", ""))
        fits = [("plain", doc.get("estimates") or [])]
        pv = doc.get("plausible_values") or {}
        if pv.get("estimates"):
            fits.append(("plausible_values", pv["estimates"]))
        n = tables.count(doc.get("n"))
        if doc.get("n_clusters"):
            n += f" ({tables.count(doc['n_clusters'])} clusters)"
        for fit, ests in fits:
            for e in ests:
                if not e.get("focal"):
                    continue
                effect = ""
                if family in _LOG_LINK and e.get("exp_estimate") is not None:
                    effect = (
                        f"{_LOG_LINK[family]} {tables.num(e['exp_estimate'], 2)} "
                        f"({tables.interval(e.get('exp_ci_low'), e.get('exp_ci_high'), 2)})"
                    )
                rows.append(
                    [
                        clean(doc.get("id")),
                        _FIT.get(fit, clean(fit)),
                        _estimate_scale(doc, e.get("term"), labels),
                        f"{tables.num(e.get('estimate'), 3)} "
                        f"({tables.interval(e.get('ci_low'), e.get('ci_high'), 3)})",
                        effect,
                        _p(e.get("p")),
                        _p(e.get("q")),
                        n,
                        _se_text(doc, e, fit),
                    ]
                )
    return rows, described


def _hypothesis_blocks(res: WaveResults, h: pd.DataFrame, labels: dict) -> list[dict]:
    """One row per hypothesis, focal term and fit, readable without summary.csv: the
    estimate's scale, the exponentiated effect of a log-link model, p and q, n and the SE."""
    docs = res.research.get("hypothesis_results") or []
    header = [
        "Hypothesis",
        "Fit",
        "Estimate on the scale of",
        "Estimate (95% interval)",
        "Effect (95% interval)",
        "p",
        "q",
        "n",
        "Standard error",
    ]
    if docs:
        rows, described = _hypothesis_rows(docs, labels)
    else:  # summary.csv only (no JSON documents given)
        described = []
        rows = [
            [
                clean(r.hypothesis),
                _FIT.get(str(getattr(r, "fit", "plain")), clean(getattr(r, "fit", ""))),
                f"{clean(r.family)} model, per point of {labels.get(r.term, clean(r.term))}",
                f"{tables.num(r.estimate, 3)} ({tables.interval(r.ci_low, r.ci_high, 3)})",
                "",
                _p(r.p),
                _p(r.q),
                tables.count(r.n),
                "",
            ]
            for r in h.itertuples(index=False)
        ]
    if not rows:
        return []
    out = [
        md(
            "Each hypothesis of config/hypotheses/, fitted twice where its predictors are "
            "estimated scores: **plain** (the scores as point values) and **plausible values** "
            "(posterior draws of the scores, combined by Rubin's rules, so their uncertainty is "
            "carried into the estimate). The estimate is on the model's scale; for count and "
            "binomial models the effect column gives it exponentiated (a rate or odds ratio per "
            "point of the predictor). q is the Benjamini-Hochberg adjusted p over all "
            "hypotheses of the wave."
        ),
        table_block(
            # only p and q are kept on one line: the other cells may wrap, so the table fits
            tables.html_table(rows, header, cls="hypotheses", numeric={5, 6}),
            "From results/<wave>/hypotheses/<id>.json; n counts the units of the model "
            "(clusters: hospitals, for team-level models).",
        ),
    ]
    if described:
        out.append(md("The hypotheses:\n\n" + "\n".join(described)))
    return out


def _funnel_blocks(res: WaveResults, names: dict) -> list[dict]:
    """Funnel plots of the outcome ratios (funnel.csv) and the hospitals outside the limits."""
    from flaqum.funnel import INDICATORS, curves

    f = res.research.get("funnel")
    if f is None or f.empty:
        return []
    out = [
        md(
            "Outcome ratios between hospitals against their precision (Spiegelhalter 2005), "
            "from funnel.csv: 95% (dashed) and 99.8% (solid) control limits around the "
            "target. Where the hospitals vary more than chance allows (dispersion ratio phi "
            "above 1, from 10% winsorised z-scores) the limits are widened by the "
            "between-hospital variance tau\u00b2 (additive random effects, as FunnelPlotR "
            "does); otherwise they are exact Poisson limits. Blue: above the upper limit; "
            "orange: below the lower limit (filled: 99.8%, open: 95% only)."
        )
    ]
    outside = []
    for ind in INDICATORS:
        d = f[f["indicator"] == ind.id]
        if d.empty:
            continue
        d = d.assign(name=d["hospital_id"].map(names).fillna(d["hospital_id"]))
        c = curves(d, ind)
        r = d.iloc[0]
        how = (
            f"overdispersion-adjusted limits (phi {tables.num(r['phi'])}, "
            f"tau\u00b2 {tables.num(r['tau2'], 4)})"
            if bool(str(r["overdispersed"]).lower() in ("true", "1"))
            else f"Poisson limits (phi {tables.num(r['phi'])}: no overdispersion)"
        )
        n_out = int((d["signal"] != "within").sum())
        n998 = int(d["signal"].str.endswith("99.8%").sum())
        out.append(
            fig_block(
                figures.funnel(d, c, ind),
                f"Funnel plot: {ind.label}",
                f"{len(d)} hospitals; target {tables.num(r['target'], 2)}; {how}; "
                f"{n_out} outside the 95% limits, {n998} outside the 99.8% limits.",
                f"funnel_{ind.id}",
            )
        )
        for x in d[d["signal"] != "within"].itertuples(index=False):
            outside.append((ind, x))
    if outside:
        rows = [
            [
                ind.label,
                names.get(x.hospital_id, x.hospital_id),
                tables.count(x.observed),
                tables.num(x.expected, 1) if ind.kind == "ratio" else tables.count(x.denominator),
                tables.num(x.value, 2),
                tables.interval(x.ll95, x.ul95, 2),
                tables.interval(x.ll998, x.ul998, 2),
                x.signal,
            ]
            for ind, x in sorted(outside, key=lambda t: (t[0].id, names.get(t[1].hospital_id, "")))
        ]
        out.append(
            table_block(
                tables.html_table(
                    rows,
                    [
                        "Indicator",
                        "Hospital",
                        "Observed",
                        "Expected / patient days",
                        "Value",
                        "95% limits",
                        "99.8% limits",
                        "Where",
                    ],
                    cls="funnel-outside",
                    numeric={2, 3, 4, 5, 6},
                    ident={1},
                ),
                "Hospitals outside the limits used (limits at the hospital's own precision).",
            )
        )
    else:
        out.append(md("No hospital lies outside the 95% limits."))
    n_missing = int(f["n_missing"].max()) if "n_missing" in f else 0
    if n_missing:
        out.append(md(f"{n_missing} hospitals without a value were left out of a funnel."))
    return out


def _planning_blocks(res: WaveResults, labels: dict, meta: pd.DataFrame) -> list[dict]:
    """Respondents per team for a reliable team mean, and the change a hospital's next wave
    could detect (planning.csv, planning_hospitals.csv)."""
    p = res.research.get("planning")
    ph = res.research.get("planning_hospitals")
    if p is None or p.empty:
        return []
    mdc = (
        ph.dropna(subset=["mdc"]).groupby("scale")["mdc"]
        if ph is not None and not ph.empty
        else None
    )
    order = [s for s in meta["scale"] if s in set(p["scale"])]
    p = p.set_index("scale")
    rows = []
    for s in order:
        r = p.loc[s]
        m = mdc.get_group(s) if mdc is not None and s in mdc.groups else pd.Series(dtype=float)
        rows.append(
            [
                labels.get(s, s),
                tables.num(r["icc1"]),
                tables.num(r["icc2"]),
                tables.num(r["mean_team_size"], 1),
                tables.count(r["respondents_70"]),
                tables.pct(100 * r["teams_reaching_70"]),
                tables.count(r["respondents_80"]),
                tables.pct(100 * r["teams_reaching_80"]),
                tables.num(m.median()) if len(m) else "",
                tables.interval(m.min(), m.max()) if len(m) else "",
            ]
        )
    return [
        md(
            "How many respondents a team needs for a reliable team average, and how large a "
            "change in a hospital's average the next wave could detect. Respondents per team: "
            "Spearman-Brown from this wave's ICC(1) (Bliese 2000), k = R (1 \u2212 ICC1) / "
            "(ICC1 (1 \u2212 R)) for a reliability R of .70 and .80, rounded up. Detectable "
            "change: MDC = (z(.975) + z(.80)) \u221a(SE_now\u00b2 + "
            "SE_next\u00b2) = 3.96 SE for a two-sided test at 5% with 80% power, "
            f"SE the standard error of the hospital's {SHRUNKEN} average this wave and the next "
            "wave assumed to have the same number of respondents. Per hospital in "
            "planning_hospitals.csv."
        ),
        table_block(
            tables.html_table(
                rows,
                [
                    "Scale",
                    "ICC(1)",
                    "ICC(2) now",
                    "Mean team size",
                    "Per team for .70",
                    "Teams there now",
                    "Per team for .80",
                    "Teams there now",
                    "Detectable change: median",
                    "range over hospitals",
                ],
                cls="planning",
                numeric=set(range(1, 10)),
            ),
            "Teams there now: this wave's teams with at least that many respondents. "
            "Detectable change in scale points.",
        ),
    ]


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
    sec["overview"].append(md(f"Made by {tx(stamp_text())}."))  # provenance.stamp
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
    # change since the previous wave, and (a hook) trends over every wave
    sec["change"] = _change_blocks(res, meta, labels, names, k)
    sec["trends"] = _consortium_trends(res, meta, names, k)
    # case-mix-adjusted and cross-level models
    sec["adjusted"] = _adjusted_blocks(res.research.get("adjusted"), labels, meta, study)
    # psychometrics
    all_labels = labels
    if res.scales is not None and "scale" in res.scales:
        every = scale_meta(study, list(dict.fromkeys(res.scales["scale"])))
        if not every.empty:
            all_labels = {**dict(zip(every["scale"], every["label"], strict=True)), **labels}
    sec["psychometrics"] = (
        [table_block(tables.psychometrics_table(res.scales, all_labels))]
        if res.scales is not None and not res.scales.empty
        else [md("Psychometrics not available.")]
    )
    sec["invariance"] = _invariance_blocks(res.research.get("invariance"), labels)
    threshold = float(study.config["multilevel"]["agreement_threshold"])  # schema default
    sec["agreement"] = _agreement_blocks(res, meta, labels, names, threshold, k)
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
        sec["hypotheses"] = _hypothesis_blocks(res, h, all_labels)
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
    # outcomes between hospitals, and planning the next wave
    sec["funnel"] = _funnel_blocks(res, names) if shape.compare else []
    sec["planning"] = _planning_blocks(res, labels, meta)
    return {
        "kind": "consortium",
        "title": f"FlaQuM Triangle Study: consortium report, wave {clean(res.wave)}",
        "wave": res.wave,
        "sections": sec,
    }
