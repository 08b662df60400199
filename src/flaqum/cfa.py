"""Confirmatory factor analysis by exact maximum likelihood, as lavaan fits it.

The omega and CFA fit columns of ``results/<wave>/psychometrics/scales.csv``, the loadings of
``items.csv`` (docs/outputs.md), and the multi-group fits behind ``invariance.csv``
(:mod:`flaqum.invariance`). How each number is defined:

``fit_cfa``, ``cfa_one_factor``
    A maximum-likelihood confirmatory factor analysis exactly as ``lavaan::cfa`` fits it by
    default: listwise-complete rows, the sample covariance with divisor N, marker-variable
    identification (the first item of each factor has loading 1, factor variances and
    covariances free), residual variances free and unbounded (a Heywood case is reported, not
    hidden). The discrepancy F = log|Sigma| + tr(S Sigma^-1) - log|S| - p is minimised by
    Fisher scoring with step halving from principal-component start values; chi2 = N F.
    Fit measures follow lavaan 0.6 (``lavaan::fitMeasures``): baseline = independence model
    (free variances); CFI = 1 - max(chi2 - df, 0) / max(chi2 - df, chi2_b - df_b, 0); TLI =
    ((chi2_b/df_b) - (chi2/df)) / ((chi2_b/df_b) - 1) (lavaan's NNFI form, 1 when df = 0);
    RMSEA = sqrt(G) sqrt(max(chi2 / (N df) - 1 / N, 0)) (N, not N - 1); SRMR = lavaan's
    "srmr" (Bentler): the root mean square of the covariance residuals (S - Sigma) scaled by
    the sample standard deviations (lower triangle with the diagonal), plus, in multi-group
    models (which carry a mean structure), the mean residuals scaled likewise, averaged over
    groups with weights N_g / N. Loadings are lavaan's ``std.all``
    (``lavaan::standardizedSolution``). omega =
    (sum of standardised loadings)^2 / ((sum)^2 + sum of standardised residual variances);
    for a model of several correlated factors the same quantity of the total score,
    1' L_s Phi_s L_s' 1 / (1' L_s Phi_s L_s' 1 + sum theta_s), with Phi_s the factor
    correlations (the omega of the sum of all standardised items; reduces to the one-factor
    formula). Degenerate input (fewer than three items, an item without variance, too few
    complete rows, a singular covariance matrix, a non-converged fit) gives NaNs and
    ``converged=False`` with the reason in ``message``; ``cfa_one_factor`` never raises.

    Multi-group fits (``group =``, with ``equal`` a subset of ("loadings", "intercepts")) are
    lavaan's ``cfa(group = , group.equal = )``; :func:`flaqum.invariance.measurement_invariance`
    runs the configural / metric / scalar sequence.

Why our own engine and not semopy (dropped as a dependency): semopy 2.3.11 fits the same
single-group model, but not to lavaan's numbers at 1e-6 (on the bfi agreeableness items chi2
86.69677 against lavaan's and ours 86.69606; RMSEA 0.077677 against 0.077662, as it uses
N - 1), it has no SRMR, and its multi-group analysis (``semopy.multigroup``) fits each group
separately, so it cannot hold loadings or intercepts equal across groups, which metric and
scalar invariance need. One small exact ML engine serves both, equals lavaan to 1e-6 on the
fit measures (tests/test_cfa.py, tests/test_invariance.py) and works on covariance matrices,
so N does not matter for speed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from flaqum import agreement as ag

__all__ = ["CFAResult", "fit_cfa", "cfa_one_factor", "nan_result"]


@dataclass
class CFAResult:
    """A fitted CFA (see the module docstring). ``loadings``: standardised (std.all), by item."""

    loadings: pd.Series
    omega: float
    cfi: float
    tli: float
    rmsea: float
    srmr: float
    chi2: float
    df: float
    converged: bool
    n: int = 0
    baseline_chi2: float = np.nan
    baseline_df: float = np.nan
    raw_loadings: pd.Series | None = None
    residual_variances: pd.Series | None = None
    factor_cov: pd.DataFrame | None = None
    iterations: int = 0
    message: str = ""
    groups: list = field(default_factory=list)
    groups_left_out: list = field(default_factory=list)


@dataclass
class _Group:
    S: np.ndarray  # sample covariance, divisor N
    m: np.ndarray  # sample means
    n: int
    lam: np.ndarray  # (p,) index of each item's loading, -1 = fixed at 1 (marker)
    theta: np.ndarray  # (p,) index of residual variances
    phi: np.ndarray  # (m, m) symmetric index of factor (co)variances
    nu: np.ndarray | None = None  # (p,) index of intercepts (mean structure only)
    alpha: np.ndarray | None = None  # (m,) index of latent means, -1 = fixed at 0


@dataclass
class _Spec:
    items: list[str]
    factors: list[str]
    factor_of: np.ndarray  # (p,) factor index of each item
    groups: list[_Group]
    q: int  # number of free parameters
    meanstructure: bool


@dataclass
class _Fit:
    theta: np.ndarray
    fmin: float
    converged: bool
    iterations: int
    message: str


def _factor_spec(items: list[str], factors: dict[str, list[str]] | None):
    if not factors:
        return ["f1"], np.zeros(len(items), dtype=np.int64)
    names = list(factors)
    of = {}
    for k, f in enumerate(names):
        for it in factors[f]:
            if it in of:
                raise ValueError(f"item {it!r} is listed under two factors (simple structure only)")
            of[it] = k
    missing = [it for it in items if it not in of]
    if missing:
        raise ValueError(f"items {missing} are not assigned to a factor")
    return names, np.array([of[it] for it in items], dtype=np.int64)


def _build_spec(items, factor_names, factor_of, moments, equal: tuple[str, ...]) -> _Spec:
    """Parameter indices per group: shared where ``equal`` holds them equal across groups."""
    p, m = len(items), len(factor_names)
    G = len(moments)
    meanstructure = "intercepts" in equal
    marker = np.zeros(p, bool)
    for f in range(m):
        marker[np.flatnonzero(factor_of == f)[0]] = True
    counter = [0]

    def new(k):
        out = np.arange(counter[0], counter[0] + k)
        counter[0] += k
        return out

    shared_lam = None
    shared_nu = None
    groups = []
    for g, (S, mean, n) in enumerate(moments):
        if "loadings" in equal and shared_lam is not None:
            lam = shared_lam
        else:
            lam = np.full(p, -1, dtype=np.int64)
            lam[~marker] = new(int((~marker).sum()))
            shared_lam = lam
        theta = new(p)
        tri = new(m * (m + 1) // 2)
        phi = np.zeros((m, m), dtype=np.int64)
        phi[np.tril_indices(m)] = tri
        phi = np.tril(phi) + np.tril(phi, -1).T
        nu = alpha = None
        if meanstructure:
            if shared_nu is None:
                shared_nu = new(p)
            nu = shared_nu
            alpha = np.full(m, -1, dtype=np.int64) if g == 0 else new(m)
        groups.append(_Group(S, mean, n, lam, theta, phi, nu, alpha))
    del G
    return _Spec(list(items), list(factor_names), factor_of, groups, counter[0], meanstructure)


def _matrices(spec: _Spec, gr: _Group, th: np.ndarray):
    p, m = len(spec.items), len(spec.factors)
    lam = np.where(gr.lam >= 0, th[np.maximum(gr.lam, 0)], 1.0)
    L = np.zeros((p, m))
    L[np.arange(p), spec.factor_of] = lam
    Phi = th[gr.phi]
    Theta = th[gr.theta]
    Sigma = L @ Phi @ L.T + np.diag(Theta)
    if spec.meanstructure:
        al = np.where(gr.alpha >= 0, th[np.maximum(gr.alpha, 0)], 0.0)
        mu = th[gr.nu] + L @ al
    else:
        al = np.zeros(m)
        mu = gr.m
    return L, Phi, Theta, Sigma, mu, al


def _objective(spec: _Spec, th: np.ndarray, N: int) -> float:
    f = 0.0
    for gr in spec.groups:
        _, _, _, Sigma, mu, _ = _matrices(spec, gr, th)
        try:
            c = np.linalg.cholesky(Sigma)
        except np.linalg.LinAlgError:
            return np.inf
        W = np.linalg.inv(Sigma)
        d = gr.m - mu
        logdet = 2 * np.sum(np.log(np.diag(c)))
        sl = np.linalg.slogdet(gr.S)[1]
        fg = logdet + np.sum(gr.S * W) - sl - len(spec.items) + d @ W @ d
        f += gr.n / N * fg
    return float(f)


def _derivatives(spec: _Spec, th: np.ndarray, N: int):
    """Objective, gradient and expected (Fisher) information of F = sum_g N_g/N F_g."""
    p, m, q = len(spec.items), len(spec.factors), spec.q
    f = 0.0
    grad = np.zeros(q)
    info = np.zeros((q, q))
    for gr in spec.groups:
        L, Phi, Theta, Sigma, mu, al = _matrices(spec, gr, th)
        try:
            c = np.linalg.cholesky(Sigma)
        except np.linalg.LinAlgError:
            return np.inf, None, None
        W = np.linalg.inv(Sigma)
        W = (W + W.T) / 2
        d = gr.m - mu
        w = gr.n / N
        f += w * (
            2 * np.sum(np.log(np.diag(c)))
            + np.sum(gr.S * W)
            - np.linalg.slogdet(gr.S)[1]
            - p
            + d @ W @ d
        )
        # dSigma / dtheta_k and dmu / dtheta_k for the parameters of this group
        D = np.zeros((p, p, q))
        Dm = np.zeros((p, q))
        LP = L @ Phi
        for j in range(p):
            k = gr.lam[j]
            if k >= 0:
                r = LP[:, spec.factor_of[j]]
                D[j, :, k] += r
                D[:, j, k] += r
                if spec.meanstructure:
                    Dm[j, k] += al[spec.factor_of[j]]
            D[j, j, gr.theta[j]] += 1.0
        for a in range(m):
            for b in range(a + 1):
                k = gr.phi[a, b]
                o = np.outer(L[:, a], L[:, b])
                D[:, :, k] += o if a == b else o + o.T
        if spec.meanstructure:
            Dm[np.arange(p), gr.nu] += 1.0
            for a in range(m):
                if gr.alpha[a] >= 0:
                    Dm[:, gr.alpha[a]] += L[:, a]
        G = W - W @ (gr.S + np.outer(d, d)) @ W
        grad += w * (G.reshape(-1) @ D.reshape(p * p, q) - 2 * Dm.T @ (W @ d))
        # tr(W D_k W D_l) = vec(W D_k)' vec((W D_l)')
        WD = np.tensordot(W, D, axes=(1, 0))  # (p, p, q)
        info += w * (
            WD.reshape(p * p, q).T @ WD.transpose(1, 0, 2).reshape(p * p, q) + 2 * Dm.T @ W @ Dm
        )
    return float(f), grad, info


def _start(spec: _Spec) -> np.ndarray:
    """Start values: per factor the first principal component of its items' correlations."""
    th = np.zeros(spec.q)
    cnt = np.zeros(spec.q)
    p, m = len(spec.items), len(spec.factors)
    for gr in spec.groups:
        S = gr.S
        sd = np.sqrt(np.diag(S))
        lam = np.ones(p)
        phi_d = np.empty(m)
        for a in range(m):
            idx = np.flatnonzero(spec.factor_of == a)
            R = S[np.ix_(idx, idx)] / np.outer(sd[idx], sd[idx])
            if len(idx) > 1:
                vals, vecs = np.linalg.eigh(R)
                v = vecs[:, -1] * np.sqrt(max(vals[-1], 1e-6))
            else:
                v = np.array([0.7])
            v = v if v[0] >= 0 else -v
            raw = v * sd[idx]
            if abs(v[0]) < 0.05:  # a marker unrelated to its factor: neutral starts
                raw = 0.7 * sd[idx]
            phi_d[a] = raw[0] ** 2
            lam[idx] = raw / raw[0]
        theta = np.maximum(np.diag(S) - lam**2 * phi_d[spec.factor_of], 0.1 * np.diag(S))
        phi = np.diag(phi_d)
        for a in range(m):
            for b in range(a):
                ia, ib = spec.factor_of == a, spec.factor_of == b
                denom = lam[ia].sum() * lam[ib].sum()
                cov = S[np.ix_(ia, ib)].sum() / denom if denom else 0.0
                lim = 0.9 * np.sqrt(phi_d[a] * phi_d[b])
                phi[a, b] = phi[b, a] = np.clip(cov, -lim, lim)
        vals = [(gr.lam, lam), (gr.theta, theta)]
        for k, v in vals:
            ok = k >= 0
            np.add.at(th, k[ok], v[ok])
            np.add.at(cnt, k[ok], 1)
        tri = np.tril_indices(m)
        np.add.at(th, gr.phi[tri], phi[tri])
        np.add.at(cnt, gr.phi[tri], 1)
        if spec.meanstructure:
            np.add.at(th, gr.nu, gr.m)
            np.add.at(cnt, gr.nu, 1)
    th = np.where(cnt > 0, th / np.maximum(cnt, 1), 0.0)
    return th


