"""Outcome hypotheses: scores linked to hospital and team outcomes by declared regression models.

A hypothesis is a YAML file (``config/hypotheses/<id>.yaml``, schema
``workflow/schemas/hypothesis.schema.yaml``). This module

1. loads and checks it (:func:`load_hypothesis`),
2. builds the analysis table at the hypothesis' level from one wave's inputs
   (:func:`assemble_data`; :func:`read_wave_inputs` reads them from disk),
3. fits the model and, because a hospital's or team's score is itself an estimate, refits it on
   plausible values of the scores (:func:`fit_hypothesis`), and
4. adds Benjamini-Hochberg q-values across the hypotheses of a wave (:func:`summarise`).

Models (statsmodels):

- ``gaussian``: OLS.
- ``poisson``: GLM Poisson, log link, offset log(exposure) when an exposure is declared.
- ``negative_binomial``: ``statsmodels.discrete.NegativeBinomial`` (NB2, variance mu + alpha mu^2),
  maximum likelihood of the coefficients *and* alpha, offset log(exposure). alpha is reported in
  the diagnostics, not among the estimates.
- ``binomial``: GLM Binomial, logit link, successes = outcome column, trials = exposure column.

Standard errors (``robust: true``, the default): HC1 sandwich at hospital level; cluster-robust by
hospital at team level (teams of one hospital share its context, and a hospital-level predictor
varies only between hospitals). Gaussian models use t reference distributions (df = clusters - 1
when clustered), the others normal.

Two-stage uncertainty. A hospital's or team's empirical-Bayes (EB) mean comes with a standard
error ``eb_se``; with ~30 hospitals and small teams that error is not negligible. Every result
therefore carries two fits:

- ``estimates``: the model on the EB means themselves. EB means are posterior means, so using
  them as predictors is regression calibration: slopes are (approximately) unbiased, but the
  uncertainty of the scores is only carried through the residuals.
- ``plausible_values``: M imputations of each predictor that has an ``eb_se``, each model refitted
  and the fits combined with Rubin's rules (Barnard-Rubin degrees of freedom). By default
  (``condition_on_outcome: true``) each draw comes from the score's posterior N(eb_mean, eb_se^2)
  *updated by the unit's outcome* under the fitted model (sampling-importance-resampling, with
  the model's parameters drawn from their sampling distribution for each imputation), because
  plausible values drawn from N(eb_mean, eb_se^2) alone are independent of the outcome and bias
  every slope towards zero by about the score's reliability (reported per score in
  ``scores_used``). ``condition_on_outcome: false`` gives those unconditional draws, for
  comparison.

The numbers are deterministic: rows are sorted by their ids and every random draw comes from
one generator seeded by the hypothesis (``plausible_values.seed``).
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.discrete.discrete_model import NegativeBinomial
from statsmodels.stats.multitest import multipletests

from flaqum.config import check_schema, read_yaml
from flaqum.errors import ConfigError, InputError

HOSPITAL = "hospital_id"
TEAM = "team_id"
TEAM_KEYS = [HOSPITAL, TEAM]
HOSPITAL_PREFIX = "hospital:"  # a predictor "hospital:psych_safety" at team level: hospital EB mean
COUNT_FAMILIES = ("poisson", "negative_binomial")
EXP_FAMILIES = {"poisson": "rate_ratio", "negative_binomial": "rate_ratio",
                "binomial": "odds_ratio"}
DEFAULT_SEED = 20261122
DEFAULTS = {
    "covariates": [],
    "predictor_scores": "eb",
    "standardize": False,
    "robust": True,
    "waves": "all",
}
PV_DEFAULTS = {"draws": 20, "seed": DEFAULT_SEED, "condition_on_outcome": True}
SIR_CANDIDATES = 400  # candidate draws per unit when conditioning plausible values on the outcome
SIR_SWEEPS = 2

# The files of one wave that the hypotheses read, keyed as in ``wave_inputs``.
WAVE_FILES = {
    "hospitals": "results/{wave}/multilevel/hospitals.csv",
    "teams": "results/{wave}/multilevel/teams.csv",
    "maturity": "results/{wave}/scores/maturity.parquet",
    "outcomes": "data/processed/{wave}/outcomes.parquet",
    "team_outcomes": "data/processed/{wave}/team_outcomes.parquet",
    "organisations": "data/processed/{wave}/organisations.parquet",
}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_hypothesis(path: Path | str) -> dict:
    """Read ``config/hypotheses/<id>.yaml``, check it and fill in the defaults.

    Raises :class:`~flaqum.errors.ConfigError` naming the file, the key and the rule broken.
    """
    path = Path(path)
    data = read_yaml(path)
    check_schema(data, "hypothesis", path)
    if data["id"] != path.stem:
        raise ConfigError(f"{path}: at id: {data['id']!r} must equal the file name {path.stem!r}")
    hyp = copy.deepcopy(data)
    for key, val in DEFAULTS.items():
        hyp.setdefault(key, copy.deepcopy(val))
    hyp["plausible_values"] = {**PV_DEFAULTS, **(hyp.get("plausible_values") or {})}
    out = hyp["outcome"]
    out.setdefault("source", "outcomes" if hyp["level"] == "hospital" else "team_outcomes")
    out.setdefault("scores", "eb")
    if out["source"] == "team_outcomes" and hyp["level"] != "team":
        raise ConfigError(
            f"{path}: at outcome/source: 'team_outcomes' needs level 'team', not "
            f"{hyp['level']!r} (rule: the outcome is measured at the hypothesis' level)"
        )
    if out["source"] == "outcomes" and hyp["level"] != "hospital":
        raise ConfigError(
            f"{path}: at outcome/source: 'outcomes' are hospital outcomes and need level "
            f"'hospital', not {hyp['level']!r} (rule: the outcome is measured at the "
            f"hypothesis' level)"
        )
    if hyp["family"] == "binomial" and not out.get("exposure"):
        raise ConfigError(
            f"{path}: at outcome/exposure: family 'binomial' needs the number of trials as "
            f"outcome.exposure (rule: binomial successes come with their trials)"
        )
    if out["source"] == "scale" and hyp["family"] != "gaussian":
        raise ConfigError(
            f"{path}: at family: a scale outcome ({out['column']!r}) is a mean score; use "
            f"family 'gaussian', not {hyp['family']!r}"
        )
    if out.get("exposure") and hyp["family"] == "gaussian":
        raise ConfigError(
            f"{path}: at outcome/exposure: family 'gaussian' takes no exposure "
            f"(rule: exposure is the offset of a count model or the trials of a binomial one)"
        )
    names = list(hyp["predictors"]) + list(hyp["covariates"])
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{path}: at predictors/covariates: {dup} listed more than once")
    if out["column"] in names:
        raise ConfigError(
            f"{path}: at outcome/column: {out['column']!r} is also a predictor or covariate"
        )
    return hyp


def hypothesis_applies(hyp: dict, wave: str) -> bool:
    """Whether the hypothesis is to be fitted in ``wave`` (its ``waves``: "all" or a list)."""
    waves = hyp.get("waves", "all")
    return waves == "all" or wave in waves


def read_wave_inputs(wave: str, root: Path | str = ".") -> dict[str, pd.DataFrame]:
    """Read the inputs of one wave (ids as strings); a missing optional file is left out."""
    root = Path(root)
    out: dict[str, pd.DataFrame] = {}
    for key, pattern in WAVE_FILES.items():
        path = root / pattern.format(wave=wave)
        if not path.exists():
            continue
        if path.suffix == ".csv":
            out[key] = pd.read_csv(path, dtype={HOSPITAL: str, TEAM: str})
        else:
            out[key] = pd.read_parquet(path)
    return out


# --------------------------------------------------------------------------------------------
# The analysis table
# --------------------------------------------------------------------------------------------


def _ids(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    df = df.copy()
    for k in keys:
        df[k] = df[k].astype("string").astype(object)
    return df


def _scale_table(wave_inputs: dict, table: str, scale: str, score: str) -> pd.DataFrame | None:
    """A scale's rows of hospitals.csv/teams.csv: keys, value, se (None if the scale is absent)."""
    df = wave_inputs.get(table)
    if df is None or "scale" not in df.columns:
        return None
    keys = [HOSPITAL] if table == "hospitals" else TEAM_KEYS
    rows = df[df["scale"].astype(str) == scale]
    if rows.empty:
        return None
    rows = _ids(rows, keys)
    col = "eb_mean" if score == "eb" else "raw_mean"
    out = rows[keys].copy()
    out["value"] = pd.to_numeric(rows[col], errors="coerce").to_numpy()
    if score == "eb" and "eb_se" in rows.columns:
        out["se"] = pd.to_numeric(rows["eb_se"], errors="coerce").to_numpy()
    else:
        out["se"] = np.nan
    if out.duplicated(keys).any():
        dup = out.loc[out.duplicated(keys), keys].iloc[0].tolist()
        raise InputError(table + ".csv", f"scale {scale!r} has more than one row for {dup}",
                         rule="one row per scale x unit")
    return out


