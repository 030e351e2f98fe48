"""Validating events: jsonschema against the checks compiled from the same schema, in records/s,
side by side in one run, and what validation now weighs in the mapping of a sheet.

    python bench/validation.py            # 30,000 synthetic records
    python bench/validation.py --quick    # 1,000, to check that the script still works

The records are the synthetic In-Patient ones, every tenth with a value DHIS2 would refuse, so
the error paths are measured too. Both validators check the same keyed views of the same
prepared events (dataValues as {uid: value}, the view EventValidator checks), in chunks taken
in turn, so that a busy moment of the machine weighs on both alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import harness
from harness import BenchError, figure, heading, verdict
from jsonschema import Draft202012Validator

from dhims2.forms.checks import Violation, compile_schema
from dhims2.forms.mapping import Mapper, PreparedRecord, RecordDefaults
from dhims2.forms.metadata import ORG_UNIT_UID
from dhims2.forms.records import SourceRecord
from dhims2.forms.schema import FORMATS, format_checker, keyed_event_schema
from dhims2.forms.synthetic import in_patient_form, synthetic_rows
from dhims2.forms.validation import EventValidator

# Validation took two thirds of mapping's time with jsonschema (issue 14): the compiled checks
# must make it a small part, which takes at least five times jsonschema's speed.
TARGET_SPEEDUP = 5.0
CHUNK = 1_000
# Labels of the values every tenth record gets wrong, with the wrong value.
BROKEN_VALUES = {"Age": "forty", "Date of admission (morbidity/mortality)": "2025-02-30"}


def source_records(count: int) -> list[SourceRecord]:
    records = []
    for index, row in enumerate(synthetic_rows(count, tag="V"), start=2):
        fields: dict[str, object] = dict(row)
        if index % 10 == 0:
            fields |= BROKEN_VALUES
        records.append(SourceRecord(index, fields))
    return records


def keyed_view(event: dict) -> dict:
    values = {entry["dataElement"]: entry["value"] for entry in event["dataValues"]}
    return {key: value for key, value in event.items() if key != "dataValues"} | {
        "dataValues": values
    }


Validator = tuple[list[dict], Callable[[dict], bool]]


def timed_in_turn(validators: dict[str, Validator]) -> tuple[dict[str, float], dict[str, int]]:
    """(seconds each validator took over its inputs, how many inputs each refused), given
    name -> (its inputs, one for each record, and whether it accepts one)."""
    seconds = dict.fromkeys(validators, 0.0)
    refused = dict.fromkeys(validators, 0)
    count = len(next(iter(validators.values()))[0])
    for start in range(0, count, CHUNK):
        for name, (inputs, is_valid) in validators.items():
            chunk = inputs[start : start + CHUNK]
            began = time.perf_counter()
            refused[name] += sum(not is_valid(item) for item in chunk)
            seconds[name] += time.perf_counter() - began
    return seconds, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=harness.description(__doc__))
    parser.add_argument("--quick", action="store_true", help="1,000 records: checks the script")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 30_000

    harness.print_machine()
    form = in_patient_form()
    mapper = Mapper(form, RecordDefaults(org_unit=ORG_UNIT_UID))
    records = source_records(count)
    heading("Setup")
    figure("records", f"{count:,} synthetic In-Patient records, every tenth with 2 faults")
    figure("form", f"{form.program_name}: {len(form.data_elements)} data elements")

    began = time.perf_counter()
    prepared: list[PreparedRecord] = [mapper.prepare(record) for record in records]
    mapping_seconds = time.perf_counter() - began
    events = [record.event for record in prepared]
    views = [keyed_view(event) for event in events]

    schema = keyed_event_schema(form)
    reference = Draft202012Validator(schema, format_checker=format_checker())
    check = compile_schema(schema, FORMATS)

    def compiled_is_valid(view: dict) -> bool:
        found: list[Violation] = []
        check(view, (), found)
        return not found

    event_validator = EventValidator(form)
    seconds, refused = timed_in_turn(
        {
            "jsonschema": (views, reference.is_valid),
            "compiled": (views, compiled_is_valid),
            "EventValidator.errors": (events, lambda event: not event_validator.errors(event)),
        }
    )
    expected_refused = count // 10
    if len(set(refused.values())) != 1 or refused["compiled"] != expected_refused:
        raise BenchError(f"the validators disagree: {refused} of {count} refused")

    heading(f"Validation of {count:,} events, in chunks of {CHUNK:,} taken in turn")
    figure("events refused (each validator)", f"{refused['compiled']:,}")
    for name in ("jsonschema", "compiled"):
        figure(f"{name}, keyed schema", harness.rate(count, seconds[name]))
    worded = seconds["EventValidator.errors"]
    figure("EventValidator.errors (compiled, worded)", harness.rate(count, worded))
    # Judged on the ratio as printed, so the verdict never contradicts the figure.
    speedup = round(seconds["jsonschema"] / seconds["compiled"], 1)
    figure("compiled / jsonschema", f"{speedup:.1f}x the records/s")
    verdict(
        f"compiled at least {TARGET_SPEEDUP:g}x jsonschema",
        speedup >= TARGET_SPEEDUP,
        f"ratio >= {TARGET_SPEEDUP:g}",
    )

    heading(f"Mapping {count:,} records (Mapper.prepare, validation included)")
    figure("mapping", f"{mapping_seconds:.2f} s, {harness.rate(count, mapping_seconds)}")
    share = worded / mapping_seconds
    figure("validation share of mapping", f"{share:.0%}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/validation.py: {error}", file=sys.stderr)
        sys.exit(1)
