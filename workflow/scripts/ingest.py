import json
from pathlib import Path

from _common import setup

from flaqum.ingest import ingest_source, require_pass

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
require_pass(sm.input.validation)
hospitals = json.loads(Path(sm.input.validation).read_text())["summary"].get("hospitals")
n = ingest_source(
    study, sm.params.wave_dir, sm.wildcards.source, sm.output[0], hospitals, sm.wildcards.wave
)
log.info(f"{sm.wildcards.wave}/{sm.wildcards.source}: {n} rows -> {sm.output[0]}")
