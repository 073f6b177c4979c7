"""Drift statistics against scipy and by-hand formulas, on synthetic data with a known shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlsys.monitor import alerts, drift


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def psi_by_hand(ref: np.ndarray, cur: np.ndarray, cuts: np.ndarray) -> float:
    r = np.bincount(np.searchsorted(cuts, ref, side="right"), minlength=len(cuts) + 1) / len(ref) + drift.EPSILON
    c = np.bincount(np.searchsorted(cuts, cur, side="right"), minlength=len(cuts) + 1) / len(cur) + drift.EPSILON
    return float(np.sum((c - r) * np.log(c / r)))


def test_psi_is_zero_on_the_same_sample_and_grows_with_the_shift(rng) -> None:
    ref = pd.Series(rng.normal(size=20_000))
    assert drift.psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    values = [drift.psi(ref, pd.Series(rng.normal(loc=shift, size=20_000))) for shift in (0.0, 0.2, 0.5, 1.0)]
    assert values == sorted(values)
    assert values[0] < drift.PSI_MODERATE < values[2]
    assert values[3] > drift.PSI_LARGE


def test_psi_matches_the_formula_with_decile_bins(rng) -> None:
    ref, cur = rng.normal(size=5_000), rng.normal(loc=0.3, scale=1.3, size=3_000)
    cuts = np.unique(np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    assert drift.psi(pd.Series(ref), pd.Series(cur)) == pytest.approx(psi_by_hand(ref, cur, cuts))
    profile = drift.ReferenceProfile.fit(pd.DataFrame({"x": ref}), ["x"])
    assert profile.psi("x", pd.Series(cur)) == pytest.approx(psi_by_hand(ref, cur, cuts))


def test_missing_values_and_unseen_categories_get_bins_of_their_own(rng) -> None:
    ref = pd.Series(rng.choice(["a", "b", "c"], size=3_000))
    cur = pd.Series(rng.choice(["a", "b", "c", "d"], size=3_000)).mask(lambda s: s == "c")  # c -> missing, d unseen
    shares = drift.bin_shares(ref, cur)
    assert set(shares.index) == {"a", "b", "c", drift.OTHER, drift.MISSING}
    assert shares.loc[drift.OTHER, "reference"] == 0 and shares.loc[drift.OTHER, "current"] > 0
    profile = drift.ReferenceProfile.fit(pd.DataFrame({"c": ref}), ["c"])
    assert profile.psi("c", cur) == pytest.approx(drift.psi(ref, cur))


def test_ks_is_scipys_on_the_non_missing_values(rng) -> None:
    ref, cur = rng.normal(size=2_000), rng.normal(loc=0.2, size=1_500)
    cur_with_nan = np.concatenate([cur, [np.nan] * 50])
    expected = stats.ks_2samp(ref, cur)
    assert drift.ks(pd.Series(ref), pd.Series(cur_with_nan)) == pytest.approx((expected.statistic, expected.pvalue))


def test_chi2_is_scipys_on_the_contingency_table(rng) -> None:
    ref = pd.Series(rng.choice(["x", "y", "z"], p=[0.5, 0.3, 0.2], size=4_000))
    cur = pd.Series(rng.choice(["x", "y", "z"], p=[0.4, 0.3, 0.3], size=3_000))
    crosstab = pd.crosstab(np.r_[np.zeros(len(ref)), np.ones(len(cur))], np.r_[ref, cur])
    stat, p, _, _ = stats.chi2_contingency(crosstab.to_numpy())
    got_stat, got_p, v = drift.chi2(ref, cur)
    assert (got_stat, got_p) == pytest.approx((stat, p))
    assert v == pytest.approx(np.sqrt(stat / (len(ref) + len(cur))))


def test_multiple_testing_corrections(rng) -> None:
    p = rng.uniform(size=40) ** 3
    m = len(p)
    assert np.allclose(drift.adjust_pvalues(p, "bonferroni"), np.minimum(p * m, 1))
    order = np.argsort(p)
    bh = np.empty(m)
    bh[order] = np.minimum.accumulate((p[order] * m / np.arange(1, m + 1))[::-1])[::-1].clip(max=1)
    assert np.allclose(drift.adjust_pvalues(p, "bh"), bh)
    with pytest.raises(ValueError, match="method"):
        drift.adjust_pvalues(p, "holm-ish")


def test_with_many_rows_a_negligible_shift_is_significant_but_its_psi_stays_small(rng) -> None:
    n = 200_000
    ref, cur = pd.Series(rng.normal(size=n)), pd.Series(rng.normal(loc=0.03, size=n))
    _, p = drift.ks(ref, cur)
    assert p < 1e-6
    assert drift.psi(ref, cur) < 0.01


def test_drift_table_finds_the_shifted_columns(rng) -> None:
    n = 5_000
    ref = pd.DataFrame({"steady": rng.normal(size=n), "moved": rng.normal(size=n), "cat": rng.choice(list("abc"), size=n)})
    cur = pd.DataFrame({"steady": rng.normal(size=n), "moved": rng.normal(loc=1.0, size=n), "cat": rng.choice(list("abc"), p=[0.6, 0.2, 0.2], size=n)})
    table = drift.drift_table(ref, cur, ["steady", "moved", "cat"])
    assert table.loc["moved", "psi"] > drift.PSI_LARGE > table.loc["steady", "psi"]
    assert table.loc["cat", "kind"] == "categorical" and table.loc["cat", "p"] < 1e-10
    assert table.loc["moved", "ks"] == pytest.approx(stats.ks_2samp(ref["moved"], cur["moved"]).statistic)
    assert (table["p bonferroni"] >= table["p"]).all()


def test_an_alert_fires_on_a_synthetic_shift_and_not_without_one(rng) -> None:
    ref = pd.Series(rng.normal(size=10_000))
    assert alerts.detects_shift(ref, pd.Series(rng.normal(loc=1.0, size=10_000)))
    assert not alerts.detects_shift(ref, pd.Series(rng.normal(size=10_000)))
