"""The report's charts: the hospital report's written as SVG directly (``svg.Figure``), the
consortium report's as matplotlib Figures; ``to_svg`` gives either as SVG text for the report.

The hospital report's charts (``glance``, ``between_hospitals``, ``teams``, ``maturity``,
``stakeholders``, ``trend``, ``peers``) are lines, markers, rectangles and text: written by
``svg`` they cost milliseconds each where matplotlib took 0.1-0.6 s of a core
(bench/results/2026-12-02-reports.md), with the same marks, intervals, reference lines,
labels, legends, sizes (inches, the user unit a point) and DejaVu Sans. Their elements carry
classes naming what they draw (``own``, ``peer``, ``ci95``, ``ci998``, ``reference``,
``title``, ``xlabel``, ``xtick``/``ytick``, ``legend``, ``panel``), which the tests read back.

Colours follow STYLE.md and the NHS "Making Data Count" convention: grey for common variation,
blue for a signal of higher (better) scores, orange for lower; no red/green pairs. Blue and
orange mean only that, in every figure: clearly higher / lower than the figure's reference
line (the consortium average, the hospital's average for a team), decided by the 99.8%
interval, which is always drawn (the thin bar), and named in each figure's legend. The
Maturity Matrix compares with a target, not with a reference under uncertainty: its marks are
filled (at or above the baseline level) or hollow (below), never blue or orange. The
hospital's own mark is a large dark-edged diamond; other hospitals are small anonymous marks.
Every figure has a title and axis labels; the sentence saying what it shows is returned with it
by ``content``. SVGs keep text as text (matplotlib's with ``svg.fonttype: none``) so a report
can be searched and scanned for identifiers.

Names and labels are free text: both writers escape ``& < >`` in the SVG's text, there is no
formula syntax (matplotlib's mathtext is off, ``text.parse_math``), so a "$" in a name is a
dollar sign, and every label passes through ``escape.clean`` (one line, no control
characters). Team names on the team charts are marked ``<tspan class="ident">`` for the
confidentiality scan (``svg.Figure.text(ident=...)``; ``mark_names`` on matplotlib's). The SVG
is the same for the same figure: no random id (matplotlib's ``svg.hashsalt`` is fixed), no date.
"""

from __future__ import annotations

import html as html_lib
import io
import re
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from flaqum.constants import Z95, Z998
from flaqum.report import frames, svg
from flaqum.report.escape import IDENT_CLASS, clean
from flaqum.report.escape import html as esc
from flaqum.report.tables import num, span

GREY, LIGHT = "#9a9a9a", "#d9d9d9"
BLUE, ORANGE = "#1f6fb4", "#e8871e"
OWN, INK = "#1b2a49", "#333333"
PEER = "#8c96a8"  # the hospital's peer group: a blue-grey between its own navy and grey
SIDE_COLOURS = ("#1b2a49", "#8e6bb8")  # professionals (navy), patients and kin (purple)
SIGNAL_COLOUR = {"higher": BLUE, "lower": ORANGE, "common": GREY, "": GREY}
RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "svg.hashsalt": "flaqum",
    "text.parse_math": False,
}


_TEXT_METRICS: dict = {}


def _share_text_metrics() -> None:
    """Keep matplotlib's text measurements for the whole process, not per renderer.

    matplotlib caches the size of each text per renderer instance, and every ``savefig`` makes
    a new renderer: each figure of each report measured every label again with FreeType
    (about a tenth of a report's cost). The size of a text depends only on the renderer's
    kind, the text, its font properties and the dpi, so one cache serves every figure (the
    SVG is byte for byte the same)."""
    import matplotlib.text as mtext

    measure = mtext._get_text_metrics_with_cache
    if getattr(measure, "flaqum_shared", False):
        return

    def shared(renderer, text, fontprop, ismath, dpi):
        key = (type(renderer), text, fontprop.copy(), ismath, dpi)
        found = _TEXT_METRICS.get(key)
        if found is None:
            if len(_TEXT_METRICS) > 50_000:
                _TEXT_METRICS.clear()
            found = _TEXT_METRICS[key] = measure(renderer, text, fontprop, ismath, dpi)
        return found

    shared.flaqum_shared = True
    mtext._get_text_metrics_with_cache = shared


def _fig(
    width: float,
    height: float,
    labels=(),
    bottom: float = 0.55,
    top: float = 0.45,
    right: float = 0.25,
) -> Figure:
    """A figure with margins in inches: the left one sized to the longest tick label (a fixed
    layout is 3-4 times faster to draw than matplotlib's constrained layout)."""
    import matplotlib

    matplotlib.rcParams.update(RC)
    _share_text_metrics()
    fig = Figure(figsize=(width, height))
    longest = max((len(str(x)) for x in labels), default=4)
    left = min(0.074 * longest + 0.3, 0.55 * width)
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )
    return fig


_NAME_GID = "flaqum-ident-"


def mark_names(texts, names) -> None:
    """Mark each matplotlib Text whose label starts with the matching name (a tick label
    "Surgery (n=12)"), so that ``to_svg`` writes the name as ``<tspan class="ident">``."""
    for t, name in zip(texts, names, strict=False):
        t.set_gid(f"{_NAME_GID}{len(clean(name))}")


