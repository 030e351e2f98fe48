"""A field of the real Capture form that the reader cannot read is named in the popup, and the
form is not uploaded without it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from capture_app import CaptureForm, PlaywrightClerk, block_cdn, capture_build, sign_in
from playwright.sync_api import expect
from test_extension_upload import metadata_with_option_codes

from dhims2.forms.metadata import PATIENT_NUMBER_UID
from dhims2.sandbox import Sandbox

VERSION = "v106.5.0"
LOCATION = "HomeLocat01"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    metadata = copy.deepcopy(metadata_with_option_codes())
    stage = metadata["programs"][0]["programStages"][0]
    # Capture shows a coordinate as two boxes, latitude and longitude.
    stage["programStageDataElements"].append(
        {
            "compulsory": False,
            "dataElement": {"id": LOCATION, "name": "Home location", "valueType": "COORDINATE"},
        }
    )
    with Sandbox(metadata=metadata, capture_app=capture_build(VERSION)) as running:
        yield running


def test_a_field_the_reader_cannot_read_is_named_and_stops_the_upload(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    install_host()
    configure_host("--server", sandbox.base_url, "--auth", "session")
    browser = launch_extension()
    block_cdn(browser.context)
    tab = browser.context.new_page()
    clerk = PlaywrightClerk(tab)
    sign_in(clerk, sandbox.base_url, sandbox.username, sandbox.password)
    form = CaptureForm(clerk, VERSION)
    form.open_new(sandbox.base_url)
    form.type_text(PATIENT_NUMBER_UID, "SYN-UNREADABLE-1")

    popup = browser.open_popup(tab)
    expect(popup.locator("#form-message")).to_contain_text("cannot read Home location")
    expect(popup.locator(f'tr[data-field="{LOCATION}"] .field-error')).to_contain_text(
        "Could not be read"
    )
    # What it could read is still shown.
    expect(popup.locator(f'tr[data-field="{PATIENT_NUMBER_UID}"] .value')).to_have_text(
        "SYN-UNREADABLE-1"
    )
    expect(popup.locator("#upload-form")).to_be_disabled()
