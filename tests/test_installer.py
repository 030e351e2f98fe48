"""install.py and the installer: launcher, manifests and registry keys for each browser and OS."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dhims2.browser.framing import read_message
from dhims2.setup import installer
from dhims2.setup.installer import Installation, InstallError, System
from fake_registry import FakeRegistry

CHECKOUT = Path(__file__).resolve().parents[1]
INSTALL_PY = CHECKOUT / "install.py"
HOST_FILE = "org.dhims2.uploader.json"
GECKO_ID = "uploader@dhims2.org"
APP_SUPPORT = "Library/Application Support"

# The reference table of user-level manifest folders (docs: native-messaging.md).
LINUX_FOLDERS = {
    "chrome": ".config/google-chrome/NativeMessagingHosts",
    "chromium": ".config/chromium/NativeMessagingHosts",
    "edge": ".config/microsoft-edge/NativeMessagingHosts",
    "brave": ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
    "vivaldi": ".config/vivaldi/NativeMessagingHosts",
    "firefox": ".mozilla/native-messaging-hosts",
    "librewolf": ".librewolf/native-messaging-hosts",
}
DARWIN_FOLDERS = {
    "chrome": f"{APP_SUPPORT}/Google/Chrome/NativeMessagingHosts",
    "chromium": f"{APP_SUPPORT}/Chromium/NativeMessagingHosts",
    "edge": f"{APP_SUPPORT}/Microsoft Edge/NativeMessagingHosts",
    "brave": f"{APP_SUPPORT}/BraveSoftware/Brave-Browser/NativeMessagingHosts",
    "vivaldi": f"{APP_SUPPORT}/Vivaldi/NativeMessagingHosts",
    "firefox": f"{APP_SUPPORT}/Mozilla/NativeMessagingHosts",
    "librewolf": f"{APP_SUPPORT}/LibreWolf/NativeMessagingHosts",
}
WINDOWS_KEYS = {
    "chrome": r"Software\Google\Chrome\NativeMessagingHosts\org.dhims2.uploader",
    "chromium": r"Software\Chromium\NativeMessagingHosts\org.dhims2.uploader",
    "edge": r"Software\Microsoft\Edge\NativeMessagingHosts\org.dhims2.uploader",
    "brave": r"Software\Google\Chrome\NativeMessagingHosts\org.dhims2.uploader",
    "vivaldi": r"Software\Google\Chrome\NativeMessagingHosts\org.dhims2.uploader",
    "firefox": r"Software\Mozilla\NativeMessagingHosts\org.dhims2.uploader",
    "librewolf": r"Software\Mozilla\NativeMessagingHosts\org.dhims2.uploader",
}
CHROMIUM_FAMILY = {"chrome", "chromium", "edge", "brave", "vivaldi"}


def make_system(home: Path, platform: str = "linux", on_path: tuple[str, ...] = ()) -> System:
    return System(
        platform=platform,
        home=home,
        environ={},
        which=lambda name: f"/usr/bin/{name}" if name in on_path else None,
        snap_root=home / "snap-root",
    )


def make_installation(tmp_path: Path, platform: str = "linux") -> Installation:
    return Installation(
        make_system(tmp_path / "home", platform),
        tmp_path / "data",
        FakeRegistry(),
        CHECKOUT,
    )


def windows_venv(tmp_path: Path) -> Path:
    """A venv's interpreter with the dhims2-host.exe pip would have built next to it."""
    scripts = tmp_path / "venv" / "Scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "dhims2-host.exe").write_bytes(b"MZ")
    return scripts / "python.exe"


def every_browser(installation: Installation) -> list[installer.Target]:
    return (
        installer.named_targets(
            installation.system, installation.data_dir, list(installer.BROWSERS_BY_NAME), []
        )
        or []
    )


def expected_chromium_id() -> str:
    return installer.extension_identity(CHECKOUT / "extension" / "manifest.json").chromium_id


