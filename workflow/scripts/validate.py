from pathlib import Path

from _common import setup

from flaqum.outputs import clear_failed_wave
from flaqum.validate import validate_wave

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
result = validate_wave(study, sm.params.wave_dir, wave)
result.write(sm.output[0])
# the findings go to the log; the console gets one line (the run's end lists a failed wave's
# findings once, see run_summary)
with open(sm.log[0], "a") as fh:
    fh.write(result.text(limit=10**6) + "\n")
log.info(result.text().splitlines()[0])
if result.status != "pass":
    # nothing made from an earlier, valid state of this wave may stand for the current one
    for path in clear_failed_wave(Path("."), wave):
        log.info(f"removed {path}: made from an earlier state of the wave")
