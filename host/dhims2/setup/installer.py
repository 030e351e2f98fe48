"""Registering the native host with browsers: launcher, host manifests, Windows registry keys.

Everything that depends on the machine (operating system, home folder, PATH, registry) comes in
through `System` and `Registry`, so tests can lay out Linux, macOS and Windows in a temp folder.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dhims2.errors import Dhims2Error

HOST_NAME = "org.dhims2.uploader"
MANIFEST_FILE_NAME = f"{HOST_NAME}.json"
INSTALL_RECORD_NAME = "install.json"
VENV_DIR_NAME = "venv"
HOST_MODULE = "dhims2.browser.native_host"
CHROMIUM_FAMILY = "chromium"
FIREFOX_FAMILY = "firefox"
PLATFORMS = ("linux", "darwin", "win32")
_BATCH_LAUNCH = re.compile(r'^"(?P<interpreter>[^"]+)" -m ' + re.escape(HOST_MODULE))


class InstallError(Dhims2Error):
    """Installation cannot go on; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Browser:
    name: str  # the --browser value
    label: str
    family: str  # which manifest template it reads
    linux_profile: str  # folders under HOME
    linux_hosts: str
    darwin_profile: str  # folders under ~/Library/Application Support
    darwin_hosts: str
    windows_profile: tuple[str, str]  # (environment variable, folder under it)
    windows_key: str  # HKCU key holding one subkey per host
    executables: tuple[str, ...]
    flatpak_id: str
    snap_name: str | None


BROWSERS: tuple[Browser, ...] = (
    Browser(
        "chrome", "Google Chrome", CHROMIUM_FAMILY,
        ".config/google-chrome", ".config/google-chrome/NativeMessagingHosts",
        "Google/Chrome", "Google/Chrome/NativeMessagingHosts",
        ("LOCALAPPDATA", "Google/Chrome/User Data"), r"Software\Google\Chrome\NativeMessagingHosts",
        ("google-chrome", "google-chrome-stable"), "com.google.Chrome", None,
    ),
    Browser(
        "chromium", "Chromium", CHROMIUM_FAMILY,
        ".config/chromium", ".config/chromium/NativeMessagingHosts",
        "Chromium", "Chromium/NativeMessagingHosts",
        ("LOCALAPPDATA", "Chromium/User Data"), r"Software\Chromium\NativeMessagingHosts",
        ("chromium", "chromium-browser"), "org.chromium.Chromium", "chromium",
    ),
    Browser(
        "edge", "Microsoft Edge", CHROMIUM_FAMILY,
        ".config/microsoft-edge", ".config/microsoft-edge/NativeMessagingHosts",
        "Microsoft Edge", "Microsoft Edge/NativeMessagingHosts",
        ("LOCALAPPDATA", "Microsoft/Edge/User Data"),
        r"Software\Microsoft\Edge\NativeMessagingHosts",
        ("microsoft-edge", "microsoft-edge-stable"), "com.microsoft.Edge", None,
    ),
    Browser(
        # Brave and Vivaldi read Chrome's registry key on Windows.
        "brave", "Brave", CHROMIUM_FAMILY,
        ".config/BraveSoftware/Brave-Browser",
        ".config/BraveSoftware/Brave-Browser/NativeMessagingHosts",
        "BraveSoftware/Brave-Browser", "BraveSoftware/Brave-Browser/NativeMessagingHosts",
        ("LOCALAPPDATA", "BraveSoftware/Brave-Browser/User Data"),
        r"Software\Google\Chrome\NativeMessagingHosts",
        ("brave-browser", "brave"), "com.brave.Browser", "brave",
    ),
    Browser(
        "vivaldi", "Vivaldi", CHROMIUM_FAMILY,
        ".config/vivaldi", ".config/vivaldi/NativeMessagingHosts",
        "Vivaldi", "Vivaldi/NativeMessagingHosts",
        ("LOCALAPPDATA", "Vivaldi/User Data"), r"Software\Google\Chrome\NativeMessagingHosts",
        ("vivaldi", "vivaldi-stable"), "com.vivaldi.Vivaldi", "vivaldi",
    ),
    Browser(
        "firefox", "Firefox", FIREFOX_FAMILY,
        ".mozilla", ".mozilla/native-messaging-hosts",
        "Firefox", "Mozilla/NativeMessagingHosts",
        ("APPDATA", "Mozilla/Firefox"), r"Software\Mozilla\NativeMessagingHosts",
        ("firefox", "firefox-esr"), "org.mozilla.firefox", "firefox",
    ),
    Browser(
        # LibreWolf has its own folders on Linux and macOS but reads Mozilla's key on Windows.
        "librewolf", "LibreWolf", FIREFOX_FAMILY,
        ".librewolf", ".librewolf/native-messaging-hosts",
        "librewolf", "LibreWolf/NativeMessagingHosts",
        ("APPDATA", "librewolf"), r"Software\Mozilla\NativeMessagingHosts",
        ("librewolf",), "io.gitlab.librewolf-community", None,
    ),
)  # fmt: skip
BROWSERS_BY_NAME = {browser.name: browser for browser in BROWSERS}


