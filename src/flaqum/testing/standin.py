"""Stand-in statistics from the scores: raw means with normal-theory intervals.

They have the columns of the multilevel and psychometrics files (CONTRACT section 4), so the
report stage can be tested, benchmarked and previewed without fitting the multilevel models.
The pipeline never uses them: its reports read the fitted files. ``eb_mean`` here is the raw
mean (no shrinkage) and ``rwg_j`` is computed on the scale scores, not on the items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.constants import Z95


def _group_means(scores: pd.DataFrame, scales: list[str], keys: list[str], k: int):
    rows = []
    for sid in scales:
        g = scores.dropna(subset=[sid]).groupby(keys, observed=True)[sid]
        agg = g.agg(["count", "mean", "std"]).reset_index()
        agg.columns = [*keys, "n", "raw_mean", "sd"]
        se = agg["sd"].fillna(agg["sd"].median()) / np.sqrt(agg["n"])
        agg["eb_mean"] = agg["raw_mean"]
        agg["eb_se"] = se
        agg["ci_low"] = agg["eb_mean"] - Z95 * se
        agg["ci_high"] = agg["eb_mean"] + Z95 * se
        agg["suppressed"] = agg["n"] < k
        agg.insert(0, "scale", sid)
        rows.append(agg.drop(columns="sd"))
    return pd.concat(rows, ignore_index=True)


def multilevel_standin(study: Study, scores: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """hospitals, teams and variance frames from survey scores ({source: scores frame})."""
    k = study.min_group_size
    hosp, team, var = [], [], []
    for source, df in scores.items():
        scales = [s for s in study.scales_for(source) if s in df.columns]
        if "team_id" not in df.columns:
            df = df.assign(team_id=pd.Series(pd.NA, index=df.index, dtype="string"))
        hosp.append(_group_means(df, scales, ["hospital_id"], k))
        team.append(
            _group_means(df.dropna(subset=["team_id"]), scales, ["hospital_id", "team_id"], k)
        )
        # as the pipeline's variance.csv: a level the design lacks (one hospital, no teams)
        # has a blank variance, not zero
        n_hosp, teams = df["hospital_id"].nunique(), bool(df["team_id"].notna().any())
        for sid in scales:
            d = df.dropna(subset=[sid])
            hm = d.groupby("hospital_id")[sid].transform("mean")
            tm = d.groupby(["hospital_id", "team_id"])[sid].transform("mean") if teams else hm
            vh = hm.var() if n_hosp > 1 else np.nan
            vt = (tm - hm).var() if teams else np.nan
            vr = (d[sid] - tm).var()
            tot = np.nansum([vh, vt, vr])
            var.append(
                {
                    "scale": sid,
                    "n_respondents": len(d),
                    "n_teams": d.dropna(subset=["team_id"])
                    .groupby(["hospital_id", "team_id"])
                    .ngroups,
                    "n_hospitals": d["hospital_id"].nunique(),
                    "intercept": d[sid].mean(),
                    "var_hospital": vh,
                    "var_team": vt,
                    "var_residual": vr,
                    "vpc_hospital": vh / tot,
                    "vpc_team": vt / tot,
                    "converged": True,
                    "singular": False,
                }
            )
    return {
        "hospitals": pd.concat(hosp, ignore_index=True),
        "teams": pd.concat(team, ignore_index=True),
        "variance": pd.DataFrame(var),
    }


def agreement_standin(study: Study, scores: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """A single-item rwg per team and scale (1 - observed variance / uniform null variance)."""
    rows = []
    for source, df in scores.items():
        for sid in [s for s in study.scales_for(source) if s in df.columns]:
            inst = study.instrument_of(sid)
            null = ((inst.rmax - inst.rmin + 1) ** 2 - 1) / 12
            if "team_id" not in df.columns:
                continue
            g = df.dropna(subset=[sid, "team_id"]).groupby(["hospital_id", "team_id"])[sid]
            agg = g.agg(["count", "var"]).reset_index()
            for r in agg.itertuples(index=False):
                rwg = float(np.clip(1 - r.var / null, 0, 1)) if r.count > 1 else np.nan
                rows.append((r.hospital_id, r.team_id, sid, r.count, rwg, np.nan))
    return pd.DataFrame(rows, columns=["hospital_id", "team_id", "scale", "n", "rwg_j", "awg"])


def change_standin(
    study: Study, now: pd.DataFrame, before: pd.DataFrame, previous_wave: str
) -> pd.DataFrame:
    """Change in raw hospital means between two waves' hospitals frames (independent samples)."""
    m = now.merge(before, on=["scale", "hospital_id"], suffixes=("", "_prev"))
    se = np.sqrt(m["eb_se"] ** 2 + m["eb_se_prev"] ** 2)
    out = pd.DataFrame(
        {
            "scale": m["scale"],
            "hospital_id": m["hospital_id"],
            "previous_wave": previous_wave,
            "n_previous": m["n_prev"],
            "n": m["n"],
            "change": m["raw_mean"] - m["raw_mean_prev"],
            "se": se,
        }
    )
    out["ci_low"] = out["change"] - Z95 * se
    out["ci_high"] = out["change"] + Z95 * se
    return out


