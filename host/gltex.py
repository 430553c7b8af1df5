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


# Output formats a caller may ask the last pass of a frame to write (moderngl dtypes):
# unorm targets are cheaper to write and to read back than float ones, and the
# window or the encoder clamps to [0, 1] anyway.
OUTPUT_DTYPES = {"float": None, "unorm8": "f1", "unorm16": "nu2"}


class TexturePool:
    """Render targets, allocated on first need and reused every frame.

    Within a frame, ``acquire`` hands out a texture nobody holds; ``collect``
    returns the ones no longer referenced. The sequence of requests is the same
    every frame for a fixed configuration, so after the first frame nothing is
    allocated (``allocations`` stops growing; the tests check this). ``trim``
    releases what the current configuration no longer uses (e.g. the textures
    of the previous window size).

    Targets hold only the components a pass produces (r, rg or rgba: GL cannot
    render to rgb): on llvmpipe a pass writing one float costs far less than
    one writing four, and what a missing component reads as (0, alpha 1) is
    exactly mpv's rule for components a pass does not produce.
    """

    def __init__(self, ctx: moderngl.Context, fmt: str):
        self.ctx = ctx
        self.format = fmt
        self._dtype = _FBO_DTYPE[fmt]
        self._free: dict[tuple, list[moderngl.Texture]] = defaultdict(list)
        self._in_use: dict[int, moderngl.Texture] = {}
        self._keys: dict[int, tuple] = {}
        self._fbos: dict[int, moderngl.Framebuffer] = {}
        self.allocations = 0

    @staticmethod
    def storage_components(comps: int) -> int:
        return 4 if comps >= 3 else max(1, comps)

    def acquire(self, w: int, h: int, comps: int = 4, dtype: str | None = None) -> moderngl.Texture:
        """A ``w`` x ``h`` target for ``comps`` components, float (the pool's format) unless ``dtype``."""
        key = (w, h, self.storage_components(comps), dtype or self._dtype)
        free = self._free[key]
        if free:
            tex = free.pop()
        else:
            tex = self.ctx.texture((w, h), key[2], dtype=key[3])
            # mpv/libplacebo sample hook textures with linear filtering and clamp-to-edge.
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = False
            tex.repeat_y = False
            self._keys[id(tex)] = key
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
            self._free[self._keys[key]].append(tex)

    def begin_frame(self) -> None:
        self.collect(())

    @property
    def live(self) -> int:
        """Textures currently allocated (free or in use)."""
        return len(self._keys)

    def trim(self) -> None:
        """Release every texture not in use."""
        for free in self._free.values():
            for tex in free:
                self._drop(tex)
        self._free.clear()

    def _drop(self, tex: moderngl.Texture) -> None:
        fb = self._fbos.pop(id(tex), None)
        if fb is not None:
            fb.release()
        self._keys.pop(id(tex), None)
        tex.release()

    def release(self) -> None:
        self.trim()
        for tex in list(self._in_use.values()):
            self._drop(tex)
        self._in_use.clear()


class FullscreenProgram:
    """A fragment program drawn as one full-viewport triangle (VAO without buffers)."""

    def __init__(self, ctx: moderngl.Context, fragment_source: str):
        self.prog = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=fragment_source)
        self.vao = ctx.vertex_array(self.prog, [])
        self._uniforms: dict[str, object] = {}

    def set(self, name: str, value) -> None:
        """Set a uniform; one the linker removed as unused is ignored (looked up once, then cached)."""
        try:
            u = self._uniforms[name]
        except KeyError:
            u = self._uniforms[name] = self.prog.get(name, None)
        if u is not None:
            u.value = value

    def draw(self, fbo: moderngl.Framebuffer) -> None:
        fbo.use()
        self.vao.render(moderngl.TRIANGLES, vertices=3)

    def release(self) -> None:
        self.vao.release()
        self.prog.release()
