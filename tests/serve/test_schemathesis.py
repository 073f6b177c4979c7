"""Property-based API tests generated from the service's OpenAPI schema (schemathesis).

Every route is called with generated requests, valid ones and invalid ones, and each answer is
checked against the schema with schemathesis' default checks: no 5xx, documented status codes and
content types, bodies that match their response models, invalid input refused. The budgets per
route keep the run near a minute: a valid `/predict` builds features from the warehouse (about
0.1 s), `/score` takes about a millisecond.

Strategies come from `APIOperation.as_strategy` under plain Hypothesis: schemathesis' pytest
plugin (`from_fixture(...).parametrize()`) reads a node attribute pytest 9 no longer has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from mlsys.config import override
from mlsys.serve.app import create_app

MIN_CASES = 500
#: small batches: a generated batch of 1,000 flights on random dates would build hundreds of worlds
MAX_BATCH = 4
#: Flight requests have rules JSON Schema cannot state (departure between 1970 and 2099, no local
#: time skipped by a clock change, as_of at most 7 days before the departure): a schema-valid request
#: may get a 422 there, so schemathesis' "valid data must be accepted" check is left out for them.
#: `test_realistic_flights_never_fail` below sends valid flights of 2013 instead.
SEMANTIC_RULES = {"/predict", "/predict/batch"}
#: (method, path, valid cases, invalid cases); GET routes take no input, so they have one valid case
ROUTES = [
    ("POST", "/score", 200, 150),
    ("POST", "/predict", 70, 60),
    ("POST", "/predict/batch", 30, 40),
    ("GET", "/health", 5, 0),
    ("GET", "/ready", 5, 0),
    ("GET", "/model", 5, 0),
]
CASES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def api_client(service, warehouse_settings) -> Iterator[TestClient]:
    app = create_app(service, override(warehouse_settings, serve_max_batch=MAX_BATCH))
    with TestClient(app) as client:  # runs the lifespan: model, warehouse and log are set up for every case
        yield client


@pytest.fixture(scope="module")
def api(api_client) -> object:
    return schemathesis.openapi.from_asgi("/openapi.json", api_client.app)


@pytest.mark.parametrize(("method", "path", "valid", "invalid"), ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_generated_requests_get_documented_answers(api, method, path, valid, invalid):
    operation = api[path][method]
    for mode, examples in ((GenerationMode.POSITIVE, valid), (GenerationMode.NEGATIVE, invalid)):
        if not examples:
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            excluded = [schemathesis.checks.positive_data_acceptance] if path in SEMANTIC_RULES else None
            case.call_and_validate(excluded_checks=excluded)
            CASES[f"{method} {path} {mode.value}"] += 1

        check()


def test_enough_cases_were_generated():
    """Runs after the tests above (pytest keeps file order): their cases add up to the target."""
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases {dict(CASES)}")
    assert total >= MIN_CASES, dict(CASES)


AIRPORTS = ["EWR", "JFK", "LGA", "ATL", "ORD", "LAX", "SFO", "BOS", "QQQ"]
CARRIERS = ["UA", "AA", "B6", "DL", "EV", "9E", "ZZ"]
TAILS = [None, "N14228", "N24211", "N0NE"]


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(
    carrier=st.sampled_from(CARRIERS),
    flight=st.integers(1, 9999),
    origin=st.sampled_from(AIRPORTS),
    dest=st.sampled_from(AIRPORTS),
    departure=st.datetimes(min_value=datetime(2013, 9, 25), max_value=datetime(2014, 1, 5)),
    tailnum=st.sampled_from(TAILS),
    lead_minutes=st.one_of(st.none(), st.integers(0, 7 * 24 * 60)),
)
def test_realistic_flights_never_fail(api_client, carrier, flight, origin, dest, departure, tailnum, lead_minutes):
    """Valid flights around the warehouse's months, known and unknown codes: always a 200 or a 422."""
    body = {"carrier": carrier, "flight": flight, "origin": origin, "dest": dest,
            "scheduled_departure": departure.replace(microsecond=0).isoformat(), "tailnum": tailnum}
    if lead_minutes is not None:
        body["as_of"] = (departure - timedelta(minutes=lead_minutes)).replace(microsecond=0).isoformat()
    response = api_client.post("/predict", json=body)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:  # only a local time skipped by the clock change (2013-03-10 is outside)
        assert "does not exist in New York" in response.text, response.text
    else:
        assert 0 <= response.json()["probability"] <= 1
