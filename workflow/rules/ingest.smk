rule validate:
    input:
        raw=raw_files,
        codebooks=codebooks(),
    output:
        "results/{wave}/validation.json",
    params:
        wave_dir=wave_dir,
    log:
        "logs/{wave}/validate.log",
    benchmark:
        "benchmarks/{wave}/validate.tsv"
    script:
        "../scripts/validate.py"


rule ingest:
    input:
        validation="results/{wave}/validation.json",
        raw=raw_source,
    output:
        "data/processed/{wave}/{source}.parquet",
    params:
        wave_dir=wave_dir,
    log:
        "logs/{wave}/ingest_{source}.log",
    benchmark:
        "benchmarks/{wave}/ingest_{source}.tsv"
    script:
        "../scripts/ingest.py"
