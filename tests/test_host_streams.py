"""The real host with standard streams missing, and its log shared by hosts of several browsers.

Started directly as an .exe on Windows, the host may get no stderr at all; Linux shows the same
with a closed fd 2. Windows refuses to rename a file another process holds open; a sitecustomize
makes renames fail the same way here.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dhims2.browser.framing import read_message
from host_process import HOST_PROGRAM, TIMEOUT, frame

PING = frame(json.dumps({"id": "r-1", "type": "ping"}).encode())
STRAY_OUTPUT = textwrap.dedent(
    """
    import atexit, os
    atexit.register(print, "stray print at exit")
    atexit.register(os.system, "echo stray output of a child process >&2")
    """
)
RENAMES_REFUSED = textwrap.dedent(
    """
    import os

    def refuse(source, destination):
        raise PermissionError(32, "The process cannot access the file because it is being used")

    os.rename = os.replace = refuse
    """
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DHIMS2_")}
    environment.pop("PYTHONPATH", None)
    environment.update(
        DHIMS2_CONFIG_DIR=str(tmp_path / "config"),
        DHIMS2_DATA_DIR=str(tmp_path / "data"),
        DHIMS2_LOG_DIR=str(tmp_path / "logs"),
    )
    return environment


def with_plugin(env: dict[str, str], folder: Path, code: str) -> dict[str, str]:
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(code, encoding="utf-8")
    return {**env, "PYTHONPATH": str(folder)}


def run_host(env: dict[str, str], closed: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """The host with the shell's `closed` redirections (e.g. 2>&-): those fds are not open."""
    return subprocess.run(
        ["/bin/sh", "-c", f'exec "$0" chrome-extension://x/ {closed}', str(HOST_PROGRAM)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
        check=False,
    )


def frames(stdout: bytes) -> list[dict[str, Any]]:
    """Every message on stdout; fails if anything on it is not a frame."""
    stream = io.BytesIO(stdout)
    messages = []
    while (message := read_message(stream)) is not None:
        messages.append(message)
    return messages


def test_without_stderr_the_host_says_hello_answers_and_logs(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = with_plugin(env, tmp_path / "plugin", STRAY_OUTPUT)
    result = run_host(env, "2>&-", PING)
    assert result.returncode == 0
    messages = frames(result.stdout)  # stray output went nowhere near the frames
    assert [message.get("type") or message["id"] for message in messages] == ["hello", "r-1"]
    assert messages[1]["ok"] is True
    log = (tmp_path / "logs" / "host.log").read_text("utf-8")
    assert "host started by chrome-extension://x/" in log and "ping -> ok" in log


@pytest.mark.parametrize("closed", ["<&-", ">&-"], ids=["no stdin", "no stdout"])
def test_without_stdin_or_stdout_the_host_says_why_and_exits_2(
    env: dict[str, str], closed: str
) -> None:
    result = run_host(env, closed, b"")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "dhims2-host: started without stdin or stdout; browsers start it (see install.py)\n"
    )


def test_without_stdin_and_stderr_the_host_exits_2_quietly(env: dict[str, str]) -> None:
    result = run_host(env, "<&- 2>&-", b"")
    assert (result.returncode, result.stdout) == (2, b"")


def test_a_full_log_is_rolled_over_when_the_host_starts(
    env: dict[str, str], tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "host.log").write_text("old line\n" * 120_000, encoding="utf-8")  # over 1 MiB
    (logs / "host.log.1").write_text("older\n", encoding="utf-8")
    assert run_host(env, "", PING).returncode == 0
    assert (logs / "host.log.2").read_text("utf-8") == "older\n"
    assert (logs / "host.log.1").read_text("utf-8").startswith("old line\n")
    assert "ping -> ok" in (logs / "host.log").read_text("utf-8")


def test_a_log_that_cannot_be_renamed_loses_no_record(env: dict[str, str], tmp_path: Path) -> None:
    # Another browser's host holds host.log open: on Windows no rename succeeds.
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "host.log").write_text("old line\n" * 120_000, encoding="utf-8")
    env = with_plugin(env, tmp_path / "plugin", RENAMES_REFUSED)
    result = run_host(env, "", PING)
    assert result.returncode == 0
    assert b"Logging error" not in result.stderr
    log = (logs / "host.log").read_text("utf-8")
    assert log.startswith("old line\n")
    assert "host started by" in log and "ping -> ok" in log
