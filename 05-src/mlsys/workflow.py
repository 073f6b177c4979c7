"""The course's pipeline as MLflow Project steps: ingest, features, train, evaluate, promote.

`MLproject` (repository root) names one entry point per step; each calls `python -m mlsys.workflow
<step>`, and `mlflow run . -e <step> --env-manager local` runs it in this environment as a tracked
run. The `main` entry point chains them with MLflow's multistep pattern: a parent run calls
`mlflow.projects.run` for each step, passes the run ids one step needs from the ones before (the
model travels as the train run's artifact), and nests the step runs under itself.

    mlflow run . --env-manager local                       # the whole pipeline, one command
    mlflow run . -e train --env-manager local -P n_estimators=50

Inside a step, `mlflow.start_run()` picks up the run `mlflow run` created (MLFLOW_RUN_ID), so each
step is exactly one run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Callable, Sequence
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient

from mlsys import data, evaluate, features, lineage, pipeline, promote, tracking, warehouse
from mlsys.config import Settings, get_settings
from mlsys.logger import logger, setup_logging

STEPS = ("ingest", "features", "train", "evaluate", "promote")
TABLES = ("flights", "weather", "planes", "airlines", "airports")
#: Rows the behaviour checks use in fast mode.
FAST_BEHAVIOUR_ROWS = 5_000
#: Tag on each step run naming the workflow run that launched it (MLflow's own nesting tag).
PARENT_TAG = "mlflow.parentRunId"


def _flag(value: str | bool) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def _step_run(step: str, settings: Settings):
    """The run of one step: the one `mlflow run` created (MLFLOW_RUN_ID), else a new one."""
    if os.environ.get("MLFLOW_RUN_ID"):
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        # `mlflow run` made the run in the experiment it was given (the default one without
        # --experiment-name); start_run refuses to resume it while another experiment is active
        run = MlflowClient().get_run(os.environ["MLFLOW_RUN_ID"])
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
        with mlflow.start_run() as active:
            mlflow.set_tags({"workflow.step": step, **tracking.session_tags()})
            yield active
    else:  # called in-process: a run of its own, nested under the workflow's run if one is active
        nested = mlflow.active_run() is not None
        with tracking.run(f"workflow-{step}", settings, nested=nested, **{"workflow.step": step}) as active:
            yield active


# --------------------------------------------------------------------------- steps


def ingest(settings: Settings, warehouse_months: str = "") -> str:
    """Validate the raw files (checksums, schema, rules) and, if asked, load those months into the warehouse."""
    with _step_run("ingest", settings) as active:
        counts = {}
        for table in TABLES:
            result = data.load_validated(table, settings)
            counts[table] = len(result.accepted)
            mlflow.log_metrics({f"{table}_rows": len(result.accepted), f"{table}_quarantined": len(result.quarantined)})
        mlflow.set_tags(lineage.data_tags(settings))
        months = [int(m) for m in warehouse_months.split(",") if m.strip()]
        if months:
            eng = warehouse.engine(settings)
            try:
                loaded = warehouse.load_warehouse(eng, settings, months=months)
            finally:
                eng.dispose()
            mlflow.log_metric("warehouse_flights", int(loaded.loc["flights", "warehouse rows"]))
        mlflow.log_param("warehouse_months", warehouse_months or "none")
        logger.info("ingest: {}", counts)
        return active.info.run_id


def build_features(settings: Settings) -> str:
    """Build (or find cached) the point-in-time feature table; record its cache key and size."""
    with _step_run("features", settings) as active:
        table = features.feature_table(settings)
        mlflow.set_tags({**lineage.data_tags(settings), "features.path": features.feature_cache_path(settings).name})
        mlflow.log_metrics({"rows": len(table), "features": len(features.FEATURES)})
        return active.info.run_id


def train(settings: Settings, fast: bool = True, seed: int = 42, n_estimators: int = 0, train_rows: int = 0) -> str:
    """Fit the champion's recipe (monotone LightGBM) on train; log the model, its data and parameters.

    `n_estimators` > 0 overrides the recipe's number of trees and `train_rows` > 0 samples that many
    training rows: the quick settings the tests use.
    """
    splits = features.load_splits(fast=fast, seed=seed, settings=settings)
    if train_rows:
        splits["train"] = splits["train"].sample(min(train_rows, len(splits["train"])), random_state=seed).sort_values("sched_dep_utc")
    with _step_run("train", settings) as active:
        extra = {"n_estimators": n_estimators} if n_estimators else {}
        model = evaluate.fit(evaluate.constrained_lightgbm(seed=seed, n_jobs=1, **extra), splits["train"])
        # `mlflow run` logs the entry point's own parameters (fast, seed, ...) itself
        mlflow.log_params({**lineage.model_params(model), "fit_rows": len(splits["train"])})
        lineage.log_training_data(splits["train"], settings)
        valid = evaluate.classification_scores(*_labels_and_scores(model, splits["valid"]))
        mlflow.log_metrics({f"valid_{k}": v for k, v in valid.items()})
        tracking.log_sklearn_model(model, splits["valid"][pipeline.INPUT_COLUMNS].head(5))
        logger.info("train: valid ROC AUC {:.4f}", valid["roc_auc"])
        return active.info.run_id


def _labels_and_scores(model: object, rows: pd.DataFrame) -> tuple[pd.Series, object]:
    return rows[evaluate.LABEL].astype("float64"), model.predict_proba(rows[pipeline.INPUT_COLUMNS])[:, 1]  # type: ignore[attr-defined]


def evaluate_step(settings: Settings, train_run_id: str, fast: bool = True, seed: int = 42) -> str:
    """Judge the train run's model by the promotion protocol on validation; log checks and the decision."""
    splits = features.load_splits(fast=fast, seed=seed, settings=settings)
    tracking.setup_mlflow(settings)
    with contextlib.redirect_stderr(io.StringIO()):  # MLflow's download progress bars (rates, timings)
        model = mlflow.sklearn.load_model(f"runs:/{train_run_id}/model")
    # fast mode judges behaviour on fewer rows (as tests/model does); the full run uses the protocol's own
    protocol = promote.Protocol(behaviour_rows=FAST_BEHAVIOUR_ROWS) if fast else None
    with _step_run("evaluate", settings) as active:
        report = promote.evaluate_candidate(model, splits, protocol)
        mlflow.log_param("train_run_id", train_run_id)
        mlflow.log_metrics(promote._finite({**{c.name: c.value for c in report.checks}, **report.scores}))
        mlflow.log_table(report.table(), artifact_file="promotion/report.json")
        mlflow.set_tags(
            {
                **{f"check.{c.name}": "passed" if c.passed else "failed" for c in report.checks},
                "promotion.decision": "promote" if report.passed else "reject",
                "promotion.threshold": str(report.protocol.threshold),
                "promotion.reasons": "; ".join(report.reasons)[:5000] or "all checks passed",
            }
        )
        return active.info.run_id


