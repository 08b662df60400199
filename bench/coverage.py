"""Coverage of the pipeline's 95% intervals on synthetic consortia drawn from stated truth.

    nice .venv/bin/python bench/coverage.py --reps 200 --hospitals 30 --jobs 2 --compare \
        --record
    nice .venv/bin/python bench/coverage.py --reps 200 --hospitals 15 --jobs 2 --record

Each replication r draws one wave (with ``--change`` two waves, every hospital in both) of a
synthetic consortium with
``flaqum.simulate.generate_consortium`` (seed = ``--seed`` + r, CSV surveys, ``--scale`` of the
demo's respondent numbers) and runs the package's own stages on it as ``tests/test_recovery.py``
does: ``ingest_source`` -> ``score_source`` -> ``fit_nested`` -> ``run_hypothesis``. It records,
per quantity, whether the printed 95% interval covers the truth, the estimate's error and the
interval's width:

- hospital and team empirical-Bayes means of psych_safety (``fit_nested(staff,
  "psych_safety")``) against the true means of ``ground_truth.json`` (``hospitals`` and
  ``teams``, the latter keyed "hospital_id:team_id"), after removing the mean difference between
  the latent metric of the truth and the observed score, per replication as test_recovery does;
  for hospitals also with one common shift (the mean over replications), with
  ``eb_se="total"`` and with no shift;
- the focal effect of each hypothesis in ``config/hypotheses`` (plain fit, and the
  plausible-values fit where there is one) against the ``TRUTH`` parameter that test_recovery
  pairs it with;
- with ``--change``: each hospital's change in psych_safety between the two waves
  (``fit_change``, the interval of the trend report) against the true change (the stated
  truth; the metric shift cancels in a difference) and against c * true change (observed
  metric), no shift removed;
- with ``--compare``: the hypotheses also with ``outcomes.INFERENCE = "asymptotic"`` (HC1 /
  CR1 with normal references for count models: the inference before issue 11) on the same
  data, rows marked "asymptotic";
- the cross-level slope of mm_total in ``fit_nested(staff + maturity, "psych_safety",
  covariates=["mm_total"])`` against ``TRUTH["psych_safety"]["gamma_maturity"]``. The generator
  puts that slope on the *observed* mm_total (``mm_c`` in ``generate_wave`` is the mean of the 52
  generated matrix items, which have no missing answers, so the scored mm_total is exactly that
  value), not on the latent maturity: the predictor has no measurement error relative to the
  true model and no attenuation comes from it.

The stated truth is on the latent metric; a score is a mean of rounded items clipped at the
scale ends, with a few straight-liners, so it measures the latent score with a slope c a little
below 1. A second table therefore compares the same intervals with the truth on the observed
metric, c estimated per replication as test_recovery's ``attenuation`` does (slope of observed
team means on true team means, teams of 15 or more): means as c * true + shift, an effect per
point of a score predictor divided by the predictor's c, an effect on a score outcome
multiplied by the outcome's c.

Coverage Monte-Carlo SE: sqrt(p (1 - p) / R) for one parameter per replication; for hospital
and team means (a proportion per replication) the SD of the per-replication proportions over
sqrt(R), since the units of one replication are not independent trials. SD/SE compares the
spread of the estimates with the reported SEs (about 1 when they are right).
Output: the tables on stdout and, with ``--record``, ``bench/results/<date>-coverage.md``
(``--record-name`` to choose the file name). ``--jobs`` runs replications in parallel processes
(each replication's seed is fixed, so the result does not depend on the number of jobs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from flaqum import outcomes
from flaqum.config import load_study
from flaqum.constants import Z95
from flaqum.hypotheses import load_hypothesis
from flaqum.multilevel import fit_change, fit_nested
from flaqum.outcomes import run_hypothesis
from flaqum.simulate import TRUTH, generate_consortium
from flaqum.testing.recovery import attenuation, hypothesis_inputs, score_wave

ROOT = Path(__file__).resolve().parents[1]
WAVE = "w1"
WAVE2 = "w2"
NOMINAL = 0.95
# scored scale -> (source, generator block of its true means)
SCALES = {
    "psych_safety": ("staff", "psych_safety"),
    "team_collab": ("staff", "team_collab"),
    "qs_prof_total": ("staff", "qs_prof"),
    "qs_pat_total": ("patients", "qs_pat"),
}
# hypothesis id, focal term, TRUTH key, score predictor, score outcome (for the metric): the
# pairing of tests/test_recovery.py
HYPOTHESES = [
    (
        "psych_safety_incident_reporting",
        "psych_safety",
        ("outcomes", "beta_psych_safety_incidents"),
        "psych_safety",
        None,
    ),
    (
        "climate_mortality",
        "team_collab",
        ("outcomes", "beta_team_collab_mortality"),
        "team_collab",
        None,
    ),
    (
        "prof_quickscan_patient_quickscan",
        "qs_prof_total",
        ("qs_pat", "delta_prof"),
        "qs_prof_total",
        "qs_pat_total",
    ),
    ("maturity_psych_safety", "mm_total", ("psych_safety", "gamma_maturity"), None, "psych_safety"),
]
SLOPE_ROW = "cross-level slope mm_total -> psych_safety (fit_nested)"
MEAN_ROWS = {  # key: (label, level, interval suffix, shift convention)
    "h_rep": (
        "hospital EB means psych_safety (shift per rep, as test_recovery)",
        "hospital",
        "",
        "per_rep",
    ),
    "h_common": ("hospital EB means psych_safety (common shift)", "hospital", "", "common"),
    "h_total": (
        "hospital EB means psych_safety (common shift, eb_se=total)",
        "hospital",
        "_total",
        "common",
    ),
    "h_none": ("hospital EB means psych_safety (no shift removed)", "hospital", "", "none"),
    "t_rep": ("team EB means psych_safety (shift per rep)", "team", "", "per_rep"),
}
CHANGE_ROW = "hospital change psych_safety w1 -> w2 (fit_change, no shift)"


# --------------------------------------------------------------------------------------------
# One replication
# --------------------------------------------------------------------------------------------


def hospital_slope(hospitals: pd.DataFrame, wt: dict, block: str, scale: str) -> float:
    """Slope of the hospitals' raw means on their true means (a check on the team slope)."""
    h = hospitals[hospitals["scale"] == scale].set_index("hospital_id")
    true = pd.Series(wt["hospitals"][block]).reindex(h.index)
    return float(np.polyfit(true.to_numpy(float), h["raw_mean"].to_numpy(float), 1)[0])


