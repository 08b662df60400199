# Feedback reports (issue 4): one HTML per hospital per wave (and a PDF where Quarto renders),
# plus the consortium report. The package computes every table and figure
# (src/flaqum/report); workflow/report/*.qmd only lays them out. Each job renders its own copy
# of the template in its own folder beside the output (quarto-cli #5861, #6116).
from functools import cache

from flaqum.io import as_id, read_source
from flaqum.report.render import choose_engine

REPORT_CONFIG = config.get("report", {})
REPORT_ENGINE = REPORT_CONFIG.get("engine", "auto")
REPORT_TEMPLATES = Path(workflow.basedir) / "workflow" / "report"
# The PDF (Typst) is declared only where Quarto will render it.
REPORT_PDF = choose_engine(REPORT_ENGINE) == "quarto"


@cache
def report_hospitals(wave):
    """Hospital ids of the wave's organisations register (as strings: "0042" is an id),
    restricted to config report.hospitals when that is set."""
    try:
        path = find_source(Path(RAW) / wave, "organisations")
    except FlaqumError:
        return ()
    if path is None:
        return ()
    df, _ = read_source(path)
    col = SOURCES["organisations"]["hospital"]
    if col not in df.columns:
        return ()
    ids = sorted(set(as_id(df[col]).dropna()))
    wanted = REPORT_CONFIG.get("hospitals")
    if wanted:
        ids = [h for h in ids if h in {str(w) for w in wanted}]
    return tuple(ids)


def report_targets(wave):
    out = [f"reports/{wave}/{h}.html" for h in report_hospitals(wave)]
    if REPORT_PDF:
        out += [f"reports/{wave}/{h}.pdf" for h in report_hospitals(wave)]
    return out + [f"reports/{wave}/consortium.html"]


def report_inputs(wildcards):
    """The results a report reads (CONTRACT section 4); change.csv only after a first wave."""
    w = wildcards.wave
    inputs = {
        "organisations": f"data/processed/{w}/organisations.parquet",
        "team_register": f"data/processed/{w}/teams.parquet",
        "hospitals": f"results/{w}/multilevel/hospitals.csv",
        "teams": f"results/{w}/multilevel/teams.csv",
        "variance": f"results/{w}/multilevel/variance.csv",
        "agreement": f"results/{w}/psychometrics/agreement.csv",
        "scales": f"results/{w}/psychometrics/scales.csv",
        "item_stats": f"results/{w}/psychometrics/items.csv",
        "maturity": f"results/{w}/scores/maturity.parquet",
        "maturity_items": f"data/processed/{w}/maturity.parquet",
        "validation": f"results/{w}/validation.json",
        "responses": [f"data/processed/{w}/{s}.parquet" for s in survey_sources(w)],
    }
    if previous_wave(w):
        inputs["change"] = f"results/{w}/multilevel/change.csv"
    return inputs


def consortium_inputs(wildcards):
    inputs = report_inputs(wildcards)
    if hypothesis_targets(wildcards.wave):
        inputs["hypotheses"] = f"results/{wildcards.wave}/hypotheses/summary.csv"
    return inputs


# Rendering is batched: a Jupyter kernel and the imports cost more than a report itself, so
# each wave's hospitals are split over REPORT_BATCHES render jobs that read the wave once and
# execute every report on one kernel (each render still in its own folder, each report scanned
# for other hospitals' identifiers before it is written). hospital_report then publishes one
# hospital's report from its batch; asking for one report renders its batch.
REPORT_BATCHES = 2


def batch_count(wave):
    return max(1, min(REPORT_BATCHES, len(report_hospitals(wave))))


def batch_hospitals(wildcards):
    """The hospitals rendered by one batch job of a wave (every n-th in id order)."""
    return list(
        report_hospitals(wildcards.wave)[
            int(wildcards.batch) :: batch_count(wildcards.wave)
        ]
    )


def hospital_batch(wildcards):
    i = report_hospitals(wildcards.wave).index(wildcards.hospital)
    return f"results/{wildcards.wave}/reports/batch{i % batch_count(wildcards.wave)}"


def hospital_report_outputs():
    out = {
        "html": report(
            "reports/{wave}/{hospital}.html",
            category="Hospital feedback reports",
            subcategory="{wave}",
            labels={"wave": "{wave}", "hospital": "{hospital}"},
        )
    }
    if REPORT_PDF:
        out["pdf"] = "reports/{wave}/{hospital}.pdf"
    return out


def publish_command():
    """Copy the hospital's report(s) out of its batch, atomically (a .part file, then mv)."""
    exts = ["html", "pdf"] if REPORT_PDF else ["html"]
    return (
        " && ".join(
            f"cp {{input.batch}}/{{wildcards.hospital}}.{e} {{output.{e}}}.part "
            f"&& mv {{output.{e}}}.part {{output.{e}}}"
            for e in exts
        )
        + " 2> {log}"
    )


REPORT_HOSPITAL_IDS = sorted({h for w in WAVES for h in report_hospitals(w)})


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
    wildcard_constraints:
        batch=r"\d+",
    conda:
        CONDA_ENV
    params:
        hospitals=batch_hospitals,
        engine=REPORT_ENGINE,
        pdf=REPORT_PDF,
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
    wildcard_constraints:
        hospital="|".join(map(re.escape, REPORT_HOSPITAL_IDS)) or "NO_HOSPITAL",
    conda:
        CONDA_ENV
    shell:
        publish_command()


rule consortium_report:
    input:
        unpack(consortium_inputs),
        template=str(REPORT_TEMPLATES / "consortium.qmd"),
        css=str(REPORT_TEMPLATES / "report.css"),
    output:
        html=report(
            "reports/{wave}/consortium.html",
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
        engine=REPORT_ENGINE,
    script:
        "../scripts/report_consortium.py"


EXTRA_OUTPUTS.append(report_targets)
