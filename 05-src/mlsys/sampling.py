"""Sampling (Huyen, 2022, ch. 4): simple random, stratified, reservoir and importance sampling.

Every sampler here is seeded and works on row positions, so the lesson can repeat a draw a few
hundred times cheaply and look at the *spread* of the estimate it gives, not just one value.

* `simple_random_sample`: every row equally likely; small groups can be missed entirely.
* `stratified_sample`: a fixed share of the sample per group (largest-remainder allocation, so the
  group counts are exactly proportional up to rounding); with `stratified_mean` this lowers the
  variance whenever the groups differ in the quantity being estimated.
* `reservoir_sample`: Algorithm R, one pass over a stream of unknown length, `k` items kept, each
  item of the stream equally likely to end up in the reservoir.
* `importance_estimate`: the mean under a target distribution P from a sample drawn from a
  proposal Q, reweighting each draw by P(x)/Q(x).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")
Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    """A generator from an int seed, or the generator itself (so callers can chain draws)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


# --------------------------------------------------------------------------- simple random


def simple_random_sample(df: pd.DataFrame, n: int, seed: Seed = 42) -> pd.DataFrame:
    """`n` rows drawn uniformly without replacement."""
    positions = _rng(seed).choice(len(df), size=n, replace=False)
    return df.iloc[np.sort(positions)]


# --------------------------------------------------------------------------- stratified


def allocate(counts: pd.Series, n: int, minimum: int = 0) -> pd.Series:
    """Split a sample of `n` over strata in proportion to their sizes `counts` (largest remainder).

    Each stratum gets floor(n * share); the rows left over go to the largest fractional parts,
    so the result sums to exactly `n` and is exactly proportional whenever `n * share` is whole.
    With `minimum` > 0, tiny strata are topped up to that many rows (taken from the largest
    quotas): no longer proportional, so estimates must weight strata by population share.
    """
    if n > counts.sum():
        raise ValueError(f"cannot draw {n} rows from {counts.sum()} without replacement")
    quota = counts / counts.sum() * n
    base = np.floor(quota).astype("int64")
    remainder = (quota - base).sort_values(ascending=False, kind="stable")
    base[remainder.index[: n - int(base.sum())]] += 1
    for stratum in base.index[base < np.minimum(minimum, counts)]:
        need = int(min(minimum, counts[stratum]) - base[stratum])
        base[stratum] += need
        for _ in range(need):
            base[base.idxmax()] -= 1
    return base.clip(upper=counts)


def _groups(codes: np.ndarray, n_strata: int) -> list[np.ndarray]:
    """Row positions of each stratum code 0..n_strata-1."""
    order = np.argsort(codes, kind="stable")
    return np.split(order, np.searchsorted(codes[order], np.arange(1, n_strata)))


