"""Variance components and empirical-Bayes (shrunken) means of scale scores.

The model behind ``results/<wave>/multilevel/*.csv`` (docs/outputs.md) is the REML fit of

    score ~ 1 + (1 | hospital) + (1 | hospital:team)

exactly as ``lme4::lmer`` fits it. Team ids are unique only within a hospital, so a team is
always keyed by the pair (hospital_id, team_id): a team "ICU" in two hospitals is two teams.

``fit_nested``
    An exact REML solver for nested random-intercept models. With
    V = sigma2 * (I + lt * Z_t Z_t' + lh * Z_h Z_h') block-diagonal by hospital, the restricted
    likelihood depends on the data only through team sizes n_j, team means of [X, y] and the
    pooled within-team cross-products: Sherman-Morrison inside each team (I + lt J) and once
    more per hospital (A + lh 1 1') give log|V|, X'V^-1 X, X'V^-1 y and y'V^-1 y in closed
    form. The fixed effects and sigma2 are profiled out, leaving a two-parameter criterion in
    lme4's relative Cholesky factors theta = (sqrt(lt), sqrt(lh)) >= 0, minimised with L-BFGS-B
    using its analytic gradient. Every step is a numpy reduction over teams (``np.bincount``);
    nothing loops over teams or hospitals, so 1.5 million respondents fit in about a second.
    The criterion is lme4's ``REMLcrit`` term for term
    (log|L|^2 + log|R_X|^2 + (n - p) * (1 + log(2 pi pwrss / (n - p)))). Fixed covariates
    (case mix, cross-level predictors) are allowed and fitted exactly as well. The tests hold
    it to lme4 (tests/fixtures/r/lme4_reference.R) and cross-check it with statsmodels
    MixedLM (tests/support/statsmodels_mixedlm.py, a test oracle, not part of the package).

``fit_change``
    Each hospital's change between two waves (the exact solver with wave as a fixed effect).

Both return a :class:`NestedFit`; ``variance_row``, ``teams_table``, ``hospitals_table`` and
``apply_suppression`` turn it into the rows of docs/outputs.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from flaqum.constants import Z95

__all__ = [
    "NestedFit",
    "ChangeFit",
    "fit_nested",
    "fit_change",
    "variance_row",
    "teams_table",
    "hospitals_table",
    "apply_suppression",
    "SINGULAR_TOL",
    "Z95",
]

#: A relative Cholesky factor (theta = sd_component / sd_residual) below this is "at zero":
#: the tolerance of ``lme4::isSingular``.
SINGULAR_TOL = 1e-4

VARIANCE_COLUMNS = [
    "scale",
    "n_respondents",
    "n_teams",
    "n_hospitals",
    "intercept",
    "var_hospital",
    "var_team",
    "var_residual",
    "vpc_hospital",
    "vpc_team",
    "converged",
    "singular",
]
TEAM_COLUMNS = [
    "scale",
    "hospital_id",
    "team_id",
    "n",
    "raw_mean",
    "eb_mean",
    "eb_se",
    "ci_low",
    "ci_high",
    "suppressed",
]
HOSPITAL_COLUMNS = [c for c in TEAM_COLUMNS if c != "team_id"]
_MASKED = ["raw_mean", "eb_mean", "eb_se", "ci_low", "ci_high"]


@dataclass
class NestedFit:
    """A fitted random-intercept model of one score; the shape both fitting routes return.

    ``hospitals``: hospital_id, n, raw_mean, eb_mean, eb_se, ci_low, ci_high, ranef, ranef_sd.
    ``teams``: hospital_id, team_id, n, raw_mean, eb_mean, eb_se, ci_low, ci_high, ranef,
    ranef_sd, ranef_hospital. ``ranef``/``ranef_sd`` are the level's own conditional mode and
    conditional SD (lme4 ``ranef(condVar = TRUE)``); eb_mean and eb_se are defined in
    :func:`fit_nested`. A level that is not in the model has an empty frame.
    """

    intercept: float
    intercept_se: float
    var_hospital: float
    var_team: float
    var_residual: float
    vpc_hospital: float
    vpc_team: float
    n_respondents: int
    n_teams: int
    n_hospitals: int
    converged: bool
    singular: bool
    reml_criterion: float
    hospitals: pd.DataFrame
    teams: pd.DataFrame
    theta: dict = field(default_factory=dict)
    fixed_effects: pd.DataFrame | None = None
    n_dropped: int = 0
    method: str = "exact"
    eb_se_kind: str = "conditional"
    message: str = ""


# --------------------------------------------------------------------------------------------
# Grouping
# --------------------------------------------------------------------------------------------


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(pd.Series(values), sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


@dataclass
class _Groups:
    """Codes of the top level ("hospital") and the unit level ("team", nested in the top)."""

    top: np.ndarray  # (N,) top code of each row
    unit: np.ndarray  # (N,) unit code of each row
    top_of_unit: np.ndarray  # (J,) top code of each unit
    top_labels: np.ndarray  # (H,)
    unit_labels: np.ndarray  # (J,) the unit's own label (team_id)


def _nest(top_values, unit_values) -> _Groups:
    """Codes for units nested in tops: a unit is the pair (top, unit label), never the label."""
    top, top_labels = _factorize(top_values)
    if unit_values is None:
        return _Groups(top, top, np.arange(len(top_labels)), top_labels, top_labels)
    lab, lab_uniques = _factorize(unit_values)
    key = top * np.int64(len(lab_uniques)) + lab
    unit, keys = _factorize(key)
    keys = keys.astype(np.int64)
    return _Groups(
        top, unit, keys // len(lab_uniques), top_labels, lab_uniques[keys % len(lab_uniques)]
    )


# --------------------------------------------------------------------------------------------
# The exact REML solver on unit-level sufficient statistics
# --------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    """Sufficient statistics of Z = [X, y] (X's column 0 the intercept; other columns and y
    centred by their means, which leaves the REML criterion unchanged)."""

    N: int
    p: int
    n: np.ndarray  # (J,) unit sizes
    zbar: np.ndarray  # (J, p + 1) unit means of the centred Z
    Wz: np.ndarray  # (p + 1, p + 1) pooled within-unit cross-products of Z
    top: np.ndarray  # (J,) top code of each unit
    H: int
    zmean: np.ndarray  # (p + 1,) the centring (0 for the intercept)


def _group_means(codes: np.ndarray, Z: np.ndarray, n: np.ndarray) -> np.ndarray:
    K = len(n)
    sums = [np.bincount(codes, Z[:, i], minlength=K) for i in range(Z.shape[1])]
    return np.column_stack(sums) / n[:, None]


def _sufficient(y: np.ndarray, X: np.ndarray, g: _Groups) -> _Stats:
    Z = np.column_stack([X, y]).astype(float)
    zmean = Z.mean(axis=0)
    zmean[0] = 0.0
    Z -= zmean
    J, H = len(g.top_of_unit), len(g.top_labels)
    n = np.bincount(g.unit, minlength=J).astype(float)
    zbar = _group_means(g.unit, Z, n)
    Z -= zbar[g.unit]
    Wz = Z.T @ Z
    return _Stats(len(y), X.shape[1], n, zbar, Wz, g.top_of_unit, H, zmean)


def _by_top(s: _Stats, wts: np.ndarray, M: np.ndarray) -> np.ndarray:
    """sum over the units of each top of wts * M (M: (J, k)) -> (H, k)."""
    cols = [np.bincount(s.top, wts * M[:, i], minlength=s.H) for i in range(M.shape[1])]
    return np.column_stack(cols)


def _reml(lt: float, lh: float, s: _Stats, grad: bool = True):
    """-2 REML log-likelihood at variance ratios (lt, lh) = (var_team, var_hospital) / sigma2,
    and its gradient in (lt, lh).

    Per unit: c = 1 + lt n, w = n / c (= 1' A^-1 1 with A = I + lt J). Per top: W = sum w,
    a = 1 + lh W, m = sum w zbar. Then log|V / s2| = sum log c + sum log a and
    Z' V^-1 Z s2 = Wz + sum w zbar zbar' - lh sum m m' / a, whose blocks are X'V^-1X, X'V^-1y and
    y'V^-1y; pwrss = y'V^-1y - y'V^-1X (X'V^-1X)^-1 X'V^-1y.
    """
    N, p, n, zb = s.N, s.p, s.n, s.zbar
    c = 1.0 + lt * n
    w = n / c
    W = np.bincount(s.top, w, minlength=s.H)
    a = 1.0 + lh * W
    m = _by_top(s, w, zb)
    ma = m / a[:, None]
    M = s.Wz + (zb * w[:, None]).T @ zb - lh * (ma.T @ m)
    P, U, Q = M[:p, :p], M[:p, p], M[p, p]
    try:
        PiU = np.linalg.solve(P, U)
    except np.linalg.LinAlgError:
        return (np.inf, np.zeros(2)) if grad else np.inf
    R2 = Q - float(U @ PiU)
    sign, logdetP = np.linalg.slogdet(P)
    dof = N - p
    if not (R2 > 0 and sign > 0):
        return (np.inf, np.zeros(2)) if grad else np.inf
    logdet = float(np.sum(np.log1p(lt * n)) + np.sum(np.log1p(lh * W)))
    f = logdet + logdetP + dof * (1.0 + np.log(2.0 * np.pi * R2 / dof))
    if not grad:
        return f
    w2 = w * w
    W2 = np.bincount(s.top, w2, minlength=s.H)
    dm = -_by_top(s, w2, zb)  # d m / d lt
    dM_t = -(zb * w2[:, None]).T @ zb - lh * (
        (dm / a[:, None]).T @ m + ma.T @ dm + lh * (m * (W2 / a**2)[:, None]).T @ m
    )
    dM_h = -(ma.T @ ma)
    Pi = np.linalg.inv(P)
    out = np.empty(2)
    for k, (dlogdet, dM) in enumerate(
        ((float(np.sum(w) - lh * np.sum(W2 / a)), dM_t), (float(np.sum(W / a)), dM_h))
    ):
        dP, dU, dQ = dM[:p, :p], dM[:p, p], dM[p, p]
        dR2 = dQ - 2.0 * float(PiU @ dU) + float(PiU @ dP @ PiU)
        out[k] = dlogdet + float(np.sum(Pi * dP)) + dof * dR2 / R2
    return f, out


def _optimise(s: _Stats, free: tuple[bool, bool]) -> tuple[np.ndarray, float, bool, str]:
    """Minimise the REML criterion over theta = (theta_team, theta_hospital) >= 0.

    Start from the best point of a small grid (the criterion is cheap), then L-BFGS-B with the
    analytic gradient (d/dtheta = 2 theta d/dlambda) on the criterion divided by n.
    ``converged``: the projected gradient (criterion / n, per unit of theta) is below 1e-6.
    """
    idx = [k for k in range(2) if free[k]]

    def full(x):
        th = np.zeros(2)
        th[idx] = x
        return th

    def fun(x):
        th = full(x)
        f, gl = _reml(th[0] ** 2, th[1] ** 2, s)
        if not np.isfinite(f):
            return 1e300, np.zeros(len(idx))
        return f / s.N, (2.0 * th * gl)[idx] / s.N

    grid = [0.03, 0.1, 0.3, 1.0, 3.0]
    starts = np.array(np.meshgrid(*[grid] * len(idx))).reshape(len(idx), -1).T
    best = min(starts, key=lambda x: fun(x)[0])
    res = optimize.minimize(
        fun,
        best,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, None)] * len(idx),
        options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 1000, "maxls": 50},
    )
    x = np.maximum(res.x, 0.0)
    f, gx = fun(x)
    # projected gradient: at the bound only a negative (inward) gradient would matter
    pg = np.where(x > 0, gx, np.minimum(gx, 0.0))
    ok = bool(f < 1e300 and np.all(np.abs(pg) <= 1e-6))
    return full(x), f * s.N, ok, str(res.message)


def _at(s: _Stats, lt: float, lh: float) -> dict:
    """Everything downstream of the variance ratios: beta, sigma2, Cov(beta), the conditional
    modes and variances of both levels (beta at its estimate), in the original units of X, y."""
    p, n, zb = s.p, s.n, s.zbar
    c = 1.0 + lt * n
    w = n / c
    W = np.bincount(s.top, w, minlength=s.H)
    a = 1.0 + lh * W
    m = _by_top(s, w, zb)
    M = s.Wz + (zb * w[:, None]).T @ zb - lh * ((m / a[:, None]).T @ m)
    P, U, Q = M[:p, :p], M[:p, p], M[p, p]
    beta_c = np.linalg.solve(P, U)
    s2 = (Q - float(U @ beta_c)) / (s.N - p)
    # back to uncentred X: beta0 = beta0_c + ybar - sum_k beta_k xbar_k
    Tm = np.eye(p)
    Tm[0, 1:] = -s.zmean[1:p]
    beta = Tm @ beta_c
    beta[0] += s.zmean[p]
    cov_beta = s2 * Tm @ np.linalg.inv(P) @ Tm.T
    r = zb[:, p] - zb[:, :p] @ beta_c  # unit mean residual from the fixed part
    # top level: b | y, beta ~ N(lh sum w r / a, s2 lh / a)
    b = lh * np.bincount(s.top, w * r, minlength=s.H) / a
    vb = s2 * lh / a
    # unit level given its top: u = k (r - b), k = lt n / c
    k = lt * n / c
    u = k * (r - b[s.top])
    vu = s2 * lt / c + k * k * vb[s.top]
    v_sum = s2 * lt / c + vb[s.top] / c**2  # Var(b + u | y), incl. Cov(b, u | y) = -k vb
    xbar = zb[:, :p] + s.zmean[:p]  # unit means of the uncentred X
    mX = _by_top(s, w, xbar)  # (H, p)
    return {
        "beta": beta,
        "cov_beta": cov_beta,
        "s2": s2,
        "lt": lt,
        "lh": lh,
        "a": a,
        "c": c,
        "k": k,
        "xbar": xbar,
        "mX": mX,
        "top_re": b,
        "top_v": vb,
        "unit_re": u,
        "unit_vre": vu,
        "unit_v": v_sum,
    }


def _eb(sol: dict, top_of_unit: np.ndarray, xref_top: np.ndarray, xref_unit: np.ndarray | None):
    """EB means of a reference row per top / unit, with the fixed-effect part of their
    prediction-error variance: g' Cov(beta) g, g = d eb / d beta; the two error parts (random
    effects given beta, and beta) are uncorrelated (Henderson)."""
    beta, C, lh, a = sol["beta"], sol["cov_beta"], sol["lh"], sol["a"]
    g_top = xref_top - lh * sol["mX"] / a[:, None]
    out = {
        "top_eb": xref_top @ beta + sol["top_re"],
        "top_vfix": np.einsum("hi,ij,hj->h", g_top, C, g_top),
    }
    if xref_unit is not None:
        k = sol["k"]
        g_u = (
            xref_unit
            - k[:, None] * sol["xbar"]
            - ((1.0 - k) * lh / a[top_of_unit])[:, None] * sol["mX"][top_of_unit]
        )
        out["unit_eb"] = xref_unit @ beta + sol["top_re"][top_of_unit] + sol["unit_re"]
        out["unit_vfix"] = np.einsum("ji,ik,jk->j", g_u, C, g_u)
    return out


def _reference_rows(X: np.ndarray, codes: np.ndarray, K: int) -> np.ndarray:
    """Per group, the design row of a reference respondent: columns constant within every group
    (group-level predictors) at the group's value, the others (case mix) at the sample mean."""
    n = np.bincount(codes, minlength=K).astype(float)
    gm = _group_means(codes, X, n)
    dev = X - gm[codes]
    const = np.all(np.abs(dev) <= 1e-12 * np.maximum(1.0, np.abs(X)), axis=0)
    return np.where(const[None, :], gm, X.mean(axis=0)[None, :])


