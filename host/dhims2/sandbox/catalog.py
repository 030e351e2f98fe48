"""The served metadata, indexed: programs, stages, data elements, org units and users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DataElementRule:
    uid: str
    value_type: str
    option_set_uid: str | None
    option_codes: frozenset[str] | None  # None when the data element has no option set


@dataclass(frozen=True)
class StageRules:
    uid: str
    program_uid: str
    data_elements: frozenset[str]
    compulsory: tuple[str, ...]
    validation_strategy: str  # ON_COMPLETE (DHIS2's default) or ON_UPDATE_AND_INSERT
    block_entry_form: bool = False  # no updates to a completed event (E1326)


def user_authorities(user: dict[str, Any]) -> list[str]:
    """The user's authorities as the metadata gives them; a user given none may do everything
    the sandbox can do (ALL), a simplification of DHIS2's user roles."""
    return list(user.get("authorities", ["ALL"]))


class Catalog:
    def __init__(self, metadata: dict[str, Any]) -> None:
        self.system: dict[str, Any] = metadata.get("system", {})
        self.org_units: dict[str, dict[str, Any]] = {
            unit["id"]: unit for unit in metadata["organisationUnits"]
        }
        self.programs: dict[str, dict[str, Any]] = {
            program["id"]: self._with_org_units_resolved(program)
            for program in metadata["programs"]
        }
        self.users: dict[str, dict[str, Any]] = {
            user["username"]: user for user in metadata["users"]
        }
        self.program_org_units: dict[str, frozenset[str]] = {
            uid: frozenset(unit["id"] for unit in program.get("organisationUnits", []))
            for uid, program in self.programs.items()
        }
        self.stages: dict[str, StageRules] = {}
        self.data_elements: dict[str, DataElementRule] = {}
        for program in self.programs.values():
            for stage in program.get("programStages", []):
                self._index_stage(program["id"], stage)

    def _with_org_units_resolved(self, program: dict[str, Any]) -> dict[str, Any]:
        """A program's org units as full objects, so `organisationUnits[id,name,path]` works."""
        units = [
            {**self.org_units.get(unit["id"], {}), **unit}
            for unit in program.get("organisationUnits", [])
        ]
        return {**program, "organisationUnits": units}

    def _index_stage(self, program_uid: str, stage: dict[str, Any]) -> None:
        members = []
        compulsory = []
        for stage_element in stage.get("programStageDataElements", []):
            element = stage_element["dataElement"]
            option_set = element.get("optionSet")
            self.data_elements[element["id"]] = DataElementRule(
                uid=element["id"],
                value_type=element["valueType"],
                option_set_uid=option_set["id"] if option_set else None,
                option_codes=(
                    frozenset(option["code"] for option in option_set.get("options", []))
                    if option_set
                    else None
                ),
            )
            members.append(element["id"])
            if stage_element.get("compulsory"):
                compulsory.append(element["id"])
        self.stages[stage["id"]] = StageRules(
            uid=stage["id"],
            program_uid=program_uid,
            data_elements=frozenset(members),
            compulsory=tuple(compulsory),
            validation_strategy=stage.get("validationStrategy", "ON_COMPLETE"),
            block_entry_form=bool(stage.get("blockEntryForm", False)),
        )

    def event_program_stage(self, program_uid: str) -> str | None:
        """The single stage of a program without registration, which DHIS2 fills in when omitted."""
        program = self.programs.get(program_uid)
        if program is None or program.get("programType") != "WITHOUT_REGISTRATION":
            return None
        stages = program.get("programStages", [])
        return stages[0]["id"] if stages else None

    def is_event_program(self, program_uid: str) -> bool:
        program = self.programs.get(program_uid)
        return program is not None and program.get("programType") == "WITHOUT_REGISTRATION"

    def in_capture_scope(self, user: dict[str, Any], org_unit_uid: str) -> bool:
        """True when the org unit is one of the user's capture org units or below one of them."""
        unit = self.org_units.get(org_unit_uid)
        if unit is None:
            return False
        ancestry = set(unit.get("path", "").split("/")) | {org_unit_uid}
        return any(scope["id"] in ancestry for scope in user.get("organisationUnits", []))
