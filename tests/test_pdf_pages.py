"""The A4 PDF's body fits in ``pdf.BODY_PAGES`` pages (issue 10) for the demo's largest
hospital: the demo consortium (config ``demo``: its hospitals, waves and seed) is generated,
its second wave read with stand-in statistics (``test_report.build_results``: the same tables
and figures, row for row, as the pipeline's), and the report of the hospital with the most
teams (the longest team tables and charts; then the most respondents) rendered as the
pipeline renders it. The body is every page before "Appendix A:"."""

from __future__ import annotations

import pytest
from test_report import build_results

from flaqum.report import pdf, render
from flaqum.simulate import generate_consortium


@pytest.fixture(scope="module")
def demo_largest(study, tmp_path_factory):
    demo = study.config["demo"]
    raw = tmp_path_factory.mktemp("demo")
    waves = list(demo["waves"])
    generate_consortium(raw, study, demo["hospitals"], waves, demo["seed"])
    res = build_results(study, raw, waves[-1], previous=waves[-2])
    t = res.teams
    size = (
        t[t["scale"] == t["scale"].iloc[0]]
        .groupby("hospital_id")
        .agg(teams=("team_id", "nunique"), n=("n", "sum"))
        .sort_values(["teams", "n"], ascending=False)
    )
    largest = str(size.index[0])
    out = tmp_path_factory.mktemp("report")
    compile_pdf, sources = pdf.compile_pdf, []

    def keep(source, files, workdir):  # the Typst source, for test_rows_are_as_typst_sizes_them
        sources.append((source, files))
        return compile_pdf(source, files, workdir)

    pdf.compile_pdf = keep
    try:
        render.render_hospital(
            study,
            waves[-1],
            largest,
            {},
            out / f"{largest}.html",
            render.TEMPLATE_DIR / "hospital.qmd",
            "jupyter",
            out_pdf=out / f"{largest}.pdf",
            results=res,
        )
    finally:
        pdf.compile_pdf = compile_pdf
    return largest, int(size.iloc[0]["teams"]), out / f"{largest}.pdf", sources[-1]


@pytest.mark.slow
def test_the_body_of_the_demos_largest_report_fits_in_ten_pages(demo_largest):
    hospital, teams, path, _ = demo_largest
    body, total = pdf.body_pages(path)
    assert teams >= 30, (hospital, teams)  # the demo's largest hospital: many teams
    assert 0 < body < total, (hospital, body, total)  # an appendix follows the body
    assert body <= pdf.BODY_PAGES, f"{hospital}: the body runs to {body} pages"


@pytest.mark.slow
def test_rows_are_as_typst_sizes_them(demo_largest, tmp_path):
    """The table rows' heights set in the PDF's source (``pdf.cell_lines``) are Typst's own:
    the same report compiled with every row ``auto`` is the same PDF, byte for byte. Nearly
    every row has its height (a row left ``auto`` costs Typst a second layout)."""
    import re

    *_, path, (source, files) = demo_largest
    rows = re.findall(r" rows: \(([^)]*)\),", source)
    heights = [x.strip() for r in rows for x in r.split(",") if x.strip()]
    assert len(rows) >= 15 and len(heights) > 200, (len(rows), len(heights))
    assert sum(h != "auto" for h in heights) >= 0.95 * len(heights)
    auto = re.sub(r" rows: \([^)]*\),", "", source)
    assert pdf.compile_pdf(auto, files, tmp_path) == path.read_bytes()
