"""The solutions to lesson 01's exercises give the right answers (`02-notebooks/solutions/01_framing.py`).

Small seeded cuts of the splits keep the file at a few seconds; every answer is checked against
an independent computation (sklearn, plain numpy) or a property a wrong answer would break.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score

from mlsys import baselines, features
from mlsys.pipeline import INPUT_COLUMNS

SEED = 42


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    s = features.load_splits(fast=True, seed=SEED)
    return {**s, "train": baselines.sample_rows(s["train"], 10_000, SEED), "valid": baselines.sample_rows(s["valid"], 10_000, SEED)}


@pytest.fixture(scope="module")
def logreg(splits: dict[str, pd.DataFrame]) -> BaseEstimator:
    return baselines.fit_models(baselines.baseline_models(SEED, ["logreg"]), splits["train"])["logreg"]


def _cost_minimising_threshold(y: np.ndarray, p: np.ndarray, false_alarm: float, miss: float) -> float:
    grid = np.round(np.linspace(0, 1, 101), 2)
    costs = [(false_alarm * ((p >= t) & (y == 0)).sum() + miss * ((p < t) & (y == 1)).sum()) / len(y) for t in grid]
    return float(grid[int(np.argmin(costs))])


def test_exercise_1_dearer_misses_lower_the_threshold(solutions: ModuleType, splits, logreg) -> None:
    answer = solutions.exercise_1(logreg, splits["valid"], miss=500.0)
    y, p = splits["valid"]["late"].astype(int).to_numpy(), logreg.predict_proba(splits["valid"][INPUT_COLUMNS])[:, 1]
    assert answer["bayes_threshold"] == pytest.approx(100 / 600)
    assert answer["chosen_threshold"] == pytest.approx(_cost_minimising_threshold(y, p, 100, 500))
    assert answer["chosen_with_course_costs"] == pytest.approx(_cost_minimising_threshold(y, p, 100, 300))
    assert answer["chosen_threshold"] <= answer["chosen_with_course_costs"]


def test_exercise_2_zero_rule_formulas_match_sklearn(solutions: ModuleType, splits) -> None:
    table = solutions.exercise_2(splits)
    pi = splits["train"]["late"].mean()
    y = splits["valid"]["late"].astype(int)
    constant = np.full(len(y), pi)
    for column in table.columns:
        assert table.loc["log_loss", column] == pytest.approx(log_loss(y, constant, labels=[0, 1]))
        assert table.loc["brier", column] == pytest.approx(brier_score_loss(y, constant))


def test_exercise_3_pair_share_estimates_roc_auc(solutions: ModuleType, splits) -> None:
    answer = solutions.exercise_3(splits, n_pairs=100_000, seed=SEED)
    rule = baselines.HeuristicBaseline().fit(splits["train"][INPUT_COLUMNS], splits["train"]["late"].astype(int))
    exact = roc_auc_score(splits["valid"]["late"].astype(int), rule.predict_proba(splits["valid"][INPUT_COLUMNS])[:, 1])
    assert answer["roc_auc"] == pytest.approx(exact)
    assert answer["share of pairs in the right order"] == pytest.approx(exact, abs=0.01)


def test_exercise_4_stricter_rule_flags_fewer_flights(solutions: ModuleType, splits) -> None:
    table = solutions.exercise_4(splits, delay_minutes=(15.0, 30.0))
    train, valid = splits["train"], splits["valid"]
    for minutes, (_, row) in zip((15.0, 30.0), table.iterrows()):
        congested = train["origin_mean_delay_1h"] >= minutes
        raining = train["wx_precip"] > 0
        assert row["share of training flights flagged"] == pytest.approx((congested | raining).mean())
        rule = baselines.HeuristicBaseline(delay_minutes=minutes).fit(train[INPUT_COLUMNS], train["late"].astype(int))
        assert row["validation roc_auc"] == pytest.approx(roc_auc_score(valid["late"].astype(int), rule.predict_proba(valid[INPUT_COLUMNS])[:, 1]))
    shares = table["share of training flights flagged"].to_numpy()
    assert shares[1] < shares[0]


def test_exercise_5_smaller_desk_is_more_precise_and_catches_less(solutions: ModuleType, splits, logreg) -> None:
    valid = splits["valid"]
    population = 3 * len(valid)  # pretend the sample is a third of the period
    table = solutions.exercise_5(logreg, valid, capacities=(50, 100), valid_flights=population)
    y, p = valid["late"].astype(int).to_numpy(), logreg.predict_proba(valid[INPUT_COLUMNS])[:, 1]
    day = valid["sched_dep_local"].dt.date.to_numpy()
    for k, row in table.iterrows():
        k_sample = max(1, round(k / 3))
        assert row["flights a day on the sample"] == k_sample
        rank = pd.Series(p).groupby(day).rank(method="first", ascending=False).to_numpy()
        flags = rank <= k_sample
        assert row["precision"] == pytest.approx(precision_score(y, flags))
        assert row["recall"] == pytest.approx(recall_score(y, flags))
    assert table.loc[50, "recall"] < table.loc[100, "recall"]
