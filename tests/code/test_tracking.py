"""MLflow set-up: embedded store with absolute artifact paths, clear error for a missing server."""

from pathlib import Path

import mlflow
import pytest

from mlsys import tracking
from mlsys.config import get_settings, load_settings


def test_runs_land_in_the_configured_store() -> None:
    settings = get_settings()
    with tracking.run("unit-test", settings) as active:
        mlflow.log_metric("answer", 42)
    assert mlflow.get_tracking_uri() == settings.mlflow_tracking_uri
    stored = mlflow.get_run(active.info.run_id)
    assert stored.data.metrics["answer"] == 42
    assert stored.data.tags["hardware.cpus"]
    # artifacts go to the configured absolute root, not ./mlruns of whatever the cwd is
    assert stored.info.artifact_uri.startswith(settings.mlflow_artifact_root)


def test_unreachable_server_says_what_to_start(tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    with pytest.raises(tracking.TrackingServerUnavailable, match="make up"):
        tracking.setup_mlflow(settings)


def test_champion_uri_uses_the_alias() -> None:
    settings = get_settings()
    assert tracking.champion_uri(settings) == f"models:/{settings.registered_model_name}@{settings.champion_alias}"
