"""Build the course website into build/site/ (what `make site` runs).

    python -m mlsys.site            # stage build/site-docs/, mkdocs build --strict, offline check
    python -m mlsys.site check      # only the offline check of an existing build/site/
"""

from __future__ import annotations

import argparse
import sys

from mlsys.config import repo_root
from mlsys.site.build import SiteBuildError, build_site, check_offline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.site", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["build", "check"], default="build")
    args = parser.parse_args(argv)
    site = repo_root() / "build" / "site"
    try:
        if args.command == "check":
            check_offline(site)
            print(f"site: nothing in {site.relative_to(repo_root())} loads from another host")
            return 0
        report = build_site()
    except (SiteBuildError, FileNotFoundError) as exc:
        print(f"site: {exc}", file=sys.stderr)
        return 1
    lessons = sum(page.endswith(".ipynb") for page in report.pages)
    print(
        f"site: {len(report.pages)} pages ({lessons} notebooks) staged in {report.stage_seconds:.1f} s, "
        f"mkdocs build --strict in {report.mkdocs_seconds:.1f} s; nothing loads from another host\n"
        f"site: open build/site/index.html (search needs a server: "
        f"python -m http.server --directory build/site --bind 127.0.0.1 8001)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
