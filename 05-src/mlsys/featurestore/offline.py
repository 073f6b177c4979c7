"""Offline features: what training reads, from the Parquet feature table and the warehouse.

The feature table (`features.feature_table`, cached as Parquet) holds every flight's features as
of its decision time. The online store (`featurestore.online`) must serve the same values for the
departure aggregates it maintains (`ONLINE_COLUMNS`); this module gives the offline side of that
comparison and the departure events the online side is fed with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys import data, features, warehouse
from mlsys.config import Settings

#: The features the online store computes from the departure stream (windows over what has departed).
ONLINE_COLUMNS = [
    "origin_departures_1h",
    "origin_delayed_1h",
    "origin_mean_delay_1h",
    "origin_departures_3h",
    "origin_mean_delay_3h",
    "carrier_mean_delay_3h",
    "dest_departures_3h",
    "dest_mean_delay_3h",
    "tail_prev_dep_delay",
    "tail_prev_minutes_ago",
]
#: What a read needs to know about a flight: its keys and its decision time.
QUERY_COLUMNS = ["flight_id", "origin", "carrier", "dest", "tailnum", "decision_time_utc"]
#: One departure event, as appended to the stream.
EVENT_COLUMNS = ["flight_id", "origin", "carrier", "dest", "tailnum", "actual_dep_utc", "dep_delay"]


def departure_events(flights: pd.DataFrame) -> pd.DataFrame:
    """Every departure that happened (cancelled flights never depart), in event-time order."""
    departed = flights.loc[flights["actual_dep_utc"].notna(), EVENT_COLUMNS]
    return departed.sort_values(["actual_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)


def warehouse_flights(eng: Engine, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Flights scheduled in [start, end) (UTC) from the warehouse, with schedule and actual times."""
    f = warehouse.flights.c
    lo, hi = (ts.tz_convert("UTC").tz_localize(None).to_pydatetime() for ts in (start, end))
    with eng.connect() as conn:
        frame = pd.read_sql(sa.select(warehouse.flights).where(f.time_hour >= lo, f.time_hour < hi), conn)
    frame["time_hour"] = pd.to_datetime(frame["time_hour"]).dt.tz_localize("UTC")
    for col in ("carrier", "tailnum", "origin", "dest"):
        frame[col] = frame[col].astype("string")
    for col in ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"):
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    return data.add_schedule_times(frame)


def feature_rows(flight_ids: np.ndarray | pd.Series, settings: Settings | None = None, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """The feature table's rows of these flights (indexed by flight_id, in the order asked)."""
    table = features.feature_table(settings) if table is None else table
    indexed = table.set_index("flight_id")
    missing = pd.Index(flight_ids).difference(indexed.index)
    if len(missing):
        raise KeyError(f"flight_id {list(missing[:5])} not in the feature table")
    return indexed.loc[np.asarray(flight_ids)]


def consistency_sample(table: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, n: int, seed: int = 42) -> pd.DataFrame:
    """`n` flights whose decision time falls in [start + 24 h, end): every window they read (at most
    24 h back, for the aircraft's previous departure) lies inside the replayed events."""
    t = table["decision_time_utc"]
    eligible = table.loc[(t >= start + pd.Timedelta(hours=24)) & (t < end)]
    if len(eligible) < n:
        raise ValueError(f"only {len(eligible)} flights have decision times in [{start} + 24 h, {end}): widen the window or ask for fewer")
    return eligible.sample(n, random_state=seed).sort_values("decision_time_utc").reset_index(drop=True)


def compare(online: pd.DataFrame, offline: pd.DataFrame, columns: list[str] = ONLINE_COLUMNS) -> pd.DataFrame:
    """Per feature: flights compared, how many agree (both missing counts as agreeing), max |difference|."""
    rows = []
    for col in columns:
        a = online[col].to_numpy(dtype="float64")
        b = offline[col].to_numpy(dtype="float64")
        both_missing = np.isnan(a) & np.isnan(b)
        one_missing = np.isnan(a) ^ np.isnan(b)
        diff = np.abs(a - b)
        rows.append(
            {
                "feature": col,
                "flights": len(a),
                "equal": int((both_missing | (diff == 0)).sum()),
                "missing on one side only": int(one_missing.sum()),
                "max abs diff": float(np.nanmax(diff)) if (~np.isnan(diff)).any() else 0.0,
            }
        )
    return pd.DataFrame(rows).set_index("feature")


__all__ = ["ONLINE_COLUMNS", "compare", "consistency_sample", "departure_events", "feature_rows", "warehouse_flights"]
