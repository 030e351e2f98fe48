"""User configuration: defaults, the owner-only file, environment overrides, bad files."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import platformdirs
import pytest

from dhims2.workspace import config
from dhims2.workspace.config import Config, ConfigError


@pytest.fixture(autouse=True)
def config_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(folder))
    for variable in ("DHIMS2_SERVER", "DHIMS2_TOKEN", "DHIMS2_DATA_DIR", "DHIMS2_LOG_DIR"):
        monkeypatch.delenv(variable, raising=False)
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_without_a_file_the_defaults_are_dhims2s() -> None:
    loaded = config.load_config()
    assert loaded == Config()
    assert loaded.server == "https://events.chimgh.org/events/"
    assert (loaded.auth, loaded.token, loaded.batch_size) == ("session", None, None)
    assert (loaded.program, loaded.stage, loaded.org_unit) == (
        "fFYTJRzD2qq",
        "LR7JT7ZNg8E",
        "duCDqCRlWG1",
    )
    assert (loaded.allow_insecure_http, loaded.retention_days) == (False, 30)


def test_saved_settings_load_back_from_an_owner_only_file(config_folder: Path) -> None:
    saved = Config(
        server="https://dhims2.example.org/ctx/", auth="token", token="d2pat_x", batch_size=7
    )
    path = config.save_config(saved)
    assert path == config_folder / "config.json"
    assert config.load_config() == saved
    assert mode(path) == 0o600
    assert mode(config_folder) == 0o700
    assert json.loads(path.read_text("utf-8"))["token"] == "d2pat_x"


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_files(config_folder: Path) -> None:
    config.save_config(Config(batch_size=5))
    config.save_config(Config(batch_size=6))
    assert [p.name for p in config_folder.iterdir()] == ["config.json"]
    assert config.load_config().batch_size == 6


def test_environment_overrides_the_file_but_is_never_saved(
    monkeypatch: pytest.MonkeyPatch, config_folder: Path
) -> None:
    config.save_config(Config(server="https://saved.example.org/", token="saved-token"))
    monkeypatch.setenv("DHIMS2_SERVER", "http://127.0.0.1:8080/sandbox")
    monkeypatch.setenv("DHIMS2_TOKEN", "env-token")
    effective = config.load_config()
    assert (effective.server, effective.token) == ("http://127.0.0.1:8080/sandbox/", "env-token")
    assert config.env_overridden_fields() == ["server", "token"]
    stored = config.load_config(apply_env=False)
    assert (stored.server, stored.token) == ("https://saved.example.org/", "saved-token")
    config.save_config(dataclasses.replace(stored, batch_size=9))
    on_disk = json.loads((config_folder / "config.json").read_text("utf-8"))
    assert (on_disk["server"], on_disk["token"]) == ("https://saved.example.org/", "saved-token")


def test_an_empty_environment_variable_does_not_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHIMS2_SERVER", "")
    assert config.load_config().server == config.DEFAULT_SERVER
    assert config.env_overridden_fields() == []


def test_a_bad_environment_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHIMS2_SERVER", "events.chimgh.org")
    with pytest.raises(ConfigError, match="environment override \\(server\\)") as refused:
        config.load_config()
    assert refused.value.field == "server"


def test_the_public_view_never_holds_the_token() -> None:
    view = Config(token="d2pat_secret").public_view()
    assert "token" not in view
    assert "d2pat_secret" not in json.dumps(view)
    assert view["token_set"] is True
    assert Config().public_view()["token_set"] is False


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://events.chimgh.org/events", "https://events.chimgh.org/events/"),
        ("HTTPS://Events.CHIMGH.org/events/", "https://events.chimgh.org/events/"),
        ("  https://dhims2.example.org  ", "https://dhims2.example.org/"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
    ],
)
def test_server_addresses_are_normalised_to_a_base_ending_in_a_slash(
    given: str, stored: str
) -> None:
    assert Config(server=given).server == stored


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("", "non-empty"),
        ("events.chimgh.org", "http:// or https://"),
        ("ftp://events.chimgh.org/", "http:// or https://"),
        ("https://", "host name"),
        ("https://user:pass@events.chimgh.org/", "user name or password"),
        ("https://events.chimgh.org/?next=/", "query"),
        ("https://events.chimgh.org/#/", "fragment"),
    ],
)
def test_unusable_server_addresses_are_refused(server: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as refused:
        Config(server=server)
    assert refused.value.field == "server"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("auth", "basic"),
        ("token", ""),
        ("program", "short"),
        ("stage", 12345678901),
        ("org_unit", "1uCDqCRlWG1"),
        ("batch_size", 0),
        ("batch_size", 1001),
        ("batch_size", True),
        ("batch_size", "100"),
        ("retention_days", 0),
        ("allow_insecure_http", "false"),
    ],
)
def test_each_invalid_setting_is_refused_by_name(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field) as refused:
        Config(**{field: value})  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_file_that_is_not_json_is_named_with_its_line(config_folder: Path) -> None:
    config_folder.mkdir()
    (config_folder / "config.json").write_text('{\n  "server": ', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.json is not valid JSON \(line 2\)"):
        config.load_config()


def test_a_file_that_is_not_an_object_is_refused(config_folder: Path) -> None:
    config_folder.mkdir()
    (config_folder / "config.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        config.load_config()


def test_a_bad_value_in_the_file_names_the_file_and_the_field(config_folder: Path) -> None:
    config_folder.mkdir()
    (config_folder / "config.json").write_text('{"batch_size": -3}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.json: batch_size") as refused:
        config.load_config()
    assert refused.value.code == "NOT_CONFIGURED"


def test_unknown_keys_from_another_version_are_ignored(config_folder: Path) -> None:
    config_folder.mkdir()
    (config_folder / "config.json").write_text('{"batch_size": 3, "future": 1}', encoding="utf-8")
    assert config.load_config().batch_size == 3


def test_data_and_log_folders_follow_the_environment_and_are_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DHIMS2_DATA_DIR", str(tmp_path / "data" / "inner"))
    monkeypatch.setenv("DHIMS2_LOG_DIR", str(tmp_path / "logs"))
    assert config.data_dir() == tmp_path / "data" / "inner"
    assert config.log_dir() == tmp_path / "logs"
    assert mode(tmp_path / "data" / "inner") == 0o700
    assert mode(tmp_path / "logs") == 0o700


def test_default_folders_are_platformdirs_user_folders(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DHIMS2_CONFIG_DIR")
    for variable in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    app = "dhims2-uploader"
    assert config.config_dir() == Path(platformdirs.user_config_dir(app, appauthor=False))
    assert config.data_dir() == Path(platformdirs.user_data_dir(app, appauthor=False))
    assert config.log_dir() == Path(platformdirs.user_log_dir(app, appauthor=False))
    assert config.data_dir().is_relative_to(tmp_path)


@pytest.mark.parametrize("xdg_data_home", [None, "elsewhere"])
def test_the_bare_python_data_folder_matches_platformdirs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg_data_home: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg_data_home is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / xdg_data_home))
    expected = Path(platformdirs.user_data_dir("dhims2-uploader", appauthor=False))
    assert config.bare_python_data_dir() == expected


def test_a_folder_that_cannot_be_created_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "occupied").write_text("a file, not a folder", encoding="utf-8")
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(tmp_path / "occupied" / "config"))
    with pytest.raises(ConfigError, match=r"cannot write .*config\.json"):
        config.save_config(Config())
