"""The instructor decks: figures exported from the lessons' committed outputs, decks built with Marp.

    python -m mlsys.slides build                # figures, then HTML (+ PDF with a Chromium) in build/slides/
    python -m mlsys.slides build --pdf never    # HTML only
    python -m mlsys.slides export               # only the figures, into 01-slides/figures/
    python -m mlsys.slides check                # figures quoted in a deck that its notebook does not show
    python -m mlsys.slides new 08_monitoring    # a starting deck for a new lesson (outcomes copied)

Each deck `01-slides/NN_name.md` belongs to the notebook `02-notebooks/NN_name.ipynb`. Its plots
are not redrawn: `01-slides/figures.yml` names, for each figure, the notebook cell whose
`image/png` output it is (by a piece of the cell's source that occurs in no other cell, by
`tag:<cell tag>`, or by cell index), and `export` writes them to `01-slides/figures/` (git-ignored,
rebuilt by every `make slides`), where Marp's editor preview finds them too. `build` inlines every
figure as a data URI, so each HTML file is self-contained, and runs the marp-cli pinned in
`package-lock.json` (`node_modules/.bin/marp`) with the course theme `01-slides/theme/mlsys.css`.
PDF needs a Chromium: `CHROME_PATH`, else `chromium` (or `chromium-browser`, `google-chrome`) on
PATH or in /usr/bin.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlsys.config import in_ci, repo_root
from mlsys.prose import figure_shown, output_text, quoted_figures

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Debian's package, for a PATH that lacks /usr/bin; macOS installs apps outside PATH
CHROMIUM_FALLBACKS = (
    "/usr/bin/chromium",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
)
CHROMIUM_HINT = (
    "PDF slides need a Chromium. Install one (Debian/Ubuntu: `sudo apt-get install -y --no-install-recommends "
    "chromium`; macOS: `brew install --cask chromium`), or an npm-shipped one such as `@sparticuz/chromium`, "
    "and point CHROME_PATH at its executable if it is not on PATH as `chromium`."
)
MARP_HINT = "marp-cli is not installed: run `make slides` (it runs `npm ci` from package-lock.json; needs Node.js 20+ and npm)."
FIGURE_LINK = re.compile(r"\]\((figures/[^)\s]+\.png)\)")
FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def slides_dir() -> Path:
    return repo_root() / "01-slides"


def theme_file() -> Path:
    return slides_dir() / "theme" / "mlsys.css"


def decks(directory: Path | None = None) -> list[Path]:
    """The lesson decks in course order (`NN_name.md`)."""
    return sorted((directory or slides_dir()).glob("[0-9][0-9]_*.md"))


def notebook_for(deck: Path) -> Path:
    """The lesson notebook a deck belongs to: the same `NN_name` in `02-notebooks/`."""
    notebook = repo_root() / "02-notebooks" / f"{deck.stem}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"{deck.name}: no notebook {notebook.relative_to(repo_root())} for this deck (a deck is named after its lesson)")
    return notebook


def read_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureSpec:
    """One exported figure: `image` (0 = first) of the `cell` of lesson `lesson`, saved as `file`."""

    lesson: str
    name: str
    cell: str | int
    image: int = 0

    @property
    def file(self) -> str:
        return f"{self.lesson[:2]}-{self.name}.png"


def figure_specs(path: Path | None = None) -> list[FigureSpec]:
    """Read `01-slides/figures.yml`: {lesson stem: {figure name: {cell: ..., image: n}}}."""
    path = path or slides_dir() / "figures.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for lesson, figures in raw.items():
        for name, spec in (figures or {}).items():
            if not isinstance(spec, Mapping) or "cell" not in spec:
                raise ValueError(f"{path.name}: {lesson}.{name} needs a `cell` (source text, tag:<tag> or an index)")
            specs.append(FigureSpec(lesson, name, spec["cell"], int(spec.get("image", 0))))
    return specs


def find_cell(nb: Mapping, selector: str | int, where: str = "notebook") -> int:
    """Index of the one code cell `selector` names: an index, `tag:<tag>`, or text found in that cell's source only."""
    cells = nb["cells"]
    if isinstance(selector, int):
        if not 0 <= selector < len(cells):
            raise ValueError(f"{where}: no cell {selector} (it has {len(cells)})")
        return selector
    if selector.startswith("tag:"):
        tag = selector[4:]
        hits = [i for i, c in enumerate(cells) if tag in c.get("metadata", {}).get("tags", [])]
    else:
        hits = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and selector in "".join(c["source"])]
    if len(hits) != 1:
        raise ValueError(f"{where}: {selector!r} matches {len(hits)} code cells {hits}; it must name exactly one")
    return hits[0]


