"""The report statistics (flaqum.benchmark, results/<wave>/benchmark/) and what a hospital's
report shows of them: peers (issue 10, item 7), trends over every wave (item 8), and the
statistics that used to be computed inside the report (item 14).

Every expected value is computed here another way (numpy, scipy's own tests, by hand), never
copied from an output.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from test_report import wave_results  # noqa: F401  (the fixture)

from flaqum import benchmark
from flaqum.config import Study
from flaqum.report import confidentiality as conf
from flaqum.report import content, figures
from flaqum.report.confidentiality import forbidden_identifiers, scan_report
from flaqum.report.data import WaveResults

ROOT = Path(__file__).resolve().parents[1]


def hospitals_frame(values: dict[str, float], scale="s1", n=50, se=0.1) -> pd.DataFrame:
    """A multilevel/hospitals.csv with the given EB means (n respondents each)."""
    ids = list(values)
    m = np.array([values[h] for h in ids], float)
    return pd.DataFrame(
        {
            "scale": scale,
            "hospital_id": ids,
            "n": n,
            "raw_mean": m,
            "eb_mean": m,
            "eb_se": se,
            "ci_low": m - 1.959964 * se,
            "ci_high": m + 1.959964 * se,
            "suppressed": False,
        }
    )


def with_config(study: Study, **report) -> Study:
    cfg = copy.deepcopy(study.config)
    for key, value in report.items():
        cfg["report"][key] = value
    return Study(cfg, study.instruments, study.root)


# --- peers ----------------------------------------------------------------------------------


def test_peer_quartiles_are_type_7_quantiles_of_the_groups_hospital_means():
    vals = {f"A{i}": v for i, v in enumerate([3.0, 1.0, 5.0, 2.0, 4.0])}  # group a
    vals |= {f"B{i}": v for i, v in enumerate([2.5, 3.5, 1.5, 4.5, 6.5, 5.5])}  # group b
    vals |= {"C0": 9.0, "C1": 8.0}  # group c: too small
    hosp = hospitals_frame(vals)
    # a hospital below k: not one of the hospitals compared, whatever its (blank) mean
    hosp = pd.concat(
        [hosp, hospitals_frame({"A9": 100.0}, n=3).assign(suppressed=True)], ignore_index=True
    )
    orgs = pd.DataFrame(
        {"hospital_id": list(vals) + ["A9"], "kind": [h[0].lower() for h in vals] + ["a"]}
    )
    p = benchmark.peer_stats(hosp, orgs, "kind", 5, k=5).set_index("group")
    assert list(p.columns) == [c for c in benchmark.PEER_COLUMNS if c != "group"]
    # by hand: 1..5 -> quartiles 2, 3, 4; 1.5..6.5 -> 2.75, 4.0, 5.25 (type 7: 1 + (n-1)p)
    assert p.loc["a", ["q1", "median", "q3"]].tolist() == [2.0, 3.0, 4.0]
    assert p.loc["b", ["q1", "median", "q3"]].tolist() == pytest.approx([2.75, 4.0, 5.25])
    for g in ("a", "b", "c"):
        x = [v for h, v in vals.items() if h[0].lower() == g]
        assert p.loc[g, ["q1", "median", "q3"]].tolist() == pytest.approx(
            np.percentile(x, [25, 50, 75])
        )
        assert p.loc[g, "n_hospitals"] == len(x)
    assert p["shown"].tolist() == [True, True, False]
    # no peer column, or one the register does not have: no rows
    assert benchmark.peer_stats(hosp, orgs, None, 5, 5).empty
    assert benchmark.peer_stats(hosp, orgs, "nope", 5, 5).empty


def _with_types(res: WaveResults, types: dict[str, str]) -> WaveResults:
    orgs = res.organisations.copy()
    orgs["hospital_type"] = orgs["hospital_id"].astype(str).map(types).fillna("other")
    return WaveResults(**{**res.__dict__, "organisations": orgs})


def _html(blocks: dict) -> str:
    """The content's blocks as one HTML document, for the scan."""
    out = []
    for sec in blocks.values():
        for b in sec:
            out.append(f"<div>{b.get('html') or b.get('svg') or b.get('text', '')}</div>")
    return "\n".join(out)