def _row(quantity: str, truth: float, truth_obs: float, est) -> dict:
    """Stated truth, truth on the observed metric, estimate and 95% interval of a parameter."""
    row = {"quantity": quantity, "truth": truth, "truth_obs": truth_obs}
    for k in ("estimate", "ci_low", "ci_high"):
        row[k] = np.nan if est is None else float(est[k])
    return row


def _run_hypotheses(hypotheses: dict, inputs: dict, inference: str) -> dict:
    saved = outcomes.INFERENCE
    outcomes.INFERENCE = inference
    try:
        return {hid: run_hypothesis(hyp, inputs, WAVE) for hid, hyp in hypotheses.items()}
    finally:
        outcomes.INFERENCE = saved


def replicate(
    study,
    seed: int,
    n_hospitals: int,
    scale: float,
    hypotheses: dict,
    change: bool = False,
    compare: bool = False,
) -> dict:
    """One synthetic wave (``change``: two) through the pipeline.

    Returns ``means`` (per level, one row per unit: true mean, EB mean, conditional and, for
    hospitals, total intervals of psych_safety; with ``change`` also the hospitals' changes),
    ``rows`` (each parameter's truths, estimate, interval) and ``metric`` (per scale: team and
    hospital slopes c and the mean shift). ``compare``: the hypotheses also with the
    asymptotic inference, rows marked so.
    """
    with tempfile.TemporaryDirectory(prefix="flaqum-coverage-") as tmp:
        out = Path(tmp)
        waves = (WAVE, WAVE2) if change else (WAVE,)
        truth = generate_consortium(
            out,
            study,
            n_hospitals=n_hospitals,
            waves=waves,
            seed=seed,
            fmt="csv",
            scale=scale,
            join_late=0,
        )
        wt = truth["waves"][WAVE]
        scores = score_wave(study, out / WAVE, out)
        inputs = hypothesis_inputs(scores, out / WAVE)
        results = _run_hypotheses(hypotheses, inputs, outcomes.INFERENCE)
        results_asy = _run_hypotheses(hypotheses, inputs, "asymptotic") if compare else None
        if change:
            (out / "w2work").mkdir()
            staff2 = score_wave(study, out / WAVE2, out / "w2work", sources=("staff",))["staff"]

    c = {sid: attenuation(scores[src], wt, block, sid) for sid, (src, block) in SCALES.items()}
    metric = [
        {
            "scale": sid,
            "c (team means)": c[sid],
            "c (hospital means)": hospital_slope(inputs["hospitals"], wt, block, sid),
        }
        for sid, (_, block) in SCALES.items()
    ]

    # 1-2. hospital and team EB means (conditional and, for hospitals, total SEs)
    staff = scores["staff"]
    fit = fit_nested(staff, "psych_safety")
    tot = fit_nested(staff, "psych_safety", eb_se="total").hospitals.set_index("hospital_id")
    hosp = fit.hospitals.set_index("hospital_id")
    hosp = pd.DataFrame(
        {
            "true": pd.Series(wt["hospitals"]["psych_safety"]).reindex(hosp.index),
            "eb_mean": hosp["eb_mean"],
            "ci_low": hosp["ci_low"],
            "ci_high": hosp["ci_high"],
            "ci_low_total": tot["ci_low"].reindex(hosp.index),
            "ci_high_total": tot["ci_high"].reindex(hosp.index),
        }
    )
    teams = fit.teams.copy()
    keys = teams["hospital_id"].astype(str) + ":" + teams["team_id"].astype(str)
    teams = pd.DataFrame(
        {
            "true": keys.map(wt["teams"]["psych_safety"]).to_numpy(float),
            "eb_mean": teams["eb_mean"].to_numpy(float),
            "ci_low": teams["ci_low"].to_numpy(float),
            "ci_high": teams["ci_high"].to_numpy(float),
        }
    )
    means = {"hospital": hosp, "team": teams, "c": c["psych_safety"]}
    if change:
        both = pd.concat([staff.assign(wave=WAVE), staff2.assign(wave=WAVE2)], ignore_index=True)
        ch = fit_change(both, "psych_safety").changes.set_index("hospital_id")
        t1 = pd.Series(wt["hospitals"]["psych_safety"])
        t2 = pd.Series(truth["waves"][WAVE2]["hospitals"]["psych_safety"])
        means["change"] = pd.DataFrame(
            {
                "true": (t2 - t1).reindex(ch.index),
                "eb_mean": ch["change"],
                "ci_low": ch["ci_low"],
                "ci_high": ch["ci_high"],
            }
        )

    # 3. hypotheses: plain and plausible-values fits
    rows = []
    for res_set, mark in ((results, ""), (results_asy, ", asymptotic")):
        if res_set is None:
            continue
        for hid, term, (block, key), pred, outc in HYPOTHESES:
            res = res_set[hid]
            value = TRUTH[block][key]
            obs = value / (c[pred] if pred else 1.0) * (c[outc] if outc else 1.0)
            est = next((e for e in res["estimates"] if e["term"] == term), None)
            rows.append(_row(f"{hid}: {term} (plain{mark})", value, obs, est))
            pv = (res.get("plausible_values") or {}).get("estimates") or []
            if pv:
                est = next((e for e in pv if e["term"] == term), None)
                rows.append(_row(f"{hid}: {term} (plausible values{mark})", value, obs, est))

    # 4. cross-level slope, maturity merged by hospital
    mat = scores["maturity"][["hospital_id", "mm_total"]]
    data = staff.merge(mat, on="hospital_id", how="left")
    fe = fit_nested(data, "psych_safety", covariates=["mm_total"]).fixed_effects
    gamma = TRUTH["psych_safety"]["gamma_maturity"]
    rows.append(
        _row(SLOPE_ROW, gamma, gamma * c["psych_safety"], fe.set_index("term").loc["mm_total"])
    )
    return {"means": means, "rows": rows, "metric": metric}


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def _entry(quantity, truth, estimate, bias, p, mcse, width, sd_se, reps) -> dict:
    return {
        "quantity": quantity,
        "truth": truth,
        "mean estimate": estimate,
        "bias": bias,
        "coverage": p,
        "MC SE": mcse,
        "mean CI width": width,
        "SD/SE": sd_se,
        "reps": reps,
    }


