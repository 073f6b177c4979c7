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
    pages: list[str]
    stage_seconds: float
    mkdocs_seconds: float


def run_mkdocs(root: Path, config: Path | None = None) -> None:
    """`mkdocs build --strict` with the repository's mkdocs.yml, from the repository root."""
    config = config or root / "mkdocs.yml"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--config-file", str(config)]
    # NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SiteBuildError(f"mkdocs build --strict failed ({done.returncode}):\n{done.stdout}{done.stderr}")


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
    return SiteReport(site=site, pages=pages, stage_seconds=staged - start, mkdocs_seconds=built - staged)
