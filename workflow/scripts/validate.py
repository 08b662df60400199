from _common import setup

from flaqum.validate import validate_wave

study, log = setup(snakemake)  # noqa: F821
result = validate_wave(study, snakemake.params.wave_dir, snakemake.wildcards.wave)  # noqa: F821
result.write(snakemake.output[0])  # noqa: F821
log.info("\n" + result.text())
