"""Reports of studies that are not the demo (issue 9, items 3 and 5): the sections a study's
shape can fill, and one line for each it cannot.

Three shapes, each rendered with the Jupyter engine and read as a user would (headings, table
of contents, the "not applicable" lines, table headers, the text):

- **one organisation with teams**, no maturity, no patients, no earlier wave, no hypotheses:
  the two-level fixture study (``tests/fixtures/study_two_level``);
- **several hospitals without teams**: the small synthetic consortium with its team ids
  removed;
- **the demo's shape** (every source, 8 hospitals, two waves): every section, as before.

The statistics are the stand-ins of ``flaqum.testing.standin`` (raw means), which write a blank
variance for a level the design lacks, as the pipeline does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report import _wave_frames, first_wave_results, wave_results  # noqa: F401

from flaqum.config import load_study
from flaqum.report import content, render, tables
from flaqum.report.confidentiality import RULES, hospital_view, report_text, rules_text
from flaqum.report.data import WaveResults, load_wave, wave_paths
from flaqum.report.shape import study_shape
from flaqum.testing.standin import (
    agreement_standin,
    change_standin,
    items_standin,
    multilevel_standin,
    scales_standin,
)

TWO_LEVEL = Path(__file__).parent / "fixtures" / "study_two_level"
HOSPITAL = render.TEMPLATE_DIR / "hospital.qmd"
CONSORTIUM = render.TEMPLATE_DIR / "consortium.qmd"

ALL_SECTIONS = [
    "Summary",
    "At a glance",
    "Between hospitals",
    "Between your teams",
    "Maturity Matrix",
    "Patients and professionals",
    "Trend since the previous wave",
    "How to read this report",
    "Methods",
    "Appendix: every question",
    # only where the hospital rates core processes below the baseline (the fixture's does)
    "Appendix: core processes below the baseline",
]
# (a second wave: with the change since the first; the results frames here carry no research
# inputs, so no case-mix models, funnel plots or planning: tests/test_consortium_report.py)
CONSORTIUM_SECTIONS = ["Validation", "Variance partitions", "All hospitals"]
CONSORTIUM_SECTIONS += ["Change since the previous wave", "Psychometrics", "Hypotheses"]


# --- building the results of a study ----------------------------------------------------------


def _canonical(study, source: str, df: pd.DataFrame) -> pd.DataFrame:
    """Id columns under the names the report stage reads (hospital_id, team_id)."""
    spec = study.sources[source]
    names = {spec.get("hospital"): "hospital_id", spec.get("team"): "team_id"}
    return df.rename(
        columns={a: b for a, b in names.items() if a and a in df.columns and b not in df.columns}
    )


def results_from(study, processed: dict, scores: dict, wave: str, previous=None) -> WaveResults:
    """A WaveResults from processed sources and survey scores, with stand-in statistics; the
    maturity frames only where the study has a maturity source."""
    surveys = {s: d for s, d in scores.items() if study.sources[s]["kind"] == "survey"}
    ml = multilevel_standin(study, surveys)
    resp = {s: _canonical(study, s, processed[s]) for s in surveys}
    maturity = {}
    if "maturity" in scores:
        maturity = {"maturity": scores["maturity"], "maturity_items": processed["maturity"]}
    else:
        empty = pd.DataFrame({"hospital_id": pd.Series(dtype="string")})
        maturity = {"maturity": empty, "maturity_items": empty}
    change = None
    if previous is not None:
        change = change_standin(study, ml["hospitals"], previous[1], previous[0])
    teams = processed.get("teams")
    register = (
        _canonical(study, "teams", teams)
        if teams is not None
        else pd.DataFrame(
            {c: pd.Series(dtype="string") for c in ("team_id", "hospital_id", "team_name")}
        )
    )
    return WaveResults(
        wave=wave,
        organisations=_canonical(study, "organisations", processed["organisations"]),
        team_register=register,
        hospitals=ml["hospitals"],
        teams=ml["teams"],
        variance=ml["variance"],
        responses=resp,
        agreement=agreement_standin(study, surveys),
        change=change,
        scales=scales_standin(study, resp),
        items=items_standin(study, resp),
        validation={"status": "pass", "errors": [], "warnings": []},
        **maturity,
    )


@pytest.fixture(scope="module")
def two_level():
    """The two-level fixture study: one organisation, 50 teams, one staff instrument."""
    study = load_study(TWO_LEVEL / "config" / "config.yaml", root=TWO_LEVEL)
    processed, scores = _wave_frames(study, TWO_LEVEL / "data" / "raw" / "2025-1")
    return study, results_from(study, processed, scores, "2025-1")


def _without_teams(study, frames):
    processed, scores = frames
    processed = {
        s: d.drop(columns=["team_id"], errors="ignore")
        for s, d in processed.items()
        if s != "teams"
    }
    scores = {s: d.assign(team_id=pd.NA).astype({"team_id": "string"}) for s, d in scores.items()}
    return processed, scores


@pytest.fixture(scope="module")
def no_teams(study, small_consortium):
    """The small consortium's second wave as if its surveys had no team column."""
    raw, _ = small_consortium
    now = _without_teams(study, _wave_frames(study, raw / "2025-2"))
    before = _without_teams(study, _wave_frames(study, raw / "2024-1"))
    surveys = {s: d for s, d in before[1].items() if study.sources[s]["kind"] == "survey"}
    prev = multilevel_standin(study, surveys)["hospitals"]
    return results_from(study, *now, "2025-2", previous=("2024-1", prev))


