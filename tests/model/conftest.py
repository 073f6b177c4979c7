"""Data shared by the model tests: a small, seeded cut of the course's splits."""

from __future__ import annotations

import pandas as pd
import pytest

from mlsys import features

SEED = 42
TRAIN_ROWS = 20_000
TEST_ROWS = 20_000  # a seeded sample of the test split keeps the protocol at a few seconds


@pytest.fixture(scope="session")
def splits() -> dict[str, pd.DataFrame]:
    s = features.load_splits(fast=True, seed=SEED)
    return {
        **s,
        "train": s["train"].sample(TRAIN_ROWS, random_state=SEED).sort_index(),
        "test": s["test"].sample(TEST_ROWS, random_state=SEED).sort_index().reset_index(drop=True),
    }
