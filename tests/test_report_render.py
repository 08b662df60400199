"""Rendering reports through the Jupyter fallback (no Quarto needed), read as a user would:
sections, figures, no code, and the confidentiality scan of the finished HTML; and the A4 PDF
written beside it (read with pypdf: page size, fonts, vector figures, page numbers, the
appendix, and the same scan of its text)."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
from test_report import build_results

from flaqum.report import render
from flaqum.report.confidentiality import forbidden_identifiers, scan_report
from flaqum.report.data import WaveResults

TEMPLATE = render.TEMPLATE_DIR / "hospital.qmd"
SENTINEL = 11.7777  # outside every scale: written into suppressed teams, never to be shown


def visible_text(html: str) -> str:
    """Text a reader sees (tags, SVG path data and attributes removed)."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def rendered(study, small_consortium, tmp_path_factory):
    raw, _ = small_consortium
    res = build_results(study, raw, "2025-2", previous="2024-1")
    k = study.min_group_size
    teams = res.teams.copy()
    small = teams["n"] < k
    teams.loc[small, ["raw_mean", "eb_mean", "ci_low", "ci_high"]] = SENTINEL
    res = WaveResults(**{**res.__dict__, "teams": teams})
    # two hospitals: the one with most small teams, and a late joiner (no trend)
    counts = teams[small & (teams["scale"] == "psych_safety")].groupby("hospital_id").size()
    first = str(counts.idxmax())
    late = [h for h in res.hospital_ids() if h not in set(res.change["hospital_id"])]
    hospitals = [first, late[0]]
    out = tmp_path_factory.mktemp("reports")
    lines = []
    render.render_batch(
        study,
        "2025-2",
        {},
        hospitals,
        out,
        TEMPLATE,
        engine="jupyter",
        results=res,
        pdf=True,
        progress=lambda i, n, h, s: lines.append((i, n, h, s)),
    )
    assert [x[:3] for x in lines] == [(1, 2, hospitals[0]), (2, 2, hospitals[1])]
    render.render_consortium(
        study,
        "2025-2",
        {},
        out / "consortium.html",
        render.TEMPLATE_DIR / "consortium.qmd",
        engine="jupyter",
        results=res,
    )
    return res, out, hospitals


def test_reports_are_written_alone_and_self_contained(rendered):
    res, out, hospitals = rendered
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{h}.html" for h in hospitals] + [f"{h}.pdf" for h in hospitals] + ["consortium.html"]
    )
    for h in hospitals:
        html = (out / f"{h}.html").read_text()
        assert html.startswith("<!DOCTYPE html>")
        assert not re.search(r"<(script|link)\b[^>]*(src|href)=\"https?:", html)
        assert "<script" not in html
        assert "report.show" not in html and "import " not in visible_text(html)
        assert f"<title>{res.hospital_name(h)}: feedback report, wave 2025-2</title>" in html


SECTIONS = [
    "Summary",
    "Three things worth a conversation",
    "At a glance",
    "Between hospitals",
    "Between your teams",
    "Maturity Matrix",
    "Patients and professionals",
    "Trend since the previous wave",
    "How to read this report",
    "Methods",
    "Appendix: every question",
]


def test_hospital_reports_have_every_section_and_their_figures(rendered):
    res, out, hospitals = rendered
    for h in hospitals:
        html = (out / f"{h}.html").read_text()
        heads = [
            visible_text(x).strip()
            for x in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", html, flags=re.S)
        ]
        for s in SECTIONS:
            assert s in heads, (h, s)
        svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
        # glance, between, 2 x teams, maturity, stakeholders, and trend for the first hospital
        assert len(svgs) == 6 + (h == hospitals[0]), len(svgs)
        for svg in svgs:
            assert 'role="img"' in svg and "<title>" in svg
        text = visible_text(html)
        assert res.hospital_name(h) in text
        assert text.count("Each row is") >= 3  # the sentences saying what a chart shows


