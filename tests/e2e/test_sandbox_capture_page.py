"""The Capture-like page in headless Chromium: DHIS2 Capture's DOM markers, and a filled form saves.

Needs Chromium: Debian's /usr/bin/chromium when present, else Playwright's own browser.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dhims2.forms.metadata import ORG_UNIT_UID, PROGRAM_UID, bundled_metadata

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STAGE_ELEMENTS = bundled_metadata()["programs"][0]["programStages"][0]["programStageDataElements"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()  # fresh cookies: every test starts signed out
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def open_new_event_form(page: Page, sandbox) -> None:
    route = f"#/new?orgUnitId={ORG_UNIT_UID}&programId={PROGRAM_UID}"
    form_url = f"{sandbox.base_url}/dhis-web-capture/{route}"
    page.goto(form_url)
    # Without a session DHIS2 sends the browser to its login page first.
    expect(page).to_have_url(re.compile(re.escape(f"{sandbox.base_url}/dhis-web-login/")))
    page.fill("#j_username", sandbox.username)
    page.fill("#j_password", sandbox.password)
    page.click("#submit")
    expect(page).to_have_url(re.compile(re.escape(f"{sandbox.base_url}/dhis-web-capture/")))
    page.goto(form_url)
    expect(page.locator("#new-event")).to_be_visible()


def field(uid: str) -> str:
    return f'div[data-test="form-field-{uid}"]'


def choose_by_clicking(page: Page, uid: str, typed: str, option: str) -> None:
    page.fill(f"input#{uid}", typed)
    page.locator(f'{field(uid)} [role="option"]', has_text=option).click()


def test_the_form_has_capture_markers_for_every_data_element(page, sandbox):
    open_new_event_form(page, sandbox)
    expect(page.locator('div[data-test="dataentry-field-occurredAt"] input')).to_have_count(1)
    expect(page.locator('div[data-test="dataentry-field-orgUnit"]')).to_contain_text(
        "Volta Regional Hospital"
    )
    expect(page.locator("input#completeYes")).to_have_count(1)
    assert len(STAGE_ELEMENTS) == 16
    for stage_element in STAGE_ELEMENTS:
        element = stage_element["dataElement"]
        wrapper = page.locator(field(element["id"]))
        expect(wrapper).to_have_count(1)
        expect(wrapper.locator("label").first).to_contain_text(element["formName"])
        if element.get("optionSet"):
            expect(wrapper.locator(f"input#{element['id']}")).to_have_count(1)
        elif element["valueType"] == "BOOLEAN":
            expect(page.locator(f"input#{element['id']}Yes")).to_have_count(1)
            expect(page.locator(f"input#{element['id']}No")).to_have_count(1)
        else:
            expect(wrapper.locator("input")).to_have_count(1)


def test_a_filled_form_saves_option_codes_and_shows_option_names(page, sandbox):
    open_new_event_form(page, sandbox)
    page.fill('div[data-test="dataentry-field-occurredAt"] input', "2025-03-01")
    texts = {
        "h0Ef6ykTpNB": "SYN-0002",
        "nk15h7fzCLz": "Test Street 2",
        "upqhIcii1iC": "7",
        "HsMaBh3wKed": "2025-03-01",
        "sIPe9r0NBbq": "2025-03-04",
    }
    for uid, value in texts.items():
        page.fill(f"{field(uid)} input", value)
    choose_by_clicking(page, "yPXPzceTIvq", "malaria", "B54 - Unspecified malaria")
    choose_by_clicking(page, "WZ5rS7QuECT", "mon", "months")
    choose_by_clicking(page, "qAWldjTeMIs", "stud", "Student")
    choose_by_clicking(page, "Hi8Cp84CnZQ", "prim", "Primary")
    choose_by_clicking(page, "xpzJAQC4DGe", "paed", "Paediatrics")
    choose_by_clicking(page, "OMN7CVW4IaY", "disch", "Discharged")
    # The keyboard works too: type, move down the list, Enter.
    page.fill("input#fg8sMCaTOrK", "ale")  # matches Male and Female
    page.press("input#fg8sMCaTOrK", "ArrowDown")
    page.press("input#fg8sMCaTOrK", "Enter")
    expect(page.locator(f"{field('fg8sMCaTOrK')} .Select-value-label")).to_have_text("Female")
    expect(page.locator("input#fg8sMCaTOrK")).to_have_value("")
    expect(page.locator(f"{field('yPXPzceTIvq')} .Select-value-label")).to_have_text(
        "B54 - Unspecified malaria"
    )
    page.check("input#dsVClbnOnm6No")
    page.check("input#ETSl9Q3SUOGYes")
    page.check("input#completeYes")
    page.click("#save")
    expect(page.locator("#save-result.success")).to_be_visible()

    [stored] = sandbox.stored_events()
    values = {value["dataElement"]: value["value"] for value in stored["dataValues"]}
    assert stored["status"] == "COMPLETED"
    assert stored["occurredAt"] == "2025-03-01T00:00:00.000"
    assert values == {
        **texts,
        "yPXPzceTIvq": "B54 - Unspecified malaria",
        "WZ5rS7QuECT": "months",
        "qAWldjTeMIs": "Student",
        "Hi8Cp84CnZQ": "Primary",
        "xpzJAQC4DGe": "Paediatrics",
        "OMN7CVW4IaY": "Discharged",
        "fg8sMCaTOrK": "Female",
        "dsVClbnOnm6": "false",
        "ETSl9Q3SUOG": "true",
    }


def test_validation_errors_are_shown_and_nothing_is_saved(page, sandbox):
    open_new_event_form(page, sandbox)
    page.fill('div[data-test="dataentry-field-occurredAt"] input', "2025-03-01")
    page.fill(f"{field('upqhIcii1iC')} input", "seven")
    page.click("#save")
    expect(page.locator("#save-result.error")).to_contain_text("value_not_zero_or_positive_integer")
    assert sandbox.stored_events() == []
