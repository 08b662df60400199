"""Compare the outputs of two runs of the DAG: same files, same contents.

    python tests/slurm/compare_outputs.py LOCAL_PROJECT SLURM_PROJECT

Looks at every .csv, .json and .parquet file under results/ and data/processed/ (logs,
benchmarks and Snakemake's own metadata are not outputs). The pipeline is deterministic, so a
file is expected to be byte-identical; one that is not is compared by content (parquet as
data frames, exactly; CSV as text; JSON as parsed values) and a difference is printed with the
first rows or keys that differ. Exit status 0 if everything is equal, 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

TOPS = ("results", "data/processed")
SUFFIXES = {".csv", ".json", ".parquet"}


def output_files(project: Path) -> set[str]:
    files = set()
    for top in TOPS:
        base = project / top
        if base.exists():
            files |= {
                str(p.relative_to(project))
                for p in base.rglob("*")
                if p.is_file() and p.suffix in SUFFIXES
            }
    return files


def differs(a: Path, b: Path) -> str | None:
    """None if the two files are equal by content, else a short description of how."""
    if a.read_bytes() == b.read_bytes():
        return None
    if a.suffix == ".parquet":
        da, db = pd.read_parquet(a), pd.read_parquet(b)
        try:
            pd.testing.assert_frame_equal(da, db, check_exact=True)
        except AssertionError as exc:
            return str(exc)[:2000]
        return None  # same data, different encoding (e.g. writer metadata)
    if a.suffix == ".json":
        ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
        if ja == jb:
            return None
        if isinstance(ja, dict) and isinstance(jb, dict):
            keys = sorted(k for k in ja.keys() | jb.keys() if ja.get(k) != jb.get(k))
            return f"JSON differs at keys {keys[:10]}"
        return "JSON differs"
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    for i, (x, y) in enumerate(zip(la, lb, strict=False), start=1):
        if x != y:
            return f"line {i}:\n    local: {x[:300]}\n    slurm: {y[:300]}"
    return f"{len(la)} lines locally, {len(lb)} on SLURM"


def main(local: Path, slurm: Path) -> int:
    fa, fb = output_files(local), output_files(slurm)
    problems = []
    if not fa:
        problems.append(f"the local run wrote no outputs under {', '.join(TOPS)}")
    for f in sorted(fa - fb):
        problems.append(f"only in the local run: {f}")
    for f in sorted(fb - fa):
        problems.append(f"only in the SLURM run: {f}")
    identical = same_bytes = 0
    for f in sorted(fa & fb):
        why = differs(local / f, slurm / f)
        if why is None:
            identical += 1
            same_bytes += (local / f).read_bytes() == (slurm / f).read_bytes()
        else:
            problems.append(f"{f} differs: {why}")
    by_type = ", ".join(f"{sum(f.endswith(s) for f in fa & fb)} {s}" for s in sorted(SUFFIXES))
    print(
        f"compared {len(fa & fb)} output files ({by_type}): "
        f"{identical} equal ({same_bytes} byte for byte)"
    )
    for p in problems:
        print(f"  MISMATCH {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
