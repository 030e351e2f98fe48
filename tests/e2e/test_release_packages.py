"""A release build (`python -m dhims2.setup.package`): the wheel, the sdist, and the extension
packaged for Chromium and for Firefox, built into a temporary folder and opened."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from extension_browser import EXTENSION
from test_extension_manifest import ACCEPTED_WARNINGS, web_ext_command

CHECKOUT = EXTENSION.parent


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [sys.executable, "-m", "dhims2.setup.package", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    made = [Path(line) for line in built.stdout.split()]
    assert sorted(path.parent for path in made) == [out] * 4
    by_kind = {
        "wheel": [p for p in made if p.suffix == ".whl"],
        "sdist": [p for p in made if p.name.endswith(".tar.gz")],
        "chromium": [p for p in made if p.name.endswith("-chromium.zip")],
        "firefox": [p for p in made if p.suffix == ".xpi"],
    }
    assert all(len(paths) == 1 for paths in by_kind.values()), made
    return {kind: paths[0] for kind, paths in by_kind.items()}


def extension_files() -> set[str]:
    return {p.relative_to(EXTENSION).as_posix() for p in EXTENSION.rglob("*") if p.is_file()}


def test_the_wheel_holds_the_package_its_data_and_an_spdx_licence(release):
    with zipfile.ZipFile(release["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata_name = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = wheel.read(metadata_name).decode()
    assert {"dhims2/cli/main.py", "dhims2/data/dhims2-inpatient-metadata.json"} <= names
    assert any(name.endswith("browser/schemas/messages.json") for name in names)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "License-Expression: MIT" in metadata
    # The framing reference library is for the tests only; the host runs without it.
    runtime = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not any("nativemessaging" in line and "extra ==" not in line for line in runtime)


def test_the_sdist_carries_the_installer_extension_manifests_and_docs(release):
    with tarfile.open(release["sdist"]) as sdist:
        root, *_ = sdist.getnames()
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in ("install.py", "LICENSE", "extension/manifest.json", "manifest/firefox.json"):
        assert needed in names, (needed, root)
    assert {"manifest/chromium.json", "docs/ARCHITECTURE.md", "docs/PACKAGING.md"} <= names
    assert {f"extension/{name}" for name in extension_files()} <= names


def test_the_chromium_zip_runs_a_service_worker_and_has_every_extension_file(release):
    with zipfile.ZipFile(release["chromium"]) as package:
        assert set(package.namelist()) == extension_files()
        manifest = json.loads(package.read("manifest.json"))
    assert manifest["background"] == {"service_worker": "background.js", "type": "module"}
    assert "browser_specific_settings" not in manifest
    assert manifest["key"]  # pins the extension ID the native host manifest allows


def test_the_firefox_package_passes_mozillas_linter_without_the_chromium_keys(release, tmp_path):
    with zipfile.ZipFile(release["firefox"]) as package:
        assert set(package.namelist()) == extension_files()
        manifest = json.loads(package.read("manifest.json"))
        package.extractall(tmp_path / "xpi")
    assert manifest["background"] == {"scripts": ["background.js"], "type": "module"}
    assert manifest["browser_specific_settings"]["gecko"]["id"] == "uploader@dhims2.org"
    assert "key" not in manifest
    linted = subprocess.run(
        [*web_ext_command(), "lint", "--source-dir", str(tmp_path / "xpi"), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(linted.stdout)
    assert report["errors"] == [], report["errors"]
    warnings = {warning["code"] for warning in report["warnings"]}
    assert "BACKGROUND_SERVICE_WORKER_IGNORED" not in warnings
    assert warnings <= ACCEPTED_WARNINGS
