"""DHIS2 identifiers: 11 characters, a letter first, then letters or digits."""

import re
import secrets
import string

_LETTERS = string.ascii_letters
_ALPHANUMERIC = string.ascii_letters + string.digits
UID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")


def new_uid() -> str:
    """A fresh UID from a cryptographic source, so client-minted event ids never collide."""
    return secrets.choice(_LETTERS) + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(10))


def is_uid(value: object) -> bool:
    return isinstance(value, str) and UID_PATTERN.fullmatch(value) is not None
