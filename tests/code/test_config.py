"""Configuration: embedded defaults, .env overrides, environment precedence, clear errors."""

from pathlib import Path

import pytest

from mlsys.config import ConfigError, load_settings, mask_password, repo_root


def test_defaults_without_env_file_use_embedded_stores(tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={})
    root = repo_root()
    assert settings.mlflow_tracking_uri == f"sqlite:///{root / 'mlflow.db'}"
    assert settings.mlflow_artifact_root == (root / "mlruns").as_uri()
    assert settings.database_url == f"sqlite:///{root / '03-data' / 'warehouse.db'}"
    assert settings.tracking_is_local
    assert settings.champion_alias == "champion"
    assert settings.fast is True and settings.seed == 42
    assert settings.log_dir == root / "logs"


def test_env_file_switches_stores_by_url(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
        "DATABASE_URL=postgresql+psycopg://mlsys:secret@127.0.0.1:5432/warehouse\n"
        "MLSYS_SEED=7\nMLSYS_FAST=false\nMLSYS_LOG_LEVEL=debug\n"
    )
    settings = load_settings(env_file=env, environ={})
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert not settings.tracking_is_local
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert (settings.seed, settings.fast, settings.log_level) == (7, False, "DEBUG")
    assert "secret" not in str(settings.as_dict())


def test_process_environment_beats_env_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("MLSYS_SEED=7\n")
    settings = load_settings(env_file=env, environ={"MLSYS_SEED": "11", "UNRELATED": "x"})
    assert settings.seed == 11


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("MLSYS_SEED", "seven", "MLSYS_SEED"), ("MLSYS_FAST", "maybe", "MLSYS_FAST"), ("MLSYS_LOG_LEVEL", "LOUD", "MLSYS_LOG_LEVEL")],
)
def test_bad_values_name_the_key(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env_file=tmp_path / "absent.env", environ={key: value})


def test_relative_dirs_resolve_against_the_repo(tmp_path: Path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={"MLSYS_LOG_DIR": "elsewhere/logs"})
    assert settings.log_dir == repo_root() / "elsewhere" / "logs"


def test_env_example_documents_every_key() -> None:
    example = (repo_root() / ".env.example").read_text()
    documented = {line.split("=", 1)[0].lstrip("# ").strip() for line in example.splitlines() if "=" in line}
    from mlsys.config import _KEYS

    assert _KEYS <= documented, f"undocumented keys: {sorted(_KEYS - documented)}"


def test_mask_password() -> None:
    assert mask_password("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_password("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_printing_settings_masks_passwords(tmp_path) -> None:
    settings = load_settings(env_file=tmp_path / "absent.env", environ={"DATABASE_URL": "postgresql+psycopg://u:s3cret@h/db"})
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    assert "u:***@h/db" in repr(settings)
