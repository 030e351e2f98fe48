"""The popup looks like DHIS2: beside the real Capture app (v106.5.0, the one DHIS2 2.41.9 ships)
it uses the same font, header colour and design tokens, and artifacts/popup-beside-capture-*.png
put the two side by side in the popup's main states for people to judge."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from capture_app import (
    CaptureForm,
    Entry,
    PlaywrightClerk,
    capture_build,
    clerk_in_capture,
    in_patient_entries,
)
from extension_browser import ARTIFACTS, ExtensionBrowser
from playwright.sync_api import Page, Playwright, expect
from test_extension_upload import metadata_with_option_codes

from dhims2.sandbox import Sandbox

VERSION = "v106.5.0"
DATE_FORMAT = "dd-mm-yyyy"
REPORT_DATE = "2025-03-07"
CAPTURE_SIZE = {"width": 1280, "height": 720}  # Playwright's default page size
AGE = "upqhIcii1iC"


@dataclass
class Session:
    sandbox: Sandbox
    browser: ExtensionBrowser
    tab: Page


@pytest.fixture(scope="module")
def capture(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    build = capture_build(VERSION)
    with (
        Sandbox(
            metadata=metadata_with_option_codes(),
            version="2.41.9",
            capture_app=build,
            date_format=DATE_FORMAT,
        ) as sandbox,
        clerk_in_capture(playwright, tmp_path_factory.mktemp("look"), sandbox) as (browser, tab),
    ):
        yield Session(sandbox, browser, tab)


def filled_form(session: Session, entries: list[Entry]) -> None:
    """A new event in a new tab (Capture keeps an unsaved form's values in its tab)."""
    session.tab.close()
    session.tab = session.browser.context.new_page()
    form = CaptureForm(PlaywrightClerk(session.tab), VERSION)
    form.open_new(session.sandbox.base_url)
    form.fill(entries, REPORT_DATE, DATE_FORMAT)


def beside(session: Session, popup: Page, name: str) -> Path:
    """artifacts/popup-beside-capture-<name>.png: Capture's form on the left, the popup right."""
    shots = [base64.b64encode(page.screenshot()).decode() for page in (session.tab, popup)]
    sheet = session.browser.context.new_page()
    sheet.set_viewport_size(
        {"width": CAPTURE_SIZE["width"] + 440, "height": CAPTURE_SIZE["height"]}
    )
    sheet.set_content(
        '<body style="margin:0;display:flex;gap:20px;align-items:flex-start;background:#d5dde5">'
        + "".join(f'<img src="data:image/png;base64,{shot}">' for shot in shots)
        + "</body>"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"popup-beside-capture-{name}.png"
    sheet.screenshot(path=str(path))
    sheet.close()
    return path


FONT_SOURCES = """() => {
  const sources = [];
  const walk = (sheet) => {
    for (const rule of sheet.cssRules) {
      if (rule instanceof CSSImportRule) walk(rule.styleSheet);
      else if (rule instanceof CSSFontFaceRule) sources.push(rule.style.getPropertyValue("src"));
    }
  };
  for (const sheet of document.styleSheets) walk(sheet);
  return sources;
}"""

STYLE_OF = """(selector) => {
  const style = getComputedStyle(document.querySelector(selector));
  return { family: style.fontFamily, size: style.fontSize, background: style.backgroundColor };
}"""


def test_the_popup_uses_captures_font_and_header_colour_and_no_network_font(
    capture: Session,
) -> None:
    filled_form(capture, in_patient_entries("SYN-LOOK-1"))
    popup = capture.browser.open_popup(capture.tab)
    expect(popup.locator("#connection")).to_have_attribute("data-state", "ready")
    expect(popup.locator("#form-preview-area")).to_be_visible()

    assert popup.evaluate(
        "async () => { await document.fonts.ready; return document.fonts.check('14px Roboto'); }"
    )
    # Every @font-face, also in imported sheets, loads from the extension's own files.
    sources = popup.evaluate(FONT_SOURCES)
    assert len(sources) == 3 and all("http" not in source for source in sources), sources
    loaded = popup.evaluate("() => [...document.fonts].filter((face) => face.status === 'loaded')")
    assert loaded

    ours = popup.evaluate(STYLE_OF, "body")
    theirs = capture.tab.evaluate(STYLE_OF, "body")
    assert ours["family"].split(",")[0].strip("\"'") == "Roboto"
    assert theirs["family"].split(",")[0].strip("\"'") == "Roboto"
    header = popup.evaluate(STYLE_OF, "header.top")["background"]
    capture_header = capture.tab.evaluate(STYLE_OF, "header > div.main")["background"]
    assert header == capture_header == "rgb(44, 102, 147)"
    beside(capture, popup, "form")


def test_side_by_side_with_capture_in_the_popups_main_states(capture: Session) -> None:
    entries = in_patient_entries("SYN-LOOK-2")
    # Typed last: Capture's own check of the age would otherwise interrupt the other fields.
    filled_form(capture, [*entries, Entry(AGE, "text", "abc", "abc")])
    popup = capture.browser.open_popup(capture.tab)
    expect(popup.locator("#form-message")).to_contain_text("1 problem")
    popup.locator(f'tr[data-field="{AGE}"]').scroll_into_view_if_needed()
    beside(capture, popup, "problem")
    popup.close()

    filled_form(capture, entries)
    popup = capture.browser.open_popup(capture.tab)
    popup.click("#upload-form")
    expect(popup.locator("#form-result")).to_have_attribute("data-state", "created")
    popup.locator("#form-result").scroll_into_view_if_needed()
    beside(capture, popup, "created")

    batch = popup.locator("li.batch").first
    batch.locator(".batch-toggle").click()
    expect(batch.locator(".patient")).to_have_text("SYN-LOOK-2, admitted 2025-03-01")
    batch.scroll_into_view_if_needed()
    beside(capture, popup, "recent-uploads")