def run_install_py(
    *args: str, home: Path, data: Path, path: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))},
        "HOME": str(home),
        "DHIMS2_DATA_DIR": str(data),
        "PATH": path or os.environ["PATH"],
    }
    return subprocess.run(
        [sys.executable, str(INSTALL_PY), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_the_extension_manifest_pins_both_ids_the_installer_reads() -> None:
    manifest = json.loads((CHECKOUT / "extension" / "manifest.json").read_text("utf-8"))
    assert manifest["manifest_version"] == 3
    assert "nativeMessaging" in manifest["permissions"]
    assert manifest["browser_specific_settings"]["gecko"] == {
        "id": GECKO_ID,
        "strict_min_version": "121.0",  # a service_worker key stops Firefox < 121
    }
    assert manifest["key"].startswith("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")  # RSA-2048
    identity = installer.extension_identity(CHECKOUT / "extension" / "manifest.json")
    assert len(identity.chromium_id) == 32
    assert set(identity.chromium_id) <= set("abcdefghijklmnop")


def test_no_private_key_is_in_the_checkout() -> None:
    pem_marker = "PRIVATE " + "KEY-----"  # split so this file does not match itself
    for folder in ("extension", "manifest", "host"):
        for path in (CHECKOUT / folder).rglob("*"):
            if path.is_file():
                assert pem_marker not in path.read_text("utf-8", "replace"), path


def test_chromium_ids_map_sha256_hex_to_letters_a_to_p() -> None:
    # sha256 of an empty key starts e3b0c44298fc1c149afbf4c8996fb924.
    assert installer.chromium_extension_id("") == "odlameecjipmbmbejkplpemijjgpljce"
    with pytest.raises(InstallError, match="not valid base64"):
        installer.chromium_extension_id("not base64!")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{", "not valid JSON"),
        ('{"key": "AAAA"}', "needs `key` and"),
        ('{"key": 5, "browser_specific_settings": {"gecko": {"id": "a@b"}}}', "must be strings"),
    ],
)
def test_a_broken_extension_manifest_is_named(tmp_path: Path, content: str, reason: str) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(content, encoding="utf-8")
    with pytest.raises(InstallError, match=reason):
        installer.extension_identity(manifest)
    with pytest.raises(InstallError, match="cannot read"):
        installer.extension_identity(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("platform", "folders"), [("linux", LINUX_FOLDERS), ("darwin", DARWIN_FOLDERS)]
)
def test_manifests_go_to_each_browsers_folder(
    tmp_path: Path, platform: str, folders: dict[str, str]
) -> None:
    installation = make_installation(tmp_path, platform)
    installation.install(every_browser(installation), Path(sys.executable))
    home = installation.system.home
    for name, folder in folders.items():
        manifest = json.loads((home / folder / HOST_FILE).read_text("utf-8"))
        assert manifest["name"] == "org.dhims2.uploader"
        assert manifest["type"] == "stdio"
        assert manifest["description"]
        assert manifest["path"] == str(tmp_path / "data" / "dhims2-host.sh")
        if name in CHROMIUM_FAMILY:
            assert manifest["allowed_origins"] == [f"chrome-extension://{expected_chromium_id()}/"]
            assert "allowed_extensions" not in manifest
        else:
            assert manifest["allowed_extensions"] == [GECKO_ID]
            assert "allowed_origins" not in manifest


def test_windows_gets_registry_keys_pointing_at_one_manifest_per_family(tmp_path: Path) -> None:
    installation = make_installation(tmp_path, "win32")
    registry = installation.registry
    assert isinstance(registry, FakeRegistry)
    installation.install(every_browser(installation), windows_venv(tmp_path))
    assert set(registry.defaults()) == set(WINDOWS_KEYS.values())
    assert len(registry.calls) == 4  # Brave and Vivaldi share Chrome's key
    for name, key in WINDOWS_KEYS.items():
        manifest_path = Path(str(registry.defaults()[key]))
        family = "chromium" if name in CHROMIUM_FAMILY else "firefox"
        assert manifest_path == tmp_path / "data" / "manifests" / family / HOST_FILE
        manifest = json.loads(manifest_path.read_text("utf-8"))
        # pip's console-script program, started directly: no .bat, so no cmd.exe
        assert manifest["path"] == str(tmp_path / "venv" / "Scripts" / "dhims2-host.exe")
    assert not (tmp_path / "data" / "dhims2-host.bat").exists()


def test_a_windows_path_stays_valid_json_in_the_manifest() -> None:
    template = (CHECKOUT / "manifest" / "chromium.json").read_text("utf-8")
    identity = installer.ExtensionIdentity("a" * 32, GECKO_ID)
    rendered = installer.render_manifest(template, Path(r'C:\Dat"a\dhims2-host.bat'), identity)
    assert json.loads(rendered)["path"] == r'C:\Dat"a\dhims2-host.bat'
    assert "@" not in rendered.replace(GECKO_ID, "")  # every placeholder was filled


def test_the_launcher_runs_the_host_with_an_absolute_interpreter(tmp_path: Path) -> None:
    installation = make_installation(tmp_path)
    installation.install([installer.profile_target(tmp_path / "profile")], Path(sys.executable))
    launcher = tmp_path / "data" / "dhims2-host.sh"
    assert launcher.read_text("utf-8").startswith("#!/bin/sh\n")
    assert installer.launcher_interpreter(launcher.read_text("utf-8")) == Path(sys.executable)
    assert stat.S_IMODE(launcher.stat().st_mode) & 0o100
    process = subprocess.run(
        [str(launcher), f"chrome-extension://{expected_chromium_id()}/"],
        input=b"",
        capture_output=True,
        cwd=launcher.parent,
        timeout=30,
        check=False,
    )
    assert process.returncode == 0
    assert read_message(io.BytesIO(process.stdout))["type"] == "hello"  # type: ignore[index]


@pytest.mark.parametrize("interpreter", [Path("/opt/my python/bin/python3"), Path("/o'k/python")])
def test_the_interpreter_can_be_read_back_from_a_launcher(interpreter: Path) -> None:
    text = installer.launcher_text(interpreter)
    assert installer.launcher_interpreter(text) == interpreter


def test_the_interpreter_of_a_foreign_launcher_is_unknown() -> None:
    assert installer.launcher_interpreter("#!/bin/sh\nexec node host.js\n") is None


def test_installing_twice_changes_nothing(tmp_path: Path) -> None:
    first = make_installation(tmp_path)
    first.install(every_browser(first), Path(sys.executable))
    snapshot = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    second = make_installation(tmp_path)
    steps = second.install(every_browser(second), Path(sys.executable))
    assert {step.action for step in steps} == {"unchanged"}
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == snapshot


def test_installing_twice_on_windows_writes_no_key_again(tmp_path: Path) -> None:
    installation = make_installation(tmp_path, "win32")
    installation.install(every_browser(installation), windows_venv(tmp_path))
    registry = installation.registry
    assert isinstance(registry, FakeRegistry)
    writes = len(registry.calls)
    again = Installation(installation.system, installation.data_dir, registry, CHECKOUT)
    again.install(every_browser(again), windows_venv(tmp_path))
    assert len(registry.calls) == writes


def test_browsers_are_detected_by_profile_folder_or_program(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".mozilla").mkdir(parents=True)
    (home / ".config/BraveSoftware/Brave-Browser").mkdir(parents=True)
    system = make_system(home, on_path=("chromium",))
    assert [b.name for b in installer.detect_browsers(system)] == ["chromium", "brave", "firefox"]


def test_windows_browsers_are_detected_by_their_app_data_folders(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "AppData/Local/Microsoft/Edge/User Data").mkdir(parents=True)
    (home / "AppData/Roaming/librewolf").mkdir(parents=True)
    system = make_system(home, "win32", on_path=("chrome",))
    assert [b.name for b in installer.detect_browsers(system)] == ["edge", "librewolf"]


def test_no_browser_found_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no supported browser found; name one with --browser"):
        installer.detected_targets(make_system(tmp_path), tmp_path / "data")


def test_an_unknown_platform_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="unsupported platform"):
        System(platform="sunos5", home=tmp_path)


