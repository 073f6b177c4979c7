"""Samplers: reservoir uniformity, exact stratified proportions, importance sampling unbiasedness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import sampling


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_reservoir_includes_every_item_with_probability_k_over_n(chunk: int) -> None:
    n, k, runs = 20, 5, 4000
    rng = np.random.default_rng(0)
    counts = np.zeros(n)
    for _ in range(runs):
        counts[sampling.reservoir_sample(iter(range(n)), k, rng, chunk=chunk)] += 1
    p = k / n
    # 4.5 binomial standard deviations: a fair sampler fails this for one of 20 items with
    # probability < 1e-4, while keeping the first k (or last k) items fails it at once
    tolerance = 4.5 * np.sqrt(p * (1 - p) / runs)
    assert np.abs(counts / runs - p).max() < tolerance


def test_reservoir_returns_k_distinct_items_in_one_pass() -> None:
    stream = (i for i in range(1000))  # a generator can only be read once
    sample = sampling.reservoir_sample(stream, 10, seed=1)
    assert len(sample) == len(set(sample)) == 10
    assert next(stream, None) is None


def test_reservoir_keeps_everything_from_a_short_stream() -> None:
    assert sorted(sampling.reservoir_sample(iter("abc"), 5, seed=1)) == ["a", "b", "c"]


def test_reservoir_is_reproducible_with_a_seed() -> None:
    assert sampling.reservoir_sample(range(500), 7, seed=3) == sampling.reservoir_sample(range(500), 7, seed=3)


def test_stratified_sample_keeps_proportions_exactly() -> None:
    df = pd.DataFrame({"g": ["a"] * 500 + ["b"] * 300 + ["c"] * 200, "x": np.arange(1000)})
    for seed in range(5):
        sample = sampling.stratified_sample(df, 100, "g", seed=seed)
        assert sample["g"].value_counts().to_dict() == {"a": 50, "b": 30, "c": 20}
        assert sample["x"].is_unique


def test_allocate_sums_to_n_with_largest_remainders() -> None:
    quotas = sampling.allocate(pd.Series([5, 3, 2], index=list("abc")), 7)
    assert quotas.sum() == 7
    assert quotas.to_dict() == {"a": 4, "b": 2, "c": 1}  # 3.5, 2.1, 1.4 -> remainder goes to a


def test_allocate_minimum_gives_tiny_strata_a_row() -> None:
    quotas = sampling.allocate(pd.Series([990, 9, 1]), 10, minimum=1)
    assert quotas.tolist() == [8, 1, 1]


def test_stratified_mean_weights_by_population_share() -> None:
    population = pd.DataFrame({"g": ["a"] * 90 + ["b"] * 10, "y": [0.0] * 90 + [1.0] * 10})
    sample = pd.concat([population.iloc[:5], population.iloc[90:95]])  # b over-represented
    assert sample["y"].mean() == 0.5
    assert sampling.stratified_mean(sample, population, "g", "y") == pytest.approx(0.1)


def test_design_effect_below_one_only_when_strata_differ() -> None:
    y = pd.Series([0.0, 1.0] * 50 + [1.0] * 100)
    informative = pd.Series(["mixed"] * 100 + ["all late"] * 100)
    uninformative = pd.Series(["x", "x", "y", "y"] * 50)  # both strata are half late
    assert sampling.design_effect(y, informative) < 0.8
    assert sampling.design_effect(y, uninformative) == pytest.approx(1.0, abs=0.02)


def test_importance_weighting_removes_the_bias_of_a_skewed_sample() -> None:
    rng = np.random.default_rng(7)
    flag = rng.random(20_000) < 0.2
    y = np.where(flag, rng.random(20_000) < 0.6, rng.random(20_000) < 0.2).astype(float)
    truth = y.mean()
    proposal = sampling.biased_proposal(flag, boost=6.0)
    idx = rng.choice(len(y), 5_000, p=proposal)
    weights = sampling.importance_weights(np.full(len(y), 1 / len(y)), proposal)
    plain = y[idx].mean()
    weighted = sampling.importance_estimate(y[idx], weights[idx])
    assert plain - truth > 0.15  # the proposal favours the flagged, mostly positive rows
    assert abs(weighted - truth) < 0.02


def test_importance_weights_refuse_a_proposal_missing_target_support() -> None:
    with pytest.raises(ValueError, match="zero probability"):
        sampling.importance_weights([0.5, 0.5], [1.0, 0.0])


def test_mix_target_gives_strata_their_target_shares() -> None:
    df = pd.DataFrame({"g": ["a"] * 8 + ["b"] * 2})
    p = sampling.mix_target(df, "g", pd.Series({"a": 0.5, "b": 0.5}))
    assert p.sum() == pytest.approx(1.0)
    assert p[df["g"] == "b"].sum() == pytest.approx(0.5)


def test_repeated_estimates_center_on_the_truth() -> None:
    rng = np.random.default_rng(0)
    population = pd.DataFrame({"y": (rng.random(3000) < 0.3).astype(float), "t": np.arange(3000), "g": rng.integers(0, 3, 3000)})
    flag = population["g"].eq(0).to_numpy()
    est = sampling.repeated_estimates(population, "y", 300, reps=60, seed=1, strata={"g": population["g"]}, stream_order="t", proposal=sampling.biased_proposal(flag, 3.0))
    summary = sampling.summarize_estimates(est, population["y"].mean())
    assert set(summary.index) >= {"simple random", "stratified: g", "reservoir (event order)", "biased sample, importance-weighted"}
    assert (summary["bias"].abs() < 0.02).all()


def test_analytic_stds_match_the_textbook_formula() -> None:
    y = np.array([0.0, 1.0] * 50)
    assert sampling.srs_std(y, 10) == pytest.approx(np.sqrt(y.var(ddof=1) / 10 * 0.9))
    constant_within = pd.Series(["a"] * 50 + ["b"] * 50)
    assert sampling.stratified_std(np.array([0.0] * 50 + [1.0] * 50), constant_within, 10) == pytest.approx(0.0)


def test_missing_strata_rate_counts_absent_groups() -> None:
    strata = pd.Series(["big"] * 999 + ["tiny"])
    rate = sampling.missing_strata_rate(strata, 10, reps=50, seed=0)
    assert rate["big"] == 0.0
    assert rate["tiny"] > 0.9
