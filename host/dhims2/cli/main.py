"""The `dhims2` command line: each subcommand lives in its own module and is imported on use."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from dhims2 import __version__

# subcommand -> (module providing configure_parser(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dhims2.cli.demo", "upload synthetic records to the built-in sandbox"),
    "upload": (
        "dhims2.cli.upload",
        "upload an Excel workbook (.xlsx), CSV or JSON file of records to DHIS2",
    ),
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


class TerminalWidthHelpFormatter(argparse.HelpFormatter):
    """argparse's own formatter, told the terminal's width: asked itself, it imports shutil,
    which loads the compression modules, a fifth of a bare Python start."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)


def _terminal_columns() -> int:
    """The width shutil.get_terminal_size would give: $COLUMNS, else the terminal's, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stdout = sys.__stdout__
    try:
        width = os.get_terminal_size(stdout.fileno()).columns if stdout else 0
    except (ValueError, OSError):  # not a terminal, or stdout closed
        width = 0
    return width or 80


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: it names the subcommands but imports none of them, so `--help` and
    `--version` cost no more than Python's own start."""
    parser = argparse.ArgumentParser(
        prog="dhims2",
        description="Upload In-Patient events to DHIMS2 (DHIS2) and follow each to its outcome.",
        formatter_class=TerminalWidthHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module_name, help_text) in SUBCOMMANDS.items():
        # Everything after the name is the subcommand's own, parsed once its module is loaded.
        subparsers.add_parser(
            name, help=help_text, add_help=False, formatter_class=TerminalWidthHelpFormatter
        )
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The chosen subcommand's arguments; only that subcommand's module is imported."""
    command_line = sys.argv[1:] if argv is None else list(argv)
    chosen, rest = build_parser().parse_known_args(command_line)
    module_name, help_text = SUBCOMMANDS[chosen.command]
    parser = argparse.ArgumentParser(
        prog=f"dhims2 {chosen.command}",
        description=help_text,
        formatter_class=TerminalWidthHelpFormatter,
    )
    importlib.import_module(module_name).configure_parser(parser)
    args = parser.parse_args(rest)
    args.command, args.command_module = chosen.command, module_name
    return args


def main(argv: Sequence[str] | None = None) -> int:
    command_line = sys.argv[1:] if argv is None else list(argv)
    if not command_line:
        build_parser().print_help()
        return 2  # ExitStatus.USAGE, without importing more than the help needs
    args = parse_arguments(command_line)  # exits at once for --help, --version and usage errors
    from dhims2.errors import Dhims2Error, ExitStatus

    # Files the command writes (the store, exported rows) hold patient data: owner-only.
    os.umask(0o077)
    try:
        return importlib.import_module(args.command_module).run(args)
    except BrokenPipeError:
        # The reader went away (`dhims2 status | head`): nothing more to say, and nobody to say
        # it to; stdout is pointed at /dev/null so that the final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitStatus.OUTPUT_CLOSED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Dhims2Error as error:
        if getattr(args, "json", False):
            import json

            print(json.dumps({"error": {"code": error.code, "message": str(error)}}))
        print(f"dhims2 {args.command}: {error}", file=sys.stderr)
        return error.exit_status
