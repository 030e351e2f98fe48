"""The real `dhims2-host` process on pipes, as the browser drives it: frames in, frames out."""

from __future__ import annotations

import io
import json
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from dhims2.browser.framing import FrameError, read_message

HOST_PROGRAM = Path(sys.executable).parent / "dhims2-host"
TIMEOUT = 15.0


def frame(body: bytes, declared: int | None = None) -> bytes:
    return struct.pack("=I", len(body) if declared is None else declared) + body


class Host:
    """The real host process with a frame reader on its stdout."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        assert HOST_PROGRAM.exists(), f"{HOST_PROGRAM} missing: pip install -e '.[test]'"
        self.process = subprocess.Popen(
            [str(HOST_PROGRAM), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.inbox: queue.Queue[Any] = queue.Queue()
        self.stdout_bytes = io.BytesIO()
        threading.Thread(target=self._read_frames, daemon=True).start()

    def _read_frames(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while (message := read_message(stream)) is not None:
                self.inbox.put(message)
        except FrameError as error:  # not a frame: stdout was polluted
            self.inbox.put(error)
        self.inbox.put(None)

    def receive(self) -> dict[str, Any]:
        message = self.inbox.get(timeout=TIMEOUT)
        assert isinstance(message, dict), f"expected a frame, got {message!r}"
        return message

    def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(frame(json.dumps(message).encode("utf-8")))

    def request(self, message_type: str, request_id: str = "r-1", **fields: Any) -> dict[str, Any]:
        self.send({"id": request_id, "type": message_type, **fields})
        return self.receive()

    def remaining_messages(self) -> list[Any]:
        """Everything still to come on stdout, up to its end: frames only, or the test fails."""
        messages = []
        while (message := self.inbox.get(timeout=TIMEOUT)) is not None:
            assert not isinstance(message, FrameError), f"stdout held a non-frame: {message}"
            messages.append(message)
        return messages

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def exit_code(self) -> int:
        return self.process.wait(timeout=TIMEOUT)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode("utf-8", "replace")

    def receive_until(self, predicate: Any, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Messages up to and including the first one `predicate` accepts (pushes interleave)."""
        seen = []
        while True:
            message = self.inbox.get(timeout=timeout)
            assert isinstance(message, dict), f"expected a frame, got {message!r}"
            seen.append(message)
            if predicate(message):
                return seen
