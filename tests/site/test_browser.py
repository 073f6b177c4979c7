"""The built site and its decks in headless Chromium (playwright driving a local Chromium).

The site is served by a `http.server` on 127.0.0.1 (search needs a server). Every request that
goes anywhere else is aborted and recorded. For every page: no console error, no uncaught
exception, no request off the machine; for every lesson: each committed plot is an image the
browser decoded (natural width > 0); MathJax 3 typesets from the site's own copy. Screenshots go
to build/artifacts/screenshots/ (CI keeps build/artifacts/).

Needs a Chromium: CHROME_PATH, else `chromium` on PATH (`apt-get install chromium`). In CI a
missing one fails the test; elsewhere it is skipped with that advice. playwright's own browser
download (`playwright install`) is never used.
"""

from __future__ import annotations

import functools
import json
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from playwright import sync_api as playwright_api

from mlsys.config import repo_root
from mlsys.site.stage import LESSON_GLOB

ROOT = repo_root()
LESSONS = sorted((ROOT / "02-notebooks").glob(LESSON_GLOB))
OTHER_PAGES = ["index.html", "02-notebooks/index.html", "03-data/index.html", "01-slides/index.html"]
VIEWPORT = {"width": 1280, "height": 900}
LOCAL_SCHEMES = ("data", "blob", "about")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def site_url(built_site) -> Iterator[str]:
    """The built site over HTTP on a free loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(built_site.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@dataclass
class Traffic:
    """What the pages did that they should not: errors and requests off the machine."""

    base: str
    errors: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base) or urlsplit(url).scheme in LOCAL_SCHEMES:
            route.continue_()
        else:
            self.left.append(url)
            route.abort()

    def clear(self) -> tuple[list[str], list[str]]:
        seen = (self.errors[:], self.left[:])
        self.errors.clear()
        self.left.clear()
        return seen


@pytest.fixture(scope="module")
def browser_page(chromium: str, site_url: str):
    """One headless Chromium tab for the module, with request interception and error capture."""
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        context = browser.new_context(viewport=VIEWPORT)
        traffic = Traffic(site_url)
        context.route("**/*", traffic.route)
        page = context.new_page()
        page.on("console", lambda msg: traffic.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: traffic.errors.append(f"uncaught: {exc}"))
        page.on("requestfailed", lambda req: traffic.errors.append(f"failed: {req.url} ({req.failure})") if req.url.startswith(site_url) else None)
        yield page, traffic
        context.close()
        browser.close()


def open_page(browser_page, site_url: str, path: str):
    page, traffic = browser_page
    traffic.clear()
    response = page.goto(site_url + path, wait_until="load")
    assert response is not None and response.ok, f"{path}: HTTP {response.status if response else 'no response'}"
    # MathJax typesets after load; wait for it so its errors and requests count
    page.evaluate("() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null")
    page.wait_for_load_state("networkidle")
    return page, traffic


def assert_clean(traffic: Traffic, path: str) -> None:
    errors, left = traffic.clear()
    assert left == [], f"{path} requested other hosts: {left}"
    assert errors == [], f"{path}: {errors}"


def plot_count(notebook: Path) -> int:
    """How many PNG/JPEG outputs (plots) the committed notebook holds."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum(1 for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if {"image/png", "image/jpeg"} & set(o.get("data", {})))


@pytest.mark.parametrize("notebook", LESSONS, ids=[nb.stem for nb in LESSONS])
def test_lesson_page_renders_with_its_plots(browser_page, site_url: str, screenshots: Path, built_site, notebook: Path) -> None:
    path = f"02-notebooks/{notebook.stem}.html"
    page, traffic = open_page(browser_page, site_url, path)
    assert page.locator(".jupyter-wrapper .jp-Cell").count() > 0, f"{path}: no notebook cells rendered"
    images = page.evaluate(
        """async () => {
            const imgs = Array.from(document.querySelectorAll('.jupyter-wrapper .jp-OutputArea-output img'));
            await Promise.all(imgs.map(img => img.decode().catch(() => null)));
            return imgs.map(img => img.naturalWidth);
        }"""
    )
    # the plots of the notebook as it was staged (a lesson being edited may have changed since)
    plots = plot_count(built_site.docs / "02-notebooks" / notebook.name)
    assert len(images) == plots, f"{path}: {len(images)} images for {plots} plots"
    assert all(width > 0 for width in images), f"{path}: an image did not decode: {images}"
    page.screenshot(path=str(screenshots / f"site-{notebook.stem}.png"))
    if images:  # the cell of the first plot, code and figure (an element shot: no sticky header)
        cell = page.locator(".jupyter-wrapper .jp-Cell:has(.jp-OutputArea-output img)").first
        cell.screenshot(path=str(screenshots / f"site-{notebook.stem}-first-plot.png"))
    assert_clean(traffic, path)


@pytest.mark.parametrize("path", OTHER_PAGES)
def test_other_pages_render(browser_page, site_url: str, screenshots: Path, path: str) -> None:
    page, traffic = open_page(browser_page, site_url, path)
    assert page.locator("article h1").count() >= 1, f"{path}: no heading rendered"
    page.screenshot(path=str(screenshots / f"site-{path.replace('/', '-').removesuffix('.html')}.png"))
    assert_clean(traffic, path)


def test_math_typesets_from_the_local_mathjax(browser_page, site_url: str) -> None:
    page, traffic = open_page(browser_page, site_url, "index.html")
    assert page.evaluate("() => MathJax.version").startswith("3.")
    # typeset a formula on the page: its fonts load from assets/mathjax/, nothing else
    widths = page.evaluate(
        r"""async () => {
            const box = document.createElement('div');
            box.className = 'arithmatex';
            box.textContent = '\\[\\text{cost} = 100\\,\\mathrm{FP} + 300\\,\\mathrm{FN}\\]';
            document.querySelector('article').prepend(box);
            await MathJax.typesetPromise([box]);
            await document.fonts.ready;
            return Array.from(box.querySelectorAll('mjx-container')).map(el => el.getBoundingClientRect().width);
        }"""
    )
    assert widths and widths[0] > 0
    assert_clean(traffic, "index.html (math)")


def test_the_decks_render(browser_page, site_url: str, screenshots: Path, built_site) -> None:
    decks = sorted((built_site.site / "01-slides").glob("[0-9][0-9]_*.html"))
    assert decks, "no deck on the site (build/slides/ is empty)"
    for deck in decks:
        path = f"01-slides/{deck.name}"
        page, traffic = open_page(browser_page, site_url, path)
        slides = page.locator("section").count()
        assert slides >= 2, f"{path}: {slides} slides"
        images = page.evaluate(
            """async () => {
                const imgs = Array.from(document.querySelectorAll('section img'));
                await Promise.all(imgs.map(img => img.decode().catch(() => null)));
                return imgs.map(img => img.naturalWidth);
            }"""
        )
        assert all(width > 0 for width in images), f"{path}: a figure did not decode: {images}"
        # a slide's content taller than the slide is clipped in the room: the last lines or a plot's
        # axis vanish (a slide of lesson 09 once lost half its figure this way)
        overflowing = page.evaluate(
            """() => Array.from(document.querySelectorAll('section'))
                .map(s => [Number(s.id) || s.id, s.scrollHeight - s.clientHeight, (s.querySelector('h1, h2') || {}).textContent])
                .filter(([, over]) => over > 1)"""
        )
        assert overflowing == [], f"{path}: slides whose content runs off the slide ([slide, pixels, title]): {overflowing}"
        page.screenshot(path=str(screenshots / f"deck-{deck.stem}.png"))
        assert_clean(traffic, path)
