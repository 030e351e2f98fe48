"""Registering the native host with browsers: launcher, host manifests, Windows registry keys.

Everything that depends on the machine (operating system, home folder, PATH, registry, the running
Python) comes in through `System` and `Registry`, so tests can lay out Linux, macOS and Windows in a
temp folder.
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
# What launchers written before the package was renamed run; their venv still holds that copy.
LEGACY_HOST_MODULE = "dhims2_host.native_host"
# pip builds this from the `dhims2-host` console script; Windows browsers start it directly.
WINDOWS_HOST_PROGRAM = "dhims2-host.exe"
LEGACY_WINDOWS_LAUNCHER = "dhims2-host.bat"
HKCU = "HKCU"
HKLM = "HKLM"
CHROMIUM_FAMILY = "chromium"
FIREFOX_FAMILY = "firefox"
PLATFORMS = ("linux", "darwin", "win32")
# Where Windows installers put browsers: under Program Files (both) and, for per-user installs,
# under %LOCALAPPDATA%. A browser never opened has no profile folder yet, but it has these.
# Upper case: that is how os.environ spells every name on Windows.
WINDOWS_PROGRAM_ROOTS = ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")
# The Microsoft Store Python runs from WindowsApps and keeps what it writes to AppData and HKCU in
# a private per-app copy that browsers never see.
_STORE_PYTHON = re.compile(r"[\\/]WindowsApps[\\/]", re.IGNORECASE)
STORE_PYTHON = (
    "this is the Microsoft Store Python: the files and registry keys it writes go to a private "
    "copy that browsers cannot see"
)
STORE_PYTHON_FIX = (
    "install Python from https://www.python.org/downloads/windows/ (with the py launcher), "
    "then run: py install.py"
)


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
    windows_key: str  # HKCU/HKLM key holding one subkey per host
    windows_programs: tuple[str, ...]  # the browser's program under WINDOWS_PROGRAM_ROOTS
    windows_policy_key: str | None  # where its Windows group policies live (HKLM, then HKCU)
    executables: tuple[str, ...]
    flatpak_id: str
    snap_name: str | None


BROWSERS: tuple[Browser, ...] = (
    Browser(
        "chrome", "Google Chrome", CHROMIUM_FAMILY,
        ".config/google-chrome", ".config/google-chrome/NativeMessagingHosts",
        "Google/Chrome", "Google/Chrome/NativeMessagingHosts",
        ("LOCALAPPDATA", "Google/Chrome/User Data"), r"Software\Google\Chrome\NativeMessagingHosts",
        ("Google/Chrome/Application/chrome.exe",), r"SOFTWARE\Policies\Google\Chrome",
        ("google-chrome", "google-chrome-stable"), "com.google.Chrome", None,
    ),
    Browser(
        "chromium", "Chromium", CHROMIUM_FAMILY,
        ".config/chromium", ".config/chromium/NativeMessagingHosts",
        "Chromium", "Chromium/NativeMessagingHosts",
        ("LOCALAPPDATA", "Chromium/User Data"), r"Software\Chromium\NativeMessagingHosts",
        ("Chromium/Application/chrome.exe",), r"SOFTWARE\Policies\Chromium",
        ("chromium", "chromium-browser"), "org.chromium.Chromium", "chromium",
    ),
    Browser(
        "edge", "Microsoft Edge", CHROMIUM_FAMILY,
        ".config/microsoft-edge", ".config/microsoft-edge/NativeMessagingHosts",
        "Microsoft Edge", "Microsoft Edge/NativeMessagingHosts",
        ("LOCALAPPDATA", "Microsoft/Edge/User Data"),
        r"Software\Microsoft\Edge\NativeMessagingHosts",
        ("Microsoft/Edge/Application/msedge.exe",), r"SOFTWARE\Policies\Microsoft\Edge",
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
        ("BraveSoftware/Brave-Browser/Application/brave.exe",),
        r"SOFTWARE\Policies\BraveSoftware\Brave",
        ("brave-browser", "brave"), "com.brave.Browser", "brave",
    ),
    Browser(
        "vivaldi", "Vivaldi", CHROMIUM_FAMILY,
        ".config/vivaldi", ".config/vivaldi/NativeMessagingHosts",
        "Vivaldi", "Vivaldi/NativeMessagingHosts",
        ("LOCALAPPDATA", "Vivaldi/User Data"), r"Software\Google\Chrome\NativeMessagingHosts",
        ("Vivaldi/Application/vivaldi.exe",), None,
        ("vivaldi", "vivaldi-stable"), "com.vivaldi.Vivaldi", "vivaldi",
    ),
    Browser(
        "firefox", "Firefox", FIREFOX_FAMILY,
        ".mozilla", ".mozilla/native-messaging-hosts",
        "Firefox", "Mozilla/NativeMessagingHosts",
        ("APPDATA", "Mozilla/Firefox"), r"Software\Mozilla\NativeMessagingHosts",
        ("Mozilla Firefox/firefox.exe",), None,
        ("firefox", "firefox-esr"), "org.mozilla.firefox", "firefox",
    ),
    Browser(
        # LibreWolf has its own folders on Linux and macOS but reads Mozilla's key on Windows.
        "librewolf", "LibreWolf", FIREFOX_FAMILY,
        ".librewolf", ".librewolf/native-messaging-hosts",
        "librewolf", "LibreWolf/NativeMessagingHosts",
        ("APPDATA", "librewolf"), r"Software\Mozilla\NativeMessagingHosts",
        ("LibreWolf/librewolf.exe",), None,
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
    python: tuple[str, ...] = ()  # where the running Python lives (executable, base prefix)

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise InstallError(f"unsupported platform {self.platform!r} (use {PLATFORMS})")

    @classmethod
    def current(cls) -> System:
        platform = "linux" if sys.platform.startswith("linux") else sys.platform
        return cls(
            platform=platform,
            home=Path.home(),
            environ=dict(os.environ),
            python=(sys.executable, sys.base_prefix),
        )

    @property
    def store_python(self) -> bool:
        """Whether this is the Microsoft Store Python, whose writes browsers cannot see."""
        return self.platform == "win32" and any(map(_STORE_PYTHON.search, self.python))

    def machine_data_dir(self) -> Path:
        """Windows: where an all-users install keeps the venv and manifests, readable by all."""
        root = self.environ.get("PROGRAMDATA") or "C:/ProgramData"
        return Path(root) / "dhims2-uploader"

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
        if self.platform == "win32":
            return any(program.is_file() for program in self.windows_programs(browser))
        return any(map(self.which, browser.executables))

    def windows_programs(self, browser: Browser) -> list[Path]:
        """Where the browser's program would be, were it installed for all users or this one."""
        roots = [self.environ.get(variable) for variable in WINDOWS_PROGRAM_ROOTS]
        return [Path(root) / name for root in roots if root for name in browser.windows_programs]

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
    """Registry keys in HKCU or HKLM: native messaging uses their default value, group policies
    their named values."""

    def values(self, key: str, hive: str = HKCU) -> dict[str, object]: ...
    def write(self, key: str, value: str, hive: str = HKCU) -> None: ...
    def delete(self, key: str, hive: str = HKCU) -> None: ...