def test_a_peer_group_below_the_minimum_is_not_shown_and_the_report_says_why(
    study,
    wave_results,  # noqa: F811
):
    ids = wave_results.hospital_ids()
    h = ids[0]
    # three hospitals of h's kind (h included): below the minimum of 5; five of the other
    kinds = {i: ("teaching" if j < 3 else "general") for j, i in enumerate(ids)}
    res = _with_types(wave_results, kinds)
    v = conf.hospital_view(res, study, h)
    assert v.peer_group is None and v.peer_label == "teaching hospitals"
    assert "fewer than 5 hospitals" in v.peer_note
    between = content.hospital_content(v)["sections"]["between"]
    text = " ".join(b.get("text", "") for b in between)
    assert text.count("fewer than 5 hospitals") == 1  # said once
    assert not any('class="report-table peers"' in b.get("html", "") for b in between)
    assert not any(b.get("title", "").startswith("Your hospital, teaching") for b in between)
    # a hospital of the larger group sees its peers, and no other hospital's id or name
    other = ids[-1]
    v = conf.hospital_view(res, study, other)
    assert v.peer_label == "general hospitals" and v.peer_note is None
    assert (v.peer_group["status"] == "shown").all()
    assert (v.peer_group["n_hospitals"] == len(ids) - 3).all()
    c = content.hospital_content(v)["sections"]
    html = _html(c)
    assert 'class="report-table peers"' in html
    assert scan_report(html, forbidden_identifiers(res, other, study)) == []


def test_peer_group_minimum_is_configured_and_a_study_without_the_column_has_none(
    study,
    wave_results,  # noqa: F811
):
    ids = wave_results.hospital_ids()
    res = _with_types(wave_results, {i: "general" for i in ids[:6]})
    h = ids[0]
    assert conf.hospital_view(res, study, h).peer_group is not None
    strict = with_config(study, peers={"column": "hospital_type", "min_hospitals": 7})
    v = conf.hospital_view(res, strict, h)
    assert v.peer_group is None and "fewer than 7 hospitals" in v.peer_note
    off = with_config(study, peers={"column": None, "min_hospitals": 5})
    v = conf.hospital_view(res, off, h)
    assert v.peer_group is None and v.peer_note is None
    missing = with_config(study, peers={"column": "ownership", "min_hospitals": 5})
    v = conf.hospital_view(res, missing, h)
    assert v.peer_group is None and "no column 'ownership'" in v.peer_note


def test_the_scan_finds_another_hospital_named_in_the_peer_section(
    study,
    wave_results,  # noqa: F811
):
    """Positive case: a peer group whose register value is another hospital's name (a
    network named after its main hospital) puts that name in the report, and the scan says
    so."""
    ids = wave_results.hospital_ids()
    named = wave_results.hospital_name(ids[-1])
    res = _with_types(wave_results, {i: named for i in ids[:6]})
    h = ids[0]
    study_network = with_config(study, peers={"column": "hospital_type", "min_hospitals": 5})
    c = content.hospital_content(conf.hospital_view(res, study_network, h))["sections"]
    hits = scan_report(_html(c), forbidden_identifiers(res, h, study))
    assert f"hospital name {named!r}" in hits


# --- trends ---------------------------------------------------------------------------------


