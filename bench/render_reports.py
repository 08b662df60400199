"""Benchmark the report stage: render every report of the demo consortium with Snakemake.

    .venv/bin/python bench/render_reports.py PROJECT [--cores 2] [--standins] [--record]

PROJECT is a working directory where the pipeline has run (data/processed, results). The
script deletes ``reports/`` there, re-runs only the report rules (``--forcerun render_reports
consortium_report``) with ``--cores 2`` and reports the wall time of the run, per report and in
total, and what one hospital report costs in CPU seconds of one core, median and max over the
reports (the render jobs log it per report: ``content``, the package's tables and figures;
``html``, the template executed by the kernel, the HTML written and scanned, the kernel's CPU
included; ``pdf``, the A4 PDF), and the render jobs' whole CPU time (Snakemake's benchmark
files: imports, kernel start and reading the wave included) per report. On a machine shared
with other work the wall times grow and the CPU seconds much less. ``--standins`` first writes
stand-in statistics (``flaqum.testing.standin``) for any results file the statistics stages have
not produced yet. Results: ``bench/out/render_reports.csv`` and, with ``--record``, a dated
Markdown note in ``bench/results/`` (``<date>-reports.md``, ``<date>-reports-2.md`` for the
day's second record: an earlier one is never overwritten).

Also recorded: the load average before and after the run (the machine may be shared), and a
report's share of the wave-level tables of the views that each render batch computes once
(``confidentiality.wave_tables``, logged per batch), spread over the batch's reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def _load(avg) -> str:
    return ", ".join(f"{x:.1f}" for x in avg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--standins", action="store_true")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args(argv)
    proj = args.project.resolve()

    from flaqum.config import load_study

    study = load_study(proj / "config" / "config.yaml", root=proj)
    waves = study.waves()
    if args.standins:
        from flaqum.testing.standin import write_standins

        write_standins(study, proj, waves)
    shutil.rmtree(proj / "reports", ignore_errors=True)
    targets = []
    for w in waves:
        hosp = sorted(
            pd.read_parquet(proj / "data" / "processed" / w / "organisations.parquet")[
                "hospital_id"
            ].astype(str)
        )
        targets += [f"reports/{w}/{h}.html" for h in hosp]
        if study.config["report"].get("pdf", True):
            targets += [f"reports/{w}/{h}.pdf" for h in hosp]
        targets.append(f"reports/{w}/research/consortium.html")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(args.cores),
        "--nocolor",
        # only the report rules run: a change of code elsewhere (another branch's statistics)
        # does not pull the whole pipeline into the benchmark
        "--rerun-triggers",
        "mtime",
        "--forcerun",
        "render_reports",
        "consortium_report",
        "--",
        *targets,
    ]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    if res.returncode != 0:
        sys.exit(f"snakemake failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    missing = [t for t in targets if not (proj / t).exists()]
    if missing:
        sys.exit(f"reports missing: {missing[:5]}")
    per, batch_cpu, tables_cpu = [], 0.0, 0.0
    line = re.compile(r"INFO (\S+?)/(\S+): ([\d.]+) s -> \S+; cpu ([\d.]+) s \(([^)]*)\)")
    tables_line = re.compile(r"INFO \S+: wave tables of the views: cpu ([\d.]+) s")
    for w in waves:
        for log in sorted((proj / "logs" / w).glob("report_batch*.log")):
            tables_cpu += sum(float(x) for x in tables_line.findall(log.read_text()))
            for m in line.finditer(log.read_text()):
                parts = {k: float(v) for k, v in (x.split() for x in m.group(5).split(", "))}
                per.append(
                    {
                        "wave": m.group(1),
                        "hospital": m.group(2),
                        "seconds": float(m.group(3)),
                        "cpu": float(m.group(4)),
                        **{f"cpu_{k}": v for k, v in parts.items()},
                    }
                )
        for tsv in sorted((proj / "benchmarks" / w).glob("report_batch*.tsv")):
            batch_cpu += float(pd.read_csv(tsv, sep="\t")["cpu_time"].iloc[-1])
    per = pd.DataFrame(per)
    n_hosp = sum(t.endswith(".html") and "/research/" not in t for t in targets)
    n = n_hosp + len(waves)
    lines = [
        f"# Report rendering benchmark ({dt.date.today()})",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; snakemake --cores {args.cores}",
        f"- project: {len(waves)} waves, {n_hosp} hospital reports (HTML"
        + (" and A4 PDF" if study.config["report"].get("pdf", True) else "")
        + f") + {len(waves)} consortium reports, engine: "
        + study.config["report"]["engine"],
        f"- wall time of the report stage: **{wall:.1f} s in total, {wall / n:.2f} s per report**"
        f" ({n} reports)",
        f"- load average (1, 5, 15 min) before the run: {_load(load_before)}; after: "
        f"{_load(load_after)} (on {os.cpu_count()} CPUs)",
    ]
    if len(per):
        lines.append(
            f"- wall time of one hospital report inside a render batch: median "
            f"{per['seconds'].median():.2f} s, max {per['seconds'].max():.2f} s"
        )
        lines += [
            "",
            "CPU seconds of one core per hospital report (target: 1.0 s, PDF included):",
            "",
            "| part | median | max |",
            "| --- | ---: | ---: |",
        ]
        per["cpu_html_total"] = per.get("cpu_content", 0) + per.get("cpu_html", 0)
        per["cpu_with_tables"] = per["cpu"] + tables_cpu / max(n_hosp, 1)
        for col, label in [
            ("cpu_content", "content (tables and figures: `content.build_hospital`)"),
            ("cpu_html", "HTML (template executed, HTML written, scan; kernel included)"),
            ("cpu_html_total", "**the HTML report** (content + HTML)"),
            ("cpu_pdf", "**the A4 PDF** (Typst, from the executed template)"),
            ("cpu", "**one report, HTML and PDF**"),
            ("cpu_with_tables", "one report with its share of its batch's wave tables"),
        ]:
            if col in per:
                lines.append(f"| {label} | {per[col].median():.2f} | {per[col].max():.2f} |")
        if batch_cpu:
            lines.append(
                f"| render jobs' total CPU (Snakemake benchmark) per hospital report | "
                f"{batch_cpu / n_hosp:.2f} (mean) | |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    per.to_csv(out / "render_reports.csv", index=False)
    if args.record:
        rec = ROOT / "bench" / "results" / f"{dt.date.today()}-reports.md"
        n = 1
        while rec.exists():  # an earlier record of the day is kept
            n += 1
            rec = rec.with_name(f"{dt.date.today()}-reports-{n}.md")
        rec.write_text(text)
        print(rec)


if __name__ == "__main__":
    main()
