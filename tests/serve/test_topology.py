"""The docker/ topology, natively: PostgreSQL, `mlflow server` on it, Redis, and the service on all three.

There is no Docker engine on the course machines, so this brings up what `docker/compose.yml`
describes as processes: a fresh database for MLflow and one for the warehouse on the PostgreSQL at
DATABASE_URL_TEST, an `mlflow server` on the first, the warehouse loaded into the second, a
champion registered through the server, the departure stream in the Redis server at REDIS_URL_TEST
(a database of its own), and the service (uvicorn) started with only URLs in its environment and
`MLSYS_ONLINE_FEATURES=redis`, as compose starts it.

The departures reach Redis two ways: the first half of November through the command the Compose
README gives (`python -m mlsys.featurestore publish`), the second half appended to the stream and
left unconsumed, so the service must fold them in itself. Its answers must use Redis's aggregates
(equal to the offline feature table) and land in PostgreSQL's `prediction_log`. Fails, never skips,
in CI; elsewhere a missing PostgreSQL or Redis skips it saying what to start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mlsys import features, warehouse
from mlsys.config import load_settings
from mlsys.featurestore import connection, offline, online
from mlsys.serve.prediction_log import prediction_log

pytestmark = pytest.mark.postgres

MONTHS = [11]
N_PREDICT = 8
#: Redis database of this test on the shared server (the feature-store tests use 15 under prefixes;
#: the service uses its fixed prefix `mlsys:`, so it gets a database to itself, emptied before and after)
REDIS_DB = 14
#: departures published by the CLI, then appended unconsumed (UTC, scheduled)
CLI_WINDOW = ("2013-11-01", "2013-11-15")
LATER_WINDOW = ("2013-11-15", "2013-12-01")


@pytest.fixture(scope="module")
def databases(fresh_database) -> Iterator[dict[str, str]]:
    """Two fresh databases, as docker/postgres creates them: `mlflow` (tracking + registry) and `warehouse`."""
    with fresh_database("mlsys_serve_mlflow") as mlflow_db, fresh_database("mlsys_serve_wh") as warehouse_db:
        yield {"mlflow": mlflow_db, "warehouse": warehouse_db}


@pytest.fixture(scope="module")
def redis_url(redis_server_url) -> Iterator[str]:
    """The Redis server's database `REDIS_DB`, without the service's keys before and after."""
    url = urlunsplit(urlsplit(redis_server_url)._replace(path=f"/{REDIS_DB}"))
    store = online.OnlineStore(connection.client(url=url))
    store.clear()
    try:
        yield url
    finally:
        store.clear()
        store.conn.close()


@pytest.fixture(scope="module")
def tracking_server(databases, mlflow_server, tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on the PostgreSQL database, serving artifacts itself (as docker/compose.yml runs it)."""
    with mlflow_server(databases["mlflow"], tmp_path_factory.mktemp("topology-mlflow")) as url:
        yield url


def test_service_on_postgres_mlflow_server_and_redis(redis_url, databases, tracking_server, server_class, register_champion, small_model, splits, body_of, tmp_path):
    env = {"MLFLOW_TRACKING_URI": tracking_server, "DATABASE_URL": databases["warehouse"], "REDIS_URL": redis_url}
    settings = load_settings(environ={**os.environ, **env})
    eng = warehouse.engine(settings)
    store = online.OnlineStore(connection.client(url=redis_url))
    try:
        warehouse.load_warehouse(eng, settings, months=MONTHS)
        version = register_champion(small_model, settings, splits["test"], threshold=0.4)

        # the Compose README's command, on the native servers
        start, end = CLI_WINDOW
        cli = subprocess.run([sys.executable, "-m", "mlsys.featurestore", "publish", "--start", start, "--end", end],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
        assert cli.returncode == 0, cli.stderr[-3000:]
        published = store.size()
        assert published["stream entries"] > 1000 and published["unconsumed"] == 0, published
        # later departures arrive while nobody consumes them: the service has to
        later = offline.departure_events(offline.warehouse_flights(eng, *(pd.Timestamp(t, tz="UTC") for t in LATER_WINDOW)))
        store.publish(later)
        assert store.size()["unconsumed"] == len(later) > 1000

        # flights whose every window (at most 24 h back) lies in the published events
        table = features.feature_table()
        # (a day's margin at each end: the warehouse holds November in New York time, the windows are UTC)
        flights = offline.consistency_sample(table, pd.Timestamp("2013-11-02", tz="UTC"), pd.Timestamp("2013-11-30", tz="UTC"), N_PREDICT, seed=5)
        assert (flights["decision_time_utc"] >= pd.Timestamp(LATER_WINDOW[0], tz="UTC")).any()
        service = server_class({**env, "MLSYS_ONLINE_FEATURES": "redis", "MLSYS_PREDICTION_LOG_MS": "50", "MLSYS_LOG_LEVEL": "INFO"}, tmp_path / "service.log")
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
        assert "feature store: Redis server at" in service.log.read_text()
        assert store.size()["unconsumed"] == 0, "the service did not fold the stream's new departures in"
        with eng.connect() as conn:
            rows = pd.read_sql(sa.select(prediction_log).where(prediction_log.c.request_id.in_(ids)), conn)
            dialect = conn.dialect.name
        assert dialect == "postgresql"
        assert len(rows) == N_PREDICT and set(rows["model_version"]) == {version}
        assert sorted(rows["flight_id"]) == sorted(flights["flight_id"].tolist())
        # the aggregates the model was given are Redis's, and equal the offline table's
        logged = pd.DataFrame([json.loads(text) for text in rows["features"]], index=rows["flight_id"].to_numpy())
        got = logged.loc[flights["flight_id"], offline.ONLINE_COLUMNS].astype("float64").to_numpy()
        want = flights[offline.ONLINE_COLUMNS].astype("float64").to_numpy()
        assert np.allclose(got, want, rtol=0, atol=1e-9, equal_nan=True), offline.compare(
            pd.DataFrame(got, columns=offline.ONLINE_COLUMNS), pd.DataFrame(want, columns=offline.ONLINE_COLUMNS))
    finally:
        store.conn.close()
        eng.dispose()
