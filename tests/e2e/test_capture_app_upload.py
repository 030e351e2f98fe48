"""The real DHIS2 Capture app (both generations) in Chromium with the real extension and host: a
clerk fills the In-Patient form by hand, uploads it from the popup, and the sandbox has every
field exactly as entered; an event saved with Capture's own Save and then uploaded is updated; the
popup's "Open in Capture" link shows the uploaded event.

Each Capture version gets one sandbox and one browser for the module. v101 runs against a server
whose date format is yyyy-mm-dd, v106 against dd-mm-yyyy, so both settings are read and converted.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from capture_app import (
    VERSIONS,
    CaptureForm,
    Entry,
    PlaywrightClerk,
    as_shown,
    capture_build,
    clerk_in_capture,
    field,
    in_patient_entries,
    values_of,
)
from extension_browser import ExtensionBrowser, screenshot
from playwright.sync_api import Page, Playwright, expect
from test_extension_upload import metadata_with_option_codes

from dhims2.forms.metadata import PATIENT_NUMBER_UID
from dhims2.sandbox import Sandbox

DATE_FORMATS = {"v101.21.3": "yyyy-mm-dd", "v106.5.0": "dd-mm-yyyy"}
SERVER_VERSIONS = {"v101.21.3": "2.41.3", "v106.5.0": "2.41.9"}  # the DHIS2 that ships each
REPORT_DATE = "2025-03-07"
# Test-only fields beside the In-Patient program's 16, for the widgets that program lacks.
NOTES, REFERRED, WARD = "ClinNotes01", "ReferredIn1", "WardOfAdm01"
ADDRESS = "nk15h7fzCLz"
EXTRA_ELEMENTS = [
    {"id": NOTES, "name": "Clinical notes", "code": "NOTES", "valueType": "LONG_TEXT"},
    {"id": REFERRED, "name": "Referred in", "code": "REFERRED", "valueType": "TRUE_ONLY"},
    {
        "id": WARD,
        "name": "Ward",
        "code": "WARD",
        "valueType": "TEXT",
        "optionSet": {
            "id": "WardOptSet1",
            "name": "Ward",
            "options": [
                {"code": "WARD_M", "name": "Male ward"},
                {"code": "WARD_F", "name": "Female ward"},
            ],
        },
    },
]


EXTRA_ENTRIES = [
    Entry(
        NOTES, "text", "Synthetic record, second admission", "Synthetic record, second admission"
    ),
    Entry(REFERRED, "yes_no", "Yes", "true"),
    Entry(WARD, "radio", "Female ward", "WARD_F"),
]


def capture_metadata() -> dict[str, Any]:
    metadata = copy.deepcopy(metadata_with_option_codes())
    stage = metadata["programs"][0]["programStages"][0]
    for element in EXTRA_ELEMENTS:
        stage["programStageDataElements"].append(
            {
                "compulsory": False,
                "renderOptionsAsRadio": element["id"] == WARD,
                "dataElement": element,
            }
        )
    return metadata


@dataclass
class CaptureSession:
    version: str
    date_format: str
    sandbox: Sandbox
    browser: ExtensionBrowser
    tab: Page

    def form(self) -> CaptureForm:
        return CaptureForm(PlaywrightClerk(self.tab), self.version)

    def fill(self, entries: list[Entry]) -> None:
        """A new event in a new tab, filled in field by field as a clerk does."""
        self.tab.close()
        self.tab = self.browser.context.new_page()
        form = self.form()
        form.open_new(self.sandbox.base_url)
        form.fill(entries, REPORT_DATE, self.date_format)

    def stored(self, patient_number: str) -> list[dict[str, Any]]:
        return [
            event
            for event in self.sandbox.stored_events()
            if values_of(event).get(PATIENT_NUMBER_UID) == patient_number
        ]


@pytest.fixture(scope="module", params=VERSIONS)
def capture(
    request: pytest.FixtureRequest, playwright: Playwright, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CaptureSession]:
    version = request.param
    build = capture_build(version)
    date_format = DATE_FORMATS[version]
    with (
        Sandbox(
            metadata=capture_metadata(),
            version=SERVER_VERSIONS[version],
            capture_app=build,
            date_format=date_format,
        ) as sandbox,
        clerk_in_capture(playwright, tmp_path_factory.mktemp(f"capture-{version}"), sandbox) as (
            browser,
            tab,
        ),
    ):
        yield CaptureSession(version, date_format, sandbox, browser, tab)


def upload_from_popup(session: CaptureSession, entries: list[Entry], name: str) -> Page:
    """Opens the popup on the Capture tab, checks its preview shows what the clerk sees, uploads."""
    popup = session.browser.open_popup(session.tab)
    expect(popup.locator("#connection")).to_have_attribute("data-state", "ready")
    for entry in entries:
        # Option names, as chosen; Yes / No; dates as YYYY-MM-DD whatever the server shows.
        shown = entry.entered if entry.how != "date" else entry.stored
        expect(popup.locator(f'tr[data-field="{entry.uid}"] .value')).to_have_text(shown)
    expect(popup.locator('tr[data-field="occurredAt"] .value')).to_have_text(REPORT_DATE)
    expect(popup.locator('tr[data-field="orgUnit"] .value')).to_have_text("Volta Regional Hospital")
    screenshot(popup, f"capture-{session.version}-{name}-popup")
    popup.click("#upload-form")
    return popup


def assert_stored_as_entered(event: dict[str, Any], entries: list[Entry]) -> None:
    assert event["occurredAt"].startswith(REPORT_DATE)
    assert event["orgUnit"] == "duCDqCRlWG1"
    assert values_of(event) == {entry.uid: entry.stored for entry in entries}


def test_every_field_entered_by_hand_arrives_as_entered(capture: CaptureSession) -> None:
    entries = [*in_patient_entries(f"SYN-{capture.version}-1"), *EXTRA_ENTRIES]
    started = time.monotonic()
    capture.fill(entries)
    screenshot(capture.tab, f"capture-{capture.version}-form")
    popup = upload_from_popup(capture, entries, "new")
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "created")
    [event] = capture.stored(f"SYN-{capture.version}-1")
    assert_stored_as_entered(event, entries)
    assert len(in_patient_entries("x")) == 16

    # "Open in Capture" shows the uploaded event in real Capture, with the values entered.
    with capture.browser.context.expect_page() as opened:
        popup.click("a.capture-link")
    view = opened.value
    view_form = CaptureForm(PlaywrightClerk(view), capture.version)
    expect(view).to_have_url(
        f"{capture.sandbox.base_url}/dhis-web-capture/index.html#/viewEvent?viewEventId={event['event']}"
    )
    view_form.wait_for_event()
    for entry in entries:
        shown = (
            as_shown(entry.entered, capture.date_format) if entry.how == "date" else entry.entered
        )
        expect(view.locator(field(entry.uid))).to_contain_text(shown)
    screenshot(view, f"capture-{capture.version}-opened")
    view.close()
    popup.close()
    print(f"{capture.version}: filled, uploaded and opened in {time.monotonic() - started:.1f} s")


def test_an_event_saved_with_capture_then_uploaded_or_edited_is_updated_not_copied(
    capture: CaptureSession,
) -> None:
    patient_number = f"SYN-{capture.version}-2"
    entries = in_patient_entries(patient_number)
    capture.fill(entries)
    capture.tab.get_by_role("button", name="Save and exit").click()
    deadline = time.monotonic() + 15
    while not capture.stored(patient_number) and time.monotonic() < deadline:
        time.sleep(0.1)
    [saved] = capture.stored(patient_number)
    assert_stored_as_entered(saved, entries)

    # The clerk opens the saved event from Capture's list, then uploads it from the popup.
    capture.tab.get_by_text(patient_number).click()
    expect(capture.tab).to_have_url(re.compile(rf"#/viewEvent\?(.*&)?viewEventId={saved['event']}"))
    capture.form().wait_for_event()
    popup = upload_from_popup(capture, entries, "saved")
    # Before its first send the host looks the admission up on DHIS2 and finds the event Capture
    # saved: DHIS2 updates it (same UID, no second event) and the popup says so.
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "updated")
    [event] = capture.stored(patient_number)
    assert event["event"] == saved["event"]
    assert event["updatedAt"] > saved["updatedAt"]
    assert_stored_as_entered(event, entries)
    popup.close()

    # Then edits it in Capture (without saving there) and uploads the edited form.
    capture.tab.get_by_role("button", name="Edit event").click()
    moved = Entry(ADDRESS, "text", "14 Synthetic Lane, Ho", "14 Synthetic Lane, Ho")
    capture.form().type_text(ADDRESS, moved.entered)
    edited = [moved if entry.uid == ADDRESS else entry for entry in entries]
    popup = upload_from_popup(capture, edited, "edited")
    # This time the host uploaded the event before, so it knows it is an update.
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "updated")
    [event] = capture.stored(patient_number)
    assert event["event"] == saved["event"]
    assert_stored_as_entered(event, edited)
    popup.close()
