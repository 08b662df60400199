localrules:
    psychometrics_merge,


rule psychometrics:
    input:
        processed="data/processed/{wave}/{source}.parquet",
        scores="results/{wave}/scores/{source}.parquet",
    output:
        scales="results/{wave}/psychometrics/by_source/{source}/scales.csv",
        item_stats="results/{wave}/psychometrics/by_source/{source}/items.csv",
        agreement="results/{wave}/psychometrics/by_source/{source}/agreement.csv",
    log:
        "logs/{wave}/psychometrics_{source}.log",
    benchmark:
        "benchmarks/{wave}/psychometrics_{source}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=SETTINGS["psychometrics"],
    script:
        "../scripts/psychometrics.py"


rule psychometrics_merge:
    input:
        unpack(psychometrics_parts),
    output:
        scales="results/{wave}/psychometrics/scales.csv",
        item_stats="results/{wave}/psychometrics/items.csv",
        agreement="results/{wave}/psychometrics/agreement.csv",
    log:
        "logs/{wave}/psychometrics_merge.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/merge_tables.py"


rule invariance:
    input:
        unpack(invariance_inputs),
    output:
        "results/{wave}/psychometrics/invariance.csv",
    log:
        "logs/{wave}/invariance.log",
    benchmark:
        "benchmarks/{wave}/invariance.tsv"
    conda:
        CONDA_ENV
    params:
        previous_wave=previous_wave_of,
        settings=SETTINGS["invariance"],
    script:
        "../scripts/invariance.py"


EXTRA_OUTPUTS.append(psychometrics_targets)
