"""A clerk's spreadsheet in the real popup: the host checks it first and the popup shows the invalid
rows with their reasons, before anything is sent; the invalid rows download as CSV with a reason
column; then only the valid rows reach DHIS2 (the sandbox). Every workbook is generated here and
every patient is made up."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from extension_browser import ExtensionBrowser, press_tab_until_focused, screenshot, sign_in
from playwright.sync_api import Page, expect

from dhims2.forms.synthetic import synthetic_rows
from dhims2.sandbox import Sandbox
from test_templates import DHIMS2_HEADER, dhims2_row
from test_xlsx import write_workbook

INPATIENT_LAYOUT = "The DHIMS2 In-Patient Morbidity and Mortality sheet"
PATIENT_NUMBER = "h0Ef6ykTpNB"
AGE_LABEL = "Age"
GENDER_LABEL = "Gender (morbidity/mortality)"


@pytest.fixture
def popup(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> Callable[[], Page]:
    """The popup of a browser signed in to the sandbox, the host set to its browser session."""
    install_host()
    configure_host("--server", sandbox.base_url, "--auth", "session")

    def open_popup() -> Page:
        browser: ExtensionBrowser = launch_extension()
        sign_in(browser.context.new_page(), sandbox)
        page = browser.open_popup()
        expect(page.locator("#connection")).to_have_attribute("data-state", "ready")
        return page

    return open_popup


def dhims2_table(rows: list[dict[str, object]]) -> list[list[object]]:
    return [DHIMS2_HEADER, *([row.get(column) for column in DHIMS2_HEADER] for row in rows)]


def uploaded_patients(sandbox: Sandbox) -> set[str]:
    return {
        value["value"]
        for event in sandbox.stored_events()
        for value in event["dataValues"]
        if value["dataElement"] == PATIENT_NUMBER
    }


def invalid_row(page: Page, row: int) -> Any:
    return page.locator(f'#invalid-rows tbody[data-row="{row}"]')


def test_a_dhims2_workbook_is_checked_exported_and_only_its_valid_rows_uploaded(
    popup: Callable[[], Page], sandbox: Sandbox, tmp_path: Path
) -> None:
    march = [dhims2_row(index) for index in range(6)]
    march[1]["Gender"] = "Malee"
    march[3]["Principal Diagnosis"] = "Tetanus(A99)"
    march[4]["Age"] = "old"
    march.append(dhims2_row(0, **{"Address/Locality": "Keta"}))  # the same admission again
    april = [dhims2_row(index) for index in range(20, 22)]
    workbook = write_workbook(
        tmp_path / "ward-march.xlsx", {"March": dhims2_table(march), "April": dhims2_table(april)}
    )
    page = popup()
    message = page.locator("#sheet-message")

    # As in DHIS2 the sheet's own column names are unknown: each one is named, nothing is sent.
    page.set_input_files("#sheet-file", str(workbook))
    expect(message).to_contain_text("these columns do not fit, so nothing can be sent")
    expect(message).to_contain_text("choose it under Column layout")
    expect(page.locator("#sheet-columns")).to_contain_text('did you mean "Patient number"')
    expect(page.get_by_role("button", name="Upload valid rows")).to_be_disabled()
    screenshot(page, "popup-sheet-unknown-columns", showing=page.locator("#sheet-columns"))

    page.get_by_label("Column layout").select_option(label=INPATIENT_LAYOUT)
    expect(message).to_contain_text("7 rows: 3 valid, 4 invalid. Nothing has been sent yet.")
    expect(page.locator("#sheet-template-note")).to_contain_text('ages written like "20 Year(s)"')
    expect(page.get_by_label("Sheet", exact=True)).to_have_value("March")
    rows = page.locator("#invalid-rows tbody")
    expect(rows).to_have_count(4)
    assert [int(row) for row in rows.evaluate_all("(all) => all.map((b) => b.dataset.row)")] == [
        3, 5, 6, 8,
    ]  # fmt: skip
    expect(invalid_row(page, 3).locator(".field")).to_have_text("Gender")
    expect(invalid_row(page, 3)).to_contain_text('did you mean "Male"')
    expect(invalid_row(page, 3)).to_contain_text("Malee")
    expect(invalid_row(page, 5).locator(".field")).to_have_text("Principal Diagnosis")
    expect(invalid_row(page, 5)).to_contain_text("no option has the code A99")
    expect(invalid_row(page, 6)).to_contain_text("is not an age with its unit")
    expect(invalid_row(page, 8)).to_contain_text("as row 2: only row 2 is uploaded")
    screenshot(page, "popup-sheet-checked", showing=page.locator("#invalid-rows-scroll"))

    with page.expect_download() as download:
        page.get_by_role("button", name="Export invalid rows (CSV)").click()
    assert download.value.suggested_filename == "ward-march-invalid-rows.csv"
    content = Path(download.value.path()).read_bytes()
    assert content.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    header, *exported = csv.reader(content.decode("utf-8-sig").splitlines())
    assert header == ["Source row", *DHIMS2_HEADER, "Reason not uploaded"]
    assert [row[0] for row in exported] == ["3", "5", "6", "8"]
    reasons = {row[0]: row[-1] for row in exported}
    assert 'did you mean "Male"' in reasons["3"] and "A99" in reasons["5"]
    assert "age with its unit" in reasons["6"] and "only row 2 is uploaded" in reasons["8"]
    expect(page.locator("#sheet-export-message")).to_contain_text(
        "ward-march-invalid-rows.csv: 4 invalid rows, each with the reason"
    )
    screenshot(page, "popup-sheet-exported", showing=page.locator("#sheet-export-message"))

    # Another sheet of the workbook is checked on its own.
    page.get_by_label("Sheet", exact=True).select_option("April")
    expect(message).to_contain_text("(sheet “April”): 2 rows: 2 valid, 0 invalid")
    expect(page.locator("#sheet-check")).to_be_hidden()
    expect(page.get_by_role("button", name="Export invalid rows (CSV)")).to_be_disabled()
    page.get_by_label("Sheet", exact=True).select_option("March")
    expect(message).to_contain_text("(sheet “March”): 7 rows: 3 valid, 4 invalid")
    assert sandbox.stored_events() == []
    assert sandbox.request_count("POST", "/api/tracker") == 0

    upload = page.get_by_role("button", name="Upload 3 valid rows")
    press_tab_until_focused(page, upload, most=40)
    page.keyboard.press("Enter")
    expect(message).to_contain_text("3 rows on the way to DHIS2; 4 invalid rows not sent")
    batch = page.locator("li.batch").first
    expect(batch.locator(".batch-counts")).to_have_text("3 created · 4 rejected")
    screenshot(page, "popup-sheet-uploaded")
    assert uploaded_patients(sandbox) == {"VRH/SYN/00000", "VRH/SYN/00002", "VRH/SYN/00005"}


def test_a_workbook_named_as_in_dhis2_shows_every_invalid_row_a_page_at_a_time(
    popup: Callable[[], Page], sandbox: Sandbox, tmp_path: Path
) -> None:
    rows = list(synthetic_rows(55, tag="L"))
    faults = [(AGE_LABEL, "abc"), (GENDER_LABEL, "Malee")]
    for index, row in enumerate(rows[2:]):
        column, value = faults[index % len(faults)]
        row[column] = value
    header = list(rows[0])
    workbook = write_workbook(
        tmp_path / "labels.xlsx",
        {"Register": [header, *([row[c] for c in header] for row in rows)]},
    )
    page = popup()
    page.set_input_files("#sheet-file", str(workbook))
    message = page.locator("#sheet-message")
    expect(message).to_contain_text("labels.xlsx: 55 rows: 2 valid, 53 invalid")
    expect(page.get_by_label("Column layout")).to_have_value("")
    expect(page.locator("#sheet-tab-choice")).to_be_hidden()  # one sheet: nothing to choose
    expect(invalid_row(page, 4).locator(".field")).to_have_text(AGE_LABEL)
    expect(invalid_row(page, 4)).to_contain_text('"abc" is not a valid Age')
    expect(invalid_row(page, 5).locator(".field")).to_have_text(GENDER_LABEL)
    rows_shown = page.locator("#invalid-rows tbody")
    expect(rows_shown).to_have_count(50)

    more = page.get_by_role("button", name="Show more invalid rows")
    more.focus()
    page.keyboard.press("Enter")
    expect(rows_shown).to_have_count(53)
    expect(more).to_be_hidden()
    expect(invalid_row(page, 56)).to_contain_text("not a valid Age")
    expect(page.locator("#invalid-rows-scroll")).to_be_focused()
    screenshot(page, "popup-sheet-all-invalid-rows", showing=page.locator("#invalid-rows-scroll"))

    page.get_by_role("button", name="Upload 2 valid rows").click()
    expect(message).to_contain_text("2 rows on the way to DHIS2; 53 invalid rows not sent")
    expect(page.locator("li.batch").first.locator(".batch-counts")).to_have_text(
        "2 created · 53 rejected"
    )
    assert uploaded_patients(sandbox) == {"VRH/L/000000", "VRH/L/000001"}
