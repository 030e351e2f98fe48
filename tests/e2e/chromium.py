"""Debian's Chromium as the browser tests and the popup benchmark start it: headless, offline."""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def chromium_args(extension: Path) -> list[str]:
    """Flags for a headless Chromium with `extension` loaded unpacked. The machine has no
    internet: background networking, updates and sync are off so nothing waits on them."""
    return [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        f"--disable-extensions-except={extension}",
        f"--load-extension={extension}",
    ]
