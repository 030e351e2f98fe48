"""One error base: every error a person may see carries its code and the command's exit status,
and anything else is a programming error that is never dressed up as a DHIS2 or input fault."""

from __future__ import annotations

import sys
import types

import pytest

from dhims2.cli import main as cli_main
from dhims2.dhis2.errors import InvalidInput, NotSignedIn, ServerUnreachable
from dhims2.errors import Dhims2Error, ExitStatus
from dhims2.queue.store import StoreError
from dhims2.setup.installer import InstallError
from dhims2.sheets.source import InputError
from dhims2.sheets.templates import TemplateError
from dhims2.workspace.config import ConfigError
from dhims2.workspace.connection import UsageError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ServerUnreachable("no answer"), ExitStatus.DHIS2_UNAVAILABLE),
        (NotSignedIn("signed out"), ExitStatus.DHIS2_UNAVAILABLE),
        (InvalidInput("bad address"), ExitStatus.USAGE),
        (InputError("bad file"), ExitStatus.USAGE),
        (TemplateError("bad template"), ExitStatus.USAGE),
        (ConfigError("bad config"), ExitStatus.USAGE),
        (UsageError("bad usage"), ExitStatus.USAGE),
        (StoreError("bad store"), ExitStatus.USAGE),
        (InstallError("cannot install"), ExitStatus.USAGE),
    ],
)
def test_each_error_carries_its_exit_status(error: Dhims2Error, status: ExitStatus) -> None:
    assert isinstance(error, Dhims2Error)
    assert error.exit_status == status


def _fake_command(monkeypatch: pytest.MonkeyPatch, failure: BaseException) -> None:
    module = types.ModuleType("fake_command")

    def configure_parser(parser: object) -> None:
        pass

    def run(args: object) -> int:
        raise failure

    module.configure_parser = configure_parser  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_command", module)
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "fake", ("fake_command", "a test command"))


def test_a_known_error_ends_the_command_with_its_status_and_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_command(monkeypatch, ServerUnreachable("could not reach the server"))
    assert cli_main.main(["fake"]) == ExitStatus.DHIS2_UNAVAILABLE
    assert capsys.readouterr().err == "dhims2 fake: could not reach the server\n"


def test_a_programming_error_is_not_reported_as_dhis2_being_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_command(monkeypatch, TypeError("a bug"))
    with pytest.raises(TypeError):
        cli_main.main(["fake"])
