"""Testing a challenger in production: shadow, A/B, canary and a bandit (Huyen, 2022, ch. 9).

Every function takes a plain table with one row per flight decision (see `COLUMNS`): the flight's key,
its decision time, the champion's and the challenger's P(late), the outcome and when the outcome became
known (the flight landed). Nothing here calls a model or a service, so the same code runs on the replay
of lesson 08's prediction log, on the feature table, and on synthetic data in the tests.

Decisions use only outcomes known by the simulated clock: a canary judged at 18:00 has not yet seen
whether the 17:00 departures arrived late.

A replay knows both models' probabilities for every flight, so each arm's cost is computable on every
flight; a live test observes only the arm that served. The functions below use only the served arm's
outcomes to decide, as a live system would, and keep the counterfactual for evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mlsys.objectives import COURSE_COSTS, Costs

#: Column names the functions read.
KEY = "flight_id"
TIME = "decision_time_utc"
LABEL = "late"
KNOWN = "label_known_at"
ARMS = ("champion", "challenger")
COLUMNS = (KEY, TIME, LABEL, KNOWN, *(f"p_{arm}" for arm in ARMS))

#: Default salt of the experiment's hash: a new experiment takes a new salt, so a flight's arm in one
#: test says nothing about its arm in the next.
SALT = "lesson09-ab"


def check_frame(frame: pd.DataFrame, columns: Sequence[str] = COLUMNS) -> None:
    """Raise a ValueError naming the missing columns of a decisions table."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"decisions table lacks column(s) {missing}; it needs {list(columns)}")


