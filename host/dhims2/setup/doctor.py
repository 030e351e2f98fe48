"""`dhims2 doctor`: check that each browser can find, start and talk to the native host.

The browser tells the extension little more than "host not found"; the real reason is only on the
browser's stderr. Doctor checks every registration the way the browser does and prints each
problem with its fix. The checks are plain functions over text and paths, so each broken case
can be tested on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dhims2 import __version__
from dhims2.browser import framing, protocol
from dhims2.setup import installer
from dhims2.setup.installer import (
    CHROMIUM_FAMILY,
    HOST_NAME,
    ExtensionIdentity,
    Registry,
    System,
    Target,
)

HELLO_TIMEOUT_SECONDS = 5.0
REINSTALL = "run `python3 install.py` from the DHIMS2 Uploader checkout"
# What a Chromium extension is told for each fault (the browser prints the real reason on stderr).
NOT_FOUND = "Specified native messaging host not found."
FORBIDDEN = "Access to the specified native messaging host is forbidden."
EXITED = "Native host has exited."
COMMUNICATION_ERROR = "Error when communicating with the native messaging host."
INVALID_NAME = "Invalid native messaging host name specified."
_VALID_HOST_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


@dataclass(frozen=True)
class Problem:
    where: str
    what: str
    fix: str
    extension_sees: str | None = None  # the Chromium error message this fault produces


@dataclass
class Diagnosis:
    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_manifest_text(
    manifest_path: Path, text: str, family: str, identity: ExtensionIdentity
) -> list[Problem]:
    """Problems with one host manifest's content, as the browser would find them."""
    where = str(manifest_path)
    chromium = family == CHROMIUM_FAMILY

    def problem(what: str, fix: str = REINSTALL, sees: str | None = NOT_FOUND) -> Problem:
        return Problem(where, what, fix, sees if chromium else None)

    try:
        manifest = json.loads(text)
    except ValueError as error:
        return [problem(f"not valid JSON ({error})")]
    if not isinstance(manifest, dict):
        return [problem("must hold a JSON object")]
    problems = []
    name = manifest.get("name")
    if not isinstance(name, str) or not _VALID_HOST_NAME.match(name):
        problems.append(
            problem(
                f"name {name!r} is not a valid host name (lower case letters, digits, _ and .)",
                sees=INVALID_NAME,
            )
        )
    elif name != manifest_path.stem:
        problems.append(problem(f"name {name!r} differs from the file name {manifest_path.name}"))
    elif name != HOST_NAME:
        problems.append(problem(f"name {name!r} is not {HOST_NAME!r}"))
    description = manifest.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(problem("description is missing or empty"))
    if manifest.get("type") != "stdio":
        problems.append(problem(f"type is {manifest.get('type')!r}, not 'stdio'"))
    host_path = manifest.get("path")
    if not isinstance(host_path, str) or not host_path:
        problems.append(problem("path is missing"))
    elif not _is_absolute(host_path):
        problems.append(problem(f"path {host_path!r} is not absolute"))
    problems.extend(
        _check_allowed_origins(manifest, identity, problem)
        if chromium
        else _check_allowed_extensions(manifest, identity, problem)
    )
    return problems


