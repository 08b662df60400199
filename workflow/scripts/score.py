import pandas as pd
from _common import setup

from flaqum.scoring import score_source
from flaqum.utils import write_parquet

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
scores = score_source(study, sm.wildcards.source, pd.read_parquet(sm.input[0]), sm.wildcards.wave)
write_parquet(scores, sm.output[0])
log.info(f"{sm.wildcards.wave}/{sm.wildcards.source}: {len(scores)} respondents scored")
