"""User configuration (server, authentication, program defaults) and the user's private folders.

The file is JSON in the user's config folder, owner-only because it may hold a token (when the
computer has no OS keychain to keep it in, see keychain.py). The environment variables
DHIMS2_SERVER and DHIMS2_TOKEN override the file without being written to it.

A token belongs to the server it was saved for (`token_server`): `token_for` hands it out only
for an address of that same origin, and `with_changes` forgets it when the server changes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dhims2.dhis2.address import normalised_base_url, origin
from dhims2.dhis2.errors import InvalidInput
from dhims2.dhis2.uids import is_uid
from dhims2.errors import Dhims2Error
from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, STAGE_UID
from dhims2.workspace import keychain

APP_NAME = "dhims2-uploader"
CONFIG_FILE_NAME = "config.json"
DEFAULT_SERVER = "https://events.chimgh.org/events/"
AUTH_MODES = ("session", "token")
MAX_BATCH_SIZE = 1000
MAX_RETENTION_DAYS = 3650
ENV_OVERRIDES = {"server": "DHIMS2_SERVER", "token": "DHIMS2_TOKEN"}
# Set in the file when the token itself is in the OS keychain under `token_server`'s origin.
KEYCHAIN_MARK = "token_in_keychain"
PASSWORD_VARIABLE = "DHIMS2_PASSWORD"
LOCAL_SYSTEM_SID = "S-1-5-18"  # Windows itself (backup, antivirus) keeps access
# Windows ignores file modes and the umask; private folders get an access control list instead.
_ON_WINDOWS = sys.platform == "win32"
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)  # a host must not flash a console


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
    # The server the token was saved for; a token without one belongs to `server`.
    token_server: str | None = None
    program: str = PROGRAM_UID
    stage: str = STAGE_UID
    org_unit: str = ORG_UNIT_UID
    # Events per import job; None: sized to the server's measured job costs.
    batch_size: int | None = None
    allow_insecure_http: bool = False
    retention_days: int = 30

    def __post_init__(self) -> None:
        # A Config that exists is a valid one: every way of building one passes through here.
        object.__setattr__(self, "server", normalise_server_url(self.server))
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"auth must be one of {', '.join(AUTH_MODES)}", field="auth")
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            raise ConfigError("token must be a non-empty string when set", field="token")
        if self.token is None:
            object.__setattr__(self, "token_server", None)
        else:
            bound = self.server if self.token_server is None else self.token_server
            object.__setattr__(self, "token_server", normalise_server_url(bound))
        for name in ("program", "stage", "org_unit"):
            if not is_uid(getattr(self, name)):
                raise ConfigError(f"{name} must be a DHIS2 UID (11 letters or digits)", field=name)
        if self.batch_size is not None:
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

    def token_for(self, server: str) -> str | None:
        """The saved token if it was saved for `server`'s origin; None for any other server."""
        if self.token is None or self.token_server is None:
            return None
        return self.token if same_origin(self.token_server, server) else None

    def with_changes(self, **changes: Any) -> Config:
        """These settings changed; a new server origin without a new token forgets the token."""
        server = changes.get("server", self.server)
        if "token" in changes:
            changes["token_server"] = server if changes["token"] is not None else None
        elif self.token is not None and not same_origin(self.token_server or self.server, server):
            changes["token"] = None
            changes["token_server"] = None
        return dataclasses.replace(self, **changes)


def same_origin(first: str, second: str) -> bool:
    """Both addresses name the same scheme, host and port (the token's security boundary)."""
    try:
        return origin(normalised_base_url(first)) == origin(normalised_base_url(second))
    except InvalidInput:
        return False


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
    try:
        # One spelling per server, as the client and the store use it.
        return normalised_base_url(url) + "/"
    except InvalidInput as error:
        raise ConfigError(f"server: {error}", field="server") from None


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
    if os.environ.get("DHIMS2_DATA_DIR"):
        return _chosen_dir("DHIMS2_DATA_DIR")
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
    if os.environ.get("DHIMS2_LOG_DIR"):
        return _chosen_dir("DHIMS2_LOG_DIR")
    import platformdirs

    return _private_dir(Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)))


