"""A small direct SVG writer for the hospital report's dot-and-bar charts.

The hospital report's figures (``figures.glance``, ``between_hospitals``, ``teams``,
``maturity``, ``stakeholders``, ``trend``, ``peers``) are lines, markers, rectangles and text on
linear axes. Drawn with matplotlib, each cost 0.1-0.6 s of a core (its artists, tick machinery,
text layout and SVG backend: bench/results/2026-12-01-reports.md); written here as SVG
elements directly they cost milliseconds. The consortium report's figures stay matplotlib.

What the SVG keeps (as matplotlib's did): vector marks; text as ``<text>`` (searchable, and
read by the confidentiality scan, ``confidentiality.scan_report``), in DejaVu Sans (the PDF's
font, measured with matplotlib's copy of it so labels and margins fit); the user unit is the
point (72 per inch), so ``viewBox`` gives the drawn size in points (``pdf.figure_typst``);
a name marked with ``ident`` is written as ``<g id="KEY-name-N"><text ...><tspan
class="ident">NAME</tspan>REST</text></g>``, as ``figures._ident_tspans`` does for matplotlib;
the same figure gives the same bytes (no date, no random id).

Marks of one colour and width go into one ``<path>`` (a consortium of thousands of hospitals
gives one path per colour, not thousands of elements). Coordinates are rounded to 0.01 pt.
Conventions follow matplotlib where the figures used it: a marker's ``s`` is its area in
points squared (a circle's diameter is sqrt(s)); line widths are in points; ticks are
``matplotlib.ticker.MaxNLocator``'s (pure arithmetic, no figure).
"""

from __future__ import annotations

import html as html_lib
import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from flaqum.report.escape import IDENT_CLASS
from flaqum.report.escape import html as esc_html

FONT = "'DejaVu Sans', Arial, Helvetica, sans-serif"
PT = 72.0  # points per inch: the SVG's user unit is the point
_IDENT = "\x00ident\x00"  # placeholder for a name group's id, numbered in ``Figure.svg``


#: coordinates formatted so far (nine in ten of a report's are ones written before: the same
#: axes, ticks and panels in every report of a batch); emptied when it grows large
_COORDS: dict = {}


def f(v: float) -> str:
    """A coordinate: 0.01 pt, no trailing zeros, no "-0" (``f"{v:.2f}"``, then "1.50" -> "1.5",
    "2.00" -> "2", "-0.00" -> "0"; "nan" and "inf" as they are). A function of the value
    alone, so kept per value (equal numbers of any type give the same text)."""
    try:
        return _COORDS[v]
    except KeyError:
        pass
    except TypeError:  # not hashable (a numpy array of one number)
        return _coordinate(v)
    s = _COORDS[v] = _coordinate(v)
    if len(_COORDS) > 100_000:  # some 10 MB
        _COORDS.clear()
    return s


def _coordinate(v) -> str:
    s = f"{v:.2f}"
    if s[-1] == "0":
        s = s[:-3] if s[-2] == "0" else s[:-1]
        if s == "-0":
            return "0"
    return s


def esc(text) -> str:
    return html_lib.escape(str(text), quote=False)


def attr(text) -> str:
    return html_lib.escape(str(text), quote=True)


# --- text measurement ---------------------------------------------------------------------------

_FONTS: dict = {}
_WIDTHS: dict = {}


try:  # matplotlib >= 3.10
    from matplotlib.ft2font import LoadFlags

    _NO_HINTING = LoadFlags.NO_HINTING
except ImportError:  # pragma: no cover
    from matplotlib.ft2font import LOAD_NO_HINTING as _NO_HINTING


def _font(bold: bool, italic: bool):
    key = (bold, italic)
    if key not in _FONTS:
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        prop = font_manager.FontProperties(
            family="DejaVu Sans",
            weight="bold" if bold else "normal",
            style="italic" if italic else "normal",
        )
        _FONTS[key] = FT2Font(font_manager.findfont(prop))
    return _FONTS[key]


