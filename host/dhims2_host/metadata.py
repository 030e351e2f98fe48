"""The bundled In-Patient program metadata (sandbox copy of DHIMS2's program)."""

import json
from functools import lru_cache
from importlib import resources
from typing import Any

PROGRAM_UID = "fFYTJRzD2qq"
STAGE_UID = "LR7JT7ZNg8E"
ORG_UNIT_UID = "duCDqCRlWG1"


@lru_cache(maxsize=1)
def bundled_metadata() -> dict[str, Any]:
    """Metadata the sandbox serves: system info, org units, users and programs."""
    text = resources.files("dhims2_host").joinpath("data/dhims2-inpatient-metadata.json").read_text(
        encoding="utf-8"
    )
    return json.loads(text)
