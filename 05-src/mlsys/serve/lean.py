"""A lean scoring path: the champion's booster, category lists and calibrator, applied to numpy rows.

Scoring one flight through the fitted scikit-learn pipeline costs about 10 ms, nearly all of it
per call: a one-row DataFrame goes through `ColumnTransformer`, `CategoryEncoder` (pandas
categoricals), LightGBM's pandas handling and `CalibratedClassifierCV`. The arithmetic underneath
is small: look up three category codes, walk the trees, apply the calibration curve.
`LeanModel.from_pipeline` takes those parts out of a fitted model once and does only that
arithmetic per call, with the same results (`tests/serve/test_lean.py` checks 2,000 test rows
to 1e-9).

Recognised structures (anything else is scored by the model itself, `is_lean` is False):

* `Pipeline([prep: ColumnTransformer(passthrough numbers, CategoryEncoder), model: LGBMClassifier])`
  (`pipeline.make_model("lightgbm")`, `evaluate.constrained_lightgbm`);
* `CalibratedClassifierCV` with sigmoid or isotonic calibration around such a pipeline, frozen
  (`FrozenEstimator`, `evaluate.calibrate`) or not (one pipeline per fold; probabilities averaged).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlsys.logger import logger
from mlsys.pipeline import INPUT_COLUMNS, CategoryEncoder


class UnsupportedModel(ValueError):
    """The model's structure is not one `LeanModel` can take apart (it then scores with the model)."""


@dataclass(frozen=True)
class _Member:
    """One booster with the recipe that builds its input row, and its calibration (None: raw P(late))."""

    booster: lgb.Booster
    sources: tuple[int, ...]  # position in `LeanModel.columns` of each booster feature, in booster order
    codes: tuple[dict[str, float] | None, ...]  # per booster feature: category -> code, or None for numbers
    calibrator: Any
    raw_score: bool  # what the calibrator was fitted on: the margin (decision_function) or P(late)


class LeanModel:
    """P(late) for rows of `columns`, from the parts of a fitted pipeline (or from the pipeline itself)."""

    def __init__(self, model: Any, columns: Sequence[str], members: Sequence[_Member] | None):
        self.model = model
        self.columns = list(columns)
        self._members = tuple(members) if members is not None else None
        self._position = {c: i for i, c in enumerate(self.columns)}

    @property
    def is_lean(self) -> bool:
        """True when rows are scored without the pipeline (the model's structure was recognised)."""
        return self._members is not None

    @property
    def categories(self) -> dict[str, list[str]]:
        """Categories the model learned per categorical column (empty when not lean)."""
        if not self._members:
            return {}
        member = self._members[0]
        return {self.columns[s]: list(c) for s, c in zip(member.sources, member.codes, strict=True) if c is not None}

    @classmethod
    def from_pipeline(cls, model: Any, columns: Sequence[str] = INPUT_COLUMNS) -> LeanModel:
        """Take `model` apart if its structure is recognised; otherwise wrap it unchanged."""
        try:
            members = [_member(pipe, calibrator, raw, columns) for pipe, calibrator, raw in _unwrap(model)]
        except UnsupportedModel as exc:
            logger.info("lean path not available ({}); scoring with the model itself", exc)
            return cls(model, columns, None)
        return cls(model, columns, members)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """P(late) for each row: a DataFrame with `columns`, or a 2-D array with them in that order."""
        if self._members is None:
            frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object), columns=self.columns)
            return np.asarray(self.model.predict_proba(frame[self.columns])[:, 1], dtype="float64")
        rows = _as_rows(X, self.columns)
        total = np.zeros(len(rows))
        for member in self._members:
            total += _score(member, rows)
        p = total / len(self._members)
        # as CalibratedClassifierCV does: round a probability a hair above 1 down to 1
        p[(p > 1.0) & (p <= 1.0 + 1e-5)] = 1.0
        return p


def _unwrap(model: Any) -> list[tuple[Pipeline, Any, bool]]:
    """(pipeline, calibrator or None, calibrated on the margin?) for each scoring member of `model`."""
    if isinstance(model, Pipeline):
        return [(model, None, False)]
    if isinstance(model, CalibratedClassifierCV):
        if model.method not in ("sigmoid", "isotonic"):
            raise UnsupportedModel(f"calibration method {model.method!r}")
        members = []
        for calibrated in model.calibrated_classifiers_:
            if len(calibrated.calibrators) != 1 or list(calibrated.classes) != [0, 1]:
                raise UnsupportedModel("not a binary 0/1 classifier")
            estimator = calibrated.estimator
            # scikit-learn calibrates `decision_function` when the estimator has one (LightGBM >= 4.7:
            # the raw margin), else `predict_proba`; the lean path must feed the calibrator the same
            raw = hasattr(estimator, "decision_function")
            if isinstance(estimator, FrozenEstimator):
                estimator = estimator.estimator
            if not isinstance(estimator, Pipeline):
                raise UnsupportedModel(f"calibrated estimator is a {type(estimator).__name__}")
            members.append((estimator, calibrated.calibrators[0], raw))
        return members
    raise UnsupportedModel(f"a {type(model).__name__}")


