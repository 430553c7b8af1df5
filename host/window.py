"""A GLFW window with an OpenGL 4.3 core context, plus the pure geometry of sizing and letterboxing.

The window only collects input as events; interpreting them is the player's
business, so tests can feed the same events without a window manager.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

import moderngl

from .errors import GLUnavailableError, UpshadeError

NO_DISPLAY_HINT = "use `upshade upscale` to write an upscaled file instead"


@dataclass(frozen=True)
class Rect:
    """A rectangle in framebuffer pixels, GL convention: (x, y) is the bottom-left corner."""

    x: int
    y: int
    w: int
    h: int

    @property
    def viewport(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)


def fit_size(w: int, h: int, max_w: int, max_h: int) -> tuple[int, int]:
    """(w, h) scaled down, aspect kept, to fit inside (max_w, max_h); never scaled up."""
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {w}x{h}")
    s = min(1.0, max_w / w, max_h / h)
    return max(1, round(w * s)), max(1, round(h * s))


def letterbox(fb_w: int, fb_h: int, src_w: int, src_h: int) -> Rect:
    """The largest rectangle with the aspect of src_w:src_h centred in fb_w x fb_h (black bars around)."""
    if fb_w <= 0 or fb_h <= 0:
        return Rect(0, 0, 0, 0)
    if fb_w * src_h <= fb_h * src_w:  # framebuffer is narrower than the video: bars top and bottom
        w, h = fb_w, max(1, round(fb_w * src_h / src_w))
    else:
        w, h = max(1, round(fb_h * src_w / src_h)), fb_h
    return Rect((fb_w - w) // 2, (fb_h - h) // 2, w, h)


def initial_window_size(video_w: int, video_h: int, work_area: tuple[int, int], scale: int = 2) -> tuple[int, int]:
    """The upscaled video size, fitted into the monitor's work area (less room for decorations)."""
    # Window decorations are outside the work-area arithmetic GLFW gives us; keep a margin for them.
    max_w, max_h = int(work_area[0] * 0.95), int(work_area[1] * 0.92)
    return fit_size(video_w * scale, video_h * scale, max(1, max_w), max(1, max_h))


@dataclass(frozen=True)
class KeyEvent:
    key: int
    repeat: bool


@dataclass(frozen=True)
class CharEvent:
    """A typed character (layout and Shift applied: '#', 'J'), for keys bound by character as in mpv."""

    char: str


@dataclass(frozen=True)
class MouseEvent:
    x: float          # window coordinates, origin top-left
    y: float
    pressed: bool     # left button state after this event


