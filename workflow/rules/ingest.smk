# Validation is a checkpoint: a wave's other jobs are planned only once its raw files have
# passed, so a wave that fails stops at validation without holding back the others.


checkpoint validate:
    input:
        raw=raw_files,
        codebooks=codebooks(),
    output:
        "results/{wave}/validation.json",
    log:
        "logs/{wave}/validate.log",
    benchmark:
        "benchmarks/{wave}/validate.tsv"
    conda:
        CONDA_ENV
    params:
        wave_dir=wave_dir,
        checksums=raw_checksums,
        settings=SETTINGS["validate"],
    script:
        "../scripts/validate.py"


rule ingest:
    input:
        # a gate only (the wave passed): a new validation with the same verdict, e.g. after a
        # change of min_group_size, does not re-ingest; new raw content does (checksum)
        validation=ancient("results/{wave}/validation.json"),
        raw=raw_source,
    output:
        "data/processed/{wave}/{source}.parquet",
    log:
        "logs/{wave}/ingest_{source}.log",
    benchmark:
        "benchmarks/{wave}/ingest_{source}.tsv"
    conda:
        CONDA_ENV
    params:
        wave_dir=wave_dir,
        checksum=raw_source_checksum,
        codebooks=codebook_checksums(),
        settings=SETTINGS["ingest"],
    script:
        "../scripts/ingest.py"
