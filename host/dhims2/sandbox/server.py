"""The sandbox server: a real threaded HTTP server on loopback that stands in for DHIS2 2.41.

This module owns the sockets: request framing, latency, dropped connections and the lifecycle.
What each request means is decided in api.py.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from dhims2.forms.metadata import bundled_metadata
from dhims2.sandbox.api import Request, Response, SandboxApp, canonical_path, json_response
from dhims2.sandbox.auth import Authenticator
from dhims2.sandbox.capture_app import DATE_FORMATS, CaptureApp
from dhims2.sandbox.catalog import Catalog
from dhims2.sandbox.importer import Importer
from dhims2.sandbox.jobs import JobRunner
from dhims2.sandbox.knobs import Dice, Knobs
from dhims2.sandbox.link import Link
from dhims2.sandbox.store import EventStore
from dhims2.sandbox.version import ServerVersion
from dhims2.sandbox.webmessage import web_message

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
_SAFE_HOST = re.compile(r"[A-Za-z0-9.\-:\[\]]+")
_SESSION_COOKIE = re.compile(r"(?:^|;)\s*JSESSIONID=")


class Sandbox:
    """A DHIS2 stand-in with the bundled In-Patient metadata; see the package docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        context_path: str = "/events",
        version: str = "2.41.3",
        knobs: Knobs | None = None,
        metadata: dict[str, Any] | None = None,
        capture_app: Path | None = None,
        date_format: str = "yyyy-mm-dd",
    ) -> None:
        """`metadata` replaces the bundled In-Patient metadata (same shape), e.g. in tests.
        `capture_app` is a DHIS2 Capture web app build, served at /dhis-web-capture/;
        `date_format` is the server's date format setting (yyyy-mm-dd or dd-mm-yyyy)."""
        if date_format not in DATE_FORMATS:
            raise ValueError(f"Unknown date format `{date_format}`: use one of {DATE_FORMATS}")
        self.knobs = knobs if knobs is not None else Knobs()
        self.version = ServerVersion.parse(version)
        self.context_path = _normalize_context_path(context_path)
        self._address = (host, port)
        metadata = metadata if metadata is not None else bundled_metadata()
        catalog = Catalog(metadata)
        user = metadata["users"][0]
        self.username: str = user["username"]
        self.password: str = user["password"]
        self._store = EventStore()
        self._auth = Authenticator(catalog.users)
        dice = Dice(self.knobs)
        importer = Importer(
            catalog,
            self._store,
            self.version,
            fails_to_save=lambda: dice.chance(self.knobs.save_drop_rate),
        )
        self._jobs = JobRunner(importer.run, self.knobs, dice, self.version)
        self._app = SandboxApp(
            context_path=self.context_path,
            version=self.version,
            catalog=catalog,
            store=self._store,
            importer=importer,
            jobs=self._jobs,
            authenticator=self._auth,
            knobs=self.knobs,
            dice=dice,
            capture_app=CaptureApp(capture_app, catalog) if capture_app is not None else None,
            date_format=date_format,
        )
        self._request_counts: Counter[tuple[str, str]] = Counter()
        self._uplink, self._downlink = Link(), Link()
        # Not DHIS2: a load balancer in front of several nodes, pinning a client to one node
        # with this cookie (each node keeps its own job notifications in memory).
        self.balancer_cookie: str | None = None
        self._balancer_cookie_returned = Counter[bool]()
        self._credential_origins: set[str] = set()
        self._counts_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None or self._stopped:
            raise RuntimeError("A Sandbox can be started once")
        self._server = _Server(self._address, self)
        self._jobs.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="dhis2-sandbox-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join()
        self._jobs.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. http://127.0.0.1:41234/events (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("The Sandbox has no address until start()")
        host, port = self._server.server_address[:2]
        shown = f"[{host!s}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}{self.context_path}"

    # --- test controls -------------------------------------------------------------------------

    def create_token(self, prefix: str = "d2p_") -> str:
        """A valid personal access token of the sandbox user."""
        return self._auth.create_token(self.username, prefix)[1]

    def stored_events(self) -> list[dict[str, Any]]:
        """Copies of the stored (not deleted) events as GET /api/tracker/events/{uid} shows them."""
        return self._store.live_copies()

    def restart(self) -> None:
        """What restarting DHIS2 does: notifications, reports and sessions are forgotten; queued
        jobs, events and tokens are kept; the running job blocks imports (stuck_job_seconds)."""
        self._jobs.restart()
        self._auth.expire_sessions()

    def submit_other_users_job(self, seconds: float) -> str:
        """Queue another user's tracker import, which holds the server's one worker `seconds`."""
        return self._jobs.submit_other_users_job(seconds)

    def expire_sessions(self) -> None:
        self._auth.expire_sessions()

    def request_count(self, method: str, path_suffix: str) -> int:
        """Requests received with this method whose path (after the context path, with /api/NN/
        read as /api/) ends with path_suffix, e.g. ("POST", "/api/tracker")."""
        with self._counts_lock:
            return sum(
                count
                for (counted_method, path), count in self._request_counts.items()
                if counted_method == method.upper() and path.endswith(path_suffix)
            )

    def credentials_seen(self) -> set[str]:
        """Origins (http://host:port, as each client addressed this server) of the requests that
        carried an Authorization header or a JSESSIONID cookie, whatever their path."""
        with self._counts_lock:
            return set(self._credential_origins)

    def balancer_cookie_counts(self) -> Counter[bool]:
        """How many requests came back with the balancer cookie (True) and without (False)."""
        with self._counts_lock:
            return Counter(self._balancer_cookie_returned)

    def wait_idle(self, timeout: float) -> bool:
        """True once no job is queued or running; False if that takes longer than timeout."""
        return self._jobs.wait_idle(timeout)

    def _record_request(self, method: str, path: str) -> None:
        with self._counts_lock:
            self._request_counts[(method, path)] += 1

    def _record_credentials(self, origin: str) -> None:
        with self._counts_lock:
            self._credential_origins.add(origin)


