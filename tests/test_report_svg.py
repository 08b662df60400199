"""The hospital report's figures, written as SVG directly (``flaqum.report.svg``).

Read back as a reader's tools read them: the SVG parses as XML (``xml.etree``); a mark's drawn
coordinate, mapped through the axis its tick labels define, is the number in the data; the
labels are text; team names are marked for the confidentiality scan; Typst draws the figures
into the PDF. The readers here (``parse``, ``axis``, ``centres``, ``segments``) know nothing of
the writer but the SVG it writes and the class names it documents.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from test_report import wave_results  # noqa: F401

from flaqum.report import confidentiality as conf
from flaqum.report import content, figures, svg
from flaqum.report.confidentiality import report_names, report_text

NS = "{http://www.w3.org/2000/svg}"
MINUS = "\u2212"

# --- a reader of the SVG ------------------------------------------------------------------


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    for el in root.iter():
        el.tag = el.tag.removeprefix(NS)
    return root


def classed(root: ET.Element, cls: str, tag: str | None = None) -> list[ET.Element]:
    return [
        el
        for el in root.iter()
        if cls in (el.get("class") or "").split() and (tag is None or el.tag == tag)
    ]


def words(el: ET.Element) -> str:
    return "".join(el.itertext())


def numbers(d: str) -> list[list[float]]:
    """Each subpath's numbers ("M x y L x y ...")."""
    return [
        [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", part)]
        for part in re.split(r"(?=M)", d)
        if part.strip()
    ]


def segments(path: ET.Element) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of each "Mx yLx y" subpath."""
    return [tuple(n[:4]) for n in numbers(path.get("d"))]


def centres(path: ET.Element) -> list[tuple[float, float]]:
    """The centre of each marker of a path: a diamond (M top, L right, L bottom, L left), a
    circle (M left a ... a ...) or a square (M top-left h v h)."""
    out = []
    for n, part in zip(numbers(path.get("d")), re.split(r"(?=M)", path.get("d"))[1:], strict=True):
        if "a" in part:
            out.append((n[0] + n[2], n[1]))
        elif "h" in part:
            out.append((n[0] + n[2] / 2, n[1] + n[3] / 2))
        else:
            out.append((n[0], n[3]))
    return out


def axis(root: ET.Element, which: str):
    """The linear map from drawn points to data that the tick labels of the ``which`` ("x" or
    "y") axis define; checked to be linear over every tick."""
    marks = classed(root, f"{which}tick", "path")[0]
    labels = [float(words(t).replace(MINUS, "-")) for t in classed(root, f"{which}tick", "text")]
    pos = [s[0] if which == "x" else s[1] for s in segments(marks)]
    assert len(pos) == len(labels) >= 2
    a, b = np.polyfit(pos, labels, 1)
    # linear to the writer's precision (coordinates rounded to 0.01 pt)
    assert np.allclose(np.polyval([a, b], pos), labels, atol=abs(a) * 0.011)
    return lambda p: a * np.asarray(p, float) + b


# --- the writer -------------------------------------------------------------------------------


def test_writer_emits_xml_that_parses_with_escaped_text_and_marked_names():
    fig = svg.Figure(4, 3)
    ax = fig.axes(1, 0.5, 0.2, 0.3, (0, 10), (0, 1))
    ax.spines()
    ax.xticks([0, 5, 10])
    ax.yticks([0.25, 0.75], ['A & <b>B</b> "C" (n=5)', "Ward (n=7)"], ident=[16, 4])
    ax.scatter([2.5], [0.25], marker="D", s=60, face="#1f6fb4", edge="#1b2a49", cls="own")
    ax.title("Two\nlines")
    out = fig.svg(alt='Alt "<x>" & y', key="k")
    root = parse(out)
    assert root.tag == "svg" and root.get("aria-label") == 'Alt "<x>" & y'
    assert root.find("title").text == 'Alt "<x>" & y'
    assert root.get("viewBox") == "0 0 288 216"  # 4 x 3 inches in points
    assert [words(t) for t in classed(root, "ytick", "text")] == [
        'A & <b>B</b> "C" (n=5)',
        "Ward (n=7)",
    ]
    assert root.find(".//b") is None  # the label is text, not markup
    names = [words(t) for t in classed(root, "ident")]
    assert names == ['A & <b>B</b> "C"', "Ward"]
    ids = [g.get("id") for g in root.iter("g") if g.get("id")]
    assert ids == ["k-name-1", "k-name-2"]
    assert report_names(out) == names  # the confidentiality scan reads the marked names
    (title,) = classed(root, "title")  # a block of lines: one element of its class
    assert [words(t) for t in title] == ["Two", "lines"]
    assert out == fig.svg(alt='Alt "<x>" & y', key="k")  # the same figure, the same bytes


def _coordinate(v) -> str:
    """A coordinate as the writer documents it (the oracle): the exact binary value rounded
    half to even at 0.01 (what ``%.2f`` does), trailing zeros and point dropped, "-0" as "0"."""
    from decimal import ROUND_HALF_EVEN, Decimal

    s = str(Decimal(float(v)).quantize(Decimal("0.01"), ROUND_HALF_EVEN))
    s = s.rstrip("0").rstrip(".") if "." in s else s
    return "0" if s in ("-0", "") else s


def test_coordinates_are_rounded_to_a_hundredth_without_trailing_zeros():
    cases = [(1.5, "1.5"), (2.0, "2"), (100, "100"), (-3.1, "-3.1"), (-0.001, "0"), (0.0, "0")]
    cases += [(-0.0, "0"), (0.125, "0.12"), (0.375, "0.38"), (np.float64(2.50), "2.5")]
    cases += [(np.int64(7), "7"), (True, "1"), (np.nan, "nan"), (np.inf, "inf")]
    assert [svg.f(v) for v, _ in cases] == [want for _, want in cases]
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.uniform(-600, 600, 4000),
            np.round(rng.uniform(-50, 50, 2000), 3),  # halves at the third decimal
            rng.integers(-300, 300, 500) / 100,  # whole hundredths: "1.2", "3"
            rng.integers(-300, 300, 500) / 1000,  # near 0: "-0.004" is "0"
        ]
    )
    want = [_coordinate(v) for v in values]
    assert [svg.f(v) for v in values.tolist()] == want
    # kept per value: again, and as numpy numbers, the same text
    assert [svg.f(v) for v in values.tolist()] == want == [svg.f(v) for v in values]
    assert svg.f(np.array(1.255)) == _coordinate(1.255)  # not hashable: formatted as is


def test_marks_land_where_the_data_say():
    fig = svg.Figure(5, 4)
    ax = fig.axes(0.8, 0.6, 0.3, 0.4, (-1.3, 2.7), (10, 50))
    ax.spines()
    ax.xticks(svg.ticks(-1.3, 2.7))
    ax.yticks(svg.ticks(10, 50))
    xs, ys = [-1.0, 0.3, 2.5], [12.0, 31.5, 47.0]
    for marker in ("o", "D", "s"):
        ax.scatter(xs, ys, marker=marker, face="#333333", cls=f"m{marker}")
    ax.hbars([20.0], [-0.5], [1.75], "#9a9a9a", 2, cls="bar")
    root = parse(fig.svg())
    fx, fy = axis(root, "x"), axis(root, "y")
    for marker in ("o", "D", "s"):
        (path,) = classed(root, f"m{marker}")
        got = np.array(centres(path))
        assert np.allclose(fx(got[:, 0]), xs, atol=0.01) and np.allclose(
            fy(got[:, 1]), ys, atol=0.1
        )
    ((x0, y0, x1, y1),) = segments(classed(root, "bar")[0])
    assert np.allclose(fx([x0, x1]), [-0.5, 1.75], atol=0.01) and np.isclose(fy(y0), 20, atol=0.1)


def test_text_is_measured_in_the_pdf_font():
    assert svg.text_width("WWWW", 9) > 2 * svg.text_width("iiii", 9)
    assert np.isclose(svg.text_width("Sleep lab", 18), 2 * svg.text_width("Sleep lab", 9))
    assert svg.text_width("Sleep lab", 9, bold=True) > svg.text_width("Sleep lab", 9)
    assert svg.tick_labels([-0.5, 0.0, 0.5]) == [f"{MINUS}0.5", "0.0", "0.5"]
    assert svg.tick_labels([1, 2, 3]) == ["1", "2", "3"]


def test_a_legend_that_does_not_fit_takes_fewer_columns():
    fig = svg.Figure(3, 2)
    handles = [svg.Handle("A rather long legend entry " * 2, "#1f6fb4", lw=2)] * 3
    assert fig.legend_columns(handles, 3) == 1
    assert svg.Figure(12, 2).legend_columns(handles, 3) == 3


# --- the hospital report's figures --------------------------------------------------------------


@pytest.fixture(scope="module")
def view(study, wave_results):  # noqa: F811
    return conf.hospital_view(wave_results, study, wave_results.hospital_ids()[0])


def test_glance_marks_the_own_score_at_its_distance_from_the_consortium(view):
    v = view
    root = parse(figures.to_svg(figures.glance(v.scales, v.peers, v.k), "alt", "g"))
    fx = axis(root, "x")
    shown = v.scales[v.scales["status"] == "shown"]
    own = [c for p in classed(root, "own", "path") for c in centres(p)]  # one path a colour
    got = sorted(fx([c[0] for c in own]))
    want = sorted(shown["mean"] - shown["consortium_mean"])
    assert np.allclose(got, want, atol=0.005)
    # every shown scale has its 95% and 99.8% bar, the 99.8% one the wider
    bars = {
        c: sorted(fx(s[2]) - fx(s[0]) for p in classed(root, c) for s in segments(p))
        for c in ("ci95", "ci998")
    }
    assert len(bars["ci95"]) == len(bars["ci998"]) == len(shown)
    assert np.allclose(bars["ci998"], sorted(shown["hi998"] - shown["lo998"]), atol=0.005)
    # one tick per other hospital with a score
    n_peers = sum(
        int(np.isfinite(p[:, 0]).sum()) for s, p in v.peers.items() if s in set(v.scales["scale"])
    )
    assert sum(len(numbers(p.get("d"))) for p in classed(root, "peer")) == n_peers
    legend = words(classed(root, "legend")[0])
    for text in ("clearly higher than the consortium", "common variation", "Another hospital"):
        assert text in legend


def test_between_hospitals_has_a_panel_per_scale_with_the_own_mark_at_its_score(view):
    v = view
    root = parse(figures.to_svg(figures.between_hospitals(v.scales, v.peers), "alt", "b"))
    panels = classed(root, "panel", "g")
    assert len(panels) == len(v.scales)
    for panel, r in zip(panels, v.scales.itertuples(), strict=True):
        assert r.label.split()[0] in words(classed(panel, "title")[0])
        fy = axis(panel, "y")
        (ref,) = classed(panel, "reference")
        assert np.isclose(fy(segments(ref)[0][1]), r.consortium_mean, atol=0.01)
        n = len(v.peers.get(r.scale, [])) + (r.status == "shown")
        assert sum(len(segments(p)) for p in classed(panel, "ci998")) == n
        if r.status == "shown":
            (own,) = classed(panel, "own")
            ((_, y),) = centres(own)
            assert np.isclose(fy(y), r.mean, atol=0.01)
            assert "you" in words(panel)


def test_every_hospital_figure_parses_and_has_its_title_labels_and_legend(study, wave_results):  # noqa: F811
    c = content.build_hospital(wave_results, study, wave_results.hospital_ids()[0])
    blocks = [b for s in c["sections"].values() for b in s if b["kind"] == "figure"]
    assert len(blocks) >= 6
    for b in blocks:
        root = parse(b["svg"])
        assert root.get("aria-label", "").startswith(b["title"])
        assert classed(root, "title"), b["title"]
        assert classed(root, "xlabel") or classed(root, "ylabel"), b["title"]
        assert classed(root, "legend"), b["title"]
        assert root.find(".//image") is None  # vector marks only
        # the chart's own title is the block's title (the figure says what it is)
        assert b["title"].split(":")[0] in report_text(b["svg"]), b["title"]


def test_team_chart_marks_each_team_at_its_score_and_names_it_for_the_scan(view):
    v = view
    d = v.teams[v.teams["scale"] == "psych_safety"]
    r = v.scales.set_index("scale").loc["psych_safety"]
    out = figures.to_svg(figures.teams(d, r["label"], (1, 7), r["mean"], 4.6, 0.7), "alt", "t")
    root = parse(out)
    fx = axis(root, "x")
    shown = d[d["status"] == "shown"].sort_values("mean")
    marks = sorted(c for p in classed(root, "mark") for c in centres(p))
    marks.sort(key=lambda c: -c[1])  # from the bottom row (lowest mean) up
    assert np.allclose(fx([c[0] for c in marks]), shown["mean"], atol=0.005)
    assert report_names(out) == list(shown["team_name"])
    (hosp,) = classed(root, "hospital")
    assert np.isclose(fx(segments(hosp)[0][0]), r["mean"], atol=0.005)


def test_trend_has_a_panel_title_per_scale(view):
    root = parse(figures.to_svg(figures.trend(view.trend, view.k), "alt", "tr"))
    titles = [words(t) for t in classed(root, "panel-title")]
    assert len(titles) == view.trend["scale"].nunique()


def test_typst_draws_the_figures_into_the_pdf(view, tmp_path):
    import io

    import nbformat
    from pypdf import PdfReader

    from flaqum.report.pdf import notebook_to_pdf

    v = view
    figs = [
        figures.to_svg(figures.glance(v.scales, v.peers, v.k), "Where you stand", "g"),
        figures.to_svg(figures.between_hospitals(v.scales, v.peers), "Among all", "b"),
    ]
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", {"image/svg+xml": s}) for s in figs]
    nb = nbformat.v4.new_notebook(cells=[cell])
    pdf = PdfReader(io.BytesIO(notebook_to_pdf(nb, "Figures", "", tmp_path)))
    text = " ".join(p.extract_text() for p in pdf.pages)
    assert "Where your hospital stands on each scale" in text
    assert "Your hospital among all hospitals of the consortium" in text
    assert "Hospitals, lowest to highest" in text


def test_labels_pass_through_as_text(view):
    v = view
    d = v.teams[v.teams["scale"] == "psych_safety"].copy()
    shown = d.index[d["status"] == "shown"]
    d.loc[shown[0], "team_name"] = "R&D <lab> $x$"
    out = figures.to_svg(figures.teams(d, "Lab\nel", (1, 7), 4.5, 4.6, 0.7), "alt", "t")
    root = parse(out)
    assert "R&D <lab> $x$" in [words(t) for t in classed(root, "ident")]
    assert "Lab el: your teams" in [words(t) for t in classed(root, "title")]


@pytest.mark.parametrize("n", [3, 400])
def test_a_large_consortium_stays_one_path_per_colour(n):
    rng = np.random.default_rng(1)
    scales = pd.DataFrame(
        {
            "scale": ["a"],
            "label": ["Scale A"],
            "rmin": [1],
            "rmax": [5],
            "status": ["shown"],
            "mean": [3.5],
            "se": [0.05],
            "consortium_mean": [3.4],
        }
    )
    peers = {"a": np.c_[rng.normal(3.4, 0.2, n), np.full(n, 0.05)]}
    root = parse(figures.to_svg(figures.between_hospitals(scales, peers), "alt", "b"))
    (panel,) = classed(root, "panel")
    assert sum(len(segments(p)) for p in classed(panel, "ci95")) == n + 1
    assert len(classed(panel, "ci95")) <= 3  # blue, grey, orange
