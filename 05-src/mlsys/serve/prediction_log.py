"""The prediction log: every answer the service gives, one row each, in the warehouse's `prediction_log`.

Monitoring (lesson 08) reads this table, so it must be complete; the request path must not wait
for it, so writes are batched off that path: a request appends its row to an in-memory queue, and
one background thread inserts what has queued every `interval_ms` milliseconds, or as soon as
`batch_rows` rows wait, with one executemany per batch. `close()` (the app's shutdown, which
uvicorn runs on SIGTERM) writes everything still queued before it returns.

If the database is down, rows stay queued (up to `max_pending`) and the next flush tries again;
rows beyond that bound are dropped and counted, with a log line saying what to start.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys.logger import logger
from mlsys.warehouse import START_HINT

metadata = sa.MetaData()

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(36), nullable=False, index=True),
    sa.Column("item", sa.Integer, nullable=False),  # position in a batch request (0 for single requests)
    sa.Column("logged_at", sa.DateTime, nullable=False, index=True),  # UTC, stored without a time zone
    sa.Column("route", sa.String(40), nullable=False),
    sa.Column("model_name", sa.String(100), nullable=False),
    sa.Column("model_version", sa.String(40)),
    sa.Column("flight_id", sa.Integer),  # the warehouse's id of the flight, when it has the flight
    sa.Column("carrier", sa.String),
    sa.Column("flight", sa.Integer),
    sa.Column("origin", sa.String),
    sa.Column("dest", sa.String),
    sa.Column("tailnum", sa.String),
    sa.Column("scheduled_departure", sa.DateTime),  # New York local time, as in the data
    sa.Column("decision_time", sa.DateTime),  # UTC: the as_of the features were computed for
    sa.Column("features", sa.Text, nullable=False),  # JSON object: model input column -> value (null = missing)
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision", sa.Boolean, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("flags", sa.Text, nullable=False),  # JSON list of strings
    sa.Column("latency_ms", sa.Float, nullable=False),
)

_EMPTY_ROW = {c.name: None for c in prediction_log.columns if c.name != "id"}
#: Seconds between attempts while the database does not answer.
RETRY_SECONDS = 5.0


def create_table(eng: Engine) -> None:
    """Create `prediction_log` if it does not exist (never drops anything)."""
    metadata.create_all(eng)


def features_json(values: Mapping[str, Any]) -> str:
    """Feature values as a JSON object; NaN becomes null (JSON has no NaN)."""
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()})


def flags_json(flags: Sequence[str]) -> str:
    """Flags as a JSON list."""
    return json.dumps(list(flags))


def utc_now() -> datetime:
    """The current time in UTC, naive, as the warehouse stores timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


class PredictionLog:
    """A queue of log rows and the thread that writes them in batches."""

    def __init__(self, engine: Engine | None, batch_rows: int = 256, interval_ms: int = 200, max_pending: int = 100_000):
        self.engine = engine
        self.batch_rows = batch_rows
        self.interval = interval_ms / 1000
        self.max_pending = max_pending
        self.retry_seconds = RETRY_SECONDS
        self.written = 0
        self.dropped = 0
        # a deque, not a queue.Queue: appending takes no lock and wakes no thread. A writer blocked in
        # Queue.get() would be woken by every request, and that thread switch cost about a
        # millisecond of each request's time on 2 cores.
        self._rows: deque[dict[str, Any]] = deque()
        self._pending: list[dict[str, Any]] = []
        self._wake = threading.Event()
        self._stopping = False
        self._table_ready = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> PredictionLog:
        """Start the writer thread."""
        self._thread.start()
        return self

    def write(self, row: dict[str, Any]) -> None:
        """Queue one row (never blocks, never raises: the request path calls this).

        Columns the row does not name are stored as NULL: one executemany needs every row to have
        the same keys, and a batch mixes `/score` rows (no flight) with `/predict` rows.
        """
        self._rows.append({**_EMPTY_ROW, **row})
        if len(self._rows) >= self.batch_rows:
            self._wake.set()  # a full batch is written now, not at the next tick

    def close(self, timeout: float = 30.0) -> None:
        """Write every queued row, then stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._rows or self._pending:  # rows queued while the thread finished, or a failed last write
            self._drain()
            self._flush()
        if self._pending:
            logger.error("prediction log: {} rows could not be written at shutdown: {}", len(self._pending), START_HINT)
            self.dropped += len(self._pending)
            self._pending = []

    def _run(self) -> None:
        """Every `interval` (or as soon as a batch is full): move queued rows to a batch and write it."""
        wait = self.interval
        while True:
            self._wake.wait(wait)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            ok = self._flush()
            if stopping:
                return
            # after a failure, wait longer before the next try instead of logging a warning per tick
            wait = self.interval if ok else max(self.interval, self.retry_seconds)

    def _drain(self) -> None:
        """Move whatever is queued right now into the pending batch."""
        while True:
            try:
                self._pending.append(self._rows.popleft())
            except IndexError:
                return

    def _flush(self) -> bool:
        """Insert the pending rows in one executemany; keep them for the next try if that fails."""
        if not self._pending:
            return True
        if self.engine is None:
            self._bound_pending("no warehouse connection")
            return False
        try:
            if not self._table_ready:
                create_table(self.engine)
                self._table_ready = True
            with self.engine.begin() as conn:
                conn.execute(prediction_log.insert(), self._pending)
        except sa.exc.SQLAlchemyError as exc:
            logger.warning("prediction log: writing {} rows failed ({}); will retry. {}", len(self._pending), type(exc).__name__, START_HINT)
            self._bound_pending(type(exc).__name__)
            return False
        self.written += len(self._pending)
        self._pending = []
        return True

    def _bound_pending(self, why: str) -> None:
        extra = len(self._pending) - self.max_pending
        if extra > 0:
            logger.error("prediction log: dropping {} rows ({}): {}", extra, why, START_HINT)
            self._pending = self._pending[extra:]
            self.dropped += extra
