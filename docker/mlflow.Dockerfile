# The MLflow tracking server (compose service `mlflow`): mlflow and the PostgreSQL driver at uv.lock's
# versions, so the server runs the MLflow the notebooks log with. Build context: docker/.
#
# Pinned: the base image's Python patch release (the same FROM as app.Dockerfile), uv, and every
# package through docker/mlflow.requirements.txt (exported from uv.lock with hashes by
# docker/export_requirements.py; `--require-hashes` refuses anything else).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN pip install --no-cache-dir uv==0.13.9

COPY mlflow.requirements.txt /tmp/mlflow.requirements.txt
RUN uv venv /opt/venv \
    && uv pip install --no-cache --require-hashes --strict --python /opt/venv/bin/python -r /tmp/mlflow.requirements.txt

# a non-root user that owns the artifact store (a fresh named volume inherits this ownership)
RUN useradd --create-home --uid 10001 mlflow \
    && mkdir -p /mlartifacts \
    && chown mlflow:mlflow /mlartifacts
USER mlflow

EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=12 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=3)"]
CMD ["mlflow", "server", "--host=0.0.0.0", "--port=5000", "--workers=2", "--serve-artifacts", "--artifacts-destination=/mlartifacts"]
