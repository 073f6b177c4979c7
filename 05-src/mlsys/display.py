"""Formatting for notebook output that must stay comparable when nbval re-executes a notebook.

Durations and speed ratios differ on every run, so they are always printed through these
helpers; `tests/nbval_sanitize.cfg` rewrites exactly these shapes (`1.23 s`, `4.5 ms`, `3.1×`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm as _tqdm_auto
from tqdm.std import tqdm as _tqdm_text

T = TypeVar("T")


def duration(seconds: float) -> str:
    """`0.0042` -> `   4.20 ms`; `12.3` -> `   12.30 s`.

    Always 10 characters wide, so a table column of durations keeps its width from run to run
    (nbval compares the plain-text table, padding included).
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:7.2f} ms"
    return f"{seconds:8.2f} s"


def ratio(value: float) -> str:
    """`3.14159` -> `  3.1×` (a speed or size ratio measured in this run), always 6 characters wide."""
    return f"{value:5.1f}×"


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "") -> Iterable[T]:
    """A progress bar: a widget in JupyterLab, plain text on stderr under papermill, nbval and CLI.

    The text bar prints one line when done, which the nbval sanitize file replaces.
    """
    interactive = "ipykernel" in sys.modules and not _running_headless()
    bar = _tqdm_auto if interactive else _tqdm_text
    return bar(iterable, total=total, desc=desc, file=None if interactive else sys.stderr, mininterval=1.0, ascii=not interactive)


def _running_headless() -> bool:
    import os

    return bool(os.environ.get("MLSYS_HEADLESS"))
