"""The data-entry form of one program stage, derived from DHIS2 program metadata.

The metadata is the answer of
`/api/programs/{uid}?fields=id,name,programType,organisationUnits[id],programStages[id,name,
validationStrategy,programStageDataElements[compulsory,dataElement[id,code,name,formName,valueType,
optionSet[id,options[code,name]]]]]`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from dhims2.dhis2.periods import period_end

# DHIS2's ProgramStage.validationStrategy: when compulsory data elements are enforced.
VALIDATION_STRATEGIES = ("ON_COMPLETE", "ON_UPDATE_AND_INSERT")
_PARENTHESISED = re.compile(r"\s*\([^)]*\)")
_LABEL_SEPARATOR = " - "
_WORD_SEPARATORS = re.compile(r"[\W_]+")


def _has_non_default_category_combo(program: dict) -> bool:
    combo = program.get("categoryCombo")
    return isinstance(combo, dict) and combo.get("isDefault") is False


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form of a name, for matching what people type."""
    return " ".join(text.split()).casefold()


def closest_matches(value: str, candidates: Mapping[str, str], limit: int = 3) -> list[str]:
    """Labels whose normalised candidate text is close to `value`, best first.

    `candidates` maps normalised text to the label to show; several texts may share a label.
    Close means similar spelling (difflib) or containing all the typed words, so "malaria" finds
    "B54 - Unspecified malaria" and "admission date" finds "Date of admission" as well as "Malee"
    finds "Male".
    """
    wanted = normalise(value)
    if len(wanted) < 3:
        return []
    similar = difflib.get_close_matches(wanted, list(candidates), n=limit * 3, cutoff=0.6)
    wanted_words = set(_WORD_SEPARATORS.split(wanted)) - {""}
    containing = [
        text
        for text in candidates
        if wanted in text or wanted_words <= set(_WORD_SEPARATORS.split(text))
    ]
    labels: list[str] = []
    for text in similar + containing:
        label = candidates[text]
        if label not in labels:
            labels.append(label)
    return labels[:limit]


@dataclass(frozen=True)
class Option:
    code: str
    name: str


@dataclass(frozen=True)
class DataElement:
    uid: str
    code: str | None
    name: str
    form_name: str | None
    value_type: str
    compulsory: bool
    option_set: str | None
    options: tuple[Option, ...]

    @property
    def label(self) -> str:
        """What the Capture form shows for this field."""
        return self.form_name or self.name

    @cached_property
    def _option_candidates(self) -> dict[str, str]:
        candidates: dict[str, str] = {}
        for option in self.options:
            for text in (option.name, option.code, *option.name.split(_LABEL_SEPARATOR, 1)):
                candidates.setdefault(normalise(text), option.name)
        return candidates

    def suggest_options(self, value: str, limit: int = 3) -> list[str]:
        """Names of the options closest to a value that is not one of them."""
        return closest_matches(value, self._option_candidates, limit)


@dataclass(frozen=True)
class EntryExpiry:
    """DHIS2 closes data entry for a period `days` days after the period ends: the program's
    expiryDays and expiryPeriodType (DateValidator.validateExpiryPeriodType, E1047)."""

    period_type: str
    days: int

    def closes_on(self, occurred: date) -> date | None:
        """The first day on which an event that occurred on `occurred` can no longer be entered
        (the period's last day plus `days`, and DHIS2's extra day for the final 24 hours), or
        None for a period type this program does not model."""
        end = period_end(self.period_type, occurred)
        return None if end is None else end + timedelta(days=self.days + 1)


