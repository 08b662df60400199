"""Every number the summary and the conversation points quote is a cell of the report's own tables.

The content records, for each number it writes into those texts, the table cell it comes from
(``content.Quotes``: table id, row, column, text; or a count of rows of a column). These tests
read the numbers back from the Markdown, look each one up in the HTML of the table it names
(parsed, as a reader sees it) and compare the strings exactly; a number in the text that no
record claims fails too. So a text that rounds differently from its table ("2.2" where the
table shows 2.25), that takes its number from another source (a single question against a
scale's table) or that writes a number without a record cannot pass; the last test shows the
check failing on exactly those three mutations.

The data are the small synthetic consortium of tests/conftest.py with the stand-in statistics
of tests/test_report.py; two hospitals get a clear signal, a clear fall and a clear gap written
into their results, so that every kind of conversation point is checked at least once.
"""

from __future__ import annotations

import copy
import html
import re

import numpy as np
import pandas as pd
import pytest
from support.html_tables import html_tables
from test_report import first_wave_results, wave_results  # noqa: F401  (the fixtures)

from flaqum.report import confidentiality as conf
from flaqum.report import content, figures, tables
from flaqum.report.data import WaveResults

MINUS = "\u2212"


def parse_table(html: str) -> tuple[list[str], list[list[str]]]:
    tables = html_tables(html)
    assert len(tables) == 1, "one table per table block"
    return tables[0]


def report_tables(c: dict) -> dict[str, tuple[list[str], list[list[str]]]]:
    out = {}
    for sec in c["sections"].values():
        for b in sec:
            if b["kind"] == "table" and b.get("id"):
                assert b["id"] not in out, f"two tables named {b['id']!r}"
                out[b["id"]] = parse_table(b["html"])
    return out


_NUMBER = re.compile(rf"[+{MINUS}-]?\d+(?:\.\d+)?%?")


def _claim(text: str, taken: list[bool], part: str) -> bool:
    """Mark the first occurrence of ``part`` in ``text`` that is not inside a longer number
    and not yet claimed; False if there is none."""
    start = 0
    while (i := text.find(part, start)) >= 0:
        j = i + len(part)
        before = text[i - 1] if i else ""
        after = text[j : j + 2]
        inside = (before.isdigit() or before in ".+" + MINUS) or (
            after[:1].isdigit() or (after[:1] == "." and after[1:2].isdigit())
        )
        if not inside and not any(taken[i:j]):
            taken[i:j] = [True] * (j - i)
            return True
        start = i + 1
    return False


def _lookup(q: dict, tabs: dict) -> str | None:
    """What is wrong with quote ``q`` against the tables (None: it is the table's cell)."""
    if q["table"] not in tabs:
        return f"{q}: no table {q['table']!r}"
    header, rows = tabs[q["table"]]
    if q["column"] not in header:
        return f"{q}: table {q['table']!r} has no column {q['column']!r} ({header})"
    col = header.index(q["column"])
    if "count" in q:
        n = sum(1 for r in rows if r[col] and q["count"] in r[col])
        return None if str(n) == q["text"] else f"{q}: the table has {n} such rows"
    hits = [r for r in rows if r[0].strip() == q["row"]]
    if len(hits) != 1:
        return f"{q}: {len(hits)} rows named {q['row']!r} in table {q['table']!r}"
    cell = hits[0][col]
    if q["text"] == cell or q["text"] in _NUMBER.findall(cell):
        return None
    return f"{q}: the table's cell is {cell!r}"


