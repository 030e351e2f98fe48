"""A saved token goes only to the server it was saved for, whichever way the server changes.

The second server is a real HTTP server on loopback that records every request's headers, as a
mistyped or phished address would; the first is the sandbox. The CLI and the host run as real
processes with their own config folder.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from dhims2.forms.metadata import PROGRAM_UID, STAGE_UID
from dhims2.forms.synthetic import synthetic_rows, write_csv
from dhims2.queue.store import STORE_FILE_NAME, NewRecord, Store
from dhims2.workspace import config as settings
from host_process import Host

PYTHON = sys.executable
CHROME_ARGV = ["chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/", "--parent-window=0"]
# keyring's own always-failing backend: "no OS keychain here", on any machine the tests run on.
NO_KEYCHAIN = "keyring.backends.fail.Keyring"


class Recorder(ThreadingHTTPServer):
    """Answers 401 to everything and remembers which requests carried credentials."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.with_credentials: list[str] = []
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/events"


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.headers.get("Authorization") or "JSESSIONID" in (self.headers.get("Cookie") or ""):
            self.server.with_credentials.append(self.path)
        body = b'{"httpStatusCode":401,"message":"Unauthorized"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def phished() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def file_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHON_KEYRING_BACKEND": NO_KEYCHAIN}


def dhims2(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dhims2.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
    )


def records(tmp_path: Path, count: int) -> Path:
    return write_csv(tmp_path / "records.csv", list(synthetic_rows(count)))


def save_token(sandbox, env: dict[str, str]) -> str:
    token = sandbox.create_token()
    saved = dhims2("config", "--server", sandbox.base_url, "--token", "-", env=env, stdin=token)
    assert saved.returncode == 0, saved.stderr
    return token


def test_changing_the_server_with_config_forgets_the_token(sandbox, phished, tmp_path, file_env):
    save_token(sandbox, file_env)
    changed = dhims2("config", "--server", phished.base_url, env=file_env)
    assert changed.returncode == 0, changed.stderr
    assert "forgot the token" in changed.stdout
    shown = json.loads(dhims2("config", "--json", env=file_env).stdout)
    assert shown["token_set"] is False
    upload = dhims2("upload", str(records(tmp_path, 2)), env=file_env)
    assert upload.returncode == 2
    assert "no DHIS2 credentials" in upload.stderr
    assert phished.with_credentials == []


def test_another_spelling_of_the_same_server_keeps_the_token(sandbox, tmp_path, file_env):
    save_token(sandbox, file_env)
    respelled = sandbox.base_url.replace("/events", "/events//")
    assert dhims2("config", "--server", respelled, env=file_env).returncode == 0
    upload = dhims2("upload", str(records(tmp_path, 2)), env=file_env)
    assert upload.returncode == 0, upload.stderr


@pytest.mark.parametrize("how", ["--server flag", "DHIMS2_SERVER"])
def test_a_server_named_for_one_run_never_receives_the_saved_token(
    sandbox, phished, tmp_path, file_env, how
):
    save_token(sandbox, file_env)
    path = records(tmp_path, 2)
    if how == "--server flag":
        result = dhims2("upload", str(path), "--server", phished.base_url, env=file_env)
    else:
        result = dhims2("upload", str(path), env={**file_env, "DHIMS2_SERVER": phished.base_url})
    assert result.returncode == 2, result.stderr
    assert "never sent to another server" in result.stderr
    assert phished.with_credentials == []


@pytest.mark.parametrize("command", ["status", "retry"])
def test_following_a_batch_of_another_server_never_sends_it_the_saved_token(
    sandbox, phished, tmp_path, file_env, command
):
    save_token(sandbox, file_env)
    with Store(Path(file_env["DHIMS2_DATA_DIR"]) / STORE_FILE_NAME) as store:
        batch = store.create_batch(
            server=phished.base_url,
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="elsewhere.csv",
            records=[NewRecord(2, {"event": "Aaaaaaaaaa1"}, {})],
        )
    args = [command, batch] + (["--follow"] if command == "status" else [])
    result = dhims2(*args, "--timeout", "5", env=file_env)
    assert result.returncode == 2, result.stderr
    assert phished.with_credentials == [] and phished.requests == 0


def test_upload_reads_the_token_from_standard_input(sandbox, tmp_path, file_env):
    path = records(tmp_path, 3)
    args = ["upload", str(path), "--server", sandbox.base_url, "--token", "-", "--json"]
    result = dhims2(*args, env=file_env, stdin=sandbox.create_token() + "\n")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 3
    empty = dhims2(*args, env=file_env, stdin="")
    assert empty.returncode == 2 and "standard input held no token" in empty.stderr


