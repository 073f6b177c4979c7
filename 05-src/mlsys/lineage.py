"""Lineage: from a registered model back to the data files, the code commit and the parameters.

Every training run records what it was made from:

* its training rows as an MLflow dataset input (`mlflow.data.from_pandas` + `log_input`): name =
  the feature table's cache key, source = that Parquet file, digest = MLflow's hash of the rows;
* the SHA-256 of every raw file the features are built from (`lineage.file.<name>` tags, from the
  data folder's `SHA256SUMS`, which `mlsys.data` checks on every load);
* the code commit (`lineage.commit`: `git rev-parse HEAD`, "unknown" outside git) and whether the
  working tree differed from it;
* its parameters (MLflow params).

`promote.promote` copies the same tags, and the parameters as `param.<name>`, onto the registered
version, so `trace("champion")` can answer from the registry alone: which files, which commit,
which parameters. `stale_inputs` says which files changed since.
"""

from __future__ import annotations

import hashlib
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.models import infer_signature

from mlsys import data, features, tracking
from mlsys.config import Settings, get_settings, repo_root
from mlsys.pipeline import INPUT_COLUMNS

PREFIX = "lineage."
FILE_PREFIX = f"{PREFIX}file."
PARAM_PREFIX = "param."
#: The raw files the feature table is built from (the others are reference tables the service reads).
FEATURE_SOURCES = ("flights", "weather", "planes")
#: MLflow caps a tag value; parameter values longer than this are cut.
MAX_TAG = 5000


def code_commit(root: Path | None = None) -> tuple[str, bool | None]:
    """The checked-out commit and whether tracked files differ from it; ("unknown", None) outside git."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status.strip())


def raw_files(settings: Settings | None = None) -> pd.DataFrame:
    """The raw files the features come from: name and SHA-256 (as `mlsys.data` verifies them)."""
    settings = settings or get_settings()
    raw_dir = data.ensure_raw(settings)
    expected = data.expected_checksums(raw_dir)
    rows = [{"table": t, "file": data.raw_path(t, raw_dir, expected).name} for t in FEATURE_SOURCES]
    return pd.DataFrame([{**r, "sha256": expected[r["file"]]} for r in rows])


def data_tags(settings: Settings | None = None) -> dict[str, str]:
    """Tags naming the raw files (by checksum), the feature table (by cache key) and the commit."""
    settings = settings or get_settings()
    commit, dirty = code_commit(settings.root)
    files = raw_files(settings)
    return {
        **{f"{FILE_PREFIX}{row.file}": row.sha256 for row in files.itertuples()},
        f"{PREFIX}feature_table": features.feature_cache_path(settings).name,
        f"{PREFIX}commit": commit,
        f"{PREFIX}uncommitted_changes": "unknown" if dirty is None else str(dirty).lower(),
    }


def training_dataset(frame: pd.DataFrame, settings: Settings | None = None, label: str = "late") -> Dataset:
    """The training rows as an MLflow dataset: named and sourced by the feature table they come from.

    A `MetaDataset` (name, source, digest, schema) rather than `mlflow.data.from_pandas`, whose
    schema inference and profile over 60,000 rows took ~17 s here; the schema comes from a few rows.
    """
    settings = settings or get_settings()
    cache = features.feature_cache_path(settings)
    columns = [c for c in ["flight_id", *INPUT_COLUMNS, label] if c in frame]
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: the schema is a record, not a contract
        warnings.simplefilter("ignore", UserWarning)
        schema = infer_signature(frame[columns].head(100)).inputs
        # resolving a plain path warns that MLflow registered its local-file source twice
        source = resolve_dataset_source(str(cache))
    return MetaDataset(source, name=cache.stem, digest=rows_digest(frame, label), schema=schema)


def rows_digest(frame: pd.DataFrame, label: str = "late") -> str:
    """Which rows (flight ids) with which labels: 12 hex digits, the same on every machine.

    MLflow's own digest hashes a sample of every column and takes seconds on 60,000 rows; the
    features are a function of the files and the commit, so ids and labels pin the rows down.
    """
    columns = [c for c in ("flight_id", label) if c in frame] or list(frame.columns)
    hashed = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:12]


def log_training_data(frame: pd.DataFrame, settings: Settings | None = None, label: str = "late", context: str = "training") -> dict[str, str]:
    """In the active run: the rows as a dataset input, and the file/commit tags. Returns the tags."""
    settings = settings or get_settings()
    dataset = training_dataset(frame, settings, label)
    mlflow.log_input(dataset, context=context)
    tags = {**data_tags(settings), f"{PREFIX}dataset": dataset.name, f"{PREFIX}dataset_digest": dataset.digest, f"{PREFIX}rows": str(len(frame))}
    mlflow.set_tags(tags)
    return tags


def model_params(model: Any) -> dict[str, object]:
    """Every (nested) hyperparameter of `model` whose value is a plain scalar (what `log_params` takes)."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    return {k: v for k, v in params.items() if isinstance(v, str | int | float | bool) or v is None}