def _column_table(wave_inputs: dict, table: str, column: str) -> pd.DataFrame | None:
    df = wave_inputs.get(table)
    if df is None or column not in df.columns:
        return None
    keys = TEAM_KEYS if table == "team_outcomes" else [HOSPITAL]
    out = _ids(df[keys + [column]], keys).rename(columns={column: "value"})
    if out.duplicated(keys).any():
        raise InputError(table, f"more than one row per {'/'.join(keys)}", column=column,
                         rule="one row per unit")
    out["se"] = np.nan
    return out


def _resolve(name: str, level: str, wave_inputs: dict, score: str) -> tuple[pd.DataFrame, dict]:
    """Find a predictor/covariate: its table (keys, value, se) and where it came from."""
    searched = []
    if level == "team" and not name.startswith(HOSPITAL_PREFIX):
        tab = _scale_table(wave_inputs, "teams", name, score)
        if tab is not None:
            return tab, {"table": "teams.csv", "level": "team", "score": f"{score}_mean"}
        tab = _column_table(wave_inputs, "team_outcomes", name)
        if tab is not None:
            return tab, {"table": "team_outcomes", "level": "team", "score": "observed"}
        searched += ["teams.csv (scale)", "team_outcomes"]
    base = name.removeprefix(HOSPITAL_PREFIX)
    tab = _scale_table(wave_inputs, "hospitals", base, score)
    if tab is not None:
        return tab, {"table": "hospitals.csv", "level": "hospital", "score": f"{score}_mean"}
    for table in ("maturity", "organisations", "outcomes"):
        tab = _column_table(wave_inputs, table, base)
        if tab is not None:
            kind = "maturity score" if table == "maturity" else "observed"
            return tab, {"table": table, "level": "hospital", "score": kind}
    searched += ["hospitals.csv (scale)", "maturity", "organisations", "outcomes"]
    avail = sorted(k for k in WAVE_FILES if k in wave_inputs)
    raise ConfigError(
        f"{name!r} not found in {', '.join(searched)} (inputs present: {avail}); a scale id, a "
        f"maturity column (mm_*), or a column of organisations/outcomes is expected"
    )


