"""Stage the course's pages into one docs directory for mkdocs (`build/site-docs/`).

The staged tree mirrors the repository (the README becomes `index.md`), so a relative link that
works on a code host works on the site. Links are followed from the README, the lessons, the
data card and the slides guide:

- a link to a Markdown page or a notebook stages that page as well (it is on the site);
- a link to an image copies it;
- a link to a deck (`01-slides/NN_name.md`) goes to its built HTML when `build/slides/` has it;
- a link to anything else that exists in the repository (a module, a directory, a deck not built
  yet) becomes its plain text, since a static site cannot serve it;
- a link to a path that does not exist is left as it is, so `mkdocs build --strict` (or, in a
  notebook, `mlsys.site.hooks`) reports it.

Notebooks are copied with their committed outputs; nothing is executed.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from mlsys.config import repo_root

LESSON_GLOB = "[0-9][0-9]_*.ipynb"
DECK_GLOB = "[0-9][0-9]_*"
PAGE_SUFFIXES = (".md", ".ipynb")
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
# tex-chtml.js loads its fonts and any extension on demand from beside itself
MATHJAX_PARTS = ("tex-chtml.js", "input", "output", "ui", "a11y", "sre")
ASSETS = Path(__file__).parent / "assets"

# [text](target "title") and ![alt](target); the target has no spaces or parentheses
_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Layout:
    """Where the site's inputs are and where the staged docs go."""

    root: Path
    docs: Path
    slides: Path
    mathjax: Path


def default_layout(root: Path | None = None) -> Layout:
    """The repository's layout: docs staged in build/site-docs, decks from build/slides."""
    root = (root or repo_root()).resolve()
    return Layout(
        root=root,
        docs=root / "build" / "site-docs",
        slides=root / "build" / "slides",
        mathjax=root / "node_modules" / "mathjax" / "es5",
    )


def site_path(repo_path: str) -> str:
    """Where a repository file lands in the docs dir (the root README is the home page)."""
    return "index.md" if repo_path == "README.md" else repo_path


def seed_pages(root: Path) -> list[str]:
    """The pages the site is built from, as repository paths, in nav order."""
    candidates = ["README.md", "02-notebooks/README.md"]
    candidates += [p.relative_to(root).as_posix() for p in sorted((root / "02-notebooks").glob(LESSON_GLOB))]
    candidates += ["03-data/README.md", "01-slides/README.md"]
    return [c for c in candidates if (root / c).is_file()]


def built_decks(layout: Layout) -> dict[str, list[Path]]:
    """Deck sources (`01-slides/NN_name.md`) whose built HTML is in build/slides, with HTML and PDF."""
    decks: dict[str, list[Path]] = {}
    for html in sorted(layout.slides.glob(f"{DECK_GLOB}.html")):
        outputs = [html] + [p for p in [html.with_suffix(".pdf")] if p.is_file()]
        decks[f"01-slides/{html.stem}.md"] = outputs
    return decks


def deck_title(source: Path) -> str:
    """A deck's first `# ` heading after its front matter, else its file name."""
    if source.is_file():
        for line in source.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return source.stem


def _split_target(target: str) -> tuple[str, str]:
    """'a/b.md#x' -> ('a/b.md', '#x'); a query string stays with the suffix."""
    for sep in ("#", "?"):
        if sep in target:
            head, tail = target.split(sep, 1)
            return head, sep + tail
    return target, ""


def rewrite_links(text: str, source: str, resolve: Callable[[str], str | None]) -> str:
    """Rewrite the relative links of a Markdown text found at repository path `source`.

    `resolve(repo_path)` answers the staged path to link to, "" to drop the link and keep its
    text, or None to leave the link alone. Fenced code blocks are left as they are.
    """
    parts = _FENCE.split(text)
    # _FENCE.split keeps the fence markers: [prose, fence, code..., fence, prose, ...]
    out, inside = [], False
    i = 0
    while i < len(parts):
        chunk = parts[i]
        if i % 2 == 1:  # a fence marker toggles code
            inside = not inside
            out.append(chunk)
        elif inside:
            out.append(chunk)
        else:
            out.append(_LINK.sub(lambda m: _rewrite_one(m, source, resolve), chunk))
        i += 1
    return "".join(out)


def _rewrite_one(match: re.Match[str], source: str, resolve: Callable[[str], str | None]) -> str:
    target = match.group("target")
    if target.startswith(("#", "/")) or _SCHEME.match(target):
        return match.group(0)
    path, suffix = _split_target(target)
    repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(path)))
    if repo_path.startswith(".."):
        return match.group(0)
    staged = resolve(repo_path)
    if staged is None:
        return match.group(0)
    if staged == "":
        return match.group("text")
    here = posixpath.dirname(site_path(source)) or "."
    new = posixpath.relpath(staged, here) + suffix
    return f"{match.group('bang')}[{match.group('text')}]({new}{match.group('title') or ''})"


