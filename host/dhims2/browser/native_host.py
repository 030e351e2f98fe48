"""`dhims2-host`: the process the browser starts for the extension's native messaging port.

The host says hello first, then answers requests. A reader thread turns stdin into messages, a
small pool of workers runs the handlers (so a slow request never holds up a status request), and
every frame goes out through one locked writer. EOF on stdin or SIGTERM ends the session: the host
stops taking work, gives running handlers a moment, runs the shutdown hooks, and exits 0.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, BinaryIO

from dhims2.browser import (
    dispatch,
    framing,
    handlers,  # noqa: F401  (importing it registers every message type)
    protocol,
)

log = logging.getLogger("dhims2.browser.native_host")

WORKER_THREADS = 4
SHUTDOWN_GRACE_SECONDS = 5.0
LOG_FILE_NAME = "host.log"
LOG_FILE_BYTES = 1024 * 1024
LOG_FILE_BACKUPS = 3


class _Terminated(BaseException):
    """Raised in the main thread by the SIGTERM handler to end the wait for the reader."""


class NativeHost:
    def __init__(self, frames_in: BinaryIO, frames_out: BinaryIO) -> None:
        self._frames_in = frames_in
        self._frames_out = frames_out
        self.stopping = threading.Event()
        self.context = dispatch.HostContext(push=self.push, shutdown=self.stopping)
        self._workers = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="dhims2-handler")
        self._in_flight: set[Future[None]] = set()
        self._in_flight_lock = threading.Lock()

    def say_hello(self) -> None:
        self._write(protocol.hello(dispatch.capabilities()))

    def serve(self) -> int:
        """Answer requests until EOF, a broken stream or SIGTERM; returns the exit status."""
        reader = threading.Thread(target=self._read_requests, name="dhims2-reader", daemon=True)
        # SIGTERM raises _Terminated in this (main) thread to end the join; the nesting makes sure
        # it is caught wherever it lands and that only one is ever raised.
        try:
            try:
                signal.signal(signal.SIGTERM, _raise_terminated)
                reader.start()
                reader.join()
            finally:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
        except _Terminated:
            log.info("SIGTERM received")
        return self._shut_down()

    def push(self, message: dict[str, Any]) -> None:
        """Send an update that answers no request (it has a `type` and no `id`)."""
        self._write(message)

    def _read_requests(self) -> None:
        while not self.stopping.is_set():
            try:
                message = framing.read_message(self._frames_in)
            except framing.FrameError as error:
                log.warning("refused a frame: %s", error.message)
                self._write(protocol.error_reply(None, error.code, error.message))
                if error.stream_intact:
                    continue
                break
            except OSError as error:
                log.warning("stdin failed: %s", type(error).__name__)
                break
            if message is None:
                log.info("stdin closed by the browser")
                break
            self._submit(message)
        self.stopping.set()

    def _submit(self, message: dict[str, Any]) -> None:
        with self._in_flight_lock:
            if self.stopping.is_set():
                return
            future = self._workers.submit(self._answer, message)
            self._in_flight.add(future)
        future.add_done_callback(self._forget_future)

    def _forget_future(self, future: Future[None]) -> None:
        with self._in_flight_lock:
            self._in_flight.discard(future)

    def _answer(self, message: dict[str, Any]) -> None:
        started = time.monotonic()
        reply = dispatch.dispatch(message, self.context)
        try:
            self._write(reply)
        except framing.FrameTooLarge as error:
            log.error("reply of %d bytes refused", error.size)
            self._write(
                protocol.error_reply(
                    reply["id"],
                    "MESSAGE_TOO_LARGE",
                    "the reply would exceed 1 MiB; ask for a smaller page",
                )
            )
        log.info(
            "%s -> %s in %.0f ms",
            dispatch.loggable_type(message),
            "ok" if reply["ok"] else reply["error"]["code"],
            (time.monotonic() - started) * 1000,
        )

    def _write(self, message: dict[str, Any]) -> None:
        try:
            framing.write_message(self._frames_out, message)
        except OSError as error:
            # The browser closed the port; nobody is left to answer.
            log.info("stdout closed (%s); stopping", type(error).__name__)
            self.stopping.set()

    def _shut_down(self) -> int:
        self.stopping.set()
        with self._in_flight_lock:
            running = set(self._in_flight)
        self._workers.shutdown(wait=False, cancel_futures=True)
        _, unfinished = wait(running, timeout=SHUTDOWN_GRACE_SECONDS)
        for hook in self.context.shutdown_hooks:
            try:
                hook()
            except Exception as error:
                log.error("shutdown hook failed with %s", type(error).__name__)
        log.info("host stopped")
        logging.shutdown()
        if unfinished:
            # Worker threads are joined at interpreter exit; a handler that ignores the shutdown
            # event must not keep the browser's port (and the process) alive.
            os._exit(0)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the host. Arguments are the browser's (extension origin, manifest path, window id)."""
    frames_in, frames_out = _claim_stdio()
    # Everything the host writes (log, store, a sheet being read) may hold patient data or
    # credentials: owner-only, whatever umask the browser passed on.
    os.umask(0o077)
    host = NativeHost(frames_in, frames_out)
    host.say_hello()  # before logging and everything else: the extension waits for it
    _start_logging()
    log.info("host started by %s", _caller(sys.argv[1:] if argv is None else argv))
    return host.serve()


def _claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin/stdout for frames; fds 0 and 1 then point at devnull and stderr.

    A stray print, a C library's output or a child process can then never write into (or read
    from) the browser's channel.
    """
    sys.stdout.flush()
    frames_in_fd = os.dup(0)
    frames_out_fd = os.dup(1)
    os.dup2(sys.stderr.fileno(), 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    if sys.platform == "win32":
        import msvcrt

        # Text mode would turn \n into \r\n inside frames.
        msvcrt.setmode(frames_in_fd, os.O_BINARY)
        msvcrt.setmode(frames_out_fd, os.O_BINARY)
    return os.fdopen(frames_in_fd, "rb"), os.fdopen(frames_out_fd, "wb")


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one shutdown is enough
    raise _Terminated


def _start_logging() -> None:
    from dhims2.workspace.config import log_dir

    try:
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_dir() / LOG_FILE_NAME,
            maxBytes=LOG_FILE_BYTES,
            backupCount=LOG_FILE_BACKUPS,
            encoding="utf-8",
        )
    except OSError as error:
        handler = logging.StreamHandler(sys.stderr)
        print(
            f"dhims2-host: cannot open the log file ({error}); logging to stderr", file=sys.stderr
        )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _caller(arguments: Sequence[str]) -> str:
    """Which browser started us, for the log: Chrome passes an origin, Firefox an add-on id."""
    origins = [arg for arg in arguments if arg.startswith("chrome-extension://")]
    if origins:
        return origins[0]
    if len(arguments) >= 2:
        return f"Firefox add-on {arguments[1]}"
    return "an unknown caller"


if __name__ == "__main__":
    sys.exit(main())
