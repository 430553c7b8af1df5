"""``upshade info``: GL renderer, library versions, window-system support, intermediate format, how the
network is timed (GL timer queries, or the CPU's clock: software renderers, no timer queries)."""

from __future__ import annotations

import os
import platform
import sys

from . import __version__
from .errors import UpshadeError
from .gltimer import NetworkMeter, timing_method
from .gpu import create_headless_context, gl_info


def add_arguments(parser) -> None:
    parser.add_argument("--fbo-format", choices=("auto", "rgba16f", "rgba32f"), default="auto",
                        help="show what this choice resolves to (default: auto)")


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except Exception as exc:  # an optional library that fails to import is worth reporting, not crashing on
        return f"not available ({type(exc).__name__}: {exc})"
    return str(getattr(mod, "__version__", "?"))


def window_system() -> tuple[bool, str]:
    """(available, explanation): a display variable is set and GLFW can initialise on it."""
    display = os.environ.get("WAYLAND_DISPLAY") or os.environ.get("DISPLAY")
    if not display:
        return False, "no DISPLAY or WAYLAND_DISPLAY set (headless: `upshade image`/`upscale` still work)"
    try:
        import glfw
    except Exception as exc:
        return False, f"glfw cannot be imported: {exc}"
    try:
        ok = glfw.init()
    except Exception as exc:
        return False, f"glfw.init() failed on {display}: {exc}"
    if not ok:
        return False, f"glfw.init() failed on {display}"
    glfw.terminate()
    return True, f"glfw initialises on {display}"


def _libass() -> str:
    """libass's version (text subtitles in play and upscale --burn-subs), or what to install."""
    from . import libass

    try:
        return f"{libass.version()} (text subtitles)"
    except libass.LibassUnavailable:
        return f"not installed: text subtitles are not drawn ({libass.INSTALL_HINT})"


def collect(fbo_format: str = "auto") -> list[tuple[str, str]]:
    rows = [
        ("upshade", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("numpy", _version("numpy")),
        ("moderngl", _version("moderngl")),
        ("av (PyAV)", _version("av")),
        ("glfw", _version("glfw")),
        ("libass", _libass()),
    ]
    try:
        ctx = create_headless_context()
    except UpshadeError as exc:
        rows.append(("OpenGL (EGL)", f"unavailable: {exc}"))
    else:
        try:
            info = gl_info(ctx, fbo_format)
            method, why = timing_method(ctx)
        finally:
            ctx.release()
        rows += [
            ("GL renderer", info["renderer"] + (" (software)" if info["software"] else "")),
            ("GL vendor", info["vendor"]),
            ("GL version", info["version"]),
            ("compute shaders", "yes" if info["compute"] else "no"),
            ("max texture size", str(info["max_texture_size"])),
            ("extensions", ", ".join(info["extensions"]) or "none of note"),
            ("fbo format", f"{info['fbo_format']} ({info['fbo_format_reason']})"),
            ("--model shaders", f"{info['model_shaders']} ({info['model_shaders_reason']})"),
            ("network timing", f"{NetworkMeter.LABELS[method]} ({why}): the overlay's network row and --model auto"),
        ]
    ok, why = window_system()
    rows.append(("window system", ("yes: " if ok else "no: ") + why))
    return rows


def run(args) -> int:
    rows = collect(args.fbo_format)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
