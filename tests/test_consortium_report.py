"""The consortium report's research sections (issue 10, items 12 and 13), by content: each table
parsed back and compared with the results frames it was made from."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from support.html_tables import html_tables

from flaqum import funnel, planning
from flaqum.report import content
from flaqum.report.data import WaveResults

SURVEY = {
    "staff": [
        "psych_safety",
        "qs_prof_total",
        "qs_prof_person",
        "qs_prof_safe",
        "qs_prof_org",
        "qs_prof_global",
        "team_collab",
    ],
    "patients": ["qs_pat_total", "qs_pat_person", "qs_pat_safe", "qs_pat_org", "qs_pat_global"],
}
K = 5


def tables_of(blocks) -> list[tuple[list[str], list[list[str]]]]:
    return [t for b in blocks if b["kind"] == "table" for t in html_tables(b["html"])]


def text_of(blocks) -> str:
    return " ".join(b.get("text", "") + b.get("caption", "") + b.get("html", "") for b in blocks)


def _hyp_docs():
    pois = {
        "id": "climate_mortality",
        "description": "Better collaboration, lower mortality.",
        "level": "hospital",
        "family": "poisson",
        "standardize": False,
        "se_type": "HC1 sandwich",
        "correction": {"label": "HC3 (small-sample)", "df": {"team_collab": 26.0}},
        "n": 30,
        "n_clusters": None,
        "estimates": [
            {
                "term": "Intercept",
                "focal": False,
                "estimate": 2.0,
                "ci_low": 1.0,
                "ci_high": 3.0,
                "p": 0.5,
            },
            {
                "term": "team_collab",
                "focal": True,
                "estimate": -0.5734,
                "se": 0.065,
                "ci_low": -0.7017,
                "ci_high": -0.4451,
                "p": 2e-18,
                "q": 4e-18,
                "exp_estimate": 0.5636,
                "exp_ci_low": 0.4958,
                "exp_ci_high": 0.6408,
            },
        ],
        "plausible_values": {
            "combined_by": "Rubin's rules, Barnard-Rubin df",
            "estimates": [
                {
                    "term": "team_collab",
                    "focal": True,
                    "estimate": -0.5754,
                    "ci_low": -0.7124,
                    "ci_high": -0.4384,
                    "p": 0.0123,
                    "q": 0.0456,
                    "df": 97.17,
                    "exp_estimate": 0.5625,
                    "exp_ci_low": 0.4905,
                    "exp_ci_high": 0.6451,
                },
            ],
        },
    }
    gauss = {
        "id": "maturity_psych_safety",
        "description": "Maturity and psychological safety.",
        "level": "team",
        "family": "gaussian",
        "standardize": True,
        "se_type": "cluster-robust by hospital_id (CR1)",
        "n": 591,
        "n_clusters": 29,
        "estimates": [
            {
                "term": "mm_total",
                "focal": True,
                "estimate": 0.4359,
                "ci_low": 0.3248,
                "ci_high": 0.5471,
                "p": 0.2,
                "q": 0.25,
            },
        ],
    }
    return [pois, gauss]


@pytest.fixture(scope="module")
def results(study):
    rng = np.random.default_rng(3)
    ids = [f"H{i}" for i in range(1, 9)]
    names = {h: f"Hospital {c}" for h, c in zip(ids, "ABCDEFGH", strict=True)}
    orgs = pd.DataFrame({"hospital_id": ids, "hospital_name": [names[h] for h in ids]})
    rows = []
    for scales in SURVEY.values():
        for s in scales:
            for h in ids:
                n = 3 if h == "H8" else int(rng.integers(50, 300))
                m = float(rng.normal(3.5, 0.3))
                se = 0.08
                rows.append((s, h, n, m, m, se, m - 1.96 * se, m + 1.96 * se, n < K))
    hosp = pd.DataFrame(
        rows,
        columns=[
            "scale",
            "hospital_id",
            "n",
            "raw_mean",
            "eb_mean",
            "eb_se",
            "ci_low",
            "ci_high",
            "suppressed",
        ],
    )
    hosp.loc[hosp["suppressed"], ["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]] = np.nan
    change = hosp[["scale", "hospital_id", "n"]].assign(
        previous_wave="2024-1",
        n_previous=100,
        change=rng.normal(0, 0.2, len(hosp)),
        se=0.05,
        suppressed=hosp["suppressed"],
    )
    change["ci_low"], change["ci_high"] = change["change"] - 0.098, change["change"] + 0.098
    change.loc[change["suppressed"], ["change", "ci_low", "ci_high"]] = np.nan
    teams = pd.DataFrame(
        [(h, f"T{j}", f"Team {h}-{j}") for h in ids for j in range(3)],
        columns=["hospital_id", "team_id", "team_name"],
    )
    agreement = pd.DataFrame(
        [
            (s, h, t, 8, float(rng.uniform(0.5, 1.0)), 0.7, False)
            for s in SURVEY["staff"]
            for h, t in zip(teams["hospital_id"], teams["team_id"], strict=True)
        ],
        columns=["scale", "hospital_id", "team_id", "n", "rwg_j", "awg", "suppressed"],
    )
    agreement.loc[0, "rwg_j"] = 0.69996  # rounds to 0.700: must still read as below .70
    agreement.loc[1, ["n", "suppressed", "rwg_j"]] = [3, True, np.nan]
    scales_csv = pd.DataFrame(
        {"scale": SURVEY["staff"], "icc1": 0.2, "icc2": 0.7, "n_respondents": 240, "n_teams": 24}
    )
    outcomes = pd.DataFrame(
        {
            "hospital_id": ids,
            "deaths": [30, 60, 15, 200, 40, 55, 20, 35],
            "expected_deaths": [40.0, 50.0, 20.0, 100.0, 42.0, 50.0, 25.0, 36.0],
            "incidents_reported": [50, 80, 10, 300, 60, 70, 40, 45],
            "patient_days": [10000, 12000, 8000, 20000, 11000, 12500, 9000, 10000],
        }
    )
    inv = pd.DataFrame(
        [
            ("profession", "staff", "psych_safety", "psych_safety", "a; b", m, cfi, d, h, 500)
            for m, cfi, d, h in (
                ("configural", 0.99, np.nan, np.nan),
                ("metric", 0.985, -0.005, True),
                ("scalar", 0.95, -0.035, False),
            )
        ],
        columns=[
            "comparison",
            "source",
            "scale",
            "factors",
            "groups",
            "model",
            "cfi",
            "delta_cfi",
            "holds",
            "n",
        ],
    ).assign(rmsea=0.05, note="")
    adjusted = pd.DataFrame(
        [
            ("psych_safety", "casemix", "Intercept", 4.6, 0.0, 4.5, 4.7, 0.0, 1000, 0.01, 0.02),
            (
                "psych_safety",
                "casemix",
                "C(profession)[T.nurse]",
                0.03,
                0.1,
                -0.01,
                0.07,
                0.1,
                1000,
                0.01,
                0.02,
            ),
            ("psych_safety", "cross_level", "Intercept", 3.5, 0.0, 3.0, 4.0, 0.0, 1000, 0.45, 0.02),
            (
                "psych_safety",
                "cross_level",
                "mm_total",
                0.369,
                0.05,
                0.214,
                0.524,
                3e-6,
                1000,
                0.45,
                0.02,
            ),
        ],
        columns=[
            "scale",
            "model",
            "term",
            "estimate",
            "se",
            "ci_low",
            "ci_high",
            "p",
            "n_respondents",
            "r2_hospital",
            "r2_team",
        ],
    )
    summary = pd.DataFrame(
        {
            "hypothesis": ["climate_mortality", "maturity_psych_safety"],
            "fit": "plain",
            "term": ["team_collab", "mm_total"],
            "estimate": [-0.57, 0.44],
            "ci_low": [-0.7, 0.3],
            "ci_high": [-0.4, 0.5],
            "p": [2e-18, 0.2],
            "q": [4e-18, 0.25],
            "n": [30, 591],
            "family": ["poisson", "gaussian"],
            "level": ["hospital", "team"],
            "status": "fitted",
        }
    )
    return WaveResults(
        wave="2025-2",
        organisations=orgs,
        team_register=teams,
        hospitals=hosp,
        teams=pd.DataFrame(columns=["scale", "hospital_id", "team_id", "n", "eb_mean"]),
        maturity=pd.DataFrame({"hospital_id": pd.Series(dtype="string")}),
        maturity_items=pd.DataFrame({"hospital_id": pd.Series(dtype="string")}),
        agreement=agreement,
        change=change,
        scales=scales_csv,
        hypotheses=summary,
        validation={"status": "pass", "errors": [], "warnings": []},
        research={
            "invariance": inv,
            "adjusted": adjusted,
            "funnel": funnel.funnel_table(outcomes),
            "planning": planning.planning_scales(scales_csv, agreement),
            "planning_hospitals": planning.planning_hospitals(hosp),
            "hypothesis_results": _hyp_docs(),
        },
    )


@pytest.fixture(scope="module")
def sections(results, study):
    return content.consortium_content(results, study)["sections"]


def test_every_new_section_is_there(sections):
    for key in (
        "hospitals",
        "change",
        "adjusted",
        "invariance",
        "agreement",
        "hypotheses",
        "funnel",
        "planning",
    ):
        assert sections[key], key
    assert sections["trends"] == []  # the hook: trends come from the trend stage


def test_shrunken_not_adjusted(sections):
    for key in ("hospitals", "change"):
        text = text_of(sections[key])
        assert "shrunken (empirical Bayes)" in text
    everything = " ".join(text_of(b) for b in sections.values())
    assert not re.search(r"\badjusted (hospital )?averages?\b", everything, re.I)


def test_all_hospitals_tables_are_narrow_and_complete(sections, results):
    ts = tables_of(sections["hospitals"])
    assert len(ts) >= 3  # split by source and instrument
    shown = []
    for head, rows in ts:
        assert len(head) <= content.TABLE_SCALES + 2
        assert [r[0] for r in rows] == [f"Hospital {c}" for c in "ABCDEFGH"]
        # H8 has 3 respondents: no count, no average
        assert rows[-1][1] == f"<{K}" and all(c == "" for c in rows[-1][2:])
        shown += head[2:]
    # every survey scale is in one of the tables, once (labels without the side: the
    # caption names it)
    assert len(shown) == sum(len(v) for v in SURVEY.values())
    assert not any("(professionals)" in h or "(patients and kin)" in h for h in shown)
    # the values are the EB means
    h = results.hospitals
    head, rows = ts[0]
    first = h[(h["hospital_id"] == "H1") & (h["scale"] == "psych_safety")]["eb_mean"].iloc[0]
    assert f"{first:.2f}" in rows[0]


def test_change_table_marks_clear_changes(sections, results):
    head, rows = tables_of(sections["change"])[0]
    ch = results.change
    ps = ch[(ch["scale"] == "psych_safety") & ch["change"].notna()]
    row = next(r for r in rows if r[0] == "Psychological safety")
    assert row[1] == str(len(ps))
    assert row[2] == str(int((ps["ci_low"] > 0).sum()))
    assert row[3] == str(int((ps["ci_high"] < 0).sum()))
    # the per-hospital table: an arrow exactly where the interval excludes 0
    head, rows = tables_of(sections["change"])[1]
    col = head.index("Psychological safety")
    for r in rows:
        hid = "H" + str("ABCDEFGH".index(r[0][-1]) + 1)
        c = ps[ps["hospital_id"] == hid]
        if c.empty:
            assert r[col] == ""
            continue
        c = c.iloc[0]
        arrow = "\u2191" if c["ci_low"] > 0 else "\u2193" if c["ci_high"] < 0 else ""
        assert r[col].endswith(arrow) if arrow else r[col][-1].isdigit()


def test_agreement_lists_the_teams_below_the_threshold(sections, results):
    a = results.agreement
    low = a[(a["rwg_j"] < 0.7) & ~a["suppressed"]]
    head, rows = tables_of(sections["agreement"])[1]
    assert len(rows) == low.groupby(["hospital_id", "team_id"]).ngroups
    # 0.69996 is shown with the decimals that keep it below .70
    assert any("0.69996" in r[3] for r in rows)
    summary = tables_of(sections["agreement"])[0][1]
    ps = next(r for r in summary if r[0] == "Psychological safety")
    assert ps[4] == str(int((low["scale"] == "psych_safety").sum()))


def test_invariance_decision(sections):
    head, rows = tables_of(sections["invariance"])[0]
    assert rows[0][head.index("Invariance")].startswith("metric")
    assert rows[0][head.index("CFI scalar (\u0394)")] == "0.950 (\u22120.035)"


def test_adjusted_models(sections):
    head, rows = tables_of(sections["adjusted"])[0]
    row = rows[0]
    assert row[0] == "Psychological safety"
    assert "+0.369" in row and "<0.001" in row and "45%" in row


def test_hypothesis_table_reads_on_its_own(sections):
    head, rows = tables_of(sections["hypotheses"])[0]
    assert head[:2] == ["Hypothesis", "Fit"]
    pois = [r for r in rows if r[0] == "climate_mortality"]
    assert [r[1] for r in pois] == ["plain", "plausible values"]
    plain, pv = pois
    assert plain[2] == "log rate ratio per point of Team collaboration"
    assert plain[3] == "\u22120.573 (\u22120.702 to \u22120.445)"
    assert plain[4] == "rate ratio 0.56 (0.50 to 0.64)"
    assert plain[5] == "<0.001" and plain[6] == "<0.001"
    assert plain[8] == "HC3 (small-sample); df 26.0"  # the correction block, when present
    assert pv[5] == "0.012" and pv[6] == "0.046" and pv[8].endswith("df 97.2")
    g = next(r for r in rows if r[0] == "maturity_psych_safety")
    assert g[2].startswith("difference in the outcome per SD of")
    assert g[4] == ""  # no exponentiated effect for an identity link
    assert g[7] == "591 (29 clusters)"


def test_funnel_section(sections, results):
    f = results.research["funnel"]
    figs = [b for b in sections["funnel"] if b["kind"] == "figure"]
    assert len(figs) == f["indicator"].nunique() == 2
    for ind, b in zip(funnel.INDICATORS, figs, strict=True):
        sig = f[f["indicator"] == ind.id]["signal"]
        # blue marks a hospital above the limits, orange one below; nothing else is coloured
        assert ("#1f6fb4" in b["svg"]) == sig.str.startswith("above").any()
        assert ("#e8871e" in b["svg"]) == sig.str.startswith("below").any()
        assert f"{len(sig)} hospitals" in b["caption"]
    head, rows = tables_of(sections["funnel"])[0]
    out = f[f["signal"] != "within"]
    assert len(rows) == len(out) > 0
    assert {r[1] for r in rows} == {
        f"Hospital {'ABCDEFGH'[int(h[1:]) - 1]}" for h in out["hospital_id"]
    }
    assert {r[-1] for r in rows} == set(out["signal"])


def test_planning_table(sections, results):
    p = results.research["planning"].set_index("scale")
    head, rows = tables_of(sections["planning"])[0]
    row = next(r for r in rows if r[0] == "Psychological safety")
    assert row[head.index("Per team for .70")] == str(p.loc["psych_safety", "respondents_70"])
    assert row[head.index("Per team for .80")] == str(p.loc["psych_safety", "respondents_80"])
    m = results.research["planning_hospitals"]
    m = m[m["scale"] == "psych_safety"]["mdc"].dropna()
    assert row[head.index("Detectable change: median")] == f"{m.median():.2f}"


def test_hostile_names_are_text_everywhere_in_the_new_sections(results, study):
    import dataclasses

    bad = '<b>x</b> & "$(rm)" *y*'
    orgs = results.organisations.assign(hospital_name=[f"{bad} {i}" for i in range(8)])
    teams = results.team_register.assign(team_name=f"{bad} team")
    docs = [{**d, "description": bad} for d in results.research["hypothesis_results"]]
    r = dataclasses.replace(
        results,
        organisations=orgs,
        team_register=teams,
        research={**results.research, "hypothesis_results": docs},
    )
    sec = content.consortium_content(r, study)["sections"]
    for key in ("hospitals", "change", "agreement", "hypotheses", "funnel", "planning"):
        for b in sec[key]:
            for field in ("html", "svg", "text"):
                assert "<b>x</b>" not in b.get(field, ""), (key, field)
    # the names are there, escaped: in the tables and on the funnel plots
    html = " ".join(b.get("html", "") for b in sec["hospitals"])
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &quot;$(rm)&quot; *y* 0" in html
    svg = " ".join(b.get("svg", "") for b in sec["funnel"])
    outside = r.research["funnel"]["signal"].str.endswith("99.8%").any()
    assert ("&lt;b&gt;x&lt;/b&gt;" in svg) == bool(outside)
    # Markdown text escapes what would be syntax
    text = " ".join(b.get("text", "") for b in sec["hypotheses"])
    assert "\\*y\\*" in text


def test_load_wave_reads_the_research_inputs(tmp_path, results):
    import json

    from flaqum.report.data import RESEARCH, load_research, wave_paths

    res = tmp_path / "results" / "w"
    (res / "hypotheses").mkdir(parents=True)
    for key, rel in RESEARCH.items():
        (res / rel).parent.mkdir(parents=True, exist_ok=True)
        results.research[key].to_csv(res / rel, index=False)
    for doc in results.research["hypothesis_results"]:
        (res / "hypotheses" / f"{doc['id']}.json").write_text(json.dumps(doc))
    paths = wave_paths(tmp_path, "w")
    got = load_research(paths)
    assert set(got) == set(RESEARCH) | {"hypothesis_results"}
    assert [d["id"] for d in got["hypothesis_results"]] == sorted(
        d["id"] for d in results.research["hypothesis_results"]
    )
    f = got["funnel"]
    assert f["hospital_id"].dtype == "string"  # ids stay text
    assert len(f) == len(results.research["funnel"])
    # a missing file is simply absent (the report leaves its section out)
    (res / RESEARCH["funnel"]).unlink()
    assert "funnel" not in load_research(wave_paths(tmp_path, "w"))