def number_problems(c: dict) -> list[str]:
    """Every quoted number of the summary and conversation texts that is not its table's cell,
    and every number in those texts that no quote or label claims."""
    tabs = report_tables(c)
    problems = []
    for section in ("summary", "conversation"):
        for b in c["sections"][section]:
            if b["kind"] != "markdown":
                continue
            parts = b.get("points") or [b]
            for p in parts:
                # list numbers and the names of the intervals are not quantities
                text = re.sub(r"^\d+\. ", "", p["text"], flags=re.M)
                text = re.sub(r"(?<![\d.])(95|99\.8)% interval", "interval", text)
                taken = [False] * len(text)
                # labels and quotes longest first, so "3" does not claim a digit of "2024-1"
                found = sorted(
                    [(x, None) for x in p.get("labels", [])]
                    + [(x["text"], x) for x in p.get("quotes", [])],
                    key=lambda t: -len(t[0]),
                )
                for part, q in found:
                    if not _claim(text, taken, part):
                        problems.append(f"{section}: {part!r} is recorded but not in {text!r}")
                    elif q is not None:
                        assert q["section"] == section
                        why = _lookup(q, tabs)
                        if why:
                            problems.append(f"{section}: {why}")
                        # the row a number comes from is the one the sentence names
                        plain = re.sub(r"\\(.)", r"\1", html.unescape(text)).lower()
                        if q["row"] is not None and q["row"].lower() not in plain:
                            problems.append(f"{section}: {q} is from a row the text does not name")
                rest = "".join(" " if t else ch for ch, t in zip(text, taken, strict=True))
                left = re.findall(r"\S*\d\S*", rest)
                if left:
                    problems.append(f"{section}: numbers without a table cell {left} in {text!r}")
    return problems


# --- the data: every hospital of the fixture, and two with a signal of each kind ---------------


def _with_signals(res: WaveResults) -> tuple[WaveResults, list[str]]:
    """The results with a clearly low scale for one hospital and a clear fall and a clear gap
    for another (the fixture's stand-in statistics give few such points by themselves)."""
    h1, h2 = res.hospital_ids()[0], res.hospital_ids()[1]
    hosp = res.hospitals.copy()
    sel = (hosp["hospital_id"] == h1) & (hosp["scale"] == "team_collab")
    hosp.loc[sel, ["eb_mean", "raw_mean"]] = 1.5
    hosp.loc[sel, ["ci_low", "ci_high", "eb_se"]] = [1.4, 1.6, 0.05]
    # a clear gap: professionals low, patients high on one mirrored scale
    for scale, m in (("qs_prof_org", 2.2), ("qs_pat_org", 4.6)):
        sel = (hosp["hospital_id"] == h2) & (hosp["scale"] == scale)
        hosp.loc[sel, ["eb_mean", "raw_mean"]] = m
        hosp.loc[sel, ["ci_low", "ci_high", "eb_se"]] = [m - 0.1, m + 0.1, 0.05]
    change = res.change.copy()
    sel = (change["hospital_id"] == h2) & (change["scale"] == "psych_safety")
    change.loc[sel, ["change", "se", "ci_low", "ci_high"]] = [-0.456, 0.1, -0.652, -0.26]
    return WaveResults(**{**res.__dict__, "hospitals": hosp, "change": change}), [h1, h2]


@pytest.fixture(scope="module")
def contents(study, wave_results, first_wave_results):  # noqa: F811
    res, forced = _with_signals(wave_results)
    # a first wave: no change since a previous one
    h0 = first_wave_results.hospital_ids()[0]
    out = {("first wave", h0): content.build_hospital(first_wave_results, study, h0)}
    for h in wave_results.hospital_ids()[:4]:
        out[("plain", h)] = content.build_hospital(wave_results, study, h)
    for h in forced:
        out[("signals", h)] = content.build_hospital(res, study, h)
    return out


def test_every_quoted_number_is_the_cell_of_its_table(contents):
    kinds = set()
    for key, c in contents.items():
        assert number_problems(c) == [], key
        for b in c["sections"]["conversation"]:
            for p in b.get("points", []):
                kinds |= {(q["table"], q["column"]) for q in p["quotes"]}
        assert c["quotes"], f"{key}: the summary and conversation quote no number"
    # the check has met every kind of quoted number (not only the easy ones)
    tables_met = {t for t, _ in kinds}
    assert {"glance", "gaps", "maturity"} <= tables_met, tables_met
    assert ("glance", "Change since last wave (95% interval)") in kinds
    assert ("glance", "Your score") in kinds


