"""Run the course's notebooks headless with papermill and report what happened.

    python -m mlsys.course run                  # fast mode, executed copies in build/notebooks/
    python -m mlsys.course run --mode full      # every row
    python -m mlsys.course refresh              # re-execute in place on fresh stores (maintainers)

`refresh` is how committed outputs are produced: each notebook runs against its own new, empty
MLflow store and warehouse in a temporary directory, exactly as nbval re-runs it in `make test`
(see the root `conftest.py`), so the committed outputs and the re-executed ones can be compared.
A lesson therefore never depends on runs or models left by another lesson.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from mlsys.config import repo_root

PAPERMILL_KEYS = ("papermill",)


def notebook_dir() -> Path:
    return repo_root() / "02-notebooks"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The lesson notebooks in course order (`NN_name.ipynb`), optionally those whose name starts with `only`."""
    found = sorted(notebook_dir().glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [nb for nb in found if any(nb.name.startswith(prefix) for prefix in only)]
    return found


def isolated_env(workdir: Path) -> dict[str, str]:
    """Environment variables that give a run its own empty MLflow store and warehouse."""
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "MLSYS_ARTIFACT_ROOT": (workdir / "mlruns").as_uri(),
        "DATABASE_URL": f"sqlite:///{workdir / 'warehouse.db'}",
    }


def headless_env() -> dict[str, str]:
    """Settings for non-interactive runs: plain-text progress bars, warnings-only console logs.

    `OMP_WAIT_POLICY=PASSIVE`: LightGBM's OpenMP threads otherwise spin while waiting, and on a
    busy 2-core machine one fit took 10x longer (same predictions either way).
    """
    return {"MLSYS_HEADLESS": "1", "MLSYS_LOG_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore", "OMP_WAIT_POLICY": "PASSIVE"}


def clean_metadata(path: Path) -> None:
    """Drop papermill's timings and per-cell timestamps so re-runs don't rewrite every line of JSON."""
    nb = json.loads(path.read_text())
    for key in PAPERMILL_KEYS:
        nb["metadata"].pop(key, None)
    for cell in nb["cells"]:
        for key in PAPERMILL_KEYS + ("execution",):
            cell.get("metadata", {}).pop(key, None)
        if cell["cell_type"] == "code":
            cell["execution_count"] = cell.get("execution_count")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def kernel_config() -> dict[str, dict[str, str]]:
    """Traitlets configuration for the kernels `execute` starts: Unix sockets, not loopback TCP.

    TCP ports on 127.0.0.1 are open to any local user, and ipykernel prints a plain-text-transport
    warning for them into the run's table; IPC sockets live in Jupyter's runtime directory.
    """
    return {"KernelManager": {"transport": "ipc"}}


def execute(notebook: Path, output: Path, parameters: dict[str, object], env: dict[str, str]) -> float:
    """Execute one notebook with papermill from its own directory; returns wall seconds."""
    import papermill as pm
    from traitlets.config import Config

    previous = dict(os.environ)
    os.environ.update(env)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            cwd=str(notebook.parent),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            config=Config(kernel_config()),
        )
    finally:
        os.environ.clear()
        os.environ.update(previous)
    return time.perf_counter() - start


def run_course(mode: str = "fast", in_place: bool = False, only: list[str] | None = None, output_dir: Path | None = None) -> pd.DataFrame:
    """Execute the notebooks in order; returns a table of notebook, status and seconds.

    A failing notebook does not stop the others (lessons are independent); its status says why.
    """
    if mode not in {"fast", "full"}:
        raise ValueError("mode must be 'fast' or 'full'")
    parameters: dict[str, object] = {} if mode == "fast" else {"FAST": False}
    output_dir = output_dir or repo_root() / "build" / "notebooks"
    output_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    for nb in notebooks(only):
        target = nb if in_place else output_dir / nb.name
        with tempfile.TemporaryDirectory(prefix="mlsys-course-") as tmp:
            env = headless_env() | (isolated_env(Path(tmp)) if in_place else {})
            try:
                seconds = execute(nb, target, parameters, env)
                status = "ok"
            except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
                seconds, status = float("nan"), f"FAILED: {type(exc).__name__}"
                print(exc, file=sys.stderr)
        if in_place and status == "ok":
            clean_metadata(target)
        rows.append({"notebook": nb.name, "status": status, "seconds": round(seconds, 1)})
        print(f"{nb.name:<32} {status:<10} {seconds:7.1f} s", flush=True)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.course", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute every notebook into build/notebooks/")
    run.add_argument("--mode", choices=["fast", "full"], default=os.environ.get("MODE", "fast"))
    run.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 00 01")
    refresh = sub.add_parser("refresh", help="re-execute notebooks in place on fresh stores (committed outputs)")
    refresh.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "run":
        table = run_course(args.mode, in_place=False, only=args.only)
    else:
        table = run_course("fast", in_place=True, only=args.only)
    total = table["seconds"].sum()
    print(table.to_string(index=False))
    print(f"total: {total:.0f} s ({len(table)} notebooks)")
    return 0 if (table["status"] == "ok").all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
