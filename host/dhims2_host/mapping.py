"""Source records -> DHIS2 event payloads: matching columns to the form and coercing values.

Values are coerced to what DHIS2 stores, always as strings: option names to option codes, yes/no
to true/false, day-first dates to ISO dates, numbers without separators. A value that cannot be
coerced is reported in the user's own terms (their column, their spelling); the payload is then
checked by EventValidator, so a prepared record carries both kinds of fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from dhims2_host.program import DataElement, ProgramForm, closest_matches, normalise
from dhims2_host.records import EVENT_PROPERTY_NAMES, RecordError, SourceRecord
from dhims2_host.schema import (
    PROPERTY_LABELS,
    STATUSES,
    EventValidator,
    option_error,
    unknown_field_error,
    value_type_error,
)

__all__ = ["Mapper", "PreparedRecord", "RecordDefaults", "RecordError"]

# Cell texts meaning "no value", unless the field has an option of that name ("None" is an
# Education option).
PLACEHOLDERS = frozenset({"na", "n/a", "n.a.", "-", "--", "nil", "none", "null"})
_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0"})
_INTEGER_LIMITS: dict[str, tuple[int | None, int | None]] = {
    "INTEGER": (None, None),
    "INTEGER_POSITIVE": (1, None),
    "INTEGER_ZERO_OR_POSITIVE": (0, None),
    "INTEGER_NEGATIVE": (None, -1),
    "PERCENTAGE": (0, 100),
}
_SPACES = re.compile(r"[\s\u00a0\u202f]+")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:T00:00(?::00(?:\.0+)?)?)?$")
_DAY_FIRST_DATE = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")
_SHORT_YEAR_DATE = re.compile(r"^\d{1,2}([-/.])\d{1,2}\1\d{2}$")
_SPREADSHEET_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
_DATE_AND_TIME = re.compile(
    r"^(?P<date>\S+)[T ](?P<hours>\d{1,2}):(?P<minutes>\d{2})"
    r"(?::(?P<seconds>\d{2})(?P<fraction>\.\d{1,9})?)?(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_MONTH_NAMES = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)


@dataclass(frozen=True)
class RecordDefaults:
    """What a record gets when its source does not say.

    `report_date_from` names the data element (uid) whose date becomes the report date
    (occurredAt) of a record without one; DHIMS2 reports an in-patient on the date of admission.
    A record with neither gets E1031, never today's date.
    """

    org_unit: str | None = None
    status: str = "COMPLETED"
    report_date_from: str | None = None


@dataclass
class PreparedRecord:
    row: int
    event: dict
    fields: dict[str, str]
    errors: list[RecordError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Rejected(Exception):
    """A value that cannot be coerced; carries the error to report."""

    def __init__(self, error: RecordError):
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True)
class _Cell:
    column: str  # as the user knows it
    raw: object


class Mapper:
    """Prepares source records for one form; build it once and reuse it for every record."""

    def __init__(
        self,
        form: ProgramForm,
        defaults: RecordDefaults = RecordDefaults(),
        capture_org_units: frozenset[str] | None = None,
    ):
        self._form = form
        self._defaults = defaults
        self._validator = EventValidator(form, capture_org_units)
        self._options = {element.uid: _OptionIndex(element) for element in form.data_elements}
        self._targets: dict[str, str | None] = {}

    def check_columns(self, headers: Iterable[str]) -> list[RecordError]:
        """Faults of a header row: columns that are no field of the form (with the labels they
        most likely mean) and columns that hold the same field as an earlier one."""
        errors: list[RecordError] = []
        first_column: dict[str, str] = {}
        for header in headers:
            target = self._target(header)
            if target is None:
                errors.append(self._unknown_column(header))
            elif target in first_column:
                label = self._label(target)
                message = (
                    f'Columns "{first_column[target]}" and "{header}" both hold {label}; '
                    "only one of them may have a value in each row."
                )
                errors.append(RecordError("DUPLICATE_VALUE", message, self._uid_of(target), header))
            else:
                first_column[target] = header
        return errors

    def prepare(self, source: SourceRecord) -> PreparedRecord:
        """The DHIS2 event for one record, with every fault found; never raises on bad values."""
        errors = list(source.errors)
        cells: dict[str, list[_Cell]] = {}
        for column, raw in source.fields.items():
            target = self._target(column)
            if target is not None:
                cells.setdefault(target, []).append(_Cell(column, raw))
            elif not _is_blank(raw):
                errors.append(unknown_field_error(self._form, column, _as_text(raw)))
        fields = {target: self._field_name(target, found) for target, found in cells.items()}
        values: dict[str, str] = {}
        rejected: set[str] = set()
        for target, found in cells.items():
            try:
                value = self._coerce_target(target, found)
            except _Rejected as rejection:
                errors.append(rejection.error)
                rejected.add(target)
                value = _as_text(_filled(found)[0].raw)
            if value is not None:
                values[target] = value
        self._default_report_date(values, fields, rejected)
        event = self._event(values)
        errors.extend(self._validator.errors(event, fields, skip=rejected))
        return PreparedRecord(row=source.row, event=event, fields=fields, errors=errors)

    def _field_name(self, target: str, cells: list[_Cell]) -> str:
        """The name to show for a target: the column holding its value, but the form's label
        where the column is a bare UID."""
        column = (_filled(cells) or cells)[0].column
        element = self._form.data_element(target)
        return element.label if element and column.strip() == element.uid else column

    def _default_report_date(
        self, values: dict[str, str], fields: dict[str, str], rejected: set[str]
    ) -> None:
        source = self._defaults.report_date_from
        if "occurredAt" in values or source is None:
            return
        if source in rejected:
            # The source date's own error explains the missing report date.
            rejected.add("occurredAt")
        elif source in values:
            values["occurredAt"] = values[source]
            fields["occurredAt"] = fields[source]

    def _target(self, column: str) -> str | None:
        """Event property name or data element uid that a column holds, None if neither."""
        if column not in self._targets:
            name = normalise(column)
            element = self._form.match_column(column)
            self._targets[column] = EVENT_PROPERTY_NAMES.get(name) or (element and element.uid)
        return self._targets[column]

    def _coerce_target(self, target: str, cells: list[_Cell]) -> str | None:
        element = self._form.data_element(target)
        filled = [cell for cell in cells if not self._is_empty(element, cell.raw)]
        if len(filled) > 1:
            columns = " and ".join(f'"{cell.column}"' for cell in filled)
            message = f"{self._label(target)} is given twice (columns {columns}); keep only one."
            raise _Rejected(
                RecordError("DUPLICATE_VALUE", message, self._uid_of(target), filled[1].column)
            )
        if not filled:
            return None
        cell = _Cell(self._field_name(target, cells), filled[0].raw)
        if element is None:
            return self._coerce_property(target, cell)
        return self._coerce_value(element, cell)

    def _is_empty(self, element: DataElement | None, raw: object) -> bool:
        if _is_blank(raw):
            return True
        if not isinstance(raw, str) or raw.strip().casefold() not in PLACEHOLDERS:
            return False
        return element is None or self._options[element.uid].match(raw.strip()) is None

    def _coerce_property(self, name: str, cell: _Cell) -> str:
        text = _text(cell, None)
        if name == "occurredAt":
            return _report_date(text, cell.column)
        if name == "status":
            status = text.upper()
            if status not in STATUSES:
                message = f'Status "{text}" is not one of {", ".join(STATUSES)}.'
                raise _Rejected(RecordError("INVALID_STATUS", message, None, cell.column, text))
            return status
        return text

    def _coerce_value(self, element: DataElement, cell: _Cell) -> str | None:
        text = _text(cell, element)
        if element.options:
            return self._options[element.uid].code_for(text, cell.column)
        coerce = _COERCIONS.get(element.value_type)
        if coerce is None:
            return text
        return coerce(element, text, cell.column)

    def _event(self, values: dict[str, str]) -> dict:
        form, defaults = self._form, self._defaults
        event: dict = {
            "program": values.pop("program", form.program_uid),
            "programStage": values.pop("programStage", form.stage_uid),
        }
        org_unit = values.pop("orgUnit", defaults.org_unit)
        if org_unit:
            event["orgUnit"] = org_unit
        occurred_at = values.pop("occurredAt", None)
        if occurred_at:
            event["occurredAt"] = occurred_at
        event["status"] = values.pop("status", defaults.status)
        if "event" in values:
            event["event"] = values.pop("event")
        event["dataValues"] = [
            {"dataElement": element.uid, "value": values[element.uid]}
            for element in form.data_elements
            if element.uid in values
        ]
        return event

    def _unknown_column(self, header: str) -> RecordError:
        property_names = {
            name: PROPERTY_LABELS[prop] for name, prop in EVENT_PROPERTY_NAMES.items()
        }
        suggestions = self._form.suggest_labels(header) or closest_matches(header, property_names)
        hint = (
            "did you mean " + " or ".join(f'"{label}"' for label in suggestions) + "?"
            if suggestions
            else "its values cannot be sent."
        )
        message = f'Column "{header}" is not a field of this form; {hint} Rename or remove it.'
        return RecordError("UNKNOWN_COLUMN", message, None, header)

    def _label(self, target: str) -> str:
        element = self._form.data_element(target)
        return element.label if element else PROPERTY_LABELS[target]

    def _uid_of(self, target: str) -> str | None:
        return target if self._form.data_element(target) else None


class _OptionIndex:
    """Finds an element's option code from what a clerk typed: the code itself, or its code or
    name in any case and spacing, or either half of a "CODE - description" name."""

    def __init__(self, element: DataElement):
        self._element = element
        self._codes = {option.code for option in element.options}
        self._by_text: dict[str, set[str]] = {}
        for option in element.options:
            halves = option.name.split(" - ", 1) if " - " in option.name else []
            for text in (option.code, option.name, *halves):
                self._by_text.setdefault(normalise(text), set()).add(option.code)

    def match(self, text: str) -> set[str] | None:
        if text in self._codes:
            return {text}
        return self._by_text.get(normalise(text))

    def code_for(self, text: str, column: str) -> str:
        codes = self.match(text)
        if not codes:
            raise _Rejected(option_error(self._element, text, column))
        if len(codes) > 1:
            names = ", ".join(f'"{code}"' for code in sorted(codes))
            message = (
                f'"{text}" matches several options of {column} ({names}); write the one you mean.'
            )
            raise _Rejected(
                RecordError("AMBIGUOUS_OPTION", message, self._element.uid, column, text)
            )
        return next(iter(codes))


def _text(cell: _Cell, element: DataElement | None) -> str:
    """A cell as trimmed text; JSON numbers and booleans become the text DHIS2 expects."""
    raw = cell.raw
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float) and raw == raw and abs(raw) != float("inf"):
        return _plain_number(Decimal(repr(raw)))
    shown = _as_text(raw)
    message = f'{cell.column} holds "{shown}", which is not a single value.'
    uid = element.uid if element else None
    raise _Rejected(RecordError("E1302", message, uid, cell.column, shown))


def _coerce_boolean(element: DataElement, text: str, column: str) -> str | None:
    word = text.casefold()
    if word in _TRUE_WORDS:
        return "true"
    if word in _FALSE_WORDS:
        # A TRUE_ONLY field is a tick box: "no" is an empty box, which DHIS2 stores as no value.
        return None if element.value_type == "TRUE_ONLY" else "false"
    raise _Rejected(value_type_error(element, text, column))


def _coerce_number(element: DataElement, text: str, column: str) -> str:
    compact = _SPACES.sub("", text)
    if _THOUSANDS.match(compact):
        compact = compact.replace(",", "")
    try:
        number = Decimal(compact.lstrip("+"))
    except InvalidOperation:
        raise _Rejected(value_type_error(element, text, column)) from None
    if not number.is_finite():
        raise _Rejected(value_type_error(element, text, column))
    if element.value_type == "NUMBER":
        return _plain_number(number)
    low, high = _INTEGER_LIMITS[element.value_type]
    if number != number.to_integral_value() or (low is not None and number < low):
        raise _Rejected(value_type_error(element, text, column))
    if high is not None and number > high:
        raise _Rejected(value_type_error(element, text, column))
    return str(int(number))


def _coerce_date(element: DataElement, text: str, column: str) -> str:
    try:
        return _iso_date(text)
    except _DateProblem as problem:
        raise _Rejected(problem.error(text, column, element)) from None


def _coerce_datetime(element: DataElement, text: str, column: str) -> str:
    try:
        return _iso_datetime(text)
    except _DateProblem as problem:
        raise _Rejected(problem.error(text, column, element)) from None


def _report_date(text: str, column: str) -> str:
    try:
        return _iso_datetime(text) if _DATE_AND_TIME.match(text) else _iso_date(text)
    except _DateProblem as problem:
        raise _Rejected(problem.error(text, column, None)) from None


class _DateProblem(Exception):
    def __init__(self, advice: str, ambiguous: bool = False):
        super().__init__(advice)
        self.advice = advice
        self.ambiguous = ambiguous

    def error(self, text: str, column: str, element: DataElement | None) -> RecordError:
        """The error for a data element's date, or for the report date when `element` is None."""
        uid = element.uid if element else None
        if self.ambiguous:
            message = f'{column}: "{text}" {self.advice}.'
            return RecordError("AMBIGUOUS_DATE", message, uid, column, text)
        if element is None:
            message = f'"{text}" is not a valid {column}; {self.advice}.'
            return RecordError("E1031", message, None, column, text)
        return value_type_error(element, text, column, self.advice)


