"""MLflow set-up: embedded store with absolute artifact paths, clear error for a missing server."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

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


def test_logged_model_describes_the_probabilities_it_serves() -> None:
    """The pyfunc flavour answers with `predict_proba`; the signature must say so, not `predict`'s labels."""
    X = pd.DataFrame({"wx_precip": np.linspace(0.0, 1.0, 20), "carrier_mean_delay_3h": np.arange(20.0)})
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    with tracking.run("signature-test", get_settings()):
        info = tracking.log_sklearn_model(model, X.head(3))
    outputs = info.signature.outputs.to_dict()
    assert outputs == [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": (-1, 2)}}]
    served = mlflow.pyfunc.load_model(info.model_uri).predict(X.head(4))
    assert np.asarray(served).shape == (4, 2)


def test_a_second_session_of_a_lesson_sees_only_its_own_runs() -> None:
    """A student re-running a lesson against one persistent store gets the same tables."""
    seen = []
    try:
        for _ in range(2):
            tracking.start_session("99")
            with tracking.run("session-test-a"):
                mlflow.log_metric("m", 1)
            with tracking.run("session-test-b", stage="promotion"):
                pass
            seen.append(
                (
                    len(tracking.runs_table()),
                    [r.info.run_name for r in tracking.session_runs()],
                    [r.info.run_name for r in tracking.session_runs("tags.stage = 'promotion'")],
                )
            )
        assert seen[0] == seen[1] == (2, ["session-test-a", "session-test-b"], ["session-test-b"])
        # the store itself kept both sessions' runs
        assert len(mlflow.search_runs(filter_string="tags.lesson = '99'")) == 4
    finally:
        tracking._SESSION.clear()
