"""The report's charts, as matplotlib Figures (unit-testable) and as SVG text (for the report).

Colours follow STYLE.md and the NHS "Making Data Count" convention: grey for common variation,
blue for a signal of higher (better) scores, orange for lower; no red/green pairs. Blue and
orange mean only that, in every figure: clearly higher / lower than the figure's reference
line (the consortium average, the hospital's average for a team), decided by the 99.8%
interval, which is always drawn (the thin bar), and named in each figure's legend. The
Maturity Matrix compares with a target, not with a reference under uncertainty: its marks are
filled (at or above the baseline level) or hollow (below), never blue or orange. The
hospital's own mark is a large dark-edged diamond; other hospitals are small anonymous marks.
Every figure has a title and axis labels; the sentence saying what it shows is returned with it
by ``content``. SVGs keep text as text (``svg.fonttype: none``) so a report can be searched and
scanned for identifiers.

Names and labels are free text: matplotlib escapes ``& < >`` in the SVG's text, mathtext is
off (``text.parse_math``), so a "$" in a name is a dollar sign, not a formula, and every label
passes through ``escape.clean`` (one line, no control characters). Team names on the team
charts are marked ``<tspan class="ident">`` for the confidentiality scan (``mark_names``). The
SVG is the same for the same figure: ``svg.hashsalt`` fixes its ids, no date is written.
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
from matplotlib.ticker import FuncFormatter, MaxNLocator

from flaqum.constants import Z95, Z998
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


def to_svg(fig: Figure, alt: str = "", key: str = "fig") -> str:
    """The figure as an inline SVG element with an accessible name (``<title>``, aria-label).

    ``key`` (one per figure of a report) salts the SVG's ids, so that two figures of one page
    never share an id and the same figure always gets the same ids."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": key}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = _ident_tspans(svg, key)
    if alt:
        a = esc(alt)
        svg = re.sub(r"<svg\b", lambda m: f'<svg role="img" aria-label="{a}"', svg, count=1)
        svg = re.sub(r"(<svg[^>]*>)", lambda m: f"{m.group(1)}<title>{a}</title>", svg, count=1)
    # Scale to the page width while keeping the drawn aspect ratio.
    svg = re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r'\1 width="100%"', svg, count=1)
    return svg


#: Above this many hospitals the caterpillar's marks are rasterised inside the SVG.
RASTER_FROM = 150


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


def glance(scales: pd.DataFrame, peers: dict[str, np.ndarray], k: int) -> Figure:
    """One row per scale: other hospitals' distance from the consortium average (grey ticks),
    the hospital's own score with its 95% (thick) and 99.8% (thin) interval."""
    n = len(scales)
    labels = [f"{clean(r.label)} ({span(r.rmin, r.rmax)})" for r in scales.itertuples(index=False)]
    fig = _fig(8.5, 0.36 * n + 1.9, labels, bottom=1.3)
    ax = fig.add_subplot()
    px, py = [], []
    for i, r in enumerate(scales.itertuples(index=False)):
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
                color=INK,
                fontsize=8,
                style="italic",
            )
    ax.scatter(
        px,
        py,
        marker="|",
        s=90,
        color=LIGHT,
        linewidths=1.6,
        zorder=1,
        rasterized=len(px) > RASTER_FROM * n,
    )
    d = scales.assign(y=n - 1 - np.arange(n))
    d = d[d["status"] == "shown"]
    cm = d["consortium_mean"]
    cols = [SIGNAL_COLOUR[x] for x in d["signal"]]
    _bars(ax, d["y"], d["lo998"] - cm, d["hi998"] - cm, cols, 1.2, zorder=2)
    _bars(ax, d["y"], d["ci_low"] - cm, d["ci_high"] - cm, cols, 4, zorder=3)
    ax.scatter(
        d["mean"] - cm, d["y"], marker="D", s=60, c=cols, edgecolors=OWN, linewidths=1.4, zorder=4
    )
    ax.axvline(0, color=INK, lw=1, ls="--", zorder=0)
    ax.set_yticks(range(n)[::-1], labels)
    ax.set_ylim(-0.7, n - 0.3)
    lim = np.nanmax(
        np.abs(
            np.r_[
                [
                    np.nanmax(
                        np.abs(p[:, 0] - scales.loc[scales.scale == s, "consortium_mean"].iloc[0])
                    )
                    for s, p in peers.items()
                    if len(p) and s in set(scales.scale)
                ]
                or [0.1],
                (scales["lo998"] - scales["consortium_mean"]).abs().dropna(),
                (scales["hi998"] - scales["consortium_mean"]).abs().dropna(),
            ]
        )
    )
    ax.set_xlim(-1.08 * lim, 1.08 * lim)
    ax.set_xlabel("Your score minus the consortium average (scale points)")
    ax.set_title("Where your hospital stands on each scale", y=1.0)
    fig.legend(
        handles=_legend_own()
        + [
            Line2D([], [], marker="|", ls="", color=LIGHT, ms=10, mew=1.6, label="Another hospital")
        ],
        loc="lower center",
        ncol=2,
        frameon=False,
        fontsize=8,
    )
    return fig


