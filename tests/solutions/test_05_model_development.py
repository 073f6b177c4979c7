"""The solutions to lesson 05's exercises give the right answers (`02-notebooks/solutions/05_model_development.py`).

Small seeded cuts of the splits keep the file at a few seconds; every answer is checked against an
independent computation (scikit-learn on explicit resamples, a search that scores test itself) or
a property a wrong answer would break.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlsys import features, leakage, pipeline, train, tune

SEED = 42


@pytest.fixture(scope="module")
def full() -> dict[str, pd.DataFrame]:
    return features.load_splits(fast=True, seed=SEED)


@pytest.fixture(scope="module")
def splits(full: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    sizes = {"train": 8_000, "valid": 6_000, "test": 6_000}
    return {name: train.subsample(df, sizes[name], SEED) for name, df in full.items()}


def test_exercise_1_learning_curve_in_training_size(solutions: ModuleType, splits) -> None:
    curve = solutions.exercise_1(splits, sizes=(1_000, 2_000, 8_000), seed=SEED)
    assert list(curve.index) == [1_000, 2_000, 8_000]
    sample = train.subsample(splits["train"], 2_000, SEED)
    model = pipeline.make_model("logreg", seed=SEED).fit(sample[pipeline.INPUT_COLUMNS], sample["late"].astype(int))
    expected = roc_auc_score(splits["valid"]["late"].astype(int), model.predict_proba(splits["valid"][pipeline.INPUT_COLUMNS])[:, 1])
    assert curve[2_000] == pytest.approx(expected, abs=1e-6)
    assert curve[8_000] > curve[1_000]  # more data helps


def test_exercise_2_days_give_the_wider_interval(solutions: ModuleType, splits, full) -> None:
    # the whole fast validation split (about 330 flights a day): on a small sample the two widths are too close to rank
    valid = full["valid"]
    X, y = train.xy(splits["train"])
    Xv, _ = train.xy(valid)
    p_a = train.predict(train.make_zoo_model("lightgbm", SEED).set_params(model__n_estimators=60).fit(X, y), Xv)
    p_b = train.predict(train.make_zoo_model("bagging", SEED).fit(X, y), Xv)
    answer = solutions.exercise_2(valid, p_a, p_b, n_boot=200, seed=SEED)
    width = {name: high - low for name, (low, high) in answer.items()}
    assert width["days"] > width["flights"] > 0
    # independently: the same resamples as explicit row indices, scored by scikit-learn
    y_valid = valid["late"].astype(int).to_numpy()
    weights = train.bootstrap_weights(len(y_valid), 200, SEED, leakage.local_day(valid))
    differences = []
    for w in weights:
        rows = np.repeat(np.arange(len(y_valid)), w)
        differences.append(roc_auc_score(y_valid[rows], p_a[rows]) - roc_auc_score(y_valid[rows], p_b[rows]))
    assert answer["days"] == pytest.approx(tuple(np.quantile(differences, [0.025, 0.975])), abs=1e-9)


def test_exercise_3_smaller_steps_keep_more_trees(solutions: ModuleType, splits) -> None:
    table = solutions.exercise_3(splits, rates=(0.05, 0.2), seed=SEED)
    assert table.loc[0.05, "trees"] > table.loc[0.2, "trees"]
    assert table["chosen on validation"].sum() == 1
    assert table.loc[table["chosen on validation"], "valid ROC AUC"].iloc[0] == table["valid ROC AUC"].max()
    assert 0.6 < table["valid ROC AUC"].min() <= table["valid ROC AUC"].max() < 0.9


def test_exercise_4_only_the_row_fingerprint_moves(solutions: ModuleType, splits) -> None:
    assert solutions.exercise_4(splits, seed=SEED) == {"data.fit_rows"}


def test_exercise_5_choosing_on_test_flatters(solutions: ModuleType, splits) -> None:
    answer = solutions.exercise_5(splits, n_trials=4, seed=SEED)
    assert answer["optimism of choosing on test"] >= 0
    assert answer["best test ROC AUC over the trials"] == pytest.approx(answer["its test ROC AUC"] + answer["optimism of choosing on test"])
    # the search scoring its own choice on test, once, gets the same figure as the refitted trial
    search = tune.random_search(splits, n_trials=4, seed=SEED, score_test=True)
    assert int(search.trials["valid_roc_auc"].idxmax()) == answer["trial chosen on validation"]
    assert answer["its test ROC AUC"] == pytest.approx(search.test["roc_auc"], abs=1e-9)
