"""Reading rendered frames back for an encoder, without waiting for the GPU.

The renderer's output texture is converted on the GPU to the encoder's YCbCr
planes (``PlaneReadback``: matrix, range, subsampling and packing in one compute
dispatch, laid out as FFmpeg's frames) or, for pixel formats the GPU path does
not handle, to packed RGB that the encoder thread converts with swscale
(``Readback``), and copied into one of a ring of pixel buffers. The CPU reads a
buffer only ``LAG`` frames later, when the copy has long finished.
"""

from __future__ import annotations

import functools
from collections import deque

import av
import numpy as np

from .encode import ycbcr_matrix
from .errors import UpshadeError
from .glsl import GLSL_VERSION
from .gltex import FullscreenProgram

# Frames between issuing a readback and reading it: 2 keeps the GPU one frame
# ahead of the CPU copy even with a frame still queued in the driver.
LAG = 2

# Output pixel formats converted on the GPU (PlaneReadback): 3-plane YCbCr,
# limited range, 4:2:0 / 4:2:2 / 4:4:4, 8 to 12 bits little-endian. Everything
# else the encoders take goes through packed RGB and swscale (Readback):
# semi-planar nv12/nv16/nv21/nv20le, full-range yuvj*, gray*, gbrp*/RGB,
# formats with alpha, 4:1:x and 4:4:0 subsampling, big-endian words.
GPU_PIX_FMTS = ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                "yuv420p12le", "yuv422p12le", "yuv444p12le")

TO_RGB_FS = GLSL_VERSION + """
layout(binding = 0) uniform sampler2D src;
out vec4 color;
void main() {
    color = vec4(clamp(texelFetch(src, ivec2(gl_FragCoord.xy), 0).rgb, 0.0, 1.0), 1.0);
}
"""

# One compute dispatch converts, subsamples and packs a frame straight into the
# pixel buffer, laid out as FFmpeg's planes (row strides included), so the CPU
# side is one memcpy per plane. Each invocation produces one 32-bit word of
# each chroma plane (P = 4 / BYTES samples) and the luma words above it (a
# block of P*SUB_X x SUB_Y luma pixels), fetching every texel it needs once.
# Codes are rounded and packed here, exactly, for any depth (8..16 bits).
#
# Chroma siting and filter (SUB_X/SUB_Y: 2 where subsampled). Horizontally the
# chroma sample sits on the even luma column (MPEG-2 / H.264 / HEVC "left",
# what decoders assume for untagged 4:2:0 and what 4:2:2 always is): taps
# [1 2 1]/4 around it. Vertically (4:2:0) it sits midway between rows 2j and
# 2j+1: their average. (swscale averages column pairs, i.e. centre-sites
# horizontally, half a pixel off what the stream says, and takes [1 3 3 1]/8
# vertically: measured on llvmpipe, those two extra rows cost 40% more.)
# Edges repeat the border pixel (odd sizes included). The filter runs on
# clamped R'G'B' before the matrix: the matrix is affine, so this equals
# filtering Cb/Cr.
YCBCR_CS = GLSL_VERSION + """
layout(local_size_x = LOCAL_X, local_size_y = LOCAL_Y) in;
layout(binding = 0) uniform sampler2D src;   // any float or unorm RGBA texture
layout(std430, binding = 0) writeonly buffer Planes { uint words[]; };
uniform ivec2 size;                          // luma size
uniform ivec3 stride;                        // words per row of Y, Cb, Cr
uniform ivec3 base;                          // first word of Y, Cb, Cr
uniform vec4 y_row;                          // code = dot(vec4(rgb, 1), row): encode.ycbcr_matrix
uniform vec4 cb_row;
uniform vec4 cr_row;
uniform float peak;                          // largest code, 2^bits - 1

const int P = 4 / BYTES;                     // samples per word
const int BX = P * SUB_X;                    // luma columns per invocation
const int C0 = SUB_X - 1;                    // fetched columns: x0 - C0 .. x0 + BX - 1
const int NC = BX + C0;                      // fetched rows: y0 .. y0 + SUB_Y - 1

uint code(vec3 rgb, vec4 row) {
    return uint(clamp(floor(dot(vec4(rgb, 1.0), row) + 0.5), 0.0, peak));
}

vec3 hfilter(vec3 l, vec3 c, vec3 r) {
#if SUB_X == 2
    return 0.25 * (l + r) + 0.5 * c;
#else
    return c;
#endif
}

void main() {
    ivec2 g = ivec2(gl_GlobalInvocationID.xy);
    ivec2 o = g * ivec2(BX, SUB_Y);
    if (o.x >= size.x || o.y >= size.y) return;
    ivec2 hi = size - 1;
    vec3 t[SUB_Y][NC];
    for (int r = 0; r < SUB_Y; r++)
        for (int c = 0; c < NC; c++)
            t[r][c] = clamp(texelFetch(src, clamp(o + ivec2(c - C0, r), ivec2(0), hi), 0).rgb, 0.0, 1.0);

    for (int r = 0; r < SUB_Y && o.y + r <= hi.y; r++)
        for (int w = 0; w < SUB_X; w++) {
            uint word = 0u;
            for (int k = 0; k < P; k++)
                word |= code(t[r][C0 + w * P + k], y_row) << (8 * BYTES * k);
            words[base.x + (o.y + r) * stride.x + g.x * SUB_X + w] = word;
        }

    uint cb = 0u, cr = 0u;
    for (int k = 0; k < P; k++) {
        int c = C0 + k * SUB_X;
#if SUB_Y == 2
        vec3 rgb = 0.5 * (hfilter(t[0][c - 1], t[0][c], t[0][c + 1]) + hfilter(t[1][c - 1], t[1][c], t[1][c + 1]));
#else
        vec3 rgb = hfilter(t[0][max(c - 1, 0)], t[0][c], t[0][min(c + 1, NC - 1)]);
#endif
        cb |= code(rgb, cb_row) << (8 * BYTES * k);
        cr |= code(rgb, cr_row) << (8 * BYTES * k);
    }
    words[base.y + g.y * stride.y + g.x] = cb;
    words[base.z + g.y * stride.z + g.x] = cr;
}
"""