def _legend_own():
    return [
        Line2D(
            [],
            [],
            marker="D",
            ls="-",
            lw=4,
            color=BLUE,
            mec=OWN,
            label="You: clearly higher than the consortium",
        ),
        Line2D(
            [], [], marker="D", ls="-", lw=4, color=GREY, mec=OWN, label="You: common variation"
        ),
        Line2D(
            [],
            [],
            marker="D",
            ls="-",
            lw=4,
            color=ORANGE,
            mec=OWN,
            label="You: clearly lower than the consortium",
        ),
    ]


def _legend_signal(what: str, reference: str, marker: str = "o") -> list:
    """Legend entries naming what blue, grey and orange mean in this figure: the one meaning
    of the colours in every report (a signal against the figure's reference line)."""
    return [
        Line2D(
            [],
            [],
            marker=marker,
            ls="-",
            lw=2.5,
            color=BLUE,
            label=f"{what} clearly higher than {reference}",
        ),
        Line2D([], [], marker=marker, ls="-", lw=2.5, color=GREY, label="Common variation"),
        Line2D(
            [],
            [],
            marker=marker,
            ls="-",
            lw=2.5,
            color=ORANGE,
            label=f"{what} clearly lower than {reference}",
        ),
    ]


def between_hospitals(scales: pd.DataFrame, peers: dict[str, np.ndarray], ncols: int = 3) -> Figure:
    """Small multiples, one caterpillar per scale: every hospital's score with its 95% (thick)
    and 99.8% (thin) interval, ordered by score, anonymous; the hospital's own mark stands out."""
    rows = scales.reset_index(drop=True)
    nrow = int(np.ceil(len(rows) / ncols))
    fig = _fig(10, 2.5 * nrow + 1.0, ["Score (1-7)xx"], bottom=0.65, top=0.8)
    fig.subplots_adjust(hspace=0.75, wspace=0.3)
    axes = fig.subplots(nrow, ncols, squeeze=False)
    for ax in axes.flat[len(rows) :]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, rows.itertuples(index=False), strict=False):
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
        cols = _signal_colours(m - Z998 * se, m + Z998 * se, cm)
        # A large consortium's marks are drawn as one embedded image per panel: thousands of
        # SVG paths would make the report slow to write and to open (3,000 hospitals: 160 s).
        many = {"rasterized": len(pts) > RASTER_FROM}
        lw = min(1.0, 240 / max(len(pts), 1))  # thinner bars when hospitals crowd the panel
        _bars(
            ax,
            x,
            m - Z998 * se,
            m + Z998 * se,
            cols,
            0.8 * lw,
            horizontal=False,
            alpha=0.8,
            **many,
        )
        _bars(ax, x, m - Z95 * se, m + Z95 * se, cols, 2.4 * lw, horizontal=False, **many)
        ax.scatter(x[~own], m[~own], s=9 * lw, c=list(cols[~own]), zorder=4, **many)
        if own.any():
            ax.scatter(
                x[own], m[own], marker="D", s=70, c=list(cols[own]), edgecolor=OWN, lw=1.6, zorder=5
            )
            ax.annotate(
                "you",
                (x[own][0], m[own][0] + 3.2 * se[own][0]),
                ha="center",
                va="bottom",
                fontsize=8,
                fontweight="bold",
                color=OWN,
            )
        if len(m):
            pad = 0.05 * (np.nanmax(m + 3.3 * se) - np.nanmin(m - 3.1 * se))
            ax.set_ylim(np.nanmin(m - 3.1 * se) - pad, np.nanmax(m + 3.6 * se) + pad)
        ax.axhline(cm, color=INK, lw=0.9, ls="--")
        ax.set_title(textwrap.fill(clean(r.label), 34), loc="left", fontsize=9, y=1.0)
        ax.set_xticks([])
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlim(0, len(pts) + 1)
        ax.set_xlabel("Hospitals, lowest to highest")
        ax.set_ylabel(f"Score ({_range_label(r._asdict())})")
    fig.suptitle("Your hospital among all hospitals of the consortium", fontweight="bold")
    fig.legend(
        handles=_legend_signal("Hospital", "the consortium average (99.8% interval)"),
        loc="lower center",
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    return fig


def teams(
    teams_view: pd.DataFrame,
    scale_label: str,
    rng: tuple,
    hospital_mean: float | None,
    consortium_mean: float | None,
    threshold: float,
) -> Figure:
    """The hospital's teams on one scale: score and 95% interval, named, ordered; teams whose
    members disagree are hollow and labelled."""
    d = teams_view[teams_view["status"] == "shown"].sort_values("mean").reset_index(drop=True)
    team_names = _labels(d["team_name"])
    names = [
        f"{t} (n=00) \u25b2 members disagree" if lw else f"{t} (n=00)"
        for t, lw in zip(team_names, d["low_agreement"].fillna(False), strict=True)
    ]
    fig = _fig(8.5, 0.24 * max(len(d), 3) + 1.75, names, bottom=1.15)
    ax = fig.add_subplot()
    y = np.arange(len(d))
    low = d["low_agreement"].fillna(False).astype(bool).to_numpy()
    if hospital_mean is not None and pd.notna(hospital_mean):
        # the colour is decided by the 99.8% interval, which is drawn (thin bar)
        cols = _signal_colours(d["lo998"], d["hi998"], hospital_mean)
    else:
        cols = np.full(len(d), GREY)
    _bars(ax, y, d["lo998"], d["hi998"], cols, 0.9)
    _bars(ax, y, d["ci_low"], d["ci_high"], cols, 2.6)
    ax.scatter(
        d["mean"],
        y,
        s=36,
        c=["white" if lw else c for lw, c in zip(low, cols, strict=True)],
        edgecolors=list(cols),
        linewidths=1.5,
        zorder=3,
    )
    labels = [
        f"{t} (n={int(n)})" + (" \u25b2 members disagree" if lw else "")
        for t, n, lw in zip(team_names, d["n"], low, strict=True)
    ]
    if len(d):
        lo, hi = np.nanmin(d["lo998"]), np.nanmax(d["hi998"])
        refs = [x for x in (hospital_mean, consortium_mean) if x is not None and pd.notna(x)]
        lo, hi = min([lo, *refs]), max([hi, *refs])
        ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    ax.set_yticks(range(len(d)), labels)
    mark_names(ax.get_yticklabels(), team_names)
    ax.set_ylim(-0.8, max(len(d), 1) - 0.2)
    if hospital_mean is not None and pd.notna(hospital_mean):
        ax.axvline(hospital_mean, color=OWN, lw=1.2, label="Your hospital")
    if consortium_mean is not None and pd.notna(consortium_mean):
        ax.axvline(consortium_mean, color=INK, lw=0.9, ls="--", label="Consortium average")
    ax.set_xlabel(
        f"Team score ({span(*rng)}); dot: team average, thick bar: 95% interval, thin bar: 99.8%"
    )
    ax.set_title(f"{clean(scale_label)}: your teams", y=1.0)
    if len(d):
        handles, _ = ax.get_legend_handles_labels()
        if hospital_mean is not None and pd.notna(hospital_mean):
            handles += _legend_signal("Team", "your hospital")
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=min(len(handles), 3),
            frameon=False,
            fontsize=8,
        )
    return fig


