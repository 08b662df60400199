import json
import sys
from pathlib import Path

from _common import setup

from flaqum.outputs import run_summary
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
record, text = run_summary(
    Path("."),
    sm.params.waves,
    sm.params.failed,
    sm.params.invalid_waves,
    sm.params.hospitals,
    raw_dir=study.config["raw_dir"],
    stale=sm.params.stale,
)
with open(sm.log[0], "a") as fh:
    fh.write(text + "\n")
print("\n" + text + "\n", file=sys.stderr, flush=True)
if record["status"] != "pass":
    # no summary file: the next run comes back here and says it again, until the data are fixed
    sys.exit(1)
atomic_write_text(sm.output[0], json.dumps(record, indent=1))
