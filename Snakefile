# FlaQuM Triangle Study pipeline: raw survey waves -> validated, scored data -> psychometrics,
# multilevel variation, outcome hypotheses -> one feedback report per hospital per wave.
# The statistics live in src/flaqum; rules only wire files to it. See README.md.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


# Every wildcard is constrained to a validated name: a rule is never handed anything else.
wildcard_constraints:
    wave="|".join(map(re.escape, WAVES)) or "NO_WAVE",
    source="|".join(SOURCES),
    hospital=ID_REGEX,
    hypothesis=ID_REGEX,
    batch=r"\d+",


include: "workflow/rules/ingest.smk"
include: "workflow/rules/score.smk"


# Every rule file in workflow/rules/ (found from this Snakefile, not the working directory).
for _extra in sorted((Path(workflow.basedir) / "workflow" / "rules").glob("*.smk")):
    if _extra.name not in {"common.smk", "ingest.smk", "score.smk"}:

        include: _extra


rule all:
    default_target: True
    input:
        # every wave's validation first (they run side by side), then what each valid wave
        # makes, then the run's summary
        expand("results/{wave}/validation.json", wave=WAVES),
        "results/run_summary.json",