def test_trend_section_says_when_there_is_no_previous_wave(rendered):
    res, out, (with_trend, late) = rendered
    assert "did not take part in the previous wave" in visible_text(
        (out / f"{late}.html").read_text()
    )
    text = visible_text((out / f"{with_trend}.html").read_text())
    assert "What changed since the previous wave" in text
    assert "did not take part in the previous wave" not in text


def test_no_other_hospital_is_named_anywhere(rendered):
    res, out, hospitals = rendered
    for h in hospitals:
        html = (out / f"{h}.html").read_text()
        assert scan_report(html, forbidden_identifiers(res, h)) == []
        text = visible_text(html)
        for other in res.hospital_ids():
            if other != h:
                assert res.hospital_name(other) not in text
                assert not re.search(rf"\b{other}\b", html)


def test_no_value_of_a_group_below_k(study, rendered):
    res, out, hospitals = rendered
    k = study.min_group_size
    names = res.team_register.set_index(["hospital_id", "team_id"])["team_name"]
    for h in hospitals:
        html = (out / f"{h}.html").read_text()
        text = visible_text(html)
        assert f"{SENTINEL:.2f}" not in text and f"{SENTINEL:.1f}" not in text
        team_scales = [
            sid for i in study.instruments.values() if i.unit == "team" for sid in i.scales
        ]
        small = res.teams[
            (res.teams["hospital_id"] == h)
            & (res.teams["n"] < k)
            & res.teams["scale"].isin(team_scales)
        ]
        assert len(small), "the chosen hospital has small teams"
        for tid in set(small["team_id"]):
            name = names[(h, tid)]
            assert f"{name} (n=" not in text
            assert re.search(rf"{re.escape(name)} \((fewer than {k} responses|withheld)", text)
        # the team tables list hidden teams without numbers
        for row in re.findall(r'<tr class="suppressed">(.*?)</tr>', html, flags=re.S):
            assert not re.search(r"\d", visible_text(row).replace(f"fewer than {k}", ""))


def test_consortium_report_names_every_hospital(rendered):
    res, out, _ = rendered
    html = (out / "consortium.html").read_text()
    for name in res.organisations["hospital_name"]:
        assert name in html
    heads = [visible_text(x).strip() for x in re.findall(r"<h2[^>]*>(.*?)</h2>", html, flags=re.S)]
    for head in (
        "Validation",
        "Variance partitions",
        "All hospitals",
        "Psychometrics",
        "Hypotheses",
    ):
        assert head in heads


def test_a_report_naming_another_hospital_is_not_written(study, rendered, tmp_path):
    res, _, hospitals = rendered
    h = hospitals[0]
    forbidden = forbidden_identifiers(res, h)
    forbidden["hospital name"] = forbidden["hospital name"] | {res.hospital_name(h)}
    forbidden["_allowed"] = set()
    from flaqum.report.content import build_hospital

    with pytest.raises(render.ReportError, match="names another hospital"):
        render.render_report(
            TEMPLATE,
            build_hospital(res, study, h),
            tmp_path / f"{h}.html",
            {"hospital": h, "wave": "2025-2"},
            engine="jupyter",
            forbidden=forbidden,
            out_pdf=tmp_path / f"{h}.pdf",
        )
    assert list(tmp_path.iterdir()) == []  # no report, no PDF, no .part file, no render folder


