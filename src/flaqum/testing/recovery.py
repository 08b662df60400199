"""Estimates against a generated consortium's truth, without the DAG.

Shared by the recovery tests (``tests/test_recovery.py``) and the coverage study
(``bench/coverage.py``): score a generated wave with the package's own stages, assemble the
inputs the outcome hypotheses read, and put the stated (latent) truth on the metric of the
observed scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.ingest import ingest_source
from flaqum.multilevel import fit_nested
from flaqum.scoring import score_source

#: The scales the shipped hypotheses read, by source.
HYPOTHESIS_SCALES = {
    "staff": ["psych_safety", "team_collab", "qs_prof_total"],
    "patients": ["qs_pat_total"],
}
#: Teams with at least this many respondents enter the attenuation slope.
MIN_TEAM = 15


def score_wave(
    study: Study, wave_dir: Path, work: Path, sources=("staff", "patients", "maturity")
) -> dict[str, pd.DataFrame]:
    """Ingest (into ``work``) and score the sources of one generated wave."""
    scores = {}
    for source in sources:
        ingest_source(study, wave_dir, source, work / f"{source}.parquet")
        scores[source] = score_source(study, source, pd.read_parquet(work / f"{source}.parquet"))
    return scores


def hypothesis_inputs(
    scores: dict[str, pd.DataFrame],
    wave_dir: Path,
    scales: dict[str, list[str]] = HYPOTHESIS_SCALES,
) -> dict[str, pd.DataFrame]:
    """What the hypotheses read: the multilevel team and hospital tables of ``scales``, the
    maturity scores, and the wave's registers and outcomes."""
    teams, hospitals = [], []
    for source, scale_ids in scales.items():
        for sid in scale_ids:
            fit = fit_nested(scores[source], sid)
            teams.append(fit.teams.assign(scale=sid))
            hospitals.append(fit.hospitals.assign(scale=sid))
    ids = {"hospital_id": str, "team_id": str}
    return {
        "teams": pd.concat(teams, ignore_index=True),
        "hospitals": pd.concat(hospitals, ignore_index=True),
        "maturity": scores["maturity"],
        "outcomes": pd.read_csv(wave_dir / "outcomes.csv", dtype=ids),
        "team_outcomes": pd.read_csv(wave_dir / "team_outcomes.csv", dtype=ids),
        "organisations": pd.read_csv(wave_dir / "organisations.csv", dtype=ids),
    }


def attenuation(scores: pd.DataFrame, wave_truth: dict, block: str, scale: str) -> float:
    """Slope of observed team means on the true team means (teams of ``MIN_TEAM`` or more).

    The stated parameters are on the latent metric. The observed score is a mean of rounded
    items clipped at the scale ends, with a few straight-liners: it measures the latent score
    with a slope a little below 1 (about 0.88-0.95 here), so a variance on the observed metric
    is the stated one times slope^2 and an effect on a score is divided by its slope. The
    slope comes from the data and the truth (noise in the observed means does not bias it),
    never from the model being tested. ``wave_truth``: ``ground_truth["waves"][wave]``.
    """
    true = pd.Series(wave_truth["teams"][block])
    g = scores.dropna(subset=[scale]).groupby(["hospital_id", "team_id"])[scale]
    g = g.agg(["mean", "size"])
    g = g[g["size"] >= MIN_TEAM]
    keys = [f"{h}:{t}" for h, t in g.index]
    return float(np.polyfit(true.loc[keys].to_numpy(float), g["mean"].to_numpy(float), 1)[0])
