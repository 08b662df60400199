import pandas as pd
from _common import setup

from flaqum.outcomes import load_hypothesis, result_to_json, run_hypothesis
from flaqum.utils import atomic_write_text

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
inputs = {
    key: (
        pd.read_csv(path, dtype={"hospital_id": str, "team_id": str})
        if path.endswith(".csv")
        else pd.read_parquet(path)
    )
    for key, path in sm.input.items()
    if key != "spec"
}
hyp = load_hypothesis(sm.input.spec)
result = run_hypothesis(hyp, inputs, sm.wildcards.wave)
atomic_write_text(sm.output[0], result_to_json(result))
for w in result["diagnostics"].get("warnings", []):
    log.warning(w)
log.info(
    f"{hyp['id']} ({sm.wildcards.wave}): n={result['n']}, "
    f"converged={result['diagnostics']['converged']}"
)
