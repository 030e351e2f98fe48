"""The saved personal access token in the OS keychain, where this computer has one.

`keyring` reaches Windows Credential Manager, the macOS Keychain and the Secret Service. Where
none is available (a Linux machine without a desktop session, say) the token stays in the
owner-only settings file instead; config.py decides which. Each token is filed under the origin
it was saved for, so a token can only ever be read back for that origin.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

SERVICE = "dhims2-uploader"
# keyring's own threshold for a backend it would recommend; below it are plain-file stand-ins.
RECOMMENDED_PRIORITY = 1


def _backend() -> Any | None:
    """The keychain to use, or None when there is no real one."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring setup must not stop the product: use the file
        log.warning("the OS keychain cannot be opened; the token stays in the settings file")
        return None
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    # A backend the user chose (PYTHON_KEYRING_BACKEND) is honoured whatever its priority.
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return backend
    try:
        priority = float(backend.priority)
    except Exception:
        return None
    return backend if priority >= RECOMMENDED_PRIORITY else None


def available() -> bool:
    return _backend() is not None


def store(account: str, token: str) -> bool:
    """Saves the token for `account` (an origin); False when there is no keychain to hold it."""
    backend = _backend()
    if backend is None:
        return False
    try:
        backend.set_password(SERVICE, account, token)
    except Exception as error:  # keyring backends raise their own types; any means "not saved"
        log.warning("the OS keychain refused the token (%s); using the file", type(error).__name__)
        return False
    return True


def read(account: str) -> str | None:
    backend = _backend()
    if backend is None:
        return None
    try:
        value = backend.get_password(SERVICE, account)
    except Exception as error:
        log.warning("the OS keychain cannot be read (%s)", type(error).__name__)
        return None
    return value if isinstance(value, str) and value else None


def forget(account: str) -> None:
    backend = _backend()
    if backend is None:
        return
    try:
        backend.delete_password(SERVICE, account)
    except Exception:  # nothing saved under that name, or the keychain is gone: nothing to forget
        return
