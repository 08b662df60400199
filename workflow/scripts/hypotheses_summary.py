import json
from pathlib import Path

from _common import setup

from flaqum.outcomes import result_to_json, summarise
from flaqum.utils import atomic_write_text, write_csv

study, log = setup(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
results = [json.loads(Path(p).read_text()) for p in sm.input]
table, adjusted = summarise(results)
write_csv(table, sm.output.summary)
by_id = {r["id"]: r for r in adjusted}
for path in sm.output.results:
    atomic_write_text(path, result_to_json(by_id[Path(path).stem]))
log.info("\n" + table.to_string(index=False))
# Say what has no estimates, and over how many tests the q-values were taken.
for r in adjusted:
    if r.get("status") != "fitted":
        log.warning(f"hypothesis {r['id']} ({r.get('wave')}): {r.get('status')}: {r.get('reason')}")
for fit, k in (adjusted[0]["multiple_testing"]["n_tested"] if adjusted else {}).items():
    log.info(f"{fit}: Benjamini-Hochberg q-values over {k} focal term(s) with a p-value")
