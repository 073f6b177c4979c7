"""Logging: one loguru configuration, file sink, standard logging intercepted."""

import logging
from pathlib import Path

from loguru import logger

from mlsys.config import load_settings
from mlsys.logger import setup_logging


def _settings(tmp_path: Path):
    return load_settings(env_file=tmp_path / "absent.env", environ={"MLSYS_LOG_DIR": str(tmp_path / "logs"), "MLSYS_LOG_LEVEL": "INFO"})


def test_standard_logging_flows_into_loguru(tmp_path: Path) -> None:
    log_file = setup_logging(_settings(tmp_path), force=True, console=False)
    captured: list[str] = []
    sink = logger.add(lambda message: captured.append(message.record["message"]), level="INFO")
    try:
        logging.getLogger("some.library").warning("disk almost full")
        logging.getLogger("uvicorn.error").info("server started")
    finally:
        logger.remove(sink)
    assert "disk almost full" in captured
    assert "server started" in captured
    logger.complete()
    text = log_file.read_text()
    assert "disk almost full" in text and "WARNING" in text


def test_setup_is_idempotent(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = setup_logging(settings, force=True, console=False)
    handlers_before = len(logger._core.handlers)  # noqa: SLF001 - loguru has no public count
    second = setup_logging(settings, console=False)
    assert first == second
    assert len(logger._core.handlers) == handlers_before  # noqa: SLF001


def test_chatty_libraries_are_quieted(tmp_path: Path) -> None:
    setup_logging(_settings(tmp_path), force=True, console=False)
    assert logging.getLogger("alembic").getEffectiveLevel() >= logging.WARNING
