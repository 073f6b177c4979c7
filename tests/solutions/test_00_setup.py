"""The solutions to lesson 00's exercises give the right answers (`02-notebooks/solutions/00_setup.py`)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import mlflow
import pytest

from mlsys import tracking
from mlsys.config import load_settings
from mlsys.features import feature_table
from mlsys.logger import setup_logging


def test_exercise_1_environment_beats_env_file_beats_defaults(solutions: ModuleType, tmp_path: Path) -> None:
    table = solutions.exercise_1(tmp_path)
    defaults = load_settings(env_file=tmp_path / "absent.env", environ={})
    assert table["seed"].tolist() == [defaults.seed, 7, 11]
    assert table["log_level"].tolist() == [defaults.log_level, "DEBUG", "DEBUG"]


def test_exercise_2_only_as_dict_masks_the_password(solutions: ModuleType, tmp_path: Path) -> None:
    answer = solutions.exercise_2(tmp_path, password="pa55word")
    settings = load_settings(env_file=tmp_path / ".env", environ={})
    assert answer["as_dict() shows the password"] is False
    assert "***" in settings.as_dict()["database_url"]
    # the answer about print() must describe what print() really shows
    assert answer["print(settings) shows the password"] == ("pa55word" in repr(settings))


def test_exercise_3_warnings_from_both_loggers_reach_the_sink(solutions: ModuleType, tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={"MLSYS_LOG_DIR": str(tmp_path / "logs")})
    setup_logging(settings, force=True, console=False)
    assert solutions.exercise_3() == ["WARNING weather file is 2 h old", "WARNING retrying the tracking store"]


def test_exercise_4_finds_only_this_sessions_run(solutions: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "_SESSION", {})  # the sessions below end with this test
    table = feature_table()
    # a run with the same tag from an earlier session must not be found
    tracking.start_session("00")
    with tracking.run("00-exercise", exercise="4"):
        mlflow.log_metric("train_late_rate", 0.0)
    tracking.start_session("00")
    answer = solutions.exercise_4(table)
    assert answer["found_run_ids"] == [answer["logged_run_id"]]
    expected = table.loc[table["split"] == "train", "late"].mean()
    assert answer["train_late_rate"] == pytest.approx(expected, abs=1e-4)
    assert mlflow.get_run(answer["logged_run_id"]).data.tags["lesson"] == "00"
