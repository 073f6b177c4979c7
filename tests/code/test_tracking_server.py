"""The course switches from the embedded store to an MLflow server on Postgres by URL alone.

Starts a real `mlflow server` (the process the docker/ stack runs) on a fresh Postgres database,
points `MLFLOW_TRACKING_URI` at it, and checks runs, artifacts and the registry alias the
prediction service will load. Needs PostgreSQL at DATABASE_URL_TEST (127.0.0.1:5432 by default);
it fails rather than skips when CI is set. The server and database come from tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlsys import tracking
from mlsys.config import load_settings

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server(fresh_database: Callable, mlflow_server: Callable, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An `mlflow server` on a fresh PostgreSQL database (fixtures from tests/conftest.py)."""
    with fresh_database("mlsys_tracking") as backend, mlflow_server(backend, tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


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