def text_width(text: str, size: float, bold: bool = False, italic: bool = False) -> float:
    """The advance width in points of one line of ``text`` in DejaVu Sans at ``size`` points."""
    key = (text, bold, italic)
    w = _WIDTHS.get(key)
    if w is None:
        font = _font(bold, italic)
        font.set_size(100.0, 72)
        font.set_text(text, 0.0, flags=_NO_HINTING)
        w = font.get_width_height()[0] / 64 / 100  # per point of size
        if len(_WIDTHS) > 50_000:
            _WIDTHS.clear()
        _WIDTHS[key] = w
    return w * size


# Where the baseline sits from the anchor point, in ems, for a vertical alignment (DejaVu
# Sans: cap height 0.73, descent 0.24); SVG's dominant-baseline is not read by every renderer.
_BASELINE = {"baseline": 0.0, "center": 0.36, "top": 0.76, "bottom": -0.24}


# --- the figure ---------------------------------------------------------------------------------


@dataclass
class Figure:
    """A drawing of ``width`` x ``height`` inches; elements are appended in drawing order."""

    width: float
    height: float
    items: list[str] = field(default_factory=list)

    @property
    def w(self) -> float:
        return self.width * PT

    @property
    def h(self) -> float:
        return self.height * PT

    def add(self, element: str) -> None:
        self.items.append(element)

    def text(
        self,
        x: float,
        y: float,
        text: str,
        size: float = 9,
        ha: str = "left",
        va: str = "baseline",
        color: str = "#333333",
        bold: bool = False,
        italic: bool = False,
        rotate: float = 0,
        ident: int | None = None,
        line_gap: float = 1.2,
        cls: str = "",
    ) -> None:
        """Text at (x, y) points from the top left. Several lines (``\\n``) are written as
        one ``<text>`` each, as matplotlib does; ``va`` places the block. ``ident=N``: the first
        N characters are a name, marked for the confidentiality scan. ``cls``: the element's
        class (a block of several lines: a ``<g>`` of that class around them)."""
        lines = str(text).split("\n")
        anchor = {"left": "start", "center": "middle", "right": "end"}[ha]
        step = size * line_gap
        block = step * (len(lines) - 1)
        shift = size * _BASELINE[va] - {"top": 0.0, "center": block / 2}.get(va, block)
        if va == "baseline":
            shift = 0.0
        style = f'font-size="{f(size)}"'
        if cls and len(lines) == 1:
            style = f'class="{cls}" ' + style
        elif cls:  # a block of lines is one element of its class
            self.add(f'<g class="{cls}">')
        if bold:
            style += ' font-weight="bold"'
        if italic:
            style += ' font-style="italic"'
        if anchor != "start":
            style += f' text-anchor="{anchor}"'
        if color != "#333333":
            style += f' fill="{color}"'
        for i, line in enumerate(lines):
            dy = shift + i * step
            if rotate:
                pos = f'transform="translate({f(x)} {f(y)}) rotate({f(rotate)})" x="0" y="{f(dy)}"'
            else:
                pos = f'x="{f(x)}" y="{f(y + dy)}"'
            if ident is not None and i == 0:
                name, rest = line[:ident], line[ident:]
                self.add(
                    f'<g id="{_IDENT}"><text {pos} {style}><tspan class="{IDENT_CLASS}">'
                    f"{esc(name)}</tspan>{esc(rest)}</text></g>"
                )
            else:
                self.add(f"<text {pos} {style}>{esc(line)}</text>")
        if cls and len(lines) > 1:
            self.add("</g>")

    def axes(self, left: float, bottom: float, right: float, top: float, xlim, ylim) -> Axes:
        """Axes whose box is ``left``/``right`` inches from the figure's left and right edges
        and ``top``/``bottom`` inches from its top and bottom edges."""
        return Axes(
            self,
            left * PT,
            top * PT,
            self.w - right * PT,
            self.h - bottom * PT,
            tuple(map(float, xlim)),
            tuple(map(float, ylim)),
        )

    @staticmethod
    def _legend_widths(handles, ncol, size):
        key, gap = 2.0 * size, 0.8 * size
        nrow = math.ceil(len(handles) / ncol)
        cols = [handles[i * nrow : (i + 1) * nrow] for i in range(ncol)]
        return cols, [max(key + gap + text_width(h.label, size) for h in c) for c in cols if c]

    def legend_columns(self, handles, ncol: int, size: float = 8) -> int:
        """``ncol``, or fewer columns where the entries would not fit the figure's width."""
        ncol = max(1, min(ncol, len(handles)))
        while ncol > 1:
            widths = self._legend_widths(handles, ncol, size)[1]
            if sum(widths) + 2.0 * size * (len(widths) - 1) <= self.w - 12:
                break
            ncol -= 1
        return ncol

    def legend(self, handles: list[Handle], y: float, ncol: int, size: float = 8) -> None:
        """Legend entries centred at ``y`` points from the top (the first row), ``ncol``
        columns filled column by column (as matplotlib's ``fig.legend``)."""
        if not handles:
            return
        ncol = self.legend_columns(handles, ncol, size)
        cols, widths = self._legend_widths(handles, ncol, size)
        key, gap, pad = 2.0 * size, 0.8 * size, 2.0 * size
        total = sum(widths) + pad * (len(widths) - 1)
        x0 = (self.w - total) / 2
        self.add('<g class="legend">')
        for c, wdt in zip(cols, widths, strict=False):
            for j, h in enumerate(c):
                yy = y + j * size * 1.7
                h.draw(self, x0, x0 + key, yy)
                self.text(x0 + key + gap, yy, h.label, size=size, va="center")
            x0 += wdt + pad
        self.add("</g>")

    def legend_below(self, handles: list[Handle], ncol: int, size: float = 8) -> None:
        """The legend at the bottom of the figure (``fig.legend(loc="lower center")``)."""
        if handles:
            ncol = self.legend_columns(handles, ncol, size)
            nrow = math.ceil(len(handles) / ncol)
            self.legend(handles, self.h - 6 - (nrow - 0.5) * size * 1.7, ncol, size)

    def suptitle(self, text: str, size: float = 10.8) -> None:
        """The figure's title, centred at its top (matplotlib's ``suptitle``)."""
        self.text(
            self.w / 2,
            0.02 * self.h,
            text,
            size=size,
            ha="center",
            va="top",
            bold=True,
            cls="title",
        )

    def svg(self, alt: str = "", key: str = "fig") -> str:
        """The figure as an inline SVG element scaled to the page width (``width="100%"``,
        its aspect kept by the ``viewBox``) with an accessible name (``<title>``,
        ``aria-label``). ``key`` (one per figure of a report) makes the ids of the marked
        names unique in the report."""
        count = 0
        out = []
        for item in self.items:
            if _IDENT in item:
                count += 1
                item = item.replace(_IDENT, attr(f"{key}-name-{count}"))
            out.append(item)
        a = esc_html(alt)
        head = '<svg xmlns="http://www.w3.org/2000/svg"'
        if a:
            head += f' role="img" aria-label="{a}"'
        head += (
            f' width="100%" viewBox="0 0 {f(self.w)} {f(self.h)}" version="1.1"'
            f' font-family="{attr(FONT)}" fill="#333333">'
        )
        title = f"<title>{a}</title>" if a else ""
        return head + title + "\n" + "\n".join(out) + "\n</svg>"


