"""The course switches from the embedded store to an MLflow server on Postgres by URL alone.

Starts a real `mlflow server` (the process the docker/ stack runs) on a fresh Postgres database,
points `MLFLOW_TRACKING_URI` at it, and checks runs, artifacts and the registry alias the
prediction service will load. Needs PostgreSQL at DATABASE_URL_TEST (127.0.0.1:5432 by default);
it fails rather than skips when CI is set.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from mlsys import tracking
from mlsys.config import load_settings

pytestmark = pytest.mark.postgres

ADMIN_URL = os.environ.get("DATABASE_URL_TEST", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START_TIMEOUT_S = 240  # a loaded 2-core machine needs far more than the usual ~7 s


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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    engine = _admin_engine()
    database = f"mlsys_tracking_{os.getpid()}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    backend = engine.url.set(database=database).render_as_string(hide_password=False)
    port = _free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    artifacts = log.parent / "artifacts"
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", backend, "--serve-artifacts", "--artifacts-destination", str(artifacts)],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start:\n{Path(log).read_text()[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        engine.dispose()


def test_runs_artifacts_and_champion_alias_on_the_server(server: str, tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={"MLFLOW_TRACKING_URI": server})
    assert not settings.tracking_is_local
    X = pd.DataFrame({"x": np.linspace(-1, 1, 40)})
    y = (X["x"] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    with tracking.run("server-smoke", settings) as active:
        mlflow.log_metric("accuracy", float(model.score(X, y)))
        info = tracking.log_sklearn_model(model, X.head(3))
    assert mlflow.get_tracking_uri() == server
    assert mlflow.get_run(active.info.run_id).data.metrics["accuracy"] == 1.0
    # artifacts are proxied by the server (mlflow-artifacts:), not written to a local path
    assert mlflow.get_run(active.info.run_id).info.artifact_uri.startswith("mlflow-artifacts:")

    version = tracking.register(info.model_uri, settings, alias=settings.champion_alias)
    loaded = tracking.load_champion(settings)
    assert version == "1"
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
