"""Train a model, track the experiment, and the model zoo of lesson 05 (Huyen, 2022, ch. 6).

`train_and_log` fits one model on the training split and records in one MLflow run what the book
lists as worth tracking: parameters, metrics on valid and test, loss curves, a sample of
predictions next to the ground truth, training time, inference latency (one row and a batch),
the hardware (tagged by `tracking.run`) and the fitted model itself.

The zoo (`make_zoo_model`) holds the models the lesson compares, from the zero-rule baseline to a
stacked ensemble; every one is a scikit-learn estimator that takes the raw feature columns.
`choose_on_validation` picks among them on the validation split only (a paired bootstrap says
which candidates are as good as the best; the cheapest of those wins), and `headline` is the one
recipe behind the course's headline figure per label, shared by lessons 04 and 05.

Every run also records what it was made from (`version_tags`): the git commit of the code, the
checksum of the raw files, the feature code's version and a fingerprint of the training rows.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from mlsys import lineage, pipeline, tracking
from mlsys.baselines import HeuristicBaseline, ZeroRule
from mlsys.config import Settings, get_settings, repo_root
from mlsys.display import duration
from mlsys.features import CATEGORICAL, FEATURE_VERSION, NUMERIC, peer_label
from mlsys.logger import logger
from mlsys.metrics import classification_scores

LABEL = "late"
#: column holding the tidymodels tutorial's label (arrival delay >= 30 min), see `peer_splits`
PEER_LABEL = "late30"
#: models trained from scratch, simplest first (Huyen, 2022, ch. 6: start with the simplest models);
#: the comparison adds `stacking_model` of the fitted logreg, lightgbm and bagging
ZOO = ("zero_rule", "heuristic", "logreg", "lightgbm", "bagging")
#: what LightGBM records per iteration: its loss, which early stopping watches (an AUC per
#: iteration sorts every evaluation set once per tree, which costs more than the trees on 60k rows)
EVAL_METRICS = ["binary_logloss"]
#: one thread per model: on a shared, oversubscribed CPU LightGBM's OpenMP threads wait on each
#: other (measured: 100 trees on 20k rows, 1.4 s with one thread, 19 s with two); results are identical
N_JOBS = 1
#: models evaluated for one prediction (1 when not listed): the serving cost a choice between equally
#: good candidates minimises (Huyen, 2022, ch. 6: ensembles are harder to deploy and maintain)
MODELS_PER_PREDICTION = {"stacking": 3}
#: the headline recipe: up to this many trees, early stopping after this many without improvement
HEADLINE_MAX_TREES = 2000
HEADLINE_EARLY_STOPPING = 50
#: the name of the course's default LightGBM recipe (`headline_model`) among refit candidates
DEFAULT_RECIPE = "lightgbm, course defaults"


@dataclass
class TrainResult:
    """What one `train_and_log` call measured; `row()` is its line in a comparison table."""

    name: str
    label: str
    model: Any
    valid: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    single_row_seconds: float
    batch_seconds: float
    batch_rows: int
    n_train: int
    run_id: str
    model_uri: str | None = None
    evals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    best_iteration: int | None = None
    #: probabilities on the validation split (out-of-fold for a stack's meta-learner)
    valid_pred: np.ndarray | None = None

    @property
    def per_1000_rows_seconds(self) -> float:
        """Batch prediction time scaled to 1,000 rows."""
        return self.batch_seconds / self.batch_rows * 1000

    def row(self) -> dict[str, object]:
        """Test metrics and timings as one flat dict (raw floats; format them for display)."""
        return {
            "model": self.name,
            "label": self.label,
            "train_rows": self.n_train,
            "roc_auc": self.test.get("roc_auc", np.nan),
            "pr_auc": self.test.get("pr_auc", np.nan),
            "brier": self.test.get("brier", np.nan),
            "valid_roc_auc": self.valid["roc_auc"],
            "valid_pr_auc": self.valid["pr_auc"],
            "valid_brier": self.valid["brier"],
            "train_seconds": self.train_seconds,
            "single_row_seconds": self.single_row_seconds,
            "per_1000_rows_seconds": self.per_1000_rows_seconds,
        }


# --------------------------------------------------------------------------- data


def xy(df: pd.DataFrame, label: str = LABEL, columns: Sequence[str] = pipeline.INPUT_COLUMNS) -> tuple[pd.DataFrame, pd.Series]:
    """Feature columns and integer label of a split; refuses rows without a label."""
    if df[label].isna().any():
        raise ValueError(f"{int(df[label].isna().sum())} rows have no {label!r}: drop them first (see peer_splits)")
    return df[list(columns)], df[label].astype("int64")


def peer_splits(splits: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The splits with the peer label `late30` (arrival delay >= 30 min), flown flights only."""
    return {name: df.assign(**{PEER_LABEL: peer_label(df)}).dropna(subset=[PEER_LABEL]).reset_index(drop=True) for name, df in splits.items()}


