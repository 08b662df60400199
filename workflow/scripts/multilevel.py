import pandas as pd
from _common import setup

from flaqum.multilevel_tables import multilevel_tables
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
tables = multilevel_tables(
    study,
    sm.wildcards.source,
    pd.read_parquet(sm.input.scores),
    pd.read_parquet(sm.input.maturity) if "maturity" in sm.input.keys() else None,
)
for name, table in tables.items():
    write_csv(table, sm.output[name])
log.info(f"{sm.wildcards.wave}/{sm.wildcards.source}: {len(tables['variance'])} scales fitted")