def test_the_gap_point_uses_the_scale_and_says_nothing_of_a_gap_that_may_be_chance(
    study,
    wave_results,  # noqa: F811
):
    res, (_, h2) = _with_signals(wave_results)
    v = conf.hospital_view(res, study, h2)
    points = content.conversation_points(v, 5)
    gap = [p for p in points if "a gap of" in p]
    assert gap and "**organisation and leadership**" in gap[0]
    assert "95% interval" in gap[0]
    # the table it quotes: the glance table's scores of the two scales, and an interval
    g = content.scale_gaps(v).set_index("b").loc["qs_pat_org"]
    sc = v.scales.set_index("scale")
    assert tables.num(g["mean_b"]) == tables.num(sc.loc["qs_pat_org", "mean"])
    assert tables.num(g["mean_a"]) == tables.num(sc.loc["qs_prof_org", "mean"])
    # every gap named in a conversation point has an interval that excludes 0
    for h in wave_results.hospital_ids()[:4]:
        v = conf.hospital_view(wave_results, study, h)
        gaps = content.scale_gaps(v).dropna(subset=["gap"])
        for p in content.conversation_points(v, 10):
            if "a gap of" not in p:
                continue
            row = gaps[[f"**{content.tx(x.lower())}**" in p for x in gaps["label"]]].iloc[0]
            assert row["gap_low"] > 0 or row["gap_high"] < 0


def test_the_check_fails_on_another_rounding_another_source_or_an_unrecorded_number(contents):
    c = contents[("signals", next(k[1] for k in contents if k[0] == "signals"))]
    assert number_problems(c) == []
    block = c["sections"]["conversation"][0]
    point = next(
        i for i, p in enumerate(block["points"]) if any("." in q["text"] for q in p["quotes"])
    )
    q = next(q for q in block["points"][point]["quotes"] if "." in q["text"])

    def mutated(f):
        m = copy.deepcopy(c)
        f(m["sections"]["conversation"][0]["points"][point])
        return number_problems(m)

    # another rounding, in the text and its record alike ("2.25" written "2.2")
    short = q["text"][:-1]

    def rounding(p):
        p["text"] = p["text"].replace(q["text"], short, 1)
        for x in p["quotes"]:
            if x["text"] == q["text"]:
                x["text"] = short

    assert any("the table's cell is" in x for x in mutated(rounding))

    # another source: the same words, the number from another column of the table
    def source(p):
        for x in p["quotes"]:
            if x == q:
                x["column"] = next(
                    h for h in report_tables(c)[q["table"]][0][1:] if h != q["column"]
                )

    assert mutated(source)

    # another row: the same column of a row the sentence does not name
    def row(p):
        for x in p["quotes"]:
            if x == q:
                x["row"] = next(r[0] for r in report_tables(c)[q["table"]][1] if r[0] != q["row"])

    assert any("does not name" in x or "the table's cell is" in x for x in mutated(row))

    # a number the text writes without a record
    def unrecorded(p):
        p["text"] += " (n=42)"

    assert any("without a table cell" in x for x in mutated(unrecorded))


def test_summary_table_repeats_the_glance_tables_cells(contents):
    for key, c in contents.items():
        tabs = report_tables(c)
        sh, srows = tabs["summary"]
        gh, grows = tabs["glance"]
        glance = {r[0]: r for r in grows}
        assert [r[0] for r in srows] == list(glance), key
        for r in srows:
            g = glance[r[0]]
            for col in ("Your score", "95% interval"):
                if r[sh.index(col)]:
                    assert r[sh.index(col)] == g[gh.index(col)], (key, r[0], col)
            change = g[gh.index("Change since last wave (95% interval)")]
            s_change = r[sh.index("Change since last wave")]
            if _NUMBER.match(change):
                assert s_change.split(" ")[0] == _NUMBER.match(change).group(), (key, r[0])
        # no number (so nothing to disagree with a peers table): a placement or a dash
        peers = {"\u2014", "", "above the middle half", "in the middle half"}
        assert all(r[sh.index("Against peers")] in peers | {"below the middle half"} for r in srows)


