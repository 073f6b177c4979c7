"""Request and response bodies of the prediction service (pydantic), so every route is typed in OpenAPI.

Times: `scheduled_departure` and `as_of` are New York local time when they carry no UTC offset,
as the data's `sched_dep_time` is; with an offset they are converted. Responses give times in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from mlsys.features import CATEGORICAL, DECISION_LEAD, NUMERIC
from mlsys.pipeline import HASHED, INPUT_COLUMNS
from mlsys.serve.features import FlightQuery

NEW_YORK = ZoneInfo("America/New_York")
#: Scheduled departures the service accepts (pandas timestamps and the feature windows stay in range).
EARLIEST, LATEST = datetime(1970, 1, 1), datetime(2100, 1, 1)
#: How long before its departure a flight may be scored (`as_of`): the warehouse query spans this.
MAX_LOOKAHEAD = timedelta(days=7)

FLAG_DESCRIPTION = (
    "What to know about this answer: unknown_carrier, unknown_airport (the model never saw it, or the "
    "warehouse has no such airport), unknown_aircraft (tail number not in `planes`), no_tail_number, "
    "distance_estimated (new route: great-circle miles), no_history (the warehouse has no flights "
    "around the decision time), fallback (lesson 01's heuristic answered: no model could be loaded)."
)


def to_new_york(value: datetime, field: str) -> datetime:
    """An aware datetime in New York time; a naive one is read as New York local time.

    Raises ValueError for a local time that does not exist (the spring-forward hour). An ambiguous
    local time (the fall-back hour) is read as its first occurrence (daylight time).
    """
    wall = value.replace(tzinfo=None)
    # checked before any arithmetic: converting year 1 or 9999 across an offset overflows
    if not EARLIEST <= wall < LATEST:
        raise ValueError(f"{field} must be between {EARLIEST.year} and {LATEST.year - 1}")
    if value.tzinfo is not None:
        return value.astimezone(NEW_YORK)
    local = value.replace(tzinfo=NEW_YORK, fold=0)
    if local.astimezone(UTC).astimezone(NEW_YORK).replace(tzinfo=None) != value:
        raise ValueError(f"{field} {value.isoformat()} does not exist in New York (clocks jumped forward)")
    return local


class FlightRequest(BaseModel):
    """One flight as the operations desk knows it at decision time."""

    # strict: a JSON value must have the schema's type (no "12" for 12, no true for 1.0), so the
    # OpenAPI document says exactly what is accepted; unknown fields are refused (typos)
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "scheduled_departure": "2013-11-05T17:15:00", "tailnum": "N14228"}
            ]
        },
    )

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", description="Two-character airline code, e.g. UA", examples=["UA"])
    flight: int = Field(ge=1, le=9999, description="Flight number", examples=[1545])
    origin: str = Field(pattern=r"^[A-Z]{3}$", description="Origin airport (FAA code), e.g. EWR", examples=["EWR"])
    dest: str = Field(pattern=r"^[A-Z]{3}$", description="Destination airport (FAA code), e.g. IAH", examples=["IAH"])
    # strict=False here only: FastAPI validates the parsed JSON, where a time is an ISO string
    scheduled_departure: datetime = Field(
        strict=False,
        description="Scheduled departure in New York local time, as in the data (e.g. 2013-11-05T17:15:00); "
        "an explicit UTC offset is converted to New York time",
        examples=["2013-11-05T17:15:00"],
    )
    tailnum: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,8}$", description="Tail number, if known", examples=["N14228"])
    as_of: datetime | None = Field(
        default=None,
        strict=False,
        description=f"When the prediction is made (replays 2013): features use only what was known then. "
        f"Default: the decision time, {int(DECISION_LEAD.total_seconds() // 3600)} h before the scheduled departure. "
        "New York local time unless an offset is given; at most 7 days before the departure and not after it.",
    )

    @field_validator("scheduled_departure")
    @classmethod
    def _departure_in_range(cls, value: datetime) -> datetime:
        return to_new_york(value, "scheduled_departure")

    @field_validator("as_of")
    @classmethod
    def _as_of_before_departure(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        as_of = to_new_york(value, "as_of")
        departure = info.data.get("scheduled_departure")
        if departure is not None:
            if as_of > departure:
                raise ValueError("as_of must not be after the scheduled departure")
            if departure - as_of > MAX_LOOKAHEAD:
                raise ValueError(f"as_of must be at most {MAX_LOOKAHEAD.days} days before the scheduled departure")
        return as_of

    def query(self) -> FlightQuery:
        """The request as the feature code takes it (UTC timestamps)."""
        return FlightQuery(
            carrier=self.carrier,
            flight=self.flight,
            origin=self.origin,
            dest=self.dest,
            sched_dep_utc=pd.Timestamp(self.scheduled_departure).tz_convert("UTC"),
            tailnum=self.tailnum,
            as_of=pd.Timestamp(self.as_of).tz_convert("UTC") if self.as_of is not None else None,
        )


class Decision(BaseModel):
    """A probability, the decision it implies and the model that gave it."""

    probability: float = Field(ge=0, le=1, description="P(late): arrival 15+ min late, cancelled or diverted")
    decision: bool = Field(description="True: act on this flight (probability at or above the threshold)")
    threshold: float = Field(description="The decision threshold of the model version (registry tag), else the cost-based one")
    model_name: str
    model_version: str | None = Field(description="Registered version; null for an injected model or the fallback")
    flags: list[str] = Field(description=FLAG_DESCRIPTION)


class FlightPrediction(Decision):
    """The answer for one flight."""

    flight_id: int | None = Field(description="The warehouse's id of this flight, when it has it")
    decision_time: datetime = Field(description="The as_of the features were computed for (UTC)")


class PredictionResponse(FlightPrediction):
    """`POST /predict`: one flight's answer."""

    request_id: str
    latency_ms: float = Field(description="Time spent in the service on this request")


