# Report statistics (issue 10, item 14): every number a hospital's report quotes beyond the
# multilevel tables, per hospital, in results/<wave>/benchmark/ (flaqum.benchmark): item and
# scale % positive, stakeholder gaps, Maturity Matrix medians and counts, peer groups, and the
# trend over every wave up to this one. Its input functions and settings are in common.smk
# (section: report statistics).


rule benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        item_stats="results/{wave}/benchmark/items.csv",
        scales="results/{wave}/benchmark/scales.csv",
        stakeholders="results/{wave}/benchmark/stakeholders.csv",
        maturity="results/{wave}/benchmark/maturity.csv",
        peers="results/{wave}/benchmark/peers.csv",
        trends="results/{wave}/benchmark/trends.csv",
    log:
        "logs/{wave}/benchmark.log",
    benchmark:
        "benchmarks/{wave}/benchmark.tsv"
    conda:
        CONDA_ENV
    params:
        settings=SETTINGS["benchmark"],
    script:
        "../scripts/benchmark.py"


EXTRA_OUTPUTS.append(benchmark_targets)
