"""One function per message type. Importing this package registers them all with `dispatch`."""

from dhims2.browser.handlers import settings, uploads  # noqa: F401
