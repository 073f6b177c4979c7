"""Point-in-time features: one row per flight, using only what is known at its decision time.

The decision time is `DECISION_LEAD` (2 h) before the scheduled departure: that is when the
operations desk acts on a prediction (rebook a connection, call in a crew). Every feature is either

* **static** (batch): known from the published schedule or reference tables long before — carrier,
  route, distance, scheduled hour, day of week, plane age, holidays, how many departures the
  schedule puts in the same hour; or
* **dynamic** (streaming): computed in event time from what has *happened* strictly before the
  decision time — the latest weather observation at the origin, departures and delays at the
  origin in the previous hour(s), the backlog of scheduled-but-not-yet-departed flights, and how
  late the same aircraft's previous departure was.

`tests/data/test_point_in_time.py` checks, flight by flight, that no dynamic feature changes when
everything after the decision time is deleted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

from mlsys.config import Settings, get_settings
from mlsys.logger import logger

DECISION_LEAD = pd.Timedelta(hours=2)
DELAYED_MINUTES = 15
#: A weather row stamped H:00 holds reports up to H:51 (see `weather_known_at`).
WEATHER_KNOWN_AFTER = pd.Timedelta(minutes=52)
FEATURE_VERSION = "v2"

WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
CATEGORICAL = ["carrier", "origin", "dest"]
STATIC_NUMERIC = [
    "distance",
    "sched_hour",
    "sched_minute_of_day",
    "day_of_week",
    "month",
    "days_to_holiday",
    "plane_age",
    "seats",
    "sched_departures_same_hour",
]
DYNAMIC_NUMERIC = [
    *[f"wx_{c}" for c in WEATHER_COLUMNS],
    "wx_precip_3h",
    "wx_visib_min_3h",
    "wx_age_minutes",
    "origin_departures_1h",
    "origin_delayed_1h",
    "origin_mean_delay_1h",
    "origin_departures_3h",
    "origin_mean_delay_3h",
    "origin_backlog_3h",
    "carrier_mean_delay_3h",
    "dest_departures_3h",
    "dest_mean_delay_3h",
    "tail_prev_dep_delay",
    "tail_prev_minutes_ago",
]
NUMERIC = STATIC_NUMERIC + DYNAMIC_NUMERIC
FEATURES = CATEGORICAL + NUMERIC
#: Known only after the flight: never a feature. Listed so tests and lesson 04 can check for leaks.
POST_DECISION_COLUMNS = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "actual_dep_utc", "cancelled", "diverted"]


@dataclass(frozen=True)
class Events:
    """Departures that happened (event time `at`), grouped by a key such as origin or carrier."""

    at: np.ndarray  # int64 nanoseconds, sorted within each key
    delay: np.ndarray
    delayed: np.ndarray
    keys: np.ndarray


def _ns(series: pd.Series) -> np.ndarray:
    return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy(dtype="datetime64[ns]").astype("int64")


def _window_stats(events: pd.DataFrame, key: str, queries: pd.DataFrame, window: pd.Timedelta) -> pd.DataFrame:
    """For each query row, departures of the same `key` with event time in [t - window, t).

    Returns count, number delayed >= 15 min and mean departure delay (NaN when none). Uses sorted
    arrays and binary search, so each query costs O(log n).
    """
    out = pd.DataFrame(index=queries.index, data={"n": 0.0, "n_delayed": 0.0, "mean_delay": np.nan})
    for value, ev in events.groupby(key, sort=False):
        mask = (queries[key] == value).to_numpy()
        if not mask.any():
            continue
        ev = ev.sort_values("actual_dep_utc")
        at = _ns(ev["actual_dep_utc"])
        delay = ev["dep_delay"].to_numpy(dtype="float64")
        cum_delay = np.concatenate([[0.0], np.cumsum(delay)])
        cum_delayed = np.concatenate([[0], np.cumsum(delay >= DELAYED_MINUTES)])
        t = _ns(queries.loc[mask, "decision_time_utc"])
        hi = np.searchsorted(at, t, side="left")  # strictly before t
        lo = np.searchsorted(at, t - window.value, side="left")
        n = (hi - lo).astype("float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0, (cum_delay[hi] - cum_delay[lo]) / n, np.nan)
        out.loc[mask, "n"] = n
        out.loc[mask, "n_delayed"] = (cum_delayed[hi] - cum_delayed[lo]).astype("float64")
        out.loc[mask, "mean_delay"] = mean
    return out


def _scheduled_in_window(flights: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """Flights the schedule puts at the same origin in [t - window, t), t = decision time."""
    out = np.zeros(len(flights))
    for _, idx in flights.groupby("origin", sort=False).indices.items():
        sched = np.sort(_ns(flights["sched_dep_utc"].iloc[idx]))
        t = _ns(flights["decision_time_utc"].iloc[idx])
        out[idx] = np.searchsorted(sched, t, side="left") - np.searchsorted(sched, t - window.value, side="left")
    return out


def weather_known_at(weather: pd.DataFrame) -> pd.Series:
    """When each weather row became known: its stamp plus `WEATHER_KNOWN_AFTER`.

    nycflights13's `data-raw/weather.R` builds the row stamped H:00 from the station's reports
    with minute <= 51 (the first of them, and the largest hourly precipitation up to :51), so a row
    stamped H describes H:00-H:51 and can only be read from about H:52.
    """
    return weather["time_hour"] + WEATHER_KNOWN_AFTER


def weather_as_of(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """The latest weather row at the origin that was *known* at the decision time (see `weather_known_at`).

    `wx_precip_3h` sums the last three hourly rows known then (stamps H-2, H-1, H), `wx_visib_min_3h`
    is their lowest visibility, and `wx_age_minutes` is how long before the decision time the row's
    hour began.
    """
    wx = weather.sort_values("time_hour").copy()
    rolled = (
        wx.set_index("time_hour")
        .groupby("origin")[["precip", "visib"]]
        .rolling("3h", closed="right")
        .agg({"precip": "sum", "visib": "min"})
        .reset_index()
        .rename(columns={"precip": "precip_3h", "visib": "visib_min_3h"})
    )
    wx = wx.merge(rolled, on=["origin", "time_hour"], how="left")
    wx = wx[["origin", "time_hour", *WEATHER_COLUMNS, "precip_3h", "visib_min_3h"]]
    wx = wx.rename(columns={c: f"wx_{c}" for c in [*WEATHER_COLUMNS, "precip_3h", "visib_min_3h"]})
    wx = wx.rename(columns={"time_hour": "wx_time"})
    wx["wx_time"] = wx["wx_time"].astype("datetime64[ns, UTC]")
    wx["wx_known_at"] = wx["wx_time"] + WEATHER_KNOWN_AFTER
    left = flights[["flight_id", "origin", "decision_time_utc"]].copy()
    left["decision_time_utc"] = left["decision_time_utc"].astype("datetime64[ns, UTC]")
    left = left.sort_values("decision_time_utc")
    merged = pd.merge_asof(
        left, wx.sort_values("wx_known_at"), left_on="decision_time_utc", right_on="wx_known_at", by="origin", direction="backward"
    )
    merged["wx_age_minutes"] = (merged["decision_time_utc"] - merged["wx_time"]).dt.total_seconds() / 60
    return merged.drop(columns=["origin", "decision_time_utc", "wx_time", "wx_known_at"]).set_index("flight_id")


def tail_history(flights: pd.DataFrame) -> pd.DataFrame:
    """How late the same aircraft's latest departure before the decision time was, and when it left.

    Missing when the aircraft had not departed in the 24 h before the decision time, or when the
    flight has no tail number (all cancelled flights here): the two are mixed on purpose, so that
    missingness alone is not a cancellation flag (`tests/data/test_point_in_time.py` checks it).
    """
    departed = flights.loc[flights["actual_dep_utc"].notna() & flights["tailnum"].notna()]
    right = departed[["tailnum", "actual_dep_utc", "dep_delay"]].rename(columns={"dep_delay": "tail_prev_dep_delay"})
    right = right.assign(prev_at=right["actual_dep_utc"].astype("datetime64[ns, UTC]")).drop(columns="actual_dep_utc")
    left = flights.loc[flights["tailnum"].notna(), ["flight_id", "tailnum", "decision_time_utc"]].copy()
    left["decision_time_utc"] = left["decision_time_utc"].astype("datetime64[ns, UTC]")
    merged = pd.merge_asof(
        left.sort_values("decision_time_utc"),
        right.sort_values("prev_at"),
        left_on="decision_time_utc",
        right_on="prev_at",
        by="tailnum",
        direction="backward",
        allow_exact_matches=False,  # strictly before the decision time
        tolerance=pd.Timedelta(hours=24),
    )
    merged["tail_prev_minutes_ago"] = (merged["decision_time_utc"] - merged["prev_at"]).dt.total_seconds() / 60
    # No feature counts the aircraft's scheduled legs: in this data set a flight has no tail number
    # only when it was cancelled (all 2,512 of them), so any feature that exists for every recorded
    # tail and is missing otherwise tells the model "cancelled" before the fact.
    return merged.set_index("flight_id")[["tail_prev_dep_delay", "tail_prev_minutes_ago"]]


@lru_cache(maxsize=1)
def _holidays() -> np.ndarray:
    # built once per process: the prediction service calls build_features on every request
    return USFederalHolidayCalendar().holidays("2012-12-01", "2014-02-01").to_numpy(dtype="datetime64[D]")


def _days_to_holiday(local: pd.Series) -> np.ndarray:
    holidays = _holidays()
    days = local.dt.normalize().to_numpy(dtype="datetime64[D]")
    return np.abs(days[:, None] - holidays[None, :]).min(axis=1).astype("float64")


def build_features(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, lead: pd.Timedelta = DECISION_LEAD
) -> pd.DataFrame:
    """One row per flight: identifiers, decision time, every feature in `FEATURES`.

    `flights` comes from `mlsys.data.load_flights` (schedule times added). Labels and split are
    carried over when present so a caller can train straight from the result.
    """
    f = flights.reset_index(drop=True).copy()
    if "flight_id" not in f:
        f["flight_id"] = np.arange(len(f))
    f["decision_time_utc"] = f["sched_dep_utc"] - lead
    out = f[["flight_id", "decision_time_utc", "sched_dep_utc", "sched_dep_local", "tailnum", "flight", *CATEGORICAL]].copy()
    for col in CATEGORICAL:
        out[col] = out[col].astype("string")
    out["route"] = out["origin"] + "-" + out["dest"]

    # --- static: schedule and reference data
    out["distance"] = f["distance"].astype("float64")
    out["sched_hour"] = f["hour"].astype("float64")
    out["sched_minute_of_day"] = (f["hour"] * 60 + f["minute"]).astype("float64")
    out["day_of_week"] = f["sched_dep_local"].dt.day_of_week.astype("float64")
    out["month"] = f["month"].astype("float64")
    out["days_to_holiday"] = _days_to_holiday(f["sched_dep_local"])
    plane = planes.set_index("tailnum")
    out["plane_age"] = (2013 - f["tailnum"].map(plane["year"])).astype("float64")
    out["seats"] = f["tailnum"].map(plane["seats"]).astype("float64")
    out["sched_departures_same_hour"] = f.groupby(["origin", "time_hour"])["flight_id"].transform("size").astype("float64")

    # --- dynamic: weather as known at decision time
    wx = weather_as_of(f, weather)
    for col in wx.columns:
        out[col] = out["flight_id"].map(wx[col]).astype("float64")

    # --- dynamic: what has departed before the decision time
    departed = f.loc[f["actual_dep_utc"].notna(), ["origin", "carrier", "dest", "actual_dep_utc", "dep_delay"]]
    queries = f[["origin", "carrier", "dest", "decision_time_utc"]]
    one_hour = _window_stats(departed, "origin", queries, pd.Timedelta(hours=1))
    three_hours = _window_stats(departed, "origin", queries, pd.Timedelta(hours=3))
    by_carrier = _window_stats(departed, "carrier", queries, pd.Timedelta(hours=3))
    out["origin_departures_1h"] = one_hour["n"].to_numpy()
    out["origin_delayed_1h"] = one_hour["n_delayed"].to_numpy()
    out["origin_mean_delay_1h"] = one_hour["mean_delay"].to_numpy()
    out["origin_departures_3h"] = three_hours["n"].to_numpy()
    out["origin_mean_delay_3h"] = three_hours["mean_delay"].to_numpy()
    # scheduled in the last 3 h minus departed in the last 3 h: flights waiting on the ground
    out["origin_backlog_3h"] = _scheduled_in_window(f, pd.Timedelta(hours=3)) - three_hours["n"].to_numpy()
    out["carrier_mean_delay_3h"] = by_carrier["mean_delay"].to_numpy()
    # flights to the same destination that left recently carry its ground-delay programmes
    to_dest = _window_stats(departed, "dest", queries, pd.Timedelta(hours=3))
    out["dest_departures_3h"] = to_dest["n"].to_numpy()
    out["dest_mean_delay_3h"] = to_dest["mean_delay"].to_numpy()

    tail = tail_history(f)
    for col in tail.columns:
        out[col] = out["flight_id"].map(tail[col]).astype("float64")

    for carried in ("late", "arr_delay", "dep_delay", "cancelled", "diverted", "split"):
        if carried in f:
            out[carried] = f[carried].to_numpy()
    return out


def feature_cache_path(settings: Settings) -> Path:
    """Where the feature table of these inputs is cached: keyed by the feature code's version, the
    validation rules and the checksums of the three files it is built from, so pointing the course
    at other data (or changing a rule) can never return a stale table."""
    from mlsys import data  # local import: data imports nothing from here, and this keeps it so

    raw_dir = data.ensure_raw(settings)
    expected = data.expected_checksums(raw_dir)
    inputs = [expected[data.raw_path(table, raw_dir, expected).name] for table in ("flights", "weather", "planes")]
    key = hashlib.sha256(" ".join([str(data.RULES_VERSION), *inputs]).encode()).hexdigest()[:12]
    return settings.processed_dir / f"features-{FEATURE_VERSION}-{key}.parquet"


def feature_table(settings: Settings | None = None, refresh: bool = False) -> pd.DataFrame:
    """The feature table for all 336,776 flights, built once and cached as Parquet (~10 s)."""
    from mlsys import data

    settings = settings or get_settings()
    cache = feature_cache_path(settings)
    if cache.exists() and not refresh:
        return pd.read_parquet(cache)
    flights = data.load_flights(settings)
    table = build_features(flights, data.load_table("weather", settings), data.load_table("planes", settings))
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    table.to_parquet(partial, index=False)
    partial.replace(cache)  # atomic: a concurrent reader never sees half a file
    logger.info("feature table: {} rows x {} features -> {}", len(table), len(FEATURES), cache.name)
    return table


#: Rows per split in fast mode (the default): enough for stable AUCs, small enough for CI.
FAST_ROWS = {"train": 60_000, "valid": 20_000}


def load_splits(fast: bool = True, seed: int = 42, settings: Settings | None = None) -> dict[str, pd.DataFrame]:
    """The feature table cut into `train` / `valid` / `test` by the time split.

    Fast mode samples the train and valid splits (`FAST_ROWS`) with `seed`; the test split
    (November–December) is always complete so every lesson reports comparable test figures.
    Rows keep their chronological order.
    """
    table = feature_table(settings)
    splits = {}
    for name in ("train", "valid", "test"):
        part = table[table["split"] == name]
        if fast and name in FAST_ROWS and len(part) > FAST_ROWS[name]:
            part = part.sample(FAST_ROWS[name], random_state=seed).sort_values("sched_dep_utc")
        splits[name] = part.reset_index(drop=True)
    return splits


def peer_label(df: pd.DataFrame) -> pd.Series:
    """The tidymodels tutorial's label: arrival delay >= 30 min, missing for cancelled/diverted flights."""
    return (df["arr_delay"] >= 30).astype("float64").where(df["arr_delay"].notna())