def promote_step(settings: Settings, train_run_id: str, evaluate_run_id: str) -> str:
    """Register the train run's model as champion if its evaluation passed; tag the version with its lineage."""
    tracking.setup_mlflow(settings)
    client = MlflowClient()
    verdict = client.get_run(evaluate_run_id).data.tags
    with _step_run("promote", settings) as active:
        mlflow.log_params({"train_run_id": train_run_id, "evaluate_run_id": evaluate_run_id})
        if verdict.get("promotion.decision") != "promote":
            mlflow.set_tag("promotion.decision", "rejected")
            logger.info("promote: not promoted: {}", verdict.get("promotion.reasons"))
            return active.info.run_id
        model_uri = _logged_model_uri(client, train_run_id)
        with contextlib.redirect_stderr(io.StringIO()):  # "Created version 'N'": N grows with every re-run
            version = tracking.register(model_uri, settings, alias=settings.champion_alias)
        client.set_model_version_tag(settings.registered_model_name, version, promote.THRESHOLD_TAG, verdict["promotion.threshold"])
        lineage.tag_version(version, train_run_id, settings)
        mlflow.set_tags({"promotion.decision": "promoted", "promotion.version": version})
        return active.info.run_id


def _logged_model_uri(client: MlflowClient, run_id: str) -> str:
    """`models:/m-...` of the model a run logged (MLflow 3 keeps logged models outside the run)."""
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    if outputs:
        return f"models:/{outputs[-1].model_id}"
    return f"runs:/{run_id}/model"


