"""The promotion protocol: a worse model is rejected and leaves the champion alone; a good one is promoted."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys import evaluate, promote, tracking
from mlsys.config import get_settings
from mlsys.pipeline import INPUT_COLUMNS, make_model

SEED = 42  # the seed of the `splits` fixture in tests/model/conftest.py
FAST_TREES = {"n_estimators": 150, "learning_rate": 0.1, "n_jobs": 1}

PROTOCOL = promote.Protocol(behaviour_rows=5_000)


@pytest.fixture(scope="module")
def example(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return splits["test"][INPUT_COLUMNS].head(5)


@pytest.fixture(scope="module")
def promoted(splits: dict[str, pd.DataFrame], example: pd.DataFrame) -> promote.Decision:
    fitted = evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, **FAST_TREES), splits["train"])
    model = evaluate.calibrate(fitted, splits["valid"], "sigmoid")
    report = promote.evaluate_candidate(model, splits, PROTOCOL)
    return promote.promote(model, report, example, name="test-good")


@pytest.fixture(scope="module")
def shuffled_label_model(splits: dict[str, pd.DataFrame]):
    """Same pipeline, labels permuted: it can only learn noise."""
    train = splits["train"]
    noisy = train.assign(late=np.random.default_rng(SEED).permutation(train["late"].to_numpy()))
    return evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, **{**FAST_TREES, "n_estimators": 50}), noisy)


@pytest.fixture(scope="module")
def shuffled_report(shuffled_label_model, splits: dict[str, pd.DataFrame]) -> promote.Report:
    return promote.evaluate_candidate(shuffled_label_model, splits, PROTOCOL)


def _versions() -> list[str]:
    settings = get_settings()
    return sorted(v.version for v in MlflowClient().search_model_versions(f"name = '{settings.registered_model_name}'"))


def test_passing_model_is_registered_with_the_champion_alias(promoted: promote.Decision) -> None:
    settings = get_settings()
    assert promoted.promoted, promoted.reasons
    assert promoted.version is not None and promoted.reasons == []
    found = MlflowClient().get_model_version_by_alias(settings.registered_model_name, settings.champion_alias)
    assert str(found.version) == promoted.version
    assert settings.champion_alias in found.aliases
    run = MlflowClient().get_run(promoted.run_id)
    assert run.data.tags["promotion.decision"] == "promoted"


def test_shuffled_label_model_is_rejected_and_champion_kept(
    promoted: promote.Decision, shuffled_label_model, shuffled_report: promote.Report, example: pd.DataFrame
) -> None:
    before_alias, before_versions = promote.champion_version(), _versions()
    report = shuffled_report
    decision = promote.promote(shuffled_label_model, report, example, name="test-shuffled")

    assert not report.passed and not decision.promoted and decision.version is None
    failed = {c.name for c in report.checks if not c.passed}
    assert {"test_roc_auc", "brier_vs_zero_rule"} <= failed
    assert any(r.startswith("test_roc_auc") for r in decision.reasons)
    # nothing registered, alias untouched
    assert _versions() == before_versions
    assert promote.champion_version() == before_alias == promoted.version
    # the report and the reasons are logged on the run
    client = MlflowClient()
    run = client.get_run(decision.run_id)
    assert run.data.tags["promotion.decision"] == "rejected"
    assert "test_roc_auc" in run.data.tags["promotion.reasons"]
    assert run.data.tags["check.test_roc_auc"] == "failed"
    logged = {a.path for a in client.list_artifacts(decision.run_id, "promotion")}
    assert {"promotion/report.json", "promotion/reasons.txt"} <= logged


def test_unconstrained_model_fails_only_behaviour_checks(splits: dict[str, pd.DataFrame]) -> None:
    model = evaluate.calibrate(evaluate.fit(make_model("lightgbm", seed=SEED, **FAST_TREES), splits["train"]), splits["valid"], "sigmoid")
    report = promote.evaluate_candidate(model, splits, PROTOCOL)
    failed = {c.name for c in report.checks if not c.passed}
    assert failed and all(name.startswith("directional_") for name in failed), report.reasons


def test_report_table_has_one_row_per_check(shuffled_report: promote.Report) -> None:
    report = shuffled_report
    table = report.table()
    assert list(table["check"]) == [c.name for c in report.checks]
    assert table["passed"].tolist() == [c.passed for c in report.checks]


@pytest.mark.parametrize(
    ("value", "op", "threshold", "passed"),
    [(0.71, ">=", 0.70, True), (0.69, ">=", 0.70, False), (0.0, "<=", 0.0, True), (1.0, "<=", 0.0, False), (math.nan, ">=", 0.0, False)],
)
def test_check_compares_in_the_stated_direction(value: float, op: str, threshold: float, passed: bool) -> None:
    check = promote.Check("x", value, op, threshold)
    assert check.passed is passed
    assert (check.reason == "") is passed


def test_protocol_is_frozen_and_documented() -> None:
    protocol = promote.Protocol()
    with pytest.raises(AttributeError):
        protocol.min_roc_auc = 0.0  # type: ignore[misc]
    assert set(promote.protocol_table(protocol).index) == set(promote.REASONS)
    assert tracking.champion_uri().endswith("@" + get_settings().champion_alias)


def test_calibration_measures_on_known_probabilities() -> None:
    rng = np.random.default_rng(SEED)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)  # calibrated by construction
    assert evaluate.expected_calibration_error(y, p) < 0.01
    assert evaluate.expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1
    assert evaluate.zero_rule_brier(np.array([0.0, 1.0]), 0.5) == pytest.approx(0.25)
