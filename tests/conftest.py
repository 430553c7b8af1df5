"""Shared fixtures.

Tests that need GL, torch or a display skip with a reason only where that thing
is truly absent on a developer machine. Under CI (``CI`` set, as `.ci/run`
runs) a missing capability is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))
REPO = Path(__file__).resolve().parent.parent
# Training and benchmark data (../shared/data). Only the tests of that data need it: every other test
# uses generated media or the bundled samples (host/samples). UPSHADE_TEST_DATA points elsewhere, e.g.
# UPSHADE_TEST_DATA=/nonexistent runs the suite as on a fresh clone (those few tests then skip).
DATA = Path(os.environ.get("UPSHADE_TEST_DATA") or REPO.parent / "shared" / "data")


def need(reason: str):
    """Skip for a missing capability locally; fail in CI, where everything is installed."""
    if IN_CI:
        pytest.fail(f"{reason} (CI installs everything: nothing may be skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def _gl_session_ctx():
    """One headless EGL context (Mesa llvmpipe in CI) for the whole session."""
    try:
        import moderngl

        ctx = moderngl.create_context(standalone=True, backend="egl", require=430)
    except Exception as exc:  # no libEGL / no driver
        need(f"no headless OpenGL 4.3 context via EGL: {exc}")
    yield ctx
    ctx.release()


@pytest.fixture
def gl_ctx(_gl_session_ctx):
    """The session's headless context, made current for this test.

    GL calls go to the thread's current context, and a window test (GLFW) or a
    command's own context leaves another one current: without this, a GL test
    after those fails to create programs, depending on the order tests run in.
    """
    _gl_session_ctx.__enter__()
    return _gl_session_ctx


@pytest.fixture
def shared_ctx(gl_ctx, monkeypatch):
    """Make the CLI use the session context (a second EGL context would unbind the session's one)."""

    class _Borrowed:
        def __init__(self, ctx):
            self._ctx = ctx

        def __getattr__(self, name):
            return getattr(self._ctx, name)

        def release(self):
            pass

    import upshade.host.gpu as gpu

    monkeypatch.setattr(gpu, "create_headless_context", lambda *a, **k: _Borrowed(gl_ctx))
    return gl_ctx


@pytest.fixture(scope="session")
def torch():
    try:
        import torch as _torch
    except ImportError:
        need("PyTorch is not installed (pip install '.[train]')")
    _torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return _torch


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        need(f"shared data folder {DATA} is absent (only the training/benchmark data tests need it)")
    return DATA


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture(scope="session")
def xdisplay():
    """An X display for window tests: $DISPLAY if set, else a private Xvfb started here."""
    if os.environ.get("DISPLAY") and not IN_CI:
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if not xvfb:
        need("Xvfb is not installed (apt-get install xvfb)")
    # Several test sessions may start at once: a display number found free can be taken before our
    # Xvfb binds it. Then our Xvfb exits (the socket we see is the other session's, gone when that
    # session ends): try the next number until our own server is the one running.
    for _attempt in range(10):
        n = _free_display()
        proc = subprocess.Popen(
            # -noreset: Xvfb otherwise resets itself whenever its last client disconnects, and a window
            # opened during that reset (the next test's, right after GLFW terminated) fails to connect.
            [xvfb, f":{n}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp", "-noreset"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sock = Path(f"/tmp/.X11-unix/X{n}")
        deadline = time.monotonic() + 15
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        if sock.exists() and proc.poll() is None:
            break
        proc.kill()
        proc.wait()
    else:
        need("Xvfb did not start")
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = f":{n}"
    try:
        yield f":{n}"
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
