"""From configuration and command-line flags to a signed-in client, the store and the program form.

The CLI and the native host both start here, so both sign in, cache metadata and fall back to
cached metadata when offline in the same way.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from dataclasses import dataclass

from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import NotSignedIn, ServerError, ServerUnreachable
from dhims2.dhis2.transport import DEFAULT_RETRY, RetryPolicy
from dhims2.errors import Dhims2Error
from dhims2.forms.program import ProgramForm
from dhims2.queue.store import STORE_FILE_NAME, Store
from dhims2.workspace.config import Config, data_dir

PASSWORD_VARIABLE = "DHIMS2_PASSWORD"


class UsageError(Dhims2Error):
    """The command cannot run as asked; the message says what to pass instead."""


@dataclass(frozen=True)
class FormContext:
    """What validation needs from the server: the program form and the user's capture scope."""

    form: ProgramForm
    capture_org_units: frozenset[str] | None
    from_cache: bool


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="DHIS2 address, e.g. https://events.chimgh.org/events/")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--token", help="personal access token (d2p_...)")
    auth.add_argument(
        "--username",
        help=f"sign in with this user; the password comes from ${PASSWORD_VARIABLE} or a prompt",
    )


def credentials_from(args: argparse.Namespace, config: Config) -> Credentials:
    if getattr(args, "token", None):
        return Credentials(token=args.token)
    if getattr(args, "username", None):
        return Credentials(username=args.username, password=_password_for(args.username))
    if config.token:
        return Credentials(token=config.token)
    raise UsageError(
        "no DHIS2 credentials: pass --token or --username, set DHIMS2_TOKEN, "
        "or save a token with `dhims2 config --token`"
    )


def _password_for(username: str) -> str:
    password = os.environ.get(PASSWORD_VARIABLE)
    if password:
        return password
    if not sys.stdin.isatty():
        raise UsageError(
            f"no password for {username}: set {PASSWORD_VARIABLE} or run in a terminal"
        )
    return getpass.getpass(f"DHIS2 password for {username}: ")


def open_client(args: argparse.Namespace, config: Config) -> Dhis2Client:
    server = getattr(args, "server", None) or config.server
    return Dhis2Client(
        server, credentials_from(args, config), allow_insecure_http=config.allow_insecure_http
    )


def open_store() -> Store:
    return Store(data_dir() / STORE_FILE_NAME)


def load_form(client: Dhis2Client, store: Store, program: str, stage: str) -> FormContext:
    """The program form and capture scope from the server, or from the cache when it is offline.

    A refused sign-in is never answered from the cache: the upload could not proceed anyway.
    """
    program_key = f"program:{client.base_url}:{program}"
    scope_key = f"scope:{client.base_url}"
    try:
        metadata = client.program(program)
        scope: list[str] | None = sorted(client.current_user().org_unit_ids)
    except NotSignedIn:
        raise
    except (ServerUnreachable, ServerError):
        cached_metadata, cached_scope = store.cache_get(program_key), store.cache_get(scope_key)
        if cached_metadata is None:
            raise
        metadata, scope = cached_metadata, cached_scope
        from_cache = True
    else:
        store.cache_put(program_key, metadata)
        store.cache_put(scope_key, scope)
        from_cache = False
    try:
        form = ProgramForm.from_metadata(metadata, stage)
    except ValueError as error:
        raise UsageError(f"program {program} on {client.base_url}: {error}") from None
    return FormContext(
        form=form,
        capture_org_units=frozenset(scope) if scope is not None else None,
        from_cache=from_cache,
    )


# A person waiting on the popup is better served by a quick "unreachable" than by a minute of
# retries; the background sender keeps the patient default.
INTERACTIVE_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)


def host_client(
    config: Config, session_cookie: str | None, *, retry: RetryPolicy | None = None
) -> Dhis2Client:
    """The native host's client: the saved token, or the browser's DHIS2 session (memory only)."""
    if config.auth == "token":
        if not config.token:
            raise NotSignedIn("no personal access token is saved; add one in the extension options")
        credentials = Credentials(token=config.token)
    else:
        if not session_cookie:
            raise NotSignedIn("not signed in: log in to DHIMS2 in this browser")
        credentials = Credentials(session_cookie=session_cookie)
    return Dhis2Client(
        config.server,
        credentials,
        allow_insecure_http=config.allow_insecure_http,
        retry=retry or DEFAULT_RETRY,
    )