def test_trend_table_equals_each_waves_results_and_the_consortium_t_interval():
    w1 = hospitals_frame({"H1": 3.0, "H2": 3.4, "H3": 3.9, "H4": 2.8})
    w2 = hospitals_frame({"H1": 3.2, "H2": 3.5, "H3": 3.7, "H4": 3.0, "H5": 4.4}, se=0.12)
    w2.loc[w2["hospital_id"] == "H4", ["n", "suppressed"]] = [3, True]
    w2.loc[w2["hospital_id"] == "H4", ["eb_mean", "eb_se", "ci_low", "ci_high"]] = np.nan
    ch = pd.DataFrame(
        {
            "scale": "s1",
            "hospital_id": ["H1", "H2", "H3", "H4"],
            "previous_wave": "w1",
            "n_previous": [50, 50, 4, 50],
            "n": [50, 50, 50, 3],
            "previous_eb_mean": np.nan,
            "eb_mean": np.nan,
            "change": [0.2, 0.1, -0.2, 0.2],
            "se": 0.15,
            "ci_low": [0.2, 0.1, -0.2, 0.2] - 1.96 * 0.15 * np.ones(4),
            "ci_high": [0.2, 0.1, -0.2, 0.2] + 1.96 * 0.15 * np.ones(4),
            "suppressed": [False, False, True, True],
        }
    )
    t = benchmark.trend_table({"w2": w2, "w1": w1}, {"w2": ch}, k=5)
    assert list(t.columns) == benchmark.TREND_COLUMNS
    assert list(t["wave"].unique()) == ["w1", "w2"]  # in wave order
    for wave, frame in (("w1", w1), ("w2", w2)):
        tw = t[t["wave"] == wave].set_index("hospital_id")
        f = frame.set_index("hospital_id")
        assert tw["mean"].tolist() == pytest.approx(f["eb_mean"].tolist(), nan_ok=True)
        assert tw["ci_low"].tolist() == pytest.approx(f["ci_low"].tolist(), nan_ok=True)
        shown = f.loc[~f["suppressed"], "eb_mean"]
        ci = stats.ttest_1samp(shown, 0).confidence_interval(0.95)
        assert (tw["consortium_n_hospitals"] == len(shown)).all()
        assert tw["consortium_mean"].iloc[0] == pytest.approx(shown.mean())
        assert tw["consortium_ci_low"].iloc[0] == pytest.approx(ci.low)
        assert tw["consortium_ci_high"].iloc[0] == pytest.approx(ci.high)
    w2t = t[t["wave"] == "w2"].set_index("hospital_id")
    assert w2t.loc["H1", "change"] == pytest.approx(0.2)
    assert w2t.loc["H1", "previous_wave"] == "w1"
    # suppressed in change.csv (n_previous 4, n 3): blank, whatever the file holds
    assert w2t.loc[["H3", "H4"], "change"].isna().all()
    assert w2t.loc["H4", "suppressed"] and np.isnan(w2t.loc["H4", "mean"])
    assert np.isnan(w2t.loc["H5", "change"])  # joined in w2: no change
    assert t[t["wave"] == "w1"]["change"].isna().all()


def _three_waves(res: WaveResults, h: str, small_wave: str):
    """Trends over three waves: an invented first wave "2023-1" where ``h`` did not take
    part, the fixture's two waves, with ``h`` below k on one scale in ``small_wave``."""
    t = res.bench_trends.copy()
    early = t[(t["wave"] == t["wave"].min()) & (t["hospital_id"] != h)].assign(wave="2023-1")
    early = early[early["scale"] != "team_collab"]  # not fielded in 2023-1
    sel = (t["wave"] == small_wave) & (t["hospital_id"] == h) & (t["scale"] == "psych_safety")
    t.loc[sel, ["n", "suppressed"]] = [3, True]
    t.loc[sel, ["mean", "se", "ci_low", "ci_high"]] = np.nan
    return pd.concat([early, t], ignore_index=True)


def test_trend_view_follows_every_wave_with_gaps_absences_and_suppression(
    study,
    wave_results,  # noqa: F811
):
    res = wave_results
    h = res.hospital_ids()[0]
    trends = _three_waves(res, h, "2024-1")
    v = conf.hospital_view(WaveResults(**{**res.__dict__, "bench_trends": trends}), study, h)
    tr = v.trend.set_index(["scale", "wave"])
    # the hospital's first wave is 2024-1: the invented 2023-1 (without it) is not shown
    assert sorted(v.trend["wave"].unique()) == ["2024-1", "2025-2"]
    small = tr.loc[("psych_safety", "2024-1")]
    assert small["status"] == "small"
    assert small[["n", "mean", "ci_low", "ci_high"]].isna().all()
    # the current wave's numbers are those of the glance table, the change exactly v.change
    cur = tr.xs("2025-2", level="wave")
    sc = v.scales.set_index("scale")
    shown = cur.index[cur["status"] == "shown"]
    assert cur.loc[shown, "mean"].tolist() == pytest.approx(sc.loc[shown, "mean"].tolist())
    assert cur.loc[shown, "consortium_mean"].tolist() == pytest.approx(
        sc.loc[shown, "consortium_mean"].tolist()
    )
    ch = v.change.set_index("scale")
    assert cur.loc[ch.index, "change"].tolist() == ch["change"].tolist()
    assert cur.loc[ch.index, "change_ci_low"].tolist() == ch["ci_low"].tolist()
    # the earlier wave: that wave's trends rows
    before = tr.xs("2024-1", level="wave")
    t1 = trends[(trends["wave"] == "2024-1") & (trends["hospital_id"] == h)].set_index("scale")
    ok = before.index[before["status"] == "shown"]
    assert before.loc[ok, "mean"].tolist() == pytest.approx(t1.loc[ok, "mean"].tolist())
    # in the report: no value for the small group, the reason instead
    c = content.hospital_content(v)["sections"]["trend"]
    table = next(b["html"] for b in c if b["kind"] == "table")
    # two waves: one row per scale (tables.trend_table_compact), 2024-1's score first
    assert "<th>2024\u20111: your score (95% interval)</th>" in table
    row = re.search(r"<tr[^>]*><td>Psychological safety</td>(.*?)</tr>", table)
    earlier = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))[0]
    assert earlier == "fewer than 5 responses"  # no score of its own


