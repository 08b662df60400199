"""The lavaan reference values of the CFA and invariance tests (written by
tests/fixtures/r/psych_reference.R), the Holzinger-Swineford data they were fitted on, and how
the fixture's fit measures are named in flaqum's results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "r"
CFA = json.loads((FIX / "psych_cfa.json").read_text())
X9 = [f"x{i}" for i in range(1, 10)]
THREE = {"visual": X9[:3], "textual": X9[3:6], "speed": X9[6:]}
FIT_TOL = 1e-6  # chi2 and the fit measures against lavaan (observed ~1e-8)
# (lavaan's name, flaqum's name) of each fit measure
FIT_KEYS = [
    ("chisq", "chi2"),
    ("df", "df"),
    ("cfi", "cfi"),
    ("tli", "tli"),
    ("rmsea", "rmsea"),
    ("srmr", "srmr"),
]


def holzinger_swineford() -> pd.DataFrame:
    """lavaan's HolzingerSwineford1939, as the R script wrote it."""
    return pd.read_csv(FIX / "psych_hs1939.csv")
