"""The solutions module of the lesson a test file checks (`test_NN_name.py` -> `02-notebooks/solutions/NN_name.py`)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from mlsys.config import repo_root


def load_solutions(name: str) -> ModuleType:
    """A solutions module by path: its name starts with a digit, so it cannot be imported by name."""
    spec = importlib.util.spec_from_file_location(f"solutions_{name}", repo_root() / "02-notebooks" / "solutions" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def solutions(request: pytest.FixtureRequest) -> ModuleType:
    return load_solutions(request.path.stem.removeprefix("test_"))
