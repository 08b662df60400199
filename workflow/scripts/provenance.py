import json
from pathlib import Path

import _common
from _common import setup

from flaqum.provenance import wave_provenance
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
record = wave_provenance(
    sm.wildcards.wave,
    study.config,
    sm.params.checksums,
    sm.params.codebooks,
    sm.params.hypotheses,
    sm.input,
    repo=Path(_common.__file__).resolve().parents[2],
)
atomic_write_text(sm.output[0], json.dumps(record, indent=1))
log.info(f"{sm.wildcards.wave}: provenance of {len(record['outputs'])} outputs -> {sm.output[0]}")
