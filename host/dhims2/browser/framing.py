"""Native messaging frames on a binary stream: 4-byte length in native byte order, then UTF-8 JSON.

The `nativemessaging` module (nativemessaging-ng) speaks the same wire format but is used in
neither direction:
- reading: it reads whatever length the header declares, unbounded, from `sys.stdin` only, and
  lets decode errors escape, so an oversize or garbled frame would exhaust memory or crash the host;
- writing: it writes to `sys.stdout`, which the host deliberately points at stderr so a stray
  print cannot corrupt the stream, and it has no size cap and no lock for concurrent writers.
"""

from __future__ import annotations

import json
import struct
import threading

# Annotation names only: the hello waits on every module imported before it (native_host.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# "=" keeps native byte order but pins the size to 4 bytes on every platform.
HEADER = struct.Struct("=I")
MAX_INBOUND_BYTES = 64 * 1024 * 1024  # Chrome refuses to send more than this to a host.
MAX_OUTBOUND_BYTES = 1024 * 1024  # Chrome closes the port on a bigger frame from the host.
# Bodies are read in slices so a frame that declares 64 MiB and then stops costs only what arrived.
_READ_CHUNK_BYTES = 1024 * 1024

BAD_FRAME = "BAD_FRAME"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"

_write_lock = threading.Lock()


class FrameError(Exception):
    """A frame that cannot be turned into a message.

    `stream_intact` says whether the next frame can still be read: true when the frame's bytes
    were all consumed (bad UTF-8 or JSON), false when the boundary is lost (truncation, oversize).
    """

    def __init__(self, code: str, message: str, *, stream_intact: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.stream_intact = stream_intact


class FrameTooLarge(FrameError):
    """An outgoing message bigger than the browser accepts; nothing was written."""

    def __init__(self, size: int) -> None:
        super().__init__(
            MESSAGE_TOO_LARGE,
            f"message is {size} bytes; a frame to the browser may carry at most "
            f"{MAX_OUTBOUND_BYTES} bytes",
        )
        self.size = size


def read_message(stream: BinaryIO, max_bytes: int = MAX_INBOUND_BYTES) -> dict[str, Any] | None:
    """The next message on `stream`, or None at a clean end of stream (EOF before a header)."""
    header = _read_up_to(stream, HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise FrameError(
            BAD_FRAME,
            f"stream ended inside a frame header ({len(header)} of {HEADER.size} bytes)",
            stream_intact=False,
        )
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise FrameError(
            MESSAGE_TOO_LARGE,
            f"frame declares {length} bytes; the limit is {max_bytes} bytes",
            stream_intact=False,
        )
    body = _read_up_to(stream, length)
    if len(body) < length:
        raise FrameError(
            BAD_FRAME,
            f"stream ended inside a frame body ({len(body)} of {length} bytes)",
            stream_intact=False,
        )
    return decode_body(body)


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object carried by one frame body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FrameError(BAD_FRAME, f"frame is not valid UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_non_json_constant)
    except RecursionError:
        raise FrameError(BAD_FRAME, "frame JSON is nested too deeply") from None
    except ValueError as error:
        # JSONDecodeError, NaN/Infinity, and integers too long to convert all land here.
        raise FrameError(BAD_FRAME, f"frame is not valid JSON: {_short_reason(error)}") from None
    if not isinstance(value, dict):
        raise FrameError(BAD_FRAME, f"frame must hold a JSON object, not {type(value).__name__}")
    return value


def encode_message(message: dict[str, Any]) -> bytes:
    """Header and body of `message`; FrameTooLarge rather than a frame the browser would kill."""
    body = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )
    if len(body) > MAX_OUTBOUND_BYTES:
        raise FrameTooLarge(len(body))
    return HEADER.pack(len(body)) + body


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    """Write one frame and flush it; safe to call from several threads at once."""
    frame = encode_message(message)
    # One process has one channel to the browser, so one lock serialises every frame on it.
    with _write_lock:
        stream.write(frame)
        stream.flush()


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(min(remaining, _READ_CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _reject_non_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _short_reason(error: ValueError) -> str:
    # JSONDecodeError's own message is position-only; other ValueErrors may quote the input.
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at character {error.pos}"
    return str(error).split(":")[0]
