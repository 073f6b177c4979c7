"""Solutions to the exercises of lesson 00 (project setup). Try the exercises yourself first.

One function per exercise of `02-notebooks/00_setup.ipynb`; `tests/solutions/test_00_setup.py`
runs each of them and checks its answer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import mlflow
import pandas as pd

from mlsys import tracking
from mlsys.config import load_settings
from mlsys.logger import logger


def exercise_1(folder: Path) -> pd.DataFrame:
    """Which value wins? Seed and log level with no `.env`, with a `.env`, and with the `.env` plus an environment variable.

    Precedence is process environment > `.env` > defaults: the environment's `MLSYS_SEED=11` beats
    the file's 7, and the file's `debug` (upper-cased to DEBUG) beats the default INFO.
    """
    env_file = Path(folder) / ".env"
    env_file.write_text("MLSYS_SEED=7\nMLSYS_LOG_LEVEL=debug\n")
    scenarios = {
        "defaults (no .env)": load_settings(env_file=Path(folder) / "missing.env", environ={}),
        ".env": load_settings(env_file=env_file, environ={}),
        ".env + MLSYS_SEED=11 in the environment": load_settings(env_file=env_file, environ={"MLSYS_SEED": "11"}),
    }
    return pd.DataFrame({name: {"seed": s.seed, "log_level": s.log_level} for name, s in scenarios.items()}).T


def exercise_2(folder: Path, password: str = "s3cret") -> dict[str, bool]:
    """Keep secrets out of logs: does `print(settings)` show the database password? Does `settings.as_dict()`?

    `print` shows the dataclass's fields as they are, password included, so a settings object must
    never go into a log record whole; `as_dict()` masks passwords in URLs (`mlsys:***@...`).
    """
    env_file = Path(folder) / ".env"
    env_file.write_text(f"DATABASE_URL=postgresql+psycopg://mlsys:{password}@127.0.0.1:5432/warehouse\n")
    settings = load_settings(env_file=env_file, environ={})
    return {
        "print(settings) shows the password": password in str(settings),
        "as_dict() shows the password": password in str(settings.as_dict()),
    }


def exercise_3() -> list[str]:
    """One sink for everything: which of three records reach a sink that keeps WARNING and above?

    The loguru warning and the standard-library warning (routed into loguru by `setup_logging()`,
    which the setup cell ran); the info record is below the sink's level.
    """
    records: list[str] = []
    sink_id = logger.add(lambda message: records.append(message.rstrip("\n")), format="{level} {message}", level="WARNING")
    try:
        logger.info("feature table ready")
        logger.warning("weather file is 2 h old")
        logging.getLogger("a_library").warning("retrying the tracking store")
    finally:
        logger.remove(sink_id)
    return records


def exercise_4(table: pd.DataFrame) -> dict[str, object]:
    """Find your run by tag: log `00-exercise` tagged `exercise=4`, then find it in this session and read its metric back.

    `tracking.run` adds the session's tags, and `tracking.session_runs` narrows any filter to this
    session, so runs of earlier re-runs (same tag, other session) are not found.
    """
    late_rate = round(float(table.loc[table["split"] == "train", "late"].mean()), 4)
    with tracking.run("00-exercise", exercise="4") as active:
        mlflow.log_metric("train_late_rate", late_rate)
    found = tracking.session_runs("tags.exercise = '4'")
    return {
        "logged_run_id": active.info.run_id,
        "found_run_ids": [r.info.run_id for r in found],
        "train_late_rate": found[0].data.metrics["train_late_rate"] if found else None,
    }
