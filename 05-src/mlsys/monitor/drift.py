"""Distribution shift between a reference window and current windows: PSI, KS and chi-squared per feature.

* **PSI** (population stability index): sum over bins of (cur - ref) * ln(cur / ref), bins cut at
  the reference's deciles (numeric) or its categories (categorical; unseen ones pooled as
  "other"; missing values get a bin of their own). An *effect size*: it does not grow with n.
  The usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
* **KS** (`scipy.stats.ks_2samp`, numeric) and **chi-squared** (`scipy.stats.chi2_contingency` on
  the 2 x bins table, categorical): *tests*. With tens of thousands of flights per window their
  p-values are tiny for shifts nobody cares about, and with ~40 features tested every window,
  5 % false positives per feature would fire about two alerts a window by chance. So p-values
  are shown corrected across features (Bonferroni, Benjamini-Hochberg) and alerts use effect
  sizes (PSI, the KS statistic) with thresholds chosen on reference months (`alerts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: Added to every bin share so an empty bin does not make PSI infinite.
EPSILON = 1e-4
MISSING, OTHER = "(missing)", "(other)"
MISSING_CODE, OTHER_CODE = -1, -2
PSI_MODERATE, PSI_LARGE = 0.1, 0.25


def _is_categorical(values: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def bin_edges(reference: pd.Series, bins: int = 10) -> np.ndarray:
    """Inner cut points: the reference's quantiles, without repeats (a feature with few values gets fewer bins)."""
    x = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype="float64")
    if len(x) == 0:
        return np.array([])
    return np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))


def binned(values: pd.Series, reference: pd.Series, bins: int = 10) -> tuple[pd.Series, pd.Series]:
    """Both series as bin labels shared by the two: quantile bins (numeric) or categories (categorical)."""
    if _is_categorical(reference):
        known = set(reference.dropna().astype(str))

        def label(s: pd.Series) -> pd.Series:
            text = s.astype(object).where(s.notna(), MISSING).astype(str)
            return text.where(text.isin(known) | (text == MISSING), OTHER)

        return label(reference), label(values)
    edges = bin_edges(reference, bins)

    def cut(s: pd.Series) -> pd.Series:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
        idx = np.searchsorted(edges, x, side="right").astype(object)
        idx[np.isnan(x)] = MISSING
        return pd.Series(idx, index=s.index).astype(str)

    return cut(reference), cut(values)


@dataclass
class ReferenceProfile:
    """The reference window's bins and bin shares per column, fitted once, so a window's PSI is a count.

    Bin codes: numeric values get their quantile bin (0..k), categories their index among the
    reference's categories; `MISSING_CODE` for missing values, `OTHER_CODE` for unseen categories.
    """

    edges: dict[str, np.ndarray]
    categories: dict[str, dict[str, int]]
    shares: dict[str, pd.Series]

    @classmethod
    def fit(cls, reference: pd.DataFrame, columns: Sequence[str], bins: int = 10) -> ReferenceProfile:
        profile = cls({}, {}, {})
        for col in columns:
            if _is_categorical(reference[col]):
                values = sorted(set(reference[col].dropna().astype(str)))
                profile.categories[col] = {v: i for i, v in enumerate(values)}
            else:
                profile.edges[col] = bin_edges(reference[col], bins)
            profile.shares[col] = profile._shares(col, reference[col])
        return profile

    def codes(self, col: str, values: pd.Series) -> np.ndarray:
        """Each value's bin code."""
        if col in self.categories:
            known = self.categories[col]
            text = values.astype(object)
            out = np.array([MISSING_CODE if v is None or v is pd.NA or v != v else known.get(str(v), OTHER_CODE) for v in text], dtype="int64")
            return out
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
        out = np.searchsorted(self.edges[col], x, side="right").astype("int64")
        out[np.isnan(x)] = MISSING_CODE
        return out

    def _shares(self, col: str, values: pd.Series) -> pd.Series:
        return pd.Series(self.codes(col, values)).value_counts(normalize=True)

    def psi(self, col: str, values: pd.Series) -> float:
        """PSI of `values` against the reference's `col`."""
        ref = self.shares[col]
        cur = self._shares(col, values)
        both = ref.index.union(cur.index)
        r = ref.reindex(both, fill_value=0.0).to_numpy() + EPSILON
        c = cur.reindex(both, fill_value=0.0).to_numpy() + EPSILON
        return float(np.sum((c - r) * np.log(c / r)))

    def psi_all(self, frame: pd.DataFrame) -> pd.Series:
        """PSI of every profiled column of `frame`."""
        return pd.Series({col: self.psi(col, frame[col]) for col in self.shares}, name="psi")


