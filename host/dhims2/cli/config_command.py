"""`dhims2 config`: show or change the saved settings (server, sign-in, defaults)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dhims2.workspace.config import Config


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
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=_batch_size,
        help="events per import job, fixed; `auto` (the default) sizes jobs to the server",
    )
    parser.add_argument(
        "--retention-days",
        dest="retention_days",
        type=int,
        help="days to keep local copies of finished records (sent or not)",
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
    from dhims2.workspace.config import config_path, load_config, save_config, token_location

    changes = {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}
    if args.token is not None:
        changes["token"] = sys.stdin.readline().strip() if args.token == "-" else args.token
    if args.clear_token:
        changes["token"] = None
    if changes.get("batch_size") == "auto":
        changes["batch_size"] = None
    saved = _saved_or_set_aside(changing=bool(changes))
    if changes:
        updated = saved.with_changes(**changes)
        path = save_config(updated)
        if not args.json:
            if args.clear_token:
                print(f"cleared the saved token in {path}")
            saved_names = sorted(name for name in changes if changes[name] is not None)
            if saved_names:
                print(f"saved {', '.join(saved_names)} to {path}")
            if saved.token is not None and updated.token is None and "token" not in changes:
                print(
                    f"forgot the token saved for {saved.token_server}: it is never sent to"
                    f" {updated.server}; save one for it with --token -"
                )
            if updated.token is not None and "token" in changes:
                print(f"the token is kept in {token_location()}")
    view = load_config().public_view()
    if args.json:
        print(json.dumps(view))
    else:
        for name, value in view.items():
            print(f"{name:>20}: {value}")
        print(f"{'file':>20}: {config_path()}")
    return 0


def _saved_or_set_aside(*, changing: bool) -> Config:
    """The saved settings; a file that cannot be used is moved aside when new settings are about
    to be saved (starting again from the defaults), and otherwise reported with how to repair it."""
    from dhims2.workspace.config import Config, ConfigError, load_config, set_aside_damaged_config

    try:
        return load_config(apply_env=False)
    except ConfigError as error:
        if not changing:
            raise ConfigError(
                f"{error}. To repair it, save a setting (e.g. `dhims2 config --server URL`):"
                " the damaged file is moved aside and the new settings are saved"
            ) from None
        aside = set_aside_damaged_config()
        print(
            f"{error}: moved it to {aside}; settings not given are back to their defaults",
            file=sys.stderr,
        )
        return Config()


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a whole number or `auto`") from None
