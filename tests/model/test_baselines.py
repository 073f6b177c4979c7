"""Behaviour of the baselines: fitted on train only, scored on the split asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from mlsys import baselines
from mlsys.baselines import HeuristicBaseline, RandomBaseline, ZeroRule, evaluate_baselines, sample_rows, training_size_curve
from mlsys.train import subsample

RULE_COLUMNS = ["origin_mean_delay_1h", "wx_precip"]


def _frame(congested: np.ndarray, late: np.ndarray) -> pd.DataFrame:
    """Rows where only congestion varies (no rain): the heuristic's score is exactly `congested`."""
    return pd.DataFrame(
        {
            "origin_mean_delay_1h": np.where(congested, 40.0, 2.0),
            "wx_precip": 0.0,
            "late": pd.array(late.astype(int), dtype="Int64"),
        }
    )


@pytest.fixture
def splits() -> dict[str, pd.DataFrame]:
    """Three splits that disagree on purpose.

    train: prevalence 0.25 and congestion weakly predictive; valid: congestion predicts `late`
    perfectly (AUC 1); test: congestion predicts on-time perfectly (AUC 0), prevalence 0.5.
    A score computed on the wrong split gives a different number.
    """
    rng = np.random.default_rng(0)
    congested = rng.random(400) < 0.5
    train_late = np.where(congested, rng.random(400) < 0.4, rng.random(400) < 0.1)
    valid_congested = np.arange(200) < 60
    test_congested = np.arange(300) < 150
    return {
        "train": _frame(congested, train_late),
        "valid": _frame(valid_congested, valid_congested),
        "test": _frame(test_congested, ~test_congested),
    }


def _scores(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    table = evaluate_baselines(splits, label="late", seed=1, names=["random", "zero-rule", "heuristic"], columns=RULE_COLUMNS)
    return table.set_index(["model", "split"])


def test_metrics_are_computed_on_the_requested_split(splits):
    scores = _scores(splits)
    assert scores.loc[("heuristic", "valid"), "roc_auc"] == pytest.approx(1.0)
    assert scores.loc[("heuristic", "test"), "roc_auc"] == pytest.approx(0.0)
    assert scores.loc[("heuristic", "valid"), "rows"] == 200
    assert scores.loc[("heuristic", "test"), "rows"] == 300
    assert scores.loc[("zero-rule", "valid"), "positive_rate"] == pytest.approx(0.3)
    assert scores.loc[("zero-rule", "test"), "positive_rate"] == pytest.approx(0.5)
    assert "train" not in scores.index.get_level_values("split")


def test_models_are_fitted_on_train_only(splits):
    scores = _scores(splits)
    train_rate = splits["train"]["late"].astype(float).mean()
    y_valid = splits["valid"]["late"].astype(int)
    expected = log_loss(y_valid, np.full(len(y_valid), train_rate), labels=[0, 1])
    fitted_on_valid = log_loss(y_valid, np.full(len(y_valid), y_valid.mean()), labels=[0, 1])
    assert scores.loc[("zero-rule", "valid"), "log_loss"] == pytest.approx(expected)
    assert abs(expected - fitted_on_valid) > 0.01  # fitting on valid would be caught


def test_zero_rule_predicts_training_prevalence(splits):
    train = splits["train"]
    model = ZeroRule().fit(train[RULE_COLUMNS], train["late"])
    prevalence = train["late"].astype(float).mean()
    assert model.prevalence_ == pytest.approx(prevalence)
    p = model.predict_proba(splits["test"][RULE_COLUMNS])[:, 1]
    assert np.allclose(p, prevalence)
    assert (model.predict(splits["test"][RULE_COLUMNS]) == 0).all()  # majority class: on time


def test_random_baseline_auc_is_one_half_and_seeded():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=20_000)})
    y = (rng.random(20_000) < 0.3).astype(int)
    model = RandomBaseline(seed=7).fit(X, y)
    p = model.predict_proba(X)[:, 1]
    assert roc_auc_score(y, p) == pytest.approx(0.5, abs=0.02)
    assert ((p >= 0) & (p <= 1)).all()
    assert np.array_equal(p, RandomBaseline(seed=7).fit(X, y).predict_proba(X)[:, 1])
    assert not np.array_equal(p, RandomBaseline(seed=8).fit(X, y).predict_proba(X)[:, 1])


def test_heuristic_fires_on_rainy_or_congested_rows():
    X = pd.DataFrame(
        {
            "origin_mean_delay_1h": [40.0, 2.0, 2.0, 15.0, np.nan, 30.0],
            "wx_precip": [0.0, 0.1, 0.0, 0.0, 0.0, 0.2],
        }
    )
    y = np.array([1, 1, 0, 1, 0, 1])
    model = HeuristicBaseline().fit(X, y)
    # congested, rainy, neither, exactly at the 15-min bar, no departures (missing), both
    assert model.predict(X).tolist() == [1, 1, 0, 1, 0, 1]
    assert model.n_conditions(X).tolist() == [1, 1, 0, 1, 0, 2]
    p = model.predict_proba(X)[:, 1]
    # documented mapping: training late rate per number of conditions met
    assert p.tolist() == pytest.approx([1.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    assert model.rates_ == {0: 0.0, 1: 1.0, 2: 1.0}


def test_sample_rows_draws_the_same_flights_as_lesson_05():
    df = pd.DataFrame({"x": np.arange(1_000), "late": np.arange(1_000) % 3 == 0})
    assert sample_rows(df, 100, seed=5).equals(subsample(df, 100, seed=5))
    assert sample_rows(df, None) is df and sample_rows(df, 5_000) is df
    assert sample_rows(df, 100, seed=5)["x"].is_monotonic_increasing  # chronological order kept


class _Fitted:
    """Stands in for a model already fitted on the whole training split."""

    def predict_proba(self, X):
        return np.column_stack([np.full(len(X), 0.5), np.full(len(X), 0.5)])


def test_training_size_curve_samples_train_and_reuses_full_fits(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=3_000)
    df = pd.DataFrame({"x": x, "late": pd.array((x + rng.normal(size=3_000) > 0).astype(int), dtype="Int64")})
    splits = {"train": df.iloc[:2_000].reset_index(drop=True), "valid": df.iloc[2_000:].reset_index(drop=True)}
    monkeypatch.setitem(baselines.CURVE_MODELS, "logreg", lambda seed: LogisticRegression())
    curve = training_size_curve(splits, [100, 5_000], kinds=("logreg",), columns=["x"], fitted={"logreg": _Fitted()})
    assert curve["train_rows"].tolist() == [100, 2_000]  # a size above the split uses all of it
    assert curve["roc_auc"].iloc[0] > 0.7  # really fitted on the sample
    assert curve["roc_auc"].iloc[1] == pytest.approx(0.5)  # the full-split model was reused, not refitted
    with pytest.raises(ValueError, match="unknown model kind"):
        training_size_curve(splits, [100], kinds=("forest",), columns=["x"])

