"""The reliability and security campaign: nothing lost, nothing duplicated, nothing leaked.

    python bench/reliability.py                  # every scenario at full size (~12 minutes)
    python bench/reliability.py --quick          # every scenario at CI size (~1 minute)
    python bench/reliability.py crash offline    # only the scenarios named

Every scenario drives the real `dhims2-host` process through its pipes, as the browser does,
against sandbox DHIS2 servers in this process (so they can be restarted, cut off or made hostile
at chosen instants), then counts what the sandbox holds and what the host's store says. After each
run it scans the host's logs and its stderr for tokens, passwords, session cookies and patient
values, and checks that the data, config and log files are the owner's alone.

tests/test_reliability_*.py run the same scenarios at CI size; docs/RELIABILITY.md has the figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import os
import queue
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

REPOSITORY = Path(__file__).resolve().parents[1]
# The host driver is the one the contract tests use; harness is this folder's shared printing.
sys.path.insert(0, str(REPOSITORY / "tests"))
sys.path.insert(0, str(REPOSITORY / "bench"))

import harness  # noqa: E402

from dhims2.browser.framing import FrameError, read_message  # noqa: E402
from dhims2.browser.protocol import ERROR_CODES  # noqa: E402
from dhims2.forms.metadata import (  # noqa: E402
    ORG_UNIT_UID,
    PATIENT_NUMBER_UID,
    PROGRAM_UID,
    STAGE_UID,
)
from dhims2.forms.synthetic import in_patient_form, synthetic_rows, write_csv  # noqa: E402
from dhims2.queue.store import PENDING_STATES, STORE_FILE_NAME, Store  # noqa: E402
from dhims2.sandbox import Knobs, Sandbox  # noqa: E402
from host_process import Host, frame  # noqa: E402

EXTENSION_ORIGIN = "chrome-extension://lmooednijlmlhdgpkpcalnlmkcmdpfim/"
HELLO_SECONDS = 30.0
REPLY_SECONDS = 60.0
# Generous: after an outage the client's retries (up to ~8 s) and the sender's pauses (5 s,
# then 10 s, 20 s...) come before sending resumes.
SETTLE_SECONDS = 180.0
SETTLE_POLL_SECONDS = 0.2
# After a server restart, resending what it forgot should take seconds, not the follower's
# 10-minute patience for a job that may still be queued.
RESTART_SETTLE_SECONDS = 30.0
ADDRESS_MARKER = "Leakcheck Lane"
MESSAGES_SCHEMA = REPOSITORY / "host" / "dhims2" / "browser" / "schemas" / "messages.json"
UNSUCCESSFUL_STATES = ("rejected", "failed", "cancelled")


class ScenarioError(Exception):
    """A scenario could not run as designed (the host died, went silent or answered nonsense)."""


# --------------------------------------------------------------------------- the clerk's computer


@dataclass
class Workspace:
    """One computer's private folders for the host, and what its processes wrote to stderr."""

    root: Path
    stderr: list[str] = field(default_factory=list)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def env(self) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DHIMS2_")}
        environment.update(
            DHIMS2_CONFIG_DIR=str(self.config_dir),
            DHIMS2_DATA_DIR=str(self.data_dir),
            DHIMS2_LOG_DIR=str(self.log_dir),
        )
        return environment

    def open_store(self) -> Store:
        """The host's store, opened from outside it (SQLite lets both read it safely)."""
        return Store(self.data_dir / STORE_FILE_NAME)


@dataclass(frozen=True)
class Sheet:
    """A synthetic spreadsheet: the `sheet` field of an upload, and the values it must not leak."""

    message: dict[str, str]
    patient_numbers: frozenset[str]
    tag: str

    @property
    def patient_number_prefix(self) -> str:
        return f"VRH/{self.tag}/"


def synthetic_sheet(workspace: Workspace, count: int, *, tag: str, seed: int = 0) -> Sheet:
    """`count` valid records, each with a patient number and an address no log may show."""
    form = in_patient_form()
    label = {element.code: element.label for element in form.data_elements}
    rows = list(synthetic_rows(count, seed=seed, tag=tag))
    for index, row in enumerate(rows):
        row[label["ADDRESS"]] = f"{index} {ADDRESS_MARKER}"
    workspace.root.mkdir(parents=True, exist_ok=True)
    path = write_csv(workspace.root / f"ward-{tag}.csv", rows)
    message = {"name": path.name, "content_base64": base64.b64encode(path.read_bytes()).decode()}
    numbers = frozenset(row[label["PATIENT_NUMBER"]] for row in rows)
    return Sheet(message=message, patient_numbers=numbers, tag=tag)


# --------------------------------------------------------------------------- the host on pipes


