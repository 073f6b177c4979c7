"""`python -m mlsys.featurestore publish|status|clear`: feed and inspect the online feature store.

`publish` reads the departures scheduled in [--start, --end) from the warehouse, appends them to the
Redis Stream and folds them into the aggregates (what an operations system would do as flights
leave); the service reads them with MLSYS_ONLINE_FEATURES=redis.
"""

from __future__ import annotations

import argparse

import pandas as pd

from mlsys import warehouse
from mlsys.config import get_settings
from mlsys.featurestore import connection, offline, online
from mlsys.logger import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.featurestore", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["publish", "status", "clear"])
    parser.add_argument("--start", default="2013-10-31", help="first scheduled day (UTC) to publish")
    parser.add_argument("--end", default="2014-01-01", help="day after the last one to publish")
    parser.add_argument("--prefix", default=online.PREFIX, help="key prefix (default %(default)s)")
    args = parser.parse_args(argv)
    setup_logging()
    settings = get_settings()
    store = online.OnlineStore(connection.client(settings), prefix=args.prefix)
    if args.command == "publish":
        eng = warehouse.engine(settings)
        try:
            flights = offline.warehouse_flights(eng, pd.Timestamp(args.start, tz="UTC"), pd.Timestamp(args.end, tz="UTC"))
        finally:
            eng.dispose()
        published = store.publish(offline.departure_events(flights))
        print(f"published {published:,} departures, consumed {store.consume():,}")
    elif args.command == "clear":
        print(f"deleted {store.clear():,} keys under {args.prefix!r}")
    print(store.size())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
