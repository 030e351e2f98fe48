"""The real DHIS2 Capture web app (the builds in ../shared/capture-app), driven as a clerk does:
click a dropdown and choose the option, type into a field and leave it, tick Yes or No.

The two Capture generations differ only in how a dropdown opens and shows its choice:
@dhis2/ui SimpleSingleSelect from v106 (DHIS2 2.41.8 on), react-virtualized-select before.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from dhims2_host.metadata import ORG_UNIT_UID, PROGRAM_UID

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


def sign_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/dhis-web-login/")
    page.fill("#j_username", username)
    page.fill("#j_password", password)
    page.click("#submit")
    page.wait_for_url(f"{base_url}/dhis-web-capture/**")


def field(uid: str) -> str:
    return f'div[data-test="form-field-{uid}"]'


REPORT_DATE = 'div[data-test="dataentry-field-occurredAt"] input'


class CaptureForm:
    """The new-event form (or an opened event) of one Capture version in one tab."""

    def __init__(self, page: Page, version: str) -> None:
        self.page = page
        self.version = version
        self.simple_select = version.startswith("v106")

    def open_new(self, base_url: str) -> None:
        route = f"#/new?orgUnitId={ORG_UNIT_UID}&programId={PROGRAM_UID}"
        self.page.goto(f"{base_url}/dhis-web-capture/index.html{route}")
        self.page.wait_for_selector(REPORT_DATE, timeout=FORM_TIMEOUT_MS)

    def wait_for_event(self) -> None:
        """Until an opened event shows its fields (as text: it opens read-only)."""
        self.page.wait_for_selector(
            'div[data-test="dataentry-field-occurredAt"]', timeout=FORM_TIMEOUT_MS
        )

    def type_and_leave(self, selector: str, value: str) -> None:
        box = self.page.locator(selector)
        box.click()
        box.press("ControlOrMeta+a")
        box.press_sequentially(value)
        box.press("Tab")  # Capture keeps a value only when the field loses focus
        # A date field's calendar stays open after Tab in v101: click beside it, as a clerk does.
        calendar_backdrop = self.page.locator("#dhis2-portal-root .backdrop")
        if calendar_backdrop.count():
            calendar_backdrop.click(position={"x": 5, "y": 5})
        expect(box).to_have_value(value)

    def type_text(self, uid: str, value: str) -> None:
        self.type_and_leave(f"{field(uid)} :is(input, textarea)", value)

    def type_report_date(self, value: str) -> None:
        self.type_and_leave(REPORT_DATE, value)

    def choose(self, uid: str, name: str) -> None:
        """Opens the dropdown with a click and clicks the option with this name."""
        if self.simple_select:
            self.page.click(f"#{uid}-combo")
            self.page.click(f'#{uid}-listbox [role="option"][aria-label="{name}"]')
            shown = self.page.locator(f"{field(uid)} .selected-option-label")
        else:
            # The list is virtualized: typing narrows it so the option is drawn.
            self.page.locator(f"{field(uid)} .Select-control").click()
            self.page.keyboard.type(name)
            self.page.locator(f"{field(uid)} .virtualized-select-option").get_by_text(
                name, exact=True
            ).click()
            shown = self.page.locator(f"{field(uid)} .Select-value-label")
        expect(shown).to_have_text(name)

    def choose_radio(self, uid: str, name: str) -> None:
        self.page.locator(f"{field(uid)} label", has_text=name).click()

    def answer(self, uid: str, yes: bool) -> None:
        self.page.click(f'label[for="{uid}{"Yes" if yes else "No"}"]')
