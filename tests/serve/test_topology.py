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
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from mlsys import features, warehouse
from mlsys.config import load_settings
from mlsys.serve.prediction_log import prediction_log

pytestmark = pytest.mark.postgres

MONTHS = [11]
N_PREDICT = 5


@pytest.fixture(scope="module")
def databases(fresh_database) -> Iterator[dict[str, str]]:
    """Two fresh databases, as docker/postgres creates them: `mlflow` (tracking + registry) and `warehouse`."""
    with fresh_database("mlsys_serve_mlflow") as mlflow_db, fresh_database("mlsys_serve_wh") as warehouse_db:
        yield {"mlflow": mlflow_db, "warehouse": warehouse_db}


@pytest.fixture(scope="module")
def tracking_server(databases, mlflow_server, tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on the PostgreSQL database, serving artifacts itself (as docker/compose.yml runs it)."""
    with mlflow_server(databases["mlflow"], tmp_path_factory.mktemp("topology-mlflow")) as url:
        yield url


def test_service_on_postgres_and_mlflow_server(databases, tracking_server, server_class, register_champion, small_model, splits, body_of, tmp_path):
    env = {"MLFLOW_TRACKING_URI": tracking_server, "DATABASE_URL": databases["warehouse"]}
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
