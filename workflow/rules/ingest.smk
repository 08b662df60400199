rule validate:
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
    script:
        "../scripts/validate.py"


rule ingest:
    input:
        validation="results/{wave}/validation.json",
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
    script:
        "../scripts/ingest.py"
