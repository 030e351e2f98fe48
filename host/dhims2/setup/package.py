"""A release build from a checkout: the Python wheel and sdist, and the extension packaged for
Chromium (a .zip for the Chrome Web Store or a policy install) and for Firefox (an .xpi).

    python -m dhims2.setup.package [--out dist]

One source folder, `extension/`, serves both browsers; each package gets a manifest with only
the keys its browser reads, so neither store warns about keys meant for the other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[3]
EXTENSION_FOLDER = "extension"
MANIFEST_NAME = "manifest.json"
# Files in extension/ that belong to neither package (editor and OS litter).
IGNORED_NAMES = (".DS_Store", "Thumbs.db")
# A fixed timestamp (the zip format's earliest) so that the same sources give the same bytes.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def chromium_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Chromium runs the background as a service worker and has no use for Gecko settings."""
    adapted = {key: value for key, value in manifest.items() if key != "browser_specific_settings"}
    background = dict(adapted.get("background", {}))
    background.pop("scripts", None)
    adapted["background"] = background
    return adapted


def firefox_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """Firefox runs `background.scripts` as an event page; `key` pins the extension ID in
    Chromium only (Firefox takes it from browser_specific_settings.gecko.id)."""
    adapted = {key: value for key, value in manifest.items() if key != "key"}
    background = dict(adapted.get("background", {}))
    background.pop("service_worker", None)
    adapted["background"] = background
    return adapted


def package_extension(
    source: Path, out_path: Path, adapt: Callable[[dict[str, Any]], dict[str, Any]]
) -> Path:
    """Zips the extension folder `source` into `out_path`, its manifest rewritten by `adapt`."""
    manifest = json.loads((source / MANIFEST_NAME).read_text(encoding="utf-8"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        _add(archive, MANIFEST_NAME, json.dumps(adapt(manifest), indent=2).encode("utf-8"))
        for path in sorted(source.rglob("*")):
            name = path.relative_to(source).as_posix()
            if path.is_file() and name != MANIFEST_NAME and path.name not in IGNORED_NAMES:
                _add(archive, name, path.read_bytes())
    return out_path


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_python(checkout: Path, out_dir: Path) -> list[Path]:
    """The wheel and the sdist, built by PyPA `build` in an isolated environment."""
    before = set(out_dir.glob("*")) if out_dir.exists() else set()
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out_dir)],
        cwd=checkout,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return sorted(set(out_dir.glob("*")) - before)


def build_release(checkout: Path, out_dir: Path) -> list[Path]:
    """Everything a release ships, written to `out_dir`; returns the files made."""
    version = json.loads((checkout / EXTENSION_FOLDER / MANIFEST_NAME).read_text())["version"]
    source = checkout / EXTENSION_FOLDER
    made = build_python(checkout, out_dir)
    made.append(
        package_extension(
            source, out_dir / f"dhims2-uploader-{version}-chromium.zip", chromium_manifest
        )
    )
    made.append(
        package_extension(
            source, out_dir / f"dhims2-uploader-{version}-firefox.xpi", firefox_manifest
        )
    )
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dhims2.setup.package",
        description="Build the wheel, the sdist and the Chromium and Firefox extension packages.",
    )
    parser.add_argument("--out", type=Path, default=CHECKOUT / "dist", help="output folder")
    args = parser.parse_args(argv)
    if not (CHECKOUT / EXTENSION_FOLDER / MANIFEST_NAME).is_file():
        print(f"package: {CHECKOUT} is not a checkout with {EXTENSION_FOLDER}/", file=sys.stderr)
        return 2
    try:
        made = build_release(CHECKOUT, args.out)
    except subprocess.CalledProcessError as error:
        print(f"package: the Python build failed (exit {error.returncode})", file=sys.stderr)
        return 1
    for path in made:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
