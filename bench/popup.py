"""How soon the popup shows the connection status: from the popup page starting to load to its
first definite status (connected, not signed in, ...), with the host already running (warm) and
with the host starting at the same moment (cold), in Debian's Chromium, headless.

    python bench/popup.py            # 10 browser starts: 10 cold and 10 warm popups
    python bench/popup.py --quick    # 2 of each, to check that the script still works

Cold: a browser started on the extension's profile, the popup opened as soon as the service worker
runs; the worker is starting the host then, and the popup has no stored status to show. Warm: the
popup opened again in that browser once the host is connected; it renders the status the worker
keeps in storage.session, then the live one. The instant is the popup's own
`performance.mark("status-rendered")`, measured from the popup's navigation start.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from dhims2.setup import installer

CHECKOUT = Path(__file__).resolve().parents[1]
# The browser tests and this benchmark start Chromium the same way.
sys.path.insert(0, str(CHECKOUT / "tests" / "e2e"))

import harness  # noqa: E402
from chromium import CHROMIUM, chromium_args  # noqa: E402
from harness import (  # noqa: E402
    REALISTIC,
    BenchError,
    SandboxServer,
    console_script,
    figure,
    heading,
)

EXTENSION = CHECKOUT / "extension"
TIMEOUT_MS = 30_000


class Profile:
    """A Chromium profile with the host installed and configured for the sandbox (token auth,
    so no sign-in page is involved), and the environment the browser passes to the host."""

    def __init__(self, root: Path, server: SandboxServer) -> None:
        self.path = root / "profile"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DHIMS2_", "XDG_"))}
        self.env.update(
            HOME=str(root / "home"),
            DHIMS2_CONFIG_DIR=str(root / "config"),
            DHIMS2_DATA_DIR=str(root / "data"),
            DHIMS2_LOG_DIR=str(root / "logs"),
        )
        (root / "home").mkdir()
        self._run(
            [
                sys.executable,
                str(CHECKOUT / "install.py"),
                "--no-venv",
                "--user-data-dir",
                str(self.path),
            ]
        )
        config = ["config", "--server", server.base_url, "--auth", "token", "--token", server.token]
        self._run([console_script("dhims2"), *config])

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise BenchError(f"{Path(argv[1]).name} failed: {done.stderr.strip()[-500:]}")

    def start_browser(self, playwright: Playwright) -> BrowserContext:
        context = playwright.chromium.launch_persistent_context(
            str(self.path),
            executable_path=str(CHROMIUM),
            headless=True,
            env=self.env,
            args=chromium_args(EXTENSION),
            ignore_default_args=["--disable-extensions"],
        )
        context.set_default_timeout(TIMEOUT_MS)
        if not context.service_workers:
            context.wait_for_event("serviceworker")
        return context


def status_rendered_ms(context: BrowserContext, popup_url: str) -> float:
    """Opens the popup and returns when, after its navigation start, the status showed."""
    page: Page = context.new_page()
    try:
        page.goto(popup_url)
        page.locator('#connection[data-state="ready"]').wait_for()
        marks = page.evaluate(
            "() => performance.getEntriesByName('status-rendered').map((mark) => mark.startTime)"
        )
    finally:
        page.close()
    if len(marks) != 1:
        raise BenchError(f"the popup marked status-rendered {len(marks)} times, not once")
    return marks[0]


def measure(runs: int, profile: Profile, popup_url: str) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    with sync_playwright() as playwright:
        # The first start registers the extension in the new profile: not what a clerk waits for.
        profile.start_browser(playwright).close()
        for _ in range(runs):
            context = profile.start_browser(playwright)
            try:
                cold.append(status_rendered_ms(context, popup_url))
                warm.append(status_rendered_ms(context, popup_url))
            finally:
                context.close()
    return cold, warm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few runs: checks the script")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        raise BenchError(f"{CHROMIUM} is missing: apt-get install -y chromium")
    runs = 2 if args.quick else 10
    extension_id = installer.extension_identity(EXTENSION / "manifest.json").chromium_id
    popup_url = f"chrome-extension://{extension_id}/popup.html"

    harness.print_machine()
    heading("Setup")
    version = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True)
    figure("browser", version.stdout.strip())
    figure("server", f"sandbox in its own process, {REALISTIC}")
    with SandboxServer(REALISTIC) as server, tempfile.TemporaryDirectory() as temporary:
        profile = Profile(Path(temporary), server)
        cold, warm = measure(runs, profile, popup_url)
    heading(f"Popup opened to status rendered, {runs} runs each")
    print(f"  {'':<42} {'warm host':>12} {'cold host':>12}")
    for label, statistic in (("median", harness.median), ("p95", harness.p95), ("max", max)):
        figure(label, f"{statistic(warm):>9.0f} ms {statistic(cold):>9.0f} ms")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/popup.py: {error}", file=sys.stderr)
        sys.exit(1)
