"""docker/compose.yml and its Dockerfiles follow the stack's rules, checked without a Docker engine.

There is no Docker engine on the course machines (test_topology.py runs the same topology as
processes), so these tests read the files. For every service: an image pinned to an exact release,
Python packages from uv.lock, a non-root user, a health check, ports on 127.0.0.1 only, and
`${VAR:?message}` for every variable it cannot run without, listed in .env.example. Compose's
variable interpolation is reproduced here (`interpolate`) so the wiring can be checked on the
values compose would pass: the app's URLs name the databases, users and passwords the servers are
started with.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml
from dotenv import dotenv_values

from mlsys.config import _KEYS, in_ci, load_settings, repo_root

ROOT = repo_root()
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yml"
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BUILT = sorted(name for name, service in SERVICES.items() if "build" in service)

#: What an exact release looks like, per image repository: one Debian release (bookworm) across the
#: stack; Python and Redis to the patch release; PostgreSQL's major.minor is its patch release. An
#: optional digest pins the bytes too.
PINNED_TAGS = {
    "postgres": r"\d+\.\d+-bookworm",
    "redis": r"\d+\.\d+\.\d+-bookworm",
    "python": r"\d+\.\d+\.\d+-slim-bookworm",
}
DIGEST = r"(@sha256:[0-9a-f]{64})?"
#: Variables that must never have a default: a blank or well-known password, user or database name
#: would start a server nobody configured.
SECRET_OR_NAME = re.compile(r"PASSWORD|USER|_DB$")
#: Environment variables the app container may set besides mlsys.config's keys.
APP_EXTRA_ENV = {"OMP_WAIT_POLICY"}
#: A complete, valid environment for compose (what a filled-in .env holds).
SAMPLE_ENV = {
    "POSTGRES_USER": "mlsys",
    "POSTGRES_PASSWORD": "pg0secret",
    "WAREHOUSE_DB": "warehouse",
    "MLFLOW_DB": "mlflow",
    "REDIS_PASSWORD": "redis0secret",
}


# --------------------------------------------------------------------------- compose interpolation


class MissingVariable(KeyError):
    """A `${VAR:?message}` whose variable is unset or empty: compose stops with `message`."""


_REFERENCE = re.compile(r"\$\$|\$\{(?P<braced>[^}]*)\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")
_EXPRESSION = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate_text(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string: `$$`, `$VAR`, `${VAR}`, `${VAR[:]-default}`, `${VAR[:]?message}`, `${VAR[:]+alt}`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("bare"):
            return env.get(match.group("bare"), "")
        parts = _EXPRESSION.fullmatch(match.group("braced"))
        if parts is None:
            raise ValueError(f"invalid interpolation: {match.group(0)}")
        name, op, arg = parts.group("name"), parts.group("op"), parts.group("arg") or ""
        value, is_set = env.get(name, ""), name in env
        present = bool(value) if op and op.startswith(":") else is_set
        if op in (":-", "-"):
            return value if present else arg
        if op in (":?", "?"):
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if present else ""
        return value

    return _REFERENCE.sub(substitute, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """`node` (loaded YAML) with every string value interpolated, as compose does after parsing."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    if isinstance(node, str):
        return interpolate_text(node, env)
    return node


def strings(node: Any) -> Iterator[str]:
    """Every string value in loaded YAML."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def references(node: Any) -> list[tuple[str, str | None, str]]:
    """(name, operator, argument) of every variable reference in `node`'s strings; `$$` is not one."""
    found = []
    for text in strings(node):
        for match in _REFERENCE.finditer(text):
            if match.group("bare"):
                found.append((match.group("bare"), None, ""))
            elif match.group("braced") is not None:
                parts = _EXPRESSION.fullmatch(match.group("braced"))
                assert parts, f"invalid interpolation {match.group(0)} in {text!r}"
                found.append((parts.group("name"), parts.group("op"), parts.group("arg") or ""))
    return found


