"""Browser tests: Debian's Chromium, headless, with a stub extension and the real host.

Each test gets its own HOME, Chromium profile (--user-data-dir) and host folders in tmp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Playwright, Worker, sync_playwright

CHECKOUT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

# The stub's service worker connects once and keeps everything it hears in `self.nativeLog`.
STUB_SERVICE_WORKER = """
self.nativeLog = { messages: [], disconnected: null };
const port = chrome.runtime.connectNative("org.dhims2.uploader");
port.onMessage.addListener((message) => {
  self.nativeLog.messages.push(message);
  if (message.type === "hello") {
    port.postMessage({ id: "r-1", type: "ping" });
  }
});
port.onDisconnect.addListener(() => {
  const error = chrome.runtime.lastError;
  self.nativeLog.disconnected = error ? error.message : "disconnected";
});
"""


@dataclass(frozen=True)
class BrowserSetup:
    home: Path
    profile: Path
    extension: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get update && apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as running:
        yield running


@pytest.fixture
def setup(tmp_path: Path) -> BrowserSetup:
    home, profile, extension = tmp_path / "home", tmp_path / "profile", tmp_path / "extension"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))},
        "HOME": str(home),
        "DHIMS2_CONFIG_DIR": str(tmp_path / "config"),
        "DHIMS2_DATA_DIR": str(tmp_path / "data"),
        "DHIMS2_LOG_DIR": str(tmp_path / "logs"),
    }
    write_stub_extension(extension)
    return BrowserSetup(home, profile, extension, env)


def write_stub_extension(folder: Path) -> None:
    """The real extension manifest (same key, so the same id) with a tiny service worker."""
    folder.mkdir()
    manifest = json.loads((CHECKOUT / "extension" / "manifest.json").read_text("utf-8"))
    manifest["background"] = {"service_worker": "background.js"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (folder / "background.js").write_text(STUB_SERVICE_WORKER, encoding="utf-8")


@pytest.fixture
def install_host(setup: BrowserSetup) -> Callable[[], Path]:
    """Register the real host in the test's profile, as a user would; returns the manifest."""

    def install() -> Path:
        subprocess.run(
            [
                sys.executable,
                str(CHECKOUT / "install.py"),
                "--no-venv",
                "--user-data-dir",
                str(setup.profile),
            ],
            env=setup.env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        return setup.profile / "NativeMessagingHosts" / "org.dhims2.uploader.json"

    return install


@pytest.fixture
def launch(playwright: Playwright, setup: BrowserSetup) -> Iterator[Callable[[], Worker]]:
    """Start Chromium with the stub extension; returns the extension's service worker."""
    contexts: list[BrowserContext] = []

    def start() -> Worker:
        context = playwright.chromium.launch_persistent_context(
            str(setup.profile),
            executable_path=str(CHROMIUM),
            headless=True,
            env=setup.env,
            args=[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                f"--disable-extensions-except={setup.extension}",
                f"--load-extension={setup.extension}",
            ],
            ignore_default_args=["--disable-extensions"],
        )
        contexts.append(context)
        workers = context.service_workers
        return workers[0] if workers else context.wait_for_event("serviceworker", timeout=15_000)

    yield start
    for context in contexts:
        context.close()
