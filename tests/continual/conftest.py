"""Synthetic flights with every model input column, for fits that need no feature table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import HASHED


def synthetic_flights(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` rows of model inputs; late depends on precipitation and the origin's recent delays."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(size=n) for c in NUMERIC})
    frame["wx_precip"] = rng.exponential(0.05, size=n)
    for c in CATEGORICAL:
        frame[c] = pd.array(rng.choice(["A", "B", "C"], size=n), dtype="string")
    for c in HASHED:
        frame[c] = pd.array(rng.choice(["x", "y"], size=n), dtype="string")
    logit = -1.0 + 8 * frame["wx_precip"] + 1.2 * frame["origin_mean_delay_1h"]
    frame["late"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture(scope="session")
def make_flights():
    """`synthetic_flights` itself, for tests that need several samples."""
    return synthetic_flights
