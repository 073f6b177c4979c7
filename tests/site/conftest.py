"""The course website, built once per test session (`make site`'s build, about 40 s on 2 cores).

- `built_site`: runs `mlsys.site.build.build_site()` (stage, `mkdocs build --strict`, offline
  check) into build/site/, after building the decks' HTML into build/slides/ if none is there,
  so the site carries at least one deck.
- `chromium`: the path of a local Chromium for playwright, found as the PDF slides find theirs
  (`mlsys.slides.find_chromium`: `CHROME_PATH`, else a known name on PATH, else Debian's or
  macOS's install location). playwright's own browser download is never used.

The site needs `npm ci` (MathJax and marp-cli from package-lock.json); the browser check needs a
Chromium. Either missing fails the tests when CI is set and skips them otherwise, saying how to
get it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlsys.config import in_ci, repo_root
from mlsys.site.build import SiteReport, build_site
from mlsys.site.stage import default_layout
from mlsys.slides import find_chromium

ROOT = repo_root()
SCREENSHOTS = ROOT / "build" / "artifacts" / "screenshots"
CHROMIUM_HOWTO = (
    "install one (Debian/Ubuntu: sudo apt-get install -y --no-install-recommends chromium; "
    "macOS: brew install --cask chromium) or set CHROME_PATH to a Chromium/Chrome executable"
)
NPM_HOWTO = "run `make site` once (it runs npm ci from package-lock.json; needs Node.js 20+ and npm)"


def missing(what: str, how: str) -> None:
    """Fail in CI, skip elsewhere, saying how to get what is missing."""
    if in_ci():
        pytest.fail(f"{what} is required in CI: {how}")
    pytest.skip(f"{what}: {how}")


def ensure_decks() -> None:
    """Build the decks' HTML into build/slides/ (no PDF) when none is there."""
    slides = default_layout().slides
    if any(slides.glob("[0-9][0-9]_*.html")) or not any((ROOT / "01-slides").glob("[0-9][0-9]_*.md")):
        return
    marp = ROOT / "node_modules" / ".bin" / "marp"
    if not marp.exists():
        missing("marp-cli (node_modules/.bin/marp)", NPM_HOWTO)
    cmd = [sys.executable, "-m", "mlsys.slides", "build", "--pdf", "never"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"building the decks failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def built_site() -> SiteReport:
    if not (default_layout().mathjax / "tex-chtml.js").is_file():
        missing("MathJax (node_modules/mathjax)", NPM_HOWTO)
    ensure_decks()
    return build_site()


@pytest.fixture(scope="session")
def chromium() -> str:
    try:
        path = find_chromium()
    except FileNotFoundError:  # CHROME_PATH names something that is not an executable file
        missing(f"a Chromium for the browser check (CHROME_PATH={os.environ.get('CHROME_PATH')} is not an executable file)", CHROMIUM_HOWTO)
    if path is None:
        missing("a Chromium for the browser check (no Chromium found)", CHROMIUM_HOWTO)
    return path


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