def bin_shares(reference: pd.Series, current: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Counts and shares of each bin in the reference and the current window."""
    ref, cur = binned(current, reference, bins)
    counts = pd.DataFrame({"reference": ref.value_counts(), "current": cur.value_counts()}).fillna(0).astype("int64")
    shares = counts / counts.sum()
    return pd.concat([counts, shares.add_suffix(" share")], axis=1)


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """Population stability index of `current` against `reference` (0 = same distribution)."""
    table = bin_shares(reference, current, bins)
    r = table["reference share"].to_numpy() + EPSILON
    c = table["current share"].to_numpy() + EPSILON
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value on the non-missing values."""
    r = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype="float64")
    c = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype="float64")
    if len(r) == 0 or len(c) == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(r, c)
    return float(result.statistic), float(result.pvalue)


def chi2(reference: pd.Series, current: pd.Series, bins: int = 10) -> tuple[float, float, float]:
    """Chi-squared test of the 2 x bins table; returns statistic, p-value and Cramér's V (effect size)."""
    table = bin_shares(reference, current, bins)[["reference", "current"]]
    # Cramér's V = sqrt(chi2 / (n * (min(rows, cols) - 1))), and min - 1 = 1 for a 2 x k table
    return _chi2_counts(table.to_numpy())


def adjust_pvalues(p: Sequence[float] | pd.Series, method: str = "bh") -> np.ndarray:
    """P-values corrected for testing many features at once: "bonferroni" (family-wise) or "bh" (false discovery rate)."""
    p = np.asarray(p, dtype="float64")
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if method == "bonferroni":
        out[ok] = np.minimum(p[ok] * ok.sum(), 1.0)
    elif method == "bh":
        out[ok] = stats.false_discovery_control(p[ok], method="bh") if ok.any() else p[ok]
    else:
        raise ValueError(f"method: expected 'bonferroni' or 'bh', got {method!r}")
    return out


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], bins: int = 10, profile: ReferenceProfile | None = None
) -> pd.DataFrame:
    """One row per column: kind, PSI, KS statistic (numeric), Cramér's V, the test's p-value raw and corrected.

    `p` is the KS p-value for numeric columns and the chi-squared one (on the PSI bins) for
    categorical columns; `p bonferroni` and `p bh` correct it across the columns of this table.
    `profile` (the reference's bins, `ReferenceProfile.fit`) saves refitting it for every window.
    """
    profile = profile or ReferenceProfile.fit(reference, columns, bins)
    rows = []
    for col in columns:
        ref, cur = reference[col], current[col]
        categorical = col in profile.categories
        counts = pd.DataFrame(
            {"reference": pd.Series(profile.codes(col, ref)).value_counts(), "current": pd.Series(profile.codes(col, cur)).value_counts()}
        ).fillna(0)
        stat_chi, p_chi, v = _chi2_counts(counts.to_numpy())
        stat_ks, p_ks = (float("nan"), float("nan")) if categorical else ks(ref, cur)
        rows.append(
            {
                "feature": col,
                "kind": "categorical" if categorical else "numeric",
                "psi": profile.psi(col, cur),
                "ks": stat_ks,
                "cramers_v": v,
                "p": p_chi if categorical else p_ks,
                "missing ref": float(ref.isna().mean()),
                "missing cur": float(cur.isna().mean()),
            }
        )
    out = pd.DataFrame(rows).set_index("feature")
    out["p bonferroni"] = adjust_pvalues(out["p"], "bonferroni")
    out["p bh"] = adjust_pvalues(out["p"], "bh")
    return out


def _chi2_counts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chi-squared test on a bins x 2 count table; statistic, p-value and Cramér's V."""
    counts = counts[counts.sum(axis=1) > 0]
    if len(counts) < 2:
        return 0.0, 1.0, 0.0
    stat, p, _, _ = stats.chi2_contingency(counts.T)
    return float(stat), float(p), float(np.sqrt(stat / counts.sum()))


def windows(times: pd.Series, freq: str = "MS", tz: str = "America/New_York") -> pd.Series:
    """The window (start, naive local time) each timestamp falls in: "MS" months, "W-MON" weeks starting Monday."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None) if times.dt.tz is not None else times
    if freq == "MS":
        return local.dt.to_period("M").dt.start_time
    return local.dt.to_period(freq).dt.start_time


def drift_by_window(
    frame: pd.DataFrame, reference_mask: pd.Series, window: pd.Series, columns: Sequence[str], bins: int = 10
) -> pd.DataFrame:
    """`drift_table` of every window against the reference rows; long format with a `window` column."""
    reference = frame[reference_mask.to_numpy()]
    profile = ReferenceProfile.fit(reference, columns, bins)
    parts = []
    for start, current in frame.groupby(window.to_numpy(), sort=True):
        table = drift_table(reference, current, columns, bins, profile)
        parts.append(table.reset_index().assign(window=start, rows=len(current)))
    return pd.concat(parts, ignore_index=True)


def psi_matrix(long: pd.DataFrame, value: str = "psi") -> pd.DataFrame:
    """Features x windows of one statistic, features ordered by their largest value."""
    wide = long.pivot(index="feature", columns="window", values=value)
    wide.columns = [c.strftime("%Y-%m-%d") if hasattr(c, "strftime") else str(c) for c in wide.columns]
    return wide.loc[wide.max(axis=1).sort_values(ascending=False).index]
