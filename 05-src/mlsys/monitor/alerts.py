"""Window monitors, thresholds chosen on reference windows, and alerts with their false alarms counted.

Every window (a week, by default) of the replayed log gets one value per monitor (`MONITORS`):

* before any label arrives: the largest feature PSI, the prediction PSI and mean P(late), and a
  data-quality monitor (how old the weather the model saw was: it stops on 30 December);
* once the window's labels have arrived (`label_wait` after its end, through the label join that
  never looks ahead): the late share (label shift), ECE and ROC AUC (performance).

Thresholds are chosen on the reference windows (September–October, when the model was validated
and judged fine): the worst value seen there, widened by `margin` (PSI thresholds at least 0.1). The alerts are then evaluated
on later windows. A window is **degraded** when a performance monitor (ECE or ROC AUC) crosses its
threshold; an **early alert** (one that does not need labels) in a window that is not degraded is
a **false alarm**, and a degraded window without an early alert is a **miss**.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from mlsys.evaluate import expected_calibration_error
from mlsys.features import FEATURES
from mlsys.monitor import drift
from mlsys.monitor.labels import join_labels


@dataclass(frozen=True)
class Monitor:
    """One number per window and which side of its threshold is bad."""

    name: str
    higher_is_worse: bool
    needs_labels: bool
    performance: bool = False
    floor: float | None = None  # the threshold is never below this (PSI under 0.1 reads "stable")


MONITORS = [
    Monitor("max feature psi", True, False, floor=drift.PSI_MODERATE),
    Monitor("prediction psi", True, False, floor=drift.PSI_MODERATE),
    Monitor("mean probability", True, False),
    Monitor("weather age p99 (min)", True, False),
    Monitor("late share", True, True),
    Monitor("ece", True, True, performance=True),
    Monitor("roc auc", False, True, performance=True),
]
MONITOR_BY_NAME = {m.name: m for m in MONITORS}
#: Calendar features shift by construction (a December week has month 12 and Christmas near): not drift.
CALENDAR_FEATURES = ("month", "days_to_holiday")
#: The features whose drift is monitored: every model feature but the calendar ones.
MONITORED_FEATURES = [c for c in FEATURES if c not in CALENDAR_FEATURES]


def window_monitors(
    log: pd.DataFrame,
    outcomes: pd.DataFrame,
    reference_mask: pd.Series,
    features: Sequence[str] = MONITORED_FEATURES,
    freq: str = "W-SUN",
    label_wait: pd.Timedelta = pd.Timedelta(days=2),
    bins: int = 10,
) -> pd.DataFrame:
    """One row per window of `log` (replayed rows with their model inputs): every monitor's value.

    Label-based monitors read the labels known `label_wait` after the window's end
    (`labels.join_labels`), and `labelled at end` says how many were known when the window closed.
    `top feature` names the feature with the largest PSI.
    """
    window = drift.windows(log["decision_time"], freq)
    reference = log[reference_mask.to_numpy()]
    profile = drift.ReferenceProfile.fit(reference, [*features, "probability"], bins)
    outcomes = outcomes[outcomes["flight_id"].isin(log["flight_id"])]  # the join only needs these
    rows = []
    for start, part in log.groupby(window.to_numpy(), sort=True):
        end_local = _window_end(pd.Timestamp(start), freq)
        end = end_local.tz_localize("America/New_York").tz_convert("UTC")
        psis = {col: profile.psi(col, part[col]) for col in features}
        top = max(psis, key=psis.get)
        at_end = join_labels(part, outcomes, end)
        later = join_labels(part, outcomes, end + label_wait)
        known = later[later["labelled"]]
        y = known["late"].astype("float64").to_numpy()
        p = known["probability"].to_numpy(dtype="float64")
        rows.append(
            {
                "window": pd.Timestamp(start),
                "days": int(part["decision_time"].dt.tz_convert("America/New_York").dt.date.nunique()),
                "flights": len(part),
                "max feature psi": psis[top],
                "top feature": top,
                "prediction psi": profile.psi("probability", part["probability"]),
                "mean probability": float(part["probability"].mean()),
                "weather age p99 (min)": float(part["wx_age_minutes"].quantile(0.99)),
                "labelled at end": float(at_end["labelled"].mean()),
                "labelled after wait": float(later["labelled"].mean()),
                "late share": float(y.mean()) if len(y) else np.nan,
                "ece": expected_calibration_error(y, p) if len(y) else np.nan,
                "roc auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("window")


def _window_end(start: pd.Timestamp, freq: str) -> pd.Timestamp:
    """The first local moment after the window that begins at `start`."""
    return start + (pd.DateOffset(months=1) if freq == "MS" else pd.Timedelta(weeks=1))


def choose_thresholds(table: pd.DataFrame, reference_windows: Sequence[pd.Timestamp] | pd.Index, margin: float = 0.25) -> pd.Series:
    """Per monitor: the worst reference value, widened by `margin` of its size (for AUC: of its distance to 1).

    PSI monitors never go below `PSI_MODERATE`: a multiple of a tiny reference PSI is noise.
    """
    ref = table.loc[list(reference_windows)]
    out = {}
    for m in MONITORS:
        values = ref[m.name].dropna()
        if m.higher_is_worse:
            out[m.name] = max(float(values.max() * (1 + margin)), m.floor if m.floor is not None else -np.inf)
        else:
            worst = float(values.min())
            out[m.name] = worst - margin * (1 - worst)
    return pd.Series(out, name="threshold")


def fired(table: pd.DataFrame, thresholds: pd.Series) -> pd.DataFrame:
    """Windows x monitors: True where the monitor crossed its threshold (missing values never fire)."""
    out = {}
    for m in MONITORS:
        values = table[m.name]
        crossed = values > thresholds[m.name] if m.higher_is_worse else values < thresholds[m.name]
        out[m.name] = crossed.fillna(False).astype(bool)
    return pd.DataFrame(out, index=table.index)


def alert_table(table: pd.DataFrame, thresholds: pd.Series, windows: Sequence[pd.Timestamp] | pd.Index | None = None) -> pd.DataFrame:
    """Per window: which early (label-free) and performance alerts fired, degraded or not, false alarm or miss."""
    flags = fired(table, thresholds)
    if windows is not None:
        flags = flags.loc[list(windows)]
    early = [m.name for m in MONITORS if not m.needs_labels]
    perf = [m.name for m in MONITORS if m.performance]
    out = pd.DataFrame(index=flags.index)
    out["early alerts"] = flags[early].apply(lambda r: ", ".join(c for c in early if r[c]) or "-", axis=1)
    out["label alerts"] = flags[[m.name for m in MONITORS if m.needs_labels]].apply(
        lambda r: ", ".join(c for c in r.index if r[c]) or "-", axis=1
    )
    out["degraded"] = flags[perf].any(axis=1)
    any_early = flags[early].any(axis=1)
    out["false alarm"] = any_early & ~out["degraded"]
    out["missed"] = out["degraded"] & ~any_early
    return out


def alert_summary(table: pd.DataFrame, thresholds: pd.Series, windows: Sequence[pd.Timestamp] | pd.Index) -> pd.DataFrame:
    """Per monitor over `windows`: threshold, how often it fired, and (early monitors) its false alarms."""
    flags = fired(table, thresholds).loc[list(windows)]
    perf = [m.name for m in MONITORS if m.performance]
    degraded = flags[perf].any(axis=1)
    rows = []
    for m in MONITORS:
        f = flags[m.name]
        rows.append(
            {
                "monitor": m.name,
                "needs labels": m.needs_labels,
                "threshold": thresholds[m.name],
                "windows": len(f),
                "fired": int(f.sum()),
                "false alarms": int((f & ~degraded).sum()) if not m.performance else 0,
                "degraded windows caught": int((f & degraded).sum()) if not m.performance else int(f.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("monitor")


def detects_shift(reference: pd.Series, current: pd.Series, threshold: float = drift.PSI_LARGE, bins: int = 10) -> bool:
    """The simplest alert: PSI of `current` against `reference` above `threshold`."""
    return drift.psi(reference, current, bins) > threshold
