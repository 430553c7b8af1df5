"""The `upshade` command: one entry point, subcommands imported lazily.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int | None``. Only the chosen module is imported, so
``upshade play`` never pays for (or needs) torch, and ``upshade --help`` is fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading

from .errors import UpshadeError

# name -> (module, one-line help). Runtime commands live in upshade.host,
# offline tools (which need the `train` extra) in upshade.tools.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("upshade.host.demo", "try it: the default model on the bundled sample (window, or files without one)"),
    "info": ("upshade.host.info", "show the GL renderer, library versions and window-system support"),
    "image": ("upshade.host.image_cmd", "upscale an image through hook shaders (headless)"),
    "play": ("upshade.host.player", "play a video upscaled live in a window"),
    "upscale": ("upshade.host.upscale", "upscale a video file offline to a new file"),
    "bench": ("upshade.host.bench", "benchmark network, playback and encode pipelines"),
    "train": ("upshade.tools.train", "train a model (needs the train extra)"),
    "export": ("upshade.tools.export", "export a checkpoint to an mpv hook shader"),
    "eval": ("upshade.tools.evaluate", "score bicubic, models and shaders on a test set"),
    "eval-video": ("upshade.tools.video_eval", "score upscalers and their flicker on a clip encoded like a stream"),
    "model-info": ("upshade.tools.model", "print parameter counts and FLOPs of model configs"),
}

# Signals that mean "stop now" (timeout, kill, systemd, a closed terminal): handled like Ctrl-C.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM/SIGHUP, so that it unwinds like Ctrl-C: every
    ``atomic_output`` and encoder on the way removes its temporary file."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def _stop_signals_raise(received: list[int]):
    """While the command runs, SIGTERM/SIGHUP raise ``Terminated`` (once: a second one acts as by default).
    Each is also appended to ``received``: a library that catches the handler's exception and raises a
    bare KeyboardInterrupt of its own (Ray's ``wait``) must not turn SIGTERM into "interrupted"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        signal.signal(signum, signal.SIG_DFL)  # a second signal while cleaning up ends the process
        received.append(signum)
        raise Terminated(signum)

    old = {}
    for sig in STOP_SIGNALS:
        try:
            old[sig] = signal.signal(sig, handler)
        except (OSError, ValueError):
            pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def printable(text: str) -> str:
    """``text`` with non-printable characters escaped (ESC, CR, TAB, ... from shader files or
    paths would recolour the terminal or overwrite the message): one visible line."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(text))


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``upshade CMD: error: ...``), exit status 2 as argparse's."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {printable(message)} (see `{self.prog} --help`)\n")


def _finite_floats(parser: argparse.ArgumentParser) -> None:
    """Every ``type=float`` option of a command takes finite numbers only (argtypes.finite_float)."""
    from .argtypes import finite_float

    for action in parser._actions:
        if action.type is float:
            action.type = finite_float


def _usage() -> str:
    from . import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"upshade {__version__}: real-time neural upscaling with mpv hook shaders",
        "",
        "usage: upshade COMMAND [options]   (upshade COMMAND --help for details)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"upshade {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"upshade: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        if missing.split(".")[0] == "torch":
            print(
                f"upshade: error: `upshade {name}` needs PyTorch: pip install 'upshade[train]'",
                file=sys.stderr,
            )
            return 1
        raise
    parser = _Parser(prog=f"upshade {name}", description=help_)
    module.add_arguments(parser)
    _finite_floats(parser)
    args = parser.parse_args(rest)
    received: list[int] = []  # the stop signals that came
    try:
        with _stop_signals_raise(received):
            result = module.run(args)
    except UpshadeError as exc:
        _say(f"upshade: error: {printable(exc)}")
        return exc.exit_code
    except KeyboardInterrupt as exc:
        if not isinstance(exc, Terminated) and received:
            exc = Terminated(received[0])
        if isinstance(exc, Terminated):
            _say(f"upshade: terminated by {exc.name}")
            return 128 + exc.signum
        _say("upshade: interrupted")
        return 130
    return int(result or 0)


def _say(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr may be gone (SIGHUP: the terminal closed)
        print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
