"""The wave's report statistics (flaqum.benchmark): five CSVs in results/<wave>/benchmark/."""

from pathlib import Path

from _common import setup

from flaqum.benchmark import wave_benchmark
from flaqum.report.data import read_table
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
inp = dict(sm.input.items())
# this wave's and every earlier wave's hospital means and changes (keys hospitals__<wave>, ...)
by_wave = {"hospitals": {}, "change": {}}
for key, path in inp.items():
    kind, _, w = key.partition("__")
    if kind in by_wave and w:
        by_wave[kind][w] = read_table(path)
tables = wave_benchmark(
    study,
    read_table(inp["organisations"]),
    {Path(p).stem: read_table(p) for p in sm.input.responses},
    by_wave["hospitals"][wave],
    read_table(inp.get("maturity")),
    read_table(inp.get("maturity_items")),
    by_wave["hospitals"],
    by_wave["change"],
)
# "items" is a reserved name in a rule's output: its file is item_stats
out = {**dict(sm.output.items()), "items": sm.output.item_stats}
for name, table in tables.items():
    write_csv(table, out[name])
    log.info(f"{wave}: benchmark/{name}.csv, {len(table)} rows")
