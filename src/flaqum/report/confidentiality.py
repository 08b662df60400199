"""What a hospital may see: its own numbers, anonymous peers, and nothing about a small group.

The rules (also printed in every report's methods appendix, see ``RULES``):

1. **Minimum group size.** No number (mean, interval, percentage, n) describes fewer than
   ``k = min_group_size`` respondents. A hospital, a team, an item or a stakeholder dimension
   with fewer than ``k`` answers is shown as "fewer than k responses" and its values are
   removed from the data handed to the template (never hidden only by styling).
2. **Complementary suppression of teams.** A hospital total is the sum of its teams, so one
   hidden team could be recovered from the total and the other teams. Within a hospital, when
   teams are hidden for rule 1, further teams (the smallest shown ones) are withheld until at
   least two teams with respondents are hidden *and* together they hold at least ``k``
   respondents. The status is decided once per survey on each team's smallest n over the
   survey's team scales and applied to every scale of that survey, so that no team is hidden
   on one scale and shown on another (which would let the shown n stand in for the hidden
   one); the rule is then checked again on each scale.
3. **Other hospitals are anonymous.** A hospital's report receives other hospitals only as
   unlabelled values of hospitals with at least ``k`` respondents (no id, name or team), and
   consortium summaries over all hospitals. Every rendered report is scanned for other
   hospitals' names, ids and team names before it is written (``scan_report``); a hit fails
   the render.

The Maturity Matrix is the hospital's own self-assessment (one answer per hospital, not
personal answers): rule 1 does not apply to it; peers enter it only as consortium medians
and, for the count of core processes at baseline or above, the median hospital's count with
the lowest and highest count (``benchmark/maturity.csv``; ``maturity_baseline_summary``
computes the same from a view's frames), unlabelled.

Peer groups (``_peer_view``): the hospitals sharing the hospital's value of the register column
``report.peers.column``, shown per scale only as their number, median and quartiles, and only
where the group has at least ``report.peers.min_hospitals`` (>= 5) hospitals with results;
never another group, id or name (docs/confidentiality.md says why nothing can be derived by
subtraction). Trends (``_trend_view``): rule 1 in each wave on its own.

The statistics themselves (item and scale % positive, stakeholder gaps, maturity medians and
counts, peers, trends) are computed in ``flaqum.benchmark`` and read from
``results/<wave>/benchmark/``; this module applies the rules to them.

The scan (``scan_report``) reads what a reader or a screen reader gets from the finished HTML:
text nodes, the values of ``alt``, ``title``, ``aria-label`` and similar attributes
(``TEXT_ATTRIBUTES``), the text of SVG ``<text>``, ``<title>`` and ``<desc>``, and the same in
every SVG or HTML document embedded as a data URI. It does not read tag or attribute names,
other attribute values (ids, classes, links, SVG path data) or the contents of ``<style>`` and
``<script>``. Whitespace is collapsed; block elements (paragraphs, cells, list items, SVG
text elements) separate the text, so no name is found across two cells. The report marks
every place where it writes a name (a hospital's or a team's) with ``class="ident"``
(``escape.ident``, the team column of ``tables.teams_table``, the team labels of
``figures.teams``). What counts as a hit:

- **Another hospital's name**: anywhere in the text, as a whole phrase (not inside a longer
  word), in any case.
- **Another hospital's id** that reads as an identifier (letters and digits, like ``H1``,
  ``ZNA01`` or ``AMC``): anywhere, as a whole token, in its exact case (``H1`` is not inside
  ``H10``, ``PH1`` or ``H1-2``; ``<h1>`` is a tag, not text).
- **Another hospital's id that reads as a number or a word** (``weak_id``: no letter at all,
  as ``10`` or ``2024-1``, or one or two letters only, as ``A`` or ``AB``): a report is full of
  numbers ("10 teams", "fewer than 5"), so such an id counts only where an id is written: as
  the whole text of a marked name (a team or hospital shown by its id), after the word
  hospital, site or organisation ("hospital 10", "Hospital no. 10", "site #10"), or, for a
  numeric id, as ``H10``/``H-10``.
- **A team name that only other hospitals have**: in the marked places where team and
  hospital names are written, as a whole phrase, in any case. Elsewhere a team name is not
  looked for: teams are called "Safety", "Care" or "Surgery", words the report uses for its
  own scales and questions ("Psychological safety"). The template writes team names only in
  marked places, and ``tests/test_report_hostile.py`` checks that every team name in a
  rendered report is inside one.

Never a hit: an occurrence inside the hospital's own name, id or team names (``_allowed``:
another hospital's team "Surgery" inside one's own "Vascular surgery"), and, outside the marked
places, an occurrence inside the study's own wording (``_vocabulary``, see
``study_vocabulary``: scale, instrument and dimension labels, item ids and wording), which is
the same in every hospital's report. A name identical to the study's wording can therefore be
caught only where names are written; that is the price of not blocking every report of a
consortium whose hospital is called "Safety".
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np
import pandas as pd

from flaqum import benchmark
from flaqum.config import Study
from flaqum.constants import Z95, Z998
from flaqum.report import frames, htmlread
from flaqum.report.data import WaveResults
from flaqum.report.escape import IDENT_CLASS, clean
from flaqum.report.shape import Shape, mirrored_pairs, study_shape

_RULE_K = (
    "No number in this report describes fewer than {k} respondents: {groups} with fewer "
    'than {k} answers is listed as "fewer than {k} responses" without any value. '
)
_RULE_TEAMS = (
    "Because your hospital's total includes every team, hiding a single small team would not "
    "be enough (it could be worked out from the total and the other teams). Whenever a team "
    "is hidden, further teams, the smallest first, are withheld until at least two teams with "
    'a combined {k} or more respondents are hidden; they are marked "withheld to protect a '
    'smaller team". '
)
_RULE_OTHERS = (
    "Other hospitals appear only as anonymous marks and consortium averages, and hospitals of "
    "your kind only as the median and middle half of a group of at least five. "
)
_RULE_MATURITY = "The Maturity Matrix is your hospital's own self-assessment and is shown in full."


def rules_text(k: int | str, teams: bool = True, others: bool = True, maturity: bool = True) -> str:
    """The confidentiality rules as a report states them, for the study's shape: the
    complementary suppression of teams where there are teams, other hospitals where there
    are any, the Maturity Matrix where the study has one."""
    groups = "a team, item or group" if teams else "an item or group"
    text = _RULE_K.format(k=k, groups=groups)
    if teams:
        text += _RULE_TEAMS.format(k=k)
    if others:
        text += _RULE_OTHERS
    if maturity:
        text += _RULE_MATURITY
    return text.strip()


#: The rules of a study with every level and source (as the demo); ``{k}`` to be filled in.
RULES = rules_text("{k}")

SMALL, WITHHELD, SHOWN = "small", "withheld", "shown"
SIDE_LABELS = {"staff": "Professionals", "patients": "Patients and kin"}


def dimension_label(dim: str) -> str:
    """How a stakeholder dimension key (``safety``) is written in a report ("Safety")."""
    return clean(str(dim).replace("_", " ")).capitalize()


def status_text(status: str, k: int) -> str:
    return {
        SMALL: f"fewer than {k} responses",
        WITHHELD: "withheld to protect a smaller team",
    }.get(status, "")


def complementary_status(n: pd.Series, k: int, hidden: pd.Series | None = None) -> pd.Series:
    """Per group: 'shown', 'small' (n < k) or 'withheld' (complementary suppression).

    ``hidden`` marks groups already hidden by an earlier decision (kept hidden, as 'withheld'
    unless they are small). Groups of n = 0 count as hidden but protect no one.
    """
    n = pd.Series(n, dtype=float).fillna(0)
    earlier = None
    if hidden is not None:
        earlier = hidden.reindex(n.index, fill_value=False).fillna(False).to_numpy(bool)
    return pd.Series(_complementary(n.to_numpy(), k, earlier, n.index), index=n.index, dtype=object)


def _complementary(size: np.ndarray, k: int, earlier=None, labels=None) -> np.ndarray:
    """``complementary_status`` on arrays: ``size`` the groups' n (no NaN), ``earlier`` the
    groups hidden before (bool array or None), ``labels`` the groups' labels (a group is
    withheld by its label, as ``status[label]`` would; None: labels are unique)."""
    # on the arrays (a Series operation per step was most of a team table's cost)
    status = np.where(size < k, SMALL, SHOWN).astype(object)
    if earlier is not None:
        status[(status == SHOWN) & earlier] = WITHHELD
    while True:
        hid = (status != SHOWN) & (size > 0)
        if not ((status == SMALL) & (size > 0)).any():
            break
        if hid.sum() >= 2 and size[hid].sum() >= k:
            break
        shown = np.flatnonzero(status == SHOWN)
        if not len(shown):
            break
        # the smallest shown group, the first of equals
        first = shown[np.argmin(size[shown])]
        status[first if labels is None else labels.get_loc(labels[first])] = WITHHELD
    return status


def _se(df: pd.DataFrame) -> pd.Series:
    return benchmark.standard_error(df)


def _is_suppressed(df: pd.DataFrame, k: int) -> pd.Series:
    return benchmark.hidden_hospitals(df, k)


def scale_meta(study: Study, scale_ids) -> pd.DataFrame:
    """Label, source, unit, level and response range of each scale, in report order."""
    order = {s: i for i, s in enumerate(study.sources)}
    level_order = {"total": 0, None: 1, "factor": 2, "driver": 3, "building_block": 4}
    rows = []
    for sid in scale_ids:
        try:
            sc, inst = study.scale(sid), study.instrument_of(sid)
        except KeyError:
            continue
        label = clean(sc.label)
        if sc.level == "factor":
            label = f"{label} ({clean(SIDE_LABELS.get(inst.source, inst.source)).lower()})"
        rows.append(
            {
                "scale": sid,
                "label": label,
                "instrument": inst.id,
                "instrument_label": clean(inst.label),
                "source": inst.source,
                "unit": inst.unit,
                "level": sc.level,
                "parent": sc.parent,
                "rmin": inst.rmin,
                "rmax": inst.rmax,
                "_key": (
                    order.get(inst.source, 99),
                    inst.unit != "team",
                    inst.id.endswith("_global"),
                    inst.id,
                    level_order.get(sc.level, 5),
                ),
            }
        )
    meta = pd.DataFrame(rows)
    if meta.empty:
        return meta
    return meta.sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


@dataclass
class HospitalView:
    """Everything one hospital's report may show, already confidential."""

    hospital_id: str
    hospital_name: str
    wave: str
    k: int
    n_hospitals: int
    respondents: dict[str, int]
    scales: pd.DataFrame
    peers: dict[str, np.ndarray]
    teams: pd.DataFrame
    change: pd.DataFrame | None
    items: pd.DataFrame
    stakeholders: pd.DataFrame
    maturity: pd.DataFrame
    maturity_processes: pd.DataFrame
    psychometrics: pd.DataFrame | None
    baseline_level: float | None = None
    ambition_year: int | None = None
    agreement_threshold: float = 0.7
    notes: list[str] = field(default_factory=list)
    #: what the study and the wave hold (None: everything, as the demo)
    shape: Shape | None = None
    #: core processes at baseline level or above: the hospital's count and the consortium's
    #: median, lowest and highest count over hospitals (``benchmark/maturity.csv``, kind count)
    maturity_baseline: dict | None = None
    #: people invited to each survey (``<source>_invited`` in the organisations register);
    #: None where the register does not record it
    invited: dict[str, int | None] = field(default_factory=dict)
    #: pairs of scales that ask the same questions of two groups (``mirrored_scales``)
    mirrored: list[dict] = field(default_factory=list)
    #: per scale, the hospital's peer group (``_peer_view``); None: no peer comparison
    peer_group: pd.DataFrame | None = None
    #: the peer group's name as the report writes it ("teaching hospitals"), or None
    peer_label: str | None = None
    #: why no peer group is shown (a sentence, said once), or None
    peer_note: str | None = None
    #: per scale and wave the hospital took part in up to this one (``_trend_view``)
    trend: pd.DataFrame | None = None
    _scale_rows: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def scale_rows(self) -> list:
        """The rows of ``scales`` (``frames.rows``), made once: the texts read them many
        times (made again if ``scales`` is replaced by another frame)."""
        if self._scale_rows is None or self._scale_rows[0] is not self.scales:
            self._scale_rows = (self.scales, list(frames.rows(self.scales)))
        return self._scale_rows[1]

    @property
    def compare(self) -> bool:
        """Whether the hospital is compared with others (see ``shape.Shape.compare``)."""
        return self.shape is None or self.shape.compare

    @property
    def has_teams(self) -> bool:
        return self.shape is None or self.shape.teams

    @property
    def no_respondents(self) -> bool:
        """Nobody at the hospital answered any survey of this wave."""
        return bool(self.respondents) and all(n == 0 for n in self.respondents.values())


