"""A clerk's paths through the real extension: fill the Capture form, open the popup, upload, and
watch the record reach DHIS2 (the sandbox) or come back with the reasons next to its fields."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from extension_browser import (
    ExtensionBrowser,
    fill_capture_form,
    open_new_event_form,
    press_tab_until_focused,
    screenshot,
    sign_in,
)
from playwright.sync_api import Page, expect

from dhims2.forms.metadata import bundled_metadata
from dhims2.forms.synthetic import synthetic_rows, write_csv
from dhims2.sandbox import Sandbox

AGE = "upqhIcii1iC"
GENDER = "fg8sMCaTOrK"
EDUCATION = "Hi8Cp84CnZQ"
# Option codes that differ from the names Capture shows, so the test sees names become codes.
OPTION_CODES = {GENDER: {"Male": "M", "Female": "F"}, EDUCATION: {"Primary": "EDU_PRIMARY"}}
TEXTS = {
    "h0Ef6ykTpNB": "SYN-E2E-0001",  # patient number
    "nk15h7fzCLz": "Test Street 9",  # address
    AGE: "41",
    "HsMaBh3wKed": "2025-03-01",  # admission
    "sIPe9r0NBbq": "2025-03-06",  # discharge
}
OPTIONS = {
    "WZ5rS7QuECT": "years",
    GENDER: "Male",
    "qAWldjTeMIs": "Trader",
    EDUCATION: "Primary",
    "xpzJAQC4DGe": "Medical",
    "OMN7CVW4IaY": "Discharged",
    "yPXPzceTIvq": "B54 - Unspecified malaria",
}
BOOLEANS = {"dsVClbnOnm6": False, "ETSl9Q3SUOG": True}
EXPECTED_VALUES = {
    **TEXTS,
    **OPTIONS,
    GENDER: "M",
    EDUCATION: "EDU_PRIMARY",
    "dsVClbnOnm6": "false",
    "ETSl9Q3SUOG": "true",
}


def metadata_with_option_codes() -> dict[str, Any]:
    metadata = copy.deepcopy(bundled_metadata())
    for stage_element in metadata["programs"][0]["programStages"][0]["programStageDataElements"]:
        codes = OPTION_CODES.get(stage_element["dataElement"]["id"], {})
        for option in stage_element["dataElement"].get("optionSet", {}).get("options", []):
            option["code"] = codes.get(option["name"], option["code"])
    return metadata


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(metadata=metadata_with_option_codes()) as running:
        yield running


@pytest.fixture
def signed_in_browser(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> Callable[[], tuple[ExtensionBrowser, Page]]:
    """The host installed for the sandbox with browser-session sign-in, a browser with the
    extension, and a Capture tab signed in on the new-event form."""
    install_host()
    configure_host("--server", sandbox.base_url, "--auth", "session")

    def start() -> tuple[ExtensionBrowser, Page]:
        browser = launch_extension()
        tab = browser.context.new_page()
        sign_in(tab, sandbox)
        open_new_event_form(tab, sandbox)
        return browser, tab

    return start


def fill(tab: Page, **text_changes: str) -> None:
    fill_capture_form(
        tab,
        report_date="2025-03-01",
        texts={**TEXTS, **text_changes},
        options=OPTIONS,
        booleans=BOOLEANS,
    )


def values_of(event: dict[str, Any]) -> dict[str, str]:
    return {value["dataElement"]: value["value"] for value in event["dataValues"]}


def test_an_uploaded_form_is_created_with_codes_iso_dates_and_booleans_and_never_twice(
    signed_in_browser: Any, sandbox: Sandbox
) -> None:
    browser, tab = signed_in_browser()
    fill(tab)
    popup = browser.open_popup(tab)
    expect(popup.locator("#connection")).to_have_attribute("data-state", "ready")
    # Before sending, the popup shows what it read, under the program's own labels.
    expect(popup.locator(f'tr[data-field="{AGE}"]')).to_contain_text("Age")
    expect(popup.locator(f'tr[data-field="{AGE}"]')).to_contain_text("41")
    expect(popup.locator(f'tr[data-field="{GENDER}"]')).to_contain_text("Male")
    expect(popup.locator('tr[data-field="ETSl9Q3SUOG"]')).to_contain_text("Yes")
    expect(popup.locator('tr[data-field="orgUnit"]')).to_contain_text("Volta Regional Hospital")
    screenshot(popup, "popup-captured")

    # Keyboard only: Tab to the button, Enter.
    press_tab_until_focused(popup, popup.get_by_role("button", name="Upload this form"))
    popup.keyboard.press("Enter")
    result = popup.locator("#form-result")
    expect(result).to_have_attribute("data-state", "created")
    screenshot(popup, "popup-created")

    [stored] = sandbox.stored_events()
    assert stored["occurredAt"] == "2025-03-01T00:00:00.000"
    assert values_of(stored) == EXPECTED_VALUES
    expect(result.get_by_role("link", name="Open in Capture")).to_have_attribute(
        "href",
        f"{sandbox.base_url}/dhis-web-capture/index.html#/viewEvent?viewEventId={stored['event']}",
    )
    # The Capture form itself was never submitted: the one event came through the host.
    assert sandbox.request_count("POST", "/api/tracker") == 1

    # Uploading the same form again (the popup opened twice) updates that event: no copy.
    popup.close()
    again = browser.open_popup(tab)
    expect(again.locator("#form-message")).to_contain_text("uploaded on")
    again.get_by_role("button", name="Upload this form").click()
    expect(again.locator("#form-result")).to_have_attribute("data-state", "updated")
    assert [event["event"] for event in sandbox.stored_events()] == [stored["event"]]


def test_a_bad_value_is_shown_next_to_its_field_as_soon_as_the_form_is_read(
    signed_in_browser: Any, sandbox: Sandbox
) -> None:
    browser, tab = signed_in_browser()
    fill(tab, **{AGE: "abc", "sIPe9r0NBbq": "2025-02-30"})
    popup = browser.open_popup(tab)
    # No Upload pressed: the host's dry run marks the problems, and Upload waits for a fix.
    expect(popup.locator("#form-message")).to_contain_text("2 problems, marked next to the fields")
    expect(popup.get_by_role("button", name="Upload this form")).to_be_disabled()
    age_row = popup.locator(f'tr[data-field="{AGE}"]')
    expect(age_row.locator(".field-error")).to_contain_text("not a valid Age")
    expect(age_row.locator(".field-error")).to_contain_text("abc")
    discharge_row = popup.locator('tr[data-field="sIPe9r0NBbq"]')
    expect(discharge_row.locator(".field-error")).to_contain_text("February 2025 has no day 30")
    expect(popup.locator(f'tr[data-field="{GENDER}"] .field-error')).to_have_count(0)
    # DHIS2's error codes wait behind the details toggle.
    code = age_row.locator(".error-code")
    expect(code).to_be_hidden()
    popup.get_by_role("button", name="Show details").click()
    expect(code).to_be_visible()
    expect(code).to_contain_text("E")
    screenshot(popup, "popup-rejected")
    assert sandbox.stored_events() == []
    assert sandbox.request_count("POST", "/api/tracker") == 0


def test_the_open_popup_moves_from_importing_to_created_by_itself(
    signed_in_browser: Any, sandbox: Sandbox
) -> None:
    sandbox.knobs.job_overhead_seconds = 1.0
    browser, tab = signed_in_browser()
    fill(tab)
    popup = browser.open_popup(tab)
    popup.get_by_role("button", name="Upload this form").click()
    result = popup.locator("#form-result")
    expect(result).to_have_attribute("data-state", "importing")
    expect(result).to_contain_text("DHIS2 is importing it")
    # The job's id is there for whoever follows it up in DHIS2, behind "Show details".
    job = result.locator(".job-id")
    expect(job).to_be_hidden()
    popup.locator("#form-card").get_by_role("button", name="Show details").click()
    expect(job).to_be_visible()
    screenshot(popup, "popup-importing")
    expect(result).to_have_attribute("data-state", "created")

    # The batch's detail says whose record it is, asked of the host; the extension keeps none.
    [stored] = sandbox.stored_events()
    batch = popup.locator("li.batch").first
    batch.locator(".batch-toggle").click()
    record = batch.locator('li.record[data-row="1"][data-state="created"]')
    expect(record.locator(".patient")).to_have_text("SYN-E2E-0001, admitted 2025-03-01")
    kept = browser.worker.evaluate(
        "async () => JSON.stringify([await chrome.storage.session.get(null),"
        " await chrome.storage.local.get(null)])"
    )
    assert "SYN-E2E-0001" not in kept
    # Behind "Show details": the DHIS2 job and the server's own messages.
    expect(batch.locator("li.job")).to_be_hidden()
    batch.get_by_role("button", name="Show details").click()
    expect(batch.locator("li.job")).to_have_count(1)
    expect(batch.locator("li.job")).to_be_visible()
    expect(batch.locator("li.job .job-messages")).to_contain_text("Import complete with status OK")
    expect(batch.get_by_role("link", name="Open in Capture")).to_have_attribute(
        "href",
        f"{sandbox.base_url}/dhis-web-capture/index.html#/viewEvent?viewEventId={stored['event']}",
    )
    screenshot(popup, "popup-batch-detail", showing=batch.locator("li.job"))


def test_closing_the_browser_mid_import_loses_and_doubles_nothing(
    signed_in_browser: Any, sandbox: Sandbox, launch_extension: Any
) -> None:
    sandbox.knobs.job_overhead_seconds = 1.5
    browser, tab = signed_in_browser()
    fill(tab)
    popup = browser.open_popup(tab)
    popup.get_by_role("button", name="Upload this form").click()
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "importing")
    browser.close()
    assert sandbox.stored_events() == []  # the job is still running on the server

    reopened = launch_extension()
    sign_in(reopened.context.new_page(), sandbox)  # the DHIS2 session ended with the browser
    popup = reopened.open_popup()
    batch = popup.locator("li.batch").first
    expect(batch.locator(".batch-counts")).to_have_text("1 created")
    screenshot(popup, "popup-after-restart")
    [stored] = sandbox.stored_events()
    assert values_of(stored) == EXPECTED_VALUES
    assert sandbox.request_count("POST", "/api/tracker") == 1


def test_failed_records_show_on_the_badge_and_retry_failed_sends_them_again(
    signed_in_browser: Any, sandbox: Sandbox
) -> None:
    sandbox.knobs.job_failure_rate = 1.0
    browser, tab = signed_in_browser()
    fill(tab)
    popup = browser.open_popup(tab)
    popup.get_by_role("button", name="Upload this form").click()
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "failed", timeout=30_000)
    assert browser.badge_text_becomes("1") == "1"
    batch = popup.locator("li.batch").first
    batch.locator(".batch-toggle").click()
    expect(batch.locator('li.record[data-state="failed"] .errors')).to_contain_text(
        "Process failed"
    )
    screenshot(popup, "popup-failed", showing=batch)

    sandbox.knobs.job_failure_rate = 0.0
    batch.get_by_role("button", name="Retry failed (1)").click()
    expect(batch.locator('li.record[data-row="1"]')).to_have_attribute("data-state", "created")
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "created")
    assert len(sandbox.stored_events()) == 1
    assert browser.badge_text_becomes("") == ""


def test_a_spreadsheet_is_uploaded_and_its_rejected_row_names_the_field(
    signed_in_browser: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = list(synthetic_rows(3, tag="S"))
    rows.append({**rows[0], "Age": "abc"})
    sheet = write_csv(tmp_path / "ward-a.csv", rows)
    browser, _tab = signed_in_browser()
    popup = browser.open_popup()
    popup.set_input_files("#sheet-file", str(sheet))
    expect(popup.locator("#sheet-message")).to_contain_text("4 rows: 3 valid, 1 invalid")
    popup.get_by_role("button", name="Upload 3 valid rows").click()
    expect(popup.locator("#sheet-message")).to_contain_text(
        "3 rows on the way to DHIS2; 1 invalid row not sent"
    )
    batch = popup.locator("li.batch").first
    expect(batch.locator(".batch-counts")).to_have_text("3 created · 1 rejected")
    expect(batch.locator("progress")).to_have_attribute("value", "4")
    rejected = batch.locator('li.record[data-state="rejected"]')
    expect(rejected).to_have_attribute("data-row", "5")  # the sheet's line: the header is line 1
    expect(rejected.locator(".errors li")).to_contain_text("Age: ")
    expect(rejected.locator(".errors li")).to_contain_text("not a valid Age")
    # The reason quotes the refused value once: DHIS2's message has it already.
    assert rejected.locator(".errors li").inner_text().count("abc") == 1
    screenshot(popup, "popup-spreadsheet", showing=rejected)
    assert len(sandbox.stored_events()) == 3