@dataclass(frozen=True)
class System:
    """The machine being installed on: its OS, home folder and how to find programs."""

    platform: str
    home: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    which: Callable[[str], str | None] = shutil.which
    snap_root: Path = Path("/snap")

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise InstallError(f"unsupported platform {self.platform!r} (use {PLATFORMS})")

    @classmethod
    def current(cls) -> System:
        platform = "linux" if sys.platform.startswith("linux") else sys.platform
        return cls(platform=platform, home=Path.home(), environ=dict(os.environ))

    def profile_dir(self, browser: Browser) -> Path:
        if self.platform == "linux":
            return self.home / browser.linux_profile
        if self.platform == "darwin":
            return self._application_support / browser.darwin_profile
        variable, folder = browser.windows_profile
        return self._windows_folder(variable) / folder

    def hosts_dir(self, browser: Browser) -> Path | None:
        """The folder the browser reads host manifests from; None on Windows (registry)."""
        if self.platform == "linux":
            return self.home / browser.linux_hosts
        if self.platform == "darwin":
            return self._application_support / browser.darwin_hosts
        return None

    def is_present(self, browser: Browser) -> bool:
        if self.profile_dir(browser).is_dir():
            return True
        return self.platform != "win32" and any(map(self.which, browser.executables))

    def sandboxed_installs(self, browser: Browser) -> list[str]:
        """Flatpak or Snap installs of `browser`, which cannot start hosts from outside."""
        if self.platform != "linux":
            return []
        found = []
        if (self.home / ".var/app" / browser.flatpak_id).is_dir():
            found.append(f"Flatpak ({browser.flatpak_id})")
        if browser.snap_name and (self.snap_root / browser.snap_name).is_dir():
            found.append(f"Snap ({browser.snap_name})")
        return found

    @property
    def _application_support(self) -> Path:
        return self.home / "Library/Application Support"

    def _windows_folder(self, variable: str) -> Path:
        default = {"LOCALAPPDATA": "AppData/Local", "APPDATA": "AppData/Roaming"}[variable]
        return Path(self.environ.get(variable) or self.home / default)


class Registry(Protocol):
    """The default values of HKEY_CURRENT_USER keys, which is all native messaging uses."""

    def read(self, key: str) -> str | None: ...
    def write(self, key: str, value: str) -> None: ...
    def delete(self, key: str) -> None: ...


class WindowsRegistry:
    def read(self, key: str) -> str | None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, key) as handle:
                value, _ = winreg.QueryValueEx(handle, "")
        except FileNotFoundError:
            return None
        return value if isinstance(value, str) else None

    def write(self, key: str, value: str) -> None:
        import winreg

        with winreg.CreateKey(winreg.HKEY_CURRENT_USER, key) as handle:
            winreg.SetValueEx(handle, "", 0, winreg.REG_SZ, value)

    def delete(self, key: str) -> None:
        import winreg

        with contextlib.suppress(FileNotFoundError):
            winreg.DeleteKey(winreg.HKEY_CURRENT_USER, key)


