"""The built course website (build/site/, made once per session by the `built_site` fixture).

Checked without a browser: a page per lesson with its plots embedded, the navigation, the decks,
every local file a page loads exists, nothing is loaded from another host, and the strict build
really fails on a broken link or anchor (on a small site of its own).
"""

from __future__ import annotations

import json
import posixpath
import re
from pathlib import Path

import pytest
import yaml

from mlsys.config import repo_root
from mlsys.site.build import SiteBuildError, check_offline, run_mkdocs
from mlsys.site.offline import html_references, is_external
from mlsys.site.stage import LESSON_GLOB, notebook_title

ROOT = repo_root()
LESSONS = sorted((ROOT / "02-notebooks").glob(LESSON_GLOB))
EMBEDDED_IMAGE = re.compile(r"<img[^>]+src=\"data:image/(?:png|jpeg)")


def image_outputs(notebook: Path) -> int:
    """How many PNG/JPEG outputs a notebook has committed (its plots)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum(
        1
        for cell in nb["cells"]
        if cell["cell_type"] == "code"
        for out in cell.get("outputs", [])
        if {"image/png", "image/jpeg"} & set(out.get("data", {}))
    )


def test_every_lesson_is_a_page_with_its_plots_embedded(built_site) -> None:
    assert LESSONS, "no lesson notebooks found"
    for notebook in LESSONS:
        page = built_site.site / "02-notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"no page for {notebook.name}"
        html = page.read_text(encoding="utf-8")
        assert notebook_title(notebook) in html
        # the plots of the notebook as it was staged (a lesson being edited may have changed since)
        staged = built_site.docs / "02-notebooks" / notebook.name
        assert len(EMBEDDED_IMAGE.findall(html)) == image_outputs(staged), notebook.name
        # the notebook itself is offered for download beside its page
        assert (page.parent / notebook.name).is_file()


def test_navigation_lists_every_lesson_in_course_order(built_site) -> None:
    home = (built_site.site / "index.html").read_text(encoding="utf-8")
    linked = re.findall(r'href="02-notebooks/([0-9]{2}_[^"/]+)\.html"', home)
    in_order = list(dict.fromkeys(linked))
    assert in_order == [nb.stem for nb in LESSONS]


TOC_LINK = re.compile(r'<a href="#(?P<id>[^"]+)" class="md-nav__link">(?P<body>.*?)</a>', re.DOTALL)
HEADING_TEXT = re.compile(r'<h[1-6] id="(?P<id>[^"]+)">(?P<body>.*?)</h[1-6]>', re.DOTALL)


def plain(fragment: str) -> str:
    """A fragment's text: tags, the heading's pilcrow link and runs of white space removed."""
    fragment = re.sub(r'<a class="anchor-link".*?</a>', "", fragment, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", fragment).split()).replace(" ¶", "")


def test_every_table_of_contents_entry_leads_to_its_heading(built_site) -> None:
    """Each entry of a lesson's table of contents names a heading of the page, inline code included."""
    checked = 0
    for notebook in LESSONS:
        html = (built_site.site / "02-notebooks" / f"{notebook.stem}.html").read_text(encoding="utf-8")
        headings = {m["id"]: plain(m["body"]) for m in HEADING_TEXT.finditer(html)}
        for link in TOC_LINK.finditer(html):
            assert link["id"] in headings, f"{notebook.name}: the contents link #{link['id']} has no heading"
            assert plain(link["body"]) == headings[link["id"]], notebook.name
            checked += 1
    assert checked > len(LESSONS)
    # the heading that showed the defect: mkdocs-jupyter's own contents said "5 · One" (#5-one)
    lesson04 = (built_site.site / "02-notebooks" / "04_feature_engineering.html").read_text(encoding="utf-8")
    assert '<a href="#5-one-columntransformer" class="md-nav__link">' in lesson04


def test_no_page_loads_anything_from_another_host(built_site) -> None:
    assert check_offline(built_site.site) == []
    for page in built_site.site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        # what nbconvert's lab template would load from cdnjs (MathJax 2, mermaid, require.js)
        assert "cdnjs.cloudflare.com" not in html, page
        assert "fonts.googleapis.com" not in html, page


def test_every_local_file_a_page_loads_exists(built_site) -> None:
    site = built_site.site
    # 404.html addresses its assets from the server root (/assets/...), wherever it is served
    pages = [p for p in site.rglob("*.html") if p.name != "404.html" and (p.parent.name != "01-slides" or p.name == "index.html")]
    missing = []
    for page in pages:
        for what, url in html_references(page.read_text(encoding="utf-8")):
            if url.startswith(("data:", "#")) or is_external(url) or re.match(r"^[a-z]+:", url):
                continue
            target = posixpath.normpath(posixpath.join(page.parent.relative_to(site).as_posix(), url.split("#")[0].split("?")[0]))
            if not (site / target).is_file():
                missing.append(f"{page.relative_to(site)}: {what} {url}")
    assert missing == []
    # math without a CDN: every page loads the site's own MathJax 3
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'src="assets/mathjax/tex-chtml.js"' in home


def test_built_decks_are_on_the_site_and_linked_from_the_slides_page(built_site) -> None:
    decks = sorted((ROOT / "build" / "slides").glob("[0-9][0-9]_*.html"))
    if not decks:
        pytest.fail("no deck in build/slides: the built_site fixture builds them from 01-slides/NN_*.md")
    slides_page = (built_site.site / "01-slides" / "index.html").read_text(encoding="utf-8")
    for deck in decks:
        assert (built_site.site / "01-slides" / deck.name).is_file(), deck.name
        assert f'href="{deck.name}"' in slides_page, deck.name


def strict_config(tmp_path: Path) -> Path:
    """The course's mkdocs.yml, pointed at a small docs dir of its own under tmp_path."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    config["docs_dir"] = str(tmp_path / "docs")
    config["site_dir"] = str(tmp_path / "site")
    config["hooks"] = [str(ROOT / hook) for hook in config["hooks"]]
    config["extra_javascript"] = []
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocs-jupyter" in plugin:
            plugin["mkdocs-jupyter"]["cache"] = False
    path = tmp_path / "mkdocs.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_strict_build_fails_on_a_broken_link_or_anchor(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "02-notebooks").mkdir(parents=True)
    (docs / "index.md").write_text("# Home\n\n## Lessons\n\n[ok](#lessons) [a](missing.md) [b](#no-such-heading)\n")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# 01 · Lesson\n[c](nowhere.ipynb) [home](../index.md)"}]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (docs / "02-notebooks" / "01_lesson.ipynb").write_text(json.dumps(nb))
    with pytest.raises(SiteBuildError) as failed:
        run_mkdocs(ROOT, config=strict_config(tmp_path))
    message = str(failed.value)
    assert "missing.md" in message
    assert "no-such-heading" in message
    assert "nowhere.ipynb" in message  # the hook checks links inside notebooks
    assert "#lessons" not in message and "../index.md" not in message
