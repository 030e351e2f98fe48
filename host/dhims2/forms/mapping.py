"""Source records -> DHIS2 event payloads: matching columns to the form and coercing values.

Values are coerced to what DHIS2 stores, always as strings: option names to option codes, yes/no
to true/false, day-first dates and spreadsheet date cells to ISO dates, numbers without
separators. A value that cannot be coerced is reported in the user's own terms (their column,
their spelling); the payload is then checked by EventValidator, so a prepared record carries both
kinds of fault.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from dhims2.forms.program import DataElement, ProgramForm, closest_matches, normalise
from dhims2.forms.records import EVENT_PROPERTY_NAMES, RecordError, SourceRecord
from dhims2.forms.schema import (
    PROPERTY_LABELS,
    STATUSES,
    option_error,
    unknown_field_error,
    value_type_error,
)
from dhims2.forms.text import invalid_text_errors
from dhims2.forms.validation import EventValidator

__all__ = [
    "PLACEHOLDERS",
    "Mapper",
    "OptionIndex",
    "PreparedRecord",
    "RecordDefaults",
    "RecordError",
    "read_yes_no",
]

# Cell texts meaning "no value", unless the field has an option of that name ("None" is an
# Education option).
PLACEHOLDERS = frozenset(
    {"na", "n/a", "n.a", "n.a.", "#n/a", "not applicable", "-", "--", "\u2013", "\u2014"}
    | {"nil", "none", "null"}
)
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
_YEAR_FIRST_DATE = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})$")
_DAY_FIRST_DATE = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")
_SHORT_YEAR_DATE = re.compile(r"^\d{1,2}([-/.])\d{1,2}\1\d{2}$")
_SPREADSHEET_SERIAL = re.compile(r"^\d{5}(\.\d+)?$")
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_MONTH_WORD = r"([a-z]{3,9})\.?"
_SEPARATOR = r"[\s/.,-]+"
_YEAR = r"(\d{4}|\d{2})"
_DAY_MONTH_NAME_YEAR = re.compile(rf"^{_DAY}{_SEPARATOR}{_MONTH_WORD}{_SEPARATOR}{_YEAR}$", re.I)
_MONTH_NAME_DAY_YEAR = re.compile(rf"^{_MONTH_WORD}{_SEPARATOR}{_DAY}{_SEPARATOR}{_YEAR}$", re.I)
_DATE_AND_TIME = re.compile(
    r"^(?P<date>\S+)[T ](?P<hours>\d{1,2}):(?P<minutes>\d{2})"
    r"(?::(?P<seconds>\d{2})(?P<fraction>\.\d{1,9})?)?(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)
_MONTH_NAMES = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_DATE_TYPES = ("DATE", "AGE", "DATETIME")
# The cedi written before an amount (sign, with or without "GH", or ISO code) or after it.
_CEDI = r"(?:GH\s*[₵¢]|GHS|GHC|[₵¢])"
_CEDIS = re.compile(
    rf"^{_CEDI}\s*(?P<before>[^\s₵¢].*)$|^(?P<after>.*[^\s])\s*(?:{_CEDI}|cedis?)$", re.I
)
# Excel's 1900 date system counts from 30 December 1899 and holds a 29 February 1900 that never
# was, so only serials from 61 (1 March 1900) on are dates; 2958465 is 31 December 9999.
_SERIAL_EPOCH = datetime(1899, 12, 30)
_FIRST_SERIAL, _LAST_SERIAL = 61, 2958465


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
        self._options = {element.uid: OptionIndex(element) for element in form.data_elements}
        self._targets: dict[str, str | None] = {}

    @property
    def form(self) -> ProgramForm:
        return self._form

    def check_columns(self, headers: Iterable[str]) -> list[RecordError]:
        """Faults of a header row: columns that are no field of the form (with the labels they
        most likely mean) and columns that hold the same field as an earlier one."""
        errors: list[RecordError] = []
        first_column: dict[str, str] = {}
        for header in headers:
            target = self.target(header)
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

    def missing_compulsory_columns(self, headers: Iterable[str]) -> list[RecordError]:
        """For a whole file: a compulsory field no column holds would be missing from every
        record, so it is one fault of the header rather than one of each row. Only when every
        record is held to it: without a status column each record gets the default status, and
        DHIS2 checks compulsory fields of a COMPLETED event (of any, with ON_UPDATE_AND_INSERT).
        A single record (the Capture form's) gets its missing fields as its own errors instead."""
        columns = {target for target in map(self.target, headers) if target is not None}
        holds_every_record = self._defaults.status == "COMPLETED" or (
            self._form.validation_strategy != "ON_COMPLETE"
        )
        if "status" in columns or not holds_every_record:
            return []
        missing = [
            element.label
            for element in self._form.data_elements
            if element.compulsory and element.uid not in columns
        ]
        if not missing:
            return []
        message = f"No column holds {_listed(missing)}, compulsory in every record; add " + (
            "a column for it." if len(missing) == 1 else "a column for each."
        )
        return [RecordError("MISSING_COLUMN", message, field="header")]

    def prepare(self, source: SourceRecord, *, reported: Collection[str] = ()) -> PreparedRecord:
        """The DHIS2 event for one record, with every fault found; never raises on bad values.

        `reported` names data element uids whose faults `source.errors` already holds (a value
        a template could not read), so they are not reported again as missing.
        """
        errors = list(source.errors)
        cells: dict[str, list[_Cell]] = {}
        for key, raw in source.fields.items():
            target = self.target(key)
            if target is not None:
                cells.setdefault(target, []).append(_Cell(source.column(key), raw))
            elif not _is_blank(raw):
                errors.append(unknown_field_error(self._form, source.column(key), _as_text(raw)))
        fields = {target: self._field_name(target, found) for target, found in cells.items()}
        values: dict[str, str] = {}
        rejected: set[str] = set(reported)
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
        errors.extend(invalid_text_errors(event, fields))
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

    def accepts(self, target: str, raw: object) -> bool:
        """Whether `raw` gives a valid value of `target` (a data element UID or an event
        property name); a blank or a placeholder gives no value, so it is not accepted."""
        element = self._form.data_element(target)
        if self._is_empty(element, raw):
            return False
        cell = _Cell(target, raw)
        try:
            if element is None:
                self._coerce_property(target, cell)
            else:
                self._coerce_value(element, cell)
        except _Rejected:
            return False
        return True

    def target(self, column: str) -> str | None:
        """Event property name or data element uid that a column holds, None if neither."""
        if column not in self._targets:
            name = normalise(column)
            element = self._form.match_column(column)
            self._targets[column] = EVENT_PROPERTY_NAMES.get(name) or (
                element.uid if element else None
            )
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
        if name == "occurredAt":
            from_cell = _from_date_cell(cell, None)
            return from_cell or _report_date(_text(cell, None), cell.column)
        text = _text(cell, None)
        if name == "status":
            status = text.upper()
            if status not in STATUSES:
                message = f'Status "{text}" is not one of {", ".join(STATUSES)}.'
                raise _Rejected(RecordError("INVALID_STATUS", message, None, cell.column, text))
            return status
        return text

    def _coerce_value(self, element: DataElement, cell: _Cell) -> str | None:
        if element.value_type in _DATE_TYPES:
            from_cell = _from_date_cell(cell, element)
            if from_cell is not None:
                return from_cell
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


class OptionIndex:
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
        """The codes `text` may mean; None when it means no option."""
        if text in self._codes:
            return {text}
        return self._by_text.get(normalise(text))

    def code_for(self, text: str, column: str) -> str:
        """The one code `text` means; raises _Rejected with E1125 or AMBIGUOUS_OPTION."""
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
    if isinstance(raw, datetime):
        return raw.date().isoformat() if raw.time() == time() else raw.isoformat(sep=" ")
    if isinstance(raw, (date, time)):
        return raw.isoformat()
    shown = _as_text(raw)
    message = f'{cell.column} holds "{shown}", which is not a single value.'
    uid = element.uid if element else None
    raise _Rejected(RecordError("E1302", message, uid, cell.column, shown))


def read_yes_no(text: str) -> bool | None:
    """True for Yes, Y, True or 1 and False for No, N, False or 0, in any case; else None."""
    word = text.strip().casefold()
    if word in _TRUE_WORDS:
        return True
    return False if word in _FALSE_WORDS else None


def _coerce_boolean(element: DataElement, text: str, column: str) -> str | None:
    answer = read_yes_no(text)
    if answer is None:
        raise _Rejected(value_type_error(element, text, column))
    # A TRUE_ONLY field is a tick box: "no" is an empty box, which DHIS2 stores as no value.
    if not answer and element.value_type == "TRUE_ONLY":
        return None
    return "true" if answer else "false"


def _coerce_number(element: DataElement, text: str, column: str) -> str:
    amount = _without_cedis(text) if element.value_type == "NUMBER" else text
    compact = _SPACES.sub("", amount)
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


def _listed(names: list[str]) -> str:
    quoted = [f'"{name}"' for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _without_cedis(text: str) -> str:
    """An amount as clerks write it in Ghana, without its currency: GH₵ 823, GH¢823, GHS 823,
    ₵823 or 823 cedis are all 823."""
    match = _CEDIS.match(text.strip())
    return (match["before"] or match["after"]) if match else text


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
_TWO_DIGIT_YEAR = "has a two-digit year; write all four digits of the year"


def _iso_date(text: str) -> str:
    """ISO date of a date written year first (2025-03-14, 2025/03/14), day first (14-03-2025,
    14/03/2025, 14.03.2025) or with the month's name (14 March 2025, 14-Mar-2025, March 14,
    2025). Ghana writes dates day first, so a month-first date in digits is never guessed. A
    time after the date is checked and dropped: the field holds a day."""
    if _DATE_AND_TIME.match(text):
        return _iso_datetime(text)[: len("YYYY-MM-DD")]
    year_first = _YEAR_FIRST_DATE.match(text)
    if year_first:
        year, month, day = (int(year_first.group(i)) for i in (1, 3, 4))
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
    named = _DAY_MONTH_NAME_YEAR.match(text) or _MONTH_NAME_DAY_YEAR.match(text)
    if named:
        return _named_month_date(named)
    if _SHORT_YEAR_DATE.match(text):
        raise _DateProblem(_TWO_DIGIT_YEAR, ambiguous=True)
    if _SPREADSHEET_SERIAL.match(text):
        moment = _serial_moment(float(text))
        raise _DateProblem(
            f"looks like a spreadsheet date number (it would be {moment:%d-%m-%Y}); format the "
            "column as a date (DD-MM-YYYY) and save the file again",
            ambiguous=True,
        )
    raise _DateProblem(_WRITE_DAY_FIRST)


def _named_month_date(match: re.Match[str]) -> str:
    if match.re is _DAY_MONTH_NAME_YEAR:
        day, word, year = match.groups()
    else:
        word, day, year = match.groups()
    months = [
        number
        for number, name in enumerate(_MONTH_NAMES, start=1)
        if name.casefold().startswith(word.casefold())
    ]
    if not months:
        raise _DateProblem(f'"{word}" is no month; {_WRITE_DAY_FIRST}')
    if len(year) == 2:
        raise _DateProblem(_TWO_DIGIT_YEAR, ambiguous=True)
    return _calendar_date(int(year), months[0], int(day))


def _from_date_cell(cell: _Cell, element: DataElement | None) -> str | None:
    """The ISO date (or date and time) of a spreadsheet date cell or a date serial number, for a
    date data element, or for the report date when `element` is None; None for text."""
    raw = cell.raw
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, date):
        moment = datetime.combine(raw, time())
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        shown = _text(cell, element)
        serial_moment = _serial_moment(raw)
        if serial_moment is None:
            problem = _DateProblem(f"is a number, not a date; {_WRITE_DAY_FIRST}")
            raise _Rejected(problem.error(shown, cell.column, element))
        moment = serial_moment
    else:
        return None
    timed = element.value_type == "DATETIME" if element else moment.time() != time()
    return moment.isoformat(timespec="seconds") if timed else moment.date().isoformat()


def _serial_moment(serial: float) -> datetime | None:
    """The moment an Excel serial number (1900 date system) stands for; None if it is none."""
    if not _FIRST_SERIAL <= serial <= _LAST_SERIAL:
        return None
    return _SERIAL_EPOCH + timedelta(seconds=round(serial * 86400))


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
