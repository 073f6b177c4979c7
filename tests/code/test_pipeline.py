"""Preprocessing learns from the frame it is fitted on, and only from it; encoders are stable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import features, pipeline
from mlsys.pipeline import CategoryEncoder, Cross, HashingEncoder


def make_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A small frame with every input column, ~10 % missing numbers and a few categories."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(shift, 1 + shift, n) for c in features.NUMERIC})
    frame["sched_hour"] = rng.integers(5, 23, n).astype("float64")
    frame["sched_minute_of_day"] = frame["sched_hour"] * 60 + rng.integers(0, 60, n)
    for col in features.NUMERIC:
        if col not in ("sched_hour", "sched_minute_of_day"):
            frame.loc[rng.random(n) < 0.1, col] = np.nan
    frame["carrier"] = pd.Series(rng.choice(["AA", "B6", "UA"], n), dtype="string")
    frame["origin"] = pd.Series(rng.choice(["EWR", "JFK", "LGA"], n), dtype="string")
    frame["dest"] = pd.Series(rng.choice(["ATL", "BOS", "ORD", "LAX"], n), dtype="string")
    frame["tailnum"] = pd.Series([f"N{i}" for i in rng.integers(100, 400, n)], dtype="string")
    frame["route"] = frame["origin"] + "-" + frame["dest"]
    frame["late"] = (rng.random(n) < 0.3).astype("int64")
    return frame


@pytest.fixture
def frame_a() -> pd.DataFrame:
    return make_frame(600, seed=1)


@pytest.fixture
def frame_b() -> pd.DataFrame:
    return make_frame(400, seed=2, shift=3.0)


def test_linear_preprocessor_learns_training_statistics_only(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    prep = pipeline.linear_preprocessor().fit(frame_a[pipeline.INPUT_COLUMNS])
    num = prep.named_transformers_["num"]
    imputer, scaler = num.named_steps["simpleimputer"], num.named_steps["standardscaler"]
    cols = list(features.NUMERIC)
    medians = frame_a[cols].median().to_numpy()
    imputed = frame_a[cols].fillna(frame_a[cols].median())
    np.testing.assert_allclose(imputer.statistics_, medians)
    np.testing.assert_allclose(scaler.mean_[: len(cols)], imputed.mean().to_numpy())
    np.testing.assert_allclose(scaler.scale_[: len(cols)], imputed.std(ddof=0).to_numpy())
    edges = prep.named_transformers_["hour_bins"].named_steps["kbinsdiscretizer"].bin_edges_[0]
    expected = np.percentile(frame_a["sched_minute_of_day"], np.linspace(0, 100, len(edges)), method="averaged_inverted_cdf")
    np.testing.assert_allclose(edges, expected)
    # B differs from A, so B's medians are not A's ...
    assert not np.allclose(frame_b[cols].median().to_numpy(), medians)
    # ... and transforming B neither refits nor moves the learned statistics.
    before = (imputer.statistics_.copy(), scaler.mean_.copy(), edges.copy())
    out = pipeline.transformed_frame(prep, frame_b[pipeline.INPUT_COLUMNS])
    np.testing.assert_array_equal(imputer.statistics_, before[0])
    np.testing.assert_array_equal(scaler.mean_, before[1])
    np.testing.assert_array_equal(prep.named_transformers_["hour_bins"][-1].bin_edges_[0], before[2])
    # B's values are scaled with A's mean and scale
    b = frame_b["distance"].fillna(medians[cols.index("distance")])
    expected_scaled = (b - scaler.mean_[cols.index("distance")]) / scaler.scale_[cols.index("distance")]
    np.testing.assert_allclose(out["num__distance"].to_numpy(), expected_scaled.to_numpy())


def test_missing_values_get_indicators_in_linear_and_stay_nan_in_tree(frame_a: pd.DataFrame) -> None:
    X = frame_a[pipeline.INPUT_COLUMNS]
    linear = pipeline.transformed_frame(pipeline.linear_preprocessor().fit(X), X)
    missing = X["distance"].isna().to_numpy()
    assert missing.any()
    indicator = linear["num__missingindicator_distance"]  # standardised like every column of the block
    np.testing.assert_array_equal((indicator > indicator.min()).to_numpy(), missing)
    assert not linear.isna().any().any()
    tree = pipeline.tree_preprocessor().fit(X).transform(X)
    np.testing.assert_array_equal(tree["distance"].isna().to_numpy(), missing)


def test_hashing_encoder_is_stateless_and_fixed_width(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    cols = pipeline.HASHED
    fitted_a = HashingEncoder(n_features=64).fit(frame_a[cols])
    fitted_b = HashingEncoder(n_features=64).fit(frame_b[cols])
    assert {k for k in vars(fitted_a) if k.endswith("_")} == {"n_features_in_"}  # no vocabulary learned
    unseen = pd.DataFrame({"tailnum": ["N999999", "N999999", pd.NA], "route": ["JFK-XYZ", "EWR-ATL", "EWR-ATL"]})
    out_a = fitted_a.transform(unseen)
    out_b = fitted_b.transform(unseen)
    assert out_a.shape == (3, 64)
    assert (out_a != out_b).nnz == 0  # what it was fitted on does not matter
    assert pipeline.HashingEncoder().fit(frame_a[cols]).transform(frame_a[cols]).shape[1] == pipeline.HASH_FEATURES
    rows = out_a.toarray()
    tail_col = pipeline.hash_buckets(["tailnum=N999999"], 64)[0]
    assert rows[0, tail_col] >= 1 and rows[1, tail_col] >= 1  # same value, same column
    np.testing.assert_array_equal(rows.sum(axis=1), [2, 2, 1])  # a missing value adds nothing


def test_hash_collisions_counts_shared_columns() -> None:
    frame = pd.DataFrame({"tailnum": [f"N{i}" for i in range(50)], "route": ["A-B"] * 50})
    table = pipeline.hash_collisions(frame, sizes=(2**20, 2))
    assert table["tokens"].tolist() == [51, 51]
    assert table.loc[2, "columns used"] == 2
    assert table.loc[2, "tokens sharing a column"] == 1.0  # with 2 columns every token shares one
    assert table.loc[2**20, "tokens sharing a column"] < 0.05


def test_cross_joins_columns() -> None:
    X = pd.DataFrame({"origin": pd.Series(["JFK", "EWR", "LGA"], dtype="string"), "sched_hour": [17.0, 6.0, np.nan]})
    out = Cross(["origin", "sched_hour"], "origin_x_hour").fit_transform(X)
    assert list(out.columns) == ["origin_x_hour"]
    assert out["origin_x_hour"].tolist() == ["JFK|17", "EWR|6", "LGA|?"]


def test_category_encoder_maps_unseen_to_nan_and_keeps_codes() -> None:
    train = pd.DataFrame({"carrier": pd.Series(["UA", "AA", "B6", "AA"], dtype="string")})
    enc = CategoryEncoder().fit(train)
    serve = pd.DataFrame({"carrier": pd.Series(["B6", "ZZ", None, "UA"], dtype="string")})
    out = enc.transform(serve)["carrier"]
    assert list(out.cat.categories) == ["AA", "B6", "UA"]
    assert out.isna().tolist() == [False, True, True, False]
    # the same value gets the same code whatever else is in the frame
    assert out.cat.codes.tolist() == [1, -1, -1, 2]
    assert enc.transform(train)["carrier"].cat.codes.tolist() == [2, 0, 1, 0]


@pytest.mark.parametrize("kind", ["logreg", "lightgbm"])
def test_make_model_fits_and_predicts_with_missing_values(kind: str, frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    X = frame_a[pipeline.INPUT_COLUMNS]
    assert X.isna().any().any()
    params = {"n_estimators": 20} if kind == "lightgbm" else {}
    model = pipeline.make_model(kind, seed=0, **params).fit(X, frame_a["late"])
    p = model.predict_proba(frame_b[pipeline.INPUT_COLUMNS])[:, 1]
    assert p.shape == (len(frame_b),)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_make_model_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        pipeline.make_model("svm")


def test_block_widths_add_up(frame_a: pd.DataFrame) -> None:
    prep = pipeline.linear_preprocessor().fit(frame_a[pipeline.INPUT_COLUMNS])
    widths = pipeline.block_widths(prep)
    assert widths.loc["hashed", "output columns"] == pipeline.HASH_FEATURES
    assert widths.loc["hashed", "input columns"] == len(pipeline.HASHED)
    assert widths["output columns"].sum() == prep.transform(frame_a[pipeline.INPUT_COLUMNS]).shape[1]


def test_fit_early_stopping_fits_preprocessing_on_train_only(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> None:
    valid = frame_b.assign(dest=pd.Series(["SFO"] * len(frame_b), dtype="string"))
    model = pipeline.make_model("lightgbm", seed=0, n_estimators=200)
    model = pipeline.fit_early_stopping(
        model, frame_a[features.FEATURES], frame_a["late"], valid[features.FEATURES], valid["late"], rounds=5
    )
    assert "SFO" not in model.named_steps["prep"].named_transformers_["cat"].categories_["dest"]
    assert 1 <= model.named_steps["model"].best_iteration_ < 200  # random labels: stops early
    assert model.predict_proba(valid[features.FEATURES]).shape == (len(valid), 2)


def _row_wise_tokens(frame: pd.DataFrame) -> list[list[str]]:
    """The hashing encoder's tokens built row by row, the obvious (slow) way."""
    return [[f"{c}={v}" for c, v in zip(frame.columns, row, strict=True) if isinstance(v, str)] for row in frame.itertuples(index=False, name=None)]


