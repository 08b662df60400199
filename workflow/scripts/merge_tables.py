"""Stack the per-source tables of a stage into the wave's files.

Each output ``<name>.csv`` gathers every input with that file name (one per source).
"""

from pathlib import Path

import pandas as pd
from _common import setup

from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
for path in sm.output:
    name = Path(path).name
    parts = [
        pd.read_csv(p, dtype={"hospital_id": str, "team_id": str})
        for p in sm.input
        if Path(p).name == name
    ]
    filled = [p for p in parts if not p.empty]
    table = pd.concat(filled or parts[:1], ignore_index=True) if parts else pd.DataFrame()
    write_csv(table, path)
    log.info(f"{path}: {len(table)} rows from {len(parts)} sources")