def _units_entry(label: str, reps: list[dict], level: str, suffix: str, ref_and_shift) -> dict:
    """Coverage of unit (hospital or team) intervals; ``ref_and_shift(frame, rep)`` gives the
    reference values and the shift subtracted from the interval in that replication."""
    props, widths, z2, errs, trues, ests = [], [], [], [], [], []
    for rep in reps:
        u = rep["means"][level].dropna(subset=["true", "eb_mean"])
        ref, shift = ref_and_shift(u, rep)
        lo, hi = u[f"ci_low{suffix}"] - shift, u[f"ci_high{suffix}"] - shift
        props.append(((lo <= ref) & (ref <= hi)).mean())
        widths.append((hi - lo).mean())
        z2.append(((u["eb_mean"] - shift - ref) / ((hi - lo) / (2 * Z95))) ** 2)
        errs.append((u["eb_mean"] - u["true"]).mean())
        trues.append(u["true"].mean())
        ests.append(u["eb_mean"].mean())
    props = np.array(props)
    n = len(props)
    return _entry(
        label,
        np.mean(trues),
        np.mean(ests),
        np.mean(errs),
        props.mean(),
        props.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan,
        np.mean(widths),
        float(np.sqrt(pd.concat(z2).mean())),
        n,
    )


def summarise_means(reps: list[dict]) -> tuple[list[dict], list[dict], float]:
    """Rows for hospital and team means against the stated truth (shift conventions) and on the
    observed metric (c * true + shift, c per replication); also the common hospital shift."""
    common = float(
        np.mean(
            [
                (r["means"]["hospital"]["eb_mean"] - r["means"]["hospital"]["true"]).mean()
                for r in reps
            ]
        )
    )

    def shift_rule(kind):
        def rule(u, rep):
            if kind == "per_rep":
                return u["true"], (u["eb_mean"] - u["true"]).mean()
            return u["true"], {"common": common, "none": 0.0}[kind]

        return rule

    def observed(u, rep):
        ref = rep["means"]["c"] * u["true"]
        return ref, (u["eb_mean"] - ref).mean()

    stated = [
        _units_entry(label, reps, level, suffix, shift_rule(kind))
        for label, level, suffix, kind in MEAN_ROWS.values()
    ]
    obs = [
        _units_entry(
            f"{level} EB means psych_safety (c * true, shift per rep)", reps, level, "", observed
        )
        for level in ("hospital", "team")
    ]
    if all("change" in r["means"] for r in reps):
        stated.append(_units_entry(CHANGE_ROW, reps, "change", "", shift_rule("none")))
        obs.append(
            _units_entry(
                CHANGE_ROW.replace("no shift", "c * true, no shift"),
                reps,
                "change",
                "",
                lambda u, rep: (rep["means"]["c"] * u["true"], 0.0),
            )
        )
    return stated, obs, common