def test_engine_choice(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert render.choose_engine("auto") == "jupyter"
    assert render.choose_engine("jupyter") == "jupyter"
    with pytest.raises(render.ReportError, match="quarto is not on PATH"):
        render.choose_engine("quarto")
    with pytest.raises(render.ReportError, match="must be one of"):
        render.choose_engine("pandoc")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/quarto")
    assert render.choose_engine("auto") == "quarto"
    assert render.choose_engine("jupyter") == "jupyter"


def test_quarto_engine_is_called_per_render_folder(study, rendered, monkeypatch, tmp_path):
    """With Quarto, the copy of the template in the render's own folder is rendered with the
    parameters, and its HTML is scanned and moved into place."""
    res, _, hospitals = rendered
    calls = []

    def fake_quarto(workdir, qmd, params, to):
        calls.append((workdir, qmd, dict(params), to))
        assert (workdir / qmd).exists() and (workdir / "content.json").exists()
        out = workdir / "hospital.html"
        out.write_text("<html><body>ok</body></html>")
        return out

    monkeypatch.setattr(render, "_quarto", fake_quarto)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/quarto")
    out = tmp_path / "H.html"
    render.render_report(
        TEMPLATE,
        {"title": "t", "sections": {}},
        out,
        {"hospital": hospitals[0], "wave": "2025-2"},
        engine="auto",
        forbidden=forbidden_identifiers(res, hospitals[0]),
    )
    assert out.read_text().startswith("<html>")
    ((workdir, qmd, params, to),) = calls
    assert qmd == "hospital.qmd" and to == "html" and workdir.parent == tmp_path
    assert params["hospital"] == hospitals[0] and params["bundle"].endswith("content.json")
    assert not workdir.exists()
    assert isinstance(pd.__version__, str)


def _job_counts(stdout: str) -> dict[str, int]:
    block = stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


@pytest.mark.slow
def test_dag_renders_one_report_per_registered_hospital(tmp_path, small_consortium):
    """A dry run: a report per hospital of each wave's register and a consortium report per
    wave; ``report.hospitals`` restricts the hospitals."""
    from conftest import make_project, run_snakemake

    raw, truth = small_consortium
    proj = make_project(tmp_path, raw)
    # validation is a checkpoint: the reports are planned once the waves passed
    run_snakemake(proj, *[f"results/{w}/validation.json" for w in truth["waves"]])
    counts = _job_counts(run_snakemake(proj, "-n").stdout)
    n = sum(len(w["hospitals_in_wave"]) for w in truth["waves"].values())
    assert counts["hospital_report"] == n
    assert counts["consortium_report"] == len(truth["waves"])
    assert counts["render_reports"] == 2 * len(truth["waves"])
    cfg = proj / "config" / "config.yaml"
    text = cfg.read_text().replace("  engine: auto", '  engine: jupyter\n  hospitals: ["H02"]')
    cfg.write_text(text)
    counts = _job_counts(run_snakemake(proj, "-n").stdout)
    assert counts["hospital_report"] == len(truth["waves"])
    assert counts["render_reports"] == len(truth["waves"])


# --- the A4 PDF (flaqum.report.pdf) ----------------------------------------------------------


def pdf_pages(path) -> list[str]:
    from pypdf import PdfReader

    return [p.extract_text() or "" for p in PdfReader(path).pages]


def _xobjects(resources):
    """Every XObject reachable from a page's resources (forms hold the drawn figures)."""
    if not resources or "/XObject" not in resources:
        return
    for ref in resources["/XObject"].values():
        x = ref.get_object()
        yield x
        if x.get("/Subtype") == "/Form":
            yield from _xobjects(x.get("/Resources"))


def test_pdf_is_a4_with_embedded_fonts_vector_figures_and_page_numbers(rendered):
    from pypdf import PdfReader

    res, out, hospitals = rendered
    for h in hospitals:
        reader = PdfReader(out / f"{h}.pdf")
        n = len(reader.pages)
        fonts = set()
        for i, page in enumerate(reader.pages, 1):
            w, hgt = float(page.mediabox.width), float(page.mediabox.height)
            assert abs(w - 595.28) < 1 and abs(hgt - 841.89) < 1, (w, hgt)  # A4 in points
            assert f"page {i} of {n}" in (page.extract_text() or "")
            for x in _xobjects(page.get("/Resources")):
                assert x.get("/Subtype") != "/Image", f"{h} page {i}: a raster image"
            for ref in (page["/Resources"].get("/Font") or {}).values():
                font = ref.get_object()
                for d in font.get("/DescendantFonts", [font]):
                    desc = d.get_object()["/FontDescriptor"].get_object()
                    assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(desc), "not embedded"
                    fonts.add(desc["/FontName"])
        assert any("DejaVuSans" in f for f in fonts), fonts
        text = " ".join(pdf_pages(out / f"{h}.pdf"))
        # the figures are text, not pictures of text
        assert "Where your hospital stands on each scale" in text
        assert res.hospital_name(h) in text


def test_pdf_has_every_section_and_ends_with_the_appendices(rendered):
    res, out, hospitals = rendered
    for h in hospitals:
        pages = pdf_pages(out / f"{h}.pdf")
        flat = [" ".join(p.split()) for p in pages]
        body = [s for s in SECTIONS if s not in ("Appendix: every question", "Methods")]
        for s in body:
            assert any(s in p for p in flat), (h, s)
        first = [i for i, p in enumerate(flat) if "Appendix A: Every question" in p]
        # Methods last: B, or C after the appendix of core processes below the baseline
        methods = [i for i, p in enumerate(flat) if re.search(r"Appendix [BC]: Methods", p)]
        assert len(first) == 1 and len(methods) == 1, (h, first, methods)
        # the appendix starts a page, after the body (at most 10 pages), Methods after it
        assert flat[first[0]].lstrip().startswith("Appendix A: Every question")
        assert first[0] <= 10 and methods[0] >= first[0]
        assert not any("Every question" in p for p in flat[: first[0]])
        assert not any("How to read this report" in p for p in flat[first[0] :])


def test_pdf_text_names_no_other_hospital_and_no_small_group(study, rendered):
    res, out, hospitals = rendered
    for h in hospitals:
        text = " ".join(pdf_pages(out / f"{h}.pdf"))
        assert scan_report(f"<p>{text}</p>", forbidden_identifiers(res, h)) == []
        for other in res.hospital_ids():
            if other != h:
                assert res.hospital_name(other) not in text
                assert not re.search(rf"\b{other}\b", text)
        assert f"{SENTINEL:.2f}" not in text and f"{SENTINEL:.1f}" not in text
        assert "report.show" not in text and "import " not in text


def test_same_input_gives_the_same_pdf(study, rendered, tmp_path):
    res, out, hospitals = rendered
    h = hospitals[1]
    render.render_hospital(
        study,
        "2025-2",
        h,
        {},
        tmp_path / f"{h}.html",
        TEMPLATE,
        "jupyter",
        out_pdf=tmp_path / f"{h}.pdf",
        results=res,
    )
    assert (tmp_path / f"{h}.pdf").read_bytes() == (out / f"{h}.pdf").read_bytes()
    assert (tmp_path / f"{h}.html").read_bytes() == (out / f"{h}.html").read_bytes()


def test_pdf_writes_names_and_markup_characters_as_text(tmp_path):
    """Free text reaches Typst escaped: a name made of Typst's markup characters prints as
    written, in text, headings, lists and table cells, and does not run as code."""
    import nbformat

    from flaqum.report import pdf
    from flaqum.report.escape import ident
    from flaqum.report.tables import html_table

    name = "#set page(width: 1cm) $x$ *b* _i_ @ref <lab> [x] // a /* b */ = - + ~ 'q' \\ \"q\""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", {"text/markdown": f"## Team {ident(name)}"}),
        nbformat.v4.new_output("display_data", {"text/markdown": f"1. **{ident(name)}** left"}),
        nbformat.v4.new_output(
            "display_data",
            {"text/html": html_table([[name, "1.00"]], ["Team", "Score"], numeric={1})},
        ),
    ]
    nb.cells = [cell]
    source, files = pdf.notebook_to_typst(nb, f"Report {name}")
    (tmp_path / "r.pdf").write_bytes(pdf.compile_pdf(source, files, tmp_path / "print"))
    text = " ".join(" ".join(pdf_pages(tmp_path / "r.pdf")).split())
    flat = " ".join(name.split())
    assert text.count(flat) >= 4, text  # title, footer, heading, list, table


