"""Browser tests: Debian's Chromium, headless, with the real host and either a stub extension
or the real one from the checkout.

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
from chromium import CHROMIUM, chromium_args
from extension_browser import EXTENSION, ExtensionBrowser
from playwright.sync_api import BrowserContext, Playwright, Worker, sync_playwright

CHECKOUT = Path(__file__).resolve().parents[2]

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


# Per module: a Playwright left running would stop modules that start their own.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium "
            "(apt-get update && apt-get install -y chromium)",
            pytrace=False,
        )
    with sync_playwright() as running:
        yield running


def browser_setup(folder: Path) -> BrowserSetup:
    """A HOME, a browser profile and host folders of their own, all under `folder`."""
    home, profile, extension = folder / "home", folder / "profile", folder / "extension"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))},
        "HOME": str(home),
        "DHIMS2_CONFIG_DIR": str(folder / "config"),
        "DHIMS2_DATA_DIR": str(folder / "data"),
        "DHIMS2_LOG_DIR": str(folder / "logs"),
    }
    return BrowserSetup(home, profile, extension, env)


@pytest.fixture
def setup(tmp_path: Path) -> BrowserSetup:
    made = browser_setup(tmp_path)
    write_stub_extension(made.extension)
    return made


def write_stub_extension(folder: Path) -> None:
    """The real extension manifest (same key, so the same id) with a tiny service worker."""
    folder.mkdir()
    manifest = json.loads((CHECKOUT / "extension" / "manifest.json").read_text("utf-8"))
    for page_key in ("action", "options_ui", "icons"):  # files the stub does not have
        manifest.pop(page_key, None)
    manifest["background"] = {"service_worker": "background.js"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (folder / "background.js").write_text(STUB_SERVICE_WORKER, encoding="utf-8")


def install_host_in(setup: BrowserSetup, *options: str) -> None:
    """Register the real host as a user would: for the Chromium profile, or as `options` say."""
    where = options or ("--user-data-dir", str(setup.profile))
    subprocess.run(
        [sys.executable, str(CHECKOUT / "install.py"), "--no-venv", *where],
        env=setup.env,
        check=True,
        capture_output=True,
        timeout=60,
    )


def configure_host_in(setup: BrowserSetup, *options: str) -> None:
    """Save host settings with the `dhims2 config` command, as a user could before installing."""
    subprocess.run(
        [str(Path(sys.executable).parent / "dhims2"), "config", *options],
        env=setup.env,
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def install_host(setup: BrowserSetup) -> Callable[[], Path]:
    """Register the real host in the test's profile, as a user would; returns the manifest."""

    def install() -> Path:
        install_host_in(setup)
        return setup.profile / "NativeMessagingHosts" / "org.dhims2.uploader.json"

    return install


def start_chromium(playwright: Playwright, setup: BrowserSetup, extension: Path) -> BrowserContext:
    """Debian's Chromium, headless, on the test's profile, with `extension` loaded unpacked."""
    return playwright.chromium.launch_persistent_context(
        str(setup.profile),
        executable_path=str(CHROMIUM),
        headless=True,
        env=setup.env,
        args=chromium_args(extension),
        ignore_default_args=["--disable-extensions"],
    )


def service_worker(context: BrowserContext) -> Worker:
    workers = context.service_workers
    return workers[0] if workers else context.wait_for_event("serviceworker", timeout=15_000)


@pytest.fixture
def launch(playwright: Playwright, setup: BrowserSetup) -> Iterator[Callable[[], Worker]]:
    """Start Chromium with the stub extension; returns the extension's service worker."""
    contexts: list[BrowserContext] = []

    def start() -> Worker:
        context = start_chromium(playwright, setup, setup.extension)
        contexts.append(context)
        return service_worker(context)

    yield start
    for context in contexts:
        context.close()


@pytest.fixture
def launch_extension(
    playwright: Playwright, setup: BrowserSetup
) -> Iterator[Callable[[], ExtensionBrowser]]:
    """Start Chromium with the real extension from the checkout; callable again on the same
    profile after `close()`, as a clerk reopens the browser."""
    browsers: list[ExtensionBrowser] = []

    def start() -> ExtensionBrowser:
        context = start_chromium(playwright, setup, EXTENSION)
        browser = ExtensionBrowser(context, service_worker(context))
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        browser.close()


@pytest.fixture
def configure_host(setup: BrowserSetup) -> Callable[..., None]:
    def configure(*options: str) -> None:
        configure_host_in(setup, *options)

    return configure