def _ident_tspans(svg: str, key: str) -> str:
    """``<g id="flaqum-ident-N"><text ...>LABEL</text>``: the first N characters of LABEL (the
    name) in ``<tspan class="ident">``; the group gets an id unique in the report."""
    count = 0

    def sub(m):
        nonlocal count
        count += 1
        label = html_lib.unescape(m.group(3))
        n = int(m.group(1))
        name, rest = label[:n], label[n:]
        return (
            f'<g id="{esc(key)}-name-{count}">{m.group(2)}'
            f'<tspan class="{IDENT_CLASS}">{html_lib.escape(name)}</tspan>'
            f"{html_lib.escape(rest)}</text>"
        )

    return re.sub(
        rf'<g id="{_NAME_GID}(\d+)">(\s*<text\b[^>]*>)([^<]*)</text>', sub, svg, flags=re.S
    )


def to_svg(fig: Figure | svg.Figure, alt: str = "", key: str = "fig") -> str:
    """The figure as an inline SVG element with an accessible name (``<title>``, aria-label).

    ``key`` (one per figure of a report) salts the SVG's ids, so that two figures of one page
    never share an id and the same figure always gets the same ids. A figure of the hospital
    report is an ``svg.Figure`` (written directly); the consortium report's are matplotlib's."""
    import matplotlib

    if isinstance(fig, svg.Figure):
        return fig.svg(alt, key)

    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": key}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    out = buf.getvalue()
    out = out[out.index("<svg") :]
    out = re.sub(r"<!--.*?-->", "", out, flags=re.S)
    out = _ident_tspans(out, key)
    if alt:
        a = esc(alt)
        out = re.sub(r"<svg\b", lambda m: f'<svg role="img" aria-label="{a}"', out, count=1)
        out = re.sub(r"(<svg[^>]*>)", lambda m: f"{m.group(1)}<title>{a}</title>", out, count=1)
    # Scale to the page width while keeping the drawn aspect ratio.
    out = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r'\1 width="100%"', out, count=1)
    return out


def _bars(ax, pos, lo, hi, colors, lw, horizontal=True, **kw):
    """Interval bars as one LineCollection (fast to draw and small in SVG)."""
    from matplotlib.collections import LineCollection

    pos, lo, hi = (np.asarray(a, float) for a in (pos, lo, hi))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(pos)
    if horizontal:
        segs = [[(a, p), (b, p)] for p, a, b in zip(pos[ok], lo[ok], hi[ok], strict=True)]
    else:
        segs = [[(p, a), (p, b)] for p, a, b in zip(pos[ok], lo[ok], hi[ok], strict=True)]
    cols = np.asarray(colors, dtype=object)[ok] if not isinstance(colors, str) else colors
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=lw, capstyle="butt", **kw))


def _signal_colours(lo, hi, ref):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    return np.where(lo > ref, BLUE, np.where(hi < ref, ORANGE, GREY))


def _range_label(row) -> str:
    return span(row["rmin"], row["rmax"])


def _labels(values) -> list[str]:
    return [clean(x) for x in values]


def _canvas(
    width: float,
    height: float,
    labels=(),
    bottom: float = 0.55,
    top: float = 0.45,
    right: float = 0.25,
    size: float = 9,
    bold=(),
) -> tuple[svg.Figure, float]:
    """A direct-SVG figure (``svg.Figure``) and its left margin in inches, sized to the
    longest tick label as drawn (measured in DejaVu Sans; ``bold``: positions in bold)."""
    bold = set(bold)
    longest = max(
        (svg.text_width(str(x), size, bold=i in bold) for i, x in enumerate(labels)), default=0.0
    )
    left = min((longest + 12) / 72 + 0.12, 0.55 * width) if labels else 0.45
    return svg.Figure(width, height), left


def _xticks(ax: svg.Axes, size: float = 9) -> None:
    """matplotlib's automatic ticks of the horizontal axis (one a 3.4 label widths)."""
    n = int(max(3, min(9, (ax.x1 - ax.x0) / (3.4 * size))))
    ax.xticks(svg.ticks(*ax.xlim, n, svg.AUTO_STEPS), size=size)