class HostSession:
    """The real `dhims2-host`, driven through its pipes as the extension drives it."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.replies: dict[str, dict[str, Any]] = {}
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._host = Host([EXTENSION_ORIGIN], workspace.env())
        self._ended = False
        hello = self._take(time.monotonic() + HELLO_SECONDS)
        if hello is None or hello.get("type") != "hello":
            raise ScenarioError(f"the host did not start with hello: {hello!r}")

    def send(self, message_type: str, **fields: Any) -> str:
        request_id = f"{message_type}-{next(self._ids)}"
        self._host.send({"id": request_id, "type": message_type, **fields})
        return request_id

    def request(
        self, message_type: str, *, timeout: float = REPLY_SECONDS, **fields: Any
    ) -> dict[str, Any]:
        return self.reply(self.send(message_type, **fields), timeout)

    def reply(self, request_id: str, timeout: float = REPLY_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while request_id not in self.replies:
            if self._take(deadline) is None:
                raise ScenarioError(f"no reply to {request_id} within {timeout:.0f} s")
        return self.replies[request_id]

    def configure(self, server: str, **settings: Any) -> None:
        reply = self.request("configure", server=server, **settings)
        if not reply["ok"]:
            raise ScenarioError(f"configure refused: {reply['error']}")

    def wait_for_push(
        self,
        accept: Callable[[dict[str, Any]], bool],
        timeout: float,
        *,
        since: int = 0,
        what: str = "the awaited update",
    ) -> dict[str, Any]:
        """The first push from index `since` on that `accept` likes, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        checked = since
        while True:
            for push in self.pushes[checked:]:
                if accept(push):
                    return push
            checked = max(checked, len(self.pushes))
            if self._take(deadline) is None:
                raise ScenarioError(f"{what} did not come within {timeout:.0f} s")

    def collect(self, seconds: float) -> None:
        """Takes in whatever the host says for `seconds`."""
        deadline = time.monotonic() + seconds
        while self._take(deadline) is not None:
            pass

    def settle(self, timeout: float = SETTLE_SECONDS) -> list[dict[str, Any]]:
        """Asks for the batch list until no record is pending; returns the batches."""
        deadline = time.monotonic() + timeout
        while True:
            listing = self.request("list_batches", page_size=200)
            batches = listing["batches"]
            if batches and all(batch["pending"] == 0 for batch in batches):
                return batches
            if time.monotonic() >= deadline:
                pending = sum(batch["pending"] for batch in batches)
                raise ScenarioError(
                    f"{pending} records still pending after {timeout:.0f} s;"
                    f" sender {listing['sender']}"
                )
            self.collect(SETTLE_POLL_SECONDS)

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Closes the host unless it has already ended."""
        if not self._ended:
            self.close()

    def kill(self) -> None:
        """SIGKILL: no handler, no shutdown hook, no flush runs."""
        self._host.process.kill()
        self._end()

    def close(self) -> int:
        """What closing the browser does: stdin ends; returns the exit status."""
        self._host.close_stdin()
        return self._end()

    def _end(self) -> int:
        status = self._host.process.wait(timeout=HELLO_SECONDS)
        if not self._ended:
            self._ended = True
            self.workspace.stderr.append(self._host.stderr())
        return status

    def _take(self, deadline: float) -> dict[str, Any] | None:
        """Files the next message as a reply or a push; None once `deadline` has passed."""
        try:
            message = self._host.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if not isinstance(message, dict):
            raise ScenarioError(f"the host's stdout ended or held a non-frame: {message!r}")
        if "id" in message:
            self.replies[message["id"]] = message
        else:
            self.pushes.append(message)
        return message


def sign_in(sandbox: Sandbox) -> str:
    """A fresh DHIS2 session, as the browser holds one after the clerk logs in."""
    answer = requests.post(
        f"{sandbox.base_url}/api/auth/login",
        json={"username": sandbox.username, "password": sandbox.password},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.cookies["JSESSIONID"]


# --------------------------------------------------------------------------- what a run left


@dataclass
class Trial:
    """What one run left behind, in the sandbox and on the clerk's computer."""

    records: int
    stored: int  # events the sandbox holds
    duplicates: int  # events beyond one per patient
    lost: int  # patients with no event
    local_records: int  # records in the host's store (a re-upload adds a second copy)
    pending: int  # local records not yet in a final state
    unsuccessful: int  # local records rejected, failed or cancelled
    seconds: float
    leaks: list[str]
    loose_files: list[str]
    foreign_credentials: set[str]  # origins other than the configured one that got credentials
    counts: dict[str, float] = field(default_factory=dict)  # what is particular to the scenario

    @property
    def exact(self) -> bool:
        """Every record in DHIS2 exactly once, and every local record settled as accepted."""
        return (
            self.stored == self.records
            and self.duplicates == 0
            and self.lost == 0
            and self.pending == 0
            and self.unsuccessful == 0
        )

    @property
    def clean(self) -> bool:
        return not self.leaks and not self.loose_files and not self.foreign_credentials


def measure(
    workspace: Workspace,
    sheet: Sheet,
    sandbox: Sandbox,
    *,
    configured_origin: str,
    secrets: Iterable[str],
    started: float,
    counts: dict[str, float] | None = None,
) -> Trial:
    numbers = Counter(_patient_number(event) for event in sandbox.stored_events())
    with workspace.open_store() as store:
        states: Counter[str] = Counter()
        for batch in store.list_batches(limit=10_000):
            states.update(batch.counts)
    return Trial(
        records=len(sheet.patient_numbers),
        stored=sum(numbers.values()),
        duplicates=sum(count - 1 for count in numbers.values()),
        lost=len(sheet.patient_numbers - numbers.keys()),
        local_records=sum(states.values()),
        pending=sum(states[state] for state in PENDING_STATES),
        unsuccessful=sum(states[state] for state in UNSUCCESSFUL_STATES),
        seconds=time.monotonic() - started,
        leaks=leaks(workspace, [*secrets, sheet.patient_number_prefix, ADDRESS_MARKER]),
        loose_files=loose_files(workspace),
        foreign_credentials=sandbox.credentials_seen() - {configured_origin},
        counts=counts or {},
    )


def _patient_number(event: dict[str, Any]) -> str | None:
    return next(
        (v["value"] for v in event["dataValues"] if v["dataElement"] == PATIENT_NUMBER_UID), None
    )


def leaks(workspace: Workspace, secrets: Iterable[str]) -> list[str]:
    """Where the host's logs or stderr hold one of `secrets`, as "file: secret #index" (the
    index into `secrets`, so the report never repeats a secret)."""
    wanted = [secret for secret in secrets if secret]
    places = [(path.name, path.read_bytes()) for path in _files(workspace.log_dir)]
    places += [("stderr", text.encode()) for text in workspace.stderr]
    return [
        f"{place}: secret #{number}"
        for place, content in places
        for number, secret in enumerate(wanted)
        if secret.encode() in content
    ]


def loose_files(workspace: Workspace) -> list[str]:
    """Folders and files under the host's folders that someone other than the owner may open."""
    loose = []
    for folder in (workspace.config_dir, workspace.data_dir, workspace.log_dir):
        for path in [folder, *folder.rglob("*")] if folder.exists() else []:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                loose.append(f"{path.relative_to(workspace.root)} {mode:o}")
    return loose


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def local_state(workspace: Workspace) -> tuple[int, int]:
    """(batches, pending records) in the store of a host that is not running."""
    with workspace.open_store() as store:
        return store.batch_count(), store.pending_count()


def _origin(base_url: str) -> str:
    scheme, _, rest = base_url.partition("://")
    return f"{scheme}://{rest.split('/')[0]}"


# --------------------------------------------------------------------------- network stand-ins


