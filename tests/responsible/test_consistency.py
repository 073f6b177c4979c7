"""Flips are counted right, and the features recomputed at each lead are the point-in-time ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsys import data, features
from mlsys.pipeline import INPUT_COLUMNS
from mlsys.responsible import consistency


def _advice() -> pd.DataFrame:
    """Five flights at three looks (threshold 0.3)."""
    p = np.array(
        [
            [0.10, 0.12, 0.15],  # never acts
            [0.50, 0.40, 0.35],  # always acts
            [0.20, 0.35, 0.40],  # flips once, 3h -> 2h
            [0.40, 0.20, 0.50],  # flips twice: acts, stands down, acts again
            [0.35, 0.31, 0.25],  # flips once, 2h -> 1h
        ]
    )
    out = {}
    for j, name in enumerate(("3h", "2h", "1h")):
        out[f"p_{name}"] = p[:, j]
        out[f"act_{name}"] = p[:, j] >= 0.3
    return pd.DataFrame(out, index=pd.Index([11, 12, 13, 14, 15], name="flight_id"))


def test_flips_on_a_constructed_example() -> None:
    advice = _advice()
    acts = advice[["act_3h", "act_2h", "act_1h"]].to_numpy()
    assert consistency.flips(acts).tolist() == [0, 0, 1, 2, 1]
    assert consistency.flip_rate(acts) == pytest.approx(3 / 5)
    summary = consistency.flip_summary(advice)
    assert summary.loc["advice flips at least once", "flights"] == 3
    assert summary.loc["flips between 3h and 2h", "flights"] == 2  # flights 13 and 14
    assert summary.loc["flips between 2h and 1h", "flights"] == 2  # flights 14 and 15
    assert summary.loc["flips and flips back", "flights"] == 1
    assert summary.loc["act at 3h, not at 1h", "flights"] == 1  # flight 15
    assert summary.loc["act at 1h, not at 3h", "flights"] == 1  # flight 13
    assert consistency.mean_probability_change(advice) == pytest.approx(np.mean([0.05, 0.15, 0.2, 0.1, 0.1]))


def test_cost_by_lead_by_hand() -> None:
    advice = _advice()
    y = np.array([0, 1, 1, 0, 0])
    table = consistency.cost_by_lead(advice, y)
    # 1h: acts on 12, 13, 14 -> one false alarm (14): 100 / 5
    assert table.loc["1h", "cost per flight"] == pytest.approx(100 / 5)
    # 3h: acts on 12, 14, 15 -> two false alarms, one miss (13): 500 / 5
    assert table.loc["3h", "cost per flight"] == pytest.approx(500 / 5)


def test_sticky_advice_removes_small_crossings_only() -> None:
    p = _advice()[["p_3h", "p_2h", "p_1h"]].to_numpy()
    plain = consistency.sticky_advice(p, 0.3, 0.0)
    np.testing.assert_array_equal(plain, p >= 0.3)
    sticky = consistency.sticky_advice(p, 0.3, 0.06)
    # flight 15 (0.35 -> 0.31 -> 0.25) keeps acting: 0.25 is not below 0.3 - 0.06
    assert sticky[4].tolist() == [True, True, True]
    # flight 14 (0.40 -> 0.20 -> 0.50) still stands down and returns: both crossings are large
    assert sticky[3].tolist() == [True, False, True]
    assert consistency.flip_rate(sticky) <= consistency.flip_rate(plain)


def test_flips_by_group() -> None:
    advice = _advice()
    table = consistency.flips_by(advice, pd.Series(["a", "a", "b", "b", "b"], name="g"))
    assert table.loc["a", "flip_rate"] == 0.0 and table.loc["b", "flip_rate"] == 1.0
    assert table["flights"].tolist() == [2, 3]


@pytest.fixture(scope="module")
def world() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    flights = data.load_flights()
    start, end = pd.Timestamp("2013-12-10", tz="UTC"), pd.Timestamp("2013-12-12", tz="UTC")
    return consistency.world_for(flights, start, end), data.load_table("weather"), data.load_table("planes")


def test_two_hours_recomputed_equal_the_training_table(world, table: pd.DataFrame) -> None:
    """A cut of the year with two days of context gives the flights the training table's own rows."""
    flights, weather, planes = world
    asked = table[(table["sched_dep_utc"] >= pd.Timestamp("2013-12-10", tz="UTC")) & (table["sched_dep_utc"] < pd.Timestamp("2013-12-12", tz="UTC"))]
    rows = consistency.features_at_leads(flights, weather, planes, asked["flight_id"], leads_hours=(2,))["2h"]
    expected = asked.set_index("flight_id")[INPUT_COLUMNS]
    pd.testing.assert_frame_equal(rows[INPUT_COLUMNS], expected, check_dtype=False)


