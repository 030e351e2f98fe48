"""Bad input of every kind reaches the real host: fuzzed requests of every message type, frames
with any body, malformed sheets and hostile server answers. Each gets a clear answer (a known
error code naming what was wrong), and the host neither crashes nor hangs.

bench/reliability.py runs the fuzzing with 100,000 cases; CI runs a few hundred."""

from __future__ import annotations

import base64
import io
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhims2.forms.synthetic import synthetic_rows
from dhims2.sandbox import Sandbox
from dhims2.sheets.source import InputError
from source_records import read_records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import reliability

HEADER = "occurredAt,Patient number,Address\n"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


@pytest.fixture(scope="module")
def host(
    sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[reliability.HostSession]:
    workspace = reliability.Workspace(tmp_path_factory.mktemp("host"))
    with reliability.HostSession(workspace) as started:
        started.configure(sandbox.base_url, auth="token", token=sandbox.create_token())
        yield started


# --------------------------------------------------------------------------- fuzzing


def test_every_message_type_gets_a_clear_answer_whatever_its_fields(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    token = sandbox.create_token()
    # Its own host: fuzzed `configure` requests change the settings.
    with reliability.HostSession(reliability.Workspace(tmp_path)) as fuzzed:
        fuzzed.configure(sandbox.base_url, auth="token", token=token)
        figures = reliability.fuzz_messages(
            fuzzed, examples=300, server=sandbox.base_url, token=token, derandomize=True
        )
    assert figures.cases == 300
    assert figures.accepted > 0 and figures.refusals["INVALID_MESSAGE"] > 0


def test_the_host_answers_or_refuses_frames_with_any_body(host: reliability.HostSession) -> None:
    assert reliability.fuzz_host_frames(host, examples=40, derandomize=True) == 40


def test_the_frame_reader_ends_every_stream_in_messages_or_frame_errors() -> None:
    assert reliability.fuzz_frame_reader(examples=500, derandomize=True) == 500


def _workbook() -> bytes:
    rows = list(synthetic_rows(5, tag="W"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    content = io.BytesIO()
    book.save(content)
    return content.getvalue()


def _csv() -> bytes:
    rows = list(synthetic_rows(5, tag="V"))
    lines = [",".join(rows[0])] + [",".join(row.values()) for row in rows]
    return "\n".join(lines).encode()


def _damaged(original: bytes) -> st.SearchStrategy[bytes]:
    """`original` with a few bytes changed, and perhaps cut short."""

    def damage(changes: list[tuple[int, int]], keep: int) -> bytes:
        data = bytearray(original)
        for position, byte in changes:
            data[position % len(data)] = byte
        return bytes(data[: max(1, keep)])

    changes = st.lists(st.tuples(st.integers(0, len(original)), st.integers(0, 255)), max_size=6)
    return st.builds(damage, changes, st.integers(1, len(original)))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.sampled_from([".csv", ".xlsx", ".json", ".tsv"]),
    content=_damaged(_workbook()) | _damaged(_csv()) | st.binary(max_size=600),
)
def test_a_damaged_file_gives_records_or_an_input_error_naming_it(
    tmp_path: Path, suffix: str, content: bytes
) -> None:
    path = tmp_path / f"ward{suffix}"
    path.write_bytes(content)
    try:
        records = list(read_records(path))
    except InputError as error:
        assert path.name in str(error)
    else:
        assert all(record.row >= 1 for record in records)


# --------------------------------------------------------------------------- malformed sheets


def _zip(files: dict[str, str]) -> bytes:
    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return content.getvalue()


MALFORMED_SHEETS = {
    "header-only.csv": HEADER.encode(),
    "nul-bytes.csv": b"\x00" * 100,
    "ragged.csv": (HEADER + "2025-01-01,P1\n2025-01-01,P2,Ho,extra,more\n").encode(),
    "huge-cell.csv": (HEADER + "2025-01-01,P1," + "x" * 200_000 + "\n").encode(),
    "windows-1252.csv": (HEADER + "2025-01-01,P1,Kpand\xe9\n").encode("cp1252"),
    "not-a-zip.xlsx": b"PK\x03\x04 this is not an archive",
    "no-workbook-inside.xlsx": _zip({"hello.txt": "hi"}),
    "truncated.xlsx": _workbook()[:700],
    "text-named.xlsx": HEADER.encode(),
    "broken.json": b'{"events": [',
    "no-extension": b"a,b\n1,2\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SHEETS))
def test_a_malformed_sheet_is_refused_by_name_or_its_rows_rejected(
    host: reliability.HostSession, sandbox: Sandbox, name: str
) -> None:
    content = base64.b64encode(MALFORMED_SHEETS[name]).decode()
    stored_before = len(sandbox.stored_events())
    reply = host.request("upload", sheet={"name": name, "content_base64": content})
    if reply["ok"]:
        assert reply["batch"]["pending"] == 0, "a malformed row was queued for DHIS2"
    else:
        assert reply["error"]["code"] == "INVALID_RECORDS", reply
        assert name in reply["error"]["message"]
    assert host.request("ping")["ok"]
    assert len(sandbox.stored_events()) == stored_before


# --------------------------------------------------------------------------- found by fuzzing


@pytest.mark.parametrize("moment", ["2025-13-45T10:00", "0000-01-01T00:00", "0001-01-01T00:00"])
def test_forget_before_an_impossible_moment_names_the_field(
    host: reliability.HostSession, moment: str
) -> None:
    reply = host.request("forget", uploaded_before=moment)
    assert reply["error"]["code"] == "INVALID_MESSAGE", reply
    assert "uploaded_before" in reply["error"]["message"]


def test_a_stage_the_program_does_not_have_is_a_clear_error(host: reliability.HostSession) -> None:
    reply = host.request("get_program", stage="EdrTqVQiQmZ")
    assert not reply["ok"] and reply["error"]["code"] != "INTERNAL_ERROR", reply
    assert "EdrTqVQiQmZ" in reply["error"]["message"]


@pytest.mark.parametrize("page", [2**63, 10**30])
def test_a_page_beyond_any_list_is_an_empty_page_or_a_clear_refusal(
    host: reliability.HostSession, page: int
) -> None:
    reply = host.request("list_batches", page=page)
    assert reply["ok"] or reply["error"]["code"] == "INVALID_MESSAGE", reply


@pytest.mark.parametrize("name", ["ward\x00.csv", "ward\udc47.csv"], ids=["NUL", "lone surrogate"])
def test_a_sheet_name_no_file_can_have_is_refused_or_replaced(
    host: reliability.HostSession, name: str
) -> None:
    content = base64.b64encode(HEADER.encode() + b"2025-01-01,P1,Ho\n").decode()
    reply = host.request("upload", sheet={"name": name, "content_base64": content})
    if reply["ok"]:
        assert reply["batch"]["source"].isprintable(), reply
    else:
        assert reply["error"]["code"] in ("INVALID_MESSAGE", "INVALID_RECORDS"), reply


# --------------------------------------------------------------------------- hostile servers


@pytest.mark.parametrize("mode", ["html_instead_of_json", "huge_body", "wrong_types"])
def test_a_hostile_server_answer_is_reported_survived_and_recovered_from(
    tmp_path: Path, mode: str
) -> None:
    trial = reliability.hostile_server_trial(tmp_path, mode=mode, records=20, seed=8)
    assert trial.counts["told the expected error"], trial
    assert (trial.stored, trial.duplicates, trial.lost, trial.pending) == (20, 0, 0, 0)
    assert trial.leaks == []