class Relay:
    """A TCP relay in front of a server that can cut the network: offline, connections are
    refused and open ones are cut, as when the clinic's link goes down."""

    def __init__(self, upstream_url: str) -> None:
        host, _, port = _origin(upstream_url).removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self._path = upstream_url.removeprefix(_origin(upstream_url))
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self._path}"

    def __enter__(self) -> Relay:
        self.go_online()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.go_offline()

    def go_online(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def go_offline(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            listener.close()
        for connection in connections:
            _close(connection)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._connections.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(connection: socket.socket) -> None:
    with suppress(OSError):  # already closed by its other end
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


class LatencySpikes:
    """Now and then, every answer of the sandbox takes seconds instead of milliseconds."""

    def __init__(self, knobs: Knobs, rng: random.Random, *, chance: float = 0.15) -> None:
        self._knobs = knobs
        self._rng = rng
        self._chance = chance
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.spikes = 0

    def __enter__(self) -> LatencySpikes:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._knobs.latency = 0.0

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            spiking = self._rng.random() < self._chance
            self._knobs.latency = self._rng.uniform(0.5, 2.0) if spiking else 0.0
            self.spikes += spiking


# Ways a server can answer that must never crash, hang or leak: each has the error code the
# host's sender reports for it (None: the answer is ignored and the upload completes).
HOSTILE_MODES: dict[str, str | None] = {
    "html_instead_of_json": "AUTH_REQUIRED",
    "huge_body": "BAD_SERVER_RESPONSE",
    "wrong_types": "BAD_SERVER_RESPONSE",
    "redirect_to_another_origin": "BAD_SERVER_RESPONSE",
    "job_location_on_another_origin": None,
}
PASS_THROUGH = "pass_through"
HUGE_BODY_BYTES = 40 * 1024 * 1024
_JOB_PATH = re.compile(r"/api/(?:\d+/)?tracker/jobs/[^/?]+(/report)?(?:\?|$)")
_IMPORT_PATH = re.compile(r"/api/(?:\d+/)?tracker(?:\?|$)")


class HostileFront:
    """An HTTP front for a sandbox that turns chosen DHIS2 answers hostile; `mode` may change
    at any time. `elsewhere` is another origin the hostile answers point to."""

    def __init__(self, upstream_url: str, elsewhere_url: str) -> None:
        self.mode = PASS_THROUGH
        self.elsewhere = elsewhere_url
        self._upstream = _origin(upstream_url).removeprefix("http://")
        self._path = upstream_url.removeprefix(_origin(upstream_url))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._path}"

    def __enter__(self) -> HostileFront:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                inner = self.path.removeprefix(front._path)
                job_poll = self.command == "GET" and _JOB_PATH.match(inner)
                job_submit = self.command == "POST" and _IMPORT_PATH.match(inner)
                mode = front.mode
                if mode == "html_instead_of_json" and job_submit:
                    self._answer(200, b"<!DOCTYPE html><html><body>Welcome</body></html>", "html")
                elif mode == "huge_body" and job_poll:
                    self._stream_huge_body()
                elif mode == "wrong_types" and job_poll:
                    wrong = {"status": "COMPLETED", "stats": {"created": "all of them"}}
                    self._answer(200, json.dumps(wrong).encode())
                elif mode == "redirect_to_another_origin" and job_poll:
                    self._answer(302, b"", headers={"Location": front.elsewhere + inner})
                else:
                    status, headers, answer = front._forward(self, body)
                    if mode == "job_location_on_another_origin" and job_submit:
                        answer = front._move_job_location(answer)
                    self._answer(status, answer, headers.get("Content-Type", ""), headers)

            do_GET = do_POST = _serve

            def _answer(
                self,
                status: int,
                body: bytes,
                content_type: str = "application/json",
                headers: Mapping[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    if name.lower() in ("location", "set-cookie", "www-authenticate"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _stream_huge_body(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                chunk = b" " * 65536
                try:
                    self.wfile.write(b"[")
                    for _ in range(HUGE_BODY_BYTES // len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the client stopped reading at its cap, as it should

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _forward(
        self, request: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        # The front is the configured server, so the credentials may go on to what it fronts.
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "connection", "content-length")
        }
        connection = http.client.HTTPConnection(self._upstream, timeout=60)
        try:
            connection.request(request.command, request.path, body=body or None, headers=headers)
            answer = connection.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            connection.close()

    def _move_job_location(self, answer: bytes) -> bytes:
        job = json.loads(answer)
        job_id = job["response"]["id"]
        job["response"]["location"] = f"{self.elsewhere}/api/tracker/jobs/{job_id}"
        return json.dumps(job).encode()


# --------------------------------------------------------------------------- scenarios


def crash_trial(
    root: Path, *, records: int, kills: int, window: float, seed: int, batch_size: int = 20
) -> Trial:
    """SIGKILLs the host `kills` times, each at a random instant up to `window` seconds after it
    started, during one upload; restarts it each time; the clerk uploads again only if the
    killed host had not yet stored the batch."""
    rng = random.Random(seed)
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"K{seed}", seed=seed)
    knobs = Knobs(latency=0.002, per_event_seconds=0.001, job_overhead_seconds=0.02)
    with Sandbox(knobs=knobs) as sandbox:
        token = sandbox.create_token()
        started = time.monotonic()
        host = HostSession(workspace)
        mid_upload = 0
        try:
            host.configure(sandbox.base_url, auth="token", token=token, batch_size=batch_size)
            host.send("upload", sheet=sheet.message)
            for _ in range(kills):
                host.collect(rng.uniform(0.0, window))
                host.kill()
                batches, pending = local_state(workspace)
                mid_upload += batches == 0 or pending > 0
                host = HostSession(workspace)
                if batches == 0:
                    host.send("upload", sheet=sheet.message)
            host.settle()
        finally:
            host.stop()
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(sandbox.base_url),
            secrets=[token],
            started=started,
            counts={"kills": kills, "kills mid-upload": mid_upload},
        )


def undisturbed_trial(root: Path, *, records: int, batch_size: int = 20) -> Trial:
    """An upload with nothing going wrong: the reference for the others."""
    return crash_trial(root, records=records, kills=0, window=0.0, seed=0, batch_size=batch_size)


def upload_time(root: Path, *, records: int, batch_size: int) -> float:
    """Seconds from the upload request to every record settled, with nothing going wrong."""
    trial = undisturbed_trial(root, records=records, batch_size=batch_size)
    if not trial.exact:
        raise ScenarioError("the undisturbed upload did not end with every record stored once")
    return trial.seconds


def faulty_network_trial(root: Path, *, records: int, seed: int) -> Trial:
    """10 % of answers are gateway errors, 5 % of imports are cut before and 5 % after the
    server accepted them, and latency spikes of 0.5-2 s come and go."""
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"N{seed}", seed=seed)
    knobs = Knobs(error_rate=0.10, drop_before_rate=0.05, drop_after_rate=0.05, seed=seed)
    with Sandbox(knobs=knobs) as sandbox, LatencySpikes(knobs, random.Random(seed)) as spikes:
        token = sandbox.create_token()
        started = time.monotonic()
        with HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="token", token=token, batch_size=20)
            _require_ok(host.request("upload", sheet=sheet.message), "upload")
            host.settle()
        with workspace.open_store() as store:
            jobs = sum(len(store.batch_jobs(batch.id)) for batch in store.list_batches())
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(sandbox.base_url),
            secrets=[token],
            started=started,
            counts={
                "import requests": sandbox.request_count("POST", "/api/tracker"),
                "jobs accepted": jobs,
                "latency spikes": spikes.spikes,
            },
        )