class _LaggedReadback:
    """A ring of pixel buffers: ``submit(tex, tag)`` converts ``tex`` on the GPU and starts copying the
    result into the next buffer (``tex`` may be reused right after); it returns what was submitted
    ``lag`` calls earlier, as ``(item, tag)``. ``drain()`` returns the rest, in order."""

    def __init__(self, ctx, size: tuple[int, int], nbytes: int, lag: int):
        self.ctx = ctx
        self.size = (int(size[0]), int(size[1]))
        self._ring = [ctx.buffer(reserve=nbytes, dynamic=True) for _ in range(lag + 1)]
        self._lag = lag
        self._next = 0
        self._pending: deque = deque()

    def submit(self, tex, tag) -> list[tuple[object, object]]:
        if tuple(tex.size) != self.size:
            raise UpshadeError(f"renderer produced {tex.size[0]}x{tex.size[1]}, expected {self.size[0]}x{self.size[1]}")
        buf = self._ring[self._next]
        self._next = (self._next + 1) % len(self._ring)
        self._start(tex, buf)
        self._pending.append((buf, tag))
        ready = []
        while len(self._pending) > self._lag:
            buf, tag = self._pending.popleft()
            ready.append((self._finish(buf), tag))
        return ready

    def drain(self) -> list[tuple[object, object]]:
        out = []
        while self._pending:
            buf, tag = self._pending.popleft()
            out.append((self._finish(buf), tag))
        return out

    def _start(self, tex, buf) -> None:
        raise NotImplementedError

    def _finish(self, buf):
        raise NotImplementedError

    def _release_gl(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        for b in self._ring:
            b.release()
        self._ring = []
        self._pending.clear()
        self._release_gl()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Readback(_LaggedReadback):
    """GPU RGBA texture -> packed HxWx3 uint8/uint16 arrays (for swscale), asynchronously via pixel buffers."""

    def __init__(self, ctx, size: tuple[int, int], *, deep: bool = False, lag: int = LAG):
        self.dtype = np.uint16 if deep else np.uint8
        self._gl_dtype = "nu2" if deep else "f1"
        w, h = int(size[0]), int(size[1])
        super().__init__(ctx, (w, h), w * h * 3 * np.dtype(self.dtype).itemsize, lag)
        self._tex = ctx.texture(self.size, 4, dtype=self._gl_dtype)
        self._fbo = ctx.framebuffer(color_attachments=[self._tex])
        self._prog = FullscreenProgram(ctx, TO_RGB_FS)

    def _start(self, tex, buf) -> None:
        tex.use(0)
        self._prog.draw(self._fbo)
        self._fbo.read_into(buf, components=3, alignment=1, dtype=self._gl_dtype)

    def _finish(self, buf) -> np.ndarray:
        w, h = self.size
        return np.frombuffer(buf.read(), dtype=self.dtype).reshape(h, w, 3)

    def _release_gl(self) -> None:
        self._prog.release()
        self._fbo.release()
        self._tex.release()


def ffmpeg_strides(width: int, height: int, pix_fmt: str) -> list[int]:
    """Bytes per row of each plane in the frames PyAV allocates (rows are padded for SIMD)."""
    return [p.line_size for p in av.VideoFrame(width, height, pix_fmt).planes]


class PlaneReadback(_LaggedReadback):
    """GPU RGBA texture -> ``av.VideoFrame`` in a planar YCbCr format (one of ``GPU_PIX_FMTS``).

    Matrix, range and chroma subsampling happen on the GPU (``YCBCR_CS``),
    with exactly the limited-range conversion ``Encoder`` tags its output with
    (``encode.ycbcr_matrix``), so the encoder thread only encodes and the
    readback moves 1.5 (8-bit 4:2:0) instead of 3 bytes per pixel. Each pixel
    buffer holds the planes with the row strides of FFmpeg's frames, so a frame
    is filled with one copy per plane (row by row should the strides differ).
    """

    LOCAL_SIZE = (32, 2)   # invocations per work group: the fastest of 4x4 .. 64x1 on llvmpipe

    def __init__(self, ctx, size: tuple[int, int], pix_fmt: str, matrix: str, *, lag: int = LAG):
        if pix_fmt not in GPU_PIX_FMTS:
            raise UpshadeError(f"{pix_fmt}: not converted on the GPU (takes {', '.join(GPU_PIX_FMTS)})")
        fmt = av.VideoFormat(pix_fmt)
        w, h = int(size[0]), int(size[1])
        self.pix_fmt, self.matrix = pix_fmt, matrix
        self.bits = fmt.components[0].bits
        nbytes = 1 if self.bits <= 8 else 2
        sub_x = 2 if fmt.chroma_width(2) == 1 else 1
        sub_y = 2 if fmt.chroma_height(2) == 1 else 1
        per_word = 4 // nbytes
        # Invocations: one per chroma word across, one per chroma row down.
        self._groups = (-(-w // (per_word * sub_x)), -(-h // sub_y))
        # What the shader writes per row (it rounds rows up to whole words) and FFmpeg's strides.
        written = [self._groups[0] * sub_x * 4, self._groups[0] * 4, self._groups[0] * 4]
        rows = [h, fmt.chroma_height(h), fmt.chroma_height(h)]
        row_bytes = [w * nbytes, fmt.chroma_width(w) * nbytes, fmt.chroma_width(w) * nbytes]
        strides = [max(s, n) + (-max(s, n)) % 4 for s, n in zip(ffmpeg_strides(w, h, pix_fmt), written)]
        offsets = [0, strides[0] * rows[0], strides[0] * rows[0] + strides[1] * rows[1]]
        # (offset, rows, stride, row bytes) of Y, Cb, Cr in a pixel buffer
        self._layout = list(zip(offsets, rows, strides, row_bytes))
        lx, ly = self.LOCAL_SIZE
        self._dispatch = (-(-self._groups[0] // lx), -(-self._groups[1] // ly))
        defines = (f"#define SUB_X {sub_x}\n#define SUB_Y {sub_y}\n#define BYTES {nbytes}\n"
                   f"#define LOCAL_X {lx}\n#define LOCAL_Y {ly}\n")
        self._cs = ctx.compute_shader(YCBCR_CS.replace(GLSL_VERSION, GLSL_VERSION + defines, 1))
        super().__init__(ctx, (w, h), offsets[2] + strides[2] * rows[2], lag)
        self._new_frame = functools.partial(av.VideoFrame, w, h, pix_fmt)
        self._staging = np.empty(strides[0] * h, np.uint8)  # for frames whose strides differ from ffmpeg_strides'
        coef = ycbcr_matrix(matrix, self.bits)
        for name, value in (("src", 0), ("size", (w, h)), ("stride", tuple(s // 4 for s in strides)),
                            ("base", tuple(o // 4 for o in offsets)), ("y_row", tuple(coef[0])),
                            ("cb_row", tuple(coef[1])), ("cr_row", tuple(coef[2])),
                            ("peak", float((1 << self.bits) - 1))):
            self._cs[name].value = value

    def _start(self, tex, buf) -> None:
        tex.use(0)
        buf.bind_to_storage_buffer(0)
        self._cs.run(*self._dispatch)
        # Shader stores are incoherent: make them visible to the buffer mapping in _finish.
        self.ctx.memory_barrier()

    def _finish(self, buf):
        # A new frame each time: the codec may still hold a reference to an earlier one.
        frame = self._new_frame()
        for plane, (offset, rows, stride, row_bytes) in zip(frame.planes, self._layout):
            if plane.line_size == stride:
                buf.read_into(plane, size=(rows - 1) * stride + row_bytes, offset=offset)
            else:
                n = rows * stride
                buf.read_into(self._staging, size=n, offset=offset)
                src = self._staging[:n].reshape(rows, stride)[:, :row_bytes]
                dst = np.frombuffer(plane, np.uint8)[: rows * plane.line_size].reshape(rows, plane.line_size)
                dst[:, :row_bytes] = src
        return frame

    def _release_gl(self) -> None:
        self._cs.release()


def encoder_readback(ctx, encoder, *, lag: int = LAG) -> _LaggedReadback:
    """The readback that feeds ``encoder`` (host/encode.Encoder): its pixel format straight from the GPU
    where ``GPU_PIX_FMTS`` has it, packed RGB for swscale otherwise."""
    size = (encoder.width, encoder.height)
    if encoder.pix_fmt in GPU_PIX_FMTS and ctx.version_code >= 430:   # compute shaders
        return PlaneReadback(ctx, size, encoder.pix_fmt, encoder.matrix, lag=lag)
    return Readback(ctx, size, deep=av.VideoFormat(encoder.pix_fmt).components[0].bits > 8, lag=lag)