def test_hashing_encoder_hashes_the_same_tokens_as_row_by_row(frame_a: pd.DataFrame) -> None:
    from sklearn.feature_extraction import FeatureHasher

    frame = frame_a[pipeline.HASHED].copy()
    frame.loc[frame.index[:7], "tailnum"] = None  # missing values contribute no token
    frame.loc[frame.index[3:9], "route"] = pd.NA
    expected = FeatureHasher(n_features=pipeline.HASH_FEATURES, input_type="string", alternate_sign=False).transform(_row_wise_tokens(frame))
    got = HashingEncoder().fit(frame).transform(frame)
    assert (got != expected).nnz == 0
    assert got[:3].sum() == 3  # rows 0-2 kept only their route


def test_permutation_importance_shortcut_matches_the_full_pipeline(frame_a: pd.DataFrame) -> None:
    from sklearn.inspection import permutation_importance

    from mlsys import selection

    model = pipeline.make_model("lightgbm", n_estimators=20, min_child_samples=20).fit(frame_a[features.FEATURES], frame_a["late"])
    X, y = frame_a[features.FEATURES], frame_a["late"]
    table = selection.permutation_table(model, X, y, seed=0, n_repeats=2, max_rows=None)
    full = permutation_importance(model, X, y, scoring="roc_auc", n_repeats=2, random_state=0, n_jobs=1)
    np.testing.assert_allclose(table.loc[X.columns, "importance"].to_numpy(), full.importances_mean)
