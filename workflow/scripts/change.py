"""Each hospital's change since the previous wave, for every survey source's scales."""

import pandas as pd
from _common import setup, split_previous

from flaqum.multilevel_tables import CHANGE_COLUMNS, change_table
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
prev = sm.params.previous_wave
current, previous = split_previous(sm.input)
parts = []
for source, path in current.items():
    if source not in previous:
        log.info(f"{source}: not surveyed in {prev}; no change to compute")
        continue
    parts.append(
        change_table(
            study, source, pd.read_parquet(path), pd.read_parquet(previous[source]), wave, prev
        )
    )
table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CHANGE_COLUMNS)
write_csv(table, sm.output[0])
log.info(f"{wave}: change since {prev} for {table['hospital_id'].nunique()} hospitals")
