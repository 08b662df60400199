"""Check that what SLURM was asked for is what workflow/profiles/slurm says.

    scontrol show job -o | python tests/slurm/check_requests.py PROFILE_DIR [PARTITION]

Reads the one-line job records of the test cluster (finished jobs stay listed for MinJobAge
seconds) and, for every job the DAG submitted (its comment is rule_<name>...), compares the
memory and time limit with the profile's set-resources for that rule, or its default-resources
when the rule is not named there; and the partition, when one is given. Prints one line per
rule; exit status 1 on any mismatch.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

import yte


def load_profile(profile_dir: Path) -> dict:
    with open(profile_dir / "config.yaml") as f:
        return yte.process_yaml(f, require_use_yte=True)


def minutes(limit: str) -> int:
    """SLURM's [days-]hh:mm:ss as minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days) if days else 0) * 1440 + h * 60 + m + (1 if s else 0)


def main(profile_dir: Path, partition: str | None) -> int:
    profile = load_profile(profile_dir)
    default = profile.get("default-resources", {})
    per_rule = profile.get("set-resources", {})
    seen = defaultdict(set)
    problems = []
    for line in sys.stdin:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        rule = re.match(r"rule_(.+?)(_wildcards_|$)", fields.get("Comment", ""))
        if not rule:
            continue
        rule = rule.group(1)
        want = {**default, **per_rule.get(rule, {})}
        mem = fields.get("MinMemoryNode", "")
        got_mem = int(mem[:-1]) * (1024 if mem.endswith("G") else 1) if mem else None
        got_min = minutes(fields["TimeLimit"])
        seen[rule].add((got_mem, got_min, fields.get("Partition")))
        if got_mem != want.get("mem_mb"):
            problems.append(f"{rule}: job {fields['JobId']} got {mem}, profile says {want}")
        if got_min != want.get("runtime"):
            problems.append(
                f"{rule}: job {fields['JobId']} time limit {fields['TimeLimit']}, "
                f"profile says {want}"
            )
        if partition and fields.get("Partition") != partition:
            problems.append(
                f"{rule}: job {fields['JobId']} in partition {fields.get('Partition')}, "
                f"expected {partition}"
            )
    if not seen:
        problems.append("no job of the DAG found in 'scontrol show job'")
    for rule, reqs in sorted(seen.items()):
        text = ", ".join(f"{m} MB / {t} min / partition {p}" for m, t, p in sorted(reqs))
        print(f"  sbatch requests for {rule}: {text}")
    for p in problems:
        print(f"  MISMATCH {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) == 3 else None))