def server_restart_trial(
    root: Path,
    *,
    records: int,
    restarts: int,
    seed: int,
    while_seen_running: bool = False,
    settle_seconds: float = SETTLE_SECONDS,
) -> Trial:
    """The server restarts `restarts` times mid-import, forgetting every job it had; every
    record must settle within `settle_seconds`.

    Restarts come at random instants, or, `while_seen_running`, right after the host reported
    a job running: then at least one lost job is known to have started, which is the evidence
    the job follower needs to tell a lost job from one still waiting in the server's queue."""
    rng = random.Random(seed)
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"R{seed}", seed=seed)
    # Jobs shorter than the follower's first poll: each is seen only once it has finished.
    knobs = Knobs(job_overhead_seconds=0.15)
    with Sandbox(knobs=knobs) as sandbox:
        token = sandbox.create_token()
        started = time.monotonic()
        with HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="token", token=token, batch_size=20)
            _require_ok(host.request("upload", sheet=sheet.message), "upload")
            host.wait_for_push(_job_running, REPLY_SECONDS, what="a running job")
            for _ in range(restarts):
                if while_seen_running:
                    host.wait_for_push(
                        _job_running,
                        REPLY_SECONDS,
                        since=len(host.pushes),
                        what="a job running after the restart",
                    )
                else:
                    host.collect(rng.uniform(0.1, 0.8))
                sandbox.restart()
            host.settle(settle_seconds)
        with workspace.open_store() as store:
            job_states = Counter(
                job.state for batch in store.list_batches() for job in store.batch_jobs(batch.id)
            )
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(sandbox.base_url),
            secrets=[token],
            started=started,
            counts={"restarts": restarts, "jobs lost by the server": job_states["forgotten"]},
        )


def _job_running(message: dict[str, Any]) -> bool:
    return message["type"] == "job.progress" and not message["messages"][-1].startswith(
        ("Import complete", "Process failed")
    )


def session_expiry_trial(root: Path, *, records: int, expiries: int, seed: int) -> Trial:
    """The DHIS2 session ends `expiries` times mid-batch: records must wait, the extension must
    be told to sign in, and sending must resume with the new session."""
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"S{seed}", seed=seed)
    knobs = Knobs(job_overhead_seconds=0.1, per_event_seconds=0.002)
    with Sandbox(knobs=knobs) as sandbox:
        cookies = [sign_in(sandbox)]
        started = time.monotonic()
        prompts = posts_while_signed_out = 0
        with HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="session", batch_size=20)
            _require_ok(host.request("check_connection", session_cookie=cookies[0]), "sign-in")
            reply = host.request("upload", sheet=sheet.message, session_cookie=cookies[0])
            _require_ok(reply, "upload")
            for expiry in range(1, expiries + 1):
                created_enough = records * expiry // (expiries + 1)
                _wait_until_created(host, created_enough)
                mark = len(host.pushes)
                sandbox.expire_sessions()
                prompt = host.wait_for_push(
                    _sign_in_prompt, REPLY_SECONDS, since=mark, what="a sign-in prompt"
                )
                prompts += prompt["error"]["code"] == "AUTH_REQUIRED"
                posts = sandbox.request_count("POST", "/api/tracker")
                host.collect(0.5)  # the clerk takes a moment to sign in again
                posts_while_signed_out += sandbox.request_count("POST", "/api/tracker") - posts
                cookies.append(sign_in(sandbox))
                reconnect = host.request("check_connection", session_cookie=cookies[-1])
                _require_ok(reconnect, "sign-in again")
            host.settle()
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(sandbox.base_url),
            secrets=[*cookies, sandbox.password],
            started=started,
            counts={
                "session expiries": expiries,
                "sign-in prompts": prompts,
                "imports sent while signed out": posts_while_signed_out,
            },
        )


def _sign_in_prompt(message: dict[str, Any]) -> bool:
    return message["type"] == "sender.state" and message["state"] == "sign_in_needed"


def _wait_until_created(host: HostSession, count: int) -> None:
    def enough(message: dict[str, Any]) -> bool:
        return message["type"] == "batch.progress" and message["created"] >= count

    host.wait_for_push(enough, SETTLE_SECONDS, what=f"{count} records created")