def subsample(df: pd.DataFrame, n: int | None, seed: int = 42) -> pd.DataFrame:
    """`n` random rows of `df` in their original (chronological) order; all rows if `n` is None."""
    if n is None or n >= len(df):
        return df
    return df.sample(n, random_state=seed).sort_index().reset_index(drop=True)


# --------------------------------------------------------------------------- model zoo


def ordinal_preprocessor(numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = CATEGORICAL) -> ColumnTransformer:
    """Numbers unchanged (NaN kept), categories as integer codes (-1 for missing or unseen).

    For scikit-learn's random forest: its trees route NaN themselves (since 1.4) but need numbers,
    and integer codes keep one column per category where one-hot would give ~100 sparse ones.
    """
    codes = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    return ColumnTransformer([("num", "passthrough", list(numeric)), ("cat", codes, list(categorical))])


def bagging_model(seed: int = 42, n_estimators: int = 100) -> Pipeline:
    """Bagging: a random forest (bootstrap samples + random feature subsets) on ordinal features."""
    forest = RandomForestClassifier(
        n_estimators=n_estimators, min_samples_leaf=20, max_features="sqrt", n_jobs=N_JOBS, random_state=seed
    )
    return Pipeline([("prep", ordinal_preprocessor()), ("model", forest)])


def lightgbm_model(seed: int = 42, fast: bool = True, **params: object) -> Pipeline:
    """Boosting: LightGBM with room for many trees; pair it with early stopping on valid."""
    defaults: dict[str, object] = {"n_estimators": 2000, "learning_rate": 0.1 if fast else 0.05, "n_jobs": N_JOBS}
    return pipeline.make_model("lightgbm", seed=seed, **{**defaults, **params})


def stacking_model(members: Mapping[str, BaseEstimator]) -> StackingClassifier:
    """Stacking: already-fitted members combined by a logistic meta-learner (`cv="prefit"`).

    Fit it on the validation split: the members learned from January-August, the meta-learner
    learns how far to trust each of them on September-October, months none of them has seen.
    K-fold out-of-fold predictions (the default) would refit every member k + 1 times and let
    members trained on later months predict earlier ones, which the time split is there to avoid.
    """
    return StackingClassifier(list(members.items()), final_estimator=LogisticRegression(), cv="prefit", stack_method="predict_proba")


def stack_out_of_fold(stack: StackingClassifier, X: pd.DataFrame, y: pd.Series, seed: int = 42, folds: int = 5) -> np.ndarray:
    """Probabilities on (X, y), the rows the stack's meta-learner was fitted on, predicted out of fold.

    The members are prefit and stay fixed; only the meta-learner is refitted on k - 1 folds of
    their predictions and scores the held-out fold. So the stack's validation score is as honest
    as any other model's, and can be compared with theirs.
    """
    member_predictions = stack.transform(X)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(clone(stack.final_estimator), member_predictions, y, cv=cv, method="predict_proba")[:, 1]


def make_zoo_model(kind: str, seed: int = 42, fast: bool = True) -> BaseEstimator:
    """One model of the comparison by name (see `ZOO`), unfitted."""
    factories = {
        "zero_rule": ZeroRule,
        "heuristic": HeuristicBaseline,
        "logreg": lambda: pipeline.make_model("logreg", seed=seed),
        "lightgbm": lambda: lightgbm_model(seed, fast),
        "bagging": lambda: bagging_model(seed, n_estimators=40 if fast else 300),
    }
    if kind not in factories:
        raise ValueError(f"unknown model {kind!r}: use one of {sorted(factories)}")
    return factories[kind]()


