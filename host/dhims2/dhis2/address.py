"""Server addresses: the base URL we accept, and the origin credentials are bound to."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from dhims2.dhis2.errors import InvalidInput

_LOOPBACK_NAMES = ("localhost", "localhost.")


def normalised_base_url(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("the server address is empty")
    parts = urlsplit(raw.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput("the server address must start with https://")
    try:
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput("the server address has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("the server address must not contain a user name or password")
    if not host or not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", parts.netloc):
        raise InvalidInput("the server address has no valid host name")
    if parts.query or parts.fragment:
        raise InvalidInput(
            "the server address must not contain '?' or '#' parts; give it up to the context"
            " path, for example https://events.chimgh.org/events"
        )
    return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        return ("", "", 0)
    return (scheme, (parts.hostname or "").lower(), port)


def is_loopback_host(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
