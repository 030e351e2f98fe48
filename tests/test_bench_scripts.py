"""Every benchmark script still runs end to end: each is run in its --quick mode, as a user would
run it, and must print the machine it ran on and every figure BENCHMARKS.md quotes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = ("upload.py", "status_latency.py", "host.py", "lookup.py", "backlog.py", "batching.py")
TIMEOUT = 120
FIGURE = re.compile(r"^  (?P<label>[^:]+):\s+(?P<value>\S.*)$")
SECONDS = re.compile(r"(\d+(?:\.\d+)?) s\b")
MILLISECONDS = re.compile(r"^(\d+) ms$")
MULTIPLE = re.compile(r"^(\d+(?:\.\d+)?)x")
MEBIBYTES = re.compile(r"^(\d+(?:\.\d+)?) MiB$")

Sections = dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def outputs() -> Iterator[dict[str, str]]:
    """The scripts run side by side: they mostly wait on their sandboxes."""
    processes = {
        script: subprocess.Popen(
            [sys.executable, str(BENCH / script), "--quick"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in SCRIPTS
    }
    try:
        results = {}
        for script, process in processes.items():
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            assert process.returncode == 0, f"{script} failed:\n{stderr}"
            results[script] = stdout
        yield results
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


def sections(output: str) -> Sections:
    """{section title: {figure label: value}} from a script's printed report."""
    found: Sections = {}
    current: dict[str, str] | None = None
    for line in output.splitlines():
        if line.startswith("== ") and line.endswith(" =="):
            current = found.setdefault(line[3:-3], {})
        elif (match := FIGURE.match(line)) and current is not None:
            current[match["label"]] = match["value"]
    return found


def number(pattern: re.Pattern[str], text: str) -> float:
    match = pattern.search(text)
    assert match, f"no number in {text!r}"
    return float(match[1])


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_names_the_machine(outputs: dict[str, str], script: str):
    machine = sections(outputs[script])["Machine"]
    assert machine["CPU"] and int(machine["logical cores"]) >= 1
    assert machine["Python"].startswith(("CPython 3.", "PyPy 3."))


def test_upload_compares_engine_per_record_and_server_busy_time(outputs: dict[str, str]):
    found = sections(outputs["upload.py"])
    assert "80 ms round trip" in found["Setup"]["server (sandbox, own process)"]
    for size in ("20 records", "60 records"):
        figures = found[size]
        assert "records/s" in figures["ours, total"]
        assert number(SECONDS, figures["ours, total"]) > 0
        assert number(SECONDS, figures["server busy for our jobs"]) > 0
        # No client can beat the server's own processing time for the same records.
        assert number(MULTIPLE, figures["ours / server busy"]) >= 1.0
        assert "extrapolated" in figures["per-record strategy, total"]
        # Faster than one record per job is the point of batching, whatever the size.
        assert number(MULTIPLE, figures["ours vs per-record"]) > 3
        # A quick run's single small job is mostly fixed round trips, so the 1.3x target (met
        # at 1,000 records, BENCHMARKS.md) cannot hold here; the verdict must match the ratio.
        ratio = number(MULTIPLE, figures["ours / server busy"])
        verdict = figures["ours within 1.3x of server busy"]
        assert verdict.startswith("met" if ratio <= 1.3 else "MISSED")


def test_status_latency_prints_median_and_p95_per_scenario(outputs: dict[str, str]):
    found = sections(outputs["status_latency.py"])
    scenarios = [title for title in found if title not in ("Machine", "Setup")]
    assert len(scenarios) == 3
    for title in scenarios:
        figures = found[title]
        assert int(figures["jobs"]) >= 1
        median = number(MILLISECONDS, figures["median"])
        assert 0 <= median <= number(MILLISECONDS, figures["p95"])
        assert figures["median under 1 s"].startswith("met")


def test_host_prints_hello_time_and_memory_ratios(outputs: dict[str, str]):
    found = sections(outputs["host.py"])
    hello = found["dhims2-host spawn to hello, 3 runs"]
    assert number(MILLISECONDS, hello["median"]) > 0
    assert number(MEBIBYTES, hello["idle host peak memory (median)"]) > 1
    start_up = found["start-up against a bare Python start, 3 runs interleaved"]
    assert number(MILLISECONDS, start_up["bare python -c pass (median)"]) > 0
    for name in ("dhims2-host spawn to hello", "dhims2 --help", "dhims2 --version"):
        ratio = number(MULTIPLE, start_up[f"{name} (median)"].split(", ")[-1].replace(" bare", ""))
        # A time ratio on a shared machine: the verdict must match the figure, not be "met".
        verdict = start_up[f"{name} within 3x bare"]
        assert verdict.startswith("met" if ratio <= 3 else "MISSED")
    for title in (
        "dhims2-host: `upload` with `records`, sent to the end",
        "dhims2-host: `upload` with `sheet`, sent to the end",
        "dhims2 upload of a CSV file, sent to the end",
    ):
        figures = found[title]
        assert number(MEBIBYTES, figures["peak memory, 200 records"]) > 1
        assert number(MULTIPLE, figures["peak ratio 200 / 50 records"]) > 0
        # Memory does not depend on the machine's load: flat is required.
        assert figures["memory flat as records grow"].startswith("met")


