"""Windows: the installer's and doctor's logic for a clerk's PC, through registry and file seams.

Linux cannot run winreg, icacls or the browsers' Windows launchers; what only a Windows PC can
prove is listed in docs/WINDOWS.md with the check to run there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dhims2.setup import doctor, installer
from dhims2.setup.doctor import (
    ALL_USERS_FIX,
    LAUNCH_DIRECTLY_FIX,
    NOT_FOUND,
    POLICY_BLOCKED,
    REINSTALL,
)
from dhims2.setup.installer import HKCU, HKLM, Installation, InstallError, System
from fake_registry import FakeRegistry

CHECKOUT = Path(__file__).resolve().parents[1]
CHROME_KEY = r"Software\Google\Chrome\NativeMessagingHosts\org.dhims2.uploader"
EDGE_KEY = r"Software\Microsoft\Edge\NativeMessagingHosts\org.dhims2.uploader"
CHROME_POLICY = r"SOFTWARE\Policies\Google\Chrome"
STORE_PYTHON = (
    r"C:\Users\clerk\AppData\Local\Microsoft\WindowsApps"
    r"\PythonSoftwareFoundation.Python.3.12_qbz5n2kfra8p0\python.exe",
    r"C:\Program Files\WindowsApps"
    r"\PythonSoftwareFoundation.Python.3.12_3.12.2800.0_x64__qbz5n2kfra8p0",
)
PYTHON_ORG = (
    r"C:\Users\clerk\AppData\Local\Programs\Python\Python312\python.exe",
    r"C:\Users\clerk\AppData\Local\Programs\Python\Python312",
)


def windows(tmp_path: Path, python: tuple[str, ...] = PYTHON_ORG) -> System:
    """A Windows PC laid out under tmp_path, with the folders Windows names in its environment."""
    environ = {
        "LOCALAPPDATA": str(tmp_path / "Local"),
        "APPDATA": str(tmp_path / "Roaming"),
        "PROGRAMFILES": str(tmp_path / "Program Files"),
        "PROGRAMFILES(X86)": str(tmp_path / "Program Files (x86)"),
        "PROGRAMDATA": str(tmp_path / "ProgramData"),
    }
    return System("win32", tmp_path / "home", environ, lambda name: None, tmp_path, python)


def install_program(system: System, relative: str) -> None:
    """Put a browser's program where its Windows installer would (no profile folder yet)."""
    program = Path(system.environ["PROGRAMFILES"]) / relative
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_bytes(b"MZ")


def venv(tmp_path: Path) -> Path:
    scripts = tmp_path / "venv" / "Scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "dhims2-host.exe").write_bytes(b"MZ")
    return scripts / "python.exe"


def installed(
    tmp_path: Path, browsers: list[str], hive: str = HKCU
) -> tuple[Installation, FakeRegistry]:
    system = windows(tmp_path)
    registry = FakeRegistry()
    data = tmp_path / "data"
    installation = Installation(system, data, registry, CHECKOUT, hive)
    installation.install(installer.named_targets(system, data, browsers, []) or [], venv(tmp_path))
    return installation, registry


def targets(installation: Installation, browsers: list[str]) -> list[installer.Target]:
    system, data = installation.system, installation.data_dir
    return installer.named_targets(system, data, browsers, []) or []


def problems(installation: Installation, registry: FakeRegistry, browsers: list[str]) -> list:
    return doctor.diagnose(
        installation.system,
        installation.data_dir,
        targets(installation, browsers),
        registry,
        start_host=False,
    ).problems


