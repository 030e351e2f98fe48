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
from typing import Any

from dhims2.dhis2.address import normalised_base_url
from dhims2.dhis2.client import Dhis2Client
from dhims2.dhis2.credentials import Credentials
from dhims2.dhis2.errors import NotSignedIn, ServerError, ServerUnreachable
from dhims2.dhis2.transport import DEFAULT_RETRY, RetryPolicy
from dhims2.errors import Dhims2Error
from dhims2.forms.program import ProgramForm
from dhims2.queue.store import STORE_FILE_NAME, Store
from dhims2.workspace.config import PASSWORD_VARIABLE, Config, data_dir


class UsageError(Dhims2Error):
    """The command cannot run as asked; the message says what to pass instead."""


@dataclass(frozen=True)
class FormContext:
    """What validation needs from the server: the program form and the user's capture scope."""

    form: ProgramForm
    capture_org_units: frozenset[str] | None
    from_cache: bool
    # (uid, name) of the program's org units where the user may capture, by name
    facilities: tuple[tuple[str, str], ...] = ()


def credentials_from(args: argparse.Namespace, config: Config, server: str) -> Credentials:
    """How to sign in to `server`: the flags, or the token saved for that same server only."""
    if getattr(args, "token", None):
        if args.token == "-":
            return Credentials(token=_token_from_stdin())
        return Credentials(token=args.token)
    if getattr(args, "username", None):
        return Credentials(username=args.username, password=_password_for(args.username))
    token = config.token_for(server)
    if token:
        return Credentials(token=token)
    if config.token:
        raise UsageError(
            f"the saved token is for {config.token_server}, not {server}; it is never sent to"
            " another server. Pass --token for this one, or save one with"
            f" `dhims2 config --server {server} --token -`"
        )
    raise UsageError(
        "no DHIS2 credentials: pass --token or --username, set DHIMS2_TOKEN, "
        "or save a token with `dhims2 config --token`"
    )


def _token_from_stdin() -> str:
    token = sys.stdin.readline().strip()
    if not token:
        raise UsageError("--token -: standard input held no token")
    return token


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
        server,
        credentials_from(args, config, server),
        allow_insecure_http=config.allow_insecure_http,
    )


def open_store() -> Store:
    """The store in the data folder; a damaged one is moved aside and recovered first."""
    from dhims2.queue.recovery import open_recovering

    return open_recovering(
        data_dir() / STORE_FILE_NAME, lambda notice: print(notice, file=sys.stderr)
    )


def load_form(client: Dhis2Client, store: Store, program: str, stage: str) -> FormContext:
    """The program form and capture scope from the server, or from the cache when it is offline.

    A refused sign-in is never answered from the cache: the upload could not proceed anyway.
    """
    program_key, scope_key, rights_key = _cache_keys(client.base_url, program)
    try:
        metadata = client.program(program)
        user = client.current_user()
        scope: list[str] | None = units_in_scope(metadata, user.org_unit_ids)
        enters_expired: bool | None = user.may_enter_expired_periods
    except NotSignedIn:
        raise
    except (ServerUnreachable, ServerError):
        cached_metadata, cached_scope = store.cache_get(program_key), store.cache_get(scope_key)
        if cached_metadata is None:
            raise
        metadata, scope = cached_metadata, cached_scope
        enters_expired = store.cache_get(rights_key)
        from_cache = True
    else:
        store.cache_put(program_key, metadata)
        store.cache_put(scope_key, scope)
        store.cache_put(rights_key, enters_expired)
        from_cache = False
    return _form_context(
        client.base_url, metadata, scope, program, stage, enters_expired, from_cache=from_cache
    )


def cached_form(store: Store, server: str, program: str, stage: str) -> FormContext:
    """The program form and capture scope saved by an earlier run against `server`, without
    the network (`dhims2 upload --dry-run --offline`)."""
    base_url = normalised_base_url(server)
    program_key, scope_key, rights_key = _cache_keys(base_url, program)
    metadata = store.cache_get(program_key)
    if metadata is None:
        raise UsageError(
            f"program {program} of {base_url} is not saved on this computer yet: run"
            " `dhims2 upload FILE --dry-run` once while DHIS2 can be reached"
        )
    scope, enters_expired = store.cache_get(scope_key), store.cache_get(rights_key)
    return _form_context(base_url, metadata, scope, program, stage, enters_expired, from_cache=True)


def _cache_keys(base_url: str, program: str) -> tuple[str, str, str]:
    return f"program:{base_url}:{program}", f"scope:{base_url}", f"expired-entry:{base_url}"


def _form_context(
    base_url: str,
    metadata: Any,
    scope: list[str] | None,
    program: str,
    stage: str,
    enters_expired: bool | None,
    *,
    from_cache: bool,
) -> FormContext:
    """`enters_expired`: the user may enter data in expired periods (None only for a cache saved
    before it was recorded: the program's expiry is then checked, as it is for most users)."""
    try:
        form = ProgramForm.from_metadata(metadata, stage)
    except ValueError as error:
        raise UsageError(f"program {program} on {base_url}: {error}") from None
    if enters_expired:
        form = form.without_entry_expiry()
    return FormContext(
        form=form,
        capture_org_units=frozenset(scope) if scope is not None else None,
        from_cache=from_cache,
        facilities=_facilities(metadata, scope),
    )


def units_in_scope(metadata: dict, assigned: frozenset[str]) -> list[str]:
    """The program's org units the user may capture for: each one assigned to the user or below
    one (its path names an assigned unit), as DHIS2's SecurityOwnershipValidator accepts
    (isInUserHierarchy; docs/dhis2-tracker-api.md, "Capture scope")."""
    return sorted(
        uid
        for uid, unit in _program_org_units(metadata).items()
        if uid in assigned or not assigned.isdisjoint(str(unit.get("path", "")).split("/"))
    )


def _facilities(metadata: dict, scope: list[str] | None) -> tuple[tuple[str, str], ...]:
    units = _program_org_units(metadata)
    names = {uid: str(unit.get("name") or uid) for uid, unit in units.items()}
    wanted = scope if scope is not None else sorted(names)
    return tuple(sorted(((uid, names.get(uid, uid)) for uid in wanted), key=lambda u: u[1]))


def _program_org_units(metadata: dict) -> dict[str, dict]:
    units = metadata.get("organisationUnits")
    return {
        unit["id"]: unit
        for unit in (units if isinstance(units, list) else [])
        if isinstance(unit, dict) and isinstance(unit.get("id"), str)
    }


# A person waiting on the popup is better served by a quick "unreachable" than by a minute of
# retries; the background sender keeps the patient default.
INTERACTIVE_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0)


def host_client(
    config: Config, session_cookie: str | None, *, retry: RetryPolicy | None = None
) -> Dhis2Client:
    """The native host's client: the saved token, or the browser's DHIS2 session (memory only)."""
    if config.auth == "token":
        token = config.token_for(config.server)
        if not token:
            raise NotSignedIn(
                f"no personal access token is saved for {config.server}; add one in the"
                " extension options"
            )
        credentials = Credentials(token=token)
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
