import pandas as pd
from _common import setup

from flaqum.psychometrics import scale_psychometrics
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
source = sm.wildcards.source
scales, items, agreement = scale_psychometrics(
    study,
    source,
    pd.read_parquet(sm.input.processed),
    pd.read_parquet(sm.input.scores),
    min_group_size=study.min_group_size,
)
write_csv(scales, sm.output.scales)
write_csv(items, sm.output.item_stats)
write_csv(agreement, sm.output.agreement)
for r in scales.itertuples():
    log.info(
        f"{sm.wildcards.wave}/{source}/{r.scale}: alpha {r.alpha:.3f}, omega {r.omega:.3f}, "
        f"icc1 {r.icc1:.3f}, rwg_j median {r.rwg_j_median:.3f}"
    )
