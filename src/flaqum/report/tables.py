"""Report tables: formatted from the confidential view, written as plain HTML tables.

Blank cells carry the reason (for instance "fewer than 5 responses") as text, never a number
hidden by styling. Numbers are formatted for readers: means with 2 decimals, percentages whole,
one minus sign throughout (U+2212, as matplotlib writes on the figures' axes) and never a
negative zero (a value that rounds to zero is written "0.00"). Every cell is escaped here
(``escape.html``); cells that hold a name are marked for the confidentiality scan (``ident``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flaqum.report import frames
from flaqum.report.escape import IDENT_CLASS
from flaqum.report.escape import html as esc

MINUS = "\u2212"


def _missing(x) -> bool:
    if isinstance(x, float):  # a float (numpy's too) is missing where it is NaN
        return math.isnan(x)
    return x is None or bool(pd.isna(x))


def num(x, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, a true minus sign, and no "-0.00"."""
    if _missing(x):
        return ""
    s = f"{float(x):.{digits}f}"
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s.replace("-", MINUS)


def signed(x, digits: int = 2) -> str:
    """As ``num``, with "+" before a positive value."""
    s = num(x, digits)
    return "+" + s if s and not s.startswith(MINUS) and float(s) != 0 else s


def interval(lo, hi, digits: int = 2) -> str:
    if _missing(lo) or _missing(hi):
        return ""
    return f"{num(lo, digits)} to {num(hi, digits)}"


def pct(x) -> str:
    return "" if _missing(x) else f"{num(x, 0)}%"


def count(x) -> str:
    return "" if _missing(x) else num(int(x), 0)


def span(lo, hi) -> str:
    """A response range, "1\u20137"."""
    return f"{num(lo, 0)}\u2013{num(hi, 0)}"


def _by_scale(df: pd.DataFrame) -> dict:
    """``df.set_index("scale").to_dict("index")``: each row's other values (Python scalars) by
    its scale, read from its rows (``frames.rows``) instead of an index and a dict per row."""
    names = [str(c) for c in df.columns]
    at = names.index("scale")
    out: dict = {}
    for r in frames.rows(df):
        key = r[at]
        if key in out:
            raise ValueError("DataFrame index must be unique for orient='index'.")
        out[key] = {c: x for i, (c, x) in enumerate(zip(names, r, strict=True)) if i != at}
    return out