def load_config(*, apply_env: bool = True) -> Config:
    """The saved configuration (defaults where nothing is saved), with environment overrides."""
    path = config_path()
    stored = _read_config_file(path)
    if stored.get(KEYCHAIN_MARK) and stored.get("token") is None and stored.get("token_server"):
        stored["token"] = keychain.read(_keychain_account(stored["token_server"]))
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
    if "token" in overrides:
        # A token given in the environment is for the server this run talks to.
        overrides["token_server"] = overrides.get("server", config.server)
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
    """Write `config` atomically, readable by the owner only; returns the file's path.

    The token goes to the OS keychain when there is one, and into the file otherwise; a token
    the new settings no longer hold is removed from the keychain.
    """
    path = config_path()
    settings = dataclasses.asdict(config)
    previous = _previous_keychain_account(path)
    if config.token is not None and config.token_server is not None:
        account = _keychain_account(config.token_server)
        if keychain.store(account, config.token):
            settings.update(token=None, **{KEYCHAIN_MARK: True})
            previous = None if previous == account else previous
    if previous is not None:
        keychain.forget(previous)
    text = json.dumps(settings, indent=2, sort_keys=True) + "\n"
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


def token_location() -> str:
    """Where a saved token is kept on this computer, in words for the person asking."""
    if keychain.available():
        return "the OS keychain"
    return f"{config_path()} (readable by you only)"


def _keychain_account(server: str) -> str:
    scheme, host, port = origin(normalised_base_url(server))
    return f"{scheme}://{host}:{port}"


def _previous_keychain_account(path: Path) -> str | None:
    try:
        stored = _read_config_file(path)
    except ConfigError:
        return None
    server = stored.get("token_server")
    if not stored.get(KEYCHAIN_MARK) or not isinstance(server, str):
        return None
    try:
        return _keychain_account(server)
    except InvalidInput:
        return None


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


def set_aside_damaged_config() -> Path:
    """Moves a config file that cannot be used out of the way (kept, never deleted, since it may
    hold the only copy of a setting), so that new settings can be saved; returns where it went."""
    path = config_path()
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    try:
        os.replace(path, aside)
    except OSError as error:
        raise ConfigError(f"cannot move {path} aside ({error.strerror})") from None
    return aside


def _chosen_dir(variable: str) -> Path:
    """The folder an environment variable names, made private; one that cannot be made is a
    clear error naming the variable (not a traceback from deep inside whatever needed it)."""
    path = Path(os.environ[variable])
    try:
        return _private_dir(path)
    except OSError as error:
        raise ConfigError(f"cannot use the folder {path} ({variable}): {error.strerror}") from None


def _private_dir(path: Path) -> Path:
    # mode applies only to folders created here; an existing folder the user chose is left as is.
    created = not path.is_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created and _ON_WINDOWS:
        restrict_to_current_user(path)
    return path


def restrict_to_current_user(folder: Path) -> None:
    """Windows: leave `folder`, and everything that will be in it, to this user (and SYSTEM).

    Best effort: a failure leaves the folder as Windows made it, which under the user's profile
    is already closed to other standard users; it must not stop the host from starting.
    """
    try:
        sid = current_user_sid(
            run_windows_tool(windows_tool_command("whoami", "/user", "/fo", "csv", "/nh"))
        )
        run_windows_tool(owner_only_acl_command(folder, sid))
    except (OSError, ValueError, subprocess.SubprocessError):
        pass


def windows_tool_command(tool: str, *arguments: str) -> list[str]:
    """A System32 tool by its full path, so that no program of that name elsewhere runs."""
    system_root = os.environ.get("SYSTEMROOT") or "C:\\Windows"
    return [f"{system_root}\\System32\\{tool}.exe", *arguments]


def owner_only_acl_command(folder: Path, user_sid: str) -> list[str]:
    """The icacls command that drops the inherited entries of `folder` (Users, Administrators)
    and grants full control to `user_sid` and SYSTEM alone, inherited by all it will hold."""
    inherited_by_all = "(OI)(CI)F"
    return windows_tool_command(
        "icacls",
        str(folder),
        "/inheritance:r",
        "/grant:r",
        f"*{user_sid}:{inherited_by_all}",
        f"*{LOCAL_SYSTEM_SID}:{inherited_by_all}",
        "/q",
    )


def current_user_sid(whoami_csv: str) -> str:
    """The SID in `whoami /user /fo csv /nh` output (one row: "domain\\user","S-1-5-...")."""
    for row in csv.reader(whoami_csv.splitlines()):
        if len(row) == 2 and row[1].startswith("S-1-"):
            return row[1]
    raise ValueError("whoami printed no SID")


def run_windows_tool(command: list[str]) -> str:
    """Run a Windows tool without a console window; its output, or CalledProcessError."""
    return subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=30, creationflags=_NO_WINDOW
    ).stdout
