"""The `upshade` command: one entry point, subcommands imported lazily.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int | None``. Only the chosen module is imported, so
``upshade play`` never pays for (or needs) torch, and ``upshade --help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UpshadeError

# name -> (module, one-line help). Runtime commands live in upshade.host,
# offline tools (which need the `train` extra) in upshade.tools.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("upshade.host.info", "show the GL renderer, library versions and window-system support"),
    "image": ("upshade.host.image_cmd", "upscale an image through hook shaders (headless)"),
    "play": ("upshade.host.player", "play a video upscaled live in a window"),
    "upscale": ("upshade.host.upscale", "upscale a video file offline to a new file"),
    "bench": ("upshade.host.bench", "benchmark network, playback and encode pipelines"),
    "train": ("upshade.tools.train", "train a model (needs the train extra)"),
    "export": ("upshade.tools.export", "export a checkpoint to an mpv hook shader"),
    "eval": ("upshade.tools.evaluate", "score bicubic, models and shaders on a test set"),
    "model-info": ("upshade.tools.model", "print parameter counts and FLOPs of model configs"),
}


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
    parser = argparse.ArgumentParser(prog=f"upshade {name}", description=help_)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        result = module.run(args)
    except UpshadeError as exc:
        print(f"upshade: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("upshade: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
