"""The solutions to lesson 10's exercises give the right answers (`02-notebooks/solutions/10_infrastructure.py`).

Exercise 1 is checked against the offline window code (`features._window_stats`) on a replayed
week; exercise 2 against versions registered with known tags; exercise 3 against a clean consumer.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys import data, features
from mlsys.featurestore import connection, offline, online

START, END = pd.Timestamp("2013-11-01", tz="UTC"), pd.Timestamp("2013-11-04", tz="UTC")


@pytest.fixture(scope="module")
def week() -> tuple[pd.DataFrame, pd.DataFrame]:
    flights = data.load_flights()
    part = flights.loc[(flights["actual_dep_utc"] >= START) & (flights["actual_dep_utc"] < END)]
    return part, offline.departure_events(part)


def _store(tmp_path, name: str = "s") -> online.OnlineStore:
    return online.OnlineStore(connection.client(url="", db_path=tmp_path / f"{name}.rdb"), prefix="ex10:")


def test_origin_delayed_3h_equals_the_offline_window(solutions, week, tmp_path):
    flights, events = week
    table = features.feature_table()
    sample = offline.consistency_sample(table, START, END, 300)
    store = _store(tmp_path)
    store.publish(events)
    store.consume()
    got = solutions.origin_delayed_3h(store, sample)
    departed = flights.loc[flights["actual_dep_utc"].notna(), ["origin", "carrier", "dest", "actual_dep_utc", "dep_delay"]]
    want = features._window_stats(departed, "origin", sample[["origin", "carrier", "dest", "decision_time_utc"]], pd.Timedelta(hours=3))["n_delayed"]
    assert np.array_equal(got.to_numpy(), want.to_numpy())
    assert got.gt(0).any()
    # the count is a part of the departures in the same window, which the store also serves
    assert (got <= store.features(sample)["origin_departures_3h"]).all()


def test_version_diff_names_what_changed(solutions, tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    client.create_registered_model("m")
    versions = []
    for sha, trees in (("aaa", "100"), ("bbb", "100")):
        with mlflow.start_run() as run:
            mlflow.log_text("x", "model/x.txt")
        v = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id).version
        for key, value in {"lineage.file.weather.csv": sha, "lineage.commit": "c1", "param.n_estimators": trees, "lineage.run_id": run.info.run_id}.items():
            client.set_model_version_tag("m", v, key, value)
        versions.append(str(v))
    diff = solutions.version_diff("m", *versions)
    assert list(diff.index) == ["lineage.file.weather.csv"]
    assert diff.iloc[0].tolist() == ["aaa", "bbb"]


def test_recover_pending_folds_in_what_a_crashed_consumer_read(solutions, week, tmp_path):
    _, events = week
    events = events.head(500)
    store = _store(tmp_path, "crash")
    store.publish(events)
    store._ensure_group()
    store.conn.xreadgroup(online.GROUP, "crashed", {store.stream: ">"}, count=200)  # read, never acknowledged
    assert store.consume() == 300  # the others go to the live consumer
    assert store.conn.xpending(store.stream, online.GROUP)["pending"] == 200
    assert solutions.recover_pending(store, "crashed") == 200
    assert store.conn.xpending(store.stream, online.GROUP)["pending"] == 0

    clean = online.OnlineStore(connection.client(url="", db_path=tmp_path / "clean.rdb"), prefix="ex10:")
    clean.publish(events)
    clean.consume()
    probe = pd.DataFrame(
        {"origin": ["JFK", "LGA", "EWR"], "carrier": ["B6", "DL", "UA"], "dest": ["BOS", "ATL", "ORD"], "tailnum": [None] * 3,
         "decision_time_utc": [events["actual_dep_utc"].iloc[-1] + pd.Timedelta(minutes=1)] * 3}
    )
    assert store.features(probe).equals(clean.features(probe))