def decisions_table(champion: pd.DataFrame, challenger: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """One decisions table (`COLUMNS`) from two logs of the same flights and their outcomes.

    `champion` and `challenger`: `flight_id`, `decision_time` and `probability` (as `prediction_log`
    rows read back, e.g. the replay's); `outcomes`: `flight_id`, `late` and `label_known_at` (the label
    job's). Only flights both models scored are kept.
    """
    for name, part, cols in (
        ("champion", champion, ("flight_id", "decision_time", "probability")),
        ("challenger", challenger, ("flight_id", "probability")),
        ("outcomes", outcomes, ("flight_id", "late", "label_known_at")),
    ):
        missing = [c for c in cols if c not in part.columns]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
    frame = (
        champion[["flight_id", "decision_time", "probability"]]
        .rename(columns={"decision_time": TIME, "probability": "p_champion"})
        .merge(challenger[["flight_id", "probability"]].rename(columns={"probability": "p_challenger"}), on="flight_id", validate="one_to_one")
        .merge(outcomes[["flight_id", "late", "label_known_at"]], on="flight_id", how="left", validate="one_to_one")
    )
    if frame[LABEL].isna().any():
        raise ValueError(f"outcomes: no label for {int(frame[LABEL].isna().sum())} logged flights")
    frame[TIME] = pd.to_datetime(frame[TIME], utc=True)
    frame[LABEL] = frame[LABEL].astype("int64")
    return frame.rename(columns={"flight_id": KEY})[list(COLUMNS)].sort_values([TIME, KEY]).reset_index(drop=True)


# --------------------------------------------------------------------------- assignment


def bucket(keys: Sequence[object] | pd.Series | np.ndarray, salt: str = SALT) -> np.ndarray:
    """A number in [0, 1) per key from SHA-256 of `salt:key`: the same key always lands in the same place.

    It depends on nothing but the key and the salt (not on the row order, the other keys, the process
    or Python's randomised `hash`), so adding or removing flights never moves another flight.
    """
    out = np.empty(len(keys), dtype="float64")
    for i, key in enumerate(np.asarray(keys, dtype=object)):
        digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2**64
    return out


def assign(keys: Sequence[object] | pd.Series | np.ndarray, share: float = 0.5, salt: str = SALT) -> np.ndarray:
    """True where a flight goes to the challenger: its bucket is below `share`.

    Buckets nest: a flight in a 5 % canary stays in the challenger's group when the share grows to 25 %.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within [0, 1], got {share}")
    return bucket(keys, salt) < share


def balance(assigned: np.ndarray, share: float = 0.5) -> dict[str, float]:
    """How far an assignment is from its intended share: counts and a two-sided binomial test."""
    assigned = np.asarray(assigned, dtype=bool)
    n, k = len(assigned), int(assigned.sum())
    return {
        "flights": n,
        "challenger": k,
        "champion": n - k,
        "challenger share": k / n if n else float("nan"),
        "p_value": float(stats.binomtest(k, n, share).pvalue) if n else float("nan"),
    }


# --------------------------------------------------------------------------- costs


def flight_costs(y: np.ndarray | pd.Series, p: np.ndarray | pd.Series, threshold: float, costs: Costs = COURSE_COSTS) -> np.ndarray:
    """Cost of each flight's decision (lesson 01's costs): act when p >= threshold."""
    y = np.asarray(y, dtype="float64") == 1
    act = np.asarray(p, dtype="float64") >= threshold
    return np.where(act & ~y, costs.false_alarm, 0.0) + np.where(~act & y, costs.miss, 0.0) + np.where(act & y, costs.hit, 0.0)


def known_by(frame: pd.DataFrame, clock: pd.Timestamp | None) -> np.ndarray:
    """Rows whose outcome was known at `clock` (every row when `clock` is None)."""
    if clock is None:
        return np.ones(len(frame), dtype=bool)
    return (frame[KNOWN] <= clock).to_numpy()


def _arm_costs(frame: pd.DataFrame, thresholds: Mapping[str, float], costs: Costs) -> pd.DataFrame:
    return pd.DataFrame({arm: flight_costs(frame[LABEL], frame[f"p_{arm}"], thresholds[arm], costs) for arm in ARMS}, index=frame.index)


# --------------------------------------------------------------------------- shadow


def shadow(frame: pd.DataFrame, thresholds: Mapping[str, float], clock: pd.Timestamp | None = None, costs: Costs = COURSE_COSTS) -> pd.DataFrame:
    """Shadow deployment: the champion decides every flight, the challenger is only logged beside it.

    One row per model: flights scored, share it flags, agreement with the champion's decisions, and the
    cost per flight each would have had on the flights whose outcome is known by `clock`. The desk's
    decisions (and so its cost) are the champion's, whatever the challenger says.
    """
    check_frame(frame)
    known = known_by(frame, clock)
    flags = {arm: frame[f"p_{arm}"].to_numpy() >= thresholds[arm] for arm in ARMS}
    arm_costs = _arm_costs(frame, thresholds, costs)
    rows = {}
    for arm in ARMS:
        rows[arm] = {
            "flights scored": len(frame),
            "share flagged": float(flags[arm].mean()),
            "agrees with champion": float((flags[arm] == flags["champion"]).mean()),
            "outcomes known": int(known.sum()),
            "cost per flight": float(arm_costs.loc[known, arm].mean()),
            "decides": arm == "champion",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


# --------------------------------------------------------------------------- A/B test


@dataclass(frozen=True)
class ABResult:
    """An A/B test's outcome: per-arm table, the difference in cost per flight and its tests."""

    table: pd.DataFrame  # per arm: flights, outcomes known, cost per flight, share flagged
    difference: float  # challenger minus champion, cost per flight
    ci: tuple[float, float]  # 95 % interval of the difference (Welch)
    p_value: float  # Welch's t-test on per-flight costs (treats flights as independent)
    p_value_days: float  # paired t-test on the days' mean costs (days as the unit: weather hits a whole day)
    days: int

    @property
    def winner(self) -> str:
        """'challenger' or 'champion' when the day-level test is significant at 5 %, else 'no difference shown'."""
        if self.p_value_days < 0.05:
            return "challenger" if self.difference < 0 else "champion"
        return "no difference shown"