def _stratified_positions(groups: list[np.ndarray], quotas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of a stratified draw: `quotas[h]` rows drawn without replacement from stratum h."""
    return np.concatenate([rng.choice(g, q, replace=False) for g, q in zip(groups, quotas, strict=True) if q > 0])


def stratified_sample(df: pd.DataFrame, n: int, by: str | list[str], seed: Seed = 42) -> pd.DataFrame:
    """`n` rows with each stratum (`by`) represented in proportion to its size."""
    codes = df.groupby(by, dropna=False, sort=True).ngroup().to_numpy()
    counts = pd.Series(np.bincount(codes))
    positions = _stratified_positions(_groups(codes, len(counts)), allocate(counts, n).to_numpy(), _rng(seed))
    return df.iloc[np.sort(positions)]


def stratified_mean(sample: pd.DataFrame, population: pd.DataFrame, by: str | list[str], col: str) -> float:
    """Σ_h W_h · mean_h: stratum means of `sample` weighted by the strata's shares of `population`."""
    shares = population.groupby(by, dropna=False).size() / len(population)
    means = sample.groupby(by, dropna=False)[col].mean()
    if not shares.index.isin(means.index).all():
        raise ValueError("some strata of the population have no row in the sample")
    return float((shares * means.reindex(shares.index)).sum())


def quantile_strata(values: pd.Series, q: int = 10) -> pd.Series:
    """Stratum codes 0..q-1 from quantiles of `values`; missing values form their own stratum -1."""
    ranks = values.rank(method="first")
    return pd.qcut(ranks, q, labels=False).where(values.notna(), -1).astype("int64")


def design_effect(y: pd.Series, strata: pd.Series) -> float:
    """Variance of the proportional stratified mean divided by the simple random one (same n).

    Σ_h W_h σ²_h / σ²: the share of the variance left *within* strata. Below 1 when the strata
    differ in their means; 1 when they are all alike (ignores the finite-population correction).
    """
    within = y.groupby(strata.to_numpy()).var(ddof=0)
    shares = strata.value_counts(normalize=True)
    return float((within * shares.reindex(within.index)).sum() / y.var(ddof=0))


def srs_std(y: pd.Series | np.ndarray, n: int) -> float:
    """Exact standard deviation of the mean of a simple random sample of `n` rows (no replacement)."""
    y = np.asarray(y, dtype="float64")
    N = len(y)
    return float(np.sqrt(y.var(ddof=1) / n * (1 - n / N)))


def stratified_std(y: pd.Series | np.ndarray, strata: pd.Series, n: int, minimum: int = 1) -> float:
    """Exact standard deviation of the stratum-weighted mean for the allocation `allocate(..., minimum)`."""
    frame = pd.DataFrame({"y": np.asarray(y, dtype="float64"), "h": pd.factorize(strata.to_numpy(), sort=True, use_na_sentinel=False)[0]})
    stats = frame.groupby("h")["y"].agg(["size", "var"]).fillna(0.0)
    quotas = allocate(stats["size"], n, minimum).to_numpy()
    N_h, S2_h = stats["size"].to_numpy(), stats["var"].to_numpy()
    W_h = N_h / N_h.sum()
    return float(np.sqrt((W_h**2 * S2_h / quotas * (1 - quotas / N_h)).sum()))


# --------------------------------------------------------------------------- reservoir


def reservoir_sample(stream: Iterable[T], k: int, seed: Seed = 42, chunk: int = 4096) -> list[T]:
    """Algorithm R: `k` items drawn uniformly from a stream of unknown length, in one pass.

    The first `k` items fill the reservoir; item number i (0-based) then replaces a uniformly
    chosen slot with probability k/(i+1). Random numbers are drawn `chunk` items at a time (the
    same algorithm, just not one numpy call per item); memory stays O(k + chunk).
    """
    rng = _rng(seed)
    items = iter(stream)
    reservoir = list(islice(items, k))
    seen = len(reservoir)
    while batch := list(islice(items, chunk)):
        # j ~ U{0, ..., i}: the item is kept when j < k, and then it takes slot j
        slots = rng.integers(0, np.arange(seen + 1, seen + len(batch) + 1))
        kept = np.flatnonzero(slots < k)
        for pos, slot in zip(kept.tolist(), slots[kept].tolist(), strict=True):  # in stream order
            reservoir[slot] = batch[pos]
        seen += len(batch)
    return reservoir


def event_stream(df: pd.DataFrame, time_col: str = "sched_dep_utc", columns: list[str] | None = None) -> Iterator[dict[str, object]]:
    """The rows of `df` one at a time, as dicts, in event-time order (a replayed stream)."""
    ordered = df.sort_values(time_col, kind="stable")
    keys = list(columns or ordered.columns)
    for values in zip(*(ordered[c].to_numpy() for c in keys), strict=True):
        yield dict(zip(keys, values, strict=True))


# --------------------------------------------------------------------------- importance


def importance_weights(target: np.ndarray | pd.Series, proposal: np.ndarray | pd.Series) -> np.ndarray:
    """P(x)/Q(x) for each draw; Q must be positive wherever P is (otherwise P cannot be reached)."""
    p, q = np.asarray(target, dtype="float64"), np.asarray(proposal, dtype="float64")
    if np.any((q <= 0) & (p > 0)):
        raise ValueError("the proposal gives zero probability to rows the target needs")
    return np.divide(p, q, out=np.zeros_like(p), where=q > 0)


def importance_estimate(values: np.ndarray | pd.Series, weights: np.ndarray) -> float:
    """Self-normalised importance-sampling mean Σ w·x / Σ w (only ratios of P/Q matter)."""
    x, w = np.asarray(values, dtype="float64"), np.asarray(weights, dtype="float64")
    return float((w * x).sum() / w.sum())


def biased_proposal(flag: np.ndarray | pd.Series, boost: float) -> np.ndarray:
    """Draw probabilities for a population where flagged rows are `boost` times as likely."""
    raw = np.where(np.asarray(flag, dtype=bool), boost, 1.0)
    return raw / raw.sum()


def mix_target(df: pd.DataFrame, by: str | list[str], target_shares: pd.Series) -> np.ndarray:
    """Per-row probabilities that give the strata `by` the shares `target_shares` (rows within a
    stratum equally likely); strata absent from the target get probability 0."""
    keys = pd.MultiIndex.from_frame(df[by]) if isinstance(by, list) else pd.Index(df[by])
    sizes = df.groupby(by).size()
    per_row = (target_shares.reindex(sizes.index).fillna(0.0) / sizes).reindex(keys).to_numpy()
    return np.nan_to_num(per_row.astype("float64")) / np.nansum(per_row)


# --------------------------------------------------------------------------- repeated draws


def repeated_estimates(
    population: pd.DataFrame,
    col: str,
    n: int,
    reps: int = 200,
    seed: int = 42,
    strata: Mapping[str, pd.Series] | None = None,
    stream_order: str | None = "sched_dep_utc",
    proposal: np.ndarray | None = None,
) -> pd.DataFrame:
    """Estimate the mean of `col` `reps` times with each sampler; one row per (method, rep).

    Methods: simple random; stratified by each entry of `strata` (proportional allocation,
    stratum-weighted mean); reservoir over the rows replayed in `stream_order`; and, with a
    `proposal` (draw probabilities per row), the plain mean of draws from it next to their
    importance-weighted mean for the uniform target.
    """
    rng = np.random.default_rng(seed)
    y = population[col].to_numpy(dtype="float64")
    N = len(y)
    samplers: dict[str, Callable[[], float]] = {"simple random": lambda: float(y[rng.choice(N, n, replace=False)].mean())}
    for name, codes in (strata or {}).items():
        samplers[f"stratified: {name}"] = _stratified_estimator(y, codes, n, rng)
    if stream_order is not None:
        order = np.argsort(population[stream_order].to_numpy(), kind="stable").tolist()  # plain ints stream faster
        samplers["reservoir (event order)"] = lambda: float(y[reservoir_sample(iter(order), n, rng)].mean())
    if proposal is not None:
        cdf = np.cumsum(proposal)
        weights = importance_weights(np.full(N, 1.0 / N), proposal)
        draws: dict[str, np.ndarray] = {}

        def draw_naive() -> float:
            draws["idx"] = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), N - 1)
            return float(y[draws["idx"]].mean())

        samplers["biased sample, plain mean"] = draw_naive
        # reuses the draw just made, so both rows of a rep see the same sample
        samplers["biased sample, importance-weighted"] = lambda: importance_estimate(y[draws["idx"]], weights[draws["idx"]])
    rows = [{"method": name, "rep": rep, "estimate": sample()} for rep in range(reps) for name, sample in samplers.items()]
    return pd.DataFrame(rows)


