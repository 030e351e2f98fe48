"""Every behaviour that differs between the DHIS2 versions the sandbox imitates, in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_PATTERN = re.compile(r"2\.(\d{1,2})(?:\.(\d{1,3}))?")


@dataclass(frozen=True)
class ServerVersion:
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """`2.41.3`, or the shorthand `2.41` (patch 0)."""
        match = _VERSION_PATTERN.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"Unsupported DHIS2 version `{text}`: expected 2.NN or 2.NN.P, e.g. 2.41.3"
            )
        return cls(minor=int(match.group(1)), patch=int(match.group(2) or 0))

    def __str__(self) -> str:
        return f"2.{self.minor}.{self.patch}"

    @property
    def has_tracker_api(self) -> bool:
        """/api/tracker arrived in 2.36."""
        return self.minor >= 36

    @property
    def has_legacy_events(self) -> bool:
        """The deprecated /api/events import was removed in 2.42."""
        return self.minor < 42

    @property
    def has_login_api(self) -> bool:
        """POST /api/auth/login arrived with the new login app in 2.41."""
        return self.minor >= 41

    @property
    def async_flag_is_boolean(self) -> bool:
        """2.40/2.41 treat any `async` other than the literal `false` as asynchronous."""
        return self.minor >= 42

    @property
    def job_answer_has_response_type(self) -> bool:
        """The "Tracker job added" answer lost `responseType` in 2.41 only."""
        return self.minor != 41

    @property
    def error_reports_have_args(self) -> bool:
        return self.minor >= 41

    @property
    def reports_import_stages(self) -> bool:
        """2.41 notifies each import stage; earlier versions only Import:Start/Done/Error."""
        return self.minor >= 41

    @property
    def token_prefix(self) -> str:
        return "d2p_" if self.minor >= 41 else "d2pat_"
