# One command each: `make run` executes the course, `make test` checks it. Both set up the
# environment first (uv, from uv.lock), so they work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Any Python 3 can bootstrap uv into .tools/; uv then picks the course's Python itself (below).
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
MODE ?= fast
PYTEST_ARGS ?=
SERVE_PORT ?= 8000
PORTABLE := build/portable
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

# uv builds .venv with an installed Python that requires-python admits (3.11–3.14): .venv's own,
# else the first it finds (uv-managed ones, then PATH). Only when none is installed does it
# download a uv-managed one (uv's default, `automatic`). To choose: `rm -rf .venv && make install
# UV_PYTHON=3.13`; `UV_PYTHON_DOWNLOADS=never` forbids downloads.
export UV_PYTHON_DOWNLOADS ?= automatic
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install run test test-portable test-code notebooks lab serve bench slides site up down clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS) || { echo "make: '$(PYTHON) -m venv' failed. On Debian, Ubuntu and WSL:" \
		"sudo apt install python3-venv (or python3.X-venv for your version); or make PYTHON=<another python3>" >&2; exit 1; }
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# --compile-bytecode writes every package's .pyc once, at install: where PYTHONDONTWRITEBYTECODE
# is set (as on the course's CI machines) Python otherwise recompiles mlflow, pandas, sklearn...
# on every start, about 10 s of CPU per notebook kernel and per test subprocess.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: $(VENV)/.installed  ## create .venv from uv.lock (the package is installed editable)

# The slide and site tools (marp-cli, a local MathJax) from package-lock.json, with Node 20+ and npm.
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm not found; install Node.js 20+ (https://nodejs.org, or apt install nodejs npm)" >&2; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

run: install  ## execute every notebook with papermill (MODE=fast|full) and print a table
	$(VENV)/bin/python -m mlsys.course run --mode $(MODE)

test: install  ## unit, data and model tests, then nbval on the committed notebooks
	$(VENV)/bin/pytest tests 02-notebooks $(NBVAL) $(PYTEST_ARGS)

# A fresh clone of HEAD in build/portable with its own stores (MLSYS_HOME): another student's
# machine, and it can run beside `make test` (as .ci/run does) without sharing a store.
test-portable: install  ## nbval under other BLAS kernels (x86-64) in a fresh clone of HEAD, as on another student's CPU
	@git diff --quiet HEAD || echo "test-portable: checks the last commit; uncommitted changes are not in the clone"
	rm -rf $(PORTABLE) && git clone -q . $(PORTABLE)
	ln -s $(CURDIR)/$(VENV) $(PORTABLE)/$(VENV)  # the clone's .venv is this one (lesson 00 checks it runs in the project's)
	cd $(PORTABLE) && MLSYS_HOME="$$PWD" OPENBLAS_CORETYPE=Prescott $(VENV)/bin/pytest 02-notebooks $(NBVAL) $(PYTEST_ARGS)

test-code: install  ## the tests without the notebooks (quick)
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

notebooks: install  ## maintainers: re-execute notebooks in place on fresh stores (committed outputs)
	$(VENV)/bin/python -m mlsys.course refresh

lab: install  ## open JupyterLab on the lessons
	$(VENV)/bin/jupyter lab --notebook-dir=. --ServerApp.ip=127.0.0.1

serve: install  ## the prediction service on 127.0.0.1:8000 (registers a champion and loads the warehouse if missing)
	$(VENV)/bin/python -m mlsys.serve.champion
	$(VENV)/bin/uvicorn --factory mlsys.serve.app:create_app --host 127.0.0.1 --port $(SERVE_PORT)

bench: install  ## the service vs mlflow models serve, and Dask batch scoring: one table (build/bench/bench.md)
	$(VENV)/bin/python -m mlsys.bench

slides: install $(NODE_STAMP)  ## one Marp deck per lesson to build/slides/: HTML, and PDF with a Chromium (CHROME_PATH)
	$(VENV)/bin/python -m mlsys.slides build --out build/slides

site: install $(NODE_STAMP)  ## the course website in build/site/: README, lessons with outputs, data card, decks (offline, strict)
	$(VENV)/bin/python -m mlsys.site

up:  ## optional: the full stack (postgres, mlflow, redis, the service) with docker compose; needs Docker and a .env
	@test -f .env || { echo "make up: no .env. cp .env.example .env, then set POSTGRES_PASSWORD and REDIS_PASSWORD in it (see docker/README.md)" >&2; exit 1; }
	docker compose -f docker/compose.yml --env-file .env up -d --build

down:  ## stop the docker stack
	docker compose -f docker/compose.yml --env-file .env down

clean:  ## remove caches, executed copies and local stores (keeps .venv)
	rm -rf build logs mlruns mlflow.db 03-data/processed 03-data/warehouse.db .pytest_cache