def _stratified_estimator(y: np.ndarray, strata: pd.Series, n: int, rng: np.random.Generator) -> Callable[[], float]:
    codes, uniques = pd.factorize(strata.to_numpy(), sort=True, use_na_sentinel=False)
    counts = np.bincount(codes, minlength=len(uniques))
    # at least one row per stratum so each stratum mean exists; population shares reweight
    quotas = allocate(pd.Series(counts), n, minimum=1).to_numpy()
    shares = counts / counts.sum()
    groups = _groups(codes, len(counts))

    def estimate() -> float:
        pos = _stratified_positions(groups, quotas, rng)
        means = np.bincount(codes[pos], weights=y[pos], minlength=len(counts)) / quotas
        return float((shares * means).sum())

    return estimate


def summarize_estimates(estimates: pd.DataFrame, truth: float) -> pd.DataFrame:
    """Mean, bias, standard deviation and RMSE of each method's estimates against `truth`."""
    grouped = estimates.groupby("method", sort=False)["estimate"]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1)})
    out.insert(0, "truth", truth)
    out.insert(2, "bias", out["mean"] - truth)
    out["rmse"] = grouped.apply(lambda e: float(np.sqrt(((e - truth) ** 2).mean())))
    return out.round(4)


def missing_strata_rate(strata: pd.Series, n: int, reps: int = 200, seed: int = 42) -> pd.Series:
    """Share of `reps` simple random samples of size `n` in which each stratum has no row at all."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(strata.to_numpy(), sort=True, use_na_sentinel=False)
    missing = np.zeros(len(uniques))
    for _ in range(reps):
        present = np.bincount(codes[rng.choice(len(codes), n, replace=False)], minlength=len(uniques)) > 0
        missing += ~present
    return pd.Series(missing / reps, index=uniques, name="share of draws missing it")
