"""What the real processes load before they answer: `dhims2 --help` and `--version` load argparse
and the top-level parser, nothing a subcommand needs; `dhims2-host` says hello before it loads
the handlers, the store or jsonschema. Start-up time itself is measured by bench/host.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dhims2.browser.framing import read_message

TIMEOUT = 60
# Loaded only for the requests and commands that use them.
HEAVY = {"requests", "urllib3", "jsonschema", "sqlite3", "logging", "json", "shutil", "typing"}
REPORT = "modules loaded:"
# `dhims2` as its console script runs it, listing the modules loaded when it exits (atexit
# runs after argparse's exit for --help too). Not -X importtime: it does not see modules
# loaded by importlib.import_module, which is how subcommands are loaded.
CLI_REPORTING_ITS_MODULES = f"""
import atexit, sys
atexit.register(lambda: print({REPORT!r}, *sorted(sys.modules), file=sys.stderr))
from dhims2.cli.main import main
sys.argv[0] = "dhims2"
sys.exit(main())
"""
# `dhims2-host`, listing the modules loaded at the moment it writes its hello.
HOST_REPORTING_ITS_MODULES_AT_HELLO = f"""
import sys
from dhims2.browser import framing, native_host

write_message = framing.write_message

def write_and_report(stream, message):
    if message.get("type") == "hello":
        print({REPORT!r}, *sorted(sys.modules), file=sys.stderr, flush=True)
    write_message(stream, message)

framing.write_message = write_and_report
sys.exit(native_host.main())
"""


def reported_modules(stderr: str) -> set[str]:
    [report] = [line for line in stderr.splitlines() if line.startswith(REPORT)]
    return set(report.removeprefix(REPORT).split())


def modules_imported(*args: str) -> set[str]:
    """The modules `dhims2 ARGS` has loaded when it exits."""
    completed = subprocess.run(
        [sys.executable, "-c", CLI_REPORTING_ITS_MODULES, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr
    return reported_modules(completed.stderr)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_only_argparse_and_the_top_level_parser(flag: str) -> None:
    imported = modules_imported(flag)
    assert "argparse" in imported
    assert {name for name in imported if name.startswith("dhims2")} == {
        "dhims2",
        "dhims2.cli",
        "dhims2.cli.main",
    }
    assert not imported & HEAVY


def test_a_subcommands_help_loads_that_subcommands_module_too() -> None:
    # The same measure sees what a subcommand's parser pulls in: here it is meant to.
    imported = modules_imported("status", "--help")
    assert "dhims2.cli.status" in imported
    assert "dhims2.cli.upload" not in imported


def test_the_host_says_hello_before_it_loads_what_requests_need(env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", HOST_REPORTING_ITS_MODULES_AT_HELLO, "chrome-extension://x/"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stderr is not None
        hello = read_message(process.stdout)
        assert hello is not None and hello["type"] == "hello"
        process.stdin.close()  # as the browser does: the host exits
        stderr = process.stderr.read().decode()
        assert process.wait(TIMEOUT) == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    loaded = reported_modules(stderr)
    assert {name for name in loaded if name.startswith("dhims2")} == {
        "dhims2",
        "dhims2.browser",
        "dhims2.browser.framing",
        "dhims2.browser.greeting",
        "dhims2.browser.native_host",
    }
    assert not loaded & (HEAVY - {"json"})  # json writes the hello itself
