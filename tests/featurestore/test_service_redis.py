"""The service reads its departure aggregates from Redis with MLSYS_ONLINE_FEATURES=redis.

A warehouse holding November (loaded from the raw files), its departures published to the stream
by the command-line path (`offline.warehouse_flights` -> `OnlineStore.publish`), and requests for
flights of 10-12 November: the Redis-backed features equal the warehouse-backed ones, which equal
the offline table (tests/serve/test_feature_parity.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlsys import warehouse
from mlsys.config import get_settings, override
from mlsys.featurestore import offline, online
from mlsys.serve.app import create_app
from mlsys.serve.features import OnlineFeatures
from mlsys.serve.lesson import flight_query
from mlsys.serve.model import heuristic_fallback


@pytest.fixture(scope="module")
def november(tmp_path_factory):
    settings = override(get_settings(), database_url=f"sqlite:///{tmp_path_factory.mktemp('wh') / 'warehouse.db'}")
    eng = warehouse.engine(settings)
    warehouse.load_warehouse(eng, settings, months=[11])
    yield settings, eng
    eng.dispose()


def test_redis_features_equal_the_warehouse_features(november, table, tmp_path, store_factory):
    settings, eng = november
    start, end = pd.Timestamp("2013-11-01", tz="UTC"), pd.Timestamp("2013-12-01", tz="UTC")
    sample = table.loc[(table["decision_time_utc"] >= pd.Timestamp("2013-11-10", tz="UTC")) & (table["decision_time_utc"] < pd.Timestamp("2013-11-12", tz="UTC"))]
    sample = sample.sample(40, random_state=1).set_index("flight_id")
    queries = [flight_query(row) for _, row in sample.iterrows()]
    with store_factory("embedded", tmp_path) as store:
        store.publish(offline.departure_events(offline.warehouse_flights(eng, start, end)))
        from_redis = online.RedisOnlineFeatures(eng, store).compute(queries)  # consumes the stream itself
    from_warehouse = OnlineFeatures(eng).compute(queries)
    got = pd.DataFrame([r.values for r in from_redis], index=sample.index)[offline.ONLINE_COLUMNS].astype("float64")
    want = pd.DataFrame([r.values for r in from_warehouse], index=sample.index)[offline.ONLINE_COLUMNS].astype("float64")
    assert np.array_equal(got.to_numpy(), want.to_numpy(), equal_nan=True)
    assert np.array_equal(got.to_numpy(), sample[offline.ONLINE_COLUMNS].to_numpy(dtype="float64"), equal_nan=True)
    assert got["origin_departures_3h"].gt(0).any()


def test_the_service_answers_503_naming_redis_url_when_redis_is_down(november):
    settings, _ = november
    settings = override(settings, online_features="redis", redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(heuristic_fallback(settings), settings)) as client:
        body = {"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH", "scheduled_departure": "2013-11-10T17:15:00"}
        answer = client.post("/predict", json=body)
    assert answer.status_code == 503
    assert "REDIS_URL" in answer.json()["detail"]
