"""The lean scoring path gives the pipeline's probabilities, and falls back for unknown structures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import evaluate, pipeline
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.serve.lean import LeanModel

N_ROWS = 2_000


@pytest.fixture(scope="module")
def rows(splits) -> pd.DataFrame:
    return splits["test"].sample(N_ROWS, random_state=7)[INPUT_COLUMNS]


def test_lean_equals_the_calibrated_pipeline_on_2000_test_rows(small_model, rows):
    lean = LeanModel.from_pipeline(small_model)
    assert lean.is_lean
    want = small_model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(lean.predict_proba(rows), want, rtol=0, atol=1e-9)
    # one numpy row at a time, as the service scores: category codes built from strings
    one_by_one = np.concatenate([lean.predict_proba(rows.iloc[[i]].to_numpy(dtype=object)) for i in range(200)])
    np.testing.assert_allclose(one_by_one, want[:200], rtol=0, atol=1e-9)


def test_lean_equals_isotonic_and_uncalibrated_pipelines(small_model, splits, rows):
    inner = small_model.calibrated_classifiers_[0].estimator.estimator
    isotonic = evaluate.calibrate(inner, splits["valid"].sample(5_000, random_state=1), "isotonic")
    for model in (isotonic, inner):
        lean = LeanModel.from_pipeline(model)
        assert lean.is_lean, type(model).__name__
        np.testing.assert_allclose(lean.predict_proba(rows), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-9)


def test_unseen_and_missing_categories_score_like_the_pipeline(small_model, rows):
    odd = rows.head(50).copy()
    odd.loc[odd.index[:10], "carrier"] = "ZZ"  # never seen: LightGBM gets a missing category
    odd.loc[odd.index[10:20], "dest"] = None
    odd.loc[odd.index[20:30], "wx_visib"] = np.nan
    lean = LeanModel.from_pipeline(small_model)
    np.testing.assert_allclose(lean.predict_proba(odd), small_model.predict_proba(odd)[:, 1], rtol=0, atol=1e-9)
    assert lean.categories["carrier"][:2] == ["9E", "AA"]


def test_unknown_structures_are_scored_by_the_model_itself(splits, rows):
    logreg = pipeline.make_model("logreg").fit(splits["train"].head(3_000)[INPUT_COLUMNS], splits["train"].head(3_000)["late"].to_numpy())
    lean = LeanModel.from_pipeline(logreg)
    assert not lean.is_lean and lean.categories == {}
    head = rows.head(20)
    np.testing.assert_allclose(lean.predict_proba(head), logreg.predict_proba(head)[:, 1])
    np.testing.assert_allclose(lean.predict_proba(head.to_numpy(dtype=object)), logreg.predict_proba(head)[:, 1])


def test_rows_of_the_wrong_width_are_refused(small_model):
    with pytest.raises(ValueError, match="expected rows of"):
        LeanModel.from_pipeline(small_model).predict_proba(np.zeros((1, 3)))
