"""What a clerk or a newcomer reads from `dhims2`: one clear line per problem, summaries instead of
floods, and a way forward after every stop. The real command, as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from dhims2.sandbox import Sandbox
from test_cli import PYTHON, dhims2, server_args, sheet

GENDER = "Gender (morbidity/mortality)"
COST = "Cost of treatment"


def batches(env) -> list[dict]:
    listing = dhims2("status", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    return json.loads(listing.stdout)["batches"]


def assert_one_line_error(result, *fragments: str) -> None:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- help and usage ------------------------------------------------------------------------------


def test_a_bare_dhims2_prints_the_help_which_names_xlsx(env):
    result = dhims2(env=env)
    assert result.returncode == 2
    assert result.stdout.startswith("usage: dhims2")
    assert "upload" in result.stdout and ".xlsx" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_server_address_without_a_scheme_is_a_usage_error(tmp_path, env):
    path = sheet(tmp_path, 2)
    result = dhims2(
        "upload", str(path), "--server", "events.chimgh.org/events", "--token", "t", env=env
    )
    assert result.returncode == 2
    assert_one_line_error(result, "https://")


def test_a_404_at_the_servers_root_suggests_the_context_path(sandbox, tmp_path, env):
    path = sheet(tmp_path, 2)
    root = sandbox.base_url.rsplit("/events", 1)[0]
    result = dhims2("upload", str(path), "--server", root, "--token", "t", env=env)
    assert result.returncode == 3
    assert_one_line_error(result, "HTTP 404", "context path", "/events")


# -- input ---------------------------------------------------------------------------------------


def test_a_missing_compulsory_column_is_reported_once_at_the_header(sandbox, tmp_path, env):
    def drop_patient_number(rows):
        for row in rows:
            del row["Patient number"]

    path = sheet(tmp_path, 300, edit=drop_patient_number)
    result = dhims2("upload", str(path), *server_args(sandbox), env=env)
    assert result.returncode == 2
    assert_one_line_error(result, "records.csv", '"Patient number"', "No column")
    assert result.stdout == ""
    assert sandbox.stored_events() == [] and batches(env) == []


def test_an_error_of_many_rows_is_summarised_and_json_keeps_every_one(sandbox, tmp_path, env):
    def misspell(rows):
        for row in rows[:40]:
            row[GENDER] = "Malee"
        rows[45][GENDER] = "Femal"

    path = sheet(tmp_path, 50, edit=misspell)
    result = dhims2("upload", str(path), *server_args(sandbox), env=env)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if "[E1125]" in line]
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("  40 rows (2, 3, 4, 5, 6, ...): rejected: Gender")
    assert lines[1].startswith("  row 47: rejected: Gender")

    dry = dhims2("upload", str(path), *server_args(sandbox), "--dry-run", env=env)
    assert [line for line in dry.stdout.splitlines() if "[E1125]" in line] == [
        line.replace("rejected: ", "") for line in lines
    ]
    as_json = dhims2("upload", str(path), *server_args(sandbox), "--dry-run", "--json", env=env)
    records = json.loads(as_json.stdout)["records"]
    assert sum(bool(record["errors"]) for record in records) == 41


def test_a_header_only_csv_or_an_empty_json_list_is_no_records(sandbox, tmp_path, env):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("Patient number,Age\n", encoding="utf-8")
    empty_list = tmp_path / "empty.json"
    empty_list.write_text("[]", encoding="utf-8")
    for path in (header_only, empty_list):
        result = dhims2("upload", str(path), *server_args(sandbox), env=env)
        assert result.returncode == 2
        assert_one_line_error(result, path.name, "no records")
    assert batches(env) == []


def test_amounts_in_cedis_are_numbers(sandbox, tmp_path, env):
    amounts = ["GH₵ 823", "GHS 823", "₵823", "823 cedis", "GH¢823.50", "1,200 GHS"]

    def in_cedis(rows):
        for row, amount in zip(rows, amounts, strict=True):
            row[COST] = amount

    path = sheet(tmp_path, len(amounts), edit=in_cedis)
    result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
    assert result.returncode == 0, result.stdout
    costs = sorted(
        value["value"]
        for event in sandbox.stored_events()
        for value in event["dataValues"]
        if value["dataElement"] == "fRkwcThGCTM"
    )
    assert costs == sorted(["823", "823", "823", "823", "823.5", "1200"])


# -- --export-invalid ----------------------------------------------------------------------------


def test_export_to_a_missing_folder_is_refused_before_anything_is_sent(sandbox, tmp_path, env):
    path = sheet(tmp_path, 3)
    export = tmp_path / "no such folder" / "bad.csv"
    result = dhims2(
        "upload", str(path), *server_args(sandbox), "--export-invalid", str(export), env=env
    )
    assert result.returncode == 2
    assert_one_line_error(result, str(export), "no folder")
    assert "records.csv" not in result.stderr
    assert sandbox.stored_events() == [] and batches(env) == []


def test_export_over_an_existing_file_needs_force(sandbox, tmp_path, env):
    path = sheet(tmp_path, 3, edit=lambda rows: rows[0].update({GENDER: "Malee"}))
    export = tmp_path / "bad.csv"
    export.write_text("kept", encoding="utf-8")
    args = ["upload", str(path), *server_args(sandbox), "--export-invalid", str(export)]
    refused = dhims2(*args, env=env)
    assert refused.returncode == 2
    assert_one_line_error(refused, str(export), "--force")
    assert export.read_text(encoding="utf-8") == "kept" and batches(env) == []

    forced = dhims2(*args, "--force", env=env)
    assert forced.returncode == 1
    assert "Malee" in export.read_text(encoding="utf-8-sig")


def test_an_export_that_cannot_be_written_never_fails_a_successful_upload(sandbox, tmp_path, env):
    path = sheet(tmp_path, 3)
    # /dev/full accepts the open and refuses the write (ENOSPC), after the upload is done.
    result = dhims2(
        "upload",
        str(path),
        *server_args(sandbox),
        "--export-invalid",
        "/dev/full",
        "--force",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "could not write --export-invalid /dev/full" in result.stderr
    assert len(sandbox.stored_events()) == 3


# -- settings and the data folder ----------------------------------------------------------------


def test_a_damaged_config_file_is_moved_aside_when_settings_are_saved(tmp_path, env):
    config_dir = Path(env["DHIMS2_CONFIG_DIR"])
    config_dir.mkdir(parents=True)
    (config_dir / "config.json").write_text("{ not json", encoding="utf-8")

    shown = dhims2("config", env=env)
    assert shown.returncode == 2
    assert_one_line_error(shown, "config.json", "not valid JSON", "dhims2 config --server")

    saved = dhims2("config", "--server", "https://dhis2.example.org/events/", env=env)
    assert saved.returncode == 0, saved.stderr
    assert "moved it to" in saved.stderr
    (aside,) = config_dir.glob("config.json.damaged-*")
    assert aside.read_text(encoding="utf-8") == "{ not json"
    stored = json.loads((config_dir / "config.json").read_text(encoding="utf-8"))
    assert stored["server"] == "https://dhis2.example.org/events/"


def test_clear_token_says_it_cleared_the_token(env):
    dhims2("config", "--token", "-", env=env, stdin="d2p_made_up_for_the_test\n")
    cleared = dhims2("config", "--clear-token", env=env)
    assert cleared.returncode == 0
    assert cleared.stdout.splitlines()[0].startswith("cleared the saved token in ")
    assert json.loads(dhims2("config", "--json", env=env).stdout)["token_set"] is False


def test_an_unusable_data_folder_is_a_one_line_error(tmp_path, env):
    (tmp_path / "a file").write_text("not a folder", encoding="utf-8")
    result = dhims2("status", env={**env, "DHIMS2_DATA_DIR": str(tmp_path / "a file" / "data")})
    assert result.returncode == 2
    assert_one_line_error(result, "DHIMS2_DATA_DIR", "a file")


def test_a_closed_output_pipe_ends_quietly(sandbox, tmp_path, env):
    path = sheet(tmp_path, 1500, edit=lambda rows: [row.update({GENDER: "x"}) for row in rows])
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "dhims2.cli",
            "upload",
            str(path),
            *server_args(sandbox),
            "--dry-run",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.read(100)
    process.stdout.close()  # what `| head` does after its lines
    status = process.wait(timeout=120)
    stderr = process.stderr.read().decode()
    assert status == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


# -- after a stop --------------------------------------------------------------------------------


def test_failed_records_are_followed_by_the_retry_command(sandbox, tmp_path, env):
    sandbox.knobs.job_failure_rate = 1.0
    path = sheet(tmp_path, 3)
    result = dhims2("upload", str(path), *server_args(sandbox), env=env)
    assert result.returncode == 1
    (batch,) = batches(env)
    assert batch["failed"] == 3
    assert f"`dhims2 retry {batch['batch']}` sends them again" in result.stdout


def test_ctrl_c_names_the_batch_and_how_to_resume(sandbox, tmp_path, env):
    sandbox.knobs.per_event_seconds = 0.05
    path = sheet(tmp_path, 100)
    process = subprocess.Popen(
        [PYTHON, "-m", "dhims2.cli", "upload", str(path), *server_args(sandbox)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not batches(env):
        assert time.monotonic() < deadline, "no batch was made"
        time.sleep(0.1)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    (batch,) = batches(env)
    assert f"Batch {batch['batch']} is saved on this computer" in stderr
    assert f"`dhims2 status {batch['batch']} --follow`" in stderr
    assert "Traceback" not in stderr


# -- progress ------------------------------------------------------------------------------------


def test_without_a_terminal_progress_is_lines_on_stderr_from_the_reading_on(sandbox, tmp_path, env):
    path = sheet(tmp_path, 20)
    result = dhims2("upload", str(path), *server_args(sandbox), "--json", env=env)
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert lines[0] == "Reading and checking records.csv ..."
    assert any(line.startswith("Uploading: ") for line in lines)
    assert "\r" not in result.stderr
    json.loads(result.stdout)  # stdout stays one JSON object


# -- dry run offline ----------------------------------------------------------------------------


def test_a_dry_run_offline_checks_against_the_program_saved_earlier(tmp_path, env):
    path = sheet(tmp_path, 4, edit=lambda rows: rows[1].update({GENDER: "Malee"}))
    with Sandbox() as sandbox:
        server = sandbox.base_url
        never_seen = dhims2(
            "upload", str(path), "--server", server, "--dry-run", "--offline", env=env
        )
        assert never_seen.returncode == 2
        assert_one_line_error(never_seen, "not saved on this computer")
        online = dhims2("upload", str(path), *server_args(sandbox), "--dry-run", env=env)
        assert online.returncode == 1, online.stderr
    offline = dhims2("upload", str(path), "--server", server, "--dry-run", "--offline", env=env)
    assert offline.returncode == 1, offline.stderr
    assert "row 3: Gender (morbidity/mortality) = 'Malee'" in offline.stdout
    assert "Dry run: 3 of 4 records would be accepted" in offline.stdout
    assert "unreachable" not in offline.stderr
    without_dry_run = dhims2("upload", str(path), "--server", server, "--offline", env=env)
    assert without_dry_run.returncode == 2


# -- template suggest ----------------------------------------------------------------------------


def test_suggest_saves_no_template_that_leaves_compulsory_fields_unfilled(tmp_path, env):
    register = tmp_path / "register.csv"
    register.write_text(
        "Folder No.,Admitted,Sex,Age\nSYN-1,03-02-2025,M,34\nSYN-2,04-02-2025,F,3\n",
        encoding="utf-8",
    )
    template = tmp_path / "mine.json"
    refused = dhims2("template", "suggest", str(register), "--save", str(template), env=env)
    assert refused.returncode == 2
    assert "not saved" in refused.stderr and "--force" in refused.stderr
    assert not template.exists()

    forced = dhims2(
        "template", "suggest", str(register), "--save", str(template), "--force", env=env
    )
    assert forced.returncode == 1  # saved, and still incomplete
    columns = json.loads(template.read_text(encoding="utf-8"))["columns"]
    assert columns["Admitted"]["dataElement"] == "HsMaBh3wKed"  # date of admission
    assert columns["Folder No."]["dataElement"] == "h0Ef6ykTpNB"  # patient number