def test_pdf_tables_follow_the_stylesheet_and_fit_the_page():
    from flaqum.report import pdf

    css = (render.TEMPLATE_DIR / "report.css").read_text()
    rules = pdf.css_row_styles(css)
    assert ("suppressed", None, {"color": "#777", "italic": True}) in rules
    assert ("signal-lower", 7, {"color": "#b85f00", "bold": True}) in rules
    long = "A question that is long enough to wrap over two lines of a table cell at least"
    html = (
        '<table class="report-table"><thead><tr><th>Item</th><th>Answers</th></tr></thead>'
        f'<tbody><tr class="suppressed"><td>{long}</td><td class="num">12</td></tr>'
        '<tr><td colspan="2">all</td></tr></tbody></table>'
    )
    typ = pdf.table_typst(html, rules)
    assert "table.header(repeat: true" in typ and "breakable: false" in typ
    assert "table.cell(colspan: 2)" in typ and "align: right" in typ
    assert '#emph[#text(fill: rgb("#777"))' in typ or '#text(fill: rgb("#777"))[#emph' in typ
    # widths are shares of the page (fr), never fixed lengths that could overflow it
    cols = re.search(r"columns: \(([^)]*)\)", typ).group(1)
    assert all(c.strip().endswith("fr") for c in cols.split(",") if c.strip())


