"""The Quarto templates are well-formed Quarto documents, checked without Quarto: YAML front
matter with the formats the pipeline needs, one parameters cell, valid chunk options, code that
compiles, and sections that match what the package computes."""

from __future__ import annotations

import ast
import re

import pytest
import yaml
from test_report import wave_results  # noqa: F401  (the fixture)

from flaqum.report import render

TEMPLATES = sorted(render.TEMPLATE_DIR.glob("*.qmd"))
PARAMS = {
    "hospital.qmd": {"hospital", "wave", "bundle", "root"},
    "consortium.qmd": {"wave", "bundle", "root"},
}


def test_both_templates_exist():
    assert {p.name for p in TEMPLATES} == set(PARAMS)
    assert (render.TEMPLATE_DIR / "report.css").exists()


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_front_matter(path):
    text = path.read_text()
    assert text.startswith("---\n")
    front, body = render.split_front_matter(text)
    assert front["title"]
    html = front["format"]["html"]
    assert html["embed-resources"] is True and html["css"] == "report.css"
    assert "typst" in front["format"]
    assert front["execute"]["echo"] is False
    assert front["jupyter"] == "python3"
    assert not body.lstrip().startswith("---")


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_chunks_and_parameters_cell(path):
    text = path.read_text()
    _, body = render.split_front_matter(text)
    opens = re.findall(r"^```\{(\w+)[^}]*\}\s*$", body, flags=re.M)
    closes = re.findall(r"^```\s*$", body, flags=re.M)
    assert opens and set(opens) == {"python"} and len(opens) == len(closes)
    nb = render.read_qmd(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) == len(opens)
    for c in code:
        ast.parse(c.source)  # compiles (the #| lines are comments)
        for line in c.source.splitlines():
            if line.startswith("#|"):
                assert re.match(r"^#\| [\w-]+: .+$", line), line
                yaml.safe_load(line[3:])
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    assert tagged == [0], "exactly one parameters cell, the first chunk"
    tree = ast.parse(code[0].source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        names |= {t.id for t in node.targets}
    assert names == PARAMS[path.name]


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_parameters_are_injected_after_the_parameters_cell(path):
    nb = render.inject_parameters(render.read_qmd(path), {"wave": "2030-1"})
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[1].source == "wave = '2030-1'"
    assert code[1].metadata["tags"] == ["injected-parameters"]


def test_a_template_without_parameters_cell_is_refused(tmp_path):
    p = tmp_path / "x.qmd"
    p.write_text("---\ntitle: x\n---\n\n```{python}\nwave = 1\n```\n")
    with pytest.raises(render.ReportError, match="tagged 'parameters'"):
        render.inject_parameters(render.read_qmd(p), {"wave": "w"})
    p.write_text("---\ntitle: x\n---\n\n```{python}\nwave = 1\n")
    with pytest.raises(render.ReportError, match="not closed"):
        render.read_qmd(p)


def shown_sections(path):
    return re.findall(r'report\.show\("(\w+)"\)', path.read_text())


def test_template_shows_every_section_the_package_computes(study, wave_results):  # noqa: F811
    from flaqum.report.content import build_hospital, consortium_content

    h = wave_results.hospital_ids()[0]
    hosp = build_hospital(wave_results, study, h)["sections"]
    assert sorted(shown_sections(render.TEMPLATE_DIR / "hospital.qmd")) == sorted(hosp)
    cons = consortium_content(wave_results, study)["sections"]
    assert set(cons) <= set(shown_sections(render.TEMPLATE_DIR / "consortium.qmd"))