class BatchResponse(BaseModel):
    """`POST /predict/batch`: one answer per flight, in request order."""

    request_id: str
    predictions: list[FlightPrediction]
    latency_ms: float


class ScoreResponse(Decision):
    """`POST /score`: the model's answer for one input row."""

    request_id: str
    latency_ms: float


class ModelResponse(BaseModel):
    """`GET /model`: what is being served."""

    name: str
    version: str | None
    alias: str | None
    uri: str | None
    run_id: str | None = Field(description="The MLflow run that registered this version")
    metrics: dict[str, float] = Field(description="That run's metrics (test scores, promotion checks)")
    threshold: float
    threshold_source: str
    source: str = Field(description="registry, injected (tests) or fallback")
    lean: bool = Field(description="True: scored by the lean numpy path, not the pipeline")
    input_columns: list[str]


class HealthResponse(BaseModel):
    """`GET /health`: the process answers."""

    status: str = "ok"


class ReadyResponse(BaseModel):
    """`GET /ready`: can the service answer `/predict` with the registered model?"""

    ready: bool
    model: bool = Field(description="A registered model is loaded (the fallback does not count)")
    warehouse: bool = Field(description="The warehouse answers a query")
    missing: list[str] = Field(description="What is missing: model and/or warehouse")
    detail: dict[str, str] = Field(description="For each missing part, what to start")


class ErrorResponse(BaseModel):
    """A service that cannot answer says what to start."""

    detail: str


@lru_cache(maxsize=8)
def batch_request_model(limit: int) -> type[BaseModel]:
    """`POST /predict/batch`'s body: 1 to `limit` flights (more is a 422 naming `flights` and the limit)."""
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__=f"Up to {limit} flights, each as in POST /predict.",
        flights=(list[FlightRequest], Field(min_length=1, max_length=limit, description=f"1 to {limit} flights")),
    )


@lru_cache(maxsize=1)
def score_request_model() -> type[BaseModel]:
    """`POST /score`'s body: every model input column, null for missing (JSON has no NaN)."""
    fields: dict[str, Any] = {}
    for col in INPUT_COLUMNS:
        if col in CATEGORICAL or col in HASHED:
            fields[col] = (str | None, Field(max_length=64, description="category (null: missing)"))
        elif col in NUMERIC:
            fields[col] = (float | None, Field(allow_inf_nan=False, description="number (null: missing)"))
        else:  # a new input column the service does not know the type of
            fields[col] = (float | str | None, Field(description="model input"))
    return create_model(
        "ScoreRequest",
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__="One model input row: the columns of `mlsys.pipeline.INPUT_COLUMNS` (all required, null = missing).",
        **fields,
    )
