"""The A4 PDF of a report without Quarto: the executed template's outputs written as Typst and
compiled by the ``typst`` package (the Typst compiler in a wheel, as Quarto's own PDF path uses).

Why Typst and not WeasyPrint on the HTML: measured on the demo's reports (bench/results/
2026-12-01-reports.md), WeasyPrint needs 10 to 12 s of a core per report (its SVG drawing and
CSS cascade are Python, over every node of the inline figures) and Pango from the system,
which ``pip`` cannot install; Typst compiles the same report in about 0.1 s from a wheel that
works on a fresh machine. Both keep figures as vectors and embed their fonts.

The PDF is written from the same notebook, output by output, as the HTML that the
confidentiality scan read (``render.render_report``): its text is the HTML's text. Layout:

- A4, 1.8 cm margins, "page X of Y" in the footer; DejaVu Sans, the figures' font, is taken from
  matplotlib's own copy (so every machine prints with the same font, embedded as a subset).
- Figures are the report's SVGs, drawn by Typst as vectors at ``FIGURE_SCALE`` of their drawn
  size, at most ``FIGURE_WIDTH_CM`` wide and ``MAX_FIGURE_CM`` tall (a team chart of 40 teams
  is scaled down), kept on one page with their caption; where the rest of a page holds a
  figure at ``FIT_SHRINK`` of that size or more, it prints that much smaller rather than
  leave the page's foot empty.
- A heading never ends a page (Typst's headings stick to what follows; a heading right before
  a figure is written in the figure's block). A table of up to ``LONG_TABLE`` rows is kept on
  one page; a longer one breaks between rows and repeats its header. Tables take the page's
  width at most, their columns as wide as makes the table shortest (``_column_widths``).
- The appendices of the template and "Methods" (``APPENDIX``) move to the end, each on a new
  page titled as an appendix ("Appendix A: Every question"); the HTML keeps them where they
  are. The body before them is what a reader acts on: at most ``BODY_PAGES`` pages
  (``body_pages``; tests/test_pdf_pages.py renders the demo's largest hospital).
- A table row's height is set where its lines are certain (``cell_lines``: the widths of
  Typst's shaper, its line breaking), as Typst would size it: Typst then lays the row out
  once instead of twice (see "row heights" below). Such a row is never split across two
  pages (an ``auto`` row of several lines could be); in the demo's reports none was.
- Table rows are styled from ``report.css``: its ``table.report-table tr.<class> td[:nth-child(n)]``
  rules (colour, bold, italic, background) apply to the PDF's tables too, so the two agree.
- The same input gives the same bytes: no date is written.
"""

from __future__ import annotations

import functools
import html as html_lib
import math
import re
from html.parser import HTMLParser
from pathlib import Path

from flaqum.report import htmlread

#: Sections moved to the end of the PDF as appendices (A, B, ...), by their heading, in this
#: order: the reference material, after the report a reader acts on.
APPENDIX = (
    "Appendix: every question",
    "Appendix: core processes below the baseline",
    "Methods",
)
#: Tables with more body rows than this may break across pages (repeating their header), so
#: that a long table starts below what precedes it instead of leaving that page's foot empty.
LONG_TABLE = 6
#: The body of a report (the pages before its first appendix) fits in this many pages.
BODY_PAGES = 10
#: The tables' text size and a row's padding above and below it (pt): with these the body of
#: every report of the demo fits in BODY_PAGES (at 7.5 pt and 1.4 pt, 2 of 59 took 11 pages).
TABLE_PT, ROW_INSET_PT = 7.0, 1.2
#: Table entries up to SHORT_TEXT characters stay on one line; longer ones may wrap. CHAR_PT:
#: the mean width of a character of the tables' DejaVu Sans (4.75 pt at 7.5 pt; digits and
#: capitals are wider), SLACK the margin added to lengths in characters; INSET_PT: a cell's
#: side padding.
SHORT_TEXT, CHAR_PT, SLACK, INSET_PT = 14, 4.75 * TABLE_PT / 7.5, 1.06, 3.0
#: The text width of an A4 page with 1.8 cm margins, the widest and the tallest figure (cm):
#: sizes that keep the body of the demo's largest reports within 10 pages.
TEXT_WIDTH_CM, FIGURE_WIDTH_CM, MAX_FIGURE_CM = 17.4, 15.0, 16.0
#: figures print at this share of their drawn size (their 8-point text prints at about 7 pt)
FIGURE_SCALE = 0.85
#: a figure that does not fit in the rest of a page prints that much smaller (down to this
#: share of its size) rather than leave the page's foot empty
FIT_SHRINK = 0.8
#: the page's bottom margin (cm; the footer with the page number sits in it)
BOTTOM_CM = 2.0

_SPECIAL = re.compile(r"([\\#*_`$<>@\[\]()=\-+/~\"'.:])")


