"""Every record of a file, read the way the product reads it (`open_records`), for tests."""

from __future__ import annotations

from pathlib import Path

from dhims2.forms.records import SourceRecord
from dhims2.sheets.reading import open_records


def read_records(path: Path, *, sheet: str | None = None) -> list[SourceRecord]:
    with open_records(path, sheet=sheet) as source:
        return list(source.records)
