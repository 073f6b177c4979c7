# The prediction service (lesson 07): the course package and its locked dependencies, run by uvicorn.
# Build context is the repository root (docker/compose.yml sets it):
#   docker build -f docker/app.Dockerfile -t mlsys-app .
#
# Pinned: the base image's Python patch release (the one the course machines run; mlflow.Dockerfile
# uses the same FROM), uv (the Makefile's version), and every package through uv.lock. (A digest pin,
# python:3.11.7-slim-bookworm@sha256:..., is stricter still; look it up with
# `docker buildx imagetools inspect` where Docker Hub is reachable. tests/serve/test_docker.py
# checks these rules.)
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    MLSYS_HOME=/app \
    PATH=/opt/venv/bin:$PATH

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app
# dependencies first: this layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project
# then the package and the raw data (the fallback model and `python -m mlsys.serve.champion` read them)
COPY 05-src ./05-src
COPY 03-data/raw ./03-data/raw
RUN uv sync --frozen

# a non-root user that can write only its logs and the rebuildable data caches
RUN useradd --create-home --uid 10001 mlsys \
    && mkdir -p /app/logs /app/03-data/processed \
    && chown -R mlsys:mlsys /app/logs /app/03-data
USER mlsys

EXPOSE 8000
# the same check as the compose health check: ready = champion loaded and warehouse reachable
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=3)"]
# SIGTERM (docker stop) makes uvicorn shut down gracefully: the prediction log is written first
CMD ["uvicorn", "--factory", "mlsys.serve.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-access-log"]