def _optimise(spec: _Spec, N: int, max_iter: int = 500, tol: float = 1e-10) -> _Fit:
    th = _start(spec)
    f, g, H = _derivatives(spec, th, N)
    if not np.isfinite(f):
        return _Fit(th, np.nan, False, 0, "the start values give a non-positive-definite Sigma")
    msg = "maximum number of iterations reached"
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        try:
            step = np.linalg.solve(H + 1e-12 * np.eye(spec.q) * np.trace(H) / spec.q, -g)
        except np.linalg.LinAlgError:
            msg = "singular information matrix (the model is not identified)"
            break
        t = 1.0
        for _ in range(40):
            f_new = _objective(spec, th + t * step, N)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * t * (g @ step):
                break
            t /= 2
        else:
            # no decrease possible along the scoring direction: at the optimum to machine
            # precision, or stuck
            converged = np.max(np.abs(g)) < 1e-6
            msg = "converged" if converged else "line search failed"
            break
        th = th + t * step
        f_old = f
        f, g, H = _derivatives(spec, th, N)
        small_step = np.max(np.abs(t * step) / (1 + np.abs(th))) < tol
        flat = abs(f_old - f) < 1e-15 * (1 + abs(f)) and np.max(np.abs(g)) < 1e-8
        if small_step or flat:
            converged = True
            msg = "converged"
            break
    if converged and np.max(np.abs(g)) > 1e-5:
        converged, msg = False, f"stopped with gradient {np.max(np.abs(g)):.2g}"
    return _Fit(th, f, converged, it, msg)


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    n = len(X)
    m = X.mean(axis=0)
    Z = X - m
    return (Z.T @ Z) / n, m, n