def text(s: str) -> str:
    """Plain text as Typst markup (every markup character escaped; "(" too: right after a
    ``#strong[...]`` it would be read as more of the call)."""
    s = re.sub(r"\s+", " ", s)
    return _SPECIAL.sub(r"\\\1", s)


def string(s: str) -> str:
    """A Typst string literal."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Markdown (the template's headings and the content's text) --------------------------------


@functools.cache
def _markdown_parser():
    """mistune's parser (to tokens), made once: it keeps no state between documents."""
    import mistune

    return mistune.create_markdown(renderer=None, plugins=["strikethrough", "table"])


def _inline(tokens) -> str:
    out = []
    for t in tokens:
        kind = t["type"]
        if kind == "text":
            out.append(text(html_lib.unescape(t["raw"])))
        elif kind == "strong":
            out.append(f"#strong[{_inline(t['children'])}]")
        elif kind == "emphasis":
            out.append(f"#emph[{_inline(t['children'])}]")
        elif kind == "strikethrough":
            out.append(f"#strike[{_inline(t['children'])}]")
        elif kind == "codespan":
            out.append(f"#raw({string(t['raw'])})")
        elif kind == "link":
            out.append(f"#link({string(t['attrs']['url'])})[{_inline(t['children'])}]")
        elif kind in ("softbreak",):
            out.append(" ")
        elif kind == "linebreak":
            out.append("#linebreak()")
        elif kind == "inline_html":
            continue  # <span class="ident">: the name inside is text
        elif "children" in t:
            out.append(_inline(t["children"]))
        elif "raw" in t:
            out.append(text(t["raw"]))
    return "".join(out)


def _blocks(tokens) -> list[str]:
    out = []
    for t in tokens:
        kind = t["type"]
        if kind == "blank_line":
            continue
        if kind == "heading":
            level = t["attrs"]["level"]
            out.append(("=" * max(1, level - 1)) + " " + _inline(t["children"]))
        elif kind in ("paragraph", "block_text"):
            out.append(f"#par[{_inline(t['children'])}]")
        elif kind == "list":
            items = []
            for item in t["children"]:
                body = "\n".join(_blocks(item.get("children", [])))
                items.append(f"[{body}]")
            if t["attrs"].get("ordered"):
                start = t["attrs"].get("start", 1) or 1
                out.append(f"#enum(start: {start}, {', '.join(items)})")
            else:
                out.append(f"#list({', '.join(items)})")
        elif kind == "block_quote":
            out.append(f"#quote(block: true)[{chr(10).join(_blocks(t['children']))}]")
        elif kind == "thematic_break":
            out.append("#line(length: 100%, stroke: 0.5pt + luma(180))")
        elif kind == "block_code":
            out.append(f"#raw(block: true, {string(t['raw'])})")
        elif kind == "block_html":
            out.append(table_typst(t["raw"], {}) if "<table" in t["raw"] else "")
        elif kind == "table":
            out.append(table_typst(_md_table_html(t), {}))
        elif "children" in t:
            out.extend(_blocks(t["children"]))
    return out


def _md_table_html(t) -> str:
    import mistune

    return mistune.html(mistune.renderers.markdown.MarkdownRenderer()([t], None))


@functools.lru_cache(maxsize=4096)
def markdown(md: str) -> str:
    """Markdown as Typst markup. Kept for the batch: most of a report's text (headings, how to
    read, notes) is the same in every report of a render batch (137 different texts in 570)."""
    tokens = _markdown_parser()(md)
    return "\n".join(b for b in _blocks(tokens) if b)


def heading_text(md: str) -> str:
    """The plain text of a Markdown heading line ("## Every question" -> "Every question")."""
    return re.sub(r"<[^>]+>", "", md.strip().lstrip("#")).strip()


# --- HTML tables -------------------------------------------------------------------------------


class _Table(HTMLParser):
    """The rows of a report table: per row its class and cells (tag, class, colspan, markup)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.caption, self.head, self.body = "", [], []
        self._row = self._cell = None
        self._in_head = self._in_caption = False
        self._fmt = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr":
            self._row = {"class": a.get("class") or "", "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {
                "tag": tag,
                "class": a.get("class") or "",
                "colspan": int(a.get("colspan", 1) or 1),
                "text": [],
                "runs": [],  # (text, bold, italic); None for a line break
            }
        elif tag in ("strong", "b") and self._cell is not None:
            self._cell["text"].append("#strong[")
            self._fmt.append(tag)
        elif tag in ("em", "i") and self._cell is not None:
            self._cell["text"].append("#emph[")
            self._fmt.append(tag)
        elif tag == "br" and self._cell is not None:
            self._cell["text"].append("#linebreak()")
            self._cell["runs"].append(None)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._cell["text"].append("]" * len(self._fmt))
            self._fmt = []
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.head if self._in_head or self._all_th(self._row) else self.body).append(self._row)
            self._row = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("strong", "b", "em", "i") and self._cell is not None and self._fmt:
            self._fmt.pop()
            self._cell["text"].append("]")

    def _all_th(self, row) -> bool:
        return not self.body and row["cells"] and all(c["tag"] == "th" for c in row["cells"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"].append(text(data))
            bold = any(f in ("strong", "b") for f in self._fmt)
            self._cell["runs"].append((data, bold, any(f in ("em", "i") for f in self._fmt)))
        elif self._in_caption:
            self.caption += data


_CSS_ROW = re.compile(
    r"table\.report-table\s+tr\.([\w-]+)\s+td(?::nth-child\((\d+)\))?\s*\{([^}]*)\}"
)


def css_row_styles(css: str) -> list[tuple[str, int | None, dict]]:
    """The stylesheet's row rules for report tables: (row class, column from 1 or None, style)."""
    rules = []
    for cls, col, body in _CSS_ROW.findall(css):
        style = {}
        for decl in body.split(";"):
            if ":" not in decl:
                continue
            prop, value = (x.strip() for x in decl.split(":", 1))
            if prop in ("color", "background", "background-color") and value.startswith("#"):
                style["fill" if prop.startswith("background") else "color"] = value
            elif prop == "font-weight" and value in ("bold", "700"):
                style["bold"] = True
            elif prop == "font-style" and value == "italic":
                style["italic"] = True
        rules.append((cls, int(col) if col else None, style))
    return rules


