"""LightGBM's own SHAP values (`pred_contrib`) through the champion pipeline add up and are named right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from mlsys import evaluate
from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import INPUT_COLUMNS, make_model
from mlsys.responsible import explain


def test_contributions_sum_to_the_raw_margin(small_model, test_rows: pd.DataFrame) -> None:
    contrib = explain.contributions(small_model, test_rows)
    margin = explain.raw_margin(small_model, test_rows)
    assert explain.additivity_gap(contrib, margin) < 1e-9
    # and the margin is the model's probability before the sigmoid
    np.testing.assert_allclose(explain.sigmoid(margin), evaluate.predict(small_model, test_rows), atol=1e-12)


def test_contributions_are_named_by_feature_with_one_bias(small_model, test_rows: pd.DataFrame) -> None:
    contrib = explain.contributions(small_model, test_rows.head(50))
    assert list(contrib.columns) == [*NUMERIC, *CATEGORICAL, explain.BIAS]
    # the bias is the same for every flight: the model's expected raw score
    assert contrib[explain.BIAS].nunique() == 1
    assert contrib.index.equals(test_rows.head(50).index)


def test_gap_detects_contributions_that_do_not_add_up(small_model, test_rows: pd.DataFrame) -> None:
    rows = test_rows.head(20)
    contrib = explain.contributions(small_model, rows)
    broken = contrib.assign(carrier=contrib["carrier"] + 0.01)
    assert explain.additivity_gap(broken, explain.raw_margin(small_model, rows)) == pytest.approx(0.01, abs=1e-9)


def test_a_feature_the_model_never_uses_contributes_nothing(small_model, test_rows: pd.DataFrame) -> None:
    """Changing flight numbers (not a model input) leaves every contribution as it was."""
    rows = test_rows.head(200)
    shuffled = rows.assign(flight=rows["flight"].sample(frac=1, random_state=1).to_numpy())
    pd.testing.assert_frame_equal(explain.contributions(small_model, rows), explain.contributions(small_model, shuffled))


def test_global_importance_is_mean_absolute_contribution() -> None:
    contrib = pd.DataFrame({"a": [1.0, -3.0], "b": [0.5, 0.5], explain.BIAS: [-1.0, -1.0]})
    importance = explain.global_importance(contrib)
    assert list(importance.index) == ["a", "b"]
    assert importance.tolist() == [2.0, 0.5]


def test_explain_flight_keeps_the_total(small_model, test_rows: pd.DataFrame) -> None:
    rows = test_rows.head(30)
    contrib = explain.contributions(small_model, rows)
    table = explain.explain_flight(contrib, rows, rows.index[3], top=5)
    assert len(table) == 6  # five features and one line for the rest
    assert table["contribution"].sum() == pytest.approx(contrib.loc[rows.index[3]].drop(explain.BIAS).sum())


def test_unwrap_finds_the_pipeline_inside_a_calibration_map(small_model, test_rows: pd.DataFrame) -> None:
    rows = test_rows.head(500)
    calibrated = CalibratedClassifierCV(FrozenEstimator(small_model), method="sigmoid").fit(rows[INPUT_COLUMNS], rows["late"].astype(int))
    assert explain.unwrap(calibrated) is small_model


def test_a_model_without_trees_is_refused(test_rows: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match="LightGBM"):
        explain.contributions(make_model("logreg"), test_rows.head(5))
