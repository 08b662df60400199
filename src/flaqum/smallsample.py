"""Small-sample sandwich standard errors and reference distributions (issue 11).

With about 30 hospitals a hospital-level hypothesis rests on ~30 observations, and a team-level
one on ~30 clusters. HC1 / CR1 sandwich variances are then biased downward and a normal
reference is too narrow. This module computes the corrections the literature recommends, each
equal to the R function named beside it (``tests/fixtures/r/sandwich_reference.R``; the tests
compare to 1e-6 relative). Only numpy and scipy; nothing here fits a model.

Notation. ``X`` is the n x p design (model matrix), ``e`` the *working* residuals and ``w`` the
IRLS working weights at convergence. For OLS, ``e = y - X b`` and ``w = 1``. For a GLM with mean
``mu``, link derivative ``d = dmu/deta``, variance function ``V(mu)`` and prior weights ``a``
(``var_weights * freq_weights``, times the trials of a binomial), ``e = (y - mu) / d`` and
``w = a d^2 / V(mu)`` (R: ``residuals(fit, "working")``, ``weights(fit, "working")``). The
estimating-function contribution of unit i is ``u_i x_i`` with ``u_i = w_i e_i``
(``sandwich::estfun`` for ``lm`` and ``glm``; the dispersion of a gaussian or quasi GLM cancels
from every sandwich below, so it is left out). ``B = (X' W X)^{-1}`` is the bread.

Heteroscedasticity-consistent (hospital level, one row per cluster), :func:`hc_vcov`::

    V = B X' diag(omega) X B,   h_i = w_i x_i' B x_i   (hatvalues(fit); for a GLM the diagonal
                                                         of W^1/2 X B X' W^1/2)
    HC0: omega_i = u_i^2
    HC1: omega_i = u_i^2 n / (n - p)            (MacKinnon & White 1985)
    HC2: omega_i = u_i^2 / (1 - h_i)            (unbiased under homoscedastic OLS)
    HC3: omega_i = u_i^2 / (1 - h_i)^2          (approximate jackknife; Long & Ervin 2000
                                                 recommend it below n = 250)

equal to ``sandwich::vcovHC(fit, type = kind)`` for ``lm`` and for ``glm`` (sandwich's
``meatHC`` uses exactly these u, h and omega; ``bread.glm`` is ``n B``).

Cluster-robust with the Bell-McCaffrey adjustment (team level, clustered by hospital),
:func:`cr2_vcov`, as ``clubSandwich::vcovCR(fit, cluster, type = "CR2")`` with its defaults for
``lm`` (no weights) and ``glm`` (``inverse_var = TRUE``, working covariance ``Theta = W^-1``).
clubSandwich writes a GLM in the response metric: model matrix ``Xc = d X``
(``model_matrix.glm``), residuals ``r = y - mu`` (``residuals_CS.glm``), weights
``Wc = a / V(mu)`` (``weightMatrix.glm``) and target ``Theta = V(mu) / a``; for OLS ``Xc = X``,
``r = e``, ``Wc = Theta = I``. Then ``Xc' Wc Xc = X' W X``, ``Xc' Wc r = X' W e`` and, per
cluster j (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018)::

    G_j  = Theta_j^1/2 (I - Xc_j B Xc_j' Wc_j) Theta_j Theta_j^1/2
    A_j  = Theta_j^1/2 G_j^-1/2 Theta_j^1/2        (symmetric inverse square root by
                                                     eigen-decomposition, eigenvalues
                                                     <= 1e-12 set to 0, as clubSandwich)
    E_j  = Xc_j' Wc_j A_j,   c_j = E_j r_j
    V    = B (sum_j c_j c_j') B

With ``Theta_j`` diagonal, ``G_j = Wc_j^-1 (I - H_jj) Wc_j^-1`` with ``H = Wc^1/2 Xc B Xc'
Wc^1/2``, so for OLS ``A_j = (I - H_jj)^-1/2``, the textbook CR2.

Satterthwaite degrees of freedom per coefficient, :func:`satterthwaite_df`, as
``clubSandwich::coef_test(fit, vcov = "CR2", cluster, test = "Satterthwaite")`` (its
``get_GH``, ``get_P_array`` and ``Satterthwaite``): for coefficient i, with ``g_ji`` the i-th row
of ``B E_j Theta_j^1/2`` and ``q_ji`` the i-th row of ``B E_j Xc_j``, the J x J matrix
``P_i[j, k] = 1{j = k} |g_ji|^2 - q_ji' B q_ki`` gives ``df_i = tr(P_i)^2 / sum(P_i^2)``, the
df of the chi-square that matches the first two moments of ``V_ii`` under the working model.

:func:`robust_table` takes a fitted statsmodels OLS or GLM and gives, per term, the estimate,
the standard error, the degrees of freedom, t, the two-sided p-value and the confidence interval
from a t reference: df = n - p for the HC kinds (for count and binomial models as for gaussian
ones, as issue 11 asks), the Satterthwaite df for CR2.

Not covered: weighted least squares (clubSandwich then uses ``inverse_var = FALSE``),
negative-binomial fits (statsmodels' ``NegativeBinomial`` is not a GLM object), CR2 with fixed
effects absorbed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

HC_KINDS = ("HC0", "HC1", "HC2", "HC3")
EIGEN_TOL = 1e-12  # clubSandwich::matrix_power: eigenvalues <= 10^-12 are set to 0


def _as_2d(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d design matrix, got {X.ndim} dimension(s)")
    return X


def _vector(v: Any, n: int, name: str, default: float | None = None) -> np.ndarray:
    if v is None:
        if default is None:
            raise ValueError(f"{name} is required")
        return np.full(n, default)
    v = np.asarray(v, dtype=float).reshape(-1)
    if v.shape[0] != n:
        raise ValueError(f"{name} has {v.shape[0]} values but X has {n} rows")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} has missing or infinite values")
    return v


def _bread(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(X' W X)^-1, by a QR of W^1/2 X (as R's lm / glm), symmetrised."""
    _, R = np.linalg.qr(np.sqrt(w)[:, None] * X)
    Rinv = np.linalg.solve(R, np.eye(R.shape[0]))
    B = Rinv @ Rinv.T
    return (B + B.T) / 2