def test_a_hospital_that_skipped_a_wave_has_a_gap(study, wave_results):  # noqa: F811
    res = wave_results
    h = res.hospital_ids()[1]
    t = res.bench_trends
    # an invented third wave before the others, in which h took part, and h absent in 2024-1
    early = t[t["wave"] == "2024-1"].assign(wave="2023-1")
    t = pd.concat([early, t[~((t["wave"] == "2024-1") & (t["hospital_id"] == h))]])
    v = conf.hospital_view(WaveResults(**{**res.__dict__, "bench_trends": t}), study, h)
    assert sorted(v.trend["wave"].unique()) == ["2023-1", "2024-1", "2025-2"]
    mid = v.trend[v.trend["wave"] == "2024-1"]
    assert (mid["status"] == "absent").all() and mid["mean"].isna().all()
    assert mid["consortium_mean"].notna().all()  # the consortium went on
    c = content.hospital_content(v)["sections"]["trend"]
    assert "A gap in a line is a wave in which your hospital did not take part" in c[0]["text"]
    svg = ET.fromstring(figures.to_svg(figures.trend(v.trend, v.k)))
    titles = [el for el in svg.iter() if el.get("class") == "panel-title"]
    assert len(titles) == v.trend["scale"].nunique()  # one panel per scale


# --- items, stakeholders, maturity ----------------------------------------------------------


def test_item_percent_positive_counts_answers_at_or_above_the_codebook_threshold(
    study,
    wave_results,  # noqa: F811
):
    res = wave_results
    ids = res.hospital_ids()
    it = benchmark.item_stats(study, res.responses, ids, k=5)
    assert list(it.columns) == benchmark.ITEM_COLUMNS
    staff = res.responses["staff"]
    for item, pos in (("PS3", 5), ("TC2", 4), ("QS01", 4)):
        h = ids[2]
        x = staff.loc[staff["hospital_id"] == h, item].dropna().to_numpy(float)
        row = it[(it["hospital_id"] == h) & (it["item"] == item)].iloc[0]
        assert row["positive_from"] == pos
        assert row["n"] == len(x) and row["mean"] == pytest.approx(x.mean())
        assert row["pct_positive"] == pytest.approx(100 * np.mean(x >= pos))
        allx = staff[item].dropna().to_numpy(float)
        assert row["consortium_pct_positive"] == pytest.approx(100 * np.mean(allx >= pos))
    # the 0-10 global rating: 8 or above (codebook positive_from: 8)
    g = study.instruments["quickscan_professionals_global"]
    assert benchmark.positive_from(g) == 8
    # a scale's % positive: the mean of its items' (AHRQ SOPS composite), as the view shows it
    sp = benchmark.scale_positive(study, it)
    assert list(sp.columns) == benchmark.SCALE_COLUMNS
    h = ids[2]
    items = list(study.scale("team_collab").items)
    own = staff[staff["hospital_id"] == h]
    by_hand = np.mean([100 * np.mean(own[i].dropna() >= 4) for i in items])
    row = sp[(sp["hospital_id"] == h) & (sp["scale"] == "team_collab")].iloc[0]
    assert row["pct_positive"] == pytest.approx(by_hand) and row["n_items"] == len(items)
    v = conf.hospital_view(res, study, h).scales.set_index("scale")
    assert v.loc["team_collab", "pct_positive"] == pytest.approx(by_hand)
    cons = np.mean([100 * np.mean(staff[i].dropna() >= 4) for i in items])
    assert v.loc["team_collab", "consortium_pct_positive"] == pytest.approx(cons)
    # an item below k blanks the scale's % positive
    small = staff.copy()
    small.loc[small.index[small["hospital_id"] == h][3:], items[0]] = np.nan
    r2 = WaveResults(**{**res.__dict__, "responses": {**res.responses, "staff": small}})
    assert np.isnan(
        conf.hospital_view(r2, study, h)
        .scales.set_index("scale")
        .loc["team_collab", "pct_positive"]
    )