def cell_images(nb: Mapping, index: int) -> list[bytes]:
    """The PNG images among cell `index`'s outputs, in order."""
    images = []
    for out in nb["cells"][index].get("outputs", []):
        png = out.get("data", {}).get("image/png")
        if png:
            images.append(base64.b64decode("".join(png) if isinstance(png, list) else png))
    return images


def export_figure(spec: FigureSpec, out_dir: Path) -> Path:
    """Write one figure's PNG, exactly as the committed notebook holds it, to `out_dir / spec.file`."""
    notebook = repo_root() / "02-notebooks" / f"{spec.lesson}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(f"figures.yml names {spec.lesson}, but {notebook.relative_to(repo_root())} does not exist")
    nb = read_notebook(notebook)
    index = find_cell(nb, spec.cell, where=f"{notebook.name}, figure {spec.name}")
    images = cell_images(nb, index)
    if spec.image >= len(images):
        raise ValueError(f"{notebook.name}, figure {spec.name}: cell {index} has {len(images)} image(s), not image {spec.image}; re-run the notebook with its outputs?")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / spec.file
    target.write_bytes(images[spec.image])
    return target


def export_figures(out_dir: Path | None = None, specs: list[FigureSpec] | None = None) -> list[Path]:
    """Export every figure of `01-slides/figures.yml` (default target: `01-slides/figures/`)."""
    out_dir = out_dir or slides_dir() / "figures"
    return [export_figure(spec, out_dir) for spec in (specs if specs is not None else figure_specs())]


def embed_figures(markdown: str, figures_dir: Path, where: str = "deck") -> str:
    """Replace every `](figures/x.png)` by a PNG data URI, so the rendered HTML needs no other file."""

    def inline(match: re.Match) -> str:
        path = figures_dir / Path(match.group(1)).name
        if not path.is_file():
            raise FileNotFoundError(f"{where}: {match.group(1)} was not exported; is it in 01-slides/figures.yml?")
        return "](data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii") + ")"

    return FIGURE_LINK.sub(inline, markdown)


def figure_links(markdown: str) -> list[str]:
    """The file names of the exported figures a deck shows."""
    return [Path(link).name for link in FIGURE_LINK.findall(markdown)]


# --- what a deck must carry from its lesson --------------------------------------------------------


def learning_outcomes(markdown: str) -> list[str]:
    """The bullets that follow "Learning outcomes" in a lesson's first cell or a deck, whitespace normalised."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if "Learning outcomes" in line), None)
    if start is None:
        return []
    items: list[str] = []
    for line in lines[start + 1 :]:
        bullet = re.match(r"\s*[*-]\s+(.*)", line)
        if bullet:
            items.append(bullet.group(1))
        elif items and line.startswith((" ", "\t")) and line.strip():
            items[-1] += " " + line.strip()
        elif items and (line.strip() or not items):
            break
    return [" ".join(item.split()) for item in items]


def lesson_intro(nb: Mapping) -> str:
    """A lesson's first markdown cell with a title (`# NN · ...`); papermill's error banner, if any, comes before it."""
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    titled = [c for c in cells if "".join(c["source"]).lstrip().startswith("# ")]
    return "".join((titled or cells)[0]["source"])


def lesson_outcomes(notebook: Path) -> list[str]:
    """The learning outcomes of a lesson, from its notebook's first cell."""
    return learning_outcomes(lesson_intro(read_notebook(notebook)))


def speaker_notes(markdown: str) -> list[str]:
    """The HTML comments of a deck that are presenter notes, not Marp directives (`<!-- _class: lead -->`)."""
    comments = re.findall(r"<!--(.*?)-->", FRONT_MATTER.sub("", markdown), flags=re.DOTALL)
    return [c.strip() for c in comments if c.strip() and not re.fullmatch(r"_?\w+\s*:.*", c.strip())]