def _hospital_scales(tables: WaveTables, hid: str):
    from pandas.core.sorting import nargsort

    rows, peers = [], {}
    for sid, base, own_rows, ok_ids, ok_values in tables.scales:
        # the other hospitals shown, ordered by score as ``sort_values("eb_mean")`` orders them
        others = ok_values[ok_ids != hid]
        peers[sid] = others[nargsort(others[:, 0], kind="quicksort")]
        row = dict(base)
        o = own_rows.get(hid)
        if o is None:
            row.update(n=0, status=SMALL)
        else:
            row["n"] = int(o["n"]) if pd.notna(o["n"]) else 0
            row["status"] = SMALL if o["hidden"] else SHOWN
            if not o["hidden"]:
                se = float(o["se"])
                row.update(
                    mean=float(o["eb_mean"]),
                    se=se,
                    ci_low=float(o["ci_low"]) if pd.notna(o["ci_low"]) else o["eb_mean"] - Z95 * se,
                    ci_high=float(o["ci_high"])
                    if pd.notna(o["ci_high"])
                    else o["eb_mean"] + Z95 * se,
                    lo998=float(o["eb_mean"]) - Z998 * se,
                    hi998=float(o["eb_mean"]) + Z998 * se,
                )
        # no one answered (not a small group: nothing to protect, and the report says so)
        row["no_response"] = row["n"] == 0
        if row["status"] == SMALL:
            row["n"] = np.nan  # the hospital's own n below k is not shown either
        rows.append(row)
    out = pd.DataFrame(rows)
    for c in ("mean", "se", "ci_low", "ci_high", "lo998", "hi998"):
        if c not in out:
            out[c] = np.nan
    out["signal"] = np.select(
        [out["lo998"] > out["consortium_mean"], out["hi998"] < out["consortium_mean"]],
        ["higher", "lower"],
        default="common",
    )
    out.loc[out["status"] != SHOWN, "signal"] = ""
    return out, peers


def _empty_teams_view() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "scale",
            "team_name",
            "n",
            "mean",
            "ci_low",
            "ci_high",
            "lo998",
            "hi998",
            "rwg_j",
            "low_agreement",
            "status",
        ]
    )


def team_sizes(ts: pd.DataFrame, scales: list, names: dict) -> pd.Series:
    """Per team (``team_id``), its size on a survey: its smallest n over the survey's team
    ``scales`` (a team's first n on a scale; 0 where it has none), for the teams of ``ts`` with
    an n on one of them at least and every team of the register (``names``), 0 where it has no
    result; sorted by id (the register's order where no team has a result). As the minimum per
    row of ``ts.pivot_table(index="team_id", columns="scale", values="n", aggfunc="first")``
    reindexed to ``scales`` (the pivot table cost a team table as much as all else in it)."""
    first = {}
    cols = (ts["team_id"], ts["scale"], ts["n"])
    for tid, sid, n in zip(*map(frames.column, cols), strict=True):
        if pd.notna(tid) and pd.notna(sid) and pd.notna(n):
            first.setdefault((tid, sid), n)
    teams = sorted({tid for tid, _ in first})
    size = pd.Series(
        [min(first.get((tid, sid), 0) for sid in scales) for tid in teams],
        index=pd.Index(teams, dtype=ts["team_id"].dtype, name="team_id"),
        dtype=float,
    )
    return size.reindex(size.index.union(list(names)), fill_value=0)


def _team_names(tables: WaveTables, hid: str) -> dict:
    """The hospital's teams in the register: id -> name (the id where the name is blank)."""
    reg = tables.of_hospital("team_register", hid)
    cols = frames.column(reg["team_id"]), frames.column(reg["team_name"])
    return {str(t): clean(n) or str(t) for t, n in zip(*cols, strict=False) if pd.notna(t)}


_TEAM_FLOATS = ("eb_mean", "ci_low", "ci_high", "eb_se")


def _hospital_teams(
    res: WaveResults,
    study: Study,
    hid: str,
    k: int,
    meta: pd.DataFrame,
    threshold: float,
    tables: WaveTables,
) -> pd.DataFrame:
    """Per team scale and team of the hospital (the register's and those with results, by
    id): its status (``complementary_status`` within the team's survey, after the survey's
    team sizes) and, where shown, its n, mean, intervals and rwg(j). Worked out on lists for
    the usual column types (numbers, ``str`` ids without blanks, a bool ``suppressed``): the
    frame of ``_hospital_teams_frames``, value for value and dtype for dtype (tested
    against it), at a tenth of its pandas operations; any other teams table goes there."""
    t = tables.of_hospital("teams", hid)
    usual = (
        all(c in t for c in ("scale", "team_id", "n", "eb_mean", "ci_low", "ci_high"))
        and isinstance(t["team_id"].dtype, pd.StringDtype)
        and t["n"].dtype in (np.int64, np.float64)
        and all(t[c].dtype == np.float64 for c in _TEAM_FLOATS if c in t)
        and ("suppressed" not in t or t["suppressed"].dtype == bool)
    )
    if usual:
        fast = _team_rows(res, hid, k, meta, threshold, tables, t)
        if fast is not None:
            return fast
    return _hospital_teams_frames(res, study, hid, k, meta, threshold, tables)


