from _common import setup

from flaqum.report.render import render_consortium

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
paths = {k: v for k, v in sm.input.items() if k not in ("template", "css")}
render_consortium(
    study, sm.wildcards.wave, paths, sm.output.html, sm.input.template, engine=sm.params.engine
)
log.info(f"{sm.wildcards.wave}: consortium report -> {sm.output.html}")
