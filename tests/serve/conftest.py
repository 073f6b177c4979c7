"""Fixtures of the service tests: a warehouse with October–December, a small calibrated model, an app.

Session scope throughout, so the whole folder loads the warehouse and fits a model once. The
warehouse holds the test split's months (November–December) and October, which the first days of
November look back into. The model is the champion's recipe made small (40 trees, 20,000 training
rows), so the lean path sees the structure it must recognise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from mlsys import evaluate, features, tracking, warehouse
from mlsys.config import Settings, get_settings, load_settings, override
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.promote import THRESHOLD_TAG
from mlsys.serve.app import create_app
from mlsys.serve.model import ModelCard, ModelService

SEED = 42
MONTHS = [10, 11, 12]
START_TIMEOUT_S = 180  # a busy 2-core machine takes far longer than the usual few seconds


@pytest.fixture(scope="session")
def splits() -> dict[str, pd.DataFrame]:
    return features.load_splits(fast=True, seed=SEED)


@pytest.fixture(scope="session")
def small_model(splits: dict[str, pd.DataFrame]) -> Any:
    """`promote.fit_champion`'s structure (calibrated, monotone LightGBM pipeline), 40 trees."""
    train = splits["train"].sample(20_000, random_state=SEED)
    valid = splits["valid"].sample(5_000, random_state=SEED)
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, n_estimators=40, n_jobs=1), train)
    return evaluate.calibrate(model, valid, "sigmoid")


@pytest.fixture(scope="session")
def warehouse_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose warehouse is a SQLite file with October–December loaded."""
    path = tmp_path_factory.mktemp("serve-warehouse") / "warehouse.db"
    settings = override(get_settings(), database_url=f"sqlite:///{path}")
    eng = warehouse.engine(settings)
    warehouse.load_warehouse(eng, settings, months=MONTHS)
    eng.dispose()
    return settings


@pytest.fixture(scope="session")
def warehouse_engine(warehouse_settings: Settings) -> Iterator[sa.Engine]:
    eng = warehouse.engine(warehouse_settings)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def service(small_model: Any) -> ModelService:
    return ModelService(small_model, ModelCard(name="small-champion", version="7"))


@pytest.fixture(scope="module")
def client(service: ModelService, warehouse_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(service, warehouse_settings)) as c:
        yield c


def register(model: Any, settings: Settings, rows: pd.DataFrame, threshold: float = 0.5) -> str:
    """Log `model`, register it as the champion of `settings`' registry, tag its threshold; the version."""
    with tracking.run("serve-test-champion", settings):
        mlflow.log_metric("test_roc_auc", 0.7)
        info = tracking.log_sklearn_model(model, rows[INPUT_COLUMNS].head(5))
    version = tracking.register(info.model_uri, settings, alias=settings.champion_alias)
    MlflowClient().set_model_version_tag(settings.registered_model_name, version, THRESHOLD_TAG, str(threshold))
    return version


@pytest.fixture(scope="session")
def registry_env(tmp_path_factory: pytest.TempPathFactory, small_model: Any, splits: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Environment of a registry (SQLite store of its own) whose champion is the small model, threshold 0.5."""
    store = tmp_path_factory.mktemp("serve-registry")
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLSYS_ARTIFACT_ROOT": (store / "mlruns").as_uri()}
    settings = load_settings(environ={**os.environ, **env})
    register(small_model, settings, splits["test"])
    return env


@pytest.fixture(scope="session")
def register_champion() -> Any:
    """`register`, for test modules."""
    return register


@pytest.fixture(scope="session")
def body_of() -> Any:
    """`flight_body`, for test modules (conftest helpers are not importable under importlib mode)."""
    return flight_body


@pytest.fixture(scope="session")
def server_class() -> type[Server]:
    """The `Server` helper, for test modules."""
    return Server


def flight_body(row: pd.Series) -> dict[str, Any]:
    """A `POST /predict` body for a feature-table row (scheduled departure in New York time)."""
    tail = row["tailnum"]
    return {
        "carrier": str(row["carrier"]),
        "flight": int(row["flight"]),
        "origin": str(row["origin"]),
        "dest": str(row["dest"]),
        "scheduled_departure": row["sched_dep_local"].isoformat(),
        "tailnum": None if pd.isna(tail) else str(tail),
    }


# --------------------------------------------------------------------------- a real server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`uvicorn --factory mlsys.serve.app:create_app` in a subprocess on 127.0.0.1."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "mlsys.serve.app:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"],
            env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_until_up(self) -> None:
        """Until `/health` answers (fails the test with the server's log if it dies or takes too long)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    pytest.fail(f"the service did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.5)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (what Docker and systemd send), then wait; returns the exit code."""
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the service did not stop on SIGTERM:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
