"""Replay: September–December 2013, day by day on a simulated clock, into the prediction log.

Production monitoring needs months of traffic; the course has 2013. The replay plays the desk's
decisions back in order: for each simulated day (New York date of the decision time) it takes the
flights decided that day, scores them with the service's scoring core (`ModelService`, the object
the app serves) and writes one row per flight to the warehouse's `prediction_log` through the
service's own batched writer (`PredictionLog`), stamped with the simulated clock (`logged_at` =
decision time). The features are the point-in-time rows of `features.feature_table()`, which the
service's `OnlineFeatures` reproduces exactly (`tests/serve/test_feature_parity.py`), so the
replay gives the answers `/predict` would have given, about a thousand times faster.

Fast mode samples `flights_per_day` flights of each day (the same flights for every model, given
the seed, so a shadow or challenger replay is comparable row by row).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlsys import display
from mlsys.logger import logger
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve.model import ModelService
from mlsys.serve.prediction_log import PredictionLog, create_table, flags_json, prediction_log

NEW_YORK = "America/New_York"
REPLAY_ROUTE = "/replay"
REPLAY_START, REPLAY_END = "2013-09-01", "2014-01-01"
#: request ids of replayed rows are derived from these, so a replay is reproducible
_NAMESPACE = uuid.UUID("5b0e2a57-8a44-4f39-9d0c-3f1c2b7e0a13")


@dataclass(frozen=True)
class ReplayResult:
    """What a replay wrote: rows, simulated days, the route and model it logged under, wall time."""

    rows: int
    days: int
    route: str
    model_name: str
    model_version: str | None
    seconds: float


def decision_day(decision_time_utc: pd.Series) -> pd.Series:
    """The simulated clock's day of each decision: its New York date."""
    return decision_time_utc.dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.normalize()


def replay_frame(
    table: pd.DataFrame,
    start: str = REPLAY_START,
    end: str = REPLAY_END,
    flights_per_day: int | None = None,
    seed: int = 42,
) -> pd.DataFrame:
    """Feature-table rows whose scheduled departure (New York) is in [start, end), ordered by decision time.

    With `flights_per_day`, a random sample of at most that many flights per decision day (`seed`).
    Adds `decision_day`.
    """
    window = table[(table["sched_dep_local"] >= pd.Timestamp(start)) & (table["sched_dep_local"] < pd.Timestamp(end))].copy()
    if window.empty:
        raise ValueError(f"no flights scheduled in [{start}, {end}): check the dates (the data set covers 2013)")
    window["decision_day"] = decision_day(window["decision_time_utc"])
    if flights_per_day is not None:
        if flights_per_day < 1:
            raise ValueError(f"flights_per_day must be a positive number, got {flights_per_day}")
        rng = np.random.default_rng(seed)
        keys = pd.Series(rng.random(len(window)), index=window.index)
        rank = keys.groupby(window["decision_day"]).rank(method="first")
        window = window[rank <= flights_per_day]
    return window.sort_values(["decision_time_utc", "flight_id"]).reset_index(drop=True)


def days(frame: pd.DataFrame) -> Iterator[tuple[pd.Timestamp, pd.DataFrame]]:
    """The simulated clock: (day, that day's decisions), in order."""
    yield from frame.groupby("decision_day", sort=True)


def model_inputs(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, object]]:
    """Rows of model inputs as plain Python values (missing -> None), as a request would carry them."""
    values = frame[columns].to_numpy(dtype=object)
    values[pd.isna(values)] = None
    return [dict(zip(columns, row, strict=True)) for row in values.tolist()]


def request_id(route: str, service: ModelService, flight_id: int) -> str:
    """A stable id for one replayed decision (same route, model and flight -> same id)."""
    return str(uuid.uuid5(_NAMESPACE, f"{route}|{service.card.name}|{service.card.version}|{flight_id}"))


def clear_replay(engine: Engine, route: str = REPLAY_ROUTE, model_version: str | None = None) -> int:
    """Delete earlier replayed rows of `route` (and of `model_version`, if given); returns how many."""
    create_table(engine)
    query = sa.delete(prediction_log).where(prediction_log.c.route == route)
    if model_version is not None:
        query = query.where(prediction_log.c.model_version == model_version)
    with engine.begin() as conn:
        return conn.execute(query).rowcount or 0