#: a header cell's background and the rule below the header (a body row has a thin rule below
#: it: the table's own stroke); set on the header's cells rather than by a function of the
#: cell's row, which Typst would call for every cell of every table
_HEAD = 'fill: rgb("#f4f4f4"), stroke: (bottom: 1pt + rgb("#888888"), rest: none)'


def _faces(rows, head: int, styles) -> None:
    """Give each cell its stylesheet rules (``rules``: those of its row's classes and its column;
    none for the ``head`` header rows), whether it is in the table's first row (``first``:
    bold) and the face its text prints in (``bold``, ``italic``): worked out once, for the
    cell's markup (``_cell``) and its row's height (``_row_heights``)."""
    for y, r in enumerate(rows):
        classes, col = r["class"].split(), 0
        for c in r["cells"]:
            c["rules"] = [
                style
                for cls, at, style in (styles if y >= head else ())
                if cls in classes and (at is None or at == col + 1)
            ]
            c["first"] = y == 0
            c["bold"] = c["first"] or any(x.get("bold", False) for x in c["rules"])
            c["italic"] = any(x.get("italic", False) for x in c["rules"])
            col += c["colspan"]


def _cell(c, head: bool = False) -> str:
    """A cell as Typst (``_faces`` first): its stylesheet rules, the first row's bold (set on
    the cell: a show rule on the first row's cells costs Typst a check of every cell);
    ``head``: a header cell (its fill and rule)."""
    body = "".join(c["text"]).strip()
    fill = None
    for style in c["rules"]:
        if style.get("bold"):
            body = f"#strong[{body}]"
        if style.get("italic"):
            body = f"#emph[{body}]"
        if "color" in style:
            body = f'#text(fill: rgb("{style["color"]}"))[{body}]'
        fill = style.get("fill", fill)
    if c["first"] and body:
        body = f'#text(weight: "bold")[{body}]'
    args = []
    if c["colspan"] > 1:
        args.append(f"colspan: {c['colspan']}")
    if "num" in c["class"].split():
        args.append("align: right")
    if fill:
        args.append(f'fill: rgb("{fill}")')
    if head:
        args.append(_HEAD)
    if args:
        return f"table.cell({', '.join(args)})[{body}]"
    return f"[{body}]"


def _words(entry: str, bold: bool) -> list[float]:
    """The widths in characters of an entry's words (split at spaces only: a non-breaking
    space or hyphen does not break); a header's bold letters are an eighth wider."""
    scale = SLACK * (9 / 8 if bold else 1)
    return [len(w) * scale for w in re.split(r"[ \t\r\n]+", entry.strip()) if w]


def _lines(words: list[float], width: float) -> int:
    """Lines of an entry wrapped greedily at ``width`` characters (a longer word breaks)."""
    lines, used = 1, 0.0
    for w in words:
        if used and used + 1 + w <= width:
            used += 1 + w
            continue
        if used:
            lines += 1
        if w > width:  # a word longer than the line breaks into pieces
            extra = math.ceil(w / width) - 1
            lines += extra
            used = w - width * extra
        else:
            used = w
    return lines


@functools.lru_cache(maxsize=16384)
def _wraps(words: tuple, full: float, least: float, steps: int):
    """An entry's lines at ``least`` + 0, 1, ... ``steps`` - 1 characters wide (one line from
    its whole length on): worked out once per entry and width, as entries repeat (in a
    column, and across the reports of a batch: the questions, the scales)."""
    import numpy as np

    out = np.ones(steps, dtype=np.int32)
    wraps = range(min(steps, math.ceil(full - least)))
    out[: len(wraps)] = [_lines(list(words), least + i) for i in wraps]
    out.flags.writeable = False
    return out


