"""The solutions to lesson 11's exercises give the right answers (`02-notebooks/solutions/11_human_side.py`).

A small model with the champion's structure (40 trees on 20,000 training flights) stands in for the
champion; each answer is checked against an independent computation (brute-force thresholds, a
hand-written Wilson formula, plain counts) or a property a wrong answer would break.
"""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from mlsys import evaluate, features
from mlsys.objectives import COURSE_COSTS, cost_of_flags

SEED = 42
THRESHOLD = 0.29


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return features.load_splits(fast=True, seed=SEED)


@pytest.fixture(scope="module")
def model(splits: dict[str, pd.DataFrame]):
    train = splits["train"].sample(20_000, random_state=SEED)
    return evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, n_estimators=40, n_jobs=1), train)


@pytest.fixture(scope="module")
def scored(splits, model) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    return {name: (splits[name], evaluate.predict(model, splits[name])) for name in ("valid", "test")}


def test_exercise_1_sticky_advice_trades_flips_for_cost(solutions: ModuleType) -> None:
    rng = np.random.default_rng(0)
    n = 5000
    start = rng.uniform(0, 0.7, n)
    p = np.clip(np.column_stack([start, start + rng.normal(0, 0.05, n), start + rng.normal(0, 0.08, n)]), 0, 1)
    y = (rng.uniform(size=n) < p[:, 2]).astype(float)
    table = solutions.exercise_1(pd.DataFrame(p, columns=["p_3h", "p_2h", "p_1h"]), y, 0.3, margins=(0.0, 0.02, 0.05, 0.1))
    plain = p >= 0.3
    expected_flips = np.mean((plain[:, 1:] != plain[:, :-1]).any(axis=1))
    assert table.loc[0.0, "flip rate"] == pytest.approx(expected_flips)
    assert table.loc[0.0, "cost per flight (last look)"] == pytest.approx(cost_of_flags(y, plain[:, 2], COURSE_COSTS))
    assert table["flip rate"].is_monotonic_decreasing
    assert table.loc[0.1, "flip rate"] < table.loc[0.0, "flip rate"] / 2
    # y follows the last look's p: holding on to older advice can only cost more
    assert table.loc[0.1, "cost per flight (last look)"] > table.loc[0.0, "cost per flight (last look)"]


def _brute_force_thresholds(frame: pd.DataFrame, p: np.ndarray, target: float) -> dict[str, float]:
    grid = [round(0.01 * k, 2) for k in range(1, 100)]
    out = {}
    for origin in sorted(frame["origin"].unique()):
        late = (frame["origin"] == origin).to_numpy() & (frame["late"].to_numpy() == 1)
        misses = [np.mean(p[late] < t) for t in grid]
        out[origin] = grid[int(np.argmin([abs(m - target) for m in misses]))]
    return out


def test_exercise_2_equal_miss_rates_per_origin(solutions: ModuleType, scored) -> None:
    (valid, p_valid), (test, p_test) = scored["valid"], scored["test"]
    table = solutions.exercise_2(valid, p_valid, test, p_test, THRESHOLD)
    late_valid = valid["late"].to_numpy() == 1
    target = float(np.mean(p_valid[late_valid] < THRESHOLD))
    chosen = _brute_force_thresholds(valid, p_valid, target)
    per_row = test["origin"].map(chosen).to_numpy(dtype=float)
    y = test["late"].to_numpy(dtype=float)
    assert table.loc["a threshold per group", "cost per flight"] == pytest.approx(cost_of_flags(y, p_test >= per_row, COURSE_COSTS))
    assert table.loc["one threshold", "cost per flight"] == pytest.approx(cost_of_flags(y, p_test >= THRESHOLD, COURSE_COSTS))
    # on validation, where they were chosen, the per-origin thresholds bring the miss rates together
    spread = {}
    for name, thresholds in (("one", np.full(len(valid), THRESHOLD)), ("per origin", valid["origin"].map(chosen).to_numpy(dtype=float))):
        misses = pd.Series(p_valid[late_valid] < thresholds[late_valid]).groupby(valid["origin"].to_numpy()[late_valid]).mean()
        spread[name] = misses.max() - misses.min()
    assert spread["per origin"] < spread["one"]


def test_exercise_3_wilson_and_bootstrap_agree_for_a_small_carrier(solutions: ModuleType, scored) -> None:
    test, p_test = scored["test"]
    answer = solutions.exercise_3(test, p_test, THRESHOLD, "F9")
    late = (test["carrier"] == "F9").to_numpy() & (test["late"].to_numpy() == 1)
    k, n = int(np.sum(p_test[late] < THRESHOLD)), int(late.sum())
    assert answer["late flights"] == n and answer["miss rate"] == pytest.approx(k / n)
    z = 1.959963984540054
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    assert answer["wilson low"] == pytest.approx(centre - half) and answer["wilson high"] == pytest.approx(centre + half)
    assert answer["bootstrap low"] <= answer["miss rate"] <= answer["bootstrap high"]
    assert abs(answer["bootstrap low"] - answer["wilson low"]) < 0.06 and abs(answer["bootstrap high"] - answer["wilson high"]) < 0.06


def test_exercise_3_refuses_a_carrier_without_late_flights(solutions: ModuleType, scored) -> None:
    test, p_test = scored["test"]
    with pytest.raises(ValueError, match="no late flights"):
        solutions.exercise_3(test, p_test, THRESHOLD, "ZZ")
