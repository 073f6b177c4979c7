"""Solutions to the exercises of lesson 05 (model development). Try the exercises yourself first.

One function per exercise of `02-notebooks/05_model_development.ipynb`, on the splits of
`mlsys.features.load_splits`. `tests/solutions/test_05_model_development.py` runs each of them
and checks its answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mlflow
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import roc_auc_score

from mlsys import leakage, pipeline, train, tune

VERSION_TAGS = ("data.", "code.", "mlflow.source.git.commit")


def exercise_1(splits: Mapping[str, pd.DataFrame], sizes: Sequence[int] = (2_000, 4_000, 8_000, 16_000, 32_000), seed: int = 42) -> pd.Series:
    """Logistic regression's validation ROC AUC for each training size (a learning curve in data).

    Each doubling pays less than the one before; on this problem the gain per doubling falls
    below a hundredth of ROC AUC somewhere around 10,000-20,000 flights, but it is still positive
    at the largest size: more data keeps helping, slowly.
    """
    X_valid, y_valid = train.xy(splits["valid"])
    scores = {}
    for n in sizes:
        X, y = train.xy(train.subsample(splits["train"], n, seed))
        model = train.fit(train.make_zoo_model("logreg", seed=seed), X, y)
        scores[n] = float(roc_auc_score(y_valid, train.predict(model, X_valid)))
    return pd.Series(scores, name="valid ROC AUC").rename_axis("training flights")


def exercise_2(
    valid: pd.DataFrame, p_a: np.ndarray, p_b: np.ndarray, n_boot: int = 200, seed: int = 42, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """The bootstrap interval of ROC AUC(a) - ROC AUC(b) on validation, resampling flights and resampling days.

    Resampling days gives the wider interval: flights of one day share their weather and delays,
    so a day is closer to one observation than to a hundred; resampling flights one by one
    pretends they are independent and understates the uncertainty.
    """
    y = valid["late"].astype(int).to_numpy()
    tail = (1 - level) / 2
    out = {}
    for name, groups in (("flights", None), ("days", leakage.local_day(valid))):
        weights = train.bootstrap_weights(len(y), n_boot, seed, groups)
        difference = train.weighted_roc_auc(y, p_a, weights) - train.weighted_roc_auc(y, p_b, weights)
        low, high = np.quantile(difference, [tail, 1 - tail])
        out[name] = (float(low), float(high))
    return out


def exercise_3(splits: Mapping[str, pd.DataFrame], rates: Sequence[float] = (0.05, 0.1), seed: int = 42) -> pd.DataFrame:
    """The headline LightGBM on `late30` with each learning rate: validation ROC AUC and trees kept.

    A smaller learning rate takes smaller steps, so early stopping keeps more trees; on validation
    the two land close, and the choice between them is made there (never on test).
    """
    peer = train.peer_splits(splits)
    X, y = train.xy(peer["train"], train.PEER_LABEL)
    X_valid, y_valid = train.xy(peer["valid"], train.PEER_LABEL)
    rows = {}
    for rate in rates:
        model = train.headline_model(seed).set_params(model__learning_rate=rate)
        train.fit(model, X, y, X_valid, y_valid, train.HEADLINE_EARLY_STOPPING)
        rows[rate] = {
            "valid ROC AUC": float(roc_auc_score(y_valid, train.predict(model, X_valid))),
            "trees": int(model.named_steps["model"].best_iteration_),
        }
    table = pd.DataFrame(rows).T.rename_axis("learning rate")
    table["trees"] = table["trees"].astype(int)
    table["chosen on validation"] = table["valid ROC AUC"] == table["valid ROC AUC"].max()
    return table


def exercise_4(splits: Mapping[str, pd.DataFrame], seed: int = 42) -> set[str]:
    """Two runs whose training splits differ in one label: which version tags differ? Only `data.fit_rows`.

    The code (git commit), the raw files and the feature version are the same; the row fingerprint
    covers flight ids and labels, so one flipped label changes it. That is what lets a report tell
    two trainings apart that no parameter distinguishes.
    """
    flipped = splits["train"].copy()
    flipped.loc[flipped.index[0], "late"] = 1 - int(flipped["late"].iloc[0])
    tags = []
    for train_part in (splits["train"], flipped):
        result = train.train_and_log(
            train.make_zoo_model("zero_rule"), {**splits, "train": train_part}, "exercise-4", log_model=False, seed=seed, n_latency=2
        )
        run_tags = mlflow.get_run(result.run_id).data.tags
        tags.append({k: v for k, v in run_tags.items() if k.startswith(VERSION_TAGS)})
    return {k for k in tags[0].keys() | tags[1].keys() if tags[0].get(k) != tags[1].get(k)}


def trial_model(row: pd.Series, seed: int = 42) -> BaseEstimator:
    """The pipeline of one search trial, with its parameters and the trees early stopping kept."""
    params = {name: row[name].item() if hasattr(row[name], "item") else row[name] for name in tune.SPACE}
    return pipeline.make_model("lightgbm", seed=seed, n_estimators=int(row["n_estimators"]), n_jobs=train.N_JOBS, **params)


def exercise_5(splits: Mapping[str, pd.DataFrame], n_trials: int = 6, seed: int = 42) -> dict[str, float]:
    """How much choosing a search's trial on test would flatter it: best test score minus the test score of the trial chosen on valid.

    The difference is never negative (the best test score is a maximum over trials that include
    the chosen one). It is optimism, not skill: the trial that happens to fit November-December
    best is picked because of noise in those very flights, so its test score overstates what it
    would do on the months after. Choosing on validation and looking at test once avoids it.
    """
    search = tune.random_search(splits, n_trials=n_trials, seed=seed, score_test=False)
    X, y = train.xy(splits["train"])
    X_test, y_test = train.xy(splits["test"])
    test_scores = []
    for _, row in search.trials.iterrows():
        model = trial_model(row, seed).fit(X, y)
        test_scores.append(float(roc_auc_score(y_test, train.predict(model, X_test))))
    chosen = int(search.trials["valid_roc_auc"].idxmax())
    return {
        "trial chosen on validation": chosen,
        "its test ROC AUC": test_scores[chosen],
        "best test ROC AUC over the trials": max(test_scores),
        "optimism of choosing on test": max(test_scores) - test_scores[chosen],
    }
