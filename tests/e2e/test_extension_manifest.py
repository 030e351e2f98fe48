"""The extension's manifest: the permissions it asks for, and Mozilla's linter for Firefox."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from extension_browser import EXTENSION

# Pinned so that the linter's verdict changes only when this line does (.ci/run installs it).
WEB_EXT = "web-ext@10.7.0"
# Warnings that are understood and accepted:
# - the service worker is what Chromium runs; Firefox runs the same file from background.scripts;
# - Firefox 115 to 127 ignore optional_host_permissions (MV3 host permissions are optional there);
# - data_collection_permissions belongs in browser_specific_settings, which stays as released.
ACCEPTED_WARNINGS = {
    "BACKGROUND_SERVICE_WORKER_IGNORED",
    "KEY_FIREFOX_UNSUPPORTED_BY_MIN_VERSION",
    "KEY_FIREFOX_ANDROID_UNSUPPORTED_BY_MIN_VERSION",
    "MISSING_DATA_COLLECTION_PERMISSIONS",
}


def manifest() -> dict:
    return json.loads((EXTENSION / "manifest.json").read_text("utf-8"))


def test_the_extension_asks_only_for_what_it_uses() -> None:
    declared = manifest()
    assert sorted(declared["permissions"]) == sorted(
        ["nativeMessaging", "storage", "activeTab", "scripting", "cookies"]
    )
    assert declared["host_permissions"] == [
        "https://events.chimgh.org/*",
        "http://localhost/*",
        "http://127.0.0.1/*",
    ]
    assert set(declared["optional_host_permissions"]) == {"https://*/*", "http://*/*"}
    gecko = declared["browser_specific_settings"]["gecko"]
    assert gecko["id"] == "uploader@dhims2.org"
    # Before Firefox 121 the service_worker key stops the background script from starting.
    assert int(gecko["strict_min_version"].split(".")[0]) >= 121
    assert declared["key"]


def web_ext_command() -> list[str]:
    if shutil.which("web-ext"):
        return ["web-ext"]
    if shutil.which("npx"):
        return ["npx", "--yes", WEB_EXT]
    pytest.fail(f"neither web-ext nor npx is installed: npm install -g {WEB_EXT}", pytrace=False)


def test_web_ext_lint_finds_no_errors_for_firefox() -> None:
    linted = subprocess.run(
        [*web_ext_command(), "lint", "--source-dir", str(EXTENSION), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(linted.stdout)
    assert report["errors"] == [], report["errors"]
    unexpected = [w for w in report["warnings"] if w["code"] not in ACCEPTED_WARNINGS]
    assert unexpected == [], unexpected
    assert linted.returncode == 0