def summarise_rows(rows: list[dict], truth_col: str) -> list[dict]:
    """Per parameter: truth, mean estimate, bias, coverage and its MC SE, width, SD/SE."""
    df = pd.DataFrame(rows)
    out = []
    for quantity, g in df.groupby("quantity", sort=False):
        g = g.dropna(subset=["estimate", "ci_low", "ci_high"])
        reps = len(g)
        covered = (g["ci_low"] <= g[truth_col]) & (g[truth_col] <= g["ci_high"])
        p = covered.mean() if reps else np.nan
        width = g["ci_high"] - g["ci_low"]
        sd_se = g["estimate"].std(ddof=1) / (width / (2 * Z95)).mean() if reps > 1 else np.nan
        out.append(
            _entry(
                quantity,
                g[truth_col].mean(),
                g["estimate"].mean(),
                (g["estimate"] - g[truth_col]).mean(),
                p,
                np.sqrt(p * (1 - p) / reps) if reps else np.nan,
                width.mean(),
                sd_se,
                reps,
            )
        )
    return out


def summarise_metric(metric: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(metric)
    g = df.groupby("scale", sort=False)
    out = g.mean()
    out.insert(1, "MC SE", g["c (team means)"].std(ddof=1) / np.sqrt(g.size()))
    return out.reset_index()


def verdict(row: dict) -> str:
    """'nominal' if the coverage is within 2 MC SE of 95% (at least 0.01 either way)."""
    tol = max(2 * (row["MC SE"] if np.isfinite(row["MC SE"]) else 0.0), 0.01)
    if row["coverage"] < NOMINAL - tol:
        return "below"
    if row["coverage"] > NOMINAL + tol:
        return "above"
    return "nominal"


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    for col in ("truth", "mean estimate", "bias", "mean CI width"):
        shown[col] = shown[col].map(lambda v: f"{v:.4f}")
    shown["SD/SE"] = shown["SD/SE"].map(lambda v: f"{v:.2f}")
    shown["coverage"] = [
        f"{p:.3f} ({s:.3f})" for p, s in zip(table["coverage"], table["MC SE"], strict=True)
    ]
    shown["verdict"] = [verdict(r) for r in table.to_dict("records")]
    return shown.drop(columns=["MC SE"]).rename(columns={"coverage": "coverage (MC SE)"})


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def interpretation(
    stated: pd.DataFrame,
    obs: pd.DataFrame,
    metric: pd.DataFrame,
    common_shift: float,
    n_hospitals: int,
) -> str:
    """A short reading of the tables, generated from the numbers."""
    s = {r["quantity"]: r for r in stated.to_dict("records")}
    o = {r["quantity"]: r for r in obs.to_dict("records")}
    c = metric.set_index("scale")["c (team means)"]
    lines = []
    for name, rows in (("stated truth", s), ("truth on the observed metric", o)):
        below = [q for q, r in rows.items() if verdict(r) == "below"]
        above = [q for q, r in rows.items() if verdict(r) == "above"]
        text = (
            f"Against the {name}: {len(rows) - len(below) - len(above)} of {len(rows)} rows "
            f"within 2 MC SE of 95%"
        )
        if below:
            text += "; below: " + "; ".join(f"{q} ({rows[q]['coverage']:.3f})" for q in below)
        if above:
            text += "; above: " + "; ".join(f"{q} ({rows[q]['coverage']:.3f})" for q in above)
        lines.append(text + ".")
    lines.append(
        "Metric: the scores measure the latent truth with slope c < 1 (rounded items clipped at "
        "the scale ends, 1% straight-liners): "
        + ", ".join(f"{k} {v:.3f}" for k, v in c.items())
        + " (team means, as test_recovery). A per-point effect of a score predictor is "
        "inflated by 1/c, an effect on a score outcome attenuated by c."
    )
    h = {k: s[MEAN_ROWS[k][0]] for k in MEAN_ROWS}
    h_obs = o["hospital EB means psych_safety (c * true, shift per rep)"]
    t_obs = o["team EB means psych_safety (c * true, shift per rep)"]
    lines.append(
        f"Hospital means: coverage {h['h_rep']['coverage']:.3f} with the shift removed per "
        f"replication (test_recovery), {h['h_common']['coverage']:.3f} with one common shift "
        f"({common_shift:+.4f}), {h['h_none']['coverage']:.3f} with none; eb_se='total' gives "
        f"{h['h_total']['coverage']:.3f} (width {h['h_total']['mean CI width']:.4f} vs "
        f"{h['h_common']['mean CI width']:.4f}: the intercept's uncertainty enters times "
        f"1 - reliability, small with hundreds of staff per hospital). A shift cannot undo the "
        f"compression, whose error grows with the distance from the mean and adds to the EB "
        f"shrinkage; against c * true coverage is {h_obs['coverage']:.3f} "
        f"(RMS z {h_obs['SD/SE']:.2f} vs {h['h_rep']['SD/SE']:.2f}). Team means: "
        f"{h['t_rep']['coverage']:.3f} against the stated truth, {t_obs['coverage']:.3f} "
        f"against c * true (RMS z {t_obs['SD/SE']:.2f})."
    )
    if verdict(h_obs) == "below" or verdict(t_obs) == "below":
        lines.append(
            "On the observed metric the EB intervals still fall short: eb_se plugs in the REML "
            f"variance components (var_hospital from {n_hospitals} hospitals) as if known."
        )
    for hid, term, *_ in HYPOTHESES:
        p, q = s[f"{hid}: {term} (plain)"], o[f"{hid}: {term} (plain)"]
        pv = s.get(f"{hid}: {term} (plausible values)")
        pv_txt = (
            f", plausible values {pv['coverage']:.3f}/"
            f"{o[f'{hid}: {term} (plausible values)']['coverage']:.3f}"
            if pv
            else " (no plausible values: mm_total has no eb_se)"
        )
        lines.append(
            f"{hid}: mean {p['mean estimate']:.3f} vs stated {p['truth']:.3f} "
            f"({p['bias'] / p['truth']:+.1%}) and observed-metric {q['truth']:.3f} "
            f"({q['bias'] / q['truth']:+.1%}); coverage stated/observed plain "
            f"{p['coverage']:.3f}/{q['coverage']:.3f}{pv_txt}; SD/SE {p['SD/SE']:.2f}."
        )
    sl, slo = s[SLOPE_ROW], o[SLOPE_ROW]
    lines.append(
        f"Cross-level slope: gamma acts on the observed mm_total (the scored mm_total is the "
        f"generator's value), so nothing attenuates it through the predictor; the outcome's "
        f"c gives {slo['truth']:.3f}. Mean {sl['mean estimate']:.3f} "
        f"({sl['bias'] / sl['truth']:+.1%} of the stated, {slo['bias'] / slo['truth']:+.1%} of "
        f"the observed-metric truth), coverage {sl['coverage']:.3f}/{slo['coverage']:.3f}, "
        f"SD/SE {sl['SD/SE']:.2f} (Wald z on the REML plug-in SE, {n_hospitals} hospitals "
        f"carrying mm_total)."
    )
    return "\n".join(f"- {line}" for line in lines)


def machine() -> str:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {ram:.0f} GiB RAM, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )


NOTES = (
    "Bias = mean(estimate - truth); for unit means (truth and estimate averaged over units and "
    "replications; truth is the stated true mean in both tables) it is mean(eb_mean - true), "
    "the metric shift, before any shift is removed. "
    "SD/SE: for parameters the SD of the estimates over replications over the mean SE (CI width "
    "/ 3.92); for unit means the root mean square of (error / SE) after the row's shift. Both "
    "are about 1 when the SEs are right. Coverage MC SE: sqrt(p(1-p)/R) per parameter; for unit "
    "means the SD of the per-replication proportions / sqrt(R). Verdict: nominal if within "
    "max(2 MC SE, 0.01) of 0.95."
)


def write_record(stated, obs, metric, common, args, argv, runtime, per_rep) -> Path:
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    path = res / (args.record_name or f"{today}-coverage.md")
    seeds = f"{args.seed}..{args.seed + args.reps_done - 1}"
    stopped = (
        f"; stopped by --max-minutes, of {args.reps} asked" if args.reps_done < args.reps else ""
    )
    body = [
        f"# Coverage of the 95% intervals on synthetic consortia, {today}",
        "",
        f"Machine: {machine()}.  ",
        f"Command: `nice .venv/bin/python bench/coverage.py {' '.join(argv)}`  ",
        f"Runtime: {runtime:.0f} s wall clock with {args.jobs} job(s), "
        f"{np.mean(per_rep):.1f} s per replication and process (max {np.max(per_rep):.1f} s), "
        f"on a machine shared with other work.  ",
        f"Design: {args.reps_done} replications (seeds {seeds}{stopped}), "
        f"{args.hospitals} hospitals, "
        f"scale {args.scale}, {'two waves' if args.change else 'one wave'}, CSV surveys; "
        f"stages as tests/test_recovery.py. Hypothesis inference: {args.inference} "
        f"(hospital level {args.hc if args.inference == 'small_sample' else 'HC1'})"
        f"{'; also asymptotic on the same data (rows marked asymptotic)' if args.compare else ''}.",
        "",
        "## Against the stated truth (latent metric)",
        "",
        format_table(stated).to_markdown(index=False),
        "",
        "## Against the truth on the observed metric (c per replication, as test_recovery)",
        "",
        format_table(obs).to_markdown(index=False),
        "",
        NOTES,
        "",
        "Slope c of observed on true means (mean over replications; MC SE of the team slope):",
        "",
        metric.to_markdown(index=False, floatfmt=".4f"),
        "",
        "## Interpretation",
        "",
        interpretation(stated, obs, metric, common, args.hospitals),
        "",
    ]
    path.write_text("\n".join(body))
    return path


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