def scales_standin(study: Study, responses: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Cronbach's alpha (pairwise covariances) per scale; other psychometrics left empty."""
    rows = []
    for source, df in responses.items():
        for sid, scale in study.scales_for(source).items():
            X = df[list(scale.items)]
            c = X.cov().to_numpy()
            kk = len(scale.items)
            alpha = kk / (kk - 1) * (1 - np.trace(c) / c.sum()) if kk > 1 else np.nan
            rows.append(
                {
                    "scale": sid,
                    "instrument": scale.instrument,
                    "n_respondents": int(X.notna().any(axis=1).sum()),
                    "n_items": kk,
                    "alpha": alpha,
                }
            )
    return pd.DataFrame(rows)


def items_standin(study: Study, responses: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """n, mean, sd and % missing of every item of every scale (no item-total statistics)."""
    rows = []
    for source, df in responses.items():
        for sid, scale in study.scales_for(source).items():
            for item in scale.items:
                x = df[item]
                rows.append(
                    {
                        "scale": sid,
                        "item": item,
                        "n": int(x.notna().sum()),
                        "mean": x.mean(),
                        "sd": x.std(),
                        "pct_missing": 100 * x.isna().mean(),
                    }
                )
    return pd.DataFrame(rows)


def hypotheses_standin() -> pd.DataFrame:
    """An empty hypotheses summary with the columns ``flaqum.outcomes.summarise`` writes."""
    from flaqum.outcomes import SUMMARY_COLUMNS

    return pd.DataFrame(columns=SUMMARY_COLUMNS)


def write_standins(study: Study, root, waves: list[str]) -> None:
    """Write stand-in results files for every wave under ``root`` where they are missing."""
    from pathlib import Path

    from flaqum.outputs import wave_file
    from flaqum.report.data import read_table
    from flaqum.utils import write_csv

    root = Path(root)
    prev_hosp = None
    prev_wave = None
    for wave in waves:
        surveys = [s for s, spec in study.sources.items() if spec["kind"] == "survey"]
        scores = {s: read_table(root / wave_file("scores", wave, s)) for s in surveys}
        scores = {s: d for s, d in scores.items() if d is not None}
        resp = {s: read_table(root / wave_file("processed", wave, s)) for s in scores}
        ml = multilevel_standin(study, scores)
        files = {
            "hospitals": ml["hospitals"],
            "teams": ml["teams"],
            "variance": ml["variance"],
            "agreement": agreement_standin(study, scores),
            "scales": scales_standin(study, resp),
            "items": items_standin(study, resp),
            "hypotheses": hypotheses_standin(),
        }
        if prev_hosp is not None:
            files["change"] = change_standin(study, ml["hospitals"], prev_hosp, prev_wave)
        files = {root / wave_file(key, wave): df for key, df in files.items()}
        for path, df in files.items():
            if not path.exists():
                write_csv(df, path)
        prev_hosp, prev_wave = ml["hospitals"], wave
