"""Session-wide test settings (root conftest, so it also applies to nbval on 02-notebooks/).

Tests get their own empty MLflow store and warehouse in a temporary directory, never the
student's `mlflow.db`, and run headless (plain progress bars, warnings-only console logs).
Each notebook that nbval re-executes gets a fresh store of its own, exactly as
`python -m mlsys.course refresh` ran it when its outputs were committed. Environment variables
are set before a notebook's kernel starts, so the kernel inherits them. nbval compares numbers
with a tolerance for last-digit BLAS noise (`mlsys.nbcompare`), so outputs committed on one CPU
hold on another.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mlsys.course import headless_env, isolated_env
from mlsys.nbcompare import install_nbval_tolerance

_WORKDIR = Path(tempfile.mkdtemp(prefix="mlsys-tests-"))
_current_notebook: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    os.environ.update(headless_env() | isolated_env(_WORKDIR))
    # committed outputs come from one CPU's BLAS kernels: compare numbers with a tolerance
    install_nbval_tolerance()
    from mlsys.config import get_settings

    get_settings.cache_clear()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before the first cell of each notebook (when nbval starts its kernel), switch to a new store."""
    path = Path(str(item.fspath))
    if path.suffix != ".ipynb" or (_current_notebook and _current_notebook[-1] == path):
        return
    _current_notebook.append(path)
    store = _WORKDIR / path.stem
    store.mkdir(parents=True, exist_ok=True)
    os.environ.update(isolated_env(store))


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_WORKDIR, ignore_errors=True)
