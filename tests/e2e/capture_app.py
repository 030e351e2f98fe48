"""The real DHIS2 Capture web app (the builds in ../shared/capture-app), driven as a clerk does:
click a dropdown and choose the option, type into a field and leave it, tick Yes or No.

The two Capture generations differ only in how a dropdown opens and shows its choice:
@dhis2/ui SimpleSingleSelect from v106 (DHIS2 2.41.8 on), react-virtualized-select before.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from extension_browser import EXTENSION, ExtensionBrowser
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from conftest import (
    browser_setup,
    configure_host_in,
    install_host_in,
    service_worker,
    start_chromium,
)
from dhims2.forms.metadata import ORG_UNIT_UID, PATIENT_NUMBER_UID, PROGRAM_UID
from dhims2.sandbox import Sandbox

CHECKOUT = Path(__file__).resolve().parents[2]
BUILDS = CHECKOUT.parent / "shared" / "capture-app"
# The Capture versions DHIS2 2.41.3 and 2.41.9 ship.
VERSIONS = ("v101.21.3", "v106.5.0")
FORM_TIMEOUT_MS = 60_000  # the first start of Capture fills its IndexedDB cache


def capture_build(version: str) -> Path:
    """The build's folder; a missing one fails the test under CI and skips it elsewhere."""
    folder = BUILDS / version
    if not (folder / "index.html").is_file():
        message = f"the real Capture app build {folder} is missing (see docs/CAPTURE.md)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return folder


def block_cdn(context: BrowserContext) -> None:
    """v101's index.html loads Leaflet from cdnjs; tests run offline and use no map."""
    context.route("**/cdnjs.cloudflare.com/**", lambda route: route.abort())


def sign_in(clerk: Clerk, base_url: str, username: str, password: str) -> None:
    """Signs in on the login page; DHIS2 then opens Capture."""
    clerk.goto(f"{base_url}/dhis-web-login/")
    for selector, typed in (("#j_username", username), ("#j_password", password)):
        clerk.click(selector)
        clerk.keys(typed)
    clerk.click("#submit")
    clerk.wait_for("#dhis2-app-root")


@contextmanager
def clerk_in_capture(
    playwright: Playwright, folder: Path, sandbox: Sandbox
) -> Iterator[tuple[ExtensionBrowser, Page]]:
    """Chromium with the real extension and host on the browser's session, and a tab signed in
    to the sandbox's Capture app as its clerk."""
    setup = browser_setup(folder)
    install_host_in(setup)
    configure_host_in(setup, "--server", sandbox.base_url, "--auth", "session")
    context = start_chromium(playwright, setup, EXTENSION)
    block_cdn(context)
    browser = ExtensionBrowser(context, service_worker(context))
    tab = context.new_page()
    sign_in(PlaywrightClerk(tab), sandbox.base_url, sandbox.username, sandbox.password)
    yield browser, tab
    browser.close()


def field(uid: str) -> str:
    return f'div[data-test="form-field-{uid}"]'


REPORT_DATE = 'div[data-test="dataentry-field-occurredAt"] input'


class Clerk(Protocol):
    """What a clerk does in a browser tab, whichever browser automation does it."""

    def goto(self, url: str) -> None: ...

    def click(self, selector: str, text: str | None = None) -> None:
        """Clicks the element matching `selector` (and whose whole text is `text`, if given)."""

    def click_at(self, x: int, y: int) -> None: ...

    def keys(self, text: str) -> None:
        """Types `text` into whatever has the focus."""

    def press(self, key: str) -> None:
        """Presses one key: "Tab", or "SelectAll" (Ctrl+A)."""

    def count(self, selector: str) -> int: ...

    def wait_for(self, selector: str, *, text: str | None = None, value: str | None = None) -> None:
        """Until `selector` matches, with this text or input value if given."""


