"""The `dhims2` command line: each subcommand lives in its own module and is imported on use."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from dhims2 import __version__
from dhims2.errors import Dhims2Error, ExitStatus

# subcommand -> (module providing configure_parser(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dhims2.cli.demo", "upload synthetic records to the built-in sandbox"),
    "upload": ("dhims2.cli.upload", "upload a CSV or JSON file of records to DHIS2"),
    "status": ("dhims2.cli.status", "show uploads, or follow one to its end"),
    "retry": ("dhims2.cli.retry", "send a batch's failed records again"),
    "config": ("dhims2.cli.config_command", "show or change the saved settings"),
    "template": (
        "dhims2.cli.template",
        "list, show or suggest mapping templates for spreadsheets",
    ),
    "doctor": ("dhims2.setup.doctor", "check that every browser can reach the native host"),
    "sandbox": ("dhims2.sandbox.command", "run the built-in DHIS2 stand-in server"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dhims2",
        description="Upload In-Patient events to DHIMS2 (DHIS2) and follow each to its outcome.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_name).configure_parser(subparser)
        subparser.set_defaults(command_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Files the command writes (the store, exported rows) hold patient data: owner-only.
    os.umask(0o077)
    try:
        return importlib.import_module(args.command_module).run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Dhims2Error as error:
        if getattr(args, "json", False):
            print(json.dumps({"error": {"code": error.code, "message": str(error)}}))
        print(f"dhims2 {args.command}: {error}", file=sys.stderr)
        return error.exit_status