def required_variables() -> set[str]:
    return {name for name, op, _ in references(COMPOSE) if op in (":?", "?")}


def example_env() -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(ROOT / ".env.example").items()}


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate_text("a$$b ${SET} $SET ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:+alt}", env) == "a$b x x d d  alt"
    with pytest.raises(MissingVariable, match="EMPTY: say so"):
        interpolate_text("${EMPTY:?say so}", env)
    assert interpolate_text("${EMPTY?say so}", env) == ""


# --------------------------------------------------------------------------- images


def dockerfile(name: str) -> Path:
    build = SERVICES[name]["build"]
    return (DOCKER / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()


def base_images(name: str) -> list[str]:
    """The image a service runs: its `image`, or every FROM of the Dockerfile it is built from."""
    service = SERVICES[name]
    if "build" not in service:
        return [service["image"]]
    return re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", dockerfile(name).read_text(), re.MULTILINE)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned_to_a_release(name: str) -> None:
    images = base_images(name)
    assert images, f"{name}: no image and no FROM"
    for image in images:
        repository, _, tag = image.partition(":")
        assert repository in PINNED_TAGS, f"{name}: {repository} has no pinned-tag rule here; add one to PINNED_TAGS"
        assert re.fullmatch(PINNED_TAGS[repository] + DIGEST, tag), f"{name}: {image} is not an exact release ({PINNED_TAGS[repository]})"


def test_the_built_images_share_one_python() -> None:
    bases = {name: base_images(name) for name in BUILT}
    assert {"app", "mlflow"} <= set(bases)
    assert len({tuple(images) for images in bases.values()}) == 1, f"bump every FROM together: {bases}"
    version = re.match(r"python:(\d+)\.(\d+)", bases["app"][0])
    minor = f"3.{version.group(2)}" if version.group(1) == "3" else None
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    assert f"Programming Language :: Python :: {minor}" in classifiers, f"{bases['app'][0]} is not a Python the lock promises"


def uv_version() -> str:
    return re.search(r"^UV_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)


def test_app_image_installs_the_lock() -> None:
    text = dockerfile("app").read_text()
    assert re.search(r"^COPY .*\buv\.lock\b", text, re.MULTILINE), "the lock must be in the image"
    assert "uv sync --frozen" in text  # exactly the lock; fails if pyproject and lock disagree
    installs = re.findall(r"pip install [^\n]*", text)
    assert installs == [f"pip install --no-cache-dir uv=={uv_version()}"], f"only uv, at the Makefile's version: {installs}"


def test_mlflow_image_installs_the_exported_lock() -> None:
    text = dockerfile("mlflow").read_text()
    assert re.search(r"^COPY mlflow\.requirements\.txt ", text, re.MULTILINE)
    assert re.search(r"uv pip install [^\n]*--require-hashes[^\n]*-r \S*mlflow\.requirements\.txt", text)
    installs = re.findall(r"(?<!uv )pip install [^\n]*", text)
    assert installs == [f"pip install --no-cache-dir uv=={uv_version()}"], f"only uv, at the Makefile's version: {installs}"


def _export_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_requirements", DOCKER / "export_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirement_blocks(text: str) -> dict[tuple[str, str], set[str]]:
    """{(name, version): hashes} of a requirements file written by `uv export`."""
    blocks = {}
    for block in re.split(r"\n(?=\S)", "\n".join(line for line in text.splitlines() if not line.startswith("#")).strip()):
        head = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;\\]+)", block)
        assert head, f"not pinned with ==: {block.splitlines()[0]}"
        blocks[(head.group(1), head.group(2))] = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return blocks


