"""Baselines: the scores any model of the flight-delay desk has to beat (Huyen, 2022, ch. 6).

A model's number means little on its own: 0.70 ROC AUC is good if guessing gives 0.50 and a
one-line rule gives 0.55, and useless if the rule already gives 0.72. Four references, all with
the scikit-learn API so they are fitted, scored and logged exactly like real models:

* `RandomBaseline`: uniform random probabilities (the floor: ROC AUC about 0.5);
* `ZeroRule`: always the training prevalence (the best constant; its log loss and Brier score are
  what "knowing nothing but the base rate" costs);
* `HeuristicBaseline`: what a dispatcher would say at decision time without a model;
* logistic regression (`mlsys.pipeline.make_model("logreg")`, solved with Newton's method, see
  `logreg_model`): the simplest learned model.

Every baseline is fitted on the training split only and scored on the split(s) asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from mlsys.metrics import classification_scores
from mlsys.pipeline import INPUT_COLUMNS, make_model

__all__ = [
    "RandomBaseline",
    "ZeroRule",
    "HeuristicBaseline",
    "BASELINES",
    "baseline_models",
    "fit_models",
    "predict_models",
    "score_predictions",
    "score_models",
    "evaluate_baselines",
    "log_baselines",
    "logreg_model",
    "sample_rows",
    "training_size_curve",
]

#: Baselines in the order lessons show them.
BASELINES = ("random", "zero-rule", "heuristic", "logreg")


def logreg_model(seed: int = 42) -> BaseEstimator:
    """The logistic-regression baseline: the course's linear pipeline, solved to convergence by Newton's method.

    lbfgs (scikit-learn's default) stops at a loose tolerance where the path it took still shows:
    under other BLAS kernels (`OPENBLAS_CORETYPE=Prescott`, other CPUs) its probabilities moved by
    0.001 on average, enough to move the cost of a threshold by 0.14 %. `newton-cholesky` converges
    in a few steps on these 1,225 columns, for the same CPU time, and lands on the same
    probabilities (to 1e-15) on every kernel.
    """
    return make_model("logreg", seed=seed, solver="newton-cholesky")


#: Models `training_size_curve` compares: the simplest learned baseline and a boosted tree model
#: (one thread: on a shared 2-core machine, threads that wait on each other cost more than they save).
CURVE_MODELS = {
    "logreg": logreg_model,
    "lightgbm": lambda seed: make_model("lightgbm", seed=seed, n_jobs=1),
}


def _labels(y: object) -> np.ndarray:
    """A 0/1 label (pandas nullable Int64, bool or float) as a float array."""
    return np.asarray(pd.Series(y).astype("float64"), dtype="float64")


def _two_columns(p: np.ndarray) -> np.ndarray:
    """scikit-learn's `predict_proba` shape: P(class 0), P(class 1)."""
    return np.column_stack([1.0 - p, p])


class RandomBaseline(ClassifierMixin, BaseEstimator):
    """Uniform random probabilities, the same ones for the same `seed` and number of rows."""

    def __init__(self, seed: int = 42):
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: object) -> RandomBaseline:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.shape(X)[1]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        # a fresh generator per call: scoring the same split twice gives the same numbers
        p = np.random.default_rng(self.seed).uniform(size=len(X))
        return _two_columns(p)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class ZeroRule(ClassifierMixin, BaseEstimator):
    """Predicts the training prevalence for every row (and the majority class as a label)."""

    def fit(self, X: pd.DataFrame, y: object) -> ZeroRule:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.shape(X)[1]
        self.prevalence_ = float(np.mean(_labels(y)))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return _two_columns(np.full(len(X), self.prevalence_))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), int(self.prevalence_ >= 0.5))


