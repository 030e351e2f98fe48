"""The real extension in a real Chromium: its popup and options pages, the sandbox's Capture tab,
and screenshots of the popup saved under artifacts/."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import BrowserContext, Locator, Page, Worker, expect

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID
from dhims2.setup import installer

CHECKOUT = Path(__file__).resolve().parents[2]
EXTENSION = CHECKOUT / "extension"
EXTENSION_ID = installer.extension_identity(EXTENSION / "manifest.json").chromium_id
ARTIFACTS = CHECKOUT / "artifacts"
POPUP_SIZE = {"width": 400, "height": 600}
TIMEOUT_MS = 15_000


class ExtensionBrowser:
    """One Chromium with the extension loaded; pages opened here share its profile."""

    def __init__(self, context: BrowserContext, worker: Worker) -> None:
        self.context = context
        self.worker = worker
        self.closed = False
        context.set_default_timeout(TIMEOUT_MS)

    def page_url(self, name: str) -> str:
        return f"chrome-extension://{EXTENSION_ID}/{name}"

    def open_popup(self, tab: Page | None = None) -> Page:
        """The popup as a page; `tab` is the Capture tab it reads (an action popup reads the
        active tab, which a popup opened as a page would be itself)."""
        page = self.context.new_page()
        page.set_viewport_size(POPUP_SIZE)
        query = f"?tab={self.tab_id(tab)}" if tab is not None else ""
        page.goto(self.page_url(f"popup.html{query}"))
        return page

    def open_options(self) -> Page:
        page = self.context.new_page()
        page.goto(self.page_url("options.html"))
        return page

    def tab_id(self, page: Page) -> int:
        return self.worker.evaluate(
            "async (url) => (await chrome.tabs.query({})).find((tab) => tab.url === url).id",
            page.url,
        )

    def badge_text_becomes(self, expected: str) -> str:
        """The badge text once it equals `expected`, or whatever it shows at the deadline."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            text = self.worker.evaluate("() => chrome.action.getBadgeText({})")
            if text == expected or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.context.close()


def press_tab_until_focused(page: Page, target: Locator, most: int = 20) -> None:
    """Moves the keyboard focus with Tab, as a keyboard user does, until `target` has it."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if target.evaluate("(node) => node === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reached with {most} presses of Tab")


def screenshot(page: Page, name: str, showing: Locator | None = None) -> Path:
    """Saves artifacts/<name>.png for people to look at, scrolled to `showing`."""
    if showing is not None:
        showing.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def sign_in(page: Page, sandbox) -> None:
    """Open Capture; DHIS2 sends a browser without a session to its login page first."""
    page.goto(f"{sandbox.base_url}/dhis-web-capture/index.html")
    expect(page).to_have_url(re.compile(re.escape(f"{sandbox.base_url}/dhis-web-login/")))
    page.fill("#j_username", sandbox.username)
    page.fill("#j_password", sandbox.password)
    page.click("#submit")
    expect(page).to_have_url(re.compile(re.escape(f"{sandbox.base_url}/dhis-web-capture/")))


def open_new_event_form(page: Page, sandbox) -> None:
    route = f"#/new?orgUnitId={ORG_UNIT_UID}&programId={PROGRAM_UID}"
    page.goto(f"{sandbox.base_url}/dhis-web-capture/index.html{route}")
    expect(page.locator("#new-event")).to_be_visible()


def field(uid: str) -> str:
    return f'div[data-test="form-field-{uid}"]'


def fill_capture_form(
    page: Page,
    *,
    report_date: str,
    texts: dict[str, str],
    options: dict[str, str],
    booleans: dict[str, bool],
) -> None:
    """Fills the form as a clerk does: typing, picking option names from the lists, radios."""
    page.fill('div[data-test="dataentry-field-occurredAt"] input', report_date)
    for uid, value in texts.items():
        page.fill(f"{field(uid)} input", value)
    for uid, name in options.items():
        page.fill(f"input#{uid}", name)
        page.locator(field(uid)).get_by_role("option", name=name, exact=True).click()
        expect(page.locator(f"{field(uid)} .Select-value-label")).to_have_text(name)
    for uid, value in booleans.items():
        page.check(f"input#{uid}{'Yes' if value else 'No'}")