def test_pages_are_read_as_html_parser_reads_them(rendered):
    """The scan and the PDF read the reports' pages with ``htmlread`` (html.parser's events,
    faster): on the rendered hospital and consortium pages, and the SVGs in them, the events
    are html.parser's, read without it."""
    from test_htmlread import same_events

    from flaqum.report import htmlread

    _, out, hospitals = rendered
    for name in [f"{h}.html" for h in hospitals] + ["consortium.html"]:
        page = (out / name).read_text()
        assert htmlread.events(page) is not None, name
        assert len(same_events(page)) > 1000


def test_pdf_table_text_after_bold_is_text(tmp_path):
    """A cell's text right after bold or italic text starts with "(": escaped, it stays text
    (unescaped, Typst read it as more arguments of ``#strong[...]`` and the PDF failed)."""
    import io

    from pypdf import PdfReader

    from flaqum.report import pdf

    html = (
        '<table class="report-table"><tbody><tr><td><strong>Bold</strong>(note) and'
        " <em>it</em>[x]</td></tr></tbody></table>"
    )
    source = pdf._preamble("t", "s") + pdf.table_typst(html, [])
    out = pdf.compile_pdf(source, {}, tmp_path)
    assert "Bold(note) and it[x]" in PdfReader(io.BytesIO(out)).pages[0].extract_text()


def test_html_reads_as_nbconvert_wrote_it(study, rendered, tmp_path):
    """The HTML is assembled from the notebook's outputs (``render.notebook_body``) instead of
    nbconvert's exporter: the reader sees the same text, headings (with the same ids) and
    figures as nbconvert's ``basic`` template gives for the same executed notebook."""
    import base64
    import json

    from nbconvert import HTMLExporter

    from flaqum.report.content import build_hospital

    res, _, hospitals = rendered
    h = hospitals[0]
    (tmp_path / "content.json").write_text(json.dumps(build_hospital(res, study, h)))
    params = {"hospital": h, "wave": "2025-2", "bundle": str(tmp_path / "content.json")}
    nb = render.execute_notebook(
        render.inject_parameters(render.read_qmd(TEMPLATE), params), tmp_path
    )
    ours = render.notebook_body(nb)
    exporter = HTMLExporter(
        template_name="basic",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        anchor_link_text="",
    )
    theirs, _ = exporter.from_notebook_node(nb)
    theirs = re.sub(
        r'<img\b[^>]*src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"[^>]*>',
        lambda m: base64.b64decode(m.group(1)).decode("utf-8"),
        theirs,
    )
    from html import unescape

    # the same text for the reader (nbconvert writes &#x27; as ', the same character)
    assert unescape(visible_text(ours)).split() == unescape(visible_text(theirs)).split()
    heads = r"<h[23]\b.*?</h[23]>"  # the headings as written: ids, anchors, closed tags
    assert re.findall(heads, ours, flags=re.S) == re.findall(heads, theirs, flags=re.S)
    assert not re.search(r"<a\b[^>]*/>", ours)  # HTML has no self-closing <a>
    svg = r"<svg\b.*?</svg>"
    assert re.findall(svg, ours, flags=re.S) == re.findall(svg, theirs, flags=re.S)
    assert "<script" not in ours and "report.show" not in ours