def hat_values(X: Any, weights: Any = None) -> np.ndarray:
    """Leverages ``h_i = w_i x_i' (X' W X)^-1 x_i`` (R ``hatvalues`` for ``lm`` and ``glm``)."""
    X = _as_2d(X)
    w = _vector(weights, X.shape[0], "weights", 1.0)
    Q, _ = np.linalg.qr(np.sqrt(w)[:, None] * X)
    return np.sum(Q**2, axis=1)


def hc_vcov(X: Any, resid: Any, kind: str = "HC3", weights: Any = None) -> np.ndarray:
    """Heteroscedasticity-consistent covariance of the coefficients, ``sandwich::vcovHC``.

    X: n x p design. resid: working residuals (OLS: y - X b; GLM: (y - mu) / (dmu/deta)).
    weights: IRLS working weights (None for OLS). kind: HC0, HC1, HC2 or HC3 (module
    docstring).
    """
    if kind not in HC_KINDS:
        raise ValueError(f"kind must be one of {', '.join(HC_KINDS)}, not {kind!r}")
    X = _as_2d(X)
    n, p = X.shape
    if n <= p:
        raise ValueError(f"{n} observations for {p} coefficients: no residual df for {kind}")
    e = _vector(resid, n, "resid")
    w = _vector(weights, n, "weights", 1.0)
    u = w * e
    B = _bread(X, w)
    if kind == "HC0":
        omega = u**2
    elif kind == "HC1":
        omega = u**2 * n / (n - p)
    else:
        h = hat_values(X, w)
        if np.any(h > 1 - np.sqrt(np.finfo(float).eps)):
            raise ValueError(
                f"{kind}: a leverage is 1 (an observation fits its own "
                f"coefficient), so {kind} is undefined"
            )
        omega = u**2 / (1 - h) if kind == "HC2" else u**2 / (1 - h) ** 2
    meat = (X * omega[:, None]).T @ X
    V = B @ meat @ B
    return (V + V.T) / 2


