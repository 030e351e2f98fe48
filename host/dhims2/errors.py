"""The base of every error the product reports to a person, and the exit statuses of `dhims2`.

Each error class says what it is (`code`, the name the protocol and `--json` use) and how the
command ends on it (`exit_status`), so no caller keeps a list of error types. An exception that
is not a Dhims2Error is a programming error: it is never dressed up as a DHIS2 or input problem.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitStatus(IntEnum):
    SUCCESS = 0  # every record is in DHIS2 (created or updated)
    NOT_ALL_IN = 1  # some records were rejected, failed or are still pending
    USAGE = 2  # bad usage, unreadable input or settings
    DHIS2_UNAVAILABLE = 3  # DHIS2 cannot be reached or refuses the sign-in
    INTERRUPTED = 130  # Ctrl+C


class Dhims2Error(Exception):
    """An error worded for the person who has to act on it."""

    code: ClassVar[str] = "INVALID_INPUT"
    exit_status: ClassVar[ExitStatus] = ExitStatus.USAGE
