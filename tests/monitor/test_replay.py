"""The replay writes one row per decision to prediction_log, stamped with the simulated clock."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlsys import features, warehouse
from mlsys.baselines import HeuristicBaseline
from mlsys.config import get_settings, override
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve.model import ModelCard, ModelService
from mlsys.monitor import replay

PER_DAY = 15


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return features.feature_table()


@pytest.fixture(scope="module")
def service(table: pd.DataFrame) -> ModelService:
    train = table[table["split"] == "train"].sample(5_000, random_state=1)
    model = HeuristicBaseline().fit(train[INPUT_COLUMNS], train["late"].to_numpy())
    return ModelService(model, ModelCard(name="heuristic", version="3"))


@pytest.fixture
def engine(tmp_path):
    eng = warehouse.engine(override(get_settings(), database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    yield eng
    eng.dispose()


def test_the_frame_samples_at_most_n_flights_per_decision_day_reproducibly(table: pd.DataFrame) -> None:
    frame = replay.replay_frame(table, "2013-12-01", "2013-12-04", flights_per_day=PER_DAY, seed=5)
    assert frame.groupby("decision_day").size().max() == PER_DAY
    assert frame["decision_time_utc"].is_monotonic_increasing
    assert (frame["sched_dep_local"] >= pd.Timestamp("2013-12-01")).all() and (frame["sched_dep_local"] < pd.Timestamp("2013-12-04")).all()
    again = replay.replay_frame(table, "2013-12-01", "2013-12-04", flights_per_day=PER_DAY, seed=5)
    assert again["flight_id"].tolist() == frame["flight_id"].tolist()
    other = replay.replay_frame(table, "2013-12-01", "2013-12-04", flights_per_day=PER_DAY, seed=6)
    assert other["flight_id"].tolist() != frame["flight_id"].tolist()
    with pytest.raises(ValueError, match="no flights"):
        replay.replay_frame(table, "2015-01-01", "2015-02-01")


def test_replay_writes_the_expected_rows(table: pd.DataFrame, service: ModelService, engine) -> None:
    frame = replay.replay_frame(table, "2013-12-01", "2013-12-04", flights_per_day=PER_DAY)
    result = replay.replay(service, engine, frame, progress=False)
    assert result.rows == len(frame) and result.days == frame["decision_day"].nunique()
    log = replay.read_log(engine, with_features=True)
    assert len(log) == len(frame)
    assert sorted(log["flight_id"]) == sorted(frame["flight_id"])
    by_flight = log.set_index("flight_id").loc[frame["flight_id"]]
    expected = service.predict_proba(frame[INPUT_COLUMNS])
    assert np.allclose(by_flight["probability"].to_numpy(), expected)
    assert (by_flight["decision"].to_numpy() == (expected >= service.threshold)).all()
    # the simulated clock: logged at the decision time, 2 h before the scheduled departure
    assert (by_flight["logged_at"].to_numpy() == frame["decision_time_utc"].to_numpy()).all()
    assert (by_flight["decision_time"] + features.DECISION_LEAD == frame["sched_dep_utc"].to_numpy()).all()
    assert set(log["route"]) == {replay.REPLAY_ROUTE} and set(log["model_version"]) == {"3"}
    assert (by_flight["wx_temp"].to_numpy(dtype="float64") == frame["wx_temp"].to_numpy(dtype="float64")).sum() == frame["wx_temp"].notna().sum()
    raw = replay.read_log(engine)
    assert "features" not in raw and "wx_temp" not in raw


def test_a_rerun_replaces_its_rows_and_another_route_adds_its_own(table: pd.DataFrame, service: ModelService, engine) -> None:
    frame = replay.replay_frame(table, "2013-12-01", "2013-12-03", flights_per_day=5)
    replay.replay(service, engine, frame, progress=False)
    replay.replay(service, engine, frame, progress=False)
    assert len(replay.read_log(engine)) == len(frame)
    replay.replay(service, engine, frame, route="/replay/shadow", progress=False)
    assert len(replay.read_log(engine, route=None)) == 2 * len(frame)
    shadow = replay.read_log(engine, route="/replay/shadow")
    assert len(shadow) == len(frame)
    assert shadow["request_id"].is_unique and not set(shadow["request_id"]) & set(replay.read_log(engine)["request_id"])


def test_logged_features_are_json_with_nulls_for_missing_values(table: pd.DataFrame, service: ModelService) -> None:
    frame = replay.replay_frame(table, "2013-12-01", "2013-12-02")
    part = frame[frame["tail_prev_dep_delay"].isna()].head(3)
    rows = replay.log_rows(service, "/replay", part, service.predict_proba(part[INPUT_COLUMNS]), 0.1)
    values = json.loads(rows[0]["features"])
    assert values["tail_prev_dep_delay"] is None and list(values) == service.columns