def _srmr_group(S, m, Sigma, mu, meanstructure: bool) -> float:
    sd = np.sqrt(np.diag(S))
    R = (S - Sigma) / np.outer(sd, sd)
    cov_part = R[np.tril_indices(len(S))]
    p = len(S)
    e = p * (p + 1) / 2
    ss = np.sum(cov_part**2)
    if meanstructure:
        ss += np.sum(((m - mu) / sd) ** 2)
        e += p
    return float(np.sqrt(ss / e))


def _fit_measures(chi2, df, chi2_b, df_b, N, G) -> dict:
    t1 = max(chi2 - df, 0.0)
    t2 = max(chi2 - df, chi2_b - df_b, 0.0)
    cfi = 1.0 if np.isclose(t1, 0, atol=1.5e-8) and np.isclose(t2, 0, atol=1.5e-8) else 1 - t1 / t2
    a, b = (chi2 - df) * df_b, (chi2_b - df_b) * df
    tli = 1 - a / b if df > 0 and abs(b) > 0 else 1.0
    rmsea = float(np.sqrt(max(chi2 / N / df - 1 / N, 0.0)) * np.sqrt(G)) if df > 0 else 0.0
    return {"cfi": float(cfi), "tli": float(tli), "rmsea": rmsea}


def nan_result(items: Iterable[str], msg: str, n: int = 0, df: float = np.nan) -> CFAResult:
    """A CFA that was not fitted: NaN fit and loadings for ``items``, the reason in ``message``."""
    nan = pd.Series(np.nan, index=list(items), dtype=float)
    return CFAResult(
        nan,
        np.nan,
        np.nan,
        np.nan,
        np.nan,
        np.nan,
        np.nan,
        df,
        False,
        n,
        raw_loadings=nan.copy(),
        residual_variances=nan.copy(),
        message=msg,
    )


