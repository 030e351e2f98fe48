"""doctor: every broken installation from the reference table is found and explained."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dhims2.setup import doctor, installer
from dhims2.setup.doctor import COMMUNICATION_ERROR, EXITED, FORBIDDEN, INVALID_NAME, NOT_FOUND
from dhims2.setup.installer import ExtensionIdentity, Installation, System

CHECKOUT = Path(__file__).resolve().parents[1]
IDENTITY = installer.extension_identity(CHECKOUT / "extension" / "manifest.json")
ORIGIN = IDENTITY.chromium_origin
MANIFEST_PATH = Path("/home/clerk/.config/chromium/NativeMessagingHosts/org.dhims2.uploader.json")
GOOD_CHROMIUM = {
    "name": "org.dhims2.uploader",
    "description": "DHIMS2 Uploader",
    "path": "/home/clerk/.local/share/dhims2-uploader/dhims2-host.sh",
    "type": "stdio",
    "allowed_origins": [ORIGIN],
}
GOOD_FIREFOX = {
    **{k: v for k, v in GOOD_CHROMIUM.items() if k != "allowed_origins"},
    "allowed_extensions": ["uploader@dhims2.org"],
}


class RecordingRegistry:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def read(self, key: str) -> str | None:
        return self.values.get(key)

    def write(self, key: str, value: str) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def chromium_problems(manifest: object, path: Path = MANIFEST_PATH) -> list[doctor.Problem]:
    return doctor.check_manifest_text(path, json.dumps(manifest), "chromium", IDENTITY)


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_a_correct_manifest_has_no_problems() -> None:
    assert chromium_problems(GOOD_CHROMIUM) == []
    assert (
        doctor.check_manifest_text(MANIFEST_PATH, json.dumps(GOOD_FIREFOX), "firefox", IDENTITY)
        == []
    )


@pytest.mark.parametrize(
    ("change", "what", "extension_sees"),
    [
        ({"description": ""}, "description is missing or empty", NOT_FOUND),
        ({"description": None}, "description is missing or empty", NOT_FOUND),
        ({"name": "org.dhims2.other"}, "differs from the file name", NOT_FOUND),
        ({"name": "org.DHIMS2.uploader"}, "not a valid host name", INVALID_NAME),
        ({"name": "org dhims2"}, "not a valid host name", INVALID_NAME),
        ({"path": "dhims2-host.sh"}, "is not absolute", NOT_FOUND),
        ({"path": ""}, "path is missing", NOT_FOUND),
        ({"type": "pipe"}, "not 'stdio'", NOT_FOUND),
        ({"allowed_origins": [ORIGIN.rstrip("/")]}, "must end with '/'", NOT_FOUND),
        ({"allowed_origins": ["chrome-extension://*/"]}, "wildcard", NOT_FOUND),
        ({"allowed_origins": []}, "allowed_origins is missing or empty", NOT_FOUND),
        (
            {"allowed_origins": ["chrome-extension://abcdefghijklmnopabcdefghijklmnop/"]},
            "does not list this extension",
            FORBIDDEN,
        ),
    ],
)
def test_each_broken_chromium_manifest_is_named_with_what_the_extension_sees(
    change: dict[str, object], what: str, extension_sees: str
) -> None:
    problems = chromium_problems({**GOOD_CHROMIUM, **change})
    assert len(problems) == 1
    assert what in problems[0].what
    assert problems[0].extension_sees == extension_sees
    assert problems[0].fix
    assert problems[0].where == str(MANIFEST_PATH)


def test_a_manifest_that_is_not_json_or_not_an_object_is_not_found() -> None:
    for text in ("{", "[]"):
        problems = doctor.check_manifest_text(MANIFEST_PATH, text, "chromium", IDENTITY)
        assert [p.extension_sees for p in problems] == [NOT_FOUND]


def test_a_windows_style_absolute_path_is_absolute() -> None:
    assert chromium_problems({**GOOD_CHROMIUM, "path": r"C:\Users\clerk\dhims2-host.bat"}) == []


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"allowed_extensions": ["someone@else.org"]}, "does not list this add-on"),
        ({"allowed_extensions": ["*"]}, "wildcard"),
        ({"allowed_extensions": None}, "missing or empty"),
    ],
)
def test_each_broken_firefox_manifest_is_named(change: dict[str, object], what: str) -> None:
    text = json.dumps({**GOOD_FIREFOX, **change})
    problems = doctor.check_manifest_text(MANIFEST_PATH, text, "firefox", IDENTITY)
    assert len(problems) == 1 and what in problems[0].what


def test_a_missing_launcher_is_not_found(tmp_path: Path) -> None:
    problems = doctor.check_launcher(tmp_path / "dhims2-host.sh")
    assert [p.extension_sees for p in problems] == [NOT_FOUND]


def test_a_launcher_that_is_not_executable_breaks_communication(tmp_path: Path) -> None:
    launcher = tmp_path / "dhims2-host.sh"
    launcher.write_text(installer.launcher_text(Path(sys.executable), "linux"), encoding="utf-8")
    launcher.chmod(0o644)
    problems = doctor.check_launcher(launcher)
    assert [p.extension_sees for p in problems] == [COMMUNICATION_ERROR]
    assert problems[0].fix == f"chmod +x {launcher}"


def test_a_launcher_whose_venv_was_deleted_makes_the_host_exit(tmp_path: Path) -> None:
    launcher = tmp_path / "dhims2-host.sh"
    gone = tmp_path / "venv" / "bin" / "python"
    launcher.write_text(installer.launcher_text(gone, "linux"), encoding="utf-8")
    launcher.chmod(0o755)
    problems = doctor.check_launcher(launcher)
    assert [p.extension_sees for p in problems] == [EXITED]
    assert str(gone) in problems[0].what


def test_the_real_host_says_hello(tmp_path: Path) -> None:
    launcher = tmp_path / "dhims2-host.sh"
    launcher.write_text(installer.launcher_text(Path(sys.executable), "linux"), encoding="utf-8")
    launcher.chmod(0o755)
    assert doctor.check_launcher(launcher) == []
    assert doctor.check_hello(launcher, ORIGIN) == []


@pytest.mark.parametrize(
    ("body", "what", "extension_sees"),
    [
        ("print('Hello from a stray print')\n", "not a frame", COMMUNICATION_ERROR),
        (
            "import sys\nsys.exit('ImportError: no module named requests')\n",
            "no module named requests",
            EXITED,
        ),
        (
            "import json, struct, sys\n"
            "body = json.dumps({'type': 'hello', 'version': '0.0.1', 'protocol': 1}).encode()\n"
            "sys.stdout.buffer.write(struct.pack('=I', len(body)) + body)\n",
            "the host is version 0.0.1",
            None,
        ),
        (
            "import json, struct, sys\n"
            "body = json.dumps({'type': 'welcome'}).encode()\n"
            "sys.stdout.buffer.write(struct.pack('=I', len(body)) + body)\n",
            "is not a protocol 1 hello",
            None,
        ),
    ],
)
def test_a_host_that_does_not_say_a_proper_hello_is_explained(
    tmp_path: Path, body: str, what: str, extension_sees: str | None
) -> None:
    launcher = write_script(tmp_path / "host", body)
    problems = doctor.check_hello(launcher, ORIGIN)
    assert len(problems) == 1
    assert what in problems[0].what
    assert problems[0].extension_sees == extension_sees


def test_a_silent_host_times_out_and_is_stopped(tmp_path: Path) -> None:
    launcher = write_script(tmp_path / "host", "import time\ntime.sleep(60)\n")
    problems = doctor.check_hello(launcher, ORIGIN, timeout=0.5)
    assert [p.what for p in problems] == ["the host did not say hello within 0.5 s"]


def make_installed(
    tmp_path: Path, platform: str = "linux"
) -> tuple[System, Path, RecordingRegistry]:
    home, data = tmp_path / "home", tmp_path / "data"
    (home / ".config" / "chromium").mkdir(parents=True)
    system = System(platform, home, {}, lambda name: None, tmp_path / "snap")
    registry = RecordingRegistry()
    installation = Installation(system, data, registry, CHECKOUT)
    targets = installer.named_targets(system, data, ["chromium", "firefox"], []) or []
    installation.install(targets, Path(sys.executable))
    return system, data, registry


def test_diagnose_a_good_installation_and_start_its_host(tmp_path: Path) -> None:
    system, data, registry = make_installed(tmp_path)
    targets = doctor.default_targets(system, data)
    assert [t.label for t in targets] == ["Chromium", "Firefox"]
    diagnosis = doctor.diagnose(system, data, targets, registry)
    assert diagnosis.problems == []
    assert diagnosis.checked[-1] == f"host started by {data / 'dhims2-host.sh'}"
    assert doctor.report(diagnosis).endswith("All good.")


def test_diagnose_finds_a_present_browser_without_a_manifest(tmp_path: Path) -> None:
    system, data, registry = make_installed(tmp_path)
    (system.home / ".config" / "google-chrome").mkdir()
    diagnosis = doctor.diagnose(system, data, doctor.default_targets(system, data), registry)
    assert [p.what for p in diagnosis.problems] == ["no host manifest for Google Chrome"]
    assert "run `python3 install.py`" in doctor.report(diagnosis)


def test_diagnose_checks_the_ids_of_the_installed_checkout(tmp_path: Path) -> None:
    system, data, registry = make_installed(tmp_path)
    record = json.loads((data / "install.json").read_text("utf-8"))
    record.update(source=str(tmp_path / "moved-away"), chromium_id="a" * 32)
    (data / "install.json").write_text(json.dumps(record), encoding="utf-8")
    diagnosis = doctor.diagnose(system, data, doctor.default_targets(system, data), registry)
    assert [p.extension_sees for p in diagnosis.problems] == [FORBIDDEN]


def test_diagnose_without_an_installation_says_so(tmp_path: Path) -> None:
    system = System("linux", tmp_path, {}, lambda name: None, tmp_path / "snap")
    diagnosis = doctor.diagnose(system, tmp_path / "data", [], None)
    assert [p.what for p in diagnosis.problems] == ["the host is not installed (no install record)"]


def test_flatpak_and_snap_browsers_are_recognised_and_explained(tmp_path: Path) -> None:
    system, data, registry = make_installed(tmp_path)
    (system.home / ".var/app/org.chromium.Chromium").mkdir(parents=True)
    (tmp_path / "snap" / "firefox").mkdir(parents=True)
    diagnosis = doctor.diagnose(system, data, [], registry, start_host=False)
    assert len(diagnosis.notes) == 2
    assert "Chromium is installed as a Flatpak (org.chromium.Chromium)" in diagnosis.notes[0]
    assert "Firefox is installed as a Snap (firefox)" in diagnosis.notes[1]
    assert "cannot start native hosts installed outside their sandbox" in diagnosis.notes[1]


def test_windows_registrations_are_followed_through_the_registry(tmp_path: Path) -> None:
    system, data, registry = make_installed(tmp_path, "win32")
    targets = installer.named_targets(system, data, ["chromium", "firefox"], []) or []
    assert doctor.diagnose(system, data, targets, registry, start_host=False).problems == []
    del registry.values[r"Software\Chromium\NativeMessagingHosts\org.dhims2.uploader"]
    problems = doctor.diagnose(system, data, targets, registry, start_host=False).problems
    assert [(p.what, p.extension_sees) for p in problems] == [
        ("registry key is missing", NOT_FOUND)
    ]


def test_install_py_check_fails_and_explains_a_broken_installation(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))},
        "HOME": str(home),
        "DHIMS2_DATA_DIR": str(data),
    }
    command = [sys.executable, str(CHECKOUT / "install.py"), "--browser", "chromium"]
    subprocess.run([*command, "--no-venv"], env=env, check=True, capture_output=True, timeout=60)
    launcher = data / "dhims2-host.sh"
    launcher.chmod(launcher.stat().st_mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    result = subprocess.run(
        [*command, "--check"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert f"PROBLEM  {launcher}: the host program is not executable" in result.stdout
    assert f"fix:   chmod +x {launcher}" in result.stdout
    assert f'(the extension sees "{COMMUNICATION_ERROR}")' in result.stdout
    assert result.stdout.rstrip().endswith("1 problem(s) found.")


def test_the_doctor_command_checks_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DHIMS2_DATA_DIR", str(tmp_path / "data"))
    profile = tmp_path / "profile"
    system = System.current()
    Installation(system, tmp_path / "data", None, CHECKOUT).install(
        [installer.profile_target(profile)], Path(sys.executable)
    )
    parser = argparse.ArgumentParser(prog="dhims2 doctor")
    doctor.configure_parser(parser)
    assert doctor.run(parser.parse_args(["--user-data-dir", str(profile)])) == 0
    assert capsys.readouterr().out.rstrip().endswith("All good.")
    assert doctor.run(parser.parse_args(["--browser", "vivaldi"])) == 1
    assert "no host manifest for Vivaldi" in capsys.readouterr().out


def test_expected_identity_falls_back_to_the_recorded_ids(tmp_path: Path) -> None:
    (tmp_path / "install.json").write_text(
        json.dumps({"source": str(tmp_path / "gone"), "chromium_id": "b" * 32, "gecko_id": "x@y"}),
        encoding="utf-8",
    )
    assert doctor.expected_identity(tmp_path) == ExtensionIdentity("b" * 32, "x@y")
