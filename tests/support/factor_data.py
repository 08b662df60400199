"""One-factor item data with known loadings, for the CFA and invariance tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_one_factor(loadings, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """n rows of items q0, q1, ... with standardised loadings ``loadings`` on one factor, on
    unequal item scales (SDs from 0.8 to 1.5) around 3."""
    lam = np.asarray(loadings)
    f = rng.normal(size=n)
    e = rng.normal(size=(n, len(lam))) * np.sqrt(1 - lam**2)
    X = 3 + (f[:, None] * lam + e) * np.linspace(0.8, 1.5, len(lam))  # unequal item scales
    return pd.DataFrame(X, columns=[f"q{k}" for k in range(len(lam))])
