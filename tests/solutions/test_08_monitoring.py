"""The solutions to lesson 08's exercises give the right answers (`02-notebooks/solutions/08_monitoring.py`).

Synthetic inputs with answers known by construction, and `mlsys.monitor` as the independent check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.monitor import alerts, drift


def test_exercise_1_psi_by_hand_agrees_with_the_package(solutions) -> None:
    rng = np.random.default_rng(11)
    ref = pd.Series(np.r_[rng.normal(60, 8, 4_000), [np.nan] * 40])
    cur = pd.Series(np.r_[rng.normal(41, 9, 3_000), [np.nan] * 90])
    got = solutions.exercise_1(ref, cur, bins=5)
    assert got == pytest.approx(drift.psi(ref, cur, bins=5))
    assert got > drift.PSI_LARGE
    assert solutions.exercise_1(ref, ref, bins=5) == pytest.approx(0.0, abs=1e-12)


def weekly_table() -> tuple[pd.DataFrame, pd.Index, pd.Index]:
    index = pd.date_range("2013-09-02", periods=8, freq="7D")
    table = pd.DataFrame({m.name: 0.05 for m in alerts.MONITORS}, index=index)
    table["roc auc"] = 0.7
    # reference weeks 0-3: worst prediction PSI 0.12; later weeks 4-7
    table["prediction psi"] = [0.08, 0.12, 0.1, 0.09, 0.13, 0.16, 0.2, 0.3]
    table["ece"] = [0.03, 0.04, 0.03, 0.04, 0.03, 0.04, 0.03, 0.09]  # only the last week is degraded
    return table, index[:4], index[4:]


def test_exercise_2_counts_alerts_and_false_alarms_per_margin(solutions) -> None:
    table, ref, later = weekly_table()
    out = solutions.exercise_2(table, ref, later, "prediction psi", margins=(0.0, 0.25, 0.5, 1.0))
    # thresholds 0.12, 0.15, 0.18, 0.24: fired 4, 3, 2, 1 of the later weeks; all but the last are false alarms
    assert out["threshold"].tolist() == [0.12, 0.15, 0.18, 0.24]
    assert out["fired"].tolist() == [4, 3, 2, 1]
    assert out["false alarms"].tolist() == [3, 2, 1, 0]
    assert out["missed"].tolist() == [0, 0, 0, 0]


def test_exercise_3_hours_until_most_labels_arrive(solutions) -> None:
    day = pd.Timestamp("2013-12-02", tz="America/New_York")
    decided = day + pd.to_timedelta(np.linspace(1, 23, 100), unit="h")
    log = pd.DataFrame({"flight_id": np.arange(100), "decision_time": decided.tz_convert("UTC"), "probability": 0.2})
    # 95 flights known by 5 h after the day ends, the last five 10 h after
    known = np.where(np.arange(100) < 95, day + pd.Timedelta(hours=24 + 4.5), day + pd.Timedelta(hours=34))
    outcomes = pd.DataFrame({"flight_id": np.arange(100), "late": 0, "label_known_at": pd.to_datetime(known).tz_convert("UTC")})
    assert solutions.exercise_3(log, outcomes, "2013-12-02") == 5
    assert solutions.exercise_3(log, outcomes, "2013-12-02", share=1.0) == 10
    with pytest.raises(ValueError, match="no decisions"):
        solutions.exercise_3(log, outcomes, "2013-12-05")