def maturity(
    mat: pd.DataFrame, baseline: float | None, ambition_year: int | None, median: bool = True
) -> Figure:
    """Drivers (bold) and their building blocks: the hospital's level against the consortium
    median (``median=False``: without it), with the baseline level the consortium aims for."""
    rows = []
    for drv in mat[mat["level"] == "driver"].itertuples(index=False):
        rows.append((clean(drv.label), drv.value, drv.consortium_median, True))
        for bb in mat[(mat["level"] == "building_block") & (mat["parent"] == drv.scale)].itertuples(
            index=False
        ):
            rows.append(("    " + clean(bb.label), bb.value, bb.consortium_median, False))
    n = len(rows)
    fig = _fig(8.5, 0.24 * n + 1.5, [r[0] for r in rows], bottom=0.95, top=0.55)
    ax = fig.add_subplot()
    y = n - 1 - np.arange(n)
    val = np.array([r[1] for r in rows], float)
    med = np.array([r[2] for r in rows], float)
    drv = np.array([r[3] for r in rows], bool)
    for yy in y[drv]:
        ax.axhspan(yy - 0.5, yy + 0.5, color="#f2f2f2", zorder=0)
    if median:
        _bars(ax, med, y - 0.32, y + 0.32, GREY, 2.5, horizontal=False, zorder=2)
        _bars(ax, y, np.fmin(val, med), np.fmax(val, med), LIGHT, 1, zorder=1)
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
            c=list(cols[sel]),
            edgecolors=OWN,
            linewidths=lw,
            zorder=3,
        )
    ax.set_yticks(range(n)[::-1], [r[0] for r in rows])
    for lab, r in zip(ax.get_yticklabels(), rows, strict=False):
        if r[3]:
            lab.set_fontweight("bold")
    if baseline is not None:
        ax.axvline(baseline, color=INK, ls="--", lw=1)
        ax.text(
            baseline,
            n - 0.3,
            f" {clean(ambition_year)} ambition: baseline level ({clean(baseline)})",
            va="bottom",
            ha="left",
            fontsize=8,
            color=INK,
        )
    ax.set_xlim(0.8, 5.2)
    ax.set_ylim(-0.7, n + 0.4)
    ax.set_xticks([1, 2, 3, 4, 5])
    ax.set_xlabel("Maturity level (1 not started \u2013 5 embedded)")
    ax.set_title("Maturity Matrix: your drivers and building blocks", y=1.0)
    handles = [
        Line2D([], [], marker="o", ls="", color=OWN, mec=OWN, label="You: at or above baseline"),
        Line2D([], [], marker="o", ls="", color="white", mec=OWN, label="You: below baseline"),
    ]
    if median:
        handles.append(
            Line2D([], [], marker="|", ls="", color=GREY, ms=12, mew=2.5, label="Consortium median")
        )
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8)
    return fig


