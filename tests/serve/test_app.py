"""The service's routes, in process (`TestClient`), with an injected small model and a test warehouse."""

from __future__ import annotations

import json
import re
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mlsys import features
from mlsys.config import get_settings, override
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve.app import create_app
from mlsys.serve.prediction_log import prediction_log


@pytest.fixture(scope="module")
def offline() -> pd.DataFrame:
    table = features.feature_table()
    return table[table["split"] == "test"].sample(50, random_state=3).reset_index(drop=True)


def score_body(row: pd.Series) -> dict:
    return {c: (None if pd.isna(row[c]) else (str(row[c]) if isinstance(row[c], str) else float(row[c]))) for c in INPUT_COLUMNS}


def test_health_ready_and_model(client, service):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    model = client.get("/model").json()
    assert (model["name"], model["version"], model["source"]) == ("small-champion", "7", "injected")
    assert model["threshold"] == service.threshold == 0.25  # no registry tag: the cost-based threshold
    assert model["lean"] is True and model["input_columns"] == INPUT_COLUMNS


def test_predict_scores_the_offline_features_of_a_known_flight(client, service, offline, body_of):
    row = offline.iloc[0]
    response = client.post("/predict", json=body_of(row))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["flight_id"] == int(row["flight_id"])
    want = float(service.predict_proba(row[INPUT_COLUMNS].to_frame().T)[0])
    assert answer["probability"] == pytest.approx(want, abs=1e-9)
    assert answer["decision"] == (answer["probability"] >= answer["threshold"])
    assert (answer["model_name"], answer["model_version"]) == ("small-champion", "7")
    assert pd.Timestamp(answer["decision_time"]) == row["decision_time_utc"]
    uuid.UUID(answer["request_id"])
    assert answer["latency_ms"] > 0


def test_as_of_replays_an_earlier_moment_and_must_precede_departure(client, offline, body_of):
    body = body_of(offline.iloc[1])
    departure = pd.Timestamp(body["scheduled_departure"])
    earlier = client.post("/predict", json={**body, "as_of": (departure - pd.Timedelta(hours=6)).isoformat()})
    assert earlier.status_code == 200, earlier.text
    assert pd.Timestamp(earlier.json()["decision_time"]) == departure.tz_localize("America/New_York").tz_convert("UTC") - pd.Timedelta(hours=6)
    late = client.post("/predict", json={**body, "as_of": (departure + pd.Timedelta(minutes=1)).isoformat()})
    assert late.status_code == 422 and late.json()["detail"][0]["loc"] == ["body", "as_of"]


def test_unknown_carrier_airport_and_aircraft_get_a_prediction_and_flags(client, offline, body_of):
    body = {**body_of(offline.iloc[2]), "carrier": "ZZ", "dest": "QQQ", "tailnum": "N0NE"}
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert 0 <= answer["probability"] <= 1
    assert {"unknown_carrier", "unknown_airport", "unknown_aircraft"} <= set(answer["flags"])
    assert answer["flight_id"] is None
    no_tail = client.post("/predict", json={**body_of(offline.iloc[2]), "tailnum": None}).json()
    assert "no_tail_number" in no_tail["flags"]
    far_future = client.post("/predict", json={**body_of(offline.iloc[2]), "scheduled_departure": "2031-06-01T09:00:00"}).json()
    assert "no_history" in far_future["flags"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"carrier": None}, "carrier"),
        ({"flight": "twelve"}, "flight"),
        ({"origin": "jfk"}, "origin"),
        ({"scheduled_departure": "yesterday"}, "scheduled_departure"),
        ({"scheduled_departure": "2013-03-10T02:30:00"}, "scheduled_departure"),  # skipped by daylight saving
        ({"scheduled_departure": "0001-01-01T00:00:00+05:00"}, "scheduled_departure"),
        ({"tailnum": "N 1"}, "tailnum"),
        ({"gate": "B12"}, "gate"),  # unknown fields are refused, so typos do not pass silently
    ],
)
def test_bad_requests_get_a_422_that_names_the_field(client, offline, body_of, change, field):
    body = {**body_of(offline.iloc[0]), **change}
    response = client.post("/predict", json=body)
    assert response.status_code == 422
    assert field in [entry["loc"][-1] for entry in response.json()["detail"]], response.json()


