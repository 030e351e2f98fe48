"""Command-line flags several subcommands share. Kept free of heavy imports: every subcommand's
parser is built for `dhims2 --help`."""

from __future__ import annotations

import argparse

from dhims2.workspace.config import PASSWORD_VARIABLE


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="DHIS2 address, e.g. https://events.chimgh.org/events/")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token", help="personal access token (d2p_...); `-` reads it from standard input"
    )
    auth.add_argument(
        "--username",
        help=f"sign in with this user; the password comes from ${PASSWORD_VARIABLE} or a prompt",
    )