def _column_widths(rows, ncol: int, numeric: set[int]) -> list[str]:
    """Column widths (as shares of the text width) that make the table as short as it can be.

    Each column gets at least its widest unbreakable entry: a number or an interval (never
    wrapped; words in a numeric column, "fewer than 5 responses", may wrap), an entry
    of up to ``SHORT_TEXT`` characters, the longest word of a longer entry or of a header.
    The room left over on the line goes, a few characters at a time, where it saves the most
    lines of the table (a row is as tall as its tallest cell; headers count, bold), so long
    entries wrap only where the page has no room for them. Lengths are in characters of
    ``CHAR_PT`` points, widened by ``SLACK``."""
    import numpy as np

    least, want = [1.0] * ncol, [1.0] * ncol
    cells = []  # per row: (column, words, length on one line) of its single-column cells
    for r in rows:
        col, row = 0, []
        for c in r["cells"]:
            entry = " ".join("".join(run[0] for run in c["runs"] if run).split())
            words = _words(entry, c["tag"] == "th")
            full = sum(words) + max(0, len(words) - 1)
            number = col in numeric and not re.search(r"[^\W\d_]{3,}", entry)
            if c["tag"] != "th" and (number or len(entry) <= SHORT_TEXT):
                lo = full  # a number (an interval) or a short entry: one line
            else:
                lo = max(words, default=1.0)
            if c["colspan"] == 1 and col < ncol:
                least[col], want[col] = max(least[col], lo), max(want[col], full, lo)
                row.append((col, words, full))
            col += c["colspan"]
        cells.append(row)
    room = (TEXT_WIDTH_CM / 2.54 * 72 - 2 * INSET_PT * ncol) / CHAR_PT  # characters per line
    if sum(want) <= room or sum(least) >= room:
        widths = want if sum(want) <= room else least
        return [f"{max(w, 1):.1f}fr" for w in widths]
    spare = room - sum(least)
    # lines[c][i, r]: the lines of row r when column c is least[c] + i characters wide
    steps = int(spare) + 1
    lines = [np.ones((steps, len(cells)), dtype=np.int32) for _ in range(ncol)]
    for r, row in enumerate(cells):
        for col, words, full in row:
            if full > least[col]:  # else one line at any width
                lines[col][:, r] = _wraps(tuple(words), full, least[col], steps)
    at = [0] * ncol
    while True:
        now = np.stack([lines[c][at[c]] for c in range(ncol)])
        height = now.max(axis=0).sum()
        left = steps - 1 - sum(at)  # characters still to give
        if left < 1:
            break
        # each row's height without column c: its tallest other cell (the second tallest
        # where c is the tallest)
        top = now.argmax(axis=0)
        first = now.max(axis=0)
        second = np.sort(now, axis=0)[-2] if ncol > 1 else np.zeros_like(first)
        best = None  # (lines saved per character, -characters, column)
        for c in range(ncol):
            others = np.where(top == c, second, first)
            wider = lines[c][at[c] + 1 : at[c] + 1 + left]
            saved = height - np.maximum(others, wider).sum(axis=1)
            gain = np.flatnonzero(saved > 0)
            if gain.size == 0:
                continue
            # the most lines saved per character; of equals, the fewest characters
            per = saved[gain] / (gain + 1)
            d = int(gain[np.argmax(per)]) + 1
            key = (saved[d - 1] / d, -d)
            if best is None or key > best[:2]:
                best = (*key, c)
        if best is None:
            break
        at[best[2]] -= best[1]
    widths = [least[c] + at[c] for c in range(ncol)]
    return [f"{max(w, 1):.1f}fr" for w in widths]


# --- row heights -------------------------------------------------------------------------------
#
# Typst sizes a table row of ``auto`` height by laying each of its cells out twice: once to
# measure it, once to place it. A row given its height is laid out once, and the tables are
# most of a report's PDF (about 2,400 cells). So where the lines of every cell of a row are
# certain, the row gets the height Typst would give it; where they are not, it stays ``auto``.
# The lines come from the widths Typst's shaper gives the text (HarfBuzz, which Typst's
# rustybuzz ports: the same fonts, kerning and ligatures) and Typst's line breaking for text
# that is not justified (first fit). The PDF is the same, byte for byte, as with every row
# ``auto``: tests/test_pdf_pages.py compiles the demo's largest report both ways, and
# tests/test_pdf_rows.py checks 2,000 cells of the reports' kinds against Typst's own heights.
# Measured on the demo's 59 reports (their Typst sources compiled both ways in one process):
# every row of every table gets its height, the 59 PDFs are identical both ways, and Typst's
# CPU per report falls from 0.62 to 0.46 s.

#: A text line's height in a table cell, in em of the table's text: Typst's "cap height" top
#: edge to the baseline (DejaVu Sans has no OS/2 cap height, so Typst takes its typographic
#: ascender, 1556 of 2048 units), and the leading between two lines (the preamble's
#: ``par(leading:)``, written from it).
LINE_EM, LEADING_EM = 1556 / 2048, 0.55
#: A line this close to the room it has (points) is too close to call: its row stays auto.
CLOSE_PT = 0.01

