"""Feature selection by permutation importance (Huyen, 2022, ch. 5: features must earn their keep).

A feature's permutation importance is how much the validation score drops when that one raw input
column is shuffled, which breaks its link with the label while keeping its distribution. Features
whose drop is within noise (mean <= std over the repeats) or negative are candidates to remove:
each one costs computation, monitoring and a way for the pipeline to break.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from mlsys import features, pipeline
from mlsys.logger import logger


def permutation_table(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, seed: int = 42, n_repeats: int = 3, max_rows: int | None = 5_000
) -> pd.DataFrame:
    """Permutation importance (drop in ROC AUC) of every column of `X` for a fitted pipeline.

    `X` holds the pipeline's raw input columns, so a column is permuted before any preprocessing.
    Rows are sampled to `max_rows` with `seed` to keep it fast. `keep` is False for features
    whose mean importance is <= 0 or <= its standard deviation.
    """
    if max_rows is not None and len(X) > max_rows:
        X = X.sample(max_rows, random_state=seed)
        y = y.loc[X.index]
    estimator, inputs = model, X
    prep = model.named_steps.get("prep") if isinstance(model, Pipeline) else None
    if prep is not None and list(prep.get_feature_names_out()) == list(X.columns):
        # one output column per input column, each computed from its own column only (the tree
        # preprocessor): shuffling a column before or after the transform is the same, so transform
        # once instead of once per shuffle
        estimator, inputs = model[-1], prep.transform(X)
    result = permutation_importance(estimator, inputs, y, scoring="roc_auc", n_repeats=n_repeats, random_state=seed, n_jobs=1)
    table = pd.DataFrame({"importance": result.importances_mean, "std": result.importances_std}, index=pd.Index(X.columns, name="feature"))
    table["keep"] = (table["importance"] > 0) & (table["importance"] > table["std"])
    logger.info("permutation importance: {} of {} features earn their keep", int(table["keep"].sum()), len(table))
    return table.sort_values("importance", ascending=False)


def kept_features(table: pd.DataFrame) -> list[str]:
    """The features `permutation_table` marks as worth keeping, in the feature table's order."""
    keep = set(table.index[table["keep"]])
    return [f for f in features.FEATURES if f in keep]


def fit_lightgbm(train: pd.DataFrame, label: str, columns: Sequence[str], seed: int = 42) -> Pipeline:
    """`make_model("lightgbm")` restricted to `columns` (numeric and categorical kept apart)."""
    numeric = [c for c in columns if c in features.NUMERIC]
    categorical = [c for c in columns if c in features.CATEGORICAL]
    # one thread: on a busy 2-core machine LightGBM's threads wait on each other (same model either way)
    model = pipeline.make_model("lightgbm", seed=seed, numeric=numeric, categorical=categorical, n_jobs=1)
    return model.fit(train[[*numeric, *categorical]], train[label])


def score_models(models: dict[str, Pipeline], splits: dict[str, pd.DataFrame], label: str = "late") -> pd.DataFrame:
    """Number of input features and ROC AUC on the valid and test splits of each fitted model."""
    rows = []
    for name, model in models.items():
        columns = list(model.feature_names_in_)
        row: dict[str, object] = {"model": name, "features": len(columns)}
        for part in ("valid", "test"):
            frame = splits[part]
            row[f"{part} roc_auc"] = round(float(roc_auc_score(frame[label], model.predict_proba(frame[columns])[:, 1])), 4)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def score_by_month(models: dict[str, Pipeline], frame: pd.DataFrame, label: str = "late") -> pd.DataFrame:
    """ROC AUC of each fitted model in each calendar month of `frame` (e.g. the validation split's two)."""
    month = frame["sched_dep_local"].dt.month_name().str[:3]
    rows = {}
    for name, model in models.items():
        columns = list(model.feature_names_in_)
        p = pd.Series(model.predict_proba(frame[columns])[:, 1], index=frame.index)
        scores = {"features": len(columns)}
        for value in month.unique():
            part = month == value
            scores[f"{value} roc_auc"] = round(float(roc_auc_score(frame.loc[part, label], p[part])), 4)
        rows[name] = scores
    return pd.DataFrame(rows).T.astype({"features": "int64"}).rename_axis("model")


def window_ranges(splits: dict[str, pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """The range (min – max) of each column in each split: what a window can and cannot show."""

    def span(values: pd.Series) -> str:
        return f"{values.min():g} – {values.max():g}"

    return pd.DataFrame({name: {col: span(part[col]) for col in columns} for name, part in splits.items()}).rename_axis("feature")