@dataclass(frozen=True)
class ExtensionIdentity:
    chromium_id: str
    gecko_id: str

    @property
    def chromium_origin(self) -> str:
        return f"chrome-extension://{self.chromium_id}/"


def chromium_extension_id(public_key_base64: str) -> str:
    """The id Chromium gives an extension whose manifest `key` is this DER public key."""
    try:
        der = base64.b64decode(public_key_base64, validate=True)
    except (binascii.Error, ValueError):
        raise InstallError("the extension's `key` is not valid base64") from None
    digest = hashlib.sha256(der).hexdigest()[:32]
    return digest.translate(str.maketrans("0123456789abcdef", "abcdefghijklmnop"))


def extension_identity(extension_manifest: Path) -> ExtensionIdentity:
    """Both browsers' ids for the extension, read from its manifest.json."""
    try:
        manifest = json.loads(extension_manifest.read_text(encoding="utf-8"))
        key = manifest["key"]
        gecko_id = manifest["browser_specific_settings"]["gecko"]["id"]
    except OSError as error:
        raise InstallError(f"cannot read {extension_manifest}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InstallError(f"{extension_manifest} is not valid JSON: {error.msg}") from None
    except (KeyError, TypeError):
        raise InstallError(
            f"{extension_manifest} needs `key` and `browser_specific_settings.gecko.id`"
        ) from None
    if not isinstance(key, str) or not isinstance(gecko_id, str) or not gecko_id:
        raise InstallError(f"{extension_manifest}: `key` and the gecko id must be strings")
    return ExtensionIdentity(chromium_extension_id(key), gecko_id)


@dataclass(frozen=True)
class Target:
    """One place a host manifest is registered for one browser (or one Chromium profile)."""

    label: str
    family: str
    manifest_path: Path
    registry_key: str | None = None  # Windows: HKCU key whose default value is manifest_path
    user_data_dir: Path | None = None  # set for a single Chromium profile (--user-data-dir)


def browser_target(browser: Browser, system: System, data_dir: Path) -> Target:
    hosts_dir = system.hosts_dir(browser)
    if hosts_dir is not None:
        return Target(browser.label, browser.family, hosts_dir / MANIFEST_FILE_NAME)
    # Windows reads the manifest from wherever the registry says; one file per family.
    return Target(
        browser.label,
        browser.family,
        data_dir / "manifests" / browser.family / MANIFEST_FILE_NAME,
        f"{browser.windows_key}\\{HOST_NAME}",
    )


def profile_target(user_data_dir: Path) -> Target:
    """A Chromium started with --user-data-dir=DIR reads DIR/NativeMessagingHosts only."""
    folder = user_data_dir.expanduser().absolute()
    return Target(
        f"Chromium profile {folder}",
        CHROMIUM_FAMILY,
        folder / "NativeMessagingHosts" / MANIFEST_FILE_NAME,
        user_data_dir=folder,
    )


def detect_browsers(system: System) -> list[Browser]:
    return [browser for browser in BROWSERS if system.is_present(browser)]


def named_targets(
    system: System, data_dir: Path, browsers: Sequence[str], user_data_dirs: Sequence[Path]
) -> list[Target] | None:
    """The targets named by --browser / --user-data-dir, or None when none were named."""
    if user_data_dirs:
        return [profile_target(folder) for folder in user_data_dirs]
    if browsers:
        return [browser_target(BROWSERS_BY_NAME[name], system, data_dir) for name in browsers]
    return None


def detected_targets(system: System, data_dir: Path) -> list[Target]:
    """A target for every browser found on this machine; InstallError if there is none."""
    browsers = detect_browsers(system)
    if not browsers:
        raise InstallError(
            f"no supported browser found; name one with --browser ({', '.join(BROWSERS_BY_NAME)})"
        )
    return [browser_target(browser, system, data_dir) for browser in browsers]


def all_targets(system: System, data_dir: Path) -> list[Target]:
    """Every place a manifest of ours may be: each browser, present or not, and each profile."""
    return [
        *(browser_target(browser, system, data_dir) for browser in BROWSERS),
        *recorded_profile_targets(data_dir),
    ]


def recorded_profile_targets(data_dir: Path) -> list[Target]:
    record = read_install_record(data_dir) or {}
    return [profile_target(Path(folder)) for folder in record.get("profiles", [])]


def render_manifest(template_text: str, launcher: Path, identity: ExtensionIdentity) -> str:
    """A host manifest from a template in manifest/, placeholders filled in."""
    values = {
        "@LAUNCHER_PATH@": str(launcher),
        "@CHROMIUM_EXTENSION_ID@": identity.chromium_id,
        "@GECKO_EXTENSION_ID@": identity.gecko_id,
    }
    text = template_text
    for placeholder, value in values.items():
        # Escaped as a JSON string body, so a Windows path's backslashes stay valid JSON.
        text = text.replace(placeholder, json.dumps(value)[1:-1])
    return json.dumps(json.loads(text), indent=2) + "\n"


def launcher_path(data_dir: Path, platform: str) -> Path:
    return data_dir / ("dhims2-host.bat" if platform == "win32" else "dhims2-host.sh")


def launcher_text(interpreter: Path, platform: str) -> str:
    """A launcher with the interpreter's absolute path: the browser's PATH may not find Python."""
    if platform == "win32":
        # Windows cannot start a .py as a host; a .bat calling python.exe can be.
        return f'@echo off\r\n"{interpreter}" -m {HOST_MODULE} %*\r\n'
    return (
        "#!/bin/sh\n"
        "# The DHIMS2 Uploader native messaging host, as registered by install.py.\n"
        f'exec {shlex.quote(str(interpreter))} -m {HOST_MODULE} "$@"\n'
    )


def launcher_interpreter(launcher: str) -> Path | None:
    """The interpreter a launcher written by `launcher_text` runs, or None if it is not ours."""
    for line in launcher.splitlines():
        if line.startswith("exec ") and HOST_MODULE in line:
            words = shlex.split(line)
            return Path(words[1]) if len(words) > 1 else None
        batch_line = _BATCH_LAUNCH.match(line)
        if batch_line:
            return Path(batch_line["interpreter"])
    return None


def venv_interpreter(venv_dir: Path, platform: str) -> Path:
    if platform == "win32":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def create_venv(data_dir: Path, source_root: Path, platform: str) -> Path:
    """A private venv in the data folder with this checkout installed; returns its interpreter."""
    venv_dir = data_dir / VENV_DIR_NAME
    interpreter = venv_interpreter(venv_dir, platform)
    if not interpreter.exists():
        _run(
            [sys.executable, "-m", "venv", str(venv_dir)],
            "create the private venv (on Debian/Ubuntu: apt install python3-venv)",
        )
    _run(
        [str(interpreter), "-m", "pip", "install", "--quiet", "--upgrade", str(source_root)],
        "install the host into the private venv",
    )
    return interpreter


def require_host_importable(interpreter: Path, work_dir: Path) -> None:
    """Fail early if the launcher's interpreter could not import the host."""
    result = subprocess.run(
        [str(interpreter), "-c", f"import {HOST_MODULE}"],
        cwd=work_dir,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise InstallError(
            f"{interpreter} cannot import {HOST_MODULE}: install the package into that "
            "interpreter (pip install -e .) or leave out --no-venv"
        )


@dataclass(frozen=True)
class Step:
    """One thing install or uninstall did, for the report it prints."""

    action: str  # "wrote", "unchanged", "registered", "removed" or "absent" (nothing to remove)
    subject: str
    where: str

    def __str__(self) -> str:
        return f"{self.action:<10} {self.subject}: {self.where}"


@dataclass(frozen=True)
class Installation:
    """What to install where; `install()` and `uninstall()` carry it out and say what they did."""

    system: System
    data_dir: Path
    registry: Registry | None  # needed on Windows only
    source_root: Path

    @property
    def launcher(self) -> Path:
        return launcher_path(self.data_dir, self.system.platform)

    @property
    def record_path(self) -> Path:
        return self.data_dir / INSTALL_RECORD_NAME

    def install(self, targets: Iterable[Target], interpreter: Path) -> list[Step]:
        identity = extension_identity(self.source_root / "extension" / "manifest.json")
        launcher = launcher_text(interpreter, self.system.platform)
        steps = [_write_file(self.launcher, launcher, "launcher")]
        if self.system.platform != "win32":
            self.launcher.chmod(0o755)
        templates = {
            family: (self.source_root / "manifest" / f"{family}.json").read_text(encoding="utf-8")
            for family in (CHROMIUM_FAMILY, FIREFOX_FAMILY)
        }
        targets = _unique(targets)
        for target in targets:
            manifest = render_manifest(templates[target.family], self.launcher, identity)
            steps.append(
                _write_file(target.manifest_path, manifest, f"manifest for {target.label}")
            )
            if target.registry_key:
                steps.append(self._register(target))
        record = read_install_record(self.data_dir) or {}
        record.update(
            source=str(self.source_root),
            launcher=str(self.launcher),
            interpreter=str(interpreter),
            chromium_id=identity.chromium_id,
            gecko_id=identity.gecko_id,
            profiles=sorted({*record.get("profiles", []), *_profiles_of(targets)}),
        )
        steps.append(self._write_record(record))
        return steps

    def uninstall(self, targets: Iterable[Target], *, everything: bool) -> list[Step]:
        """Remove the manifests of `targets`; with `everything`, also the launcher and venv."""
        steps = []
        targets = _unique(targets)
        for target in targets:
            key = target.registry_key
            if key and self.registry is not None and self.registry.read(key) is not None:
                self.registry.delete(key)
                steps.append(Step("removed", "registry key", f"HKCU\\{key}"))
            steps.append(_remove_file(target.manifest_path, f"manifest for {target.label}"))
        record = read_install_record(self.data_dir)
        if everything:
            steps.append(_remove_file(self.launcher, "launcher"))
            steps.append(_remove_file(self.record_path, "install record"))
            venv_dir = self.data_dir / VENV_DIR_NAME
            if venv_dir.is_dir():
                shutil.rmtree(venv_dir)
                steps.append(Step("removed", "private venv", str(venv_dir)))
        elif record is not None:
            kept = set(record.get("profiles", [])) - set(_profiles_of(targets))
            steps.append(self._write_record({**record, "profiles": sorted(kept)}))
        return [step for step in steps if step.action != "absent"]

    def _register(self, target: Target) -> Step:
        if self.registry is None or target.registry_key is None:
            raise InstallError(f"{target.label} needs a registry to register in")
        value = str(target.manifest_path)
        where = f"HKCU\\{target.registry_key}"
        if self.registry.read(target.registry_key) == value:
            return Step("unchanged", "registry key", where)
        self.registry.write(target.registry_key, value)
        return Step("registered", "registry key", where)

    def _write_record(self, record: dict[str, Any]) -> Step:
        return _write_file(self.record_path, json.dumps(record, indent=2) + "\n", "install record")


def read_install_record(data_dir: Path) -> dict[str, Any] | None:
    """What install.py last installed (launcher, extension ids, profiles), if anything."""
    try:
        record = json.loads((data_dir / INSTALL_RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _write_file(path: Path, text: str, subject: str) -> Step:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return Step("unchanged", subject, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8", newline="")
    os.replace(temp, path)
    return Step("wrote", subject, str(path))


def _remove_file(path: Path, subject: str) -> Step:
    if not path.exists():
        return Step("absent", subject, str(path))
    path.unlink()
    return Step("removed", subject, str(path))


def _unique(targets: Iterable[Target]) -> list[Target]:
    """Targets without repeats: Chrome, Brave and Vivaldi share one manifest on Windows."""
    seen: dict[tuple[Path, str | None], Target] = {}
    for target in targets:
        seen.setdefault((target.manifest_path, target.registry_key), target)
    return list(seen.values())


def _profiles_of(targets: Iterable[Target]) -> list[str]:
    return [str(target.user_data_dir) for target in targets if target.user_data_dir]


def _run(command: list[str], purpose: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise InstallError(f"could not {purpose} ({' '.join(command[:3])} ...):\n{tail}")