class _Stager:
    """Copies pages into the docs dir, following their links (see the module docstring)."""

    def __init__(self, layout: Layout, decks: dict[str, list[Path]]):
        self.layout = layout
        self.decks = decks
        self.staged: dict[str, str] = {}
        self.queue: list[str] = []

    def resolve(self, repo_path: str) -> str | None:
        root = self.layout.root
        if repo_path in self.decks:
            return repo_path[: -len(".md")] + ".html"
        full = root / repo_path
        if full.is_dir() and (full / "README.md").is_file():
            repo_path, full = f"{repo_path}/README.md", full / "README.md"
        if not full.exists():
            return None
        if full.is_file() and full.suffix in PAGE_SUFFIXES and not self._is_deck_source(repo_path):
            if repo_path not in self.staged:
                self.queue.append(repo_path)
            return site_path(repo_path)
        if full.is_file() and full.suffix.lower() in IMAGE_SUFFIXES:
            self.copy(full, repo_path)
            return repo_path
        return ""

    @staticmethod
    def _is_deck_source(repo_path: str) -> bool:
        return re.fullmatch(r"01-slides/[0-9]{2}_[^/]*\.md", repo_path) is not None

    def copy(self, source: Path, staged: str) -> None:
        target = self.layout.docs / staged
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def stage(self, repo_path: str) -> None:
        if repo_path in self.staged:
            return
        self.staged[repo_path] = site_path(repo_path)
        source = self.layout.root / repo_path
        target = self.layout.docs / site_path(repo_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ipynb":
            target.write_text(self._notebook(source, repo_path), encoding="utf-8")
        else:
            text = rewrite_links(source.read_text(encoding="utf-8"), repo_path, self.resolve)
            target.write_text(text, encoding="utf-8")

    def _notebook(self, source: Path, repo_path: str) -> str:
        nb = json.loads(source.read_text(encoding="utf-8"))
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "markdown":
                text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                cell["source"] = rewrite_links(text, repo_path, self.resolve)
        return json.dumps(nb, ensure_ascii=False, indent=1)

    def run(self, seeds: list[str]) -> None:
        self.queue.extend(seeds)
        while self.queue:
            self.stage(self.queue.pop(0))


def decks_section(layout: Layout, decks: dict[str, list[Path]]) -> str:
    """Markdown listing the built decks (HTML, PDF), or saying how to build them."""
    lines = ["", "## The decks on this site", ""]
    if not decks:
        lines.append("No deck was built when this site was: run `make slides`, then `make site`.")
    for source, outputs in decks.items():
        title = deck_title(layout.root / source)
        links = ", ".join(f"[{p.suffix[1:].upper()}]({p.name})" for p in outputs)
        lines.append(f"- {title}: {links}")
    return "\n".join(lines) + "\n"


def copy_mathjax(layout: Layout) -> None:
    """Copy MathJax 3 (the npm package's es5 build) into the site: math with no CDN."""
    if not (layout.mathjax / "tex-chtml.js").is_file():
        raise FileNotFoundError(
            f"{layout.mathjax / 'tex-chtml.js'} is missing: run `npm ci` (or `make site`, which runs it)"
        )
    target = layout.docs / "assets" / "mathjax"
    for part in MATHJAX_PARTS:
        source = layout.mathjax / part
        if source.is_dir():
            shutil.copytree(source, target / part)
        elif source.is_file():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / part)
    shutil.copytree(ASSETS, layout.docs / "assets", dirs_exist_ok=True)


def stage(layout: Layout | None = None) -> list[str]:
    """Stage every page of the site into `layout.docs` (emptied first); return the staged pages."""
    layout = layout or default_layout()
    if layout.docs.exists():
        shutil.rmtree(layout.docs)
    layout.docs.mkdir(parents=True)
    decks = built_decks(layout)
    stager = _Stager(layout, decks)
    stager.run(seed_pages(layout.root))
    for outputs in decks.values():
        for output in outputs:
            stager.copy(output, f"01-slides/{output.name}")
    slides_page = layout.docs / "01-slides" / "README.md"
    if slides_page.is_file():
        with slides_page.open("a", encoding="utf-8") as fh:
            fh.write(decks_section(layout, decks))
    copy_mathjax(layout)
    return sorted(stager.staged.values())


def notebook_title(path: Path) -> str:
    """A notebook's first level-1 heading (`# 04 · Feature engineering`), else its file name."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for line in text.splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return path.stem


def nav(docs: Path) -> list[dict[str, object]]:
    """The site's navigation, from the pages staged in `docs` (lessons in course order)."""
    lessons: list[dict[str, str]] = []
    if (docs / "02-notebooks" / "README.md").is_file():
        lessons.append({"Overview": "02-notebooks/README.md"})
    for nb in sorted((docs / "02-notebooks").glob(LESSON_GLOB)):
        lessons.append({notebook_title(nb): f"02-notebooks/{nb.name}"})
    entries: list[tuple[str, object, bool]] = [
        ("Home", "index.md", (docs / "index.md").is_file()),
        ("Lessons", lessons, bool(lessons)),
        ("Data card", "03-data/README.md", (docs / "03-data" / "README.md").is_file()),
        ("Slides", "01-slides/README.md", (docs / "01-slides" / "README.md").is_file()),
    ]
    return [{title: target} for title, target, present in entries if present]