def test_maturity_text_quotes_the_median_hospitals_count(study, wave_results):  # noqa: F811
    """The median over hospitals of each hospital's count of processes at baseline (not the
    count of processes whose consortium median reaches it), computed here independently."""
    items = wave_results.maturity_items
    cols = [c for c in items.columns if re.fullmatch(r"MM\d+", str(c))]
    assert len(cols) == 52
    x = items[cols].to_numpy(float)
    assessed = np.isfinite(x).any(axis=1)
    counts = (x[assessed] >= 3).sum(axis=1)
    h = wave_results.hospital_ids()[0]
    c = content.build_hospital(wave_results, study, h)
    text = " ".join(b["text"] for b in c["sections"]["maturity"] if b["kind"] == "markdown")
    med = np.median(counts)
    med_txt = tables.half(med)
    assert f"the median hospital has {med_txt} of 52 core processes" in text
    assert f"from {counts.min()} to {counts.max()}" in text
    _, rows = report_tables(c)["maturity_baseline"]
    assert rows[1][1] == f"{med_txt} of 52"


def test_figure_alternatives_state_the_result(contents):
    for key, c in contents.items():
        glance = next(b for b in c["sections"]["glance"] if b["kind"] == "figure")
        alt = re.search(r'aria-label="([^"]*)"', glance["svg"]).group(1)
        _, rows = report_tables(c)["glance"]
        n_lo = sum(r[6] == "clearly lower than the consortium" for r in rows)
        n_hi = sum(r[6] == "clearly higher than the consortium" for r in rows)
        if n_lo:
            assert f"clearly lower than the consortium on {n_lo} of" in alt, (key, alt)
        if n_hi:
            assert re.search(rf"clearly higher[^;]* on {n_hi}\b", alt), (key, alt)
        if not n_lo and not n_hi:
            assert "within the usual range" in alt
        # every figure of the report has a table of its numbers next to it
        for name, sec in c["sections"].items():
            for i, b in enumerate(sec):
                if b["kind"] == "figure" and name != "trend":
                    nxt = [x["kind"] for x in sec[i + 1 : i + 4]]
                    assert "table" in nxt, (key, name, b["title"])


def test_team_colour_is_decided_by_the_interval_that_is_drawn():
    d = pd.DataFrame(
        {
            "team_name": ["Sleep lab", "Ward"],
            "status": ["shown", "shown"],
            "n": [12, 30],
            "mean": [5.28, 4.7],
            "ci_low": [4.90, 4.5],
            "ci_high": [5.66, 4.9],
            "lo998": [4.68, 4.39],
            "hi998": [5.88, 5.01],
            "low_agreement": [False, False],
        }
    )
    from test_report_svg import axis, classed, parse, segments, words

    root = parse(figures.to_svg(figures.teams(d, "Psychological safety", (1, 7), 4.71, 4.8, 0.7)))
    fx = axis(root, "x")

    def drawn(cls):
        return {
            p.get("stroke"): sorted(
                (round(float(fx(s[0])), 2), round(float(fx(s[2])), 2)) for s in segments(p)
            )
            for p in classed(root, cls)
        }

    # the 99.8% bars are drawn beside the 95% ones; the 95% bar of the sleep lab lies above
    # 4.71, its drawn 99.8% bar does not: grey, as the legend says
    assert drawn("ci998") == {figures.GREY: [(4.39, 5.01), (4.68, 5.88)]}
    assert drawn("ci95") == {figures.GREY: [(4.5, 4.9), (4.9, 5.66)]}
    assert "clearly higher than your hospital" in words(classed(root, "legend")[0])


def test_methods_show_labels_and_no_fit_for_three_item_scales(study, wave_results):  # noqa: F811
    psy = pd.DataFrame(
        {
            "scale": ["mm_total", "x3"],
            "n_respondents": [40, 300],
            "n_items": [52, 3],
            "alpha": [0.9, 0.8],
            "cfi": [0.97, 1.0],
            "rmsea": [0.04, 0.0],
        }
    )
    html = tables.psychometrics_table(psy, {"mm_total": "Maturity Matrix total", "x3": "X"})
    _, rows = parse_table(html)
    assert rows[0][0] == "Maturity Matrix total" and rows[0][4] == "0.97"
    assert rows[1][4] == rows[1][5] == "not testable"
    c = content.build_hospital(wave_results, study, wave_results.hospital_ids()[0])
    methods = " ".join(b.get("html", "") for b in c["sections"]["methods"])
    assert "mm_total" not in methods and "mm_bb01" not in methods


