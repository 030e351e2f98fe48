"""Firefox ESR for real: the extension as a temporary add-on, the host over native messaging, the
real Capture app (v106, as DHIS2 2.41.9 ships it) filled by hand, uploaded from the popup."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from capture_app import CaptureForm, capture_build, in_patient_entries, sign_in, values_of
from extension_browser import ARTIFACTS, EXTENSION
from firefox import FIREFOX, Firefox
from test_extension_upload import metadata_with_option_codes

from conftest import browser_setup, configure_host_in, install_host_in
from dhims2.forms.metadata import PATIENT_NUMBER_UID
from dhims2.sandbox import Sandbox

VERSION = "v106.5.0"
REPORT_DATE = "2025-03-07"
ADDON_ID = json.loads((EXTENSION / "manifest.json").read_text("utf-8"))[
    "browser_specific_settings"
]["gecko"]["id"]
# Pinned so the test knows the popup's moz-extension:// address before installing.
ADDON_UUID = str(uuid.UUID("6d3c0f0e-3b1a-4f57-9f5e-2a1d7c9b8e41"))
PREFS = {
    "extensions.webextensions.uuids": json.dumps({ADDON_ID: ADDON_UUID}),
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "browser.aboutwelcome.enabled": False,
    "app.normandy.enabled": False,
    "network.captive-portal-service.enabled": False,
}


def test_a_form_filled_in_real_capture_is_uploaded_from_the_firefox_popup(tmp_path: Path) -> None:
    if not FIREFOX.exists():
        pytest.fail(
            f"{FIREFOX} is missing: apt-get update && apt-get install -y firefox-esr", pytrace=False
        )
    build = capture_build(VERSION)
    setup = browser_setup(tmp_path)
    entries = in_patient_entries("SYN-FIREFOX-1")
    with Sandbox(
        metadata=metadata_with_option_codes(), version="2.41.9", capture_app=build
    ) as sandbox:
        install_host_in(setup, "--browser", "firefox")  # into $HOME/.mozilla/native-messaging-hosts
        configure_host_in(setup, "--server", sandbox.base_url, "--auth", "session")
        firefox = Firefox(tmp_path / "firefox-profile", setup.env, PREFS, tmp_path / "firefox.log")
        try:
            firefox.install_extension(EXTENSION)
            tab = firefox.new_tab()
            sign_in(tab, sandbox.base_url, sandbox.username, sandbox.password)
            form = CaptureForm(tab, VERSION)
            form.open_new(sandbox.base_url)
            form.fill(entries, REPORT_DATE, "yyyy-mm-dd")

            popup_url = f"moz-extension://{ADDON_UUID}/popup.html"
            finder = firefox.open_extension_page(popup_url)
            tab_id = finder.wait_until(
                """async (url) =>
                  (await browser.tabs.query({})).find((tab) => tab.url?.startsWith(url))?.id""",
                f"{sandbox.base_url}/dhis-web-capture/",
            )
            popup = firefox.open_extension_page(f"{popup_url}?tab={tab_id}")
            popup.wait_for('#connection[data-state="ready"]')
            popup.wait_for('tr[data-field="fg8sMCaTOrK"] .value', text="Female")
            popup.screenshot(ARTIFACTS / "firefox-capture-popup.png")
            popup.click("#upload-form")
            popup.wait_for('#form-result[data-state="created"]')
        finally:
            firefox.close()
        [event] = [
            stored
            for stored in sandbox.stored_events()
            if values_of(stored).get(PATIENT_NUMBER_UID) == "SYN-FIREFOX-1"
        ]
    assert event["occurredAt"].startswith(REPORT_DATE)
    assert values_of(event) == {entry.uid: entry.stored for entry in entries}