def registered_path(registry: Registry, key: str, hive: str = HKCU) -> str | None:
    """A key's default value, which for a native messaging host is its manifest's path."""
    value = registry.values(key, hive).get("")
    return value if isinstance(value, str) else None


class WindowsRegistry:
    """The real registry. The guards let mypy check this on every platform: off Windows the
    winreg calls are unreachable, and tests use a dict-backed registry instead."""

    def values(self, key: str, hive: str = HKCU) -> dict[str, object]:
        if sys.platform != "win32":
            raise InstallError("the Windows registry exists on Windows only")
        import winreg

        found: dict[str, object] = {}
        try:
            with winreg.OpenKey(_winreg_hive(hive), key) as handle:
                for index in range(winreg.QueryInfoKey(handle)[1]):
                    name, value, _ = winreg.EnumValue(handle, index)
                    found[name] = value
        except FileNotFoundError:
            return {}
        return found

    def write(self, key: str, value: str, hive: str = HKCU) -> None:
        if sys.platform != "win32":
            raise InstallError("the Windows registry exists on Windows only")
        import winreg

        with winreg.CreateKey(_winreg_hive(hive), key) as handle:
            winreg.SetValueEx(handle, "", 0, winreg.REG_SZ, value)

    def delete(self, key: str, hive: str = HKCU) -> None:
        if sys.platform != "win32":
            raise InstallError("the Windows registry exists on Windows only")
        import winreg

        with contextlib.suppress(FileNotFoundError):
            winreg.DeleteKey(_winreg_hive(hive), key)


