"""Feature preprocessing and model pipelines (scikit-learn API: fit on train, transform anywhere).

Every statistic a transformer needs (medians, scales, bin edges, category lists) is learned in
`fit`, which the course only ever calls on the training split; the fitted pipeline is the unit
that is logged to MLflow, registered, and loaded by the prediction service.

Two preprocessors:

* `linear`: median imputation with missing-value indicators, standard scaling, quantile bins for
  the hour of day, one-hot categories (rare ones pooled), hashed high-cardinality ids (tail
  number, route) and the origin × hour cross.
* `tree`: numbers as they are (LightGBM handles missing values itself) and categories as pandas
  categoricals with the category list fixed at fit time.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import FeatureHasher
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder, StandardScaler

from mlsys.features import CATEGORICAL, NUMERIC

HASHED = ["tailnum", "route"]
HASH_FEATURES = 2**10
#: columns a request or a feature row must carry for the pipelines below
INPUT_COLUMNS = [*CATEGORICAL, *NUMERIC, *HASHED]


class HashingEncoder(TransformerMixin, BaseEstimator):
    """Hash `column=value` strings into a fixed number of features (the hashing trick).

    Stateless: new tail numbers or routes need no refit and no vocabulary; collisions are the price.
    """

    def __init__(self, n_features: int = HASH_FEATURES):
        self.n_features = n_features

    def fit(self, X: pd.DataFrame, y: object = None) -> HashingEncoder:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame):
        frame = pd.DataFrame(X)
        # one object array per column: iterating plain Python strings is several times faster than
        # iterating rows of (Arrow-backed) string columns, and gives the same tokens
        columns = [
            [f"{col}={value}" if isinstance(value, str) else None for value in frame[col].to_numpy(dtype=object)] for col in frame.columns
        ]
        tokens = [[token for token in row if token is not None] for row in zip(*columns, strict=True)] if columns else [[] for _ in range(len(frame))]
        return FeatureHasher(n_features=self.n_features, input_type="string", alternate_sign=False).transform(tokens)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.array([f"hash_{i}" for i in range(self.n_features)], dtype=object)


class Cross(TransformerMixin, BaseEstimator):
    """Concatenate columns into one string feature, e.g. origin × scheduled hour -> `JFK|17`."""

    def __init__(self, columns: Sequence[str], name: str = "cross"):
        self.columns = columns
        self.name = name

    def fit(self, X: pd.DataFrame, y: object = None) -> Cross:
        self.n_features_in_ = len(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        parts = [X[c].astype("string").fillna("?") for c in self.columns]
        joined = parts[0]
        for part in parts[1:]:
            joined = joined + "|" + part.str.replace(r"\.0$", "", regex=True)
        return pd.DataFrame({self.name: joined.astype(object)}, index=X.index)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.array([self.name], dtype=object)


class CategoryEncoder(TransformerMixin, BaseEstimator):
    """Cast columns to pandas categoricals whose categories are learned at fit time.

    LightGBM splits on pandas categoricals natively; fixing the category list in `fit` keeps the
    integer codes identical between training and serving, and unseen values become missing.
    """

    def fit(self, X: pd.DataFrame, y: object = None) -> CategoryEncoder:
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in X.columns}
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.array(list(X.columns), dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({c: self._encode(X[c], cats) for c, cats in self.categories_.items()}, index=X.index)

    @staticmethod
    def _encode(values: pd.Series, categories: list[str]) -> pd.Categorical:
        # unseen values are set missing explicitly (pandas deprecates dropping them silently)
        text = values.astype("string")
        known = text.isin(categories) & text.notna()
        return pd.Categorical(text.astype(object).where(known, None), categories=categories)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        return np.array(list(self.categories_), dtype=object)


def linear_preprocessor(numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = CATEGORICAL) -> ColumnTransformer:
    """Scaled, imputed, one-hot, hashed and crossed features for linear models."""
    numeric = list(numeric)
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
            (
                "hour_bins",
                make_pipeline(
                    SimpleImputer(strategy="median"),
                    # subsample=None: the edges are the quantiles of every training row, not of a sample
                    KBinsDiscretizer(
                        n_bins=8, encode="onehot", strategy="quantile", quantile_method="averaged_inverted_cdf", subsample=None
                    ),
                ),
                ["sched_minute_of_day"],
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=100),
                ),
                list(categorical),
            ),
            ("hashed", HashingEncoder(), HASHED),
            (
                "origin_x_hour",
                make_pipeline(Cross(["origin", "sched_hour"], "origin_x_hour"), OneHotEncoder(handle_unknown="ignore")),
                ["origin", "sched_hour"],
            ),
        ],
        sparse_threshold=1.0,
    )


def tree_preprocessor(numeric: Sequence[str] = NUMERIC, categorical: Sequence[str] = CATEGORICAL) -> ColumnTransformer:
    """Numbers unchanged, categories as pandas categoricals: what LightGBM wants."""
    transformer = ColumnTransformer(
        [("num", "passthrough", list(numeric)), ("cat", CategoryEncoder(), list(categorical))],
        verbose_feature_names_out=False,
    )
    return transformer.set_output(transform="pandas")


def lightgbm_params(seed: int = 42, **params: object) -> dict[str, object]:
    """The course's LightGBM settings (repeatable on the same machine), with `params` on top."""
    defaults: dict[str, object] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 200,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.8,
        "cat_smooth": 50,
        "random_state": seed,
        "deterministic": True,
        "force_row_wise": True,
        "n_jobs": 2,
        "verbose": -1,
    }
    return {**defaults, **params}


