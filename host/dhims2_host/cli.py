"""The `dhims2` command line: each subcommand lives in its own module and is imported on use."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from dhims2_host import __version__

# subcommand -> (module providing configure_parser(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "sandbox": ("dhims2_host.sandbox.command", "run the built-in DHIS2 stand-in server"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dhims2",
        description="Upload In-Patient events to DHIMS2 (DHIS2) and follow them to DHIS2's outcome.",
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
    try:
        return importlib.import_module(args.command_module).run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