def test_stakeholder_gap_interval_is_welchs(study, wave_results):  # noqa: F811
    res = wave_results
    h = res.hospital_ids()[3]
    st = benchmark.stakeholder_stats(study, res.responses, [h], k=5)
    assert list(st.columns) == benchmark.STAKEHOLDER_COLUMNS
    r = st[st["dimension"] == "safety"].iloc[0]
    ia = study.instruments[r["instrument_a"]]
    items = [i for i, d in ia.raw["dimensions"].items() if d == "safety"]
    a = res.responses[ia.source]
    b = res.responses[study.instruments[r["instrument_b"]].source]
    xa = a.loc[a["hospital_id"] == h, items].mean(axis=1).dropna()
    xb = b.loc[b["hospital_id"] == h, items].mean(axis=1).dropna()
    ci = stats.ttest_ind(xb, xa, equal_var=False).confidence_interval(0.95)
    assert r["gap"] == pytest.approx(xb.mean() - xa.mean())
    assert [r["gap_ci_low"], r["gap_ci_high"]] == pytest.approx([ci.low, ci.high])
    # the view shows the same interval, and the gap it showed before
    v = conf.hospital_view(res, study, h).stakeholders.set_index("dimension")
    assert v.loc["safety", "gap_ci_low"] == pytest.approx(ci.low)
    assert v.loc["safety", "gap"] == pytest.approx(r["gap"])


def test_maturity_counts_core_processes_at_baseline_per_hospital(study, wave_results):  # noqa: F811
    res = wave_results
    ids = res.hospital_ids()
    m = benchmark.maturity_stats(study, res.maturity, res.maturity_items, ids)
    assert list(m.columns) == benchmark.MATURITY_COLUMNS
    items = [c for c in res.maturity_items.columns if c.startswith("MM")]
    x = res.maturity_items.set_index("hospital_id")[items]
    at = (x >= 3).sum(axis=1)
    c = m[(m["kind"] == "count") & (m["measure"] == "processes_at_baseline")]
    c = c.set_index("hospital_id")
    assert c.loc[list(x.index), "value"].tolist() == at.tolist()
    assert c["consortium_median"].iloc[0] == np.median(at)
    assert c["consortium_min"].iloc[0] == at.min() and c["consortium_max"].iloc[0] == at.max()
    v = conf.hospital_view(res, study, ids[0])
    assert v.maturity_baseline["own"] == at[ids[0]]
    assert v.maturity_baseline["consortium_median"] == np.median(at)
    assert v.maturity_baseline["n_processes"] == len(items) == 52


# --- the stage's files ----------------------------------------------------------------------


def documented_columns(name: str) -> list[str]:
    """The columns that docs/outputs.md lists for results/<wave>/benchmark/<name>."""
    doc = (ROOT / "docs" / "outputs.md").read_text()
    sec = doc.split(f"## `results/<wave>/benchmark/{name}`", 1)[1].split("\n## ", 1)[0]
    cols = []
    for line in sec.splitlines():
        m = re.match(r"\| (`[^|]+`) \|", line)
        if m:
            cols += re.findall(r"`([a-z_0-9]+)`", m.group(1))
    return cols


