"""Contract tests: the real `dhims2-host` process, driven through its pipes as a browser would."""

from __future__ import annotations

import json
import os
import signal
import stat
import struct
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhims2 import __version__
from host_process import TIMEOUT, Host, frame

CHROME_ARGV = ["chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/", "--parent-window=0"]
FIREFOX_ARGV = [
    "/home/u/.mozilla/native-messaging-hosts/org.dhims2.uploader.json",
    "uploader@dhims2.org",
]
# Every request type of the protocol; each one must be in the host's hello.
ALL_TYPES = sorted(
    [
        "cancel",
        "check_connection",
        "configure",
        "forget",
        "get_batch",
        "get_config",
        "get_patients",
        "get_program",
        "list_batches",
        "list_templates",
        "ping",
        "retry",
        "upload",
        "validate",
    ]
)

# Handlers added through the public registry, the way later message types are added; loaded into
# the real host process by Python's sitecustomize hook.
EXTRA_HANDLERS = textwrap.dedent(
    """
    import atexit, os
    from dhims2.browser import dispatch, handlers  # noqa: F401 (registers them)

    @dispatch.register("crash", "ping")
    def crash(message, context):
        raise RuntimeError(os.environ["SYNTHETIC_PATIENT"])

    @dispatch.register("slow", "ping")
    def slow(message, context):
        context.on_shutdown(lambda: open(os.environ["SHUTDOWN_MARK"], "w").close())
        context.push({"type": "batch.progress", "batch": "b-1", "done": 0})
        context.shutdown.wait(60)
        return {"stopped": context.shutdown.is_set()}

    # Output that must never reach the browser's channel.
    atexit.register(print, "stray print at exit")
    atexit.register(os.system, "echo stray output of a child process")
    """
)


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / name for name in ("config", "data", "logs", "plugins")}


@pytest.fixture
def env(folders: dict[str, Path]) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DHIMS2_SERVER", "DHIMS2_TOKEN", "PYTHONPATH")
    }
    environment.update(
        DHIMS2_CONFIG_DIR=str(folders["config"]),
        DHIMS2_DATA_DIR=str(folders["data"]),
        DHIMS2_LOG_DIR=str(folders["logs"]),
    )
    return environment


@pytest.fixture
def host(env: dict[str, str]) -> Iterator[Host]:
    started = Host(CHROME_ARGV, env)
    assert started.receive()["type"] == "hello"
    yield started
    started.process.kill()
    started.process.wait()


@pytest.fixture
def extended_host(env: dict[str, str], folders: dict[str, Path]) -> Iterator[Host]:
    folders["plugins"].mkdir()
    (folders["plugins"] / "sitecustomize.py").write_text(EXTRA_HANDLERS, encoding="utf-8")
    env.update(
        PYTHONPATH=str(folders["plugins"]),
        SHUTDOWN_MARK=str(folders["plugins"] / "hooked"),
        SYNTHETIC_PATIENT="Patient Kofi Boateng, 34 years",
    )
    started = Host(CHROME_ARGV, env)
    assert started.receive()["type"] == "hello"
    yield started
    started.process.kill()
    started.process.wait()


@pytest.mark.parametrize("argv", [CHROME_ARGV, CHROME_ARGV[:1], FIREFOX_ARGV, []])
def test_the_host_speaks_first_with_hello_whatever_the_browser_passes(
    argv: list[str], env: dict[str, str]
) -> None:
    host = Host(argv, env)
    assert host.receive() == {
        "type": "hello",
        "version": __version__,
        "protocol": 1,
        "capabilities": ALL_TYPES,
    }
    host.close_stdin()
    assert host.exit_code() == 0


def test_ping_answers_with_the_request_id(host: Host) -> None:
    assert host.request("ping", "r-17") == {
        "id": "r-17",
        "ok": True,
        "version": __version__,
        "protocol": 1,
    }


