from _common import setup

from flaqum.hypotheses import canonical_ids, load_hypothesis, read_inputs
from flaqum.outcomes import result_to_json, run_hypothesis
from flaqum.provenance import stamp
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
hyp = load_hypothesis(sm.input.spec)
# not declared for this wave: a placeholder with the reason (run_hypothesis), nothing is read
inputs = read_inputs(dict(sm.input.items())) if hyp.applies(wave) else {}
result = {**run_hypothesis(hyp, canonical_ids(study, inputs), wave), "provenance": stamp()}
atomic_write_text(sm.output[0], result_to_json(result))
for w in result["diagnostics"].get("warnings", []):
    log.warning(w)
if result["status"] == "fitted":
    log.info(f"{hyp.id} ({wave}): fitted on n={result['n']}")
else:
    log.warning(f"{hyp.id} ({wave}): {result['status']}: {result['reason']}")
