"""The host killed with SIGKILL at random instants of an upload, and started again each time, as
when a laptop is shut mid-upload: every record reaches DHIS2 exactly once and settles locally.

bench/reliability.py runs the same scenario at full size (1,000 records, 20 trials)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from dhims2.sandbox import Sandbox

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reliability


def test_host_killed_at_five_random_instants_stores_every_record_once(tmp_path: Path) -> None:
    trial = reliability.crash_trial(tmp_path, records=200, kills=5, window=1.0, seed=11)

    assert trial.counts["kills mid-upload"] >= 1, "no kill landed while records were pending"
    assert (trial.stored, trial.duplicates, trial.lost) == (200, 0, 0)
    assert trial.pending == 0 and trial.unsuccessful == 0
    assert trial.leaks == []


def test_a_sheet_being_read_when_the_host_is_killed_leaves_no_copy_behind(tmp_path: Path) -> None:
    workspace = reliability.Workspace(tmp_path)
    sheet = reliability.synthetic_sheet(workspace, 3000, tag="C")
    with Sandbox() as sandbox:
        host = reliability.HostSession(workspace)
        host.configure(sandbox.base_url, auth="token", token=sandbox.create_token())
        host.send("upload", sheet=sheet.message)
        deadline = time.monotonic() + 30
        while not list(workspace.data_dir.glob(".sheet-*")):
            assert time.monotonic() < deadline, "the host never wrote the sheet down"
            time.sleep(0.005)
        host.kill()
        with reliability.HostSession(workspace) as restarted:
            assert restarted.request("list_batches")["ok"]
            copies = [path.name for path in workspace.data_dir.rglob(sheet.message["name"])]
    # The copy holds every patient of the sheet and nothing would ever purge it.
    assert copies == []