_WORKER: dict = {}


def _one(seed: int) -> tuple[dict, float]:
    """One replication in a worker (the study and hypotheses inherited by fork)."""
    w = _WORKER
    t0 = time.perf_counter()
    rep = replicate(
        w["study"],
        seed,
        w["args"].hospitals,
        w["args"].scale,
        w["hypotheses"],
        change=w["args"].change,
        compare=w["args"].compare,
    )
    return rep, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="replications (seeds seed..seed+reps-1)")
    ap.add_argument("--hospitals", type=int, default=30)
    ap.add_argument("--scale", type=float, default=1.0, help="respondents, fraction of the demo")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first replication")
    ap.add_argument("--record", action="store_true", help="write bench/results/<date>-coverage.md")
    ap.add_argument(
        "--record-name",
        default=None,
        help="file name under bench/results/ (default <date>-coverage.md)",
    )
    ap.add_argument("--jobs", type=int, default=1, help="parallel processes")
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop after this many minutes and summarise the replications done "
        "(the first k seeds, so still a fixed design; the record says k)",
    )
    ap.add_argument(
        "--inference",
        choices=("small_sample", "asymptotic"),
        default=outcomes.INFERENCE,
        help="outcomes.INFERENCE of the hypotheses",
    )
    ap.add_argument(
        "--hc",
        choices=("HC2", "HC3"),
        default=outcomes.HOSPITAL_HC,
        help="outcomes.HOSPITAL_HC: the hospital-level sandwich",
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="also the asymptotic inference (HC1/CR1, normal) on the same data",
    )
    ap.add_argument(
        "--no-change",
        dest="change",
        action="store_false",
        help="one wave only: no change-since-the-previous-wave row",
    )
    args = ap.parse_args(argv)
    outcomes.INFERENCE = args.inference
    outcomes.HOSPITAL_HC = args.hc

    study = load_study(ROOT / "config" / "config.yaml", root=ROOT)
    hypotheses = {
        hid: load_hypothesis(ROOT / "config" / "hypotheses" / f"{hid}.yaml")
        for hid, *_ in HYPOTHESES
    }
    reps, per_rep = [], []
    start = time.perf_counter()
    _WORKER.update(study=study, hypotheses=hypotheses, args=args)
    seeds = [args.seed + r for r in range(args.reps)]
    if args.jobs > 1:
        pool = multiprocessing.get_context("fork").Pool(args.jobs)
        done = pool.imap(_one, seeds)
    else:
        pool, done = None, map(_one, seeds)
    stopped = False
    for r, (seed, (rep, seconds)) in enumerate(zip(seeds, done, strict=False)):
        per_rep.append(seconds)
        reps.append(rep)
        cover = []
        for level in ("hospital", "team"):
            u = rep["means"][level].dropna(subset=["true"])
            shift = (u["eb_mean"] - u["true"]).mean()
            inside = (u["ci_low"] - shift <= u["true"]) & (u["true"] <= u["ci_high"] - shift)
            cover.append(f"{level}s {inside.sum()}/{len(u)}")
        hits = sum(x["ci_low"] <= x["truth"] <= x["ci_high"] for x in rep["rows"])
        print(
            f"rep {r + 1:3d}/{args.reps} seed {seed}: {per_rep[-1]:5.1f} s, covered: "
            f"{', '.join(cover)}, parameters {hits}/{len(rep['rows'])}",
            flush=True,
        )
        if args.max_minutes and time.perf_counter() - start > 60 * args.max_minutes:
            stopped = r + 1 < args.reps
            break
    runtime = time.perf_counter() - start
    if pool is not None:
        if stopped:
            pool.terminate()
        else:
            pool.close()
        pool.join()
    if stopped:
        print(
            f"\nStopped after {len(reps)} of {args.reps} replications (--max-minutes "
            f"{args.max_minutes:g}): seeds {args.seed}..{args.seed + len(reps) - 1}."
        )
    args.reps_done = len(reps)

    mean_stated, mean_obs, common = summarise_means(reps)
    rows = [row for rep in reps for row in rep["rows"]]
    stated = pd.DataFrame(mean_stated + summarise_rows(rows, "truth"))
    obs = pd.DataFrame(mean_obs + summarise_rows(rows, "truth_obs"))
    metric = summarise_metric([m for rep in reps for m in rep["metric"]])
    with pd.option_context("display.width", 250, "display.max_colwidth", 80):
        print("\nAgainst the stated truth (latent metric):")
        print(format_table(stated).to_string(index=False))
        print("\nAgainst the truth on the observed metric (c per replication):")
        print(format_table(obs).to_string(index=False))
        print("\nSlope c of observed on true means:")
        print(metric.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\nRuntime {runtime:.0f} s ({np.mean(per_rep):.1f} s per replication).")
    print("\n" + interpretation(stated, obs, metric, common, args.hospitals))
    if args.record:
        path = write_record(stated, obs, metric, common, args, argv, runtime, per_rep)
        print(f"\nWrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
