"""Resampling touches only the training split; the leak demo finds copies across the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import imbalance


def _frame(n: int, positives: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame({"flight_id": np.arange(start, start + n), "x": rng.normal(size=n), "y": [1] * positives + [0] * (n - positives)})


def test_severe_label_counts_disruptions() -> None:
    df = pd.DataFrame({"arr_delay": [130.0, 30.0, np.nan, np.nan], "cancelled": [False, False, True, False], "diverted": [False, False, False, True]})
    assert imbalance.severe_label(df).tolist() == [1, 0, 1, 1]


def test_oversample_balances_with_copies_of_minority_rows() -> None:
    df = _frame(100, 10)
    out = imbalance.random_oversample(df, "y", seed=0)
    assert out["y"].value_counts().to_dict() == {0: 90, 1: 90}
    assert set(out.loc[out["y"] == 1, "flight_id"]) == set(range(10))  # only copies, nothing new
    assert out.loc[out["y"] == 0, "flight_id"].is_unique


def test_undersample_keeps_all_minority_rows() -> None:
    out = imbalance.random_undersample(_frame(100, 10), "y", seed=0)
    assert out["y"].value_counts().to_dict() == {0: 10, 1: 10}
    assert set(out.loc[out["y"] == 1, "flight_id"]) == set(range(10))


@pytest.mark.parametrize("method", ["oversample", "undersample"])
def test_resampling_touches_only_the_training_frame(method: str) -> None:
    splits = {"train": _frame(100, 10), "valid": _frame(50, 5, 1000), "test": _frame(50, 5, 2000)}
    before = {k: v.copy() for k, v in splits.items()}
    out = imbalance.resample_training(splits, "y", method, seed=0)
    assert out["valid"] is splits["valid"] and out["test"] is splits["test"]
    assert out["train"]["y"].mean() == 0.5
    for name, frame in before.items():
        pd.testing.assert_frame_equal(splits[name], frame)  # the input dict is not modified


def test_cross_split_duplicates() -> None:
    train = pd.DataFrame({"flight_id": [1, 2, 3]})
    test = pd.DataFrame({"flight_id": [3, 4, 5, 3]})
    assert imbalance.cross_split_duplicates(train, test) == 0.5
    assert imbalance.cross_split_duplicates(train, pd.DataFrame({"flight_id": [7]})) == 0.0


def test_leak_demo_finds_copies_only_when_oversampling_comes_first() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"flight_id": np.arange(n), "a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["y"] = (rng.random(n) < 0.05).astype(int)  # pure noise: no honest model can beat 0.5
    table = imbalance.leak_demo(df, "y", seed=0, model_factory=lambda seed: imbalance.deep_tree(seed, columns=["a", "b"]))
    leaky, honest = table.iloc[0], table.iloc[1]
    assert leaky["test_positives_also_in_train"] > 0.9
    assert honest["test_rows_also_in_train"] == 0.0
    assert leaky["roc_auc"] > 0.8 > 0.6 > honest["roc_auc"]


def test_operating_points_read_precision_and_fpr_at_a_recall() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    table = imbalance.operating_points(y, p, recalls=(0.5, 1.0))
    assert table.loc[0.5, "precision"] == 1.0 and table.loc[0.5, "false_positive_rate"] == 0.0
    assert table.loc[1.0, "precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert table.loc[1.0, "false_positive_rate"] == pytest.approx(1 / 6, abs=1e-4)
    assert table.loc[1.0, "false_alarms_per_hit"] == 0.5


def test_balanced_class_weights_give_each_class_the_same_total() -> None:
    y = np.array([1] * 10 + [0] * 90)
    table = imbalance.class_weight_table(y)
    assert table["total weight"].tolist() == [50.0, 50.0]  # n / 2 each: equal totals, not "one class = the other's sum"
    assert table.loc[1, "weight per row"] == pytest.approx(100 / (2 * 10))
    assert table.loc[0, "weight per row"] == pytest.approx(100 / (2 * 90), abs=1e-4)  # shown to 4 decimals


def test_prior_shift_moves_the_balanced_world_back_and_keeps_the_order() -> None:
    p = np.array([0.1, 0.5, 0.9])
    assert imbalance.prior_shift(p, 0.5, 0.5) == pytest.approx(p)
    moved = imbalance.prior_shift(p, trained_share=0.5, true_share=0.1)
    assert moved[1] == pytest.approx(0.1)  # a coin flip in the balanced world is the base rate in the real one
    assert np.all(np.diff(moved) > 0) and np.all(moved < p)


def test_reliability_table_bins_every_row_once() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=1000)
    y = rng.uniform(size=1000) < p  # calibrated by construction
    table = imbalance.reliability_table(y, p, bins=10)
    assert table["rows"].sum() == 1000 and len(table) == 10
    assert np.all(np.diff(table["mean_predicted"]) > 0)
    assert np.abs(table["mean_predicted"] - table["observed_rate"]).max() < 0.1