def lightgbm_classifier(seed: int = 42, **params: object) -> lgb.LGBMClassifier:
    """LightGBM classifier with `lightgbm_params`."""
    return lgb.LGBMClassifier(**lightgbm_params(seed, **params))


def make_model(
    kind: str = "lightgbm",
    seed: int = 42,
    numeric: Sequence[str] = NUMERIC,
    categorical: Sequence[str] = CATEGORICAL,
    **params: object,
) -> Pipeline:
    """A full pipeline (preprocessing + estimator) by name: `logreg` or `lightgbm`."""
    if kind == "logreg":
        estimator = LogisticRegression(max_iter=2000, C=float(params.pop("C", 1.0)), random_state=seed, **params)
        return Pipeline([("prep", linear_preprocessor(numeric, categorical)), ("model", estimator)])
    if kind == "lightgbm":
        return Pipeline([("prep", tree_preprocessor(numeric, categorical)), ("model", lightgbm_classifier(seed, **params))])
    raise ValueError(f"unknown model kind {kind!r}: use 'logreg' or 'lightgbm'")


def fit_early_stopping(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, X_valid: pd.DataFrame, y_valid: pd.Series, rounds: int = 50
) -> Pipeline:
    """Fit a `make_model("lightgbm")` pipeline, stopping when the validation log loss stops improving.

    The preprocessor is fitted on `X` only; the validation rows are transformed with it (never fitted
    on), then LightGBM watches them to pick its number of trees.
    """
    prep = clone(model.named_steps["prep"]).fit(X, y)
    estimator = model.named_steps["model"]
    estimator.fit(
        prep.transform(X), y, eval_X=prep.transform(X_valid), eval_y=y_valid, callbacks=[lgb.early_stopping(rounds, verbose=False)]
    )
    model.steps[0] = ("prep", prep)
    return model


def block_widths(prep: ColumnTransformer) -> pd.DataFrame:
    """Input and output columns of each block of a fitted `ColumnTransformer` (e.g. `num`, `hashed`)."""
    blocks = pd.Series(prep.get_feature_names_out()).str.split("__", n=1).str[0]
    outputs = blocks.value_counts(sort=False)
    rows = [
        {"block": name, "input columns": len(cols), "output columns": int(outputs.get(name, 0))}
        for name, _, cols in prep.transformers_
        if name in outputs.index
    ]
    return pd.DataFrame(rows).set_index("block")


def transformed_frame(prep: ColumnTransformer, X: pd.DataFrame) -> pd.DataFrame:
    """What a fitted preprocessor hands the model, as a labelled dense frame (for a few rows)."""
    out = prep.transform(X)
    if hasattr(out, "toarray"):
        out = out.toarray()
    return pd.DataFrame(out, columns=prep.get_feature_names_out(), index=X.index)


def hash_buckets(tokens: Sequence[str], n_features: int = HASH_FEATURES) -> np.ndarray:
    """The column `HashingEncoder` puts each `column=value` token in."""
    hashed = FeatureHasher(n_features=n_features, input_type="string", alternate_sign=False).transform([[t] for t in tokens])
    return hashed.indices


def hash_collisions(frame: pd.DataFrame, columns: Sequence[str] = HASHED, sizes: Sequence[int] = (2**10,)) -> pd.DataFrame:
    """How many distinct `column=value` tokens share a hashed column with another token, per table size.

    All `columns` hash into the same table, as in `HashingEncoder`. `expected` is the share a
    perfectly random hash gives: 1 - (1 - 1/m)^(n - 1) for n tokens in m columns.
    """
    tokens = sorted({f"{c}={v}" for c in columns for v in frame[c].dropna().unique()})
    rows = []
    for m in sizes:
        buckets = hash_buckets(tokens, m)
        per_bucket = np.bincount(buckets, minlength=m)
        shared = per_bucket[buckets] > 1
        rows.append(
            {
                "columns": m,
                "tokens": len(tokens),
                "columns used": int((per_bucket > 0).sum()),
                "tokens sharing a column": round(float(shared.mean()), 4),
                "expected": round(1 - (1 - 1 / m) ** (len(tokens) - 1), 4),
            }
        )
    return pd.DataFrame(rows).set_index("columns")
