"""A workbook that would unpack to more than any register needs is refused before unpacking."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from dhims2.sheets import xlsx
from dhims2.sheets.source import InputError
from test_xlsx import write_workbook


def zip_bomb(path: Path, unpacked_bytes: int) -> Path:
    """A real xlsx with one extra member of zeros: a few hundred KB on disk."""
    write_workbook(path, {"Ward": [["Patient number"], ["VRH/1"]]})
    chunk = bytes(1024 * 1024)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("xl/media/filler.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(unpacked_bytes // len(chunk)):
            member.write(chunk)
    return path


def test_a_zip_bomb_is_refused_without_being_unpacked(tmp_path):
    bomb = zip_bomb(tmp_path / "ward.xlsx", xlsx.MAX_UNPACKED_BYTES + 2**20)
    assert bomb.stat().st_size < 5 * 2**20
    with pytest.raises(InputError, match="unpacks to 513 MiB"), xlsx.open_workbook(bomb):
        pass


def test_a_workbook_under_the_cap_is_read(tmp_path):
    path = write_workbook(tmp_path / "ward.xlsx", {"Ward": [["Patient number"], ["VRH/1"]]})
    with xlsx.open_workbook(path) as source:
        assert [record.fields for record in source.records] == [{"Patient number": "VRH/1"}]
