"""A stand-in for DHIS2 2.41 on loopback: the tracker import API with its async jobs, validation,
authentication, the real Capture app (given a build) or a Capture-like form, and knobs to make it
slow or fail on purpose.

    from dhims2.sandbox import Knobs, Sandbox

    with Sandbox(knobs=Knobs(per_event_seconds=0.001, seed=7)) as sandbox:
        sandbox.base_url  # http://127.0.0.1:<port>/events
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dhims2.sandbox.knobs import Knobs

if TYPE_CHECKING:
    from dhims2.sandbox.server import Sandbox

__all__ = ["Knobs", "Sandbox"]


def __getattr__(name: str) -> Any:
    # Loaded on first use so that `dhims2 --help` does not import the HTTP server.
    if name == "Sandbox":
        from dhims2.sandbox.server import Sandbox

        return Sandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
