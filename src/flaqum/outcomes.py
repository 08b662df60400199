"""Outcome hypotheses fitted: scores linked to hospital and team outcomes by regression models.

The specification of a hypothesis, its checks and the analysis table it is fitted on are
:mod:`flaqum.hypotheses` (:class:`~flaqum.hypotheses.Hypothesis`,
:func:`~flaqum.hypotheses.load_hypothesis`, :func:`~flaqum.hypotheses.check_hypotheses`,
:func:`~flaqum.hypotheses.assemble_data`, :class:`~flaqum.hypotheses.Design`). This module

1. fits the model and, because a hospital's or team's score is itself an estimate, refits it on
   plausible values of the scores (:func:`fit_hypothesis`; :func:`run_hypothesis` assembles
   and fits one hypothesis on a wave's inputs, or gives :func:`not_applicable_result`),
2. writes a result as strict JSON (:func:`result_to_json`), and
3. adds Benjamini-Hochberg q-values across the hypotheses of a wave (:func:`summarise`).

Models (statsmodels; the R call each matches):

- ``gaussian``: OLS, ``lm(y ~ x)``.
- ``poisson``: GLM Poisson, log link, offset log(exposure) when an exposure is declared,
  ``glm(y ~ x + offset(log(exposure)), family = poisson)``.
- ``negative_binomial``: ``statsmodels.discrete.NegativeBinomial`` (NB2, variance mu + alpha mu^2),
  maximum likelihood of the coefficients *and* alpha, offset log(exposure), as
  ``MASS::glm.nb`` with theta = 1 / alpha. alpha is reported in the diagnostics, not among the
  estimates.
- ``binomial``: GLM Binomial, logit link, successes = outcome column, trials = exposure column,
  ``glm(cbind(y, n - y) ~ x, family = binomial)``.

Standard errors (``robust: true``, the default; issue 11, :mod:`flaqum.smallsample`): with
~30 hospitals, small-sample corrections with t references for every family. At hospital level
``HOSPITAL_HC`` = HC3 (``sandwich::vcovHC(fit, type = "HC3")``), df = n - p; at team level
clustered by hospital, because teams of one hospital share its context and a hospital-level
predictor varies only between hospitals: CR2 with Satterthwaite df per term
(``clubSandwich::coef_test(fit, vcov = "CR2", cluster = hospital_id, test =
"Satterthwaite")``). GLM sandwiches use the IRLS working residuals and weights; the negative
binomial's those of the GLM with alpha fixed at its ML value (as ``glm.nb``). Poisson
overdispersion (Pearson chi2 > df at 5%) is reported in ``diagnostics.overdispersion`` and
handled: the sandwich does not assume Var = mu; ``robust: false`` scales the model-based
covariance by chi2 / df (quasi-Poisson); the plausible-value draws use the quasi-likelihood.
Each result's ``correction`` names the SE, the df, the reference and why. ``INFERENCE =
"asymptotic"`` restores HC1 / CR1 with normal references for count models (for comparisons).

Predictors measured with error: ``measurement_error`` (:func:`_measurement_error`) says which
focal predictors are estimated scores and, with ``measurement_error: reliability``, adds the
reliability-corrected slope on the raw hospital means.

Two-stage uncertainty. A hospital's or team's empirical-Bayes (EB) mean comes with a standard
error ``eb_se``; with ~30 hospitals and small teams that error is not negligible. Every result
therefore carries two fits:

- ``estimates``: the model on the EB means themselves. EB means are posterior means, so using
  them as predictors is regression calibration: slopes are (approximately) unbiased, but the
  uncertainty of the scores is only carried through the residuals.
- ``plausible_values``: M imputations of each predictor that has an ``eb_se``, each model refitted
  and the fits combined with Rubin's rules (Barnard-Rubin degrees of freedom, as
  ``mice::pool``). By default
  (``condition_on_outcome: true``) each draw comes from the score's posterior N(eb_mean, eb_se^2)
  *updated by the unit's outcome* under the fitted model (sampling-importance-resampling, with
  the model's parameters drawn from their sampling distribution for each imputation), because
  plausible values drawn from N(eb_mean, eb_se^2) alone are independent of the outcome and bias
  every slope towards zero by about the score's reliability (reported per score in
  ``scores_used``). ``condition_on_outcome: false`` gives those unconditional draws, for
  comparison.

An outcome that is itself a score is best its raw (observed) mean (``outcome.scores: raw``):
an EB outcome is shrunk by a model without the predictors, which attenuates their slopes (the
result then carries a warning); noise in an outcome costs precision, not bias.

Status and counts of a result:

- ``status``: ``fitted``; ``not_fitted`` with ``reason`` in words (values no model can take,
  ``Design.problems``: text where a number is needed, a non-finite number, a number beyond
  ``LARGE`` = 1e150 in size or a negative count, each named with its column and unit; too
  few complete rows; an outcome without variation or without events; a rank-deficient design;
  a numerical failure of the fit, ``NUMERICAL_ERRORS``; perfect separation; no convergence;
  no standard error for a focal term); or ``not_applicable`` with ``reason``
  (:func:`not_applicable_result`: the hypothesis is not declared for the wave, or its
  outcome's optional source was not delivered). A result that is not fitted has no numbers
  among its estimates. Any other exception is a programming error and propagates.
- ``n``: the rows (hospitals or teams) the estimates rest on, 0 when not fitted;
  ``diagnostics.n_rows``: rows of the analysis table; ``n_complete``: rows with every value
  present; ``n_dropped_missing`` = n_rows - n_complete.
- ``q``: Benjamini-Hochberg, ``p.adjust(p, method = "BH")``, per wave and per fit (plain,
  plausible values) over the focal terms that have a p-value; ``n_tested`` (summary.csv,
  ``multiple_testing`` in the JSON) is how many.

The numbers are deterministic: rows are sorted by their ids and every random draw comes from
one generator seeded by the hypothesis (``plausible_values.seed``). Exponentiated estimates
beyond ``EXP_MAX`` (700: exp(709) is the largest double) are left empty, not infinite.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.discrete.discrete_model import NegativeBinomial
from statsmodels.stats.multitest import multipletests
from statsmodels.tools.sm_exceptions import MissingDataError, PerfectSeparationError

from flaqum import smallsample
from flaqum.errors import ConfigError
from flaqum.hypotheses import (
    COUNT_FAMILIES,
    HOSPITAL,
    Design,
    Hypothesis,
    NotInWave,
    as_hypothesis,
    assemble_data,
    load_hypothesis,
)

EXP_FAMILIES = {
    "poisson": "rate_ratio",
    "negative_binomial": "rate_ratio",
    "binomial": "odds_ratio",
}
SIR_CANDIDATES = 400  # candidate draws per unit when conditioning plausible values on the outcome
SIR_SWEEPS = 2
STATUS_FITTED, STATUS_NOT_FITTED, STATUS_NOT_APPLICABLE = "fitted", "not_fitted", "not_applicable"
#: What statsmodels, scipy and numpy raise when a model cannot be fitted (as opposed to a bug):
#: singular matrices, perfect separation, missing or non-finite data (statsmodels and the
#: optimisers raise ValueError for NaN or inf in the data, weights or start values), floating
#: point overflow. Not ArithmeticError as a whole: a ZeroDivisionError is Python arithmetic
#: on Python numbers (numpy warns instead), so ours, a programming error, and it propagates.
NUMERICAL_ERRORS = (
    np.linalg.LinAlgError,
    PerfectSeparationError,
    MissingDataError,
    ValueError,
    FloatingPointError,
    OverflowError,
)
#: "small_sample" (issue 11): HOSPITAL_HC at hospital level, CR2 with Satterthwaite df at team
#: level, t references for every family. "asymptotic": HC1 / CR1 with normal references for
#: count and binomial models (the inference before issue 11), kept so that bench/coverage.py
#: and tests/test_coverage.py can show the difference.
INFERENCE = "small_sample"
#: The hospital-level sandwich; HC3 on the coverage evidence (bench/results/2026-12-01-coverage.md).
HOSPITAL_HC = "HC3"
#: IRLS tolerance: the sandwich is evaluated at the converged fit (R: glm.control(epsilon=1e-14)).
GLM_TOL = 1e-12
#: Poisson overdispersion is reported when Pearson chi2 > df at this one-sided level.
OVERDISPERSION_P = 0.05
#: The largest argument of exp() taken: exp(709.8) is the largest double. Exponentiated
#: estimates beyond it are left empty; a linear predictor is capped at it in the likelihood of
#: the plausible-value draws.
EXP_MAX = 700


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _unfittable(design: Design) -> str | None:
    """Why the data of a hypothesis cannot give a model (None when they can): bad values,
    too few complete rows, an outcome without variation, or a rank-deficient design."""
    if design.problems:
        return "the data cannot enter a model: " + "; ".join(design.problems)
    n, k = design.X.shape
    n_par = k + (1 if design.family == "negative_binomial" else 0)
    unit = "teams" if design.level == "team" else "hospitals"
    if n <= n_par:
        msg = f"too few rows to fit: {n} complete rows for {n_par} parameters"
        if design.missing:
            msg += (
                f" (of {design.n_rows} {unit}, missing: "
                + ", ".join(f"{c} in {m}" for c, m in design.missing.items())
                + ")"
            )
        return msg
    y, ycol = design.y, design.ycol
    if design.family == "gaussian" and np.ptp(y) == 0:
        return (
            f"the outcome {ycol} has the same value ({y[0]:g}) in all {n} {unit}: there "
            f"is no variation to relate to the predictors"
        )
    if design.family in COUNT_FAMILIES and not (y > 0).any():
        return (
            f"the outcome {ycol} is 0 in all {n} {unit}: a count model has no events to "
            f"fit (its intercept would be minus infinity)"
        )
    if design.family == "binomial":
        if not (y > 0).any():
            return f"the outcome {ycol} is 0 in all {n} {unit}: no successes to fit"
        if (y >= design.exposure).all():
            return f"the outcome {ycol} equals its trials in all {n} {unit}: no failures to fit"
    try:
        rank = np.linalg.matrix_rank(design.X)
    except np.linalg.LinAlgError as exc:
        return f"the design matrix cannot be decomposed ({exc})"
    if rank < k:
        const = [design.names[j] for j in range(1, k) if np.ptp(design.X[:, j]) == 0]
        what = (
            f"{', '.join(const)} {'is' if len(const) == 1 else 'are'} constant in the "
            f"{n} complete rows"
            if const
            else "a predictor or covariate is collinear with others"
        )
        return f"the design is rank deficient ({rank} of {k} columns independent): {what}"
    return None


def _cov_spec(hyp: Hypothesis, design: Design) -> dict:
    """How the standard errors and intervals of a hypothesis are computed (:data:`INFERENCE`).

    Returns ``kind`` (HC3, HC2, HC1, CR2, CR1 or model), ``label`` (the result's ``se_type``),
    ``clustered``, ``df_method``, ``reference`` ("t" or, for the asymptotic inference of a
    count or binomial model, "normal"), ``why`` (a plain sentence for the JSON) and ``notes``
    (warnings)."""
    notes: list[str] = []
    small = INFERENCE == "small_sample"
    glm = design.family != "gaussian"
    clustered = design.level == "team" and design.n_clusters is not None and design.n_clusters >= 2
    unit = "hospital" if design.level == "hospital" else "team"
    if not hyp.robust:
        return {
            "kind": "model",
            "label": "model-based",
            "clustered": False,
            "df_method": "residual (n - p)",
            "reference": "t" if not glm or small else "normal",
            "why": "robust: false asks for the model's own standard errors, which assume "
            "the model's variance is right (and, at team level, independent teams)",
            "notes": notes,
        }
    if clustered:
        if small:
            if design.n_clusters < 10:
                notes.append(
                    f"only {design.n_clusters} hospitals as clusters: even CR2 with "
                    f"Satterthwaite df is approximate with fewer than ~10 clusters"
                )
            return {
                "kind": "CR2",
                "clustered": True,
                "label": "cluster-robust by hospital_id (CR2, Bell-McCaffrey)",
                "df_method": "Satterthwaite (Bell-McCaffrey), per term",
                "reference": "t",
                "why": f"teams of one hospital share its context, so the {design.n} teams "
                f"are {design.n_clusters} independent clusters; with so few "
                f"clusters the CR1 sandwich is too small and a normal reference "
                f"too narrow, so CR2 with Satterthwaite df (as clubSandwich; Bell & "
                f"McCaffrey 2002, Pustejovsky & Tipton 2018)",
                "notes": notes,
            }
        if design.n_clusters < 20:
            notes.append(
                f"only {design.n_clusters} hospitals as clusters: cluster-robust SEs are "
                f"unreliable with fewer than ~20 clusters"
            )
        return {
            "kind": "CR1",
            "clustered": True,
            "label": "cluster-robust by hospital_id (CR1)",
            "df_method": "clusters - 1" if not glm else "none (normal)",
            "reference": "normal" if glm else "t",
            "why": "asymptotic inference (CR1, the pre-issue-11 default)",
            "notes": notes,
        }
    if design.level == "team":
        notes.append(
            f"fewer than 2 hospitals: {HOSPITAL_HC if small else 'HC1'} instead of "
            f"cluster-robust SEs"
        )
    if small:
        return {
            "kind": HOSPITAL_HC,
            "clustered": False,
            "label": f"{HOSPITAL_HC} sandwich",
            "df_method": "residual (n - p)",
            "reference": "t",
            "why": f"one row per {unit}: with {design.n} {unit}s the HC1 sandwich is "
            f"biased downward, so {HOSPITAL_HC} (Long & Ervin 2000; MacKinnon & "
            f"White 1985) with a t reference on n - p df, for count and binomial "
            f"models as for gaussian ones",
            "notes": notes,
        }
    return {
        "kind": "HC1",
        "clustered": False,
        "label": "HC1 sandwich",
        "df_method": "residual (n - p)" if not glm else "none (normal)",
        "reference": "normal" if glm else "t",
        "why": "asymptotic inference (HC1, the pre-issue-11 default)",
        "notes": notes,
    }


def _correction(spec: dict, names: list[str], focal: list[str], df) -> dict:
    """The ``correction`` block of a result: which SE, which df, which reference, and why."""
    dfs = np.broadcast_to(np.asarray(df, float), (len(names),))
    return {
        "se_type": spec["kind"],
        "label": spec["label"],
        "clustered_by": HOSPITAL if spec["clustered"] else None,
        "df_method": spec["df_method"],
        "df": {
            t: (float(d) if np.isfinite(d) else None)
            for t, d in zip(names, dfs, strict=True)
            if t in focal
        },
        "reference": spec["reference"],
        "why": spec["why"],
    }


def _empty_fit(k: int) -> dict[str, Any]:
    return {
        "params": np.full(k, np.nan),
        "cov": np.full((k, k), np.nan),
        "df": np.full(k, np.inf),
        "converged": False,
        "aic": np.nan,
        "deviance": np.nan,
        "dispersion": np.nan,
        "alpha": np.nan,
        "warnings": [],
        "scale": np.nan,
        "reason": None,
    }


def _fit_once(hyp: Hypothesis, design: Design, X: np.ndarray, y: np.ndarray, spec: dict) -> dict:
    """One fit. A numerical failure (``NUMERICAL_ERRORS``, perfect separation, no
    convergence, non-finite estimates) gives ``converged: False`` and a ``reason``; any other
    exception is a programming error and propagates. Returns params, cov, df (per term),
    diagnostics. ``spec``: :func:`_cov_spec`."""
    family = design.family
    n, k = X.shape
    out = _empty_fit(k)
    n_par = k + (1 if family == "negative_binomial" else 0)
    if n <= n_par:
        out["reason"] = f"too few rows to fit: {n} complete rows for {n_par} parameters"
        out["warnings"].append(out["reason"])
        return out
    try:
        rank = np.linalg.matrix_rank(X)
    except np.linalg.LinAlgError as exc:
        out["reason"] = f"the design matrix cannot be decomposed ({exc})"
        out["warnings"].append(out["reason"])
        return out
    if rank < k:
        out["reason"] = (
            f"the design is rank deficient ({rank} of {k} columns independent): a predictor "
            f"or covariate is constant or collinear with others"
        )
        out["warnings"].append(out["reason"])
        return out
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with np.errstate(all="ignore"):
                out.update(_fit_family(family, design, X, y, spec))
    except NUMERICAL_ERRORS as exc:  # a degenerate model; a programming error propagates
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        out["reason"] = f"the model fit failed: {type(exc).__name__}: {first}"
        out["warnings"].append(out["reason"])
        out["converged"] = False
    msgs = []
    for w in caught:
        msg = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0]}"
        if msg not in msgs:
            msgs.append(msg)
        if "Separation" in w.category.__name__:
            out["converged"] = False
            out["reason"] = out["reason"] or (
                "perfect separation: the predictors predict the outcome exactly, so the "
                "estimates are infinite"
            )
    out["warnings"] += msgs
    params, covm = np.asarray(out["params"], float), np.asarray(out["cov"], float)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(covm)) if covm.ndim == 2 else np.full(k, np.nan)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(se))):
        if out["converged"]:
            out["reason"] = "the fit gave non-finite estimates or standard errors"
            out["warnings"].append(out["reason"])
        out["converged"] = False
    if not out["converged"] and not out["reason"]:
        conv = [m for m in msgs if m.startswith("ConvergenceWarning")]
        out["reason"] = "the fit did not converge" + (f" ({conv[0]})" if conv else "")
    return out


def _robust(spec: dict, design: Design, X, pieces: dict, model_cov, scale: float = 1.0):
    """Covariance and per-term df of one fit (:func:`_cov_spec`), from the working pieces
    (:func:`flaqum.smallsample.working_pieces`). Returns (cov, df, notes)."""
    n, k = X.shape
    glm = design.family != "gaussian"
    kind, notes = spec["kind"], []
    resid, w, var = pieces["resid"], pieces["weights"], pieces["variance"]
    residual_df = np.full(k, float(n - k))
    if kind == "model":
        df = residual_df if spec["reference"] == "t" else np.full(k, np.inf)
        return np.asarray(model_cov, float) * scale, df, notes
    if kind == "CR2":
        V, df = smallsample.cr2(X, resid, design.groups, w, var)
        return V, df, notes
    if kind == "CR1":
        # sandwich::vcovCL(type = "HC1"): G/(G-1) (n-1)/(n-k) times the CR0 meat
        ww = w if w is not None else np.ones(n)
        B = np.linalg.inv((X * ww[:, None]).T @ X)
        u = X * (ww * resid)[:, None]
        G = design.n_clusters
        sums = np.zeros((G, k))
        np.add.at(sums, design.groups, u)
        V = B @ (sums.T @ sums) @ B * G / (G - 1) * (n - 1) / (n - k)
        df = np.full(k, np.inf if glm else float(G - 1))
        return (V + V.T) / 2, df, notes
    try:
        V = smallsample.hc_vcov(X, resid, kind, w)
    except ValueError as exc:  # a leverage of 1: HC2/HC3 undefined
        if kind == "HC1":
            raise
        notes.append(f"{kind} undefined ({exc}); HC1 used instead")
        V = smallsample.hc_vcov(X, resid, "HC1", w)
    df = residual_df if spec["reference"] == "t" else np.full(k, np.inf)
    return V, df, notes


def _overdispersion(res) -> dict:
    """Pearson chi2 / df of a Poisson GLM and the one-sided test of chi2 > df under Poisson
    variance (``pchisq(X2, df, lower.tail = FALSE)``)."""
    df = float(res.df_resid)
    x2 = float(res.pearson_chi2)
    phi = x2 / df if df > 0 else np.nan
    p = float(stats.chi2.sf(x2, df)) if df > 0 else np.nan
    return {"phi": phi, "p": p, "detected": bool(df > 0 and phi > 1 and p < OVERDISPERSION_P)}


def _fit_family(family: str, design: Design, X, y, spec: dict) -> dict:
    n, k = X.shape
    if family == "gaussian":
        res = sm.OLS(y, X).fit()
        pieces = {"resid": np.asarray(res.resid, float), "weights": None, "variance": None}
        cov, df, notes = _robust(spec, design, X, pieces, res.cov_params())
        return {
            "params": res.params,
            "cov": cov,
            "df": df,
            "converged": True,
            "aic": res.aic,
            "deviance": res.ssr,
            "dispersion": res.scale,
            "scale": res.scale,
            "cov_notes": notes,
        }
    if family == "poisson" or family == "binomial":
        if family == "poisson":
            model = sm.GLM(y, X, family=sm.families.Poisson(), offset=design.offset)
        else:
            endog = np.column_stack([y, design.exposure - y])
            model = sm.GLM(endog, X, family=sm.families.Binomial())
        res = model.fit(maxiter=100, tol=GLM_TOL)
        converged = bool(getattr(res, "converged", True))
        over = _overdispersion(res) if family == "poisson" else None
        scale = max(over["phi"], 1.0) if over and over["detected"] else 1.0
        cov, df, notes = _robust(
            spec, design, X, smallsample.working_pieces(res), res.cov_params(), scale
        )
        return {
            "params": res.params,
            "cov": cov,
            "df": df,
            "converged": converged,
            "aic": res.aic,
            "deviance": res.deviance,
            "dispersion": res.pearson_chi2 / res.df_resid if res.df_resid > 0 else np.nan,
            "scale": 1.0,
            "overdispersion": over,
            "quasi_scale": scale,
            "cov_notes": notes,
        }
    if family == "negative_binomial":
        start = None
        try:
            pois = sm.GLM(y, X, family=sm.families.Poisson(), offset=design.offset).fit()
            if np.all(np.isfinite(pois.params)):
                start = np.append(pois.params, 0.1)
        except NUMERICAL_ERRORS:  # a start value is only a help
            start = None
        model = NegativeBinomial(y, X, loglike_method="nb2", offset=design.offset)
        res = None
        for method in ("newton", "bfgs", "nm"):
            res = model.fit(
                start_params=start, method=method, maxiter=500 if method != "nm" else 5000, disp=0
            )
            # newton can "converge" to NaN from a poor start (log of a negative 1 / alpha)
            if res.mle_retvals.get("converged", False) and np.all(np.isfinite(res.params)):
                break
        converged = bool(res.mle_retvals.get("converged", False)) and bool(
            np.all(np.isfinite(res.params))
        )
        params = np.asarray(res.params, float)
        covm = np.asarray(res.cov_params(), float)
        alpha = float(params[-1])
        beta = params[:-1]
        if alpha <= 0 or not np.isfinite(alpha):
            converged = False
            return {
                "params": beta,
                "cov": covm[:-1, :-1],
                "df": np.full(k, np.inf),
                "converged": False,
                "aic": res.aic,
                "deviance": np.nan,
                "dispersion": np.nan,
                "alpha": alpha,
                "scale": 1.0,
            }
        # as MASS::glm.nb: the coefficients are a GLM's with theta = 1 / alpha fixed at its
        # maximum-likelihood value, and the sandwiches are that GLM's (sandwich and
        # clubSandwich treat a negbin fit as a glm)
        glm = sm.GLM(
            y, X, family=sm.families.NegativeBinomial(alpha=alpha), offset=design.offset
        ).fit(start_params=beta, maxiter=100, tol=GLM_TOL)
        converged = converged and bool(getattr(glm, "converged", True))
        beta = np.asarray(glm.params, float)
        cov, df, notes = _robust(spec, design, X, smallsample.working_pieces(glm), covm[:-1, :-1])
        eta = X @ beta + (design.offset if design.offset is not None else 0.0)
        mu = np.exp(eta)
        with np.errstate(all="ignore"):
            inv = 1.0 / alpha
            term = np.where(y > 0, y * np.log(y / mu), 0.0)
            dev = 2 * np.sum(term - (y + inv) * np.log((1 + alpha * y) / (1 + alpha * mu)))
            pearson = np.sum((y - mu) ** 2 / (mu + alpha * mu**2)) / max(n - k - 1, 1)
        return {
            "params": beta,
            "cov": cov,
            "df": df,
            "converged": converged,
            "aic": res.aic,
            "deviance": dev,
            "dispersion": pearson,
            "alpha": alpha,
            "scale": 1.0,
            "cov_notes": notes,
        }
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
        d = df[i] if np.ndim(df) else df
        row = {
            "term": term,
            "focal": term in focal,
            "estimate": b,
            "se": s,
            "ci_low": lo,
            "ci_high": hi,
            "p": p,
            "df": d,
        }
        if family in EXP_FAMILIES:
            for key, v in (("exp_estimate", b), ("exp_ci_low", lo), ("exp_ci_high", hi)):
                row[key] = math.exp(v) if np.isfinite(v) and v < EXP_MAX else np.nan
        rows.append(row)
    return rows


def _loglik(
    family: str, eta: np.ndarray, y: np.ndarray, design: Design, fit: dict, sigma2: float
) -> np.ndarray:
    """Per-observation log-likelihood up to terms free of eta (eta includes any offset)."""
    yy = y[:, None] if eta.ndim == 2 else y
    if family == "gaussian":
        return -((yy - eta) ** 2) / (2 * sigma2)
    if family == "poisson":
        return yy * eta - np.exp(np.minimum(eta, EXP_MAX))
    if family == "negative_binomial":
        a = max(float(fit["alpha"]), 1e-8)
        mu = np.exp(np.minimum(eta, EXP_MAX))
        return yy * eta - (yy + 1 / a) * np.log1p(a * mu)
    if family == "binomial":
        nn = design.exposure[:, None] if eta.ndim == 2 else design.exposure
        return yy * eta - nn * np.logaddexp(0, eta)
    raise ConfigError(f"unknown family {family!r}")


def _draw_plausible(
    design: Design, plain: dict, rng: np.random.Generator, condition: bool
) -> np.ndarray:
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
        extra = sum(
            beta[i["col"]] ** 2 * np.mean((i["se"] / i["scale"]) ** 2)
            for i in design.noisy.values()
        )
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
            # quasi-likelihood: an overdispersed Poisson outcome says less about the score
            ll = _loglik(design.family, eta_k, design.y, design, plain, sigma2) / float(
                plain.get("quasi_scale") or 1.0
            )
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
    # complete-data df per term (Satterthwaite df vary a little with the imputed predictor)
    df_com = np.mean([np.broadcast_to(np.asarray(f["df"], float), (k,)) for f in fits], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (1 + 1 / m) * b / ubar
        lam = np.where(t > 0, (1 + 1 / m) * b / t, 0.0)
        df_old = np.where(b > 0, (m - 1) * (1 + 1 / r) ** 2, np.inf)
        df_obs = (df_com + 1) / (df_com + 3) * df_com * (1 - lam)
        df = np.where(np.isfinite(df_com), 1 / (1 / df_old + 1 / df_obs), df_old)
    return qbar, np.sqrt(t), df, lam, np.sqrt(ubar)


def _error_variance_of_raw_means(info: dict) -> tuple[np.ndarray, float] | None:
    """Per unit, the error variance s^2 of the raw mean; and the true-score variance tau^2 of
    the EB model that shrank it (None when the three columns do not determine them).

    An EB mean of a unit mean with error variance s^2 is eb = b0 + lambda (raw - b0) with
    lambda = tau^2 / (tau^2 + s^2), and its conditional variance eb_se^2 = lambda s^2 =
    tau^2 (1 - lambda). So raw - eb = (1 - lambda)(raw - b0) = (eb_se^2 / tau^2)(raw - b0):
    the regression of raw - eb on eb_se^2 raw and eb_se^2 (no intercept) has slope 1 / tau^2,
    exactly for a one-level EB model, and s^2 = eb_se^2 / (1 - eb_se^2 / tau^2). This recovers
    the multilevel stage's own tau^2 (var_hospital) from hospitals.csv.
    """
    n_units = int(info["units"].max()) + 1
    eb_u, se_u = _per_unit(info, n_units)
    raw_u = np.zeros(n_units)
    raw_u[info["units"]] = info["raw"]
    v = se_u**2
    A = np.column_stack([v * raw_u, v])
    coef, *_ = np.linalg.lstsq(A, raw_u - eb_u, rcond=None)
    if not (np.isfinite(coef[0]) and coef[0] > 0):
        return None
    tau2 = 1.0 / coef[0]
    lam = 1 - v / tau2
    if np.any(lam <= 0):
        return None
    return v / lam, tau2


def _measurement_error(hyp: Hypothesis, design: Design, spec: dict) -> dict | None:
    """The ``measurement_error`` block: which focal predictors are estimated scores, and with
    ``measurement_error: reliability`` the reliability-corrected slopes.

    Correction (Spearman 1904; Fuller 1987, section 1.1): refit the model on the *raw* unit
    means of the estimated predictors and divide each one's slope by the reliability of the
    raw means, lambda = tau^2 / (tau^2 + mean(s^2)) (tau^2 and s^2:
    :func:`_error_variance_of_raw_means`; the ICC(2) of the hospital means when all are of
    one size). Exact for one predictor
    in a linear model; approximate with covariates correlated with it and for log and logit
    links (small effects). SE by the delta method, var(b / lambda) = se_b^2 / lambda^2 + b^2
    var(lambda) / lambda^4 with var(lambda) = 2 (1 - lambda)^2 / (n - 1) (from the sampling
    variance of tau^2, 2 (tau^2 + s^2)^2 / (n - 1) under normality; s^2 taken as known);
    interval and p-value on the plain fit's df. EB means need no such correction: they are
    posterior means, so a slope on them is already regression-calibrated; the plain and
    plausible-values fits use them.
    """
    names = [n for n in design.focal if n in design.noisy]
    if not names:
        return None
    wanted = hyp.measurement_error
    block: dict[str, Any] = {
        "correction": wanted,
        "estimated_predictors": {},
        "estimates": None,
        "warnings": [],
    }
    raw_X = design.X.copy()
    usable = []
    for name in names:
        info = design.noisy[name]
        entry = {
            "score": "eb_mean",
            "level": info["level"],
            "note": (
                f"{name} is an estimated score (an EB mean with standard error "
                f"eb_se), not the true {info['level']} mean: estimates use the EB "
                f"means (regression calibration) and plausible_values propagates "
                f"their uncertainty; measurement_error: reliability adds the "
                f"reliability-corrected slope on the raw means"
            ),
        }
        raw = info["raw"]
        if info["level"] != "hospital":
            entry["reliability_raw"] = None
            if wanted == "reliability":
                block["warnings"].append(
                    f"{name}: the reliability correction is for hospital "
                    f"means; a team score's EB mean shrinks towards its "
                    f"hospital, not the consortium: not corrected"
                )
        elif raw is None or not np.all(np.isfinite(raw)):
            entry["reliability_raw"] = None
            if wanted == "reliability":
                block["warnings"].append(f"{name}: no raw means beside the EB means: not corrected")
        else:
            parts = _error_variance_of_raw_means(info)
            if parts is None:
                entry["reliability_raw"] = None
                block["warnings"].append(
                    f"{name}: the raw means, EB means and eb_se do not "
                    f"determine an error variance: not corrected"
                )
                block["estimated_predictors"][name] = entry
                continue
            s2_u, tau2 = parts
            n_units = int(info["units"].max()) + 1
            lam = float(tau2 / (tau2 + np.mean(s2_u)))
            entry["reliability_raw"] = lam
            entry["error_variance_raw"] = float(np.mean(s2_u))
            entry["true_score_variance"] = tau2
            raw_X[:, info["col"]] = (raw - info["centre"]) / info["scale"]
            usable.append((name, info["col"], lam, n_units))
        block["estimated_predictors"][name] = entry
    if wanted != "reliability" or not usable:
        return block
    fit = _fit_once(hyp, design, raw_X, design.y, spec)
    if not fit["converged"]:
        block["warnings"].append(f"the fit on raw means failed: {fit['reason']}")
        return block
    rows = []
    dfs = np.broadcast_to(np.asarray(fit["df"], float), (raw_X.shape[1],))
    for name, col, lam, n_units in usable:
        b = float(fit["params"][col])
        se_b = float(np.sqrt(fit["cov"][col, col]))
        if not 0 < lam <= 1:
            block["warnings"].append(
                f"{name}: reliability of the raw means {lam:.3g} is not in (0, 1]: not corrected"
            )
            continue
        var_lam = 2 * (1 - lam) ** 2 / (n_units - 1)
        se_c = math.sqrt(se_b**2 / lam**2 + b**2 * var_lam / lam**4)
        row = _estimates([name], [b / lam], [se_c], dfs[col], design.family, [name])[0]
        row.update(estimate_raw=b, se_raw=se_b, reliability=lam)
        rows.append(row)
    block["estimates"] = rows
    block["method"] = (
        "slope on raw means / reliability of the raw means (Spearman; Fuller "
        "1987), delta-method SE, " + spec["label"]
    )
    return block


def _overdispersion_note(over: dict, spec: dict) -> str:
    se = (
        "the sandwich standard errors do not assume Var(y) = mu, so they stay valid"
        if spec["kind"] != "model"
        else "the model-based standard errors are scaled by it (quasi-Poisson)"
    )
    return (
        f"overdispersion: Pearson chi2/df = {over['phi']:.2f} (p = {over['p']:.2g} under "
        f"Poisson variance); {se}, and plausible values are conditioned on the outcome "
        f"with the quasi-likelihood (log-likelihood / {over['phi']:.2f}); family "
        f"negative_binomial models the extra variance instead"
    )


def _overdispersion_json(over: dict, spec: dict) -> dict:
    return {
        "pearson_chi2_over_df": over["phi"],
        "p": over["p"],
        "detected": over["detected"],
        "handling": (
            _overdispersion_note(over, spec).split("; ", 1)[1]
            if over["detected"]
            else "none needed"
        ),
    }


def fit_hypothesis(hyp: Hypothesis | Mapping, data: pd.DataFrame, wave: str | None = None) -> dict:
    """Fit one hypothesis on its analysis table (from :func:`assemble_data`).

    Returns a JSON-serialisable dict (NaN as None); see the module docstring and
    :func:`result_to_json`. A model that cannot be fitted does not raise: ``status`` is
    ``not_fitted``, ``reason`` says why in words, ``n`` is 0 and the estimates are empty
    (None). A programming error (TypeError, KeyError, ...) propagates.
    """
    hyp = as_hypothesis(hyp)
    wave = wave if wave is not None else data.attrs.get("wave")
    design = Design(hyp, data)
    spec = _cov_spec(hyp, design)
    cov_notes = spec["notes"]
    reason = _unfittable(design)
    if reason is None:
        plain = _fit_once(hyp, design, design.X, design.y, spec)
        reason = None if plain["converged"] else plain["reason"]
    else:
        plain = _empty_fit(design.X.shape[1])
        plain["warnings"].append(reason)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(plain["cov"]))
    estimates = _estimates(
        design.names, plain["params"], se, plain["df"], design.family, design.focal
    )
    if reason is None:
        no_p = [e["term"] for e in estimates if e["focal"] and not np.isfinite(e["p"])]
        if no_p:
            reason = (
                f"no standard error for {', '.join(no_p)}: the model reproduces the "
                f"outcome exactly (or a standard error is 0), so there is no test"
            )
    fitted = reason is None
    if not fitted:
        for e in estimates:  # numbers of a failed fit are not estimates anyone should read
            for key in e:
                if key not in ("term", "focal"):
                    e[key] = np.nan
    diag_warnings = (
        list(design.warnings)
        + cov_notes
        + list(plain.get("cov_notes") or [])
        + list(plain["warnings"])
    )
    over = plain.get("overdispersion") if fitted else None
    if over and over["detected"]:
        diag_warnings.append(_overdispersion_note(over, spec))
    if reason is not None and reason not in diag_warnings:
        diag_warnings.append(reason)

    with np.errstate(all="ignore"):
        scores_used = _scores_used(hyp, data, design)
        meas = _measurement_error(hyp, design, spec) if fitted else None
    pv, why = _plausible_values(hyp, design, plain, spec, fitted)
    if why:
        diag_warnings.append(why)
    if hyp.outcome.source == "scale" and hyp.outcome.scores == "eb":
        diag_warnings.append(
            f"the outcome {hyp.outcome.column} is a shrunken EB mean: slopes on "
            f"predictors that the shrinkage model did not include are attenuated, roughly by "
            f"the outcome's reliability (scores_used); outcome.scores: raw avoids this"
        )

    result = {
        **_identity(hyp, wave, STATUS_FITTED if fitted else STATUS_NOT_FITTED, reason),
        "standardize": bool(hyp.standardize),
        "effect_scale": EXP_FAMILIES.get(hyp.family, "difference"),
        "se_type": spec["label"],
        "correction": _correction(spec, design.names, design.focal, plain["df"]),
        "scores_used": scores_used,
        "n": design.n if fitted else 0,
        "n_clusters": (design.n_clusters if fitted or design.n_clusters is None else 0),
        "estimates": estimates,
        "plausible_values": pv,
        "measurement_error": meas,
        "diagnostics": {
            "converged": bool(plain["converged"]),
            "aic": plain["aic"] if fitted else np.nan,
            "deviance": plain["deviance"] if fitted else np.nan,
            "pearson_chi2_over_df": plain["dispersion"] if fitted else np.nan,
            "overdispersion": _overdispersion_json(over, spec) if over else None,
            "alpha": (plain["alpha"] if design.family == "negative_binomial" and fitted else None),
            "n_rows": design.n_rows,
            "n_complete": design.n,
            "n_dropped_missing": design.n_dropped,
            "warnings": diag_warnings,
        },
    }
    return _clean(result)


def _plausible_values(
    hyp: Hypothesis, design: Design, plain: dict, spec: dict, fitted: bool
) -> tuple[dict | None, str | None]:
    """The second fit: M plausible values of the scores with an ``eb_se``, each model refitted
    and the fits combined by Rubin's rules (:func:`_draw_plausible`, :func:`_rubin`). Returns
    the result's ``plausible_values`` block, or None and the reason none were drawn."""
    pv_cfg = hyp.plausible_values
    if not (design.noisy and int(pv_cfg.draws) > 0 and fitted):
        if not design.noisy:
            return None, (
                "no predictor has an eb_se (raw or observed scores, or maturity "
                "scores): no plausible values drawn"
            )
        if int(pv_cfg.draws) <= 0:
            return None, "plausible_values.draws is 0: no plausible values drawn"
        return None, "the model was not fitted: no plausible values drawn"
    m = int(pv_cfg.draws)
    condition = bool(pv_cfg.condition_on_outcome)
    rng = np.random.default_rng(int(pv_cfg.seed))
    fits = []
    for _ in range(m):
        Xm = _draw_plausible(design, plain, rng, condition)
        fits.append(_fit_once(hyp, design, Xm, design.y, spec))
    ok = [f for f in fits if f["converged"]]
    pv_warn = []
    if len(ok) < m:
        pv_warn.append(
            f"{m - len(ok)} of {m} plausible-value fits did not converge and were left out"
        )
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
    return {
        "method": (
            "posterior draws conditioned on the outcome (SIR)"
            if condition
            else "unconditional draws from N(eb_mean, eb_se^2)"
        ),
        "draws": m,
        "draws_converged": len(ok),
        "seed": int(pv_cfg.seed),
        "condition_on_outcome": condition,
        "scores_drawn": sorted(design.noisy),
        "combined_by": "Rubin's rules, Barnard-Rubin df",
        "correction": (
            {
                **_correction(spec, design.names, design.focal, [r["df"] for r in pv_est]),
                "df_method": "Barnard-Rubin (1999) small-sample df, complete-data "
                f"df: {spec['df_method']}",
                "reference": "t",
            }
            if pv_est
            else None
        ),
        "estimates": pv_est,
        "warnings": pv_warn,
    }, None


def _identity(hyp: Hypothesis, wave: str | None, status: str, reason) -> dict:
    """The fields every hypothesis result starts with, in this order, whatever its status."""
    return {
        "id": hyp.id,
        "description": hyp.description,
        "wave": wave,
        "status": status,
        "reason": reason,
        "level": hyp.level,
        "family": hyp.family,
        "outcome": {k: getattr(hyp.outcome, k) for k in ("source", "column", "exposure", "scores")},
        "predictors": list(hyp.predictors),
        "covariates": list(hyp.covariates),
    }


def not_applicable_result(hyp: Hypothesis | Mapping, wave: str | None, reason: str) -> dict:
    """The placeholder result of a hypothesis that has nothing to fit in ``wave`` (declared
    for other waves only, or its outcome's optional source not delivered): no estimates,
    ``status: not_applicable`` and the ``reason`` in words."""
    return _clean(
        {
            **_identity(as_hypothesis(hyp), wave, STATUS_NOT_APPLICABLE, reason),
            "n": 0,
            "estimates": [],
            "plausible_values": None,
            "diagnostics": {"converged": None, "warnings": []},
        }
    )


def _scores_used(hyp: Hypothesis, data: pd.DataFrame, design: Design) -> dict:
    """Where each variable came from, which score, and the reliability of noisy scores."""
    out = {}
    prov = data.attrs.get("scores_used", {})
    names = [hyp.outcome.column, *hyp.predictors, *hyp.covariates]
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
            entry["reliability"] = (
                var_x / (var_x + mse) if np.isfinite(var_x) and var_x + mse > 0 else None
            )
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


def run_hypothesis(
    path_or_hyp: Path | str | Hypothesis | Mapping,
    wave_inputs: dict[str, pd.DataFrame],
    wave: str | None = None,
) -> dict:
    """Load (if a path), assemble and fit one hypothesis on a wave's inputs
    (:func:`flaqum.hypotheses.read_inputs`, :func:`flaqum.hypotheses.canonical_ids`).

    The result is :func:`not_applicable_result` with the reason when the hypothesis is not
    declared for ``wave`` (its ``waves``), when the outcome's source (``outcomes`` or
    ``team_outcomes``, both optional) is not among the wave's inputs, or when the wave lacks
    a name the study declares.
    """
    hyp = (
        load_hypothesis(path_or_hyp)
        if isinstance(path_or_hyp, str | Path)
        else as_hypothesis(path_or_hyp)
    )
    if not hyp.applies(wave):
        return not_applicable_result(
            hyp, wave, f"not declared for wave {wave} (waves: {hyp.waves})"
        )
    source = hyp.outcome.source
    if source != "scale" and source not in wave_inputs:
        return not_applicable_result(
            hyp,
            wave,
            f"no {source} file in this wave: the outcome "
            f"{hyp.outcome.column!r} was not delivered (an optional source)",
        )
    try:
        data = assemble_data(hyp, wave_inputs, wave)
    except NotInWave as exc:
        # check_hypotheses found the name in the study before the run: this wave lacks it
        # (a source it did not deliver, an instrument it does not field)
        return not_applicable_result(hyp, wave, f"not in this wave's data: {exc}")
    return fit_hypothesis(hyp, data, wave)


# --------------------------------------------------------------------------------------------
# Multiple testing across hypotheses
# --------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "wave",
    "hypothesis",
    "fit",
    "term",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "p",
    "q",
    "n",
    "family",
    "level",
    "scores",
    "status",
    "reason",
    "n_tested",
]
FITS = ("plain", "plausible_values")


