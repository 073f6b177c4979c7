"""Online features: a request's point-in-time features from the warehouse, with the offline code.

For each requested flight the service rebuilds the world as it was known at the request's
decision time t0 (`as_of`, by default `features.DECISION_LEAD` before the scheduled departure)
and calls the very function that builds the offline feature table, `features.build_features`:

1. read from the warehouse the flights scheduled from `BEFORE` before t0 to `AFTER` after it
   (enough for every window a feature looks at; see `tests/data/test_point_in_time.py`), the
   origin's weather and the aircraft's row in `planes`;
2. put the request in place of the warehouse's row of that flight (or add it, if the warehouse
   does not have the flight);
3. hide every outcome not known at t0 (`warehouse.as_known_at`);
4. `build_features(...)` and take the request's row.

`build_features` costs about 0.1 s per call whatever the number of rows, so a batch is served by
few calls: requests with the same lead (time between decision and departure: all of them, by
default) share one world, masked at their latest decision time (see `_group_features`), and
requests within hours of each other share one warehouse query.

Only rows that share the request's origin, carrier, destination or tail number can change its
features (every dynamic feature is a window over one of those keys), so the query reads only
those, and the other keys of the rows read are pooled into one placeholder value. The offline
code then loops over a handful of groups instead of every destination in the window, and the
request's row comes out the same (`tests/serve/test_feature_parity.py` checks 1,000 test
flights against `features.feature_table()`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys import data, features, warehouse
from mlsys.pipeline import INPUT_COLUMNS

NEW_YORK = "America/New_York"
#: Flights scheduled in [t0 - BEFORE, t0 + AFTER] hold every departure any feature at t0 looks at.
BEFORE, AFTER = pd.Timedelta(days=2), pd.Timedelta(hours=3)
#: Requests whose decision times are closer than this share one warehouse query.
CLUSTER_GAP = pd.Timedelta(hours=6)
#: Stands for every carrier/airport a request does not have (never a real code: codes are A-Z0-9).
POOLED = "~"
EARTH_RADIUS_MILES = 3958.8

FLAG_UNKNOWN_CARRIER = "unknown_carrier"
FLAG_UNKNOWN_AIRPORT = "unknown_airport"
FLAG_UNKNOWN_AIRCRAFT = "unknown_aircraft"
FLAG_NO_TAIL_NUMBER = "no_tail_number"
FLAG_DISTANCE_ESTIMATED = "distance_estimated"
FLAG_NO_HISTORY = "no_history"

#: Columns of the warehouse's `flights` table, the shape a request row is given too.
FLIGHT_COLUMNS = [c.name for c in warehouse.flights.columns]


@dataclass(frozen=True)
class FlightQuery:
    """One flight as known at decision time; times are timezone-aware (UTC)."""

    carrier: str
    flight: int
    origin: str
    dest: str
    sched_dep_utc: pd.Timestamp
    tailnum: str | None = None
    as_of: pd.Timestamp | None = None

    @property
    def decision_time(self) -> pd.Timestamp:
        """t0: `as_of`, or `DECISION_LEAD` before the scheduled departure."""
        return self.as_of if self.as_of is not None else self.sched_dep_utc - features.DECISION_LEAD

    @property
    def time_hour(self) -> pd.Timestamp:
        """The scheduled hour in UTC, as the warehouse keys flights (New York's offset is whole hours)."""
        return self.sched_dep_utc.floor("h")


@dataclass
class OnlineRow:
    """The features of one request: model inputs (`INPUT_COLUMNS`), the warehouse id if known, flags."""

    query: FlightQuery
    values: dict[str, Any]
    flight_id: int | None
    flags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reference:
    """Slowly changing reference data, read once: carriers, airport coordinates, route distances."""

    carriers: frozenset[str]
    airports: dict[str, tuple[float, float]]
    route_distance: dict[tuple[str, str], float]


class OnlineFeatures:
    """Computes `FlightQuery` features from a warehouse engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._reference: Reference | None = None

    def reference(self) -> Reference:
        """Carriers, airports and the usual distance of every route in the warehouse (cached)."""
        if self._reference is None:
            self._reference = read_reference(self.engine)
        return self._reference

    def compute(self, queries: Sequence[FlightQuery]) -> list[OnlineRow]:
        """Features of each query, in order."""
        out: list[OnlineRow | None] = [None] * len(queries)
        for cluster in _clusters(queries):
            rows = self._compute_cluster([queries[i] for i in cluster])
            for i, row in zip(cluster, rows, strict=True):
                out[i] = row
        return [row for row in out if row is not None]

    def _compute_cluster(self, queries: list[FlightQuery]) -> list[OnlineRow]:
        t0s = [q.decision_time for q in queries]
        lo = min(t0s) - BEFORE
        hi = max(max(t0s) + AFTER, max(q.time_hour for q in queries) + pd.Timedelta(hours=1))
        flights_df = read_flights(self.engine, lo, hi, queries)
        weather_df = read_weather(self.engine, lo, max(t0s), {q.origin for q in queries})
        planes_df = read_planes(self.engine, {q.tailnum for q in queries if q.tailnum})
        reference = self.reference()
        results: dict[int, OnlineRow] = {}
        for members in _groups(queries):
            group = [queries[i] for i in members]
            for i, row in zip(members, _group_features(group, flights_df, weather_df, planes_df, reference), strict=True):
                results[i] = row
        return [results[i] for i in range(len(queries))]


# --------------------------------------------------------------------------- warehouse reads


def read_reference(eng: Engine) -> Reference:
    """Carrier codes, airport coordinates and the most frequent distance of each route."""
    with eng.connect() as conn:
        carriers = frozenset(conn.execute(sa.select(warehouse.airlines.c.carrier)).scalars())
        airports = {
            faa: (float(lat), float(lon))
            for faa, lat, lon in conn.execute(sa.select(warehouse.airports.c.faa, warehouse.airports.c.lat, warehouse.airports.c.lon))
        }
        f = warehouse.flights.c
        counts = conn.execute(
            sa.select(f.origin, f.dest, f.distance, sa.func.count().label("n")).group_by(f.origin, f.dest, f.distance)
        ).all()
    usual: dict[tuple[str, str], tuple[int, float]] = {}
    for origin, dest, distance, n in counts:
        key = (origin, dest)
        if key not in usual or n > usual[key][0]:
            usual[key] = (n, float(distance))
    return Reference(carriers=carriers, airports=airports, route_distance={k: v[1] for k, v in usual.items()})


def _naive_utc(ts: pd.Timestamp) -> Any:
    """A UTC timestamp as the warehouse stores it (naive), for a query parameter."""
    return ts.tz_convert("UTC").tz_localize(None).to_pydatetime()


#: Text columns, typed as `data.load_table` types them (pandas' nullable string), so joins match.
TEXT_COLUMNS = ("carrier", "tailnum", "origin", "dest")


def _like_offline(frame: pd.DataFrame) -> pd.DataFrame:
    """Warehouse rows typed like the validated tables: UTC-aware `time_hour`, nullable strings."""
    out = frame.copy()
    if "time_hour" in out:
        out["time_hour"] = pd.to_datetime(out["time_hour"]).dt.tz_localize("UTC")
    for col in TEXT_COLUMNS:
        if col in out:
            out[col] = out[col].astype("string")
    return out


def read_flights(eng: Engine, lo: pd.Timestamp, hi: pd.Timestamp, queries: Sequence[FlightQuery]) -> pd.DataFrame:
    """Flights scheduled in [lo, hi] that share an origin, carrier, destination or tail with a query.

    Shaped like `data.load_flights` (schedule times added with the offline code).
    """
    f = warehouse.flights.c
    related = [
        f.origin.in_(sorted({q.origin for q in queries})),
        f.carrier.in_(sorted({q.carrier for q in queries})),
        f.dest.in_(sorted({q.dest for q in queries})),
    ]
    tails = sorted({q.tailnum for q in queries if q.tailnum})
    if tails:
        related.append(f.tailnum.in_(tails))
    # time_hour is the scheduled hour: one hour of slack below finds flights at lo + minutes
    query = sa.select(warehouse.flights).where(
        f.time_hour >= _naive_utc(lo - pd.Timedelta(hours=1)), f.time_hour <= _naive_utc(hi), sa.or_(*related)
    )
    with eng.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame = _like_offline(frame)
    for col in ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"):
        frame[col] = pd.to_numeric(frame[col]).astype("float64")
    out = data.add_schedule_times(frame)
    return out.loc[(out["sched_dep_utc"] >= lo) & (out["sched_dep_utc"] <= hi)].reset_index(drop=True)


def read_weather(eng: Engine, lo: pd.Timestamp, hi: pd.Timestamp, origins: set[str]) -> pd.DataFrame:
    """Weather rows of `origins` stamped in [lo, hi]."""
    w = warehouse.weather.c
    query = sa.select(warehouse.weather).where(
        w.origin.in_(sorted(origins)), w.time_hour >= _naive_utc(lo), w.time_hour <= _naive_utc(hi)
    )
    with eng.connect() as conn:
        frame = pd.read_sql(query, conn)
    return _like_offline(frame)


def read_planes(eng: Engine, tails: set[str]) -> pd.DataFrame:
    """The `planes` rows of these tail numbers."""
    query = sa.select(warehouse.planes).where(warehouse.planes.c.tailnum.in_(sorted(tails)))
    with eng.connect() as conn:
        frame = pd.read_sql(query, conn)
    return frame.astype({"year": "float64", "seats": "float64"})


# --------------------------------------------------------------------------- one decision time


def _clusters(queries: Sequence[FlightQuery]) -> list[list[int]]:
    """Query positions grouped so decision times within a cluster are never `CLUSTER_GAP` apart."""
    order = sorted(range(len(queries)), key=lambda i: queries[i].decision_time)
    clusters: list[list[int]] = []
    last: pd.Timestamp | None = None
    for i in order:
        t0 = queries[i].decision_time
        if last is None or t0 - last > CLUSTER_GAP:
            clusters.append([])
        clusters[-1].append(i)
        last = t0
    return clusters


def _groups(queries: Sequence[FlightQuery]) -> list[list[int]]:
    """Positions of queries that one `build_features` call can serve: same lead, no flight twice.

    `build_features` takes one lead (decision time = scheduled departure - lead) for every row.
    """
    groups: list[tuple[pd.Timedelta, set[tuple[Any, ...]], list[int]]] = []
    for i, q in enumerate(queries):
        lead, key = q.sched_dep_utc - q.decision_time, (q.time_hour, q.carrier, q.flight)
        target = next((g for g in groups if g[0] == lead and key not in g[1]), None)
        if target is None:
            target = (lead, set(), [])
            groups.append(target)
        target[1].add(key)
        target[2].append(i)
    return [members for _, _, members in groups]


#: Outcome columns a requested flight keeps from its warehouse row (hidden unless known at t0).
OUTCOME_COLUMNS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")


def _request_rows(group: Sequence[FlightQuery], window: pd.DataFrame, reference: Reference) -> tuple[pd.DataFrame, list[int | None], list[list[str]]]:
    """The requests as warehouse-shaped flight rows, their warehouse ids and flags.

    A flight the warehouse has keeps its id, distance and outcome (`as_known_at` hides the outcome
    unless it was known at the decision time); the request's own fields replace the rest.
    """
    keyed = window.set_index(["time_hour", "carrier", "flight"]) if len(window) else None
    rows, ids, flags = [], [], []
    for k, q in enumerate(group):
        local = q.sched_dep_utc.tz_convert(NEW_YORK)
        found = None
        if keyed is not None and (q.time_hour, q.carrier, q.flight) in keyed.index:
            found = keyed.loc[(q.time_hour, q.carrier, q.flight)]
            found = found.iloc[0] if isinstance(found, pd.DataFrame) else found
        notes: list[str] = []
        if found is not None:
            distance = float(found["distance"])
        else:
            distance = _distance(q.origin, q.dest, reference, notes)
        if q.carrier not in reference.carriers:
            notes.append(FLAG_UNKNOWN_CARRIER)
        outcome = {c: float(found[c]) if found is not None else np.nan for c in OUTCOME_COLUMNS}
        rows.append(
            {
                **outcome,
                # requests the warehouse does not know get ids no flight has
                "flight_id": int(found["flight_id"]) if found is not None else -(k + 1),
                "year": local.year, "month": local.month, "day": local.day,
                "sched_dep_time": local.hour * 100 + local.minute, "sched_arr_time": np.nan,
                "carrier": q.carrier, "flight": q.flight, "tailnum": q.tailnum, "origin": q.origin, "dest": q.dest,
                "distance": distance, "hour": local.hour, "minute": local.minute, "time_hour": q.time_hour,
            }
        )
        ids.append(int(found["flight_id"]) if found is not None else None)
        flags.append(notes)
    frame = pd.DataFrame(rows, columns=FLIGHT_COLUMNS)
    for col in TEXT_COLUMNS:
        frame[col] = frame[col].astype("string")
    frame["time_hour"] = frame["time_hour"].astype(window["time_hour"].dtype) if len(window) else frame["time_hour"]
    return data.add_schedule_times(frame), ids, flags


def _distance(origin: str, dest: str, reference: Reference, notes: list[str]) -> float:
    """The route's usual distance; else great-circle miles between the airports; else NaN (flagged)."""
    if (origin, dest) in reference.route_distance:
        return reference.route_distance[(origin, dest)]
    if origin in reference.airports and dest in reference.airports:
        notes.append(FLAG_DISTANCE_ESTIMATED)
        (lat1, lon1), (lat2, lon2) = reference.airports[origin], reference.airports[dest]
        p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
        cos_angle = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
        return round(EARTH_RADIUS_MILES * math.acos(max(-1.0, min(1.0, cos_angle))))
    notes.append(FLAG_UNKNOWN_AIRPORT)
    return math.nan


def _pool(window: pd.DataFrame, group: Sequence[FlightQuery]) -> pd.DataFrame:
    """Rows that can change a request's features, with every other origin/carrier/dest pooled."""
    keys = {
        "origin": {q.origin for q in group},
        "carrier": {q.carrier for q in group},
        "dest": {q.dest for q in group},
    }
    tails = {q.tailnum for q in group if q.tailnum}
    relevant = window["tailnum"].isin(tails)
    for col, values in keys.items():
        relevant |= window[col].isin(values)
    out = window.loc[relevant].copy()
    for col, values in keys.items():
        out[col] = out[col].where(out[col].isin(values), POOLED)
    return out


def _group_features(
    group: Sequence[FlightQuery], flights_df: pd.DataFrame, weather_df: pd.DataFrame, planes_df: pd.DataFrame, reference: Reference
) -> list[OnlineRow]:
    """Features of requests that share a lead: one `build_features` call.

    The world is masked at the group's latest decision time t0. For a single request that is its
    own decision time; in a batch, earlier requests' rows also see outcomes up to t0, which
    `build_features` never uses for them: every dynamic feature looks strictly before the row's own
    decision time (`tests/data/test_point_in_time.py`), so each row is what it would be alone.
    """
    t0 = max(q.decision_time for q in group)
    lead = group[0].sched_dep_utc - group[0].decision_time
    lo = min(q.decision_time for q in group) - BEFORE
    hi = max(t0 + AFTER, max(q.time_hour for q in group) + pd.Timedelta(hours=1))
    window = flights_df.loc[(flights_df["sched_dep_utc"] >= lo) & (flights_df["sched_dep_utc"] <= hi)]
    requests, ids, flags = _request_rows(group, window, reference)
    # the warehouse's rows of the requested flights give way to the requests
    asked = set(zip(requests["time_hour"], requests["carrier"], requests["flight"], strict=True))
    mine = [key in asked for key in zip(window["time_hour"], window["carrier"], window["flight"], strict=True)]
    others = window.loc[~np.array(mine, dtype=bool)] if len(window) else window
    world = pd.concat([_pool(others, group), requests], ignore_index=True) if len(others) else requests
    known_flights, known_weather = warehouse.as_known_at(world, weather_df, t0)
    built = features.build_features(known_flights, known_weather, planes_df, lead=lead).set_index("flight_id")
    known_tails = set(planes_df["tailnum"])
    out = []
    for q, flight_id, fid, notes in zip(group, ids, requests["flight_id"], flags, strict=True):
        row = built.loc[fid]
        values = {c: _plain(row[c]) for c in INPUT_COLUMNS}
        if q.tailnum is None:
            notes.append(FLAG_NO_TAIL_NUMBER)
        elif q.tailnum not in known_tails:
            notes.append(FLAG_UNKNOWN_AIRCRAFT)
        if not len(others):
            notes.append(FLAG_NO_HISTORY)
        out.append(OnlineRow(query=q, values=values, flight_id=flight_id, flags=notes))
    return out


def _plain(value: Any) -> Any:
    """A feature value as a plain Python value (NaN for missing numbers, None for missing strings)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, int)):
        return float(value)
    return str(value)
