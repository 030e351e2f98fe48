"""A full disk, a read-only data folder and a damaged store, provoked for real on the real CLI
and host: each ends with its own message and exit status, never a traceback; `status` still
shows the queue, and a damaged store is moved aside, recovered, and re-uploading duplicates
nothing."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhims2.errors import ExitStatus
from dhims2.forms.synthetic import synthetic_rows, write_csv
from dhims2.queue.faults import StoreCorrupt
from dhims2.queue.recovery import move_aside_and_recover, open_recovering
from dhims2.queue.store import STORE_FILE_NAME, Store, damage_marker
from host_process import Host

PYTHON = sys.executable
CHROME_ARGV = ["chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/", "--parent-window=0"]


def dhims2(*args: str, env: dict[str, str], file_size_limit: int | None = None):
    def limit() -> None:
        # RLIMIT_FSIZE: no file may grow past this many bytes, as on a full disk. Python
        # ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process.
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [PYTHON, "-m", "dhims2.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit if file_size_limit is not None else None,
    )


def upload(sandbox, path: Path, env: dict[str, str], **kwargs):
    token = ["--server", sandbox.base_url, "--token", sandbox.create_token()]
    return dhims2("upload", str(path), *token, "--json", env=env, **kwargs)


@pytest.fixture
def uploaded(sandbox, tmp_path, env) -> str:
    """A data folder holding one finished batch of 20 records."""
    result = upload(sandbox, write_csv(tmp_path / "first.csv", list(synthetic_rows(20))), env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["batch"]


def test_a_full_disk_is_its_own_exit_status_and_status_still_works(
    sandbox, tmp_path, env, uploaded
):
    second = write_csv(tmp_path / "second.csv", list(synthetic_rows(20, tag="S")))
    full = upload(sandbox, second, env, file_size_limit=0)
    assert full.returncode == ExitStatus.DISK_FULL, full.stderr
    assert "is full or refused to write" in full.stderr and "Traceback" not in full.stderr
    shown = dhims2("status", "--json", env=env, file_size_limit=0)
    assert shown.returncode == 0, shown.stderr
    assert [b["batch"] for b in json.loads(shown.stdout)["batches"]] == [uploaded]
    assert "nothing can be changed" in shown.stderr


def test_a_disk_that_fills_up_during_an_upload_is_reported_the_same_way(
    sandbox, tmp_path, env, uploaded
):
    store_size = (Path(env["DHIMS2_DATA_DIR"]) / STORE_FILE_NAME).stat().st_size
    rows = list(synthetic_rows(400, tag="B"))
    for row in rows:
        row["Address"] = "x" * 2000  # enough to outgrow the limit while queueing
    full = upload(sandbox, write_csv(tmp_path / "big.csv", rows), env, file_size_limit=store_size)
    assert full.returncode == ExitStatus.DISK_FULL, full.stderr
    assert "Traceback" not in full.stderr


@pytest.fixture
def read_only_folder(env: dict[str, str]) -> Iterator[Path]:
    """The data folder made unwritable in a way that holds for root too: tests run as root
    here, and root ignores permission bits, so the folder and the store are made immutable
    (chattr +i, honoured by ext4 for root as well); for other users chmod is enough."""
    folder = Path(env["DHIMS2_DATA_DIR"])
    targets = [folder, *folder.iterdir()]
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", *map(str, targets)]).returncode == 0:
        yield folder
        subprocess.run([chattr, "-i", *map(str, targets)], check=True)
        return
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def test_a_read_only_data_folder_is_its_own_exit_status(
    sandbox, tmp_path, env, uploaded, read_only_folder
):
    probe = read_only_folder / "probe"
    with pytest.raises(OSError):
        probe.write_text("x")
    second = write_csv(tmp_path / "second.csv", list(synthetic_rows(5, tag="R")))
    refused = upload(sandbox, second, env)
    assert refused.returncode == ExitStatus.STORE_READ_ONLY, refused.stderr
    assert "cannot be written" in refused.stderr and "Traceback" not in refused.stderr
    shown = dhims2("status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert [b["batch"] for b in json.loads(shown.stdout)["batches"]] == [uploaded]


def test_the_host_answers_a_read_only_store_with_its_own_code(env, uploaded, read_only_folder):
    host = Host(CHROME_ARGV, env)
    try:
        assert host.receive()["type"] == "hello"
        reply = host.request("list_batches")
        assert reply["ok"] is False and reply["error"]["code"] == "STORE_READ_ONLY"
    finally:
        host.process.kill()
        host.process.wait()


def test_a_damaged_store_is_moved_aside_and_re_uploading_duplicates_nothing(
    sandbox, tmp_path, env, uploaded
):
    store = Path(env["DHIMS2_DATA_DIR"]) / STORE_FILE_NAME
    store.write_bytes(b"this is not a database, a disk wrote over it " * 200)
    shown = dhims2("status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "the upload store was damaged: it was moved to" in shown.stderr
    assert list(store.parent.glob(f"{STORE_FILE_NAME}.damaged-*"))
    again = upload(sandbox, tmp_path / "first.csv", env)
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["created"], json.loads(again.stdout)["updated"]) == (0, 20)
    assert len(sandbox.stored_events()) == 20


def test_damage_found_while_in_use_is_marked_and_the_next_open_recovers_what_it_can(
    tmp_path, inpatient_event
):
    from dhims2.forms.metadata import PROGRAM_UID, STAGE_UID
    from dhims2.queue.store import NewRecord

    path = tmp_path / STORE_FILE_NAME
    with Store(path) as store:
        batch = store.create_batch(
            server="https://events.chimgh.org/events",
            program=PROGRAM_UID,
            stage=STAGE_UID,
            source="a.csv",
            records=[NewRecord(row, inpatient_event(), {}) for row in range(2, 40)],
        )
        key = store.install_secret("identity-key")
    aside, kept = move_aside_and_recover(path)
    assert kept == 38 and aside.exists()
    with Store(path) as recovered:
        assert recovered.batch(batch).counts == {"queued": 38}
        assert recovered.install_secret("identity-key") == key  # identities still match

    with Store(path) as store:
        size = path.stat().st_size
        with path.open("r+b") as raw:  # keep the header, ruin every page after it
            raw.seek(4096)
            raw.write(b"\xff" * (size - 4096))
        with pytest.raises(StoreCorrupt):
            store.list_batches()
            store.batch_records(batch)
    assert damage_marker(path).exists()
    notices: list[str] = []
    with open_recovering(path, notices.append) as fresh:
        fresh.cache_put("usable", True)  # a working store again
        assert fresh.cache_get("usable") is True
    assert notices and "moved to" in notices[0] and not damage_marker(path).exists()