def test_the_host_forgets_the_token_when_the_options_change_the_server(sandbox, phished, file_env):
    host = Host(CHROME_ARGV, file_env)
    try:
        assert host.receive()["type"] == "hello"
        token = sandbox.create_token()
        saved = host.request("configure", server=sandbox.base_url, auth="token", token=token)
        assert saved["config"]["token_set"] is True
        # The options page sends the new address and an empty token field is left out.
        moved = host.request("configure", "r-2", server=phished.base_url)
        assert moved["config"]["token_set"] is False
        checked = host.request("check_connection", "r-3")
        assert checked["ok"] is False and checked["error"]["code"] == "AUTH_REQUIRED"
    finally:
        host.process.kill()
        host.process.wait()
    assert phished.with_credentials == []


def test_the_host_never_sends_the_saved_token_to_a_server_from_the_environment(
    sandbox, phished, file_env
):
    save_token(sandbox, file_env)
    dhims2("config", "--auth", "token", env=file_env)
    host = Host(CHROME_ARGV, {**file_env, "DHIMS2_SERVER": phished.base_url})
    try:
        assert host.receive()["type"] == "hello"
        checked = host.request("check_connection")
        assert checked["ok"] is False and checked["error"]["code"] == "AUTH_REQUIRED"
    finally:
        host.process.kill()
        host.process.wait()
    assert phished.with_credentials == [] and phished.requests == 0


# -- where the token is kept -------------------------------------------------------------------


class MemoryKeychain(KeyringBackend):
    """A real keyring backend (keyring's own API) that keeps passwords in this process."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.passwords[(service, username)]


@pytest.fixture
def keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeychain]:
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(tmp_path / "config"))
    for name in ("DHIMS2_SERVER", "DHIMS2_TOKEN", "PYTHON_KEYRING_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    backend = MemoryKeychain()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_the_token_lives_in_the_keychain_under_its_origin_and_not_in_the_file(keychain):
    server = "https://events.chimgh.org/events/"
    path = settings.save_config(settings.Config(server=server, auth="token", token="d2p_secret"))
    assert "d2p_secret" not in path.read_text()
    account = ("dhims2-uploader", "https://events.chimgh.org:443")
    assert keychain.passwords == {account: "d2p_secret"}
    assert settings.load_config().token_for("https://EVENTS.chimgh.org:443/events") == "d2p_secret"
    assert settings.token_location() == "the OS keychain"

    moved = settings.load_config(apply_env=False).with_changes(server="https://elsewhere.example/")
    settings.save_config(moved)
    assert keychain.passwords == {}
    assert settings.load_config().token is None


@pytest.fixture
def no_keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def test_without_a_keychain_the_token_is_in_the_owner_only_file(no_keychain):
    server = "https://events.chimgh.org/events/"
    path = settings.save_config(settings.Config(server=server, auth="token", token="d2p_secret"))
    assert json.loads(path.read_text())["token"] == "d2p_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert settings.token_location().startswith(str(path))


def test_a_keychain_in_another_process_holds_the_cli_token(sandbox, tmp_path, env):
    """keyrings.alt's file backend stands in for an OS keychain in a real CLI process."""
    keychain_env = {
        **env,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    token = save_token(sandbox, keychain_env)
    config_text = (tmp_path / "config" / "config.json").read_text()
    assert token not in config_text and json.loads(config_text)["token_in_keychain"] is True
    held = list((tmp_path / "xdg").rglob("keyring_pass.cfg"))
    assert held and "uploader" in held[0].read_text()  # keyrings.alt escapes the names
    upload = dhims2("upload", str(records(tmp_path, 2)), env=keychain_env)
    assert upload.returncode == 0, upload.stderr


def test_a_token_saved_before_origins_were_recorded_stays_with_its_server(tmp_path, monkeypatch):
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("DHIMS2_SERVER", raising=False)
    monkeypatch.delenv("DHIMS2_TOKEN", raising=False)
    (tmp_path / "config").mkdir()
    old = {"server": "https://events.chimgh.org/events/", "token": "d2p_old", "auth": "token"}
    (tmp_path / "config" / "config.json").write_text(json.dumps(old))
    loaded = settings.load_config()
    assert loaded.token_for("https://events.chimgh.org/events") == "d2p_old"
    assert loaded.token_for("https://events.chimgh.org.evil.example/events") is None
    assert loaded.token_for("http://events.chimgh.org/events") is None
    monkeypatch.setenv("DHIMS2_SERVER", "https://typo.example/events")
    assert settings.load_config().token_for("https://typo.example/events") is None
