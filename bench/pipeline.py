"""Benchmark the DAG on generated consortia of several sizes.

    .venv/bin/python bench/pipeline.py --sizes 30 300 3000 --stage foundation
    .venv/bin/python bench/pipeline.py --sizes 30 300 3000 --stage all --report-sample 3 --lme4

For each size it generates one wave with the synthetic generator (not timed), runs Snakemake
with ``--cores 2`` on it up to the chosen stage, and collects the per-job figures of Snakemake's
``benchmark:`` files (wall seconds, peak RSS) into one table, with the total wall time of the run
and the peak memory of the whole process tree (sampled). Results: ``bench/out/`` (git-ignored)
and, with ``--record``, a dated Markdown table in ``bench/results/``.

``--lme4`` (needs R with lme4): after each run, the scored professionals' psychological safety
that the run wrote is fitted once more by ``fit_nested`` (what the multilevel rule does) and by
``lme4::lmer`` on the same rows, and both times are recorded with their ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (Linux /proc)."""
    total = 0
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        stack.extend(children.get(p, []))
    return total / 1024


def run_monitored(cmd, cwd, log):
    peak = [0.0]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(proc.pid))
                time.sleep(0.25)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        start = time.perf_counter()
        rc = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        t.join()
    if rc != 0:
        raise SystemExit(f"snakemake failed (see {log})")
    return wall, peak[0]


def targets(stage: str, wave: str, proj: Path) -> list[str]:
    if stage == "all":
        return []
    from flaqum.config import load_study

    study = load_study(ROOT / "config" / "config.yaml", root=proj)
    out = [f"results/{wave}/validation.json"]
    out += [
        f"data/processed/{wave}/{s}.parquet"
        for s in study.sources
        if (proj / "data/raw" / wave / f"{s}.sav").exists()
        or (proj / "data/raw" / wave / f"{s}.csv").exists()
    ]
    out += [f"results/{wave}/scores/{s}.parquet" for s in study.sources if study.scales_for(s)]
    return out


def bench_size(n: int, stage: str, out: Path, report_sample: int, seed: int) -> pd.DataFrame:
    from flaqum.config import load_study
    from flaqum.simulate import generate_consortium

    proj = out / f"h{n}"
    if proj.exists():
        shutil.rmtree(proj)
    proj.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "environment.yml"):
        (proj / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "config", proj / "config")
    study = load_study(ROOT / "config" / "config.yaml", root=ROOT)
    t0 = time.perf_counter()
    truth = generate_consortium(
        proj / "data/raw", study, n_hospitals=n, waves=("2024-1",), seed=seed
    )
    gen = time.perf_counter() - t0
    w = truth["waves"]["2024-1"]
    print(
        f"{n} hospitals: {w['n_staff']:,} professionals + {w['n_patients']:,} patients "
        f"generated in {gen:.1f} s",
        flush=True,
    )
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *targets(stage, "2024-1", proj),
        "--cores",
        "2",
        "--nocolor",
        "--quiet",
        "rules",
    ]
    if stage == "all" and report_sample:
        hosp = sorted(
            pd.read_csv(proj / "data/raw/2024-1/organisations.csv", dtype=str)["hospital_id"]
        )[:report_sample]
        cmd += ["--config", "report={'hospitals': [" + ",".join(f"'{h}'" for h in hosp) + "]}"]
    wall, peak = run_monitored(cmd, proj, out / f"h{n}.log")
    rows = []
    for tsv in sorted((proj / "benchmarks").rglob("*.tsv")):
        b = pd.read_csv(tsv, sep="\t")
        rows.append(
            {
                "hospitals": n,
                "job": str(tsv.relative_to(proj / "benchmarks"))[:-4],
                "wall_s": float(b["s"].iloc[0]),
                "max_rss_mb": float(b["max_rss"].iloc[0]),
            }
        )
    df = pd.DataFrame(rows)
    df.loc[len(df)] = {
        "hospitals": n,
        "job": "TOTAL (snakemake run, 2 cores)",
        "wall_s": wall,
        "max_rss_mb": peak,
    }
    df["respondents"] = w["n_staff"] + w["n_patients"]
    print(df.to_string(index=False), flush=True)
    return df


