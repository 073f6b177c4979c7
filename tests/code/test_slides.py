"""The instructor decks (`01-slides/`): their numbers, outcomes and figures come from the lessons, and they build.

Every decimal, thousands-separated or percentage figure on a slide or in its speaker notes must
appear verbatim in the text outputs of the deck's notebook (the same extraction as the notebooks'
prose check, `mlsys.prose`). The build test runs marp-cli from `node_modules/` and needs a Chromium
for the PDF: with CI set, a missing marp or Chromium fails the test; elsewhere it skips with a
message saying how to get one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlsys import slides
from mlsys.config import in_ci
from mlsys.course import notebooks

DECKS = slides.decks()
EXTERNAL = re.compile(r"""(?:\bsrc|\bhref)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?(?:url\()?\s*["']?(?:https?:)?//""", re.I)


def test_deck_figures_finds_claims_not_sizes() -> None:
    deck = "---\nmarp: true\nsize: 16:9\n---\n# A 1.5 h talk\n![bg right:40% w:0.5](figures/01-x.png)\nROC AUC 0.764, 87 % of 336,776 (16.1 %), `p=0.25`\n<!-- note: 12.5 -->"
    assert slides.deck_figures(deck) == ["1.5", "0.764", "336,776", "16.1", "12.5", "87%"]


def test_a_percentage_must_be_shown_as_one() -> None:
    assert slides.figure_shown("87%", "share 87 % of flights") and slides.figure_shown("87%", "(87%)")
    assert not slides.figure_shown("87%", "187% growth") and not slides.figure_shown("87%", "0.87")


def test_learning_outcomes_are_read_with_their_continuation_lines() -> None:
    cell = "**Learning outcomes.** You will:\n\n* tell one thing\n  from another;\n* log a run.\n\nNext: more text.\n- not an outcome"
    assert slides.learning_outcomes(cell) == ["tell one thing from another;", "log a run."]


def test_there_is_a_deck_per_executed_lesson() -> None:
    # a notebook committed before its first run has no outputs to quote or plot yet
    executed = [nb for nb in notebooks() if any(c.get("outputs") for c in slides.read_notebook(nb)["cells"])]
    missing = [nb.stem for nb in executed if not (slides.slides_dir() / f"{nb.stem}.md").is_file()]
    assert not missing, f"lessons without a deck in 01-slides/ (start one with python -m mlsys.slides new NN_name): {missing}"


@pytest.mark.parametrize("deck", DECKS, ids=lambda p: p.stem)
def test_every_number_in_a_deck_is_a_lesson_output(deck: Path) -> None:
    missing = slides.unsupported_figures(deck)
    assert not missing, f"{deck.name} quotes figures that {slides.notebook_for(deck).name}'s outputs do not show: {missing}"


@pytest.mark.parametrize("deck", DECKS, ids=lambda p: p.stem)
def test_a_deck_carries_its_lessons_outcomes_notes_and_theme(deck: Path) -> None:
    text = deck.read_text(encoding="utf-8")
    assert slides.learning_outcomes(text) == slides.lesson_outcomes(slides.notebook_for(deck)), f"{deck.name}: learning outcomes differ from the notebook's first cell"
    front = yaml.safe_load(slides.FRONT_MATTER.match(text).group(0).strip("-\n"))
    assert front["marp"] is True and front["theme"] == "mlsys"
    n_slides = len(re.findall(r"^---$", slides.FRONT_MATTER.sub("", text), flags=re.M)) + 1
    assert len(slides.speaker_notes(text)) >= n_slides // 2, f"{deck.name}: fewer speaker notes than half its {n_slides} slides"
    assert f"solutions/{deck.stem}.py" in text and f"tests/solutions/test_{deck.stem}.py" in text, f"{deck.name}: say where the answer keys are"


def test_every_figure_shown_is_exported_from_its_own_lesson(tmp_path: Path) -> None:
    specs = slides.figure_specs()
    exported = {p.name for p in slides.export_figures(tmp_path, specs)}
    assert all(p.stat().st_size > 1000 for p in tmp_path.iterdir())
    shown = {name: deck.stem for deck in DECKS for name in slides.figure_links(deck.read_text(encoding="utf-8"))}
    assert set(shown) <= exported, f"decks show figures that figures.yml does not export: {sorted(set(shown) - exported)}"
    assert exported <= set(shown), f"figures.yml exports figures no deck shows: {sorted(exported - set(shown))}"
    assert all(name.startswith(stem[:2]) for name, stem in shown.items()), "a deck shows another lesson's figure"


def test_a_figure_selector_must_name_exactly_one_cell() -> None:
    nb = {"cells": [{"cell_type": "code", "source": ["plt.plot(x)"], "metadata": {"tags": ["fig"]}}, {"cell_type": "code", "source": ["plt.plot(y)"]}]}
    assert slides.find_cell(nb, "plot(y)") == 1 and slides.find_cell(nb, "tag:fig") == 0
    with pytest.raises(ValueError, match="matches 2 code cells"):
        slides.find_cell(nb, "plt.plot")


def test_theme_has_no_external_resources() -> None:
    css = slides.theme_file().read_text(encoding="utf-8")
    assert "@theme mlsys" in css and not EXTERNAL.search(css)


def _require_marp() -> None:
    try:
        slides.marp_bin()
    except FileNotFoundError as err:
        if in_ci():
            pytest.fail(str(err))
        pytest.skip(str(err))


def test_build_makes_self_contained_html_for_every_deck_and_pdf_with_a_chromium(tmp_path: Path) -> None:
    _require_marp()
    chromium = slides.find_chromium()
    if chromium is None and in_ci():
        pytest.fail(f"CI must build the PDF slides. {slides.CHROMIUM_HINT}")
    result = slides.build(tmp_path / "slides", pdf="always" if chromium else "never", figures_dir=tmp_path / "figures")
    assert [p.name for p in result.html] == [f"{d.stem}.html" for d in DECKS]
    for deck, page in zip(DECKS, result.html, strict=True):
        html = page.read_text(encoding="utf-8")
        assert not EXTERNAL.search(html), f"{page.name} loads something from the network: {EXTERNAL.search(html).group(0)}"
        assert html.count("data:image/png;base64,") >= len(slides.figure_links(deck.read_text(encoding="utf-8")))
        assert "figures/" not in html, f"{page.name} refers to a figure file instead of embedding it"
    assert (tmp_path / "slides" / "index.html").is_file()
    if chromium is None:
        pytest.skip(f"HTML built; PDF not checked. {slides.CHROMIUM_HINT}")
    assert [p.name for p in result.pdf] == [f"{d.stem}.pdf" for d in DECKS]
    assert all(p.read_bytes()[:5] == b"%PDF-" and p.stat().st_size > 20_000 for p in result.pdf)


def test_without_a_chromium_the_build_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slides, "CHROMIUM_FALLBACKS", ())
    nowhere = {"PATH": str(tmp_path)}
    assert slides.find_chromium(nowhere) is None
    with pytest.raises(FileNotFoundError, match="apt-get install"):
        slides.find_chromium({"CHROME_PATH": str(tmp_path / "nothing"), **nowhere})
    with pytest.raises(FileNotFoundError, match="apt-get install"):
        slides.build(tmp_path / "ci", only=["00"], environ={"CI": "true", **nowhere}, figures_dir=tmp_path / "figures")
    _require_marp()
    result = slides.build(tmp_path / "laptop", only=["00"], environ=nowhere, figures_dir=tmp_path / "figures")
    assert [p.name for p in result.html] == ["00_setup.html"] and not result.pdf
    assert "apt-get install" in result.pdf_skipped and "CHROME_PATH" in result.pdf_skipped


def test_a_new_deck_starts_with_its_lessons_outcomes_and_answer_keys() -> None:
    notebook = notebooks()[0]
    deck = slides.scaffold(notebook)
    assert slides.learning_outcomes(deck) == slides.lesson_outcomes(notebook) != []
    assert f"solutions/{notebook.stem}.py" in deck and "theme: mlsys" in deck and slides.deck_figures(deck) == []