def offline_trial(
    root: Path, *, records: int, outages: int, seed: int, close_host_while_offline: bool = False
) -> Trial:
    """Records captured while the server is unreachable are kept and sent when it returns;
    then the network drops `outages` more times while they are being sent."""
    rng = random.Random(seed)
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"O{seed}", seed=seed)
    knobs = Knobs(job_overhead_seconds=0.05, per_event_seconds=0.001)
    with Sandbox(knobs=knobs) as sandbox, Relay(sandbox.base_url) as relay:
        token = sandbox.create_token()
        started = time.monotonic()
        host = HostSession(workspace)
        try:
            host.configure(relay.base_url, auth="token", token=token, batch_size=20)
            _require_ok(host.request("check_connection"), "check_connection")
            _require_ok(host.request("get_program"), "get_program")  # the popup shows the form
            relay.go_offline()
            captured = host.request("upload", sheet=sheet.message)
            _require_ok(captured, "upload while offline")
            offline = host.wait_for_push(_offline_notice, SETTLE_SECONDS, what="an offline notice")
            stored_while_offline = len(sandbox.stored_events())
            if close_host_while_offline:
                host.close()
                relay.go_online()
                host = HostSession(workspace)
                host.send("list_batches")
            else:
                relay.go_online()
            returned = time.monotonic()
            for outage in range(1, outages + 1):
                _wait_until_created(host, records * outage // (outages + 1))
                relay.go_offline()
                host.collect(rng.uniform(1.0, 3.0))
                relay.go_online()
            host.settle()
            resumed_in = time.monotonic() - returned
        finally:
            host.stop()
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(relay.base_url),
            secrets=[token],
            started=started,
            counts={
                "captured while offline": captured["batch"]["total"],
                "stored while offline": stored_while_offline,
                "offline notice code is SERVER_UNREACHABLE": offline["error"]["code"]
                == "SERVER_UNREACHABLE",
                "outages while sending": outages,
                "seconds from network back to all settled": round(resumed_in, 1),
            },
        )


def _offline_notice(message: dict[str, Any]) -> bool:
    return message["type"] == "sender.state" and message["state"] == "offline"


def hostile_server_trial(
    root: Path, *, mode: str, records: int, seed: int, session: bool = False
) -> Trial:
    """The configured server answers in a hostile way while records are sent: the extension is
    told what is wrong, the host stays up, nothing goes to the other origin, and once the server
    behaves again every record arrives once. With `session`, the host signs in with the
    browser's session cookie instead of a token."""
    expected_code = HOSTILE_MODES[mode]
    workspace = Workspace(root)
    sheet = synthetic_sheet(workspace, records, tag=f"H{seed}", seed=seed)
    with (
        Sandbox() as sandbox,
        Sandbox() as elsewhere,
        HostileFront(sandbox.base_url, elsewhere.base_url) as front,
    ):
        secret = sign_in(sandbox) if session else sandbox.create_token()
        signed_in = {"session_cookie": secret} if session else {}
        started = time.monotonic()
        with HostSession(workspace) as host:
            if session:
                host.configure(front.base_url, auth="session", batch_size=20)
            else:
                host.configure(front.base_url, auth="token", token=secret, batch_size=20)
            _require_ok(host.request("check_connection", **signed_in), "check_connection")
            front.mode = mode
            mark = len(host.pushes)
            _require_ok(host.request("upload", sheet=sheet.message, **signed_in), "upload")
            told: str | None = None
            if expected_code is not None:
                notice = host.wait_for_push(
                    _sender_trouble, SETTLE_SECONDS, since=mark, what="a sender error"
                )
                told = notice["error"]["code"]
                _require_ok(host.request("ping"), "ping while the server is hostile")
            front.mode = PASS_THROUGH
            _require_ok(host.request("check_connection"), "check_connection")
            host.settle()
        return measure(
            workspace,
            sheet,
            sandbox,
            configured_origin=_origin(sandbox.base_url),
            secrets=[secret, sandbox.password],
            started=started,
            counts={
                "told the expected error": told == expected_code,
                "requests that reached the other origin": elsewhere.request_count("GET", "")
                + elsewhere.request_count("POST", ""),
                "other origin got credentials": bool(elsewhere.credentials_seen()),
            },
        )


def _sender_trouble(message: dict[str, Any]) -> bool:
    return message["type"] == "sender.state" and message["error"] is not None


def _require_ok(reply: dict[str, Any], what: str) -> None:
    if not reply["ok"]:
        raise ScenarioError(f"{what} failed: {reply['error']}")


# --------------------------------------------------------------------------- fuzzing


def _any_json() -> st.SearchStrategy[Any]:
    """Any JSON value two levels deep (deeper nesting costs time and finds nothing new here)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30)
    )
    keys = st.text(max_size=8)
    shallow = scalars | st.lists(scalars, max_size=3) | st.dictionaries(keys, scalars, max_size=3)
    return scalars | st.lists(shallow, max_size=3) | st.dictionaries(keys, shallow, max_size=4)


ANY_JSON = _any_json()


def _sometimes_anything(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `strategy`, one time in twenty any JSON value instead."""
    return st.integers(0, 19).flatmap(lambda draw: ANY_JSON if draw == 0 else strategy)


