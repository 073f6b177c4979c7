"""Write docker/mlflow.requirements.txt: what `mlflow server` needs, at uv.lock's versions, with hashes.

The app image installs the whole lock (`uv sync --frozen`). The tracking server needs only MLflow
and the PostgreSQL driver, so its image installs this file instead: `uv export` of the lock (exact
versions, sha256 hashes, environment markers), kept to the packages reachable from `mlflow` and
`psycopg[binary]` in the lock's dependency graph. Same versions as the notebooks, a third of the size.

    python docker/export_requirements.py           # rewrite the file after the lock changes
    python docker/export_requirements.py --check   # exit 1 if the file is not what the lock gives

tests/serve/test_docker.py runs the check. Needs uv (`make install` puts it in .tools/bin/).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "uv.lock"
OUTPUT = ROOT / "docker" / "mlflow.requirements.txt"
#: what the tracking server imports: the server itself, and the driver for its PostgreSQL backend
ROOTS = ("mlflow", "psycopg[binary]")
HEADER = """\
# What the `mlflow` service of docker/compose.yml installs: mlflow and psycopg[binary], and every
# package they depend on, at uv.lock's versions, with hashes (docker/mlflow.Dockerfile installs it
# with `uv pip install --require-hashes`). Generated, do not edit:
#     python docker/export_requirements.py
"""


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of `-_.` as one `-`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(lock: dict, roots: tuple[str, ...] = ROOTS) -> set[str]:
    """Names of the packages reachable from `roots` (`name` or `name[extra,...]`) in uv.lock's graph."""
    packages: dict[str, list[dict]] = {}
    for package in lock["package"]:
        packages.setdefault(normalize(package["name"]), []).append(package)
    seen: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = []
    for root in roots:
        match = re.fullmatch(r"([^\[]+)(?:\[(.+)\])?", root)
        todo.append((normalize(match.group(1)), tuple(match.group(2).split(",")) if match.group(2) else ()))
    expanded: set[tuple[str, str]] = set()
    while todo:
        name, extras = todo.pop()
        if name not in packages:
            raise SystemExit(f"{name} is not in {LOCK.name}: run `uv lock` after adding it to pyproject.toml")
        for package in packages[name]:
            edges = list(package.get("dependencies", []))
            for extra in extras:
                if (name, extra) not in expanded:
                    expanded.add((name, extra))
                    edges += package.get("optional-dependencies", {}).get(extra, [])
            if name in seen and not extras:
                continue
            for dep in edges:
                todo.append((normalize(dep["name"]), tuple(dep.get("extra", ()))))
        seen.add(name)
    return seen


def uv_binary() -> str:
    """uv from .tools/bin (where `make install` puts it), else from PATH."""
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: run `make install` (it installs uv into .tools/bin/)")
    return found


def exported(uv: str) -> str:
    """`uv export` of the whole lock: requirement blocks with hashes and markers."""
    return subprocess.run(
        [uv, "export", "--frozen", "--no-emit-project", "--no-header", "--no-annotate", "--format", "requirements-txt"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout


def keep(export: str, names: set[str]) -> str:
    """The blocks of `export` (a requirement line and its `--hash` continuation lines) for `names`."""
    blocks = re.split(r"\n(?=\S)", export.strip())
    chosen = [block for block in blocks if normalize(re.match(r"[A-Za-z0-9_.\-]+", block).group(0)) in names]
    return "\n".join(chosen) + "\n"


def render(uv: str | None = None) -> str:
    """The text docker/mlflow.requirements.txt should hold for the current uv.lock."""
    lock = tomllib.loads(LOCK.read_text())
    return HEADER + keep(exported(uv or uv_binary()), closure(lock))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what the lock gives")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `python docker/export_requirements.py`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}: {text.count('==')} packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
