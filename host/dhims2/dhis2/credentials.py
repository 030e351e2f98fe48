"""Ways to sign in to DHIS2, and the requests hook that sends them only to their own server."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import requests

from dhims2.dhis2.address import origin
from dhims2.dhis2.errors import InvalidInput

# RFC 6265 cookie-octet and RFC 7230 token68-ish characters: nothing that could split a header.
_HEADER_SAFE = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$")


@dataclass(frozen=True)
class Credentials:
    """One way to sign in. Secrets stay out of repr, logs and messages."""

    token: str | None = None
    username: str | None = None
    password: str | None = None
    session_cookie: str | None = None

    def __post_init__(self) -> None:
        for name in ("token", "username", "password", "session_cookie"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"credentials: {name} must be text")
        ways = [
            self.token is not None,
            self.username is not None or self.password is not None,
            self.session_cookie is not None,
        ]
        if sum(ways) != 1:
            raise InvalidInput(
                "credentials: give exactly one of a token, a username with a password,"
                " or a session cookie"
            )
        if self.token is not None and not _HEADER_SAFE.fullmatch(self.token):
            raise InvalidInput(
                "credentials: the token is empty or has spaces or control characters"
            )
        if self.session_cookie is not None and not _HEADER_SAFE.fullmatch(self.session_cookie):
            raise InvalidInput(
                "credentials: the session cookie is empty or has characters a cookie cannot hold"
            )
        if ways[1]:
            if not self.username or not self.password:
                raise InvalidInput("credentials: both a username and a password are needed")
            if ":" in self.username or any(ord(c) < 32 for c in self.username + self.password):
                raise InvalidInput(
                    "credentials: the username has a ':' or either has control characters"
                )

    @property
    def kind(self) -> str:
        if self.token is not None:
            return "token"
        if self.session_cookie is not None:
            return "session"
        return "basic"

    def __repr__(self) -> str:
        if self.kind == "basic":
            return f"Credentials(username={self.username!r}, password=<hidden>)"
        return f"Credentials({self.kind}=<hidden>)"


class SameOriginAuth(requests.auth.AuthBase):
    """Attaches the credentials only to requests bound for the configured origin."""

    def __init__(self, credentials: Credentials, origin: tuple[str, str, int]) -> None:
        self._credentials = credentials
        self._origin = origin

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if origin(request.url or "") != self._origin:
            return request
        credentials = self._credentials
        if credentials.token is not None:
            request.headers["Authorization"] = f"ApiToken {credentials.token}"
        elif credentials.session_cookie is not None:
            # Beside, not instead of, the jar's cookies: a load balancer's stickiness cookie
            # keeps our job polls on the node that holds the job's notifications.
            session = f"JSESSIONID={credentials.session_cookie}"
            others = request.headers.get("Cookie")
            request.headers["Cookie"] = f"{others}; {session}" if others else session
        else:
            # Spring Security decodes Basic credentials as UTF-8; requests would use Latin-1.
            pair = f"{credentials.username}:{credentials.password}".encode()
            request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request