class SchemaStrategies:
    """Requests drawn from the protocol's own JSON Schemas: mostly well-formed, with values that
    stretch every rule and, now and then, a field of the wrong kind or one too many.

    `overrides` replaces the strategy of a field, by its dotted path inside the request (for
    example "records" or "sheet.content_base64"), to reach deeper into the handlers."""

    def __init__(self, overrides: Mapping[str, st.SearchStrategy[Any]]) -> None:
        self._document = json.loads(MESSAGES_SCHEMA.read_text(encoding="utf-8"))
        self._overrides = overrides

    def message_types(self) -> list[str]:
        return sorted(self._document["messages"])

    def request(self, message_type: str) -> st.SearchStrategy[dict[str, Any]]:
        schema = self._resolve(self._document["messages"][message_type])
        body = self._object(schema, "")
        return body.map(lambda fields: {**fields, "type": message_type})

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self._document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **node}
        return schema

    def _value(self, schema: dict[str, Any], path: str) -> st.SearchStrategy[Any]:
        if path in self._overrides:
            return self._overrides[path]
        schema = self._resolve(schema)
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kinds = schema.get("type", "string")
        if isinstance(kinds, list):
            return st.one_of([self._value({**schema, "type": kind}, path) for kind in kinds])
        if kinds == "object":
            return self._object(schema, path)
        if kinds == "array":
            items = self._value(schema.get("items", {}), f"{path}[]")
            return st.lists(items, max_size=min(schema.get("maxItems", 5), 5))
        if kinds == "string" and "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        if kinds == "string":
            return st.text(min_size=schema.get("minLength", 0), max_size=40)
        if kinds == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kinds == "number":
            return st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        if kinds == "boolean":
            return st.booleans()
        return st.none()

    def _object(self, schema: dict[str, Any], path: str) -> st.SearchStrategy[dict[str, Any]]:
        properties = {
            name: _sometimes_anything(self._value(sub, _join(path, name)))
            for name, sub in schema.get("properties", {}).items()
            if name not in ("id", "type")
        }
        required = set(schema.get("required", ())) - {"id", "type"}
        branches = [set(option.get("required", ())) for option in schema.get("oneOf", [])]
        extra = schema.get("additionalProperties")
        free = (
            st.dictionaries(
                self._value(schema.get("propertyNames", {}), f"{path}.*name"),
                self._value(extra, f"{path}.*"),
                max_size=5,
            )
            if isinstance(extra, dict)
            else st.just({})
        )

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            chosen = set(required)
            excluded: set[str] = set()
            if branches:
                branch = draw(st.sampled_from(branches))
                chosen |= branch
                excluded = set().union(*branches) - branch
            result = dict(draw(free))
            for name, strategy in properties.items():
                if name in chosen or (name not in excluded and draw(st.booleans())):
                    result[name] = draw(strategy)
            if draw(st.integers(0, 19)) == 0:
                # Any field the schema does not name; the envelope's id and type stay intact.
                unnamed = st.text(min_size=1, max_size=8).filter(lambda n: n not in ("id", "type"))
                result[draw(unnamed)] = draw(ANY_JSON)
            return result

        return build()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def host_request_overrides(server: str, token: str) -> dict[str, st.SearchStrategy[Any]]:
    """Field strategies that keep the host talking to `server` only (a fuzzed address could
    reach a real machine), with real identifiers half of the time to get past the lookups."""
    form = in_patient_form()
    label_of = {element.uid: element.label for element in form.data_elements}
    rows = list(synthetic_rows(20, tag="Z"))
    uid = st.from_regex(r"^[A-Za-z][A-Za-z0-9]{10}$", fullmatch=True)
    value = st.text(max_size=40) | st.integers() | st.booleans() | st.none()
    row_records = st.tuples(st.sampled_from(rows), st.sampled_from(sorted(rows[0])), ANY_JSON).map(
        lambda drawn: {**drawn[0], drawn[1]: drawn[2]}
    )
    sheets = st.one_of(
        st.binary(max_size=400),
        st.sampled_from(rows).map(lambda row: _csv_bytes([row])),
        st.tuples(st.sampled_from(rows), st.integers(0, 600)).map(
            lambda drawn: _csv_bytes([drawn[0]])[: drawn[1]]
        ),
    ).map(lambda content: base64.b64encode(content).decode())
    return {
        "server": st.sampled_from([server, "ftp://no.example.org", ""]),
        "auth": st.sampled_from(["token", "basic"]),
        "token": st.sampled_from([token]) | st.integers(),
        "program": st.sampled_from([PROGRAM_UID]) | uid,
        "stage": st.sampled_from([STAGE_UID]) | uid,
        "org_unit": st.sampled_from([ORG_UNIT_UID]) | uid,
        "form.program": st.sampled_from([PROGRAM_UID]) | uid,
        "form.stage": st.sampled_from([STAGE_UID]) | uid,
        "form.orgUnit": st.sampled_from([ORG_UNIT_UID]) | uid,
        "form.values": st.dictionaries(st.sampled_from(sorted(label_of)) | uid, value, max_size=8),
        "records": st.lists(row_records | st.dictionaries(st.text(max_size=12), ANY_JSON)),
        "sheet.name": st.sampled_from(["ward.csv", "ward.json", "ward.xlsx", "ward", "..", "."])
        | st.text(min_size=1, max_size=20),
        "sheet.content_base64": sheets | st.text(min_size=1, max_size=60),
    }


def _csv_bytes(rows: list[dict[str, str]]) -> bytes:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(row[name] for name in header) for row in rows]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class FuzzFigures:
    cases: int = 0
    accepted: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    first_problem_request: dict[str, dict[str, Any]] = field(default_factory=dict)
    slowest_seconds: float = 0.0


def reply_problem(request: dict[str, Any], reply: dict[str, Any]) -> str | None:
    """What is wrong with `reply` as the answer to `request`: it must carry the request's id
    and be ok, or a known error other than INTERNAL_ERROR with a message."""
    if reply.get("id") != request["id"] or reply.get("ok") not in (True, False):
        return f"{request['type']}: malformed reply"
    if reply["ok"]:
        return None
    error = reply["error"]
    if error.get("code") not in ERROR_CODES:
        return f"{request['type']}: unknown error code"
    if error["code"] == "INTERNAL_ERROR":
        return f"{request['type']}: INTERNAL_ERROR"
    if not isinstance(error.get("message"), str) or not error["message"]:
        return f"{request['type']}: {error['code']} without a message"
    return None


def fuzz_messages(
    host: HostSession,
    *,
    examples: int,
    server: str,
    token: str,
    stop_at_first: bool = True,
    derandomize: bool = False,
) -> FuzzFigures:
    """`examples` requests of every message type through the host's pipes, each answered within
    REPLY_SECONDS and free of `reply_problem`s. With `stop_at_first`, the first problem fails,
    naming its request; without, problems are counted, and a request left unanswered ends the
    run (every later one would wait as long)."""
    strategies = SchemaStrategies(host_request_overrides(server, token))
    requests_strategy = st.one_of([strategies.request(t) for t in strategies.message_types()])
    figures = FuzzFigures()
    unanswered: list[dict[str, Any]] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        # The host keeps what earlier requests changed, so a shrunk replay would not be the
        # same test; the failing request itself is reported instead.
        phases=[Phase.generate],
    )
    @given(requests_strategy)
    def every_request_gets_a_clear_answer(request: dict[str, Any]) -> None:
        sent_at = time.monotonic()
        fields = {name: value for name, value in request.items() if name != "type"}
        request_id = host.send(request["type"], **fields)
        unanswered.append(request)
        reply = host.reply(request_id)
        unanswered.pop()
        figures.slowest_seconds = max(figures.slowest_seconds, time.monotonic() - sent_at)
        # Only the reply is kept: the pushes about records the fuzz queued are not needed.
        host.replies.pop(request_id)
        host.pushes.clear()
        figures.cases += 1
        problem = reply_problem({**request, "id": request_id}, reply)
        if problem is not None:
            assert not stop_at_first, f"{problem} for {request!r}"
            figures.problems[problem] += 1
            figures.first_problem_request.setdefault(problem, request)
        elif reply["ok"]:
            figures.accepted += 1
        else:
            figures.refusals[reply["error"]["code"]] += 1

    try:
        every_request_gets_a_clear_answer()
    except ScenarioError as error:
        if stop_at_first:
            raise
        problem = f"{unanswered[-1]['type']}: {error}"
        figures.problems[problem] += 1
        figures.first_problem_request[problem] = unanswered[-1]
    return figures


