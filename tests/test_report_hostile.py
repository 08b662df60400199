"""Reports from hostile and messy input (issue 8, items 3, 6 and 14): names that are HTML,
Markdown or shell, numeric and ``H1``-style ids, teams called "Safety", a hospital without
respondents, and two renders of the same input.

Names and labels are free text and may hold anything; the reports must show them literally
and nothing else: every rendered report is parsed (html.parser) and compared with the report
of the same data under plain names, which fixes which elements and attributes the template
makes. The scan for other hospitals (``confidentiality.scan_report``) must pass every honest
report and catch every real mention of another hospital, of each kind, where a reader sees it.
"""

from __future__ import annotations

import base64
import collections
import copy
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from test_report import wave_results  # noqa: F401  (the fixture)

from flaqum.config import Instrument, Study
from flaqum.report import render, tables
from flaqum.report.confidentiality import (
    forbidden_identifiers,
    hospital_view,
    report_names,
    report_text,
    scan_report,
    weak_id,
)
from flaqum.report.content import build_hospital
from flaqum.report.data import WaveResults
from flaqum.report.escape import clean, md

HOSPITAL = render.TEMPLATE_DIR / "hospital.qmd"
CONSORTIUM = render.TEMPLATE_DIR / "consortium.qmd"
WAVE = "2025-2"

EVIL_NAME = 'ZNA <b onmouseover="alert(2)">Maas</b>'
SCALE_LABEL = 'Psychological <i onclick="alert(5)">safety</i> $x$ [l](javascript:alert(6))'
TEAM_LABEL = "Team `collab` | a | ~~b~~ {{c}} \\(d\\)"
INSTRUMENT_LABEL = "<u>Team</u> psych <style>body{display:none}</style>"
ITEM_TEXT = "<img src=x onerror=alert(4)> Members of this team can bring up problems & issues."
VALIDATION_MESSAGE = "<script>alert(7)</script> value '1e308' in `x`"
PEER_GROUP = "g\u00e9n\u00e9ral <em>x</em> & `y` $z$ *w*"


# Names in other scripts are drawn with DejaVu Sans, which lacks some glyphs.
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")


def hostile_team(k: int) -> str:
    return f'<script>alert("T{k}")</script>\n# Ward {k} *x* $(touch PWNED) {{t}} Zoë 病棟\u202e'


def other_name(i: int) -> str:
    return f"AZ {i} <img src=x onerror=alert({i})> \"Q\" & 'S' \n- item"


def _map_ids(res: WaveResults, ids: dict[str, str]) -> dict:
    """The frames of ``res`` with every hospital id replaced through ``ids``."""

    def m(df):
        if df is None or "hospital_id" not in df:
            return df
        return df.assign(hospital_id=df["hospital_id"].astype(str).map(ids).astype("string"))

    fields = {k: m(v) for k, v in res.__dict__.items() if isinstance(v, pd.DataFrame)}
    fields["responses"] = {s: m(d) for s, d in res.responses.items()}
    return fields


def hostile_study(study: Study) -> Study:
    insts = {}
    for key, inst in study.instruments.items():
        raw = copy.deepcopy(inst.raw)
        if key == "psychological_safety":
            raw["label"] = INSTRUMENT_LABEL
            raw["scales"]["psych_safety"]["label"] = SCALE_LABEL
            raw["items"]["PS2"] = ITEM_TEXT
        if key == "team_collaboration":
            raw["scales"]["team_collab"]["label"] = TEAM_LABEL
        insts[key] = Instrument(inst.id, raw["label"], inst.source, inst.unit, inst.path, raw)
    return Study(study.config, insts, study.root)


