"""Write requirements.lock: every dependency of pyproject.toml (with the dev extras) pinned for
Python 3.11 on Linux x86_64, at the versions of the venv the tests passed in where those
install on any Python 3.11 (a pin that needs a later 3.11 release is left to the resolver).

    .venv/bin/pip install uv          # once (not a dependency of the project)
    .venv/bin/python .ci/lock.py

Run it after a change of the dependencies in pyproject.toml, in the venv that passed the
tests; tests/test_provenance.py checks that the lock pins every dependency within its range.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
COMMAND = (
    "uv pip compile pyproject.toml --extra dev --python-version 3.11 "
    "--python-platform x86_64-unknown-linux-gnu -o requirements.lock"
)
HEADER = """\
# Every dependency of flaqum and of its dev extras, pinned to the versions the tests passed
# with, for Python 3.11+ on Linux x86_64. To rerun an analysis with what it ran with:
#    python3 -m venv .venv && .venv/bin/pip install -r requirements.lock
#    .venv/bin/pip install --no-deps -e .
# Written by .ci/lock.py (run it after a change of dependencies in pyproject.toml).
"""


def main() -> int:
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = [p for p in freeze if "==" in p and not p.lower().startswith("flaqum==")]
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "tested.txt"
        for _ in range(20):
            constraints.write_text("\n".join(pins) + "\n")
            res = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "uv",
                    *COMMAND.split()[1:-2],
                    "-o",
                    str(LOCK),
                    "-c",
                    str(constraints),
                    "--custom-compile-command",
                    COMMAND,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if res.returncode == 0:
                break
            # a tested version that needs a later Python 3.11: let the resolver choose
            late = set(re.findall(r"([A-Za-z0-9_.-]+)==\S+ depends on Python>=", res.stderr))
            kept = [p for p in pins if p.split("==")[0] not in late]
            if not late or kept == pins:
                sys.stderr.write(res.stderr)
                return res.returncode
            pins = kept
        else:
            sys.stderr.write(res.stderr)
            return 1
    text = LOCK.read_text()
    text = re.sub(r"\n    #   -c \S+tested\.txt(?=\n)", "", text)
    via = "\n    # via (the tested environment)"
    text = re.sub(r"\n    # via -c \S+tested\.txt(?=\n)", via, text)
    LOCK.write_text(HEADER + text)
    print(f"{LOCK.relative_to(ROOT)}: {sum(1 for line in text.splitlines() if '==' in line)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
