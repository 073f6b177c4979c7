"""The model behind the service: a `ModelService` that scores rows, and loaders that build one.

As in mlops-zoomcamp's `ModelService`, the service object takes the fitted model as an argument,
so tests inject a small pipeline and never touch a registry. `from_registry` is what the app
uses: it resolves `models:/<name>@<alias>` (`tracking.champion_uri`) to a version, loads it, and
reads from the registry what `GET /model` reports: version, training run, its metrics and the
decision threshold the version was promoted with (tag `promote.THRESHOLD_TAG`; without it the
course's cost-based threshold, `COURSE_COSTS.bayes_threshold()`). `heuristic_fallback` is
lesson 01's dispatcher rule, for when no model can be loaded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from mlsys import tracking
from mlsys.baselines import HeuristicBaseline
from mlsys.config import Settings, get_settings
from mlsys.logger import logger
from mlsys.objectives import COURSE_COSTS
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.promote import THRESHOLD_TAG
from mlsys.serve.lean import LeanModel

#: Flag names a prediction can carry (see the README's service section).
FLAG_UNKNOWN_CARRIER = "unknown_carrier"
FLAG_UNKNOWN_AIRPORT = "unknown_airport"
FLAG_FALLBACK = "fallback"


@dataclass(frozen=True)
class ModelCard:
    """What the service knows about the model it serves (the body of `GET /model`)."""

    name: str
    version: str | None = None
    alias: str | None = None
    uri: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    threshold: float = COURSE_COSTS.bayes_threshold()
    threshold_source: str = "COURSE_COSTS.bayes_threshold()"
    source: str = "injected"  # injected | registry | fallback


class ModelService:
    """Scores model input rows and decides at the model's threshold; the lean path when it can."""

    def __init__(self, model: Any, card: ModelCard | None = None, columns: Sequence[str] = INPUT_COLUMNS):
        self.model = model
        self.card = card or ModelCard(name=type(model).__name__)
        self.columns = list(columns)
        self.lean = LeanModel.from_pipeline(model, self.columns)
        self.categories = self.lean.categories  # empty when the model has no category lists

    @property
    def is_fallback(self) -> bool:
        return self.card.source == "fallback"

    @property
    def threshold(self) -> float:
        return self.card.threshold

    def predict_proba(self, rows: pd.DataFrame | np.ndarray) -> np.ndarray:
        """P(late) for each row of model inputs (`columns`, in that order for arrays)."""
        return self.lean.predict_proba(rows)

    def row(self, values: Mapping[str, Any]) -> np.ndarray:
        """One model input row (1 x len(columns), object) from a mapping of column -> value."""
        return np.array([[values.get(c) for c in self.columns]], dtype=object)

    def decide(self, probability: float) -> bool:
        """Act on the flight (treat it as late) when P(late) is at or above the threshold."""
        return bool(probability >= self.threshold)

    def flags(self, values: Mapping[str, Any]) -> list[str]:
        """Flags about the model's view of a row: categories it never saw, and the fallback."""
        out = []
        known = self.categories
        if "carrier" in known and _unseen(values.get("carrier"), known["carrier"]):
            out.append(FLAG_UNKNOWN_CARRIER)
        if any(col in known and _unseen(values.get(col), known[col]) for col in ("origin", "dest")):
            out.append(FLAG_UNKNOWN_AIRPORT)
        if self.is_fallback:
            out.append(FLAG_FALLBACK)
        return out


def _unseen(value: Any, categories: Sequence[str]) -> bool:
    """True when a present value is not among the categories (a missing one is not "unknown")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value) not in categories


def from_registry(settings: Settings | None = None) -> ModelService:
    """The champion: `models:/<name>@<alias>` resolved to its version, loaded with its registry facts.

    Raises `tracking.TrackingServerUnavailable` when a tracking server is down and
    `mlflow.exceptions.MlflowException` when the alias does not exist.
    """
    settings = settings or get_settings()
    tracking.setup_mlflow(settings)
    client = MlflowClient()
    name, alias = settings.registered_model_name, settings.champion_alias
    found = client.get_model_version_by_alias(name, alias)
    # load the version the alias pointed at when we asked, not whatever it points at a moment later
    model = mlflow.sklearn.load_model(f"models:/{name}/{found.version}")
    metrics: dict[str, float] = {}
    if found.run_id:
        metrics = {k: float(v) for k, v in client.get_run(found.run_id).data.metrics.items()}
    tag = (found.tags or {}).get(THRESHOLD_TAG)
    card = ModelCard(
        name=name,
        version=str(found.version),
        alias=alias,
        uri=tracking.champion_uri(settings),
        run_id=found.run_id,
        metrics=metrics,
        threshold=float(tag) if tag is not None else COURSE_COSTS.bayes_threshold(),
        threshold_source=f"version tag {THRESHOLD_TAG}" if tag is not None else "COURSE_COSTS.bayes_threshold()",
        source="registry",
    )
    service = ModelService(model, card)
    logger.info(
        "serving {} version {} (@{}, run {}), threshold {} ({}), lean path: {}",
        name, card.version, alias, card.run_id, card.threshold, card.threshold_source, service.lean.is_lean,
    )
    return service


def heuristic_fallback(settings: Settings | None = None) -> ModelService:
    """Lesson 01's heuristic (congested origin or rain), its three rates fitted on the train split."""
    from mlsys import features  # local import: reading the feature table is only needed here

    settings = settings or get_settings()
    train = features.load_splits(fast=True, seed=settings.seed, settings=settings)["train"]
    model = HeuristicBaseline().fit(train[INPUT_COLUMNS], train["late"].to_numpy())
    card = ModelCard(name="heuristic-baseline", source="fallback")
    logger.warning("serving the fallback: lesson 01's heuristic (threshold {}); every answer says so", card.threshold)
    return ModelService(model, card)
