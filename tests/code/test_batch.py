"""Batch prediction on Dask: periods, scorers, the model shipped once per worker, Parquet and warehouse outputs."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from distributed import LocalCluster

from mlsys import batch, evaluate, features, warehouse
from mlsys.config import get_settings, override

PERIOD = "2013-11-01..2013-11-02"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return features.feature_table()


@pytest.fixture(scope="module")
def tiny_model(table: pd.DataFrame) -> Any:
    """The champion's structure (calibrated monotone LightGBM pipeline) with 20 trees, fitted on 4,000 flights."""
    train = table[table["split"] == "train"].sample(4_000, random_state=0)
    valid = table[table["split"] == "valid"].sample(2_000, random_state=0)
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=0, n_jobs=1, n_estimators=20), train)
    return evaluate.calibrate(model, valid, "sigmoid")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with batch.dask_client(workers=2) as c:
        yield c


def test_period_parse() -> None:
    assert batch.Period.parse("test") == batch.Period(label="test", split="test")
    one = batch.Period.parse("2013-11-01")
    assert (one.start, one.end, one.label) == (pd.Timestamp("2013-11-01").date(),) * 2 + ("2013-11-01",)
    assert batch.Period.parse(PERIOD).label == PERIOD
    assert batch.Period.parse("all").split is None


@pytest.mark.parametrize(("text", "message"), [("novembre", "use a split"), ("2013-11-05..2013-11-01", "ends")])
def test_period_parse_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        batch.Period.parse(text)


def test_period_rows_select_local_dates(table: pd.DataFrame) -> None:
    rows = batch.period_rows(PERIOD, table)
    chosen = table.set_index("flight_id").loc[rows["flight_id"], "sched_dep_local"]
    assert chosen.dt.strftime("%Y-%m-%d").isin(["2013-11-01", "2013-11-02"]).all()
    expected = table["sched_dep_local"].between("2013-11-01", "2013-11-02 23:59:59").sum()
    assert len(rows) == expected and list(rows.columns) == ["flight_id", *batch.INPUT_COLUMNS]
    assert len(batch.period_rows("test", table)) == (table["split"] == "test").sum()
    with pytest.raises(ValueError, match="no flights"):
        batch.period_rows("2014-01-01", table)


def test_scorers_agree_with_the_pipeline(table: pd.DataFrame, tiny_model: Any) -> None:
    rows = batch.period_rows(PERIOD, table)
    expected = tiny_model.predict_proba(rows[batch.INPUT_COLUMNS])[:, 1]
    for kind in ("pipeline", "lean"):
        scored = batch.score_frame(rows, batch.make_scorer(tiny_model, kind), threshold=0.3)
        np.testing.assert_allclose(scored["probability"], expected, rtol=0, atol=1e-9)
        assert (scored["decision"] == (scored["probability"] >= 0.3)).all()
    with pytest.raises(ValueError, match="unknown scorer"):
        batch.make_scorer(tiny_model, "gpu")


def test_dask_scores_like_pandas_and_ships_the_model_once_per_worker(table: pd.DataFrame, tiny_model: Any, client: Any) -> None:
    rows = batch.period_rows(PERIOD, table)
    name = batch.broadcast(client, tiny_model)
    try:
        holders = client.run(lambda dask_worker: name in dask_worker.plugins)
        scored = batch.score_dask(batch.distribute(client, rows, npartitions=12), name, 0.3)
        graph = dict(scored.__dask_graph__())
        result = scored.compute().sort_values("flight_id")
    finally:
        batch.release(client, name)
    assert list(holders.values()) == [True, True]
    # the tasks name the scorer; the model is not in them
    assert len(cloudpickle.dumps(graph)) < len(pickle.dumps(tiny_model)) / 4
    expected = batch.score_frame(rows, batch.make_scorer(tiny_model), 0.3).sort_values("flight_id")
    pd.testing.assert_frame_equal(result.reset_index(drop=True), expected.reset_index(drop=True))


def test_run_batch_writes_parquet_and_warehouse_idempotently(
    table: pd.DataFrame, tiny_model: Any, client: Any, tmp_path: Path
) -> None:
    model = batch.adhoc(tiny_model, threshold=0.3)
    first = batch.run_batch(PERIOD, model, client=client, output=tmp_path / "out", table=table, npartitions=4)
    again = batch.run_batch(PERIOD, model, client=client, output=tmp_path / "out", table=table, npartitions=3)
    n = len(batch.period_rows(PERIOD, table))
    assert first.rows == again.rows == first.warehouse_rows == again.warehouse_rows == n
    assert first.workers == 2
    parquet = pd.read_parquet(tmp_path / "out").sort_values("flight_id")
    assert len(parquet) == n and parquet["flight_id"].is_unique
    stored = batch.read_batch_predictions(warehouse.engine(), version=model.version, period=PERIOD)
    assert len(stored) == n and (stored["threshold"] == 0.3).all()
    np.testing.assert_allclose(stored["probability"].to_numpy(), parquet["probability"].to_numpy())
    assert stored["decision"].sum() == first.flagged == again.flagged


def test_remote_scheduler_by_address_with_no_code_change(table: pd.DataFrame, tiny_model: Any, tmp_path: Path) -> None:
    rows = batch.period_rows("2013-11-01", table)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        settings = override(get_settings(), dask_scheduler_address=cluster.scheduler_address)
        with batch.dask_client(settings) as remote:
            assert remote.scheduler.address == cluster.scheduler_address
            result = batch.run_batch("2013-11-01", batch.adhoc(tiny_model), settings, remote, table=table, output=tmp_path / "o", to_warehouse=False)
    assert result.rows == len(rows) and result.workers == 1


def test_unreachable_scheduler_says_what_to_start() -> None:
    settings = override(get_settings(), dask_scheduler_address="tcp://127.0.0.1:9")
    with pytest.raises(batch.SchedulerUnavailable, match="dask scheduler"), batch.dask_client(settings, timeout=1):
        pass


def test_write_warehouse_replaces_only_its_own_version_and_period() -> None:
    eng = warehouse.engine()
    scored = pd.DataFrame({"flight_id": [1, 2, 3], "probability": [0.1, 0.5, 0.9], "decision": [False, True, True]})
    when = pd.Timestamp("2013-12-01T06:00Z").to_pydatetime()
    nov, dec = batch.Period.parse("2013-11-01"), batch.Period.parse("2013-12-01")
    v1, v2 = batch.adhoc(object(), name="m", version="1"), batch.adhoc(object(), name="m", version="2")
    assert batch.write_warehouse(eng, scored, v1, nov, when) == 3
    assert batch.write_warehouse(eng, scored.iloc[:2], v2, nov, when) == 2
    assert batch.write_warehouse(eng, scored.iloc[:1], v1, dec, when) == 1
    assert batch.write_warehouse(eng, scored.iloc[1:], v1, nov, when) == 2  # rerun: replaces, never appends
    stored = batch.read_batch_predictions(eng)
    stored = stored[stored["model_name"] == "m"]
    counts = stored.groupby(["model_version", "period"]).size().to_dict()
    assert counts == {("1", "2013-11-01"): 2, ("1", "2013-12-01"): 1, ("2", "2013-11-01"): 2}
    assert stored["scored_at"].iloc[0] == pd.Timestamp("2013-12-01 06:00")