# --- reading a rendered report ----------------------------------------------------------------


def headings(html: str) -> list[str]:
    """The text of every section heading (h2) of the report's body, in order."""
    body = html.split('<main class="content">', 1)[1]
    return [
        re.sub(r"<[^>]+>", "", t).strip()
        for t in re.findall(r"<h2 id=\"[^\"]+\"[^>]*>(.*?)</h2>", body, flags=re.S)
    ]


def toc(html: str) -> list[str]:
    nav = re.search(r'<nav id="TOC">(.*?)</nav>', html, flags=re.S).group(1)
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r"<li>(.*?)</li>", nav)]


def table_headers(html: str) -> list[list[str]]:
    return [
        [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th>(.*?)</th>", t)]
        for t in re.findall(r"<table\b.*?</table>", html, flags=re.S)
    ]


def render_pair(study, res, hospital, out) -> tuple[str, str]:
    render.render_batch(study, res.wave, {}, [hospital], out, HOSPITAL, "jupyter", results=res)
    render.render_consortium(
        study, res.wave, {}, out / "consortium.html", CONSORTIUM, "jupyter", results=res
    )
    return (out / f"{hospital}.html").read_text(), (out / "consortium.html").read_text()


@pytest.fixture(scope="module")
def two_level_reports(two_level, tmp_path_factory):
    study, res = two_level
    return render_pair(study, res, "1", tmp_path_factory.mktemp("two_level"))


@pytest.fixture(scope="module")
def no_teams_reports(study, no_teams, tmp_path_factory):
    return render_pair(study, no_teams, "H01", tmp_path_factory.mktemp("no_teams"))


@pytest.fixture(scope="module")
def demo_reports(study, wave_results, tmp_path_factory):  # noqa: F811
    return render_pair(study, wave_results, "H01", tmp_path_factory.mktemp("demo"))


# --- the shape ----------------------------------------------------------------------------------


def test_shape_of_the_two_level_study(two_level):
    study, res = two_level
    shape = study_shape(res, study)
    assert (shape.n_hospitals, shape.n_organisations, shape.compare) == (1, 1, False)
    assert shape.teams and not shape.previous_wave
    assert shape.maturity == "Not applicable: the study has no maturity assessment."
    assert shape.stakeholders == "Not applicable: the study has no patients' survey."
    assert shape.hypotheses.startswith("Not applicable: the study declares no hypotheses")
    # the stand-ins write a blank variance between hospitals, as the pipeline does
    assert res.variance["vpc_hospital"].isna().all() and res.variance["vpc_team"].notna().all()


def test_shape_of_the_demo_and_of_a_study_without_teams(study, wave_results, no_teams):  # noqa: F811
    demo = study_shape(wave_results, study)
    assert demo.compare and demo.teams and demo.previous_wave
    assert demo.maturity is demo.stakeholders is demo.hypotheses is None
    shape = study_shape(no_teams, study)
    assert shape.compare and not shape.teams and shape.maturity is None
    assert no_teams.teams.empty and no_teams.variance["vpc_team"].isna().all()


def test_a_wave_without_a_source_the_study_has_says_so(study, wave_results):  # noqa: F811
    empty = pd.DataFrame({"hospital_id": pd.Series(dtype="string")})
    res = WaveResults(
        **{
            **wave_results.__dict__,
            "maturity": empty,
            "maturity_items": empty,
            "responses": {"staff": wave_results.responses["staff"]},
        }
    )
    shape = study_shape(res, study)
    wave = "wave 2025\\-2"  # Markdown: the wave is escaped text
    assert shape.maturity == f"Not in this wave: the Maturity Matrix was not assessed in {wave}."
    assert shape.stakeholders == f"Not in this wave: {wave} has no patients' survey."
    c = content.build_hospital(res, study, "H01")["sections"]
    assert c["maturity"] == [{"kind": "markdown", "text": shape.maturity}]
    assert c["stakeholders"] == [{"kind": "markdown", "text": shape.stakeholders}]
    rules = c["methods"][-1]["text"]
    assert "Maturity Matrix" not in rules and "Other hospitals appear" in rules


# --- one organisation with teams ----------------------------------------------------------------


def test_one_organisation_report_has_the_sections_it_can_fill(two_level_reports):
    html, _ = two_level_reports
    heads = headings(html)
    assert heads == [
        "Summary",
        "At a glance",
        "Between your teams",
        "Maturity Matrix",
        "Patients and professionals",
        "Trend since the previous wave",
        "How to read this report",
        "Methods",
        "Appendix: every question",
    ]
    assert toc(html) == heads  # no empty section in the contents
    text = report_text(html)
    for line in (
        "Not applicable: the study has no maturity assessment.",
        "Not applicable: the study has no patients' survey.",
        "There is no earlier wave to compare with: wave 2025-1 is the study's first.",
    ):
        assert line in text
    # nothing of the Maturity Matrix besides its line, and no maturity conversation point
    assert "core processes" not in text and "baseline" not in text


def test_one_organisation_report_compares_with_no_consortium(two_level_reports):
    html, _ = two_level_reports
    text = report_text(html)  # the text, the figures' text and their alt text
    assert not re.search(r"consortium", text, flags=re.I)
    assert "one of 1 hospitals" not in text and "Other hospitals appear" not in text
    assert "is the only organisation in this study, so this report does not compare it" in text
    # the response rates and the summary, then the glance; psychometrics, then the appendix
    _, summary, glance, *teams, _, items = table_headers(html)
    assert summary == [
        "Scale",
        "Your score",
        "95% interval",
        "% positive",
        "Change since last wave",
    ]
    assert glance == [
        "Scale",
        "Range",
        "Respondents",
        "Your score",
        "95% interval",
        "Change since last wave (95% interval)",
    ]
    assert items == ["Item", "Answers", "Average", "% positive", "% missing"]
    assert len(teams) == 3 and all(t[0] == "Team" for t in teams)
    # the figures: one per team scale, none of the hospital among hospitals
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    assert len(svgs) == 3 and all("your teams" in s for s in svgs)
    assert "differences between teams and between people within a team" in text
    assert "withheld to protect a smaller team" in text  # the rules for teams still apply


def test_one_organisation_consortium_report(two_level_reports):
    _, html = two_level_reports
    heads = headings(html)
    assert heads == ["Validation", "Variance partitions", "Psychometrics", "Hypotheses"]
    assert toc(html) == heads
    text = report_text(html)
    assert "1 hospitals" not in text
    assert "Wave 2025-1: one organisation (Riverside General Hospital), 1992 professionals" in text
    for line in (
        "Between hospitals. Not applicable: the study has one organisation.",
        "Maturity Matrix. Not applicable: the study has no maturity assessment.",
        "Patients and professionals. Not applicable: the study has no patients' survey.",
        "No variance between hospitals: the study has one organisation, and the intercept is "
        "its average.",
        "Not applicable: the study declares no hypotheses (config/hypotheses/ is empty).",
    ):
        assert line in text
    variance = table_headers(html)[0]  # validation passed without warnings: no table
    assert variance == ["Scale", "Respondents", "Teams", "Intercept", "Between teams", "Converged"]
    assert "all hospitals" not in text


# --- several hospitals without teams ------------------------------------------------------------


def test_report_without_teams_leaves_out_the_teams(no_teams_reports, no_teams):
    html, _ = no_teams_reports
    heads = headings(html)
    assert heads == [s for s in ALL_SECTIONS if s != "Between your teams"]
    assert toc(html) == heads
    text = report_text(html)
    assert "one of 8 hospitals in the consortium" in text  # compared with the others
    assert "Each panel shows all hospitals of the consortium" in text
    assert "ICC(1)" not in text and "rwg" not in text  # no team statistics, no team rules
    assert "withheld" not in text and "an item or group with fewer than 5" in text
    assert "differences between hospitals and between people within a hospital" in text
    assert "Not applicable" not in text
    psychometrics = next(h for h in table_headers(html) if h[:2] == ["Scale", "Respondents"])
    assert psychometrics[:3] == ["Scale", "Respondents", "Items"]
    assert not {"ICC(1)", "ICC(2)", "Median rwg"} & set(psychometrics)


def test_consortium_report_without_teams(no_teams_reports):
    _, html = no_teams_reports
    assert headings(html) == CONSORTIUM_SECTIONS
    text = report_text(html)
    assert "Between teams. Not applicable: the surveys have no teams." in text
    variance = table_headers(html)[0]  # validation passed without warnings: no table
    assert variance == [
        "Scale",
        "Respondents",
        "Hospitals",
        "Intercept",
        "Between hospitals",
        "Converged",
    ]
    assert "between hospitals (dark) and between people within hospitals (light grey)" in text


# --- the demo's shape -----------------------------------------------------------------------------


def test_demo_shaped_reports_keep_every_section(demo_reports):
    html, cons = demo_reports
    assert headings(html) == ALL_SECTIONS
    assert toc(html) == ALL_SECTIONS
    text = report_text(html)
    assert "Not applicable" not in text and "Not in this wave" not in text
    assert "one of 8 hospitals in the consortium" in text
    assert table_headers(html)[2][5:7] == ["Consortium average", "Compared with the consortium"]
    assert headings(cons) == CONSORTIUM_SECTIONS
    assert "What this study's data cannot show" not in report_text(cons)
    # the demo's confidentiality rules are the full text
    assert RULES.format(k=5) in text


def test_first_wave_and_late_joiner_say_different_things(
    study,
    wave_results,  # noqa: F811
    first_wave_results,  # noqa: F811
):
    late = [h for h in wave_results.hospital_ids() if h not in first_wave_results.hospital_ids()]
    text = content.build_hospital(wave_results, study, late[0])["sections"]["trend"][0]["text"]
    assert "did not take part in the previous wave" in text
    first = first_wave_results.hospital_ids()[0]
    text = content.build_hospital(first_wave_results, study, first)["sections"]["trend"][0]["text"]
    assert "no earlier wave to compare with" in text and "did not take part" not in text


# --- the pieces -----------------------------------------------------------------------------------


def test_rules_follow_the_design():
    assert rules_text(5) == RULES.format(k=5)
    alone = rules_text(5, teams=False, others=False, maturity=False)
    assert alone.startswith("No number in this report describes fewer than 5 respondents: an item")
    assert "team" not in alone and "hospitals" not in alone and "Maturity" not in alone


def test_one_organisation_view_has_no_consortium_values(two_level):
    study, res = two_level
    v = hospital_view(res, study, "1")
    assert not v.compare and v.has_teams
    assert v.scales["consortium_mean"].isna().all() and set(v.scales["signal"]) == {"common"}
    assert all(len(p) == 0 for p in v.peers.values())
    assert v.items["consortium_pct_positive"].isna().all()
    assert v.stakeholders.empty and v.maturity.empty


def test_glance_table_without_consortium_keeps_the_signal_colour_off(two_level):
    study, res = two_level
    v = hospital_view(res, study, "1")
    html = tables.glance_table(v.scales, None, v.k, consortium=False)
    assert "Consortium" not in html and "signal-" not in html


def test_hypotheses_that_do_not_apply_are_listed_with_their_reason(study, wave_results):  # noqa: F811
    h = pd.DataFrame(
        {
            "hypothesis": ["climate_mortality", "maturity_psych_safety"],
            "term": ["climate", np.nan],
            "estimate": [0.1, np.nan],
            "se": [0.05, np.nan],
            "ci_low": [0.0, np.nan],
            "ci_high": [0.2, np.nan],
            "p": [0.04, np.nan],
            "q": [0.08, np.nan],
            "n": [30, np.nan],
            "family": ["poisson", np.nan],
            "level": ["hospital", np.nan],
            "status": ["ok", "not_applicable"],
            "reason": ["", "no maturity data"],
        }
    )
    res = WaveResults(**{**wave_results.__dict__, "hypotheses": h})
    sec = content.consortium_content(res, study)["sections"]["hypotheses"]
    assert [b["kind"] for b in sec] == ["markdown", "table", "markdown"]
    assert "climate_mortality" in sec[1]["html"]
    assert "maturity_psych_safety" not in sec[1]["html"]
    assert "maturity\\_psych\\_safety**: no maturity data" in sec[2]["text"]


def test_a_study_without_teams_register_loads(two_level, tmp_path):
    study, res = two_level
    root = tmp_path
    proc = root / "data" / "processed" / "w"
    out = root / "results" / "w" / "multilevel"
    proc.mkdir(parents=True)
    out.mkdir(parents=True)
    res.organisations.to_parquet(proc / "organisations.parquet")
    res.hospitals.to_csv(out / "hospitals.csv", index=False)
    res.teams.iloc[0:0].to_csv(out / "teams.csv", index=False)
    paths = wave_paths(root, "w", ["staff"])
    assert paths["team_register"] is None  # no teams register: none expected
    loaded = load_wave("w", paths)
    assert loaded.team_register.empty and list(loaded.team_register.columns) == [
        "team_id",
        "hospital_id",
        "team_name",
    ]
    # a register that is expected but missing is still an error
    with pytest.raises(FileNotFoundError, match="team_register"):
        load_wave("w", {**paths, "team_register": str(proc / "teams.parquet")})


def test_template_writes_the_heading_of_a_section_that_can_be_left_out():
    """Sections left out by the study's shape have their heading written by the package,
    in an ``output: asis`` cell (so Quarto makes it a real heading); the others are Markdown."""
    for path, optional in (
        (
            HOSPITAL,
            {
                "between": "Between hospitals",
                "teams": "Between your teams",
                "processes": "Appendix: core processes below the baseline",
            },
        ),
        (
            CONSORTIUM,
            {
                "hospitals": "All hospitals",
                "change": "Change since the previous wave",
                "trends": "Trends over every wave",
                "adjusted": "Case-mix-adjusted and cross-level models",
                "invariance": "Measurement invariance",
                "agreement": "Agreement within teams",
                "funnel": "Outcomes between hospitals: funnel plots",
                "planning": "Planning the next wave",
            },
        ),
    ):
        nb = render.read_qmd(path)
        cells = [c for c in nb.cells if c.cell_type == "code" and "report.heading(" in c.source]
        found = {}
        for c in cells:
            assert render.chunk_options(c.source).get("output") == "asis", c.source
            (sec, title), *_ = re.findall(
                r'report\.heading\("(\w+)", "([^"]+)"(?:, level=\d)?\)', c.source
            )
            found[sec] = title
        assert found == optional
        text = path.read_text()
        for title in optional.values():
            assert f"## {title}" not in text


def _only(res: WaveResults, hid: str) -> WaveResults:
    """The wave as if ``hid`` were the study's one organisation (every source kept)."""

    def own(df):
        return None if df is None else df[df["hospital_id"] == hid].reset_index(drop=True)

    return WaveResults(
        **{
            **res.__dict__,
            **{
                k: own(getattr(res, k))
                for k in (
                    "organisations",
                    "team_register",
                    "hospitals",
                    "teams",
                    "maturity",
                    "maturity_items",
                    "agreement",
                    "change",
                )
            },
            "responses": {s: own(d) for s, d in res.responses.items()},
            "variance": res.variance.assign(var_hospital=np.nan, vpc_hospital=np.nan),
        }
    )


def _words(block: dict) -> str:
    if block["kind"] == "figure":
        return " ".join([block["title"], block["caption"], report_text(block["svg"])])
    return block.get("text", "") + block.get("html", "") + block.get("caption", "")


def test_one_organisation_with_every_source_says_nothing_of_a_consortium(
    study,
    wave_results,  # noqa: F811
):
    hid = wave_results.hospital_ids()[0]
    res = _only(wave_results, hid)
    c = content.build_hospital(res, study, hid)["sections"]
    assert c["between"] == [] and c["teams"]
    for name, blocks in c.items():
        for b in blocks:
            assert not re.search(r"consortium", _words(b), flags=re.I), (name, _words(b)[:300])
    # the Maturity Matrix and the stakeholder comparison are there, without a consortium
    assert any(b["kind"] == "figure" for b in c["maturity"])
    assert any(b["kind"] == "figure" for b in c["stakeholders"])
    assert "Consortium median" not in c["maturity"][0]["text"]
    assert "the study's ambition is" in c["maturity"][0]["text"].lower()
    cons = content.consortium_content(res, study)["sections"]
    assert cons["hospitals"] == []


def test_the_kernel_imports_the_same_flaqum(tmp_path, monkeypatch):
    """The template runs the package of the process that renders (here: this checkout's
    source), not another copy installed in the environment."""
    import json
    import os

    import jupyter_client.manager

    import flaqum

    class Stop(Exception):
        pass

    class FakeManager:
        def __init__(self, **kw):
            self.transport, self.ip, self.has_kernel = kw.get("transport"), kw.get("ip"), False

        def start_kernel(self, **kw):
            raise Stop

    monkeypatch.setattr(jupyter_client.manager, "KernelManager", FakeManager)
    with pytest.raises(Stop):
        render.start_kernel(tmp_path)
    spec = json.loads((tmp_path / "kernels" / "flaqum-report" / "kernel.json").read_text())
    first = spec["env"]["PYTHONPATH"].split(os.pathsep)[0]
    assert Path(first) == Path(flaqum.__file__).resolve().parents[1]


def test_a_wave_that_did_not_field_an_instrument_says_which(study, wave_results):  # noqa: F811
    """An instrument whose codebook lists other waves only (``waves:``) is named in one
    sentence at the top of the hospital report; a wave that fields every instrument says
    nothing of the kind."""
    import copy

    from flaqum.report.escape import md as tx

    h = wave_results.hospital_ids()[0]
    heading = content.build_hospital(wave_results, study, h)["sections"]["heading"][0]["text"]
    assert "not fielded" not in heading
    other = copy.deepcopy(study)
    other.instruments["team_collaboration"].raw["waves"] = ["2099-1"]
    label = other.instruments["team_collaboration"].label
    assert study_shape(wave_results, other).not_fielded == (
        f"Not in this wave: {tx(label)} was not fielded in wave {tx(wave_results.wave)}."
    )
    heading = content.build_hospital(wave_results, other, h)["sections"]["heading"][0]["text"]
    assert f"{tx(label)} was not fielded in wave {tx(wave_results.wave)}" in heading
