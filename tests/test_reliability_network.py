"""A bad network, a server that restarts, a session that ends and a server out of reach, each
while the real host sends a sheet of 100-200 records: nothing is lost, nothing is duplicated,
and the extension is told what is going on.

bench/reliability.py runs the same scenarios at full size."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reliability


def assert_every_record_stored_once(trial: reliability.Trial) -> None:
    assert (trial.stored, trial.duplicates, trial.lost) == (trial.records, 0, 0), trial
    assert trial.pending == 0 and trial.unsuccessful == 0, trial
    assert trial.leaks == [] and trial.foreign_credentials == set()


def test_gateway_errors_dropped_connections_and_latency_spikes(tmp_path: Path) -> None:
    trial = reliability.faulty_network_trial(tmp_path, records=200, seed=3)
    assert_every_record_stored_once(trial)


def test_a_server_restart_that_forgets_a_running_job_and_those_queued_behind_it(
    tmp_path: Path,
) -> None:
    # Resending what the server forgot takes seconds; 20 s is room for a slow machine.
    trial = reliability.server_restart_trial(
        tmp_path, records=100, restarts=1, seed=4, while_seen_running=True, settle_seconds=20
    )
    assert trial.counts["jobs lost by the server"] >= 1
    assert_every_record_stored_once(trial)


def test_an_expired_session_holds_the_records_asks_for_sign_in_and_resumes(tmp_path: Path) -> None:
    trial = reliability.session_expiry_trial(tmp_path, records=200, expiries=1, seed=5)
    assert trial.counts["sign-in prompts"] == 1
    assert trial.counts["imports sent while signed out"] == 0
    assert trial.counts["requests sent while signed out"] == 0
    assert_every_record_stored_once(trial)


def test_records_captured_offline_are_kept_and_sent_when_the_server_returns(
    tmp_path: Path,
) -> None:
    trial = reliability.offline_trial(tmp_path, records=100, outages=0, seed=6)
    assert trial.counts["captured while offline"] == 100
    assert trial.counts["stored while offline"] == 0
    assert trial.counts["offline notice code is SERVER_UNREACHABLE"]
    assert_every_record_stored_once(trial)
