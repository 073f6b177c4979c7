"""The prediction service (FastAPI): `uvicorn --factory mlsys.serve.app:create_app` (`make serve`).

Routes: `POST /predict` (one flight, features computed from the warehouse as of its decision
time), `POST /predict/batch`, `POST /score` (one model input row, no feature computation),
`GET /health`, `GET /ready`, `GET /model`; interactive docs at `/docs` (Swagger UI) and `/redoc`,
served from files in the `fastapi-offline` package, so they work without internet.

Start-up (the lifespan) loads the champion from the registry and connects to the warehouse. A
registry or warehouse that cannot be reached is logged with what to start; the app starts anyway
and `/ready` answers 503 naming what is missing. With `MLSYS_SERVE_FALLBACK=true` (the default),
lesson 01's heuristic answers instead of a missing model, and every answer carries the flag
`fallback`. Every answer is logged to `prediction_log` off the request path; shutdown (SIGTERM)
writes what is still queued.
"""

# No `from __future__ import annotations`: FastAPI must resolve the body types built in `_routes`
# (the batch limit comes from settings), and string annotations of local names cannot be resolved.
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from mlflow.exceptions import MlflowException
from sqlalchemy.engine import Engine

from mlsys import warehouse
from mlsys.config import Settings, get_settings, mask_password
from mlsys.featurestore.connection import FeatureStoreUnavailable
from mlsys.logger import logger, setup_logging
from mlsys.serve import schemas
from mlsys.serve.features import OnlineFeatures, OnlineRow
from mlsys.serve.metrics import instrument
from mlsys.serve.metrics import observe as observe_metrics
from mlsys.serve.model import ModelService, from_registry, heuristic_fallback
from mlsys.serve.prediction_log import PredictionLog, create_table, features_json, flags_json, utc_now
from mlsys.tracking import TrackingServerUnavailable

#: Seconds between attempts to reach a warehouse that was down.
RECONNECT_SECONDS = 5.0


class Warehouse:
    """The warehouse engine, connected lazily: a warehouse that comes up later is picked up."""

    def __init__(self, settings: Settings, on_connect: Callable[[Engine], None] | None = None):
        self.settings = settings
        self.engine: Engine | None = None
        self.error = ""
        self.on_connect = on_connect
        self._next_try = 0.0

    def get(self) -> Engine | None:
        """The engine, or None if the warehouse cannot be reached (retried at most every few seconds)."""
        if self.engine is None and time.monotonic() >= self._next_try:
            try:
                eng = warehouse.engine(self.settings)
                create_table(eng)
            except (warehouse.WarehouseUnavailable, sa.exc.SQLAlchemyError) as exc:
                self._next_try = time.monotonic() + RECONNECT_SECONDS
                if str(exc) != self.error:
                    logger.error("{}", exc)
                self.error = str(exc) if isinstance(exc, warehouse.WarehouseUnavailable) else _unreachable(self.settings, exc)
                return None
            self.engine, self.error = eng, ""
            logger.info("warehouse connected: {}", mask_password(self.settings.database_url))
            if self.on_connect is not None:
                self.on_connect(eng)
        return self.engine

    def reachable(self) -> bool:
        """True when the warehouse answers a query now."""
        eng = self.get()
        if eng is None:
            return False
        try:
            with eng.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            self.error = _unreachable(self.settings, exc)
            return False
        return True


def _unreachable(settings: Settings, exc: BaseException) -> str:
    return f"the warehouse at {mask_password(settings.database_url)} does not answer ({type(exc).__name__}): {warehouse.START_HINT}"


@dataclass
class Runtime:
    """What the routes share: settings, the model, the warehouse, online features, the log."""

    settings: Settings
    service: ModelService | None
    warehouse: Warehouse
    log: PredictionLog
    model_error: str = ""
    _online: OnlineFeatures | None = None

    def model(self) -> ModelService:
        """The model, or a 503 that says why there is none."""
        if self.service is None:
            raise HTTPException(status_code=503, detail=f"no model is loaded: {self.model_error}")
        return self.service

    def features(self) -> OnlineFeatures:
        """Online features on the warehouse, or a 503 that says what to start."""
        eng = self.warehouse.get()
        if eng is None:
            raise HTTPException(status_code=503, detail=self.warehouse.error)
        if self._online is None:
            self._online = _online_features(eng, self.settings)
        return self._online


