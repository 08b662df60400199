from _common import setup

from flaqum.report.render import render_batch

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
paths = {k: v for k, v in sm.input.items() if k not in ("template", "css")}
done = render_batch(
    study,
    sm.wildcards.wave,
    paths,
    sm.params.hospitals,
    sm.output[0],
    sm.input.template,
    engine=sm.params.engine,
    pdf=sm.params.pdf,
    log=log,
)
log.info(f"{sm.wildcards.wave} batch {sm.wildcards.batch}: {len(done)} reports")
