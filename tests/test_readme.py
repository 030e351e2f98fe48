"""The README's two opening commands, as a newcomer runs them on a fresh checkout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
# The system's own Python first on PATH, as on a fresh Debian or Ubuntu machine, where it is
# externally managed (PEP 668) and refuses `pip install` outside a virtual environment.
SYSTEM_PATH = "/usr/bin:/bin"


def readme_commands() -> list[str]:
    text = (CHECKOUT / "README.md").read_text("utf-8")
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block, "the README opens with a sh block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line]


def test_ci_runs_the_readmes_test_command_as_written():
    _demo, tests = readme_commands()
    assert tests.endswith("python -m pytest")
    ci_lines = (CHECKOUT / ".ci" / "run").read_text("utf-8").splitlines()
    assert tests in ci_lines


def fresh_checkout(tmp_path: Path) -> Path:
    """The files a fresh clone of this checkout has (its tracked files, as they are now)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=CHECKOUT, capture_output=True, check=True
    ).stdout
    copy = tmp_path / "clone"
    for name in filter(None, listed.decode().split("\0")):
        source = CHECKOUT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def test_the_demo_command_runs_as_written_with_the_system_python(tmp_path, env):
    demo, _tests = readme_commands()
    assert Path("/usr/bin/python3").exists(), "the system Python (Debian: apt-get install python3)"
    clone = fresh_checkout(tmp_path)
    result = subprocess.run(
        ["/bin/sh", "-c", demo],
        cwd=clone,
        env={**env, "PATH": SYSTEM_PATH, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (clone / ".venv" / "bin" / "dhims2").exists()
    assert "created" in result.stdout