class HeuristicBaseline(ClassifierMixin, BaseEstimator):
    """A dispatcher's rule at decision time: late if the origin is congested or it is raining.

    Two conditions, both known 2 h before departure (point-in-time features):

    * congested: flights that left the origin in the last hour were `delay_minutes` or more late
      on average (`origin_mean_delay_1h`; no departures in the hour counts as not congested);
    * raining: the latest hourly observation at the origin has precipitation above `rain_inches`
      (`wx_precip`).

    `predict` is 1 when either condition holds. Probability mapping for `predict_proba`: a row
    gets the late rate, *measured on the training split*, of training rows that meet the same
    number of conditions (0, 1 or 2); a count with no training rows gets the training prevalence.
    So the rule itself is fixed and only three rates are learned.
    """

    def __init__(
        self,
        delay_minutes: float = 15.0,
        rain_inches: float = 0.0,
        delay_column: str = "origin_mean_delay_1h",
        rain_column: str = "wx_precip",
    ):
        self.delay_minutes = delay_minutes
        self.rain_inches = rain_inches
        self.delay_column = delay_column
        self.rain_column = rain_column

    def conditions(self, X: pd.DataFrame) -> pd.DataFrame:
        """One boolean column per condition (missing values count as False)."""
        delay = pd.to_numeric(X[self.delay_column], errors="coerce")
        rain = pd.to_numeric(X[self.rain_column], errors="coerce")
        return pd.DataFrame(
            {"congested": (delay >= self.delay_minutes).fillna(False), "raining": (rain > self.rain_inches).fillna(False)},
            index=X.index,
        ).astype(bool)

    def n_conditions(self, X: pd.DataFrame) -> np.ndarray:
        return self.conditions(X).sum(axis=1).to_numpy()

    def fit(self, X: pd.DataFrame, y: object) -> HeuristicBaseline:
        y = _labels(y)
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.shape(X)[1]
        self.prevalence_ = float(y.mean())
        n = self.n_conditions(X)
        self.rates_ = {k: float(y[n == k].mean()) if (n == k).any() else self.prevalence_ for k in (0, 1, 2)}
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        rates = np.array([self.rates_[k] for k in (0, 1, 2)], dtype="float64")
        return _two_columns(rates[self.n_conditions(X)])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.n_conditions(X) > 0).astype(int)


def baseline_models(seed: int = 42, names: Iterable[str] = BASELINES) -> dict[str, BaseEstimator]:
    """Unfitted baselines by name (`random`, `zero-rule`, `heuristic`, `logreg`)."""
    factories = {
        "random": lambda: RandomBaseline(seed=seed),
        "zero-rule": ZeroRule,
        "heuristic": HeuristicBaseline,
        "logreg": lambda: logreg_model(seed),
    }
    unknown = set(names) - set(factories)
    if unknown:
        raise ValueError(f"unknown baseline(s) {sorted(unknown)}: choose from {BASELINES}")
    return {name: factories[name]() for name in names}


def _labelled(df: pd.DataFrame, label: str) -> pd.DataFrame:
    """Rows with a label (the peer label is missing for cancelled and diverted flights)."""
    return df[df[label].notna()]


def fit_models(
    models: Mapping[str, BaseEstimator], train: pd.DataFrame, label: str = "late", columns: Sequence[str] | None = INPUT_COLUMNS
) -> dict[str, BaseEstimator]:
    """Fit a clone of each model on the training rows; returns the fitted models by name."""
    train = _labelled(train, label)
    X = train[list(columns)] if columns is not None else train
    y = train[label].astype("int64")
    return {name: clone(model).fit(X, y) for name, model in models.items()}


def predict_models(
    fitted: Mapping[str, BaseEstimator],
    splits: Mapping[str, pd.DataFrame],
    label: str = "late",
    on: Sequence[str] = ("valid", "test"),
    columns: Sequence[str] | None = INPUT_COLUMNS,
) -> dict[str, dict[str, np.ndarray]]:
    """P(label = 1) of each fitted model on the labelled rows of each split: `{model: {split: p}}`.

    Predicting once and scoring from the result lets a notebook reuse the probabilities.
    """
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in fitted}
    for split in on:
        part = _labelled(splits[split], label)
        X = part[list(columns)] if columns is not None else part
        for name, model in fitted.items():
            out[name][split] = model.predict_proba(X)[:, 1]
    return out


