"""The shape of a study and of its wave, and so which report sections apply.

Studies are not all the demo (issue 9): one organisation or many, respondents in teams or
not, with or without a Maturity Matrix, a patients' survey, an earlier wave or hypotheses.
The reports adapt in two ways:

- **A level the design does not have is left out**, heading and all: with fewer than two
  hospitals with results there is no comparison with a consortium anywhere (no "Between
  hospitals", no consortium average in the tables, texts and figures); without teams there is
  no "Between your teams". The "at a glance" text says why (``Shape.compare``,
  ``Shape.teams``).
- **A source the study or the wave does not have** keeps its heading and says so in one
  line, where a reader would look for it ("Not applicable: the study has no maturity
  assessment"): ``Shape.maturity``, ``Shape.stakeholders`` and ``Shape.hypotheses`` hold that
  line, or None where the section can be filled.

A section's content is an empty list when it is left out; the template then writes neither
its heading nor anything else (``layout.Report.heading``), so the table of contents lists no
empty section.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flaqum.config import Study
from flaqum.report.data import WaveResults
from flaqum.report.escape import md as tx

#: The surveys of the two sides of the stakeholder comparison, as a sentence names them.
SURVEY_NAMES = {"patients": "patients' survey", "staff": "professionals' survey"}


@dataclass(frozen=True)
class Shape:
    n_hospitals: int  # hospitals with results this wave (a value shown on at least one scale)
    n_organisations: int  # hospitals in the wave's organisations register
    teams: bool  # the wave's surveys have teams (multilevel/teams.csv has rows)
    previous_wave: bool  # the wave has an earlier wave to compare with (change.csv exists)
    maturity: str | None = None  # why there is no Maturity Matrix; None where there is one
    stakeholders: str | None = None  # why there is no patients-professionals comparison
    hypotheses: str | None = None  # why there are no hypotheses (consortium report)
    not_fielded: str | None = None  # the instruments the wave did not field, as a sentence

    @property
    def compare(self) -> bool:
        """Whether a hospital can be compared with others (at least two have results)."""
        return self.n_hospitals >= 2


def mirrored_pairs(study: Study) -> list[tuple[str, str]]:
    """The pairs of instruments that ask the same questions of two groups (``mirror:`` in the
    codebooks), each in the order of the study's sources (professionals before patients)."""
    pairs = []
    for inst in study.instruments.values():
        m = inst.raw.get("mirror")
        if m and m in study.instruments and inst.raw.get("dimensions"):
            pair = tuple(
                sorted(
                    (inst.id, m),
                    key=lambda i: list(study.sources).index(study.instruments[i].source),
                )
            )
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def hospitals_with_results(res: WaveResults, k: int) -> int:
    """Hospitals with at least k respondents on at least one scale this wave."""
    h = res.hospitals
    if h is None or h.empty or "hospital_id" not in h:
        return 0
    ok = h["n"].fillna(0) >= k
    if "suppressed" in h:
        ok &= ~h["suppressed"].astype(str).str.lower().isin(["true", "1"])
    return int(h.loc[ok, "hospital_id"].nunique())


def has_teams(res: WaveResults) -> bool:
    t = res.teams
    return t is not None and "team_id" in t.columns and bool(t["team_id"].notna().any())


def _scale_columns(df: pd.DataFrame | None) -> list[str]:
    if df is None:
        return []
    return [c for c in df.columns if c not in ("respondent_id", "hospital_id", "team_id")]


def maturity_note(study: Study, res: WaveResults) -> str | None:
    if "maturity" not in study.sources or not study.scales_for("maturity"):
        return "Not applicable: the study has no maturity assessment."
    if not _scale_columns(res.maturity):
        return f"Not in this wave: the Maturity Matrix was not assessed in wave {tx(res.wave)}."
    return None


def stakeholders_note(study: Study, res: WaveResults) -> str | None:
    pairs = mirrored_pairs(study)
    if not pairs:
        if "patients" not in study.sources or not study.instruments_for("patients"):
            return "Not applicable: the study has no patients' survey."
        return (
            "Not applicable: the study's surveys ask no questions of both patients and "
            "professionals."
        )
    missing = []
    for pair in pairs:
        for inst in pair:
            source = study.instruments[inst].source
            df = res.responses.get(source)
            if (df is None or df.empty) and source not in missing:
                missing.append(source)
    if missing:
        names = " and ".join(SURVEY_NAMES.get(s, f"{tx(s)} survey") for s in missing)
        return f"Not in this wave: wave {tx(res.wave)} has no {names}."
    return None


def not_fielded_note(study: Study, res: WaveResults) -> str | None:
    """One sentence naming the study's instruments that this wave did not field (codebook key
    ``waves:``; ``Study.not_fielded``), or None when every instrument was fielded: a reader
    who misses an instrument's scales learns why."""
    names = [tx(study.instruments[i].label or i) for i in sorted(study.not_fielded(str(res.wave)))]
    if not names:
        return None
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "was" if len(names) == 1 else "were"
    return f"Not in this wave: {listed} {verb} not fielded in wave {tx(res.wave)}."


def declared_hypotheses(study: Study) -> list[Path]:
    folder = Path(study.root) / "config" / "hypotheses"
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def hypotheses_note(study: Study, res: WaveResults) -> str | None:
    if res.hypotheses is not None and not res.hypotheses.empty:
        return None
    if not declared_hypotheses(study):
        return "Not applicable: the study declares no hypotheses (config/hypotheses/ is empty)."
    return None


def study_shape(res: WaveResults, study: Study) -> Shape:
    return Shape(
        n_hospitals=hospitals_with_results(res, study.min_group_size),
        n_organisations=int(res.organisations["hospital_id"].nunique()),
        teams=has_teams(res),
        previous_wave=res.change is not None,
        maturity=maturity_note(study, res),
        stakeholders=stakeholders_note(study, res),
        hypotheses=hypotheses_note(study, res),
        not_fielded=not_fielded_note(study, res),
    )
