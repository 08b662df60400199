rule score:
    input:
        "data/processed/{wave}/{source}.parquet",
    output:
        "results/{wave}/scores/{source}.parquet",
    log:
        "logs/{wave}/score_{source}.log",
    benchmark:
        "benchmarks/{wave}/score_{source}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/score.py"