def _winreg_hive(hive: str) -> int:
    if sys.platform != "win32":
        raise InstallError("the Windows registry exists on Windows only")
    import winreg

    return winreg.HKEY_LOCAL_MACHINE if hive == HKLM else winreg.HKEY_CURRENT_USER


def running_as_administrator() -> bool:
    """Whether this process may write HKLM (Windows: an elevated administrator)."""
    if sys.platform != "win32":
        return False
    import ctypes

    return bool(ctypes.windll.shell32.IsUserAnAdmin())


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
    registry_key: str | None = None  # Windows: HKCU/HKLM key whose default value is manifest_path
    user_data_dir: Path | None = None  # set for a single Chromium profile (--user-data-dir)
    policy_key: str | None = None  # Windows: the browser's group policy key, if it has one


def browser_target(browser: Browser, system: System, data_dir: Path) -> Target:
    hosts_dir = system.hosts_dir(browser)
    if hosts_dir is not None:
        return Target(browser.label, browser.family, hosts_dir / MANIFEST_FILE_NAME)
    # Windows reads the manifest from wherever the registry says; one file per family.
    return Target(
        browser.label,
        browser.family,
        data_dir / "manifests" / browser.family / MANIFEST_FILE_NAME,
        host_key(browser),
        policy_key=browser.windows_policy_key,
    )


def host_key(browser: Browser) -> str:
    return f"{browser.windows_key}\\{HOST_NAME}"


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


def host_program(data_dir: Path, interpreter: Path, platform: str) -> Path:
    """The program the manifests name: on Windows the `dhims2-host.exe` pip built next to the
    interpreter (a .bat would need cmd.exe, be read in the OEM code page and expand %), elsewhere
    a shell launcher in the data folder."""
    if platform != "win32":
        return data_dir / "dhims2-host.sh"
    scripts = interpreter.parent
    if scripts.name.lower() != "scripts":  # a base install keeps console scripts in Scripts\
        scripts = scripts / "Scripts"
    return scripts / WINDOWS_HOST_PROGRAM


def launcher_text(interpreter: Path) -> str:
    """A launcher with the interpreter's absolute path: the browser's PATH may not find Python."""
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
    return None


