"""Logging: loguru, configured once for the whole course.

`setup_logging()` installs two sinks (the console and a rotating file under `logs/`) and routes
the standard library's `logging` into loguru, so MLflow's, alembic's and uvicorn's records land in
the same place with the same format. Calling it again is a no-op unless `force=True`.
"""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path

from loguru import logger

from mlsys.config import Settings, get_settings

__all__ = ["logger", "setup_logging", "InterceptHandler"]

CONSOLE_FORMAT = "<green>{time:YYYY-MM-DD HH:mm:ss}</green> | <level>{level: <8}</level> | {name}:{function} - {message}"
FILE_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line} - {message}"

# Libraries that are chatty at INFO; their warnings still come through.
_QUIET = ("alembic", "mlflow.store", "mlflow.tracking", "urllib3", "httpx", "numexpr", "matplotlib", "distributed")

_configured: dict[str, object] = {}


class InterceptHandler(logging.Handler):
    """Forward a standard `logging` record to loguru, keeping its level and caller."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(settings: Settings | None = None, *, force: bool = False, console: bool = True) -> Path:
    """Configure loguru and intercept `logging`; returns the log file's path."""
    settings = settings or get_settings()
    log_file = settings.log_dir / "mlsys.log"
    if _configured.get("file") == log_file and not force:
        return log_file
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger.remove()
    if console:
        logger.add(sys.stderr, level=settings.log_level, format=CONSOLE_FORMAT, colorize=False)
    logger.add(log_file, level="DEBUG", format=FILE_FORMAT, rotation="5 MB", retention=5, encoding="utf-8")
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "mlflow"):
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.propagate = False
    _configured["file"] = log_file
    return log_file
