"""Time of the network passes per frame: GL timer queries, or the CPU's clock where those cannot serve.

The player (its overlay, and ``--model auto``'s ladder) and ``upshade bench
--ladder`` need how long the shader network takes, and only that: a timer set
as a Renderer's ``pass_timer`` brackets every hook pass (the network's passes;
built-in upload, colour and scaling passes are not hook passes).
``PassTimer`` uses GL timer queries, read when the GPU has them, a frame or two
later, so timing never stalls the pipeline. ``CpuPassTimer`` finishes the GL
work before and after each pass and reads the CPU's clock: on a software
renderer (llvmpipe) the passes run on the CPU, so that is the time they take
from the frame (and llvmpipe's timer queries, measured against it, add
nothing); elsewhere it is the fallback when timer queries are unsupported.
``NetworkMeter`` picks one for a context (``timing_method``, shown by
``upshade info``) and leaves out a chain's first render at each size, which
compiles its passes as they first run.
"""

from __future__ import annotations

import collections
import ctypes
import time

from .gpu import is_software_renderer
from .rawgl import _gl

GL_TIME_ELAPSED = 0x88BF
GL_QUERY_RESULT = 0x8866
GL_QUERY_RESULT_AVAILABLE = 0x8867
MAX_FRAMES_IN_FLIGHT = 8


class PassTimer:
    """Sums the GPU time of the passes bracketed by ``begin``/``end`` per frame (``end_frame``).

    ``poll()`` returns ``(seconds, passes)`` of every frame whose queries have finished, oldest first.
    Uses the GL context current on the calling thread (the one the Renderer draws with).
    """

    def __init__(self):
        gl = _gl()
        if gl is None:
            raise OSError("no libOpenGL/libGL for timer queries")
        self._gl = gl
        gl.glGetQueryObjectui64v.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint64)]
        gl.glGetQueryObjectiv.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_int)]
        self._free: list[int] = []
        self._all: list[int] = []
        self._frame: list[int] = []
        self._frames: collections.deque = collections.deque()
        self._active = False

    def _query(self) -> int:
        if not self._free:
            ids = (ctypes.c_uint * 16)()
            self._gl.glGenQueries(16, ids)
            self._free.extend(ids)
            self._all.extend(ids)
        return self._free.pop()

    def begin(self) -> None:
        q = self._query()
        self._gl.glBeginQuery(GL_TIME_ELAPSED, q)
        self._frame.append(q)
        self._active = True

    def end(self) -> None:
        if self._active:
            self._gl.glEndQuery(GL_TIME_ELAPSED)
            self._active = False

    def end_frame(self, keep: bool = True) -> None:
        """Close the current frame's set of passes (a frame without passes reads 0 s). ``keep`` False:
        measure but do not report it (a first frame, whose passes compile as they first run)."""
        if not keep:
            if not self._frame:
                return   # nothing timed, nothing to report
            self._frame = [-q - 1 for q in self._frame]   # marked: freed when done, never reported
        self._frames.append(self._frame)
        self._frame = []
        while len(self._frames) > MAX_FRAMES_IN_FLIGHT:  # nobody polls: forget the oldest
            self._free.extend(q if q >= 0 else -q - 1 for q in self._frames.popleft())

    def forget(self) -> None:
        """Report none of the frames timed so far (another chain is timed from now on); their queries are
        freed when done."""
        self._frames = collections.deque([q if q < 0 else -q - 1 for q in f] for f in self._frames if f)

    def _available(self, q: int) -> bool:
        v = ctypes.c_int(0)
        self._gl.glGetQueryObjectiv(q, GL_QUERY_RESULT_AVAILABLE, ctypes.byref(v))
        return bool(v.value)

    def poll(self, wait: bool = False) -> list[tuple[float, int]]:
        """Finished frames as (GPU seconds of their passes, number of passes); ``wait``: all of them."""
        out = []
        while self._frames:
            marked = self._frames[0]
            queries = [q if q >= 0 else -q - 1 for q in marked]
            if queries and not wait and not self._available(queries[-1]):
                break
            total = 0
            v = ctypes.c_uint64(0)
            for q in queries:
                self._gl.glGetQueryObjectui64v(q, GL_QUERY_RESULT, ctypes.byref(v))
                total += v.value
            self._frames.popleft()
            self._free.extend(queries)
            if not any(q < 0 for q in marked):
                out.append((total / 1e9, len(queries)))
        return out

    def release(self) -> None:
        if self._all:
            ids = (ctypes.c_uint * len(self._all))(*self._all)
            self._gl.glDeleteQueries(len(self._all), ids)
        self._all, self._free, self._frame = [], [], []
        self._frames.clear()


