"""Online features in Redis: a departure stream, a consumer that keeps aggregates, point-in-time reads.

Write path. When a flight departs, an event (flight, origin, carrier, destination, tail number,
departure time, delay) is appended to the Redis Stream `<prefix>departures` with XADD. A consumer
in the group `online-aggregates` reads new entries with XREADGROUP, files each departure in four
sorted sets scored by departure time (`<prefix>dep:origin:JFK`, `...:carrier:UA`, `...:dest:ORD`,
`...:tail:N12345`) and acknowledges it (XACK): every entry is folded in once even with several
consumers, and a consumer that crashes leaves its entries pending for another.

Read path. A flight's aggregates at decision time t are ZRANGEBYSCORE reads of the window
[t - 1 h or 3 h, t) of its origin, carrier and destination, and the latest departure of its aircraft
in [t - 24 h, t): exactly the windows `features.build_features` computes offline, so the values
must agree (`tests/featurestore/test_consistency.py`). With `retention` set, the consumer drops
departures older than that before each key's newest one, which bounds memory as a live store must.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis
from sqlalchemy.engine import Engine

from mlsys import features
from mlsys.featurestore.connection import START_HINT, FeatureStoreUnavailable
from mlsys.featurestore.offline import EVENT_COLUMNS, ONLINE_COLUMNS, QUERY_COLUMNS
from mlsys.logger import logger
from mlsys.serve.features import FlightQuery, OnlineFeatures, OnlineRow

PREFIX = "mlsys:"
STREAM = "departures"
GROUP = "online-aggregates"
KEYS = ("origin", "carrier", "dest", "tail")
HOUR = 3600
#: The longest window a read looks at: the aircraft's previous departure, up to 24 h back.
LONGEST_WINDOW = 24 * HOUR


def _epoch_seconds(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as whole seconds since 1970 (departure times are whole minutes)."""
    return (ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").astype("int64") // 10**9).to_numpy()


@dataclass
class OnlineStore:
    """The departure stream and its aggregates under one key prefix of one Redis."""

    conn: redis.Redis
    prefix: str = PREFIX
    #: seconds of history a key keeps behind its newest departure; None keeps everything
    retention: int | None = None
    consumer: str = "consumer-1"
    _group_ready: bool = False

    @property
    def stream(self) -> str:
        return f"{self.prefix}{STREAM}"

    def key(self, kind: str, value: str) -> str:
        return f"{self.prefix}dep:{kind}:{value}"

    # ------------------------------------------------------------------ write path

    def publish(self, events: pd.DataFrame) -> int:
        """XADD each departure (`offline.EVENT_COLUMNS`) to the stream, in order; returns how many."""
        return self.publish_records(event_records(events))

    def publish_records(self, records: Sequence[dict[str, object]], batch: int = 2000) -> int:
        """XADD prepared stream entries (`event_records`), `batch` per round trip."""
        for i in range(0, len(records), batch):
            pipe = self.conn.pipeline(transaction=False)
            for record in records[i : i + batch]:
                pipe.xadd(self.stream, record)
            pipe.execute()
        return len(records)

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.conn.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: fine
                raise
        self._group_ready = True

    def consume(self, count: int = 2000) -> int:
        """Fold every new stream entry into the aggregates (XREADGROUP, ZADD, XACK); returns how many."""
        self._ensure_group()
        done = 0
        while True:
            answer = self.conn.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count)
            entries = answer[0][1] if answer else []
            if not entries:
                return done
            self.fold(entries)
            done += len(entries)
            if len(entries) < count:  # the stream is drained: spare the empty read
                return done

    def fold(self, entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> None:
        """File stream entries in the sorted sets (ZADD; re-filing one is harmless) and acknowledge them (XACK)."""
        by_key: dict[str, dict[str, int]] = {}
        for _, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            member = f"{f['flight_id']}|{f['dep_delay']}"  # the delay rides in the member: one read per window
            for kind in KEYS:
                value = f["tailnum" if kind == "tail" else kind]
                if value:
                    by_key.setdefault(self.key(kind, value), {})[member] = int(f["at"])
        pipe = self.conn.pipeline(transaction=False)
        for key, members in by_key.items():
            pipe.zadd(key, members)
            if self.retention is not None:
                pipe.zremrangebyscore(key, "-inf", f"({max(members.values()) - self.retention}")
        if entries:
            pipe.xack(self.stream, GROUP, *[entry_id for entry_id, _ in entries])
        pipe.execute()

    def clear(self) -> int:
        """Delete every key under this prefix (the stream, its group, the aggregates); returns how many."""
        self._group_ready = False
        keys = list(self.conn.scan_iter(match=f"{self.prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            self.conn.delete(*keys[i : i + 1000])
        return len(keys)

    def size(self) -> dict[str, int]:
        """Stream length, entries not yet consumed, aggregate keys."""
        try:
            groups = self.conn.xinfo_groups(self.stream)
            lag = sum(self._lag(g) + int(g.get("pending") or 0) for g in groups)
        except redis.exceptions.ResponseError:
            lag = 0
        keys = sum(1 for _ in self.conn.scan_iter(match=f"{self.prefix}dep:*", count=1000))
        return {"stream entries": int(self.conn.xlen(self.stream)), "unconsumed": lag, "aggregate keys": keys}

    def _lag(self, group: dict) -> int:
        """Entries not yet delivered to the group (Redis 7 reports `lag`; 6.2, the embedded one, does not)."""
        if group.get("lag") is not None:
            return int(group["lag"])
        last = group["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        return len(self.conn.xrange(self.stream, min=f"({last}"))

    # ------------------------------------------------------------------ read path

    def features(self, queries: pd.DataFrame) -> pd.DataFrame:
        """`ONLINE_COLUMNS` of each query row (`origin`, `carrier`, `dest`, `tailnum`, `decision_time_utc`)."""
        keys = query_keys(queries)
        return pd.DataFrame(self.read(keys), columns=ONLINE_COLUMNS, index=queries.index, dtype="float64")

    def read(self, keys: Sequence[tuple[str, str, str, str | None, int]]) -> list[list[float]]:
        """Aggregates of (origin, carrier, dest, tailnum, decision time in epoch seconds) tuples."""
        pipe = self.conn.pipeline(transaction=False)
        for origin, carrier, dest, tailnum, t0 in keys:
            upper = f"({t0}"  # strictly before the decision time
            for kind, value in (("origin", origin), ("carrier", carrier), ("dest", dest)):
                pipe.zrangebyscore(self.key(kind, value), t0 - 3 * HOUR, upper, withscores=True)
            if tailnum:
                pipe.zrevrangebyscore(self.key("tail", tailnum), upper, t0 - LONGEST_WINDOW, start=0, num=1, withscores=True)
            else:
                pipe.echo("no tail")  # keeps the answers aligned, four per query
        answers = pipe.execute()
        return [_aggregate(answers[4 * i : 4 * i + 4], key[4]) for i, key in enumerate(keys)]


def event_records(events: pd.DataFrame) -> list[dict[str, object]]:
    """Departure events as stream entries: plain fields, the departure time in epoch seconds."""
    missing = [c for c in EVENT_COLUMNS if c not in events]
    if missing:
        raise ValueError(f"departure events lack columns {missing}")
    frame = pd.DataFrame(
        {
            "flight_id": events["flight_id"].astype("int64").to_numpy(),
            "origin": events["origin"].astype(str).to_numpy(),
            "carrier": events["carrier"].astype(str).to_numpy(),
            "dest": events["dest"].astype(str).to_numpy(),
            "tailnum": events["tailnum"].astype("string").fillna("").astype(str).to_numpy(),
            "at": _epoch_seconds(events["actual_dep_utc"]),
            "dep_delay": events["dep_delay"].astype("int64").to_numpy(),
        }
    )
    return [{k: (int(v) if isinstance(v, np.integer) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def query_keys(queries: pd.DataFrame) -> list[tuple[str, str, str, str | None, int]]:
    """(origin, carrier, dest, tailnum or None, decision time in epoch seconds) per query row."""
    tails = queries["tailnum"].astype("string")
    return [
        (str(o), str(c), str(d), None if pd.isna(tn) or not tn else str(tn), int(t))
        for o, c, d, tn, t in zip(queries["origin"], queries["carrier"], queries["dest"], tails, _epoch_seconds(queries["decision_time_utc"]), strict=True)
    ]


def _delays(found: list[tuple[bytes, float]], since: int) -> list[float]:
    return [float(member.rsplit(b"|", 1)[1]) for member, at in found if at >= since]


def _mean(values: list[float]) -> float:
    # a plain sum of whole minutes, as the offline cumulative sums: equal to the last bit
    return sum(values) / len(values) if values else float("nan")


def _aggregate(answers: list, t0: int) -> list[float]:
    origin, carrier, dest, tail = answers
    origin_1h = _delays(origin, t0 - HOUR)
    origin_3h = _delays(origin, t0 - 3 * HOUR)
    if isinstance(tail, list) and tail:
        member, at = tail[0]
        tail_delay, tail_minutes = float(member.rsplit(b"|", 1)[1]), (t0 - at) / 60
    else:
        tail_delay = tail_minutes = float("nan")
    return [
        float(len(origin_1h)),
        float(sum(d >= features.DELAYED_MINUTES for d in origin_1h)),
        _mean(origin_1h),
        float(len(origin_3h)),
        _mean(origin_3h),
        _mean(_delays(carrier, t0 - 3 * HOUR)),
        float(len(_delays(dest, t0 - 3 * HOUR))),
        _mean(_delays(dest, t0 - 3 * HOUR)),
        tail_delay,
        tail_minutes,
    ]


def replay(store: OnlineStore, events: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    """Live, in event time: departures are published and consumed as they happen, and each query is
    read at its decision time, seeing exactly the departures before it (as the service would).

    Returns `ONLINE_COLUMNS` indexed by the queries' flight_id.
    """
    events = events.sort_values("actual_dep_utc", kind="stable").reset_index(drop=True)
    queries = queries[QUERY_COLUMNS].sort_values("decision_time_utc", kind="stable").reset_index(drop=True)
    at = _epoch_seconds(events["actual_dep_utc"])
    records = event_records(events)
    keys = query_keys(queries)
    ids = queries["flight_id"].to_numpy()
    published, rows = 0, []
    start = 0
    while start < len(keys):
        t0 = keys[start][4]
        stop = start
        while stop < len(keys) and keys[stop][4] == t0:
            stop += 1
        upto = int(np.searchsorted(at, t0, side="left"))  # departures strictly before t0
        if upto > published:
            store.publish_records(records[published:upto])
            store.consume()
            published = upto
        rows.extend(store.read(keys[start:stop]))
        start = stop
    logger.info("replayed {} departures, read {} flights", published, len(keys))
    return pd.DataFrame(rows, columns=ONLINE_COLUMNS, index=pd.Index(ids, name="flight_id"), dtype="float64")


def queries_frame(flights: Sequence[object]) -> pd.DataFrame:
    """Query rows from objects with origin/carrier/dest/tailnum/decision_time (the service's `FlightQuery`)."""
    return pd.DataFrame(
        {
            "origin": [q.origin for q in flights],
            "carrier": [q.carrier for q in flights],
            "dest": [q.dest for q in flights],
            "tailnum": [q.tailnum for q in flights],
            "decision_time_utc": pd.to_datetime([q.decision_time for q in flights], utc=True),
        }
    )


class RedisOnlineFeatures(OnlineFeatures):
    """The service's online features with the departure aggregates read from Redis.

    Static features and the weather still come from the warehouse (reference data, batch); the
    aggregates in `ONLINE_COLUMNS` come from the stream's consumer. Each call first folds in the
    departures appended since the last one (XREADGROUP), so the service needs no other process.
    """

    def __init__(self, engine: Engine, store: OnlineStore):
        super().__init__(engine)
        self.store = store

    def compute(self, queries: Sequence[FlightQuery]) -> list[OnlineRow]:
        rows = super().compute(queries)
        try:
            self.store.consume()
            values = self.store.read(query_keys(queries_frame(queries)))
        except redis.exceptions.RedisError as exc:
            raise FeatureStoreUnavailable(f"the online feature store does not answer ({type(exc).__name__}): {START_HINT}") from exc
        for row, online_values in zip(rows, values, strict=True):
            row.values.update(dict(zip(ONLINE_COLUMNS, online_values, strict=True)))  # NaN for missing, as the warehouse path gives
        return rows
