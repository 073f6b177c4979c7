"""The promotion protocol: a worse model is rejected and leaves the champion alone; a good one is promoted.

Candidates are judged on the validation split with a threshold chosen there; the test split is
looked at once afterwards (`on="test"`), and that look never changes the threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys import evaluate, objectives, promote, tracking
from mlsys.config import get_settings
from mlsys.pipeline import INPUT_COLUMNS, make_model

SEED = 42  # the seed of the `splits` fixture in tests/model/conftest.py
FAST_TREES = {"n_estimators": 150, "learning_rate": 0.1, "n_jobs": 1}

PROTOCOL = promote.Protocol(behaviour_rows=5_000)


@pytest.fixture(scope="module")
def example(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return splits["test"][INPUT_COLUMNS].head(5)


@pytest.fixture(scope="module")
def good_model(splits: dict[str, pd.DataFrame]):
    """The champion recipe (`promote.fit_champion`: monotone LightGBM, no calibration map), smaller."""
    return evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, **FAST_TREES), splits["train"])


@pytest.fixture(scope="module")
def good_report(good_model, splits: dict[str, pd.DataFrame]) -> promote.Report:
    return promote.evaluate_candidate(good_model, splits, PROTOCOL)


@pytest.fixture(scope="module")
def promoted(good_model, good_report: promote.Report, example: pd.DataFrame) -> promote.Decision:
    return promote.promote(good_model, good_report, example, name="test-good")


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
    assert run.data.params["judged_split"] == "valid" and "valid_roc_auc" in run.data.metrics


def test_threshold_is_chosen_on_validation_and_tagged(
    good_model, good_report: promote.Report, promoted: promote.Decision, splits: dict[str, pd.DataFrame]
) -> None:
    valid = splits["valid"]
    y, p = valid["late"].astype(int).to_numpy(), evaluate.predict(good_model, valid)
    # independent of objectives.best_threshold: the cheapest threshold on a 0.01 grid, smallest on ties
    grid = np.round(np.linspace(0, 1, 101), 2)
    costs = [(100 * ((p >= t) & (y == 0)).sum() + 300 * ((p < t) & (y == 1)).sum()) / len(y) for t in grid]
    assert good_report.protocol.threshold == pytest.approx(float(grid[int(np.argmin(costs))]))
    tag = MlflowClient().get_model_version(get_settings().registered_model_name, promoted.version).tags[promote.THRESHOLD_TAG]
    assert float(tag) == pytest.approx(good_report.protocol.threshold)


def test_test_look_keeps_the_validation_threshold(good_model, good_report: promote.Report, splits: dict[str, pd.DataFrame]) -> None:
    on_test = promote.evaluate_candidate(good_model, splits, PROTOCOL, on="test")
    assert on_test.split == "test" and on_test.protocol.threshold == good_report.protocol.threshold
    assert on_test.scores["test_roc_auc"] == pytest.approx(evaluate.calibration_scores(splits["test"]["late"], evaluate.predict(good_model, splits["test"]))["roc_auc"])
    # the dispatcher rule keeps its validation threshold too
    rule, rule_threshold = promote.dispatcher_rule(splits)
    assert on_test.evidence["decisions"].loc["dispatcher rule", "threshold"] == rule_threshold
    side_by_side = promote.compare_reports({"valid": good_report, "test": on_test})
    assert list(side_by_side.index) == [c.name for c in good_report.checks]
    assert side_by_side["test passed"].tolist() == [c.passed for c in on_test.checks]


def test_test_look_is_recorded_on_the_promotion_run(good_model, promoted: promote.Decision, good_report, splits) -> None:
    with pytest.raises(ValueError, match="test split"):
        promote.record_test_look(promoted, good_report)
    on_test = promote.evaluate_candidate(good_model, splits, good_report.protocol, on="test")
    promote.record_test_look(promoted, on_test)
    run = MlflowClient().get_run(promoted.run_id)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(on_test.scores["test_roc_auc"])
    assert run.data.tags["test_check.ece"] == ("passed" if on_test.checks[-1].passed else "failed")


def test_cost_check_compares_with_the_dispatcher_rule(good_report: promote.Report, splits: dict[str, pd.DataFrame]) -> None:
    rule, rule_threshold = promote.dispatcher_rule(splits)
    valid = splits["valid"]
    rule_cost = objectives.expected_cost(valid["late"].astype(int), evaluate.predict(rule, valid), rule_threshold, objectives.COURSE_COSTS)
    decisions = good_report.evidence["decisions"]
    assert decisions.loc["dispatcher rule", "cost_per_flight"] == pytest.approx(rule_cost)
    check = next(c for c in good_report.checks if c.name == "cost_vs_dispatcher_rule")
    assert check.value == pytest.approx(decisions.loc["candidate", "cost_per_flight"] / rule_cost)


def test_only_the_protocols_slice_columns_are_gated(good_model, splits: dict[str, pd.DataFrame]) -> None:
    hours_too = promote.evaluate_candidate(good_model, splits, promote.Protocol(behaviour_rows=500, slice_columns=("sched_hour",)))
    slices = hours_too.evidence["slices"]
    hours = slices[(slices["column"] == "sched_hour") & (slices["n"] >= 500)]
    check = next(c for c in hours_too.checks if c.name == "min_slice_roc_auc")
    assert check.value == pytest.approx(hours["roc_auc"].min())


def test_shuffled_label_model_is_rejected_and_champion_kept(
    promoted: promote.Decision, shuffled_label_model, shuffled_report: promote.Report, example: pd.DataFrame
) -> None:
    before_alias, before_versions = promote.champion_version(), _versions()
    report = shuffled_report
    decision = promote.promote(shuffled_label_model, report, example, name="test-shuffled")

    assert not report.passed and not decision.promoted and decision.version is None
    failed = {c.name for c in report.checks if not c.passed}
    assert {"roc_auc", "brier_vs_zero_rule", "cost_vs_dispatcher_rule"} <= failed
    assert any(r.startswith("roc_auc") for r in decision.reasons)
    # nothing registered, alias untouched
    assert _versions() == before_versions
    assert promote.champion_version() == before_alias == promoted.version
    # the report and the reasons are logged on the run
    client = MlflowClient()
    run = client.get_run(decision.run_id)
    assert run.data.tags["promotion.decision"] == "rejected"
    assert "roc_auc" in run.data.tags["promotion.reasons"]
    assert run.data.tags["check.roc_auc"] == "failed"
    logged = {a.path for a in client.list_artifacts(decision.run_id, "promotion")}
    assert {"promotion/report.json", "promotion/reasons.txt"} <= logged


def test_unconstrained_model_fails_only_behaviour_checks(splits: dict[str, pd.DataFrame]) -> None:
    model = evaluate.fit(make_model("lightgbm", seed=SEED, **FAST_TREES), splits["train"])
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
    # limits come from the desk's needs: the cost threshold of COURSE_COSTS, its calibration tolerance
    assert protocol.threshold is None and protocol.max_ece == 0.05 and protocol.max_cost_ratio == 1.0
    assert tracking.champion_uri().endswith("@" + get_settings().champion_alias)


def test_calibration_measures_on_known_probabilities() -> None:
    rng = np.random.default_rng(SEED)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(float)  # calibrated by construction
    assert evaluate.expected_calibration_error(y, p) < 0.01
    assert evaluate.expected_calibration_error(y, np.clip(p + 0.2, 0, 1)) > 0.1
    assert evaluate.zero_rule_brier(np.array([0.0, 1.0]), 0.5) == pytest.approx(0.25)