def glance(scales: pd.DataFrame, peers: dict[str, np.ndarray], k: int) -> svg.Figure:
    """One row per scale: other hospitals' distance from the consortium average (grey ticks),
    the hospital's own score with its 95% (thick) and 99.8% (thin) interval."""
    n = len(scales)
    rows = list(frames.rows(scales))
    labels = [f"{clean(r.label)} ({span(r.rmin, r.rmax)})" for r in rows]
    fig, left = _canvas(8.5, 0.36 * n + 1.9, labels, bottom=1.3)
    cmean = {}  # each scale's consortium mean (its first row's)
    means = scales["consortium_mean"].to_numpy()
    for s, c in zip(frames.column(scales["scale"]), means, strict=True):
        cmean.setdefault(s, c)
    col = {c: np.array([getattr(r, c) for r in rows], float) for c in ("lo998", "hi998")}
    far = [np.abs(col[c] - means) for c in ("lo998", "hi998")]
    lim = np.nanmax(
        np.abs(
            np.r_[
                [
                    np.nanmax(np.abs(p[:, 0] - cmean[s]))
                    for s, p in peers.items()
                    if len(p) and s in cmean
                ]
                or [0.1],
                far[0][~np.isnan(far[0])],
                far[1][~np.isnan(far[1])],
            ]
        )
    )
    ax = fig.axes(left, 1.3, 0.25, 0.45, (-1.08 * lim, 1.08 * lim), (-0.7, n - 0.3))
    ax.axvline(0, INK, 1, svg.dashes(1), cls="reference")
    ax.spines()
    _xticks(ax)
    ax.yticks(list(range(n))[::-1], labels)
    px, py = [], []
    for i, r in enumerate(rows):
        p = peers.get(r.scale, np.empty((0, 2)))
        px += list(p[:, 0] - r.consortium_mean)
        py += [n - 1 - i] * len(p)
        if r.status != "shown":
            ax.text(
                0,
                n - 1 - i,
                f"fewer than {k} responses",
                ha="center",
                va="center",
                size=8,
                italic=True,
            )
    ax.scatter(px, py, marker="|", s=90, face=LIGHT, lw=1.6, cls="peer")
    # the shown scales' rows, from the top (y = n - 1) down
    shown = [(n - 1 - i, r) for i, r in enumerate(rows) if r.status == "shown"]
    y = np.array([yy for yy, _ in shown], int)

    def d(c):
        return np.array([getattr(r, c) for _, r in shown], float)

    cm = d("consortium_mean")
    cols = [SIGNAL_COLOUR[r.signal] for _, r in shown]
    ax.hbars(y, d("lo998") - cm, d("hi998") - cm, cols, 1.2, cls="ci998")
    ax.hbars(y, d("ci_low") - cm, d("ci_high") - cm, cols, 4, cls="ci95")
    ax.scatter(d("mean") - cm, y, marker="D", s=60, face=cols, edge=OWN, lw=1.4, cls="own")
    ax.xlabel("Your score minus the consortium average (scale points)", below=20)
    ax.title("Where your hospital stands on each scale")
    fig.legend_below(
        _legend_own() + [svg.Handle("Another hospital", LIGHT, marker="|", s=100, mew=1.6)], 2
    )
    return fig


def _legend_own() -> list[svg.Handle]:
    return [
        svg.Handle(f"You: {text}", col, lw=4, marker="D", edge=OWN)
        for text, col in (
            ("clearly higher than the consortium", BLUE),
            ("common variation", GREY),
            ("clearly lower than the consortium", ORANGE),
        )
    ]


def _legend_signal(what: str, reference: str, marker: str = "o") -> list[svg.Handle]:
    """Legend entries naming what blue, grey and orange mean in this figure: the one meaning
    of the colours in every report (a signal against the figure's reference line)."""
    return [
        svg.Handle(f"{what} clearly higher than {reference}", BLUE, lw=2.5, marker=marker),
        svg.Handle("Common variation", GREY, lw=2.5, marker=marker),
        svg.Handle(f"{what} clearly lower than {reference}", ORANGE, lw=2.5, marker=marker),
    ]


