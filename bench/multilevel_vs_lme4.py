"""Wall time of flaqum.multilevel.fit_nested against lme4::lmer on the same nested data.

    .venv/bin/python bench/multilevel_vs_lme4.py [--sizes 30 300 3000] [--no-r]

Data: simulate_nested with ~500 respondents per hospital (14-34 teams of 2-40; var_hospital
0.05, var_team 0.15, var_residual 0.8; seed 2025), written to a temporary CSV. Times: the
Python fit from an in-memory DataFrame (grouping included); in R only the lmer call, by
system.time, on the data frame read from that CSV (reading is not timed). Both use REML and
the model score ~ 1 + (1 | hospital_id) + (1 | hospital_id:team_id).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from flaqum.multilevel import fit_nested
from flaqum.simulate import simulate_nested

R_SCRIPT = r"""
suppressPackageStartupMessages(library(lme4))
a <- commandArgs(TRUE)
d <- read.csv(a[1], colClasses = c(hospital_id = "character", team_id = "character"))
fit <- NULL
tm <- system.time(fit <- lmer(score ~ 1 + (1 | hospital_id) + (1 | hospital_id:team_id),
                              data = d, REML = TRUE))
vc <- as.data.frame(VarCorr(fit))
cat(sprintf(paste0('{"elapsed": %.6f, "var_hospital": %.17g, "var_team": %.17g, ',
                   '"var_residual": %.17g, "remlcrit": %.17g}\n'),
    tm[["elapsed"]], vc$vcov[vc$grp == "hospital_id"], vc$vcov[vc$grp == "hospital_id:team_id"],
    vc$vcov[vc$grp == "Residual"], REMLcrit(fit)))
"""


def run(sizes: list[int], with_r: bool, repeats: int = 3) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rfile = Path(tmp) / "fit.R"
        rfile.write_text(R_SCRIPT)
        for h in sizes:
            d = simulate_nested(h, (14, 34), (2, 40), 0.05, 0.15, 0.8, 5.0, seed=2025)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fit = fit_nested(d, "score")
                times.append(time.perf_counter() - t0)
            row = {
                "hospitals": h,
                "teams": fit.n_teams,
                "respondents": fit.n_respondents,
                "python_s": min(times),
                "converged": fit.converged,
            }
            if with_r:
                csv = Path(tmp) / f"d{h}.csv"
                d.to_csv(csv, index=False)
                out = subprocess.run(
                    ["Rscript", str(rfile), str(csv)], capture_output=True, text=True, check=True
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rel = max(
                    abs(getattr(fit, k) / r[k] - 1)
                    for k in ("var_hospital", "var_team", "var_residual")
                )
                row.update(
                    lme4_s=r["elapsed"],
                    ratio=r["elapsed"] / row["python_s"],
                    max_rel_diff_var=rel,
                    remlcrit_diff=fit.reml_criterion - r["remlcrit"],
                )
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def _fmt(r: dict) -> str:
    s = f"| {r['hospitals']:>6} | {r['teams']:>7} | {r['respondents']:>9} | {r['python_s']:>9.3f} |"
    if "lme4_s" in r:
        s += (
            f" {r['lme4_s']:>8.2f} | {r['ratio']:>7.1f}x | {r['max_rel_diff_var']:.1e} | "
            f"{r['remlcrit_diff']:+.1e} |"
        )
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[30, 300, 3000])
    ap.add_argument("--no-r", action="store_true", help="time the Python fit only")
    a = ap.parse_args()
    print(
        "| hospitals | teams | respondents | fit_nested s | lmer s | lme4/python | "
        "max rel diff (variances) | REMLcrit python - lme4 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    run(a.sizes, not a.no_r)


if __name__ == "__main__":
    main()
