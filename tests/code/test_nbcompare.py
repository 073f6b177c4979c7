"""nbval's comparison tolerates last-digit BLAS noise and still catches a result that changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlsys.nbcompare import outputs_match

# Pairs seen on one machine with OPENBLAS_CORETYPE=Haswell (committed) and Prescott (re-run).
NOISE = [
    ("<td>0.7128</td>", "<td>0.7126</td>"),
    ("mean predicted P(late): valid 0.217 (actual share 0.169), test 0.234", "mean predicted P(late): valid 0.216 (actual share 0.169), test 0.233"),
    ("<td>0.452</td>", "<td>0.451</td>"),
    ("<td>0.0297</td>", "<td>0.0296</td>"),
    ("<td>0.000</td>\n<td>0.0000</td>", "<td>0.0000</td>\n<td>0.0000</td>"),
    ("cost 66449.180", "cost 66468.852"),
    # a table whose widest number changed width: pandas pads the column differently
    ("logreg    0.713   1.25\nlgbm      0.745   1.10", "logreg    0.7128   1.25\nlgbm      0.745    1.10"),
]

CHANGES = [
    ("roc_auc 0.7128", "roc_auc 0.7228"),  # a metric that moves in its second decimal
    ("roc_auc 0.713", "roc_auc 0.723"),
    ("roc_auc 0.71", "roc_auc 0.72"),
    ("rows 336,776", "rows 336,775"),  # a row count
    ("quarantined 1", "quarantined 0"),
    ("promoted: True", "promoted: False"),  # a changed decision
    ("a 0.70\nb 0.71\n", "a 0.70\nb 0.71\nc 0.72\n"),  # a table that gains a row
    ("registered versions: [1]", "registered versions: [1, 2]"),
    ("threshold 0.25", "threshold 0.26"),
    ("cost 66449.180", "cost 67449.180"),
]


@pytest.mark.parametrize(("committed", "rerun"), NOISE)
def test_last_digit_noise_is_tolerated(committed: str, rerun: str) -> None:
    assert outputs_match(committed, rerun)


@pytest.mark.parametrize(("committed", "rerun"), CHANGES)
def test_a_changed_result_still_fails(committed: str, rerun: str) -> None:
    assert not outputs_match(committed, rerun)


def _notebook(path: Path, committed_output: str) -> None:
    cell = {
        "cell_type": "code",
        "execution_count": 1,
        "id": "c1",
        "metadata": {},
        "source": ["print(f'roc_auc {0.7128:.4f}')"],
        "outputs": [{"name": "stdout", "output_type": "stream", "text": [committed_output]}],
    }
    nb = {
        "cells": [cell],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb))


def _nbval(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "mlsys.nbcompare", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env"]
    return subprocess.run([*command, "--rootdir", str(path.parent), str(path)], capture_output=True, text=True, cwd=path.parent, timeout=120)


def test_nbval_with_the_tolerance_passes_noise_and_fails_a_real_change(tmp_path: Path) -> None:
    noisy, changed = tmp_path / "noisy" / "nb.ipynb", tmp_path / "changed" / "nb.ipynb"
    for path, committed in ((noisy, "roc_auc 0.7126\n"), (changed, "roc_auc 0.7228\n")):
        path.parent.mkdir()
        _notebook(path, committed)
    passed, failed = _nbval(noisy), _nbval(changed)
    assert passed.returncode == 0, passed.stdout[-2000:]
    assert failed.returncode == 1 and "0.7228" in failed.stdout, failed.stdout[-2000:]
