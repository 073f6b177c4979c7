"""The solutions to lesson 06's exercises give the right answers (`02-notebooks/solutions/06_offline_evaluation.py`).

A small champion (150 trees on 20,000 training flights) and a seeded 20,000-flight cut of the test
split keep the file short; every answer is checked against an independent computation (sklearn,
plain numpy) or a property a wrong answer would break.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score

from mlsys import baselines, evaluate, features, promote
from mlsys.pipeline import INPUT_COLUMNS

SEED = 42


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    s = features.load_splits(fast=True, seed=SEED)
    return {
        **s,
        "train": baselines.sample_rows(s["train"], 20_000, SEED),
        "test": s["test"].sample(20_000, random_state=SEED).sort_index().reset_index(drop=True),
    }


@pytest.fixture(scope="module")
def model(splits: dict[str, pd.DataFrame]):
    return evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, n_estimators=150, learning_rate=0.1, n_jobs=1), splits["train"])


@pytest.fixture(scope="module")
def threshold(model, splits: dict[str, pd.DataFrame]) -> float:
    return promote.choose_threshold(model, splits)


def _p(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame[INPUT_COLUMNS])[:, 1]


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum((which == b).mean() * abs(y[which == b].mean() - p[which == b].mean()) for b in np.unique(which)))


def _cheapest(y: np.ndarray, p: np.ndarray) -> float:
    grid = np.round(np.linspace(0, 1, 101), 2)
    costs = [(100 * ((p >= t) & (y == 0)).sum() + 300 * ((p < t) & (y == 1)).sum()) / len(y) for t in grid]
    return float(grid[int(np.argmin(costs))])


def test_exercise_1_maps_fitted_on_october_lose_on_september(solutions: ModuleType, model, splits) -> None:
    table = solutions.exercise_1(model, splits)
    valid = splits["valid"]
    september, october = valid[valid["month"] == 9], valid[valid["month"] == 10]
    y = september["late"].to_numpy(dtype="float64")
    assert table.loc["none", "ece"] == pytest.approx(_ece(y, _p(model, september)))
    sigmoid = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(october[INPUT_COLUMNS], october["late"].astype(int))
    assert table.loc["sigmoid", "ece"] == pytest.approx(_ece(y, sigmoid.predict_proba(september[INPUT_COLUMNS])[:, 1]))
    assert table["ece"].idxmin() == "none"
    assert table["late_rate_fitted_on"].iloc[0] == pytest.approx(october["late"].mean())


def test_exercise_2_peeking_flatters_the_cost(solutions: ModuleType, model, splits) -> None:
    answer = solutions.exercise_2(model, splits)
    valid, test = splits["valid"], splits["test"]
    y_test, p_test = test["late"].astype(int).to_numpy(), _p(model, test)
    assert answer["validation threshold"] == pytest.approx(_cheapest(valid["late"].astype(int).to_numpy(), _p(model, valid)))
    assert answer["test threshold (peeked)"] == pytest.approx(_cheapest(y_test, p_test))
    t = answer["validation threshold"]
    honest = (100 * ((p_test >= t) & (y_test == 0)).sum() + 300 * ((p_test < t) & (y_test == 1)).sum()) / len(y_test)
    assert answer["test cost at validation threshold"] == pytest.approx(honest)
    assert answer["test cost at peeked threshold"] <= answer["test cost at validation threshold"]
    assert answer["saving the peek pretends"] == pytest.approx(honest - answer["test cost at peeked threshold"])


def test_exercise_3_error_rates_per_destination(solutions: ModuleType, model, splits, threshold: float) -> None:
    table = solutions.exercise_3(model, splits, threshold, top=10)
    valid = splits["valid"]
    busiest = valid["dest"].value_counts().head(10).index
    assert set(table.index) == set(busiest)
    acted = _p(model, valid) >= threshold
    late = valid["late"].to_numpy() == 1
    for dest, row in table.iterrows():
        here = (valid["dest"] == dest).to_numpy()
        assert row["flights"] == here.sum()
        assert row["false_alarm_rate"] == pytest.approx(acted[here & ~late].mean())
        assert row["miss_rate"] == pytest.approx((~acted[here & late]).mean())
    assert table["miss_rate"].is_monotonic_decreasing


def test_exercise_4_model_against_rule_per_hour(solutions: ModuleType, model, splits) -> None:
    table = solutions.exercise_4(model, splits, min_n=500)
    valid = splits["valid"]
    train = splits["train"]
    rule = baselines.HeuristicBaseline().fit(train[INPUT_COLUMNS], train["late"].astype(int))
    counts = valid["sched_hour"].value_counts()
    assert sorted(table.index) == sorted(int(h) for h in counts[counts >= 500].index)
    for hour, row in table.iterrows():
        rows = valid[valid["sched_hour"] == hour]
        assert row["model_roc_auc"] == pytest.approx(roc_auc_score(rows["late"].astype(int), _p(model, rows)))
        assert row["rule_roc_auc"] == pytest.approx(roc_auc_score(rows["late"].astype(int), _p(rule, rows)))
    assert (table["model_better"] == (table["model_roc_auc"] > table["rule_roc_auc"])).all()


def test_exercise_5_december_read_as_august_is_unchanged(solutions: ModuleType, model, splits) -> None:
    table = solutions.exercise_5(model, splits)
    december = splits["test"][splits["test"]["month"] == 12]
    assert list(table.index) == list(range(1, 9))
    # trees learned every split on month between 1 and 8: 12 falls with 8
    assert table.loc[8, "mean_p"] == pytest.approx(_p(model, december).mean(), abs=1e-12)
    assert table.loc[1, "mean_p"] == pytest.approx(_p(model, december.assign(month=1.0)).mean())
    assert table["late_rate"].iloc[0] == pytest.approx(december["late"].mean())
    assert (table["gap"] > 0).all()