def _inv_sqrt(G: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((G + G.T) / 2)
    with np.errstate(divide="ignore"):
        vp = np.where(vals > EIGEN_TOL, vals, np.inf) ** -0.5
    return (vecs * vp) @ vecs.T


def _cr2_parts(X: Any, resid: Any, cluster: Any, weights: Any, variance: Any) -> dict:
    """The clubSandwich CR2 pieces per cluster (module docstring), in the response metric."""
    X = _as_2d(X)
    n, p = X.shape
    e = _vector(resid, n, "resid")
    w = _vector(weights, n, "weights", 1.0)
    if weights is not None and variance is None:
        raise ValueError(
            "a GLM's CR2 needs `variance` (V(mu) / prior weight) beside the "
            "working weights; weighted least squares is not supported"
        )
    theta = _vector(variance, n, "variance", 1.0)
    if np.any(w <= 0) or np.any(theta <= 0):
        raise ValueError("working weights and variances must be positive")
    cluster = np.asarray(cluster).reshape(-1)
    if cluster.shape[0] != n:
        raise ValueError(f"cluster has {cluster.shape[0]} values but X has {n} rows")
    if pd.isna(cluster).any():
        raise ValueError("cluster has missing values")
    _, code = np.unique(cluster.astype(str), return_inverse=True)
    J = int(code.max()) + 1
    if J < 2:
        raise ValueError("cluster-robust variance needs at least 2 clusters, got 1")
    d = np.sqrt(w * theta)  # |dmu/deta|; a sign per row cancels from every formula below
    Xc = d[:, None] * X
    r = d * e
    wc = 1.0 / theta
    B = _bread(X, w)
    order = np.argsort(code, kind="stable")
    bounds = np.cumsum(np.bincount(code, minlength=J))[:-1]
    E_list, comps, idx_list = [], np.empty((J, p)), np.split(order, bounds)
    for j, idx in enumerate(idx_list):
        Xj, thj, wj = Xc[idx], theta[idx], wc[idx]
        sq = np.sqrt(thj)
        IH = np.eye(len(idx)) - (Xj @ B @ Xj.T) * wj[None, :]
        G = sq[:, None] * IH * (thj * sq)[None, :]
        A = sq[:, None] * _inv_sqrt(G) * sq[None, :]
        E = (Xj * wj[:, None]).T @ A
        E_list.append(E)
        comps[j] = E @ r[idx]
    V = B @ (comps.T @ comps) @ B
    return {
        "vcov": (V + V.T) / 2,
        "B": B,
        "E": E_list,
        "idx": idx_list,
        "Xc": Xc,
        "theta": theta,
        "J": J,
    }


def cr2_vcov(
    X: Any, resid: Any, cluster: Any, weights: Any = None, variance: Any = None
) -> np.ndarray:
    """Bell-McCaffrey CR2 covariance, ``clubSandwich::vcovCR(fit, cluster, type = "CR2")``.

    X, resid, weights as :func:`hc_vcov`; cluster: one label per row. For a GLM also
    ``variance``: V(mu) / prior weight, the working covariance Theta (None for OLS: identity).
    """
    return _cr2_parts(X, resid, cluster, weights, variance)["vcov"]


def satterthwaite_df(
    X: Any, resid: Any, cluster: Any, weights: Any = None, variance: Any = None
) -> np.ndarray:
    """Per-coefficient Satterthwaite df of CR2, ``clubSandwich::coef_test(test =
    "Satterthwaite")``. Arguments as :func:`cr2_vcov`."""
    return _satterthwaite(_cr2_parts(X, resid, cluster, weights, variance))


def cr2(
    X: Any, resid: Any, cluster: Any, weights: Any = None, variance: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cr2_vcov` and :func:`satterthwaite_df` from one pass over the clusters."""
    parts = _cr2_parts(X, resid, cluster, weights, variance)
    return parts["vcov"], _satterthwaite(parts)


def _satterthwaite(parts: dict) -> np.ndarray:
    B = parts["B"]
    ME = [B @ E for E in parts["E"]]
    # g: sum over a cluster's rows of (B E_j Theta_j^1/2)[i, .]^2, shape J x p
    g = np.array(
        [
            np.sum((me * np.sqrt(parts["theta"][idx])[None, :]) ** 2, axis=1)
            for me, idx in zip(ME, parts["idx"], strict=True)
        ]
    )
    # q[j, i, :] = (B E_j Xc_j)[i, :]
    q = np.stack([me @ parts["Xc"][idx] for me, idx in zip(ME, parts["idx"], strict=True)])
    P = -np.einsum("jik,kl,mil->ijm", q, B, q)  # P[i] is J x J
    P[:, np.arange(parts["J"]), np.arange(parts["J"])] += g.T
    trace = np.trace(P, axis1=1, axis2=2)
    return trace**2 / np.sum(P**2, axis=(1, 2))


def working_pieces(results: Any) -> dict[str, np.ndarray | None]:
    """X, working residuals, working weights and (GLM) variance of a statsmodels OLS or GLM fit.

    For OLS: ``resid = y - X b``, weights and variance None. For a GLM (``sm.GLM``):
    ``resid = (y - mu) / d``, ``weights = a d^2 / V(mu)``, ``variance = V(mu) / a`` with
    ``d = dmu/deta`` and ``a`` the prior weights (module docstring).
    """
    model = getattr(results, "model", None)
    if model is None:
        raise TypeError("expected a fitted statsmodels results object")
    X = np.asarray(model.exog, dtype=float)
    family = getattr(model, "family", None)
    if family is None:
        if np.any(np.asarray(getattr(model, "weights", 1.0)) != 1.0):
            raise ValueError("weighted least squares is not supported")
        if type(model).__name__ not in ("OLS",):
            raise TypeError(f"expected an OLS or GLM fit, got {type(model).__name__}")
        return {
            "X": X,
            "resid": np.asarray(results.resid, dtype=float),
            "weights": None,
            "variance": None,
        }
    y = np.asarray(model.endog, dtype=float)
    mu = np.asarray(results.fittedvalues, dtype=float)
    prior = np.asarray(model.iweights, dtype=float) * np.asarray(model.n_trials, dtype=float)
    d = 1.0 / family.link.deriv(mu)
    V = family.variance(mu)
    return {"X": X, "resid": (y - mu) / d, "weights": prior * d**2 / V, "variance": V / prior}


def robust_table(
    results: Any, kind: str = "HC3", cluster: Any = None, level: float = 0.95
) -> pd.DataFrame:
    """Estimate, se, df, t, p and confidence interval per term with a t reference.

    results: a fitted statsmodels OLS or GLM. kind: HC0-HC3 (one row per unit, df = n - p) or
    CR2 (``cluster`` required, Satterthwaite df per term).
    """
    pieces = working_pieces(results)
    X = pieces["X"]
    n, p = X.shape
    params = np.asarray(results.params, dtype=float)
    if kind == "CR2":
        if cluster is None:
            raise ValueError("kind 'CR2' needs cluster: one label per row")
        V, df = cr2(X, pieces["resid"], cluster, pieces["weights"], pieces["variance"])
    elif kind in HC_KINDS:
        if cluster is not None:
            raise ValueError(
                f"kind {kind!r} is for one row per unit; clustered data take kind 'CR2'"
            )
        V = hc_vcov(X, pieces["resid"], kind, pieces["weights"])
        df = np.full(p, float(n - p))
    else:
        raise ValueError(f"kind must be one of {', '.join(HC_KINDS)} or CR2, not {kind!r}")
    se = np.sqrt(np.diag(V))
    t = params / se
    crit = stats.t.ppf(0.5 + level / 2, df)
    names = list(getattr(results.model, "exog_names", None) or [f"x{i}" for i in range(p)])
    return pd.DataFrame(
        {
            "term": names,
            "estimate": params,
            "se": se,
            "df": df,
            "t": t,
            "p": 2 * stats.t.sf(np.abs(t), df),
            "ci_low": params - crit * se,
            "ci_high": params + crit * se,
            "kind": kind,
        }
    )
