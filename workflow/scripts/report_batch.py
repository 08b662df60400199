import logging
import sys
import time

from _common import setup

from flaqum.report.render import render_batch

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
paths = {k: v for k, v in sm.input.items() if k not in ("template", "css")}
wave, batch = sm.wildcards.wave, sm.wildcards.batch
start = time.perf_counter()
# the CPU cost of each report goes to the log file only (bench/render_reports.py reads it);
# the console gets one short line per report from ``progress``
costs = logging.getLogger("flaqum.report_costs")
costs.setLevel(logging.INFO)
costs.propagate = False
costs.handlers = [h for h in log.handlers if isinstance(h, logging.FileHandler)]


def progress(i, n, hospital, seconds):
    # one console line per report (the log file has its CPU cost by part)
    print(
        f"report {wave} batch {batch}: {i}/{n} {hospital} ({seconds:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


done = render_batch(
    study,
    wave,
    paths,
    sm.params.hospitals,
    sm.output[0],
    sm.input.template,
    engine=sm.params.engine,
    pdf=sm.params.pdf,
    log=costs,
    progress=progress,
)
log.info(f"{wave} batch {batch}: {len(done)} reports in {time.perf_counter() - start:.1f} s")
