"""`dhims2` as a user runs it: a real subprocess against the sandbox, its output and exit status."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from dhims2.forms.synthetic import synthetic_rows, write_csv

PYTHON = sys.executable


def dhims2(*args, env, timeout=120, stdin=None):
    return subprocess.run(
        [PYTHON, "-m", "dhims2.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
    )


def sheet(tmp_path, count, *, name="records.csv", tag="C", edit=None):
    rows = list(synthetic_rows(count, tag=tag))
    if edit is not None:
        edit(rows)
    return write_csv(tmp_path / name, rows)


def server_args(sandbox):
    return ["--server", sandbox.base_url, "--token", sandbox.create_token()]


def test_upload_json_output_and_exit_status_zero(sandbox, tmp_path, env):
    path = sheet(tmp_path, 8)
    result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["total"] == 8 and report["created"] == 8 and report["pending"] == 0
    assert [record["row"] for record in report["records"]] == list(range(2, 10))
    assert {record["state"] for record in report["records"]} == {"created"}
    assert len(sandbox.stored_events()) == 8


def test_rejected_rows_exit_one_and_name_row_field_and_value(sandbox, tmp_path, env):
    def misspell(rows):
        rows[2]["Gender (morbidity/mortality)"] = "Malee"

    path = sheet(tmp_path, 5, edit=misspell)
    result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["created"], report["rejected"]) == (4, 1)
    [rejected] = [record for record in report["records"] if record["state"] == "rejected"]
    assert rejected["row"] == 4
    [error] = rejected["errors"]
    assert set(error) == {"code", "dataElement", "field", "value", "message"}
    assert error["field"] == "Gender (morbidity/mortality)" and error["value"] == "Malee"

    human = dhims2("upload", str(path), *server_args(sandbox), env=env)
    assert human.returncode == 1
    assert "row 4" in human.stdout and "Malee" in human.stdout and "4 updated" in human.stdout


def test_dry_run_stores_nothing_anywhere(sandbox, tmp_path, env):
    def misspell(rows):
        rows[0]["Outcome"] = "Vanished"

    path = sheet(tmp_path, 4, edit=misspell)
    result = dhims2("upload", str(path), *server_args(sandbox), "--dry-run", "--json", env=env)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["valid"], report["rejected"]) == (3, 1)
    assert sandbox.stored_events() == []
    listing = dhims2("status", "--json", env=env)
    assert json.loads(listing.stdout) == {"batches": []}


def test_usage_and_input_errors_exit_two(sandbox, tmp_path, env):
    missing = dhims2("upload", str(tmp_path / "nope.csv"), *server_args(sandbox), env=env)
    assert missing.returncode == 2 and "nope.csv" in missing.stderr
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\x01\x02\xff" * 100)
    assert dhims2("upload", str(garbage), *server_args(sandbox), env=env).returncode == 2
    no_credentials = dhims2(
        "upload", str(sheet(tmp_path, 1)), "--server", sandbox.base_url, env=env
    )
    assert no_credentials.returncode == 2 and "--token" in no_credentials.stderr


def test_unknown_column_is_refused_with_a_suggestion(sandbox, tmp_path, env):
    def rename(rows):
        for row in rows:
            row["Gendr"] = row.pop("Gender (morbidity/mortality)")

    result = dhims2("upload", str(sheet(tmp_path, 2, edit=rename)), *server_args(sandbox), env=env)
    assert result.returncode == 2
    assert "Gendr" in result.stderr and "Gender" in result.stderr


def test_unreachable_server_and_refused_sign_in_exit_three(sandbox, tmp_path, env):
    path = sheet(tmp_path, 2)
    closed = dhims2(
        "upload", str(path), "--server", "http://127.0.0.1:9/events", "--token", "d2p_x", env=env
    )
    assert closed.returncode == 3 and "127.0.0.1:9" in closed.stderr
    refused = dhims2(
        "upload",
        str(path),
        "--server",
        sandbox.base_url,
        "--token",
        "d2p_unknown",
        "--json",
        env=env,
    )
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"]["code"] == "AUTH_REQUIRED"
    assert "d2p_unknown" not in refused.stdout + refused.stderr


def test_password_comes_from_the_environment_never_a_flag(sandbox, tmp_path, env):
    path = sheet(tmp_path, 2)
    env["DHIMS2_PASSWORD"] = sandbox.password
    result = dhims2(
        "upload", str(path), "--server", sandbox.base_url, "--username", sandbox.username, env=env
    )
    assert result.returncode == 0, result.stderr
    assert sandbox.password not in result.stdout + result.stderr


def test_config_is_saved_owner_only_and_token_never_shown(sandbox, tmp_path, env):
    token = sandbox.create_token()
    result = dhims2("config", "--server", sandbox.base_url, "--token", "-", env=env, stdin=token)
    assert result.returncode == 0, result.stderr
    assert token not in result.stdout
    config_file = tmp_path / "config" / "config.json"
    assert oct(config_file.stat().st_mode & 0o777) == "0o600"
    shown = json.loads(dhims2("config", "--json", env=env).stdout)
    assert shown["token_set"] is True and "token" not in shown
    upload = dhims2("upload", str(sheet(tmp_path, 3)), "--json", env=env)
    assert upload.returncode == 0, upload.stderr


def test_no_wait_then_status_follow(sandbox, tmp_path, env):
    sandbox.knobs.job_overhead_seconds = 0.3
    path = sheet(tmp_path, 6)
    queued = dhims2("upload", str(path), *server_args(sandbox), "--no-wait", "--json", env=env)
    assert queued.returncode == 1
    report = json.loads(queued.stdout)
    assert report["pending"] == 6
    followed = dhims2(
        "status", report["batch"], "--follow", "--json", *server_args(sandbox), env=env
    )
    assert followed.returncode == 0, followed.stderr
    assert json.loads(followed.stdout)["created"] == 6
    listing = json.loads(dhims2("status", "--json", env=env).stdout)
    assert [batch["batch"] for batch in listing["batches"]] == [report["batch"]]


def upload_killed_once(args, env, under_way) -> subprocess.Popen:
    """`dhims2 ARGS` started and killed (SIGKILL) as soon as `under_way()` holds."""
    process = subprocess.Popen(
        [PYTHON, "-m", "dhims2.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not under_way():
        assert process.poll() is None, "the upload ended before it could be killed"
        assert time.monotonic() < deadline, "the upload never got under way"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process


@pytest.mark.parametrize("kill_at_stored", [0, 40, 100])
def test_killed_mid_upload_and_restarted_stores_every_record_once(
    sandbox, tmp_path, env, kill_at_stored
):
    sandbox.knobs.per_event_seconds = 0.003
    sandbox.knobs.latency = 0.01
    total = 150
    path = sheet(tmp_path, total)
    args = ["upload", str(path), *server_args(sandbox), "--batch-size", "10", "--json"]
    # Killed once the upload is under way (its first job posted) and DHIS2 holds at least
    # `kill_at_stored` of the records, so the kill lands mid-upload, not before or after it.
    process = upload_killed_once(
        args,
        env,
        lambda: (
            sandbox.request_count("POST", "/api/tracker") > 0
            and len(sandbox.stored_events()) >= kill_at_stored
        ),
    )
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = len(sandbox.stored_events())
    assert killed_at < total, "the kill landed after the upload had finished"
    pending = json.loads(dhims2("status", "--json", env=env).stdout)["batches"][0]["pending"]
    assert pending > 0

    rerun = dhims2(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr
    stored = Counter(event["event"] for event in sandbox.stored_events())
    assert len(stored) == total
    assert set(stored.values()) == {1}
    listing = json.loads(dhims2("status", "--json", env=env).stdout)["batches"]
    assert all(batch["pending"] == 0 for batch in listing)
    assert all(batch["failed"] == 0 and batch["rejected"] == 0 for batch in listing)


def test_killed_while_reading_the_file_then_followed_and_uploaded_again(sandbox, tmp_path, env):
    """The first job leaves while the file is still read (issue 14). A kill then leaves a batch
    'reading' with part of the file; following it sends what was stored and says the file was
    not read to the end, and uploading the file again completes it with nothing doubled."""
    total = 3000
    path = sheet(tmp_path, total)
    args = ["upload", str(path), *server_args(sandbox), "--batch-size", "10", "--json"]
    upload_killed_once(args, env, lambda: sandbox.request_count("POST", "/api/tracker") > 0)
    [killed] = json.loads(dhims2("status", "--json", env=env).stdout)["batches"]
    assert killed["reading"] == "reading" and killed["total"] < total, "killed after reading"

    followed = dhims2("status", killed["batch"], "--follow", *server_args(sandbox), env=env)
    assert followed.returncode == 1, followed.stderr
    assert "was not read to the end" in followed.stdout
    [after] = json.loads(dhims2("status", "--json", env=env).stdout)["batches"]
    assert after["reading"] == "stopped" and after["pending"] == 0
    # A job the kill cut off before its id was stored is found in DHIS2 and reads "updated".
    assert after["created"] + after["updated"] == after["total"] == killed["total"]

    rerun = dhims2(*args[:-3], "--batch-size", "500", "--json", env=env)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["reading"] == "read" and report["created"] + report["updated"] == total
    assert report["updated"] == killed["total"]  # sent again under the same event UIDs
    stored = Counter(event["event"] for event in sandbox.stored_events())
    assert len(stored) == total and set(stored.values()) == {1}


def test_demo_runs_end_to_end(env):
    result = dhims2("demo", "--latency-ms", "5", "--per-event-ms", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert "DHIS2 sandbox" in result.stdout
    assert "rejected" in result.stdout
    holds = [line for line in result.stdout.splitlines() if line.startswith("DHIS2 now holds")]
    assert len(holds) == 2 and holds[0] == holds[1], "a re-upload must not add events"


def test_records_without_a_report_date_are_dated_by_their_admission(sandbox, tmp_path, env):
    def drop_report_date(rows):
        for row in rows:
            del row["occurredAt"]

    path = sheet(tmp_path, 3, edit=drop_report_date)
    result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
    assert result.returncode == 0, result.stderr
    stored = sandbox.stored_events()
    assert len(stored) == 3
    for event in stored:
        admission = next(
            v["value"] for v in event["dataValues"] if v["dataElement"] == "HsMaBh3wKed"
        )
        assert event["occurredAt"].startswith(admission)


def test_a_configured_batch_size_fixes_the_job_size_and_auto_sizes_to_the_server(
    sandbox, tmp_path, env
):
    assert dhims2("config", "--batch-size", "7", env=env).returncode == 0
    fixed = dhims2("upload", str(sheet(tmp_path, 15)), *server_args(sandbox), env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "Jobs of 7 events (the configured batch size)" in fixed.stderr
    assert dhims2("config", "--batch-size", "auto", env=env).returncode == 0
    assert json.loads(dhims2("config", "--json", env=env).stdout)["batch_size"] is None
    sized = dhims2("upload", str(sheet(tmp_path, 5, tag="D")), *server_args(sandbox), env=env)
    assert sized.returncode == 0, sized.stderr
    # The jobs of 7 taught it the server's costs: the next upload starts with them.
    assert re.search(r"Jobs of \d+ events \(sized to the server: [\d.]+ s per job", sized.stderr)
    refused = dhims2("config", "--batch-size", "many", env=env)
    assert refused.returncode == 2 and "`many` is not a whole number or `auto`" in refused.stderr
