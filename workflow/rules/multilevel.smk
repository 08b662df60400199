localrules:
    multilevel_merge,


rule multilevel:
    input:
        unpack(multilevel_inputs),
    output:
        variance="results/{wave}/multilevel/by_source/{source}/variance.csv",
        teams="results/{wave}/multilevel/by_source/{source}/teams.csv",
        hospitals="results/{wave}/multilevel/by_source/{source}/hospitals.csv",
        adjusted="results/{wave}/multilevel/by_source/{source}/adjusted.csv",
    log:
        "logs/{wave}/multilevel_{source}.log",
    benchmark:
        "benchmarks/{wave}/multilevel_{source}.tsv"
    conda:
        CONDA_ENV
    params:
        settings=SETTINGS["multilevel"],
    script:
        "../scripts/multilevel.py"


rule multilevel_merge:
    input:
        unpack(multilevel_parts),
    output:
        variance="results/{wave}/multilevel/variance.csv",
        teams="results/{wave}/multilevel/teams.csv",
        hospitals="results/{wave}/multilevel/hospitals.csv",
        adjusted="results/{wave}/multilevel/adjusted.csv",
    log:
        "logs/{wave}/multilevel_merge.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/merge_tables.py"


rule change:
    input:
        unpack(change_inputs),
    output:
        "results/{wave}/multilevel/change.csv",
    log:
        "logs/{wave}/change.log",
    benchmark:
        "benchmarks/{wave}/change.tsv"
    conda:
        CONDA_ENV
    params:
        previous_wave=previous_wave_of,
        settings=SETTINGS["multilevel"],
    script:
        "../scripts/change.py"


EXTRA_OUTPUTS.append(multilevel_targets)
