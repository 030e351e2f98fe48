"""`dhims2 config`: show or change the saved settings (server, sign-in, defaults)."""

from __future__ import annotations

import argparse
import json
import sys


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="DHIS2 address, e.g. https://events.chimgh.org/events/")
    parser.add_argument("--auth", choices=("session", "token"), help="how the host signs in")
    parser.add_argument(
        "--token", help="personal access token to save; `-` reads it from standard input"
    )
    parser.add_argument("--clear-token", action="store_true", help="forget the saved token")
    parser.add_argument("--program", help="default program UID")
    parser.add_argument("--stage", help="default program stage UID")
    parser.add_argument("--org-unit", dest="org_unit", help="default org unit UID")
    parser.add_argument("--batch-size", dest="batch_size", type=int, help="events per import job")
    parser.add_argument(
        "--retention-days",
        dest="retention_days",
        type=int,
        help="days to keep local copies of records DHIS2 has accepted",
    )
    parser.add_argument(
        "--allow-insecure-http",
        dest="allow_insecure_http",
        action=argparse.BooleanOptionalAction,
        help="allow a plain http:// server that is not on this computer (not recommended)",
    )
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")


SETTINGS = (
    "server",
    "auth",
    "program",
    "stage",
    "org_unit",
    "batch_size",
    "retention_days",
    "allow_insecure_http",
)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from dhims2.workspace.config import config_path, load_config, save_config

    saved = load_config(apply_env=False)
    changes = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    if args.token is not None:
        changes["token"] = sys.stdin.readline().strip() if args.token == "-" else args.token
    if args.clear_token:
        changes["token"] = None
    if changes:
        path = save_config(dataclasses.replace(saved, **changes))
        if not args.json:
            print(f"saved {', '.join(sorted(changes))} to {path}")
    view = load_config().public_view()
    if args.json:
        print(json.dumps(view))
    else:
        for name, value in view.items():
            print(f"{name:>20}: {value}")
        print(f"{'file':>20}: {config_path()}")
    return 0
