"""Every figure a lesson's prose quotes is one of that lesson's own outputs.

Prose written before a re-run goes stale silently (lesson 02 said "a few hundred groups" beside an
output of 164). This test reads the committed notebooks: every number with a decimal point
(`0.764`, `16.1 %`) or a thousands separator (`336,776`) in a markdown cell must appear verbatim
in the text outputs (streams, `text/plain`, `text/html`) of the same notebook. Integers without a
separator (years, lesson numbers, "2 h") and round thousands (`20,000`: sample sizes and other
settings) are not checked, nor code spans, code blocks and links, which are code or addresses
rather than claims. A figure from outside (a published result, the
book) is printed by a cell with its source, so it is checked too. The extraction lives in
`mlsys.prose`, shared with the slide decks' check (`tests/code/test_slides.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsys.course import notebooks
from mlsys.prose import output_text, quoted_figures


def test_quoted_figures_finds_claims_not_code() -> None:
    text = "ROC AUC 0.764 on 325,819 rows (16.1 %) of 20,000, `threshold=0.5`, [link](https://x.org/1.2), Python 3.11.7, 2 h"
    assert quoted_figures(text) == ["0.764", "325,819", "16.1"]


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_every_quoted_figure_is_an_output(path: Path) -> None:
    nb = json.loads(path.read_text())
    shown = output_text(nb)
    missing = []
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            missing += [f"cell {index}: {figure}" for figure in quoted_figures("".join(cell["source"])) if figure not in shown]
    assert not missing, f"{path.name}: figures in the prose that no output shows: {missing}"
