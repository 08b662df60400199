"""The wave's multilevel tables, from scored respondents (``results/<wave>/multilevel/``).

Per survey source and scale: the variance partition (``variance.csv``), each team's and each
hospital's raw and empirical-Bayes means (``teams.csv``, ``hospitals.csv``; rows below the
minimum group size suppressed), the adjusted models (``adjusted.csv``: case mix, and the
cross-level model with the hospital's maturity as a predictor) and, from a second wave on,
each hospital's change since the previous wave (``change.csv``). The fitting itself is
:mod:`flaqum.multilevel`; this module only applies it to a source's scores:

``multilevel_tables``
    variance, teams and hospitals: ``lmer(score ~ 1 + (1 | hospital_id) +
    (1 | hospital_id:team_id), REML = TRUE)`` per scale (``fit_nested``; in a study of one
    organisation ``(1 | team_id)`` only, its intercept the organisation's mean; without teams
    ``(1 | hospital_id)`` only). adjusted: the same model with the source's case-mix covariates
    (``casemix``) and, with config ``multilevel.cross_level_predictor``, the hospital's maturity
    score as well (``cross_level``); r2_hospital and r2_team are the proportional reduction in
    the hospital and team variance against the unadjusted model, 1 - var(adjusted) / var(null).
``change_table``
    ``fit_change``: ``lmer(score ~ 1 + wave2 + (1 | hospital:wave) + (1 | hospital:team:wave))``
    on the two waves' respondents; a hospital below the minimum group size in either wave is
    suppressed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flaqum.config import Study
from flaqum.multilevel import (
    HOSPITAL_COLUMNS,
    TEAM_COLUMNS,
    VARIANCE_COLUMNS,
    Z95,
    fit_change,
    fit_nested,
    hospitals_table,
    teams_table,
    variance_row,
)
from flaqum.utils import get_logger

ADJUSTED_COLUMNS = [
    "scale",
    "model",
    "term",
    "estimate",
    "se",
    "z",
    "p",
    "ci_low",
    "ci_high",
    "n_respondents",
    "n_hospitals",
    "var_hospital",
    "var_team",
    "var_residual",
    "r2_hospital",
    "r2_team",
    "converged",
]
CHANGE_COLUMNS = [
    "scale",
    "hospital_id",
    "previous_wave",
    "n_previous",
    "n",
    "previous_eb_mean",
    "eb_mean",
    "change",
    "se",
    "ci_low",
    "ci_high",
    "suppressed",
]

log = get_logger()


def _has_teams(scores: pd.DataFrame) -> bool:
    return "team_id" in scores.columns and bool(scores["team_id"].notna().any())


def _one_hospital(scores: pd.DataFrame) -> str | None:
    """The organisation's id when every respondent belongs to one (a two-level study)."""
    ids = scores["hospital_id"].dropna().unique()
    return str(ids[0]) if len(ids) == 1 else None


def _fit(scores: pd.DataFrame, scale: str, covariates=()):
    """The nested model of the study's design: respondents in teams in hospitals; in teams of
    one organisation (``y ~ 1 + (1 | team)``, as lmer: no hospital variance, the one
    organisation's mean is the intercept); or in hospitals without teams."""
    team = "team_id" if _has_teams(scores) else None
    only = _one_hospital(scores)
    if team is None:  # no team level in the design: its variance is not estimated
        fit = fit_nested(scores, scale, hospital="hospital_id", team=None, covariates=covariates)
        fit.n_teams, fit.var_team, fit.vpc_team = 0, np.nan, np.nan
        return fit
    if only is None:
        return fit_nested(scores, scale, hospital="hospital_id", team=team, covariates=covariates)
    fit = fit_nested(scores, scale, hospital=None, team=team, covariates=covariates)
    fit.teams["hospital_id"] = only
    n = int(fit.teams["n"].sum())
    raw = float((fit.teams["raw_mean"] * fit.teams["n"]).sum() / n)
    se = fit.intercept_se
    fit.hospitals = pd.DataFrame(
        {
            "hospital_id": [only],
            "n": [n],
            "raw_mean": [raw],
            "eb_mean": [fit.intercept],
            "eb_se": [se],
            "ci_low": [fit.intercept - Z95 * se],
            "ci_high": [fit.intercept + Z95 * se],
            "ranef": [np.nan],
            "ranef_sd": [np.nan],
        }
    )
    fit.n_hospitals, fit.var_hospital, fit.vpc_hospital = 1, np.nan, np.nan
    return fit


def _scales(study: Study, source: str, scores: pd.DataFrame) -> list[str]:
    return [s for s in study.scales_for(source) if s in scores and scores[s].notna().any()]


