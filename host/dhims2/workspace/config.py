"""User configuration (server, authentication, program defaults) and the user's private folders.

The file is JSON in the user's config folder, owner-only because it may hold a token. The
environment variables DHIMS2_SERVER and DHIMS2_TOKEN override the file without being written to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dhims2.dhis2.uids import is_uid
from dhims2.errors import Dhims2Error
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID

APP_NAME = "dhims2-uploader"
CONFIG_FILE_NAME = "config.json"
DEFAULT_SERVER = "https://events.chimgh.org/events/"
AUTH_MODES = ("session", "token")
MAX_BATCH_SIZE = 1000
MAX_RETENTION_DAYS = 3650
ENV_OVERRIDES = {"server": "DHIMS2_SERVER", "token": "DHIMS2_TOKEN"}


class ConfigError(Dhims2Error, ValueError):
    """The configuration cannot be used; the message names the file or variable and the field."""

    code = "NOT_CONFIGURED"  # the protocol error code a reply carries for it

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.details = {"field": field} if field else {}


@dataclass(frozen=True)
class Config:
    server: str = DEFAULT_SERVER
    auth: str = "session"
    token: str | None = None
    program: str = PROGRAM_UID
    stage: str = STAGE_UID
    org_unit: str = ORG_UNIT_UID
    batch_size: int = 100
    allow_insecure_http: bool = False
    retention_days: int = 30

    def __post_init__(self) -> None:
        # A Config that exists is a valid one: every way of building one passes through here.
        object.__setattr__(self, "server", normalise_server_url(self.server))
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}", field="auth")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ConfigError("token must be a non-empty string when set", field="token")
        for name in ("program", "stage", "org_unit"):
            if not is_uid(getattr(self, name)):
                raise ConfigError(f"{name} must be a DHIS2 UID (11 letters or digits)", field=name)
        _require_whole_number("batch_size", self.batch_size, MAX_BATCH_SIZE)
        _require_whole_number("retention_days", self.retention_days, MAX_RETENTION_DAYS)
        if not isinstance(self.allow_insecure_http, bool):
            raise ConfigError(
                "allow_insecure_http must be true or false", field="allow_insecure_http"
            )

    def public_view(self) -> dict[str, Any]:
        """All settings but the token (it never leaves the host); `token_set` says if one is set."""
        view = dataclasses.asdict(self)
        view["token_set"] = view.pop("token") is not None
        return view


def normalise_server_url(url: object) -> str:
    """`url` as the base of the DHIS2 instance, ending in "/" so API paths join onto it."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("server must be a non-empty http:// or https:// address", field="server")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "server must be an http:// or https:// address with a host name", field="server"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError("server must not contain a user name or password", field="server")
    if parts.query or parts.fragment:
        raise ConfigError("server must not contain a query (?) or fragment (#)", field="server")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def config_dir() -> Path:
    override = os.environ.get("DHIMS2_CONFIG_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def data_dir() -> Path:
    """The private folder for the store, the venv and the launcher; created on first use."""
    override = os.environ.get("DHIMS2_DATA_DIR")
    if override:
        return _private_dir(Path(override))
    try:
        import platformdirs
    except ImportError:
        # install.py runs on a bare Python before the private venv (and platformdirs) exists.
        return _private_dir(bare_python_data_dir())
    return _private_dir(Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)))


def bare_python_data_dir() -> Path:
    """platformdirs' user data folder for this app, worked out with the standard library."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData/Local") / APP_NAME
    if sys.platform == "darwin":
        return Path.home() / "Library/Application Support" / APP_NAME
    return (
        Path(os.environ.get("XDG_DATA_HOME", "").strip() or Path.home() / ".local/share") / APP_NAME
    )


def log_dir() -> Path:
    override = os.environ.get("DHIMS2_LOG_DIR")
    if override:
        return _private_dir(Path(override))
    import platformdirs

    return _private_dir(Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)))


def load_config(*, apply_env: bool = True) -> Config:
    """The saved configuration (defaults where nothing is saved), with environment overrides."""
    path = config_path()
    stored = _read_config_file(path)
    known = {field.name for field in dataclasses.fields(Config)}
    # Keys from a newer version are kept out rather than refused, so a downgrade still starts.
    try:
        config = Config(**{name: value for name, value in stored.items() if name in known})
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}", field=error.field) from None
    if not apply_env:
        return config
    overrides: dict[str, Any] = {
        name: os.environ[var] for name, var in ENV_OVERRIDES.items() if os.environ.get(var)
    }
    try:
        return dataclasses.replace(config, **overrides)
    except ConfigError as error:
        raise ConfigError(
            f"environment override ({', '.join(overrides)}): {error}", field=error.field
        ) from None


def env_overridden_fields() -> list[str]:
    """Fields whose value comes from the environment rather than the file."""
    return [name for name, var in ENV_OVERRIDES.items() if os.environ.get(var)]


def save_config(config: Config) -> Path:
    """Write `config` atomically, readable by the owner only; returns the file's path."""
    path = config_path()
    text = json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True) + "\n"
    try:
        folder = _private_dir(path.parent)
        # mkstemp creates the file 0600, so the token is never readable by others, even briefly.
        handle, temp_name = tempfile.mkstemp(dir=folder, prefix=".config-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as temp_file:
                temp_file.write(text)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.replace(temp_name, path)
        finally:
            Path(temp_name).unlink(missing_ok=True)  # already gone when the replace succeeded
    except OSError as error:
        raise ConfigError(f"cannot write {path} ({type(error).__name__})") from None
    return path


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read ({type(error).__name__})") from None
    try:
        stored = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path} is not valid JSON (line {error.lineno}); save the settings again"
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return stored


def _require_whole_number(name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise ConfigError(f"{name} must be a whole number from 1 to {maximum}", field=name)


def _private_dir(path: Path) -> Path:
    # mode applies only to folders created here; an existing folder the user chose is left as is.
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
