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


# --------------------------------------------------------------- numbers, messages, signals

import os  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from media import make_clip  # noqa: E402
from upshade.host.imageio import write_image  # noqa: E402


@pytest.fixture
def small_png(tmp_path):
    p = tmp_path / "in.png"
    write_image(p, np.zeros((8, 8, 3), np.uint8))
    return p


@pytest.mark.parametrize("argv", [
    ["image", "IN", "-o", "OUT", "--scale", "inf"],
    ["image", "IN", "-o", "OUT", "--scale", "nan"],
    ["image", "IN", "-o", "OUT", "--scale", "-inf"],
    ["image", "IN", "-o", "OUT", "--scale", "1e999"],
    ["upscale", "IN", "-o", "OUT", "--start", "nan"],
    ["upscale", "IN", "-o", "OUT", "--start", "inf"],
    ["upscale", "IN", "-o", "OUT", "--duration", "inf"],
    ["upscale", "IN", "-o", "OUT", "--duration", "-1"],
    ["upscale", "IN", "-o", "OUT", "--crf", "nan"],
    ["bench", "--frames", "inf"],
    ["bench", "--rounds", "nan"],
    ["train", "--time-limit", "nan"],    # an offline tool's plain type=float option: checked the same way
    ["eval", "--set", "x", "--runs", "inf"],
])
def test_non_finite_numbers_are_one_line_errors(argv, small_png, tmp_path, capsys):
    argv = [str(small_png) if a == "IN" else str(tmp_path / "o.png") if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"upshade {argv[0]}: error: argument "), err
    assert "Traceback" not in err and not list(tmp_path.glob("*.part*"))


def test_huge_scale_is_an_error_not_an_overflow(small_png, tmp_path, capsys):
    assert cli.main(["image", str(small_png), "-o", str(tmp_path / "o.png"), "--scale", "1e308"]) == 1
    assert capsys.readouterr().err == ("upshade: error: --scale 1e+308: 8x8 scaled by it would exceed "
                                       "16384 pixels per side\n")


def test_control_characters_from_a_shader_are_escaped(small_png, tmp_path, capsys):
    """An ESC sequence would recolour the terminal and a CR overwrite the message: shown escaped."""
    bad = tmp_path / "evil.glsl"
    bad.write_bytes(b"//!HOOK MAIN\n//!BIND HOOKED\n//!WHEN \x1b[31mred\rX\t1\n"
                    b"vec4 hook() { return HOOKED_tex(HOOKED_pos); }\n")
    assert cli.main(["image", str(small_png), "-o", str(tmp_path / "o.png"), "--shader", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"upshade: error: {bad}:3: ")
    assert "\x1b" not in err and "\r" not in err and "\t" not in err
    assert "\\x1b[31mred\\rX\\t1" in err
    assert cli.printable("caf\u00e9 \u200b\x7f") == "caf\u00e9 \\u200b\\x7f"  # printable text is kept


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.gl
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_signal_mid_upscale_cleans_up(tmp_path, sig):
    """timeout/kill/systemd/closing the terminal: like Ctrl-C (no .part file, one line), exit 128+signal."""
    src = make_clip(tmp_path / "long.mkv", width=96, height=64, frames=400, audio="flac")
    out = tmp_path / "out.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "upshade.host.cli", "upscale", str(src), "-o", str(out),
                             "--model", "L", "--preset", "ultrafast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: any(".part-" in p.name for p in tmp_path.iterdir()) or proc.poll() is not None)
        time.sleep(0.3)  # well inside the frame loop
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert err.splitlines()[-1] == f"upshade: terminated by {signal.Signals(sig).name}"
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mkv"]


def test_a_stop_signal_that_a_library_turns_into_a_bare_keyboardinterrupt_is_still_reported(monkeypatch, capsys):
    """Ray's wait catches the handler's ``Terminated`` and raises a KeyboardInterrupt of its own: SIGHUP
    was reported as "interrupted", exit 130."""
    import types

    def run(args):
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(10)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None

    fake = types.SimpleNamespace(add_arguments=lambda parser: None, run=run)
    monkeypatch.setitem(sys.modules, "fake_command", fake)
    monkeypatch.setitem(cli.COMMANDS, "fake", ("fake_command", "a command"))
    assert cli.main(["fake"]) == 128 + signal.SIGHUP
    assert capsys.readouterr().err.strip() == "upshade: terminated by SIGHUP"


def test_disk_full_names_the_output_not_the_temporary_file(small_png, tmp_path):
    """A write that fails (here: the file size limit, as a full disk fails) names the output."""
    import resource

    out = tmp_path / "big.png"
    src = tmp_path / "noise.png"
    write_image(src, np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    r = subprocess.run([sys.executable, "-m", "upshade.host.cli", "image", str(src), "-o", str(out), "--no-model"],
                       capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr == f"upshade: error: {out}: cannot write: File too large\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "noise.png"]