def test_missing_field_is_named(client, offline, body_of):
    body = body_of(offline.iloc[0])
    del body["dest"]
    detail = client.post("/predict", json=body).json()["detail"]
    assert detail[0]["loc"] == ["body", "dest"] and detail[0]["type"] == "missing"


def test_batch_answers_in_order_and_states_its_limit(service, warehouse_settings, offline, body_of):
    settings = override(warehouse_settings, serve_max_batch=3)
    with TestClient(create_app(service, settings)) as c:
        bodies = [body_of(offline.iloc[i]) for i in range(3)]
        response = c.post("/predict/batch", json={"flights": bodies})
        assert response.status_code == 200, response.text
        ids = [p["flight_id"] for p in response.json()["predictions"]]
        assert ids == offline["flight_id"].iloc[:3].tolist()
        single = c.post("/predict", json=bodies[2]).json()
        assert response.json()["predictions"][2]["probability"] == pytest.approx(single["probability"], abs=1e-12)
        too_many = c.post("/predict/batch", json={"flights": bodies + bodies[:1]})
        assert too_many.status_code == 422
        error = too_many.json()["detail"][0]
        assert error["loc"] == ["body", "flights"] and "3" in error["msg"]
        assert c.post("/predict/batch", json={"flights": []}).status_code == 422


def test_score_answers_for_a_model_input_row(client, service, offline):
    row = offline.iloc[4]
    response = client.post("/score", json=score_body(row))
    assert response.status_code == 200, response.text
    want = float(service.predict_proba(row[INPUT_COLUMNS].to_frame().T)[0])
    assert response.json()["probability"] == pytest.approx(want, abs=1e-9)
    odd = {**score_body(row), "carrier": "ZZ", "origin": "XYZ"}
    assert set(client.post("/score", json=odd).json()["flags"]) == {"unknown_carrier", "unknown_airport"}
    missing = score_body(row)
    del missing["wx_visib"]
    detail = client.post("/score", json=missing).json()["detail"]
    assert detail[0]["loc"] == ["body", "wx_visib"]


def test_docs_work_offline(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        assert not re.search(r"https?://", html), f"{page} loads something from the internet"
        for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/score", "/health", "/ready", "/model"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["ScoreRequest"]["required"] == INPUT_COLUMNS


def test_every_answer_is_logged_and_shutdown_flushes(service, warehouse_settings, warehouse_engine, offline, body_of):
    ids = []
    with TestClient(create_app(service, warehouse_settings)) as c:
        for i in range(5):
            ids.append(c.post("/predict", json=body_of(offline.iloc[i])).json()["request_id"])
        ids.append(c.post("/score", json=score_body(offline.iloc[0])).json()["request_id"])
        batch = c.post("/predict/batch", json={"flights": [body_of(offline.iloc[i]) for i in range(2)]}).json()
    with warehouse_engine.connect() as conn:
        rows = pd.read_sql(sa.select(prediction_log).where(prediction_log.c.request_id.in_([*ids, batch["request_id"]])), conn)
    assert len(rows) == 8
    assert sorted(rows["route"].value_counts().items()) == [("/predict", 5), ("/predict/batch", 2), ("/score", 1)]
    first = rows.set_index("request_id").loc[ids[0]]
    assert first["flight_id"] == offline["flight_id"].iloc[0] and first["model_version"] == "7"
    logged = json.loads(first["features"])
    assert list(logged) == INPUT_COLUMNS
    assert np.isclose(logged["distance"], offline["distance"].iloc[0])
    assert isinstance(json.loads(first["flags"]), list)
    assert rows["probability"].between(0, 1).all() and (rows["decision"] == (rows["probability"] >= rows["threshold"])).all()


def test_an_empty_warehouse_gets_a_503_that_says_what_to_load(service, offline, body_of, tmp_path):
    """A warehouse that answers but has no flights loaded is a missing service, not a server error."""
    settings = override(get_settings(), database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(service, settings)) as c:
        response = c.post("/predict", json=body_of(offline.iloc[0]))
    assert response.status_code == 503, response.text
    assert "python -m mlsys.serve.champion" in response.json()["detail"]