class _CurrentEGL:
    """Takes a current EGL context off this thread while the window's GLX context is in use.

    libglvnd allows one current context per thread across GLX and EGL: with an EGL context
    current (a headless moderngl context made earlier in this process), glXMakeCurrent fails
    with BadAccess and Xlib exits the process. The EGL context is made current again on close.
    """

    def __init__(self):
        self._saved = None
        try:
            # Only if the process already uses EGL: never load it just for this.
            egl = ctypes.CDLL("libEGL.so.1", mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except (OSError, AttributeError):
            return
        egl.eglGetCurrentContext.restype = ctypes.c_void_p
        egl.eglGetCurrentDisplay.restype = ctypes.c_void_p
        egl.eglGetCurrentSurface.restype = ctypes.c_void_p
        egl.eglGetCurrentSurface.argtypes = [ctypes.c_int32]
        egl.eglMakeCurrent.restype = ctypes.c_uint
        egl.eglMakeCurrent.argtypes = [ctypes.c_void_p] * 4
        context = egl.eglGetCurrentContext()
        if not context:
            return
        display = egl.eglGetCurrentDisplay()
        draw, read = egl.eglGetCurrentSurface(0x3059), egl.eglGetCurrentSurface(0x305A)  # EGL_DRAW, EGL_READ
        if egl.eglMakeCurrent(display, None, None, None):
            self._egl = egl
            self._saved = (display, draw, read, context)

    def restore(self) -> None:
        if self._saved is not None:
            self._egl.eglMakeCurrent(*self._saved)
            self._saved = None


# GLFW is process-wide: it is initialised by the first open window and terminated (and a
# suspended EGL context restored) when the last one closes.
_open_windows = 0
_suspended_egl: _CurrentEGL | None = None


def _address(pointer) -> int | None:
    """GLFW handles are ctypes pointers: equal windows are equal addresses, not equal objects."""
    return ctypes.cast(pointer, ctypes.c_void_p).value if pointer else None


def _display_problem() -> str | None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "DISPLAY is not set"
    return None


class NoDisplayError(UpshadeError):
    """No window can open here (no DISPLAY, or GLFW cannot reach the display server)."""


class Window:
    """One GLFW window and its moderngl context. ``close()`` terminates GLFW with the last window."""

    def __init__(self, size, title: str, *, vsync: bool = True, visible: bool = True):
        """``size`` is (width, height) or a function of the monitor's work area (w, h) returning it."""
        global _open_windows, _suspended_egl
        import glfw

        self._glfw = glfw
        self._errors: list[str] = []
        problem = _display_problem()
        if problem:
            raise NoDisplayError(f"no display available ({problem}): {NO_DISPLAY_HINT}")
        # Collect GLFW's messages ourselves: its default is a Python warning per error.
        glfw.set_error_callback(
            lambda _code, msg: self._errors.append(msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)))
        if not glfw.init():
            reason = self._errors[-1] if self._errors else "unknown reason"
            raise NoDisplayError(f"no display available (GLFW could not initialise: {reason}): {NO_DISPLAY_HINT}")
        self._handle = None
        self.ctx = None
        self._counted = True
        if _open_windows == 0:
            _suspended_egl = _CurrentEGL()
        _open_windows += 1
        try:
            glfw.default_window_hints()
            glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 4)
            glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
            glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
            glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
            glfw.window_hint(glfw.VISIBLE, bool(visible))
            glfw.window_hint(glfw.DOUBLEBUFFER, True)
            if callable(size):
                size = size(work_area())
            handle = glfw.create_window(int(size[0]), int(size[1]), title, None, None)
            if not handle:
                reason = self._errors[-1] if self._errors else "unknown reason"
                raise GLUnavailableError(f"could not open an OpenGL 4.3 core window: {reason}")
            self._handle = handle
            glfw.make_context_current(handle)
            glfw.swap_interval(1 if vsync else 0)
            self.ctx = moderngl.create_context(require=430)
            # Objects dropped by Python are queued and deleted at ctx.gc(), on this thread, with the context current.
            self.ctx.gc_mode = "context_gc"
        except BaseException:
            self.close()
            raise
        self.events: list[KeyEvent | CharEvent | MouseEvent] = []
        self.resized = True
        self._button = False
        self._saved_geometry: tuple[int, int, int, int] | None = None
        glfw.set_key_callback(handle, self._on_key)
        glfw.set_char_callback(handle, self._on_char)
        glfw.set_mouse_button_callback(handle, self._on_button)
        glfw.set_cursor_pos_callback(handle, self._on_cursor)
        glfw.set_framebuffer_size_callback(handle, self._on_resize)

    # --- callbacks: only record -------------------------------------------------------------
    def _on_key(self, _win, key, _scancode, action, _mods):
        g = self._glfw
        if action in (g.PRESS, g.REPEAT):
            self.events.append(KeyEvent(key, action == g.REPEAT))

    def _on_char(self, _win, codepoint):
        self.events.append(CharEvent(chr(codepoint)))

    def _on_button(self, win, button, action, _mods):
        g = self._glfw
        if button == g.MOUSE_BUTTON_LEFT:
            self._button = action == g.PRESS
            x, y = g.get_cursor_pos(win)
            self.events.append(MouseEvent(x, y, self._button))

    def _on_cursor(self, _win, x, y):
        if self._button:  # only drags matter to the player
            self.events.append(MouseEvent(x, y, True))

    def _on_resize(self, _win, _w, _h):
        self.resized = True

    # --- queries and actions -----------------------------------------------------------------
    @property
    def handle(self):
        return self._handle

    def framebuffer_size(self) -> tuple[int, int]:
        return tuple(self._glfw.get_framebuffer_size(self._handle))

    def window_size(self) -> tuple[int, int]:
        return tuple(self._glfw.get_window_size(self._handle))

    def to_framebuffer(self, x: float, y: float) -> tuple[float, float]:
        """Window coordinates (top-left origin, screen units) to framebuffer pixels (bottom-left origin)."""
        ww, wh = self.window_size()
        fw, fh = self.framebuffer_size()
        sx, sy = fw / max(1, ww), fh / max(1, wh)
        return x * sx, fh - y * sy

    def set_title(self, title: str) -> None:
        self._glfw.set_window_title(self._handle, title)

    def set_size(self, width: int, height: int) -> None:
        self._glfw.set_window_size(self._handle, int(width), int(height))

    @property
    def should_close(self) -> bool:
        return bool(self._glfw.window_should_close(self._handle))

    def request_close(self) -> None:
        self._glfw.set_window_should_close(self._handle, True)

    @property
    def fullscreen(self) -> bool:
        return bool(self._glfw.get_window_monitor(self._handle))  # a ctypes pointer: NULL is falsy, not None

    def set_fullscreen(self, on: bool) -> None:
        g = self._glfw
        if on == self.fullscreen:
            return
        if on:
            monitor = g.get_primary_monitor()
            if not monitor:
                return
            x, y = g.get_window_pos(self._handle)
            w, h = g.get_window_size(self._handle)
            self._saved_geometry = (x, y, w, h)
            mode = g.get_video_mode(monitor)
            g.set_window_monitor(self._handle, monitor, 0, 0, mode.size.width, mode.size.height, mode.refresh_rate)
        else:
            x, y, w, h = self._saved_geometry or (50, 50, 960, 540)
            g.set_window_monitor(self._handle, None, x, y, w, h, 0)
        self.resized = True

    def poll(self, timeout: float | None = None) -> list[KeyEvent | CharEvent | MouseEvent]:
        """Process window-system events (waiting up to ``timeout`` s for one) and return the new ones."""
        if timeout:
            self._glfw.wait_events_timeout(timeout)
        else:
            self._glfw.poll_events()
        events, self.events = self.events, []
        return events

    def swap(self) -> None:
        self._glfw.swap_buffers(self._handle)

    def make_current(self) -> None:
        """Make this window's context current (a no-op when it already is)."""
        g = self._glfw
        if self._handle is not None and _address(g.get_current_context()) != _address(self._handle):
            g.make_context_current(self._handle)

    def close(self) -> None:
        """Release the context, destroy the window, terminate GLFW with the last window (safe to call twice)."""
        g = self._glfw
        if self._handle is not None:
            self.make_current()
        if self.ctx is not None:
            try:
                collect_garbage(self.ctx)
                self.ctx.release()
            finally:
                self.ctx = None
        if self._handle is not None:
            g.destroy_window(self._handle)
            self._handle = None
        global _open_windows, _suspended_egl

        if getattr(self, "_counted", False):
            self._counted = False
            _open_windows -= 1
            if _open_windows == 0:
                g.terminate()
                g.set_error_callback(None)
                if _suspended_egl is not None:
                    _suspended_egl.restore()
                    _suspended_egl = None


def collect_garbage(ctx) -> int:
    """``ctx.gc()`` for gc_mode "context_gc", tolerating objects that were already released.

    moderngl (5.x) queues the handle of *every* collected wrapper, including ones released
    explicitly, whose handle is then an ``InvalidObject`` without ``release``: ``ctx.gc()``
    raises AttributeError on those. Explicit release is our rule, so skip them.
    """
    objs = ctx.objects
    count = 0
    while objs:
        obj = objs.popleft()
        release = getattr(obj, "release", None)
        if release is not None:
            release()
            count += 1
    return count


def work_area() -> tuple[int, int]:
    """Size of the primary monitor's work area (GLFW must be initialised)."""
    import glfw

    monitor = glfw.get_primary_monitor()
    if not monitor:
        return (1280, 720)
    _x, _y, w, h = glfw.get_monitor_workarea(monitor)
    if w <= 0 or h <= 0:
        mode = glfw.get_video_mode(monitor)
        w, h = mode.size.width, mode.size.height
    return (w, h)
