#!/usr/bin/env python3
"""Register the DHIMS2 Uploader native host with the browsers on this computer.

    python3 install.py                      # every browser found, host in a private venv
    python3 install.py --browser chrome     # only these browsers (repeatable)
    python3 install.py --user-data-dir DIR  # one Chromium profile folder (DIR/NativeMessagingHosts)
    python3 install.py --check              # check the installation, as `dhims2 doctor` does
    python3 install.py --uninstall          # remove manifests, launcher and venv (data stays)

Runs on a bare Python 3.10+: the host's own dependencies go into the private venv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent
sys.path.insert(0, str(CHECKOUT / "host"))  # the installer runs before anything is installed

from dhims2.setup import doctor, installer  # noqa: E402
from dhims2.workspace import config  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="install.py", description="Register the DHIMS2 Uploader native host with browsers."
    )
    parser.add_argument(
        "--browser",
        action="append",
        default=[],
        choices=sorted(installer.BROWSERS_BY_NAME),
        help="register with this browser (repeatable); default: every browser found",
    )
    parser.add_argument(
        "--user-data-dir",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="register in this Chromium profile folder only (repeatable)",
    )
    parser.add_argument(
        "--no-venv",
        action="store_true",
        help="run the host with this Python (which must have the package installed)",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--uninstall", action="store_true", help="remove the registrations")
    action.add_argument("--check", action="store_true", help="check the installation only")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        system = installer.System.current()
        data_dir = config.data_dir()
        registry = installer.WindowsRegistry() if system.platform == "win32" else None
        if args.check:
            targets = doctor.choose_targets(system, data_dir, args.browser, args.user_data_dir)
            diagnosis = doctor.diagnose(system, data_dir, targets, registry)
            print(doctor.report(diagnosis))
            return 1 if diagnosis.problems else 0
        installation = installer.Installation(system, data_dir, registry, CHECKOUT)
        named = installer.named_targets(system, data_dir, args.browser, args.user_data_dir)
        if args.uninstall:
            targets = installer.all_targets(system, data_dir) if named is None else named
            steps = installation.uninstall(targets, everything=named is None)
        else:
            targets = installer.detected_targets(system, data_dir) if named is None else named
            interpreter = Path(sys.executable) if args.no_venv else make_venv(data_dir, system)
            installer.require_host_importable(interpreter, data_dir)
            steps = installation.install(targets, interpreter)
    except installer.InstallError as error:
        print(f"install.py: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"install.py: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    for step in steps:
        print(step)
    if not steps:
        print("nothing to do")
    return 0


def make_venv(data_dir: Path, system: installer.System) -> Path:
    print(f"installing the host into a private venv in {data_dir} ...", flush=True)
    return installer.create_venv(data_dir, CHECKOUT, system.platform)


if __name__ == "__main__":
    sys.exit(main())