def test_fleet_proves_nothing_duplicated_lost_or_failed_and_prints_the_queue_figures():
    # Its own run: the quick fleet waits out one scaled housekeeping of a stuck job (~1 min).
    completed = subprocess.run(
        [sys.executable, str(BENCH / "fleet.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    found = sections(completed.stdout)
    outcome = found["Outcome"]
    assert (outcome["duplicates"], outcome["lost"], outcome["records FAILED"]) == ("0", "0", "0")
    assert outcome["records still pending"] == "0"
    assert outcome["host errors"] == "0"
    assert found["Setup"]["restarts while a job ran"] == "1"
    queue = found["Waiting in DHIS2's queue"]
    assert number(SECONDS, queue["queue wait max (measured)"]) >= 0
    assert queue["nothing duplicated, lost or FAILED"].startswith("met")


def test_lookup_prints_its_cost_per_thousand_records_next_to_the_upload(outputs: dict[str, str]):
    found = sections(outputs["lookup.py"])
    for title in ("new records (nothing found)", "again"):
        figures = found[f"Upload from a new store: {title}"]
        share = float(figures["lookup share of the upload"].rstrip("%"))
        assert number(SECONDS, figures["upload"]) > 0 and 0 < share < 100
        assert int(figures["lookups (one per job)"]) == 2  # 200 records in jobs of 100
        verdict = figures["lookup under 15% of the upload"]
        assert verdict.startswith("met" if share < 15 else "MISSED")


def test_backlog_prints_both_sizes_and_their_ratios_with_verdicts(outputs: dict[str, str]):
    found = sections(outputs["backlog.py"])
    assert "0 ms round trip" in found["Setup"]["server (sandbox, own process)"]
    for size in ("100 rows", "1,000 rows"):
        figures = found[size]
        wall = number(SECONDS, figures["wall time (spawn to exit)"])
        first_job = number(SECONDS, figures["time to first job"])
        sending = number(SECONDS, figures["sending time (first job to last outcome)"])
        assert 0 < first_job < wall and 0 < sending < wall
        assert number(MEBIBYTES, figures["peak memory"]) > 1
    ratios = found["1,000 / 100 rows"]
    assert ratios["rows"] == "10.00x"
    assert number(MULTIPLE, ratios["time to first job"]) > 0
    for figure, verdict, target in (
        ("sending time", "sending linear in rows", 11.0),
        ("peak memory", "memory flat", 1.1),
    ):
        ratio = number(MULTIPLE, ratios[figure])
        # Quick figures mean nothing; the verdict must still be the one its figure earns.
        assert ratios[verdict].startswith("met" if ratio <= target else "MISSED")
    still_reading = found["1,000 rows"]["file still being read at the first job"]
    verdict = ratios["first job while the file is still read"]
    assert verdict.startswith("met" if still_reading == "yes" else "MISSED")


def test_validation_compares_jsonschema_and_the_compiled_checks_in_records_per_second():
    # Its own run: it is all computation, so it is not started beside the sandbox scripts.
    completed = subprocess.run(
        [sys.executable, str(BENCH / "validation.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    found = sections(completed.stdout)
    assert found["Machine"]["Python"].startswith(("CPython 3.", "PyPy 3."))
    figures = found["Validation of 1,000 events, in chunks of 1,000 taken in turn"]
    # Every tenth record is broken, and both validators must say so of the same records.
    assert figures["events refused (each validator)"] == "100"
    rates = {
        name: float(figures[name].removesuffix(" records/s").replace(",", ""))
        for name in ("jsonschema, keyed schema", "compiled, keyed schema")
    }
    assert all(rate > 0 for rate in rates.values())
    ratio = number(MULTIPLE, figures["compiled / jsonschema"])
    # The ratio of the two rates as printed, to its one printed decimal.
    assert ratio == pytest.approx(
        rates["compiled, keyed schema"] / rates["jsonschema, keyed schema"], abs=0.051
    )
    verdict = figures["compiled at least 5x jsonschema"]
    assert verdict.startswith("met" if ratio >= 5 else "MISSED")
    mapping = found["Mapping 1,000 records (Mapper.prepare, validation included)"]
    assert 0 < float(mapping["validation share of mapping"].rstrip("%")) < 100


def test_batching_compares_sized_jobs_with_fixed_sizes_and_per_record_strategies(
    outputs: dict[str, str],
):
    found = sections(outputs["batching.py"])
    profiles = [title for title in found if title != "Machine"]
    assert len(profiles) == 4 and "1000 kbit/s link" in found[profiles[-1]]["server"]
    for title in profiles:
        figures = found[title]
        floor = number(SECONDS, figures["floor (server busy time, best size)"])
        fixed = {
            label: number(SECONDS, value)
            for label, value in figures.items()
            if label.startswith("fixed ")
        }
        assert len(fixed) >= 2 and all(seconds > floor > 0 for seconds in fixed.values())
        best = figures["best fixed size"]
        assert number(SECONDS, best) == min(fixed.values())
        sized = figures["sized to the server"]
        assert "sizes " in sized and number(SECONDS, sized) > floor
        ratio = number(MULTIPLE, figures["sized / best fixed"])
        assert ratio == pytest.approx(number(SECONDS, sized) / number(SECONDS, best), abs=0.011)
        verdict = figures["sized within 10% of the best fixed size"]
        assert verdict.startswith("met" if ratio <= 1.10 else "MISSED")
        for strategy in ("async submit + poll", "synchronous import"):
            assert number(SECONDS, figures[f"per record, {strategy}"]) > 0
