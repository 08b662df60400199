HYPOTHESES = sorted(p.stem for p in Path("config/hypotheses").glob("*.yaml"))


localrules:
    hypotheses_summary,


rule hypothesis:
    input:
        unpack(hypothesis_inputs),
        spec="config/hypotheses/{hypothesis}.yaml",
    output:
        "results/{wave}/hypotheses/fits/{hypothesis}.json",
    log:
        "logs/{wave}/hypothesis_{hypothesis}.log",
    benchmark:
        "benchmarks/{wave}/hypothesis_{hypothesis}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/hypothesis.py"


rule hypotheses_summary:
    input:
        expand(
            "results/{{wave}}/hypotheses/fits/{hypothesis}.json", hypothesis=HYPOTHESES
        ),
    output:
        summary="results/{wave}/hypotheses/summary.csv",
        results=expand(
            "results/{{wave}}/hypotheses/{hypothesis}.json", hypothesis=HYPOTHESES
        ),
    log:
        "logs/{wave}/hypotheses_summary.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/hypotheses_summary.py"


EXTRA_OUTPUTS.append(hypothesis_targets)
