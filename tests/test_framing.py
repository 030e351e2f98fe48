"""Frames on a byte stream: what the host accepts, what it refuses, and that it never hangs."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhims2.browser.framing import (
    MAX_INBOUND_BYTES,
    MAX_OUTBOUND_BYTES,
    FrameError,
    FrameTooLarge,
    read_message,
    write_message,
)


def frame(body: bytes, declared: int | None = None) -> bytes:
    return struct.pack("=I", len(body) if declared is None else declared) + body


def frame_of(message: object) -> bytes:
    return frame(json.dumps(message).encode("utf-8"))


def message_with_body_size(size: int) -> dict[str, str]:
    """A message whose compact JSON encoding is exactly `size` bytes."""
    overhead = len(json.dumps({"p": ""}, separators=(",", ":")))
    return {"p": "x" * (size - overhead)}


class Unreadable(io.RawIOBase):
    """A stream that fails the test if anyone reads the body after a refused header."""

    def __init__(self, header: bytes) -> None:
        self._header = io.BytesIO(header)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self._header.read(len(buffer))
        if not data:
            raise AssertionError("the body of a refused frame was read")
        buffer[: len(data)] = data
        return len(data)


def test_messages_round_trip_in_order_with_non_ascii_text() -> None:
    stream = io.BytesIO()
    write_message(stream, {"id": "r-1", "type": "ping"})
    write_message(stream, {"name": "Ama Serwaa Ɛ", "age": 20})
    stream.seek(0)
    assert read_message(stream) == {"id": "r-1", "type": "ping"}
    assert read_message(stream) == {"name": "Ama Serwaa Ɛ", "age": 20}
    assert read_message(stream) is None


def test_the_length_counts_utf8_bytes_not_characters() -> None:
    stream = io.BytesIO()
    write_message(stream, {"v": "é"})
    (declared,) = struct.unpack("=I", stream.getvalue()[:4])
    assert declared == len('{"v":"é"}'.encode()) == 10


def test_clean_end_of_stream_is_none() -> None:
    assert read_message(io.BytesIO(b"")) is None


@pytest.mark.parametrize("header", [b"\x01", b"\x01\x00", b"\x01\x00\x00"])
def test_stream_ending_inside_the_header_is_a_broken_stream(header: bytes) -> None:
    with pytest.raises(FrameError) as refused:
        read_message(io.BytesIO(header))
    assert refused.value.code == "BAD_FRAME"
    assert not refused.value.stream_intact


def test_stream_ending_inside_the_body_is_a_broken_stream() -> None:
    with pytest.raises(FrameError) as refused:
        read_message(io.BytesIO(frame(b'{"id":', declared=50)))
    assert refused.value.code == "BAD_FRAME"
    assert "6 of 50 bytes" in refused.value.message
    assert not refused.value.stream_intact


def test_a_length_over_the_cap_is_refused_before_any_body_is_read() -> None:
    stream = io.BufferedReader(Unreadable(struct.pack("=I", 0xFFFFFFFF)), buffer_size=4)
    with pytest.raises(FrameError) as refused:
        read_message(stream)
    assert refused.value.code == "MESSAGE_TOO_LARGE"
    assert str(0xFFFFFFFF) in refused.value.message
    assert not refused.value.stream_intact


def test_the_inbound_cap_is_chromes_64_mib_and_can_be_lowered() -> None:
    assert MAX_INBOUND_BYTES == 64 * 1024 * 1024
    with pytest.raises(FrameError, match="limit is 10 bytes"):
        read_message(io.BytesIO(frame_of({"id": "r-1"})), max_bytes=10)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"id": "\xff"}', "not valid UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2]", "JSON object, not list"),
        (b'"text"', "JSON object, not str"),
        (b"null", "JSON object, not NoneType"),
    ],
)
def test_a_bad_body_is_refused_and_the_next_frame_still_reads(body: bytes, reason: str) -> None:
    stream = io.BytesIO(frame(body) + frame_of({"id": "after"}))
    with pytest.raises(FrameError, match=reason) as refused:
        read_message(stream)
    assert refused.value.code == "BAD_FRAME"
    assert refused.value.stream_intact
    assert read_message(stream) == {"id": "after"}


def test_outbound_frame_of_exactly_1_mib_is_written() -> None:
    stream = io.BytesIO()
    write_message(stream, message_with_body_size(MAX_OUTBOUND_BYTES))
    assert len(stream.getvalue()) == 4 + 1_048_576
    stream.seek(0)
    assert len(read_message(stream)["p"]) > 1_000_000  # type: ignore[index]


def test_outbound_frame_one_byte_over_1_mib_is_refused_and_nothing_is_written() -> None:
    stream = io.BytesIO()
    with pytest.raises(FrameTooLarge) as refused:
        write_message(stream, message_with_body_size(MAX_OUTBOUND_BYTES + 1))
    assert refused.value.code == "MESSAGE_TOO_LARGE"
    assert refused.value.size == 1_048_577
    assert stream.getvalue() == b""


def test_every_frame_is_flushed() -> None:
    flushed: list[int] = []

    class Recording(io.BytesIO):
        def flush(self) -> None:
            flushed.append(len(self.getvalue()))

    stream = Recording()
    write_message(stream, {"a": 1})
    write_message(stream, {"b": 2})
    assert flushed == [11, 22]


def test_concurrent_writers_never_interleave_frames() -> None:
    stream = io.BytesIO()
    writers = [
        threading.Thread(
            target=lambda n=n: [
                write_message(stream, {"w": n, "pad": "y" * 5000}) for _ in range(50)
            ]
        )
        for n in range(8)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    stream.seek(0)
    received = []
    while (message := read_message(stream)) is not None:
        received.append(message["w"])
    assert sorted(received) == sorted(list(range(8)) * 50)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_give_messages_or_frame_errors_and_always_end(data: bytes) -> None:
    stream = io.BytesIO(data)
    for _ in range(len(data) + 1):  # each read consumes at least one byte or ends
        try:
            if read_message(stream) is None:
                return
        except FrameError as error:
            if not error.stream_intact:
                return
    pytest.fail("the reader did not reach the end of a finite stream")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(max_size=20), st.one_of(st.integers(), st.text(), st.none())),
    st.integers(min_value=0, max_value=200),
)
def test_any_truncation_of_a_valid_frame_is_a_broken_stream(
    message: dict[str, object], cut: int
) -> None:
    encoded = frame_of(message)
    truncated = encoded[: max(1, len(encoded) - 1 - cut % len(encoded))]
    with pytest.raises(FrameError) as refused:
        read_message(io.BytesIO(truncated))
    assert not refused.value.stream_intact


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=MAX_INBOUND_BYTES + 1, max_value=0xFFFFFFFF), st.binary(max_size=64))
def test_any_oversize_header_is_refused_without_reading_on(declared: int, rest: bytes) -> None:
    stream = io.BytesIO(struct.pack("=I", declared) + rest)
    with pytest.raises(FrameError) as refused:
        read_message(stream)
    assert refused.value.code == "MESSAGE_TOO_LARGE"
    assert stream.tell() == 4


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    ).map(lambda value: {"value": value})
)
def test_any_json_object_round_trips(message: dict[str, object]) -> None:
    stream = io.BytesIO()
    write_message(stream, message)
    stream.seek(0)
    assert read_message(stream) == message


def test_frames_agree_with_the_nativemessaging_library() -> None:
    """nativemessaging-ng implements the MDN reference framing on real stdin/stdout."""
    echo = (
        "import nativemessaging\n"
        "message = nativemessaging.get_message()\n"
        "nativemessaging.send_message({'echo': message})\n"
    )
    ours = io.BytesIO()
    write_message(ours, {"id": "r-1", "text": "Kwame Ɔ"})
    result = subprocess.run(
        [sys.executable, "-c", echo], input=ours.getvalue(), capture_output=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    assert read_message(io.BytesIO(result.stdout)) == {"echo": {"id": "r-1", "text": "Kwame Ɔ"}}