def _team_rows(res, hid, k, meta, threshold, tables, t) -> pd.DataFrame | None:
    """``_hospital_teams`` on lists (None: a case left to ``_hospital_teams_frames``)."""
    names = _team_names(tables, hid)
    tids, sids = frames.column(t["team_id"]), frames.column(t["scale"])
    if any(pd.isna(i) for i in tids):
        return None
    n_int = t["n"].dtype == np.int64
    ns = t["n"].tolist()
    mean, lo, hi = (t[c].to_numpy() for c in ("eb_mean", "ci_low", "ci_high"))
    se = _se(t).to_numpy(float)
    supp = t["suppressed"].tolist() if "suppressed" in t else [False] * len(t)
    rwg = None  # (scale, team) -> rwg(j)
    if res.agreement is not None and not res.agreement.empty:
        agr = tables.of_hospital("agreement", hid)
        cols = (agr["scale"], agr["team_id"].astype(str), agr["rwg_j"])
        rwg = {(sid, tid): x for sid, tid, x in zip(*map(frames.column, cols), strict=True)}
    groups: dict = {}  # source -> its team scales, in the order of meta
    for m in frames.rows(meta[["scale", "unit", "source"]]):
        if m.unit == "team" and pd.notna(m.source):
            groups.setdefault(m.source, []).append(m.scale)
    parts = []  # (scale, teams, their rows of t or None, statuses)
    all_found = True
    for scales in groups.values():
        wanted = set(scales)
        at = {}  # (scale, team) -> row of t
        first = {}  # as team_sizes: a team's first n on a scale
        for i, (tid, sid) in enumerate(zip(tids, sids, strict=True)):
            if sid in wanted:
                if (sid, tid) in at:
                    return None  # a team twice on a scale: reindex's error, there
                at[sid, tid] = i
                if pd.notna(ns[i]):
                    first.setdefault((tid, sid), ns[i])
        with_n = sorted({tid for tid, _ in first})
        # team_sizes' index: Index.union of the teams with results and the register
        # (sorted; the register's order where no team has a result)
        teams = sorted(set(with_n) | set(names)) if with_n else list(names)
        if not teams:
            return None
        size = np.array([min(first.get((tid, sid), 0) for sid in scales) for tid in teams], float)
        base = _complementary(size, k)
        for sid in scales:
            pos = [at.get((sid, tid)) for tid in teams]
            all_found = all_found and None not in pos
            n = np.array([0.0 if p is None or pd.isna(ns[p]) else ns[p] for p in pos], float)
            flagged = (n < k) | np.array([p is not None and supp[p] for p in pos], bool)
            parts.append((sid, teams, pos, _complementary(n, k, (base != SHOWN) | flagged)))
    if not parts:
        return _empty_teams_view()
    pos = [p for _, _, ps, _ in parts for p in ps]
    status = [x for *_, st in parts for x in st.tolist()]
    shown = np.array([x == SHOWN for x in status], bool)
    rows = np.array([-1 if p is None else p for p in pos], dtype=np.intp)

    def column(values, missing=np.nan):  # the row's value (or missing) where shown, else NaN
        out = np.full(len(rows), missing, float)
        found = rows >= 0
        out[found] = values[rows[found]]
        out[~shown] = np.nan
        return out

    n = column(np.array([0 if pd.isna(x) else x for x in ns], float), 0.0)  # fillna(0)
    n_dtype = np.int64 if n_int and all_found and shown.all() else np.float64
    rwg_j = np.array(
        [
            rwg.get((sid, tid), np.nan) if rwg is not None else np.nan
            for sid, teams, _, _ in parts
            for tid in teams
        ],
        float,
    )
    rwg_j[~shown] = np.nan
    view = pd.DataFrame(
        {
            "scale": [sid for sid, teams, _, _ in parts for _ in teams],
            "team_name": [names.get(i, i) for _, teams, _, _ in parts for i in teams],
            "status": status,
            "n": n.astype(n_dtype),
            "mean": column(mean),
            "ci_low": column(lo),
            "ci_high": column(hi),
            "lo998": column(mean - Z998 * se),
            "hi998": column(mean + Z998 * se),
            "rwg_j": rwg_j,
        }
    )
    view["low_agreement"] = view["rwg_j"] < threshold
    return view


def _hospital_teams_frames(
    res: WaveResults,
    study: Study,
    hid: str,
    k: int,
    meta: pd.DataFrame,
    threshold: float,
    tables: WaveTables,
) -> pd.DataFrame:
    """``_hospital_teams`` with pandas operations (teams of any column types; the oracle of
    its tests)."""
    team_scales = meta[meta["unit"] == "team"]
    names = _team_names(tables, hid)
    t = tables.of_hospital("teams", hid).copy()
    t["team_id"] = t["team_id"].astype(str)
    t["se"] = _se(t)
    rwg = None  # (scale, team) -> rwg(j)
    if res.agreement is not None and not res.agreement.empty:
        agr = tables.of_hospital("agreement", hid)
        cols = (agr["scale"], agr["team_id"].astype(str), agr["rwg_j"])
        rwg = {(sid, tid): x for sid, tid, x in zip(*map(frames.column, cols), strict=True)}
    out = []
    for _source, sm in team_scales.groupby("source", sort=False):
        ts = t[t["scale"].isin(sm["scale"])]
        at: dict = {}  # each scale's rows of ts, by position
        for i, sid in enumerate(frames.column(ts["scale"])):
            at.setdefault(sid, []).append(i)
        # a team's size is its smallest n over the survey's team scales (0 where it has none)
        size = team_sizes(ts, list(sm["scale"]), names)
        teams = size.index.tolist()
        base = complementary_status(size, k)
        for sid in sm["scale"]:
            d = ts.iloc[at.get(sid, [])].set_index("team_id").reindex(size.index)
            d["n"] = d["n"].fillna(0)
            flagged = _is_suppressed(d, k)
            st = complementary_status(d["n"], k, hidden=(base != SHOWN) | flagged)
            d = d.assign(status=st.values, scale=sid, team_name=[names.get(i, i) for i in teams])
            if rwg is not None:
                d["rwg_j"] = np.array([rwg.get((sid, i), np.nan) for i in teams], float)
            else:
                d["rwg_j"] = np.nan
            out.append(d.reset_index(drop=True))
    if not out:
        return _empty_teams_view()
    d = pd.concat(out, ignore_index=True)
    shown = d["status"] == SHOWN
    view = pd.DataFrame(
        {
            "scale": d["scale"],
            "team_name": d["team_name"],
            "status": d["status"],
            "n": d["n"].where(shown),
            "mean": d["eb_mean"].where(shown),
            "ci_low": d["ci_low"].where(shown),
            "ci_high": d["ci_high"].where(shown),
            "lo998": (d["eb_mean"] - Z998 * d["se"]).where(shown),
            "hi998": (d["eb_mean"] + Z998 * d["se"]).where(shown),
            "rwg_j": d["rwg_j"].where(shown),
        }
    )
    view["low_agreement"] = view["rwg_j"] < threshold
    return view


def _scale_positive(
    scales: pd.DataFrame,
    study: Study,
    hid: str,
    k: int,
    item_stats: pd.DataFrame,
    scale_stats: pd.DataFrame | None,
    tables: WaveTables | None = None,
) -> pd.DataFrame:
    """The view's scales with each scale's % positive (the mean of its items' % positive,
    ``benchmark/scales.csv``) and the consortium's: blank where the scale is not shown or any
    of its items has fewer than k answers."""
    own = _own_rows(scale_stats, hid, tables)
    if own is None:
        own = benchmark.scale_positive(study, _own_rows(item_stats, hid, tables))
    # each scale's first row (drop_duplicates, then reindex to the view's scales: a scale
    # without a row has no values and counts as suppressed)
    first: dict = {}
    for r in frames.rows(own[["scale", "pct_positive", "suppressed", "consortium_pct_positive"]]):
        first.setdefault(r.scale, r)
    out = scales.copy()
    got = [first.get(sid) for sid in frames.column(out["scale"])]

    def values(col):
        return np.array([np.nan if r is None else getattr(r, col) for r in got], float)

    hidden = [True if r is None or pd.isna(r.suppressed) else bool(r.suppressed) for r in got]
    ok = (out["status"] == SHOWN).to_numpy() & ~np.array(hidden, bool)
    out["pct_positive"] = np.where(ok, values("pct_positive"), np.nan)
    out["consortium_pct_positive"] = values("consortium_pct_positive")
    return out


def _change(
    res: WaveResults, hid: str, k: int, meta: pd.DataFrame, tables: WaveTables | None = None
) -> pd.DataFrame | None:
    if res.change is None or res.change.empty:
        return None
    if tables is not None:
        c = tables.of_hospital("change", hid)
    else:
        c = res.change[res.change["hospital_id"] == hid]
    if c.empty:
        return None
    if tables is not None:
        found = tables.change_of(hid, meta, k)
        if found is not None:
            return found
    return _change_rows(c, meta, k)[0].reset_index(drop=True)


