import json
import os
import re
import sys
from functools import cache
from pathlib import Path

from snakemake.exceptions import IncompleteCheckpointException
from snakemake.utils import min_version

min_version("9.0")

try:  # the installed package (pip install . or -e .); else the one beside this workflow
    import flaqum
except ImportError:
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from flaqum.config import load_study
from flaqum.errors import FlaqumError
from flaqum.hypotheses import check_hypotheses
from flaqum.ids import ID_REGEX
from flaqum.io import find_source
from flaqum.outputs import SOURCE_FILES, WAVE_FILES, raw_manifest, wave_file
from flaqum.report.render import choose_engine

# The study: config and codebooks validated against their schemas before anything runs.
try:
    STUDY = load_study(config, root=Path("."))
except FlaqumError as exc:
    raise WorkflowError(f"Invalid configuration:\n{exc}") from None

# The hypotheses: checked against the study's codebooks and sources before any job runs.
try:
    check_hypotheses(STUDY, sorted(Path("config/hypotheses").glob("*.yaml")))
except FlaqumError as exc:
    raise WorkflowError(f"Invalid hypotheses:\n{exc}") from None

config = STUDY.config
WAVES = STUDY.waves()
SOURCES = STUDY.sources
SCORED_SOURCES = [s for s in SOURCES if STUDY.scales_for(s)]
SURVEY_SOURCES = [s for s, spec in SOURCES.items() if spec["kind"] == "survey"]
RAW = config["raw_dir"]
INVALID_WAVES = STUDY.invalid_waves()  # folder name -> why it is not a wave
for _name, _why in INVALID_WAVES.items():
    logger.warning(f"{RAW}/{_name}: skipped: {_why}")

if not WAVES:
    logger.warning(
        f"No waves found under {RAW}/. Drop a wave folder there (see README.md), or run "
        "'flaqum demo' to write the synthetic consortium."
    )


def raw_files(wildcards):
    """The wave's raw files that exist (a missing source is reported by validation)."""
    files = []
    for source in SOURCES:
        try:
            path = find_source(Path(RAW) / wildcards.wave, source)
        except FlaqumError:
            path = None
        if path is not None:
            files.append(str(path))
    return files


def raw_source(wildcards):
    path = find_source(Path(RAW) / wildcards.wave, wildcards.source)
    return [str(path)] if path is not None else []


def raw_checksums(wildcards):
    """sha256 of each raw file of the wave: a param of validation, so that new content re-runs
    the wave even when the file's time stamp is older (cp -p, unzip)."""
    return raw_manifest(raw_files(wildcards))


def raw_source_checksum(wildcards):
    return raw_manifest(raw_source(wildcards))


def codebook_checksums():
    return raw_manifest(codebooks())


def settings(*keys):
    """The config values a rule's output depends on, given to it as a param: Snakemake re-runs
    the rule (and what depends on its output) when one of them changes, and only then.
    """
    return {key: config.get(key) for key in keys}


# What each stage reads from the config (besides the codebooks, an input of validation).
SETTINGS = {
    "validate": settings("raw_dir", "sources", "validation", "min_group_size"),
    "ingest": settings("sources"),
    "psychometrics": settings("min_group_size"),
    "invariance": settings("psychometrics"),
    "multilevel": settings("min_group_size", "multilevel"),
}


def codebooks():
    return sorted(str(p) for p in Path("config/instruments").glob("*.yaml"))


def wave_sources(wave):
    """Sources present in a wave folder (required ones always, so a missing one is reported)."""
    out = []
    for source, spec in SOURCES.items():
        try:
            present = find_source(Path(RAW) / wave, source) is not None
        except FlaqumError:
            present = True
        if present or spec["required"]:
            out.append(source)
    return out


def scored_sources(wave):
    return [s for s in wave_sources(wave) if s in SCORED_SOURCES]


def stage_outputs(wave):
    """Per-wave targets of the foundation stages; later stages add theirs in their rule files."""
    return (
        [wave_file("validation", wave)]
        + [wave_file("processed", wave, s) for s in wave_sources(wave)]
        + [wave_file("scores", wave, s) for s in scored_sources(wave)]
    )


# All rules share the one environment of the project (used with --sdm conda).
CONDA_ENV = "../../environment.yml"

EXTRA_OUTPUTS = []  # rule files append callables wave -> list of targets


def wave_validation(wave):
    """The wave's validation.json, once validation has run (validate is a checkpoint: nothing
    else of a wave is planned before its raw files have passed)."""
    return _validation_at(checkpoints.validate.get(wave=wave).output[0])