def _check_moments(S: np.ndarray, n: int, p: int) -> str:
    if n <= p:
        return f"too few complete rows ({n}) for {p} items"
    if not np.all(np.diag(S) > 0):
        return "an item has no variance"
    ev = np.linalg.eigvalsh(S / np.sqrt(np.outer(np.diag(S), np.diag(S))))
    if ev[0] < 1e-10:
        return "the item covariance matrix is singular"
    return ""


def fit_cfa(
    items: pd.DataFrame,
    factors: dict[str, list[str]] | None = None,
    group: pd.Series | None = None,
    equal: tuple[str, ...] = (),
    min_group_n: int | None = None,
) -> CFAResult:
    """Maximum-likelihood CFA as ``lavaan::cfa``, optionally multi-group with equality constraints.

    ``factors``: {factor: [items]} (simple structure; None: one factor over all columns).
    ``group``: a grouping Series aligned with ``items`` (lavaan's ``group =``); ``equal``: a
    subset of ("loadings", "intercepts") as lavaan's ``group.equal``. Rows with any missing
    answer (or group) are dropped (listwise). Groups with fewer than ``min_group_n`` complete
    rows (default: more than the number of items) are left out and named in ``message``.
    Loadings etc. are those of the first group in multi-group fits.
    """
    items = pd.DataFrame(items)
    names = [str(c) for c in items.columns]
    p = len(names)
    try:
        fnames, factor_of = _factor_spec(names, factors)
    except ValueError as exc:
        return nan_result(names, str(exc))
    if p < 3:
        return nan_result(names, f"a CFA needs at least 3 items, got {p}")
    X = ag.numeric_matrix(items)
    ok = ~np.isnan(X).any(axis=1)
    if group is None:
        gcodes = np.zeros(len(X), dtype=np.int64)
        glabels = [None]
    else:
        gcodes, glabels = pd.factorize(pd.Series(np.asarray(group)), sort=True)
        ok &= gcodes >= 0
    X, gcodes = X[ok], gcodes[ok]
    min_n = min_group_n if min_group_n is not None else p + 1
    moments, kept, dropped_groups = [], [], []
    for g, lab in enumerate(glabels):
        Xg = X[gcodes == g]
        if len(Xg) < max(min_n, p + 1):
            dropped_groups.append(f"{lab} (n={len(Xg)})")
            continue
        S, m, n = _moments(Xg)
        why = _check_moments(S, n, p)
        if why:
            if group is None:
                return nan_result(names, why, n)
            dropped_groups.append(f"{lab} ({why})")
            continue
        moments.append((S, m, n))
        kept.append(lab)
    note = f"groups left out: {', '.join(map(str, dropped_groups))}" if dropped_groups else ""
    if not moments or (group is not None and len(moments) < 2):
        n_all = int(sum(mm[2] for mm in moments))
        if group is None:
            why = f"too few complete rows ({len(X)}) for {p} items"
        else:
            why = f"fewer than two groups with enough complete rows; {note or 'no rows'}"
        res = nan_result(names, why, n_all)
        res.groups, res.groups_left_out = kept, dropped_groups
        return res
    G = len(moments)
    N = int(sum(mm[2] for mm in moments))
    # ML is scale-invariant: fit in units of the pooled item SDs (well-conditioned, unit-free
    # convergence criteria) and return the raw parameters in the data's units
    c = np.sqrt(sum(mm[2] * np.diag(mm[0]) for mm in moments) / N)
    moments = [(S / np.outer(c, c), m / c, n) for S, m, n in moments]
    spec = _build_spec(names, fnames, factor_of, moments, tuple(equal))
    moments_per_group = p * (p + 1) / 2 + (p if spec.meanstructure else 0)
    df = G * moments_per_group - spec.q
    if df < 0:
        res = nan_result(names, f"the model is not identified (df = {df:g})", N, df)
        res.groups, res.groups_left_out = kept, dropped_groups
        return res
    fit = _optimise(spec, N)
    if not fit.converged:
        res = nan_result(
            names, "; ".join(x for x in (f"did not converge: {fit.message}", note) if x), N, df
        )
        res.iterations = fit.iterations
        res.groups, res.groups_left_out = kept, dropped_groups
        return res
    chi2 = N * fit.fmin
    chi2_b = 0.0
    srmr = 0.0
    for gr in spec.groups:
        chi2_b += gr.n * (np.sum(np.log(np.diag(gr.S))) - np.linalg.slogdet(gr.S)[1])
        _, _, _, Sigma, mu, _ = _matrices(spec, gr, fit.theta)
        srmr += gr.n / N * _srmr_group(gr.S, gr.m, Sigma, mu, G > 1)
    df_b = G * p * (p - 1) / 2
    fm = _fit_measures(chi2, df, chi2_b, df_b, N, G)
    L, Phi, Theta, Sigma, _, _ = _matrices(spec, spec.groups[0], fit.theta)
    sdv = np.sqrt(np.diag(Sigma))
    sdf = np.sqrt(np.diag(Phi))
    Ls = L * sdf[None, :] / sdv[:, None]
    # back to the data's units: x = c x*, the marker of factor a keeps loading 1
    c_marker = np.array([c[np.flatnonzero(factor_of == a)[0]] for a in range(len(fnames))])
    L_raw = L * c[:, None] / c_marker[None, :]
    Phi_raw = Phi * np.outer(c_marker, c_marker)
    Theta_raw = Theta * c**2
    Phis = Phi / np.outer(sdf, sdf)
    th_s = Theta / np.diag(Sigma)
    common = float(Ls.sum(axis=0) @ Phis @ Ls.sum(axis=0))
    omega = common / (common + th_s.sum())
    idx = pd.Index(names)
    msg = "; ".join(x for x in (fit.message, note) if x)
    return CFAResult(
        loadings=pd.Series(Ls[np.arange(p), factor_of], index=idx),
        omega=float(omega),
        cfi=fm["cfi"],
        tli=fm["tli"],
        rmsea=fm["rmsea"],
        srmr=float(srmr),
        chi2=float(chi2),
        df=float(df),
        converged=True,
        n=N,
        baseline_chi2=float(chi2_b),
        baseline_df=float(df_b),
        raw_loadings=pd.Series(L_raw[np.arange(p), factor_of], index=idx),
        residual_variances=pd.Series(Theta_raw, index=idx),
        factor_cov=pd.DataFrame(Phi_raw, index=fnames, columns=fnames),
        iterations=fit.iterations,
        message=msg,
        groups=kept,
        groups_left_out=dropped_groups,
    )


def cfa_one_factor(items: pd.DataFrame, factors: dict[str, list[str]] | None = None) -> CFAResult:
    """ML CFA of the items (one factor, or ``factors``) as ``lavaan::cfa`` with its defaults.

    Never raises on data: degenerate input returns NaNs with ``converged=False`` and the reason
    in ``message``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fit_cfa(items, factors)
    except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
        return nan_result([str(c) for c in pd.DataFrame(items).columns], f"failed: {exc}")