def _notebook(*sources):
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i, src in enumerate(sources):
        if src.startswith("# md:"):
            cell = nbformat.v4.new_markdown_cell(src[5:])
        else:
            cell = nbformat.v4.new_code_cell(src)
        cell.id = f"cell-{i}"
        nb.cells.append(cell)
    return nb


def _texts(cell):
    out = []
    for o in cell.outputs:
        if o.get("output_type") == "stream":
            out.append(("stream", o["text"]))
        else:
            out.append((o["output_type"], o["data"].get("text/plain")))
    return out


def test_cells_run_as_one_and_keep_their_own_outputs(tmp_path):
    """The Jupyter engine runs the template's code cells in one execute request
    (``render.one_cell``): each cell still gets its own outputs, in order; a cell's last bare
    expression is shown as Jupyter shows it (not after a trailing ';', not a None); magics
    work; a name set in one cell is seen by the next, as in a notebook."""
    nb = _notebook(
        "x = 40\nprint('one')",
        "# md:## A heading",
        "x + 2",
        "x + 3;",
        "%time y = x\nNone",
        "from IPython.display import Markdown, display\ndisplay(Markdown('**m**'))\n"
        "print('two')\n(y,\n 1)",
        "",
    )
    render.execute_notebook(nb, tmp_path)
    cells = nb.cells
    assert _texts(cells[0]) == [("stream", "one\n")]
    assert cells[1].cell_type == "markdown"
    assert _texts(cells[2]) == [("execute_result", "42")]
    assert _texts(cells[3]) == []
    assert [kind for kind, _ in _texts(cells[4])] == ["stream"]  # %time's report only
    assert _texts(cells[5]) == [
        ("display_data", "<IPython.core.display.Markdown object>"),
        ("stream", "two\n"),
        ("execute_result", "(40, 1)"),
    ]
    assert cells[5].outputs[0]["data"]["text/markdown"] == "**m**"
    assert _texts(cells[6]) == []


def test_a_shared_kernel_forgets_the_previous_render(tmp_path):
    """Renders on one kernel (``render_batch``) start from an empty namespace: a name the
    previous render set is gone (``reset=True``); an error names the template's cell, its
    first line of code and the exception."""
    import nbformat.v4.nbbase as nbbase

    check = nbbase.validate  # set aside while a notebook runs (checked after), then restored
    km = render.start_kernel(tmp_path)
    try:
        render.execute_notebook(_notebook("secret = 'H01'"), tmp_path, km=km, reset=True)
        assert nbbase.validate is check
        nb = _notebook("'secret' in globals()")
        render.execute_notebook(nb, tmp_path, km=km, reset=True)
        assert _texts(nb.cells[0]) == [("execute_result", "False")]
        nb = _notebook("ok = 1", "#| echo: false\n\nraise ValueError('bad template')")
        with pytest.raises(render.ReportError) as err:
            render.execute_notebook(nb, tmp_path, km=km, reset=True)
        assert str(err.value) == (
            "the template's cell cell-1 (raise ValueError('bad template')) raised "
            "ValueError: bad template"
        )
        assert nbbase.validate is check
    finally:
        render.stop_kernel(km)


# --- the template's displays collected in the kernel (layout.Collector) ------------------------

_BLOCKS = (
    "from flaqum.report.layout import Report\n"
    "r = Report({'sections': {\n"
    "    'a': [{'kind': 'markdown', 'text': 'one'},\n"
    "          {'kind': 'table', 'html': '<table><tr><td>1</td></tr></table>', 'caption': 'c'}],\n"
    "    'b': [{'kind': 'figure', 'svg': '<svg></svg>', 'title': 't', 'caption': 'f'}]}})\n"
)


def _raw_outputs(monkeypatch):
    """The outputs of the one executed cell, as nbclient recorded them, per execution."""
    seen = []
    split = render.split_outputs

    def spy(nb, executed):
        seen.append(list(executed.cells[0].outputs))
        return split(nb, executed)

    monkeypatch.setattr(render, "split_outputs", spy)
    return seen


