"""`train_and_log`: what it tracks in MLflow is what the model does, on the split it names."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlsys import features, lineage, train
from mlsys.metrics import classification_scores

SEED = 7


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    """3,000 training rows and 1,500 rows each of valid and test, time split kept."""
    splits = features.load_splits(fast=True, seed=SEED)
    sizes = {"train": 3_000, "valid": 1_500, "test": 1_500}
    return {name: train.subsample(df, sizes[name], SEED) for name, df in splits.items()}


@pytest.fixture(scope="module")
def tracked(small: dict[str, pd.DataFrame]) -> train.TrainResult:
    model = train.lightgbm_model(SEED, fast=True, n_estimators=200)
    return train.train_and_log(model, small, "test-lightgbm", early_stopping_rounds=10, seed=SEED, n_latency=5)


def test_logs_params_metrics_curves_and_artifacts(tracked: train.TrainResult) -> None:
    client = MlflowClient()
    run = client.get_run(tracked.run_id)
    assert run.data.params["model__num_leaves"] == "31"
    assert run.data.params["label"] == "late"
    assert run.data.tags["hardware.cpus"]
    for key in ("valid_roc_auc", "test_roc_auc", "test_brier", "train_seconds", "latency_single_row_ms", "batch_ms_per_1000_rows"):
        assert key in run.data.metrics
    history = client.get_metric_history(tracked.run_id, "valid_binary_logloss")
    assert [m.step for m in history] == list(range(1, len(tracked.evals["valid"]["binary_logloss"]) + 1))
    assert [m.value for m in history] == pytest.approx(tracked.evals["valid"]["binary_logloss"])
    assert run.data.metrics["best_iteration"] == tracked.best_iteration < len(history)
    artifacts = {a.path for a in client.list_artifacts(tracked.run_id)} | {a.path for a in client.list_artifacts(tracked.run_id, "predictions")}
    assert {"loss_curve.png", "predictions/test_sample.csv"} <= artifacts


def test_metrics_are_computed_on_the_split_they_name(tracked: train.TrainResult, small: dict[str, pd.DataFrame]) -> None:
    metrics = MlflowClient().get_run(tracked.run_id).data.metrics
    for split in ("valid", "test"):
        X, y = train.xy(small[split])
        expected = classification_scores(y, train.predict(tracked.model, X))
        assert metrics[f"{split}_roc_auc"] == pytest.approx(expected["roc_auc"])
        assert metrics[f"{split}_brier"] == pytest.approx(expected["brier"])
        assert metrics[f"{split}_positive_rate"] == pytest.approx(small[split]["late"].mean())
        assert metrics[f"n_{split}"] == len(small[split])
    assert metrics["n_train"] == len(small["train"])
    # valid and test are different months, so a mix-up would show
    assert metrics["valid_roc_auc"] != pytest.approx(metrics["test_roc_auc"])


def test_prediction_sample_carries_ground_truth_and_predictions(tracked: train.TrainResult, small: dict[str, pd.DataFrame]) -> None:
    text = mlflow.artifacts.load_text(f"runs:/{tracked.run_id}/predictions/test_sample.csv")
    sample = pd.read_csv(io.StringIO(text))
    assert len(sample) == 200
    test = small["test"].set_index("flight_id")
    assert (sample["y_true"].to_numpy() == test.loc[sample["flight_id"], "late"].astype(int).to_numpy()).all()
    p = train.predict(tracked.model, test.loc[sample["flight_id"]].reset_index())
    np.testing.assert_allclose(sample["p_pred"], p, atol=1e-6)


def test_logged_model_loads_back_with_the_same_probabilities(tracked: train.TrainResult, small: dict[str, pd.DataFrame]) -> None:
    assert tracked.model_uri
    loaded = mlflow.sklearn.load_model(tracked.model_uri)
    X, _ = train.xy(small["test"])
    np.testing.assert_array_equal(loaded.predict_proba(X), tracked.model.predict_proba(X))


def test_same_seed_same_model_other_seed_other_model(small: dict[str, pd.DataFrame]) -> None:
    def run(seed: int) -> train.TrainResult:
        return train.train_and_log(train.lightgbm_model(seed, n_estimators=40), small, f"seed-{seed}", log_model=False, seed=seed, n_latency=2)

    first, second, other = run(SEED), run(SEED), run(SEED + 1)
    X, _ = train.xy(small["test"])
    assert train.max_prediction_gap(first.model, second.model, X) == 0.0
    assert first.test == second.test
    assert train.max_prediction_gap(first.model, other.model, X) > 0.0


def test_stacking_fits_only_the_meta_learner_on_valid(small: dict[str, pd.DataFrame]) -> None:
    X, y = train.xy(small["train"])
    members = {"logreg": train.make_zoo_model("logreg", SEED).fit(X, y), "bagging": train.make_zoo_model("bagging", SEED).fit(X, y)}
    Xt, _ = train.xy(small["test"])
    before = {name: train.predict(m, Xt) for name, m in members.items()}
    result = train.train_and_log(train.stacking_model(members), small, "stack", fit_on="valid", log_model=False, n_latency=2)
    for name, model in members.items():
        np.testing.assert_array_equal(train.predict(model, Xt), before[name])
    assert result.n_train == len(small["valid"])
    assert result.model.final_estimator_.coef_.shape == (1, 2)


def test_zero_rule_predicts_the_training_base_rate(small: dict[str, pd.DataFrame]) -> None:
    X, y = train.xy(small["train"])
    p = train.predict(train.make_zoo_model("zero_rule").fit(X, y), train.xy(small["test"])[0])
    assert np.allclose(p, y.mean())


def test_overfitting_a_small_batch_is_possible(small: dict[str, pd.DataFrame]) -> None:
    scores = train.overfit_small_batch(small["train"], small["valid"], n=200, seed=SEED)
    assert scores["train_roc_auc"] > 0.99
    assert scores["valid_roc_auc"] < scores["train_roc_auc"] - 0.1


def test_peer_splits_keep_flown_flights_with_the_30_minute_label(small: dict[str, pd.DataFrame]) -> None:
    peer = train.peer_splits(small)
    for name, df in peer.items():
        assert df["arr_delay"].notna().all()
        assert len(df) == small[name]["arr_delay"].notna().sum()
        assert (df[train.PEER_LABEL] == (df["arr_delay"] >= 30)).all()


def test_unlabelled_rows_are_refused(small: dict[str, pd.DataFrame]) -> None:
    frame = small["train"].assign(y=np.where(np.arange(len(small["train"])) % 2, 1.0, np.nan))
    with pytest.raises(ValueError, match="no 'y'"):
        train.xy(frame, "y")


# --------------------------------------------------------------------------- versions, stacks, choices, headline


def test_runs_record_code_and_data_versions(tracked: train.TrainResult, small: dict[str, pd.DataFrame]) -> None:
    tags = MlflowClient().get_run(tracked.run_id).data.tags
    assert tags["data.feature_version"] == features.FEATURE_VERSION
    assert tags["data.fit_rows"] == train.row_fingerprint(small["train"])
    assert tags["data.fit_split"] == "train"
    assert len(tags["data.raw_sha256"]) == 16
    commit, dirty = lineage.code_commit()
    if commit != "unknown":  # a clone without git (e.g. a tarball) records no commit
        assert tags["mlflow.source.git.commit"] == commit
        assert tags["code.uncommitted_changes"] == str(dirty).lower()


def test_row_fingerprint_follows_rows_and_labels_only(small: dict[str, pd.DataFrame]) -> None:
    frame = small["train"]
    base = train.row_fingerprint(frame)
    assert train.row_fingerprint(frame.copy()) == base
    flipped = frame.copy()
    flipped.loc[flipped.index[0], "late"] = 1 - flipped["late"].iloc[0]
    assert train.row_fingerprint(flipped) != base
    assert train.row_fingerprint(frame.iloc[1:]) != base
    assert train.row_fingerprint(frame.assign(wx_temp=0.0)) == base  # features are pinned by the feature version


def test_stack_is_scored_out_of_fold_on_valid(small: dict[str, pd.DataFrame]) -> None:
    X, y = train.xy(small["train"])
    Xv, yv = train.xy(small["valid"])
    members = {"logreg": train.make_zoo_model("logreg", SEED).fit(X, y), "bagging": train.make_zoo_model("bagging", SEED).fit(X, y)}
    result = train.train_and_log(train.stacking_model(members), small, "stack-oof", fit_on="valid", log_model=False, seed=SEED, n_latency=2)
    in_sample = train.predict(result.model, Xv)
    assert not np.allclose(result.valid_pred, in_sample)
    np.testing.assert_allclose(result.valid_pred, train.stack_out_of_fold(result.model, Xv, yv, seed=SEED))
    assert result.valid["roc_auc"] == pytest.approx(classification_scores(yv, result.valid_pred)["roc_auc"])


def test_weighted_auc_is_the_auc_of_the_resample() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 2)  # ties
    from sklearn.metrics import roc_auc_score

    assert train.weighted_roc_auc(y, p, np.ones(500))[0] == pytest.approx(roc_auc_score(y, p))
    weights = train.bootstrap_weights(500, 3, seed=2)
    for w, auc in zip(weights, train.weighted_roc_auc(y, p, weights), strict=True):
        rows = np.repeat(np.arange(500), w)
        assert auc == pytest.approx(roc_auc_score(y[rows], p[rows]))


def test_bootstrap_by_group_keeps_groups_whole() -> None:
    groups = np.repeat(["a", "b", "c", "d"], [3, 1, 2, 4])
    weights = train.bootstrap_weights(len(groups), 50, seed=0, groups=groups)
    assert weights.shape == (50, 10)
    for w in weights:
        for g in "abcd":
            assert len(set(w[groups == g])) == 1  # every flight of a day drawn as often as its day
        assert sum(w[groups == g][0] for g in "abcd") == 4
    with pytest.raises(ValueError, match="groups"):
        train.bootstrap_weights(5, 2, groups=groups)


def test_choice_prefers_the_cheaper_of_equally_good_models() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 4_000)
    signal = y + rng.normal(0, 1.0, y.size)
    predictions = {
        "stacking": signal + rng.normal(0, 0.05, y.size),  # best by a hair
        "lightgbm": signal + rng.normal(0, 0.06, y.size),  # indistinguishable
        "logreg": signal + rng.normal(0, 2.0, y.size),  # clearly worse
    }
    table = train.choose_on_validation(y, predictions, n_boot=200, seed=0)
    assert table.index[0] == "stacking"
    assert bool(table.loc["lightgbm", "as good as the best"]) and not bool(table.loc["logreg", "as good as the best"])
    assert train.chosen_model(table) == "lightgbm"
    assert table["chosen"].sum() == 1
    # without a cost difference the best one is kept
    assert train.chosen_model(train.choose_on_validation(y, predictions, n_boot=200, seed=0, models_per_prediction={"stacking": 1})) == "stacking"


def test_headline_is_the_same_figure_as_the_tracked_run(small: dict[str, pd.DataFrame]) -> None:
    headline = train.headline(small, train.PEER_LABEL, seed=SEED)
    peer = train.peer_splits(small)
    tracked = train.train_and_log(
        train.headline_model(SEED), peer, "headline-test", label=train.PEER_LABEL,
        early_stopping_rounds=train.HEADLINE_EARLY_STOPPING, log_model=False, seed=SEED, n_latency=2,
    )  # fmt: skip
    assert headline.roc_auc == pytest.approx(tracked.test["roc_auc"], abs=1e-12)
    assert headline.train_rows == len(peer["train"]) and headline.test_rows == len(peer["test"])
    assert headline.trees == tracked.best_iteration
    ids = peer["test"]["flight_id"].to_numpy()[:500]
    assert train.headline(small, train.PEER_LABEL, seed=SEED, test_ids=ids).test_rows == 500


def test_log_odds_table_follows_the_data(small: dict[str, pd.DataFrame]) -> None:
    shape = train.log_odds_by_bin(small["train"], "sched_minute_of_day", bins=5)
    assert shape["flights"].sum() == small["train"]["sched_minute_of_day"].notna().sum()
    rate = shape["late rate"].to_numpy()
    np.testing.assert_allclose(shape["log-odds (data)"], np.log(rate / (1 - rate)), atol=2e-3)
    # a one-feature logistic regression is monotone in its feature
    line = shape["log-odds (straight line)"].to_numpy()
    assert np.all(np.diff(line) > 0) or np.all(np.diff(line) < 0)


def test_a_candidate_can_be_trained_without_looking_at_test_and_scored_once_later(small: dict[str, pd.DataFrame]) -> None:
    model = train.lightgbm_model(SEED, fast=True, n_estimators=30)
    result = train.train_and_log(model, small, "blind", log_model=False, seed=SEED, n_latency=2, score_test=False)
    client = MlflowClient()
    assert result.test == {}
    assert not [k for k in client.get_run(result.run_id).data.metrics if k.startswith("test_") or k == "n_test"]
    assert {a.path for a in client.list_artifacts(result.run_id, "predictions")} == {"predictions/valid_sample.csv"}
    scores = train.score_on_test(result, small, seed=SEED)
    X, y = train.xy(small["test"])
    assert scores == classification_scores(y, train.predict(result.model, X))
    metrics = client.get_run(result.run_id).data.metrics
    assert metrics["test_roc_auc"] == pytest.approx(scores["roc_auc"]) and metrics["n_test"] == len(small["test"])
    assert "predictions/test_sample.csv" in {a.path for a in client.list_artifacts(result.run_id, "predictions")}
    with pytest.raises(ValueError, match="already scored on test"):
        train.score_on_test(result, small)
