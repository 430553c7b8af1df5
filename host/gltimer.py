"""GPU time of the network passes, measured with GL timer queries (GL_TIME_ELAPSED).

The player's overlay shows how long the shader network takes on the GPU, and
only that: a ``PassTimer`` set as a Renderer's ``pass_timer`` brackets every
hook pass (the network's passes; built-in upload, colour and scaling passes are
not hook passes) with a query. Results are read when the GPU has them, a
frame or two later, so timing never stalls the pipeline.
"""

from __future__ import annotations

import collections
import ctypes

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
            self._frame = [-q - 1 for q in self._frame]   # marked: freed when done, never reported
        self._frames.append(self._frame)
        self._frame = []
        while len(self._frames) > MAX_FRAMES_IN_FLIGHT:  # nobody polls: forget the oldest
            self._free.extend(q if q >= 0 else -q - 1 for q in self._frames.popleft())

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