def earlier_version(launcher: Path, text: str) -> str | None:
    """Why `launcher` was written by an earlier install.py, or None if it is current."""
    if launcher.name == LEGACY_WINDOWS_LAUNCHER:
        return "it is the .bat launcher of an earlier version, which needs cmd.exe"
    if LEGACY_HOST_MODULE in text:
        return f"it was written by an earlier version and runs {LEGACY_HOST_MODULE}"
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

    # "wrote", "unchanged", "found", "registered", "kept" (still in use), "removed" or "absent"
    # (nothing to remove)
    action: str
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
    hive: str = HKCU  # HKLM registers for every user of a Windows PC (run as administrator)

    @property
    def record_path(self) -> Path:
        return self.data_dir / INSTALL_RECORD_NAME

    def install(self, targets: Iterable[Target], interpreter: Path) -> list[Step]:
        identity = extension_identity(self.source_root / "extension" / "manifest.json")
        program = host_program(self.data_dir, interpreter, self.system.platform)
        if self.system.platform == "win32":
            if not program.is_file():
                raise InstallError(
                    f"{program} is missing: pip did not build the host program; "
                    "run install.py again without --no-venv"
                )
            steps = [Step("found", "host program", str(program))]
            # Re-running install.py is how an earlier version's registration is upgraded.
            steps.append(_remove_file(self.data_dir / LEGACY_WINDOWS_LAUNCHER, "old launcher"))
        else:
            steps = [_write_file(program, launcher_text(interpreter), "launcher")]
            program.chmod(0o755)
        templates = {
            family: (self.source_root / "manifest" / f"{family}.json").read_text(encoding="utf-8")
            for family in (CHROMIUM_FAMILY, FIREFOX_FAMILY)
        }
        targets = _unique(targets)
        for target in targets:
            manifest = render_manifest(templates[target.family], program, identity)
            steps.append(
                _write_file(target.manifest_path, manifest, f"manifest for {target.label}")
            )
            if target.registry_key:
                steps.append(self._register(target))
        record = read_install_record(self.data_dir) or {}
        record.update(
            source=str(self.source_root),
            launcher=str(program),
            interpreter=str(interpreter),
            chromium_id=identity.chromium_id,
            gecko_id=identity.gecko_id,
            profiles=sorted({*record.get("profiles", []), *_profiles_of(targets)}),
        )
        steps.append(self._write_record(record))
        return [step for step in steps if step.action != "absent"]

    def uninstall(self, targets: Iterable[Target], *, everything: bool) -> list[Step]:
        """Remove the manifests of `targets`; with `everything`, also the launcher and venv.

        On Windows, Brave and Vivaldi read Chrome's key and every Chromium browser reads the one
        Chromium manifest: a key another browser on this PC still reads stays, and so does a
        manifest some key still names.
        """
        steps = []
        targets = _unique(targets)
        removing = {target.label for target in targets}
        for target in targets:
            key = target.registry_key
            if key and self.registry is not None:
                sharing = [] if everything else self._other_readers(key, removing)
                where = f"{self.hive}\\{key}"
                if sharing:
                    steps.append(Step("kept", "registry key", f"{where} ({', '.join(sharing)})"))
                elif registered_path(self.registry, key, self.hive) is not None:
                    self.registry.delete(key, self.hive)
                    steps.append(Step("removed", "registry key", where))
            if not self._still_registered(target.manifest_path):
                steps.append(_remove_file(target.manifest_path, f"manifest for {target.label}"))
        record = read_install_record(self.data_dir)
        if everything:
            for launcher in ("dhims2-host.sh", LEGACY_WINDOWS_LAUNCHER):
                steps.append(_remove_file(self.data_dir / launcher, "launcher"))
            steps.append(_remove_file(self.record_path, "install record"))
            venv_dir = self.data_dir / VENV_DIR_NAME
            if venv_dir.is_dir():
                shutil.rmtree(venv_dir)
                steps.append(Step("removed", "private venv", str(venv_dir)))
        elif record is not None:
            kept = set(record.get("profiles", [])) - set(_profiles_of(targets))
            steps.append(self._write_record({**record, "profiles": sorted(kept)}))
        return [step for step in steps if step.action != "absent"]

    def _other_readers(self, key: str, removing: set[str]) -> list[str]:
        """Browsers on this PC, other than those being removed, that read `key`."""
        return [
            browser.label
            for browser in BROWSERS
            if host_key(browser) == key
            and browser.label not in removing
            and self.system.is_present(browser)
        ]

    def _still_registered(self, manifest_path: Path) -> bool:
        if self.registry is None:
            return False
        value = str(manifest_path)
        registry = self.registry
        return any(
            registered_path(registry, key, self.hive) == value
            for key in {host_key(browser) for browser in BROWSERS}
        )

    def _register(self, target: Target) -> Step:
        if self.registry is None or target.registry_key is None:
            raise InstallError(f"{target.label} needs a registry to register in")
        value = str(target.manifest_path)
        where = f"{self.hive}\\{target.registry_key}"
        if registered_path(self.registry, target.registry_key, self.hive) == value:
            return Step("unchanged", "registry key", where)
        self.registry.write(target.registry_key, value, self.hive)
        return Step("registered", "registry key", where)

    def _write_record(self, record: dict[str, Any]) -> Step:
        return _write_file(self.record_path, json.dumps(record, indent=2) + "\n", "install record")


def all_users_data_dir(system: System, is_administrator: bool) -> Path:
    """Where an install for every user of this PC goes; InstallError where there is none."""
    if system.platform != "win32":
        raise InstallError(
            "--all-users is for Windows (where a policy may allow only hosts registered for "
            "all users); elsewhere each user runs install.py"
        )
    if not is_administrator:
        raise InstallError(
            "--all-users writes to HKEY_LOCAL_MACHINE: open the Command Prompt with "
            '"Run as administrator" and run the same command there'
        )
    return system.machine_data_dir()


def require_usable_python(system: System) -> None:
    """Refuse a Python whose installs browsers could not see (the Microsoft Store's)."""
    if system.store_python:
        raise InstallError(f"{STORE_PYTHON}. To fix it, {STORE_PYTHON_FIX}")


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