def test_numbers_have_one_minus_sign_and_no_negative_zero():
    assert tables.num(-0.004) == "0.00" and tables.signed(-0.004) == "0.00"
    assert tables.num(-0.5) == f"{MINUS}0.50" and tables.signed(-0.5) == f"{MINUS}0.50"
    assert tables.signed(0.5) == "+0.50"
    assert tables.interval(-0.3, -0.001) == f"{MINUS}0.30 to 0.00"


def test_response_rate_from_the_registers_invited_counts(study, wave_results):  # noqa: F811
    orgs = wave_results.organisations
    assert {"staff_invited", "patients_invited"} <= set(orgs.columns)  # the demo writes them
    ids = wave_results.hospital_ids()
    blank = [h for h in ids if pd.isna(orgs.set_index("hospital_id").loc[h, "patients_invited"])]
    assert len(blank) == 1
    for h in (ids[0], blank[0]):
        c = content.build_hospital(wave_results, study, h)
        _, rows = report_tables(c)["response"]
        inv = orgs.set_index("hospital_id").loc[h]
        for row, source in zip(rows, ("staff", "patients"), strict=True):
            n = int((wave_results.responses[source]["hospital_id"] == h).sum())
            assert row[2] == str(n)
            if pd.isna(inv[f"{source}_invited"]):
                assert row[1:] == ["not recorded", str(n), "unknown"]
            else:
                i = int(inv[f"{source}_invited"])
                assert row[1] == str(i) and row[3] == f"{100 * n / i:.0f}%"
    # a register without the columns: every rate unknown
    r2 = WaveResults(
        **{
            **wave_results.__dict__,
            "organisations": orgs.drop(columns=["staff_invited", "patients_invited"]),
        }
    )
    c = content.build_hospital(r2, study, ids[0])
    _, rows = report_tables(c)["response"]
    assert [r[1] for r in rows] == ["not recorded"] * 2 and [r[3] for r in rows] == ["unknown"] * 2


def test_against_peers_is_a_dash_until_the_view_has_a_peer_group(study, wave_results):  # noqa: F811
    h = wave_results.hospital_ids()[0]
    v = conf.hospital_view(wave_results, study, h)
    assert content._peer_cells(v) != {}  # the fixture's first hospital has a peer group
    v.peer_group, v.peer_label = None, None  # a view without one
    assert content._peer_cells(v) == {}
    shown = v.scales[v.scales["status"] == "shown"].reset_index(drop=True)
    m = shown["mean"]
    # a peer group (as the peers stage gives it): above, inside and below its middle half,
    # and a scale whose group is too small to be shown
    v.peer_group = pd.DataFrame(
        {
            "scale": shown["scale"][:4],
            "q1": [m[0] - 0.3, m[1] - 0.1, m[2] + 0.1, np.nan],
            "q3": [m[0] - 0.1, m[1] + 0.1, m[2] + 0.3, np.nan],
            "status": ["shown", "shown", "shown", "few"],
        }
    )
    v.peer_label = "teaching hospitals"
    cells = content._peer_cells(v)
    assert [cells.get(s) for s in shown["scale"][:4]] == [
        "above the middle half",
        "in the middle half",
        "below the middle half",
        None,
    ]
    summary = next(b for b in content._summary(v) if b.get("id") == "summary")
    _, rows = parse_table(summary["html"])
    by_label = {r[0]: r[5] for r in rows}
    assert by_label[shown["label"][0]] == "above the middle half"
    assert by_label[shown["label"][3]] == "\u2014"
    assert "middle half (first to third quartile) of teaching hospitals" in summary["caption"]
