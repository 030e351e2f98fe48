"""The connection line of the popup and the options page, in the real extension: every state a
clerk can meet says what is wrong and gives the fix, and applying the fix is enough."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from extension_browser import screenshot, sign_in
from playwright.sync_api import Page, expect

from dhims2.forms.metadata import ORG_UNIT_UID
from dhims2.sandbox import Sandbox


def closed_port_server() -> str:
    """A loopback address where nothing listens: DHIMS2 'unreachable', at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/events/"


def saved_config(setup: Any) -> dict[str, Any]:
    return json.loads((Path(setup.env["DHIMS2_CONFIG_DIR"]) / "config.json").read_text("utf-8"))


def save_and_test(options: Page, server: str, auth: str, token: str = "") -> None:
    options.get_by_label("DHIMS2 server address").fill(server)
    options.locator(f'input[name="auth"][value="{auth}"]').check()
    if token:
        options.get_by_label("Personal access token", exact=True).fill(token)
    options.get_by_role("button", name="Save and test connection").click()


def test_without_the_host_the_popup_gives_the_install_command_and_try_again_connects(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    configure_host(
        "--server", sandbox.base_url, "--auth", "token", "--token", sandbox.create_token()
    )
    browser = launch_extension()
    popup = browser.open_popup()
    connection = popup.locator("#connection")
    expect(connection).to_have_attribute("data-state", "host_missing")
    expect(connection).to_contain_text("not installed")
    expect(connection.locator("code")).to_have_text("python3 install.py")
    expect(connection).to_contain_text("Specified native messaging host not found.")
    assert browser.badge_text_becomes("!") == "!"
    screenshot(popup, "popup-host-missing")

    install_host()
    popup.get_by_role("button", name="Try again").click()
    expect(connection).to_have_attribute("data-state", "ready")
    expect(connection).to_contain_text(f"Connected to DHIMS2 as {sandbox.username}")
    assert browser.badge_text_becomes("") == ""


def test_not_signed_in_the_popup_links_to_the_login_and_goes_on_once_signed_in(
    sandbox: Sandbox, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    install_host()
    configure_host("--server", sandbox.base_url, "--auth", "session")
    browser = launch_extension()
    popup = browser.open_popup()
    connection = popup.locator("#connection")
    expect(connection).to_have_attribute("data-state", "sign_in_needed")
    sign_in_link = connection.get_by_role("link", name="Sign in to DHIMS2")
    expect(sign_in_link).to_have_attribute("href", f"{sandbox.base_url}/dhis-web-login/")
    screenshot(popup, "popup-not-signed-in")

    with browser.context.expect_page() as login_tab:
        sign_in_link.click()
    login = login_tab.value
    login.fill("#j_username", sandbox.username)
    login.fill("#j_password", sandbox.password)
    login.click("#submit")
    # The worker sees the new DHIS2 session cookie and hands it to the host by itself.
    expect(connection).to_have_attribute("data-state", "ready")
    expect(connection).to_contain_text(f"as {sandbox.username}")


def test_an_unreachable_server_is_explained_and_the_options_page_fixes_it(
    sandbox: Sandbox, setup: Any, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    install_host()
    configure_host("--server", closed_port_server(), "--auth", "session")
    browser = launch_extension()
    sign_in(browser.context.new_page(), sandbox)
    popup = browser.open_popup()
    connection = popup.locator("#connection")
    # The host tries a few times, over about five seconds, before it calls DHIMS2 unreachable.
    expect(connection).to_have_attribute("data-state", "offline", timeout=15_000)
    expect(connection).to_contain_text("DHIMS2 cannot be reached")
    expect(connection).to_contain_text("Records wait")
    screenshot(popup, "popup-offline")

    options = browser.open_options()
    save_and_test(options, sandbox.base_url, "session")
    result = options.locator("#result")
    expect(result).to_contain_text(f"Connected to DHIS2 2.41.3 as {sandbox.username}")
    # The defaults are chosen from what the server says.
    expect(options.get_by_label("Program", exact=True).locator("option")).to_have_text(
        ["In-Patient Morbidity and Mortality"]
    )
    expect(options.get_by_label("Organisation unit", exact=False)).to_have_value(ORG_UNIT_UID)
    screenshot(options, "options-connected")
    assert saved_config(setup)["server"] == f"{sandbox.base_url}/"
    expect(connection).to_have_attribute("data-state", "ready")


def test_the_options_page_explains_bad_addresses_and_keeps_a_token_out_of_sight(
    sandbox: Sandbox, setup: Any, install_host: Any, configure_host: Any, launch_extension: Any
) -> None:
    install_host()
    configure_host("--server", closed_port_server())
    browser = launch_extension()
    options = browser.open_options()
    save_and_test(options, "events.chimgh.org", "session")
    expect(options.locator("#server-error")).to_contain_text("Type the full address")
    expect(options.get_by_label("DHIMS2 server address")).to_have_attribute("aria-invalid", "true")

    save_and_test(options, f"{sandbox.base_url}/?page=1", "session")
    expect(options.locator("#result")).to_contain_text("must not contain a query")
    expect(options.get_by_label("DHIMS2 server address")).to_have_attribute("aria-invalid", "true")

    token = sandbox.create_token()
    save_and_test(options, sandbox.base_url, "token", token)
    expect(options.locator("#result")).to_contain_text(f"as {sandbox.username}")
    expect(options.get_by_label("Personal access token", exact=True)).to_have_value("")
    expect(options.locator("#token-state")).to_contain_text("A token is saved")
    assert token not in options.content()
    assert saved_config(setup)["auth"] == "token"