#: Characters whose line-break rules (Unicode's UAX #14, which Typst follows) this module
#: knows: Latin letters and digits, spaces, and common punctuation. Lines break at a space,
#: and perhaps at a space before closing punctuation (``_NO_BREAK_BEFORE``) or after an
#: opening bracket (``_NO_BREAK_AFTER``), after a hyphen, a dash or a slash (``_MAYBE``) and
#: before an em dash (``_MAYBE_BEFORE``): a cell's lines are certain when they are the same
#: with and without the perhaps.
_KNOWN = re.compile(
    r"[\x20-\x7e\xa0-\xac\xae-\u024f\u1e00-\u1eff\u2011\u2013\u2014\u2018\u2019\u201c"
    r"\u201d\u2026\u2212\u2264\u2265]*"
)
_NO_BREAK_BEFORE, _NO_BREAK_AFTER = frozenset(")]},.;:!?/%"), frozenset("([{")
_MAYBE = frozenset("-/|!?]}\u2013\u2014\u2026")
#: characters a line may break before (UAX #14's B2 and BB: the em dash, the acute accent)
_MAYBE_BEFORE = frozenset("\u2014\u00b4")


@functools.cache
def _font(bold: bool, italic: bool):
    """The DejaVu Sans face Typst prints a cell's text with, as a HarfBuzz font at its units."""
    import uharfbuzz as hb

    name = {(0, 0): "", (1, 0): "-Bold", (0, 1): "-Oblique", (1, 1): "-BoldOblique"}
    face = hb.Face(
        hb.Blob.from_file_path(str(Path(fonts_dir()) / f"DejaVuSans{name[bold, italic]}.ttf"))
    )
    return hb.Font(face), face.upem


@functools.lru_cache(maxsize=1 << 16)
def _width(text_: str, bold: bool, italic: bool) -> float:
    """The width (pt) of a run of text in the tables' size, as Typst's shaper gives it; NaN
    when a character is not in the face (Typst would print it in another font)."""
    import uharfbuzz as hb

    font, upem = _font(bold, italic)
    buf = hb.Buffer()
    buf.add_str(text_)
    buf.guess_segment_properties()
    buf.language = "en"
    hb.shape(font, buf, {})
    if any(g.codepoint == 0 for g in buf.glyph_infos):
        return math.nan
    return sum(p.x_advance for p in buf.glyph_positions) / upem * TABLE_PT


def _greedy(width, ends, room: float) -> set[int]:
    """Lines of Typst's simple line breaking (first fit, as for text that is not justified):
    ``ends`` are the break opportunities (where a line may end, the text's end last) and
    ``width(a, b)`` a line's width from a to b (its trailing space left out). A piece that does
    not fit ends the line before it; a piece wider than the room has a line of its own. Where a
    line is within ``CLOSE_PT`` of the room both outcomes are followed: the answer is every
    count of lines that can come out."""

    def fits(w) -> tuple[bool, ...]:
        if not w == w or abs(w - room) <= CLOSE_PT:  # NaN: unknown
            return (True, False)
        return (w <= room,)

    counts, states = set(), [(0, 0, 0, None)]  # (next end, lines done, line start, last end)
    while states:
        if len(states) > 64:
            return {-1, -2}  # too many close calls to follow: not certain
        k, lines, start, last = states.pop()
        if k == len(ends):
            counts.add(lines)
            continue
        (end, nxt) = ends[k]
        for fit in fits(width(start, end)):
            if not fit and last is not None:  # the line ends before this piece
                done, first, again = lines + 1, last, fits(width(last, end))
            else:
                done, first, again = lines, start, (fit,)
            for fit2 in again:
                if k + 1 == len(ends) or not fit2:
                    states.append((k + 1, done + 1, nxt, None))
                else:
                    states.append((k + 1, done, first, nxt))
    return counts


def cell_lines(runs, room: float, bold: bool = False, italic: bool = False) -> int | None:
    """The lines Typst breaks a cell's text into at ``room`` points wide, or None where that is
    not certain (see ``_greedy`` and ``_KNOWN``). ``runs``: (text, bold, italic), None for a
    line break; ``bold``, ``italic``: the whole cell's. Entries repeat (in a table's column,
    across the reports of a batch): each is worked out once."""
    return _cell_lines(tuple(runs), room, bold, italic)