def stakeholders(stake: pd.DataFrame) -> Figure:
    """Per dimension: both stakeholder groups' average and the gap between them."""
    d = stake.reset_index(drop=True)
    n = len(d)
    dims = _labels(d["label"])
    fig = _fig(8.5, 0.3 * n + 1.6, dims, bottom=0.95)
    ax = fig.add_subplot()
    a_lab, b_lab = clean(d["side_a"].iloc[0]), clean(d["side_b"].iloc[0])
    for i, r in d.iterrows():
        y = n - 1 - i
        if pd.notna(r["mean_a"]) and pd.notna(r["mean_b"]):
            ax.plot([r["mean_a"], r["mean_b"]], [y, y], color=LIGHT, lw=3, zorder=1)
        if pd.notna(r["mean_a"]):
            ax.scatter([r["mean_a"]], [y], s=45, color=SIDE_COLOURS[0], zorder=2)
        if pd.notna(r["mean_b"]):
            ax.scatter([r["mean_b"]], [y], s=45, marker="s", color=SIDE_COLOURS[1], zorder=2)
    ax.set_yticks(range(n)[::-1], dims)
    ax.set_ylim(-0.7, n - 0.3)
    rmin, rmax = int(d["rmin"].iloc[0]), int(d["rmax"].iloc[0])
    vals = pd.concat([d["mean_a"], d["mean_b"]]).dropna()
    if len(vals):
        ax.set_xlim(max(rmin, vals.min() - 0.3), min(rmax, vals.max() + 0.3))
    ax.set_xlabel(
        f"Average answer ({num(rmin, 0)} strongly disagree \u2013 {num(rmax, 0)} strongly agree)"
    )
    ax.set_title("How patients and professionals see quality, per dimension", y=1.0)
    fig.legend(
        handles=[
            Line2D([], [], marker="o", ls="", color=SIDE_COLOURS[0], label=a_lab),
            Line2D([], [], marker="s", ls="", color=SIDE_COLOURS[1], label=b_lab),
        ],
        loc="lower center",
        ncol=2,
        frameon=False,
    )
    return fig


