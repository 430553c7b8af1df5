"""The few GL calls moderngl does not expose: 1D textures and mirrored-repeat wrapping.

Calls go through GLVND's ``libOpenGL`` dispatch, which targets whatever context
is current on the thread (moderngl's EGL context or the player's GLFW one).
A 1D texture is made by creating the data as a (w x 1) moderngl 2D texture
(so moderngl picks the internal format and upload path) and copying it into
immutable 1D storage of the same internal format with glCopyImageSubData.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

GL_TEXTURE_1D = 0x0DE0
GL_TEXTURE_2D = 0x0DE1
GL_TEXTURE_3D = 0x806F
GL_TEXTURE0 = 0x84C0
GL_TEXTURE_INTERNAL_FORMAT = 0x1003
GL_TEXTURE_MIN_FILTER = 0x2801
GL_TEXTURE_MAG_FILTER = 0x2800
GL_TEXTURE_WRAP_S = 0x2802
GL_TEXTURE_WRAP_T = 0x2803
GL_TEXTURE_WRAP_R = 0x8072
GL_NEAREST = 0x2600
GL_LINEAR = 0x2601
GL_CLAMP_TO_EDGE = 0x812F
GL_REPEAT = 0x2901
GL_MIRRORED_REPEAT = 0x8370
GL_READ_WRITE = 0x88BA

WRAP = {"CLAMP": GL_CLAMP_TO_EDGE, "REPEAT": GL_REPEAT, "MIRROR": GL_MIRRORED_REPEAT}


@lru_cache(maxsize=1)
def _gl():
    for name in ("libOpenGL.so.0", ctypes.util.find_library("OpenGL"), "libGL.so.1", ctypes.util.find_library("GL")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.glCopyImageSubData  # noqa: B018 - probe for GL 4.3 entry points
            return lib
        except (OSError, AttributeError):
            continue
    return None


def available() -> bool:
    return _gl() is not None


def set_wrap(tex, target: int, border: str, dims: int) -> None:
    """Set S/T/R wrapping of a moderngl texture (2D or 3D) to CLAMP, REPEAT or MIRROR."""
    gl = _gl()
    mode = WRAP[border]
    gl.glActiveTexture(GL_TEXTURE0)
    gl.glBindTexture(target, tex.glo)
    for axis in (GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T, GL_TEXTURE_WRAP_R)[:dims]:
        gl.glTexParameteri(target, axis, mode)
    gl.glBindTexture(target, 0)


class Texture1D:
    """An immutable 1D texture holding the data of a (w x 1) moderngl texture."""

    def __init__(self, ctx, width: int, components: int, data: bytes, dtype: str, linear: bool, border: str):
        gl = _gl()
        if gl is None:
            raise OSError("no libOpenGL/libGL to create 1D textures with")
        staging = ctx.texture((width, 1), components, data, dtype=dtype, alignment=1)
        try:
            fmt = ctypes.c_int(0)
            gl.glActiveTexture(GL_TEXTURE0)
            gl.glBindTexture(GL_TEXTURE_2D, staging.glo)
            gl.glGetTexLevelParameteriv(GL_TEXTURE_2D, 0, GL_TEXTURE_INTERNAL_FORMAT, ctypes.byref(fmt))
            gl.glBindTexture(GL_TEXTURE_2D, 0)
            self.internal_format = fmt.value
            glo = ctypes.c_uint(0)
            gl.glGenTextures(1, ctypes.byref(glo))
            self.glo = glo.value
            gl.glBindTexture(GL_TEXTURE_1D, self.glo)
            gl.glTexStorage1D(GL_TEXTURE_1D, 1, self.internal_format, width)
            filt = GL_LINEAR if linear else GL_NEAREST
            gl.glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MIN_FILTER, filt)
            gl.glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_MAG_FILTER, filt)
            gl.glTexParameteri(GL_TEXTURE_1D, GL_TEXTURE_WRAP_S, WRAP[border])
            gl.glBindTexture(GL_TEXTURE_1D, 0)
            gl.glCopyImageSubData(staging.glo, GL_TEXTURE_2D, 0, 0, 0, 0,
                                  self.glo, GL_TEXTURE_1D, 0, 0, 0, 0, width, 1, 1)
        finally:
            staging.release()
        self.width = width

    def use(self, unit: int) -> None:
        gl = _gl()
        gl.glActiveTexture(GL_TEXTURE0 + unit)
        gl.glBindTexture(GL_TEXTURE_1D, self.glo)

    def bind_to_image(self, unit: int, read: bool = True, write: bool = True) -> None:
        _gl().glBindImageTexture(unit, self.glo, 0, 0, 0, GL_READ_WRITE, self.internal_format)

    def release(self) -> None:
        if self.glo:
            glo = ctypes.c_uint(self.glo)
            _gl().glDeleteTextures(1, ctypes.byref(glo))
            self.glo = 0