def ab_test(
    frame: pd.DataFrame,
    thresholds: Mapping[str, float],
    clock: pd.Timestamp | None = None,
    share: float = 0.5,
    salt: str = SALT,
    costs: Costs = COURSE_COSTS,
) -> ABResult:
    """Split flights by `assign(flight_id)`, let each arm decide its flights, compare cost per flight.

    Only flights whose outcome is known by `clock` count. Flights on the same day share weather and
    airport congestion, so their costs are not independent: the per-flight Welch test overstates the
    evidence, and the paired test on daily means (both arms run every day) is the one to decide on.
    """
    check_frame(frame)
    challenger = assign(frame[KEY], share, salt)
    known = known_by(frame, clock)
    arm_costs = _arm_costs(frame, thresholds, costs)
    served = np.where(challenger, arm_costs["challenger"], arm_costs["champion"])
    flags = np.where(challenger, frame["p_challenger"] >= thresholds["challenger"], frame["p_champion"] >= thresholds["champion"])
    table = pd.DataFrame.from_dict(
        {
            arm: {
                "flights": int(mask.sum()),
                "outcomes known": int((mask & known).sum()),
                "cost per flight": float(served[mask & known].mean()),
                "share flagged": float(flags[mask].mean()),
            }
            for arm, mask in (("champion", ~challenger), ("challenger", challenger))
        },
        orient="index",
    ).rename_axis("arm")
    a, b = served[known & challenger], served[known & ~challenger]
    welch = stats.ttest_ind(a, b, equal_var=False)
    ci = welch.confidence_interval(0.95)
    day = pd.to_datetime(frame[TIME]).dt.floor("D").to_numpy()
    daily = pd.DataFrame({"day": day[known], "arm": np.where(challenger[known], "challenger", "champion"), "cost": served[known]})
    per_day = daily.pivot_table(index="day", columns="arm", values="cost", aggfunc="mean").dropna()
    paired = stats.ttest_rel(per_day["challenger"], per_day["champion"]) if len(per_day) > 1 else None
    return ABResult(
        table=table,
        difference=float(a.mean() - b.mean()),
        ci=(float(ci.low), float(ci.high)),
        p_value=float(welch.pvalue),
        p_value_days=float(paired.pvalue) if paired is not None else float("nan"),
        days=len(per_day),
    )