def _online_features(eng: Engine, settings: Settings) -> OnlineFeatures:
    """Departure aggregates from the warehouse, or from Redis with MLSYS_ONLINE_FEATURES=redis (lesson 10)."""
    if settings.online_features != "redis":
        return OnlineFeatures(eng)
    from mlsys.featurestore import connection, online

    try:
        return online.RedisOnlineFeatures(eng, online.OnlineStore(connection.client(settings)))
    except FeatureStoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc


def _load_model(settings: Settings) -> tuple[ModelService | None, str]:
    """The champion from the registry; else the fallback (if enabled) and why the champion is missing."""
    try:
        return from_registry(settings), ""
    except TrackingServerUnavailable as exc:
        problem = str(exc)
    except MlflowException as exc:
        problem = (
            f"no model {settings.registered_model_name}@{settings.champion_alias} in the registry at "
            f"{mask_password(settings.mlflow_tracking_uri)} ({exc.message.splitlines()[0]}). Register one with "
            "`python -m mlsys.serve.champion` (or run lesson 06), then restart the service."
        )
    except OSError as exc:  # model files missing or unreadable
        problem = f"the champion's files could not be read ({exc}); check MLSYS_ARTIFACT_ROOT or the tracking server"
    logger.error("{}", problem)
    if not settings.serve_fallback:
        return None, problem
    try:
        return heuristic_fallback(settings), problem
    except Exception as exc:  # noqa: BLE001 - a failing fallback must not stop the service from starting
        logger.error("the fallback could not be prepared either: {}", exc)
        return None, f"{problem}; the fallback failed too ({exc})"


def create_app(service: ModelService | None = None, settings: Settings | None = None) -> FastAPI:
    """The FastAPI app; `service` injects a model (tests), otherwise start-up loads the champion."""
    settings = settings or get_settings()
    setup_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log = PredictionLog(None, settings.prediction_log_rows, settings.prediction_log_ms)
        # the log writes to the warehouse as soon as it is connected, now or when it comes up later
        store = Warehouse(settings, on_connect=lambda eng: setattr(log, "engine", eng))
        store.get()  # logs what to start if it is down
        model, problem = (service, "") if service is not None else _load_model(settings)
        log.start()
        app.state.runtime = Runtime(settings=settings, service=model, warehouse=store, log=log, model_error=problem)
        try:
            yield
        finally:
            log.close()
            logger.info("prediction log: {} rows written, {} dropped", log.written, log.dropped)
            if store.engine is not None:
                store.engine.dispose()

    app = FastAPIOffline(
        title="Flight delay prediction service",
        version="1.0",
        description=__doc__.split("\n\n")[1] + "\n\nTimes without a UTC offset are New York local time, as in the data.",
        lifespan=lifespan,
    )
    instrument(app)  # GET /metrics (Prometheus) and the request metrics middleware
    _routes(app, settings)
    return app


def _rt(request: Request) -> Runtime:
    return request.app.state.runtime


def _merge(*flag_lists: Sequence[str]) -> list[str]:
    """Flags in first-seen order, each once."""
    return list(dict.fromkeys(f for flags in flag_lists for f in flags))


def _flight_answers(rt: Runtime, rows: list[OnlineRow]) -> list[tuple[schemas.FlightPrediction, OnlineRow]]:
    service = rt.model()
    probabilities = service.predict_proba(_matrix(service, rows)) if rows else []
    out = []
    for row, p in zip(rows, probabilities, strict=True):
        p = float(p)
        out.append(
            (
                schemas.FlightPrediction(
                    probability=p,
                    decision=service.decide(p),
                    threshold=service.threshold,
                    model_name=service.card.name,
                    model_version=service.card.version,
                    flags=_merge(row.flags, service.flags(row.values)),
                    flight_id=row.flight_id,
                    decision_time=row.query.decision_time.to_pydatetime(),
                ),
                row,
            )
        )
    return out


