"""Planning the next wave: respondents per team and each hospital's detectable change."""

import pandas as pd
from _common import setup

from flaqum.planning import planning_hospitals, planning_scales
from flaqum.utils import write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
ids = {"hospital_id": str, "team_id": str}
scales = planning_scales(pd.read_csv(sm.input.scales), pd.read_csv(sm.input.agreement, dtype=ids))
write_csv(scales, sm.output.scales)
write_csv(planning_hospitals(pd.read_csv(sm.input.hospitals, dtype=ids)), sm.output.hospitals)
log.info(f"{sm.wildcards.wave}: planning for {len(scales)} scales")
