"""Lesson 07's faster-inference variants score what their source models score.

The lean path and the compiled booster must give the pipeline's probabilities (to 1e-6), per
request and per batch; the feature cache must give the uncached online features. The distilled
student's agreement with its teacher is printed, not asserted: how close it gets is a finding of
the lesson, not a contract. No timing is asserted anywhere; the table prints the figures.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlsys import evaluate, features, pipeline, promote, warehouse
from mlsys.display import duration
from mlsys.serve import speedups

matplotlib.use("Agg")

TOLERANCE = 1e-6
REQUESTS = 300  # single requests compared per variant
#: pyproject installs lleaves on 3.11-3.13 only (its llvmlite < 0.45 has no 3.14 wheels); anywhere
#: else a missing lleaves is a broken install, so the tests fail there rather than skip
needs_lleaves = pytest.mark.skipif(sys.version_info >= (3, 14), reason="lleaves is installed on Python 3.11-3.13 only")


@pytest.fixture(scope="module")
def champion(splits: dict[str, pd.DataFrame]) -> Any:
    """The champion's recipe with a sigmoid map, so the calibration path is checked whatever the default."""
    return promote.fit_champion(splits, seed=42, method="sigmoid")


@pytest.fixture(scope="module")
def compiled_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compiled")


@pytest.fixture(scope="module")
def compiled(champion: Any, compiled_dir: Path) -> speedups.CompiledModel:
    return speedups.CompiledModel.from_model(champion, compiled_dir)


def _request_gap(variant: speedups.Variant, reference: speedups.Variant, test: pd.DataFrame) -> float:
    records = speedups.request_records(test, REQUESTS, seed=7)
    return max(abs(variant.score_request(r) - reference.score_request(r)) for r in records)


def test_lean_path_gives_the_pipelines_probabilities(champion: Any, splits: dict[str, pd.DataFrame]) -> None:
    test = splits["test"]
    lean = speedups.array_variant("champion", "lean", speedups.lean_model(champion))
    reference = speedups.pipeline_variant("champion", champion)
    assert np.max(np.abs(lean.score_batch(test) - reference.score_batch(test))) <= TOLERANCE
    assert _request_gap(lean, reference, test) <= TOLERANCE


@needs_lleaves
def test_compiled_model_gives_the_pipelines_probabilities(champion: Any, compiled: speedups.CompiledModel, splits: dict[str, pd.DataFrame]) -> None:
    test = splits["test"]
    variant = speedups.array_variant("champion", "compiled", compiled)
    reference = speedups.pipeline_variant("champion", champion)
    assert np.max(np.abs(variant.score_batch(test) - reference.score_batch(test))) <= TOLERANCE
    assert _request_gap(variant, reference, test) <= TOLERANCE
    assert compiled.n_trees == speedups.n_trees(champion)


@needs_lleaves
def test_compiled_isotonic_calibration(champion: Any, compiled_dir: Path, splits: dict[str, pd.DataFrame]) -> None:
    """Same booster, another map: the compiled margin is cached once and serves both."""
    pipe, _, _ = speedups._pipeline_and_calibrator(champion)
    isotonic = evaluate.calibrate(pipe, splits["valid"], "isotonic")
    compiled = speedups.CompiledModel.from_model(isotonic, compiled_dir)
    test = splits["test"]
    assert np.max(np.abs(compiled.predict_proba(test) - evaluate.predict(isotonic, test))) <= TOLERANCE


@needs_lleaves
def test_compiled_model_is_loaded_from_its_cache(champion: Any, compiled: speedups.CompiledModel, compiled_dir: Path, splits: dict[str, pd.DataFrame]) -> None:
    binaries = sorted(compiled_dir.glob("*.o"))
    again = speedups.CompiledModel.from_model(champion, compiled_dir)
    assert sorted(compiled_dir.glob("*.o")) == binaries and len(binaries) == 1
    rows = splits["test"].head(500)
    assert np.array_equal(again.predict_proba(rows), compiled.predict_proba(rows))


