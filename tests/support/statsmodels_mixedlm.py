"""The statsmodels MixedLM route to the nested model: a test oracle for flaqum.multilevel.

``fit_nested_statsmodels`` fits the model of :func:`flaqum.multilevel.fit_nested`,
``y ~ covariates + (1 | hospital) + (1 | hospital:team)`` by REML, through ``statsmodels``
MixedLM with hospitals as groups and teams as a variance component within them
(``vc_formula``; never ``re_formula`` for nesting, statsmodels #7214). tests/test_multilevel.py
holds it to lme4 (1e-3) and to the exact solver (1e-6 where its optimiser converges): an
independent route to the same numbers. The pipeline never uses it, so it lives with the tests,
not in the package. It reuses the exact solver's private helpers (data preparation, EB means,
the NestedFit assembly) on purpose: only the variance estimates and the modes come from
statsmodels, so a difference between the two routes is a difference in the fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from flaqum.multilevel import (
    NestedFit,
    _assemble,
    _at,
    _covariate_columns,
    _eb,
    _factorize,
    _nest,
    _prepare,
    _reference_rows,
    _sufficient,
)

#: Tighter tolerances than statsmodels' own: the estimates come within ~1e-6 of the optimum.
_SM_OPTIONS = {"bfgs": {"gtol": 1e-9}, "powell": {"ftol": 1e-14}}


def fit_nested_statsmodels(
    df: pd.DataFrame,
    y: str,
    covariates: list[str] | tuple[str, ...] = (),
    hospital: str | None = "hospital_id",
    team: str | None = "team_id",
    methods: tuple[str, ...] = ("bfgs", "powell", "nm", "lbfgs"),
    fit_options: dict | None = None,
) -> NestedFit:
    """REML fit of ``y ~ covariates + (1 | hospital) + (1 | hospital:team)`` with statsmodels.

    ``covariates`` are formula terms (``"C(profession)"``, ``"tenure"``, ``"maturity"``).
    Hospitals are the groups and teams a variance component within each hospital
    (``vc_formula={"team": "0 + C(team)"}``), which nests teams by construction (never
    ``re_formula`` for nesting, statsmodels #7214). Each method in ``methods`` is tried in turn
    until a fit converges with a finite log-likelihood and non-negative variances (lbfgs can
    report converged=True with a nonsense llf when a variance collapses, statsmodels #10239);
    the best acceptable fit is kept. A singular fit is returned and flagged, never raised.
    ``fit_options`` (method -> keyword arguments of ``MixedLM.fit``) defaults to tighter
    tolerances than statsmodels' own (bfgs gtol 1e-9, powell ftol 1e-14), which bring the
    estimates to within ~1e-6 of the exact optimum instead of ~1e-4.

    Standard errors of the fixed effects are lme4's: sigma2 (X'V^-1 X)^-1 at statsmodels'
    variance estimates (statsmodels' own ``bse_fe`` comes from the joint information matrix and
    differs by up to ~1% under REML). eb_mean and the reference respondent are as in
    :func:`fit_nested`; the modes and eb_se come from statsmodels' ``random_effects`` and
    ``random_effects_cov`` (conditional on beta, like lme4's condVar; for teams the SD of
    hospital + team mode including their covariance). ``reml_criterion`` is -2 * statsmodels'
    REML log-likelihood.
    """
    from statsmodels.regression.mixed_linear_model import MixedLM

    if hospital is None and team is None:
        raise ValueError("give at least one grouping column (hospital and/or team)")
    rhs, cov_cols = _covariate_columns(df, covariates)
    ids = [c for c in (hospital, team) if c is not None]
    d, dropped = _prepare(df, y, [*ids, *cov_cols])
    d = d.reset_index(drop=True)
    both = hospital is not None and team is not None
    grp = hospital if hospital is not None else team
    gcodes, glabels = _factorize(d[grp].to_numpy())
    d["_g"] = gcodes
    kw = {}
    if both:
        d["_t"] = _factorize(d[team].to_numpy())[0]
        kw["vc_formula"] = {"team": "0 + C(_t)"}
    model = MixedLM.from_formula(f"{y} ~ {rhs}", groups="_g", re_formula="1", data=d, **kw)
    opts = _SM_OPTIONS if fit_options is None else fit_options
    res, used, msgs = None, "", []
    for meth in methods:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = model.fit(reml=True, method=[meth], **opts.get(meth, {}))
        except Exception as e:  # noqa: BLE001 - an optimiser failing is a reason to try the next
            msgs.append(f"{meth}: {type(e).__name__}: {e}")
            continue
        vcs = [float(r.cov_re.iloc[0, 0]), *(np.asarray(r.vcomp, float) if both else [])]
        good = bool(np.isfinite(r.llf) and np.all(np.isfinite(r.fe_params)))
        good = good and all(np.isfinite(v) and v >= -1e-12 for v in vcs)
        if good and (res is None or r.llf > res.llf + 1e-9):
            res, used = r, meth
        if good and r.converged:
            break
        msgs.append(f"{meth}: converged={r.converged}, llf={r.llf}")
    if res is None:
        raise RuntimeError("statsmodels MixedLM failed with every method: " + "; ".join(msgs))
    s2 = float(res.scale)
    v_top = max(float(res.cov_re.iloc[0, 0]), 0.0)
    v_unit = max(float(np.asarray(res.vcomp)[0]), 0.0) if both else 0.0
    X = np.asarray(model.exog, float)
    names = list(model.exog_names)
    order = [names.index("Intercept"), *[i for i, nm in enumerate(names) if nm != "Intercept"]]
    X, names = X[:, order], [names[i] for i in order]
    yv = d[y].to_numpy(float)
    g = _nest(d[grp].to_numpy(), d[team].to_numpy() if both else None)
    H, J = len(g.top_labels), len(g.unit_labels)
    sol = _at(_sufficient(yv, X, g), v_unit / s2 if both else 0.0, v_top / s2)
    # statsmodels' own estimates and modes replace the closed forms evaluated at them
    sol["cov_beta"] = sol["cov_beta"] * (s2 / sol["s2"])
    sol["beta"] = res.fe_params.to_numpy()[order]
    sol["s2"] = s2
    re_, rc = res.random_effects, res.random_effects_cov
    sol["top_re"] = np.array([float(re_[i].iloc[0]) for i in range(H)])
    sol["top_v"] = np.array([max(float(np.asarray(rc[i])[0, 0]), 0.0) for i in range(H)])
    if both:
        tcode = d.groupby(g.unit)["_t"].first().to_numpy()
        u_re, u_v, u_sum = np.empty(J), np.empty(J), np.empty(J)
        for h in range(H):  # statsmodels reports per group; one step per hospital
            sel = np.flatnonzero(g.top_of_unit == h)
            r_h, c_h = re_[h], np.asarray(rc[h])
            pos = {nm: i for i, nm in enumerate(r_h.index)}
            ix = np.array([pos[f"team[C(_t)[{t}]]"] for t in tcode[sel]])
            u_re[sel] = r_h.to_numpy()[ix]
            u_v[sel] = c_h[ix, ix]
            u_sum[sel] = c_h[0, 0] + c_h[ix, ix] + 2.0 * c_h[0, ix]
        sol["unit_re"], sol["unit_vre"] = u_re, np.maximum(u_v, 0.0)
        sol["unit_v"] = np.maximum(u_sum, 0.0)
    xref_top = _reference_rows(X, g.top, H)
    xref_unit = _reference_rows(X, g.unit, J) if both else None
    eb = _eb(sol, g.top_of_unit, xref_top, xref_unit)
    fit = _assemble(
        d,
        y,
        g,
        sol,
        eb,
        hospital,
        team,
        "conditional",
        -2.0 * float(res.llf),
        bool(res.converged),
        "; ".join(msgs),
        names,
        dropped,
        f"statsmodels-{used}",
    )
    return fit
