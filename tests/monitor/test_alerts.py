"""Weekly monitors and alerts on a synthetic log: alerts fire on a shift and stay quiet without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.monitor import alerts

WEEKS, PER_WEEK, REFERENCE_WEEKS = 10, 2_000, 6


def synthetic(shift: bool, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A log of WEEKS weeks; with `shift`, from week 8 on the feature moves, predictions rise and go wrong."""
    rng = np.random.default_rng(seed)
    n = WEEKS * PER_WEEK
    week = np.repeat(np.arange(WEEKS), PER_WEEK)
    start = pd.Timestamp("2013-09-02 12:00", tz="America/New_York").tz_convert("UTC")
    decision = start + pd.to_timedelta(week * 7, unit="D") + pd.to_timedelta(rng.uniform(0, 6.5 * 24, n), unit="h")
    later = shift & (week >= 8)
    x = rng.normal(size=n) + np.where(later, 1.5, 0.0)
    p = np.clip(rng.beta(2, 8, size=n) + np.where(later, 0.2, 0.0), 0.001, 0.999)
    truth = np.where(later, np.clip(p - 0.25, 0.001, 1), p)  # after the shift the model overestimates
    late = (rng.uniform(size=n) < truth).astype(int)
    log = pd.DataFrame(
        {"flight_id": np.arange(n), "decision_time": decision, "probability": p, "x": x, "wx_age_minutes": rng.uniform(60, 110, n)}
    )
    outcomes = pd.DataFrame({"flight_id": np.arange(n), "late": late, "label_known_at": decision + pd.Timedelta(hours=5)})
    return log, outcomes


def run(shift: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    log, outcomes = synthetic(shift)
    reference = pd.Series(log["decision_time"] < log["decision_time"].min() + pd.Timedelta(weeks=REFERENCE_WEEKS))
    weekly = alerts.window_monitors(log, outcomes, reference, features=["x"])
    ref_weeks, later_weeks = weekly.index[:REFERENCE_WEEKS], weekly.index[REFERENCE_WEEKS:]
    thresholds = alerts.choose_thresholds(weekly, ref_weeks)
    return weekly, alerts.alert_table(weekly, thresholds, later_weeks)


def test_the_shifted_weeks_fire_feature_and_prediction_alerts_and_are_degraded() -> None:
    weekly, table = run(shift=True)
    assert len(weekly) == WEEKS and (weekly["flights"] == PER_WEEK).all()
    shifted = table.index[-2:]
    for week in shifted:
        assert "max feature psi" in table.loc[week, "early alerts"]
        assert "prediction psi" in table.loc[week, "early alerts"]
        assert "ece" in table.loc[week, "label alerts"]
    assert table.loc[shifted, "degraded"].all()
    assert not table.loc[shifted, "false alarm"].any()
    assert (table.loc[table.index[:-2], "early alerts"] == "-").all()


def test_without_a_shift_nothing_fires() -> None:
    _, table = run(shift=False)
    assert (table["early alerts"] == "-").all()
    assert (table["label alerts"] == "-").all()
    assert not table["degraded"].any()


def test_an_early_alert_in_a_week_that_is_not_degraded_is_a_false_alarm() -> None:
    weekly, _ = run(shift=False)
    thresholds = alerts.choose_thresholds(weekly, weekly.index[:REFERENCE_WEEKS])
    noisy = weekly.copy()
    noisy.loc[noisy.index[-1], "weather age p99 (min)"] = 10 * thresholds["weather age p99 (min)"]
    table = alerts.alert_table(noisy, thresholds, noisy.index[REFERENCE_WEEKS:])
    assert table["false alarm"].tolist() == [False] * (WEEKS - REFERENCE_WEEKS - 1) + [True]
    summary = alerts.alert_summary(noisy, thresholds, noisy.index[REFERENCE_WEEKS:])
    assert summary.loc["weather age p99 (min)", ["fired", "false alarms"]].tolist() == [1, 1]


def test_thresholds_widen_the_worst_reference_value() -> None:
    table = pd.DataFrame({m.name: [0.1, 0.3, 0.2] for m in alerts.MONITORS}, index=pd.date_range("2013-09-02", periods=3, freq="7D"))
    table["roc auc"] = [0.8, 0.7, 0.75]
    thresholds = alerts.choose_thresholds(table, table.index, margin=0.5)
    assert thresholds["ece"] == pytest.approx(0.45)
    assert thresholds["roc auc"] == pytest.approx(0.7 - 0.5 * 0.3)


def test_labels_arriving_after_the_wait_are_not_counted() -> None:
    log, outcomes = synthetic(shift=False)
    outcomes["label_known_at"] = outcomes["label_known_at"] + pd.Timedelta(days=30)
    reference = pd.Series(np.ones(len(log), dtype=bool))
    weekly = alerts.window_monitors(log, outcomes, reference, features=["x"])
    assert (weekly["labelled after wait"] == 0).all() and weekly["ece"].isna().all()
