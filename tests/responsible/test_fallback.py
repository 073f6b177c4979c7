"""The fallback policy decides as specified and its cost is the one computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.objectives import Costs
from mlsys.responsible import fallback

COSTS = Costs(false_alarm=100.0, miss=300.0)


def _tiny() -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Six flights: the model's P(late), one feature (missing for flight 5), the rule's advice."""
    y = np.array([1, 0, 1, 0, 1, 0], dtype="float64")
    p = np.array([0.80, 0.32, 0.27, 0.10, 0.05, 0.60])
    rows = pd.DataFrame({"history": [1.0, 2.0, 3.0, 4.0, np.nan, 6.0]})
    rule = np.array([False, False, True, True, True, False])
    return y, p, rows, rule


def test_sources_by_hand() -> None:
    _, p, rows, _ = _tiny()
    policy = fallback.FallbackPolicy(threshold=0.3, band=0.05, required=("history",))
    # |p - 0.3| < 0.05 for 0.32 and 0.27; flight 5 misses "history"
    assert policy.sources(p, rows).tolist() == ["model", "unsure", "unsure", "model", "missing", "model"]
    assert policy.sources(None, rows).tolist() == ["unavailable"] * 6


def test_cost_of_the_fallback_policy_by_hand() -> None:
    y, p, rows, rule = _tiny()
    policy = fallback.FallbackPolicy(threshold=0.3, band=0.05, required=("history",))
    acts, _ = policy.decide(p, rows, rule)
    # model decides flights 1, 4, 6: act, no, act; rule decides 2, 3, 5: no, act, act
    assert acts.tolist() == [True, False, True, False, True, True]
    # outcomes: hit, -, hit, -, hit, false alarm -> one false alarm (100), no miss: 100 / 6
    table = fallback.policy_costs(y, p, rows, rule, {"fallback": policy, "model only": fallback.FallbackPolicy(0.3)}, COSTS)
    assert table.loc["fallback", "cost per flight"] == pytest.approx(100 / 6)
    assert table.loc["fallback", "share decided by the rule"] == pytest.approx(3 / 6)
    # model alone: acts on 1, 2, 6 -> false alarms 2 and 6 (200), misses 3 and 5 (600): 800 / 6
    assert table.loc["model only", "cost per flight"] == pytest.approx(800 / 6)
    # rule alone: acts on 3, 4, 5 -> false alarm 4 (100), miss 1 (300): 400 / 6
    assert table.loc["heuristic only", "cost per flight"] == pytest.approx(400 / 6)
    # no advice: all three late flights missed: 900 / 6
    assert table.loc["no advice", "cost per flight"] == pytest.approx(900 / 6)


def test_band_sweep_starts_at_model_only_and_best_band_is_the_cheapest() -> None:
    y, p, rows, rule = _tiny()
    sweep = fallback.band_sweep(y, p, rows, rule, threshold=0.3, bands=(0.0, 0.05, 0.6), costs=COSTS)
    assert sweep.loc[0.0, "cost per flight"] == pytest.approx(800 / 6)
    assert sweep.loc[0.6, "share decided by the rule"] == 1.0  # every p is within 0.6 of 0.3
    assert fallback.best_band(sweep) == sweep["cost per flight"].idxmin()


class _Broken:
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("model file corrupt")


class _Constant:
    """A 'rule' with a fixed probability per row (what `rule_acts` compares with its threshold)."""

    def __init__(self, p: np.ndarray):
        self.p = p

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([1 - self.p, self.p])


def test_a_model_that_raises_falls_back_to_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, rows, rule = _tiny()
    # evaluate.predict selects the model input columns: give it a frame-agnostic predictor instead
    monkeypatch.setattr(fallback.evaluate, "predict", lambda model, frame: np.asarray(model.predict_proba(frame)[:, 1]))
    advice = fallback.advise(_Broken(), rows, _Constant(rule.astype(float)), 0.5, fallback.FallbackPolicy(0.3, 0.05))
    assert (advice["source"] == "unavailable").all()
    assert advice["act"].tolist() == rule.tolist()
    assert advice["p"].isna().all()


def test_missing_required_column_is_a_clear_error() -> None:
    _, p, rows, rule = _tiny()
    with pytest.raises(KeyError, match="wx_precip"):
        fallback.FallbackPolicy(0.3, required=("wx_precip",)).sources(p, rows)


def test_on_real_flights_the_rule_decides_only_where_the_policy_says(small_model, test_rows: pd.DataFrame, table: pd.DataFrame) -> None:
    from mlsys import evaluate, promote

    splits = {"train": table[table["split"] == "train"].sample(5_000, random_state=0), "valid": table[table["split"] == "valid"].sample(5_000, random_state=0)}
    rule, rule_threshold = promote.dispatcher_rule(splits)
    policy = fallback.FallbackPolicy(0.29, 0.03, ("origin_mean_delay_3h",))
    advice = fallback.advise(small_model, test_rows, rule, rule_threshold, policy)
    p = evaluate.predict(small_model, test_rows)
    by_model = advice["source"] == "model"
    assert (advice.loc[by_model, "act"] == (p[by_model.to_numpy()] >= 0.29)).all()
    unsure = advice["source"] == "unsure"
    assert unsure.any() and (np.abs(p[unsure.to_numpy()] - 0.29) < 0.03).all()
    missing = advice["source"] == "missing"
    assert missing.any() and test_rows.loc[missing, "origin_mean_delay_3h"].isna().all()
    rule_says = fallback.rule_acts(rule, test_rows, rule_threshold)
    assert (advice.loc[~by_model, "act"] == rule_says[~by_model.to_numpy()]).all()