def score_predictions(predictions: Mapping[str, Mapping[str, np.ndarray]], splits: Mapping[str, pd.DataFrame], label: str = "late") -> pd.DataFrame:
    """`classification_scores` for each (model, split) of `predict_models` output, one row each."""
    rows = []
    for name, by_split in predictions.items():
        for split, p in by_split.items():
            y = _labelled(splits[split], label)[label]
            rows.append({"model": name, "split": split, "rows": len(y), **classification_scores(y, p)})
    order = {split: i for i, split in enumerate(next(iter(predictions.values()), {}))}
    return pd.DataFrame(rows).sort_values("split", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def score_models(
    fitted: Mapping[str, BaseEstimator],
    splits: Mapping[str, pd.DataFrame],
    label: str = "late",
    on: Sequence[str] = ("valid", "test"),
    columns: Sequence[str] | None = INPUT_COLUMNS,
) -> pd.DataFrame:
    """`classification_scores` of each fitted model on each split in `on`: one row per (model, split)."""
    return score_predictions(predict_models(fitted, splits, label, on, columns), splits, label)


def evaluate_baselines(
    splits: Mapping[str, pd.DataFrame],
    label: str = "late",
    seed: int = 42,
    on: Sequence[str] = ("valid", "test"),
    names: Iterable[str] = BASELINES,
    columns: Sequence[str] | None = INPUT_COLUMNS,
) -> pd.DataFrame:
    """Fit every baseline on `splits["train"]` only and score it on each split in `on`."""
    fitted = fit_models(baseline_models(seed, names), splits["train"], label, columns)
    return score_models(fitted, splits, label, on, columns)


def log_baselines(scores: pd.DataFrame, label: str = "late", **params: object) -> dict[str, str]:
    """Log one MLflow run per model (`baseline-<model>`) with `<split>_<metric>` metrics; returns run ids."""
    import mlflow  # local import: importing the baselines must not start MLflow

    from mlsys import tracking

    metric_columns = [c for c in scores.columns if c not in {"model", "split", "rows"}]
    run_ids = {}
    for model, block in scores.groupby("model", sort=False):
        with tracking.run(f"baseline-{model}", stage="baseline") as active:
            mlflow.log_params({"model": model, "label": label, **params})
            metrics = {f"{row.split}_rows": float(row.rows) for row in block.itertuples(index=False)}
            for row in block.itertuples(index=False):
                metrics |= {f"{row.split}_{m}": float(getattr(row, m)) for m in metric_columns}
            # one batch per run (a round trip per metric is slow on a remote server); NaN is not logged
            mlflow.log_metrics({name: value for name, value in metrics.items() if np.isfinite(value)})
            run_ids[str(model)] = active.info.run_id
    return run_ids


def sample_rows(df: pd.DataFrame, n: int | None, seed: int = 42) -> pd.DataFrame:
    """`n` random rows of `df` in their original order (all rows if `n` is None or too large).

    The same draw as lesson 05's `mlsys.train.subsample`, so a size here matches its zoo's sample.
    """
    if n is None or n >= len(df):
        return df
    return df.sample(n, random_state=seed).sort_index().reset_index(drop=True)


def training_size_curve(
    splits: Mapping[str, pd.DataFrame],
    sizes: Sequence[int],
    kinds: Sequence[str] = ("logreg", "lightgbm"),
    label: str = "late",
    seed: int = 42,
    on: str = "valid",
    fitted: Mapping[str, BaseEstimator] | None = None,
    columns: Sequence[str] = INPUT_COLUMNS,
) -> pd.DataFrame:
    """Scores on split `on` of each model kind trained on `sizes` random training flights: more data or a richer model?

    A size at or above the training split's length uses the whole split, and reuses a model of that
    kind already fitted on it if `fitted` has one (so a lesson does not fit the same model twice).
    """
    unknown = set(kinds) - set(CURVE_MODELS)
    if unknown:
        raise ValueError(f"unknown model kind(s) {sorted(unknown)}: choose from {sorted(CURVE_MODELS)}")
    train = _labelled(splits["train"], label)
    part = _labelled(splits[on], label)
    rows = []
    for kind in kinds:
        for n in sizes:
            rows_used = min(n, len(train))
            if rows_used == len(train) and fitted and kind in fitted:
                model = fitted[kind]
            else:
                sample = sample_rows(train, n, seed)
                model = CURVE_MODELS[kind](seed).fit(sample[list(columns)], sample[label].astype("int64"))
            p = model.predict_proba(part[list(columns)])[:, 1]
            rows.append({"model": kind, "train_rows": rows_used, **classification_scores(part[label], p)})
    return pd.DataFrame(rows)