def check_launcher(launcher: Path, chromium: bool = True) -> list[Problem]:
    """Problems with the program a manifest's `path` names (and the interpreter it runs)."""
    where = str(launcher)
    if not launcher.is_file():
        sees = NOT_FOUND if chromium else None
        return [Problem(where, "the host program does not exist", REINSTALL, sees)]
    # Windows starts .bat/.exe files by their name; elsewhere the execute bit is what counts.
    needs_execute_bit = launcher.suffix.lower() not in (".bat", ".cmd", ".exe")
    if needs_execute_bit and not os.access(launcher, os.X_OK):
        sees = COMMUNICATION_ERROR if chromium else None
        return [Problem(where, "the host program is not executable", f"chmod +x {launcher}", sees)]
    try:
        interpreter = installer.launcher_interpreter(launcher.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        interpreter = None
    if interpreter is not None and not interpreter.is_file():
        return [
            Problem(
                where,
                f"the launcher runs {interpreter}, which no longer exists (deleted venv?)",
                REINSTALL,
                EXITED if chromium else None,
            )
        ]
    return []


def check_hello(
    launcher: Path, origin: str, timeout: float = HELLO_TIMEOUT_SECONDS
) -> list[Problem]:
    """Start the host as a browser would and expect its hello within `timeout` seconds."""
    where = str(launcher)
    try:
        process = subprocess.Popen(
            [str(launcher), origin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=launcher.parent,
        )
    except OSError as error:
        return [Problem(where, f"the host cannot be started ({error.strerror})", REINSTALL, EXITED)]
    outcome: dict[str, Any] = {}
    reader = threading.Thread(
        target=_read_first_message, args=(process.stdout, outcome), daemon=True
    )
    reader.start()
    reader.join(timeout)
    timed_out = reader.is_alive()
    if timed_out:
        process.kill()
    try:
        # Closes the host's stdin: after its hello, EOF is its cue to exit.
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return _judge_hello(where, outcome, timed_out, stderr, timeout)


def diagnose(
    system: System,
    data_dir: Path,
    targets: list[Target],
    registry: Registry | None,
    *,
    start_host: bool = True,
) -> Diagnosis:
    """Every problem with the registrations in `targets`, plus notes on sandboxed browsers."""
    diagnosis = Diagnosis()
    for browser in installer.BROWSERS:
        for kind in system.sandboxed_installs(browser):
            diagnosis.notes.append(
                f"{browser.label} is installed as a {kind}: sandboxed browsers cannot start "
                "native hosts installed outside their sandbox. Use a "
                f"{browser.label} installed from your distribution's or the vendor's package."
            )
    identity = expected_identity(data_dir)
    if identity is None:
        diagnosis.problems.append(
            Problem(str(data_dir), "the host is not installed (no install record)", REINSTALL)
        )
        return diagnosis
    launchers: dict[Path, str] = {}
    for target in targets:
        diagnosis.checked.append(f"{target.label}: {target.manifest_path}")
        problems, launcher = _check_target(target, identity, registry)
        diagnosis.problems.extend(problems)
        if launcher is not None and not problems:
            launchers.setdefault(launcher, _origin_for(target.family, identity))
    if not targets:
        fix = "install a supported browser, or name one with --browser"
        diagnosis.problems.append(Problem("browsers", "no supported browser was found", fix))
    if start_host:
        for launcher, origin in launchers.items():
            diagnosis.checked.append(f"host started by {launcher}")
            diagnosis.problems.extend(check_hello(launcher, origin))
    return diagnosis


def expected_identity(data_dir: Path) -> ExtensionIdentity | None:
    """The extension ids the install should allow: from the installed checkout if it is still
    there (it may have a new key since), else as recorded at install time."""
    record = installer.read_install_record(data_dir)
    if record is None:
        return None
    source_manifest = Path(str(record.get("source", ""))) / "extension" / "manifest.json"
    if source_manifest.is_file():
        try:
            return installer.extension_identity(source_manifest)
        except installer.InstallError:
            pass
    chromium_id, gecko_id = record.get("chromium_id"), record.get("gecko_id")
    if isinstance(chromium_id, str) and isinstance(gecko_id, str):
        return ExtensionIdentity(chromium_id, gecko_id)
    return None


def default_targets(system: System, data_dir: Path) -> list[Target]:
    """Browsers that are present or hold our manifest, plus profiles install.py wrote into."""
    targets = []
    for browser in installer.BROWSERS:
        target = installer.browser_target(browser, system, data_dir)
        if system.is_present(browser) or target.manifest_path.is_file():
            targets.append(target)
    return targets + installer.recorded_profile_targets(data_dir)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--browser",
        action="append",
        choices=sorted(installer.BROWSERS_BY_NAME),
        help="check only this browser (repeatable); default: every browser found",
    )
    parser.add_argument(
        "--user-data-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="check the host registered in this Chromium profile folder (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from dhims2.workspace.config import data_dir

    system = System.current()
    folder = data_dir()
    diagnosis = diagnose(
        system,
        folder,
        choose_targets(system, folder, args.browser or [], args.user_data_dir or []),
        installer.WindowsRegistry() if system.platform == "win32" else None,
    )
    print(report(diagnosis))
    return 1 if diagnosis.problems else 0


def report(diagnosis: Diagnosis) -> str:
    lines = [f"checked  {item}" for item in diagnosis.checked]
    for problem in diagnosis.problems:
        lines.append(f"PROBLEM  {problem.where}: {problem.what}")
        lines.append(f"  fix:   {problem.fix}")
        if problem.extension_sees:
            lines.append(f'  (the extension sees "{problem.extension_sees}")')
    lines += [f"note     {note}" for note in diagnosis.notes]
    count = len(diagnosis.problems)
    lines.append("All good." if not count else f"{count} problem(s) found.")
    return "\n".join(lines)


def choose_targets(
    system: System, data_dir: Path, browsers: list[str], user_data_dirs: list[Path]
) -> list[Target]:
    """The registrations to check: those named, else every one that should or does exist."""
    named = installer.named_targets(system, data_dir, browsers, user_data_dirs)
    return default_targets(system, data_dir) if named is None else named


def _check_target(
    target: Target, identity: ExtensionIdentity, registry: Registry | None
) -> tuple[list[Problem], Path | None]:
    """Problems with one registration, and the launcher it names when it names a usable one."""
    chromium = target.family == CHROMIUM_FAMILY
    not_found = NOT_FOUND if chromium else None
    manifest_path = target.manifest_path
    if target.registry_key:
        registered = registry.read(target.registry_key) if registry else None
        if registered is None:
            where = f"HKCU\\{target.registry_key}"
            return [Problem(where, "registry key is missing", REINSTALL, not_found)], None
        manifest_path = Path(registered)
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        what = f"no host manifest for {target.label}"
        return [Problem(str(manifest_path), what, REINSTALL, not_found)], None
    except (OSError, UnicodeDecodeError) as error:
        what = f"cannot be read ({type(error).__name__})"
        return [Problem(str(manifest_path), what, REINSTALL, not_found)], None
    problems = check_manifest_text(manifest_path, text, target.family, identity)
    if problems:
        return problems, None
    launcher = Path(json.loads(text)["path"])
    launcher_problems = check_launcher(launcher, chromium)
    return launcher_problems, None if launcher_problems else launcher


def _check_allowed_origins(
    manifest: dict[str, Any], identity: ExtensionIdentity, problem: Callable[..., Problem]
) -> list[Problem]:
    origins = manifest.get("allowed_origins")
    if not isinstance(origins, list) or not origins:
        return [problem("allowed_origins is missing or empty")]
    problems = []
    for origin in origins:
        if not isinstance(origin, str) or "*" in origin:
            problems.append(problem(f"allowed_origins entry {origin!r} is a wildcard or not text"))
        elif not origin.endswith("/"):
            problems.append(problem(f"allowed_origins entry {origin!r} must end with '/'"))
    if not problems and identity.chromium_origin not in origins:
        problems.append(
            problem(
                f"allowed_origins does not list this extension ({identity.chromium_origin})",
                f"{REINSTALL}; the loaded extension must be the one from that checkout",
                FORBIDDEN,
            )
        )
    return problems


def _check_allowed_extensions(
    manifest: dict[str, Any], identity: ExtensionIdentity, problem: Callable[..., Problem]
) -> list[Problem]:
    extensions = manifest.get("allowed_extensions")
    if not isinstance(extensions, list) or not extensions:
        return [problem("allowed_extensions is missing or empty")]
    if any(not isinstance(entry, str) or "*" in entry for entry in extensions):
        return [problem("allowed_extensions holds a wildcard or an entry that is not text")]
    if identity.gecko_id not in extensions:
        return [problem(f"allowed_extensions does not list this add-on ({identity.gecko_id})")]
    return []


def _is_absolute(path: str) -> bool:
    # Judged by the path's own form, so a Windows manifest can be checked anywhere.
    return path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path) is not None


def _origin_for(family: str, identity: ExtensionIdentity) -> str:
    return identity.chromium_origin if family == CHROMIUM_FAMILY else identity.gecko_id


def _read_first_message(stream: Any, outcome: dict[str, Any]) -> None:
    try:
        outcome["message"] = framing.read_message(stream)
    except framing.FrameError as error:
        outcome["error"] = error


def _judge_hello(
    where: str, outcome: dict[str, Any], timed_out: bool, stderr: bytes, timeout: float
) -> list[Problem]:
    if timed_out:
        return [
            Problem(where, f"the host did not say hello within {timeout:g} s", REINSTALL, EXITED)
        ]
    if "error" in outcome:
        problem = f"the host wrote something that is not a frame ({outcome['error']})"
        return [Problem(where, problem, REINSTALL, COMMUNICATION_ERROR)]
    hello = outcome.get("message")
    if hello is None:
        last_words = stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        detail = f": {last_words[0]}" if last_words else ""
        return [Problem(where, f"the host exited before saying hello{detail}", REINSTALL, EXITED)]
    if hello.get("type") != "hello" or hello.get("protocol") != protocol.PROTOCOL_VERSION:
        expected = f"a protocol {protocol.PROTOCOL_VERSION} hello"
        return [Problem(where, f"the host's first message is not {expected}", REINSTALL)]
    if hello.get("version") != __version__:
        return [
            Problem(
                where,
                f"the host is version {hello.get('version')}, this command is {__version__}",
                REINSTALL,
            )
        ]
    return []