def _outcome_table(hyp: dict, wave_inputs: dict) -> tuple[pd.DataFrame, dict]:
    out = hyp["outcome"]
    level, source, col = hyp["level"], out["source"], out["column"]
    if source == "scale":
        table = "teams" if level == "team" else "hospitals"
        score = out.get("scores", "eb")
        tab = _scale_table(wave_inputs, table, col, score)
        where = {"table": f"{table}.csv", "level": level, "score": f"{score}_mean"}
        if tab is None and level == "hospital":
            tab = _column_table(wave_inputs, "maturity", col)
            where = {"table": "maturity", "level": "hospital", "score": "maturity score"}
        if tab is None:
            raise ConfigError(f"outcome scale {col!r} not found in {table}.csv")
        return tab, where
    tab = _column_table(wave_inputs, source, col)
    if tab is None:
        present = source in wave_inputs
        raise ConfigError(
            f"outcome column {col!r} not found in {source}"
            + ("" if present else f" ({source} is missing for this wave)")
        )
    return tab, {"table": source, "level": level, "score": "observed"}


def assemble_data(hyp: dict, wave_inputs: dict[str, pd.DataFrame],
                  wave: str | None = None) -> pd.DataFrame:
    """The analysis table of one hypothesis: one row per hospital or per team (hospital_id,
    team_id), sorted by id.

    ``wave_inputs`` holds DataFrames keyed ``hospitals``, ``teams`` (the multilevel CSVs),
    ``maturity``, ``outcomes``, ``team_outcomes``, ``organisations`` (see
    :func:`read_wave_inputs`). Columns: the ids, the outcome (``outcome.column``), its exposure,
    each predictor and covariate under its own name and, for a score with a standard error,
    ``<name>__se``. Units missing a value keep NaN (the fit drops them and counts them).
    Provenance is in ``df.attrs["scores_used"]``.
    """
    level = hyp["level"]
    keys = TEAM_KEYS if level == "team" else [HOSPITAL]
    score = hyp.get("predictor_scores", "eb")
    where: dict[str, dict] = {}
    try:
        y_tab, where_y = _outcome_table(hyp, wave_inputs)
    except ConfigError as exc:
        raise ConfigError(f"hypothesis {hyp['id']}: at outcome/column: {exc}") from None
    ycol = hyp["outcome"]["column"]
    data = y_tab[keys + ["value"]].rename(columns={"value": ycol})
    if y_tab["se"].notna().any():  # kept for the outcome's reliability, not drawn
        data[f"{ycol}__se"] = y_tab["se"].to_numpy()
    where[ycol] = {"role": "outcome", **where_y}
    exposure = hyp["outcome"].get("exposure")
    if exposure:
        etab = _column_table(wave_inputs, hyp["outcome"]["source"], exposure)
        if etab is None and level == "hospital":
            for table in ("outcomes", "organisations"):
                etab = _column_table(wave_inputs, table, exposure)
                if etab is not None:
                    break
        if etab is None:
            raise ConfigError(
                f"hypothesis {hyp['id']}: at outcome/exposure: column {exposure!r} not found "
                f"beside the outcome in {hyp['outcome']['source']}"
            )
        data = data.merge(etab[keys + ["value"]].rename(columns={"value": exposure}),
                          on=keys, how="outer")
    roles = [(p, "predictor") for p in hyp["predictors"]]
    roles += [(c, "covariate") for c in hyp.get("covariates", [])]
    for name, role in roles:
        try:
            tab, src = _resolve(name, level, wave_inputs, score)
        except ConfigError as exc:
            raise ConfigError(f"hypothesis {hyp['id']}: at {role}s: {exc}") from None
        on = TEAM_KEYS if src["level"] == "team" else [HOSPITAL]
        cols = tab[on + ["value", "se"]].rename(columns={"value": name, "se": f"{name}__se"})
        if cols[f"{name}__se"].isna().all():
            cols = cols.drop(columns=f"{name}__se")
        # cross-level: a hospital's value joins every team of that hospital
        data = data.merge(cols, on=on, how="outer" if on == keys else "left")
        where[name] = {"role": role, **src}
    data = data.sort_values(keys, kind="mergesort").reset_index(drop=True)
    data.attrs["scores_used"] = where
    data.attrs["hypothesis"] = hyp["id"]
    if wave is not None:
        data.attrs["wave"] = wave
    return data


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


