"""The train/serve consistency check of lesson 10: replay a period through Redis, compare with the table."""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import redis

from mlsys import data, features
from mlsys.featurestore import connection, offline, online

#: A week of the test split: ~6,300 departures, enough for 1,000 flights a day or more after its start.
START, END = pd.Timestamp("2013-11-01", tz="UTC"), pd.Timestamp("2013-11-08", tz="UTC")
RETENTION = 26 * 3600


@dataclass
class Consistency:
    """What a check compared and found."""

    backend: dict[str, str]
    departures: int
    flights: int
    seconds: float
    table: pd.DataFrame
    online: pd.DataFrame

    @property
    def max_abs_diff(self) -> float:
        return float(self.table["max abs diff"].max())

    @property
    def all_equal(self) -> bool:
        return bool((self.table["equal"] == self.flights).all())


def check(n_flights: int = 1_000, conn: redis.Redis | None = None, start: pd.Timestamp = START, end: pd.Timestamp = END, seed: int = 42) -> Consistency:
    """Replay the departures of [start, end) in event time and compare `n_flights` flights' online
    aggregates with the offline table; on `conn`, else a fresh embedded Redis (deleted afterwards)."""
    table = features.feature_table()
    flights = data.load_flights()
    events = offline.departure_events(flights.loc[(flights["actual_dep_utc"] >= start) & (flights["actual_dep_utc"] < end)])
    sample = offline.consistency_sample(table, start, end, n_flights, seed)
    with tempfile.TemporaryDirectory() as tmp:
        own = conn is None
        conn = conn or connection.client(url="", db_path=Path(tmp) / "consistency.rdb")
        store = online.OnlineStore(conn, prefix=f"consistency:{uuid.uuid4().hex[:8]}:", retention=RETENTION)
        try:
            began = time.perf_counter()
            got = online.replay(store, events, sample)
            seconds = time.perf_counter() - began
            published = store.size()["stream entries"]
            backend = connection.describe(conn)
        finally:
            store.clear()
            if own:  # the embedded server started here stops here, not when the process exits
                connection.close(conn)
    result = offline.compare(got, offline.feature_rows(got.index, table=table))
    return Consistency(backend=backend, departures=published, flights=len(got), seconds=seconds, table=result, online=got)
