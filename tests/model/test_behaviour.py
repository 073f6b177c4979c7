"""Behavioural tests of the model that serves: the champion, loaded from the registry.

A module fixture trains a small constrained LightGBM (the champion recipe, `promote.fit_champion`),
runs the promotion protocol on the validation split and promotes it (the root conftest gives this session an empty MLflow store); every test then loads
`models:/<name>@champion` and checks it on real test flights (Huyen, 2022, ch. 6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import evaluate, promote, tracking
from mlsys.features import CATEGORICAL, NUMERIC
from mlsys.pipeline import INPUT_COLUMNS

SEED = 42  # the seed of the `splits` fixture in tests/model/conftest.py
FAST_TREES = {"n_estimators": 150, "learning_rate": 0.1, "n_jobs": 1}

@pytest.fixture(scope="module")
def champion(splits: dict[str, pd.DataFrame]):
    model = evaluate.fit(evaluate.constrained_lightgbm(seed=SEED, **FAST_TREES), splits["train"])
    report = promote.evaluate_candidate(model, splits, promote.Protocol(behaviour_rows=5_000))
    assert report.passed, report.reasons
    decision = promote.promote(model, report, splits["test"][INPUT_COLUMNS].head(5), name="test-behaviour")
    assert decision.promoted and decision.version == promote.champion_version()
    return tracking.load_champion()


@pytest.fixture(scope="module")
def rows(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Real test flights, wet and dry, bright and foggy."""
    return splits["test"].sample(3_000, random_state=7).reset_index(drop=True)


def test_champion_predicts_probabilities(champion, rows: pd.DataFrame) -> None:
    p = evaluate.predict(champion, rows)
    assert p.shape == (len(rows),)
    assert np.all((p >= 0) & (p <= 1))
    assert p.std() > 0.05  # not a constant model


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffled_identifiers_do_not_move_predictions(champion, rows: pd.DataFrame, seed: int) -> None:
    result = evaluate.invariance_test(champion, rows, evaluate.ID_COLUMNS, seed=seed)
    assert result["max_abs_delta"] <= 1e-9


def test_unseen_identifiers_do_not_move_predictions(champion, rows: pd.DataFrame) -> None:
    changed = rows.assign(tailnum="N0TEST", flight=9999, flight_id=-1)
    assert np.abs(evaluate.predict(champion, changed) - evaluate.predict(champion, rows)).max() <= 1e-9


@pytest.mark.parametrize("rain", [0.01, 0.1, 0.5])
def test_more_precipitation_never_lowers_probability(champion, rows: pd.DataFrame, rain: float) -> None:
    result = evaluate.directional_test(champion, rows, {"wx_precip": rain, "wx_precip_3h": 3 * rain}, expected_sign=+1)
    assert result["violations"] == 0, result


@pytest.mark.parametrize("column", ["wx_precip", "wx_precip_3h"])
def test_each_precipitation_feature_alone_never_lowers_probability(champion, rows: pd.DataFrame, column: str) -> None:
    assert evaluate.directional_test(champion, rows, {column: 0.2})["violations"] == 0


@pytest.mark.parametrize("drop", [1.0, 3.0, 10.0])
def test_lower_visibility_never_lowers_probability(champion, rows: pd.DataFrame, drop: float) -> None:
    result = evaluate.directional_test(champion, rows, {"wx_visib": -drop, "wx_visib_min_3h": -drop}, expected_sign=+1)
    assert result["violations"] == 0, result


def test_heavy_rain_raises_probability_on_average(champion, rows: pd.DataFrame) -> None:
    # The constraint allows "never down"; the model must still have learned that rain matters.
    result = evaluate.directional_test(champion, rows, {"wx_precip": 0.3, "wx_precip_3h": 0.9})
    assert result["mean_delta"] > 0.01


def test_constraints_sit_on_the_named_columns() -> None:
    constraints = dict(zip([*NUMERIC, *CATEGORICAL], evaluate.monotone_constraints(), strict=True))
    assert {k for k, v in constraints.items() if v == 1} == set(evaluate.INCREASING)
    assert {k for k, v in constraints.items() if v == -1} == set(evaluate.DECREASING)
    with pytest.raises(ValueError, match="not model features"):
        evaluate.monotone_constraints(increasing=["no_such_column"])


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_maps_keep_the_directions(champion, splits: dict[str, pd.DataFrame], rows: pd.DataFrame, method: str) -> None:
    # both maps are non-decreasing, so a calibrated champion (fit_champion(method=...)) keeps the constraints
    september, _ = evaluate.split_last_month(splits["valid"])
    calibrated = evaluate.calibrate(champion, september, method)
    for name, (changes, sign) in evaluate.DIRECTIONAL_SCENARIOS.items():
        assert evaluate.directional_test(calibrated, rows, changes, sign)["violations"] == 0, name