class _Design:
    """Numeric arrays of one complete-case analysis table."""

    def __init__(self, hyp: dict, data: pd.DataFrame):
        self.family = hyp["family"]
        self.level = hyp["level"]
        ycol = hyp["outcome"]["column"]
        exposure = hyp["outcome"].get("exposure")
        preds, covs = list(hyp["predictors"]), list(hyp.get("covariates", []))
        self.warnings: list[str] = []
        missing = [c for c in [ycol, exposure, *preds, *covs] if c and c not in data.columns]
        if missing:
            raise ConfigError(f"hypothesis {hyp['id']}: columns {missing} not in the data")
        need = [c for c in [ycol, exposure, *preds, *covs] if c]
        complete = data[need].notna().all(axis=1)
        if exposure and self.family in COUNT_FAMILIES + ("binomial",):
            expo = pd.to_numeric(data[exposure], errors="coerce")
            bad = complete & ~(expo > 0)
            if bad.any():
                self.warnings.append(
                    f"{int(bad.sum())} rows with {exposure} <= 0 dropped (an exposure must be "
                    f"positive)"
                )
            complete &= expo > 0
        if self.family == "binomial":
            yv = pd.to_numeric(data[ycol], errors="coerce")
            bad = complete & (yv > pd.to_numeric(data[exposure], errors="coerce"))
            if bad.any():
                self.warnings.append(f"{int(bad.sum())} rows with {ycol} > {exposure} dropped")
            complete &= ~bad
        self.n_dropped = int((~complete).sum())
        df = data.loc[complete].reset_index(drop=True)
        self.df = df
        self.n = len(df)
        self.y = pd.to_numeric(df[ycol], errors="coerce").to_numpy(float)
        self.exposure = (pd.to_numeric(df[exposure]).to_numpy(float) if exposure else None)
        self.offset = (np.log(self.exposure) if exposure and self.family in COUNT_FAMILIES
                       else None)
        cols: list[np.ndarray] = [np.ones(self.n)]
        names = ["Intercept"]
        self.focal: list[str] = []
        self.noisy: dict[str, dict] = {}  # predictor -> eb, se, units, column, centre, scale
        for name in preds + covs:
            is_pred = name in preds
            s = df[name]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                x = s.to_numpy(float)
                centre, scale = 0.0, 1.0
                if is_pred and hyp.get("standardize", False):
                    sd = float(np.std(x, ddof=1)) if self.n > 1 else float("nan")
                    if np.isfinite(sd) and sd > 0:
                        centre, scale = float(np.mean(x)), sd
                    else:
                        self.warnings.append(f"{name} has no variance; not standardised")
                cols.append((x - centre) / scale)
                names.append(name)
                if is_pred:
                    self.focal.append(name)
                se_col = f"{name}__se"
                if is_pred and se_col in df.columns:
                    se = pd.to_numeric(df[se_col], errors="coerce").to_numpy(float)
                    if np.isnan(se).any():
                        self.warnings.append(
                            f"{name}: {int(np.isnan(se).sum())} units without eb_se; their "
                            f"score is taken as known"
                        )
                        se = np.nan_to_num(se, nan=0.0)
                    if (se > 0).any():
                        unit_level = "team" if self.level == "team" and not \
                            self._is_hospital_level(data, name) else "hospital"
                        ukeys = TEAM_KEYS if unit_level == "team" else [HOSPITAL]
                        units = pd.factorize(
                            df[ukeys].astype(str).agg("\x1f".join, axis=1), sort=True)[0]
                        self.noisy[name] = {"eb": x, "se": se, "units": units,
                                            "col": len(cols) - 1, "centre": centre,
                                            "scale": scale}
            else:
                levels = sorted(s.astype(str).unique())
                for lev in levels[1:]:
                    cols.append((s.astype(str) == lev).to_numpy(float))
                    term = f"{name}[{lev}]"
                    names.append(term)
                    if is_pred:
                        self.focal.append(term)
                if is_pred and len(levels) > 1:
                    self.warnings.append(f"{name} is categorical: reference level {levels[0]!r}")
        self.X = np.column_stack(cols) if cols else np.empty((self.n, 0))
        self.names = names
        self.groups = (pd.factorize(df[HOSPITAL].astype(str), sort=True)[0]
                       if self.level == "team" else None)
        self.n_clusters = int(len(np.unique(self.groups))) if self.groups is not None else None

    @staticmethod
    def _is_hospital_level(data: pd.DataFrame, name: str) -> bool:
        src = data.attrs.get("scores_used", {}).get(name, {})
        if src:
            return src.get("level") == "hospital"
        # without provenance: hospital level if constant within every hospital
        return bool((data.groupby(HOSPITAL)[name].nunique(dropna=True) <= 1).all())