def tag_version(version: str, run_id: str, settings: Settings | None = None, params: Mapping[str, object] | None = None) -> dict[str, str]:
    """Copy a run's lineage tags and parameters (`params`, else the run's) onto a registered version."""
    settings = settings or get_settings()
    client = MlflowClient()
    run = client.get_run(run_id)
    params = run.data.params if params is None else params
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(PREFIX)}
    tags |= {f"{PARAM_PREFIX}{k}": str(v)[:MAX_TAG] for k, v in params.items()}
    tags[f"{PREFIX}run_id"] = run_id
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model_name, version, key, value)
    return tags


def trace(alias: str | None = None, settings: Settings | None = None) -> dict[str, object]:
    """`flight-delay@<alias>` (default the champion) back to its run, data files, commit and parameters."""
    settings = settings or get_settings()
    tracking.setup_mlflow(settings)
    client = MlflowClient()
    alias = alias or settings.champion_alias
    version = client.get_model_version_by_alias(settings.registered_model_name, alias)
    tags = dict(version.tags)
    run_id = tags.get(f"{PREFIX}run_id") or version.run_id
    inputs = client.get_run(run_id).inputs.dataset_inputs if run_id else []
    datasets = [
        {"name": d.dataset.name, "digest": d.dataset.digest, "source": Path(str(d.dataset.source)).name if d.dataset.source else "",
         "context": next((t.value for t in d.tags if t.key == "mlflow.data.context"), "")}
        for d in inputs
    ]
    return {
        "model": f"{settings.registered_model_name}@{alias}",
        "version": str(version.version),
        "run_id": run_id,
        "files": {k.removeprefix(FILE_PREFIX): v for k, v in tags.items() if k.startswith(FILE_PREFIX)},
        "feature_table": tags.get(f"{PREFIX}feature_table", ""),
        "commit": tags.get(f"{PREFIX}commit", "unknown"),
        "uncommitted_changes": tags.get(f"{PREFIX}uncommitted_changes", "unknown"),
        "datasets": datasets,
        "params": {k.removeprefix(PARAM_PREFIX): v for k, v in tags.items() if k.startswith(PARAM_PREFIX)},
    }


def trace_table(traced: Mapping[str, object], params: Sequence[str] | None = None) -> pd.DataFrame:
    """`trace`'s answer as one table (what, name, value), checksums shortened to 12 digits.

    The commit reads "checked out now" when it is the working tree's HEAD (else its first 12
    digits); `params` keeps only parameters whose names end with one of these.
    """
    rows = [("model", str(traced["model"]), f"version {traced['version']}")]
    rows += [("raw file", name, sha[:12]) for name, sha in dict(traced["files"]).items()]
    rows.append(("feature table", "cache key", str(traced["feature_table"])))
    rows += [("dataset input", d["context"], f"{d['name']} (digest {d['digest']})") for d in traced["datasets"]]  # type: ignore[union-attr]
    commit = str(traced["commit"])
    rows.append(("code", "commit", "checked out now" if commit == code_commit()[0] else commit[:12]))
    kept = {k: v for k, v in dict(traced["params"]).items() if params is None or k.endswith(tuple(params))}
    rows += [("parameter", k, v) for k, v in sorted(kept.items())]
    return pd.DataFrame(rows, columns=["what", "name", "value"])


def stale_inputs(traced: Mapping[str, object], settings: Settings | None = None) -> pd.DataFrame:
    """Each input the model was trained on against the data folder now: which differ.

    A model whose row says `changed` was trained on other data than the course now reads.
    """
    settings = settings or get_settings()
    now = data_tags(settings)
    rows = []
    for name, then in dict(traced["files"]).items():
        current = now.get(f"{FILE_PREFIX}{name}", "missing")
        rows.append({"input": name, "trained on": then[:12], "now": current[:12], "status": "same" if current == then else "changed"})
    then, current = str(traced["feature_table"]), now[f"{PREFIX}feature_table"]
    rows.append({"input": "feature table", "trained on": then, "now": current, "status": "same" if current == then else "changed"})
    return pd.DataFrame(rows)


def corrected_copy(settings: Settings, folder: Path, table: str = "weather", drop_last: int = 1) -> Settings:
    """A data folder like the course's with `drop_last` records withdrawn from `table`'s file, and
    settings pointing at it: what a data provider's correction looks like to the pipeline.

    The copy's `SHA256SUMS` is recorded afresh (`data.record_checksums`), as a team would on receiving it.
    """
    from mlsys.config import override

    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    source = data.ensure_raw(settings)
    for path in source.iterdir():
        if path.is_file():
            (raw / path.name).write_bytes(path.read_bytes())
    target = data.raw_path(table, raw, data.expected_checksums(raw))
    if target.suffix != ".csv":
        raise ValueError(f"{target.name}: only a plain CSV file can be corrected here")
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[:-drop_last]))
    data.record_checksums(folder, settings)
    return override(settings, data_dir=folder)
