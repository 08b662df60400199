"""The PDF's table rows get the height Typst would give them (``pdf.cell_lines``,
``pdf.row_height``): a row with its height set is laid out once instead of twice, and must come
out exactly as an ``auto`` row would, or text would overlap the next row.

Checked against Typst itself: cell texts of the reports' kinds (words, numbers, intervals,
punctuation, bold and italic runs) at many widths, each measured by Typst in a one-cell table;
and the tables of real reports (test_pdf_pages.py compiles the demo's largest report with and
without the heights: the same PDF, byte for byte)."""

from __future__ import annotations

import json
import random

import pytest

from flaqum.report import pdf

WORDS = (
    "Team collaboration Psychological safety clearly lower higher usual range within the "
    "consortium (patients and kin) (professionals) 95% interval 99.8% fewer than 5 responses "
    "withheld to protect a smaller team Person-centred care QS14: Leaders hospital make quality "
    "visible priority. 4.41 −0.16 (−0.29 to −0.03) 2024‑1: rwg 0.70: members disagree) / "
    "Quality Design & Planning Organisation leadership Wave score, change; AVATAR To Ty Wo"
).split()


def _cases(n: int, seed: int):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 9))]
        runs = []
        for w in words:
            style = rng.random()
            runs.append((w + " ", style < 0.15, 0.15 <= style < 0.25))
        out.append((runs, rng.uniform(15, 200), rng.random() < 0.3, rng.random() < 0.2))
    return out


def _markup(runs, bold, italic) -> str:
    body = ""
    for data, b, i in runs:
        piece = pdf.text(data)
        piece = f"#strong[{piece}]" if b else piece
        body += f"#emph[{piece}]" if i else piece
    body = f"#strong[{body}]" if bold else body
    return f"#emph[{body}]" if italic else body


def _typst_heights(tmp_path, cases) -> list[float]:
    """Each case's row height as Typst lays it out: the second row of a one-column table of
    the case's width (the first, empty, is the header's place: bold), in the report's fonts,
    sizes, insets and leading (``pdf._PREAMBLE``)."""
    import typst

    lines = [pdf._preamble("t", "s"), "#context {", "  let hs = ()"]
    for runs, room, bold, italic in cases:
        cell = _markup(runs, bold, italic)
        lines.append(
            f"  hs.push(measure(table(columns: ({room + 2 * pdf.INSET_PT!r}pt,),"
            f" inset: (x: {pdf.INSET_PT}pt, y: {pdf.ROW_INSET_PT}pt), [], [{cell}])).height.pt()"
            f" - {2 * pdf.ROW_INSET_PT!r})"
        )
    lines += ["  [#metadata(hs) <hs>]", "}"]
    src = tmp_path / "rows.typ"
    src.write_text("\n".join(lines))
    out = typst.query(
        str(src), "<hs>", field="value", font_paths=[pdf.fonts_dir()], ignore_system_fonts=True
    )
    return json.loads(out)[0]


def test_cell_lines_give_typsts_row_heights(tmp_path):
    cases = _cases(2000, seed=10)
    typst_heights = _typst_heights(tmp_path, cases)
    known = 0
    for (runs, room, bold, italic), height in zip(cases, typst_heights, strict=True):
        lines = pdf.cell_lines(runs, room, bold, italic)
        if lines is None:
            continue  # too close to call: the row stays auto
        known += 1
        text = "".join(r[0] for r in runs)
        assert pdf.row_height(lines) == pytest.approx(height, abs=1e-6), (text, room, bold)
    # nearly every entry is certain (a width within 0.01 pt of the room is rare)
    assert known >= 0.95 * len(cases), known


def test_cell_lines_says_so_when_it_cannot_know():
    assert pdf.cell_lines([("Qualität der Versorgung", False, False)], 200) == 1
    assert pdf.cell_lines([("品質と安全", False, False)], 200) is None  # another script
    assert pdf.cell_lines([("a", False, False), None, ("b", False, False)], 200) is None
    assert pdf.cell_lines([("", False, False)], 50) == 0
    # a width right at a break: both outcomes possible, so not certain; clear of it, certain
    text = "Organisation and"
    room = pdf._width(text, False, False)
    assert pdf.cell_lines([(text, False, False)], room) is None
    assert pdf.cell_lines([(text, False, False)], room + 5 * pdf.CLOSE_PT) == 1
    assert pdf.cell_lines([(text, False, False)], room - 5 * pdf.CLOSE_PT) == 2
    # a break the line may or may not take (before an em dash, UAX #14's B2): certain only
    # where both give the same lines
    dash = "Quality\u2014"
    room = pdf._width("Quality", False, False) + 5 * pdf.CLOSE_PT
    assert pdf.cell_lines([(dash, False, False)], room) is None
    acute = "Quality\u00b4"  # UAX #14's BB: a break before it
    room = pdf._width("Quality", False, False) + 5 * pdf.CLOSE_PT
    assert pdf.cell_lines([(acute, False, False)], room) is None
    assert pdf.cell_lines([(dash, False, False)], 2 * pdf._width(dash, False, False)) == 1
    # one word wider than its room: a line of its own, over-full (as Typst prints it)
    assert pdf.cell_lines([("Organisation", True, False)], 10) == 1


def test_a_table_gets_its_rows_heights():
    html = (
        '<table class="report-table"><thead><tr><th>Item</th><th>Mean</th></tr></thead>'
        "<tbody><tr><td>Short</td><td class='num'>4.41</td></tr>"
        "<tr><td>品質</td><td class='num'>4.41</td></tr></tbody></table>"
    )
    typ = pdf.table_typst(html, [])
    one = f"{pdf.row_height(1)!r}pt"
    assert f"rows: ({one}, {one}, auto,)" in typ
