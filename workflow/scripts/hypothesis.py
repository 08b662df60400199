import pandas as pd
from _common import setup

from flaqum.outcomes import (
    canonical_ids,
    hypothesis_applies,
    load_hypothesis,
    not_applicable_result,
    result_to_json,
    run_hypothesis,
)
from flaqum.provenance import stamp
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
hyp = load_hypothesis(sm.input.spec)
if not hypothesis_applies(hyp, wave):
    # Declared for other waves only: a placeholder with the reason (no estimates).
    reason = f"not declared for wave {wave} (waves: {hyp.get('waves')})"
    result = {**not_applicable_result(hyp, wave, reason), "provenance": stamp()}
    atomic_write_text(sm.output[0], result_to_json(result))
    log.info(f"{hyp['id']}: {reason}")
    raise SystemExit(0)
inputs = {
    key: (
        pd.read_csv(path, dtype={"hospital_id": str, "team_id": str})
        if path.endswith(".csv")
        else pd.read_parquet(path)
    )
    for key, path in sm.input.items()
    if key != "spec"
}
result = {**run_hypothesis(hyp, canonical_ids(study, inputs), wave), "provenance": stamp()}
atomic_write_text(sm.output[0], result_to_json(result))
for w in result["diagnostics"].get("warnings", []):
    log.warning(w)
if result["status"] == "fitted":
    log.info(f"{hyp['id']} ({wave}): fitted on n={result['n']}")
else:
    log.warning(f"{hyp['id']} ({wave}): {result['status']}: {result['reason']}")