def scaffold(notebook: Path) -> str:
    """A starting deck for a lesson: front matter, title slide, its outcomes verbatim, an exercises slide.

    The slides between are the author's: the figures that carry the lesson (add them to
    figures.yml), its key numbers (copied from its outputs) and speaker notes.
    """
    first = lesson_intro(read_notebook(notebook))
    title = next((line[2:].strip() for line in first.splitlines() if line.startswith("# ")), notebook.stem)
    short = title.split(":")[0]
    chapter = re.search(r"Huyen,\s+2022,\s+ch\.\s*([\d–-]+)", first)
    cite = f" · Huyen (2022), ch. {chapter.group(1)}" if chapter else ""
    outcomes = "\n".join(f"- {o}" for o in learning_outcomes(first))
    stem = notebook.stem
    return f"""---
marp: true
theme: mlsys
title: "{short}"
paginate: true
footer: "Designing ML Systems, the runnable course · {short.replace(' · ', ' ')}{cite}"
---

<!-- _class: lead -->
<!-- _paginate: false -->

# {title}

Notebook: `02-notebooks/{stem}.ipynb`{cite}

<!--
Speaker notes: what to say, what to ask the room.
-->

---

<!-- _class: small -->

## Learning outcomes

By the end of this lesson you will be able to:

{outcomes}

---

## Discussion and exercises

**Exercises** (solutions: `02-notebooks/solutions/{stem}.py`; checks: `tests/solutions/test_{stem}.py`).
"""


# --- the numbers on the slides ---------------------------------------------------------------------


def deck_figures(markdown: str) -> list[str]:
    """Numbers a deck quotes (slides and speaker notes): decimals, thousands, percentages."""
    return quoted_figures(FRONT_MATTER.sub("", markdown), percents=True)


def unsupported_figures(deck: Path, extra_sources: list[Path] = ()) -> list[str]:
    """Figures quoted in `deck` that appear neither in its notebook's outputs nor in `extra_sources`."""
    shown = output_text(read_notebook(notebook_for(deck)))
    shown += "\n".join(p.read_text(encoding="utf-8") for p in extra_sources)
    return [f for f in deck_figures(deck.read_text(encoding="utf-8")) if not figure_shown(f, shown)]


# --- building ---------------------------------------------------------------------------------------


def marp_bin() -> Path:
    marp = repo_root() / "node_modules" / ".bin" / "marp"
    if not marp.exists():
        raise FileNotFoundError(MARP_HINT)
    return marp


def find_chromium(environ: Mapping[str, str] | None = None) -> str | None:
    """A Chromium (PDF slides, the site's browser check): `CHROME_PATH`, else a known name on PATH, else a
    known install location; None if there is none. A `CHROME_PATH` that is not an executable raises."""
    environ = os.environ if environ is None else environ
    if environ.get("CHROME_PATH"):
        path = environ["CHROME_PATH"]
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"CHROME_PATH={path} is not an executable file. {CHROMIUM_HINT}")
        return path
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=environ.get("PATH", os.defpath))
        if found:
            return found
    return next((path for path in CHROMIUM_FALLBACKS if Path(path).is_file()), None)


@dataclass
class BuildResult:
    html: list[Path] = field(default_factory=list)
    pdf: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    pdf_skipped: str | None = None


