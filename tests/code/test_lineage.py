"""Lineage: a registered version leads back to its data files, commit and parameters, and a change
in the data shows up against it."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys import data, evaluate, features, lineage, promote, tracking
from mlsys.config import get_settings, override
from mlsys.pipeline import INPUT_COLUMNS


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A small model promoted through `promote.promote` with its training rows, on a store of its own."""
    store = tmp_path_factory.mktemp("lineage")
    settings = override(get_settings(), mlflow_tracking_uri=f"sqlite:///{store / 'mlflow.db'}", mlflow_artifact_root=(store / "mlruns").as_uri())
    splits = features.load_splits(fast=True, seed=42)
    train = splits["train"].sample(20_000, random_state=42)
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=42, n_estimators=80, n_jobs=1), train)
    report = promote.evaluate_candidate(model, splits, promote.Protocol(behaviour_rows=3_000))
    decision = promote.promote(model, report, splits["test"][INPUT_COLUMNS].head(5), settings, name="lineage-test", train_data=train)
    assert decision.promoted, decision.reasons
    return settings, decision, train


def test_the_champion_traces_back_to_files_commit_params_and_rows(registered):
    settings, decision, train = registered
    traced = lineage.trace(settings=settings)
    assert traced["version"] == decision.version and traced["run_id"] == decision.run_id
    expected = data.expected_checksums(data.ensure_raw(settings))
    assert traced["files"] == {name: expected[name] for name in traced["files"]}
    assert set(traced["files"]) == {"flights.csv.zip", "weather.csv", "planes.csv"}
    commit, _ = lineage.code_commit()
    assert traced["commit"] == commit
    assert traced["feature_table"] == features.feature_cache_path(settings).name
    (dataset,) = traced["datasets"]
    assert dataset["context"] == "training"
    assert dataset["digest"] == lineage.rows_digest(train)
    assert any(k.endswith("n_estimators") and v == "80" for k, v in traced["params"].items())
    table = lineage.trace_table(traced)
    assert {"raw file", "dataset input", "code", "parameter"} <= set(table["what"])


def test_a_data_correction_shows_up_against_the_champion(registered, tmp_path):
    settings, _, _ = registered
    traced = lineage.trace(settings=settings)
    assert (lineage.stale_inputs(traced, settings)["status"] == "same").all()
    corrected = lineage.corrected_copy(settings, tmp_path / "corrected", table="weather")
    stale = lineage.stale_inputs(traced, corrected).set_index("input")["status"]
    assert stale["weather.csv"] == "changed" and stale["feature table"] == "changed"
    assert stale["flights.csv.zip"] == "same" and stale["planes.csv"] == "same"


def test_rows_digest_depends_on_rows_and_labels():
    frame = pd.DataFrame({"flight_id": [1, 2, 3], "late": [0, 1, 0], "x": [0.1, 0.2, 0.3]})
    assert lineage.rows_digest(frame) == lineage.rows_digest(frame.assign(x=9.0))  # features follow from files + code
    assert lineage.rows_digest(frame) != lineage.rows_digest(frame.head(2))
    assert lineage.rows_digest(frame) != lineage.rows_digest(frame.assign(late=[1, 1, 0]))


def test_outside_git_the_commit_is_unknown(tmp_path):
    assert lineage.code_commit(tmp_path) == ("unknown", None)
