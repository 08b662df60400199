"""Report stage: confidentiality rules, the hospital's view, figures, content and the scan.

The results frames are built from a small synthetic consortium (tests/conftest.py) with the
stand-in statistics of ``flaqum.testing.standin`` (raw means, normal intervals): the report
functions take DataFrames, so they are tested without the multilevel stage.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from flaqum.benchmark import trend_table
from flaqum.ingest import process_source
from flaqum.io import read_source
from flaqum.report import confidentiality as conf
from flaqum.report import content, figures
from flaqum.report.data import WaveResults
from flaqum.scoring import score_source
from flaqum.testing.standin import (
    agreement_standin,
    change_standin,
    items_standin,
    multilevel_standin,
    scales_standin,
)


def _wave_frames(study, wave_dir):
    processed, scores = {}, {}
    for source in study.sources:
        path = next(wave_dir.glob(f"{source}.*"), None)
        if path is None:
            continue
        df, meta = read_source(path)
        processed[source], _ = process_source(study, source, df, meta)
        if study.scales_for(source):
            scores[source] = score_source(study, source, processed[source])
    return processed, scores


def build_results(study, raw_dir, wave, previous=None) -> WaveResults:
    """A WaveResults from one raw wave folder, stand-in statistics included."""
    processed, scores = _wave_frames(study, raw_dir / wave)
    surveys = {s: d for s, d in scores.items() if study.sources[s]["kind"] == "survey"}
    ml = multilevel_standin(study, surveys)
    change = None
    trends = trend_table({wave: ml["hospitals"]}, {}, study.min_group_size)
    if previous:
        _, prev_scores = _wave_frames(study, raw_dir / previous)
        prev = multilevel_standin(study, {s: d for s, d in prev_scores.items() if s in surveys})[
            "hospitals"
        ]
        change = change_standin(study, ml["hospitals"], prev, previous)
        # the report statistics' trends over both waves, as the benchmark stage writes them
        trends = trend_table(
            {previous: prev, wave: ml["hospitals"]}, {wave: change}, study.min_group_size
        )
    resp = {s: processed[s] for s in surveys}
    return WaveResults(
        wave=wave,
        organisations=processed["organisations"],
        team_register=processed["teams"],
        hospitals=ml["hospitals"],
        teams=ml["teams"],
        variance=ml["variance"],
        maturity=scores["maturity"],
        maturity_items=processed["maturity"],
        responses=resp,
        agreement=agreement_standin(study, surveys),
        change=change,
        scales=scales_standin(study, resp),
        items=items_standin(study, resp),
        validation={"status": "pass", "errors": [], "warnings": []},
        bench_trends=trends,
    )


def with_peer_group(res: WaveResults, size: int = 6) -> WaveResults:
    """The wave with a peer group the reports show: the first ``size`` hospitals are
    "general", the others "teaching" (the small consortium's random types leave every group
    below the minimum of 5)."""
    orgs = res.organisations.copy()
    ids = sorted(orgs["hospital_id"].astype(str))
    kind = {h: "general" if i < size else "teaching" for i, h in enumerate(ids)}
    orgs["hospital_type"] = orgs["hospital_id"].astype(str).map(kind)
    return WaveResults(**{**res.__dict__, "organisations": orgs})


@pytest.fixture(scope="session")
def wave_results(study, small_consortium):
    """The second wave, with trends over both waves and a peer group large enough to show."""
    raw, _ = small_consortium
    return with_peer_group(build_results(study, raw, "2025-2", previous="2024-1"))


@pytest.fixture(scope="session")
def first_wave_results(study, small_consortium):
    raw, _ = small_consortium
    return build_results(study, raw, "2024-1")


# --- complementary suppression ---------------------------------------------------------------


def status(ns, k=5, hidden=None):
    n = pd.Series(ns, index=[f"T{i}" for i in range(len(ns))])
    return list(conf.complementary_status(n, k, hidden).values)


def test_one_small_team_takes_the_smallest_other_team_with_it():
    assert status([3, 12, 8, 20]) == ["small", "shown", "withheld", "shown"]


def test_small_teams_are_topped_up_until_they_hold_k_respondents():
    # two small teams of 1 and 2 (3 < 5): the smallest shown team joins them
    assert status([1, 2, 9, 6]) == ["small", "small", "shown", "withheld"]
    # two small teams of 4 and 4 (8 >= 5): nothing more to hide
    assert status([4, 4, 9, 6]) == ["small", "small", "shown", "shown"]


def test_no_small_team_hides_nothing_and_empty_teams_protect_no_one():
    assert status([5, 9, 30]) == ["shown"] * 3
    # a team with no respondents is listed as small but hides nobody: the one real small
    # team still needs a partner
    assert status([0, 2, 9, 7]) == ["small", "small", "shown", "withheld"]


def test_a_team_hidden_earlier_stays_hidden():
    hidden = pd.Series([False, False, True], index=["T0", "T1", "T2"])
    assert status([9, 8, 7], hidden=hidden) == ["shown", "shown", "withheld"]


# --- the hospital's view ----------------------------------------------------------------------


def test_view_blanks_every_team_value_below_k_and_protects_small_teams(study, wave_results):
    k = study.min_group_size
    res = wave_results
    seen_small = 0
    for h in res.hospital_ids():
        v = conf.hospital_view(res, study, h)
        tv = v.teams
        hidden = tv[tv["status"] != "shown"]
        assert (
            hidden[["n", "mean", "ci_low", "ci_high", "lo998", "hi998", "rwg_j"]].isna().all().all()
        )
        assert (tv.loc[tv["status"] == "shown", "n"] >= k).all()
        own_names = set(res.team_register.loc[res.team_register["hospital_id"] == h, "team_name"])
        assert set(tv["team_name"]) <= own_names
        # the true sizes of the hidden teams: at least two with respondents, k or more together
        true = res.teams[res.teams["hospital_id"] == h]
        names = res.team_register.set_index(["hospital_id", "team_id"])["team_name"]
        for sid, d in tv.groupby("scale"):
            t = true[true["scale"] == sid].copy()
            t["team_name"] = [names.get((h, x), x) for x in t["team_id"]]
            n_true = t.set_index("team_name")["n"]
            hid = n_true.reindex(d.loc[d["status"] != "shown", "team_name"]).fillna(0)
            if (d["status"] == "small").any() and (hid > 0).any():
                seen_small += 1
                assert (hid > 0).sum() >= 2 and hid.sum() >= k, (h, sid, hid.to_dict())
    assert seen_small > 0, "the fixture should contain hospitals with small teams"


def test_peers_are_anonymous_values_of_the_other_hospitals(study, wave_results):
    res = wave_results
    h = res.hospital_ids()[0]
    v = conf.hospital_view(res, study, h)
    for sid, p in v.peers.items():
        others = res.hospitals[
            (res.hospitals["scale"] == sid)
            & (res.hospitals["hospital_id"] != h)
            & (res.hospitals["n"] >= study.min_group_size)
        ]
        assert p.shape == (len(others), 2)
        assert np.allclose(np.sort(p[:, 0]), np.sort(others["eb_mean"].to_numpy()))


def test_a_hospital_below_k_is_blank_in_its_own_report_and_absent_from_the_others(
    study, wave_results
):
    res = wave_results
    small, other = res.hospital_ids()[:2]
    hosp = res.hospitals.copy()
    sel = (hosp["hospital_id"] == small) & (hosp["scale"] == "psych_safety")
    hosp.loc[sel, "n"] = 3
    hosp.loc[sel, "eb_mean"] = 6.9876
    r2 = WaveResults(**{**res.__dict__, "hospitals": hosp})
    own = conf.hospital_view(r2, study, small).scales.set_index("scale").loc["psych_safety"]
    assert own["status"] == "small" and pd.isna(own["mean"]) and pd.isna(own["n"])
    peers = conf.hospital_view(r2, study, other).peers["psych_safety"]
    assert not np.isclose(peers[:, 0], 6.9876).any()
    assert len(peers) == len(res.hospital_ids()) - 2


def test_item_rows_with_fewer_than_k_answers_are_blank(study, wave_results):
    res = wave_results
    h = res.hospital_ids()[0]
    staff = res.responses["staff"].copy()
    rows = staff.index[staff["hospital_id"] == h]
    staff.loc[rows[3:], "PS2"] = np.nan  # only 3 answers left
    r2 = WaveResults(**{**res.__dict__, "responses": {**res.responses, "staff": staff}})
    items = conf.hospital_view(r2, study, h).items.set_index("item")
    assert items.loc["PS2", "status"] == "small"
    assert items.loc[["PS2"], ["n", "mean", "pct_positive", "pct_missing"]].isna().all().all()
    ok = items.loc["PS4"]
    assert ok["status"] == "shown" and ok["n"] >= study.min_group_size
    assert 0 <= ok["pct_positive"] <= 100 and 0 <= ok["pct_missing"] <= 100


def test_item_percent_positive_uses_the_codebook_threshold(study, wave_results):
    res = wave_results
    h = res.hospital_ids()[1]
    items = conf.hospital_view(res, study, h).items.set_index("item")
    x = res.responses["staff"].loc[res.responses["staff"]["hospital_id"] == h, "TC1"].dropna()
    assert items.loc["TC1", "pct_positive"] == pytest.approx(100 * (x >= 4).mean())
    assert items.loc["TC1", "mean"] == pytest.approx(x.mean())


def test_stakeholder_gap_is_patients_minus_professionals(study, wave_results):
    res = wave_results
    h = res.hospital_ids()[2]
    st = conf.hospital_view(res, study, h).stakeholders.set_index("dimension")
    assert len(st) == len(set(study.instruments["quickscan_patients"].raw["dimensions"].values()))
    r = st.loc["safety"]
    staff = res.responses["staff"]
    pros = staff.loc[staff["hospital_id"] == h, ["QS06", "QS07"]].mean(axis=1).mean()
    assert r["side_a"] == "Professionals" and r["mean_a"] == pytest.approx(pros)
    assert r["gap"] == pytest.approx(r["mean_b"] - r["mean_a"])


def test_maturity_profile_has_six_drivers_and_nineteen_blocks(study, wave_results):
    v = conf.hospital_view(wave_results, study, wave_results.hospital_ids()[0])
    assert (v.maturity["level"] == "driver").sum() == 6
    assert (v.maturity["level"] == "building_block").sum() == 19
    assert len(v.maturity_processes) == 52 and v.baseline_level == 3


def test_trend_only_where_the_hospital_took_part_twice(study, wave_results, first_wave_results):
    res = wave_results
    late = [h for h in res.hospital_ids() if h not in first_wave_results.hospital_ids()]
    assert late, "the fixture has a hospital joining in the second wave"
    assert conf.hospital_view(res, study, late[0]).change is None
    ch = conf.hospital_view(res, study, res.hospital_ids()[0]).change
    assert ch is not None and (ch["previous_wave"] == "2024-1").all()
    assert (
        conf.hospital_view(first_wave_results, study, first_wave_results.hospital_ids()[0]).change
        is None
    )


@pytest.mark.parametrize("seed", range(4))
def test_change_cut_from_the_wave_is_each_hospitals_own(study, wave_results, seed):
    # the wave tables make every hospital's change rows at once (WaveTables.change_of): the
    # same frame as _change of the hospital's rows alone, its small groups blanked, rows out
    # of order and repeated, and a hospital with no scale of the view
    import dataclasses

    rng = np.random.default_rng(seed)
    c = wave_results.change.sample(frac=1, random_state=seed).reset_index(drop=True)
    small = rng.random(len(c)) < (0.1 if seed % 2 else 0.02)
    c.loc[small, "n"] = 2  # below k: the row's values blank
    c = pd.concat([c, c.iloc[:3]], ignore_index=True)  # a hospital with a scale twice
    ids = sorted(c["hospital_id"].dropna().unique())
    c.loc[c["hospital_id"] == ids[-1], "scale"] = "not_a_scale"
    res = dataclasses.replace(wave_results, change=c)
    tables = conf.wave_tables(res, study)
    scales = conf.hospital_view(res, study, ids[0], tables).scales
    kinds = set()
    for h in ids:
        got = conf._change(res, h, study.min_group_size, scales, tables)
        want = conf._change(res, h, study.min_group_size, scales)
        pd.testing.assert_frame_equal(got, want)
        kinds.add((want["status"] == "shown").all() if len(want) else None)
    assert kinds == {True, False, None}  # hospitals all shown, partly blank, without a row


def test_wave_tables_name_and_count_each_hospital_as_the_frames_do(study, wave_results):
    import dataclasses

    orgs = wave_results.organisations.copy()
    first = orgs["hospital_id"].iloc[0]
    orgs.loc[orgs["hospital_id"] == first, "hospital_name"] = np.nan  # a blank name: the id
    res = dataclasses.replace(wave_results, organisations=orgs)
    tables = conf.wave_tables(res, study)
    for h in res.hospital_ids():
        assert tables.hospital_name(h) == res.hospital_name(h)
        for source, df in res.responses.items():
            assert tables.respondents(source, h) == int((df["hospital_id"] == h).sum())
    assert tables.hospital_name(str(first)) == str(first)
    with pytest.raises(KeyError, match="NOT_A_HOSPITAL"):
        tables.hospital_name("NOT_A_HOSPITAL")


def _teams_variant(res, seed):
    """The wave with its team results roughed up: teams missing on a scale, small and flagged
    groups, blank standard errors; by seed also n as float with blanks, no agreement table,
    no eb_se column, and teams only in the register."""
    import dataclasses

    rng = np.random.default_rng(seed)
    t = res.teams.sample(frac=1, random_state=seed).reset_index(drop=True)
    t = t[rng.random(len(t)) > 0.1].reset_index(drop=True)
    small = rng.random(len(t)) < 0.15
    t.loc[small, "n"] = rng.integers(0, 5, small.sum())
    t.loc[rng.random(len(t)) < 0.05, "suppressed"] = True
    t.loc[rng.random(len(t)) < 0.1, "eb_se"] = np.nan
    reg, agreement = res.team_register, res.agreement
    if seed % 4 == 1:
        t["n"] = t["n"].astype(float)
        t.loc[rng.random(len(t)) < 0.05, "n"] = np.nan
    if seed % 4 == 2:
        agreement = None
    if seed % 4 == 3:
        t = t.drop(columns="eb_se")
        extra = reg.drop_duplicates("hospital_id").assign(team_id="T99", team_name=pd.NA)
        reg = pd.concat([reg, extra], ignore_index=True)
    return dataclasses.replace(res, teams=t, team_register=reg, agreement=agreement)


@pytest.mark.parametrize("seed", range(8))
def test_team_view_on_lists_is_the_pandas_one(study, wave_results, seed):
    # _hospital_teams works on lists for the usual column types: the frame of
    # _hospital_teams_frames (the oracle), value for value and dtype for dtype
    res = _teams_variant(wave_results, seed)
    tables = conf.wave_tables(res, study)
    k = study.min_group_size
    seen = set()
    for h in res.hospital_ids():
        meta = conf._hospital_scales(tables, h)[0]
        assert (
            conf._team_rows(res, h, k, meta, 0.7, tables, tables.of_hospital("teams", h))
            is not None
        )
        got = conf._hospital_teams(res, study, h, k, meta, 0.7, tables)
        want = conf._hospital_teams_frames(res, study, h, k, meta, 0.7, tables)
        pd.testing.assert_frame_equal(got, want)
        seen |= set(want["status"]) | {str(want["n"].dtype)}
    assert {"shown", "small", "withheld", "float64"} <= seen


def test_team_view_of_a_team_twice_on_a_scale_fails_as_pandas_does(study, wave_results):
    import dataclasses

    t = wave_results.teams
    res = dataclasses.replace(wave_results, teams=pd.concat([t, t.iloc[:1]], ignore_index=True))
    tables = conf.wave_tables(res, study)
    h = str(t["hospital_id"].iloc[0])
    meta = conf._hospital_scales(tables, h)[0]
    for make in (conf._hospital_teams, conf._hospital_teams_frames):
        with pytest.raises(ValueError, match="duplicate"):
            make(res, study, h, study.min_group_size, meta, 0.7, tables)


# --- figures --------------------------------------------------------------------------------


def svg_text(svg: str) -> str:
    texts = re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", "", t) for t in texts)  # team names are in a <tspan>


def test_every_figure_has_a_title_and_axis_labels(study, wave_results):
    v = conf.hospital_view(wave_results, study, wave_results.hospital_ids()[0])
    figs = {
        "glance": figures.glance(v.scales, v.peers, v.k),
        "between": figures.between_hospitals(v.scales, v.peers),
        "maturity": figures.maturity(v.maturity, v.baseline_level, v.ambition_year),
        "stakeholders": figures.stakeholders(v.stakeholders),
        "trend": figures.trend(v.trend, v.k),
    }
    for name, fig in figs.items():
        classes = [
            c
            for el in ET.fromstring(figures.to_svg(fig, name, name)).iter()
            for c in (el.get("class") or "").split()
        ]
        assert "title" in classes, name
        assert "xlabel" in classes or "ylabel" in classes, name
    glance = ET.fromstring(figures.to_svg(figs["glance"], "g", "g"))
    ticks = [el for el in glance.iter() if el.get("class") == "ytick" and el.tag.endswith("text")]
    assert len(ticks) == len(v.scales)
    between = ET.fromstring(figures.to_svg(figs["between"], "b", "b"))
    assert sum(el.get("class") == "panel" for el in between.iter()) == len(v.scales)


def test_team_chart_names_shown_teams_only_and_flags_disagreement(study, wave_results):
    res = wave_results
    for h in res.hospital_ids():
        v = conf.hospital_view(res, study, h)
        d = v.teams[v.teams["scale"] == "psych_safety"]
        if (d["status"] != "shown").any():
            break
    d = d.copy()
    d.loc[d["status"] == "shown", "low_agreement"] = [True] + [False] * (
        (d["status"] == "shown").sum() - 1
    )
    fig = figures.teams(d, "Psychological safety", (1, 7), 4.5, 4.6, 0.7)
    text = svg_text(figures.to_svg(fig, "alt", "t"))
    for r in d.itertuples():
        if r.status == "shown":
            assert f"{r.team_name} (n={int(r.n)})" in text
        else:
            assert f"{r.team_name} (n=" not in text
    assert text.count("members disagree") == 1


def test_svg_keeps_text_and_has_an_accessible_name(study, wave_results):
    v = conf.hospital_view(wave_results, study, wave_results.hospital_ids()[0])
    svg = figures.to_svg(figures.glance(v.scales, v.peers, v.k), "Where you stand", "g")
    assert svg.startswith("<svg") and 'aria-label="Where you stand"' in svg
    assert "<title>Where you stand</title>" in svg
    assert "Where your hospital stands on each scale" in svg_text(svg)


# --- content ------------------------------------------------------------------------------


def test_hospital_content_has_every_section_and_three_conversation_points(study, wave_results):
    h = wave_results.hospital_ids()[0]
    c = content.build_hospital(wave_results, study, h)
    assert set(c["sections"]) == {
        "heading",
        "summary",
        "glance",
        "conversation",
        "between",
        "teams",
        "maturity",
        "stakeholders",
        "trend",
        "items",
        "processes",
        "reading",
        "methods",
    }
    v = conf.hospital_view(wave_results, study, h)
    points = content.conversation_points(v, 3)
    assert 1 <= len(points) <= 3
    assert len(content.conversation_points(v, 2)) <= 2
    kinds = [b["kind"] for sec in c["sections"].values() for b in sec]
    assert kinds.count("figure") >= 6
    for sec in c["sections"].values():
        for b in sec:
            if b["kind"] == "figure":
                assert b["title"] and b["caption"] and b["svg"].startswith("<svg")


def test_conversation_points_name_a_clear_signal(study, wave_results):
    res = wave_results
    h = res.hospital_ids()[0]
    hosp = res.hospitals.copy()
    sel = (hosp["hospital_id"] == h) & (hosp["scale"] == "team_collab")
    hosp.loc[sel, ["eb_mean", "raw_mean"]] = 1.5  # far below every other hospital
    hosp.loc[sel, "ci_low"], hosp.loc[sel, "ci_high"] = 1.4, 1.6
    hosp.loc[sel, "eb_se"] = 0.05
    r2 = WaveResults(**{**res.__dict__, "hospitals": hosp})
    points = content.conversation_points(conf.hospital_view(r2, study, h), 3)
    assert any("**Team collaboration** is clearly lower" in p for p in points)


def test_consortium_content_names_hospitals_and_blanks_small_groups(study, wave_results):
    c = content.consortium_content(wave_results, study)
    assert {
        "overview",
        "validation",
        "variance",
        "hospitals",
        "psychometrics",
        "hypotheses",
    } <= set(c["sections"])
    html = " ".join(b.get("html", "") + b.get("svg", "") for s in c["sections"].values() for b in s)
    for name in wave_results.organisations["hospital_name"]:
        assert name in html


# --- the scan -----------------------------------------------------------------------------


def test_scan_finds_names_ids_and_team_names_in_text_and_base64_images(wave_results):
    res = wave_results
    h, other = res.hospital_ids()[:2]
    forbidden = conf.forbidden_identifiers(res, h)
    other_name = res.hospital_name(other)
    assert conf.scan_report("<p>nothing here</p>", forbidden) == []
    assert conf.scan_report(f"<p>{other_name}</p>", forbidden) == [f"hospital name {other_name!r}"]
    assert conf.scan_report(f'<img alt="x {other}">', forbidden) == [f"hospital id {other!r}"]
    svg = base64.b64encode(f"<svg><text>{other_name}</text></svg>".encode()).decode()
    assert conf.scan_report(f'<img src="data:image/svg+xml;base64,{svg}">', forbidden)
    unique = sorted(forbidden["team name"])
    assert unique, "some team names belong to other hospitals only"
    # team names are looked for where the report writes names (see the module docstring)
    assert conf.scan_report(f'<td><span class="ident">{unique[0]}</span></td>', forbidden)


def test_scan_ignores_the_hospitals_own_team_names():
    orgs = pd.DataFrame({"hospital_id": ["A", "B"], "hospital_name": ["Alpha", "Beta"]})
    reg = pd.DataFrame(
        {
            "team_id": ["1", "1"],
            "hospital_id": ["A", "B"],
            "team_name": ["Vascular surgery", "Surgery"],
        }
    )
    res = WaveResults(
        "w", orgs, reg, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    )
    forbidden = conf.forbidden_identifiers(res, "A")

    def cell(name):
        return f'<td><span class="ident">{name}</span></td>'

    assert conf.scan_report(cell("Vascular surgery") + "<p>Alpha</p>", forbidden) == []
    assert conf.scan_report(cell("Surgery"), forbidden) == ["team name 'Surgery'"]
    assert conf.scan_report("<p>Surgery</p>", forbidden) == []  # a word, not a team
    assert conf.scan_report("<p>Beta</p>", forbidden) == ["hospital name 'Beta'"]
