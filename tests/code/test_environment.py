"""environment.yml (conda users) describes the same environment as pyproject.toml + uv.lock.

If this fails after a dependency change, update environment.yml: every direct dependency of
pyproject.toml appears there pinned to the version uv.lock resolved.
"""

import re
import tomllib

import yaml

from mlsys.config import repo_root


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked_versions() -> dict[str, set[str]]:
    """Every version uv.lock resolved per package (numpy has one per Python range)."""
    lock = tomllib.loads((repo_root() / "uv.lock").read_text())
    versions: dict[str, set[str]] = {}
    for pkg in lock["package"]:
        if "version" in pkg:
            versions.setdefault(pkg["name"], set()).add(pkg["version"])
    return versions


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = {}
    for line in pip_section:
        if line.startswith("-e"):
            continue
        name, _, version = line.partition("==")
        pins[_name(name)] = version
    return pins


def test_environment_yml_pins_every_direct_dependency_to_the_lock() -> None:
    project = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]
    direct = {_name(req) for req in project["dependencies"]}
    locked = _locked_versions()
    pins = _environment_pins()
    assert set(pins) == direct, f"only in pyproject: {sorted(direct - set(pins))}; only in environment.yml: {sorted(set(pins) - direct)}"
    wrong = {name: (pins[name], locked[name]) for name in direct if pins[name] not in locked[name]}
    assert not wrong, f"environment.yml pins differ from uv.lock (yml, lock): {wrong}"


def test_environment_yml_python_matches_requires_python() -> None:
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    python = next(dep for dep in env["dependencies"] if isinstance(dep, str) and dep.startswith("python"))
    assert python == "python=3.11"
    assert ">=3.11" in tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["requires-python"]