def flights_needed(difference: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Flights per arm a two-sided test at `alpha` needs to detect `difference` in mean cost with `power`.

    n = 2 (z_{1-alpha/2} + z_{power})^2 sd^2 / difference^2 (normal approximation, independent flights).
    """
    if difference == 0:
        raise ValueError("difference must be non-zero")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return int(np.ceil(2 * (z * sd / difference) ** 2))


def ab_by_clock(
    frame: pd.DataFrame, thresholds: Mapping[str, float], clocks: Sequence[pd.Timestamp], salt: str = SALT, costs: Costs = COURSE_COSTS
) -> pd.DataFrame:
    """The A/B test as it looks at each clock: outcomes known, difference and both p-values (peeking shown)."""
    rows = []
    for clock in clocks:
        seen = frame[frame[TIME] < clock]
        result = ab_test(seen, thresholds, clock=clock, salt=salt, costs=costs)
        rows.append(
            {
                "clock": clock,
                "outcomes known": int(result.table["outcomes known"].sum()),
                "difference": result.difference,
                "p_value": result.p_value,
                "p_value_days": result.p_value_days,
            }
        )
    return pd.DataFrame(rows).set_index("clock")


# --------------------------------------------------------------------------- canary


@dataclass(frozen=True)
class CanaryResult:
    """The canary's timeline (one row per check) and how it ended: 'completed' or 'rolled back'."""

    timeline: pd.DataFrame
    decision: str
    final_share: float


def canary(
    frame: pd.DataFrame,
    thresholds: Mapping[str, float],
    stages: Sequence[float] = (0.05, 0.25, 0.5, 1.0),
    stage_days: int = 7,
    max_cost_ratio: float = 1.10,
    max_flag_ratio: float = 1.5,
    min_outcomes: int = 200,
    salt: str = "lesson09-canary",
    costs: Costs = COURSE_COSTS,
) -> CanaryResult:
    """Give the challenger a growing share of flights; at the end of each stage check two guard metrics.

    * share flagged (known at decision time): the challenger may flag at most `max_flag_ratio` times the
      champion's share, a guard that needs no outcome;
    * cost per flight on the flights whose outcome is known at the check (the clock): at most
      `max_cost_ratio` times the champion's on its own flights.

    A guard that fails rolls the challenger back (share 0 from then on). With fewer than `min_outcomes`
    known challenger outcomes the stage is extended by a day instead. Passing the last stage completes
    the rollout. Flights are assigned by `assign(flight_id, share, salt)`, so a flight stays with the
    challenger as the share grows.
    """
    check_frame(frame)
    frame = frame.sort_values(TIME)
    times = pd.to_datetime(frame[TIME])
    start = times.min().floor("D")
    end = times.max()
    buckets = bucket(frame[KEY], salt)
    arm_costs = _arm_costs(frame, thresholds, costs)
    share_of_row = np.zeros(len(frame))  # the share in force when each flight was decided
    rows, stage, stage_start, decision = [], 0, start, "running"
    clock = start + pd.Timedelta(days=stage_days)
    while True:
        in_stage = ((times >= stage_start) & (times < clock)).to_numpy()
        share_of_row[in_stage] = stages[stage]
        decided = (times < clock).to_numpy()
        challenger = decided & (buckets < share_of_row)
        champion = decided & ~challenger
        known = known_by(frame, clock)
        flag = {arm: frame[f"p_{arm}"].to_numpy() >= thresholds[arm] for arm in ARMS}
        flag_ratio = flag["challenger"][challenger].mean() / max(flag["champion"][champion].mean(), 1e-12)
        n_known = int((challenger & known).sum())
        cost_ch = float(arm_costs["challenger"][challenger & known].mean()) if n_known else float("nan")
        cost_champ = float(arm_costs["champion"][champion & known].mean())
        cost_ratio = cost_ch / cost_champ if n_known else float("nan")
        if flag_ratio > max_flag_ratio:
            action = "roll back (share flagged)"
        elif n_known < min_outcomes:
            action = "extend (too few outcomes)"
        elif cost_ratio > max_cost_ratio:
            action = "roll back (cost)"
        elif stage == len(stages) - 1:
            action = "complete"
        else:
            action = "advance"
        rows.append(
            {
                "clock": clock,
                "share": stages[stage],
                "challenger flights": int(challenger.sum()),
                "outcomes known": n_known,
                "flag ratio": float(flag_ratio),
                "challenger cost": cost_ch,
                "champion cost": cost_champ,
                "cost ratio": cost_ratio,
                "action": action,
            }
        )
        if action.startswith("roll back"):
            decision = "rolled back"
            share_of_row[(times >= clock).to_numpy()] = 0.0
            break
        if action == "complete":
            decision = "completed"
            break
        if action == "advance":
            stage += 1
            stage_start = clock
            clock = clock + pd.Timedelta(days=stage_days)
        else:
            clock = clock + pd.Timedelta(days=1)
        if clock > end + pd.Timedelta(days=1):
            decision = "ran out of flights"
            break
    final = 0.0 if decision == "rolled back" else stages[stage]
    return CanaryResult(timeline=pd.DataFrame(rows).set_index("clock"), decision=decision, final_share=final)


# --------------------------------------------------------------------------- bandit


@dataclass(frozen=True)
class BanditResult:
    """Thompson sampling's allocation per period, and what it cost against each arm alone."""

    allocation: pd.DataFrame  # per period: flights, share to each arm, posterior mean cost per arm
    cost_per_flight: float  # of the flights as the bandit served them
    arm_cost_per_flight: dict[str, float]  # each arm alone on every flight (known only in a replay)


def thompson(
    frame: pd.DataFrame,
    thresholds: Mapping[str, float],
    period: str = "1D",
    prior_outcomes: float = 10.0,
    seed: int = 42,
    costs: Costs = COURSE_COSTS,
) -> BanditResult:
    """Thompson sampling between the two models, minimising cost per flight, with delayed outcomes.

    Each period (a day by default) starts with a posterior per arm for its mean cost per flight, from
    the outcomes of the flights it served that are known by then: normal, centred on the observed mean
    with standard error s / sqrt(n) (weakly pulled towards the pooled mean by `prior_outcomes` pseudo
    outcomes). Each flight of the period draws one mean cost per arm and goes to the arm with the lower
    draw, so an arm is chosen with the probability that it is the better one.
    """
    check_frame(frame)
    frame = frame.sort_values(TIME).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    arm_costs = _arm_costs(frame, thresholds, costs).to_numpy()
    periods = pd.to_datetime(frame[TIME]).dt.floor(period)
    chosen = np.full(len(frame), -1)
    prior_mean = float(arm_costs.mean())
    prior_sd = float(arm_costs.std()) or 1.0
    rows = []
    for start, idx in periods.groupby(periods, sort=True).indices.items():
        known = (chosen >= 0) & known_by(frame, start)
        means, sds = [], []
        for a in range(len(ARMS)):
            seen = arm_costs[known & (chosen == a), a]
            n = len(seen) + prior_outcomes
            mean = (seen.sum() + prior_outcomes * prior_mean) / n
            sd = (seen.std() if len(seen) > 1 else prior_sd) / np.sqrt(n)
            means.append(mean)
            sds.append(sd)
        draws = rng.normal(np.array(means)[None, :], np.array(sds)[None, :], size=(len(idx), len(ARMS)))
        chosen[idx] = draws.argmin(axis=1)
        rows.append(
            {
                "period": start,
                "flights": len(idx),
                **{f"share {arm}": float((chosen[idx] == a).mean()) for a, arm in enumerate(ARMS)},
                **{f"posterior cost {arm}": float(means[a]) for a, arm in enumerate(ARMS)},
            }
        )
    served = arm_costs[np.arange(len(frame)), chosen]
    return BanditResult(
        allocation=pd.DataFrame(rows).set_index("period"),
        cost_per_flight=float(served.mean()),
        arm_cost_per_flight={arm: float(arm_costs[:, a].mean()) for a, arm in enumerate(ARMS)},
    )


# --------------------------------------------------------------------------- synthetic data


def synthetic_decisions(
    days: int = 30,
    flights_per_day: int = 400,
    late_rate: float = 0.25,
    skill: Mapping[str, float] | None = None,
    label_delay_hours: float = 3.0,
    seed: int = 0,
) -> pd.DataFrame:
    """A decisions table with a known answer: each model's log-odds are `skill * z + noise` of a latent z.

    The outcome is late when the latent z is high; the model with the larger `skill` ranks better and
    so costs less at its best threshold. Outcomes become known `label_delay_hours` after departure
    (departure 2 h after the decision time).
    """
    skill = dict(skill or {"champion": 1.0, "challenger": 1.0})
    rng = np.random.default_rng(seed)
    n = days * flights_per_day
    decision = pd.Timestamp("2013-11-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, days * 24, n)), unit="h")
    z = rng.normal(size=n)
    late = (z + rng.normal(scale=1.0, size=n) > np.quantile(z, 1 - late_rate) + 0.0).astype(int)
    frame = pd.DataFrame({KEY: np.arange(n), TIME: decision, LABEL: late})
    frame[KNOWN] = frame[TIME] + pd.Timedelta(hours=2 + label_delay_hours)
    base = np.log(late_rate / (1 - late_rate))
    for arm in ARMS:
        frame[f"p_{arm}"] = 1 / (1 + np.exp(-(base + skill[arm] * z + rng.normal(scale=1.0, size=n))))
    return frame
