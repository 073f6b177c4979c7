"""`mlsys.evaluate`'s decision, fairness, calibration-holdout and monthly helpers on hand-made data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from mlsys import evaluate
from mlsys.objectives import COURSE_COSTS
from mlsys.pipeline import INPUT_COLUMNS


def test_decision_scores_count_false_alarms_and_misses() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.1, 0.8, 0.3, 0.2, 0.1, 0.0])
    scores = evaluate.decision_scores(y, p, threshold=0.3)
    # acted on: 0.9 (late), 0.4 (late), 0.8 (on time), 0.3 (on time); missed: 0.1 (late)
    assert scores["flagged"] == pytest.approx(4 / 8)
    assert scores["false_alarm_rate"] == pytest.approx(2 / 5)
    assert scores["miss_rate"] == pytest.approx(1 / 3)
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["cost_per_flight"] == pytest.approx((2 * COURSE_COSTS.false_alarm + 1 * COURSE_COSTS.miss) / 8)


def test_error_rates_by_group_split_the_decisions_per_slice() -> None:
    frame = pd.DataFrame({"carrier": ["AA"] * 4 + ["UA"] * 4 + ["VX"], "late": [1, 0, 1, 0, 1, 1, 0, 0, 1]})
    p = np.array([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9])
    table = evaluate.error_rates_by_group(frame, p, "carrier", threshold=0.5, min_n=2)
    assert list(table.index) == ["AA", "UA"]  # VX has one flight
    assert table.loc["AA", "false_alarm_rate"] == pytest.approx(0.5) and table.loc["AA", "miss_rate"] == pytest.approx(0.5)
    assert table.loc["UA", "false_alarm_rate"] == pytest.approx(0.5) and table.loc["UA", "miss_rate"] == pytest.approx(1.0)
    assert table["flights"].tolist() == [4, 4]


def test_split_last_month_holds_out_the_later_month() -> None:
    frame = pd.DataFrame({"month": [9.0, 9.0, 10.0, 10.0, 10.0], "late": [0, 1, 0, 0, 1]})
    earlier, later = evaluate.split_last_month(frame)
    assert earlier["month"].tolist() == [9.0, 9.0] and later["month"].tolist() == [10.0] * 3
    with pytest.raises(ValueError, match="one month"):
        evaluate.split_last_month(frame[frame["month"] == 10.0])


class _Score(ClassifierMixin, BaseEstimator):
    """P(late) = the `distance` column / 1000: a fixed model whose calibration is known."""

    def fit(self, X: pd.DataFrame, y: object) -> _Score:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = np.clip(X["distance"].to_numpy(dtype="float64") / 1000, 0, 1)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def _rows(n: int, rate_shift: float, seed: int, month: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    distance = rng.uniform(50, 950, n)
    late = (rng.uniform(size=n) < np.clip(distance / 1000 + rate_shift, 0, 1)).astype(int)
    frame = pd.DataFrame({c: 0.0 for c in INPUT_COLUMNS}, index=range(n)).assign(distance=distance, late=late, month=month)
    return frame


def test_calibrate_none_is_the_model_and_unknown_methods_fail() -> None:
    model = _Score().fit(None, None)
    rows = _rows(100, 0.0, 0, 9.0)
    assert evaluate.calibrate(model, rows, "none") is model
    with pytest.raises(ValueError, match="unknown calibration method"):
        evaluate.calibrate(model, rows, "beta")


def test_a_map_fitted_on_a_shifted_month_does_worse_on_the_next() -> None:
    # the model is calibrated; September runs 10 points more punctual than the truth, October not
    model = _Score().fit(None, None)
    september, october = _rows(20_000, -0.10, 1, 9.0), _rows(20_000, 0.0, 2, 10.0)
    table = evaluate.compare_calibration(model, september, october)
    assert list(table.index) == list(evaluate.CALIBRATION_METHODS)
    assert table["ece"].idxmin() == "none"
    assert table.loc["sigmoid", "mean_p"] < table.loc["none", "mean_p"]  # the map carried September's punctuality


def test_monthly_profile_counts_per_month() -> None:
    table = pd.DataFrame(
        {
            "month": [1.0, 1.0, 12.0, 12.0],
            "split": ["train", "train", "test", "test"],
            "late": pd.array([0, 1, 1, 1], dtype="Int64"),
            "cancelled": [False, False, True, False],
            "diverted": [False, False, False, False],
            "wx_temp": [30.0, 40.0, 35.0, 45.0],
            "wx_precip_3h": [0.0, 0.1, 0.0, np.nan],
            "wx_visib": [10.0, 2.0, 10.0, 10.0],
            "origin_mean_delay_3h": [0.0, 30.0, np.nan, 5.0],
        }
    )
    profile = evaluate.monthly_profile(table)
    assert profile.index.tolist() == [1, 12] and profile["split"].tolist() == ["train", "test"]
    assert profile.loc[1, "late_rate"] == pytest.approx(0.5) and profile.loc[12, "cancelled_or_diverted"] == pytest.approx(0.5)
    assert profile.loc[1, "precip_3h_share"] == pytest.approx(0.5) and profile.loc[1, "visibility_below_3mi"] == pytest.approx(0.5)
    # quiet origin: month 1 keeps the on-time flight (0 min), month 12 both (missing counts as quiet)
    assert profile.loc[1, "late_rate_quiet_origin"] == pytest.approx(0.0) and profile.loc[12, "late_rate_quiet_origin"] == pytest.approx(1.0)
