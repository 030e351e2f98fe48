"""Made-up In-Patient records for tests, benchmarks and the demo: no real patient, ever."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from dhims2.forms.metadata import PROGRAM_UID, bundled_metadata
from dhims2.forms.program import DataElement, ProgramForm

PLACES = ("Ho", "Hohoe", "Keta", "Aflao", "Kpando", "Sogakope", "Anloga", "Dzodze")


def in_patient_form() -> ProgramForm:
    program = next(p for p in bundled_metadata()["programs"] if p["id"] == PROGRAM_UID)
    return ProgramForm.from_metadata(program)


def synthetic_rows(count: int, *, seed: int = 0, tag: str = "T") -> Iterator[dict[str, str]]:
    """`count` valid records keyed by form label plus `occurredAt`, each a different patient."""
    rng = random.Random(seed)
    form = in_patient_form()
    for index in range(count):
        admitted = date(2025, 1, 1) + timedelta(days=rng.randrange(300))
        discharged = admitted + timedelta(days=rng.randrange(1, 20))
        row = {"occurredAt": admitted.isoformat()}
        for element in form.data_elements:
            row[element.label] = _value(element, rng, index, tag, admitted, discharged)
        yield row


def _value(
    element: DataElement, rng: random.Random, index: int, tag: str, admitted: date, discharged: date
) -> str:
    if element.code == "PATIENT_NUMBER":
        return f"VRH/{tag}/{index:06d}"
    if element.code == "ADDRESS":
        return rng.choice(PLACES)
    if element.code == "AGE":
        return str(rng.randrange(1, 95))
    if element.code and element.code.startswith("DATE_OF_ADMISSION"):
        return admitted.isoformat()
    if element.code and element.code.startswith("DATE_OF_DISCHARGE"):
        return discharged.isoformat()
    if element.options:
        return rng.choice(element.options).name
    if element.value_type == "BOOLEAN":
        return rng.choice(("Yes", "No"))
    if element.value_type == "NUMBER":
        return str(rng.randrange(50, 5000))
    return f"synthetic {index}"


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