def trend(trend: pd.DataFrame, k: int, consortium: bool = True, ncols: int = 4) -> Figure:
    """Small multiples, one panel per scale: the hospital's mean in every wave it took part in
    with its 95% interval (navy diamonds on a solid line; a gap where it did not take part or
    had fewer than k responses) against the consortium average with its 95% interval (grey
    circles on a dashed line). Panels of scales with the same response range share their
    vertical range, so a change looks as large on one as on another. ``consortium=False``:
    the hospital alone (no other hospital to compare with).

    The panels are drawn in one Axes, each in its own box with its own axis lines, ticks and
    labels: twelve matplotlib Axes cost five times as much to draw (their tick machinery)."""
    from matplotlib.collections import LineCollection

    d = trend.reset_index(drop=True)
    scales = list(dict.fromkeys(d["scale"]))
    waves = sorted(d["wave"].astype(str).unique())
    x_of = {w: i for i, w in enumerate(waves)}
    nw = len(waves)
    ncols = max(1, min(ncols, len(scales)))
    nrow = int(np.ceil(len(scales) / ncols))
    fig = _fig(10, 2.1 * nrow + 1.1, [], bottom=0.75, top=0.6, right=0.1)
    fig.subplots_adjust(left=0.01)
    ax = fig.add_subplot()
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xticks([])
    ax.set_yticks([])
    gx, gy = 0.42, 0.75  # gaps between panels (room for tick labels, titles and waves)
    ax.set_xlim(0, ncols * (1 + gx))
    ax.set_ylim(0, nrow * (1 + gy))
    # one vertical range per response range
    lims = {}
    for rng, g in d.groupby(["rmin", "rmax"]):
        vals = pd.concat(
            [g[c] for c in ("ci_low", "ci_high", "consortium_ci_low", "consortium_ci_high")]
            + [g["mean"], g["consortium_mean"]]
        ).dropna()
        lo, hi = (vals.min(), vals.max()) if len(vals) else rng
        pad = max(0.08 * (hi - lo), 0.02 * (rng[1] - rng[0]))
        lims[rng] = (max(rng[0], lo - pad), min(rng[1], hi + pad))
    off = 0.04
    frame, ticks = [], []
    lines = {"own": ([], []), "cons": ([], [])}
    bars = {"own": [], "cons": []}
    marks = {"own": ([], []), "cons": ([], [])}
    small_y = 0.0
    for i, sid in enumerate(scales):
        g = d[d["scale"] == sid]
        r = g.iloc[0]
        ox = (i % ncols) * (1 + gx) + gx
        oy = (nrow - 1 - i // ncols) * (1 + gy) + 0.45 * gy
        ylo, yhi = lims[(r["rmin"], r["rmax"])]

        def px(w, shift, ox=ox):
            return ox + (x_of[w] + 0.5) / nw + shift

        def py(v, oy=oy, ylo=ylo, yhi=yhi):
            return oy + (np.asarray(v, float) - ylo) / (yhi - ylo)

        frame += [[(ox, oy + 1), (ox, oy), (ox + 1, oy)]]
        for t in MaxNLocator(3).tick_values(ylo, yhi):
            if ylo <= t <= yhi:
                y = float(py(t))
                ticks.append([(ox - 0.025, y), (ox, y)])
                ax.text(ox - 0.04, y, num(t), ha="right", va="center", fontsize=7, color=INK)
        for w in waves:
            ax.text(px(w, 0), oy - 0.05, clean(w), ha="center", va="top", fontsize=7, color=INK)
        ax.text(
            ox,
            oy + 1.06,
            textwrap.fill(f"{clean(r['label'])} ({span(r['rmin'], r['rmax'])})", 30),
            ha="left",
            va="bottom",
            fontsize=8,
            fontweight="bold",
            color=INK,
        )
        by_wave = g.set_index(g["wave"].astype(str))
        for key, col, shift in (("cons", "consortium_mean", -off), ("own", "mean", off)):
            xs, ys = lines[key]
            for w in waves:
                v = by_wave[col].get(w, np.nan) if w in by_wave.index else np.nan
                if key == "own" and w in by_wave.index and by_wave.loc[w, "status"] != "shown":
                    v = np.nan
                xs.append(px(w, shift))
                ys.append(float(py(v)))
            xs.append(np.nan)
            ys.append(np.nan)
        for w, row in by_wave.iterrows():
            if pd.notna(row["consortium_mean"]):
                x = px(w, -off)
                marks["cons"][0].append(x)
                marks["cons"][1].append(float(py(row["consortium_mean"])))
                if pd.notna(row["consortium_ci_low"]):
                    lo, hi = py([row["consortium_ci_low"], row["consortium_ci_high"]])
                    bars["cons"].append([(x, lo), (x, hi)])
            if row["status"] == "shown":
                x = px(w, off)
                marks["own"][0].append(x)
                marks["own"][1].append(float(py(row["mean"])))
                lo, hi = py([row["ci_low"], row["ci_high"]])
                bars["own"].append([(x, lo), (x, hi)])
            elif row["status"] == "small":
                small_y = oy + 0.5
                ax.text(
                    px(w, 0),
                    small_y,
                    f"fewer than {k}\nresponses",
                    ha="center",
                    va="center",
                    fontsize=6.5,
                    style="italic",
                    color=INK,
                )
    ax.add_collection(LineCollection(frame, colors="#888888", linewidths=0.8))
    ax.add_collection(LineCollection(ticks, colors="#888888", linewidths=0.8))
    if bars["cons"]:
        ax.add_collection(LineCollection(bars["cons"], colors=GREY, linewidths=1.2, zorder=1))
    ax.add_collection(LineCollection(bars["own"], colors=OWN, linewidths=2.2, zorder=3))
    ax.plot(*lines["cons"], color=GREY, ls="--", lw=1.2, zorder=1)
    ax.plot(*lines["own"], color=OWN, lw=1.6, zorder=3)
    ax.scatter(*marks["cons"], s=18, color=GREY, zorder=2)
    ax.scatter(*marks["own"], marker="D", s=30, color=OWN, zorder=4)
    ax.set_xlabel("Wave; each panel: the scale's score, on its answer range (in the title)")
    fig.suptitle(
        "Your scores in every wave" + (", against the consortium" if consortium else ""),
        fontweight="bold",
    )
    handles = [Line2D([], [], marker="D", color=OWN, lw=1.6, label="Your hospital (95% interval)")]
    if consortium:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                color=GREY,
                ls="--",
                lw=1.2,
                label="Consortium average (95% interval)",
            )
        )
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=8)
    return fig