# --------------------------------------------------------------------------------------------
# Public API: the exact solver
# --------------------------------------------------------------------------------------------


def _formula_vars(name: str) -> set[str]:
    """Names a patsy factor such as ``C(profession)`` or ``np.log(tenure)`` may use."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", name))


def _covariate_columns(df: pd.DataFrame, covariates) -> tuple[str, list[str]]:
    covariates = list(covariates)
    rhs = " + ".join(covariates) if covariates else "1"
    if not covariates:
        return rhs, []
    import patsy

    terms = patsy.ModelDesc.from_formula(f"_y ~ {rhs}").rhs_termlist
    used = {v for t in terms for f in t.factors for v in _formula_vars(f.name())}
    return rhs, sorted(used & set(df.columns))


def _prepare(df: pd.DataFrame, y: str, cols: list[str]) -> tuple[pd.DataFrame, int]:
    missing = [c for c in dict.fromkeys([y, *cols]) if c not in df.columns]
    if missing:
        raise KeyError(f"column(s) not in the data: {', '.join(missing)}")
    cols = list(dict.fromkeys([y, *cols]))
    keep = df[cols].notna().all(axis=1).to_numpy()
    d = df.loc[keep, cols]
    if len(d) == 0:
        raise ValueError(f"no rows with a value of {y!r} (and its grouping ids) to fit")
    return d, int((~keep).sum())


def _design(d: pd.DataFrame, rhs: str) -> tuple[np.ndarray, list[str]]:
    if rhs == "1":
        return np.ones((len(d), 1)), ["Intercept"]
    import patsy

    fast = _simple_design(d, rhs)
    if fast is not None:
        return fast
    X = patsy.dmatrix(rhs, d, return_type="dataframe", NA_action="raise")
    if "Intercept" not in X.columns:
        raise ValueError("the model needs an intercept; drop '0 +' / '- 1' from the covariates")
    X = X[["Intercept", *[c for c in X.columns if c != "Intercept"]]]
    return X.to_numpy(float), list(X.columns)


_TERM = re.compile(r"^(?:C\((?P<cat>[A-Za-z_][A-Za-z0-9_.]*)\)|(?P<num>[A-Za-z_][A-Za-z0-9_.]*))$")


def _simple_design(d: pd.DataFrame, rhs: str) -> tuple[np.ndarray, list[str]] | None:
    """The design of ``1 + C(a) + x + ...`` built with numpy, as patsy builds it.

    patsy reads a text column value by value in Python (15 s for C(profession) on 1.5 million
    rows); for main effects of categorical and numeric columns the design is plain treatment
    coding (first sorted level as reference, columns named ``C(a)[T.level]``), so it is built
    here from the column's codes. Anything else (interactions, transforms) returns None and goes
    through patsy.
    """
    cols, names = [np.ones(len(d))], ["Intercept"]
    for term in (t.strip() for t in rhs.split("+")):
        m = _TERM.match(term)
        if m is None or term == "1":
            if term == "1":
                continue
            return None
        if m["cat"]:
            codes, levels = pd.factorize(d[m["cat"]], sort=True)
            for j, level in enumerate(levels[1:], start=1):
                cols.append((codes == j).astype(float))
                names.append(f"C({m['cat']})[T.{level}]")
        else:
            v = d[m["num"]]
            if not pd.api.types.is_numeric_dtype(v) or pd.api.types.is_bool_dtype(v):
                return None
            cols.append(v.to_numpy(float))
            names.append(m["num"])
    return np.column_stack(cols), names


def _frames(yv, g: _Groups, sol, eb, eb_se, both_levels):
    H, J = len(g.top_labels), len(g.unit_labels)
    n_top = np.bincount(g.top, minlength=H)
    total = eb_se == "total"
    top_se = np.sqrt(sol["top_v"] + (eb["top_vfix"] if total else 0.0))
    tops = pd.DataFrame(
        {
            "hospital_id": g.top_labels,
            "n": n_top,
            "raw_mean": np.bincount(g.top, yv, minlength=H) / n_top,
            "eb_mean": eb["top_eb"],
            "eb_se": top_se,
            "ci_low": eb["top_eb"] - Z95 * top_se,
            "ci_high": eb["top_eb"] + Z95 * top_se,
            "ranef": sol["top_re"],
            "ranef_sd": np.sqrt(sol["top_v"]),
        }
    )
    if not both_levels:
        return tops, None
    n_u = np.bincount(g.unit, minlength=J)
    u_se = np.sqrt(sol["unit_v"] + (eb["unit_vfix"] if total else 0.0))
    units = pd.DataFrame(
        {
            "hospital_id": g.top_labels[g.top_of_unit],
            "team_id": g.unit_labels,
            "n": n_u,
            "raw_mean": np.bincount(g.unit, yv, minlength=J) / n_u,
            "eb_mean": eb["unit_eb"],
            "eb_se": u_se,
            "ci_low": eb["unit_eb"] - Z95 * u_se,
            "ci_high": eb["unit_eb"] + Z95 * u_se,
            "ranef": sol["unit_re"],
            "ranef_sd": np.sqrt(sol["unit_vre"]),
            "ranef_hospital": sol["top_re"][g.top_of_unit],
        }
    )
    return tops, units


def _empty_teams() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "hospital_id",
            "team_id",
            "n",
            "raw_mean",
            "eb_mean",
            "eb_se",
            "ci_low",
            "ci_high",
            "ranef",
            "ranef_sd",
            "ranef_hospital",
        ]
    )


def _empty_hospitals() -> pd.DataFrame:
    return pd.DataFrame(
        columns=[
            "hospital_id",
            "n",
            "raw_mean",
            "eb_mean",
            "eb_se",
            "ci_low",
            "ci_high",
            "ranef",
            "ranef_sd",
        ]
    )


def _check_levels(n_levels: int, n_obs: int, name: str) -> None:
    # lme4's checks: a grouping factor needs 2+ levels and fewer levels than observations
    if n_levels < 2:
        raise ValueError(f"{name}: only {n_levels} group(s); a variance needs at least 2")
    if n_levels >= n_obs:
        raise ValueError(
            f"{name}: {n_levels} groups for {n_obs} respondents; every group has one "
            "respondent, so its variance cannot be told apart from the residual variance"
        )


def _vpc(vh: float, vt: float, ve: float) -> tuple[float, float]:
    tot = vh + vt + ve
    return (vh / tot, vt / tot) if tot > 0 else (np.nan, np.nan)


def _assemble(
    d,
    y,
    g,
    sol,
    eb,
    hospital,
    team,
    eb_se,
    crit,
    converged,
    message,
    names,
    dropped,
    method,
    theta_key=None,
):
    """A NestedFit from a solution on groups ``g`` (top = hospital, unit = team, or the one
    level of a 2-level model as the top)."""
    yv = d[y].to_numpy(float)
    s2 = sol["s2"]
    both = hospital is not None and team is not None
    tops, units = _frames(yv, g, sol, eb, eb_se, both)
    H, J = len(g.top_labels), len(g.unit_labels)
    th_t, th_h = np.sqrt(sol["lt"]), np.sqrt(sol["lh"])
    if both:
        vh, vt, n_h, n_t = sol["lh"] * s2, sol["lt"] * s2, H, J
        th = {"hospital": th_h, "team": th_t}
    elif hospital is not None:
        units, vh, vt, n_h, n_t = _empty_teams(), sol["lh"] * s2, 0.0, H, 0
        th = {"hospital": th_h}
    else:  # team only: the top level is the team
        units = tops.rename(columns={"hospital_id": "team_id"}).assign(ranef_hospital=0.0)
        units.insert(0, "hospital_id", np.nan)
        tops, vh, vt, n_h, n_t = _empty_hospitals(), 0.0, sol["lh"] * s2, 0, H
        th = {"team": th_h}
    if theta_key is not None:
        th = theta_key(th)
    vpc_h, vpc_t = _vpc(vh, vt, s2)
    se = np.sqrt(np.diag(sol["cov_beta"]))
    return NestedFit(
        intercept=float(sol["beta"][0]),
        intercept_se=float(se[0]),
        var_hospital=float(vh),
        var_team=float(vt),
        var_residual=float(s2),
        vpc_hospital=float(vpc_h),
        vpc_team=float(vpc_t),
        n_respondents=len(yv),
        n_teams=n_t,
        n_hospitals=n_h,
        converged=bool(converged),
        singular=bool(min(th.values()) < SINGULAR_TOL),
        reml_criterion=float(crit),
        hospitals=tops,
        teams=units,
        theta={k: float(v) for k, v in th.items()},
        fixed_effects=_fe_table(names, sol["beta"], se),
        n_dropped=dropped,
        method=method,
        eb_se_kind=eb_se,
        message=message,
    )


def fit_nested(
    df: pd.DataFrame,
    y: str,
    hospital: str | None = "hospital_id",
    team: str | None = "team_id",
    covariates: list[str] | tuple[str, ...] = (),
    eb_se: str = "conditional",
) -> NestedFit:
    """REML fit of ``y ~ 1 + (1 | hospital) + (1 | hospital:team)``, exactly as lme4::lmer.

    Rows with a missing ``y`` (or a missing id or covariate) are dropped (``n_dropped``).
    Teams are keyed by (hospital, team): team labels that repeat across hospitals are different
    teams. With ``hospital=None`` or ``team=None`` the model has the one remaining grouping level
    (``y ~ 1 + (1 | team)`` / ``y ~ 1 + (1 | hospital)``); the absent level's variance is 0 and
    its frame is empty. (With ``hospital=None`` the team column alone is the key.)

    ``covariates``: optional fixed-effect formula terms (patsy: ``"C(profession)"``,
    ``"tenure"``, ``"maturity"``), fitted exactly too (the statistics become unit means and
    within-unit cross-products of [X, y]). The intercept is always in the model.

    Empirical-Bayes means are lme4's ``coef()``: hospital eb_mean = intercept + hospital
    conditional mode; team eb_mean = intercept + hospital mode + team mode. With covariates the
    intercept is replaced by the fixed part of a reference respondent: design columns that are
    constant within every group (a hospital's maturity) at the group's own value, the rest (case
    mix) at the sample mean, i.e. a case-mix adjusted mean.

    ``eb_se="conditional"`` (default): the SD of the random effects given the data with the
    fixed effects and variance parameters at their estimates, i.e. lme4's
    ``ranef(condVar = TRUE)`` postVar, sigma2 * Lambda (L L')^-1 Lambda'. For a hospital that is
    the SD of its mode; for a team it is the SD of (hospital mode + team mode), which includes
    their (negative) conditional covariance: Var(b_h + u_j | y) = s2 lt / c_j + Var(b_h | y) /
    c_j^2 with c_j = 1 + lt n_j, lt = var_team / var_residual (lme4 reports the two diagonal
    blocks only, not this sum). ``eb_se="total"``: the full prediction-error variance of eb_mean
    (Henderson's C22 of the mixed-model equations), adding the fixed effects' uncertainty
    g' Cov(beta) g with g = d eb_mean / d beta (for the intercept-only model
    Var(intercept) / a_h^2 for a hospital, a_h = 1 + lh sum_j n_j / c_j, and
    Var(intercept) / (a_h c_j)^2 for a team). Intervals are eb_mean +/- 1.96 eb_se.

    ``singular`` is decided from the estimates: a relative Cholesky factor theta below
    ``SINGULAR_TOL`` (1e-4), as ``lme4::isSingular``. ``converged``: the projected gradient of
    the criterion vanishes at the solution (see ``_optimise``).
    """
    if hospital is None and team is None:
        raise ValueError("give at least one grouping column (hospital and/or team)")
    if eb_se not in ("conditional", "total"):
        raise ValueError("eb_se must be 'conditional' or 'total'")
    rhs, cov_cols = _covariate_columns(df, covariates)
    ids = [c for c in (hospital, team) if c is not None]
    d, dropped = _prepare(df, y, [*ids, *cov_cols])
    X, names = _design(d, rhs)
    yv = d[y].to_numpy(float)
    both = hospital is not None and team is not None
    top_col = hospital if hospital is not None else team
    g = _nest(d[top_col].to_numpy(), d[team].to_numpy() if both else None)
    H, J = len(g.top_labels), len(g.unit_labels)
    _check_levels(H, len(yv), top_col)
    if both:
        _check_levels(J, len(yv), f"{hospital}:{team}")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError(f"the covariates are collinear (design rank < {X.shape[1]} columns)")
    s = _sufficient(yv, X, g)
    theta, crit, ok, msg = _optimise(s, (both, True))
    sol = _at(s, theta[0] ** 2, theta[1] ** 2)
    xref_top = _reference_rows(X, g.top, H)
    xref_unit = _reference_rows(X, g.unit, J) if both else None
    eb = _eb(sol, g.top_of_unit, xref_top, xref_unit)
    return _assemble(
        d, y, g, sol, eb, hospital, team, eb_se, crit, ok, msg, names, dropped, "exact"
    )


def _fe_table(terms, est, se) -> pd.DataFrame:
    est, se = np.asarray(est, float), np.asarray(se, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": est,
            "se": se,
            "z": z,
            "p": 2.0 * stats.norm.sf(np.abs(z)),
            "ci_low": est - Z95 * se,
            "ci_high": est + Z95 * se,
        }
    )


# --------------------------------------------------------------------------------------------
# Change between two waves
# --------------------------------------------------------------------------------------------


@dataclass
class ChangeFit:
    """Hospital change between two waves; see :func:`fit_change`."""

    waves: tuple
    wave_effect: float
    wave_effect_se: float
    intercept: float
    var_hospital: float
    var_team: float
    var_residual: float
    converged: bool
    singular: bool
    reml_criterion: float
    changes: pd.DataFrame
    cells: pd.DataFrame


def fit_change(
    df_two_waves: pd.DataFrame,
    y: str,
    wave_col: str = "wave",
    hospital: str = "hospital_id",
    team: str | None = "team_id",
    include_fixed: bool = True,
) -> ChangeFit:
    """Each hospital's change in ``y`` between two waves, with a 95% interval.

    Model (REML, lme4 notation; wave2 is 1 in the later wave, by sorted wave label):

        y ~ 1 + wave2 + (1 | hospital:wave) + (1 | hospital:team:wave)

    i.e. wave as a fixed effect and separate hospital-by-wave (and team-by-wave) random
    intercepts whose variances the two waves share, fitted by the exact solver. A hospital's
    change is (b0 + b1 + m_{h,2}) - (b0 + m_{h,1}) = b1 + m_{h,2} - m_{h,1}, the difference of
    its two wave-specific empirical-Bayes means, each shrunk toward its wave's mean. Its
    variance is Var(m_{h,1} | y) + Var(m_{h,2} | y) (the two cells are conditionally
    independent) and, with ``include_fixed`` (default), + g' Cov(b) g for the uncertainty of the
    fixed effects, g = x_{h,2} / a_{h,2} - x_{h,1} / a_{h,1} (the delta method, exact here since
    the change is linear in b). The model has no persistent hospital effect, so it does not
    borrow a hospital's level in one wave to estimate the other: the change is shrunk less than
    under a model with correlated hospital levels, which keeps the intervals on the wide side.
    Only hospitals with respondents in both waves appear in ``changes``; ``cells`` has every
    hospital-by-wave EB mean.
    """
    d, _ = _prepare(df_two_waves, y, [c for c in (wave_col, hospital, team) if c is not None])
    waves = sorted(pd.unique(d[wave_col]))
    if len(waves) != 2:
        raise ValueError(f"{wave_col!r} must hold exactly two waves; found {len(waves)}: {waves}")
    w2 = (d[wave_col] == waves[1]).to_numpy()
    cell = pd.MultiIndex.from_arrays([d[hospital].to_numpy(), w2]).to_flat_index()
    g = _nest(np.asarray(cell, dtype=object), d[team].to_numpy() if team is not None else None)
    H = len(g.top_labels)
    yv = d[y].to_numpy(float)
    _check_levels(H, len(yv), f"{hospital}:{wave_col}")
    if team is not None:
        _check_levels(len(g.unit_labels), len(yv), f"{hospital}:{team}:{wave_col}")
    X = np.column_stack([np.ones(len(yv)), w2.astype(float)])
    s = _sufficient(yv, X, g)
    theta, crit, ok, _msg = _optimise(s, (team is not None, True))
    sol = _at(s, theta[0] ** 2, theta[1] ** 2)
    xcell = np.column_stack([np.ones(H), [float(lab[1]) for lab in g.top_labels]])
    eb = _eb(sol, g.top_of_unit, xcell, None)["top_eb"]
    n_top = np.bincount(g.top, minlength=H)
    cells = pd.DataFrame(
        {
            "hospital_id": [lab[0] for lab in g.top_labels],
            "wave": [waves[int(lab[1])] for lab in g.top_labels],
            "n": n_top,
            "raw_mean": np.bincount(g.top, yv, minlength=H) / n_top,
            "eb_mean": eb,
            "eb_se": np.sqrt(sol["top_v"]),
        }
    )
    idx = pd.DataFrame({"h": cells["hospital_id"], "w": xcell[:, 1].astype(int), "i": range(H)})
    wide = idx.pivot(index="h", columns="w", values="i").dropna().astype(int)
    i1, i2 = wide[0].to_numpy(), wide[1].to_numpy()
    var = sol["top_v"][i1] + sol["top_v"][i2]
    if include_fixed:
        a = sol["a"]
        gvec = xcell[i2] / a[i2, None] - xcell[i1] / a[i1, None]
        var = var + np.einsum("hi,ij,hj->h", gvec, sol["cov_beta"], gvec)
    se = np.sqrt(var)
    change = eb[i2] - eb[i1]
    changes = pd.DataFrame(
        {
            "hospital_id": wide.index.to_numpy(),
            "n_1": n_top[i1],
            "n_2": n_top[i2],
            "eb_mean_1": eb[i1],
            "eb_mean_2": eb[i2],
            "change": change,
            "change_se": se,
            "ci_low": change - Z95 * se,
            "ci_high": change + Z95 * se,
        }
    )
    th = theta if team is not None else theta[1:]
    return ChangeFit(
        waves=tuple(waves),
        wave_effect=float(sol["beta"][1]),
        wave_effect_se=float(np.sqrt(sol["cov_beta"][1, 1])),
        intercept=float(sol["beta"][0]),
        var_hospital=float(sol["lh"] * sol["s2"]),
        var_team=float(sol["lt"] * sol["s2"]),
        var_residual=float(sol["s2"]),
        converged=ok,
        singular=bool(np.min(th) < SINGULAR_TOL),
        reml_criterion=float(crit),
        changes=changes,
        cells=cells,
    )


# --------------------------------------------------------------------------------------------
# The rows of docs/outputs.md
# --------------------------------------------------------------------------------------------


def variance_row(fit: NestedFit, scale: str) -> dict[str, object]:
    """One row of ``variance.csv`` for ``scale``."""
    return {
        "scale": scale,
        "n_respondents": fit.n_respondents,
        "n_teams": fit.n_teams,
        "n_hospitals": fit.n_hospitals,
        "intercept": fit.intercept,
        "var_hospital": fit.var_hospital,
        "var_team": fit.var_team,
        "var_residual": fit.var_residual,
        "vpc_hospital": fit.vpc_hospital,
        "vpc_team": fit.vpc_team,
        "converged": bool(fit.converged),
        "singular": bool(fit.singular),
    }


def apply_suppression(df: pd.DataFrame, min_group_size: int) -> pd.DataFrame:
    """Add ``suppressed`` (n < min_group_size) and blank that row's means, SEs and CIs (NaN)."""
    out = df.copy()
    out["suppressed"] = out["n"].to_numpy() < min_group_size
    cols = [c for c in _MASKED if c in out.columns]
    out[cols] = out[cols].astype(float)
    out.loc[out["suppressed"], cols] = np.nan
    return out


def teams_table(fit: NestedFit, scale: str, min_group_size: int = 0) -> pd.DataFrame:
    """Rows of ``teams.csv`` for ``scale`` (columns: docs/outputs.md), suppression applied."""
    t = fit.teams.assign(scale=scale)
    return apply_suppression(t, min_group_size)[TEAM_COLUMNS].reset_index(drop=True)


def hospitals_table(fit: NestedFit, scale: str, min_group_size: int = 0) -> pd.DataFrame:
    """Rows of ``hospitals.csv`` for ``scale`` (columns: docs/outputs.md), suppression applied."""
    h = fit.hospitals.assign(scale=scale)
    return apply_suppression(h, min_group_size)[HOSPITAL_COLUMNS].reset_index(drop=True)