def hostile_results(res: WaveResults) -> WaveResults:
    """The wave with numeric hospital ids ("1".."8"), hostile hospital and team names (every
    team name unique) and a hostile validation finding."""
    ids = {h: str(i) for i, h in enumerate(res.hospital_ids(), 1)}
    fields = _map_ids(res, ids)
    orgs = fields["organisations"].copy()
    orgs["hospital_name"] = [
        EVIL_NAME if h == "1" else other_name(int(h)) for h in orgs["hospital_id"]
    ]
    reg = fields["team_register"].copy()
    reg["team_name"] = [hostile_team(k) for k in range(len(reg))]
    validation = {
        "status": "<b>pass</b>",
        "errors": [],
        "warnings": [{"file": "<x>.sav", "rule": "r <i>", "message": VALIDATION_MESSAGE}],
    }
    # the first hospital's peer group (tests/test_report.py, with_peer_group) has a hostile name
    orgs["hospital_type"] = orgs["hospital_type"].replace({"general": PEER_GROUP})
    fields.update(organisations=orgs, team_register=reg, validation=validation)
    return WaveResults(**{**res.__dict__, **fields})


class Elements(HTMLParser):
    """Every element and attribute of a document, counted."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: collections.Counter = collections.Counter()
        self.attrs: set[tuple[str, str]] = set()
        self.values: list[tuple[str, str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for key, value in attrs:
            self.attrs.add((tag, key))
            self.values.append((tag, key, value or ""))


@pytest.fixture(scope="module")
def reports(study, wave_results, tmp_path_factory):  # noqa: F811
    """The first hospital's report and the consortium report, each from the plain data and
    from the hostile data (numeric ids, hostile names), rendered with the Jupyter engine."""
    out = tmp_path_factory.mktemp("hostile")
    bad_study, bad = hostile_study(study), hostile_results(wave_results)
    h = wave_results.hospital_ids()[0]
    finding = {"file": "staff.sav", "rule": "range", "message": "value 9 outside 1-7"}
    validation = {"status": "pass", "errors": [], "warnings": [finding]}
    plain_cons = WaveResults(**{**wave_results.__dict__, "validation": validation})
    paths = {
        "plain": render.render_hospital(
            study,
            WAVE,
            h,
            {},
            out / "plain" / f"{h}.html",
            HOSPITAL,
            "jupyter",
            results=wave_results,
        ),
        "hostile": render.render_hospital(
            bad_study,
            WAVE,
            "1",
            {},
            out / "hostile" / "1.html",
            HOSPITAL,
            "jupyter",
            results=bad,
        ),
        "plain_consortium": render.render_consortium(
            study,
            WAVE,
            {},
            out / "plain" / "consortium.html",
            CONSORTIUM,
            "jupyter",
            results=plain_cons,
        ),
        "hostile_consortium": render.render_consortium(
            bad_study,
            WAVE,
            {},
            out / "hostile" / "consortium.html",
            CONSORTIUM,
            "jupyter",
            results=bad,
        ),
    }
    html = {k: p.read_text() for k, p in paths.items()}
    return html, paths, bad, bad_study


# --- item 3: every free-text value is escaped where it is written --------------------------


@pytest.mark.parametrize("kind", ["hospital", "consortium"])
def test_hostile_names_make_no_element_or_attribute_the_template_does_not(reports, kind):
    html, *_ = reports
    plain = Elements(html["plain" if kind == "hospital" else "plain_consortium"])
    bad = Elements(html["hostile" if kind == "hospital" else "hostile_consortium"])
    assert set(bad.tags) <= set(plain.tags), set(bad.tags) - set(plain.tags)
    assert bad.attrs <= plain.attrs, bad.attrs - plain.attrs
    for tag in ("script", "b", "i", "u", "img", "code", "iframe", "object"):
        assert bad.tags[tag] == 0, tag
    # <style>: only the page's stylesheet and matplotlib's one per figure
    assert bad.tags["style"] == plain.tags["style"]
    assert not [a for a in bad.attrs if a[1].startswith("on")]
    for tag, key, value in bad.values:
        if key in ("href", "xlink:href", "src"):
            assert value.startswith("#"), (tag, key, value)  # links within the page only
    # the same document structure: no heading, list, link or table cell made by a name
    for tag in ("h1", "h2", "h3", "ol", "ul", "li", "a", "table", "tr", "td", "th", "p", "svg"):
        assert bad.tags[tag] == plain.tags[tag], tag


def test_hostile_names_show_literally(reports):
    html, _, bad, _ = reports
    text = report_text(html["hostile"])
    assert EVIL_NAME in text
    assert f"{EVIL_NAME}: feedback report, wave {WAVE}" in text  # <title> and <h1>
    assert clean(SCALE_LABEL) in text and clean(TEAM_LABEL) in text
    assert f"PS2: {ITEM_TEXT}" in text and clean(INSTRUMENT_LABEL) in text
    assert f"{PEER_GROUP} hospitals" in text  # the peer group, in text, table and figure
    assert text.count(f"Median of {PEER_GROUP} hospitals") == 1
    own = bad.team_register[bad.team_register["hospital_id"] == "1"]["team_name"]
    for name in own:
        assert clean(name) in text, name
    assert "\n# Ward" not in text and "PWNED" in text  # newlines in names are spaces
    cons = report_text(html["hostile_consortium"])
    for name in bad.organisations["hospital_name"]:
        assert clean(name) in cons
    assert VALIDATION_MESSAGE in cons and "<b>pass</b>" in cons


def test_team_names_are_written_only_where_names_are_marked(reports):
    """The scan looks for team names only in the places marked ``class="ident"``: every
    occurrence of a team name in the rendered report must be in one."""
    html, _, bad, _ = reports
    text, names = report_text(html["hostile"]), report_names(html["hostile"])
    own = bad.team_register[bad.team_register["hospital_id"] == "1"]["team_name"]
    seen = 0
    for name in map(clean, own):
        everywhere = text.count(name)
        marked = sum(n.count(name) for n in names)
        assert everywhere == marked, (name, everywhere, marked)
        seen += everywhere > 0
    assert seen == len(own)


def test_svg_labels_and_alt_text_are_escaped(study, wave_results):  # noqa: F811
    from flaqum.report import figures

    v = hospital_view(wave_results, study, wave_results.hospital_ids()[0])
    d = v.teams[v.teams["scale"] == "psych_safety"].copy()
    shown = d.index[d["status"] == "shown"]
    d.loc[shown[0], "team_name"] = 'A & <b>B</b> "C" $x$ $y$ \\1 \\g<0>'
    fig = figures.teams(d, "Lab\nel <i>x</i>", (1, 7), 4.5, 4.6, 0.7)
    svg = figures.to_svg(fig, alt='Alt "<script>" \\1 \\g<0>', key="t")
    doc = Elements(svg)
    assert doc.tags["b"] == doc.tags["i"] == doc.tags["script"] == 0
    assert ("svg", "aria-label") in doc.attrs
    aria = dict((k, v) for t, k, v in doc.values if t == "svg")["aria-label"]
    assert aria == 'Alt "<script>" \\1 \\g<0>'
    text = report_text(svg)
    assert 'A & <b>B</b> "C" $x$ $y$ \\1 \\g<0> (n=' in text  # no mathtext, no regex groups
    assert "Lab el <i>x</i>: your teams" in text


def test_clean_makes_one_line_of_plain_text():
    assert clean("a\n\tb\x00c\u202ed\u2066e  f") == "a b cde f"  # bidi marks removed
    assert clean("Zoë 病棟 עברית 😀") == "Zoë 病棟 עברית 😀"
    assert clean(None) == clean(np.nan) == clean(pd.NA) == ""
    assert clean(3) == "3"


def test_markdown_escape_keeps_every_character_and_no_syntax():
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    nasty = "# H\n- l\n1. x *e* _u_ `c` [l](javascript:x) <b>&amp; $a$ \\(b\\) | t | ~~s~~ >q"
    out = markdown2html_mistune(md(nasty))
    doc = Elements(out)
    assert set(doc.tags) == {"p"}, doc.tags
    assert report_text(out) == clean(nasty)


# --- item 6: the scan, right both ways ------------------------------------------------------


def test_numeric_ids_and_hostile_names_pass_the_scan(reports):
    """The hostile report was rendered with ids "1".."8" and scanned by render_hospital (a
    hit would have failed the render); the report is full of small numbers."""
    html, paths, bad, bad_study = reports
    assert paths["hostile"].exists()
    text = report_text(html["hostile"])
    for other in ("2", "3", "5", "7"):
        assert re.search(rf"(?<!\d){other}(?!\d)", text)  # the numbers are there, as numbers
    assert scan_report(html["hostile"], forbidden_identifiers(bad, "1", bad_study)) == []
    assert all(weak_id(i) for i in bad.hospital_ids())


def _forbidden_for(res, study, h, ids=None, names=None, teams=None):
    """``forbidden_identifiers`` of hospital ``h`` in a wave whose other hospitals have the
    given ids, names and team names."""
    ids = ids or []
    orgs = pd.DataFrame(
        {
            "hospital_id": [h, *ids],
            "hospital_name": [res.hospital_name(h), *(names or [f"Other {i}" for i in ids])],
        }
    )
    own = res.team_register[res.team_register["hospital_id"] == h]
    others = pd.DataFrame(
        {
            "team_id": [f"X{i}" for i in range(len(teams or []))],
            "hospital_id": (ids or ["ZZ"])[0],
            "team_name": teams or [],
        }
    )
    reg = pd.concat([own, others], ignore_index=True)
    return forbidden_identifiers(
        WaveResults(**{**res.__dict__, "organisations": orgs, "team_register": reg}), h, study
    )


def test_h1_style_ids_are_not_found_in_tags(study, reports, wave_results):  # noqa: F811
    html, *_ = reports
    h = wave_results.hospital_ids()[0]
    assert "<h1" in html["plain"] and "<h2" in html["plain"]
    forbidden = _forbidden_for(wave_results, study, h, ids=[f"H{i}" for i in range(1, 8)])
    assert scan_report(html["plain"], forbidden) == []
    numeric = _forbidden_for(wave_results, study, h, ids=[str(i) for i in range(1, 31)])
    assert scan_report(html["plain"], numeric) == []


def test_team_names_that_are_common_words_are_not_hits(study, reports, wave_results):  # noqa: F811
    html, *_ = reports
    h = wave_results.hospital_ids()[0]
    words = ["Safety", "Care", "Surgery", "Team", "Quality", "Patients", "Hospital", "Members"]
    forbidden = _forbidden_for(wave_results, study, h, ids=["HX"], teams=words)
    text = report_text(html["plain"]).lower()
    assert "psychological safety" in text and "care" in text and "team" in text
    assert scan_report(html["plain"], forbidden) == []
    # a hospital called "Safety" is not found inside the scale "Psychological safety"
    named = _forbidden_for(wave_results, study, h, ids=["HX"], names=["Safety"])
    assert scan_report(html["plain"], named) == []


def _own_team_cell(html: str, res, h) -> str:
    """A team name of hospital ``h`` as the report writes it in its team table."""
    for name in res.team_register.loc[res.team_register["hospital_id"] == h, "team_name"]:
        cell = f'<span class="ident">{name}</span>'
        if f"<td>{cell}</td>" in html:
            return cell
    raise AssertionError("no team cell found")


def test_each_kind_of_real_leak_is_caught(study, reports, wave_results):  # noqa: F811
    html, *_ = reports
    page = html["plain"]
    h = wave_results.hospital_ids()[0]
    forbidden = _forbidden_for(
        wave_results,
        study,
        h,
        ids=["H2", "10", "B"],
        names=["Beta Hospital", "Delta", "Gamma"],
        teams=["Safety", "Cardiac surgery B3"],
    )
    cell = _own_team_cell(page, wave_results, h)

    def hits(old, new, count=1):
        assert old in page
        return scan_report(page.replace(old, new, count), forbidden)

    para = "<h2 "
    # another hospital's name: in a sentence, a table cell, an SVG label, an alt text
    assert hits(para, "<p>Unlike Beta Hospital, your teams</p><h2 ") == [
        "hospital name 'Beta Hospital'"
    ]
    assert hits(cell, '<span class="ident">Delta</span>') == ["hospital name 'Delta'"]
    assert hits("</svg>", "<text>gamma (n=12)</text></svg>") == ["hospital name 'Gamma'"]
    assert hits(para, '<img alt="Beta Hospital"><h2 ') == ["hospital name 'Beta Hospital'"]
    # an identifier-like id anywhere in the text
    assert hits(para, "<p>Compared with H2, you are higher.</p><h2 ") == ["hospital id 'H2'"]
    assert hits('role="img"', 'role="img" aria-label="H2"') == ["hospital id 'H2'"]
    # a number-like id where ids are written, not as a number
    assert hits(para, "<p>10 teams answered; fewer than 10 responses.</p><h2 ") == []
    assert hits(para, "<p>As hospital 10 did</p><h2 ") == ["hospital id '10'"]
    assert hits(para, "<p>As Hospital no. 10 did</p><h2 ") == ["hospital id '10'"]
    assert hits(para, "<p>As H10 did</p><h2 ") == ["hospital id '10'"]
    assert hits(para, "<p>H10a, H10.5, H2O, 10H</p><h2 ") == []
    assert hits(cell, '<span class="ident">10</span>') == ["hospital id '10'"]
    assert hits(para, "<p>B is a letter</p><h2 ") == []
    assert hits(para, "<p>Site B scored</p><h2 ") == ["hospital id 'B'"]
    # another hospital's team where team names are written: table, list, SVG label
    assert hits(cell, '<span class="ident">Safety</span>') == ["team name 'Safety'"]
    assert hits(cell, '<span class="ident">cardiac surgery b3</span>') == [
        "team name 'Cardiac surgery B3'"
    ]
    tspan = re.search(r'<tspan class="ident">[^<]+</tspan>', page).group(0)
    assert hits(tspan, '<tspan class="ident">Safety</tspan>') == ["team name 'Safety'"]
    # an embedded SVG (as nbconvert writes images) is read too
    svg = base64.b64encode(b"<svg><title>Beta Hospital</title></svg>").decode()
    assert hits(para, f'<img src="data:image/svg+xml;base64,{svg}"><h2 ') == [
        "hospital name 'Beta Hospital'"
    ]


def test_markup_attributes_and_path_data_are_not_text():
    orgs = pd.DataFrame({"hospital_id": ["A1", "H2", "10"], "hospital_name": ["Alpha", "B", "C"]})
    reg = pd.DataFrame({"team_id": ["1"], "hospital_id": ["H2"], "team_name": ["Safety"]})
    empty = pd.DataFrame()
    res = WaveResults("w", orgs, reg, empty, empty, empty, empty)
    forbidden = forbidden_identifiers(res, "A1")
    page = (
        '<h2 id="H2" class="Safety">Psychological safety</h2><a href="#H2">x</a>'
        '<svg><g id="H2"><path d="M 10 H2 10 L 10 0"/></g><style>.H2{x:10}</style></svg>'
        "<script>var H2 = 10;</script><p>10 teams, 10.5 points, 2024-10</p>"
    )
    assert scan_report(page, forbidden) == []
    assert scan_report("<p>Hospital H2.</p>", forbidden) == ["hospital id 'H2'"]
    assert scan_report("<p>H2-3 and PH2 and H20</p>", forbidden) == []
    # an own name excuses what lies inside it, not what lies around it
    own = pd.DataFrame({"team_id": ["1"], "hospital_id": ["A1"], "team_name": ["Safety first"]})
    res = WaveResults("w", orgs, pd.concat([reg, own]), empty, empty, empty, empty)
    forbidden = forbidden_identifiers(res, "A1")
    assert scan_report('<td><span class="ident">Safety first</span></td>', forbidden) == []
    assert scan_report('<td><span class="ident">Safety</span></td>', forbidden) == [
        "team name 'Safety'"
    ]


# --- item 3 (determinism) and item 14 (kernel) ---------------------------------------------


def test_same_input_gives_byte_identical_reports(study, wave_results, reports, tmp_path, capfd):  # noqa: F811
    """A second render of the plain report into another folder: the same bytes; and the
    kernel, on local sockets, prints no warning about unencrypted TCP."""
    html, paths, *_ = reports
    h = wave_results.hospital_ids()[0]
    again = render.render_hospital(
        study,
        WAVE,
        h,
        {},
        tmp_path / "again" / f"{h}.html",
        HOSPITAL,
        "jupyter",
        results=wave_results,
    )
    assert again.read_bytes() == paths["plain"].read_bytes()
    assert "cell-id=cell-" in html["plain"]  # fixed cell ids, not random ones
    captured = capfd.readouterr()
    assert "without encryption" not in captured.out + captured.err
    assert "running over TCP" not in captured.out + captured.err


def test_kernel_uses_local_sockets_and_cleans_them_up(tmp_path):
    from pathlib import Path

    km = render.start_kernel(tmp_path)
    try:
        assert km.transport == "ipc"
        folder = Path(km.ip).parent
        assert folder.is_dir()
    finally:
        render.stop_kernel(km)
    assert not folder.exists()


# --- item 14: a hospital without respondents; item 5: numbers -------------------------------


def test_a_hospital_without_respondents_is_not_told_it_was_not_measured_before(
    study,
    wave_results,  # noqa: F811
):
    res = wave_results
    h = next(x for x in res.hospital_ids() if x in set(res.change["hospital_id"]))
    fields = {}
    for key in ("hospitals", "teams", "agreement", "change"):
        df = getattr(res, key)
        fields[key] = df[df["hospital_id"] != h]
    fields["responses"] = {s: d[d["hospital_id"] != h] for s, d in res.responses.items()}
    r2 = WaveResults(**{**res.__dict__, **fields})
    v = hospital_view(r2, study, h)
    assert v.no_respondents and all(n == 0 for n in v.respondents.values())
    c = build_hospital(r2, study, h)["sections"]
    glance = " ".join(b.get("text", "") + b.get("html", "") for b in c["glance"])
    assert "not measured before" not in glance
    assert glance.count("no respondents this wave") == len(v.scales)
    assert "no professionals" in glance and "no patients and their kin" in glance
    trend = c["trend"][0]["text"]
    assert "did not take part in the previous wave" not in trend
    assert "Nobody at" in trend and "answered the surveys in wave" in trend
    # a hospital that answered but has no previous wave is still told so
    late = [x for x in res.hospital_ids() if x not in set(res.change["hospital_id"])][0]
    c = build_hospital(res, study, late)["sections"]
    assert "not measured before" in c["glance"][-1]["html"]
    assert "did not take part in the previous wave" in c["trend"][0]["text"]


def test_numbers_have_one_minus_sign_and_no_negative_zero():
    m = "\u2212"
    assert tables.num(-0.004) == "0.00" and tables.num(-0.0) == "0.00"
    assert tables.num(-0.5) == f"{m}0.50" and tables.num(-1234.5, 1) == f"{m}1234.5"
    assert tables.signed(-0.004) == "0.00" and tables.signed(0.004) == "0.00"
    assert tables.signed(0.5) == "+0.50" and tables.signed(-0.5) == f"{m}0.50"
    assert tables.interval(-0.2, 0.1) == f"{m}0.20 to 0.10"
    assert tables.pct(-0.2) == "0%" and tables.span(-3, 3) == f"{m}3\u20133"
    assert tables.num(np.nan) == "" and tables.num(None) == "" and tables.num(pd.NA) == ""


def test_report_numbers_use_the_true_minus_sign(reports):
    html, *_ = reports
    cells = re.findall(r'<td class="num">([^<]*)</td>', html["plain"])
    assert cells and not [c for c in cells if "-" in c]
    text = report_text(html["plain"])
    assert not re.search(r"[-\u2212]0\.0+(?![0-9])", text)
    assert not re.search(r"(?<![\w.])-\d", text.replace(WAVE, "").replace("2024-1", ""))
