"""The extension's own defences in a real Chromium: only its own pages may ask the worker for
actions, the form memory keeps keyed digests only, and its pages' CSP holds."""

from __future__ import annotations

from typing import Any

from dhims2.sandbox import Sandbox

ASK_FROM_A_WEB_PAGE = """async (tabId) => {
  const [result] = await chrome.scripting.executeScript({
    target: { tabId },
    func: () =>
      chrome.runtime.sendMessage({ action: "host", type: "get_config" }).then(
        (reply) => ({ answered: reply !== undefined }),
        (error) => ({ answered: false, error: String(error) }),
      ),
  });
  return result.result;
}"""


def test_a_script_in_a_web_page_cannot_ask_the_worker_for_anything(
    sandbox: Sandbox, install_host: Any, launch_extension: Any
) -> None:
    install_host()
    browser = launch_extension()
    tab = browser.context.new_page()
    tab.goto(f"{sandbox.base_url}/dhis-web-login/")
    assert browser.worker.evaluate(ASK_FROM_A_WEB_PAGE, browser.tab_id(tab))["answered"] is False
    options = browser.open_options()
    own = options.evaluate(
        "() => chrome.runtime.sendMessage({ action: 'host', type: 'get_config' })"
    )
    assert own is not None and "ok" in own  # the extension's own page is answered


FINGERPRINTS = """async () => {
  const memory = await import("./lib/form-memory.js");
  const form = { program: "p", orgUnit: "o", occurredAt: "2025-03-01", values: { a: "VRH/1" } };
  await memory.rememberUpload(form, "EvEnT000001");
  const stored = await chrome.storage.local.get(null);
  const canonical = JSON.stringify(["p", "o", "2025-03-01", [["a", "VRH/1"]]]);
  const plain = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical));
  const hex = Array.from(new Uint8Array(plain), (b) => b.toString(16).padStart(2, "0")).join("");
  return {
    kept: Object.keys(stored.uploadedFormsKeyed ?? {}),
    plain: hex,
    keyLength: (stored.formMemoryKey ?? []).length,
    again: (await memory.earlierUpload(form))?.event ?? null,
  };
}"""


def test_form_fingerprints_are_keyed_with_a_key_of_this_install(launch_extension: Any) -> None:
    browser = launch_extension()
    found = browser.open_options().evaluate(FINGERPRINTS)
    assert found["keyLength"] == 32
    assert len(found["kept"]) == 1 and found["plain"] not in found["kept"]
    assert found["again"] == "EvEnT000001"


def test_extension_pages_ignore_a_base_element(launch_extension: Any) -> None:
    """base-uri 'none': markup slipped into a page cannot redirect its relative links."""
    browser = launch_extension()
    base_uri = browser.open_options().evaluate(
        """() => {
          const base = document.createElement("base");
          base.href = "https://attacker.example/";
          document.head.prepend(base);
          return document.baseURI;
        }"""
    )
    assert base_uri.startswith("chrome-extension://")
