"""Session-wide test settings (root conftest, so it also applies to nbval on 02-notebooks/).

Tests and re-executed notebooks get their own empty MLflow store and warehouse in a temporary
directory, never the student's `mlflow.db`, and run headless (plain progress bars, warnings-only
console logs) exactly like `python -m mlsys.course refresh` did when the outputs were committed.
Environment variables are set before any kernel starts, so nbval's kernels inherit them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlsys.course import headless_env, isolated_env

_WORKDIR = Path(tempfile.mkdtemp(prefix="mlsys-tests-"))


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest hook signature
    # A DATABASE_URL set by CI for the Postgres tests is kept under its own name.
    if "DATABASE_URL" in os.environ and "DATABASE_URL_TEST" not in os.environ:
        os.environ["DATABASE_URL_TEST"] = os.environ["DATABASE_URL"]
    os.environ.update(headless_env() | isolated_env(_WORKDIR))
    from mlsys.config import get_settings

    get_settings.cache_clear()


def pytest_unconfigure(config) -> None:  # noqa: ANN001
    shutil.rmtree(_WORKDIR, ignore_errors=True)