def test_a_user_data_dir_gets_its_own_manifest_and_is_remembered(tmp_path: Path) -> None:
    installation = make_installation(tmp_path)
    profile = tmp_path / "profile"
    installation.install([installer.profile_target(profile)], Path(sys.executable))
    manifest = json.loads((profile / "NativeMessagingHosts" / HOST_FILE).read_text("utf-8"))
    assert manifest["allowed_origins"] == [f"chrome-extension://{expected_chromium_id()}/"]
    record = installer.read_install_record(tmp_path / "data")
    assert record is not None and record["profiles"] == [str(profile)]
    assert not (installation.system.home / ".config").exists()

    removal = make_installation(tmp_path)
    removal.uninstall([installer.profile_target(profile)], everything=False)
    assert not (profile / "NativeMessagingHosts" / HOST_FILE).exists()
    assert installer.read_install_record(tmp_path / "data")["profiles"] == []  # type: ignore[index]
    assert (tmp_path / "data" / "dhims2-host.sh").exists()  # other browsers still use it


def test_uninstall_removes_every_registration_but_keeps_the_users_data(tmp_path: Path) -> None:
    installation = make_installation(tmp_path)
    installation.install(every_browser(installation), Path(sys.executable))
    (tmp_path / "data" / "uploads.sqlite").write_bytes(b"records")
    (tmp_path / "data" / "venv" / "bin").mkdir(parents=True)
    removal = make_installation(tmp_path)
    steps = removal.uninstall(
        installer.all_targets(removal.system, removal.data_dir), everything=True
    )
    assert {step.action for step in steps} == {"removed"}
    assert not list((tmp_path / "home").rglob(HOST_FILE))
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["uploads.sqlite"]
    assert (
        removal.uninstall(installer.all_targets(removal.system, removal.data_dir), everything=True)
        == []
    )