# --------------------------------------------------------------------------- fitting


def is_lightgbm(model: BaseEstimator) -> bool:
    """True for a LightGBM estimator or a pipeline ending in one."""
    last = model.steps[-1][1] if isinstance(model, Pipeline) else model
    return isinstance(last, lgb.LGBMModel)


def fit(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series,
    X_valid: pd.DataFrame | None = None,
    y_valid: pd.Series | None = None,
    early_stopping_rounds: int | None = None,
) -> BaseEstimator:
    """Fit `model` on (X, y). A LightGBM pipeline given valid data also records its loss per
    iteration on train and valid (`evals_result_`) and, with `early_stopping_rounds`, stops when the
    valid log loss has not improved for that many trees."""
    if not (is_lightgbm(model) and X_valid is not None):
        return model.fit(X, y)
    booster = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if isinstance(model, Pipeline):
        # the preprocessor is fit on train only; valid goes through the same fitted transform
        prep = model[:-1]
        Z, Z_valid = prep.fit_transform(X, y), prep.transform(X_valid)
    else:
        Z, Z_valid = X, X_valid
    callbacks = [lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)] if early_stopping_rounds else []
    booster.fit(Z, y, eval_X=(Z, Z_valid), eval_y=(y, y_valid), eval_names=["train", "valid"], eval_metric=EVAL_METRICS, callbacks=callbacks)
    return model


