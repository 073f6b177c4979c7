"""Figures quoted in prose (a lesson's markdown, a slide deck) and the text a notebook's outputs show.

A figure written by hand goes stale silently when the notebook is re-run. The checks built on this
module (`tests/code/test_notebook_prose.py`, `tests/code/test_slides.py`) require every quoted
figure to appear verbatim in the text outputs of the lesson it talks about. What counts as a
figure: a number with a decimal point (`0.764`, `16.1 %`) or a thousands separator (`336,776`);
for slides also an integer percentage (`87 %`). Integers without a separator (years, lesson
numbers, "2 h") and round thousands (`20,000`: sample sizes and other settings) are not checked,
nor code spans, code blocks, links and images, which are code or addresses rather than claims.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

FIGURE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+)(?![\w]|[.,]\d)")
PERCENT = re.compile(r"(?<![\w.,])(\d+)\s?%")
NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|!\[[^\]]*\]\([^)]*\)|\]\([^)]*\)|https?://\S+", re.DOTALL)
ROUND_THOUSANDS = re.compile(r"\d{1,3}(,000)+")


def quoted_figures(markdown: str, percents: bool = False) -> list[str]:
    """Decimal and thousands-separated numbers in `markdown`, outside code, links and images, but round thousands.

    With `percents`, integer percentages are figures too, returned as `"87%"`.
    """
    prose = NOT_PROSE.sub(" ", markdown)
    found = [f for f in FIGURE.findall(prose) if not ROUND_THOUSANDS.fullmatch(f)]
    if percents:
        found += [f"{n}%" for n in PERCENT.findall(prose)]
    return found


def figure_shown(figure: str, text: str) -> bool:
    """Whether `figure` (as `quoted_figures` returns it) appears in `text`; `87%` matches `87%` and `87 %`."""
    if figure.endswith("%"):
        return re.search(rf"(?<![\w.,]){re.escape(figure[:-1])}\s?%", text) is not None
    return figure in text


def output_text(nb: Mapping) -> str:
    """Every text output of a notebook (parsed JSON): streams, `text/plain` and `text/html`, joined."""
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for key in ("text/plain", "text/html"):
                if key in out.get("data", {}):
                    parts.append("".join(out["data"][key]))
    return "\n".join(parts)
