"""MLflow experiment tracking and model registry, configured from `mlsys.config`.

With the default settings the store is `sqlite:///<repo>/mlflow.db` with artifacts in
`<repo>/mlruns`; with `MLFLOW_TRACKING_URI=http://127.0.0.1:5000` (the `docker/` stack) it is a
tracking server on Postgres. `setup_mlflow()` checks a server is reachable before any run starts,
so a missing server is one clear message instead of a retry storm.
"""

from __future__ import annotations

import logging
import platform
import uuid
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import mlflow
import pandas as pd
import skops.io
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from mlsys.config import Settings, get_settings
from mlsys.logger import logger


class TrackingServerUnavailable(RuntimeError):
    """The configured MLflow tracking server does not answer."""


def check_server(uri: str, timeout: float = 3.0) -> None:
    """Raise `TrackingServerUnavailable`, saying what to start, if an http(s) tracking URI is down."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"answered HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = f"is not reachable ({getattr(exc, 'reason', exc)})"
    raise TrackingServerUnavailable(
        f"MLflow tracking server {uri} {problem}. Start it with `make up` "
        "(docker compose -f docker/compose.yml up -d), or remove MLFLOW_TRACKING_URI from .env "
        "to use the embedded SQLite store."
    )


def setup_mlflow(settings: Settings | None = None, experiment: str | None = None) -> str:
    """Point MLflow at the configured store and select (or create) the experiment; returns its id.

    On a local store the experiment's artifact location is set to an absolute `file://` URI so
    runs from a notebook, a test or the CLI all share one `mlruns/`.
    """
    settings = settings or get_settings()
    check_server(settings.mlflow_tracking_uri)
    # MLflow logs a line per schema migration on a new SQLite store; keep those in the log file.
    for name in ("mlflow.store", "alembic", "mlflow.utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    name = experiment or settings.mlflow_experiment
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is None:
        artifact_location = f"{settings.mlflow_artifact_root.rstrip('/')}/{name}" if settings.tracking_is_local else None
        experiment_id = client.create_experiment(name, artifact_location=artifact_location)
        logger.info("created MLflow experiment {!r}", name)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def hardware_tags() -> dict[str, str]:
    """What the book says to track about where a model was trained."""
    import os

    return {
        "hardware.machine": platform.machine(),
        "hardware.processor": platform.processor() or "unknown",
        "hardware.cpus": str(os.cpu_count()),
        "python": platform.python_version(),
    }


#: Tags of the current lesson session (`start_session`); empty outside a lesson.
_SESSION: dict[str, str] = {}


def start_session(lesson: str) -> str:
    """Tag every run started from now on with `lesson` and a new `session` id; returns the id.

    A student's `mlflow.db` keeps every run of every re-run of a lesson. Each lesson calls this in
    its setup cell and lists only its session's runs (`session_runs`, `session_versions`), so a
    second run shows the same tables as the first. Like `mlflow.set_experiment`, it sets
    process-wide state on purpose: a notebook is one process.
    """
    _SESSION.clear()
    _SESSION.update({"lesson": lesson, "session": uuid.uuid4().hex})
    return _SESSION["session"]


def session_tags() -> dict[str, str]:
    """The tags `run` adds for the current session (empty when none was started)."""
    return dict(_SESSION)


@contextmanager
def run(name: str, settings: Settings | None = None, nested: bool = False, **tags: str) -> Iterator[Run]:
    """Start an MLflow run (nested under the active one if `nested`) tagged with hardware info and the session."""
    if not nested:
        setup_mlflow(settings)
    with mlflow.start_run(run_name=name, nested=nested, tags={**hardware_tags(), **_SESSION, **tags}) as active:
        yield active


#: What a logged model needs to load, pinned to the versions installed here. The course's own
#: transformers (e.g. `mlsys.pipeline.CategoryEncoder`) come from the `mlsys` package, which the
#: prediction service installs from this repository; it is not on a package index.
MODEL_REQUIREMENTS = ("scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "skops", "mlflow")


def model_requirements() -> list[str]:
    """`name==version` for `MODEL_REQUIREMENTS`.

    Passing them explicitly also spares MLflow its requirement inference, a subprocess that took
    about 15 s per model on a 2-core machine.
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def log_sklearn_model(model: Any, input_example: pd.DataFrame, name: str = "model") -> ModelInfo:
    """Log a fitted scikit-learn estimator with skops, trusting exactly the types it contains.

    skops (MLflow's default format) refuses unknown types such as LightGBM's booster unless they
    are listed; listing the model's own types keeps loading safe without falling back to pickle.
    The signature is inferred from `predict_proba`, which is what the pyfunc flavour serves; left
    to itself MLflow would describe `predict`'s integer class labels instead.
    """
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    signature = infer_signature(input_example, model.predict_proba(input_example))
    return mlflow.sklearn.log_model(
        model,
        name=name,
        input_example=input_example,
        signature=signature,
        skops_trusted_types=trusted,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=model_requirements(),
    )


def register(model_uri: str, settings: Settings | None = None, alias: str | None = None) -> str:
    """Register `model_uri` under the course's model name; optionally point `alias` at it. Returns the version."""
    settings = settings or get_settings()
    version = mlflow.register_model(model_uri, settings.registered_model_name).version
    if alias:
        MlflowClient().set_registered_model_alias(settings.registered_model_name, alias, version)
        logger.info("{} version {} is now @{}", settings.registered_model_name, version, alias)
    return str(version)


def champion_uri(settings: Settings | None = None) -> str:
    """`models:/<name>@<alias>`: the model the prediction service loads."""
    settings = settings or get_settings()
    return f"models:/{settings.registered_model_name}@{settings.champion_alias}"


def load_champion(settings: Settings | None = None) -> Any:
    """The scikit-learn model behind the champion alias."""
    setup_mlflow(settings)
    return mlflow.sklearn.load_model(champion_uri(settings))


def _session_filter(filter_string: str = "") -> str:
    """`filter_string` narrowed to the current session's runs (unchanged outside a session)."""
    parts = [f"tags.session = '{_SESSION['session']}'"] if _SESSION else []
    return " and ".join([*parts, filter_string] if filter_string else parts)


def runs_table(
    experiment: str | None = None, settings: Settings | None = None, max_results: int = 100, filter_string: str = ""
) -> pd.DataFrame:
    """Runs of this session (every run outside a session) as a DataFrame, newest first."""
    settings = settings or get_settings()
    setup_mlflow(settings, experiment)
    return mlflow.search_runs(
        experiment_names=[experiment or settings.mlflow_experiment], max_results=max_results, filter_string=_session_filter(filter_string)
    )


def session_runs(filter_string: str = "", settings: Settings | None = None, order_by: list[str] | None = None) -> list[Run]:
    """This session's runs (every run outside a session) as MLflow `Run` objects, oldest first by default."""
    experiment_id = setup_mlflow(settings)
    return MlflowClient().search_runs(
        [experiment_id], filter_string=_session_filter(filter_string), order_by=order_by or ["attributes.start_time ASC"]
    )


def session_versions(settings: Settings | None = None) -> list[str]:
    """Registered versions of the course's model created by this session's runs, in order."""
    settings = settings or get_settings()
    run_ids = {r.info.run_id for r in session_runs(settings=settings)}
    found = MlflowClient().search_model_versions(f"name = '{settings.registered_model_name}'")
    return [str(v) for v in sorted(int(v.version) for v in found if v.run_id in run_ids)]
