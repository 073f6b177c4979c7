"""The random search: seeded, one MLflow child run per trial, best trial chosen on valid."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlsys import features, train, tune

SEED = 3
TRIALS = 3


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    splits = features.load_splits(fast=True, seed=SEED)
    sizes = {"train": 2_000, "valid": 1_000, "test": 1_000}
    return {name: train.subsample(df, sizes[name], SEED) for name, df in splits.items()}


def search(small: dict[str, pd.DataFrame], seed: int = SEED) -> tune.SearchResult:
    return tune.random_search(small, n_trials=TRIALS, seed=seed, max_estimators=60, early_stopping_rounds=10)


@pytest.fixture(scope="module")
def result(small: dict[str, pd.DataFrame]) -> tune.SearchResult:
    return search(small)


def comparable(trials: pd.DataFrame) -> pd.DataFrame:
    return trials.drop(columns=["seconds", "run_id"])


def test_same_seed_same_trials(result: tune.SearchResult, small: dict[str, pd.DataFrame]) -> None:
    again = search(small)
    pd.testing.assert_frame_equal(comparable(again.trials), comparable(result.trials))
    assert again.test == result.test


def test_other_seed_other_configurations(result: tune.SearchResult, small: dict[str, pd.DataFrame]) -> None:
    other = search(small, seed=SEED + 1)
    assert not other.trials["learning_rate"].equals(result.trials["learning_rate"])


def test_one_child_run_per_trial_under_the_parent(result: tune.SearchResult) -> None:
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(runs) == TRIALS
    assert sorted(runs["tags.mlflow.runName"]) == [f"trial-{i:02d}" for i in range(TRIALS)]
    assert sorted(runs["run_id"]) == sorted(result.trials["run_id"])
    by_run = runs.set_index("run_id")["metrics.valid_roc_auc"]
    np.testing.assert_allclose(by_run.loc[result.trials["run_id"]].to_numpy(), result.trials["valid_roc_auc"].to_numpy())


def test_picks_the_best_validation_score(result: tune.SearchResult) -> None:
    best = result.trials.loc[result.trials["valid_roc_auc"].idxmax()]
    assert result.valid["roc_auc"] == pytest.approx(best["valid_roc_auc"])
    assert result.best_params["num_leaves"] == best["num_leaves"]
    assert result.best_params["n_estimators"] == best["n_estimators"]
    assert result.model.named_steps["model"].get_params()["num_leaves"] == best["num_leaves"]
    parent = mlflow.get_run(result.run_id)
    assert parent.data.params["best_trial"] == str(int(best["trial"]))
    assert parent.data.metrics["test_roc_auc"] == pytest.approx(result.test["roc_auc"])


def test_sampled_parameters_stay_in_their_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        params = tune.sample_params(rng)
        for name, (kind, low, high) in tune.SPACE.items():
            assert low <= params[name] <= high, name
            assert isinstance(params[name], int) == (kind == "int_log")


def test_search_can_leave_test_alone(small: dict[str, pd.DataFrame], result: tune.SearchResult) -> None:
    blind = tune.random_search(small, n_trials=TRIALS, seed=SEED, max_estimators=60, early_stopping_rounds=10, score_test=False)
    assert blind.test == {}
    parent = mlflow.get_run(blind.run_id)
    assert not [key for key in parent.data.metrics if key.startswith("test_")]
    # the choice and its validation predictions do not depend on whether test is scored afterwards
    pd.testing.assert_frame_equal(comparable(blind.trials), comparable(result.trials))
    np.testing.assert_array_equal(blind.valid_pred, result.valid_pred)
    X_valid, _ = train.xy(small["valid"])
    np.testing.assert_array_equal(blind.valid_pred, train.predict(blind.model, X_valid))
