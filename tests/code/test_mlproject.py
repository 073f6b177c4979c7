"""`mlflow run` works offline on the embedded default: the MLproject's train entry point, in a
process of its own, on a store of its own (`mlsys.course.isolated_env`), small and quick."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from mlsys import workflow
from mlsys.config import load_settings, repo_root
from mlsys.course import isolated_env

ROOT = repo_root()
QUICK = {"n_estimators": "20", "train_rows": "5000"}


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, **isolated_env(tmp), "MLFLOW_EXPERIMENT_NAME": "flight-delays", "MLSYS_LOG_LEVEL": "WARNING"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in the entry points
    return env


def test_mlproject_names_every_step():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert set(project["entry_points"]) == {*workflow.STEPS, "main"}
    for name, entry in project["entry_points"].items():
        assert f"python -m mlsys.workflow {name}" in entry["command"]
        for param in entry.get("parameters", {}):
            assert "{" + param + "}" in entry["command"], f"{name}: parameter {param} is never passed on"


def test_mlflow_run_runs_the_whole_pipeline_as_the_readme_says(tmp_path):
    """`mlflow run . --env-manager local` exactly as the README gives it (no --experiment-name):
    the main entry point launches each step as `mlflow run . -e <step>`, a process and a run each."""
    env = _env(tmp_path)
    for inherited in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        env.pop(inherited, None)  # a student's shell has none of these; an earlier test may have set them
    settings = load_settings(environ=env)
    args = [str(Path(sys.executable).parent / "mlflow"), "run", ".", "--env-manager", "local"]
    for key, value in QUICK.items():
        args += ["-P", f"{key}={value}"]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    by_entry = {run.data.tags.get("mlflow.project.entryPoint"): run for run in runs}
    assert sorted(by_entry) == sorted(["main", *workflow.STEPS]) and len(runs) == 6
    assert all(run.info.status == "FINISHED" for run in runs)
    parent = by_entry["main"].info.run_id
    assert all(by_entry[step].data.tags[workflow.PARENT_TAG] == parent for step in workflow.STEPS)
    run = by_entry["train"]
    assert run.data.params["n_estimators"] == "20"
    assert run.data.params["fit_rows"] == "5000"
    assert run.data.tags["lineage.commit"] != ""
    assert any(k.startswith("lineage.file.") for k in run.data.tags)
    assert len(run.inputs.dataset_inputs) == 1
    assert "valid_roc_auc" in run.data.metrics
    assert MlflowClient().get_run(run.info.run_id).outputs.model_outputs, "the train step logged no model"
    assert by_entry["evaluate"].data.params.get("train_run_id", run.info.run_id) == run.info.run_id


@pytest.mark.parametrize("in_process", [True])
def test_main_workflow_chains_the_steps_and_tags_the_champion(tmp_path, monkeypatch, in_process):
    """The five steps as runs under one parent, the champion registered with its lineage (in-process:
    the `mlflow run` path of each step is the one the test above checks)."""
    env = isolated_env(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    runs = workflow.main_workflow(settings, n_estimators=60, train_rows=20_000, in_process=in_process)
    table = workflow.steps_table(runs)
    assert list(table.index) == ["main", *workflow.STEPS]
    assert (table["status"] == "FINISHED").all()
    assert table.loc[list(workflow.STEPS), "nested under main"].all()
    client = MlflowClient()
    assert client.get_run(runs["promote"]).data.tags["promotion.decision"] == "promoted"
    version = client.get_model_version_by_alias(settings.registered_model_name, settings.champion_alias)
    assert version.tags["lineage.run_id"] == runs["train"]
    trees = {k: v for k, v in version.tags.items() if k.startswith("param.") and k.endswith("n_estimators")}
    assert trees and set(trees.values()) == {"60"}, trees