def test_configure_then_get_config_round_trip_without_revealing_the_token(
    host: Host, folders: dict[str, Path]
) -> None:
    configured = host.request(
        "configure", server="https://dhims2.example.org/events", auth="token", token="d2pat_secret"
    )
    assert configured["ok"], configured
    fetched = host.request("get_config", "r-2")
    assert fetched["config"] == configured["config"]
    assert fetched["config"]["server"] == "https://dhims2.example.org/events/"
    assert fetched["config"]["auth"] == "token"
    assert fetched["config"]["token_set"] is True
    assert "d2pat_secret" not in json.dumps(fetched)
    assert fetched["config_file"] == str(folders["config"] / "config.json")
    assert stat.S_IMODE((folders["config"] / "config.json").stat().st_mode) == 0o600

    cleared = host.request("configure", "r-3", token="")
    assert cleared["config"]["token_set"] is False
    assert cleared["config"]["server"] == "https://dhims2.example.org/events/"


def test_configure_refuses_plain_http_unless_allowed_or_on_this_computer(host: Host) -> None:
    remote = "http://dhims2.example.org/events/"
    refused = host.request("configure", server=remote)
    assert refused["error"]["code"] == "INSECURE_SERVER"
    allowed = host.request("configure", "r-2", server=remote, allow_insecure_http=True)
    assert allowed["ok"] and allowed["config"]["server"] == remote
    local = host.request(
        "configure", "r-3", server="http://127.0.0.1:9/", allow_insecure_http=False
    )
    assert local["ok"] and local["config"]["server"] == "http://127.0.0.1:9/"


def test_configure_names_a_server_the_schema_lets_through_but_config_refuses(host: Host) -> None:
    refused = host.request("configure", server="https://user:pw@dhims2.example.org/")
    assert refused["error"]["code"] == "INVALID_MESSAGE"
    assert refused["error"]["details"]["field"] == "server"


def test_environment_overrides_are_reported_by_get_config(env: dict[str, str]) -> None:
    env.update(DHIMS2_SERVER="https://override.example.org/", DHIMS2_TOKEN="env-token")
    host = Host(CHROME_ARGV, env)
    host.receive()
    reply = host.request("get_config")
    assert reply["config"]["server"] == "https://override.example.org/"
    assert reply["overridden_by_env"] == ["server", "token"]
    host.close_stdin()
    assert host.exit_code() == 0


def test_an_unreadable_config_file_is_not_configured_and_configure_repairs_it(
    host: Host, folders: dict[str, Path]
) -> None:
    folders["config"].mkdir()
    (folders["config"] / "config.json").write_text("{oops", encoding="utf-8")
    broken = host.request("get_config")
    assert broken["error"]["code"] == "NOT_CONFIGURED"
    assert "config.json is not valid JSON" in broken["error"]["message"]
    repaired = host.request("configure", "r-2", batch_size=50)
    assert repaired["ok"] and repaired["config"]["batch_size"] == 50


def test_invalid_json_gets_bad_frame_and_the_session_goes_on(host: Host) -> None:
    host.send_bytes(frame(b"{this is not json"))
    refused = host.receive()
    assert refused["id"] is None and refused["ok"] is False
    assert refused["error"]["code"] == "BAD_FRAME"
    assert host.request("ping")["ok"]


def test_a_schema_violation_names_the_field(host: Host) -> None:
    reply = host.request("configure", batch_size=5000)
    assert reply["id"] == "r-1"
    assert reply["error"]["code"] == "INVALID_MESSAGE"
    assert reply["error"]["details"]["field"] == "batch_size"


def test_a_bad_envelope_is_refused_with_no_id_to_echo(host: Host) -> None:
    host.send({"id": 42, "type": "ping"})
    reply = host.receive()
    assert reply["id"] is None
    assert reply["error"]["details"]["field"] == "id"


def test_an_unlisted_type_is_unknown(host: Host) -> None:
    reply = host.request("format_disk")
    assert reply["error"]["code"] == "UNKNOWN_TYPE"
    assert reply["error"]["details"]["capabilities"] == ALL_TYPES


def test_an_oversize_header_is_answered_and_the_host_exits_cleanly(host: Host) -> None:
    host.send_bytes(struct.pack("=I", 0xFFFFFFF0))
    refused = host.receive()
    assert refused["error"]["code"] == "MESSAGE_TOO_LARGE"
    assert host.remaining_messages() == []
    assert host.exit_code() == 0


