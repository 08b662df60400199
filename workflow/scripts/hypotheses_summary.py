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