def _cov_spec(hyp: dict, design: _Design) -> tuple[str, dict, str, list[str]]:
    """statsmodels cov_type, its kwargs, a label for the output, and warnings."""
    notes: list[str] = []
    if not hyp.get("robust", True):
        return "nonrobust", {}, "model-based", notes
    if design.level == "team":
        if design.n_clusters is not None and design.n_clusters >= 2:
            if design.n_clusters < 20:
                notes.append(
                    f"only {design.n_clusters} hospitals as clusters: cluster-robust SEs are "
                    f"unreliable with fewer than ~20 clusters"
                )
            return ("cluster", {"groups": design.groups},
                    "cluster-robust by hospital_id (CR1)", notes)
        notes.append("fewer than 2 hospitals: HC1 instead of cluster-robust SEs")
    return "HC1", {}, "HC1 sandwich", notes


def _fit_once(hyp: dict, design: _Design, X: np.ndarray, y: np.ndarray,
              cov: tuple[str, dict]) -> dict:
    """One fit; never raises. Returns params, cov, df, and diagnostics."""
    family = design.family
    cov_type, cov_kwds = cov
    n, k = X.shape
    out: dict[str, Any] = {"params": np.full(k, np.nan), "cov": np.full((k, k), np.nan),
                           "df": np.inf, "converged": False, "aic": np.nan, "deviance": np.nan,
                           "dispersion": np.nan, "alpha": np.nan, "warnings": [], "scale": np.nan}
    n_par = k + (1 if family == "negative_binomial" else 0)
    if n <= n_par:
        out["warnings"].append(
            f"too few rows to fit: {n} complete rows for {n_par} parameters"
        )
        return out
    rank = np.linalg.matrix_rank(X)
    if rank < k:
        out["warnings"].append(
            f"the design is rank deficient ({rank} of {k} columns independent): a predictor "
            f"or covariate is constant or collinear with others"
        )
        return out
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with np.errstate(all="ignore"):
                out.update(_fit_family(family, design, X, y, cov_type, cov_kwds))
    except Exception as exc:  # a degenerate model must not stop the pipeline
        out["warnings"].append(f"model fit failed: {type(exc).__name__}: {exc}")
        out["converged"] = False
    msgs = []
    for w in caught:
        msg = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0]}"
        if msg not in msgs:
            msgs.append(msg)
        if "Separation" in w.category.__name__:
            out["converged"] = False
    out["warnings"] += msgs
    params, covm = np.asarray(out["params"], float), np.asarray(out["cov"], float)
    se = np.sqrt(np.diag(covm)) if covm.ndim == 2 else np.full(k, np.nan)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(se))):
        if out["converged"]:
            out["warnings"].append("non-finite estimates or standard errors")
        out["converged"] = False
    return out


def _fit_family(family: str, design: _Design, X, y, cov_type, cov_kwds) -> dict:
    n, k = X.shape
    fit_kw = {"cov_type": cov_type}
    if cov_kwds:
        fit_kw["cov_kwds"] = cov_kwds
    if family == "gaussian":
        res = sm.OLS(y, X).fit(use_t=True, **fit_kw)
        df = float(res.df_resid)
        if cov_type == "cluster":
            df = float(design.n_clusters - 1)
        return {"params": res.params, "cov": res.cov_params(), "df": df, "converged": True,
                "aic": res.aic, "deviance": res.ssr, "dispersion": res.scale,
                "scale": res.scale}
    if family == "poisson" or family == "binomial":
        if family == "poisson":
            model = sm.GLM(y, X, family=sm.families.Poisson(), offset=design.offset)
        else:
            endog = np.column_stack([y, design.exposure - y])
            model = sm.GLM(endog, X, family=sm.families.Binomial())
        res = model.fit(maxiter=100, **fit_kw)
        converged = bool(getattr(res, "converged", True))
        return {"params": res.params, "cov": res.cov_params(), "df": np.inf,
                "converged": converged, "aic": res.aic, "deviance": res.deviance,
                "dispersion": res.pearson_chi2 / res.df_resid if res.df_resid > 0 else np.nan,
                "scale": 1.0}
    if family == "negative_binomial":
        start = None
        try:
            pois = sm.GLM(y, X, family=sm.families.Poisson(), offset=design.offset).fit()
            if np.all(np.isfinite(pois.params)):
                start = np.append(pois.params, 0.1)
        except Exception:  # a start value is only a help
            start = None
        model = NegativeBinomial(y, X, loglike_method="nb2", offset=design.offset)
        res = None
        for method in ("newton", "bfgs", "nm"):
            res = model.fit(start_params=start, method=method, maxiter=500 if method != "nm"
                            else 5000, disp=0, **fit_kw)
            if res.mle_retvals.get("converged", False):
                break
        converged = bool(res.mle_retvals.get("converged", False))
        params = np.asarray(res.params, float)
        covm = np.asarray(res.cov_params(), float)
        alpha = float(params[-1])
        beta = params[:-1]
        eta = X @ beta + (design.offset if design.offset is not None else 0.0)
        mu = np.exp(eta)
        if alpha <= 0:
            converged = False
        with np.errstate(all="ignore"):
            inv = 1.0 / alpha
            term = np.where(y > 0, y * np.log(y / mu), 0.0)
            dev = 2 * np.sum(term - (y + inv) * np.log((1 + alpha * y) / (1 + alpha * mu)))
            pearson = np.sum((y - mu) ** 2 / (mu + alpha * mu**2)) / max(n - k - 1, 1)
        return {"params": beta, "cov": covm[:-1, :-1], "df": np.inf, "converged": converged,
                "aic": res.aic, "deviance": dev, "dispersion": pearson, "alpha": alpha,
                "scale": 1.0}
    raise ConfigError(f"unknown family {family!r}")


