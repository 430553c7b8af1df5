"""Textures of the render pipeline: ``Plane`` (a texture plus where it sits in the image) and a reuse pool."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Iterable

import moderngl

from .glsl import FULLSCREEN_VS

_FBO_DTYPE = {"rgba16f": "f2", "rgba32f": "f4"}


@dataclass(frozen=True)
class Plane:
    """A stage texture and its placement: image-space x maps to texel-space ``sx * x + tx``.

    Image space is the source frame in luma pixels. A prescaler doubles ``sx``;
    ``//!OFFSET`` adds to ``tx``; subsampled chroma has ``sx = 1/2`` and a
    chroma-location shift in ``tx``. Every later resampling (chroma merge, the
    main scaler) maps through this, which is how mpv/libplacebo compensate offsets.
    """

    tex: moderngl.Texture
    w: int
    h: int
    comps: int
    sx: float = 1.0
    sy: float = 1.0
    tx: float = 0.0
    ty: float = 0.0

    def placed_like(self, other: "Plane") -> bool:
        eps = 1e-6
        return (
            self.w == other.w
            and self.h == other.h
            and abs(self.sx - other.sx) < eps
            and abs(self.sy - other.sy) < eps
            and abs(self.tx - other.tx) < eps
            and abs(self.ty - other.ty) < eps
        )

    def replaced(self, **kw) -> "Plane":
        return replace(self, **kw)


class TexturePool:
    """Float render targets, allocated on first need and reused every frame.

    Within a frame, ``acquire`` hands out a texture nobody holds; ``collect``
    returns the ones no longer referenced. The sequence of requests is the same
    every frame for a fixed configuration, so after the first frame nothing is
    allocated (``allocations`` stops growing; the tests check this).
    """

    def __init__(self, ctx: moderngl.Context, fmt: str):
        self.ctx = ctx
        self.format = fmt
        self._dtype = _FBO_DTYPE[fmt]
        self._free: dict[tuple[int, int], list[moderngl.Texture]] = defaultdict(list)
        self._in_use: dict[int, moderngl.Texture] = {}
        self._fbos: dict[int, moderngl.Framebuffer] = {}
        self._all: list[moderngl.Texture] = []
        self.allocations = 0

    def acquire(self, w: int, h: int) -> moderngl.Texture:
        free = self._free[(w, h)]
        if free:
            tex = free.pop()
        else:
            tex = self.ctx.texture((w, h), 4, dtype=self._dtype)
            # mpv/libplacebo sample hook textures with linear filtering and clamp-to-edge.
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = False
            tex.repeat_y = False
            self._all.append(tex)
            self.allocations += 1
        self._in_use[id(tex)] = tex
        return tex

    def fbo(self, tex: moderngl.Texture) -> moderngl.Framebuffer:
        fb = self._fbos.get(id(tex))
        if fb is None:
            fb = self._fbos[id(tex)] = self.ctx.framebuffer(color_attachments=[tex])
        return fb

    def collect(self, keep: Iterable[moderngl.Texture]) -> None:
        """Give back every texture handed out this frame that is not in ``keep``."""
        keep_ids = {id(t) for t in keep}
        for key in [k for k in self._in_use if k not in keep_ids]:
            tex = self._in_use.pop(key)
            self._free[tex.size].append(tex)

    def begin_frame(self) -> None:
        self.collect(())

    def release(self) -> None:
        for fb in self._fbos.values():
            fb.release()
        for tex in self._all:
            tex.release()
        self._fbos.clear()
        self._all.clear()
        self._free.clear()
        self._in_use.clear()


class FullscreenProgram:
    """A fragment program drawn as one full-viewport triangle (VAO without buffers)."""

    def __init__(self, ctx: moderngl.Context, fragment_source: str):
        self.prog = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=fragment_source)
        self.vao = ctx.vertex_array(self.prog, [])

    def set(self, name: str, value) -> None:
        u = self.prog.get(name, None)
        if u is not None:
            u.value = value

    def draw(self, fbo: moderngl.Framebuffer) -> None:
        fbo.use()
        self.vao.render(moderngl.TRIANGLES, vertices=3)

    def release(self) -> None:
        self.vao.release()
        self.prog.release()