# --- marks --------------------------------------------------------------------------------------


def _marker_path(marker: str, x: float, y: float, s: float) -> str:
    """A marker of area ``s`` (points squared, matplotlib's scatter ``s``) at (x, y)."""
    d = math.sqrt(s)
    if marker == "o":
        r = d / 2
        arc, back = _marker_parts(marker, s)
        return f"M{f(x - r)} {f(y)}{arc}{back}"
    if marker == "D":  # a square of side sqrt(s) turned by 45 degrees
        r = d / math.sqrt(2)
        fx, fy = f(x), f(y)
        return f"M{fx} {f(y - r)}L{f(x + r)} {fy}L{fx} {f(y + r)}L{f(x - r)} {fy}z"
    if marker == "s":
        r = d / 2
        return f"M{f(x - r)} {f(y - r)}{_marker_parts(marker, s)[0]}"
    if marker == "|":
        return f"M{f(x)} {f(y - d / 2)}V{f(y + d / 2)}"
    raise ValueError(f"unknown marker {marker!r}")


@lru_cache(maxsize=64)
def _marker_parts(marker: str, s: float) -> tuple[str, ...]:
    """The parts of a marker's path that do not depend on where it is (its size only)."""
    d = math.sqrt(s)
    if marker == "o":
        r = d / 2
        return (f"a{f(r)} {f(r)} 0 1 0 {f(2 * r)} 0", f"a{f(r)} {f(r)} 0 1 0 {f(-2 * r)} 0z")
    return (f"h{f(d)}v{f(d)}h{f(-d)}z",)


