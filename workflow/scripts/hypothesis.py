import pandas as pd
from _common import setup

from flaqum.outcomes import hypothesis_applies, load_hypothesis, result_to_json, run_hypothesis
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
wave = sm.wildcards.wave
hyp = load_hypothesis(sm.input.spec)
if not hypothesis_applies(hyp, wave):
    # Declared for other waves only: a placeholder the summary skips (no estimates).
    result = {"id": hyp["id"], "wave": wave, "status": "not_applicable", "n": 0,
              "family": hyp["family"], "level": hyp["level"], "estimates": [],
              "diagnostics": {"converged": None, "warnings": []}}
    atomic_write_text(sm.output[0], result_to_json(result))
    log.info(f"{hyp['id']}: not declared for wave {wave} (waves: {hyp.get('waves')})")
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
result = run_hypothesis(hyp, inputs, wave)
atomic_write_text(sm.output[0], result_to_json(result))
for w in result["diagnostics"].get("warnings", []):
    log.warning(w)
log.info(f"{hyp['id']} ({wave}): n={result['n']}, converged={result['diagnostics']['converged']}")
