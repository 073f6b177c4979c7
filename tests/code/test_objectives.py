"""Cost arithmetic, cost-minimising thresholds and decoupled objectives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from mlsys.objectives import (
    Costs,
    best_threshold,
    best_weight,
    combine,
    confusion_counts,
    cost_curve,
    expected_cost,
    flag_top_k_per_day,
    policy_costs,
    ranking_report,
    scaled_capacity,
    weight_sweep,
)

COSTS = Costs(false_alarm=100.0, miss=300.0)


def test_cost_arithmetic_on_a_hand_made_example():
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.2, 0.6, 0.1, 0.5]
    # threshold 0.5 flags rows 0, 2, 4: tp=2, fp=1 (row 2), fn=1 (row 1), tn=1
    assert confusion_counts(y, np.array(p) >= 0.5) == {"tp": 2, "fp": 1, "fn": 1, "tn": 1}
    assert expected_cost(y, p, 0.5, COSTS) == pytest.approx((100 + 300) / 5)
    # acting on nothing misses all three late flights; acting on everything pays two false alarms
    assert expected_cost(y, p, 1.01, COSTS) == pytest.approx(3 * 300 / 5)
    assert expected_cost(y, p, 0.0, COSTS) == pytest.approx(2 * 100 / 5)
    # a hit that costs something is charged too
    assert expected_cost(y, p, 0.5, Costs(100, 300, hit=10)) == pytest.approx((100 + 300 + 2 * 10) / 5)


def test_bayes_threshold():
    assert COSTS.bayes_threshold() == pytest.approx(0.25)
    assert Costs(false_alarm=50, miss=150, hit=50).bayes_threshold() == pytest.approx(50 / 150)


def test_best_threshold_minimises_cost():
    y = np.array([0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.35, 0.3, 0.7, 0.8, 0.9])
    curve = cost_curve(y, p, COSTS)
    best = best_threshold(y, p, COSTS)
    assert expected_cost(y, p, best, COSTS) == pytest.approx(curve["cost"].min())
    # flagging everything from 0.3 up catches every late flight for two false alarms (0.35, 0.8):
    # cost 200 / 7; the smallest threshold that does it on the 0.01 grid is 0.16
    assert best == pytest.approx(0.16)
    assert curve["cost"].min() == pytest.approx(200 / 7)


def test_best_threshold_moves_with_costs():
    rng = np.random.default_rng(0)
    p = rng.random(5_000)
    y = (rng.random(5_000) < p).astype(int)  # calibrated by construction
    cheap_alarms = best_threshold(y, p, Costs(false_alarm=10, miss=90))
    dear_alarms = best_threshold(y, p, Costs(false_alarm=90, miss=10))
    assert cheap_alarms == pytest.approx(0.1, abs=0.05)
    assert dear_alarms == pytest.approx(0.9, abs=0.05)


class _CountingClassifier(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        self.fits_ = getattr(self, "fits_", 0) + 1
        return self

    def predict_proba(self, X):
        p = np.asarray(X["p"], dtype=float)
        return np.column_stack([1 - p, p])


class _CountingRegressor(RegressorMixin, BaseEstimator):
    def fit(self, X, y):
        self.fits_ = getattr(self, "fits_", 0) + 1
        return self

    def predict(self, X):
        return np.asarray(X["m"], dtype=float)


def test_reweighting_changes_ranking_without_refitting():
    X = pd.DataFrame({"p": [0.9, 0.6, 0.3, 0.2], "m": [10.0, 20.0, 120.0, 200.0]})
    day = ["d1"] * 4
    clf = _CountingClassifier().fit(X, [1, 1, 0, 0])
    reg = _CountingRegressor().fit(X, [10, 20, 120, 200])
    p, m = clf.predict_proba(X)[:, 1], reg.predict(X)
    by_probability = flag_top_k_per_day(combine(p, m, alpha=1, beta=0), day, k=2)
    by_minutes = flag_top_k_per_day(combine(p, m, alpha=0, beta=1), day, k=2)
    blended = combine(p, m, alpha=1, beta=1)
    assert by_probability.tolist() == [True, True, False, False]
    assert by_minutes.tolist() == [False, False, True, True]
    assert blended == pytest.approx([0.9 + 10 / 60, 0.6 + 20 / 60, 0.3 + 2, 0.2 + 200 / 60])
    assert clf.fits_ == 1 and reg.fits_ == 1


def test_top_k_is_per_day_and_deterministic():
    score = [0.1, 0.9, 0.5, 0.5, 0.2, 0.8]
    day = ["a", "a", "a", "b", "b", "b"]
    flags = flag_top_k_per_day(score, day, k=1)
    assert flags.tolist() == [False, True, False, False, False, True]
    ties = flag_top_k_per_day([0.5, 0.5, 0.5], ["a", "a", "a"], k=2)
    assert ties.tolist() == [True, True, False]


def test_ranking_report():
    y = [1, 0, 1, 1]
    arr_delay = [60.0, -5.0, np.nan, 30.0]  # the third flight was cancelled
    report = ranking_report(y, arr_delay, [True, True, False, False], ["a", "a", "b", "b"], COSTS)
    assert report["precision"] == pytest.approx(0.5)
    assert report["recall"] == pytest.approx(1 / 3)
    assert report["delay_minutes_caught"] == pytest.approx(60 / 90)
    assert report["flagged_per_day"] == pytest.approx(1.0)
    assert report["cost_per_day"] == pytest.approx((100 + 2 * 300) / 2)


def test_policy_costs_one_row_per_threshold():
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.2, 0.6, 0.1, 0.5]
    table = policy_costs(y, p, {"none": 1.01, "every": 0.0, "half": 0.5}, COSTS, n_days=2)
    assert table.index.tolist() == ["none", "every", "half"]
    assert table.loc["half", "cost per flight"] == pytest.approx(expected_cost(y, p, 0.5, COSTS))
    assert table.loc["none", "share flagged"] == 0.0 and table.loc["every", "share flagged"] == 1.0
    assert table.loc["half", "share flagged"] == pytest.approx(3 / 5)
    # cost per day: five flights over two days
    assert table.loc["every", "cost per day"] == pytest.approx(2 * 100 / 2)
    assert "cost per day" not in policy_costs(y, p, {"half": 0.5}, COSTS).columns


def test_scaled_capacity_keeps_the_share_of_flights():
    assert scaled_capacity(100, 20_000, 56_463) == 35
    assert scaled_capacity(100, 56_463, 56_463) == 100
    assert scaled_capacity(1, 10, 1_000) == 1  # never zero flights a day


def test_weight_sweep_prefers_the_weight_that_catches_the_late_flights():
    # one day, capacity 1: P(late) ranks flight 0 first, the minutes model ranks flight 1 first;
    # only flight 1 is late, so any weight that ranks it first is cheaper
    y = [0, 1, 0]
    arr_delay = [5.0, 120.0, 0.0]
    p = [0.6, 0.5, 0.1]
    minutes = [0.0, 90.0, 0.0]
    sweep = weight_sweep(y, arr_delay, p, minutes, ["d"] * 3, k=1, costs=COSTS, weights=[0.0, 0.5, 1.0])
    assert sweep.index.tolist() == [0.0, 0.5, 1.0]
    assert sweep.loc[0.0, "recall"] == 0.0 and sweep.loc[0.5, "recall"] == 1.0
    no_action = 300.0  # one miss on the one day
    assert (sweep["saved_per_day"] == no_action - sweep["cost_per_day"]).all()
    # 0.5 and 1.0 tie: the smaller weight wins
    assert best_weight(sweep) == 0.5

