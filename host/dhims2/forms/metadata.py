"""The bundled In-Patient program metadata (sandbox copy of DHIMS2's program)."""

import json
from functools import lru_cache
from importlib import resources
from typing import Any

PROGRAM_UID = "fFYTJRzD2qq"
STAGE_UID = "LR7JT7ZNg8E"
ORG_UNIT_UID = "duCDqCRlWG1"
PATIENT_NUMBER_UID = "h0Ef6ykTpNB"
ADMISSION_DATE_UID = "HsMaBh3wKed"

# A patient's admission is the natural key of an In-Patient event: the same patient number and
# admission date again (in the same file or a later one) is the same event, updated, never a second.
IDENTITY_DATA_ELEMENTS: dict[str, tuple[str, ...]] = {
    PROGRAM_UID: (PATIENT_NUMBER_UID, ADMISSION_DATE_UID),
}

# DHIMS2 dates an In-Patient event by the admission; a record without its own report date takes
# that, never today's date.
REPORT_DATE_DATA_ELEMENT: dict[str, str] = {PROGRAM_UID: ADMISSION_DATE_UID}


@lru_cache(maxsize=1)
def bundled_metadata() -> dict[str, Any]:
    """Metadata the sandbox serves: system info, org units, users and programs."""
    text = (
        resources.files("dhims2")
        .joinpath("data/dhims2-inpatient-metadata.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)
