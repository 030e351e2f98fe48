"""The registry of message handlers and the dispatch of one request to its handler.

Adding a message type is one function in `handlers/` decorated with `@register("type")` plus one
schema under `messages` in schemas/messages.json. Only registered types appear in
`hello.capabilities`; any other type is answered with UNKNOWN_TYPE.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dhims2.browser import protocol
from dhims2.browser.protocol import ProtocolError
from dhims2.workspace.config import Config, load_config, save_config

log = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass
class HostContext:
    """What every handler gets: configuration, a way to push updates, and the shutdown signal.

    `services` is where longer-lived parts (the store, the upload service) are attached by name;
    `on_shutdown` registers a hook the host runs before it exits, for checkpointing.
    """

    push: Callable[[Message], None]
    shutdown: threading.Event = field(default_factory=threading.Event)
    services: dict[str, Any] = field(default_factory=dict)
    shutdown_hooks: list[Callable[[], None]] = field(default_factory=list)
    _config: Config | None = field(default=None, init=False, repr=False)
    _config_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def config(self) -> Config:
        """The effective configuration, read on first use (raises ConfigError if unreadable)."""
        with self._config_lock:
            if self._config is None:
                self._config = load_config()
            return self._config

    def replace_config(self, saved: Config) -> Config:
        """Save `saved` (file values, no environment overrides) and return the effective config."""
        with self._config_lock:
            save_config(saved)
            self._config = load_config()
            return self._config

    def on_shutdown(self, hook: Callable[[], None]) -> None:
        self.shutdown_hooks.append(hook)


HandlerFunction = Callable[[Message, HostContext], dict[str, Any]]


@dataclass(frozen=True)
class Handler:
    message_type: str
    schema_name: str
    function: HandlerFunction


REGISTRY: dict[str, Handler] = {}


def register(
    message_type: str, schema_name: str | None = None
) -> Callable[[HandlerFunction], HandlerFunction]:
    """Make the decorated function answer `message_type`, validated by `schema_name` (its type)."""

    def add(function: HandlerFunction) -> HandlerFunction:
        if message_type in REGISTRY:
            raise ValueError(f"message type {message_type!r} already has a handler")
        REGISTRY[message_type] = Handler(message_type, schema_name or message_type, function)
        return function

    return add


def capabilities() -> list[str]:
    return sorted(REGISTRY)


def loggable_type(message: Message) -> str:
    """The message's type for a log line: only our own names, never sender-chosen text."""
    message_type = message.get("type")
    return message_type if message_type in REGISTRY else "(unregistered type)"


def dispatch(message: Message, context: HostContext) -> Message:
    """The reply to one request; never raises, whatever the request or the handler does."""
    request_id = protocol.request_id_of(message)
    try:
        protocol.validate_envelope(message)
        handler = REGISTRY.get(message["type"])
        if handler is None:
            raise ProtocolError(
                "UNKNOWN_TYPE",
                f"unknown message type {message['type']!r}",
                {"capabilities": capabilities()},
            )
        protocol.validate_message(message, handler.schema_name)
        return protocol.ok_reply(message["id"], handler.function(message, context))
    except Exception as error:  # every failure becomes a reply; the host must keep running
        known = protocol.error_from_exception(error)
        if known is not None:
            return protocol.error_reply(request_id, known.code, known.message, known.details)
        # Only the type and the stack are logged: an exception's text may quote patient values.
        log.error(
            "handler for %s failed with %s\n%s",
            loggable_type(message),
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )
        return protocol.error_reply(
            request_id, "INTERNAL_ERROR", "the host failed to handle this request; see its log"
        )