def _normalize_context_path(path: str) -> str:
    path = path.strip().rstrip("/")
    if path and not path.startswith("/"):
        path = "/" + path
    if re.fullmatch(r"(/[A-Za-z0-9._~\-]+)*", path) is None:
        raise ValueError(f"Invalid context path `{path}`: use something like /events, or empty")
    return path


def _carries_credentials(headers: Any) -> bool:
    if headers.get("Authorization"):
        return True
    return any(_SESSION_COOKIE.search(value) for value in headers.get_all("Cookie") or ())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that disconnects mid-request is normal here (drops, time-outs, stop()).
        logger.debug("Connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """End keep-alive connections so their handler threads finish with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DHIS2-sandbox"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    # Headers and body go out in two writes; with Nagle on, the client's delayed ACK would
    # hold every answer back by about 40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        sandbox = self.server.sandbox
        raw_path, _, query_string = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        context = sandbox.context_path
        inside = path == context or path.startswith(context + "/") if context else True
        inner = path[len(context) :] if inside else path
        sandbox._record_request(self.command, canonical_path(inner) if inside else path)
        origin = f"http://{self._host()}"
        if _carries_credentials(self.headers):
            sandbox._record_credentials(origin)
        if sandbox.balancer_cookie is not None:
            returned = f"{sandbox.balancer_cookie}=" in self.headers.get("Cookie", "")
            with sandbox._counts_lock:
                sandbox._balancer_cookie_returned[returned] += 1
        if sandbox.knobs.latency > 0:
            time.sleep(sandbox.knobs.latency)
        body = _Body(self)
        sandbox._uplink.carry(body.length, sandbox.knobs.uplink_bytes_per_second)
        if body.problem is not None:
            self._send(body.problem, close=True)
            return
        if not inside:
            self._send(
                Response(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
            )
            return
        request = Request(
            method=self.command,
            path=inner,
            query=urllib.parse.parse_qs(query_string, keep_blank_values=True),
            headers=self.headers,
            origin=origin,
            read_body=body.read,
        )
        try:
            response = sandbox._app.handle(request)
        except Exception:
            logger.exception("Unexpected error answering %s %s", self.command, raw_path)
            response = json_response(500, web_message(500, "Internal sandbox error"))
        if response.reset:
            self._reset_connection()
            return
        body.drain()
        sandbox._downlink.carry(len(response.body), sandbox.knobs.uplink_bytes_per_second)
        self._send(response)

    def _host(self) -> str:
        host = self.headers.get("Host", "")
        if _SAFE_HOST.fullmatch(host):
            return host
        address, port = self.server.server_address[:2]
        return f"{address!s}:{port}"

    def _send(self, response: Response, *, close: bool = False) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            if self.server.sandbox.balancer_cookie is not None:
                cookie = f"{self.server.sandbox.balancer_cookie}=node-1; Path=/"
                self.send_header("Set-Cookie", cookie)
            if close:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True  # the client went away; nothing left to tell it

    def _reset_connection(self) -> None:
        """Close with a TCP reset, as a dropped proxy connection looks to the client."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # releases the socket's file reference so close() really closes it
        self.connection.close()


class _Body:
    """The request body, read only when the application asks for it (a drop reads nothing)."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self._data: bytes | None = None
        self.problem: Response | None = None
        self.length = 0
        if handler.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            self.problem = json_response(
                411, web_message(411, "Send the body with a Content-Length")
            )
            return
        try:
            self.length = int(handler.headers.get("Content-Length") or 0)
            if self.length < 0:
                raise ValueError
        except ValueError:
            self.problem = json_response(400, web_message(400, "Invalid Content-Length header"))
            return
        if self.length > MAX_BODY_BYTES:
            self.problem = json_response(
                413, web_message(413, f"Request body larger than {MAX_BODY_BYTES} bytes")
            )

    def read(self) -> bytes:
        if self._data is None:
            self._data = self._handler.rfile.read(self.length)
        return self._data

    def drain(self) -> None:
        """Consume an unread body so the next request on this connection starts cleanly."""
        self.read()
