"""Headless OpenGL contexts and what the runtime needs to know about the driver.

Everything GPU-side in upshade runs on a moderngl context: EGL standalone for
``upshade image`` / ``upshade upscale`` / tests, or the GLFW window's context in
the player. Both go through :func:`gl_info` and :func:`choose_fbo_format`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import threading

import moderngl

from .errors import GLUnavailableError, UpshadeError

FBO_FORMATS = ("rgba16f", "rgba32f")

# Measured on Mesa llvmpipe (LLVM 15, 256-bit, 2 cores), ms per frame after warm-up:
#   Anime4K ModeA 128x128 -> 256x256:         rgba16f 118-125, rgba32f  92-99
#   four 3x3 LUMA convolutions, 480x270 x2:  rgba16f  70-82,  rgba32f  43-77
# llvmpipe converts every half-float texel in software on fetch and store, while
# float32 is its native format, so software renderers get rgba32f. Hardware GPUs
# sample fp16 natively at half the bandwidth: rgba16f, mpv's default.
_SOFTWARE_RENDERERS = re.compile(r"llvmpipe|softpipe|swiftshader|lavapipe|software", re.I)


def create_headless_context(require: int = 430):
    """A standalone EGL context (no window system needed).

    Raises GLUnavailableError with an actionable message when no suitable
    context can be made (no libEGL, no Mesa driver, or too old a GL version).
    """
    try:
        ctx = moderngl.create_context(standalone=True, backend="egl", require=require)
    except Exception as exc:
        major, minor = divmod(require, 100)
        raise GLUnavailableError(
            f"cannot create a headless OpenGL {major}.{minor // 10} context via EGL ({exc}); "
            "install Mesa's EGL driver (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri) "
            "or run on a machine with a GPU driver"
        ) from exc
    for name in ("program", "compute_shader"):
        setattr(ctx, name, _signals_held(getattr(ctx, name)))
    return ctx


_HELD_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def signals_held():
    """Hold back the Python handlers of SIGINT, SIGTERM and SIGHUP for the block, and run them after it.

    moderngl (5.13) crashes with SIGSEGV when the exception of such a handler (KeyboardInterrupt,
    cli.Terminated) surfaces inside its shader compile, which on a software renderer takes seconds:
    Ctrl-C during a file's start-up killed the process and left its temporary output behind. Held
    back, the signal still stops the command, a compile later, and unwinds as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: dict[int, None] = {}
    old = {}
    for sig in _HELD_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):  # SIG_DFL and SIG_IGN act in C and raise nothing
            old[sig] = handler
            signal.signal(sig, lambda signum, _frame: got.setdefault(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in got:
            signal.raise_signal(sig)


def _signals_held(method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        with signals_held():
            return method(*args, **kwargs)
    return call


def is_software_renderer(ctx) -> bool:
    return bool(_SOFTWARE_RENDERERS.search(ctx.info.get("GL_RENDERER", "")))


def has_compute(ctx) -> bool:
    return ctx.version_code >= 430 or "GL_ARB_compute_shader" in ctx.extensions


# The form software renderers get, measured with `upshade bench --forms fragment,compute,tiled` on
# llvmpipe (shaders/README.md): the tiled form ran within noise of the compute form there (0.76-1.16x
# across interleaved runs) and compiles 10-15x longer, so compute stays. What each compute form needs
# beyond compute shaders: invocations per work group (compute 32 x 4, tiled 8 x 1; OpenGL 4.3
# guarantees 1024) and shared memory (neither declares any, so no limit of it can rule them out).
SOFTWARE_FORM = "compute"
_FORM_INVOCATIONS = {"compute": 128, "tiled": 8}
_SOFTWARE_WHY = {
    "tiled": "software renderer: fused compute passes, blocks of 4 x 4 pixels per invocation (fewer passes and "
             "texture round trips than the compute form on llvmpipe)",
    "compute": "software renderer: 2x2 pixels per invocation share texel fetches (28-36% faster on llvmpipe)",
}


def form_lacks(ctx, form: str) -> str | None:
    """What ``ctx`` lacks to run ``form``'s passes (None: nothing)."""
    if form == "fragment":
        return None
    if not has_compute(ctx):
        return "no compute shaders (OpenGL < 4.3 without GL_ARB_compute_shader)"
    limit = ctx.info.get("GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS")
    if isinstance(limit, int) and limit < _FORM_INVOCATIONS[form]:
        return f"{limit} invocations per compute work group (the {form} form needs {_FORM_INVOCATIONS[form]})"
    return None


def shader_form(ctx) -> tuple[str, str]:
    """(form, reason): which export of our models (see paths.SHADER_FORMS) suits this renderer."""
    if not is_software_renderer(ctx):
        return "fragment", "GPU: one pixel per invocation keeps registers free (2-3.3x faster than compute on an H100)"
    lack = form_lacks(ctx, SOFTWARE_FORM)
    if lack:
        return "fragment", f"software renderer, but {lack}: falling back to fragment passes"
    return SOFTWARE_FORM, _SOFTWARE_WHY[SOFTWARE_FORM]


def choose_fbo_format(ctx, requested: str = "auto") -> tuple[str, str]:
    """(format, reason) for intermediate textures."""
    if requested in FBO_FORMATS:
        return requested, "requested"
    if requested != "auto":
        raise UpshadeError(f"unknown FBO format {requested!r}: choose auto, {', '.join(FBO_FORMATS)}")
    if is_software_renderer(ctx):
        return "rgba32f", "software renderer: float32 is exact there and costs within ~5% of rgba16f"
    return "rgba16f", "hardware GPU: half-float textures halve memory bandwidth (mpv's default)"


def gl_info(ctx, fbo_format: str = "auto") -> dict:
    """Renderer, version, vendor, limits of note and the chosen intermediate format."""
    info = ctx.info
    fmt, why = choose_fbo_format(ctx, fbo_format)
    exts = ctx.extensions
    notable = sorted(
        e
        for e in exts
        if e
        in {
            "GL_ARB_compute_shader",
            "GL_ARB_texture_gather",
            "GL_ARB_shader_image_load_store",
            "GL_ARB_gpu_shader5",
            "GL_ARB_timer_query",
            "GL_KHR_debug",
            "GL_EXT_texture_norm16",
            "GL_ARB_texture_float",
        }
    )
    return {
        "renderer": info.get("GL_RENDERER", "?"),
        "vendor": info.get("GL_VENDOR", "?"),
        "version": info.get("GL_VERSION", "?"),
        "version_code": ctx.version_code,
        "software": is_software_renderer(ctx),
        "max_texture_size": info.get("GL_MAX_TEXTURE_SIZE"),
        "max_texture_units": info.get("GL_MAX_TEXTURE_IMAGE_UNITS"),
        "compute": has_compute(ctx),
        "model_shaders": shader_form(ctx)[0],
        "model_shaders_reason": shader_form(ctx)[1],
        "extensions": notable,
        "fbo_format": fmt,
        "fbo_format_reason": why,
    }