@needs_lleaves
def test_compiled_uncalibrated_pipeline_and_unseen_categories(splits: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    """A bare pipeline (the distilled student's shape) compiles too; unseen categories count as missing."""
    model = evaluate.fit(pipeline.make_model("lightgbm", seed=1, n_estimators=20, n_jobs=1), splits["train"])
    compiled = speedups.CompiledModel.from_model(model, tmp_path)
    rows = splits["test"].head(200).copy()
    rows.loc[rows.index[:50], "origin"] = "XXX"  # no such airport
    rows.loc[rows.index[50:100], "carrier"] = None
    expected = model.predict_proba(rows[pipeline.INPUT_COLUMNS])[:, 1]
    assert np.max(np.abs(compiled.predict_proba(rows) - expected)) <= TOLERANCE
    as_rows = rows[pipeline.INPUT_COLUMNS].to_numpy(dtype=object)
    assert np.max(np.abs(compiled.predict_proba(as_rows) - expected)) <= TOLERANCE


def test_compiled_model_refuses_what_it_cannot_take_apart(splits: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    logreg = pipeline.make_model("logreg")
    with pytest.raises(ValueError, match="CompiledModel"):
        speedups.CompiledModel.from_model(logreg, tmp_path)


def test_missing_lleaves_says_what_to_do(monkeypatch: pytest.MonkeyPatch, champion: Any, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lleaves", None)  # `import lleaves` now raises ImportError
    with pytest.raises(RuntimeError, match="make install"):
        speedups.CompiledModel.from_model(champion, tmp_path)


def test_fewer_trees_are_chosen_on_validation(champion: Any, splits: dict[str, pd.DataFrame]) -> None:
    fewer = speedups.fewer_trees_model(splits, seed=42)
    assert speedups.n_trees(fewer) < speedups.n_trees(champion)
    lean = speedups.array_variant("fewer trees", "lean", speedups.lean_model(fewer))
    reference = speedups.pipeline_variant("fewer trees", fewer)
    assert _request_gap(lean, reference, splits["test"]) <= TOLERANCE


def test_distilled_student_learns_from_the_teacher(splits: dict[str, pd.DataFrame]) -> None:
    teacher = speedups.stacking_teacher(splits, seed=42, member_rows=5_000)
    student = speedups.distil(teacher, splits, seed=42)
    test = splits["test"]
    y = test["late"].to_numpy()
    p_teacher = teacher.predict_proba(test[pipeline.INPUT_COLUMNS])[:, 1]
    p_student = student.predict_proba(test[pipeline.INPUT_COLUMNS])[:, 1]
    # reported, not asserted: how close a student gets is what the lesson measures
    print(
        f"teacher ROC AUC {roc_auc_score(y, p_teacher):.4f}, student {roc_auc_score(y, p_student):.4f}, "
        f"mean |p_student - p_teacher| {np.mean(np.abs(p_student - p_teacher)):.4f}"
    )
    # the student is a plain LightGBM pipeline: the service's lean path takes it apart
    assert speedups.lean_model(student).is_lean
    # it learned the teacher's probabilities, not the labels: on the training flights it is closer to them
    X = splits["train"][pipeline.INPUT_COLUMNS]
    to_teacher = np.mean(np.abs(student.predict_proba(X)[:, 1] - teacher.predict_proba(X)[:, 1]))
    to_labels = np.mean(np.abs(student.predict_proba(X)[:, 1] - splits["train"]["late"].to_numpy()))
    assert to_teacher < to_labels


# --------------------------------------------------------------------------- feature cache


def test_key_hit_rate_counts_shared_origin_minutes() -> None:
    t = pd.Timestamp("2013-11-05 10:00", tz="UTC")
    requests = pd.DataFrame(
        {
            "origin": ["EWR", "EWR", "EWR", "JFK"],
            "decision_time_utc": [t, t + pd.Timedelta(seconds=30), t, t],
        }
    )
    assert speedups.key_hit_rate(requests) == pytest.approx(0.5)  # 2 keys for 4 requests


@pytest.fixture(scope="module")
def november_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    eng = warehouse.connect(f"sqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}")
    warehouse.load_warehouse(eng, months=[11])
    return eng


def _busy_origin_minute(test: pd.DataFrame, n: int) -> pd.DataFrame:
    """Test flights of one mid-November origin-minute with at least `n` departures (the first such)."""
    nov = test[(test["sched_dep_utc"] >= pd.Timestamp("2013-11-10", tz="UTC")) & (test["sched_dep_utc"] < pd.Timestamp("2013-11-28", tz="UTC"))]
    sizes = nov.groupby(["origin", "decision_time_utc"]).size()
    origin, t0 = sizes[sizes >= n].index[0]
    return nov[(nov["origin"] == origin) & (nov["decision_time_utc"] == t0)]


def test_origin_minute_cache_gives_the_uncached_features(november_warehouse: Any) -> None:
    from mlsys.serve.features import OnlineFeatures

    test = features.load_splits(fast=True, seed=42)["test"]
    group = _busy_origin_minute(test, 3)
    cache = speedups.OriginMinuteCache(OnlineFeatures(november_warehouse), test)
    online = OnlineFeatures(november_warehouse)
    cached, uncached = [], []
    for row in group.itertuples():
        query = speedups.flight_query(row)
        cached.append(cache.features(query))
        uncached.append(online.compute([query])[0].values)
    assert (cache.misses, cache.hits) == (1, len(group) - 1)
    for a, b in zip(cached, uncached, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            both_missing = a[key] is None or (isinstance(a[key], float) and math.isnan(a[key]))
            if both_missing:
                assert b[key] is None or (isinstance(b[key], float) and math.isnan(b[key])), key
            else:
                assert a[key] == b[key], key
    assert speedups.feature_gap(cached, group) == 0.0  # and both equal the offline feature table


def test_feature_cache_rows_report_hits_and_parity(november_warehouse: Any, champion: Any) -> None:
    test = features.load_splits(fast=True, seed=42)["test"]
    test = test[test["month"] == 11].reset_index(drop=True)
    rows = speedups.feature_cache_rows(test, speedups.lean_model(champion), november_warehouse, n_requests=6, seed=3, auc=0.7)
    assert [r["variant"] for r in rows] == ["online features, no cache", "online features, cache per origin-minute"]
    assert all(r["max_feature_gap"] == 0.0 and r["calls"] == 6 for r in rows)
    assert 0.0 <= rows[1]["hit_rate"] <= 1.0
    print({k: v for k, v in rows[1].items() if k != "note"})


def test_empty_warehouse_says_what_to_load(tmp_path: Path, champion: Any, splits: dict[str, pd.DataFrame]) -> None:
    eng = warehouse.connect(f"sqlite:///{tmp_path / 'empty.db'}")
    warehouse.create_schema(eng)
    with pytest.raises(RuntimeError, match="load_warehouse"):
        speedups.feature_cache_rows(splits["test"], speedups.lean_model(champion), eng, n_requests=3)


# --------------------------------------------------------------------------- table and plot


def test_format_table_and_plot() -> None:
    table = pd.DataFrame(
        {
            "variant": ["champion", "champion"],
            "path": ["DataFrame pipeline", "compiled (lleaves)"],
            "trees": [300, 300],
            "roc_auc": [0.74353, 0.74353],
            "p50_seconds": [0.009, 0.00003],
            "p99_seconds": [0.014, 0.00006],
            "rows_per_second": [60_000.0, 400_000.0],
            "calls": [100, 2000],
            "note": ["", ""],
        }
    )
    shown = speedups.format_table(table)
    assert list(shown["p99"]) == [duration(0.014), duration(0.00006)]
    assert list(shown["batch, per 1,000 rows"]) == [duration(1000 / 60_000), duration(1000 / 400_000)]
    assert shown["p99 speed-up"].iloc[1].strip() == "233.3×"
    assert list(shown["test ROC AUC"]) == [0.7435, 0.7435]
    ax = speedups.plot_speedups(table)
    assert ax.get_xscale() == "log"
    assert len(ax.collections) == 2