# --------------------------------------------------------------------------- the multistep workflow


def run_step(entry_point: str, parameters: dict[str, object], settings: Settings, parent_run_id: str | None = None) -> str:
    """`mlflow run . -e <entry_point>` from Python (local environment, synchronous); the step's run id."""
    submitted = mlflow.projects.run(
        str(settings.root),
        entry_point=entry_point,
        parameters={k: str(v) for k, v in parameters.items()},
        env_manager="local",
        experiment_name=settings.mlflow_experiment,
        synchronous=True,
    )
    if parent_run_id:
        MlflowClient().set_tag(submitted.run_id, PARENT_TAG, parent_run_id)
    return submitted.run_id


def main_workflow(
    settings: Settings,
    fast: bool = True,
    seed: int = 42,
    n_estimators: int = 0,
    train_rows: int = 0,
    warehouse_months: str = "",
    in_process: bool = False,
) -> dict[str, str]:
    """Every step in order, each its own tracked run under one parent run; returns {step: run id}.

    By default each step is `mlflow run . -e <step>` (a process each, MLflow's multistep pattern);
    `in_process=True` calls the same step functions in this process (nested runs), which spares
    five interpreter start-ups where seconds count (the lesson's fast mode).
    """
    tracking.setup_mlflow(settings)
    with _step_run("main", settings) as parent:
        pid = parent.info.run_id
        if in_process:
            runs = {"ingest": ingest(settings, warehouse_months), "features": build_features(settings)}
            runs["train"] = train(settings, fast, seed, n_estimators, train_rows)
            runs["evaluate"] = evaluate_step(settings, runs["train"], fast, seed)
            runs["promote"] = promote_step(settings, runs["train"], runs["evaluate"])
        else:
            runs = {"ingest": run_step("ingest", {"warehouse_months": warehouse_months or "none"}, settings, pid)}
            runs["features"] = run_step("features", {}, settings, pid)
            train_params = {"fast": fast, "seed": seed, "n_estimators": n_estimators, "train_rows": train_rows}
            runs["train"] = run_step("train", train_params, settings, pid)
            runs["evaluate"] = run_step("evaluate", {"train_run_id": runs["train"], "fast": fast, "seed": seed}, settings, pid)
            runs["promote"] = run_step("promote", {"train_run_id": runs["train"], "evaluate_run_id": runs["evaluate"]}, settings, pid)
        mlflow.set_tags({f"workflow.{k}_run_id": v for k, v in runs.items()})
    return {"main": pid, **runs}


def steps_table(runs: dict[str, str]) -> pd.DataFrame:
    """One row per step run: status, duration, what it logged (numbers of params, metrics, inputs)."""
    client = MlflowClient()
    rows = []
    for step, run_id in runs.items():
        r = client.get_run(run_id)
        rows.append(
            {
                "step": step,
                "status": r.info.status,
                "seconds": (r.info.end_time - r.info.start_time) / 1000 if r.info.end_time else float("nan"),
                "params": len(r.data.params),
                "metrics": len(r.data.metrics),
                "dataset inputs": len(r.inputs.dataset_inputs) if r.inputs else 0,
                "nested under main": r.data.tags.get(PARENT_TAG) == runs.get("main") if step != "main" else "",
            }
        )
    return pd.DataFrame(rows).set_index("step")


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.workflow", description="One step of the course's pipeline (see MLproject).")
    parser.add_argument("step", choices=[*STEPS, "main"])
    parser.add_argument("--fast", default="true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--n-estimators", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=0)
    parser.add_argument("--warehouse-months", default="")
    parser.add_argument("--train-run-id", default="")
    parser.add_argument("--evaluate-run-id", default="")
    args = parser.parse_args(argv)
    setup_logging()
    settings = get_settings()
    seed = settings.seed if args.seed is None else args.seed
    months = "" if args.warehouse_months in ("", "none") else args.warehouse_months
    fast = _flag(args.fast)
    if args.step == "ingest":
        run_id = ingest(settings, months)
    elif args.step == "features":
        run_id = build_features(settings)
    elif args.step == "train":
        run_id = train(settings, fast, seed, args.n_estimators, args.train_rows)
    elif args.step == "evaluate":
        run_id = evaluate_step(settings, args.train_run_id, fast, seed)
    elif args.step == "promote":
        run_id = promote_step(settings, args.train_run_id, args.evaluate_run_id)
    else:
        runs = main_workflow(settings, fast, seed, args.n_estimators, args.train_rows, months)
        print(steps_table(runs).to_string())
        return 0
    print(f"{args.step}: run {run_id}")
    return 0