_WRITE_DAY_FIRST = "write the date day first, like 14-03-2025"


def _iso_date(text: str) -> str:
    """ISO date of a date written ISO (YYYY-MM-DD) or day first (DD-MM-YYYY, DD/MM/YYYY,
    DD.MM.YYYY); Ghana writes dates day first, so a month-first date is never guessed."""
    iso = _ISO_DATE.match(text)
    if iso:
        year, month, day = (int(part) for part in iso.groups())
        return _calendar_date(year, month, day)
    day_first = _DAY_FIRST_DATE.match(text)
    if day_first:
        day, month, year = (int(day_first.group(i)) for i in (1, 3, 4))
        if month > 12 and day <= 12:
            raise _DateProblem(
                "looks month first (MM/DD/YYYY); write it day first, like "
                f"{month:02d}-{day:02d}-{year}",
                ambiguous=True,
            )
        return _calendar_date(year, month, day)
    if _SHORT_YEAR_DATE.match(text):
        raise _DateProblem("has a two-digit year; write all four digits of the year", True)
    if _SPREADSHEET_SERIAL.match(text):
        raise _DateProblem(
            "looks like a spreadsheet date number; format the column as a date (DD-MM-YYYY) "
            "and save the file again",
            ambiguous=True,
        )
    raise _DateProblem(_WRITE_DAY_FIRST)


