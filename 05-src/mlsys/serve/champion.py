"""Put a champion into a fresh registry: `python -m mlsys.serve.champion` (does nothing if one exists).

`make serve` on a fresh clone, the benchmark and lesson 07 need `flight-delay@champion`; lesson 06
registers it, and this runs the same recipe on its own: lesson 06's champion (`promote.fit_champion`:
monotone LightGBM, with the calibration lesson 06 chose on validation: none), judged by the
promotion protocol on validation and registered by `promote.promote` with the alias and the decision
threshold chosen on validation. Also loads the
warehouse if it is empty, since `/predict` reads it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import sqlalchemy as sa

from mlsys import features, pipeline, promote, warehouse
from mlsys.config import Settings, get_settings
from mlsys.logger import logger, setup_logging


def ensure_champion(settings: Settings | None = None, fast: bool = True, force: bool = False) -> str:
    """The champion's version: the registered one, or a newly fitted, checked and registered one.

    Raises RuntimeError with the protocol's reasons if the fitted model fails the promotion checks.
    """
    settings = settings or get_settings()
    if not force:
        version = promote.champion_version(settings)
        if version is not None:
            logger.info("{}@{} is version {}; nothing to do", settings.registered_model_name, settings.champion_alias, version)
            return version
    splits = features.load_splits(fast=fast, seed=settings.seed, settings=settings)
    model = promote.fit_champion(splits, seed=settings.seed)
    report = promote.evaluate_candidate(model, splits)
    decision = promote.promote(
        model, report, splits["test"][pipeline.INPUT_COLUMNS].head(5), settings, name="serve-champion", train_data=splits["train"]
    )
    if not decision.promoted or decision.version is None:
        raise RuntimeError("the champion recipe failed the promotion protocol: " + "; ".join(decision.reasons))
    return decision.version


def ensure_warehouse(settings: Settings | None = None, months: Sequence[int] | None = None) -> int:
    """Load the warehouse (only `months`, if given) if its `flights` table is missing or empty; returns the number of flights."""
    settings = settings or get_settings()
    eng = warehouse.engine(settings)
    try:
        if sa.inspect(eng).has_table("flights"):
            flights = int(warehouse.row_counts(eng)["flights"])
            if flights:
                return flights
        return int(warehouse.load_warehouse(eng, settings, months=months).loc["flights", "warehouse rows"])
    finally:
        eng.dispose()


def main(argv: list[str] | None = None) -> None:
    """Command line: register a champion and load the warehouse unless they exist."""
    parser = argparse.ArgumentParser(prog="python -m mlsys.serve.champion", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="train on every training row (default: fast mode)")
    parser.add_argument("--force", action="store_true", help="register a new champion even if one exists")
    parser.add_argument("--no-warehouse", action="store_true", help="do not load the warehouse")
    args = parser.parse_args(argv)
    setup_logging()
    version = ensure_champion(fast=not args.full, force=args.force)
    settings = get_settings()
    print(f"{settings.registered_model_name}@{settings.champion_alias} = version {version}")
    if not args.no_warehouse:
        print(f"warehouse: {ensure_warehouse(settings):,} flights")


if __name__ == "__main__":
    main()
