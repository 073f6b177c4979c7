"""Staging the site's pages and the offline scan, on a small repository made in a temp dir (no mkdocs run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlsys.site.offline import external_references, html_references, is_external
from mlsys.site.stage import Layout, nav, rewrite_links, stage


def notebook(markdown: str, title: str = "# 01 · Framing") -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [title + "\n", markdown]}]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture()
def repo(tmp_path: Path) -> Layout:
    files = {
        "README.md": "# Course\n[lesson](02-notebooks/01_framing.ipynb) [data](03-data/README.md) "
        "[guide](CONTRIBUTING.md) [code](05-src/mlsys/data.py) [gone](nowhere.md) [web](https://example.org)\n"
        "```bash\n[not a link](05-src/mlsys/data.py)\n```\n",
        "CONTRIBUTING.md": "# Contributing\n[home](README.md)\n",
        "02-notebooks/01_framing.ipynb": notebook("[data card](../03-data/README.md#tables) [module](../05-src/mlsys/data.py)"),
        "03-data/README.md": "# Data card\n![plot](figure.png) [home](../README.md)\n",
        "03-data/figure.png": "png",
        "01-slides/README.md": "# Slides\n[deck 01](01_framing.md) [deck 02](02_data.md)\n",
        "01-slides/01_framing.md": "---\nmarp: true\n---\n# Framing the problem\n",
        "01-slides/02_data.md": "# Data\n",
        "05-src/mlsys/data.py": "",
        "build/slides/01_framing.html": "<html></html>",
        "node_modules/mathjax/es5/tex-chtml.js": "// mathjax",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return Layout(root=tmp_path, docs=tmp_path / "build" / "site-docs", slides=tmp_path / "build" / "slides", mathjax=tmp_path / "node_modules" / "mathjax" / "es5")


def test_stage_follows_links_and_keeps_the_repository_layout(repo: Layout) -> None:
    pages = stage(repo)
    assert pages == ["01-slides/README.md", "02-notebooks/01_framing.ipynb", "03-data/README.md", "CONTRIBUTING.md", "index.md"]
    index = (repo.docs / "index.md").read_text()
    assert "[lesson](02-notebooks/01_framing.ipynb)" in index and "[guide](CONTRIBUTING.md)" in index
    assert " code " in index  # a module cannot be served: its link becomes text
    assert "[gone](nowhere.md)" in index  # a broken link is left for mkdocs --strict to report
    assert "[web](https://example.org)" in index
    assert "[not a link](05-src/mlsys/data.py)" in index  # code blocks are not touched
    assert "[home](index.md)" in (repo.docs / "CONTRIBUTING.md").read_text()
    card = (repo.docs / "03-data" / "README.md").read_text()
    assert "[home](../index.md)" in card and (repo.docs / "03-data" / "figure.png").is_file()


def test_notebook_links_are_rewritten_in_the_staged_copy_only(repo: Layout) -> None:
    stage(repo)
    staged = json.loads((repo.docs / "02-notebooks" / "01_framing.ipynb").read_text())
    source = "".join(staged["cells"][0]["source"])
    assert "[data card](../03-data/README.md#tables)" in source
    assert "[module]" not in source and "module" in source
    assert "[module](../05-src" in (repo.root / "02-notebooks" / "01_framing.ipynb").read_text()


def test_built_decks_are_linked_and_unbuilt_ones_are_text(repo: Layout) -> None:
    stage(repo)
    slides = (repo.docs / "01-slides" / "README.md").read_text()
    assert "[deck 01](01_framing.html)" in slides
    assert "[deck 02]" not in slides and "deck 02" in slides
    assert "- Framing the problem: [HTML](01_framing.html)" in slides
    assert (repo.docs / "01-slides" / "01_framing.html").is_file()
    assert not (repo.docs / "01-slides" / "01_framing.md").exists()  # a deck source is not a page


def test_mathjax_is_copied_into_the_site_and_its_absence_is_explained(repo: Layout) -> None:
    stage(repo)
    assert (repo.docs / "assets" / "mathjax" / "tex-chtml.js").read_text() == "// mathjax"
    assert (repo.docs / "assets" / "javascripts" / "mathjax-config.js").is_file()
    (repo.mathjax / "tex-chtml.js").unlink()
    with pytest.raises(FileNotFoundError, match="npm ci"):
        stage(repo)


def test_nav_lists_the_lessons_in_course_order_with_their_titles(repo: Layout) -> None:
    stage(repo)
    (repo.docs / "02-notebooks" / "00_setup.ipynb").write_text(notebook("", title="# 00 · Setup"))
    entries = nav(repo.docs)
    assert [next(iter(e)) for e in entries] == ["Home", "Lessons", "Data card", "Slides"]
    assert entries[1]["Lessons"] == [{"00 · Setup": "02-notebooks/00_setup.ipynb"}, {"01 · Framing": "02-notebooks/01_framing.ipynb"}]


def test_rewrite_links_maps_the_readme_to_the_home_page() -> None:
    text = rewrite_links("[up](../README.md#lessons) ![x](img.png)", "03-data/README.md", lambda p: "index.md" if p == "README.md" else None)
    assert text == "[up](../index.md#lessons) ![x](img.png)"


@pytest.mark.parametrize(
    ("url", "external"),
    [
        ("https://cdnjs.cloudflare.com/x.js", True),
        ("//fonts.googleapis.com/css", True),
        ("http://127.0.0.1:8000/x", False),
        ("http://localhost/x", False),
        ("assets/mathjax/tex-chtml.js", False),
        ("data:image/png;base64,AAAA", False),
    ],
)
def test_is_external(url: str, external: bool) -> None:
    assert is_external(url) is external


def test_offline_scan_reports_loads_not_links(tmp_path: Path) -> None:
    page = (
        '<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"></script>'
        '<img src="data:image/png;base64,AAAA"><a href="https://pypi.org/">PyPI</a>'
        "<style>@import 'https://example.org/a.css';</style>"
    )
    assert [u for _, u in html_references(page)][-1] == "https://example.org/a.css"
    (tmp_path / "index.html").write_text(page)
    (tmp_path / "site.css").write_text("a{background:url(https://example.org/b.png)} b{background:url('data:image/svg+xml;http://www.w3.org')}")
    found = sorted(ref.url for ref in external_references(tmp_path))
    assert found == [
        "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js",
        "https://example.org/a.css",
        "https://example.org/b.png",
        "https://fonts.googleapis.com/css?family=Roboto",
    ]