def test_a_frame_cut_short_by_eof_is_answered_and_the_host_exits_cleanly(host: Host) -> None:
    host.send_bytes(frame(b'{"id": "r-1"', declared=100))
    host.close_stdin()
    assert [m["error"]["code"] for m in host.remaining_messages()] == ["BAD_FRAME"]
    assert host.exit_code() == 0


def test_eof_ends_the_host_with_status_0(host: Host) -> None:
    assert host.request("ping")["ok"]
    host.close_stdin()
    assert host.remaining_messages() == []
    assert host.exit_code() == 0


def test_sigterm_ends_the_host_with_status_0(host: Host) -> None:
    assert host.request("ping")["ok"]
    host.process.send_signal(signal.SIGTERM)
    assert host.exit_code() == 0


def test_a_failing_handler_gets_internal_error_without_details_and_the_host_lives_on(
    extended_host: Host, folders: dict[str, Path]
) -> None:
    reply = extended_host.request("crash")
    assert reply["error"]["code"] == "INTERNAL_ERROR"
    assert "Kofi" not in json.dumps(reply) and "Traceback" not in json.dumps(reply)
    assert extended_host.request("ping", "r-2")["ok"]
    extended_host.close_stdin()
    assert extended_host.exit_code() == 0
    log = (folders["logs"] / "host.log").read_text("utf-8")
    assert "handler for crash failed with RuntimeError" in log
    assert "Kofi" not in log


def test_a_slow_request_does_not_hold_up_others(extended_host: Host) -> None:
    extended_host.send({"id": "r-slow", "type": "slow"})
    assert extended_host.receive() == {"type": "batch.progress", "batch": "b-1", "done": 0}
    assert extended_host.request("ping", "r-fast")["id"] == "r-fast"


def test_sigterm_stops_running_handlers_and_runs_shutdown_hooks(
    extended_host: Host, folders: dict[str, Path]
) -> None:
    extended_host.send({"id": "r-slow", "type": "slow"})
    assert extended_host.receive()["type"] == "batch.progress"
    extended_host.process.send_signal(signal.SIGTERM)
    assert extended_host.exit_code() == 0
    assert extended_host.remaining_messages() == [{"id": "r-slow", "ok": True, "stopped": True}]
    assert (folders["plugins"] / "hooked").exists()


def test_stdout_carries_frames_only_even_with_stray_output(extended_host: Host) -> None:
    assert extended_host.request("ping")["ok"]
    extended_host.close_stdin()
    assert extended_host.remaining_messages() == []  # every byte on stdout parsed as a frame
    assert extended_host.exit_code() == 0
    stderr = extended_host.stderr()
    assert "stray print at exit" in stderr
    assert "stray output of a child process" in stderr


def test_the_log_records_requests_but_never_their_contents(
    host: Host, folders: dict[str, Path]
) -> None:
    host.request("configure", token="d2pat_secret_token", server="https://secret-host.example/")
    host.request("format_disk", "r-2", note="Patient Ama")
    host.close_stdin()
    assert host.exit_code() == 0
    log = (folders["logs"] / "host.log").read_text("utf-8")
    assert "configure -> ok" in log
    assert "(unregistered type) -> UNKNOWN_TYPE" in log
    for secret in ("d2pat_secret_token", "secret-host", "Ama", "format_disk"):
        assert secret not in log


def test_many_requests_in_one_burst_are_each_answered_once(host: Host) -> None:
    burst = b"".join(
        frame(json.dumps({"id": f"r-{n}", "type": "ping"}).encode()) for n in range(200)
    )
    started = time.monotonic()
    host.send_bytes(burst)
    ids = sorted(host.receive()["id"] for _ in range(200))
    assert ids == sorted(f"r-{n}" for n in range(200))
    assert time.monotonic() - started < TIMEOUT


def test_a_message_type_can_have_only_one_handler() -> None:
    from dhims2.browser import dispatch, handlers  # noqa: F401 (registers them)

    with pytest.raises(ValueError, match="'ping' already has a handler"):
        dispatch.register("ping")(lambda message, context: {})
    assert dispatch.capabilities() == ALL_TYPES