def _status(result: dict) -> str:
    """A result's status; results written before ``status`` existed: from ``converged``."""
    if result.get("status"):
        return result["status"]
    converged = (result.get("diagnostics") or {}).get("converged", True)
    return STATUS_FITTED if converged is not False else STATUS_NOT_FITTED


def summarise(results: list[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """Benjamini-Hochberg q-values over the focal predictor terms of all hypotheses of a wave.

    The plain fits and the plausible-values fits are two separate families of tests, each
    adjusted on its own (per wave), over the focal terms that have a p-value: ``n_tested`` is
    that number, so a hypothesis that was not fitted visibly leaves the family instead of
    shrinking it silently (the same as R's ``p.adjust(p, method = "BH")`` on those p-values).
    Every estimate gets ``q`` (None for intercepts, covariates and terms without a p-value),
    every result ``multiple_testing``. Returns the summary table (one row per hypothesis x
    focal term x fit; a hypothesis without estimates, not applicable or not fitted, keeps a
    row per predictor with its ``status`` and ``reason``) and deep copies of the results with
    ``q`` filled in.
    """
    results = [copy.deepcopy(r) for r in results]
    tested: dict[tuple[Any, str], int] = {}
    for fit in FITS:
        by_wave: dict[Any, list[dict]] = {}
        for r in results:
            for est in _fit_estimates(r, fit):
                est["q"] = None
                if est.get("focal") and est.get("p") is not None and np.isfinite(est["p"]):
                    by_wave.setdefault(r.get("wave"), []).append(est)
        for wave, ests in by_wave.items():
            p = np.array([e["p"] for e in ests], float)
            q = multipletests(p, alpha=0.05, method="fdr_bh")[1]
            for e, qv in zip(ests, q, strict=True):
                e["q"] = float(qv)
            tested[(wave, fit)] = len(ests)
    rows = []
    for r in results:
        wave, status = r.get("wave"), _status(r)
        r["multiple_testing"] = {
            "method": "Benjamini-Hochberg, per wave, over the focal terms with a p-value",
            "n_tested": {fit: tested.get((wave, fit), 0) for fit in FITS},
        }
        common = {
            "wave": wave,
            "hypothesis": r["id"],
            "n": r.get("n", 0),
            "family": r.get("family"),
            "level": r.get("level"),
            "status": status,
            "reason": r.get("reason"),
        }
        for fit in FITS:
            focal = [e for e in _fit_estimates(r, fit) if e.get("focal")]
            for est in focal:
                rows.append(
                    {
                        **common,
                        "fit": fit,
                        "term": est["term"],
                        "estimate": est["estimate"],
                        "se": est["se"],
                        "ci_low": est["ci_low"],
                        "ci_high": est["ci_high"],
                        "p": est["p"],
                        "q": est["q"],
                        "scores": _scores_label(r, fit),
                        "n_tested": tested.get((wave, fit), 0),
                    }
                )
            pv = r.get("plausible_values")
            if focal or (fit == "plausible_values" and not pv):
                continue
            # no estimates: still one row per predictor, with the reason
            row = {**common, "fit": fit, "scores": "", "n_tested": tested.get((wave, fit), 0)}
            if fit == "plausible_values":  # drawn, but too few of the refits converged
                row.update(
                    status=STATUS_NOT_FITTED,
                    n=0,
                    reason="; ".join(pv.get("warnings") or []) or None,
                )
            for name in r.get("predictors") or [None]:
                rows.append({**row, "term": name})
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
