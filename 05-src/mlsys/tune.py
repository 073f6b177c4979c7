"""Seeded random search over LightGBM hyperparameters, every trial tracked in MLflow.

Random search samples each hyperparameter independently from a range, so it explores the
important ones as well as a grid of the same budget while wasting no trials on the unimportant
ones (Huyen, 2022, ch. 6). The number of trees is not sampled: each trial grows up to
`max_estimators` trees and early stopping on the validation split picks how many to keep.

The search selects by validation ROC AUC only. With `score_test=True` the chosen configuration
is scored on the test split exactly once, after the choice; a lesson that still has a choice to
make after the search (lesson 05) passes `score_test=False` and looks at test later, once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from mlsys import pipeline, tracking
from mlsys.display import progress
from mlsys.logger import logger
from mlsys.metrics import classification_scores
from mlsys.train import EVAL_METRICS, LABEL, N_JOBS, predict, xy

#: name -> (kind, low, high); `log` kinds sample uniformly on a log scale
SPACE: dict[str, tuple[str, float, float]] = {
    "num_leaves": ("int_log", 8, 128),
    "learning_rate": ("log", 0.03, 0.3),
    "min_child_samples": ("int_log", 10, 500),
    "colsample_bytree": ("uniform", 0.4, 1.0),
    "reg_lambda": ("log", 1e-3, 30.0),
}


@dataclass
class SearchResult:
    """The trials table, the chosen configuration, its valid and (scored once, if asked) test metrics."""

    trials: pd.DataFrame
    best_params: dict[str, Any]
    valid: dict[str, float]
    test: dict[str, float]
    model: Pipeline
    run_id: str
    #: the chosen configuration's probabilities on the validation split
    valid_pred: np.ndarray | None = None


def sample_params(rng: np.random.Generator, space: Mapping[str, tuple[str, float, float]] = SPACE) -> dict[str, Any]:
    """One configuration drawn from `space`."""
    params: dict[str, Any] = {}
    for name, (kind, low, high) in space.items():
        if kind == "uniform":
            params[name] = round(float(rng.uniform(low, high)), 4)
        elif kind == "log":
            params[name] = round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 5)
        elif kind == "int_log":
            params[name] = int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))
        else:
            raise ValueError(f"unknown kind {kind!r} for {name}")
    return params


def random_search(
    splits: Mapping[str, pd.DataFrame],
    n_trials: int = 20,
    seed: int = 42,
    label: str = LABEL,
    max_estimators: int = 1000,
    early_stopping_rounds: int = 30,
    name: str = "lightgbm-random-search",
    space: Mapping[str, tuple[str, float, float]] = SPACE,
    score_test: bool = True,
    show_progress: bool = False,
) -> SearchResult:
    """Run `n_trials` seeded trials (one nested MLflow run each) under one parent run.

    Returns the trials (one row per trial: parameters, trees kept, valid scores), the best one by
    validation ROC AUC (first one on ties) refit-free: its fitted model is kept and, with
    `score_test`, scored on test. `show_progress` draws a progress bar (kept out of lesson outputs).
    """
    X, y = xy(splits["train"], label)
    Xv, yv = xy(splits["valid"], label)
    Xt, yt = xy(splits["test"], label)
    # the preprocessor learns nothing a hyperparameter changes: fit it once, reuse for every trial
    prep = pipeline.tree_preprocessor().fit(X, y)
    Z, Z_valid = prep.transform(X), prep.transform(Xv)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    best_model, best_auc = None, -np.inf
    with tracking.run(name, label=label, search="random") as parent:
        mlflow.log_params({"n_trials": n_trials, "seed": seed, "max_estimators": max_estimators, "early_stopping_rounds": early_stopping_rounds})
        trial_numbers = progress(range(n_trials), total=n_trials, desc="random search") if show_progress else range(n_trials)
        for trial in trial_numbers:
            params = sample_params(rng, space)
            model = pipeline.lightgbm_classifier(seed, n_estimators=max_estimators, n_jobs=N_JOBS, **params)
            start = time.perf_counter()
            model.fit(
                Z, y, eval_X=(Z_valid,), eval_y=(yv,), eval_names=["valid"], eval_metric=EVAL_METRICS,
                callbacks=[lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)],
            )  # fmt: skip
            seconds = time.perf_counter() - start
            valid = classification_scores(yv, model.predict_proba(Z_valid)[:, 1])
            n_trees = int(model.best_iteration_ or max_estimators)
            with tracking.run(f"trial-{trial:02d}", nested=True, trial=str(trial)) as child:
                mlflow.log_params({**params, "n_estimators": n_trees})
                mlflow.log_metrics({**{f"valid_{k}": v for k, v in valid.items()}, "train_seconds": seconds})
            rows.append(
                {
                    "trial": trial,
                    **params,
                    "n_estimators": n_trees,
                    "valid_roc_auc": valid["roc_auc"],
                    "valid_log_loss": valid["log_loss"],
                    "seconds": seconds,
                    "run_id": child.info.run_id,
                }
            )
            if valid["roc_auc"] > best_auc:  # strict: the first of equal trials wins
                best_model, best_auc = model, valid["roc_auc"]
        trials = pd.DataFrame(rows)
        best = trials.loc[trials["valid_roc_auc"].idxmax()]
        best_params = {k: best[k].item() if hasattr(best[k], "item") else best[k] for k in [*space, "n_estimators"]}
        chosen = Pipeline([("prep", prep), ("model", best_model)])
        p_valid = predict(chosen, Xv)
        valid_best = classification_scores(yv, p_valid)
        test = classification_scores(yt, predict(chosen, Xt)) if score_test else {}  # the one and only look at test
        mlflow.log_params({f"best_{k}": v for k, v in best_params.items()} | {"best_trial": int(best["trial"])})
        mlflow.log_metrics({**{f"valid_{k}": v for k, v in valid_best.items()}, **{f"test_{k}": v for k, v in test.items()}})
        mlflow.log_text(trials.drop(columns="run_id").to_csv(index=False), "trials.csv")
        logger.info("random search: best trial {} valid ROC AUC {:.4f}", int(best["trial"]), valid_best["roc_auc"])
    return SearchResult(
        trials=trials, best_params=best_params, valid=valid_best, test=test, model=chosen, run_id=parent.info.run_id, valid_pred=p_valid
    )
