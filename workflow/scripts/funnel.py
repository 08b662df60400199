"""Funnel plot data of the wave's outcome ratios between hospitals (flaqum.funnel)."""

import pandas as pd
from _common import setup

from flaqum.funnel import funnel_table
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
table = funnel_table(pd.read_parquet(sm.input.outcomes))
write_csv(table, sm.output[0])
for ind, d in table.groupby("indicator", sort=False):
    log.info(
        f"{sm.wildcards.wave}: {ind}: {len(d)} hospitals, phi {d['phi'].iloc[0]:.2f}, "
        f"{d['limits'].iloc[0]} limits, {int((d['signal'] != 'within').sum())} outside 95%"
    )
