"""After `python3 install.py`, a newcomer who never made a venv is told exactly how to run
`dhims2`, and that command works."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from test_installer import run_install_py


def test_install_py_names_the_dhims2_command_and_it_runs_doctor(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    installed = run_install_py(home=home, data=data)  # every browser found, as a newcomer runs it
    assert installed.returncode == 0, installed.stderr
    hint = installed.stdout.strip().splitlines()[-1]
    command = re.search(r"run `(\S+) doctor`", hint)
    assert command, hint
    assert Path(command.group(1)) == data / "venv" / "bin" / "dhims2"
    assert f"add {data / 'venv' / 'bin'} to PATH" in hint

    # The same computer, with no venv of ours on PATH (doctor finds the same browsers).
    env = {"HOME": str(home), "DHIMS2_DATA_DIR": str(data), "PATH": os.environ["PATH"]}
    doctor = subprocess.run(
        [command.group(1), "doctor"], capture_output=True, text=True, env=env, timeout=120
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "All good." in doctor.stdout


def test_uninstall_prints_no_command_to_run(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    assert run_install_py("--no-venv", home=home, data=data).returncode == 0
    removed = run_install_py("--uninstall", home=home, data=data)
    assert removed.returncode == 0
    assert "doctor" not in removed.stdout