def _after(step: Callable[..., str], args: tuple, *upstream: str) -> str:
    """Run `step(*args)` once `upstream` tasks are done (their run ids are only an ordering edge)."""
    return step(*args)


def task_graph(settings: Settings | None = None, **train_kwargs: object) -> tuple[pd.DataFrame, Any]:
    """The five steps as a Dask task graph (`dask.delayed`), built but not run.

    Returns each task with the tasks it waits for, and the delayed object (`.compute()` would run
    the steps in this process, each a tracked run; tasks with no path between them could run at
    the same time, which is what Dask adds over a list of steps).
    """
    import dask
    from dask.core import get_deps

    settings = settings or get_settings()
    ingested = dask.delayed(_after)(ingest, (settings,), dask_key_name="ingest")
    built = dask.delayed(_after)(build_features, (settings,), ingested, dask_key_name="features")
    trained = dask.delayed(_after)(lambda: train(settings, **train_kwargs), (), built, dask_key_name="train")  # type: ignore[arg-type]
    evaluated = dask.delayed(evaluate_step)(settings, trained, dask_key_name="evaluate")
    promoted = dask.delayed(promote_step)(settings, trained, evaluated, dask_key_name="promote")
    dependencies, _ = get_deps(dict(promoted.__dask_graph__()))
    rows = [{"task": k, "waits for": ", ".join(sorted(str(d) for d in dependencies[k])) or "-"} for k in ("ingest", *STEPS[1:])]
    return pd.DataFrame(rows).set_index("task"), promoted


def cli_run(entry_point: str, parameters: dict[str, object], settings: Settings | None = None) -> tuple[Any, float]:
    """`mlflow run . -e <entry_point> --env-manager local -P k=v ...` as a process, as a student types it.

    Returns the run it made and how long the command took (seconds). Raises with the command's
    last lines of output if it fails.
    """
    import subprocess
    import sys
    import time

    settings = settings or get_settings()
    tracking.setup_mlflow(settings)  # the experiment exists, with the course's artifact location
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "MLFLOW_EXPERIMENT_NAME": settings.mlflow_experiment, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update({"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "MLSYS_ARTIFACT_ROOT": settings.mlflow_artifact_root, "DATABASE_URL": settings.database_url})
    env.pop("MLFLOW_EXPERIMENT_ID", None)  # set by mlflow.set_experiment in this process; the CLI takes one of id or name
    env.pop("MLFLOW_RUN_ID", None)
    args = [os.path.join(bin_dir, "mlflow"), "run", str(settings.root), "-e", entry_point, "--env-manager", "local"]
    for key, value in parameters.items():
        args += ["-P", f"{key}={value}"]
    began = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=settings.root)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"`mlflow run -e {entry_point}` failed:\n" + "\n".join(done.stderr.splitlines()[-20:]))
    runs = mlflow.search_runs(
        experiment_names=[settings.mlflow_experiment],
        filter_string=f"tags.`mlflow.project.entryPoint` = '{entry_point}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0], seconds


def entry_points(settings: Settings | None = None) -> pd.DataFrame:
    """The MLproject's entry points: parameters (with defaults) and command."""
    import yaml

    settings = settings or get_settings()
    project = yaml.safe_load((settings.root / "MLproject").read_text())
    rows = []
    for name, entry in project["entry_points"].items():
        params = entry.get("parameters", {})
        shown = [f"{k}={v.get('default', '(required)')}" if isinstance(v, dict) else f"{k} (required)" for k, v in params.items()]
        rows.append({"entry point": name, "parameters": ", ".join(shown) or "-", "command": entry["command"].split(" --")[0]})
    return pd.DataFrame(rows).set_index("entry point")


if __name__ == "__main__":
    raise SystemExit(main())