def frame_streams() -> st.SearchStrategy[bytes]:
    """Byte streams for the frame reader: noise, and real frames cut, bent or mislabelled."""
    bodies = ANY_JSON.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=300)

    def bend(data: bytes, cut: int, position: int, byte: int) -> bytes:
        if not data:
            return data
        position %= len(data)
        bent = data[:position] + bytes([byte]) + data[position + 1 :]
        return bent[: max(0, len(bent) - cut)]

    framed = st.lists(bodies.map(frame), min_size=1, max_size=4).map(b"".join)
    bent = st.tuples(framed, st.integers(0, 8), st.integers(0, 10_000), st.integers(0, 255)).map(
        lambda drawn: bend(*drawn)
    )
    return st.binary(max_size=2048) | framed | bent


def fuzz_frame_reader(*, examples: int, derandomize: bool = False) -> int:
    """The frame reader on `examples` streams: messages or FrameErrors, and always an end."""
    import io

    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame_streams())
    def every_stream_ends_in_messages_or_frame_errors(data: bytes) -> None:
        nonlocal count
        count += 1
        stream = io.BytesIO(data)
        for _ in range(len(data) + 1):  # each read consumes at least one byte or ends
            try:
                message = read_message(stream)
            except FrameError as error:
                if not error.stream_intact:
                    return
                continue
            if message is None:
                return
            assert isinstance(message, dict)
        raise AssertionError("the frame reader did not reach the end of a finite stream")

    every_stream_ends_in_messages_or_frame_errors()
    return count


def fuzz_host_frames(host: HostSession, *, examples: int, derandomize: bool = False) -> int:
    """Frames whose bodies are anything at all, each followed by a ping: the host answers every
    frame it can read, refuses the rest with BAD_FRAME, and always answers the ping."""
    bodies = ANY_JSON.map(lambda value: json.dumps(value).encode()) | st.binary(max_size=300)
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bodies, min_size=1, max_size=4))
    def the_host_survives_any_frame_body(frame_bodies: list[bytes]) -> None:
        nonlocal count
        count += 1
        replies_before = len(host.replies)
        for body in frame_bodies:
            host._host.send_bytes(frame(body))
        ping = host.request("ping")
        assert ping["ok"], ping
        unasked = [reply for reply in host.replies.values() if not reply["ok"]]
        assert all(reply["error"]["code"] != "INTERNAL_ERROR" for reply in unasked), unasked
        assert len(host.replies) >= replies_before + 1
        host.replies.clear()

    the_host_survives_any_frame_body()
    return count