@dataclass(frozen=True)
class ProgramForm:
    program_uid: str
    program_name: str
    stage_uid: str
    stage_name: str
    org_unit_ids: frozenset[str]
    data_elements: tuple[DataElement, ...]
    validation_strategy: str = "ON_COMPLETE"
    # The program has a non-default category combo: every event needs an attribute option
    # combo (DataRelationsValidator, E1055).
    needs_attribute_option_combo: bool = False
    # The expiry that applies to the signed-in user: None when the program has none or the
    # user's authorities lift it (see without_entry_expiry).
    entry_expiry: EntryExpiry | None = None

    @cached_property
    def _by_uid(self) -> dict[str, DataElement]:
        return {element.uid: element for element in self.data_elements}

    @cached_property
    def _by_column(self) -> dict[str, DataElement]:
        by_column: dict[str, DataElement] = {}
        # Later kinds of name win a clash, so a header that is one element's UID and another's
        # name means the UID.
        for kind in ("form_name", "name", "code", "uid"):
            for element in self.data_elements:
                name = getattr(element, kind)
                if name:
                    by_column[normalise(name)] = element
        return by_column

    @classmethod
    def from_metadata(cls, program: dict, stage_uid: str | None = None) -> ProgramForm:
        """The form of one stage (the only one if `stage_uid` is None) of an event program.

        Raises ValueError naming the missing or malformed part of the metadata.
        """
        _require_object(program, "the program metadata")
        program_uid = _require_text(program, "id", "the program metadata")
        where = f"program {program_uid}"
        if program.get("programType", "WITHOUT_REGISTRATION") != "WITHOUT_REGISTRATION":
            raise ValueError(f"{where} is a tracker program; only event programs are supported")
        org_units = _require_list(program, "organisationUnits", where)
        stage = _select_stage(_require_list(program, "programStages", where), stage_uid, where)
        stage_id = _require_text(stage, "id", f"a stage of {where}")
        stage_where = f"stage {stage_id} of {where}"
        strategy = stage.get("validationStrategy") or "ON_COMPLETE"
        if strategy not in VALIDATION_STRATEGIES:
            raise ValueError(f"{stage_where} has an unknown validationStrategy {strategy!r}")
        stage_elements = _require_list(stage, "programStageDataElements", stage_where)
        return cls(
            program_uid=program_uid,
            program_name=str(program.get("name") or program_uid),
            stage_uid=stage_id,
            stage_name=str(stage.get("name") or stage_id),
            org_unit_ids=frozenset(
                _require_text(
                    _require_object(unit, f"organisationUnits[{index}] of {where}"), "id", where
                )
                for index, unit in enumerate(org_units)
            ),
            data_elements=tuple(
                _data_element(entry, f"programStageDataElements[{index}] of {stage_where}")
                for index, entry in enumerate(stage_elements)
            ),
            validation_strategy=strategy,
            needs_attribute_option_combo=_has_non_default_category_combo(program),
            entry_expiry=_entry_expiry(program, where),
        )

    def without_entry_expiry(self) -> ProgramForm:
        """The form for a user DHIS2 lets enter data in expired periods (F_EDIT_EXPIRED or ALL)."""
        return dataclasses.replace(self, entry_expiry=None)

    def data_element(self, uid: str) -> DataElement | None:
        return self._by_uid.get(uid)

    def match_column(self, header: str) -> DataElement | None:
        """The data element a column header names: its UID, code, name or form name."""
        return self._by_column.get(normalise(header))

    @cached_property
    def _label_candidates(self) -> dict[str, str]:
        candidates: dict[str, str] = {}
        for element in self.data_elements:
            names = (element.label, element.name, element.code or "", element.uid)
            for text in (*names, _PARENTHESISED.sub("", element.label)):
                if text:
                    candidates.setdefault(normalise(text.replace("_", " ")), element.label)
        return candidates

    def suggest_labels(self, header: str, limit: int = 3) -> list[str]:
        """Labels of the data elements an unknown column header most likely means."""
        return closest_matches(header.replace("_", " "), self._label_candidates, limit)

    def to_json(self) -> dict[str, Any]:
        """A compact description of the form for the browser popup."""
        return {
            "program": self.program_uid,
            "programName": self.program_name,
            "programStage": self.stage_uid,
            "stageName": self.stage_name,
            "dataElements": [
                {
                    "uid": element.uid,
                    "label": element.label,
                    "valueType": element.value_type,
                    "compulsory": element.compulsory,
                    "options": [{"code": o.code, "name": o.name} for o in element.options],
                }
                for element in self.data_elements
            ],
        }


def _entry_expiry(program: dict, where: str) -> EntryExpiry | None:
    days = program.get("expiryDays", 0)
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        raise ValueError(f"{where} has expiryDays {days!r}, not a whole number of days")
    period_type = program.get("expiryPeriodType")
    if not days or not period_type:
        return None
    if not isinstance(period_type, str):
        # Program.getExpiryPeriodType is written as the type's name (JacksonPeriodTypeSerializer).
        raise ValueError(f"{where} has an expiryPeriodType that is not a period type name")
    return EntryExpiry(period_type, days)


def _require_object(value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object, not {type(value).__name__}")
    return value


def _require_text(container: dict, key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} has no {key!r}")
    return value


def _require_list(container: dict, key: str, where: str) -> list:
    value = container.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where} has no {key!r} list")
    return value


def _select_stage(stages: list, stage_uid: str | None, where: str) -> dict:
    for index, stage in enumerate(stages):
        _require_object(stage, f"programStages[{index}] of {where}")
    if stage_uid is None:
        if len(stages) != 1:
            ids = ", ".join(str(stage.get("id")) for stage in stages) or "none"
            raise ValueError(f"{where} has {len(stages)} stages ({ids}); say which one to use")
        return stages[0]
    for stage in stages:
        if stage.get("id") == stage_uid:
            return stage
    raise ValueError(f"{where} has no stage {stage_uid}")


def _data_element(raw_entry: object, where: str) -> DataElement:
    entry = _require_object(raw_entry, where)
    element = _require_object(entry.get("dataElement"), f"the dataElement of {where}")
    uid = _require_text(element, "id", f"the dataElement of {where}")
    where = f"data element {uid}"
    raw_option_set = element.get("optionSet")
    option_set = None
    options: tuple[Option, ...] = ()
    if raw_option_set is not None:
        option_set = _require_object(raw_option_set, f"the optionSet of {where}")
        options = tuple(
            _option(option, f"option {index} of {where}")
            for index, option in enumerate(_require_list(option_set, "options", where))
        )
    return DataElement(
        uid=uid,
        code=element.get("code") or None,
        name=_require_text(element, "name", where),
        form_name=element.get("formName") or None,
        value_type=_require_text(element, "valueType", where),
        compulsory=entry.get("compulsory") is True,
        option_set=option_set.get("id") if option_set else None,
        options=options,
    )


def _option(raw_option: object, where: str) -> Option:
    option = _require_object(raw_option, where)
    code = _require_text(option, "code", where)
    return Option(code=code, name=str(option.get("name") or code))
