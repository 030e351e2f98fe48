"""What the popup and the options page say as things change, in the real extension with the real
host: the newest problem decides the status line, a queued record is not called uploaded, seen
rejections stay seen after a browser restart, the install fix fits the clerk's system, and the
options page names units and programs and asks for no permission a token does not need."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import test_extension_upload
from extension_browser import screenshot
from playwright.sync_api import Page, expect
from test_extension_connection import closed_port_server, save_and_test
from test_extension_upload import fill

from dhims2.forms.synthetic import synthetic_rows, write_csv
from dhims2.sandbox import Sandbox

# The same fixtures as the upload tests: a sandbox and a signed-in Capture tab.
sandbox = test_extension_upload.sandbox
signed_in_browser = test_extension_upload.signed_in_browser


def test_after_an_outage_and_a_lost_session_the_line_says_sign_in_and_the_record_is_queued(
    signed_in_browser: Any, sandbox: Sandbox
) -> None:
    browser, tab = signed_in_browser()
    fill(tab)
    first = browser.open_popup(tab)  # the program's labels are kept for when DHIMS2 is away
    expect(first.locator("#upload-form")).to_be_enabled()
    first.close()
    sandbox.knobs.error_rate = 1.0  # DHIMS2 goes down
    popup = browser.open_popup(tab)
    connection = popup.locator("#connection")
    expect(connection).to_have_attribute("data-state", "offline", timeout=20_000)
    # It says the uploader keeps trying by itself, and so offers no button to press.
    expect(connection).to_contain_text("the uploader keeps trying")
    expect(connection.locator("#connection-fix button")).to_have_count(0)

    upload = popup.locator("#upload-form")
    expect(upload).to_be_enabled(timeout=20_000)
    upload.click()
    expect(upload).to_have_text("Queued on this computer", timeout=20_000)
    result = popup.locator("#form-result")
    expect(result).to_contain_text("Queued on this computer")
    expect(result).to_contain_text("DHIMS2 cannot be reached")
    screenshot(popup, "popup-queued")

    # DHIMS2 comes back, but the session is gone: the sender meets that last, and says so.
    sandbox.expire_sessions()
    sandbox.knobs.error_rate = 0.0
    expect(connection).to_have_attribute("data-state", "sign_in_needed", timeout=40_000)
    expect(connection).to_contain_text("Not signed in to DHIMS2")
    expect(connection).not_to_contain_text("cannot be reached")
    expect(upload).to_have_text("Queued on this computer")
    expect(result).to_contain_text("sign in to DHIMS2")
    assert sandbox.stored_events() == []


def rejected_sheet(tmp_path: Path) -> Path:
    rows = list(synthetic_rows(2, tag="R"))
    rows.append({**rows[0], "Age": "abc"})
    return write_csv(tmp_path / "ward-r.csv", rows)


def test_rejections_seen_in_the_popup_stay_off_the_badge_after_a_browser_restart(
    sandbox: Sandbox,
    install_host: Any,
    configure_host: Any,
    launch_extension: Any,
    tmp_path: Path,
) -> None:
    install_host()
    # A token, so the restart ends no session and the badge has only the rejection to show.
    configure_host(
        "--server", sandbox.base_url, "--auth", "token", "--token", sandbox.create_token()
    )
    browser = launch_extension()
    popup = browser.open_popup()
    popup.set_input_files("#sheet-file", str(rejected_sheet(tmp_path)))
    popup.get_by_role("button", name="Upload 2 valid rows").click()
    batch = popup.locator("li.batch").first
    expect(batch.locator(".batch-counts")).to_have_text("2 created · 1 rejected")
    # Seen in the open popup: nothing on the badge.
    assert browser.badge_text_becomes("") == ""
    popup.close()
    browser.close()

    reopened = launch_extension()
    # The worker lists the batches again by itself; the rejection it shows was seen before.
    reopened.worker.evaluate(
        """() => new Promise((resolve) => {
             const check = async () => {
               const { status } = await chrome.storage.session.get("status");
               if (status?.batches?.length) resolve(); else setTimeout(check, 100);
             };
             check();
           })"""
    )
    assert reopened.badge_text_becomes("1") == ""


def test_the_install_fix_names_the_command_of_the_clerks_system(
    sandbox: Sandbox, configure_host: Any, launch_extension: Any
) -> None:
    configure_host("--server", sandbox.base_url, "--auth", "token", "--token", "d2p_x")
    browser = launch_extension()
    popup = browser.open_popup()
    connection = popup.locator("#connection")
    expect(connection).to_have_attribute("data-state", "host_missing")
    # This Chromium runs on Linux: the popup says so and gives the Linux command.
    expect(connection).to_contain_text("On Linux, open a terminal")
    expect(connection.locator("code")).to_have_text("python3 install.py")
    # The same status on the other systems, described by the popup's own module.
    described = popup.evaluate(
        """async () => {
             const { describe } = await import("./lib/status.js");
             const missing = { state: "unavailable", problem: { kind: "missing", message: "" } };
             const status = (os) => ({ host: missing, os, batches: [], seenRejected: {} });
             const systems = ["win", "mac", "linux"];
             return Object.fromEntries(systems.map((os) => [os, describe(status(os)).fix]));
           }"""
    )
    assert described["win"]["command"] == "py install.py"
    assert described["win"]["text"].startswith("On Windows, open a Command Prompt")
    assert described["mac"]["command"] == "python3 install.py"
    assert described["mac"]["text"].startswith("On macOS, open Terminal")
    assert described["linux"]["command"] == "python3 install.py"
    # A connection the worker is re-making by itself says so, and offers no button to race it.
    reconnecting = popup.evaluate(
        """async () => {
             const { describe } = await import("./lib/status.js");
             const closed = { state: "unavailable", problem: { kind: "closed", message: "" } };
             return describe({ host: closed, os: "linux", batches: [], seenRejected: {} });
           }"""
    )
    assert reconnecting["retry"] is False and reconnecting["fix"] is None
    assert "by itself" in reconnecting["detail"]


def permission_requests(options: Page) -> list[Any]:
    return options.evaluate("() => window.permissionRequests")


def watch_permission_requests(options: Page) -> None:
    options.evaluate(
        """() => {
             window.permissionRequests = [];
             const request = chrome.permissions.request.bind(chrome.permissions);
             chrome.permissions.request = (asked) => {
               window.permissionRequests.push(asked);
               return request(asked);
             };
           }"""
    )


def test_options_name_units_and_programs_and_a_token_asks_for_no_permission(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    install_host()
    configure_host("--server", closed_port_server(), "--auth", "session")
    browser = launch_extension()
    options = browser.open_options()
    watch_permission_requests(options)
    save_and_test(options, sandbox.base_url, "token", sandbox.create_token())
    expect(options.locator("#result")).to_contain_text(f"as {sandbox.username}")
    assert permission_requests(options) == []

    program = options.get_by_label("Program", exact=True)
    org_unit = options.get_by_label("Organisation unit", exact=False)
    expect(program.locator("option")).to_have_text(["In-Patient Morbidity and Mortality"])
    expect(org_unit.locator("option:checked")).to_have_text("Volta Regional Hospital")
    # Opened again later, the page names them at once, from the saved settings.
    options.close()
    again = browser.open_options()
    expect(again.get_by_label("Program", exact=True).locator("option:checked")).to_have_text(
        "In-Patient Morbidity and Mortality"
    )
    expect(
        again.get_by_label("Organisation unit", exact=False).locator("option:checked")
    ).to_have_text("Volta Regional Hospital")
    screenshot(again, "options-named")

    # Session sign-in does need to read DHIMS2's cookie: that asks.
    watch_permission_requests(again)
    save_and_test(again, sandbox.base_url, "session")
    expect(again.locator("#result")).not_to_have_text("Saving…")
    assert len(permission_requests(again)) == 1


def test_the_popup_keeps_its_header_in_view_and_the_preview_in_the_page(
    signed_in_browser: Any,
) -> None:
    browser, tab = signed_in_browser()
    fill(tab)
    popup = browser.open_popup(tab)
    expect(popup.locator("#connection")).to_have_attribute("data-state", "ready")
    preview = popup.locator("#form-preview-area")
    expect(preview).to_be_visible()
    # The field preview is part of the page: no box of its own that scrolls.
    assert preview.evaluate("(node) => node.scrollHeight <= node.clientHeight")
    assert preview.evaluate("(node) => getComputedStyle(node).overflowY") == "visible"
    popup.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    # Past the first screen: a header kept only within the first 600px would be gone by now.
    popup.wait_for_function(
        "() => scrollY > 600 && scrollY + innerHeight >= document.body.scrollHeight - 1"
    )
    for sticky in ("header.top", "#connection"):
        box = popup.locator(sticky).bounding_box()
        assert box is not None and 0 <= box["y"] < 200, (sticky, box)
    screenshot(popup, "popup-scrolled")