def test_mlflow_requirements_are_the_locks_versions_and_hashes() -> None:
    export = _export_module()
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked: dict[tuple[str, str], set[str]] = {}
    for package in lock["package"]:
        files = [package.get("sdist", {})] + package.get("wheels", [])
        locked[(export.normalize(package["name"]), package["version"])] = {f["hash"].removeprefix("sha256:") for f in files if "hash" in f}
    blocks = requirement_blocks((DOCKER / "mlflow.requirements.txt").read_text())
    for (name, version), hashes in blocks.items():
        key = (export.normalize(name), version)
        assert key in locked, f"{name}=={version} is not in uv.lock"
        assert hashes and hashes <= locked[key], f"{name}=={version}: hashes missing or not the lock's"
    names = {export.normalize(name) for name, _ in blocks}
    assert {"mlflow", "psycopg", "psycopg-binary", "sqlalchemy"} <= names
    assert names == export.closure(lock), "the file must hold exactly what mlflow and psycopg[binary] need"


def test_mlflow_requirements_are_current() -> None:
    if not ((ROOT / ".tools" / "bin" / "uv").exists() or shutil.which("uv")):
        pytest.skip("uv not found: `make install` puts it in .tools/bin/")
    result = subprocess.run([sys.executable, str(DOCKER / "export_requirements.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_closure_follows_extras_and_stops_at_leaves() -> None:
    lock = {"package": [
        {"name": "a", "version": "1", "dependencies": [{"name": "b", "extra": ["x"]}]},
        {"name": "b", "version": "1", "dependencies": [{"name": "c"}], "optional-dependencies": {"x": [{"name": "d"}]}},
        {"name": "c", "version": "1"}, {"name": "d", "version": "1"}, {"name": "e", "version": "1"},
    ]}
    assert _export_module().closure(lock, ("a",)) == {"a", "b", "c", "d"}
    assert _export_module().closure(lock, ("b",)) == {"b", "c"}


# --------------------------------------------------------------------------- users, health, ports


def last_user(name: str) -> str | None:
    users = re.findall(r"^USER\s+(\S+)", dockerfile(name).read_text(), re.MULTILINE)
    return users[-1] if users else None


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_runs_as_a_non_root_user_without_privileges(name: str) -> None:
    service = SERVICES[name]
    user = str(service.get("user") or (last_user(name) if "build" in service else "") or "")
    assert user, f"{name}: set `user:` (or USER in its Dockerfile)"
    assert user.split(":")[0] not in {"root", "0"}, f"{name} runs as {user}"
    assert not service.get("privileged")
    assert service.get("cap_drop") == ["ALL"], f"{name}: cap_drop: [ALL]"
    assert "no-new-privileges:true" in service.get("security_opt", []), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_has_a_health_check_and_waits_for_health(name: str) -> None:
    check = SERVICES[name].get("healthcheck", {})
    test = check.get("test")
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, f"{name}: healthcheck.test {test!r}"
    assert not check.get("disable")
    for dependency, condition in SERVICES[name].get("depends_on", {}).items():
        assert condition == {"condition": "service_healthy"}, f"{name} must wait for {dependency} to be healthy"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_on_loopback_only(name: str) -> None:
    service = SERVICES[name]
    assert service.get("network_mode") != "host"
    for port in service.get("ports", []):
        if isinstance(port, dict):  # long syntax
            assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
        else:
            assert re.fullmatch(r"127\.0\.0\.1:(\d+|\$\{[A-Z_]+:-\d+\}):\d+", str(port)), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_commands_use_no_shell_variables_without_a_shell(name: str) -> None:
    """`command:` and CMD health checks run without a shell: a `$VAR` there reaches the program verbatim."""
    service = interpolate(SERVICES[name], SAMPLE_ENV)
    for field in ("command", "entrypoint"):
        argv = service.get(field) or []
        argv = argv.split() if isinstance(argv, str) else argv
        if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"]):
            continue
        assert not [arg for arg in argv if "$" in arg], f"{name}.{field}: {argv}"
    test = service["healthcheck"]["test"]
    if test[0] == "CMD":
        assert not [arg for arg in test if "$" in arg], f"{name}.healthcheck: {test}"


# --------------------------------------------------------------------------- variables


def test_every_variable_has_a_default_or_a_message() -> None:
    found = references(COMPOSE)
    assert found
    for name, op, arg in found:
        assert op in (":-", ":?"), f"${{{name}}} needs :-default or :?message (an empty value is treated as unset only with ':')"
        if op == ":?":
            assert "set" in arg and name in arg, f"${{{name}:?{arg}}} must say what to set"


def test_secrets_and_names_are_always_required() -> None:
    by_name: dict[str, set[str | None]] = {}
    for name, op, _ in references(COMPOSE):
        by_name.setdefault(name, set()).add(op)
    required = {name for name in by_name if SECRET_OR_NAME.search(name)}
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "WAREHOUSE_DB", "MLFLOW_DB", "REDIS_PASSWORD"} <= required
    for name in required:
        assert by_name[name] == {":?"}, f"{name} must be ${{{name}:?...}} wherever it is used, not {by_name[name]}"
    for name, ops in by_name.items():
        assert len(ops) == 1, f"{name} is required in one place and defaulted in another: {ops}"


def test_no_literal_credentials() -> None:
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_OR_NAME.search(key) or "AUTH" in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key} must come from .env"
            if "://" in str(value) and "@" in str(value):
                credentials = str(value).split("://", 1)[1].rsplit("@", 1)[0]
                assert re.fullmatch(r"(\$\{[A-Z_]+:\?[^}]+\})?:\$\{[A-Z_]+:\?[^}]+\}", credentials), f"{name}.{key}: credentials must come from .env"


@pytest.mark.parametrize("name", sorted(SAMPLE_ENV))
def test_a_missing_variable_stops_compose_naming_it(name: str) -> None:
    for env in ({k: v for k, v in SAMPLE_ENV.items() if k != name}, {**SAMPLE_ENV, name: ""}):
        with pytest.raises(MissingVariable, match=f"^'?{name}: set {name} in .env"):
            interpolate(COMPOSE, env)


def test_sample_env_is_everything_compose_requires() -> None:
    assert required_variables() == set(SAMPLE_ENV)
    resolved = interpolate(COMPOSE, SAMPLE_ENV)
    # what remains of `$` is the containers' own (`$${VAR}` in a CMD-SHELL health check)
    assert all(text.startswith("pg_isready") for text in strings(resolved) if "$" in text)


def test_env_example_lists_every_required_variable_without_a_password() -> None:
    example = example_env()
    missing = required_variables() - set(example)
    assert not missing, f".env.example must list {sorted(missing)} (uncommented, so `cp .env.example .env` has them)"
    for name in required_variables():
        if "PASSWORD" in name:
            assert example[name] == "", f".env.example must leave {name} empty: compose then refuses to start until it is set"
    # a copied, unedited .env therefore stops compose, naming a password
    with pytest.raises(MissingVariable, match="PASSWORD"):
        interpolate(COMPOSE, example)
    # and the names it does give are the ones the rest of the example uses
    assert interpolate(COMPOSE, {**example, "POSTGRES_PASSWORD": "p", "REDIS_PASSWORD": "r"})


def test_env_is_never_committed() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored: it holds the passwords"
    for build in BUILT:
        ignore = dockerfile(build).with_name(dockerfile(build).name + ".dockerignore")
        patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
        # everything is left out of the build context except what is named: never .env
        assert patterns[0] == "*" and not [p for p in patterns if p.startswith("!") and ".env" in p], f"{ignore.name}: {patterns}"


# --------------------------------------------------------------------------- wiring


def resolved_env(name: str) -> dict[str, str]:
    return {key: str(value) for key, value in interpolate(SERVICES[name].get("environment", {}), SAMPLE_ENV).items()}


def test_app_reaches_the_databases_the_servers_create() -> None:
    postgres, app, mlflow = resolved_env("postgres"), resolved_env("app"), resolved_env("mlflow")
    warehouse_url = sa.engine.make_url(app["DATABASE_URL"])
    backend_url = sa.engine.make_url(mlflow["MLFLOW_BACKEND_STORE_URI"])
    for url, database in ((warehouse_url, postgres["POSTGRES_DB"]), (backend_url, postgres["MLFLOW_DB"])):
        assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "postgres", 5432)
        assert (url.username, url.password, url.database) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], database)
    assert postgres["POSTGRES_DB"] != postgres["MLFLOW_DB"]
    # the MLflow database is created by the init script the postgres service mounts
    mounts = {target: source for source, target, *_ in (v.split(":") for v in SERVICES["postgres"]["volumes"])}
    script = mounts["/docker-entrypoint-initdb.d/10-mlflow-db.sh"]
    assert '"$MLFLOW_DB"' in (DOCKER / script).read_text()