def _calendar_date(year: int, month: int, day: int) -> str:
    if not 1 <= month <= 12:
        raise _DateProblem(f"there is no month {month}; {_WRITE_DAY_FIRST}")
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        month_name = _MONTH_NAMES[month - 1]
        raise _DateProblem(f"{month_name} {year} has no day {day}") from None


def _iso_datetime(text: str) -> str:
    match = _DATE_AND_TIME.match(text)
    if match is None:
        return _iso_date(text) + "T00:00:00"
    hours, minutes = int(match["hours"]), int(match["minutes"])
    seconds = int(match["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise _DateProblem("has a time that does not exist; write it like 14-03-2025 09:30")
    day = _iso_date(match["date"])
    suffix = (match["fraction"] or "") + (match["zone"] or "")
    return f"{day}T{hours:02d}:{minutes:02d}:{seconds:02d}{suffix}"


_COERCIONS: dict[str, Callable[[DataElement, str, str], str | None]] = {
    **dict.fromkeys(("NUMBER", *_INTEGER_LIMITS), _coerce_number),
    "BOOLEAN": _coerce_boolean,
    "TRUE_ONLY": _coerce_boolean,
    "DATE": _coerce_date,
    "AGE": _coerce_date,
    "DATETIME": _coerce_datetime,
}


def _plain_number(number: Decimal) -> str:
    """A number as DHIS2 accepts it: no exponent, no leading zeros, no trailing zeros."""
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _is_blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _filled(cells: list[_Cell]) -> list[_Cell]:
    return [cell for cell in cells if not _is_blank(cell.raw)]


def _as_text(raw: object) -> str:
    return raw.strip() if isinstance(raw, str) else str(raw)
