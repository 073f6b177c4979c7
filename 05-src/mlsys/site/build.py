"""Build the course website: stage the pages, `mkdocs build --strict`, then check it is offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlsys.site.offline import ExternalReference, external_references
from mlsys.site.stage import Layout, default_layout, stage


class SiteBuildError(RuntimeError):
    """mkdocs failed (a warning under --strict, a broken link) or a page loads from another host."""


@dataclass(frozen=True)
class SiteReport:
    """What a build produced and how long each step took."""

    site: Path
    docs: Path
    pages: list[str]
    stage_seconds: float
    mkdocs_seconds: float


def not_info(log: str) -> list[str]:
    """mkdocs' output without its INFO records (a record runs until the next line with a level)."""
    kept, level = [], ""
    for line in log.splitlines():
        head = line.split(" ", 1)[0]
        if head in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            level = head
        elif line and not line.startswith((" ", "\t")):
            level = ""  # a line of its own, such as "Aborted with 3 warnings in strict mode!"
        if level != "INFO" and line.strip():
            kept.append(line)
    return kept


def run_mkdocs(root: Path, config: Path | None = None) -> None:
    """`mkdocs build --strict` with the repository's mkdocs.yml, from the repository root."""
    config = config or root / "mkdocs.yml"
    # not --quiet: it raises mkdocs' log level above WARNING, so --strict would count no warning
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config)]
    # NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        problems = "\n".join(not_info(done.stdout + "\n" + done.stderr))
        raise SiteBuildError(f"mkdocs build --strict failed ({done.returncode}):\n{problems}")


def check_offline(site: Path) -> list[ExternalReference]:
    """Raise if any page of the built site loads something from another host."""
    found = external_references(site)
    if found:
        listed = "\n".join(f"  {ref}" for ref in found[:20])
        raise SiteBuildError(f"{len(found)} load(s) from other hosts in {site}:\n{listed}")
    return found


def build_site(layout: Layout | None = None, site: Path | None = None) -> SiteReport:
    """Stage, build strictly and check; `site` is where mkdocs.yml's site_dir points (build/site)."""
    layout = layout or default_layout()
    site = site or layout.root / "build" / "site"
    start = time.perf_counter()
    pages = stage(layout)
    staged = time.perf_counter()
    run_mkdocs(layout.root)
    built = time.perf_counter()
    check_offline(site)
    return SiteReport(site=site, docs=layout.docs, pages=pages, stage_seconds=staged - start, mkdocs_seconds=built - staged)
