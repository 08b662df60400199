# Feedback reports (issue 4): one HTML and one A4 PDF (config report.pdf) per hospital per
# wave, plus the consortium report. The package computes every table and figure
# (src/flaqum/report); workflow/report/*.qmd only lays them out. Each job renders its own copy
# of the template in its own folder beside the output (quarto-cli #5861, #6116).
# Its input functions and settings are in common.smk (section: reports).


localrules:
    hospital_report,


# Once per run (not per job): which engine renders the reports, and whether a PDF is made.
onstart:
    print(REPORT_ENGINE_NOTE, file=sys.stderr, flush=True)


rule render_reports:
    input:
        unpack(report_inputs),
        template=str(REPORT_TEMPLATES / "hospital.qmd"),
        css=str(REPORT_TEMPLATES / "report.css"),
    output:
        temp(directory("results/{wave}/reports/batch{batch}")),
    log:
        "logs/{wave}/report_batch{batch}.log",
    benchmark:
        "benchmarks/{wave}/report_batch{batch}.tsv"
    conda:
        CONDA_ENV
    params:
        hospitals=batch_hospitals,
        engine=REPORT_ENGINE_USED,
        pdf=REPORT_PDF,
        settings=SETTINGS["report"],
    script:
        "../scripts/report_batch.py"


rule hospital_report:
    input:
        batch=hospital_batch,
    output:
        **hospital_report_outputs(),
    log:
        "logs/{wave}/report_{hospital}.log",
    benchmark:
        "benchmarks/{wave}/report_{hospital}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/publish_report.py"


rule consortium_report:
    input:
        unpack(consortium_inputs),
        template=str(REPORT_TEMPLATES / "consortium.qmd"),
        css=str(REPORT_TEMPLATES / "report.css"),
    output:
        html=report(
            "reports/{wave}/research/consortium.html",
            category="Consortium report",
            labels={"wave": "{wave}"},
        ),
    log:
        "logs/{wave}/report_consortium.log",
    benchmark:
        "benchmarks/{wave}/report_consortium.tsv"
    conda:
        CONDA_ENV
    params:
        engine=REPORT_ENGINE_USED,
        settings=SETTINGS["report"],
    script:
        "../scripts/report_consortium.py"


EXTRA_OUTPUTS.append(report_targets)