def load_install_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("install_py", CHECKOUT / "install.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 1. The Microsoft Store Python


def test_the_store_python_is_recognised_by_where_it_runs(tmp_path: Path) -> None:
    assert windows(tmp_path, STORE_PYTHON).store_python
    assert windows(tmp_path, (sys.executable, STORE_PYTHON[1])).store_python  # a venv of it
    assert not windows(tmp_path, PYTHON_ORG).store_python
    with pytest.raises(InstallError, match=r"Microsoft Store Python.*py install\.py"):
        installer.require_usable_python(windows(tmp_path, STORE_PYTHON))


@pytest.mark.parametrize("action", [[], ["--check"], ["--uninstall"]])
def test_install_py_refuses_the_store_python_before_writing_anything(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: list[str],
) -> None:
    install_py = load_install_py()
    monkeypatch.setattr(installer.System, "current", lambda: windows(tmp_path, STORE_PYTHON))
    monkeypatch.setenv("DHIMS2_DATA_DIR", str(tmp_path / "data"))
    assert install_py.main(action) == 1
    error = capsys.readouterr().err
    assert "install.py: this is the Microsoft Store Python" in error
    assert "https://www.python.org/downloads/windows/" in error and "py install.py" in error
    assert not (tmp_path / "data").exists()


def test_doctor_reports_the_store_python(tmp_path: Path) -> None:
    diagnosis = doctor.diagnose(windows(tmp_path, STORE_PYTHON), tmp_path / "data", [], None)
    assert diagnosis.problems[0].what == installer.STORE_PYTHON
    assert "py install.py" in diagnosis.problems[0].fix


# 2. The host program is pip's dhims2-host.exe, not a .bat


def test_pip_builds_the_program_the_windows_manifests_name() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    (host,) = [entry for entry in scripts if entry.name == "dhims2-host"]
    assert f"{host.name}.exe" == installer.WINDOWS_HOST_PROGRAM
    assert host.value == f"{installer.HOST_MODULE}:main"


@pytest.mark.parametrize(
    ("interpreter", "program"),
    [
        ("data/venv/Scripts/python.exe", "data/venv/Scripts/dhims2-host.exe"),
        ("Python312/python.exe", "Python312/Scripts/dhims2-host.exe"),  # --no-venv, python.org
    ],
)
def test_the_host_program_is_found_next_to_the_interpreter(interpreter: str, program: str) -> None:
    assert installer.host_program(Path("data"), Path(interpreter), "win32") == Path(program)


def test_a_venv_without_the_host_program_is_refused(tmp_path: Path) -> None:
    installation = Installation(windows(tmp_path), tmp_path / "data", FakeRegistry(), CHECKOUT)
    with pytest.raises(InstallError, match=r"dhims2-host\.exe is missing"):
        installation.install([], tmp_path / "venv" / "Scripts" / "python.exe")


# Earlier versions' launchers


OLD_LINUX_LAUNCHER = (
    '#!/bin/sh\nexec {python} -m dhims2_host.native_host "$@"\n'  # as written before the rename
)


def test_doctor_says_an_earlier_versions_launcher_needs_install_py_and_install_upgrades_it(
    tmp_path: Path,
) -> None:
    system = System("linux", tmp_path / "home", {}, lambda name: None, tmp_path / "snap")
    profile = [installer.profile_target(tmp_path / "profile")]
    installation = Installation(system, tmp_path / "data", None, CHECKOUT)
    installation.install(profile, Path(sys.executable))
    launcher = tmp_path / "data" / "dhims2-host.sh"
    launcher.write_text(OLD_LINUX_LAUNCHER.format(python=sys.executable), encoding="utf-8")
    found = doctor.diagnose(system, tmp_path / "data", profile, None).problems
    assert [(p.where, p.fix) for p in found] == [(str(launcher), REINSTALL)]
    assert "earlier version and runs dhims2_host.native_host" in found[0].what
    assert "it needs install.py to be run again" in found[0].what

    steps = installation.install(profile, Path(sys.executable))
    assert f"wrote      launcher: {launcher}" in [str(step) for step in steps]
    assert doctor.diagnose(system, tmp_path / "data", profile, None).problems == []  # says hello


def test_an_earlier_versions_windows_registration_is_recognised_and_upgraded(
    tmp_path: Path,
) -> None:
    installation, registry = installed(tmp_path, ["chrome", "firefox"])
    old_launcher = tmp_path / "data" / "dhims2-host.bat"
    old_launcher.write_bytes(
        b'@echo off\r\n"C:\\venv\\python.exe" -m dhims2_host.native_host %*\r\n'
    )
    for family in ("chromium", "firefox"):  # the manifests then named the .bat
        manifest = tmp_path / "data" / "manifests" / family / "org.dhims2.uploader.json"
        text = manifest.read_text("utf-8")
        program = str(tmp_path / "venv" / "Scripts" / "dhims2-host.exe")
        manifest.write_text(
            text.replace(program.replace("\\", "\\\\"), str(old_launcher)), encoding="utf-8"
        )
    found = problems(installation, registry, ["chrome", "firefox"])
    assert [p.where for p in found] == [str(old_launcher)] * 2
    assert all("the .bat launcher of an earlier version" in p.what for p in found)

    steps = installation.install(targets(installation, ["chrome", "firefox"]), venv(tmp_path))
    assert f"removed    old launcher: {old_launcher}" in [str(step) for step in steps]
    assert problems(installation, registry, ["chrome", "firefox"]) == []


def test_install_py_check_names_an_old_launcher_and_install_py_fixes_it(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))},
        "HOME": str(tmp_path / "home"),
        "DHIMS2_DATA_DIR": str(tmp_path / "data"),
    }
    command = [sys.executable, str(CHECKOUT / "install.py"), "--browser", "chromium"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert run("--no-venv").returncode == 0
    launcher = tmp_path / "data" / "dhims2-host.sh"
    launcher.write_text(OLD_LINUX_LAUNCHER.format(python=sys.executable), encoding="utf-8")
    checked = run("--check")
    assert checked.returncode == 1
    assert "runs dhims2_host.native_host: it needs install.py to be run again" in checked.stdout
    assert run("--no-venv").returncode == 0
    assert run("--check").stdout.rstrip().endswith("All good.")


# 4. Group policies and the install for all users


def test_policies_are_read_with_the_machines_winning_over_the_users() -> None:
    registry = FakeRegistry()
    assert doctor.read_policy(registry, CHROME_POLICY) == doctor.Policy(True, False)
    registry.set(HKCU, CHROME_POLICY, NativeMessagingUserLevelHosts=0)
    assert not doctor.read_policy(registry, CHROME_POLICY).user_level_hosts
    registry.set(HKLM, CHROME_POLICY, NativeMessagingUserLevelHosts=1)
    assert doctor.read_policy(registry, CHROME_POLICY).user_level_hosts
    registry.set(HKLM, CHROME_POLICY + r"\NativeMessagingBlocklist", **{"1": "*"})
    assert doctor.read_policy(registry, CHROME_POLICY).blocked
    registry.set(HKCU, CHROME_POLICY + r"\NativeMessagingAllowlist", **{"1": "org.dhims2.uploader"})
    assert not doctor.read_policy(registry, CHROME_POLICY).blocked


@pytest.mark.parametrize(
    ("browser", "policy_key"),
    [
        ("chrome", r"SOFTWARE\Policies\Google\Chrome"),
        ("edge", r"SOFTWARE\Policies\Microsoft\Edge"),
        ("brave", r"SOFTWARE\Policies\BraveSoftware\Brave"),
    ],
)
def test_a_policy_that_allows_only_all_users_hosts_is_explained(
    tmp_path: Path, browser: str, policy_key: str
) -> None:
    installation, registry = installed(tmp_path, [browser])
    assert problems(installation, registry, [browser]) == []
    registry.set(HKLM, policy_key, NativeMessagingUserLevelHosts=0)
    (found,) = problems(installation, registry, [browser])
    assert "NativeMessagingUserLevelHosts=0" in found.what and policy_key in found.where
    assert (found.fix, found.extension_sees) == (ALL_USERS_FIX, NOT_FOUND)


def test_an_install_for_all_users_passes_that_policy(tmp_path: Path) -> None:
    system, registry = windows(tmp_path), FakeRegistry()
    machine = installer.all_users_data_dir(system, is_administrator=True)
    chrome = installer.named_targets(system, machine, ["chrome"], []) or []
    Installation(system, machine, registry, CHECKOUT, HKLM).install(chrome, venv(tmp_path))
    manifest = machine / "manifests" / "chromium" / "org.dhims2.uploader.json"
    assert registry.defaults(HKLM) == {CHROME_KEY: str(manifest)}
    assert registry.defaults(HKCU) == {}
    registry.set(HKLM, CHROME_POLICY, NativeMessagingUserLevelHosts=0)
    clerk = tmp_path / "clerk"  # the clerk's own data folder holds no install record
    clerk_targets = installer.named_targets(system, clerk, ["chrome"], []) or []
    assert doctor.diagnose(system, clerk, clerk_targets, registry, start_host=False).problems == []


def test_a_blocklist_that_names_every_host_is_explained(tmp_path: Path) -> None:
    installation, registry = installed(tmp_path, ["edge"])
    registry.set(HKLM, r"SOFTWARE\Policies\Microsoft\Edge\NativeMessagingBlocklist", **{"1": "*"})
    (found,) = problems(installation, registry, ["edge"])
    assert found.extension_sees == POLICY_BLOCKED
    assert "NativeMessagingAllowlist" in found.fix


def test_a_pc_without_cmd_exe_needs_chromium_to_start_the_exe_directly(tmp_path: Path) -> None:
    installation, registry = installed(tmp_path, ["chrome", "firefox"])
    registry.set(HKCU, r"Software\Policies\Microsoft\Windows\System", DisableCMD=1)
    (found,) = problems(installation, registry, ["chrome", "firefox"])  # Firefox needs no cmd.exe
    assert "DisableCMD=1" in found.what and CHROME_POLICY in found.where
    assert found.fix == LAUNCH_DIRECTLY_FIX
    registry.set(HKLM, CHROME_POLICY, NativeHostsExecutablesLaunchDirectly=1)
    assert problems(installation, registry, ["chrome", "firefox"]) == []


def test_all_users_needs_windows_and_an_administrator(tmp_path: Path) -> None:
    linux = System("linux", tmp_path, {}, lambda name: None, tmp_path)
    with pytest.raises(InstallError, match="--all-users is for Windows"):
        installer.all_users_data_dir(linux, True)
    with pytest.raises(InstallError, match='"Run as administrator"'):
        installer.all_users_data_dir(windows(tmp_path), False)
    assert installer.all_users_data_dir(windows(tmp_path), True) == (
        tmp_path / "ProgramData" / "dhims2-uploader"
    )


# 5. Keys and manifests several browsers share


def test_uninstalling_for_brave_keeps_the_key_chrome_reads(tmp_path: Path) -> None:
    installation, registry = installed(tmp_path, ["chrome", "brave", "edge"])
    install_program(installation.system, "Google/Chrome/Application/chrome.exe")
    steps = installation.uninstall(targets(installation, ["brave"]), everything=False)
    kept = f"kept       registry key: HKCU\\{CHROME_KEY} (Google Chrome)"
    assert kept in [str(step) for step in steps]
    assert problems(installation, registry, ["chrome", "edge"]) == []


def test_uninstalling_for_edge_keeps_the_manifest_chrome_still_reads(tmp_path: Path) -> None:
    installation, registry = installed(tmp_path, ["chrome", "edge"])
    installation.uninstall(targets(installation, ["edge"]), everything=False)
    assert EDGE_KEY not in registry.defaults()
    assert problems(installation, registry, ["chrome"]) == []


def test_uninstalling_for_brave_alone_removes_the_key_no_one_else_reads(tmp_path: Path) -> None:
    installation, registry = installed(tmp_path, ["brave"])
    installation.uninstall(targets(installation, ["brave"]), everything=False)
    assert registry.keys == {}
    assert not list((tmp_path / "data" / "manifests" / "chromium").glob("*.json"))


# 7. Browsers installed but never opened


def test_windows_browsers_never_opened_are_found_by_their_program(tmp_path: Path) -> None:
    system = windows(tmp_path)
    install_program(system, "Google/Chrome/Application/chrome.exe")
    firefox = Path(system.environ["PROGRAMFILES(X86)"]) / "Mozilla Firefox" / "firefox.exe"
    firefox.parent.mkdir(parents=True)
    firefox.write_bytes(b"MZ")
    vivaldi = Path(system.environ["LOCALAPPDATA"]) / "Vivaldi" / "Application" / "vivaldi.exe"
    vivaldi.parent.mkdir(parents=True)  # a per-user install
    vivaldi.write_bytes(b"MZ")
    assert not any(system.profile_dir(browser).exists() for browser in installer.BROWSERS)
    # System.current() copies os.environ, whose names are all upper case on Windows.
    assert all(name.isupper() for name in installer.WINDOWS_PROGRAM_ROOTS)
    assert [b.name for b in installer.detect_browsers(system)] == ["chrome", "vivaldi", "firefox"]


def test_install_py_all_users_off_windows_says_it_is_for_windows(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(CHECKOUT / "install.py"), "--all-users", "--check"],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("install.py: --all-users is for Windows")