def _run_marp(args: list[str], timeout: float) -> None:
    done = subprocess.run([str(marp_bin()), *args], capture_output=True, text=True, timeout=timeout, cwd=repo_root())
    if done.returncode != 0:
        raise RuntimeError(f"marp {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def render_sources(work: Path, figures_dir: Path, selected: list[Path]) -> list[Path]:
    """Each deck with its figures inlined, written to `work/` (Marp reads them there)."""
    work.mkdir(parents=True, exist_ok=True)
    rendered = []
    for deck in selected:
        target = work / deck.name
        target.write_text(embed_figures(deck.read_text(encoding="utf-8"), figures_dir, where=deck.name), encoding="utf-8")
        rendered.append(target)
    return rendered


def index_page(selected: list[Path], with_pdf: bool) -> str:
    """A plain HTML list of the decks, with their lesson titles, for the build folder and the site."""
    rows = []
    for deck in selected:
        title = next((line[2:].strip() for line in deck.read_text(encoding="utf-8").splitlines() if line.startswith("# ")), deck.stem)
        pdf = f' · <a href="{deck.stem}.pdf">PDF</a>' if with_pdf else ""
        rows.append(f'<li><a href="{deck.stem}.html">{html.escape(title)}</a>{pdf}</li>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Slides: Designing Machine Learning Systems</title></head>\n'
        "<body><h1>Slides</h1><p>One deck per lesson. In a deck: arrow keys to move, <kbd>p</kbd> for the presenter view "
        "with the speaker notes, <kbd>f</kbd> for full screen.</p>\n<ul>\n" + "\n".join(rows) + "\n</ul></body></html>\n"
    )


def build(
    out_dir: Path,
    pdf: str = "auto",
    only: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    figures_dir: Path | None = None,
) -> BuildResult:
    """Export the figures, then build every deck (or those starting with `only`) to HTML and, if possible, PDF.

    `pdf`: "auto" builds PDF when a Chromium is found (and fails without one when CI is set),
    "always" fails without one, "never" skips it. `figures_dir`: where the figures are exported
    (default `01-slides/figures/`, where an editor's Marp preview finds them).
    """
    environ = os.environ if environ is None else environ
    selected = [d for d in decks() if not only or any(d.name.startswith(p) for p in only)]
    if not selected:
        raise FileNotFoundError(f"no decks {only or ''} in {slides_dir()}")
    result = BuildResult()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    figures_dir = figures_dir or slides_dir() / "figures"
    export_figures(figures_dir)
    result.seconds["figures"] = time.perf_counter() - start

    chromium = None
    if pdf != "never":
        chromium = find_chromium(environ)
        if chromium is None:
            if pdf == "always" or in_ci(environ):
                raise FileNotFoundError(f"no Chromium found for the PDF slides. {CHROMIUM_HINT}")
            result.pdf_skipped = f"PDF skipped: no Chromium found. {CHROMIUM_HINT}"

    with tempfile.TemporaryDirectory(prefix="mlsys-slides-") as tmp:
        work = Path(tmp) / "decks"
        render_sources(work, figures_dir, selected)
        common = ["--no-config-file", "--theme-set", str(theme_file()), "--input-dir", str(work), "--output", str(out_dir)]
        start = time.perf_counter()
        _run_marp(common, timeout=300)
        result.seconds["html"] = time.perf_counter() - start
        result.html = [out_dir / f"{d.stem}.html" for d in selected]
        if chromium:
            start = time.perf_counter()
            env_args = ["--pdf", "--pdf-notes", "--pdf-outlines", "--browser-path", chromium, "--browser-timeout", "120"]
            _run_marp([*common, *env_args], timeout=900)
            result.seconds["pdf"] = time.perf_counter() - start
            result.pdf = [out_dir / f"{d.stem}.pdf" for d in selected]
    missing = [p for p in [*result.html, *result.pdf] if not p.is_file()]
    if missing:
        raise RuntimeError(f"marp reported success but did not write {[str(p) for p in missing]}")
    (out_dir / "index.html").write_text(index_page(selected, with_pdf=bool(result.pdf)), encoding="utf-8")
    return result


# --- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.slides", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("build", help="figures, then every deck to HTML (and PDF) in --out")
    run.add_argument("--out", type=Path, default=repo_root() / "build" / "slides")
    run.add_argument("--pdf", choices=["auto", "always", "never"], default="auto")
    run.add_argument("--only", nargs="*", help="deck name prefixes, e.g. 00 01")
    sub.add_parser("export", help="export the figures of figures.yml into 01-slides/figures/")
    sub.add_parser("check", help="list figures quoted in a deck that its notebook's outputs do not show")
    new = sub.add_parser("new", help="write a starting deck 01-slides/NN_name.md for a lesson notebook")
    new.add_argument("lesson", help="the notebook's stem, e.g. 08_monitoring")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.command == "new":
        target = slides_dir() / f"{args.lesson}.md"
        if target.exists():
            print(f"slides: {target.relative_to(root)} exists; not overwritten", file=sys.stderr)
            return 1
        target.write_text(scaffold(notebook_for(target)), encoding="utf-8")
        print(target.relative_to(root))
        return 0
    if args.command == "export":
        for path in export_figures():
            print(path.relative_to(root))
        return 0
    if args.command == "check":
        bad = {deck.name: unsupported_figures(deck) for deck in decks()}
        for name, figures in bad.items():
            print(f"{name}: {'ok' if not figures else 'not in the outputs: ' + ', '.join(figures)}")
        return 1 if any(bad.values()) else 0
    try:
        result = build(args.out, pdf=args.pdf, only=args.only)
    except (FileNotFoundError, RuntimeError, ValueError) as err:
        print(f"slides: {err}", file=sys.stderr)
        return 1
    out = args.out.resolve()
    shown = out.relative_to(root) if out.is_relative_to(root) else out
    print(f"{len(result.html)} decks -> {shown}/ (HTML{' and PDF' if result.pdf else ''}); open {shown}/index.html")
    print("seconds: " + ", ".join(f"{step} {s:.1f}" for step, s in result.seconds.items()))
    if result.pdf_skipped:
        print(result.pdf_skipped, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
