"""The service as a process: start-up with or without its back ends, and shutdown that loses no log row."""

from __future__ import annotations

import json
import signal
import socket

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mlsys import features
from mlsys.config import load_settings, override
from mlsys.logger import logger
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve import champion
from mlsys.serve.app import create_app
from mlsys.serve.prediction_log import PredictionLog, prediction_log

N_SCORE, N_PREDICT = 150, 10


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    table = features.feature_table()
    return table[table["split"] == "test"].sample(N_SCORE, random_state=11).reset_index(drop=True)


def score_body(row: pd.Series) -> dict:
    return {c: (None if pd.isna(row[c]) else (str(row[c]) if isinstance(row[c], str) else float(row[c]))) for c in INPUT_COLUMNS}


def logged(engine: sa.Engine, request_ids: list[str]) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.select(prediction_log).where(prediction_log.c.request_id.in_(request_ids)), conn)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sigterm_writes_every_queued_row(server_class, registry_env, warehouse_settings, warehouse_engine, flights, body_of, tmp_path):
    env = {
        **registry_env,
        "DATABASE_URL": warehouse_settings.database_url,
        # nothing is written before shutdown: every row below must come from the flush on SIGTERM
        "MLSYS_PREDICTION_LOG_ROWS": "1000000",
        "MLSYS_PREDICTION_LOG_MS": "3600000",
        "MLSYS_LOG_LEVEL": "INFO",  # the shutdown lines below are INFO
    }
    server = server_class(env, tmp_path / "service.log")
    try:
        server.wait_until_up()
        status, body = server.get("/ready")
        assert status == 200, body
        model = json.loads(server.get("/model")[1])
        assert (model["version"], model["alias"], model["threshold"], model["source"]) == ("1", "champion", 0.5, "registry")
        assert model["metrics"]["test_roc_auc"] == 0.7 and model["lean"] is True
        ids = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _, row in flights.iterrows():
                ids.append(client.post("/score", json=score_body(row)).json()["request_id"])
            for _, row in flights.head(N_PREDICT).iterrows():
                answer = client.post("/predict", json=body_of(row)).json()
                assert answer["threshold"] == 0.5 and answer["model_version"] == "1"
                ids.append(answer["request_id"])
        assert len(logged(warehouse_engine, ids)) == 0  # still queued
        # uvicorn shuts down gracefully, then re-raises the signal: exit status "killed by SIGTERM"
        assert server.stop() == -signal.SIGTERM
    finally:
        server.kill()
    rows = logged(warehouse_engine, ids)
    assert len(rows) == N_SCORE + N_PREDICT
    assert set(rows["request_id"]) == set(ids)
    text = server.log.read_text()
    assert "Application shutdown complete" in text and f"{N_SCORE + N_PREDICT} rows written, 0 dropped" in text


def test_log_batches_rows_and_keeps_them_while_the_database_is_down(warehouse_engine):
    down = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x", connect_args={"connect_timeout": 1})
    log = PredictionLog(down, batch_rows=50, interval_ms=50)
    log.retry_seconds = 0.1
    log.start()
    base = {"request_id": "x", "item": 0, "logged_at": pd.Timestamp("2026-01-01").to_pydatetime(), "route": "/score",
            "model_name": "m", "features": "{}", "probability": 0.5, "decision": True, "threshold": 0.5, "flags": "[]", "latency_ms": 1.0}
    ids = [f"down-{i}" for i in range(120)]
    for i, request_id in enumerate(ids):
        # rows name different columns (some with a flight, some without): one executemany takes them all
        log.write({**base, "request_id": request_id, **({"flight": i} if i % 2 else {})})
    log.engine = warehouse_engine  # the database comes back
    log.close()
    assert (log.written, log.dropped) == (120, 0)
    assert len(logged(warehouse_engine, ids)) == 120


def test_unreachable_registry_and_warehouse_say_what_to_start(warehouse_settings):
    settings = override(
        warehouse_settings,
        mlflow_tracking_uri="http://127.0.0.1:9",
        database_url=f"postgresql+psycopg://postgres:secret@127.0.0.1:{closed_port()}/warehouse",
        serve_fallback=False,
    )
    app = create_app(settings=settings)
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="ERROR")
    try:
        with TestClient(app) as client:
            assert client.get("/health").status_code == 200
            ready = client.get("/ready")
            assert ready.status_code == 503
            body = ready.json()
            assert body["ready"] is False and body["missing"] == ["model", "warehouse"]
            assert "make up" in body["detail"]["model"] and "127.0.0.1:9" in body["detail"]["model"]
            assert "start PostgreSQL" in body["detail"]["warehouse"] and "secret" not in body["detail"]["warehouse"]
            refused = client.post("/score", json={c: None for c in INPUT_COLUMNS})
            assert refused.status_code == 503 and "make up" in refused.json()["detail"]
    finally:
        logger.remove(sink)
    text = "\n".join(messages)
    assert "MLflow tracking server http://127.0.0.1:9" in text and "start PostgreSQL" in text


def test_fallback_answers_when_no_model_loads_and_says_so(warehouse_settings, flights, body_of):
    settings = override(warehouse_settings, mlflow_tracking_uri="http://127.0.0.1:9", serve_fallback=True)
    with TestClient(create_app(settings=settings)) as client:
        ready = client.get("/ready").json()
        assert ready["missing"] == ["model"] and ready["warehouse"] is True
        for answer in (client.post("/score", json=score_body(flights.iloc[0])).json(), client.post("/predict", json=body_of(flights.iloc[1])).json()):
            assert "fallback" in answer["flags"] and answer["model_name"] == "heuristic-baseline"
            assert answer["threshold"] == 0.25 and 0 <= answer["probability"] <= 1
        assert client.get("/model").json()["source"] == "fallback"


def test_registry_without_the_alias_names_the_command_that_registers_a_champion(warehouse_settings, registry_env):
    settings = override(
        warehouse_settings, mlflow_tracking_uri=registry_env["MLFLOW_TRACKING_URI"],
        mlflow_artifact_root=registry_env["MLSYS_ARTIFACT_ROOT"], champion_alias="no-such-alias", serve_fallback=False,
    )
    with TestClient(create_app(settings=settings)) as client:
        detail = client.get("/ready").json()["detail"]["model"]
    assert "python -m mlsys.serve.champion" in detail


def test_champion_bootstrap_keeps_an_existing_champion(registry_env):
    settings = load_settings(environ=registry_env)
    assert champion.ensure_champion(settings) == "1"