def test_a_later_look_sees_more_of_the_day(world, table: pd.DataFrame) -> None:
    """At 1 h the weather is newer than at 3 h, and no feature looks past its own decision time."""
    flights, weather, planes = world
    asked = table[table["sched_dep_utc"].between(pd.Timestamp("2013-12-11 15:00", tz="UTC"), pd.Timestamp("2013-12-11 23:00", tz="UTC"))]
    rows = consistency.features_at_leads(flights, weather, planes, asked["flight_id"])
    for name, hours in (("3h", 3), ("1h", 1)):
        decided = rows[name]["sched_dep_utc"] - pd.Timedelta(hours=hours)
        pd.testing.assert_series_equal(rows[name]["decision_time_utc"], decided, check_names=False)
        # the weather row used became known (stamp + 52 min) by the decision time
        assert (rows[name]["wx_age_minutes"].dropna() >= features.WEATHER_KNOWN_AFTER.total_seconds() / 60).all()
    changed = (rows["3h"]["wx_temp"] != rows["1h"]["wx_temp"]) & rows["1h"]["wx_temp"].notna()
    assert changed.mean() > 0.5  # two hours later, most flights see a newer report


def test_unknown_flights_are_a_clear_error(world) -> None:
    flights, weather, planes = world
    with pytest.raises(KeyError, match="not in the flights given"):
        consistency.features_at_leads(flights, weather, planes, [-1], leads_hours=(2,))


def test_the_service_gives_the_same_features_at_3_h_and_1_h(world, table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`OnlineFeatures` with `as_of` (what `POST /predict` does for an earlier or later look) equals the recomputation."""
    from mlsys import warehouse
    from mlsys.config import get_settings, override
    from mlsys.features import CATEGORICAL, NUMERIC
    from mlsys.serve.champion import ensure_warehouse
    from mlsys.serve.features import OnlineFeatures
    from mlsys.serve.lesson import flight_query

    settings = override(get_settings(), database_url=f"sqlite:///{tmp_path_factory.mktemp('lesson11') / 'warehouse.db'}")
    assert ensure_warehouse(settings, months=[12]) > 0
    flights, weather, planes = world
    asked = table[table["sched_dep_utc"].between(pd.Timestamp("2013-12-11 12:00", tz="UTC"), pd.Timestamp("2013-12-11 23:59", tz="UTC"))]
    asked = asked.sample(15, random_state=0)
    recomputed = consistency.features_at_leads(flights, weather, planes, asked["flight_id"], leads_hours=(3, 1))
    eng = warehouse.engine(settings)
    try:
        online = OnlineFeatures(eng)
        for name, hours in (("3h", 3), ("1h", 1)):
            queries = [flight_query(row, as_of=row["sched_dep_utc"] - pd.Timedelta(hours=hours)) for _, row in asked.iterrows()]
            got = pd.DataFrame([r.values for r in online.compute(queries)], index=asked["flight_id"].to_numpy())
            want = recomputed[name]
            assert np.isclose(got[NUMERIC].astype("float64"), want[NUMERIC].astype("float64"), rtol=1e-9, atol=1e-9, equal_nan=True).all()
            assert (got[CATEGORICAL].astype(str).to_numpy() == want[CATEGORICAL].astype(str).to_numpy()).all()
    finally:
        eng.dispose()