def _validation_at(path):
    """A validation.json, read once per version of the file."""
    return _read_validation(str(path), os.stat(path).st_mtime_ns)


@cache
def _read_validation(path, mtime_ns):
    return json.loads(Path(path).read_text())


def wave_passed(wave):
    return wave_validation(wave)["status"] == "pass"


def wave_targets(wave):
    """Everything made of one wave that passed validation."""
    out = stage_outputs(wave)
    for extra in EXTRA_OUTPUTS:
        out += extra(wave)
    return out


def failed_waves(wildcards):
    return [w for w in WAVES if not wave_passed(w)]


def wave_target_files(wildcards):
    return wave_targets(wildcards.wave)


def summary_inputs(wildcards):
    """The end of every wave: its provenance record if it passed, its findings if not."""
    return [
        (
            f"results/{w}/provenance.json"
            if wave_passed(w)
            else wave_file("validation", w)
        )
        for w in WAVES
    ]


def hypothesis_checksums():
    return raw_manifest(Path("config/hypotheses").glob("*.yaml"))


def stale_outputs(wildcards):
    """Outputs of a valid wave that no longer have a place: its change since the previous
    wave when no earlier wave passes validation any more (removed at the run's end)."""
    return [
        wave_file("change", w) for w in WAVES if wave_passed(w) and not previous_wave(w)
    ]


def expected_reports(wildcards):
    """Per valid wave, the hospitals of its register (reports of others are stale)."""
    return {w: list(wave_hospitals(w)) for w in WAVES if wave_passed(w)}


def wave_dir(wildcards):
    return f"{RAW}/{wildcards.wave}"


# the optional sources a hypothesis reads (their paths: flaqum.outputs.WAVE_FILES)
OPTIONAL_WAVE_INPUTS = ("outcomes", "team_outcomes")


def maturity_inputs(wave, items=False):
    """The wave's maturity scores (and processed items), where the study has a maturity
    source with scales and the wave delivered it; nothing otherwise."""
    if "maturity" not in scored_sources(wave):
        return {}
    out = {"maturity": wave_file("maturity", wave)}
    if items:
        out["maturity_items"] = wave_file("maturity_items", wave)
    return out


def multilevel_inputs(wildcards):
    return {
        "scores": wave_file("scores", wildcards.wave, wildcards.source),
        **maturity_inputs(wildcards.wave),
    }


def hypothesis_inputs(wildcards):
    """What a hypothesis reads: EB scores, maturity, registers, and the outcomes if present."""
    w = wildcards.wave
    inputs = {
        "hospitals": wave_file("hospitals", w),
        "teams": wave_file("teams", w),
        **maturity_inputs(w),
        "organisations": wave_file("organisations", w),
    }
    for key in OPTIONAL_WAVE_INPUTS:
        if key in wave_sources(w):
            inputs[key] = wave_file(key, w)
    return inputs


def hypothesis_targets(wave):
    hyps = sorted(p.stem for p in Path("config/hypotheses").glob("*.yaml"))
    if not hyps:
        return []
    return [wave_file("hypotheses", wave)] + [
        f"results/{wave}/hypotheses/{h}.json" for h in hyps
    ]


def survey_sources(wave):
    """Sources of respondents in teams: these get agreement and multilevel models."""
    return [s for s in scored_sources(wave) if s in SURVEY_SOURCES]


def _passed_earlier(wave):
    """Whether an earlier wave passes validation, to choose the previous wave.

    A run of the whole DAG asks this only once every wave's validation has run (rule all and
    run_summary ask for each wave's verdict first), so a wave that fails on a rerun is seen and
    skipped. A run that names one file (a report, say) builds that file's jobs before Snakemake
    has resolved the other waves' checkpoints: then the earlier wave's validation.json, where
    there is one, answers (as it stands; run the whole DAG after changing an earlier wave).
    """
    try:
        return wave_passed(wave)
    except IncompleteCheckpointException:
        path = Path(wave_file("validation", wave))
        if not path.exists():
            raise
        return _validation_at(path)["status"] == "pass"


def previous_wave(wave):
    """The latest earlier wave that passed validation (wave names sort in time order), or
    None. A wave that fails validation (also on a rerun, after its outputs were cleared) is
    never compared against: the later waves' changes, invariance and trends are rebuilt
    without it."""
    earlier = [w for w in WAVES if w < wave and _passed_earlier(w)]
    return earlier[-1] if earlier else None


