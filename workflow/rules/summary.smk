# The end of a run: one provenance record per valid wave, then one summary of the whole run.
# run_summary prints what failed and where the findings are, removes reports of hospitals
# that left a wave's register and a valid wave's change since a wave that no longer passes, and exits non-zero while any wave fails validation, so that a
# plain `snakemake` processes every valid wave and still says, at its end, that one did not.


localrules:
    provenance,
    run_summary,


rule provenance:
    input:
        wave_target_files,
    output:
        "results/{wave}/provenance.json",
    log:
        "logs/{wave}/provenance.log",
    conda:
        CONDA_ENV
    params:
        checksums=raw_checksums,
        codebooks=codebook_checksums(),
        hypotheses=hypothesis_checksums(),
        config=config,
    script:
        "../scripts/provenance.py"


rule run_summary:
    input:
        summary_inputs,
    output:
        "results/run_summary.json",
    log:
        "logs/run_summary.log",
    conda:
        CONDA_ENV
    params:
        waves=WAVES,
        failed=failed_waves,
        invalid_waves=INVALID_WAVES,
        hospitals=expected_reports,
        stale=stale_outputs,
    script:
        "../scripts/run_summary.py"
