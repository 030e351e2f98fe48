"""The host's first words: its hello, written before anything else is imported.

The extension waits for the hello before it sends anything, so the hello must not wait for the
handlers, jsonschema or logging to load; it names the message types from this list, which a test
holds equal to the handlers the host actually registers.
"""

from __future__ import annotations

from dhims2 import __version__

# Annotation names only: the hello waits on every module imported before it (native_host.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROTOCOL_VERSION = 1
CAPABILITIES = (
    "cancel",
    "check_connection",
    "configure",
    "forget",
    "get_batch",
    "get_config",
    "get_patients",
    "get_program",
    "list_batches",
    "list_templates",
    "ping",
    "retry",
    "upload",
    "validate",
)


def hello(capabilities: tuple[str, ...] | list[str] = CAPABILITIES) -> dict[str, Any]:
    return {
        "type": "hello",
        "version": __version__,
        "protocol": PROTOCOL_VERSION,
        "capabilities": sorted(capabilities),
    }