def fuzz_trial(root: Path, *, examples: int) -> tuple[FuzzFigures, int]:
    """Every message type, then frames with arbitrary bodies, through one host; problems are
    counted, not stopped at, so a full run reports all of them."""
    workspace = Workspace(root)
    with Sandbox() as sandbox:
        token = sandbox.create_token()
        with HostSession(workspace) as host:
            host.configure(sandbox.base_url, auth="token", token=token)
            figures = fuzz_messages(
                host, examples=examples, server=sandbox.base_url, token=token, stop_at_first=False
            )
            frames = fuzz_host_frames(host, examples=max(1, examples // 10))
        return figures, frames


# --------------------------------------------------------------------------- the campaign


@dataclass(frozen=True)
class Sizes:
    records: int
    crash_trials: int
    kills: int
    network_trials: int
    restart_trials: int
    restarts: int
    session_expiries: int
    outages: int
    hostile_records: int
    fuzz_messages: int
    fuzz_frames: int


FULL = Sizes(
    records=1000,
    crash_trials=20,
    kills=3,
    network_trials=3,
    restart_trials=2,
    restarts=3,
    session_expiries=3,
    outages=2,
    hostile_records=100,
    fuzz_messages=100_000,
    fuzz_frames=100_000,
)
QUICK = Sizes(
    records=200,
    crash_trials=2,
    kills=5,
    network_trials=1,
    restart_trials=1,
    restarts=2,
    session_expiries=1,
    outages=1,
    hostile_records=30,
    fuzz_messages=300,
    fuzz_frames=2_000,
)
SCENARIOS = ("crash", "network", "restart", "session", "offline", "hostile", "fuzz")


def attempt(makers: Iterable[Callable[[], Trial]]) -> tuple[list[Trial], list[str]]:
    """Runs each trial; one that cannot finish is reported, and the campaign goes on."""
    trials, failures = [], []
    for make in makers:
        try:
            trials.append(make())
        except ScenarioError as error:
            failures.append(str(error))
    return trials, failures


def print_trials(title: str, command: str, trials: list[Trial], failures: list[str]) -> bool:
    harness.heading(title)
    harness.figure("reproduce with", command)
    harness.figure("trials", f"{len(trials) + len(failures)}")
    for failure in failures:
        harness.figure("trial that did not finish", failure)
    if trials:
        _print_outcomes(trials)
    passed = not failures and all(trial.exact and trial.clean for trial in trials)
    harness.verdict("nothing lost, duplicated or leaked", passed, "every trial exact and clean")
    return passed


def _print_outcomes(trials: list[Trial]) -> None:
    seconds = [trial.seconds for trial in trials]
    harness.figure("records per trial", str(trials[0].records))
    harness.figure(
        "events stored / expected",
        f"{sum(t.stored for t in trials):,} / {sum(t.records for t in trials):,}",
    )
    harness.figure("duplicates", str(sum(t.duplicates for t in trials)))
    harness.figure("lost", str(sum(t.lost for t in trials)))
    harness.figure(
        "local records terminal",
        f"{sum(t.local_records - t.pending for t in trials):,}"
        f" of {sum(t.local_records for t in trials):,}",
    )
    harness.figure("rejected, failed or cancelled", str(sum(t.unsuccessful for t in trials)))
    for name in trials[0].counts:
        harness.figure(name, _total(trial.counts[name] for trial in trials))
    harness.figure(
        "seconds per trial (median / max)", f"{statistics.median(seconds):.1f} / {max(seconds):.1f}"
    )
    harness.figure("secrets found in logs or stderr", str(sum(len(t.leaks) for t in trials)))
    harness.figure(
        "credentials seen by another origin", str(sum(len(t.foreign_credentials) for t in trials))
    )
    loose = sorted({entry for trial in trials for entry in trial.loose_files})
    harness.figure("files others may read", ", ".join(loose) or "none")
    for leak in sorted({leak for trial in trials for leak in trial.leaks}):
        harness.figure("  leak", leak)


def _total(values: Iterable[float]) -> str:
    """Counts add up over the trials, yes/no answers are counted, durations are listed."""
    items = list(values)
    if all(isinstance(value, bool) for value in items):
        return f"{sum(items)} of {len(items)}"
    if any(isinstance(value, float) for value in items):
        return " / ".join(f"{value:.1f}" for value in items)
    return f"{sum(items):g}"


def run(names: list[str], sizes: Sizes, workdir: Path, quick: bool) -> bool:
    flag = " --quick" if quick else ""
    command = f"python bench/reliability.py{flag} {{}}"
    verdicts = []
    seeds = itertools.count(1)

    def root() -> Path:
        return Path(tempfile.mkdtemp(dir=workdir))

    records = sizes.records
    if "crash" in names:
        batch_size = max(10, records // 20)
        window = upload_time(root(), records=records, batch_size=batch_size)
        harness.heading("Undisturbed upload through the host (the window for the kills)")
        harness.figure("records / seconds", f"{records} / {window:.1f}")

        def crash() -> Trial:
            return crash_trial(
                root(),
                records=records,
                kills=sizes.kills,
                window=window,
                seed=next(seeds),
                batch_size=batch_size,
            )

        outcome = attempt([crash] * sizes.crash_trials)
        verdicts.append(
            print_trials("Host SIGKILLed mid-upload", command.format("crash"), *outcome)
        )
    if "network" in names:

        def network() -> Trial:
            return faulty_network_trial(root(), records=records, seed=next(seeds))

        outcome = attempt([network] * sizes.network_trials)
        title = "10 % 5xx, 5 % drops before and after acceptance, latency spikes"
        verdicts.append(print_trials(title, command.format("network"), *outcome))
    if "restart" in names:
        for seen_running in (True, False):

            def restart(seen_running: bool = seen_running) -> Trial:
                return server_restart_trial(
                    root(),
                    records=records,
                    restarts=sizes.restarts,
                    seed=next(seeds),
                    while_seen_running=seen_running,
                    settle_seconds=RESTART_SETTLE_SECONDS,
                )

            outcome = attempt([restart] * sizes.restart_trials)
            when = "right after a job was seen running" if seen_running else "at random instants"
            title = f"Server restarts mid-import {when}, forgetting its jobs"
            verdicts.append(print_trials(title, command.format("restart"), *outcome))
    if "session" in names:

        def session() -> Trial:
            return session_expiry_trial(
                root(), records=records, expiries=sizes.session_expiries, seed=next(seeds)
            )

        outcome = attempt([session])
        verdicts.append(
            print_trials("Session expiry mid-batch", command.format("session"), *outcome)
        )
    if "offline" in names:

        def offline(closed: bool) -> Trial:
            return offline_trial(
                root(),
                records=records,
                outages=sizes.outages,
                seed=next(seeds),
                close_host_while_offline=closed,
            )

        outcome = attempt([lambda: offline(False), lambda: offline(True)])
        title = "Captured offline, sent on return, then outages while sending"
        verdicts.append(print_trials(title, command.format("offline"), *outcome))
    if "hostile" in names:
        for mode in HOSTILE_MODES:

            def hostile(session: bool, mode: str = mode) -> Trial:
                return hostile_server_trial(
                    root(),
                    mode=mode,
                    records=sizes.hostile_records,
                    seed=next(seeds),
                    session=session,
                )

            outcome = attempt([lambda: hostile(False), lambda: hostile(True)])
            title = f"Hostile server: {mode} (token, then session cookie)"
            verdicts.append(print_trials(title, command.format("hostile"), *outcome))
    if "fuzz" in names:
        verdicts.append(run_fuzzing(sizes, root(), command.format("fuzz")))
    return all(verdicts)


def run_fuzzing(sizes: Sizes, root: Path, command: str) -> bool:
    started = time.monotonic()
    streams = fuzz_frame_reader(examples=sizes.fuzz_frames)
    harness.heading("Fuzzing the frame reader (in process)")
    harness.figure("reproduce with", command)
    harness.figure("byte streams", f"{streams:,} in {time.monotonic() - started:.0f} s")
    harness.figure("crashes or endless reads", "0")
    started = time.monotonic()
    figures, frames = fuzz_trial(root, examples=sizes.fuzz_messages)
    harness.heading("Fuzzing every message type through the host's pipes")
    harness.figure("reproduce with", command)
    harness.figure("requests", f"{figures.cases:,} in {time.monotonic() - started:.0f} s")
    harness.figure("answered ok", f"{figures.accepted:,}")
    for code, count in figures.refusals.most_common():
        harness.figure(f"refused with {code}", f"{count:,}")
    for problem, count in figures.problems.most_common():
        example = json.dumps(figures.first_problem_request[problem], ensure_ascii=True)
        harness.figure(f"PROBLEM {problem}", f"{count:,}, e.g. {example[:160]}")
    harness.figure("slowest reply", f"{figures.slowest_seconds:.2f} s")
    harness.figure("frame bodies fuzzed, each then a ping", f"{frames:,}")
    passed = not figures.problems
    harness.verdict("every request answered clearly", passed, "no INTERNAL_ERROR, no hang")
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="CI sizes, to check the script")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    names = args.scenarios or list(SCENARIOS)
    harness.print_machine()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dhims2-reliability-") as workdir:
        passed = run(names, QUICK if args.quick else FULL, Path(workdir), args.quick)
    harness.heading("Campaign")
    harness.figure("total time", f"{time.monotonic() - started:.0f} s")
    harness.verdict("every scenario", passed, "exact, no leak, owner-only files")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
