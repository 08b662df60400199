# FlaQuM Triangle Study pipeline: raw survey waves -> validated, scored data -> psychometrics,
# multilevel variation, outcome hypotheses -> one feedback report per hospital per wave.
# The statistics live in src/flaqum; rules only wire files to it. See README.md.


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    wave="|".join(map(re.escape, WAVES)) or "NO_WAVE",
    source="|".join(SOURCES),


include: "workflow/rules/ingest.smk"
include: "workflow/rules/score.smk"


for _extra in sorted(Path("workflow/rules").glob("*.smk")):
    if _extra.name not in {"common.smk", "ingest.smk", "score.smk"}:

        include: _extra


rule all:
    default_target: True
    input:
        final_outputs(),