def markers(
    fig: Figure,
    xs,
    ys,
    marker: str = "o",
    s: float = 36,
    face="#333333",
    edge=None,
    lw: float = 1.0,
    cls: str = "",
) -> None:
    """Markers at points (xs, ys) in figure points; ``face`` and ``edge`` are one colour or
    one per mark ("none": not filled). Marks of the same colours share one path."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    n = len(xs)
    faces = [face] * n if isinstance(face, str) or face is None else list(face)
    edges = [edge] * n if isinstance(edge, str) or edge is None else list(edge)
    groups: dict[tuple, list[str]] = {}
    for x, y, fc, ec in zip(xs, ys, faces, edges, strict=True):
        if math.isfinite(x) and math.isfinite(y):
            groups.setdefault((fc, ec), []).append(_marker_path(marker, x, y, s))
    for (fc, ec), paths in groups.items():
        if marker == "|":
            style = f'fill="none" stroke="{fc}" stroke-width="{f(lw)}"'
        else:
            style = f'fill="{fc or "none"}"'
            if ec:
                style += f' stroke="{ec}" stroke-width="{f(lw)}" stroke-linejoin="miter"'
        c = f' class="{cls}"' if cls else ""
        fig.add(f'<path{c} d="{"".join(paths)}" {style}/>')


def segments(
    fig: Figure, segs, color: str, lw: float, dash: str = "", alpha: float = 1.0, cls: str = ""
) -> None:
    """Straight segments [((x0, y0), (x1, y1)), ...] in figure points, as one path."""
    d = "".join(
        f"M{f(a[0])} {f(a[1])}L{f(b[0])} {f(b[1])}"
        for a, b in segs
        if all(map(math.isfinite, (a[0], a[1], b[0], b[1])))
    )
    if not d:
        return
    style = f'fill="none" stroke="{color}" stroke-width="{f(lw)}"'
    if dash:
        style += f' stroke-dasharray="{dash}"'
    if alpha != 1:
        style += f' stroke-opacity="{f(alpha)}"'
    c = f' class="{cls}"' if cls else ""
    fig.add(f'<path{c} d="{d}" {style}/>')


def polyline(fig: Figure, xs, ys, color: str, lw: float, dash: str = "") -> None:
    """A line through the points, broken where a coordinate is missing (NaN)."""
    d, pen = [], False
    for x, y in zip(xs, ys, strict=True):
        if np.isfinite(x) and np.isfinite(y):
            d.append(f"{'L' if pen else 'M'}{f(x)} {f(y)}")
            pen = True
        else:
            pen = False
    if d:
        style = f'fill="none" stroke="{color}" stroke-width="{f(lw)}" stroke-linejoin="round"'
        if dash:
            style += f' stroke-dasharray="{dash}"'
        fig.add(f'<path d="{"".join(d)}" {style}/>')


def dashes(lw: float, kind: str = "--") -> str:
    """matplotlib's dash patterns, scaled by the line width as matplotlib scales them."""
    pattern = {"--": (3.7, 1.6), ":": (1.0, 1.65), "-.": (6.4, 1.6, 1.0, 1.6)}[kind]
    return ",".join(f(p * max(lw, 1.0)) for p in pattern)


@dataclass
class Handle:
    """A legend entry: a short line (``lw`` > 0), a marker, or both, and the label."""

    label: str
    color: str = "#333333"
    lw: float = 0.0
    dash: str = ""
    marker: str = ""
    face: str | None = None  # the marker's fill (default: ``color``)
    edge: str | None = None
    s: float = 36
    mew: float = 1.0

    def draw(self, fig: Figure, x0: float, x1: float, y: float) -> None:
        if self.lw:
            segments(fig, [((x0, y), (x1, y))], self.color, self.lw, self.dash)
        if self.marker:
            face = self.face if self.face is not None else self.color
            markers(
                fig,
                [(x0 + x1) / 2],
                [y],
                self.marker,
                self.s,
                face=face,
                edge=self.edge,
                lw=self.mew,
            )