def predict(model: BaseEstimator, X: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class."""
    return model.predict_proba(X)[:, 1]


def single_row_latency(model: BaseEstimator, X: pd.DataFrame, n: int = 50, seed: int = 42) -> float:
    """Median seconds of `n` single-row `predict_proba` calls on rows drawn from `X` (one request)."""
    rows = np.random.default_rng(seed).choice(len(X), size=n, replace=len(X) < n)
    times = []
    for i in rows:
        row = X.iloc[[int(i)]]
        start = time.perf_counter()
        model.predict_proba(row)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timed_predict(model: BaseEstimator, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """Probabilities for every row of `X` in one call, and the seconds it took (batch latency)."""
    start = time.perf_counter()
    p = predict(model, X)
    return p, time.perf_counter() - start


def max_prediction_gap(model_a: BaseEstimator, model_b: BaseEstimator, X: pd.DataFrame) -> float:
    """Largest |p_a - p_b| over the rows of X: 0.0 when two trainings are identical."""
    return float(np.max(np.abs(predict(model_a, X) - predict(model_b, X))))


def overfit_small_batch(
    train: pd.DataFrame, valid: pd.DataFrame, n: int = 200, seed: int = 42, label: str = LABEL
) -> dict[str, float]:
    """Fit a very flexible LightGBM on `n` training rows: train AUC near 1 shows the model can learn
    and the pipeline is wired right; valid AUC shows how little 200 rows generalise."""
    small = subsample(train, n, seed)
    X, y = xy(small, label)
    model = pipeline.make_model(
        "lightgbm",
        seed=seed,
        n_estimators=300,
        learning_rate=0.1,
        num_leaves=64,
        min_child_samples=2,
        min_child_weight=1e-5,
        subsample=1.0,
        colsample_bytree=1.0,
        min_data_per_group=1,
        cat_smooth=1,
        min_data_in_bin=1,
        n_jobs=N_JOBS,
    ).fit(X, y)
    Xv, yv = xy(valid, label)
    return {
        "train_roc_auc": float(roc_auc_score(y, predict(model, X))),
        "valid_roc_auc": float(roc_auc_score(yv, predict(model, Xv))),
    }


# --------------------------------------------------------------------------- tracking


def scalar_params(model: BaseEstimator) -> dict[str, object]:
    """Every (nested) hyperparameter of `model` whose value is a plain scalar, for `log_params`."""
    params = model.get_params(deep=True)
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool) or v is None}


def curve_metrics(evals: Mapping[str, Mapping[str, Sequence[float]]]) -> list[Metric]:
    """LightGBM's evaluation history as MLflow metrics `<set>_<metric>` with the iteration as step."""
    now = int(time.time() * 1000)
    return [
        Metric(f"{dataset}_{metric}", float(value), now, step)
        for dataset, history in evals.items()
        for metric, values in history.items()
        for step, value in enumerate(values, start=1)
    ]


def plot_learning_curve(
    ax: Any,
    evals: Mapping[str, Mapping[str, Sequence[float]]],
    best_iteration: int | None = None,
    metric: str = "binary_logloss",
    title: str = "",
) -> Any:
    """Train vs valid `metric` per boosting iteration on `ax`, with the early-stopping point marked."""
    for dataset, history in evals.items():
        ax.plot(np.arange(1, len(history[metric]) + 1), history[metric], label=dataset)
    if best_iteration:
        ax.axvline(best_iteration, color="grey", linestyle="--", label=f"early stop: best at {best_iteration}")
    ax.set(xlabel="boosting iteration (trees)", ylabel={"binary_logloss": "log loss"}.get(metric, metric), title=title or f"{metric} per iteration")
    ax.legend()
    return ax


def learning_curve_figure(evals: Mapping[str, Mapping[str, Sequence[float]]], best_iteration: int | None = None, title: str = "") -> Figure:
    """The learning curve as a standalone figure (no pyplot state), for `mlflow.log_figure`."""
    fig = Figure(figsize=(7, 3.6))
    plot_learning_curve(fig.subplots(), evals, best_iteration, title=title)
    fig.tight_layout()
    return fig


def sample_predictions(df: pd.DataFrame, y: pd.Series, p: np.ndarray, n: int = 200, seed: int = 42) -> pd.DataFrame:
    """`n` random test flights with their identifiers, the ground truth and the prediction."""
    idx = np.sort(np.random.default_rng(seed).choice(len(df), size=min(n, len(df)), replace=False))
    keys = [c for c in ("flight_id", "sched_dep_local", "carrier", "origin", "dest") if c in df]
    out = df.iloc[idx][keys].reset_index(drop=True)
    out["y_true"] = np.asarray(y)[idx]
    out["p_pred"] = np.round(p[idx], 6)
    return out


def row_fingerprint(df: pd.DataFrame, label: str | None = LABEL) -> str:
    """16 hex digits that change when a split's rows (`flight_id`) or labels change.

    Together with the raw files' checksums and the feature code's version this pins the training
    data exactly; hashing integers only keeps it identical on every machine (floats computed with
    other CPU kernels could differ in their last bit). Frames without `flight_id` hash every column.
    """
    columns = [c for c in ("flight_id", label) if c is not None and c in df] if "flight_id" in df else list(df.columns)
    hashed = pd.util.hash_pandas_object(df[columns], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def raw_data_checksum(settings: Settings | None = None) -> str:
    """First 16 hex digits of the SHA-256 of the raw folder's `SHA256SUMS`: one checksum for every raw file."""
    settings = settings or get_settings()
    sums = settings.raw_dir / "SHA256SUMS"
    return hashlib.sha256(sums.read_bytes()).hexdigest()[:16] if sums.exists() else "unknown"


def version_tags(train_part: pd.DataFrame, label: str = LABEL, fit_on: str = "train") -> dict[str, str]:
    """What a run was made from: code (git commit), raw data (checksums), features (code version), rows."""
    commit, dirty = lineage.code_commit()
    tags = {
        "data.raw_sha256": raw_data_checksum(),
        "data.feature_version": FEATURE_VERSION,
        "data.fit_rows": row_fingerprint(train_part, label),
        "data.fit_split": fit_on,
    }
    if commit != "unknown":
        # MLflow's own tag name: the UI links the run to this commit
        tags |= {"mlflow.source.git.commit": commit, "code.uncommitted_changes": str(dirty).lower()}
    return tags


def train_and_log(
    model: BaseEstimator,
    splits: Mapping[str, pd.DataFrame],
    name: str,
    label: str = LABEL,
    early_stopping_rounds: int | None = None,
    log_model: bool = True,
    nested: bool = False,
    seed: int = 42,
    n_latency: int = 50,
    n_samples: int = 200,
    columns: Sequence[str] = pipeline.INPUT_COLUMNS,
    fit_on: str = "train",
    score_test: bool = True,
    **tags: str,
) -> TrainResult:
    """Fit `model` on `splits[fit_on]`, score it on valid and test, and track it all in one MLflow run.

    LightGBM pipelines are fit with valid as evaluation set (loss curves; early stopping when
    `early_stopping_rounds` is given). Logged: scalar hyperparameters, valid_*/test_* scores,
    timings, per-iteration curves with a PNG, `predictions/test_sample.csv` and the model.
    `fit_on="valid"` fits on the validation split instead (a stack of prefit members); its valid
    scores are then out of fold for the meta-learner (`stack_out_of_fold`). Tags record the code,
    data and feature versions (`version_tags`). `score_test=False` leaves the test split alone
    (timings and the prediction sample come from valid): for candidates still to be chosen between,
    the chosen one is scored later, once, by `score_on_test`.
    """
    X, y = xy(splits[fit_on], label, columns)
    Xv, yv = xy(splits["valid"], label, columns)
    Xt, yt = xy(splits["test"], label, columns) if score_test else (Xv, yv)
    with tracking.run(name, nested=nested, label=label, **tags) as active:
        start = time.perf_counter()
        fit(model, X, y, Xv, yv, early_stopping_rounds)
        train_seconds = time.perf_counter() - start

        # a stack fitted on valid is scored out of fold there, so its valid score compares with the others'
        stacked_on_valid = fit_on == "valid" and isinstance(model, StackingClassifier)
        p_valid = stack_out_of_fold(model, Xv, yv, seed) if stacked_on_valid else predict(model, Xv)
        valid = classification_scores(yv, p_valid)
        # timings and the prediction sample use test when it is scored, valid otherwise (Xt is Xv then)
        p_test, batch_seconds = timed_predict(model, Xt)
        test = classification_scores(yt, p_test) if score_test else {}
        latency = single_row_latency(model, Xt, n_latency, seed)

        booster = model.steps[-1][1] if isinstance(model, Pipeline) else model
        evals = (getattr(booster, "evals_result_", None) or {}) if is_lightgbm(model) else {}
        best = int(booster.best_iteration_) if evals and getattr(booster, "best_iteration_", 0) else None

        mlflow.set_tags(version_tags(splits[fit_on], label, fit_on))
        lineage.log_training_data(splits[fit_on], label=label)  # dataset input, raw files' checksums, commit
        mlflow.log_params(
            {
                **scalar_params(model),
                "estimator": type(booster).__name__,
                "label": label,
                "n_features": len(columns),
                "early_stopping_rounds": early_stopping_rounds,
                "fit_on": fit_on,
            }
        )
        mlflow.log_metrics(
            {
                **{f"valid_{k}": v for k, v in valid.items()},
                **{f"test_{k}": v for k, v in test.items()},
                "n_train": len(X),
                "n_valid": len(Xv),
                **({"n_test": len(Xt)} if score_test else {}),
                "train_seconds": train_seconds,
                "latency_single_row_ms": latency * 1e3,
                "batch_seconds": batch_seconds,
                "batch_ms_per_1000_rows": batch_seconds / len(Xt) * 1e6,
                **({"best_iteration": best} if best else {}),
            }
        )
        if evals:
            metrics = curve_metrics(evals)
            client = MlflowClient()
            for i in range(0, len(metrics), 1000):  # MLflow accepts at most 1,000 metrics per batch
                client.log_batch(active.info.run_id, metrics=metrics[i : i + 1000])
            mlflow.log_figure(learning_curve_figure(evals, best, title=name), "loss_curve.png")
        sampled = "test" if score_test else "valid"
        sample = sample_predictions(splits[sampled], yt, p_test, n_samples, seed)
        mlflow.log_text(sample.to_csv(index=False), f"predictions/{sampled}_sample.csv")
        model_uri = tracking.log_sklearn_model(model, X.head(5)).model_uri if log_model else None
        logger.info("{}: valid ROC AUC {:.4f}, test ROC AUC {:.4f}", name, valid["roc_auc"], test.get("roc_auc", float("nan")))
    return TrainResult(
        name=name,
        label=label,
        model=model,
        valid=valid,
        test=test,
        train_seconds=train_seconds,
        single_row_seconds=latency,
        batch_seconds=batch_seconds,
        batch_rows=len(Xt),
        n_train=len(X),
        run_id=active.info.run_id,
        model_uri=model_uri,
        evals={k: dict(v) for k, v in evals.items()},
        best_iteration=best,
        valid_pred=p_valid,
    )


def score_on_test(
    result: TrainResult,
    splits: Mapping[str, pd.DataFrame],
    columns: Sequence[str] = pipeline.INPUT_COLUMNS,
    n_samples: int = 200,
    seed: int = 42,
) -> dict[str, float]:
    """The one look at test: score a chosen model trained with `score_test=False`, and add it to its run.

    Logs the test_* scores, `n_test` and `predictions/test_sample.csv` into the model's run and
    sets `result.test`.
    """
    if result.test:
        raise ValueError(f"{result.name} was already scored on test: a second look would be a second choice")
    Xt, yt = xy(splits["test"], result.label, columns)
    p_test = predict(result.model, Xt)
    result.test = classification_scores(yt, p_test)
    with mlflow.start_run(run_id=result.run_id):
        mlflow.log_metrics({**{f"test_{k}": v for k, v in result.test.items()}, "n_test": len(Xt)})
        sample = sample_predictions(splits["test"], yt, p_test, n_samples, seed)
        mlflow.log_text(sample.to_csv(index=False), "predictions/test_sample.csv")
    logger.info("{}: test ROC AUC {:.4f} (the one look)", result.name, result.test["roc_auc"])
    return result.test


def comparison_table(results: Sequence[TrainResult], split: str = "test") -> pd.DataFrame:
    """One row per model: metrics on `split` ("valid" or "test") rounded to 4 decimals, timings as text."""
    rows = pd.DataFrame([r.row() for r in results])
    prefix = "valid_" if split == "valid" else ""
    return pd.DataFrame(
        {
            "model": rows["model"],
            "label": rows["label"],
            "train rows": rows["train_rows"].map("{:,}".format),
            "ROC AUC": rows[f"{prefix}roc_auc"].round(4),
            "PR AUC": rows[f"{prefix}pr_auc"].round(4),
            "Brier": rows[f"{prefix}brier"].round(4),
            "training": rows["train_seconds"].map(duration),
            "latency, 1 row": rows["single_row_seconds"].map(duration),
            "batch, per 1,000 rows": rows["per_1000_rows_seconds"].map(duration),
        }
    )


# --------------------------------------------------------------------------- choosing on validation


def weighted_roc_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `p` for each row of `weights` (one weight per flight; ties count half).

    With all weights 1 it is `roc_auc_score`; with bootstrap counts as weights it is the AUC of a
    resample, computed in one pass over the sorted scores instead of re-sorting every resample.
    """
    y = np.asarray(y, dtype="float64")
    weights = np.atleast_2d(np.asarray(weights, dtype="float64"))
    levels, inverse = np.unique(np.asarray(p), return_inverse=True)
    out = np.empty(len(weights))
    for i, w in enumerate(weights):
        positive = np.bincount(inverse, weights=w * y, minlength=len(levels))
        negative = np.bincount(inverse, weights=w * (1 - y), minlength=len(levels))
        below = np.cumsum(negative) - negative
        out[i] = float((positive * (below + 0.5 * negative)).sum() / (positive.sum() * negative.sum()))
    return out


def bootstrap_weights(n_rows: int, n_boot: int = 200, seed: int = 42, groups: np.ndarray | pd.Series | None = None) -> np.ndarray:
    """`n_boot` bootstrap resamples of `n_rows` rows as counts per row (shape n_boot x n_rows).

    With `groups` (e.g. each flight's day) whole groups are resampled: flights of one day share
    their weather and delays, so they are not independent draws, and resampling them one by one
    would make an interval look narrower than the data allow.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return np.stack([np.bincount(rng.integers(0, n_rows, n_rows), minlength=n_rows) for _ in range(n_boot)])
    codes, uniques = pd.factorize(pd.Series(groups).reset_index(drop=True), sort=True)
    if len(codes) != n_rows:
        raise ValueError(f"groups has {len(codes)} entries for {n_rows} rows")
    n_groups = len(uniques)
    return np.stack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes] for _ in range(n_boot)])