@functools.lru_cache(maxsize=1 << 16)
def _cell_lines(runs, room: float, bold: bool, italic: bool) -> int | None:
    chars = []  # (character, bold, italic), spaces collapsed
    for run in runs:
        if run is None:
            return None  # a forced line break
        data, b, i = run
        if re.search(r"\n[ \t]*\n", data) or not _KNOWN.fullmatch(data.replace("\n", " ")):
            return None  # a paragraph break; a character of other rules
        for ch in data:
            if ch in " \t\r\n":  # a space, in its run's face (the first of several)
                if chars and chars[-1][0] != " ":
                    chars.append((" ", b or bold, i or italic))
            else:
                chars.append((ch, b or bold, i or italic))
    while chars and chars[-1][0] == " ":
        chars.pop()
    if chars and chars[0][0] == " ":
        chars.pop(0)
    if not chars:
        return 0

    def width(a: int, b: int) -> float:
        total, k = 0.0, a
        while k < b:  # a run of one face at a time
            face = chars[k][1:]
            j = k
            while j < b and chars[j][1:] == face:
                j += 1
            total += _width("".join(c for c, _, _ in chars[k:j]), *face)
            k = j
        return total

    text_ = "".join(c for c, _, _ in chars)
    if len(set(c[1:] for c in chars)) == 1 and " " not in text_:
        one = _width(text_, *chars[0][1:])
        if one == one and (one <= room - CLOSE_PT or not set(text_) & (_MAYBE | _MAYBE_BEFORE)):
            return 1  # one piece: one line, over-full or not
    sure, maybe = [], []  # (line end, where the next line starts)
    for k, c in enumerate(text_):
        if c == " ":
            before, after = text_[k - 1], text_[k + 1]
            (
                sure if before not in _NO_BREAK_AFTER and after not in _NO_BREAK_BEFORE else maybe
            ).append((k, k + 1))
        else:
            if c in _MAYBE and k + 1 < len(text_) and text_[k + 1] != " ":
                maybe.append((k + 1, k + 1))
            if c in _MAYBE_BEFORE and k > 0 and text_[k - 1] != " ":
                maybe.append((k, k))
    whole = (len(text_), len(text_))
    counts = _greedy(width, sure + [whole], room)
    if maybe:
        counts |= _greedy(width, sorted(set(sure + maybe)) + [whole], room)
    return counts.pop() if len(counts) == 1 else None


def row_height(lines: int) -> float:
    """A table row's height (pt) when its tallest cell has ``lines`` lines."""
    return (lines * LINE_EM + (lines - 1) * LEADING_EM) * TABLE_PT + 2 * ROW_INSET_PT


def _row_heights(rows, widths: list[float]) -> list[str]:
    """Each row's height as Typst's ``rows:`` entry: a length where it is certain, else auto
    (``_faces`` first: the face of each cell's text). ``widths``: the columns' shares of the
    text width (fr)."""
    page = TEXT_WIDTH_CM / 2.54 * 72
    cols = [page * w / sum(widths) for w in widths]
    out = []
    for r in rows:
        col, most = 0, 0
        for c in r["cells"]:
            span = c["colspan"]
            room = sum(cols[col : col + span]) - 2 * INSET_PT
            n = cell_lines(c["runs"], room, c["bold"], c["italic"])
            col += span
            if n is None:
                most = None
                break
            most = max(most, n)
        out.append(f"{row_height(most)!r}pt" if most else "auto")
    return out


def table_typst(html: str, styles) -> str:
    """One HTML report table as a Typst table (see the module docstring)."""
    p = _Table()
    htmlread.feed(p, html)  # html.parser's reading, faster
    rows = p.head + p.body
    if not rows:
        return ""
    ncol = max(sum(c["colspan"] for c in r["cells"]) for r in rows)
    numeric = set()
    for r in p.body:
        col = 0
        for c in r["cells"]:
            if "num" in c["class"].split():
                numeric.add(col)
            col += c["colspan"]
    _faces(rows, len(p.head), styles)
    header = ""
    if p.head:
        cells = []
        for r in p.head:
            cells += [_cell(c, head=True) for c in r["cells"]]
            filled = sum(c["colspan"] for c in r["cells"])
            cells += [f"table.cell({_HEAD})[]"] * (ncol - filled)
        header = f"table.header(repeat: true, {', '.join(cells)})"
    lines = []
    for r in p.body:
        cells = [_cell(c) for c in r["cells"]]
        cells += ["[]"] * (ncol - sum(c["colspan"] for c in r["cells"]))
        lines.append(", ".join(cells))
    widths = _column_widths(rows, ncol, numeric)
    heights = _row_heights(rows, [float(w[:-2]) for w in widths])
    table = (
        f"#table(columns: ({', '.join(widths)},), rows: ({', '.join(heights)},),"
        " align: left + top,"
        f" inset: (x: {INSET_PT:g}pt, y: {ROW_INSET_PT:g}pt),\n"
        '  stroke: (bottom: 0.4pt + rgb("#dddddd"), rest: none),\n'
        + (f"  {header},\n" if header else "")
        + ",\n".join(f"  {x}" for x in lines)
        + ")"
    )
    long = len(p.body) > LONG_TABLE
    out = f"#block(breakable: {'true' if long else 'false'}, width: 100%)[\n{table}\n"
    if p.caption.strip():
        caption = text(p.caption)
        out += f'#block(above: 0.3em)[#text(size: 7.5pt, fill: rgb("#555555"))[{caption}]]\n'
    return out + "]"


