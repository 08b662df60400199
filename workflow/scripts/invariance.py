"""Measurement invariance of the survey scales: across respondent groups, across waves, and
between the mirrored Quickscan versions (professionals vs patients and kin)."""

import pandas as pd
from _common import setup, split_previous

from flaqum.invariance import invariance_report
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
current, previous = (
    {source: pd.read_parquet(path) for source, path in paths.items()}
    for paths in split_previous(sm.input)
)
table = invariance_report(study, wave, current, previous, sm.params.previous_wave)
write_csv(table, sm.output[0])
for r in table.itertuples():
    log.info(f"{r.comparison}/{r.scale} {r.model}: cfi {r.cfi:.3f}, holds={r.holds}")