def choose_on_validation(
    y_valid: pd.Series | np.ndarray,
    predictions: Mapping[str, np.ndarray],
    n_boot: int = 200,
    seed: int = 42,
    level: float = 0.95,
    models_per_prediction: Mapping[str, int] | None = None,
    groups: np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """Pick a model on the validation split only: as good as the best, and the cheapest to serve.

    For each candidate, a paired bootstrap of the validation flights (of whole `groups`, e.g.
    days, when given) gives an interval for how far its ROC AUC lies behind the best candidate's. Candidates whose interval reaches 0 are "as good
    as the best" (the data cannot tell them apart); among them the one with the fewest models per
    prediction wins, then the higher ROC AUC. Returns one row per candidate, best first.
    """
    costs = {**MODELS_PER_PREDICTION, **(models_per_prediction or {})}
    y = np.asarray(y_valid, dtype="float64")
    weights = bootstrap_weights(len(y), n_boot, seed, groups)
    point = {name: float(weighted_roc_auc(y, p, np.ones(len(y)))[0]) for name, p in predictions.items()}
    best = max(point, key=point.__getitem__)
    best_boot = weighted_roc_auc(y, predictions[best], weights)
    tail = (1 - level) / 2
    rows = []
    for name, p in predictions.items():
        behind = best_boot - weighted_roc_auc(y, p, weights) if name != best else np.zeros(n_boot)
        low, high = np.quantile(behind, [tail, 1 - tail])
        rows.append(
            {
                "model": name,
                "valid ROC AUC": round(point[name], 4),
                "behind the best": round(point[best] - point[name], 4),
                f"{level:.0%} interval": f"[{low:+.4f}, {high:+.4f}]",
                "as good as the best": bool(low <= 0),
                "models per prediction": int(costs.get(name, 1)),
            }
        )
    table = pd.DataFrame(rows).sort_values("valid ROC AUC", ascending=False, kind="stable").set_index("model")
    tied = table[table["as good as the best"]]
    chosen = tied.sort_values(["models per prediction", "valid ROC AUC"], ascending=[True, False], kind="stable").index[0]
    table["chosen"] = table.index == chosen
    return table


def chosen_model(table: pd.DataFrame) -> str:
    """The name `choose_on_validation` chose."""
    return str(table.index[table["chosen"]][0])


def refit_recipe(
    choice: str, splits: Mapping[str, pd.DataFrame], seed: int = 42, fast: bool = True, tuned_params: Mapping[str, object] | None = None
) -> tuple[BaseEstimator, int | None, str]:
    """The chosen recipe, unfitted, to retrain on a whole training split: (model, early stopping, fit_on).

    `choice` is a zoo name, "stacking" (its members are refitted on `splits["train"]` here, the
    meta-learner is left to fit on valid), "lightgbm, tuned" with the search's `tuned_params`
    (the number of trees is chosen again by early stopping), or `DEFAULT_RECIPE`, the course's
    LightGBM defaults (`headline_model`).
    """
    if choice == "stacking":
        X, y = xy(splits["train"])
        Xv, yv = xy(splits["valid"])
        members = {}
        for kind in ("logreg", "lightgbm", "bagging"):
            members[kind] = fit(make_zoo_model(kind, seed, fast), X, y, Xv, yv, 50 if kind == "lightgbm" else None)
        return stacking_model(members), None, "valid"
    if choice == "lightgbm, tuned":
        params = {k: v for k, v in (tuned_params or {}).items() if k != "n_estimators"}
        return lightgbm_model(seed, fast, **params), 50, "train"
    if choice == DEFAULT_RECIPE:
        return headline_model(seed), HEADLINE_EARLY_STOPPING, "train"
    return make_zoo_model(choice, seed, fast), (50 if choice == "lightgbm" else None), "train"


def log_model_to_run(run_id: str, model: BaseEstimator, input_example: pd.DataFrame) -> str:
    """Log a fitted model into an existing run (e.g. the finalist chosen after its run ended); returns its URI."""
    with mlflow.start_run(run_id=run_id):
        return tracking.log_sklearn_model(model, input_example).model_uri


# --------------------------------------------------------------------------- the headline figure


@dataclass
class Headline:
    """The course's headline figure for one label: what was trained on what, and the test ROC AUC."""

    label: str
    roc_auc: float
    train_rows: int
    test_rows: int
    trees: int
    model: Pipeline

    def row(self) -> dict[str, object]:
        """The figure with its split and training size, for a table."""
        return {
            "label": self.label,
            "split": "train Jan–Aug, early stopping on Sep–Oct, test Nov–Dec",
            "train rows": f"{self.train_rows:,}",
            "test rows": f"{self.test_rows:,}",
            "trees": self.trees,
            "test ROC AUC": round(self.roc_auc, 4),
        }


def headline_model(seed: int = 42) -> Pipeline:
    """The headline recipe: LightGBM with the course's defaults (`pipeline.lightgbm_params`), room for many trees."""
    return pipeline.make_model("lightgbm", seed=seed, n_estimators=HEADLINE_MAX_TREES, n_jobs=N_JOBS)


def headline(splits: Mapping[str, pd.DataFrame], label: str = LABEL, seed: int = 42, test_ids: np.ndarray | None = None) -> Headline:
    """Train the headline recipe on the whole training split, stop early on valid, score test once.

    `label` is the course's `late` or the tutorial's `late30` (flown flights only). The training
    size is whatever `splits` holds: 60,000 flights in fast mode, every training flight otherwise.
    """
    parts = peer_splits(splits) if label == PEER_LABEL else dict(splits)
    X, y = xy(parts["train"], label)
    Xv, yv = xy(parts["valid"], label)
    test = parts["test"] if test_ids is None else parts["test"][parts["test"]["flight_id"].isin(test_ids)]
    Xt, yt = xy(test, label)
    model = fit(headline_model(seed), X, y, Xv, yv, HEADLINE_EARLY_STOPPING)
    auc = float(roc_auc_score(yt, predict(model, Xt)))
    trees = int(model.named_steps["model"].best_iteration_)
    logger.info("headline, {}: test ROC AUC {:.4f} ({} training rows, {} trees)", label, auc, len(X), trees)
    return Headline(label=label, roc_auc=auc, train_rows=len(X), test_rows=len(Xt), trees=trees, model=model)


# --------------------------------------------------------------------------- model assumptions


def log_odds_by_bin(df: pd.DataFrame, column: str, label: str = LABEL, bins: int = 10) -> pd.DataFrame:
    """Empirical log-odds of `label` per quantile bin of `column`, next to a one-feature logistic fit.

    A logistic regression assumes the log-odds move along a straight line in each feature (with
    the others fixed); where the two columns part, one linear term cannot follow the data.
    """
    known = df[[column, label]].dropna()
    x, y = known[column].to_numpy(dtype="float64"), known[label].astype("int64").to_numpy()
    line = LogisticRegression().fit(((x - x.mean()) / x.std())[:, None], y)
    bucket = pd.qcut(x, bins, duplicates="drop")
    grouped = pd.DataFrame({"x": x, "y": y}).groupby(bucket, observed=True)
    rate = grouped["y"].mean()
    middle = grouped["x"].median().to_numpy()
    fitted = line.decision_function(((middle - x.mean()) / x.std())[:, None])
    return pd.DataFrame(
        {
            "flights": grouped.size().to_numpy(),
            f"median {column}": np.round(middle, 2),
            f"{label} rate": rate.round(4).to_numpy(),
            "log-odds (data)": np.round(np.log(rate / (1 - rate)).to_numpy(), 3),
            "log-odds (straight line)": np.round(fitted, 3),
        },
        index=pd.RangeIndex(1, len(rate) + 1, name="bin"),
    )


def logged_requirements(model_uri: str) -> list[str]:
    """The pinned requirements stored with a logged model (`models:/m-<id>`): what the service installs."""
    model = mlflow.get_logged_model(model_uri.rstrip("/").split("/")[-1])
    text = mlflow.artifacts.load_text(model.artifact_location.rstrip("/") + "/requirements.txt")
    return [line for line in text.splitlines() if line.strip()]


def tracked_summary(run_id: str) -> dict[str, list[str]]:
    """Names of the params, metrics (curves marked by their step count) and artifacts of a run."""
    client = MlflowClient()
    run = client.get_run(run_id)
    metrics = []
    for key in sorted(run.data.metrics):
        steps = len(client.get_metric_history(run_id, key))
        metrics.append(f"{key} ({steps} steps)" if steps > 1 else key)

    def walk(path: str | None = None) -> list[str]:
        out = []
        for item in client.list_artifacts(run_id, path):
            out.extend(walk(item.path) if item.is_dir else [item.path])
        return out

    return {"params": sorted(run.data.params), "metrics": metrics, "artifacts": sorted(walk())}
