"""Servers the tests talk to: PostgreSQL, Redis and a real `mlflow server`, in one place.

Fixtures, not importable helpers (tests run with `--import-mode=importlib`):

- `postgres_admin`: an AUTOCOMMIT engine at DATABASE_URL_TEST (default: the trust-auth server on
  127.0.0.1:5432, database `test`).
- `fresh_database`: `with fresh_database("prefix") as url:` a new, empty database, dropped afterwards.
- `mlflow_server`: `with mlflow_server(backend_uri, workdir) as url:` the process `docker/compose.yml`
  runs as its `mlflow` service, natively on loopback, serving artifacts itself.
- `redis_server_url`: the Redis server at REDIS_URL_TEST (default redis://127.0.0.1:6379/0), pinged.

A missing PostgreSQL or Redis fails the test when CI is set (CI must exercise them) and skips it
with a message saying what to start otherwise.

Also, for every test module: MLflow's process-wide state is reset after it (see
`_mlflow_state_per_module`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import mlflow
import mlflow.tracking.fluent
import pytest
import sqlalchemy as sa

from mlsys.config import in_ci, mask_password

POSTGRES_URL = os.environ.get("DATABASE_URL_TEST", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL_TEST", "redis://127.0.0.1:6379/0")
MLFLOW_START_TIMEOUT_S = 240  # a loaded 2-core machine needs far more than the usual ~7 s
MLFLOW_STOP_TIMEOUT_S = 30


def missing_service(what: str, how_to_start: str) -> None:
    """Fail in CI, skip elsewhere, saying what to start."""
    if in_ci():
        pytest.fail(f"required in CI: {what}; {how_to_start}")
    pytest.skip(f"{what}; {how_to_start}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """An AUTOCOMMIT engine on the PostgreSQL at DATABASE_URL_TEST (creates and drops databases)."""
    engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        missing_service(
            f"PostgreSQL not reachable at {engine.url.render_as_string(hide_password=True)} ({type(exc).__name__})",
            "start PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), or set DATABASE_URL_TEST",
        )
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def fresh_database(postgres_admin: sa.Engine) -> Callable[[str], AbstractContextManager[str]]:
    """`with fresh_database("mlsys_x") as url:` a new database named `<prefix>_<random>`, dropped afterwards."""

    @contextmanager
    def database(prefix: str) -> Iterator[str]:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with postgres_admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
        finally:
            with postgres_admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return database


@contextmanager
def running_mlflow_server(backend_uri: str, workdir: Path, workers: int = 1) -> Iterator[str]:
    """`mlflow server` on `backend_uri` at a free loopback port, artifacts under `workdir`; its URL.

    Started in its own process group: on exit SIGTERM goes to the CLI and its uvicorn workers, then
    SIGKILL if they outlive `MLFLOW_STOP_TIMEOUT_S`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--backend-store-uri", backend_uri, "--serve-artifacts", "--artifacts-destination", str(workdir / "artifacts")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + MLFLOW_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start; {log} ends:\n{log.read_text(errors='replace')[-2000:]}")
                time.sleep(1)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=MLFLOW_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
        try:  # uvicorn workers may outlive the CLI that started them
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()


@pytest.fixture(scope="session")
def mlflow_server() -> Callable[..., AbstractContextManager[str]]:
    """`with mlflow_server(backend_uri, workdir) as url:` (see `running_mlflow_server`)."""
    return running_mlflow_server


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The URL of the Redis server at REDIS_URL_TEST, after a PING."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing_service(
            f"Redis not reachable at {mask_password(REDIS_URL)} ({type(exc).__name__})",
            "start redis-server on 127.0.0.1:6379 (apt install redis-server, or `make up` for the docker/ stack), or set REDIS_URL_TEST",
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(autouse=True, scope="module")
def _mlflow_state_per_module() -> Iterator[None]:
    """Forget the active MLflow experiment and run when a test module ends.

    `mlflow.set_experiment` keeps the experiment in a module global and in MLFLOW_EXPERIMENT_ID
    (which subprocesses inherit). A later module that points MLflow at a new store would otherwise
    create its runs under an experiment id that store does not have ("No Experiment with id=1").
    """
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.tracking.fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