def test_uninstall_on_windows_deletes_the_keys(tmp_path: Path) -> None:
    installation = make_installation(tmp_path, "win32")
    installation.install(every_browser(installation), windows_venv(tmp_path))
    registry = installation.registry
    assert isinstance(registry, FakeRegistry)
    removal = Installation(installation.system, installation.data_dir, registry, CHECKOUT)
    removal.uninstall(installer.all_targets(removal.system, removal.data_dir), everything=True)
    assert registry.keys == {}
    assert not (tmp_path / "data" / "manifests" / "chromium" / HOST_FILE).exists()


def test_install_py_registers_found_browsers_prints_what_it_wrote_and_is_idempotent(
    tmp_path: Path,
) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    (home / ".mozilla").mkdir(parents=True)
    (home / ".config/google-chrome").mkdir(parents=True)
    first = run_install_py("--no-venv", home=home, data=data, path="/nonexistent")
    assert first.returncode == 0, first.stderr
    assert (
        f"wrote      manifest for Google Chrome: {home / LINUX_FOLDERS['chrome'] / HOST_FILE}"
        in first.stdout
    )
    assert (
        f"wrote      manifest for Firefox: {home / LINUX_FOLDERS['firefox'] / HOST_FILE}"
        in first.stdout
    )
    assert f"wrote      launcher: {data / 'dhims2-host.sh'}" in first.stdout
    assert "Chromium" not in first.stdout
    second = run_install_py("--no-venv", home=home, data=data, path="/nonexistent")
    assert second.returncode == 0
    assert "wrote" not in second.stdout and second.stdout.count("unchanged") == 4
    checked = run_install_py("--check", home=home, data=data, path="/nonexistent")
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.rstrip().endswith("All good.")
    removed = run_install_py("--uninstall", home=home, data=data, path="/nonexistent")
    assert removed.returncode == 0
    assert not list(home.rglob(HOST_FILE))


def test_install_py_with_user_data_dir_and_named_browser(tmp_path: Path) -> None:
    home, data, profile = tmp_path / "home", tmp_path / "data", tmp_path / "profile"
    result = run_install_py("--no-venv", "--user-data-dir", str(profile), home=home, data=data)
    assert result.returncode == 0, result.stderr
    assert (profile / "NativeMessagingHosts" / HOST_FILE).is_file()
    result = run_install_py("--no-venv", "--browser", "librewolf", home=home, data=data)
    assert result.returncode == 0, result.stderr
    assert (home / LINUX_FOLDERS["librewolf"] / HOST_FILE).is_file()


def test_install_py_without_a_browser_fails_clearly(tmp_path: Path) -> None:
    result = run_install_py(
        "--no-venv", home=tmp_path / "home", data=tmp_path / "data", path="/nonexistent"
    )
    assert result.returncode == 1
    assert "no supported browser found" in result.stderr
    assert "Traceback" not in result.stderr


def test_install_py_names_a_folder_it_cannot_write(tmp_path: Path) -> None:
    occupied = tmp_path / "profile"
    occupied.write_text("a file where a folder should be", encoding="utf-8")
    result = run_install_py(
        "--no-venv", "--user-data-dir", str(occupied), home=tmp_path, data=tmp_path / "data"
    )
    assert result.returncode == 1
    assert f"install.py: {occupied / 'NativeMessagingHosts'}: " in result.stderr
    assert "Traceback" not in result.stderr


def test_install_py_refuses_an_unknown_browser(tmp_path: Path) -> None:
    result = run_install_py("--browser", "netscape", home=tmp_path, data=tmp_path / "data")
    assert result.returncode == 2
    assert "invalid choice: 'netscape'" in result.stderr


def test_install_py_runs_on_a_bare_python_and_no_venv_needs_the_host_installed(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {"HOME": str(tmp_path), "PATH": "/nonexistent"}  # no DHIMS2_DATA_DIR: the default
    result = subprocess.run(
        [str(bare / "bin" / "python"), str(INSTALL_PY), "--no-venv", "--browser", "chrome"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "cannot import dhims2.browser.native_host" in result.stderr
    assert "leave out --no-venv" in result.stderr
    assert (tmp_path / ".local/share/dhims2-uploader").is_dir()  # found without platformdirs


def test_install_py_builds_a_private_venv_by_default(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    result = run_install_py("--browser", "chromium", home=home, data=data)
    assert result.returncode == 0, result.stderr
    launcher = (data / "dhims2-host.sh").read_text("utf-8")
    assert installer.launcher_interpreter(launcher) == data / "venv" / "bin" / "python"
    checked = run_install_py("--check", "--browser", "chromium", home=home, data=data)
    assert checked.returncode == 0, checked.stdout
    shutil.rmtree(data / "venv")
    broken = run_install_py("--check", "--browser", "chromium", home=home, data=data)
    assert broken.returncode == 1
    assert "no longer exists (deleted venv?)" in broken.stdout