_CHANGE_VALUES = ["n_previous", "n", "change", "se", "ci_low", "ci_high"]


def _change_rows(c: pd.DataFrame, meta: pd.DataFrame, k: int):
    """``_change``'s frame of the change rows ``c`` (not reindexed), their hospital ids, and
    which rows are shown."""
    c = meta[["scale", "label", "source", "rmin", "rmax"]].merge(c, on="scale", how="inner")
    ok = (c["n"].fillna(0) >= k) & (c["n_previous"].fillna(0) >= k)
    out = pd.concat(
        [
            c[["scale", "label", "source", "rmin", "rmax", "previous_wave"]],
            c[_CHANGE_VALUES].where(ok, axis=0),
        ],
        axis=1,
    )
    out["status"] = np.where(ok, SHOWN, SMALL)
    return out, c["hospital_id"], ok.to_numpy(bool), c[_CHANGE_VALUES].dtypes


def maturity_baseline_counts(items: pd.DataFrame, item_ids, baseline) -> pd.Series:
    """Per hospital that returned a self-assessment (at least one process assessed): how many
    of the core processes (``item_ids``, the Maturity Matrix items) it puts at ``baseline`` or
    above (a process not assessed does not count)."""
    cols = [c for c in item_ids if c in items.columns]
    x = items[cols].apply(pd.to_numeric, errors="coerce")
    assessed = x.notna().any(axis=1)
    at = (x[assessed] >= float(baseline)).sum(axis=1)
    return at.groupby(items.loc[assessed, "hospital_id"].astype(str)).max()


def maturity_baseline_summary(res: WaveResults, hid: str, processes: pd.DataFrame, baseline):
    """The hospital's count of core processes at baseline or above, and the median hospital's
    count with the lowest and highest (``maturity_baseline_counts``), out of ``n_processes``.
    The one place this number is computed for the report: a results stage can replace it."""
    if baseline is None or processes is None or processes.empty:
        return None
    counts = maturity_baseline_counts(res.maturity_items, list(processes["item"]), baseline)
    if counts.empty:
        return None
    # the keys of the results stage's summary (benchmark/maturity.csv), so either can fill it
    return {
        "baseline_level": baseline,
        "n_processes": len(processes),
        "own": int(counts[hid]) if hid in counts.index else None,
        "own_assessed": int(processes["value"].notna().sum()),
        "consortium_median": float(counts.median()),
        "consortium_min": float(counts.min()),
        "consortium_max": float(counts.max()),
        "consortium_n_hospitals": int(len(counts)),
    }


def invited_counts(
    res: WaveResults, hid: str, tables: WaveTables | None = None
) -> dict[str, int | None]:
    """People invited to each survey of the wave, from the optional ``<source>_invited`` column
    of the organisations register (None where the column is absent, blank or not a count)."""
    own = _own_rows(res.organisations, hid, tables)
    out = {}
    for source in res.responses:
        col = f"{source}_invited"
        x = pd.to_numeric(own[col], errors="coerce") if col in own and len(own) else None
        v = None if x is None or x.isna().all() else float(x.iloc[0])
        out[source] = int(v) if v is not None and v >= 0 and v == int(v) else None
    return out


def mirrored_scales(study: Study, scale_ids) -> list[dict]:
    """Scales of two mirrored instruments (``mirror:`` in the codebooks) with the same items,
    as {"a", "b", "label"}: the same questions asked of both groups, so their gap is a gap on
    one scale (``a``: the first instrument of the pair, in the order of the study's sources)."""
    have = set(scale_ids)
    out = []
    for ia_id, ib_id in mirrored_pairs(study):
        ia, ib = study.instruments[ia_id], study.instruments[ib_id]
        for sa_id, sa in ia.scales.items():
            for sb_id, sb in ib.scales.items():
                if sa_id in have and sb_id in have and list(sa.items) == list(sb.items):
                    same = clean(sa.label) == clean(sb.label)
                    label = clean(sa.label) if same else f"All {len(sa.items)} questions"
                    out.append({"a": sa_id, "b": sb_id, "label": label})
    return out