# --- figures -----------------------------------------------------------------------------------

_VIEWBOX = re.compile(r'viewBox="\s*[-\d.]+\s+[-\d.]+\s+([\d.]+)\s+([\d.]+)\s*"')


def figure_typst(
    svg: str, name: str, alt: str = "", caption: str = "", lead: str = ""
) -> tuple[str, bytes]:
    """(Typst, file bytes) of one SVG figure with its caption (Typst markup) below it, kept on
    one page: at the text width, or as tall as a page allows; and, where the page's foot has
    room for the figure at ``FIT_SHRINK`` of that size or more, that much smaller, so that it
    does not leave the foot of the page empty. The room is measured from a marker placed just
    before the figure (it stays where the text before it ends), so the choice does not move
    what it is measured from. ``lead``, the heading right before the figure, is written in the
    same block, so that it moves with the figure to the next page (a heading sticks to what
    follows it, and the marker would be that)."""
    m = _VIEWBOX.search(svg)
    w, h = (float(m.group(1)), float(m.group(2))) if m else (4.0, 3.0)
    svg = re.sub(r'(<svg\b[^>]*?)\swidth="100%"', rf'\1 width="{w}pt" height="{h}pt"', svg, count=1)
    if "xmlns=" not in svg[: svg.index(">")]:
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    # matplotlib's viewBox is in points: the figure as drawn, narrowed to the text width and
    # to the page's height if need be
    width_cm = min(FIGURE_SCALE * w / 72 * 2.54, FIGURE_WIDTH_CM)
    height_cm = min(width_cm * h / w, MAX_FIGURE_CM)
    alt_arg = f", alt: {string(alt)}" if alt else ""
    mark = "flaqum-" + re.sub(r"\W", "-", name)
    body = (
        f"#block(height: 0pt, above: 0pt, below: 0pt, width: 100%)[#metadata(none) <{mark}>]\n"
        "#block(breakable: false, width: 100%, above: 0.9em, below: 0.6em)[#context {\n"
        f"  let fig(img) = [\n{lead}\n#align(center, img)\n{caption}]\n"
        f"  let full = {height_cm:.2f}cm\n"
        # the marker's position from the previous layout pass; none in the first pass, where
        # every figure takes its full size (locate() would fail there and leave the figures
        # out of the first pass, which costs Typst a further pass over the whole report)
        f"  let at = query(<{mark}>)\n"
        "  let y = if at.len() > 0 { at.first().location().position().y }"
        " else { page.height }\n"
        f"  let room = page.height - {BOTTOM_CM}cm - y - 0.9em.to-absolute() - 2pt\n"
        f"  let rest = measure(block(width: {TEXT_WIDTH_CM}cm, fig(block(height: 0pt)))).height\n"
        "  let height = if full + rest > room and room - rest >= "
        f"{FIT_SHRINK} * full {{ room - rest }} else {{ full }}\n"
        f"  fig(image({string(name)}, height: height{alt_arg}))\n"
        "}]"
    )
    return body, svg.encode("utf-8")


_SVG_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


# --- the notebook ------------------------------------------------------------------------------


def notebook_to_typst(nb, title: str, css: str = "", subtitle: str = "FlaQuM Triangle Study"):
    """(Typst source, {file name: bytes}) of an executed report notebook."""
    styles = css_row_styles(css)
    files: dict[str, bytes] = {}
    sections: list[tuple[str, list[str]]] = [("", [])]  # (h2 title, blocks)

    def add(block: str):
        if block:
            sections[-1][1].append(block)

    def add_markdown(md: str):
        for line_block in _split_h2(md):
            if isinstance(line_block, tuple):
                # the heading's text as written, without Markdown's backslash escapes
                sections.append((re.sub(r"\\(.)", r"\1", line_block[0]), []))
                add(markdown(line_block[1]))
            else:
                add(markdown(line_block))

    for cell in nb.cells:
        if cell.cell_type == "markdown":
            add_markdown(cell.source)
            continue
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        skip = False
        for i, out in enumerate(outputs):
            data = out.get("data", {})
            if skip:  # a figure's caption, written with the figure
                skip = False
                continue
            if "image/svg+xml" in data:
                svg = data["image/svg+xml"]
                svg = svg if isinstance(svg, str) else "".join(svg)
                name = f"figure-{len(files) + 1}.svg"
                m = _SVG_TITLE.search(svg)
                alt = html_lib.unescape(m.group(1)) if m else data.get("text/plain", "")
                # the caption is the figure's next output (layout.Report.show), in italics
                nxt = outputs[i + 1].get("data", {}) if i + 1 < len(outputs) else {}
                caption = nxt.get("text/markdown", "")
                skip = caption.strip().startswith("*") and "\n#" not in caption
                # a heading right before the figure goes in its block (see figure_typst)
                # (not an appendix's own heading, its first block: see below)
                head, blocks = sections[-1]
                first = head in APPENDIX and len(blocks) == 1
                lead = blocks.pop() if blocks and blocks[-1].startswith("=") and not first else ""
                block, files[name] = figure_typst(
                    svg, name, alt, markdown(caption) if skip else "", lead
                )
                add(block)
            elif "text/markdown" in data:
                add_markdown(data["text/markdown"])
            elif "text/html" in data:
                html = data["text/html"]
                add(table_typst(html, styles) if "<table" in html else "")

    body, appendices = [], {}
    for head, blocks in sections:
        if head in APPENDIX:
            appendices[head] = blocks[1:]  # blocks[0] is the heading itself
        else:
            body.extend(blocks)
    for i, head in enumerate(h for h in APPENDIX if h in appendices):
        body.append("#pagebreak(weak: true)")
        name = re.sub(r"^Appendix:\s*", "", head)
        body.append(f"= Appendix {chr(65 + i)}: {text(name[:1].upper() + name[1:])}")
        body.extend(appendices[head])
    return _preamble(title, subtitle) + "\n\n".join(body) + "\n", files