def lme4_ratio(proj: Path, n: int, wave: str = "2024-1") -> dict:
    """Time fit_nested and lme4::lmer on the scores this run wrote (psych_safety, staff)."""
    import json
    import tempfile

    from multilevel_vs_lme4 import R_SCRIPT

    from flaqum.multilevel import fit_nested

    d = pd.read_parquet(proj / f"results/{wave}/scores/staff.parquet")
    d = d[["hospital_id", "team_id", "psych_safety"]].dropna()
    d = d.rename(columns={"psych_safety": "score"})
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fit = fit_nested(d, "score")
        times.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fit.R").write_text(R_SCRIPT)
        csv = Path(tmp) / "d.csv"
        d.to_csv(csv, index=False)
        out = subprocess.run(
            ["Rscript", str(Path(tmp) / "fit.R"), str(csv)],
            capture_output=True,
            text=True,
            check=True,
        )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rel = max(abs(getattr(fit, k) / r[k] - 1) for k in ("var_hospital", "var_team", "var_residual"))
    row = {
        "hospitals": n,
        "respondents": len(d),
        "teams": fit.n_teams,
        "fit_nested_s": min(times),
        "lmer_s": r["elapsed"],
        "lmer_over_fit_nested": r["elapsed"] / min(times),
        "max_rel_diff_variances": rel,
    }
    print(pd.DataFrame([row]).to_string(index=False), flush=True)
    return row


def main(argv=None):
    from flaqum.simulate import DEMO

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[30, 300, 3000])
    ap.add_argument("--stage", choices=["foundation", "all"], default="foundation")
    ap.add_argument(
        "--report-sample",
        type=int,
        default=3,
        help="with --stage all: render reports of this many hospitals (0: all)",
    )
    ap.add_argument("--seed", type=int, default=DEMO["seed"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--record", action="store_true", help="write bench/results/<date>-<stage>.md")
    ap.add_argument("--keep", action="store_true", help="keep the generated projects")
    ap.add_argument("--lme4", action="store_true", help="time lme4::lmer on the run's scores")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames, ratios = [], []
    for n in args.sizes:
        frames.append(bench_size(n, args.stage, out, args.report_sample, args.seed))
        if args.lme4:
            ratios.append(lme4_ratio(out / f"h{n}", n))
        if not args.keep:
            shutil.rmtree(out / f"h{n}", ignore_errors=True)
    table = pd.concat(frames, ignore_index=True)
    table.to_csv(out / f"bench-{args.stage}.csv", index=False)
    totals = table[table.job.str.startswith("TOTAL")]
    print("\nTotals:\n" + totals.to_string(index=False))
    if args.record:
        res = ROOT / "bench" / "results"
        res.mkdir(exist_ok=True)
        today = dt.date.today().isoformat()
        head = (
            f"# Benchmark: stage `{args.stage}`, {today}\n\nMachine: {os.cpu_count()} cores, "
            f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
            f"{platform.processor() or platform.machine()}, Python {platform.python_version()}."
            f"\nCommand: `python bench/pipeline.py {' '.join(argv or sys.argv[1:])}`\n\n"
        )
        (res / f"{today}-{args.stage}.md").write_text(
            head
            + "## Totals\n\n"
            + totals.to_markdown(index=False)
            + "\n\n## Per job\n\n"
            + table.to_markdown(index=False)
            + "\n"
            + (
                "\n## Variance components: fit_nested against lme4::lmer on the run's scores\n\n"
                + pd.DataFrame(ratios).to_markdown(index=False)
                + "\n"
                if ratios
                else ""
            )
        )


if __name__ == "__main__":
    main()
