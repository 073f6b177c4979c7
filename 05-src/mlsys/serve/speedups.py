"""Faster inference, measured: test ROC AUC next to single-row latency and batch throughput.

Lesson 07's table (Huyen, 2022, ch. 7, "Model compression" and "Model optimization") compares
ways to make one prediction cheaper, each kept honest: trained on the training split, anything
chosen (trees, calibration, the stack's weights) chosen on the validation split, and scored on
the test split once.

* **DataFrame pipeline**: the champion (`promote.fit_champion`) as the registry serves it, one
  request = a one-row DataFrame through scikit-learn, LightGBM's pandas handling and calibration;
* **lean array path**: the same model taken apart by the service's `serve.lean.LeanModel`
  (category codes, booster, calibration curve on a numpy row), the same probabilities;
* **fewer trees**: the champion's recipe at learning rate 0.1 with early stopping on validation
  (`pipeline.fit_early_stopping`), calibrated as the champion is, served on the lean path;
* **compiled**: the champion's booster compiled to machine code by lleaves (LLVM), with the same
  category codes and calibration, if any (`CompiledModel`), the same probabilities to 1e-12;
* **distilled**: lesson 05's stacking ensemble (the teacher) and one LightGBM (the student)
  trained to reproduce the teacher's probabilities on the training flights;
* **feature cache**: online features (the service's `serve.features.OnlineFeatures`) with a
  cache per origin and decision minute, replayed on test flights in decision-time order.

Every per-request path starts from what the service holds after parsing a request: a mapping
of column -> value. Latency is measured in-process, one thread, after a warm-up; throughput is
one call on the whole test split.

Why lleaves: measured here on the champion's 300-tree booster (55,403 test rows, one thread),
against LightGBM's own `Booster.predict` on a numpy row (about 50 µs a row, 15k-56k rows/s):

* onnxruntime via onnxmltools converts the categorical splits, but only for float32 inputs:
  thresholds and values are rounded, and probabilities moved by up to 0.06-0.11 (ROC AUC 0.7355
  instead of 0.7357); single row about 50-70 µs. Not the same model.
* treelite + tl2cgen give the same probabilities, but compile C with gcc at run time (25-90 s; a
  student without a compiler cannot), and a single row still costs about 50 µs (a DMatrix per call).
* lleaves compiles the trees with LLVM (no system compiler), the same probabilities to 1e-15,
  12-28 µs a row and 80k-137k rows/s; compiling takes about 10 s and is cached by model hash.
  Its price: lleaves 1.3 needs llvmlite < 0.45, which has no wheels for Python 3.14, where the
  table has no compiled row.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlsys import evaluate, features, pipeline, promote, train, warehouse
from mlsys.config import get_settings
from mlsys.display import duration, ratio
from mlsys.logger import logger, setup_logging
from mlsys.pipeline import INPUT_COLUMNS, CategoryEncoder
from mlsys.serve.features import FlightQuery, OnlineFeatures
from mlsys.serve.lean import LeanModel

LABEL = "late"
#: single-row calls per variant (after `WARMUP` calls that are not counted)
CALLS = 2_000
WARMUP = 50
#: quick mode: DataFrame paths (about 10 ms and 50 ms a call) make this many calls instead
QUICK_FRAME_CALLS = 50
#: quick mode: the stacking ensemble's members learn from this many training flights (as lesson 05's
#: fast zoo), and the distilled student learns the teacher's probabilities on the same flights
QUICK_MEMBER_ROWS = 10_000
#: quick mode / full mode: test flights replayed through the online features, with and without cache
QUICK_REPLAY, FULL_REPLAY = 16, 200
#: the fewer-trees variant: lesson 05's fast learning rate, so early stopping has trees to save
FEWER_TREES_LEARNING_RATE = 0.1


# --------------------------------------------------------------------------- compiled model


class CompiledModel:
    """P(late) from a LightGBM booster compiled by lleaves, with the pipeline's category codes and calibration.

    Recognised: `Pipeline([prep: ColumnTransformer(passthrough numbers, CategoryEncoder), model:
    LGBMClassifier])`, alone or inside a `CalibratedClassifierCV` with one calibrated classifier
    (`evaluate.calibrate`). lleaves splits on category codes exactly as LightGBM does, so no
    integer re-coding is needed and the probabilities equal the pipeline's.
    """

    def __init__(self, prep: ColumnTransformer, compiled: Any, calibrator: Any, columns: Sequence[str], n_trees: int):
        self.prep = prep
        self.compiled = compiled
        self.calibrator = calibrator
        self.columns = list(columns)
        self.n_trees = n_trees
        position = {c: i for i, c in enumerate(self.columns)}
        recipe: list[tuple[int, dict[str, float] | None]] = []
        for _, transformer, cols in prep.transformers_:
            if transformer == "drop" or len(cols) == 0:
                continue
            for col in cols:
                codes = None
                if isinstance(transformer, CategoryEncoder):
                    codes = {value: float(i) for i, value in enumerate(transformer.categories_[col])}
                recipe.append((position[col], codes))
        self._recipe = tuple(recipe)

    @classmethod
    def from_model(cls, model: Any, cache_dir: Path | None = None, columns: Sequence[str] = INPUT_COLUMNS) -> CompiledModel:
        """Compile the booster of `model` (or load it from `cache_dir`, keyed by the model's hash)."""
        pipe, calibrator, margin = _pipeline_and_calibrator(model)
        prep, estimator = pipe.steps[0][1], pipe.steps[-1][1]
        if not isinstance(prep, ColumnTransformer) or not isinstance(estimator, lgb.LGBMClassifier):
            got = f"{type(prep).__name__} -> {type(estimator).__name__}"
            raise ValueError(f"CompiledModel needs ColumnTransformer -> LGBMClassifier, got {got}")
        for name, transformer, _ in prep.transformers_:
            if not (_passthrough(transformer) or transformer == "drop" or isinstance(transformer, CategoryEncoder)):
                kind = type(transformer).__name__
                raise ValueError(f"CompiledModel: preprocessor block {name!r} is a {kind} (passthrough or CategoryEncoder only)")
        booster = estimator.booster_
        compiled = compile_booster(booster, cache_dir, raw_score=margin)
        return cls(prep, compiled, calibrator, columns, compiled.num_trees())

    def predict_proba(self, X: pd.DataFrame | np.ndarray | Sequence[Sequence[Any]]) -> np.ndarray:
        """P(late) per row: a DataFrame (the preprocessor encodes it) or rows of `columns` (encoded here)."""
        matrix = self._matrix_from_frame(X) if isinstance(X, pd.DataFrame) else self._matrix_from_rows(X)
        raw = self.compiled.predict(matrix, n_jobs=1)
        return _calibrated(self.calibrator, raw)

    def _matrix_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        Z = self.prep.transform(frame)
        cols = []
        for c in Z.columns:
            if isinstance(Z[c].dtype, pd.CategoricalDtype):
                codes = Z[c].cat.codes.to_numpy(dtype="float64")
                cols.append(np.where(codes < 0, np.nan, codes))  # code -1: missing or unseen, as LightGBM reads it
            else:
                cols.append(Z[c].to_numpy(dtype="float64", na_value=np.nan))
        return np.column_stack(cols)

    def _matrix_from_rows(self, rows: np.ndarray | Sequence[Sequence[Any]]) -> np.ndarray:
        rows = np.asarray(rows, dtype=object)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            raise ValueError(f"expected rows of {len(self.columns)} columns ({', '.join(self.columns)}), got shape {rows.shape}")
        matrix = np.empty((len(rows), len(self._recipe)), dtype="float64")
        for i, row in enumerate(rows):
            for j, (source, codes) in enumerate(self._recipe):
                value = row[source]
                if codes is None:
                    matrix[i, j] = math.nan if value is None or value is pd.NA else float(value)
                elif value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                    matrix[i, j] = math.nan
                else:
                    matrix[i, j] = codes.get(value if isinstance(value, str) else str(value), math.nan)
        return matrix


def _passthrough(transformer: Any) -> bool:
    """True for a block that hands its columns on unchanged (a fitted "passthrough" is a FunctionTransformer)."""
    return transformer == "passthrough" or (isinstance(transformer, FunctionTransformer) and transformer.func is None)


def _pipeline_and_calibrator(model: Any) -> tuple[Pipeline, Any, bool]:
    """The `prep -> LGBMClassifier` pipeline inside `model`, its calibrator (None when uncalibrated), and
    whether the calibrator reads the raw margin.

    scikit-learn calibrates `decision_function` when the estimator has one (LightGBM >= 4.7: the
    raw margin), else `predict_proba`.
    """
    if isinstance(model, Pipeline):
        return model, None, False
    if isinstance(model, CalibratedClassifierCV):
        if len(model.calibrated_classifiers_) != 1:
            n = len(model.calibrated_classifiers_)
            raise ValueError(f"CompiledModel: {n} calibrated classifiers (one, as evaluate.calibrate fits, is supported)")
        calibrated = model.calibrated_classifiers_[0]
        margin = hasattr(calibrated.estimator, "decision_function")
        estimator = calibrated.estimator.estimator if isinstance(calibrated.estimator, FrozenEstimator) else calibrated.estimator
        if not isinstance(estimator, Pipeline):
            raise ValueError(f"CompiledModel: the calibrated estimator is a {type(estimator).__name__}, not a Pipeline")
        return estimator, calibrated.calibrators[0], margin
    raise ValueError(f"CompiledModel: cannot take apart a {type(model).__name__}")


def _calibrated(calibrator: Any, score: np.ndarray) -> np.ndarray:
    """What `CalibratedClassifierCV` makes of the model's score (sigmoid or isotonic; None: the score is P(late))."""
    score = np.asarray(score, dtype="float64")
    if calibrator is None:
        return score
    if isinstance(calibrator, IsotonicRegression):
        out = np.asarray(calibrator.predict(score), dtype="float64")
    else:  # scikit-learn's _SigmoidCalibration, the same expression
        out = expit(-(calibrator.a_ * score + calibrator.b_))
    out[(out > 1.0) & (out <= 1.0 + 1e-5)] = 1.0
    return out


def compile_booster(booster: lgb.Booster, cache_dir: Path | None = None, raw_score: bool = False) -> Any:
    """The booster compiled by lleaves (the margin if `raw_score`, else P(late)); the object file is
    cached by the model's hash (about 10 s to build).

    `finline=False`: on the 300-tree champion (busy 2-core machine) compiling took 11 s instead of
    57 s with inlining, and a single-row prediction 13.5 µs instead of 11.7 µs.
    """
    try:
        import lleaves
    except ImportError as exc:  # pyproject installs lleaves on Python 3.11-3.13 only
        raise RuntimeError(
            "the compiled variant needs lleaves (`make install` on Python 3.11-3.13); its llvmlite < 0.45 has no wheels for 3.14"
        ) from exc
    text = booster.model_to_string()
    identity = f"{text}|{raw_score}|{version('lleaves')}|{version('llvmlite')}|{platform.machine()}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir) if cache_dir is not None else get_settings().processed_dir / "compiled"
    cache_dir.mkdir(parents=True, exist_ok=True)
    model_file, binary = cache_dir / f"lgbm-{key}.txt", cache_dir / f"lgbm-{key}.o"
    if not model_file.exists():
        partial = model_file.with_suffix(f".{time.monotonic_ns()}.tmp")
        partial.write_text(text)
        partial.replace(model_file)
    compiled = lleaves.Model(model_file=str(model_file))
    if binary.exists():
        compiled.compile(cache=str(binary), raw_score=raw_score, finline=False)
        return compiled
    # compile to a private file, then move it in place: a concurrent reader never sees half a file
    partial = binary.with_suffix(f".{time.monotonic_ns()}.tmp")
    start = time.perf_counter()
    compiled.compile(cache=str(partial), raw_score=raw_score, finline=False)
    partial.replace(binary)
    logger.info("lleaves compiled {} trees in {}", compiled.num_trees(), duration(time.perf_counter() - start).strip())
    return compiled


# --------------------------------------------------------------------------- models


def fewer_trees_model(splits: Mapping[str, pd.DataFrame], seed: int = 42, method: str | None = None) -> Any:
    """The champion's recipe at learning rate 0.1, trees chosen by early stopping on valid, calibrated as the champion is.

    `method` is the champion's calibration (`promote.CALIBRATION_METHOD` unless given), its map
    fitted on the same validation rows as `promote.fit_champion` fits it on.
    """
    model = evaluate.constrained_lightgbm(seed=seed, n_jobs=1, learning_rate=FEWER_TREES_LEARNING_RATE)
    X, y = train.xy(splits["train"])
    Xv, yv = train.xy(splits["valid"])
    pipeline.fit_early_stopping(model, X, y, Xv, yv)
    method = promote.CALIBRATION_METHOD if method is None else method
    if method == "none":
        return model
    return evaluate.calibrate(model, evaluate.split_last_month(splits["valid"])[0], method)


def stacking_teacher(splits: Mapping[str, pd.DataFrame], seed: int = 42, member_rows: int | None = None) -> Any:
    """Lesson 05's stack: logreg, early-stopped LightGBM and bagging fitted on train, the meta-learner on valid."""
    fit_rows = train.subsample(splits["train"], member_rows, seed)
    X, y = train.xy(fit_rows)
    Xv, yv = train.xy(splits["valid"])
    members = {}
    for kind in ("logreg", "lightgbm", "bagging"):
        model = train.make_zoo_model(kind, seed=seed, fast=True)
        members[kind] = train.fit(model, X, y, Xv, yv, early_stopping_rounds=50 if kind == "lightgbm" else None)
    return train.stacking_model(members).fit(Xv, yv)


def distil(teacher: Any, splits: Mapping[str, pd.DataFrame], seed: int = 42, rows: int | None = None, rounds: int = 50) -> Pipeline:
    """One LightGBM (the champion's recipe at learning rate 0.1) trained on the teacher's probabilities.

    The transfer set is `rows` seeded training flights (all when None). Soft labels as
    classification: each flight appears once as late with weight p and once as on time with weight
    1 - p, so LightGBM minimises the cross-entropy to the teacher's p, and the student stays an
    `LGBMClassifier` pipeline that the lean path and `CompiledModel` take apart. Its number of trees
    is chosen by early stopping on the validation flights' true labels.
    """
    X = train.subsample(splits["train"], rows, seed)[INPUT_COLUMNS]
    p = np.clip(teacher.predict_proba(X)[:, 1], 0.0, 1.0)
    doubled = pd.concat([X, X], ignore_index=True)
    labels = np.concatenate([np.ones(len(X), dtype="int64"), np.zeros(len(X), dtype="int64")])
    weights = np.concatenate([p, 1.0 - p])
    student = evaluate.constrained_lightgbm(seed=seed, n_jobs=1, learning_rate=FEWER_TREES_LEARNING_RATE)
    prep = student.named_steps["prep"].fit(doubled)
    Xv, yv = train.xy(splits["valid"])
    student.named_steps["model"].fit(
        prep.transform(doubled), labels, sample_weight=weights, eval_X=prep.transform(Xv), eval_y=yv,
        callbacks=[lgb.early_stopping(rounds, verbose=False)],
    )
    return student


# --------------------------------------------------------------------------- variants and timing


@dataclass
class Variant:
    """One row of the table: how a request is scored, how a batch is scored, and what to say about it."""

    name: str
    path: str
    model: Any
    score_request: Callable[[Mapping[str, Any]], float]
    score_batch: Callable[[pd.DataFrame], np.ndarray]
    trees: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def pipeline_variant(name: str, model: Any, trees: int | None = None, note: str = "") -> Variant:
    """Score through the fitted scikit-learn model: a one-row DataFrame per request."""
    return Variant(
        name=name,
        path="DataFrame pipeline",
        model=model,
        score_request=lambda record: float(model.predict_proba(pd.DataFrame([record], columns=INPUT_COLUMNS))[0, 1]),
        score_batch=lambda frame: np.asarray(model.predict_proba(frame[INPUT_COLUMNS])[:, 1], dtype="float64"),
        trees=trees,
        note=note,
    )


def array_variant(name: str, path: str, scorer: Any, trees: int | None = None, note: str = "") -> Variant:
    """Score through an object with `predict_proba(rows) -> P(late)`: one object row per request, as the service builds it."""
    columns = list(INPUT_COLUMNS)
    return Variant(
        name=name,
        path=path,
        model=scorer,
        score_request=lambda record: float(scorer.predict_proba(np.array([[record.get(c) for c in columns]], dtype=object))[0]),
        score_batch=lambda frame: np.asarray(scorer.predict_proba(frame[columns]), dtype="float64"),
        trees=trees,
        note=note,
    )


def lean_model(model: Any) -> Any:
    """The service's lean scorer for `model` (raises if the service module cannot take it apart)."""
    lean = LeanModel.from_pipeline(model)
    if not lean.is_lean:
        raise ValueError(f"LeanModel does not recognise a {type(model).__name__}: it would score with the pipeline")
    return lean


def n_trees(model: Any) -> int:
    """Trees the model's booster uses when predicting (its best iteration after early stopping)."""
    pipe, _, _ = _pipeline_and_calibrator(model)
    estimator = pipe.steps[-1][1]
    best = getattr(estimator, "best_iteration_", None)
    return int(best) if best else int(estimator.booster_.num_trees())


def request_records(test: pd.DataFrame, n: int, seed: int = 42) -> list[dict[str, Any]]:
    """`n` seeded test flights (with replacement when needed) as column -> value mappings, as a request arrives."""
    rows = np.random.default_rng(seed).choice(len(test), size=n, replace=n > len(test))
    frame = test.iloc[rows][INPUT_COLUMNS]
    text = {"tailnum", "route", *pipeline.CATEGORICAL}
    # a missing string arrives as None (JSON null), not NaN
    return [{k: None if k in text and isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in frame.to_dict("records")]


def latency(score: Callable[[Any], Any], requests: Sequence[Any], warmup: int = WARMUP) -> np.ndarray:
    """Seconds of each call `score(request)`, after `warmup` uncounted calls (one thread, in-process)."""
    for request in requests[:warmup]:
        score(request)
    times = np.empty(len(requests))
    for i, request in enumerate(requests):
        start = time.perf_counter()
        score(request)
        times[i] = time.perf_counter() - start
    return times




def measure(variant: Variant, test: pd.DataFrame, calls: int, seed: int = 42) -> dict[str, Any]:
    """One table row: test ROC AUC (from the batch call), p50/p99 of `calls` single requests, rows/s."""
    start = time.perf_counter()
    p = variant.score_batch(test)
    rows_per_second = len(test) / (time.perf_counter() - start)
    times = latency(variant.score_request, request_records(test, calls, seed))
    return {
        "variant": variant.name,
        "path": variant.path,
        "trees": variant.trees,
        "roc_auc": float(roc_auc_score(test[LABEL].to_numpy(), p)),
        "p50_seconds": float(np.quantile(times, 0.5)),
        "p99_seconds": float(np.quantile(times, 0.99)),
        "rows_per_second": rows_per_second,
        "calls": calls,
        "note": variant.note,
        **variant.extra,
    }


# --------------------------------------------------------------------------- feature cache


def flight_query(row: Any) -> FlightQuery:
    """The service's `FlightQuery` for a feature-table row (as of its decision time)."""
    tail = row.tailnum if isinstance(row.tailnum, str) else None
    return FlightQuery(
        carrier=str(row.carrier), flight=int(row.flight), origin=str(row.origin), dest=str(row.dest), sched_dep_utc=row.sched_dep_utc, tailnum=tail
    )


def cache_key(origin: str, decision_time: pd.Timestamp) -> tuple[str, pd.Timestamp]:
    """Flights from one origin with decision times in the same minute share their origin's windows and weather."""
    return origin, decision_time.floor("min")


class OriginMinuteCache:
    """Online feature rows per (origin, decision minute), filled one origin-minute at a time.

    Every flight the schedule puts at the same origin and decision minute sees the same origin
    windows, backlog and weather, and the service's `OnlineFeatures` computes flights that share
    a decision time in one `build_features` call. So the first request of an origin-minute computes
    the rows of all its scheduled flights in that one call, and the others are answered from memory.
    Features are as of the decision time, so a row computed a moment earlier is the same row.
    Entries of minutes before the latest request's are dropped: the replay runs forward in time.
    """

    def __init__(self, online: Any, schedule: pd.DataFrame):
        self.online = online
        minute = schedule["decision_time_utc"].dt.floor("min")
        self._schedule = {key: group for key, group in schedule.groupby(["origin", minute], sort=False)}
        self._rows: dict[tuple[str, pd.Timestamp], dict[tuple[str, int], dict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def features(self, query: Any) -> dict[str, Any]:
        """Model inputs for `query`, computed with its origin-minute on a miss."""
        key = cache_key(query.origin, query.decision_time)
        entry = self._rows.get(key)
        flight = (query.carrier, query.flight)
        if entry is not None and flight in entry:
            self.hits += 1
            return entry[flight]
        self.misses += 1
        self._rows = {k: v for k, v in self._rows.items() if k[1] >= key[1]}
        scheduled = self._schedule.get(key)
        others = [] if scheduled is None else [flight_query(r) for r in scheduled.itertuples() if (r.carrier, int(r.flight)) != flight]
        rows = self.online.compute([query, *others])
        self._rows.setdefault(key, {}).update({(r.query.carrier, r.query.flight): r.values for r in rows})
        return rows[0].values

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")


def key_hit_rate(requests: pd.DataFrame) -> float:
    """Hit rate of a per-origin-minute cache over `requests` replayed in decision-time order (keys only, no features)."""
    keys = requests.groupby(["origin", requests["decision_time_utc"].dt.floor("min")]).ngroups
    return 1.0 - keys / len(requests) if len(requests) else float("nan")


def replay_slice(test: pd.DataFrame, n: int, seed: int = 42) -> pd.DataFrame:
    """`n` consecutive test flights in decision-time order, from a seeded starting point."""
    ordered = test.sort_values(["decision_time_utc", "flight_id"]).reset_index(drop=True)
    start = int(np.random.default_rng(seed).integers(0, max(len(ordered) - n, 1)))
    return ordered.iloc[start : start + n].reset_index(drop=True)


def feature_cache_rows(
    test: pd.DataFrame, scorer: Any, engine: Any = None, n_requests: int = FULL_REPLAY, seed: int = 42, auc: float | None = None
) -> list[dict[str, Any]]:
    """Two table rows: online features + lean scoring per request, without and with `OriginMinuteCache`.

    Replays `n_requests` consecutive test flights (decision-time order) through the service's
    `OnlineFeatures` on the warehouse `engine` (the configured one by default; it must hold the
    flights and weather of the test period). The cache's hit rate on the whole test split is
    counted from keys alone. `auc` is the scorer's test ROC AUC on the offline features, which the
    online features equal (the replayed rows are compared, `max_feature_gap`).
    """
    engine = engine if engine is not None else warehouse.engine()
    replay = replay_slice(test, n_requests, seed)
    _check_warehouse(engine, replay)
    columns = list(INPUT_COLUMNS)
    queries = [flight_query(r) for r in replay.itertuples()]

    def score(values: Mapping[str, Any]) -> float:
        return float(scorer.predict_proba(np.array([[values.get(c) for c in columns]], dtype=object))[0])

    uncached = OnlineFeatures(engine)
    uncached.reference()  # read once at start-up, as the service does
    plain_values: list[dict[str, Any]] = []

    def plain(query: Any) -> float:
        values = uncached.compute([query])[0].values
        plain_values.append(values)
        return score(values)

    cached_online = OnlineFeatures(engine)
    cached_online.reference()
    cache = OriginMinuteCache(cached_online, test)
    cached_values: list[dict[str, Any]] = []

    def cached(query: Any) -> float:
        values = cache.features(query)
        cached_values.append(values)
        return score(values)

    rows = []
    paths = (("online features, no cache", plain, plain_values), ("online features, cache per origin-minute", cached, cached_values))
    for name, fn, values in paths:
        start = time.perf_counter()
        times = latency(fn, queries, warmup=0)
        total = time.perf_counter() - start
        rows.append(
            {
                "variant": name,
                "path": "warehouse -> features -> lean",
                "trees": n_trees(scorer.model) if hasattr(scorer, "model") else None,
                "roc_auc": auc,
                "p50_seconds": float(np.quantile(times, 0.5)),
                "p99_seconds": float(np.quantile(times, 0.99)),
                "rows_per_second": len(queries) / total,
                "calls": len(queries),
                "max_feature_gap": feature_gap(values, replay),
            }
        )
    rows[1]["hit_rate"] = cache.hit_rate
    rows[1]["hit_rate_test_split"] = key_hit_rate(test)
    rows[1]["note"] = f"hit rate {cache.hit_rate:.1%} on the replay, {key_hit_rate(test):.1%} on the whole test split"
    rows[0]["note"] = "the service's OnlineFeatures per request"
    return rows


def feature_gap(values: Sequence[Mapping[str, Any]], offline: pd.DataFrame) -> float:
    """Largest |online - offline| over the numeric model inputs of the replayed flights (0.0: parity)."""
    numeric = [c for c in INPUT_COLUMNS if c in pipeline.NUMERIC]
    online = pd.DataFrame(list(values), columns=INPUT_COLUMNS)[numeric].to_numpy(dtype="float64")
    expected = offline[numeric].to_numpy(dtype="float64")
    both_missing = np.isnan(online) & np.isnan(expected)
    gap = np.where(both_missing, 0.0, np.abs(online - expected))
    return float(np.nanmax(np.where(np.isnan(gap), np.inf, gap))) if gap.size else 0.0


def _check_warehouse(engine: Any, replay: pd.DataFrame) -> None:
    """Raise with what to do when the warehouse lacks the replayed period."""
    lo = (replay["decision_time_utc"].min() - pd.Timedelta(days=2)).tz_convert("UTC").tz_localize(None).to_pydatetime()
    hi = replay["sched_dep_utc"].max().tz_convert("UTC").tz_localize(None).to_pydatetime()
    f = warehouse.flights.c
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(warehouse.flights).where(f.time_hour >= lo, f.time_hour <= hi)
        found = conn.execute(query).scalar_one()
    if not found:
        raise RuntimeError(
            f"the warehouse at {engine.url.render_as_string(hide_password=True)} holds no flights "
            f"between {lo:%Y-%m-%d} and {hi:%Y-%m-%d}: "
            "load it first with mlsys.warehouse.load_warehouse(mlsys.warehouse.engine())"
        )


# --------------------------------------------------------------------------- the table


def compiled_available() -> bool:
    """True where lleaves is installed (pyproject installs it on Python 3.11-3.13)."""
    return importlib.util.find_spec("lleaves") is not None


def build_variants(
    splits: Mapping[str, pd.DataFrame], seed: int = 42, quick: bool = False, champion: Any = None, cache_dir: Path | None = None
) -> dict[str, Variant]:
    """Every model variant of the table, fitted (the champion too unless given).

    Without lleaves (Python 3.14) the compiled row is left out, with a warning.
    """
    start = time.perf_counter()
    champion = champion if champion is not None else promote.fit_champion(splits, seed=seed)
    trees = n_trees(champion)
    fewer = fewer_trees_model(splits, seed)
    rows = QUICK_MEMBER_ROWS if quick else None
    teacher = stacking_teacher(splits, seed, member_rows=rows)
    student = distil(teacher, splits, seed, rows=rows)
    logger.debug("variants fitted in {}", duration(time.perf_counter() - start).strip())
    flights = f"{QUICK_MEMBER_ROWS:,} training flights" if quick else "every training flight"
    lean = "lean array (LeanModel)"
    compiled = []
    if compiled_available():
        scorer = CompiledModel.from_model(champion, cache_dir)
        compiled.append(array_variant("champion", "compiled (lleaves)", scorer, trees, "booster compiled by LLVM; same probabilities"))
    else:
        logger.warning("lleaves is not installed (it is on Python 3.11-3.13 only): the table has no compiled row")
    variants = [
        pipeline_variant("champion", champion, trees, "monotone LightGBM (promote.fit_champion)"),
        array_variant("champion", lean, lean_model(champion), trees, "same probabilities as the pipeline"),
        *compiled,
        array_variant("fewer trees", lean, lean_model(fewer), n_trees(fewer), f"learning rate {FEWER_TREES_LEARNING_RATE}, early stopping on valid"),
        pipeline_variant("stacking ensemble (teacher)", teacher, None, f"logreg + LightGBM + forest on {flights}, meta-learner on valid"),
        array_variant("distilled student", lean, lean_model(student), n_trees(student), f"one LightGBM on the teacher's probabilities for {flights}"),
    ]
    return {f"{v.name} | {v.path}": v for v in variants}


def speedup_table(
    splits: Mapping[str, pd.DataFrame],
    seed: int = 42,
    quick: bool = False,
    calls: int = CALLS,
    champion: Any = None,
    engine: Any = None,
    cache_dir: Path | None = None,
    feature_cache: bool = True,
) -> pd.DataFrame:
    """One row per variant: test ROC AUC, single-request p50/p99 (seconds), batch rows/s, calls timed, notes.

    `quick=True` times `QUICK_FRAME_CALLS` requests on the DataFrame paths (instead of `calls`),
    fits the stack's members on `QUICK_MEMBER_ROWS` training flights and replays `QUICK_REPLAY`
    flights through the online features. `champion` reuses a fitted champion; `engine` is the
    warehouse the online features read (the configured one by default); `feature_cache=False`
    leaves out the two rows that need it.
    """
    test = splits["test"].reset_index(drop=True)
    variants = build_variants(splits, seed, quick, champion, cache_dir)
    rows = []
    for variant in variants.values():
        n = QUICK_FRAME_CALLS if quick and variant.path == "DataFrame pipeline" else calls
        start = time.perf_counter()
        rows.append(measure(variant, test, n, seed))
        logger.debug("{} | {}: measured in {}", variant.name, variant.path, duration(time.perf_counter() - start).strip())
    if feature_cache:
        lean = variants["champion | lean array (LeanModel)"]
        auc = next(r["roc_auc"] for r in rows if r["path"].startswith("lean") and r["variant"] == "champion")
        start = time.perf_counter()
        rows += feature_cache_rows(test, lean.model, engine, QUICK_REPLAY if quick else FULL_REPLAY, seed, auc)
        logger.debug("feature cache replay: {}", duration(time.perf_counter() - start).strip())
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table for display: AUC to 4 decimals, durations through `display.duration`, speed-ups as ratios.

    Throughput is shown as the time per 1,000 rows (a duration), so every figure that changes from
    run to run has a shape the notebook checks sanitise.
    """
    base = table.iloc[0]
    return pd.DataFrame(
        {
            "variant": table["variant"],
            "path": table["path"],
            "trees": table["trees"].map(lambda t: "" if t is None or (isinstance(t, float) and math.isnan(t)) else f"{int(t)}"),
            "test ROC AUC": table["roc_auc"].round(4),
            "p50": table["p50_seconds"].map(duration),
            "p99": table["p99_seconds"].map(duration),
            "p99 speed-up": (base["p99_seconds"] / table["p99_seconds"]).map(ratio),
            "batch, per 1,000 rows": (1000 / table["rows_per_second"]).map(duration),
            "calls": table["calls"].map("{:,}".format),
            "note": table["note"].fillna(""),
        }
    )


def plot_speedups(table: pd.DataFrame, ax: Any = None) -> Any:
    """Test ROC AUC against single-request p99 latency (log scale), one labelled point per row."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.8))
    # points with the same AUC (one model, several paths) get labels on alternating levels
    level = table.assign(x=table["p99_seconds"]).groupby(table["roc_auc"].round(4))["x"].rank(method="first").astype(int) - 1
    offsets = (6, -12, 18, -24)
    for row, k in zip(table.itertuples(), level, strict=True):
        online = row.path.startswith("warehouse")
        label = row.variant if online else f"{row.variant}, {row.path.split(' (')[0]}"
        x = row.p99_seconds * 1e3
        ax.scatter(x, row.roc_auc, s=50, marker="s" if online else "o", zorder=3)
        ax.annotate(label, (x, row.roc_auc), textcoords="offset points", xytext=(7, offsets[k % len(offsets)]), fontsize=8)
    low, high = (table["p99_seconds"] * 1e3).min(), (table["p99_seconds"] * 1e3).max()
    ax.set_xscale("log")
    ax.set_xlim(low / 2, high * 30)  # room for the labels right of the slowest points
    ax.margins(y=0.15)  # and above the highest
    ax.set(xlabel="single-request p99 latency (ms, log scale)", ylabel="test ROC AUC (Nov–Dec)",
           title="Faster inference: accuracy against tail latency (up and left is better)")
    ax.grid(True, which="both", alpha=0.3)
    return ax


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m mlsys.serve.speedups [--quick] [--no-feature-cache] [--seed N]`: fit, measure, print the table."""
    parser = argparse.ArgumentParser(prog="python -m mlsys.serve.speedups", description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer DataFrame calls, smaller ensemble, shorter replay")
    parser.add_argument("--no-feature-cache", action="store_true", help="leave out the rows that need the warehouse")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    setup_logging()
    splits = features.load_splits(fast=True, seed=args.seed)
    table = speedup_table(splits, seed=args.seed, quick=args.quick, feature_cache=not args.no_feature_cache)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(format_table(table).to_string(index=False))


if __name__ == "__main__":
    main()
