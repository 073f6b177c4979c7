"""The solutions to lesson 07's exercises give the right answers (`02-notebooks/solutions/07_deployment.py`).

The service runs in process (`TestClient`) with an injected small model (the champion's recipe,
40 trees on 20,000 training flights) and a SQLite warehouse holding October–December; every answer
is checked against an independent computation (the online feature code and the model called
directly, numpy quantiles, the feature table) or a property a wrong answer would break.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mlsys import evaluate, features, warehouse
from mlsys.config import Settings, get_settings, override
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve import lesson
from mlsys.serve.app import create_app
from mlsys.serve.features import OnlineFeatures
from mlsys.serve.model import ModelCard, ModelService
from mlsys.serve.prediction_log import create_table, prediction_log

SEED = 42


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return features.feature_table()


@pytest.fixture(scope="module")
def service(table: pd.DataFrame) -> ModelService:
    """The champion's structure (monotone LightGBM pipeline), small: 40 trees on 20,000 training flights."""
    train = table[table["split"] == "train"].sample(20_000, random_state=SEED)
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, n_estimators=40, n_jobs=1), train)
    return ModelService(model, ModelCard(name="small-champion", version="1"))


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A SQLite warehouse of its own with October–December (what the lesson loads)."""
    path = tmp_path_factory.mktemp("lesson07") / "warehouse.db"
    settings = override(get_settings(), database_url=f"sqlite:///{path}")
    assert lesson.ensure_warehouse_months(settings, (10, 11, 12)) > 0
    return settings


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[sa.Engine]:
    eng = warehouse.engine(settings)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def client(service: ModelService, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(service, settings)) as c:
        yield c


@pytest.fixture(scope="module")
def flight(table: pd.DataFrame) -> pd.Series:
    """A test flight with a tail number, departing in the afternoon (so 24 h before is the day before)."""
    test = table[(table["split"] == "test") & table["tailnum"].notna() & (table["sched_hour"] >= 14)]
    return test.sample(1, random_state=SEED).iloc[0]


def _p(service: ModelService, values: dict[str, Any]) -> float:
    return float(service.predict_proba(service.row(values))[0])


def test_exercise_1_three_moments(solutions: ModuleType, client, service, flight, engine) -> None:
    answer = solutions.exercise_1(client, flight, engine)
    answers = answer["answers"]
    assert answers["hours before departure"].tolist() == [24, 6, 2]
    online = OnlineFeatures(engine)
    for hours, p in zip(answers["hours before departure"], answers["P(late)"], strict=True):
        as_of = pd.Timestamp(flight["sched_dep_local"]).tz_localize("America/New_York") - pd.Timedelta(hours=hours)
        (row,) = online.compute([lesson.flight_query(flight, as_of=as_of)])
        assert p == pytest.approx(_p(service, row.values), abs=1e-12)
    # 2 h before is the decision time: the offline table's row
    offline = float(service.predict_proba(flight[INPUT_COLUMNS].to_frame().T)[0])
    assert answers["P(late)"].iloc[-1] == pytest.approx(offline, abs=1e-9)
    changed = answer["changed inputs"]
    assert list(changed.columns) == ["24 h before", "6 h before", "2 h before"]
    assert len(changed) > 0 and set(changed.index) <= set(INPUT_COLUMNS)
    assert "origin_departures_1h" in changed.index or "wx_age_minutes" in changed.index  # windows move with as_of


def _log_row(request_id: str, route: str, item: int, latency: float) -> dict[str, Any]:
    return {
        "request_id": request_id, "item": item, "logged_at": pd.Timestamp("2026-01-01").to_pydatetime(), "route": route,
        "model_name": "m", "features": "{}", "probability": 0.5, "decision": True, "threshold": 0.5, "flags": json.dumps([]),
        "latency_ms": latency,
    }


def test_exercise_2_quantiles_count_a_batch_request_once(solutions: ModuleType, tmp_path) -> None:
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    create_table(eng)
    score = np.arange(1.0, 101.0)
    batches = [10.0, 20.0, 30.0, 40.0, 50.0]
    rows = [_log_row(uuid.uuid4().hex, "/score", 0, ms) for ms in score]
    for ms in batches:
        request_id = uuid.uuid4().hex
        rows += [_log_row(request_id, "/predict/batch", item, ms) for item in range(3)]
    with eng.begin() as conn:
        conn.execute(prediction_log.insert(), rows)
    answer = solutions.exercise_2(eng)
    assert answer.loc["/score", "requests"] == 100 and answer.loc["/predict/batch", "requests"] == 5
    assert answer.loc["/score", "p99_ms"] == pytest.approx(np.quantile(score, 0.99))
    assert answer.loc["/predict/batch", "p99_ms"] == pytest.approx(np.quantile(batches, 0.99))  # 49.6, not 50 (rows counted thrice)
    assert answer.loc["/predict/batch", "p50_ms"] == pytest.approx(30.0)
    eng.dispose()


def test_exercise_3_batch_and_online_agree(solutions: ModuleType, client, service, table) -> None:
    answer = solutions.exercise_3(client, service.model, service.threshold, table, day="2013-11-05", n=30)
    day = table[table["sched_dep_local"].dt.date == pd.Timestamp("2013-11-05").date()]
    assert answer["flights in the day"] == len(day)
    p = service.model.predict_proba(day[INPUT_COLUMNS])[:, 1]
    assert answer["flagged by the batch job"] == int((p >= service.threshold).sum())
    assert len(answer["compared"]) == 30
    assert answer["max |batch - online|"] < 1e-9 and answer["same decisions"] is True


def test_exercise_4_unknown_carrier_is_flagged_not_refused(solutions: ModuleType, client, flight) -> None:
    answer = solutions.exercise_4(client, flight)
    assert answer["status"] == 200
    assert "unknown_carrier" in answer["flags"]
    assert 0.0 <= answer["P(late), unknown carrier"] <= 1.0 and 0.0 <= answer["P(late), own carrier"] <= 1.0