def replay(
    service: ModelService,
    engine: Engine,
    frame: pd.DataFrame,
    route: str = REPLAY_ROUTE,
    replace: bool = True,
    progress: bool = True,
) -> ReplayResult:
    """Score `frame` (from `replay_frame`) day by day with `service` and log every decision to `prediction_log`.

    Each row is logged as the service logs a `/predict` answer, with `logged_at` = the decision time
    (the simulated clock) and `latency_ms` = that day's scoring time per flight. With `replace`,
    rows this route and model logged before are deleted first, so a re-run does not double them.
    """
    if replace:
        removed = clear_replay(engine, route, service.card.version)
        if removed:
            logger.info("replay: removed {} earlier rows of {} (model version {})", removed, route, service.card.version)
    log = PredictionLog(engine, batch_rows=4096, interval_ms=100).start()
    started = time.perf_counter()
    n_days = 0
    try:
        schedule = list(days(frame))
        for _, part in display.progress(schedule, total=len(schedule), desc="replay (days)") if progress else schedule:
            n_days += 1
            t = time.perf_counter()
            probabilities = service.predict_proba(part[service.columns])
            per_flight_ms = (time.perf_counter() - t) * 1000 / len(part)
            for row in log_rows(service, route, part, probabilities, per_flight_ms):
                log.write(row)
    finally:
        log.close()
    if log.dropped:
        raise RuntimeError(f"replay: {log.dropped} rows could not be written to prediction_log (see the log above)")
    return ReplayResult(log.written, n_days, route, service.card.name, service.card.version, time.perf_counter() - started)


def log_rows(service: ModelService, route: str, part: pd.DataFrame, probabilities: np.ndarray, latency_ms: float) -> list[dict[str, object]]:
    """`prediction_log` rows for scored feature-table rows, as the service logs `/predict` answers."""
    decided = list(part["decision_time_utc"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_pydatetime())
    scheduled = list(part["sched_dep_local"].dt.to_pydatetime())
    flight_ids, flights = part["flight_id"].astype("int64").tolist(), part["flight"].astype("int64").tolist()
    tails = part["tailnum"].astype(object).where(part["tailnum"].notna(), None).tolist()
    out = []
    for i, values in enumerate(model_inputs(part, service.columns)):
        p = float(probabilities[i])
        flight_id = flight_ids[i]
        out.append(
            {
                "request_id": request_id(route, service, flight_id),
                "item": 0,
                "logged_at": decided[i],
                "route": route,
                "model_name": service.card.name,
                "model_version": service.card.version,
                "flight_id": flight_id,
                "carrier": values.get("carrier"),
                "flight": flights[i],
                "origin": values.get("origin"),
                "dest": values.get("dest"),
                "tailnum": tails[i],
                "scheduled_departure": scheduled[i],
                "decision_time": decided[i],
                "features": json.dumps(values),  # what features_json writes: missing values are None already
                "probability": p,
                "decision": service.decide(p),
                "threshold": service.threshold,
                "flags": flags_json(service.flags(values)),
                "latency_ms": latency_ms,
            }
        )
    return out


def read_log(engine: Engine, route: str | None = REPLAY_ROUTE, model_version: str | None = None, with_features: bool = False) -> pd.DataFrame:
    """Rows of `prediction_log` (of `route` and `model_version` when given) in decision order.

    Times come back timezone-aware: `decision_time` and `logged_at` in UTC, `scheduled_departure`
    in New York time is left naive (as logged). With `with_features`, the logged model inputs are
    added as columns (`INPUT_COLUMNS`).
    """
    cols = [c for c in prediction_log.columns if with_features or c.name != "features"]
    query = sa.select(*cols).order_by(prediction_log.c.decision_time, prediction_log.c.id)
    if route is not None:
        query = query.where(prediction_log.c.route == route)
    if model_version is not None:
        query = query.where(prediction_log.c.model_version == model_version)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    for col in ("decision_time", "logged_at"):
        frame[col] = pd.to_datetime(frame[col]).dt.tz_localize("UTC")
    frame["scheduled_departure"] = pd.to_datetime(frame["scheduled_departure"])
    frame["decision"] = frame["decision"].astype(bool)
    if with_features:
        inputs = pd.DataFrame.from_records([json.loads(text) for text in frame["features"]], index=frame.index)
        # carrier, origin and dest are log columns already (the same values)
        extra = [c for c in INPUT_COLUMNS if c in inputs and c not in frame]
        frame = pd.concat([frame.drop(columns="features"), inputs[extra]], axis=1)
    return frame