def test_app_reaches_mlflow_and_redis() -> None:
    app = resolved_env("app")
    tracking = urlsplit(app["MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, tracking.port) == ("mlflow", 5000)
    mlflow_command = " ".join(SERVICES["mlflow"]["command"])
    assert "--port=5000" in mlflow_command and "mlflow:5000" in mlflow_command  # listens there, accepts that Host
    assert any(port.endswith(":5000") for port in SERVICES["mlflow"]["ports"])
    redis_url = urlsplit(app["REDIS_URL"])
    assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379)
    redis_command = interpolate(SERVICES["redis"]["command"], SAMPLE_ENV)
    assert redis_url.password == redis_command[redis_command.index("--requirepass") + 1] == resolved_env("redis")["REDISCLI_AUTH"]
    assert app["MLSYS_ONLINE_FEATURES"] == "redis"


def test_app_environment_is_valid_configuration() -> None:
    app = resolved_env("app")
    unknown = set(app) - _KEYS - APP_EXTRA_ENV
    assert not unknown, f"not mlsys.config keys (typo?): {sorted(unknown)}"
    settings = load_settings(env_file=Path("/nonexistent/.env"), environ=app)
    assert (settings.online_features, settings.redis_url) == ("redis", app["REDIS_URL"])
    assert settings.mlflow_tracking_uri == "http://mlflow:5000" and not settings.tracking_is_local
    assert settings.database_url == app["DATABASE_URL"]


def test_app_service_runs_the_prediction_service() -> None:
    app = SERVICES["app"]
    assert app["build"]["dockerfile"] == "docker/app.Dockerfile"
    assert "/ready" in " ".join(app["healthcheck"]["test"])
    assert set(app["depends_on"]) == {"postgres", "mlflow", "redis"}
    cmd = re.search(r"^CMD (\[.*\])", dockerfile("app").read_text(), re.MULTILINE).group(1)
    assert yaml.safe_load(cmd)[:3] == ["uvicorn", "--factory", "mlsys.serve.app:create_app"]
    assert set(SERVICES) == {"postgres", "mlflow", "app", "redis"}


def test_make_up_and_down_drive_this_file() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("up", "down"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
        assert recipe, f"make {target} is missing"
        assert "docker compose -f docker/compose.yml --env-file .env" in recipe.group(1)


@pytest.mark.postgres
def test_init_script_creates_the_mlflow_database(postgres_admin: sa.Engine) -> None:
    """docker/postgres/init-mlflow-db.sh, run as the image's entrypoint would, on the test server."""
    if not shutil.which("psql"):
        message = "psql runs the init script: apt install postgresql-client"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    name = "mlsys compose init-check"  # a space: the script must quote the name
    url = postgres_admin.url
    env = {"PATH": "/usr/bin:/bin", "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432), "PGPASSWORD": url.password or "",
           "POSTGRES_USER": url.username, "POSTGRES_DB": url.database, "MLFLOW_DB": name}
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    try:
        result = subprocess.run(["bash", str(DOCKER / "postgres" / "init-mlflow-db.sh")], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        with postgres_admin.connect() as conn:
            assert conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() == 1
    finally:
        with postgres_admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


