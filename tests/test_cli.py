"""The `upshade` entry point: dispatch, usage, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from upshade.host import cli


def test_usage_lists_every_command(capsys):
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "upshade.host.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("upshade ")


def test_host_does_not_import_torch():
    code = (
        "import sys, upshade.host.cli, upshade.host.hookfmt, upshade.host.fileio;"
        "assert 'torch' not in sys.modules, 'host imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