def previous_wave_of(wildcards):
    return previous_wave(wildcards.wave)


def _parts(stage, names, sources):
    def inputs(wildcards):
        w = wildcards.wave
        return {
            f"{name}__{s}": f"results/{w}/{stage}/by_source/{s}/{name}.csv"
            for s in sources(w)
            for name in names
        }

    return inputs


psychometrics_parts = _parts(
    "psychometrics", ["scales", "items", "agreement"], scored_sources
)
multilevel_parts = _parts(
    "multilevel", ["variance", "teams", "hospitals", "adjusted"], survey_sources
)


PREVIOUS = (
    "previous__"  # input-key prefix of the previous wave's files (split by _common.py)
)


def _with_previous(pattern):
    """Input function: each survey source's file of this wave (key: source) and of the
    previous wave, if any (key: previous__source); ``pattern`` has {wave} and {source}.
    """

    def inputs(wildcards):
        w, prev = wildcards.wave, previous_wave(wildcards.wave)
        out = {s: pattern.format(wave=w, source=s) for s in survey_sources(w)}
        if prev:
            out.update(
                {
                    f"{PREVIOUS}{s}": pattern.format(wave=prev, source=s)
                    for s in survey_sources(prev)
                }
            )
        return out

    return inputs


invariance_inputs = _with_previous(SOURCE_FILES["processed"])
change_inputs = _with_previous(SOURCE_FILES["scores"])


def psychometrics_targets(wave):
    return [
        wave_file(name, wave) for name in ("scales", "items", "agreement", "invariance")
    ]


def multilevel_targets(wave):
    out = [
        wave_file(name, wave) for name in ("variance", "teams", "hospitals", "adjusted")
    ]
    if previous_wave(wave):
        out.append(wave_file("change", wave))
    return out


# ---- report statistics (benchmark.smk) ----
# What the report statistics depend on: k (suppression, the hospitals compared) and the peer
# groups (report.peers), not how reports are rendered.
SETTINGS["benchmark"] = {
    **settings("min_group_size"),
    "peers": config["report"]["peers"],
}


# the report statistics' files, as flaqum.outputs.WAVE_FILES names them (bench_<name>)
BENCHMARK_NAMES = tuple(
    k.removeprefix("bench_") for k in WAVE_FILES if k.startswith("bench_")
)


def waves_up_to(wave):
    """This wave and every earlier one that passed validation (wave names sort in time)."""
    return [w for w in WAVES if w < wave and _passed_earlier(w)] + [wave]


def benchmark_inputs(wildcards):
    """A wave's report-statistics inputs: its responses, registers and maturity, and the
    hospital means and changes of this wave and of every earlier one (for the trends).
    """
    w = wildcards.wave
    inputs = {
        "organisations": wave_file("organisations", w),
        **maturity_inputs(w, items=True),
        "responses": [wave_file("processed", w, s) for s in survey_sources(w)],
    }
    for earlier in waves_up_to(w):
        inputs[f"hospitals__{earlier}"] = wave_file("hospitals", earlier)
        if previous_wave(earlier):
            inputs[f"change__{earlier}"] = wave_file("change", earlier)
    return inputs


def benchmark_paths(wave):
    """The report statistics of a wave (report inputs, keys as WaveResults' fields)."""
    return {
        f"bench_{name}": wave_file(f"bench_{name}", wave) for name in BENCHMARK_NAMES
    }


def benchmark_targets(wave):
    return list(benchmark_paths(wave).values())


# ---- reports (report.smk) ----
REPORT_CONFIG = config["report"]  # defaults: the config schema
REPORT_ENGINE = REPORT_CONFIG["engine"]
REPORT_TEMPLATES = Path(workflow.basedir) / "workflow" / "report"
REPORT_ENGINE_USED = choose_engine(REPORT_ENGINE)  # "auto" resolved: quarto or jupyter
from shutil import which as _which

