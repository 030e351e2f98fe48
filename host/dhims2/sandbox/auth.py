"""Who is calling: personal access tokens, Basic auth or a JSESSIONID session, as in DHIS2."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import string
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from typing import Any

from dhims2.dhis2.uids import new_uid

TOKEN_PREFIXES = ("d2p_", "d2pat_")
_TOKEN_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Authentication:
    """Either a user, or why there is none: `missing` (no credentials, or an expired session),
    `bad_token`, `bad_password` or `bad_scheme`; `message` explains it."""

    user: dict[str, Any] | None
    failure: str | None = None
    message: str = ""


class Authenticator:
    def __init__(self, users: dict[str, dict[str, Any]]) -> None:
        self._users = users
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float | None]] = {}  # key -> (username, expires at)
        self._sessions: dict[str, str] = {}  # JSESSIONID -> username

    def create_token(
        self, username: str, prefix: str, expires_at: float | None = None
    ) -> tuple[str, str]:
        """A new personal access token: (its uid, its key). `expires_at` is a time.time() value."""
        if prefix not in TOKEN_PREFIXES:
            raise ValueError(
                f"Token prefix must be one of {', '.join(TOKEN_PREFIXES)}, not {prefix!r}"
            )
        key = prefix + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(48))
        with self._lock:
            self._tokens[key] = (username, expires_at)
        return new_uid(), key

    def check_password(self, username: str, password: str) -> dict[str, Any] | None:
        user = self._users.get(username)
        if user is None or not hmac.compare_digest(user["password"].encode(), password.encode()):
            return None
        return user

    def open_session(self, username: str) -> str:
        session_id = secrets.token_hex(16).upper()
        with self._lock:
            self._sessions[session_id] = username
        return session_id

    def expire_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    def authenticate(self, headers: Message) -> Authentication:
        authorization = headers.get("Authorization")
        if authorization:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() == "apitoken":
                return self._by_token(credentials.strip())
            if scheme.lower() == "basic":
                return self._by_password(credentials.strip())
            return Authentication(
                None, "bad_scheme", f"Unsupported authorization scheme `{scheme}`"
            )
        return self._by_session(headers.get("Cookie"))

    def _by_token(self, key: str) -> Authentication:
        with self._lock:
            username, expires_at = self._tokens.get(key, (None, None))
        if username is None:
            return Authentication(None, "bad_token", "The API token does not exist")
        if expires_at is not None and time.time() >= expires_at:
            return Authentication(None, "bad_token", "The API token has expired")
        return Authentication(self._users[username])

    def _by_password(self, encoded: str) -> Authentication:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, separator, password = decoded.partition(":")
        user = self.check_password(username, password) if separator else None
        if user is None:
            return Authentication(None, "bad_password", "Unauthorized")
        return Authentication(user)

    def _by_session(self, cookie_header: str | None) -> Authentication:
        if cookie_header:
            try:
                morsel = SimpleCookie(cookie_header).get("JSESSIONID")
            except CookieError:
                morsel = None
            with self._lock:
                username = self._sessions.get(morsel.value) if morsel else None
            if username is not None:
                return Authentication(self._users[username])
        return Authentication(None, "missing", "Unauthorized")