def _estimates(names, params, se, df, family, focal) -> list[dict]:
    rows = []
    for i, term in enumerate(names):
        b, s = float(params[i]), float(se[i])
        if np.isfinite(b) and np.isfinite(s) and s > 0:
            d = df[i] if np.ndim(df) else df
            if np.isfinite(d):
                crit = stats.t.ppf(0.975, d)
                p = 2 * stats.t.sf(abs(b / s), d)
            else:
                crit = stats.norm.ppf(0.975)
                p = 2 * stats.norm.sf(abs(b / s))
            lo, hi = b - crit * s, b + crit * s
        else:
            lo = hi = p = np.nan
        row = {"term": term, "focal": term in focal, "estimate": b, "se": s, "ci_low": lo,
               "ci_high": hi, "p": p}
        if family in EXP_FAMILIES:
            row["exp_estimate"] = math.exp(b) if np.isfinite(b) and b < 700 else np.nan
            row["exp_ci_low"] = math.exp(lo) if np.isfinite(lo) and lo < 700 else np.nan
            row["exp_ci_high"] = math.exp(hi) if np.isfinite(hi) and hi < 700 else np.nan
        rows.append(row)
    return rows


def _loglik(family: str, eta: np.ndarray, y: np.ndarray, design: _Design, fit: dict,
            sigma2: float) -> np.ndarray:
    """Per-observation log-likelihood up to terms free of eta (eta includes any offset)."""
    yy = y[:, None] if eta.ndim == 2 else y
    if family == "gaussian":
        return -((yy - eta) ** 2) / (2 * sigma2)
    if family == "poisson":
        return yy * eta - np.exp(np.minimum(eta, 700))
    if family == "negative_binomial":
        a = max(float(fit["alpha"]), 1e-8)
        mu = np.exp(np.minimum(eta, 700))
        return yy * eta - (yy + 1 / a) * np.log1p(a * mu)
    if family == "binomial":
        nn = design.exposure[:, None] if eta.ndim == 2 else design.exposure
        return yy * eta - nn * np.logaddexp(0, eta)
    raise ConfigError(f"unknown family {family!r}")


def _draw_plausible(design: _Design, plain: dict, rng: np.random.Generator,
                    condition: bool) -> np.ndarray:
    """One imputed design matrix: every noisy predictor replaced by a plausible value."""
    X = design.X.copy()
    if not condition:
        for info in design.noisy.values():
            n_units = int(info["units"].max()) + 1
            eb_u, se_u = _per_unit(info, n_units)
            draw = eb_u + se_u * rng.standard_normal(n_units)
            X[:, info["col"]] = (draw[info["units"]] - info["centre"]) / info["scale"]
        return X
    # parameters drawn from their sampling distribution: a proper imputation
    beta = np.asarray(plain["params"], float)
    covm = np.asarray(plain["cov"], float)
    try:
        beta = rng.multivariate_normal(beta, covm, method="cholesky")
    except (np.linalg.LinAlgError, ValueError):
        beta = np.asarray(plain["params"], float)
    sigma2 = 1.0
    if design.family == "gaussian":
        # the residual variance of the EB fit contains b^2 var(score | data); remove it
        s2 = float(plain["scale"])
        extra = sum(beta[i["col"]] ** 2 * np.mean((i["se"] / i["scale"]) ** 2)
                    for i in design.noisy.values())
        sigma2 = max(s2 - extra, 0.25 * s2)
    offset = design.offset if design.offset is not None else 0.0
    eta = X @ beta + offset
    for _ in range(SIR_SWEEPS):
        for info in design.noisy.values():
            j, units = info["col"], info["units"]
            n_units = int(units.max()) + 1
            eb_u, se_u = _per_unit(info, n_units)
            cand = eb_u[:, None] + se_u[:, None] * rng.standard_normal((n_units, SIR_CANDIDATES))
            cand_std = (cand - info["centre"]) / info["scale"]
            eta_minus = eta - beta[j] * X[:, j]
            eta_k = eta_minus[:, None] + beta[j] * cand_std[units]
            ll = _loglik(design.family, eta_k, design.y, design, plain, sigma2)
            ll_u = np.zeros((n_units, SIR_CANDIDATES))
            np.add.at(ll_u, units, ll)
            ll_u -= ll_u.max(axis=1, keepdims=True)
            w = np.exp(ll_u)
            w /= w.sum(axis=1, keepdims=True)
            u = rng.random(n_units)
            pick = np.minimum((w.cumsum(axis=1) < u[:, None]).sum(axis=1), SIR_CANDIDATES - 1)
            chosen = cand_std[np.arange(n_units), pick]
            X[:, j] = chosen[units]
            eta = eta_minus + beta[j] * X[:, j]
    return X