class PlaywrightClerk:
    """The clerk in a Playwright page (Chromium)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def goto(self, url: str) -> None:
        self.page.goto(url)

    def click(self, selector: str, text: str | None = None) -> None:
        if text is None:
            self.page.click(selector)
        else:
            exactly = re.compile(rf"^\s*{re.escape(text)}\s*$")
            self.page.locator(selector, has_text=exactly).click()

    def click_at(self, x: int, y: int) -> None:
        self.page.mouse.click(x, y)

    def keys(self, text: str) -> None:
        self.page.keyboard.type(text)

    def press(self, key: str) -> None:
        self.page.keyboard.press("ControlOrMeta+a" if key == "SelectAll" else key)

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def wait_for(self, selector: str, *, text: str | None = None, value: str | None = None) -> None:
        found = self.page.locator(selector)
        if text is not None:
            expect(found).to_have_text(text, timeout=FORM_TIMEOUT_MS)
        elif value is not None:
            expect(found).to_have_value(value)
        else:
            found.first.wait_for(timeout=FORM_TIMEOUT_MS)


class CaptureForm:
    """The new-event form (or an opened event) of one Capture version, filled by a clerk."""

    def __init__(self, clerk: Clerk, version: str) -> None:
        self.clerk = clerk
        self.version = version
        self.simple_select = version.startswith("v106")

    def open_new(self, base_url: str) -> None:
        self.clerk.goto(new_event_url(base_url))
        self.clerk.wait_for(REPORT_DATE)

    def wait_for_event(self) -> None:
        """Until an opened event shows its fields (as text: it opens read-only)."""
        self.clerk.wait_for('div[data-test="dataentry-field-occurredAt"]')

    def type_and_leave(self, selector: str, value: str) -> None:
        self.clerk.click(selector)
        self.clerk.press("SelectAll")
        self.clerk.keys(value)
        self.clerk.press("Tab")  # Capture keeps a value only when the field loses focus
        # A date field's calendar stays open after Tab in v101: click beside it, as a clerk does.
        if self.clerk.count("#dhis2-portal-root .backdrop"):
            self.clerk.click_at(5, 5)
        self.clerk.wait_for(selector, value=value)

    def type_text(self, uid: str, value: str) -> None:
        self.type_and_leave(f"{field(uid)} :is(input, textarea)", value)

    def choose(self, uid: str, name: str) -> None:
        """Opens the dropdown with a click and clicks the option with this name."""
        if self.simple_select:
            self.clerk.click(f"#{uid}-combo")
            self.clerk.click(f'#{uid}-listbox [role="option"][aria-label="{name}"]')
            shown = f"{field(uid)} .selected-option-label"
        else:
            # The list is virtualized: typing narrows it so the option is drawn.
            self.clerk.click(f"{field(uid)} .Select-control")
            self.clerk.keys(name)
            self.clerk.click(f"{field(uid)} .virtualized-select-option", name)
            shown = f"{field(uid)} .Select-value-label"
        self.clerk.wait_for(shown, text=name)

    def choose_radio(self, uid: str, name: str) -> None:
        self.clerk.click(f"{field(uid)} label", name)

    def answer(self, uid: str, yes: bool) -> None:
        self.clerk.click(f'label[for="{uid}{"Yes" if yes else "No"}"]')

    def fill(self, entries: list[Entry], report_date: str, date_format: str) -> None:
        """Types or picks every entry; dates as the server's date format shows them."""
        self.type_and_leave(REPORT_DATE, as_shown(report_date, date_format))
        for entry in entries:
            if entry.how == "text":
                self.type_text(entry.uid, entry.entered)
            elif entry.how == "date":
                self.type_text(entry.uid, as_shown(entry.entered, date_format))
            elif entry.how == "option":
                self.choose(entry.uid, entry.entered)
            elif entry.how == "radio":
                self.choose_radio(entry.uid, entry.entered)
            else:
                self.answer(entry.uid, entry.entered == "Yes")


def new_event_url(base_url: str) -> str:
    route = f"#/new?orgUnitId={ORG_UNIT_UID}&programId={PROGRAM_UID}"
    return f"{base_url}/dhis-web-capture/index.html{route}"


@dataclass(frozen=True)
class Entry:
    """One field as the clerk enters it and as DHIS2 must store it."""

    uid: str
    how: str  # text, date, option, radio, yes_no
    entered: str
    stored: str


def in_patient_entries(patient_number: str) -> list[Entry]:
    """The 16 In-Patient fields. Run with test_extension_upload's metadata, whose codes for
    Female and Primary differ from their names, so the name-to-code step shows."""
    return [
        Entry(PATIENT_NUMBER_UID, "text", patient_number, patient_number),
        Entry("nk15h7fzCLz", "text", "12 Synthetic Lane, Ho", "12 Synthetic Lane, Ho"),
        Entry("upqhIcii1iC", "text", "37", "37"),
        Entry("WZ5rS7QuECT", "option", "years", "years"),
        Entry("fg8sMCaTOrK", "option", "Female", "F"),
        Entry("qAWldjTeMIs", "option", "Trader", "Trader"),
        Entry("Hi8Cp84CnZQ", "option", "Primary", "EDU_PRIMARY"),
        Entry("HsMaBh3wKed", "date", "2025-03-01", "2025-03-01"),
        Entry("sIPe9r0NBbq", "date", "2025-03-06", "2025-03-06"),
        Entry("xpzJAQC4DGe", "option", "Medical", "Medical"),
        Entry("OMN7CVW4IaY", "option", "Discharged", "Discharged"),
        Entry("yPXPzceTIvq", "option", "B54 - Unspecified malaria", "B54 - Unspecified malaria"),
        Entry("O15UNfCqavW", "option", "A00 - Cholera", "A00 - Cholera"),
        Entry("dsVClbnOnm6", "yes_no", "No", "false"),
        Entry("fRkwcThGCTM", "text", "250.5", "250.5"),
        Entry("ETSl9Q3SUOG", "yes_no", "Yes", "true"),
    ]


def as_shown(iso_date: str, date_format: str) -> str:
    """How Capture shows (and the clerk types) a date in the server's date format."""
    year, month, day = iso_date.split("-")
    return f"{day}-{month}-{year}" if date_format == "dd-mm-yyyy" else iso_date


def values_of(event: dict) -> dict[str, str]:
    return {value["dataElement"]: value["value"] for value in event["dataValues"]}
