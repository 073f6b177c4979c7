"""docker/compose.yml and docker/app.Dockerfile follow the rules the topology test cannot check.

There is no Docker engine on the course machines (test_topology.py runs the same topology as
processes); these checks read the files: a pinned base image, a non-root user, ports on 127.0.0.1
only, a health check on /ready, and `${VAR:?message}` wherever a variable has no default.
"""

from __future__ import annotations

import re

import yaml

from mlsys.config import repo_root

DOCKER = repo_root() / "docker"


def test_app_image_is_pinned_and_runs_as_a_user():
    text = (DOCKER / "app.Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert re.search(r"^USER (?!root)\w+", text, re.MULTILINE)
    assert "uv sync --frozen" in text and "uv==" in text  # dependencies from the lock, uv pinned


def test_compose_app_service():
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    app = compose["services"]["app"]
    assert app["build"]["dockerfile"] == "docker/app.Dockerfile"
    assert "/ready" in " ".join(app["healthcheck"]["test"])
    assert {"postgres", "mlflow"} <= set(app["depends_on"])
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port


def test_every_variable_without_a_default_says_what_to_set():
    text = (DOCKER / "compose.yml").read_text()
    for expression in re.findall(r"(?<!\$)\$\{([^}]+)\}", text):
        assert ":-" in expression or ":?" in expression, f"${{{expression}}} has neither a default nor a message"
    assert "${POSTGRES_PASSWORD:?" in text
