# The research team's extra results (issue 10, items 12 and 13): funnel plots of the outcome
# ratios between hospitals (src/flaqum/funnel.py) and the planning of the next wave
# (src/flaqum/planning.py). Both are read by the consortium report (consortium_inputs).


localrules:
    funnel,
    planning,


rule funnel:
    input:
        outcomes="data/processed/{wave}/outcomes.parquet",
    output:
        "results/{wave}/funnel.csv",
    log:
        "logs/{wave}/funnel.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/funnel.py"


rule planning:
    input:
        scales="results/{wave}/psychometrics/scales.csv",
        agreement="results/{wave}/psychometrics/agreement.csv",
        hospitals="results/{wave}/multilevel/hospitals.csv",
    output:
        scales="results/{wave}/planning.csv",
        hospitals="results/{wave}/planning_hospitals.csv",
    log:
        "logs/{wave}/planning.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/planning.py"


EXTRA_OUTPUTS.append(research_targets)
