"""Measurement invariance of the survey scales: across respondent groups, across waves, and
between the mirrored Quickscan versions (professionals vs patients and kin)."""

import pandas as pd
from _common import setup

from flaqum.invariance import INVARIANCE_COLUMNS, invariance_report
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
current = {k: pd.read_parquet(p) for k, p in sm.input.items() if not k.startswith("previous__")}
previous = {
    k.removeprefix("previous__"): pd.read_parquet(p)
    for k, p in sm.input.items()
    if k.startswith("previous__")
}
table = invariance_report(study, wave, current, previous, sm.params.previous_wave)
write_csv(table if not table.empty else pd.DataFrame(columns=INVARIANCE_COLUMNS), sm.output[0])
for r in table.itertuples():
    log.info(f"{r.comparison}/{r.scale} {r.model}: cfi {r.cfi:.3f}, holds={r.holds}")