def multilevel_tables(
    study: Study, source: str, scores: pd.DataFrame, maturity: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """variance, teams, hospitals and adjusted tables of one source (docs/outputs.md)."""
    k = study.min_group_size
    ml = study.config["multilevel"]  # defaults: the config schema
    casemix = [c for c in ml["covariates"].get(source, []) if c in scores.columns]
    predictor = ml["cross_level_predictor"]
    data = scores
    if predictor and maturity is not None and predictor in maturity.columns:
        m = maturity[["hospital_id", predictor]].astype({"hospital_id": "string"})
        data = scores.merge(m.drop_duplicates("hospital_id"), on="hospital_id", how="left")
    else:
        predictor = None
    variance, teams, hospitals, adjusted = [], [], [], []
    for scale in _scales(study, source, scores):
        try:
            fit = _fit(scores, scale)
        except ValueError as e:  # too few groups or rows for the model: say so, go on
            log.warning(f"{source}/{scale}: not fitted: {e}")
            variance.append({"scale": scale, "converged": False, "singular": False})
            continue
        if not fit.converged or fit.singular:
            log.warning(
                f"{source}/{scale}: converged={fit.converged}, singular={fit.singular} "
                f"(var_hospital {fit.var_hospital:.3g}, var_team {fit.var_team:.3g})"
            )
        variance.append(variance_row(fit, scale))
        if not fit.teams.empty:
            teams.append(teams_table(fit, scale, k))
        hospitals.append(hospitals_table(fit, scale, k))
        models = {}
        if casemix:
            models["casemix"] = [f"C({c})" for c in casemix]
        if predictor:
            models["cross_level"] = [*models.get("casemix", []), predictor]
        for name, covs in models.items():
            try:
                adj = _fit(data, scale, covs)
            except ValueError as e:  # e.g. one profession only in a small wave
                log.warning(f"{source}/{scale}: {name} model not fitted: {e}")
                continue
            adjusted.append(_adjusted_rows(scale, name, adj, fit))
        log.info(
            f"{source}/{scale}: n={fit.n_respondents}, vpc hospital {_share(fit.vpc_hospital)}, "
            f"team {_share(fit.vpc_team)}"
        )
    return {
        "variance": pd.DataFrame(variance, columns=VARIANCE_COLUMNS),
        "teams": _concat(teams, TEAM_COLUMNS),
        "hospitals": _concat(hospitals, HOSPITAL_COLUMNS),
        "adjusted": _concat(adjusted, ADJUSTED_COLUMNS),
    }


def _share(v: float) -> str:
    return "not in the design" if np.isnan(v) else f"{v:.3f}"


def _adjusted_rows(scale: str, model: str, adj, null) -> pd.DataFrame:
    """Fixed effects of an adjusted model, with its variance components and the share of the
    null model's hospital and team variance it explains (proportional reduction)."""
    fe = adj.fixed_effects.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r2h = 1 - adj.var_hospital / null.var_hospital if null.var_hospital > 0 else np.nan
        r2t = 1 - adj.var_team / null.var_team if null.var_team > 0 else np.nan
    fe = fe.assign(
        scale=scale,
        model=model,
        n_respondents=adj.n_respondents,
        n_hospitals=adj.n_hospitals,
        var_hospital=adj.var_hospital,
        var_team=adj.var_team,
        var_residual=adj.var_residual,
        r2_hospital=r2h,
        r2_team=r2t,
        converged=bool(adj.converged),
    )
    return fe[ADJUSTED_COLUMNS]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def change_table(
    study: Study,
    source: str,
    current: pd.DataFrame,
    previous: pd.DataFrame,
    wave: str,
    previous_wave: str,
) -> pd.DataFrame:
    """Each hospital's change in every scale of a source since the previous wave.

    ``fit_change`` on the two waves' respondents; hospitals present in both waves only. A
    hospital with fewer than ``min_group_size`` respondents in either wave is suppressed.
    """
    k = study.min_group_size
    both = pd.concat(
        [current.assign(wave=f"1:{wave}"), previous.assign(wave=f"0:{previous_wave}")],
        ignore_index=True,
    )
    team = "team_id" if _has_teams(both) else None
    rows = []
    for scale in _scales(study, source, current):
        if scale not in previous or previous[scale].notna().sum() == 0:
            continue
        ch = fit_change(both, scale, wave_col="wave", hospital="hospital_id", team=team)
        c = ch.changes
        rows.append(
            pd.DataFrame(
                {
                    "scale": scale,
                    "hospital_id": c["hospital_id"].astype(str),
                    "previous_wave": previous_wave,
                    "n_previous": c["n_1"],
                    "n": c["n_2"],
                    "previous_eb_mean": c["eb_mean_1"],
                    "eb_mean": c["eb_mean_2"],
                    "change": c["change"],
                    "se": c["change_se"],
                    "ci_low": c["ci_low"],
                    "ci_high": c["ci_high"],
                }
            )
        )
        log.info(
            f"{source}/{scale}: mean change {ch.wave_effect:+.3f} (se {ch.wave_effect_se:.3f})"
        )
    out = _concat(rows, CHANGE_COLUMNS[:-1])
    out["suppressed"] = (out["n"] < k) | (out["n_previous"] < k)
    masked = ["previous_eb_mean", "eb_mean", "change", "se", "ci_low", "ci_high"]
    out[masked] = out[masked].astype(float)
    out.loc[out["suppressed"], masked] = np.nan
    return out[CHANGE_COLUMNS]