def _per_unit(info: dict, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    eb_u = np.zeros(n_units)
    se_u = np.zeros(n_units)
    eb_u[info["units"]] = info["eb"]
    se_u[info["units"]] = info["se"]
    return eb_u, se_u


def _rubin(fits: list[dict], k: int) -> tuple[np.ndarray, ...]:
    """Rubin's rules: pooled estimate, total SE, Barnard-Rubin df, fraction of missing info,
    and the within-imputation SE sqrt(mean variance)."""
    Q = np.array([f["params"] for f in fits], float)
    U = np.array([np.diag(f["cov"]) for f in fits], float)
    m = len(fits)
    qbar = Q.mean(axis=0)
    ubar = U.mean(axis=0)
    b = Q.var(axis=0, ddof=1) if m > 1 else np.zeros(k)
    t = ubar + (1 + 1 / m) * b
    df_com = float(fits[0]["df"])
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (1 + 1 / m) * b / ubar
        lam = np.where(t > 0, (1 + 1 / m) * b / t, 0.0)
        df_old = np.where(b > 0, (m - 1) * (1 + 1 / r) ** 2, np.inf)
        if np.isfinite(df_com):
            df_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
            df = 1 / (1 / df_old + 1 / df_obs)
        else:
            df = df_old
    return qbar, np.sqrt(t), df, lam, np.sqrt(ubar)


def fit_hypothesis(hyp: dict, data: pd.DataFrame, wave: str | None = None) -> dict:
    """Fit one hypothesis on its analysis table (from :func:`assemble_data`).

    Returns a JSON-serialisable dict (NaN as None); see the module docstring and
    :func:`result_to_json`. Never raises on a degenerate model: ``diagnostics.converged`` is
    false and ``diagnostics.warnings`` says why.
    """
    wave = wave if wave is not None else data.attrs.get("wave")
    design = _Design(hyp, data)
    cov_type, cov_kwds, cov_label, cov_notes = _cov_spec(hyp, design)
    plain = _fit_once(hyp, design, design.X, design.y, (cov_type, cov_kwds))
    se = np.sqrt(np.diag(plain["cov"]))
    estimates = _estimates(design.names, plain["params"], se, plain["df"], design.family,
                           design.focal)
    diag_warnings = list(design.warnings) + cov_notes + list(plain["warnings"])

    pv_cfg = {**PV_DEFAULTS, **(hyp.get("plausible_values") or {})}
    scores_used = _scores_used(hyp, data, design)
    pv: dict[str, Any] | None = None
    if design.noisy and int(pv_cfg["draws"]) > 0 and plain["converged"]:
        m = int(pv_cfg["draws"])
        condition = bool(pv_cfg["condition_on_outcome"])
        rng = np.random.default_rng(int(pv_cfg["seed"]))
        fits = []
        for _ in range(m):
            Xm = _draw_plausible(design, plain, rng, condition)
            fits.append(_fit_once(hyp, design, Xm, design.y, (cov_type, cov_kwds)))
        ok = [f for f in fits if f["converged"]]
        pv_warn = []
        if len(ok) < m:
            pv_warn.append(f"{m - len(ok)} of {m} plausible-value fits did not converge and "
                           f"were left out")
        if len(ok) >= 2:
            qbar, tse, df, lam, wse = _rubin(ok, design.X.shape[1])
            pv_est = _estimates(design.names, qbar, tse, df, design.family, design.focal)
            for row, d, f, u in zip(pv_est, df, lam, wse, strict=True):
                row["se_within"] = u
                row["df"] = d
                row["fraction_missing_info"] = f
        else:
            pv_est = []
            pv_warn.append("fewer than 2 plausible-value fits converged: no pooled estimates")
        pv = {
            "method": ("posterior draws conditioned on the outcome (SIR)" if condition
                       else "unconditional draws from N(eb_mean, eb_se^2)"),
            "draws": m,
            "draws_converged": len(ok),
            "seed": int(pv_cfg["seed"]),
            "condition_on_outcome": condition,
            "scores_drawn": sorted(design.noisy),
            "combined_by": "Rubin's rules, Barnard-Rubin df",
            "estimates": pv_est,
            "warnings": pv_warn,
        }
    else:
        if not design.noisy:
            why = ("no predictor has an eb_se (raw or observed scores, or maturity scores): "
                   "no plausible values drawn")
        elif int(pv_cfg["draws"]) <= 0:
            why = "plausible_values.draws is 0: no plausible values drawn"
        else:
            why = "the plain fit did not converge: no plausible values drawn"
        diag_warnings.append(why)
    if hyp["outcome"].get("source") == "scale" and hyp["outcome"].get("scores", "eb") == "eb":
        diag_warnings.append(
            f"the outcome {hyp['outcome']['column']} is a shrunken EB mean: slopes on "
            f"predictors that the shrinkage model did not include are attenuated, roughly by "
            f"the outcome's reliability (scores_used); outcome.scores: raw avoids this"
        )

    result = {
        "id": hyp["id"],
        "description": hyp.get("description", ""),
        "wave": wave,
        "level": hyp["level"],
        "family": hyp["family"],
        "outcome": {k: hyp["outcome"].get(k) for k in ("source", "column", "exposure",
                                                         "scores")},
        "predictors": list(hyp["predictors"]),
        "covariates": list(hyp.get("covariates", [])),
        "standardize": bool(hyp.get("standardize", False)),
        "effect_scale": EXP_FAMILIES.get(hyp["family"], "difference"),
        "se_type": cov_label,
        "scores_used": scores_used,
        "n": design.n,
        "n_clusters": design.n_clusters,
        "estimates": estimates,
        "plausible_values": pv,
        "diagnostics": {
            "converged": bool(plain["converged"]),
            "aic": plain["aic"],
            "deviance": plain["deviance"],
            "pearson_chi2_over_df": plain["dispersion"],
            "alpha": plain["alpha"] if design.family == "negative_binomial" else None,
            "n_dropped_missing": design.n_dropped,
            "warnings": diag_warnings,
        },
    }
    return _clean(result)


def _scores_used(hyp: dict, data: pd.DataFrame, design: _Design) -> dict:
    """Where each variable came from, which score, and the reliability of noisy scores."""
    out = {}
    prov = data.attrs.get("scores_used", {})
    names = [hyp["outcome"]["column"], *hyp["predictors"], *hyp.get("covariates", [])]
    for name in names:
        entry = dict(prov.get(name, {}))
        se_col = f"{name}__se"
        if se_col in design.df.columns and name in design.df.columns:
            x = pd.to_numeric(design.df[name], errors="coerce").to_numpy(float)
            se = np.nan_to_num(pd.to_numeric(design.df[se_col]).to_numpy(float))
            var_x = float(np.var(x, ddof=1)) if len(x) > 1 else np.nan
            mse = float(np.mean(se**2)) if len(se) else np.nan
            entry["mean_se"] = float(np.sqrt(mse)) if np.isfinite(mse) else None
            # share of a score's variance that is signal: var(eb) / (var(eb) + mean eb_se^2)
            entry["reliability"] = (var_x / (var_x + mse) if np.isfinite(var_x) and
                                    var_x + mse > 0 else None)
        entry["plausible_values"] = name in design.noisy
        out[name] = entry
    return out


def _clean(obj: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def result_to_json(result: dict) -> str:
    """The result as strict JSON (no NaN)."""
    return json.dumps(_clean(result), indent=2, allow_nan=False)


def run_hypothesis(path_or_hyp: Path | str | dict, wave_inputs: dict[str, pd.DataFrame],
                   wave: str | None = None) -> dict:
    """Load (if a path), assemble and fit one hypothesis."""
    hyp = path_or_hyp if isinstance(path_or_hyp, dict) else load_hypothesis(path_or_hyp)
    return fit_hypothesis(hyp, assemble_data(hyp, wave_inputs, wave), wave)


# --------------------------------------------------------------------------------------------
# Multiple testing across hypotheses
# --------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = ["wave", "hypothesis", "fit", "term", "estimate", "se", "ci_low", "ci_high",
                   "p", "q", "n", "family", "level", "scores"]


def summarise(results: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """Benjamini-Hochberg q-values over the focal predictor terms of all hypotheses of a wave.

    The plain fits and the plausible-values fits are two separate families of tests, each
    adjusted on its own (per wave). Every estimate gets ``q`` (None for intercepts, covariates
    and terms without a p-value). Returns the summary table (one row per hypothesis x focal
    term x fit) and deep copies of the results with ``q`` filled in.
    """
    results = [copy.deepcopy(r) for r in results]
    for fit in ("plain", "plausible_values"):
        by_wave: dict[Any, list[dict]] = {}
        for r in results:
            for est in _fit_estimates(r, fit):
                est["q"] = None
                if est.get("focal") and est.get("p") is not None and np.isfinite(est["p"]):
                    by_wave.setdefault(r.get("wave"), []).append(est)
        for ests in by_wave.values():
            p = np.array([e["p"] for e in ests], float)
            q = multipletests(p, alpha=0.05, method="fdr_bh")[1]
            for e, qv in zip(ests, q, strict=True):
                e["q"] = float(qv)
    rows = []
    for r in results:
        for fit in ("plain", "plausible_values"):
            for est in _fit_estimates(r, fit):
                if not est.get("focal"):
                    continue
                rows.append({
                    "wave": r.get("wave"), "hypothesis": r["id"], "fit": fit,
                    "term": est["term"], "estimate": est["estimate"], "se": est["se"],
                    "ci_low": est["ci_low"], "ci_high": est["ci_high"], "p": est["p"],
                    "q": est["q"], "n": r["n"], "family": r["family"], "level": r["level"],
                    "scores": _scores_label(r, fit),
                })
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return table, [_clean(r) for r in results]


def _fit_estimates(result: dict, fit: str) -> list[dict]:
    if fit == "plain":
        return result.get("estimates") or []
    pv = result.get("plausible_values") or {}
    return pv.get("estimates") or []


def _scores_label(result: dict, fit: str) -> str:
    parts = []
    for name in result.get("predictors", []):
        used = (result.get("scores_used") or {}).get(name, {})
        score = used.get("score", "?")
        if fit == "plausible_values" and used.get("plausible_values"):
            score = "plausible values"
        parts.append(f"{name}: {score}")
    return "; ".join(parts)