def html_table(
    rows: list[list[str]],
    header: list[str],
    caption: str = "",
    cls: str = "",
    row_classes: list[str] | None = None,
    numeric: set[int] | None = None,
    ident: set[int] | None = None,
) -> str:
    """A table of already formatted strings (escaped here). Columns in ``ident`` hold names
    (hospitals, teams): their text is marked ``<span class="ident">`` for the scan."""
    numeric, ident = numeric or set(), ident or set()
    out = [f'<table class="report-table {esc(cls)}">']
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>"
    )
    for i, r in enumerate(rows):
        rc = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = []
        for j, c in enumerate(r):
            text = esc(c)
            if j in ident and text:
                text = f'<span class="{IDENT_CLASS}">{text}</span>'
            cells.append(f'<td class="num">{text}</td>' if j in numeric else f"<td>{text}</td>")
        out.append(f"<tr{rc}>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


SIGNAL_WORDS = {
    "higher": "clearly higher than the consortium",
    "lower": "clearly lower than the consortium",
    "common": "usual range",
    "": "",
}


def change_word(c: dict | None) -> str:
    """A change's direction as its 95% interval decides it (the trend figure's colours)."""
    if not c or c.get("status") != "shown" or _missing(c.get("change")):
        return ""
    if c["ci_low"] > 0:
        return "clear rise"
    if c["ci_high"] < 0:
        return "clear fall"
    return "no clear change"


def change_text(c: dict | None, k: int, none_now: bool = False, with_interval: bool = True) -> str:
    """The change since the previous wave as the tables write it: "+0.12 (0.01 to 0.23)"."""
    if none_now:
        return "no respondents this wave"
    if c is None:
        return "not measured before"
    if c["status"] != "shown":
        return f"fewer than {k} responses"
    if not with_interval:  # the summary: the change, and its direction where it is clear
        word = change_word(c)
        return signed(c["change"]) + (f" ({word})" if word != "no clear change" else "")
    return f"{signed(c['change'])} ({interval(c['ci_low'], c['ci_high'])})"


def glance_table(
    scales: pd.DataFrame, change: pd.DataFrame | None, k: int, consortium: bool = True
) -> str:
    """The hospital's score on each scale, with the consortium's average and the comparison
    (``consortium=False``: without those two columns, for a hospital with no others to be
    compared with), and the change since the previous wave."""
    ch = {} if change is None else _by_scale(change)
    rows, classes = [], []
    for r in frames.rows(scales):
        c = ch.get(r.scale)
        none_now = bool(getattr(r, "no_response", False))
        change_txt = change_text(c, k, none_now)
        if r.status != "shown":
            rows.append(
                [
                    r.label,
                    span(r.rmin, r.rmax),
                    "no responses this wave" if none_now else f"fewer than {k} responses",
                    "",
                    "",
                    num(r.consortium_mean),
                    "",
                    change_txt,
                ]
            )
            classes.append("suppressed")
            continue
        rows.append(
            [
                r.label,
                span(r.rmin, r.rmax),
                count(r.n),
                num(r.mean),
                interval(r.ci_low, r.ci_high),
                num(r.consortium_mean),
                SIGNAL_WORDS[r.signal],
                change_txt,
            ]
        )
        classes.append(f"signal-{r.signal}")
    header = [
        "Scale",
        "Range",
        "Respondents",
        "Your score",
        "95% interval",
        "Consortium average",
        "Compared with the consortium",
        "Change since last wave (95% interval)",
    ]
    numeric = {2, 3, 4, 5}
    if not consortium:
        keep = [0, 1, 2, 3, 4, 7]
        rows = [[r[j] for j in keep] for r in rows]
        header = [header[j] for j in keep]
        classes = ["suppressed" if c == "suppressed" else "" for c in classes]
        numeric = {2, 3, 4}
    return html_table(rows, header, cls="glance", row_classes=classes, numeric=numeric)


def agreement_header(threshold: float) -> str:
    return f"Agreement rwg (below {num(threshold)}: members disagree)"


def teams_table(tv: pd.DataFrame, k: int, threshold: float, hospital_mean=None) -> str:
    """The teams of one scale: score, 95% and 99.8% interval, and (with ``hospital_mean``)
    how the team compares with the hospital's average, decided as the chart colours it (the
    99.8% interval wholly above or below)."""
    from pandas.core.sorting import nargsort

    from flaqum.report.confidentiality import status_text

    compare = not _missing(hospital_mean)
    rows, classes = [], []
    every = list(frames.rows(tv))
    # the shown teams by score, highest first, as sort_values("mean", ascending=False) orders
    # them (the same nargsort); the others by name (pandas' own sort where there are two)
    shown = [r for r in every if r.status == "shown"]
    order = nargsort(np.array([r.mean for r in shown], float), ascending=False)
    shown = [shown[i] for i in order]
    hidden = [r for r in every if r.status != "shown"]
    if len(hidden) > 1:
        hidden = list(frames.rows(tv[tv["status"] != "shown"].sort_values("team_name")))
    for r in shown:
        agree = num(r.rwg_j)
        if r.low_agreement:
            agree += " (members disagree)"
        row = [r.team_name, count(r.n), num(r.mean), interval(r.ci_low, r.ci_high)]
        row.append(interval(r.lo998, r.hi998))
        if compare:
            row.append(
                "clearly higher"
                if r.lo998 > hospital_mean
                else "clearly lower"
                if r.hi998 < hospital_mean
                else "usual range"
            )
        rows.append(row + [agree])
        # no colour (orange means "clearly lower" in every report): the words say it
        classes.append("disagree" if r.low_agreement else "")
    width = 7 if compare else 6
    for r in hidden:
        rows.append([r.team_name, status_text(r.status, k)] + [""] * (width - 2))
        classes.append("suppressed")
    header = ["Team", "Respondents", "Team score", "95% interval", "99.8% interval"]
    if compare:
        header.append("Compared with your hospital")
    return html_table(
        rows,
        header + [agreement_header(threshold)],
        cls="teams",
        row_classes=classes,
        numeric={1, 2, 3, 4},
        ident={0},
    )


def items_table(items: pd.DataFrame, k: int, consortium: bool = True) -> str:
    """One row per question; ``consortium=False`` leaves out the consortium's % positive."""
    rows, classes = [], []
    for r in frames.rows(items):
        text = f"{r.item}{' (r)' if r.reverse else ''}: {r.text}"
        if r.status != "shown":
            rows.append(
                [text, f"fewer than {k} responses", "", "", "", pct(r.consortium_pct_positive)]
            )
            classes.append("suppressed")
        else:
            rows.append(
                [
                    text,
                    count(r.n),
                    num(r.mean),
                    pct(r.pct_positive),
                    pct(r.pct_missing),
                    pct(r.consortium_pct_positive),
                ]
            )
            classes.append("")
    header = ["Item", "Answers", "Average", "% positive", "% missing", "Consortium % positive"]
    if not consortium:
        rows, header = [r[:5] for r in rows], header[:5]
    return html_table(
        rows,
        header,
        cls="items",
        row_classes=classes,
        numeric=set(range(1, len(header))),
    )


def stakeholder_table(st: pd.DataFrame, k: int, consortium: bool = True) -> str:
    """Both sides per dimension and the gap; ``consortium=False`` leaves out the consortium's
    gap."""
    a, b = st["side_a"].iloc[0], st["side_b"].iloc[0]
    rows = []
    for r in frames.rows(st):
        rows.append(
            [
                r.label,
                num(r.mean_a) or f"fewer than {k} responses",
                num(r.mean_b) or f"fewer than {k} responses",
                signed(r.gap),
                signed(r.consortium_gap),
            ]
        )
    header = ["Dimension", a, b, f"Gap ({b} minus {a})", "Gap in the consortium"]
    if not consortium:
        rows, header = [r[:4] for r in rows], header[:4]
    return html_table(
        rows,
        header,
        cls="stakeholders",
        numeric=set(range(1, len(header))),
    )


def maturity_table(mat: pd.DataFrame, baseline, median: bool = True) -> str:
    """Drivers and building blocks; ``median=False`` leaves out the consortium median."""
    rows, classes = [], []
    for r in frames.rows(mat[mat["level"].isin(["total", "driver", "building_block"])]):
        lab = r.label if r.level != "building_block" else "\u2003" + r.label
        below = baseline is not None and pd.notna(r.value) and r.value < baseline
        rows.append(
            [
                lab,
                num(r.value),
                num(r.consortium_median),
                "below baseline" if below else ("at or above baseline" if baseline else ""),
            ]
        )
        classes.append(
            ("driver " if r.level != "building_block" else "") + ("below-baseline" if below else "")
        )
    header = [
        "Driver / building block",
        "Your level",
        "Consortium median",
        "Against the baseline level",
    ]
    numeric = {1, 2}
    if not median:
        rows = [[r[0], r[1], r[3]] for r in rows]
        header, numeric = [header[0], header[1], header[3]], {1}
    return html_table(rows, header, cls="maturity", row_classes=classes, numeric=numeric)


#: A one-factor model of three items has as many parameters as its variances and covariances:
#: it fits perfectly by construction, so CFI and RMSEA say nothing about it (with two items it
#: is not identified at all).
NOT_TESTABLE = "not testable (3 items: the one-factor model is saturated)"
_FIT = ("cfi", "rmsea")


def psychometrics_table(psy: pd.DataFrame, labels: dict[str, str]) -> str:
    cols = [
        ("alpha", "Alpha", 2),
        ("omega", "Omega", 2),
        ("cfi", "CFI", 2),
        ("rmsea", "RMSEA", 3),
        ("icc1", "ICC(1)", 2),
        ("icc2", "ICC(2)", 2),
        ("rwg_j_median", "Median rwg", 2),
    ]
    # a statistic the design cannot give (ICC and rwg without teams) is left out, not blank
    cols = [c for c in cols if c[0] in psy.columns and psy[c[0]].notna().any()]
    rows = []
    # each row as a dict of the values iterrows' Series would hold (numbers as Python scalars)
    for r in psy.to_dict("records"):
        rows.append(
            [
                labels.get(r["scale"], r["scale"]),
                count(r.get("n_respondents")),
                count(r.get("n_items")),
            ]
            + [
                "not testable"
                if c in _FIT and not _missing(r.get("n_items")) and int(r["n_items"]) <= 3
                else num(r[c], d)
                for c, _, d in cols
            ]
        )
    return html_table(
        rows,
        ["Scale", "Respondents", "Items"] + [h for _, h, _ in cols],
        cls="psychometrics",
        numeric=set(range(1, 3 + len(cols))),
    )


def _with_interval(value: str, lo, hi) -> str:
    iv = interval(lo, hi)
    return f"{value} ({iv})" if value and iv else value


def _nb(wave) -> str:
    """A wave name that does not break at its hyphen ("2024-1"): a non-breaking hyphen."""
    return str(wave).replace("-", "\u2011")


def _trend_own(r, k: int) -> list[str]:
    """A trend row's respondents and score (95% interval), or why there is none."""
    if r.status == "shown":
        return [count(r.n), _with_interval(num(r.mean), r.ci_low, r.ci_high)]
    if r.status == "absent":
        return ["did not take part", ""]
    return [f"fewer than {k} responses", ""]


def _trend_change(r, k: int) -> str:
    if _missing(r.previous_wave) or r.status == "absent":
        return ""
    if r.change_status == "shown" and not _missing(r.change):
        return f"{signed(r.change)} ({interval(r.change_ci_low, r.change_ci_high)})"
    return f"fewer than {k} responses"


def trend_table_compact(trend: pd.DataFrame, k: int, consortium: bool = True) -> str:
    """The trend table of a hospital with two waves, one row per scale (half the rows of the
    long table, so that it prints on less than half a page): the score with its 95% interval
    in each wave (the respondents are in the glance table), this wave's consortium average
    with its interval (``consortium=False``: without it), and the change since the earlier
    wave with its interval (as in the glance table)."""
    first, last = sorted(trend["wave"].astype(str).unique())
    rows, classes = [], []
    groups = {}  # the rows of each scale, as groupby("scale", sort=False) gives them
    for r in frames.rows(trend):
        if not _missing(r.scale):
            groups.setdefault(r.scale, []).append(r)
    for d in groups.values():
        by = {str(r.wave): r for r in d}
        row, shown = [d[0].label], True
        for w in (first, last):
            r = by.get(w)
            if r is None:
                row.append("did not take part")
                shown = False
                continue
            n, score = _trend_own(r, k)
            row.append(score or n)  # the score, or why there is none
            shown &= r.status == "shown"
        r = by.get(last)
        if consortium:
            row.append(
                ""
                if r is None
                else _with_interval(
                    num(r.consortium_mean), r.consortium_ci_low, r.consortium_ci_high
                )
            )
        row.append("" if r is None else _trend_change(r, k))
        rows.append(row)
        classes.append("" if shown else "suppressed")
    header = [
        "Scale",
        f"{_nb(first)}: your score (95% interval)",
        f"{_nb(last)}: your score (95% interval)",
        *([f"{_nb(last)}: consortium average (95% interval)"] if consortium else []),
        f"Change since {_nb(first)} (95% interval)",
    ]
    numeric = {1, 2, 3} if consortium else {1, 2}
    return html_table(rows, header, cls="trend", row_classes=classes, numeric=numeric)


def trend_table(trend: pd.DataFrame, k: int, consortium: bool = True) -> str:
    """The numbers of the trend figure: per scale and wave, the hospital's respondents, score
    with its 95% interval, the consortium's average with its interval (``consortium=False``:
    without it), and the change since the wave before with its interval (this wave's as in the
    glance table). A scale's name is written on its first row. With two waves, one row per
    scale (``trend_table_compact``)."""
    if trend["wave"].astype(str).nunique() == 2:
        return trend_table_compact(trend, k, consortium)
    rows, classes = [], []
    previous_scale = None
    for r in frames.rows(trend):
        own, change = _trend_own(r, k), _trend_change(r, k)
        rows.append(
            [r.label if r.scale != previous_scale else "", _nb(r.wave), *own]
            + [_with_interval(num(r.consortium_mean), r.consortium_ci_low, r.consortium_ci_high)]
            + [change]
        )
        classes.append(
            ("" if r.status == "shown" else "suppressed")
            + (" first" if r.scale != previous_scale else "")
        )
        previous_scale = r.scale
    header = [
        "Scale",
        "Wave",
        "Respondents",
        "Your score (95% interval)",
        "Consortium average (95% interval)",
        "Change since the wave before (95% interval)",
    ]
    numeric = {2, 3, 4}
    if not consortium:
        keep = [0, 1, 2, 3, 5]
        rows = [[row[j] for j in keep] for row in rows]
        header, numeric = [header[j] for j in keep], {2, 3}
    classes = [c.strip() for c in classes]
    return html_table(rows, header, cls="trend", row_classes=classes, numeric=numeric)


def peers_table(peer_group: pd.DataFrame, scales: pd.DataFrame, k: int, label: str) -> str:
    """Per scale: the hospital's score, its peer group's median and middle half (quartiles)
    with the number of hospitals, and the consortium's median and middle half. A scale whose
    peer group is too small says so, without values."""
    own = scales.set_index("scale")
    rows, classes = [], []
    for r in frames.rows(peer_group):
        o = own.loc[r.scale]
        score = num(o["mean"]) if o["status"] == "shown" else f"fewer than {k} responses"
        if r.status == "shown":
            peer = [num(r.median), interval(r.q1, r.q3), count(r.n_hospitals)]
        else:
            peer = ["too few hospitals to show", "", ""]
        rows.append(
            [r.label, span(r.rmin, r.rmax), score, *peer]
            + [num(r.consortium_median), interval(r.consortium_q1, r.consortium_q3)]
        )
        classes.append("" if r.status == "shown" else "suppressed")
    header = [
        "Scale",
        "Range",
        "Your score",
        f"Median of {label}",
        "Their middle half",
        "Hospitals",
        "Consortium median",
        "Its middle half",
    ]
    return html_table(rows, header, cls="peers", row_classes=classes, numeric={2, 3, 4, 5, 6, 7})


def summary_table(
    scales: pd.DataFrame,
    change: pd.DataFrame | None,
    k: int,
    consortium: bool = True,
    peers: dict[str, str] | None = None,
) -> str:
    """The summary's headline per scale: the score with its 95% interval and % positive (the
    same cells as the glance table), where it stands against the consortium and against peers
    ("\u2014" where the report has no peer group), and the change since the last wave."""
    ch = {} if change is None else _by_scale(change)
    peers = peers or {}
    rows, classes = [], []
    for r in frames.rows(scales):
        c = ch.get(r.scale)
        none_now = bool(getattr(r, "no_response", False))
        change_txt = change_text(c, k, none_now, with_interval=False)
        if r.status != "shown":
            why = "no responses this wave" if none_now else f"fewer than {k} responses"
            rows.append([r.label, why, "", "", "", "", change_txt])
            classes.append("suppressed")
            continue
        rows.append(
            [
                r.label,
                num(r.mean),
                interval(r.ci_low, r.ci_high),
                pct(getattr(r, "pct_positive", None)),
                STANDING[r.signal],
                peers.get(r.scale, "\u2014"),
                change_txt,
            ]
        )
        classes.append(f"standing-{r.signal}")
    header = [
        "Scale",
        "Your score",
        "95% interval",
        "% positive",
        "Against the consortium",
        "Against peers",
        "Change since last wave",
    ]
    numeric = {1, 2, 3}
    if not consortium:
        keep = [0, 1, 2, 3, 6]
        rows = [[r[j] for j in keep] for r in rows]
        header = [header[j] for j in keep]
        classes = ["suppressed" if x == "suppressed" else "" for x in classes]
    return html_table(rows, header, cls="summary", row_classes=classes, numeric=numeric)


STANDING = {
    "higher": "clearly higher",
    "lower": "clearly lower",
    "common": "usual range",
    "": "",
}


def response_table(respondents: dict, invited: dict, names: dict, k: int) -> str:
    """Per survey: invited (where the register records it), answered, and the response rate."""
    rows = []
    for source, n in respondents.items():
        inv = invited.get(source)
        if n is None:
            answered, rate = f"fewer than {k}", ""
        else:
            answered = count(n)
            rate = pct(100 * n / inv) if inv else ""
        if not inv:
            rate = "unknown"
        invited_txt = count(inv) if inv else "not recorded"
        rows.append([names.get(source, source), invited_txt, answered, rate])
    return html_table(
        rows, ["Survey", "Invited", "Answered", "Response rate"], cls="response", numeric={1, 2}
    )


def scale_gap_table(gaps: pd.DataFrame, a: str, b: str, k: int, consortium: bool = True) -> str:
    """Per mirrored scale: both groups' scores (as in the glance table), the gap (b minus a)
    with its 95% interval, and the consortium's gap."""
    rows = []
    for r in frames.rows(gaps):
        rows.append(
            [
                r.label,
                num(r.mean_a) or f"fewer than {k} responses",
                num(r.mean_b) or f"fewer than {k} responses",
                signed(r.gap),
                interval(r.gap_low, r.gap_high),
                signed(r.consortium_gap),
            ]
        )
    header = [
        "Scale",
        a,
        b,
        f"Gap ({b} minus {a})",
        "95% interval of the gap",
        "Gap in the consortium",
    ]
    if not consortium:
        rows, header = [r[:5] for r in rows], header[:5]
    return html_table(rows, header, cls="gaps", numeric=set(range(1, len(header))))


def between_table(scales: pd.DataFrame, k: int) -> str:
    """The numbers behind the between-hospitals figure: per scale, how many hospitals are
    shown, the consortium average, the middle half of hospitals and your score."""
    rows = []
    for r in frames.rows(scales):
        own = num(r.mean) if r.status == "shown" else f"fewer than {k} responses"
        rows.append(
            [
                r.label,
                count(r.n_hospitals),
                num(r.consortium_mean),
                interval(r.q1, r.q3),
                own,
                interval(r.ci_low, r.ci_high) if r.status == "shown" else "",
            ]
        )
    return html_table(
        rows,
        [
            "Scale",
            "Hospitals",
            "Consortium average",
            "Middle half of hospitals",
            "Your score",
            "95% interval",
        ],
        cls="between",
        numeric={1, 2, 3, 4, 5},
    )


def half(x) -> str:
    """A count or a median of counts: "28", "35.5"."""
    if _missing(x):
        return ""
    return num(x, 0) if float(x) == int(float(x)) else num(x, 1)


def maturity_baseline_table(mb: dict, baseline, consortium: bool = True) -> str:
    """Core processes at the baseline level or above: the hospital, the median hospital and the
    range over hospitals (``confidentiality.maturity_baseline_summary``)."""
    n = mb["n_processes"]
    rows = [["Your hospital", f"{half(mb['own'])} of {n}"]]
    if consortium:
        rows += [
            ["Median hospital", f"{half(mb['consortium_median'])} of {n}"],
            [
                "Range over hospitals",
                f"{half(mb['consortium_min'])} to {half(mb['consortium_max'])}",
            ],
        ]
    return html_table(
        rows,
        ["", f"Core processes at baseline level ({num(baseline, 0)}) or above"],
        cls="maturity-baseline",
        numeric={1},
    )