def _split_h2(md: str):
    """Markdown split at its level-2 headings: plain strings and (heading text, markdown)."""
    parts, buf = [], []
    for line in md.splitlines():
        if re.match(r"^##\s+\S", line) and not line.startswith("###"):
            if buf:
                parts.append("\n".join(buf))
            buf = []
            parts.append((heading_text(line), line))
        else:
            buf.append(line)
    if buf and "\n".join(buf).strip():
        parts.append("\n".join(buf))
    return parts


_PREAMBLE = """#set document(title: @@TITLE_STRING@@, date: none)
#set page(paper: "a4", margin: (x: 1.8cm, top: 1.6cm, bottom: @@BOTTOM@@cm), footer: context [
  #set text(size: 7.5pt, fill: rgb("#555555"))
  @@TITLE@@ #h(1fr) page #counter(page).display() of #counter(page).final().first()
])
#set text(font: "DejaVu Sans", size: 9pt, lang: "en", fill: rgb("#222222"))
#set par(justify: false, leading: @@LEADING@@em, spacing: 0.8em)
#show table: set text(size: @@TABLE_PT@@pt)
#set list(spacing: 0.6em)
#set enum(spacing: 0.6em)
#show heading: set text(fill: rgb("#1b2a49"))
#show heading: set block(sticky: true)
#show heading.where(level: 1): it => block(
  width: 100%, above: 1.6em, below: 0.8em, inset: (bottom: 3pt),
  stroke: (bottom: 1.2pt + rgb("#1b2a49")), text(size: 13pt, it.body),
)
#show heading.where(level: 2): set text(size: 10.5pt)
#show link: set text(fill: rgb("#1f6fb4"))
#block(width: 100%, below: 1.2em)[
  #text(size: 17pt, weight: "bold", fill: rgb("#1b2a49"))[@@TITLE@@] #linebreak()
  #text(fill: rgb("#555555"))[@@SUBTITLE@@]
]

"""


def _preamble(title: str, subtitle: str) -> str:
    """Page, fonts, headings and the title block (the report's header); the placeholders
    are filled in one pass, so a title cannot fill another one."""
    values = {
        "TITLE_STRING": string(title),
        "TITLE": text(title),
        "SUBTITLE": text(subtitle),
        "BOTTOM": str(BOTTOM_CM),
        "TABLE_PT": f"{TABLE_PT:g}",
        "LEADING": f"{LEADING_EM:g}",
    }
    return re.sub(r"@@(\w+)@@", lambda m: values[m.group(1)], _PREAMBLE)


def body_pages(pdf) -> tuple[int, int]:
    """(pages before the first appendix, all pages) of a report's PDF (a path or its bytes):
    the body ends where a page starts with "Appendix A:" (each appendix starts a page)."""
    import io

    from pypdf import PdfReader

    pages = PdfReader(io.BytesIO(pdf) if isinstance(pdf, bytes) else pdf).pages
    for i, page in enumerate(pages):
        if re.match(r"\s*Appendix A:", page.extract_text() or ""):
            return i, len(pages)
    return len(pages), len(pages)


def fonts_dir() -> str:
    """matplotlib's copy of DejaVu Sans (the figures' font): the same on every machine."""
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf")


def compile_pdf(source: str, files: dict[str, bytes], workdir: Path) -> bytes:
    """Compile the Typst source in ``workdir`` (the render's own folder) to PDF bytes."""
    import typst

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (workdir / name).write_bytes(data)
    main = workdir / "report.typ"
    main.write_text(source, encoding="utf-8")
    return typst.compile(
        str(main), root=str(workdir), font_paths=[fonts_dir()], ignore_system_fonts=True
    )


def notebook_to_pdf(nb, title: str, css: str, workdir: Path) -> bytes:
    source, files = notebook_to_typst(nb, title, css)
    return compile_pdf(source, files, Path(workdir) / "print")