def scale_pct_positive(study: Study, scales: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """``scales`` with ``pct_positive`` and ``consortium_pct_positive``: the mean of the scale's
    items' % positive (the AHRQ SOPS composite definition), blank unless every item of the
    scale is shown for the hospital."""
    scales = scales.copy()
    scales["pct_positive"] = np.nan
    scales["consortium_pct_positive"] = np.nan
    if items is None or items.empty:
        return scales
    it = items.set_index(["instrument", "item"])
    for i, r in scales.iterrows():
        try:
            sc = study.scale(r["scale"])
        except KeyError:
            continue
        keys = [(r["instrument"], x) for x in sc.items if (r["instrument"], x) in it.index]
        if not keys or len(keys) < len(sc.items):
            continue
        d = it.loc[keys]
        scales.loc[i, "consortium_pct_positive"] = d["consortium_pct_positive"].mean()
        if r["status"] == SHOWN and (d["status"] == SHOWN).all():
            scales.loc[i, "pct_positive"] = d["pct_positive"].mean()
    return scales


def _positive_from(inst) -> float:
    return benchmark.positive_from(inst)


def _positive_labels(inst, pos: float) -> str:
    """The words of the positive answers ("agree or strongly agree"), where every one of them
    has a label in the codebook; "" otherwise."""
    answers = {
        float(v): clean(lab).lower() for v, lab in (inst.response.get("labels") or {}).items()
    }
    wanted = np.arange(np.ceil(pos), inst.rmax + 1)
    if not all(float(v) in answers for v in wanted):
        return ""
    return " or ".join(answers[float(v)] for v in wanted)


def _own_rows(
    frame: pd.DataFrame | None, hid: str, tables: WaveTables | None = None
) -> pd.DataFrame | None:
    if frame is None:
        return None
    if tables is not None:
        return tables.own_rows(frame, hid)
    return frame[frame["hospital_id"].astype(str) == hid]


def item_table(
    study: Study,
    responses: dict[str, pd.DataFrame],
    hid: str,
    k: int,
    stats: pd.DataFrame | None = None,
    tables: WaveTables | None = None,
) -> pd.DataFrame:
    """Per item of every survey instrument: the hospital's n, mean, % positive and % missing
    (blank where fewer than k answered or the hospital has fewer than k respondents), and the
    consortium's mean and % positive; from ``stats`` (``benchmark/items.csv``) or, without it,
    computed from ``responses`` (``benchmark.item_stats``)."""
    own = _own_rows(stats, hid, tables)
    if own is None:
        own = benchmark.item_stats(study, responses, [hid])
    if own.empty:
        return pd.DataFrame()
    rows = []
    labels = {}
    for r in frames.rows(own):
        inst = study.instruments[r.instrument]
        if inst.id not in labels:
            labels[inst.id] = _positive_labels(inst, float(r.positive_from))
        row = {
            "source": r.source,
            "instrument": r.instrument,
            "instrument_label": clean(inst.label),
            "item": r.item,
            "text": clean(inst.items.get(r.item, "")),
            "reverse": r.item in inst.reverse_items,
            "rmin": inst.rmin,
            "rmax": inst.rmax,
            "positive_from": float(r.positive_from),
            "positive_labels": labels[inst.id],
            "consortium_mean": r.consortium_mean,
            "consortium_pct_positive": r.consortium_pct_positive,
        }
        ok = r.n >= k and r.n_respondents >= k and pd.notna(r.mean)
        if ok:
            row.update(
                n=int(r.n),
                mean=float(r.mean),
                pct_positive=float(r.pct_positive),
                pct_missing=float(r.pct_missing),
                status=SHOWN,
            )
        else:
            row.update(n=np.nan, mean=np.nan, pct_positive=np.nan, pct_missing=np.nan, status=SMALL)
        rows.append(row)
    return pd.DataFrame(rows)


def stakeholder_table(
    study: Study,
    responses: dict[str, pd.DataFrame],
    hid: str,
    k: int,
    stats: pd.DataFrame | None = None,
    tables: WaveTables | None = None,
) -> pd.DataFrame:
    """Mirrored instruments (``mirror:`` in the codebooks) per dimension: the hospital's mean of
    each side (blank below k), the gap (second side minus first) with its 95% interval, and
    the consortium's gap with its interval; from ``stats`` (``benchmark/stakeholders.csv``)
    or, without it, computed from ``responses`` (``benchmark.stakeholder_stats``)."""
    own = _own_rows(stats, hid, tables)
    if own is None:
        own = benchmark.stakeholder_stats(study, responses, [hid], k)
    rows = []
    for r in frames.rows(own):
        ia, ib = study.instruments[r.instrument_a], study.instruments[r.instrument_b]
        row = {
            "dimension": r.dimension,
            "label": dimension_label(r.dimension),
            "side_a": clean(SIDE_LABELS.get(ia.source, ia.label)),
            "side_b": clean(SIDE_LABELS.get(ib.source, ib.label)),
        }
        for side in ("a", "b"):
            n, m = getattr(r, f"n_{side}"), getattr(r, f"mean_{side}")
            ok = pd.notna(n) and n >= k and pd.notna(m)
            row[f"n_{side}"] = int(n) if ok else np.nan
            row[f"mean_{side}"] = float(m) if ok else np.nan
        both = pd.notna(row["mean_a"]) and pd.notna(row["mean_b"])
        row["gap"] = row["mean_b"] - row["mean_a"]
        row["consortium_gap"] = r.consortium_gap
        row["rmin"], row["rmax"] = ia.rmin, ia.rmax
        row["gap_ci_low"] = r.gap_ci_low if both else np.nan
        row["gap_ci_high"] = r.gap_ci_high if both else np.nan
        row["consortium_gap_ci_low"] = r.consortium_gap_ci_low
        row["consortium_gap_ci_high"] = r.consortium_gap_ci_high
        rows.append(row)
    return pd.DataFrame(rows)


def maturity_tables(
    study: Study,
    res: WaveResults,
    hid: str,
    stats: pd.DataFrame | None = None,
    tables: WaveTables | None = None,
):
    """The hospital's driver and building-block scores with the consortium median, its core
    processes (items) with their level and the consortium median, the baseline level, and the
    count of its core processes at baseline with the consortium's median and range of that
    count (a dict, or None); from ``stats`` (``benchmark/maturity.csv``) or, without it,
    computed (``benchmark.maturity_stats``). ``tables``: the wave's ``wave_tables``, whose
    ``scale_meta`` is computed once for all hospitals."""
    own = _own_rows(stats, hid, tables)
    if own is None:
        own = benchmark.maturity_stats(study, res.maturity, res.maturity_items, [hid])
    kinds: dict = {}  # the hospital's rows of each kind (scale, process, count), in order
    for r in frames.rows(own):
        kinds.setdefault(r.kind, []).append(r)
    measures = [r.measure for r in kinds.get("scale", [])]
    meta = tables.scale_meta(measures) if tables is not None else scale_meta(study, measures)
    if meta.empty:
        return pd.DataFrame(), pd.DataFrame(), None, None
    by = {r.measure: r for r in kinds["scale"]}
    rows = [
        {
            **m._asdict(),
            "value": float(by[m.scale].value),
            "consortium_median": float(by[m.scale].consortium_median),
        }
        for m in frames.rows(meta)
    ]
    inst = study.instrument_of(meta["scale"].iloc[0])
    baseline = inst.raw.get("baseline_level")
    block_of = {}
    for s in inst.scales.values():
        if s.level == "building_block":
            for it in s.items:
                block_of[it] = clean(s.label)
    proc = [
        {
            "item": r.measure,
            "text": clean(inst.items.get(r.measure, "")),
            "block": block_of.get(r.measure, ""),
            "value": float(r.value),
            "consortium_median": float(r.consortium_median),
        }
        for r in kinds.get("process", [])
    ]
    counts = {r.measure: r for r in kinds.get("count", [])}
    at_baseline = None
    if "processes_at_baseline" in counts:
        c, a = counts["processes_at_baseline"], counts["processes_assessed"]
        at_baseline = {
            "baseline_level": baseline,
            "n_processes": len(proc),
            "own": None if pd.isna(c.value) else int(c.value),
            "own_assessed": None if pd.isna(a.value) else int(a.value),
            "consortium_median": float(c.consortium_median),
            "consortium_min": float(c.consortium_min),
            "consortium_max": float(c.consortium_max),
            "consortium_n_hospitals": int(c.consortium_n_hospitals),
        }
    return pd.DataFrame(rows), pd.DataFrame(proc), baseline, at_baseline


@dataclass
class WaveTables:
    """What every hospital's view of a wave starts from, the same for each hospital: the
    wave's hospitals with their standard errors and suppression, each scale's consortium
    mean, quartiles and hospitals with results, the trend table of every wave so far, the
    consortium's quartiles for the peer comparison, and the wave's frames split by hospital
    (``of_hospital``, ``own_rows``, ``trend_of``, ``trend_records``: made at the first
    hospital's view, for all of them, and then looked up).

    ``render.render_batch`` computes it once per wave (``wave_tables``) and hands it to each
    report's ``hospital_view``; computed per hospital it was a third of a report's content
    (bench/results/2026-12-02-reports.md). It holds no hospital's view, only wave-level
    numbers, and is checked to belong to the wave it is used with."""

    res: WaveResults
    study: Study
    k: int
    shape: Shape
    scales: list  # (scale, its consortium values, each hospital's row, ids and values shown)
    trend: pd.DataFrame
    trend_consortium: dict
    shown_quartiles: dict
    split: dict = field(default_factory=dict)
    meta_cache: dict = field(default_factory=dict)

    def of_hospital(self, frame: str, hid: str) -> pd.DataFrame:
        """``res.<frame>``'s rows of hospital ``hid`` (as ``df[df["hospital_id"] == hid]``)."""
        return self._rows(frame, getattr(self.res, frame), hid)

    def own_rows(self, df: pd.DataFrame, hid: str) -> pd.DataFrame:
        """``df[df["hospital_id"].astype(str) == hid]``, for a frame of the wave (such as
        ``res.bench_items``) split by hospital once."""
        name = next((key for key, value in vars(self.res).items() if value is df), None)
        if name is None:  # not one of the wave's frames: filtered
            return df[df["hospital_id"].astype(str) == hid]
        return self._rows(("str", name), df, hid, as_str=True)

    def trend_of(self, hid: str) -> pd.DataFrame:
        """``trend``'s rows of hospital ``hid`` (as ``trend[trend["hospital_id"] == hid]``)."""
        return self._rows("_trend", self.trend, hid)

    def _rows(self, key, df: pd.DataFrame, hid: str, as_str: bool = False) -> pd.DataFrame:
        """Hospital ``hid``'s rows of ``df`` (its ``hospital_id`` read as text with
        ``as_str``); ``df`` is split by hospital at the first call for ``key``, then looked up."""
        if key not in self.split:
            ids = df["hospital_id"].astype(str) if as_str else df["hospital_id"]
            self.split[key] = {h: g for h, g in df.groupby(ids, sort=False)}
        found = self.split[key].get(hid)
        return found if found is not None else df.iloc[0:0]

    def trend_records(self, hid: str) -> dict:
        """Hospital ``hid``'s rows of ``trend`` as records by (wave, scale), the first of each
        (as ``trend_of(hid).drop_duplicates(["wave", "scale"]).to_dict("records")``); the
        records of every hospital made at once."""
        if "_records" not in self.split:
            by: dict = {}
            for r in self.trend.to_dict("records"):
                if pd.notna(r["hospital_id"]):
                    by.setdefault(r["hospital_id"], {}).setdefault((r["wave"], r["scale"]), r)
            self.split["_records"] = by
        return self.split["_records"].get(hid, {})

    def trend_since(self, first: str) -> tuple[list, pd.DataFrame]:
        """The waves of ``trend`` from wave ``first`` on, and the metadata of their scales."""
        key = ("_since", first)
        if key not in self.meta_cache:
            t = self.trend[self.trend["wave"] >= first]
            self.meta_cache[key] = (
                sorted(t["wave"].unique()),
                self.scale_meta(dict.fromkeys(t["scale"])),
            )
        return self.meta_cache[key]

    def change_of(self, hid: str, meta: pd.DataFrame, k: int) -> pd.DataFrame | None:
        """``_change``'s frame of hospital ``hid`` (None where the merge with ``meta`` leaves
        it no row), cut from the frame of every hospital's rows made at once (per set of
        ``meta`` scales and ``k``): the rows, values and dtypes of ``_change_rows`` of the
        hospital's own rows (a column ``where`` made float stays as it was where every one of
        the hospital's rows is shown, as ``where`` leaves it)."""
        cols = ("scale", "label", "source", "rmin", "rmax")
        key = ("_change", k, *(tuple(frames.column(meta[c])) for c in cols))
        if key not in self.meta_cache:
            out, ids, ok, dtypes = _change_rows(self.res.change, meta, k)
            at: dict = {}
            for i, h in enumerate(frames.column(ids)):
                if pd.notna(h):
                    at.setdefault(h, []).append(i)
            self.meta_cache[key] = (out, at, ok, dict(dtypes))
        out, at, ok, dtypes = self.meta_cache[key]
        pos = at.get(hid)
        if pos is None:
            return None
        part = out.take(pos)
        if ok[pos].all() and any(part[c].dtype != d for c, d in dtypes.items()):
            part = part.astype(dtypes)
        return part.reset_index(drop=True)

    def hospital_name(self, hid: str) -> str:
        """``res.hospital_name(hid)``, from the register's names read once for every hospital
        (``res.hospital_names``); KeyError for a hospital not in it."""
        if "_names" not in self.split:
            self.split["_names"] = self.res.hospital_names()
        found = self.split["_names"].get(hid)
        return found if found is not None else self.res.hospital_name(hid)  # its error

    def respondents(self, source: str, hid: str) -> int:
        """How many rows of the ``source`` survey's responses are the hospital's (as
        ``(df["hospital_id"] == hid).sum()``), counted once for every hospital."""
        key = ("_respondents", source)
        if key not in self.split:
            ids = self.res.responses[source]["hospital_id"]
            counts: dict = {}
            for h in frames.column(ids):
                if pd.notna(h):
                    counts[h] = counts.get(h, 0) + 1
            self.split[key] = counts
        return self.split[key].get(hid, 0)

    def scale_meta(self, scale_ids) -> pd.DataFrame:
        key = tuple(scale_ids)
        if key not in self.meta_cache:
            self.meta_cache[key] = scale_meta(self.study, list(key))
        return self.meta_cache[key]


def wave_tables(res: WaveResults, study: Study) -> WaveTables:
    """The wave-level tables of ``WaveTables``, computed once for every report of the wave."""
    k = study.min_group_size
    hosp = res.hospitals.copy()
    hosp["se"] = _se(hosp)
    hosp["hidden"] = _is_suppressed(hosp, k)
    meta = scale_meta(study, list(dict.fromkeys(hosp["scale"])))
    scales = []
    for m in frames.rows(meta):
        d = hosp[hosp["scale"] == m.scale]
        ok = d[~d["hidden"]]
        cmean = ok["eb_mean"].mean() if len(ok) else np.nan
        row = {**m._asdict(), "consortium_mean": cmean, "n_hospitals": len(ok)}
        row["q1"], row["q3"] = ok["eb_mean"].quantile([0.25, 0.75]) if len(ok) else [np.nan] * 2
        own_rows = {}  # each hospital's first row of the scale
        for r in d.to_dict("records"):
            own_rows.setdefault(r["hospital_id"], r)
        ok_ids = ok["hospital_id"].to_numpy(object)
        scales.append((m.scale, row, own_rows, ok_ids, ok[["eb_mean", "se"]].to_numpy(float)))
    # this wave from the wave's own results (the numbers of the glance table), earlier waves
    # from benchmark/trends.csv
    now = benchmark.trend_table({res.wave: res.hospitals}, {res.wave: res.change}, k)
    t = res.bench_trends
    if t is not None:
        t = pd.concat([t[t["wave"].astype(str) < str(res.wave)], now], ignore_index=True)
    else:
        t = now
    t = t.assign(wave=t["wave"].astype(str), hospital_id=t["hospital_id"].astype(str))
    cons = t.drop_duplicates(["wave", "scale"])
    trend_consortium = {(r["wave"], r["scale"]): r for r in cons.to_dict("records")}
    shown = benchmark.shown_means(res.hospitals, k)
    quartiles = {}
    for sid in dict.fromkeys(res.hospitals["scale"]):
        c = shown.loc[shown["scale"] == sid, "eb_mean"]
        q = c.quantile([0.25, 0.5, 0.75]) if len(c) else pd.Series(np.nan, [0.25, 0.5, 0.75])
        quartiles[sid] = (len(c), q)
    return WaveTables(
        res=res,
        study=study,
        k=k,
        shape=study_shape(res, study),
        scales=scales,
        trend=t,
        trend_consortium=trend_consortium,
        shown_quartiles=quartiles,
    )


def hospital_view(
    res: WaveResults, study: Study, hospital_id: str, tables: WaveTables | None = None
) -> HospitalView:
    """The confidential view of one hospital (see the module docstring for the rules).
    ``tables``: the wave's ``wave_tables`` when several hospitals' views are made (computed
    here otherwise)."""
    if tables is None:
        tables = wave_tables(res, study)
    elif tables.res is not res or tables.study is not study:
        raise ValueError("hospital_view: the wave tables are of another wave or study")
    k = study.min_group_size
    hid = str(hospital_id)
    name = clean(tables.hospital_name(hid)) or hid
    threshold = float(study.config["multilevel"]["agreement_threshold"])  # schema default
    shape = tables.shape
    scales, peers = _hospital_scales(tables, hid)
    teams = (
        _hospital_teams(res, study, hid, k, scales, threshold, tables)
        if shape.teams
        else _empty_teams_view()
    )
    item_stats = res.bench_items
    if item_stats is None:
        item_stats = benchmark.item_stats(study, res.responses, [hid], k)
    items = item_table(study, res.responses, hid, k, item_stats, tables)
    scales = _scale_positive(scales, study, hid, k, item_stats, res.bench_scales, tables)
    stake = (
        stakeholder_table(study, res.responses, hid, k, res.bench_stakeholders, tables)
        if shape.stakeholders is None
        else pd.DataFrame()
    )
    at_baseline = None
    if shape.maturity is None:
        maturity, processes, baseline, at_baseline = maturity_tables(
            study, res, hid, res.bench_maturity, tables
        )
    else:
        maturity, processes, baseline = pd.DataFrame(), pd.DataFrame(), None
    change = _change(res, hid, k, scales, tables)
    trend = _trend_view(res, hid, k, change, tables)
    if shape.compare:
        peer_group, peer_label, peer_note = _peer_view(res, study, hid, k, scales, tables)
    else:
        # no consortium to compare with: its "averages" would be the hospital's own values
        scales, peers, items, stake, maturity, processes = _without_consortium(
            scales, peers, items, stake, maturity, processes
        )
        peer_group, peer_label, peer_note = None, None, None
        if trend is not None:
            trend = trend.assign(
                consortium_mean=np.nan, consortium_ci_low=np.nan, consortium_ci_high=np.nan
            )
        if at_baseline is not None:
            at_baseline = {
                **at_baseline,
                **dict.fromkeys(("consortium_median", "consortium_min", "consortium_max"), np.nan),
            }
    respondents = {}
    for source, df in res.responses.items():
        n = tables.respondents(source, hid) if df is not None else 0
        respondents[source] = n if n >= k or n == 0 else None
    psy = None
    if res.scales is not None and not res.scales.empty:
        psy = res.scales.copy()
    return HospitalView(
        hospital_id=hid,
        hospital_name=name,
        wave=res.wave,
        k=k,
        n_hospitals=res.organisations["hospital_id"].nunique(),
        respondents=respondents,
        scales=scales,
        peers=peers,
        teams=teams,
        change=change,
        items=items,
        stakeholders=stake,
        maturity=maturity,
        maturity_processes=processes,
        psychometrics=psy,
        baseline_level=baseline,
        ambition_year=study.config["report"]["ambition_year"],
        agreement_threshold=threshold,
        shape=shape,
        maturity_baseline=at_baseline,
        invited=invited_counts(res, hid, tables),
        mirrored=mirrored_scales(study, scales["scale"]) if shape.stakeholders is None else [],
        peer_group=peer_group,
        peer_label=peer_label,
        peer_note=peer_note,
        trend=trend,
    )


def peer_group_label(column: str, group: str) -> str:
    """How a peer group is named in a report: "teaching hospitals" for the register column
    ``hospital_type``, "hospitals with the same region (Antwerp)" for another column."""
    g = clean(group)
    if column == "hospital_type":
        return f"{g} hospitals"
    return f"hospitals with the same {clean(column).replace('_', ' ')} ({g})"


def _peer_view(
    res: WaveResults, study: Study, hid: str, k: int, scales: pd.DataFrame, tables: WaveTables
):
    """(per-scale frame, label, note) of the hospital's peer group: the hospitals sharing its
    value of the register column ``report.peers.column``. A scale's peer median and quartiles
    are shown only where the group has at least ``report.peers.min_hospitals`` hospitals with
    results (``status`` "few" otherwise: blank); the hospital's own group only, never another
    hospital's id. The consortium's median and quartiles of the same means sit beside them."""
    cfg = study.config["report"].get("peers") or {}
    column, minimum = cfg.get("column"), int(cfg.get("min_hospitals", 5))
    if not column:
        return None, None, None
    orgs = res.organisations
    if column not in orgs.columns:
        return (
            None,
            None,
            f"Hospitals of the same kind are not compared: the organisations register has no "
            f"column '{clean(column)}' (config report.peers.column).",
        )
    own = _own_rows(orgs, hid, tables)[column]
    if own.empty or pd.isna(own.iloc[0]) or not clean(own.iloc[0]):
        return (
            None,
            None,
            f"Your hospital has no {clean(column).replace('_', ' ')} in the organisations "
            "register, so it is not compared with a peer group.",
        )
    group = str(own.iloc[0])
    label = peer_group_label(column, group)
    key = ("_peers", column, group, minimum, k)  # the group's rows, the same for its members
    if key not in tables.meta_cache:
        stats = res.bench_peers
        if stats is None:
            stats = benchmark.peer_stats(res.hospitals, orgs, column, minimum, k)
        stats = stats[(stats["column"] == column) & (stats["group"].astype(str) == group)]
        tables.meta_cache[key] = {s.scale: s for s in frames.rows(stats)}
    stats = tables.meta_cache[key]
    rows = []
    none = (0, pd.Series(np.nan, [0.25, 0.5, 0.75]))  # a scale without consortium values
    for r in frames.rows(scales):
        n_c, q = tables.shown_quartiles.get(r.scale, none)
        row = {
            "scale": r.scale,
            "label": r.label,
            "rmin": r.rmin,
            "rmax": r.rmax,
            "group": group,
            "consortium_n_hospitals": n_c,
            "consortium_median": q[0.5],
            "consortium_q1": q[0.25],
            "consortium_q3": q[0.75],
        }
        n = int(stats[r.scale].n_hospitals) if r.scale in stats else 0
        if n >= minimum:
            s = stats[r.scale]
            row.update(n_hospitals=n, median=s.median, q1=s.q1, q3=s.q3, status=SHOWN)
        else:
            row.update(n_hospitals=np.nan, median=np.nan, q1=np.nan, q3=np.nan, status="few")
        rows.append(row)
    out = pd.DataFrame(rows)
    note = None
    if out.empty or (out["status"] != SHOWN).all():
        note = (
            f"Your hospital's peer group, {label}, has fewer than {minimum} hospitals with "
            "results, so it is not shown: in so small a group a single hospital's score could "
            "be singled out."
        )
        out = None
    elif (out["status"] != SHOWN).any():
        note = (
            f"On some scales fewer than {minimum} {label} have results; their peer values are "
            "not shown, so that no single hospital's score can be singled out."
        )
    return out, label, note


TREND_VIEW_COLUMNS = [
    "scale",
    "label",
    "source",
    "rmin",
    "rmax",
    "wave",
    "status",
    "n",
    "mean",
    "ci_low",
    "ci_high",
    "consortium_mean",
    "consortium_ci_low",
    "consortium_ci_high",
    "previous_wave",
    "change",
    "change_se",
    "change_ci_low",
    "change_ci_high",
    "change_status",
]


def _trend_view(
    res: WaveResults, hid: str, k: int, change: pd.DataFrame | None, tables: WaveTables
) -> pd.DataFrame | None:
    """Per scale and wave, from the first wave the hospital took part in up to this one: the
    hospital's mean with its 95% interval (``status`` shown; small below k, values blank;
    absent where it did not take part: a gap), the consortium's mean with its interval, and
    the change since the wave before (this wave's from ``change``, exactly as the glance
    table; earlier waves' from ``benchmark/trends.csv``, ``res.bench_trends``). This wave's
    means come from the wave's own ``hospitals`` (the glance table's numbers). A scale not
    fielded in a wave has no row for it. None when the hospital has no result in any wave."""
    own = tables.trend_of(hid)
    if own.empty:
        return None
    waves, meta = tables.trend_since(own["wave"].min())
    cons = tables.trend_consortium
    own = tables.trend_records(hid)
    cur = {} if change is None else {r.scale: r for r in frames.rows(change)}
    rows = []
    for m in frames.rows(meta):
        for w in waves:
            if (w, m.scale) not in cons:
                continue  # the scale was not fielded in that wave
            c = cons[(w, m.scale)]
            many = c["consortium_n_hospitals"] >= 2
            row = {
                "scale": m.scale,
                "label": m.label,
                "source": m.source,
                "rmin": m.rmin,
                "rmax": m.rmax,
                "wave": w,
                "consortium_mean": c["consortium_mean"] if many else np.nan,
                "consortium_ci_low": c["consortium_ci_low"] if many else np.nan,
                "consortium_ci_high": c["consortium_ci_high"] if many else np.nan,
            }
            o = own.get((w, m.scale))
            if o is None:
                row["status"] = "absent"
            elif o["n"] >= k and not o["suppressed"] and pd.notna(o["mean"]):
                row.update(
                    status=SHOWN,
                    n=int(o["n"]),
                    mean=o["mean"],
                    ci_low=o["ci_low"],
                    ci_high=o["ci_high"],
                )
            else:
                row["status"] = SMALL
            if w == str(res.wave):
                ch = cur.get(m.scale)
                if ch is not None:
                    row.update(
                        previous_wave=ch.previous_wave,
                        change=ch.change,
                        change_se=ch.se,
                        change_ci_low=ch.ci_low,
                        change_ci_high=ch.ci_high,
                        change_status=ch.status,
                    )
            elif o is not None and pd.notna(o.get("previous_wave")):
                ok = (
                    pd.notna(o["change"])
                    and o["n"] >= k
                    and pd.notna(o["n_previous"])
                    and o["n_previous"] >= k
                )
                row.update(
                    previous_wave=o["previous_wave"],
                    change=o["change"] if ok else np.nan,
                    change_se=o["change_se"] if ok else np.nan,
                    change_ci_low=o["change_ci_low"] if ok else np.nan,
                    change_ci_high=o["change_ci_high"] if ok else np.nan,
                    change_status=SHOWN if ok else SMALL,
                )
            rows.append(row)
    out = pd.DataFrame(rows)
    for c in TREND_VIEW_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out[TREND_VIEW_COLUMNS]


def _without_consortium(scales, peers, items, stake, maturity, processes):
    """The view's frames with every consortium value blank and no peers: for a hospital that
    has no other hospital with results to be compared with."""

    def blank(df, cols):
        if df is None or df.empty:
            return df
        return df.assign(**{c: np.nan for c in cols if c in df.columns})

    scales = blank(scales, ["consortium_mean", "q1", "q3", "consortium_pct_positive"])
    scales.loc[scales["status"] == SHOWN, "signal"] = "common"
    peers = {s: np.empty((0, 2)) for s in peers}
    items = blank(items, ["consortium_mean", "consortium_pct_positive"])
    stake = blank(stake, ["consortium_gap", "consortium_gap_ci_low", "consortium_gap_ci_high"])
    maturity = blank(maturity, ["consortium_median"])
    processes = blank(processes, ["consortium_median"])
    return scales, peers, items, stake, maturity, processes


# --- the scan of a rendered report ---------------------------------------------------------

#: Attributes whose value a reader or a screen reader gets; other attributes are markup.
TEXT_ATTRIBUTES = frozenset(
    {
        "alt",
        "title",
        "aria-label",
        "aria-description",
        "aria-roledescription",
        "aria-valuetext",
        "placeholder",
        "label",
        "summary",
    }
)
_SKIP = frozenset({"style", "script"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Elements that do not separate text (everything else is a block: p, td, li, SVG text, ...).
_INLINE = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "code",
        "data",
        "dfn",
        "em",
        "font",
        "i",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "tspan",
        "u",
        "var",
    }
)
_DATA_URI = re.compile(
    r"data:(image/svg\+xml|text/html|text/plain|application/json)((?:;[\w-]+=[\w-]+)*)"
    r"(;base64)?,",
    re.I,
)


class _ReaderText(HTMLParser):
    """The text of an HTML or SVG document as a reader gets it, and the marked names."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.names: list[str] = []
        self._open: list[str] = []
        self._skip = 0
        self._name_depth: int | None = None
        self._name: list[str] = []

    def _attrs(self, attrs) -> None:
        for key, value in attrs:
            if key in TEXT_ATTRIBUTES and value:
                self.parts += ["\n", value, "\n"]

    def handle_starttag(self, tag, attrs):
        self._attrs(attrs)
        if tag not in _INLINE:
            self.parts.append("\n")
        if tag in _VOID:
            return
        self._open.append(tag)
        if tag in _SKIP:
            self._skip += 1
        classes = (dict(attrs).get("class") or "").split()
        if IDENT_CLASS in classes and self._name_depth is None:
            self._name_depth, self._name = len(self._open), []

    def handle_startendtag(self, tag, attrs):
        self._attrs(attrs)
        if tag not in _INLINE:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag not in self._open:
            return
        while self._open:
            top = self._open.pop()
            if top in _SKIP:
                self._skip -= 1
            if self._name_depth is not None and len(self._open) < self._name_depth:
                self.names.append(clean("".join(self._name)))
                self._name_depth = None
            if top == tag:
                break
        if tag not in _INLINE:
            self.parts.append("\n")

    def handle_data(self, data):
        if self._skip:
            return
        data = re.sub(r"\s+", " ", data)
        self.parts.append(data)
        if self._name_depth is not None:
            self._name.append(data)

    def handle_comment(self, data):
        self.parts += ["\n", data, "\n"]

    def text(self) -> str:
        lines = (clean(x) for x in "".join(self.parts).split("\n"))
        return "\n".join(x for x in lines if x)


def _embedded(html: str):
    """(mime, decoded text) of every SVG, HTML, text or JSON data URI in ``html``."""
    for m in _DATA_URI.finditer(html):
        quote = html[m.start() - 1] if m.start() else ""
        end_char = {'"': '"', "'": "'", "(": ")"}.get(quote)
        rest = html[m.end() :]
        stop = rest.find(end_char) if end_char else -1
        if stop < 0:
            stop = re.search(r"[\s\"'<>)]|$", rest).start()
        payload = rest[:stop]
        try:
            if m.group(3):
                data = base64.b64decode(re.sub(r"\s+", "", payload)).decode("utf-8", "replace")
            else:
                data = urllib.parse.unquote(payload)
        except ValueError:
            continue
        yield m.group(1).lower(), data


def _read(html: str, depth: int = 0) -> tuple[list[str], list[str]]:
    parser = _ReaderText()
    htmlread.feed(parser, html)  # html.parser's reading, faster
    texts, names = [parser.text()], list(parser.names)
    if depth < 3:
        for mime, data in _embedded(html):
            if mime in ("image/svg+xml", "text/html"):
                t, n = _read(data, depth + 1)
                texts += t
                names += n
            else:
                texts.append(clean(data))
    return texts, names


def report_text(html: str) -> str:
    """What a reader or a screen reader gets from the report (see the module docstring): its
    text, text attributes and embedded SVG/HTML documents, one block per line."""
    return "\n".join(t for t in _read(html)[0] if t)


def report_names(html: str) -> list[str]:
    """The text of every place where the report writes a name (``class="ident"``)."""
    return _read(html)[1]


def study_vocabulary(study: Study) -> set[str]:
    """The study's own wording, the same in every hospital's report: instrument, scale and
    dimension labels, response labels, item ids and wording, the names of the two sides."""
    words = {clean(x) for x in SIDE_LABELS.values()}
    for inst in study.instruments.values():
        words |= {inst.id, clean(inst.label)}
        for sid, sc in inst.scales.items():
            words |= {sid, clean(sc.label)}
        for item, text in inst.items.items():
            words |= {item, clean(text)}
        words |= {clean(x) for x in (inst.response.get("labels") or {}).values()}
        words |= {dimension_label(d) for d in (inst.raw.get("dimensions") or {}).values()}
    return {w for w in words if w}


def forbidden_identifiers(
    res: WaveResults, hospital_id: str, study: Study | None = None
) -> dict[str, set[str]]:
    """Other hospitals' names and ids, and the team names that only other hospitals have;
    under ``_allowed`` the hospital's own name, id, team names and team ids, and under
    ``_vocabulary`` (with ``study``) the study's own wording (see the module docstring)."""
    hospital_id = str(hospital_id)
    orgs = res.organisations
    is_own = orgs["hospital_id"].astype(str) == hospital_id
    reg = res.team_register
    own_reg = reg["hospital_id"].astype(str) == hospital_id

    def texts(series) -> set[str]:
        return {t for t in (clean(x) for x in series.dropna()) if t}

    own_teams = texts(reg.loc[own_reg, "team_name"]) if "team_name" in reg else set()
    out = {
        "hospital id": texts(orgs.loc[~is_own, "hospital_id"].astype(str)),
        "team name": (texts(reg.loc[~own_reg, "team_name"]) if "team_name" in reg else set())
        - own_teams,
        "hospital name": texts(orgs.loc[~is_own, "hospital_name"])
        if "hospital_name" in orgs
        else set(),
    }
    allowed = own_teams | {hospital_id} | texts(reg.loc[own_reg, "team_id"].astype(str))
    if "hospital_name" in orgs:
        allowed |= texts(orgs.loc[is_own, "hospital_name"])
    out["_allowed"] = allowed
    if study is not None:
        out["_vocabulary"] = study_vocabulary(study)
    return out


def weak_id(value: str) -> bool:
    """An id that reads as an ordinary number or word in a sentence: no letter at all
    (``10``, ``0042``, ``2024-1``) or one or two letters only (``A``, ``AB``)."""
    v = str(value)
    return not any(c.isalpha() for c in v) or (len(v) <= 2 and v.isalpha())


_WORD = re.compile(r"\w+")
_ID_CONTEXT = re.compile(
    r"(?i:(?<!\w)(?:(?:hospitals?|organi[sz]ations?|sites?)\b|hosp\.)"
    r"(?:\s+(?:id|no\.?|nr\.?|number|code))?\s*[:#]?\s*#?)"
    r"([A-Za-z0-9][A-Za-z0-9_.\-]*)(?!\w)"
    r"|(?<![\w.\-])H-?([0-9][0-9_.\-]*)(?!\w)"
)


def _lower(text: str) -> str:
    """Lower case, keeping the length (and so the positions): a character whose lower case
    is longer (the Turkish dotted I) is left as it is."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class _Terms:
    """Terms to look for, indexed by their first word (lower case), so that a text is
    searched once for thousands of names: only the terms whose first word the text contains
    are compared, at the places where it does."""

    def __init__(self, terms, exact: bool):
        self.exact = exact  # ids: exact case, whole token; names: any case, whole phrase
        self.by_word: dict[str, list[tuple[str, str, int]]] = {}
        self.plain: list[tuple[str, str]] = []  # terms without a letter or digit
        for term in terms:
            low = _lower(term)
            m = _WORD.search(low)
            if m is None:
                self.plain.append((term, low))
            else:
                self.by_word.setdefault(m.group(), []).append((term, low, m.start()))


class _Finder:
    """Occurrences of ``_Terms`` in one text (see the module docstring for "whole")."""

    def __init__(self, text: str):
        self.text, self.lower = text, _lower(text)
        self.words: dict[str, list[int]] = {}
        for m in _WORD.finditer(self.lower):
            self.words.setdefault(m.group(), []).append(m.start())

    def _word_at(self, i: int) -> bool:
        return 0 <= i < len(self.text) and (self.text[i].isalnum() or self.text[i] == "_")

    def _phrase(self, low: str, p: int) -> bool:
        """``low`` at ``p`` in any case, not inside a longer word."""
        n = len(low)
        if self.lower[p : p + n] != low:
            return False
        return not (
            (self._word_at(p) and self._word_at(p - 1))
            or (self._word_at(p + n - 1) and self._word_at(p + n))
        )

    def _token(self, term: str, p: int) -> bool:
        """The id ``term`` at ``p`` in its exact case, as a whole token: not next to a letter,
        digit or '_', nor to a '.' or '-' that joins it to one ("H1-2", "v.H1")."""
        n, t = len(term), self.text
        if t[p : p + n] != term or self._word_at(p - 1) or self._word_at(p + n):
            return False
        if p >= 2 and t[p - 1] in ".-" and self._word_at(p - 2):
            return False
        return not (t[p + n : p + n + 1] in (".", "-") and self._word_at(p + n + 1))

    def find(self, terms: _Terms) -> dict[str, list[tuple[int, int]]]:
        """term -> (start, end) of each of its occurrences."""
        out: dict[str, list[tuple[int, int]]] = {}

        def check(term, low, p):
            ok = self._token(term, p) if terms.exact else self._phrase(low, p)
            if ok:
                out.setdefault(term, []).append((p, p + len(term)))

        for word, starts in self.words.items():
            for term, low, offset in terms.by_word.get(word, ()):
                for start in starts:
                    if start >= offset:
                        check(term, low, start - offset)
        for term, low in terms.plain:
            i = self.lower.find(low)
            while i >= 0:
                check(term, low, i)
                i = self.lower.find(low, i + 1)
        return out

    def spans(self, terms: _Terms) -> list[tuple[int, int]]:
        return [s for found in self.find(terms).values() for s in found]


def _inside(span, spans) -> bool:
    return any(a <= span[0] and span[1] <= b for a, b in spans)


def scan_report(html: str, forbidden: dict[str, set[str]]) -> list[str]:
    """Every other hospital's name, id or team name that the report shows (the rules are in
    the module docstring), as sorted "hospital id 'H2'", "team name 'Surgery'", ..."""

    def terms(key):
        return {t for t in (clean(x) for x in forbidden.get(key, ())) if t}

    texts, names = _read(html)
    text = "\n".join(t for t in texts if t)
    allowed_set = terms("_allowed")
    allowed = _Terms(allowed_set, exact=False)
    vocabulary = _Terms(terms("_vocabulary"), exact=False)
    ids = terms("hospital id")
    weak = {i for i in ids if weak_id(i)}
    strong = _Terms(ids - weak, exact=True)
    hospital_names = _Terms(terms("hospital name"), exact=False)
    team_names = _Terms(terms("team name"), exact=False)
    hits: set[str] = set()

    def report(kind, found, ok):
        for term, spans in found.items():
            if any(not _inside(s, ok) for s in spans):
                hits.add(f"{kind} {term!r}")

    # all text: other hospitals' names and identifier-like ids, except inside the hospital's
    # own names and the study's wording; number-like ids only where an id is written
    find = _Finder(text)
    ok = find.spans(allowed)
    ok_all = ok + find.spans(vocabulary)
    report("hospital name", find.find(hospital_names), ok_all)
    report("hospital id", find.find(strong), ok_all)
    if weak:
        for m in _ID_CONTEXT.finditer(text):
            group = 1 if m.group(1) is not None else 2
            token = m.group(group).rstrip(".-")
            span = (m.start(group), m.start(group) + len(token))
            if token in weak and (group == 1 or token.isdigit()) and not _inside(span, ok):
                hits.add(f"hospital id {token!r}")

    # where names are written: every kind, team names included
    for written in names:
        if not written:
            continue
        if written in weak and written not in allowed_set:
            hits.add(f"hospital id {written!r}")
        find = _Finder(written)
        ok = find.spans(allowed)
        report("hospital name", find.find(hospital_names), ok)
        report("team name", find.find(team_names), ok)
        report("hospital id", find.find(strong), ok)
    return sorted(hits)