def _without_counts(nb):
    import json

    import nbformat

    data = json.loads(nbformat.writes(nb))
    for cell in data["cells"]:
        for out in cell.get("outputs", []):
            # the shared kernel counts its executions (and a traceback names the count)
            out.pop("execution_count", None)
            if "traceback" in out:
                out["traceback"] = [re.sub(r"In\[\d+\]", "In[]", x) for x in out["traceback"]]
    return data


def test_collected_displays_give_the_notebook_of_one_display_each(tmp_path, monkeypatch):
    """With ``batch`` (the Jupyter engine's default) the template's blocks and the cell
    markers reach nbclient as a few displays of collected bundles, sent before each other
    output (prints to stdout and stderr, another display, a last expression's value, a
    traceback) and at the end; once split, the notebook is the one that a display per block
    gives: the same outputs in the same order. The collector is gone after each execution of
    a shared kernel, also after an error."""
    from flaqum.report.layout import OUTPUTS

    sources = (
        _BLOCKS + "r.show('a')\nprint('p1')\nr.show('b')",
        "# md:## Between the shows",
        "r.heading('a', 'Head')\nimport sys\nprint('e1', file=sys.stderr)\nr.show('a')\n"
        "from IPython.display import Markdown, display\ndisplay(Markdown('*x*'))\n"
        "r.show('b')\n40 + 2",
        "%env FLAQUM_TEST=1\nr.show('b')\nr.show('a')",
        "# md:text",
        "r.show('b')",
    )
    seen = _raw_outputs(monkeypatch)
    km = render.start_kernel(tmp_path)
    try:
        runs = {}
        for batch in (True, False, True):  # the collector of the first run must not stay
            nb = _notebook(*sources)
            render.execute_notebook(nb, tmp_path, km=km, reset=True, batch=batch)
            runs[batch] = _without_counts(nb)
        assert runs[True] == runs[False]
        # what the first cell shows, in order: the blocks of 'a', the print, the figure of 'b'
        first = nb.cells[0].outputs
        assert [o.get("data", {}).get("text/markdown", o.get("text")) for o in first] == [
            "one",
            None,  # the table
            "*c*",
            "p1\n",
            None,  # the figure
            "*f*",
        ]
        assert first[1]["data"]["text/html"].startswith("<table>")
        assert first[4]["data"]["image/svg+xml"] == "<svg></svg>"
        assert all(o["metadata"] == {} for o in first if o["output_type"] == "display_data")
        on, off, again = seen
        batches = [o for o in on if OUTPUTS in o.get("data", {})]
        # one message between two other outputs: 6 of them for the 22 displays (18 blocks and
        # 4 markers) that are 22 messages without collecting; the 5 other outputs as they are
        assert len(batches) == 6 and sum(len(o["data"][OUTPUTS]) for o in batches) == 22
        assert len(on) == 6 + 5 and len(off) == 22 + 5
        assert not any(OUTPUTS in o.get("data", {}) for o in off)
        assert len(again) == len(on)

        # a cell that raises after some shows: they come before its traceback
        failing = (_BLOCKS + "r.show('a')", "r.show('b')\nprint('p')\nr.show('a')\n1 / 0", "x = 1")
        errors = {}
        for batch in (True, False):
            nb = _notebook(*failing)
            with pytest.raises(render.ReportError) as err:
                render.execute_notebook(nb, tmp_path, km=km, reset=True, batch=batch)
            errors[batch] = (str(err.value), _without_counts(nb))
        assert errors[True] == errors[False]
        assert errors[True][0] == (
            "the template's cell cell-1 (r.show('b')) raised ZeroDivisionError: division by zero"
        )
        assert [o["output_type"] for o in nb.cells[1].outputs] == [
            *["display_data"] * 2,
            "stream",
            *["display_data"] * 3,
            "error",
        ]

        # nothing of a collector is left in the kernel after the error
        nb = _notebook(
            "import sys, flaqum.report.layout as L\nshell = get_ipython()\n"
            "hooks = (sys.stdout.write, sys.stderr.write, shell.showtraceback,\n"
            "         shell.display_pub.publish, shell.display_pub.clear_output,\n"
            "         shell.displayhook.start_displayhook)\n"
            "(L._collector, sum('Collector' in getattr(f, '__qualname__', '') for f in hooks),\n"
            " len(shell.events.callbacks['post_execute']))"
        )
        render.execute_notebook(nb, tmp_path, km=km, reset=True, batch=False)
        collector, wrapped, callbacks = eval(nb.cells[0].outputs[0]["data"]["text/plain"])
        assert collector is None and wrapped == 0
        nb = _notebook("len(get_ipython().events.callbacks['post_execute'])")
        render.execute_notebook(nb, tmp_path, km=km, reset=True, batch=True)
        # the collector's own post_execute callback is gone again after the execution
        assert int(nb.cells[0].outputs[0]["data"]["text/plain"]) == callbacks + 1
    finally:
        render.stop_kernel(km)