def _matrix(service: ModelService, rows: list[OnlineRow]) -> np.ndarray:
    """Model input rows (objects, in the service's column order)."""
    return np.array([[row.values.get(c) for c in service.columns] for row in rows], dtype=object)


def _log_flight(rt: Runtime, request_id: str, item: int, route: str, answer: schemas.FlightPrediction, row: OnlineRow, latency_ms: float) -> None:
    q = row.query
    rt.log.write(
        {
            "request_id": request_id,
            "item": item,
            "logged_at": utc_now(),
            "route": route,
            "model_name": answer.model_name,
            "model_version": answer.model_version,
            "flight_id": row.flight_id,
            "carrier": q.carrier,
            "flight": q.flight,
            "origin": q.origin,
            "dest": q.dest,
            "tailnum": q.tailnum,
            "scheduled_departure": q.sched_dep_utc.tz_convert("America/New_York").tz_localize(None).to_pydatetime(),
            "decision_time": _naive(answer.decision_time),
            "features": features_json(row.values),
            "probability": answer.probability,
            "decision": answer.decision,
            "threshold": answer.threshold,
            "flags": flags_json(answer.flags),
            "latency_ms": latency_ms,
        }
    )


def _naive(moment: datetime) -> datetime:
    """An aware datetime as naive UTC (how the warehouse stores timestamps)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def _compute(rt: Runtime, queries: list[Any]) -> list[OnlineRow]:
    online = rt.features()
    try:
        return online.compute(queries)
    except FeatureStoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:  # pandas wraps the driver's error
        if "no such table" in str(exc) or "does not exist" in str(exc):
            detail = (
                f"the warehouse at {mask_password(rt.settings.database_url)} has no flights loaded: "
                "load it with `python -m mlsys.serve.champion` (or `make serve`, which does it on first start)"
            )
            raise HTTPException(status_code=503, detail=detail) from exc
        raise HTTPException(status_code=503, detail=_unreachable(rt.settings, exc)) from exc


_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": schemas.ErrorResponse, "description": "No model, or no warehouse: the detail says what to start"}
}
#: POST routes also answer 400 when the body cannot be read as text at all (FastAPI's own check)
_POST_ERRORS: dict[int | str, dict[str, Any]] = {
    **_UNAVAILABLE,
    400: {"model": schemas.ErrorResponse, "description": "The body could not be parsed (not UTF-8 JSON text)"},
}


def _routes(app: FastAPI, settings: Settings) -> None:
    """Attach every route to `app`."""
    BatchRequest = schemas.batch_request_model(settings.serve_max_batch)
    ScoreRequest = schemas.score_request_model()

    @app.get("/health", response_model=schemas.HealthResponse, tags=["operations"])
    async def health() -> schemas.HealthResponse:
        """Liveness: the process answers (says nothing about the model or the warehouse)."""
        return schemas.HealthResponse()

    @app.get("/ready", response_model=schemas.ReadyResponse, tags=["operations"], responses={503: {"model": schemas.ReadyResponse}})
    def ready(request: Request) -> Any:
        """Readiness: a registered model is loaded AND the warehouse answers; 503 says which is missing."""
        rt = _rt(request)
        has_model = rt.service is not None and not rt.service.is_fallback
        has_warehouse = rt.warehouse.reachable()
        detail = {}
        if not has_model:
            detail["model"] = rt.model_error or "the fallback is serving: no registered model was loaded"
        if not has_warehouse:
            detail["warehouse"] = rt.warehouse.error
        body = schemas.ReadyResponse(
            ready=has_model and has_warehouse, model=has_model, warehouse=has_warehouse, missing=list(detail), detail=detail
        )
        return body if body.ready else JSONResponse(status_code=503, content=body.model_dump())

    @app.get("/model", response_model=schemas.ModelResponse, tags=["model"], responses=_UNAVAILABLE)
    async def model(request: Request) -> schemas.ModelResponse:
        """The model being served: name, version, alias, training run, its metrics and the threshold."""
        service = _rt(request).model()
        card = service.card
        return schemas.ModelResponse(
            name=card.name, version=card.version, alias=card.alias, uri=card.uri, run_id=card.run_id, metrics=card.metrics,
            threshold=card.threshold, threshold_source=card.threshold_source, source=card.source,
            lean=service.lean.is_lean, input_columns=service.columns,
        )

    @app.post("/predict", response_model=schemas.PredictionResponse, tags=["predict"], responses=_POST_ERRORS)
    def predict(body: schemas.FlightRequest, request: Request) -> schemas.PredictionResponse:
        """P(late) for one flight, from features computed as of its decision time (default: 2 h before departure)."""
        start = time.perf_counter()
        rt = _rt(request)
        rt.model()
        rows = _compute(rt, [body.query()])
        answer, row = _flight_answers(rt, rows)[0]
        observe_metrics(request, "/predict", [answer.probability], answer.threshold)
        request_id = str(uuid.uuid4())
        latency = (time.perf_counter() - start) * 1000
        _log_flight(rt, request_id, 0, "/predict", answer, row, latency)
        return schemas.PredictionResponse(**answer.model_dump(), request_id=request_id, latency_ms=latency)

    @app.post(
        "/predict/batch",
        response_model=schemas.BatchResponse,
        tags=["predict"],
        responses=_POST_ERRORS,
        description=f"P(late) for 1 to {settings.serve_max_batch} flights (more: 422), in request order. "
        "Flights that share a decision time share one feature build.",
    )
    def predict_batch(body: BatchRequest, request: Request) -> schemas.BatchResponse:  # type: ignore[valid-type]
        start = time.perf_counter()
        rt = _rt(request)
        rt.model()
        rows = _compute(rt, [flight.query() for flight in body.flights])  # type: ignore[attr-defined]
        answers = _flight_answers(rt, rows)
        observe_metrics(request, "/predict/batch", [a.probability for a, _ in answers], rt.model().threshold)
        request_id = str(uuid.uuid4())
        latency = (time.perf_counter() - start) * 1000
        for item, (answer, row) in enumerate(answers):
            _log_flight(rt, request_id, item, "/predict/batch", answer, row, latency)
        return schemas.BatchResponse(request_id=request_id, predictions=[a for a, _ in answers], latency_ms=latency)

    @app.post("/score", response_model=schemas.ScoreResponse, tags=["predict"], responses=_POST_ERRORS)
    async def score(body: ScoreRequest, request: Request) -> schemas.ScoreResponse:  # type: ignore[valid-type]
        """P(late) for one model input row (no feature computation): what `mlflow models serve` answers."""
        start = time.perf_counter()
        rt = _rt(request)
        service = rt.model()
        values = body.model_dump()  # type: ignore[attr-defined]
        p = float(service.predict_proba(service.row(values))[0])
        decision = service.decide(p)
        observe_metrics(request, "/score", [p], service.threshold)
        flags = service.flags(values)
        request_id = str(uuid.uuid4())
        latency = (time.perf_counter() - start) * 1000
        if rt.log.engine is None:
            rt.warehouse.get()  # /score needs no warehouse, but its log does: retried every few seconds
        rt.log.write(
            {
                "request_id": request_id, "item": 0, "logged_at": utc_now(), "route": "/score",
                "model_name": service.card.name, "model_version": service.card.version,
                "carrier": values.get("carrier"), "origin": values.get("origin"), "dest": values.get("dest"),
                "tailnum": values.get("tailnum"), "features": features_json(values), "probability": p,
                "decision": decision, "threshold": service.threshold, "flags": flags_json(flags), "latency_ms": latency,
            }
        )
        return schemas.ScoreResponse(
            probability=p, decision=decision, threshold=service.threshold, model_name=service.card.name,
            model_version=service.card.version, flags=flags, request_id=request_id, latency_ms=latency,
        )
