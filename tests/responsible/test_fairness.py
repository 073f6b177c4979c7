"""Wilson intervals keep their coverage; per-group error rates are counted right; group thresholds equalise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.responsible import fairness


def test_wilson_matches_published_values() -> None:
    # Brown, Cai and DasGupta (2001) / Newcombe (1998): 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634]
    lo, hi = fairness.wilson_interval(np.array([0, 5]), np.array([10, 10]))
    np.testing.assert_allclose(lo, [0.0, 0.2366], atol=1e-4)
    np.testing.assert_allclose(hi, [0.2775, 0.7634], atol=1e-4)


def test_wilson_is_nan_for_an_empty_group_and_refuses_impossible_counts() -> None:
    lo, hi = fairness.wilson_interval(0, 0)
    assert np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        fairness.wilson_interval(5, 3)


@pytest.mark.parametrize(("rate", "n"), [(0.05, 40), (0.3, 100), (0.6, 500), (0.95, 60)])
def test_wilson_covers_the_true_rate_about_95_percent_of_the_time(rate: float, n: int) -> None:
    coverage = fairness.interval_coverage(rate, n, trials=20_000, seed=7)
    assert 0.925 <= coverage["wilson"] <= 0.975


def test_the_normal_interval_undercovers_small_groups_with_rare_events() -> None:
    """Why Wilson: for 5 % in groups of 40 the Wald interval misses the true rate far more than 5 % of the time."""
    coverage = fairness.interval_coverage(0.05, 40, trials=20_000, seed=7)
    assert coverage["wald"] < 0.9 < coverage["wilson"]


def _tiny() -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.DataFrame({"carrier": ["A"] * 5 + ["B"] * 4, "late": [1, 1, 0, 0, 0, 1, 0, 0, 0]})
    p = np.array([0.9, 0.1, 0.6, 0.2, 0.1, 0.2, 0.7, 0.8, 0.1])
    return frame, p


def test_error_rates_by_hand() -> None:
    frame, p = _tiny()
    table = fairness.error_rates_ci(frame, p, "carrier", threshold=0.5)
    # A: late flights 2 (one missed), on time 3 (one acted on); B: late 1 (missed), on time 3 (two acted on)
    assert table.loc["A", ["late", "misses", "on_time", "false_alarms"]].tolist() == [2, 1, 3, 1]
    assert table.loc["B", ["late", "misses", "on_time", "false_alarms"]].tolist() == [1, 1, 3, 2]
    assert table.loc["A", "miss_rate"] == pytest.approx(0.5)
    assert table.loc["B", "false_alarm_rate"] == pytest.approx(2 / 3)
    assert (table["far_lo"] <= table["false_alarm_rate"]).all() and (table["false_alarm_rate"] <= table["far_hi"]).all()
    overall = fairness.overall_rates(frame, p, 0.5)
    assert overall == {"false_alarm_rate": pytest.approx(3 / 6), "miss_rate": pytest.approx(2 / 3)}


def test_group_thresholds_equalise_false_alarm_rates() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    group = np.repeat(["low", "high"], n)
    # the "high" group's on-time flights get higher scores: one threshold gives it more false alarms
    p = np.concatenate([rng.uniform(0, 0.6, n), rng.uniform(0.2, 0.8, n)])
    frame = pd.DataFrame({"g": group, "late": 0})
    one = fairness.error_rates_ci(frame, p, "g", 0.5)
    assert one.loc["high", "false_alarm_rate"] > 3 * one.loc["low", "false_alarm_rate"]
    per_group = fairness.group_thresholds(frame, p, "g", target=0.1, default=0.5, min_n=100)
    assert per_group["high"] > per_group["low"]
    flags = fairness.apply_group_thresholds(frame, p, "g", per_group, default=0.5)
    rates = pd.Series(flags).groupby(group).mean()
    assert rates["low"] == pytest.approx(0.1, abs=0.02) and rates["high"] == pytest.approx(0.1, abs=0.02)


def test_small_groups_keep_the_single_threshold() -> None:
    frame = pd.DataFrame({"g": ["big"] * 600 + ["small"] * 10, "late": 0})
    p = np.linspace(0, 1, 610)
    per_group = fairness.group_thresholds(frame, p, "g", target=0.05, default=0.29, min_n=500)
    assert per_group["small"] == 0.29 and per_group["big"] != 0.29


def test_outside_overall_lists_groups_whose_interval_excludes_the_overall_rate() -> None:
    frame = pd.DataFrame({"g": ["a"] * 1000 + ["b"] * 1000, "late": [0] * 2000})
    p = np.r_[np.full(1000, 0.9), np.full(1000, 0.1)]  # a: every on-time flight acted on, b: none
    table = fairness.error_rates_ci(frame.assign(late=[0] * 1999 + [1]), p, "g", 0.5)
    out = fairness.outside_overall(table, fairness.overall_rates(frame.assign(late=[0] * 1999 + [1]), p, 0.5))
    assert set(out.index) == {"a", "b"} and out["false alarms differ"].all()