def _member(pipe: Pipeline, calibrator: Any, raw_score: bool, columns: Sequence[str]) -> _Member:
    """The booster, its input recipe and the calibrator of one `prep -> LGBMClassifier` pipeline."""
    if len(pipe.steps) != 2:
        raise UnsupportedModel(f"a pipeline of {len(pipe.steps)} steps")
    prep, estimator = pipe.steps[0][1], pipe.steps[1][1]
    if not isinstance(prep, ColumnTransformer) or not isinstance(estimator, lgb.LGBMClassifier):
        raise UnsupportedModel(f"{type(prep).__name__} -> {type(estimator).__name__}")
    if list(estimator.classes_) != [0, 1]:
        raise UnsupportedModel("classes are not 0/1")
    position = {c: i for i, c in enumerate(columns)}
    sources: list[int] = []
    codes: list[dict[str, float] | None] = []
    for name, transformer, cols in prep.transformers_:
        if transformer == "drop" or len(cols) == 0:
            continue
        missing = [c for c in cols if c not in position]
        if missing:
            raise UnsupportedModel(f"block {name!r} reads columns that are not inputs: {missing}")
        if transformer == "passthrough" or (isinstance(transformer, FunctionTransformer) and transformer.func is None):
            sources += [position[c] for c in cols]
            codes += [None] * len(cols)
        elif isinstance(transformer, CategoryEncoder):
            for col in cols:
                sources.append(position[col])
                # LightGBM codes a pandas categorical by its position in the category list
                codes.append({value: float(i) for i, value in enumerate(transformer.categories_[col])})
        else:
            raise UnsupportedModel(f"block {name!r} is a {type(transformer).__name__}")
    booster = estimator.booster_
    names = [str(n) for n in prep.get_feature_names_out()]
    if booster.feature_name() != names or len(names) != len(sources):
        raise UnsupportedModel("the booster's features are not the preprocessor's output")
    learned = [list(c) for c in (booster.pandas_categorical or [])]
    if learned != [list(c) for c in codes if c is not None]:
        raise UnsupportedModel("the booster's category lists differ from the encoder's")
    if calibrator is not None and not isinstance(calibrator, IsotonicRegression) and not hasattr(calibrator, "a_"):
        raise UnsupportedModel(f"calibrator {type(calibrator).__name__}")
    return _Member(booster=booster, sources=tuple(sources), codes=tuple(codes), calibrator=calibrator, raw_score=raw_score)


def _as_rows(X: pd.DataFrame | np.ndarray, columns: Sequence[str]) -> np.ndarray:
    """A 2-D object array with `columns` in order (DataFrames are selected by name)."""
    if isinstance(X, pd.DataFrame):
        return X[list(columns)].to_numpy(dtype=object)
    rows = np.asarray(X, dtype=object)
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[1] != len(columns):
        raise ValueError(f"expected rows of {len(columns)} columns ({', '.join(columns)}), got shape {rows.shape}")
    return rows


def _category_code(value: Any, codes: dict[str, float]) -> float:
    """The category's code, NaN when missing or unseen (as CategoryEncoder + LightGBM treat them)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return codes.get(value if isinstance(value, str) else str(value), math.nan)


def _number(value: Any) -> float:
    if value is None or value is pd.NA:
        return math.nan
    return float(value)


def _score(member: _Member, rows: np.ndarray) -> np.ndarray:
    """Calibrated P(late) of one member for object rows."""
    matrix = np.empty((len(rows), len(member.sources)), dtype="float64")
    for j, (source, codes) in enumerate(zip(member.sources, member.codes, strict=True)):
        column = rows[:, source]
        if codes is None:
            matrix[:, j] = [_number(v) for v in column]
        else:
            matrix[:, j] = [_category_code(v, codes) for v in column]
    # one thread: for a handful of rows, waking LightGBM's OpenMP pool costs more than the trees
    raw = np.asarray(member.booster.predict(matrix, raw_score=member.raw_score, num_threads=1), dtype="float64")
    calibrator = member.calibrator
    if calibrator is None:
        return raw
    if hasattr(calibrator, "a_"):  # sigmoid (Platt): the same expression as scikit-learn's
        return expit(-(calibrator.a_ * raw + calibrator.b_))
    return np.asarray(calibrator.predict(raw), dtype="float64")
