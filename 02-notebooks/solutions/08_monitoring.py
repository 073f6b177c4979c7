"""Solutions to the exercises of lesson 08 (monitoring). Try the exercises yourself first.

One function per exercise of `02-notebooks/08_monitoring.ipynb`. `log` is the replayed prediction
log with its features (`mlsys.monitor.replay.read_log(engine, with_features=True)`), `outcomes` the
natural labels (`mlsys.monitor.labels.load_outcomes`), `weekly` the table of
`mlsys.monitor.alerts.window_monitors`. `tests/solutions/test_08_monitoring.py` checks each answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mlsys.monitor import alerts, labels

EMPTY_SHARE = 1e-4


def exercise_1(reference: pd.Series, current: pd.Series, bins: int = 5) -> float:
    """PSI by hand: bins cut at the reference's quantiles, missing values in a bin of their own.

    PSI compares *shares* per bin, so it estimates a fixed property of the two distributions and
    does not grow with n; a test's p-value measures how sure we are that they differ at all, which
    with thousands of rows is "very", for any difference.
    """
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64")
    cur = pd.to_numeric(current, errors="coerce").to_numpy(dtype="float64")
    cuts = np.unique(np.quantile(ref[~np.isnan(ref)], np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(x: np.ndarray) -> np.ndarray:
        which = np.where(np.isnan(x), len(cuts) + 1, np.searchsorted(cuts, x, side="right"))
        return np.bincount(which.astype(int), minlength=len(cuts) + 2) / len(x)

    r = shares(ref) + EMPTY_SHARE
    c = shares(cur) + EMPTY_SHARE
    return float(np.sum((c - r) * np.log(c / r)))


def exercise_2(
    weekly: pd.DataFrame,
    reference_weeks: Sequence[pd.Timestamp] | pd.Index,
    later_weeks: Sequence[pd.Timestamp] | pd.Index,
    monitor: str = "prediction psi",
    margins: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
) -> pd.DataFrame:
    """For each margin: the monitor's threshold, how often it fires on the later weeks, and its false alarms.

    A wider margin fires less often: fewer false alarms, but a degraded week may then go unseen
    (`missed`), and the alert comes later in a slowly worsening shift.
    """
    rows = []
    for margin in margins:
        thresholds = alerts.choose_thresholds(weekly, reference_weeks, margin)
        flags = alerts.fired(weekly, thresholds).loc[list(later_weeks)]
        degraded = flags[[m.name for m in alerts.MONITORS if m.performance]].any(axis=1)
        hit = flags[monitor]
        rows.append(
            {
                "margin": margin,
                "threshold": round(float(thresholds[monitor]), 3),
                "fired": int(hit.sum()),
                "false alarms": int((hit & ~degraded).sum()),
                "missed": int((degraded & ~hit).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("margin")


def exercise_3(log: pd.DataFrame, outcomes: pd.DataFrame, day: str, share: float = 0.95, max_hours: int = 72) -> int:
    """Whole hours after the end of `day` (New York) until `share` of that day's decisions have a label."""
    start = pd.Timestamp(day).tz_localize("America/New_York")
    end = start + pd.Timedelta(days=1)
    decided = log["decision_time"].dt.tz_convert("America/New_York")
    today = log[(decided >= start) & (decided < end)]
    if today.empty:
        raise ValueError(f"no decisions on {day} in the log")
    for hours in range(max_hours + 1):
        joined = labels.join_labels(today, outcomes, end.tz_convert("UTC") + pd.Timedelta(hours=hours))
        if joined["labelled"].mean() >= share:
            return hours
    raise ValueError(f"fewer than {share:.0%} of {day}'s decisions are labelled {max_hours} h after the day ends")