def test_without_a_collector_each_block_is_its_own_display(monkeypatch):
    """Under Quarto nothing installs a collector: ``Report.show`` and ``heading`` display
    each block by itself, as a raw bundle."""
    import IPython.display

    from flaqum.report import layout

    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    assert layout._collector is None
    ns = {}
    exec(_BLOCKS, ns)
    r = ns["r"]
    r.heading("a", "Head")
    r.show("a")
    r.show("b")
    r.heading("none", "Absent")
    assert [k for _, k in calls] == [{"raw": True}] * 6
    bundles = [a[0] for a, _ in calls]
    assert bundles[0]["text/markdown"] == "\n## Head\n"
    assert bundles[1] == {"text/markdown": "one", "text/plain": layout._MARKDOWN}
    assert bundles[2]["text/plain"] == layout._HTML
    assert [b["text/markdown"] for b in (bundles[3], bundles[5])] == ["*c*", "*f*"]
    assert bundles[4] == {"image/svg+xml": "<svg></svg>", "text/plain": "t"}


def test_a_collector_that_cannot_wrap_everything_is_not_installed(monkeypatch):
    """Where one of the outputs that must flush the list cannot be wrapped (here a display
    publisher without instance attributes), nothing stays wrapped and each display goes out
    at once: without order guaranteed, no collecting."""
    import io
    import types

    from flaqum.report import layout

    class Publisher:
        __slots__ = ("sent",)

        def __init__(self):
            self.sent = []

        def publish(self, data, metadata=None, **kwargs):
            self.sent.append(data)

        def clear_output(self, wait=False):
            pass

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    shell = types.SimpleNamespace(display_pub=Publisher(), displayhook=None, events=None)
    collector = layout.Collector(shell).install()
    assert not collector.installed and layout._collector is None
    assert "write" not in vars(out) and "write" not in vars(err)  # unwrapped again
    collector.add({"text/plain": "x"}, raw=True)
    assert shell.display_pub.sent == [{"text/plain": "x"}]


def test_a_template_is_read_once_per_text_and_its_errors_name_its_file(tmp_path):
    """Each render reads the template from its own folder: the same text is parsed once (the
    notebook copied per call), and a template that cannot be read is named by its path."""
    text = render.TEMPLATE_DIR.joinpath("hospital.qmd").read_text()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "t.qmd").write_text(text)
    (tmp_path / "b" / "t.qmd").write_text(text)
    render._parse_qmd.cache_clear()
    first = render.read_qmd(tmp_path / "a" / "t.qmd")
    second = render.read_qmd(tmp_path / "b" / "t.qmd")
    assert first == second and first is not second
    assert render._parse_qmd.cache_info().misses == 1
    first.cells[0].source = "changed"
    assert render.read_qmd(tmp_path / "b" / "t.qmd").cells[0].source != "changed"
    bad = tmp_path / "bad.qmd"
    bad.write_text("Text\n```{r}\n1\n```\n")
    with pytest.raises(render.ReportError, match=rf"{re.escape(str(bad))}: only python chunks"):
        render.read_qmd(bad)
    bad.write_text("Text\n```{python}\n1\n")
    with pytest.raises(render.ReportError, match="chunk is not closed"):
        render.read_qmd(bad)
