"""Testing in production (`mlsys.continual.rollout`) on synthetic decisions with a known answer.

`rollout.synthetic_decisions` gives each model a skill: the one with the larger skill ranks flights
better and so costs less at the same threshold. Every assertion below fails if the function under
test ignored its input (a random assignment, a canary that never rolls back or always does, a bandit
that splits evenly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys.continual import rollout

THRESHOLDS = {"champion": 0.3, "challenger": 0.3}


def frame(challenger_skill: float, days: int = 40, seed: int = 0) -> pd.DataFrame:
    return rollout.synthetic_decisions(days=days, flights_per_day=400, skill={"champion": 1.0, "challenger": challenger_skill}, seed=seed)


# ------------------------------------------------------------------ assignment


def test_assignment_is_deterministic_and_independent_of_order() -> None:
    keys = np.arange(10_000)
    first = rollout.assign(keys)
    assert np.array_equal(first, rollout.assign(keys))
    order = np.random.default_rng(1).permutation(len(keys))
    assert np.array_equal(rollout.assign(keys[order]), first[order])


def test_assignment_is_balanced() -> None:
    assigned = rollout.assign(np.arange(20_000), share=0.5)
    result = rollout.balance(assigned, 0.5)
    assert abs(result["challenger share"] - 0.5) < 0.015
    assert result["p_value"] > 0.001
    small = rollout.assign(np.arange(20_000), share=0.05)
    assert abs(small.mean() - 0.05) < 0.006


def test_assignment_is_stable_when_the_population_changes() -> None:
    """Adding flights or removing some never moves a remaining flight to the other arm."""
    keys = np.arange(5_000)
    before = pd.Series(rollout.assign(keys), index=keys)
    grown = np.concatenate([keys[::2], np.arange(100_000, 103_000)])
    after = pd.Series(rollout.assign(grown), index=grown)
    common = keys[::2]
    assert after.loc[common].equals(before.loc[common])


def test_salt_changes_assignment_and_shares_nest() -> None:
    keys = np.arange(10_000)
    a, b = rollout.assign(keys, salt="one"), rollout.assign(keys, salt="two")
    assert 0.4 < (a == b).mean() < 0.6  # independent experiments
    small, large = rollout.assign(keys, 0.05), rollout.assign(keys, 0.25)
    assert small.any() and not (small & ~large).any()  # a canary flight stays when the share grows


def test_assign_rejects_a_share_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match="share"):
        rollout.assign([1, 2], share=1.5)


# ------------------------------------------------------------------ shadow and A/B


def test_shadow_decides_with_the_champion_only() -> None:
    f = frame(0.3)
    table = rollout.shadow(f, THRESHOLDS)
    assert table.loc["champion", "decides"] and not table.loc["challenger", "decides"]
    assert table.loc["challenger", "cost per flight"] > table.loc["champion", "cost per flight"]
    assert table.loc["champion", "agrees with champion"] == 1.0


def test_ab_test_finds_the_worse_challenger_and_no_difference_between_equals() -> None:
    worse = rollout.ab_test(frame(0.3), THRESHOLDS)
    assert worse.difference > 0 and worse.p_value_days < 0.01 and worse.winner == "champion"
    same = rollout.ab_test(frame(1.0, seed=3), THRESHOLDS)
    assert same.p_value_days > 0.01 and same.winner == "no difference shown"


def test_ab_test_uses_only_outcomes_known_by_the_clock() -> None:
    f = frame(1.0)
    clock = f[rollout.TIME].iloc[len(f) // 2]
    result = rollout.ab_test(f, THRESHOLDS, clock=clock)
    assert result.table["outcomes known"].sum() == (f[rollout.KNOWN] <= clock).sum()


def test_flights_needed_shrinks_with_the_effect() -> None:
    assert rollout.flights_needed(1.0, 100.0) > rollout.flights_needed(5.0, 100.0) > 0
    # textbook value: 0.2 sd at alpha 0.05 and power 0.8 needs about 393 per arm
    assert rollout.flights_needed(0.2, 1.0) == 393


# ------------------------------------------------------------------ canary


def test_canary_rolls_back_a_degraded_challenger() -> None:
    result = rollout.canary(frame(0.2), THRESHOLDS)
    assert result.decision == "rolled back" and result.final_share == 0.0
    assert result.timeline["action"].iloc[-1].startswith("roll back")


def test_canary_completes_without_degradation() -> None:
    result = rollout.canary(frame(1.2), THRESHOLDS)
    assert result.decision == "completed" and result.final_share == 1.0
    assert not result.timeline["action"].str.startswith("roll back").any()


def test_canary_guard_on_share_flagged_needs_no_outcome() -> None:
    """A challenger that flags every flight is stopped at the first check, before its costs are judged."""
    f = frame(1.0)
    f["p_challenger"] = 0.99
    result = rollout.canary(f, THRESHOLDS, min_outcomes=10**9)
    assert result.decision == "rolled back"
    assert result.timeline["action"].iloc[0] == "roll back (share flagged)"


def test_canary_waits_for_outcomes() -> None:
    """Outcomes known only after the data ends: the canary extends its first stage and never advances."""
    f = frame(1.0, days=20)
    f[rollout.KNOWN] = f[rollout.TIME] + pd.Timedelta(days=60)
    result = rollout.canary(f, THRESHOLDS)
    assert set(result.timeline["action"]) == {"extend (too few outcomes)"}
    assert result.decision == "ran out of flights"


# ------------------------------------------------------------------ bandit


def test_thompson_sampling_converges_to_the_better_arm() -> None:
    result = rollout.thompson(frame(0.2, days=30), THRESHOLDS)
    late = result.allocation.iloc[-10:]
    assert late["share champion"].mean() > 0.9
    assert result.arm_cost_per_flight["champion"] < result.arm_cost_per_flight["challenger"]
    # it pays less than an even split would
    even = np.mean(list(result.arm_cost_per_flight.values()))
    assert result.cost_per_flight < even
    better = rollout.thompson(frame(1.8, days=30, seed=5), THRESHOLDS)
    assert better.allocation.iloc[-10:]["share challenger"].mean() > 0.9


def test_decisions_table_joins_logs_and_outcomes() -> None:
    champion = pd.DataFrame({"flight_id": [2, 1], "decision_time": pd.to_datetime(["2013-12-01 10:00", "2013-12-01 09:00"], utc=True), "probability": [0.2, 0.4]})
    challenger = pd.DataFrame({"flight_id": [1, 2, 3], "probability": [0.5, 0.1, 0.9]})
    outcomes = pd.DataFrame({"flight_id": [1, 2, 3], "late": [1, 0, 1], "label_known_at": pd.to_datetime(["2013-12-01 14:00"] * 3, utc=True)})
    table = rollout.decisions_table(champion, challenger, outcomes)
    assert list(table.columns) == list(rollout.COLUMNS)
    assert table[rollout.KEY].tolist() == [1, 2]
    assert table["p_challenger"].tolist() == [0.5, 0.1] and table["late"].tolist() == [1, 0]
    with pytest.raises(ValueError, match="outcomes lacks"):
        rollout.decisions_table(champion, challenger, outcomes.drop(columns="late"))
