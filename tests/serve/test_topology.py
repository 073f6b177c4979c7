"""The docker/ topology, natively: PostgreSQL, `mlflow server` on it, and the service pointed at both.

There is no Docker engine on the course machines, so this brings up what `docker/compose.yml`
describes as processes: a fresh database for MLflow and one for the warehouse on the PostgreSQL at
DATABASE_URL_TEST, an `mlflow server` on the first, the warehouse loaded into the second, a
champion registered through the server, and the service (uvicorn) started with only URLs in its
environment. Predictions must land in PostgreSQL's `prediction_log`. Fails, never skips, in CI.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from mlsys import features, warehouse
from mlsys.config import load_settings
from mlsys.serve.prediction_log import prediction_log

pytestmark = pytest.mark.postgres

ADMIN_URL = os.environ.get("DATABASE_URL_TEST", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START_TIMEOUT_S = 240
MONTHS = [11]
N_PREDICT = 5


def _admin_engine() -> sa.Engine:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI at {ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL} (start it, or set DATABASE_URL_TEST)")
    return engine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """Two fresh databases: `mlflow` (tracking + registry) and `warehouse`; dropped afterwards."""
    admin = _admin_engine()
    names = {"mlflow": f"mlsys_serve_mlflow_{os.getpid()}", "warehouse": f"mlsys_serve_wh_{os.getpid()}"}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield {role: admin.url.set(database=name).render_as_string(hide_password=False) for role, name in names.items()}
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def mlflow_server(databases, tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on the PostgreSQL database, serving artifacts itself (as docker/compose.yml runs it)."""
    log = tmp_path_factory.mktemp("topology-mlflow") / "mlflow.log"
    number = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(number), "--workers", "1",
         "--backend-store-uri", databases["mlflow"], "--serve-artifacts", "--artifacts-destination", str(log.parent / "artifacts")],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{number}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_service_on_postgres_and_mlflow_server(databases, mlflow_server, server_class, register_champion, small_model, splits, body_of, tmp_path):
    env = {"MLFLOW_TRACKING_URI": mlflow_server, "DATABASE_URL": databases["warehouse"]}
    settings = load_settings(environ={**os.environ, **env})
    eng = warehouse.engine(settings)
    try:
        warehouse.load_warehouse(eng, settings, months=MONTHS)
        version = register_champion(small_model, settings, splits["test"], threshold=0.4)

        table = features.feature_table()
        flights = table[(table["split"] == "test") & (table["sched_dep_local"].dt.month.isin(MONTHS))].sample(N_PREDICT, random_state=5)
        service = server_class({**env, "MLSYS_PREDICTION_LOG_MS": "50", "MLSYS_LOG_LEVEL": "INFO"}, tmp_path / "service.log")
        try:
            service.wait_until_up()
            status, body = service.get("/ready")
            assert status == 200, body
            model = json.loads(service.get("/model")[1])
            assert (model["version"], model["threshold"], model["source"]) == (version, 0.4, "registry")
            assert model["uri"] == "models:/flight-delay@champion"
            ids = []
            with httpx.Client(base_url=service.url, timeout=60) as client:
                for _, row in flights.iterrows():
                    answer = client.post("/predict", json=body_of(row))
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["flight_id"] == int(row["flight_id"])
                    ids.append(answer.json()["request_id"])
            service.stop()
        finally:
            service.kill()
        with eng.connect() as conn:
            rows = pd.read_sql(sa.select(prediction_log).where(prediction_log.c.request_id.in_(ids)), conn)
            dialect = conn.dialect.name
        assert dialect == "postgresql"
        assert len(rows) == N_PREDICT and set(rows["model_version"]) == {version}
        assert sorted(rows["flight_id"]) == sorted(flights["flight_id"].tolist())
    finally:
        eng.dispose()