def attach(renderer, timer: PassTimer | None) -> bool:
    """Time ``renderer``'s hook passes with ``timer`` (None: stop timing): the renderer brackets every
    hook pass, and only those, with the timer's begin()/end() (``Renderer.pass_timer``)."""
    renderer.pass_timer = timer
    return True


class CpuPassTimer:
    """``PassTimer``'s interface, timed by the CPU's clock between ``ctx.finish()`` calls around each pass."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._t0: float | None = None
        self._seconds, self._passes = 0.0, 0
        self._frames: collections.deque = collections.deque(maxlen=MAX_FRAMES_IN_FLIGHT)

    def begin(self) -> None:
        self._ctx.finish()   # the work queued before the pass is not the pass's
        self._t0 = time.perf_counter()

    def end(self) -> None:
        if self._t0 is not None:
            self._ctx.finish()
            self._seconds += time.perf_counter() - self._t0
            self._passes += 1
            self._t0 = None

    def end_frame(self, keep: bool = True) -> None:
        if keep:
            self._frames.append((self._seconds, self._passes))
        self._seconds, self._passes = 0.0, 0

    def forget(self) -> None:
        self._frames.clear()

    def poll(self, wait: bool = False) -> list[tuple[float, int]]:
        out = list(self._frames)
        self._frames.clear()
        return out

    def release(self) -> None:
        self._frames.clear()


def timer_queries(ctx) -> bool:
    """Whether ``ctx`` has GL timer queries (OpenGL 3.3 or GL_ARB_timer_query) and libGL to call them."""
    return (ctx.version_code >= 330 or "GL_ARB_timer_query" in ctx.extensions) and _gl() is not None


def timing_method(ctx) -> tuple[str, str]:
    """("gpu" | "cpu", why): how the network passes are timed on ``ctx``'s renderer."""
    if is_software_renderer(ctx):
        return "cpu", ("software renderer: the passes run on the CPU, timed by its clock between glFinish calls "
                       "around them")
    if not timer_queries(ctx):
        return "cpu", ("no GL timer queries (OpenGL 3.3 / GL_ARB_timer_query, or libGL): timed by the CPU's "
                       "clock around glFinish, which stalls the GPU a little at every pass")
    return "gpu", "GL timer queries (GL_TIME_ELAPSED) around the network passes"


class NetworkMeter:
    """The network passes' time per frame of whichever renderer is attached (``timing_method``)."""

    LABELS = {"gpu": "GPU timer", "cpu": "CPU time"}

    def __init__(self, ctx):
        self.method, self.why = timing_method(ctx)
        self._timer = PassTimer() if self.method == "gpu" else CpuPassTimer(ctx)
        self._renderer = None
        self._seen: set = set()   # (entry, enabled, size) rendered at least once

    @property
    def label(self) -> str:
        return self.LABELS[self.method]

    @property
    def attached(self):
        return self._renderer

    def attach(self, renderer) -> None:
        """Time ``renderer``'s hook passes from now on (None: time nothing). Frames of another renderer
        not yet polled are dropped: timer queries finish a frame or two late, and the ladder took them for
        the new chain's (a lagging L frame over 3 budgets stepped down again from the model just chosen)."""
        if self._renderer is not None and self._renderer is not renderer:
            attach(self._renderer, None)
            self._timer.forget()
        self._renderer = renderer
        if renderer is not None:
            attach(renderer, self._timer)

    def rendered(self, key) -> None:
        """A render of ``key`` = (entry, enabled, size) just ran: its first one compiles, so is not reported."""
        if self._renderer is not None:
            self._timer.end_frame(keep=key in self._seen)
            self._seen.add(key)

    def discard(self) -> None:
        """The passes timed since the last frame are not a frame's (a screenshot's render): not reported."""
        self._timer.end_frame(keep=False)

    def poll(self, wait: bool = False) -> list[tuple[float, int]]:
        """(seconds, passes) of every finished frame since the last poll, oldest first."""
        return self._timer.poll(wait)

    def release(self) -> None:
        self.attach(None)
        self._timer.release()
