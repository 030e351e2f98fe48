"""The host's own messages: a health check, and reading and changing the saved settings."""

from __future__ import annotations

import logging
from typing import Any

from dhims2 import __version__
from dhims2.browser import greeting
from dhims2.browser.dispatch import HostContext, Message, register
from dhims2.browser.protocol import ProtocolError
from dhims2.workspace import config

log = logging.getLogger(__name__)


@register("ping")
def ping(message: Message, context: HostContext) -> dict[str, Any]:
    """A health check that proves the whole chain browser → manifest → launcher → host works."""
    return {"version": __version__, "protocol": greeting.PROTOCOL_VERSION}


@register("get_config")
def get_config(message: Message, context: HostContext) -> dict[str, Any]:
    return _config_reply(context.config)


CONFIGURABLE = (
    "server",
    "auth",
    "token",
    "program",
    "stage",
    "org_unit",
    "batch_size",
    "allow_insecure_http",
)


@register("configure")
def configure(message: Message, context: HostContext) -> dict[str, Any]:
    """Apply the given settings to the saved configuration; an empty `token` removes it."""
    changes = {name: message[name] for name in CONFIGURABLE if name in message}
    if changes.get("batch_size") is not None:
        changes["batch_size"] = int(changes["batch_size"])  # JSON Schema lets 5.0 through
    if changes.get("token") == "":
        changes["token"] = None
    try:
        saved = config.load_config(apply_env=False)
    except config.ConfigError:
        # An unreadable file is what configure exists to repair: start again from the defaults.
        log.warning("replacing an unreadable configuration file")
        saved = config.Config()
    try:
        # A new server origin without a new token forgets the old one: it belongs to its server.
        updated = saved.with_changes(**changes)
    except config.ConfigError as error:
        raise ProtocolError("INVALID_MESSAGE", str(error), {"field": error.field}) from None
    if _insecure(updated):
        raise ProtocolError(
            "INSECURE_SERVER",
            "the server address uses plain http://; use https:// or set allow_insecure_http",
            {"field": "server"},
        )
    return _config_reply(context.replace_config(updated))


def _insecure(settings: config.Config) -> bool:
    """Plain http is refused, as the DHIS2 client refuses it, except on this computer."""
    from urllib.parse import urlsplit

    from dhims2.dhis2.address import is_loopback_host

    if not settings.server.startswith("http://") or settings.allow_insecure_http:
        return False
    return not is_loopback_host(urlsplit(settings.server).hostname or "")


def _config_reply(effective: config.Config) -> dict[str, Any]:
    return {
        "config": effective.public_view(),
        "overridden_by_env": config.env_overridden_fields(),
        "config_file": str(config.config_path()),
    }