def between_hospitals(
    scales: pd.DataFrame, peers: dict[str, np.ndarray], ncols: int = 3
) -> svg.Figure:
    """Small multiples, one caterpillar per scale: every hospital's score with its 95% (thick)
    and 99.8% (thin) interval, ordered by score, anonymous; the hospital's own mark stands out.
    Each panel is a ``<g class="panel">`` (the tests count them)."""
    rows = scales.reset_index(drop=True)
    nrow = int(np.ceil(len(rows) / ncols))
    fig = svg.Figure(10, 2.5 * nrow + 1.0)
    left, right, top, bottom, wspace, hspace = 0.75, 0.25, 0.8, 0.65, 0.3, 0.75
    aw = (fig.width - left - right) / (ncols + (ncols - 1) * wspace) * svg.PT
    ah = (fig.height - top - bottom) / (nrow + (nrow - 1) * hspace) * svg.PT
    for i, r in enumerate(frames.rows(rows)):
        p = peers.get(r.scale, np.empty((0, 2)))
        pts = [(m, s, False) for m, s in p]
        if r.status == "shown":
            pts.append((r.mean, r.se, True))
        pts.sort(key=lambda t: t[0])
        cm = r.consortium_mean
        m = np.array([t[0] for t in pts], float)
        se = np.array([t[1] for t in pts], float)
        own = np.array([t[2] for t in pts], bool)
        x = np.arange(1, len(pts) + 1)
        lo998, hi998 = m - Z998 * se, m + Z998 * se
        cols = _signal_colours(lo998, hi998, cm)
        ylim = (0.0, 1.0)
        if len(m):
            pad = 0.05 * (np.nanmax(m + 3.3 * se) - np.nanmin(m - 3.1 * se))
            ylim = (np.nanmin(m - 3.1 * se) - pad, np.nanmax(m + 3.6 * se) + pad)
        x0 = left * svg.PT + (i % ncols) * aw * (1 + wspace)
        y0 = top * svg.PT + (i // ncols) * ah * (1 + hspace)
        ax = svg.Axes(fig, x0, y0, x0 + aw, y0 + ah, (0, len(pts) + 1), ylim)
        fig.add('<g class="panel">')
        ax.spines()
        tv = svg.ticks(*ylim, 4)
        ax.yticks(tv)
        lw = min(1.0, 240 / max(len(pts), 1))  # thinner bars when hospitals crowd the panel
        ax.axhline(cm, INK, 0.9, svg.dashes(0.9), cls="reference")
        ax.vbars(x, lo998, hi998, list(cols), 0.8 * lw, alpha=0.8, cls="ci998")
        ax.vbars(x, m - Z95 * se, m + Z95 * se, list(cols), 2.4 * lw, cls="ci95")
        ax.scatter(x[~own], m[~own], s=9 * lw, face=list(cols[~own]), cls="peer")
        if own.any():
            ax.scatter(
                x[own], m[own], marker="D", s=70, face=list(cols[own]), edge=OWN, lw=1.6, cls="own"
            )
            ax.text(
                x[own][0],
                m[own][0] + 3.2 * se[own][0],
                "you",
                ha="center",
                va="bottom",
                size=8,
                bold=True,
                color=OWN,
            )
        ax.title(textwrap.fill(clean(r.label), 34), size=9, loc="left")
        ax.xlabel("Hospitals, lowest to highest", below=5)
        widest = max((svg.text_width(t, 9) for t in svg.tick_labels(tv)), default=0)
        ax.ylabel(f"Score ({_range_label(r._asdict())})", left=widest + 12)
        fig.add("</g>")
    fig.suptitle("Your hospital among all hospitals of the consortium")
    fig.legend_below(_legend_signal("Hospital", "the consortium average (99.8% interval)"), 3)
    return fig


#: the numbers of a team drawn on its chart
_TEAM_DRAWN = ("mean", "ci_low", "ci_high", "lo998", "hi998")


def teams(
    teams_view: pd.DataFrame,
    scale_label: str,
    rng: tuple,
    hospital_mean: float | None,
    consortium_mean: float | None,
    threshold: float,
) -> svg.Figure:
    """The hospital's teams on one scale: score and 95% interval, named, ordered; teams whose
    members disagree are hollow and labelled."""
    from pandas.core.sorting import nargsort

    # the shown teams, ordered as sort_values("mean") orders them (the same nargsort), as
    # columns of plain values
    shown = [r for r in frames.rows(teams_view) if r.status == "shown"]
    shown = [shown[i] for i in nargsort(np.array([r.mean for r in shown], float))]
    d = {c: np.array([getattr(r, c) for r in shown], float) for c in _TEAM_DRAWN}
    team_names = _labels(r.team_name for r in shown)
    low = np.array([pd.notna(r.low_agreement) and bool(r.low_agreement) for r in shown], bool)
    labels = [
        f"{t} (n={int(r.n)})" + (" \u25b2 members disagree" if lw else "")
        for t, r, lw in zip(team_names, shown, low, strict=True)
    ]
    fig, left = _canvas(8.5, 0.24 * max(len(shown), 3) + 1.75, labels, bottom=1.15)
    has_h = hospital_mean is not None and pd.notna(hospital_mean)
    has_c = consortium_mean is not None and pd.notna(consortium_mean)
    xlim = (0.0, 1.0)
    if len(shown):
        lo, hi = np.nanmin(d["lo998"]), np.nanmax(d["hi998"])
        refs = [x for x, ok in ((hospital_mean, has_h), (consortium_mean, has_c)) if ok]
        lo, hi = min([lo, *refs]), max([hi, *refs])
        xlim = (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax = fig.axes(left, 1.15, 0.25, 0.45, xlim, (-0.8, max(len(shown), 1) - 0.2))
    ax.spines()
    _xticks(ax)
    ax.yticks(list(range(len(shown))), labels, ident=[len(t) for t in team_names])
    if has_h:
        # the colour is decided by the 99.8% interval, which is drawn (thin bar)
        cols = _signal_colours(d["lo998"], d["hi998"], hospital_mean)
        ax.axvline(hospital_mean, OWN, 1.2, cls="reference hospital")
    else:
        cols = np.full(len(shown), GREY)
    if has_c:
        ax.axvline(consortium_mean, INK, 0.9, svg.dashes(0.9), cls="reference consortium")
    y = np.arange(len(shown))
    ax.hbars(y, d["lo998"], d["hi998"], list(cols), 0.9, cls="ci998")
    ax.hbars(y, d["ci_low"], d["ci_high"], list(cols), 2.6, cls="ci95")
    ax.scatter(
        d["mean"],
        y,
        s=36,
        face=["white" if lw else c for lw, c in zip(low, cols, strict=True)],
        edge=list(cols),
        lw=1.5,
        cls="mark",
    )
    ax.xlabel(
        f"Team score ({span(*rng)}); dot: team average, thick bar: 95% interval, thin bar: 99.8%",
        below=20,
    )
    ax.title(f"{clean(scale_label)}: your teams")
    if len(shown):
        handles = []
        if has_h:
            handles.append(svg.Handle("Your hospital", OWN, lw=1.2))
        if has_c:
            handles.append(svg.Handle("Consortium average", INK, lw=0.9, dash=svg.dashes(0.9)))
        if has_h:
            handles += _legend_signal("Team", "your hospital")
        fig.legend_below(handles, min(len(handles), 3))
    return fig


def maturity(
    mat: pd.DataFrame, baseline: float | None, ambition_year: int | None, median: bool = True
) -> svg.Figure:
    """Drivers (bold) and their building blocks: the hospital's level against the consortium
    median (``median=False``: without it), with the baseline level the consortium aims for."""
    rows = []
    blocks = {}  # each driver's building blocks, in order
    for bb in frames.rows(mat[mat["level"] == "building_block"]):
        if pd.notna(bb.parent):
            blocks.setdefault(bb.parent, []).append(bb)
    for drv in frames.rows(mat[mat["level"] == "driver"]):
        rows.append((clean(drv.label), drv.value, drv.consortium_median, True))
        for bb in blocks.get(drv.scale, []):
            rows.append(("    " + clean(bb.label), bb.value, bb.consortium_median, False))
    n = len(rows)
    labels = [r[0] for r in rows]
    bold = [i for i, r in enumerate(rows) if r[3]]
    fig, left = _canvas(8.5, 0.2 * n + 1.5, labels, bottom=0.95, top=0.55, bold=bold)
    ax = fig.axes(left, 0.95, 0.25, 0.55, (0.8, 5.2), (-0.7, n + 0.4))
    y = n - 1 - np.arange(n)
    val = np.array([r[1] for r in rows], float)
    med = np.array([r[2] for r in rows], float)
    drv = np.array([r[3] for r in rows], bool)
    for yy in y[drv]:
        ax.axhspan(yy - 0.5, yy + 0.5, "#f2f2f2")
    ax.spines()
    ax.xticks([1, 2, 3, 4, 5])
    ax.yticks(list(y), labels, bold=bold)
    if baseline is not None:
        ax.axvline(baseline, INK, 1, svg.dashes(1), cls="reference")
        fig.text(
            float(ax.X(baseline)) + 2.5,
            float(ax.Y(n - 0.3)),
            f"{clean(ambition_year)} ambition: baseline level ({clean(baseline)})",
            size=8,
            va="bottom",
        )
    if median:
        ax.hbars(y, np.fmin(val, med), np.fmax(val, med), LIGHT, 1)
        ax.vbars(med, y - 0.32, y + 0.32, GREY, 2.5, cls="median")
    # no signal colour here (blue and orange mean "clearly higher/lower than a reference" in
    # every report): below the baseline level is hollow, at or above it filled
    below = val < baseline if baseline is not None else np.zeros(n, bool)
    cols = np.where(below, "white", OWN)
    ok = np.isfinite(val)
    for sel, marker, size, lw in ((drv & ok, "D", 55, 1.4), (~drv & ok, "o", 30, 1.2)):
        ax.scatter(
            val[sel],
            y[sel],
            marker=marker,
            s=size,
            face=list(cols[sel]),
            edge=OWN,
            lw=lw,
            cls="own",
        )
    ax.xlabel("Maturity level (1 not started \u2013 5 embedded)", below=20)
    ax.title("Maturity Matrix: your drivers and building blocks")
    handles = [
        svg.Handle("You: at or above baseline", OWN, marker="o", edge=OWN),
        svg.Handle("You: below baseline", OWN, marker="o", face="white", edge=OWN),
    ]
    if median:
        handles.append(svg.Handle("Consortium median", GREY, marker="|", s=144, mew=2.5))
    fig.legend_below(handles, 3)
    return fig


def stakeholders(stake: pd.DataFrame) -> svg.Figure:
    """Per dimension: both stakeholder groups' average and the gap between them."""
    d = stake.reset_index(drop=True)
    n = len(d)
    dims = _labels(d["label"])
    fig, left = _canvas(8.5, 0.3 * n + 1.6, dims, bottom=0.95)
    a_lab, b_lab = clean(d["side_a"].iloc[0]), clean(d["side_b"].iloc[0])
    rmin, rmax = int(d["rmin"].iloc[0]), int(d["rmax"].iloc[0])
    vals = pd.concat([d["mean_a"], d["mean_b"]]).dropna()
    xlim = (max(rmin, vals.min() - 0.3), min(rmax, vals.max() + 0.3)) if len(vals) else (0, 1)
    ax = fig.axes(left, 0.95, 0.25, 0.45, xlim, (-0.7, n - 0.3))
    ax.spines()
    _xticks(ax)
    y = n - 1 - np.arange(n)
    ax.yticks(list(y), dims)
    a, b = d["mean_a"].to_numpy(float), d["mean_b"].to_numpy(float)
    ax.hbars(y, np.fmin(a, b), np.fmax(a, b), LIGHT, 3, cls="gap")
    ax.scatter(a, y, s=45, face=SIDE_COLOURS[0], cls="side-a")
    ax.scatter(b, y, marker="s", s=45, face=SIDE_COLOURS[1], cls="side-b")
    ax.xlabel(
        f"Average answer ({num(rmin, 0)} strongly disagree \u2013 {num(rmax, 0)} strongly agree)",
        below=20,
    )
    ax.title("How patients and professionals see quality, per dimension")
    fig.legend_below(
        [
            svg.Handle(a_lab, SIDE_COLOURS[0], marker="o"),
            svg.Handle(b_lab, SIDE_COLOURS[1], marker="s"),
        ],
        2,
        size=9,
    )
    return fig


#: the columns of a trend row drawn on its panel's vertical axis
_TREND_DRAWN = ("ci_low", "ci_high", "consortium_ci_low", "consortium_ci_high")
_TREND_DRAWN += ("mean", "consortium_mean")


def trend(trend: pd.DataFrame, k: int, consortium: bool = True, ncols: int = 4) -> svg.Figure:
    """Small multiples, one panel per scale: the hospital's mean in every wave it took part in
    with its 95% interval (navy diamonds on a solid line; a gap where it did not take part or
    had fewer than k responses) against the consortium average with its 95% interval (grey
    circles on a dashed line). Panels of scales with the same response range share their
    vertical range, so a change looks as large on one as on another. ``consortium=False``:
    the hospital alone (no other hospital to compare with). Each panel's title is a
    ``<text class="panel-title">``."""
    every = trend.to_dict("records")  # plain rows: a panel's few rows, read without pandas
    scales = list(dict.fromkeys(rec["scale"] for rec in every))
    waves = sorted({str(rec["wave"]) for rec in every})
    x_of = {w: i for i, w in enumerate(waves)}
    nw = len(waves)
    ncols = max(1, min(ncols, len(scales)))
    nrow = int(np.ceil(len(scales) / ncols))
    fig = svg.Figure(10, 1.6 * nrow + 1.1)
    gx, gy = 0.42, 0.75  # gaps between panels (room for tick labels, titles and waves)
    ax = fig.axes(0.1, 0.75, 0.1, 0.6, (0, ncols * (1 + gx)), (0, nrow * (1 + gy)))
    # one vertical range per response range
    ranges: dict[tuple, list] = {}  # the values drawn on each response range
    for rec in every:
        if pd.notna(rec["rmin"]) and pd.notna(rec["rmax"]):
            ranges.setdefault((rec["rmin"], rec["rmax"]), []).extend(rec[c] for c in _TREND_DRAWN)
    lims = {}
    for rng, values in ranges.items():
        vals = np.array(values, float)
        vals = vals[~np.isnan(vals)]
        lo, hi = (vals.min(), vals.max()) if len(vals) else rng
        pad = max(0.08 * (hi - lo), 0.02 * (rng[1] - rng[0]))
        lims[rng] = (max(rng[0], lo - pad), min(rng[1], hi + pad))
    off = 0.04
    frame, tick_marks = [], []
    lines = {"own": ([], []), "cons": ([], [])}
    bars = {"own": [], "cons": []}
    marks = {"own": ([], []), "cons": ([], [])}
    records: dict[str, list[dict]] = {}  # each panel's rows
    for rec in every:
        records.setdefault(rec["scale"], []).append({**rec, "wave": str(rec["wave"])})
    for i, sid in enumerate(scales):
        g = records[sid]
        r = g[0]
        ox = (i % ncols) * (1 + gx) + gx
        oy = (nrow - 1 - i // ncols) * (1 + gy) + 0.45 * gy
        ylo, yhi = lims[(r["rmin"], r["rmax"])]

        def px(w, shift, ox=ox):
            return ox + (x_of[w] + 0.5) / nw + shift

        def py(v, oy=oy, ylo=ylo, yhi=yhi):
            return oy + (np.asarray(v, float) - ylo) / (yhi - ylo)

        frame += [((ox, oy + 1), (ox, oy)), ((ox, oy), (ox + 1, oy))]
        for t in svg.ticks(ylo, yhi, 3):
            yv = float(py(t))
            tick_marks.append(((ox - 0.025, yv), (ox, yv)))
            ax.text(ox - 0.04, yv, num(t), ha="right", va="center", size=7)
        for w in waves:
            ax.text(px(w, 0), oy - 0.05, clean(w), ha="center", va="top", size=7)
        # the title in lines of at most 30 characters, fewer where the figure's edge is near
        room = fig.w - float(ax.X(ox))
        title = f"{clean(r['label'])} ({span(r['rmin'], r['rmax'])})"
        for width in range(30, 9, -2):
            wrapped = textwrap.wrap(title, width) or [""]
            if max(svg.text_width(x, 8, bold=True) for x in wrapped) <= room - 4:
                break
        ax.text(
            ox,
            oy + 1.06,
            "\n".join(wrapped),
            ha="left",
            va="bottom",
            size=8,
            bold=True,
            cls="panel-title",
        )
        by_wave = {row["wave"]: row for row in g}
        for key, col, shift in (("cons", "consortium_mean", -off), ("own", "mean", off)):
            xs, ys = lines[key]
            for w in waves:
                v = by_wave[w][col] if w in by_wave else np.nan
                if key == "own" and w in by_wave and by_wave[w]["status"] != "shown":
                    v = np.nan
                xs.append(px(w, shift))
                ys.append(float(py(v)))
            xs.append(np.nan)
            ys.append(np.nan)
        for row in g:
            w = row["wave"]
            if pd.notna(row["consortium_mean"]):
                x = px(w, -off)
                marks["cons"][0].append(x)
                marks["cons"][1].append(float(py(row["consortium_mean"])))
                if pd.notna(row["consortium_ci_low"]):
                    lo, hi = py([row["consortium_ci_low"], row["consortium_ci_high"]])
                    bars["cons"].append(((x, lo), (x, hi)))
            if row["status"] == "shown":
                x = px(w, off)
                marks["own"][0].append(x)
                marks["own"][1].append(float(py(row["mean"])))
                lo, hi = py([row["ci_low"], row["ci_high"]])
                bars["own"].append(((x, lo), (x, hi)))
            elif row["status"] == "small":
                ax.text(
                    px(w, 0),
                    oy + 0.5,
                    f"fewer than {k}\nresponses",
                    ha="center",
                    va="center",
                    size=6.5,
                    italic=True,
                )
    ax.segments(frame, "#888888", 0.8)
    ax.segments(tick_marks, "#888888", 0.8)
    ax.segments(bars["cons"], GREY, 1.2, cls="consortium")
    ax.plot(*lines["cons"], color=GREY, lw=1.2, dash=svg.dashes(1.2))
    ax.scatter(*marks["cons"], s=18, face=GREY, cls="consortium")
    ax.segments(bars["own"], OWN, 2.2, cls="own")
    ax.plot(*lines["own"], color=OWN, lw=1.6)
    ax.scatter(*marks["own"], marker="D", s=30, face=OWN, cls="own")
    ax.xlabel("Wave; each panel: the scale's score, on its answer range (in the title)", below=4)
    fig.suptitle("Your scores in every wave" + (", against the consortium" if consortium else ""))
    handles = [svg.Handle("Your hospital (95% interval)", OWN, lw=1.6, marker="D")]
    if consortium:
        handles.append(
            svg.Handle(
                "Consortium average (95% interval)", GREY, lw=1.2, dash=svg.dashes(1.2), marker="o"
            )
        )
    fig.legend_below(handles, 2)
    return fig


def peers(peer_group: pd.DataFrame, scales: pd.DataFrame, label: str) -> svg.Figure:
    """One row per scale where the peer group is shown: the middle half (quartiles) of the
    consortium's hospitals (light grey bar) and of the peer group's (darker bar), each with its
    median (tick), and the hospital's own score with its 95% interval (navy diamond), all as
    distances from the consortium median (the axes of scales with different ranges agree)."""
    d = peer_group[peer_group["status"] == "shown"].reset_index(drop=True)
    own = scales.set_index("scale")
    n = len(d)
    labels = [f"{clean(r.label)} ({span(r.rmin, r.rmax)})" for r in frames.rows(d)]
    fig, left = _canvas(8.5, 0.36 * n + 1.6, labels, bottom=1.0)
    y = n - 1 - np.arange(n)
    ref = d["consortium_median"].to_numpy(float)
    m = own.reindex(d["scale"])
    ok = (m["status"] == "shown").to_numpy()
    vals = np.r_[
        (d["consortium_q1"] - ref).to_numpy(float),
        (d["consortium_q3"] - ref).to_numpy(float),
        (d["q1"] - ref).to_numpy(float),
        (d["q3"] - ref).to_numpy(float),
        (m["ci_low"] - ref).to_numpy(float)[ok],
        (m["ci_high"] - ref).to_numpy(float)[ok],
        0.1,
    ]
    lim = np.nanmax(np.abs(vals))
    ax = fig.axes(left, 1.0, 0.25, 0.45, (-1.1 * lim, 1.1 * lim), (-0.7, n - 0.3))
    ax.axvline(0, INK, 0.8, svg.dashes(0.8), cls="reference")
    ax.spines()
    _xticks(ax)
    ax.yticks(list(y), labels)
    ax.hbars(
        y + 0.14, d["consortium_q1"] - ref, d["consortium_q3"] - ref, LIGHT, 5, cls="consortium"
    )
    ax.hbars(y - 0.14, d["q1"] - ref, d["q3"] - ref, PEER, 5, cls="peer-group")
    ax.vbars(ref * 0, y + 0.02, y + 0.26, GREY, 1.6, cls="consortium median")
    ax.vbars(d["median"] - ref, y - 0.26, y - 0.02, INK, 1.6, cls="peer-group median")
    ax.hbars(y[ok], (m["ci_low"] - ref)[ok], (m["ci_high"] - ref)[ok], OWN, 1.4, cls="ci95")
    ax.scatter((m["mean"] - ref)[ok], y[ok], marker="D", s=40, face=OWN, cls="own")
    ax.xlabel("Score minus the consortium median (scale points)", below=20)
    ax.title(f"Your hospital, {clean(label)} and the consortium")
    fig.legend_below(
        [
            svg.Handle("You (95% interval)", OWN, lw=1.4, marker="D"),
            svg.Handle(f"Middle half of {clean(label)}", PEER, lw=5),
            svg.Handle("Middle half of all hospitals", LIGHT, lw=5),
        ],
        3,
    )
    return fig


# --- consortium report -----------------------------------------------------------------------


def variance_partition(variance: pd.DataFrame, labels: dict[str, str]) -> Figure:
    """Share of each scale's variance between hospitals, between teams and within teams; a
    level the design does not have (one organisation, no teams: its share is blank in
    variance.csv) is left out."""
    d = variance.reset_index(drop=True)
    n = len(d)
    names = _labels(labels.get(x, x) for x in d["scale"])
    fig = _fig(9, 0.32 * n + 1.6, names, bottom=0.95)
    ax = fig.add_subplot()
    hosp = d["vpc_hospital"].to_numpy(float)
    team = d["vpc_team"].to_numpy(float)
    has_h, has_t = bool(np.isfinite(hosp).any()), bool(np.isfinite(team).any())
    hosp, team = np.nan_to_num(hosp), np.nan_to_num(team)
    y = np.arange(n)[::-1]
    if has_h:
        ax.barh(y, hosp, color=OWN, label="Between hospitals")
    if has_t:
        label = "Between teams (within hospitals)" if has_h else "Between teams"
        ax.barh(y, team, left=hosp, color=BLUE, label=label)
    within = "Within teams" if has_t else ("Within hospitals" if has_h else "Between people")
    ax.barh(y, 1 - hosp - team, left=hosp + team, color=LIGHT, label=within)
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Share of the variance in the scale score")
    ax.set_title("Where the variation lies: variance partition of each scale", y=1.0)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
    return fig


def named_caterpillar(d: pd.DataFrame, label: str, rng: tuple) -> Figure:
    """All hospitals on one scale, named (consortium report only)."""
    d = d.sort_values("eb_mean").reset_index(drop=True)
    n = len(d)
    names = _labels(d["name"])
    fig = _fig(8.5, 0.22 * n + 1.3, names)
    ax = fig.add_subplot()
    cm = d["eb_mean"].mean()
    y = np.arange(n)
    lo, hi = d["eb_mean"] - Z998 * d["se"], d["eb_mean"] + Z998 * d["se"]
    cols = _signal_colours(lo, hi, cm)
    _bars(ax, y, lo, hi, cols, 0.8)
    _bars(ax, y, d["ci_low"], d["ci_high"], cols, 2.5)
    ax.scatter(d["eb_mean"], y, s=14, c=list(cols), zorder=3)
    ax.set_xlim(np.nanmin(lo) - 0.02, np.nanmax(hi) + 0.02)
    ax.axvline(cm, color=INK, ls="--", lw=0.9)
    ax.set_yticks(range(n), names)
    mark_names(ax.get_yticklabels(), names)
    ax.set_ylim(-0.8, n - 0.2)
    ax.set_xlabel(
        f"Shrunken (empirical Bayes) score ({span(*rng)}), 95% (thick) and 99.8% (thin) intervals"
    )
    ax.set_title(f"{clean(label)}: all hospitals", y=1.0)
    return fig


def funnel(rows: pd.DataFrame, curves: pd.DataFrame, indicator) -> Figure:
    """A funnel plot (consortium report): each hospital's value against the x-axis of its
    precision (expected count, or the denominator of a rate), the target, and the 95% (dashed)
    and 99.8% (solid) limits of ``flaqum.funnel``. Blue above the upper limit, orange below
    the lower one; filled beyond 99.8%, open beyond 95% only; grey within. Hospitals beyond
    the 99.8% limits are named (``rows["name"]``)."""
    fig = _fig(8.5, 4.6, (), bottom=0.95, top=0.45, right=0.3)
    fig.subplots_adjust(left=0.09)
    ax = fig.add_subplot()
    x, y = rows["denominator"].to_numpy(float), rows["value"].to_numpy(float)
    target = float(rows["target"].iloc[0])
    for key, ls in (("95", "--"), ("998", "-")):
        for side in ("ll", "ul"):
            ax.plot(curves["x"], curves[f"{side}{key}"], color=GREY, ls=ls, lw=1)
    ax.axhline(target, color=INK, lw=1)
    sig = rows["signal"].astype(str).to_numpy()
    above, below = (
        np.char.startswith(sig.astype(str), "above"),
        np.char.startswith(sig.astype(str), "below"),
    )
    strong = np.char.endswith(sig.astype(str), "99.8%")
    within = ~(above | below)
    ax.scatter(x[within], y[within], s=22, color=GREY, zorder=3)
    for mask, col in ((above, BLUE), (below, ORANGE)):
        ax.scatter(x[mask & strong], y[mask & strong], s=30, color=col, zorder=4)
        ax.scatter(
            x[mask & ~strong],
            y[mask & ~strong],
            s=30,
            facecolors="white",
            edgecolors=col,
            linewidths=1.5,
            zorder=4,
        )
    for xi, yi, name in zip(x[strong], y[strong], rows["name"].to_numpy()[strong], strict=True):
        ax.annotate(
            clean(name), (xi, yi), xytext=(4, 3), textcoords="offset points", fontsize=8, color=INK
        )
    lo = np.nanmin(np.r_[y, curves["ll998"].to_numpy(float)])
    hi = np.nanmax(np.r_[y, curves["ul998"].to_numpy(float)])
    pad = 0.05 * (hi - lo)
    ax.set_ylim(max(lo - pad, 0), hi + pad)
    ax.set_xlim(0, curves["x"].max())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(indicator.axis)
    ax.set_ylabel(
        f"per {indicator.per:,.0f} {indicator.axis.lower()}"
        if indicator.kind == "rate"
        else "Observed / expected"
    )
    ax.set_title(clean(indicator.label), y=1.0)
    handles = [
        Line2D([], [], color=GREY, ls="--", label="95% limits"),
        Line2D([], [], color=GREY, ls="-", label="99.8% limits"),
    ]
    # a legend entry for each kind of mark drawn (and only those)
    for mask, col, side in ((above, BLUE, "above"), (below, ORANGE, "below")):
        if (mask & strong).any():
            handles.append(Line2D([], [], marker="o", ls="", color=col, label=f"{side} 99.8%"))
        if (mask & ~strong).any():
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    ls="",
                    markerfacecolor="white",
                    markeredgecolor=col,
                    label=f"{side} 95%",
                )
            )
    fig.legend(handles=handles, loc="lower center", ncol=6, frameon=False, fontsize=8)
    return fig
