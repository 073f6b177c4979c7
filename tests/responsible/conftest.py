"""Shared fixtures: the feature table and a small model with the champion's structure."""

from __future__ import annotations

import pandas as pd
import pytest

from mlsys import evaluate, features

SEED = 42


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return features.feature_table()


@pytest.fixture(scope="session")
def small_model(table: pd.DataFrame):
    """The champion's structure (monotone LightGBM pipeline), small: 40 trees on 20,000 training flights."""
    train = table[table["split"] == "train"].sample(20_000, random_state=SEED)
    return evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, n_estimators=40, n_jobs=1), train)


@pytest.fixture(scope="session")
def test_rows(table: pd.DataFrame) -> pd.DataFrame:
    """3,000 test flights in schedule order, positions as index."""
    return table[table["split"] == "test"].sample(3_000, random_state=SEED).sort_values("sched_dep_utc").reset_index(drop=True)