# An A4 PDF beside each hospital's HTML (config report.pdf): Quarto's Typst PDF where Quarto
# renders, else written from the same executed template by flaqum.report.pdf (Typst, from PyPI).
REPORT_PDF = bool(REPORT_CONFIG["pdf"])
REPORT_ENGINE_NOTE = (
    "reports: rendered by Quarto (HTML, and its Typst PDF)"
    if REPORT_ENGINE_USED == "quarto"
    else "reports: Quarto is not used"
    + (" (not on PATH)" if _which("quarto") is None else " (report.engine: jupyter)")
    + "; HTML by the built-in Jupyter path (nbclient)"
    + (
        "; A4 PDF by the built-in Typst writer (no Quarto PDF)"
        if REPORT_PDF
        else "; no PDF"
    )
)
# What a report's content depends on: the engine as resolved (so "auto" and the engine it
# picks are the same setting) and not which render job or batch count made it; its keys
# sorted, as Snakemake compares the repr (a --config report='{...}' fills the defaults in
# another order than config.yaml's).
SETTINGS["report"] = {
    **settings("min_group_size", "multilevel"),
    "report": dict(
        sorted(
            {
                **{
                    k: v
                    for k, v in REPORT_CONFIG.items()
                    if k not in ("batches", "hospitals")
                },
                "engine": REPORT_ENGINE_USED,
            }.items()
        )
    ),
}


def wave_hospitals(wave):
    """Hospital ids of the wave's organisations register, as validation read and checked them
    (no raw file is read while the DAG is built)."""
    return tuple(wave_validation(wave).get("summary", {}).get("hospitals", []))


def report_hospitals(wave):
    """The wave's hospitals, restricted to config report.hospitals when that is set."""
    ids = wave_hospitals(wave)
    wanted = REPORT_CONFIG.get("hospitals")
    if wanted:
        ids = tuple(h for h in ids if h in {str(w) for w in wanted})
    return ids


def report_targets(wave):
    out = [f"reports/{wave}/{h}.html" for h in report_hospitals(wave)]
    if REPORT_PDF:
        out += [f"reports/{wave}/{h}.pdf" for h in report_hospitals(wave)]
    return out + [f"reports/{wave}/research/consortium.html"]


def report_inputs(wildcards):
    """The results a report reads (docs/outputs.md); change.csv only after a first wave; the
    report statistics of results/<wave>/benchmark/."""
    w = wildcards.wave
    inputs = {
        key: wave_file(key, w)
        for key in (
            "organisations",
            "hospitals",
            "teams",
            "variance",
            "agreement",
            "scales",
        )
    }
    # "items" is a reserved name in a rule's input
    inputs["item_stats"] = wave_file("items", w)
    inputs.update(maturity_inputs(w, items=True))
    inputs["validation"] = wave_file("validation", w)
    inputs["responses"] = [wave_file("processed", w, s) for s in survey_sources(w)]
    if "teams" in wave_sources(w):
        inputs["team_register"] = wave_file("team_register", w)
    if previous_wave(w):
        inputs["change"] = wave_file("change", w)
    # the report statistics (benchmark.smk): trends read every earlier wave
    inputs.update(benchmark_paths(w))
    return inputs


def research_targets(wave):
    """The research team's extra results (research.smk): the funnel plots' data where the
    wave has outcomes, and the planning of the next wave."""
    out = [wave_file("planning", wave), wave_file("planning_hospitals", wave)]
    if "outcomes" in wave_sources(wave):
        out.append(wave_file("funnel", wave))
    return out


def consortium_inputs(wildcards):
    """What the consortium report reads: a hospital report's inputs, the hypotheses (summary
    and each one's JSON), invariance, the case-mix and cross-level models, and the research
    team's extra results (research_targets)."""
    w = wildcards.wave
    inputs = report_inputs(wildcards)
    hyps = hypothesis_targets(w)
    if hyps:
        inputs["hypotheses"] = wave_file("hypotheses", w)
        inputs["hypothesis_results"] = hyps[1:]
    inputs["invariance"] = wave_file("invariance", w)
    inputs["adjusted"] = wave_file("adjusted", w)
    for path in research_targets(w):
        inputs[Path(path).stem] = path
    return inputs


# Rendering is batched: a Jupyter kernel and the imports cost more than a report itself, so
# each wave's hospitals are split over REPORT_BATCHES render jobs that read the wave once and
# execute every report on one kernel (each render still in its own folder, each report scanned
# for other hospitals' identifiers before it is written). hospital_report then publishes one
# hospital's report from its batch; asking for one report renders its batch.
REPORT_BATCHES = int(REPORT_CONFIG["batches"])


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
    hospitals = report_hospitals(wildcards.wave)
    if wildcards.hospital not in hospitals:
        raise WorkflowError(
            f"no report for hospital {wildcards.hospital!r} in wave {wildcards.wave}: it is "
            "not in the wave's organisations register (or not in config report.hospitals)"
        )
    i = hospitals.index(wildcards.hospital)
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