def test_the_stage_writes_its_documented_columns_and_the_report_reads_them(
    study,
    wave_results,  # noqa: F811
    tmp_path,
):
    res = wave_results
    tables = benchmark.wave_benchmark(
        study,
        res.organisations,
        res.responses,
        res.hospitals,
        res.maturity,
        res.maturity_items,
        {"2024-1": res.hospitals, res.wave: res.hospitals},
        {res.wave: res.change},
    )
    expected = {
        "items": benchmark.ITEM_COLUMNS,
        "scales": benchmark.SCALE_COLUMNS,
        "stakeholders": benchmark.STAKEHOLDER_COLUMNS,
        "maturity": benchmark.MATURITY_COLUMNS,
        "peers": benchmark.PEER_COLUMNS,
        "trends": benchmark.TREND_COLUMNS,
    }
    from flaqum.report.data import BENCHMARK_FILES, BENCHMARK_TEXT, read_table
    from flaqum.utils import write_csv

    paths = {}
    for name, cols in expected.items():
        assert list(tables[name].columns) == cols, name
        assert documented_columns(f"{name}.csv") == cols, name
        write_csv(tables[name], tmp_path / f"{name}.csv")
        paths[f"bench_{name}"] = str(tmp_path / f"{name}.csv")
    assert set(paths) == set(BENCHMARK_FILES)
    # below k: blank in the file (as hospitals.csv), n kept
    it = tables["items"]
    small = it[it["suppressed"]]
    assert (small[["n", "n_respondents"]].min(axis=1) < study.min_group_size).all()
    assert small[["mean", "pct_positive", "pct_missing"]].isna().all().all()
    # the view read from the files equals the view computed from the frames
    read = {k: read_table(p, BENCHMARK_TEXT) for k, p in paths.items()}
    r2 = WaveResults(**{**res.__dict__, **read})
    h = res.hospital_ids()[0]
    a, b = conf.hospital_view(res, study, h), conf.hospital_view(r2, study, h)
    pd.testing.assert_frame_equal(a.items, b.items, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(a.stakeholders, b.stakeholders, check_dtype=False, rtol=1e-9)
    pd.testing.assert_frame_equal(a.maturity, b.maturity, check_dtype=False, rtol=1e-9)


def test_load_wave_reads_the_report_statistics_as_written_and_never_falls_back(
    wave_results,  # noqa: F811
    tmp_path,
):
    """A wave called "2024" stays the text "2024", a peer group called "NA" stays "NA"; a
    report statistic that the render rule names but that is missing stops the report (it
    would otherwise be recomputed from this wave alone, without the earlier waves)."""
    from flaqum.report.data import load_wave, wave_paths
    from flaqum.utils import write_csv

    res = wave_results
    root = tmp_path
    proc, out = root / "data/processed/2024", root / "results/2024"
    (out / "multilevel").mkdir(parents=True)
    (out / "benchmark").mkdir(parents=True)
    proc.mkdir(parents=True)
    res.organisations.to_parquet(proc / "organisations.parquet")
    res.team_register.to_parquet(proc / "teams.parquet")
    res.hospitals.to_csv(out / "multilevel/hospitals.csv", index=False)
    res.teams.to_csv(out / "multilevel/teams.csv", index=False)
    trends = res.bench_trends.assign(
        wave=res.bench_trends["wave"].map({"2024-1": "2023", "2025-2": "2024"})
    )
    peers = pd.DataFrame(
        [["psych_safety", "hospital_type", "NA", 6, 4.0, 3.5, 4.5, 5, True]],
        columns=benchmark.PEER_COLUMNS,
    )
    write_csv(trends, out / "benchmark/trends.csv")
    write_csv(peers, out / "benchmark/peers.csv")
    paths = wave_paths(root, "2024", ["staff", "patients"])
    with pytest.raises(FileNotFoundError, match="bench_items"):
        load_wave("2024", paths)
    empty = {
        "items": benchmark.ITEM_COLUMNS,
        "scales": benchmark.SCALE_COLUMNS,
        "stakeholders": benchmark.STAKEHOLDER_COLUMNS,
        "maturity": benchmark.MATURITY_COLUMNS,
    }
    for name, cols in empty.items():
        write_csv(pd.DataFrame(columns=cols), out / f"benchmark/{name}.csv")
    loaded = load_wave("2024", paths)
    assert set(loaded.bench_trends["wave"]) == {"2023", "2024"}
    assert loaded.bench_peers["group"].tolist() == ["NA"]
    # results of a run before the benchmark stage: no benchmark folder, nothing expected
    import shutil

    shutil.rmtree(out / "benchmark")
    assert load_wave("2024", wave_paths(root, "2024", ["staff"])).bench_trends is None


def test_trend_and_peer_figures_state_their_result(study, wave_results):  # noqa: F811
    """Each figure's text alternative says what it shows (issue 10, item 11), from the same
    numbers as the tables beside it."""
    h = wave_results.hospital_ids()[0]
    v = conf.hospital_view(wave_results, study, h)
    c = content.hospital_content(v)["sections"]

    def alt(blocks, title):
        fig = next(b for b in blocks if b["kind"] == "figure" and b["title"].startswith(title))
        return re.search(r'aria-label="([^"]*)"', fig["svg"]).group(1)

    a = alt(c["trend"], "Your scores in every wave")
    ch = v.change[v.change["status"] == "shown"]
    up, down = int((ch["ci_low"] > 0).sum()), int((ch["ci_high"] < 0).sum())
    assert "2 waves, 2024-1 to 2025-2" in a
    if up:
        assert f"rose clearly on {up} of {len(ch)} scales" in a
    if down:
        assert f"fell clearly on {down} of {len(ch)}" in a
    if not up and not down:
        assert "no score changed by more than chance" in a
    a = alt(c["between"], "Your hospital, general hospitals")
    cells = content._peer_cells(v)
    above = sum(x.startswith("above") for x in cells.values())
    below = sum(x.startswith("below") for x in cells.values())
    assert f"above it on {above} of {len(cells)} scales" in a
    assert f"below it on {below}" in a
