"""Private folders on Windows: file modes and the umask do nothing there, an ACL does the work.

icacls and whoami exist only on Windows: these tests check the exact command lines the host would
run and when it runs them; docs/WINDOWS.md says how to check the resulting ACL on a PC.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dhims2.workspace import config

SID = "S-1-5-21-1004336348-1177238915-682003330-1001"
# As `whoami /user /fo csv /nh` prints it; the SID stays ASCII whatever the user's name.
WHOAMI = f'"clinic-pc\\Ama Ɔpoku","{SID}"\r\n'


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Windows, with every tool run recorded; whoami answers for the clerk."""
    ran: list[list[str]] = []

    def run(command: list[str]) -> str:
        ran.append(command)
        return WHOAMI if command[0].endswith("whoami.exe") else ""

    monkeypatch.setattr(config, "_ON_WINDOWS", True)
    monkeypatch.setattr(config, "run_windows_tool", run)
    monkeypatch.setenv("SYSTEMROOT", r"C:\Windows")
    return ran


def test_the_acl_leaves_the_folder_to_the_user_and_system_alone() -> None:
    folder = Path(r"C:\Users\Akosua Mensah\AppData\Local\dhims2-uploader")
    assert config.owner_only_acl_command(folder, SID) == [
        r"C:\Windows\System32\icacls.exe",
        str(folder),
        "/inheritance:r",  # drops Users, Administrators and whatever the parent grants
        "/grant:r",
        f"*{SID}:(OI)(CI)F",  # the clerk, on the folder and all it will hold
        "*S-1-5-18:(OI)(CI)F",  # SYSTEM
        "/q",
    ]


def test_the_users_sid_is_read_from_whoami() -> None:
    assert config.current_user_sid(WHOAMI) == SID
    with pytest.raises(ValueError, match="no SID"):
        config.current_user_sid("ERROR: access denied\r\n")


def test_a_new_data_folder_gets_the_acl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: list[list[str]]
) -> None:
    monkeypatch.setenv("DHIMS2_DATA_DIR", str(tmp_path / "data"))
    assert config.data_dir() == tmp_path / "data"
    assert commands == [
        [r"C:\Windows\System32\whoami.exe", "/user", "/fo", "csv", "/nh"],
        config.owner_only_acl_command(tmp_path / "data", SID),
    ]
    commands.clear()
    config.data_dir()  # exists now: a folder the user already has is left as it is
    assert commands == []


def test_the_config_folder_gets_the_acl_when_settings_are_first_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commands: list[list[str]]
) -> None:
    monkeypatch.setenv("DHIMS2_CONFIG_DIR", str(tmp_path / "config"))
    config.save_config(config.Config())
    assert commands[-1] == config.owner_only_acl_command(tmp_path / "config", SID)


def test_a_failing_tool_does_not_stop_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(command: list[str]) -> str:
        raise subprocess.CalledProcessError(5, command)

    monkeypatch.setattr(config, "_ON_WINDOWS", True)
    monkeypatch.setattr(config, "run_windows_tool", fail)
    monkeypatch.setenv("DHIMS2_LOG_DIR", str(tmp_path / "logs"))
    assert config.log_dir().is_dir()