# --- axes ---------------------------------------------------------------------------------------


#: The steps of matplotlib's automatic axis (``AutoLocator``); ``MaxNLocator``'s own default
#: steps are finer (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10).
AUTO_STEPS = (1, 2, 2.5, 5, 10)


def ticks(lo: float, hi: float, n: int = 5, steps=None) -> list[float]:
    """matplotlib's tick positions within [lo, hi]: ``MaxNLocator(n, steps)`` (``steps``
    None: MaxNLocator's default; ``AUTO_STEPS``: those of an automatic axis)."""
    from matplotlib.ticker import MaxNLocator

    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return []
    vals = MaxNLocator(n, steps=list(steps) if steps else None).tick_values(lo, hi)
    eps = 1e-9 * (hi - lo)
    return [float(v) for v in vals if lo - eps <= v <= hi + eps]


def tick_labels(values) -> list[str]:
    """The fewest decimals (up to 3) that tell the ticks apart and show them exactly, with a
    true minus sign (``tables.num``)."""
    from flaqum.report.tables import num

    values = list(values)
    for digits in range(4):
        if all(abs(round(v, digits) - v) < 1e-9 for v in values):
            break
    return [num(v, digits) for v in values]


class Axes:
    """A box of the figure, in points from its top left, with linear data limits."""

    def __init__(self, fig: Figure, x0, y0, x1, y1, xlim, ylim):
        self.fig = fig
        self.x0, self.y0, self.x1, self.y1 = x0, y0, x1, y1
        self.xlim, self.ylim = xlim, ylim

    def X(self, v):
        a, b = self.xlim
        return self.x0 + (np.asarray(v, float) - a) / (b - a) * (self.x1 - self.x0)

    def Y(self, v):
        a, b = self.ylim
        return self.y1 - (np.asarray(v, float) - a) / (b - a) * (self.y1 - self.y0)

    # marks in data coordinates

    def hbars(self, pos, lo, hi, colors, lw, alpha=1.0, cls=""):
        """Horizontal interval bars at heights ``pos`` from ``lo`` to ``hi``; one path per
        colour."""
        self._bars(pos, lo, hi, colors, lw, True, alpha, cls)

    def vbars(self, pos, lo, hi, colors, lw, alpha=1.0, cls=""):
        self._bars(pos, lo, hi, colors, lw, False, alpha, cls)

    def _bars(self, pos, lo, hi, colors, lw, horizontal, alpha, cls):
        pos, lo, hi = (np.asarray(a, float) for a in (pos, lo, hi))
        cols = [colors] * len(pos) if isinstance(colors, str) else list(colors)
        ok = (np.isfinite(pos) & np.isfinite(lo) & np.isfinite(hi)).tolist()
        # every bar's coordinates at once (the same numbers as one bar at a time)
        along, across = (self.Y, self.X) if horizontal else (self.X, self.Y)
        at, a0, a1 = along(pos).tolist(), across(lo).tolist(), across(hi).tolist()
        groups: dict[str, list] = {}
        for keep, p, a, b, c in zip(ok, at, a0, a1, cols, strict=True):
            if not keep:
                continue
            seg = ((a, p), (b, p)) if horizontal else ((p, a), (p, b))
            groups.setdefault(c, []).append(seg)
        for c, segs in groups.items():
            segments(self.fig, segs, c, lw, alpha=alpha, cls=cls)

    def scatter(self, xs, ys, marker="o", s=36, face="#333333", edge=None, lw=1.0, cls=""):
        markers(self.fig, self.X(xs), self.Y(ys), marker, s, face, edge, lw, cls)

    def plot(self, xs, ys, color, lw, dash=""):
        polyline(self.fig, self.X(xs), self.Y(ys), color, lw, dash)

    def segments(self, segs, color, lw, dash="", alpha=1.0, cls=""):
        """Segments [((x0, y0), (x1, y1)), ...] in data coordinates, as one path."""
        segments(
            self.fig,
            [
                (
                    (float(self.X(p[0])), float(self.Y(p[1]))),
                    (float(self.X(q[0])), float(self.Y(q[1]))),
                )
                for p, q in segs
            ],
            color,
            lw,
            dash,
            alpha,
            cls,
        )

    def axvline(self, x, color, lw, dash="", cls=""):
        if x is None or not np.isfinite(x):
            return
        xx = float(self.X(x))
        segments(self.fig, [((xx, self.y0), (xx, self.y1))], color, lw, dash, cls=cls)

    def axhline(self, y, color, lw, dash="", cls=""):
        if y is None or not np.isfinite(y):
            return
        yy = float(self.Y(y))
        segments(self.fig, [((self.x0, yy), (self.x1, yy))], color, lw, dash, cls=cls)

    def axhspan(self, lo, hi, color):
        a, b = float(self.Y(hi)), float(self.Y(lo))
        self.fig.add(
            f'<rect x="{f(self.x0)}" y="{f(a)}" width="{f(self.x1 - self.x0)}" '
            f'height="{f(b - a)}" fill="{color}"/>'
        )

    def text(self, x, y, text, **kw):
        self.fig.text(float(self.X(x)), float(self.Y(y)), text, **kw)

    # the frame

    def spines(self, color="#888888", lw=0.8):
        """The left and bottom axis lines (matplotlib's with top and right spines off)."""
        segments(
            self.fig,
            [((self.x0, self.y0), (self.x0, self.y1)), ((self.x0, self.y1), (self.x1, self.y1))],
            color,
            lw,
        )

    def xticks(self, values, labels=None, size=9, color="#888888", length=3.5):
        values = [v for v in values if self.xlim[0] <= v <= self.xlim[1]]
        labels = tick_labels(values) if labels is None else labels
        xs = [float(self.X(v)) for v in values]
        segments(
            self.fig, [((x, self.y1), (x, self.y1 + length)) for x in xs], color, 0.8, cls="xtick"
        )
        for x, lab in zip(xs, labels, strict=True):
            self.fig.text(
                x, self.y1 + length + 3.5, lab, size=size, ha="center", va="top", cls="xtick"
            )

    def yticks(self, values, labels=None, size=9, color="#888888", length=3.5, bold=(), ident=None):
        """Ticks and labels on the left axis; ``bold``: the labels (by position) in bold;
        ``ident``: per label, the length of the name it starts with (marked) or None."""
        keep = [i for i, v in enumerate(values) if self.ylim[0] <= v <= self.ylim[1]]
        values = [values[i] for i in keep]
        labels = tick_labels(values) if labels is None else [labels[i] for i in keep]
        ident = [None] * len(values) if ident is None else [ident[i] for i in keep]
        bold = set(bold)
        ys = [float(self.Y(v)) for v in values]
        segments(
            self.fig, [((self.x0 - length, y), (self.x0, y)) for y in ys], color, 0.8, cls="ytick"
        )
        for j, (i, y, lab) in enumerate(zip(keep, ys, labels, strict=True)):
            self.fig.text(
                self.x0 - length - 3.5,
                y,
                lab,
                size=size,
                ha="right",
                va="center",
                bold=i in bold,
                ident=ident[j],
                cls="ytick",
            )

    def xlabel(self, text, size=9, below=20):
        self.fig.text(
            (self.x0 + self.x1) / 2,
            self.y1 + below,
            text,
            size=size,
            ha="center",
            va="top",
            cls="xlabel",
        )

    def ylabel(self, text, size=9, left=30):
        self.fig.text(
            self.x0 - left,
            (self.y0 + self.y1) / 2,
            text,
            size=size,
            ha="center",
            va="bottom",
            rotate=-90,
            cls="ylabel",
        )

    def title(self, text, size=10, bold=True, loc="center", pad=6):
        x = {"center": (self.x0 + self.x1) / 2, "left": self.x0}[loc]
        self.fig.text(
            x, self.y0 - pad, text, size=size, ha=loc, bold=bold, va="bottom", cls="title"
        )
