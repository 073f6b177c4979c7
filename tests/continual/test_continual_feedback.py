"""The degenerate feedback loop (`mlsys.continual.feedback`) on synthetic data with a known truth.

One feature x; the true P(late) is logistic in x. The champion knows the truth and flags the riskiest
flights; the desk's action saves 80 % of the flagged late flights. A model retrained on the logged
outcomes believes the flagged flights are safe; one retrained on the untouched flights with a 10 %
randomised hold-out recovers the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlsys.continual import feedback

EFFECT, HOLDOUT = 0.8, 0.1


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 60_000
    x = rng.normal(size=n)
    p_true = 1 / (1 + np.exp(-(-1.5 + 1.5 * x)))
    y = (rng.random(n) < p_true).astype(int)
    sim = feedback.simulate_desk(np.arange(n), y, p_true, threshold=0.4, effect=EFFECT, holdout_share=HOLDOUT, seed=1)
    return sim, x, pd.DataFrame({"x": x, "p_true": p_true})


def fitted_p(sim: pd.DataFrame, x: np.ndarray, strategy: str) -> np.ndarray:
    rows, y, w = feedback.training_set(sim, strategy, HOLDOUT)
    model = feedback.fit_weighted(LogisticRegression(), x[rows, None], y, w)
    return model.predict_proba(x[:, None])[:, 1]


def test_simulation_changes_only_acted_late_flights(world) -> None:
    sim, _, _ = world
    changed = sim["observed"] != sim["late"]
    assert changed.any()
    assert (sim.loc[changed, "acted"]).all() and (sim.loc[changed, "late"] == 1).all()
    assert not (sim["acted"] & sim["held_out"]).any()
    share_saved = changed.sum() / (sim["acted"] & (sim["late"] == 1)).sum()
    assert share_saved == pytest.approx(EFFECT, abs=0.02)
    assert sim["held_out"].mean() == pytest.approx(HOLDOUT, abs=0.01)


def test_naive_retraining_unlearns_the_risk_and_the_holdout_fixes_it(world) -> None:
    sim, x, truth = world
    risky = sim["flagged"].to_numpy()
    true_risk = truth["p_true"][risky].mean()
    naive = fitted_p(sim, x, "naive")[risky].mean()
    holdout = fitted_p(sim, x, "hold-out")[risky].mean()
    oracle = fitted_p(sim, x, "true outcomes")[risky].mean()
    assert naive < true_risk - 0.15  # the risk it acted on looks much smaller
    assert abs(holdout - true_risk) < 0.03  # the hold-out recovers it
    assert abs(oracle - true_risk) < 0.02
    effect = feedback.loop_effect(sim["late"], {"naive": fitted_p(sim, x, "naive"), "hold-out": fitted_p(sim, x, "hold-out")}, 0.4, risky)
    assert effect.loc["naive", "share flagged"] < effect.loc["hold-out", "share flagged"]
    assert effect.loc["naive", "cost per flight"] > effect.loc["hold-out", "cost per flight"]


def test_training_sets() -> None:
    sim = pd.DataFrame(
        {"late": [1, 1, 0, 1], "flagged": [True, True, False, False], "held_out": [False, True, False, False], "acted": [True, False, False, False], "observed": [0, 1, 0, 1]}
    )
    rows, y, w = feedback.training_set(sim, "hold-out", 0.25)
    assert rows.tolist() == [False, True, True, True] and y.tolist() == [1, 0, 1] and w.tolist() == [4.0, 1.0, 1.0]
    rows, y, _ = feedback.training_set(sim, "naive")
    assert y.tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="unknown strategy"):
        feedback.training_set(sim, "magic")


def test_new_aircraft_and_cold_start_table() -> None:
    history = pd.DataFrame({"tailnum": ["N1", "N2", None]})
    later = pd.DataFrame(
        {"tailnum": pd.array(["N1", "N3", None, "N3", "N2", "N4"], dtype="string"), "late": [0, 1, 1, 0, 1, 0], "plane_age": [1.0, np.nan, 2.0, np.nan, 3.0, 4.0]}
    )
    assert feedback.new_aircraft(history, later).tolist() == [False, True, False, True, False, True]
    table = feedback.cold_start(history, later, np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.3]), 0.5)
    assert table.loc["new in test months", "aircraft"] == 2 and table.loc["new in test months", "flights"] == 3
    assert table.loc["seen in training", "flights"] == 2
    assert table.loc["new in test months", "no plane record"] == pytest.approx(2 / 3)