def peers(peer_group: pd.DataFrame, scales: pd.DataFrame, label: str) -> Figure:
    """One row per scale where the peer group is shown: the middle half (quartiles) of the
    consortium's hospitals (light grey bar) and of the peer group's (darker bar), each with its
    median (tick), and the hospital's own score with its 95% interval (navy diamond), all as
    distances from the consortium median (the axes of scales with different ranges agree)."""
    d = peer_group[peer_group["status"] == "shown"].reset_index(drop=True)
    own = scales.set_index("scale")
    n = len(d)
    labels = [f"{clean(r.label)} ({span(r.rmin, r.rmax)})" for r in d.itertuples(index=False)]
    fig = _fig(8.5, 0.36 * n + 1.6, labels, bottom=1.0)
    ax = fig.add_subplot()
    y = n - 1 - np.arange(n)
    ref = d["consortium_median"].to_numpy(float)
    _bars(ax, y + 0.14, d["consortium_q1"] - ref, d["consortium_q3"] - ref, LIGHT, 5, zorder=1)
    _bars(ax, ref * 0, y + 0.02, y + 0.26, GREY, 1.6, horizontal=False, zorder=2)
    _bars(ax, y - 0.14, d["q1"] - ref, d["q3"] - ref, PEER, 5, zorder=1)
    _bars(ax, d["median"] - ref, y - 0.26, y - 0.02, INK, 1.6, horizontal=False, zorder=2)
    m = own.reindex(d["scale"])
    ok = (m["status"] == "shown").to_numpy()
    _bars(ax, y[ok], (m["ci_low"] - ref)[ok], (m["ci_high"] - ref)[ok], OWN, 1.4, zorder=3)
    ax.scatter((m["mean"] - ref)[ok], y[ok], marker="D", s=40, color=OWN, zorder=4)
    ax.axvline(0, color=INK, lw=0.8, ls="--", zorder=0)
    ax.set_yticks(range(n)[::-1], labels)
    ax.set_ylim(-0.7, n - 0.3)
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
    ax.set_xlim(-1.1 * lim, 1.1 * lim)
    ax.set_xlabel("Score minus the consortium median (scale points)")
    ax.set_title(f"Your hospital, {clean(label)} and the consortium", y=1.0)
    fig.legend(
        handles=[
            Line2D([], [], marker="D", color=OWN, lw=1.4, label="You (95% interval)"),
            Line2D([], [], color=PEER, lw=5, label=f"Middle half of {clean(label)}"),
            Line2D([], [], color=LIGHT, lw=5, label="Middle half of all hospitals"),
        ],
        loc="lower center",
        ncol=3,
        frameon=False,
        fontsize=8,
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
