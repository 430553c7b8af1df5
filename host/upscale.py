"""``upshade upscale IN -o OUT``: upscale a video file offline through hook shaders.

Three stages overlap: a decoder thread (host/video.Decoder) fills a small
queue of frames, the main thread uploads each one and renders it on a headless
GL context, and an encoder thread (host/encode.Encoder) encodes. Readback
never waits for the frame just rendered: the output is converted on the GPU to
the encoder's YCbCr planes (or, for pixel formats the GPU path does not
handle, to packed RGB that the encoder thread converts with swscale) and copied
into one of a ring of pixel buffers, and is read on the CPU only ``LAG``
frames later, when the copy has long finished.

The output keeps the source's orientation tag (frames are processed as
stored), its audio and subtitle streams (copied), its frame times (VFR
included) and its colour matrix (see host/encode.py).
"""

from __future__ import annotations

import functools
import math
import sys
from collections import deque
from pathlib import Path

import numpy as np

from .errors import UpshadeError
from .fileio import check_output_path

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

TO_RGB_FS = """#version 450
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
YCBCR_CS = """#version 450
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
        from .gltex import FullscreenProgram

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
    import av

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
        import av

        from .encode import ycbcr_matrix

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
        self._cs = ctx.compute_shader(YCBCR_CS.replace("#version 450\n", "#version 450\n" + defines, 1))
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
    import av

    size = (encoder.width, encoder.height)
    if encoder.pix_fmt in GPU_PIX_FMTS and ctx.version_code >= 430:   # compute shaders
        return PlaneReadback(ctx, size, encoder.pix_fmt, encoder.matrix, lag=lag)
    return Readback(ctx, size, deep=av.VideoFormat(encoder.pix_fmt).components[0].bits > 8, lag=lag)


def add_arguments(parser) -> None:
    from .argtypes import integer, nonnegative_float, positive_float
    from .encode import CODECS
    from .image_cmd import add_render_arguments

    parser.add_argument("input", metavar="IN", help="input video (anything FFmpeg reads)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output video; the container follows the extension (.mkv keeps any subtitles)")
    add_render_arguments(parser)
    parser.add_argument("--codec", choices=tuple(CODECS), default="h264", help="video codec (default h264)")
    parser.add_argument("--crf", type=integer, metavar="N", help="constant quality (lower is better; encoder default)")
    parser.add_argument("--preset", metavar="P", help="encoder speed preset (x264/x265 names, SVT-AV1 numbers)")
    parser.add_argument("--pix-fmt", metavar="FMT",
                        help="output pixel format (default: yuv420p, or yuv420p10le for sources deeper than 8 bits)")
    parser.add_argument("--start", type=nonnegative_float, default=0.0, metavar="T", help="start at T seconds")
    parser.add_argument("--duration", type=positive_float, metavar="D", help="process only D seconds")


def _frame_budget(info, start: float, duration: float | None) -> int | None:
    """Expected number of output frames, for the progress bar."""
    total = info.estimated_frames
    if not info.fps:
        return None
    span = duration
    if info.duration is not None:
        rest = max(0.0, info.duration - start)
        span = rest if span is None else min(span, rest)
    if span is None:
        return total
    return max(1, round(span * info.fps))


def default_pix_fmt(info, codec: str) -> str:
    """yuv420p, or yuv420p10le when the source has more than 8 bits and the encoder takes it."""
    import av

    from .encode import available_encoder

    if info.format.bit_depth > 8:
        formats = {f.name for f in av.codec.Codec(available_encoder(codec), "w").video_formats or ()}
        if "yuv420p10le" in formats:
            return "yuv420p10le"
    return "yuv420p"


def upscale_video(
    ctx,
    src,
    out,
    *,
    shaders=(),
    params=None,
    size: tuple[int, int] | None = None,
    codec: str = "h264",
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    fbo_format: str = "auto",
    info=None,
    progress: bool = True,
    notify=None,
) -> int:
    """Decode ``src``, render every frame through ``shaders`` at ``size``, encode to ``out``. Returns frames written.

    A damaged source (cut short, corrupt packets) is upscaled as far as it decodes, and ``notify``
    (default: stderr) gets one warning line with the counts (``damage_warning``); that is not an error.
    """
    import av

    from .encode import Encoder
    from .progress import progress as progress_bar
    from .pipeline import Renderer
    from .video import Decoder, probe

    src, out = Path(src), Path(out)
    check_output_path(out, [src])
    info = info or probe(src)
    if not (math.isfinite(start) and start >= 0):
        raise UpshadeError(f"--start {start}: must be a finite number, not negative")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise UpshadeError(f"--duration {duration}: must be a finite positive number")
    if info.duration is not None and start >= info.duration:
        raise UpshadeError(f"--start {start}: {src} is only {info.duration:.3f} s long")
    ow, oh = size or (2 * info.width, 2 * info.height)
    if pix_fmt is None:
        pix_fmt = default_pix_fmt(info, codec)
    end = start + duration if duration is not None else None
    try:
        av.VideoFormat(pix_fmt)
    except ValueError:
        raise UpshadeError(f"--pix-fmt {pix_fmt}: unknown pixel format") from None

    # The renderer's last pass writes unorm texels as deep as the output: as exact as
    # float for the encoder and cheaper to write and convert.
    output = "unorm16" if av.VideoFormat(pix_fmt).components[0].bits > 8 else "unorm8"
    with Renderer(ctx, shaders, params=params, fbo_format=fbo_format, output=output) as renderer, \
            Decoder(src, start=start, info=info, warn_damage=False) as decoder, \
            Encoder(out, source_path=src, source_info=info, width=ow, height=oh, codec=codec, crf=crf,
                    preset=preset, pix_fmt=pix_fmt, start=start, duration=duration) as encoder, \
            encoder_readback(ctx, encoder) as readback, \
            progress_bar(total=_frame_budget(info, start, duration), unit="frame", desc=src.name,
                         disable=not progress) as bar:
        n = 0
        for frame in decoder:
            if end is not None and frame.pts is not None and frame.pts >= end - 1e-6:
                break
            tex = renderer.render(frame, (ow, oh), frame_index=n)
            tag = (frame.pts, frame.extra.get("duration"))
            del frame  # hand the decoder's buffer back before waiting on anything
            for image, (pts, dur) in readback.submit(tex, tag):
                encoder.write(image, pts, dur)
                bar.update(1)
            n += 1
        for image, (pts, dur) in readback.drain():
            encoder.write(image, pts, dur)
            bar.update(1)
        if n == 0:
            raise UpshadeError(f"{src}: no video frames between {start} s and "
                               f"{'the end' if end is None else f'{end} s'}")
        damaged = decoder.errors
    warning = damage_warning(src, info, n, _frame_budget(info, start, duration), damaged, start, duration)
    if warning:
        (notify or (lambda line: print(line, file=sys.stderr)))(warning)
    return n


def damage_warning(src, info, frames: int, expected: int | None, damaged: int, start: float = 0.0,
                   duration: float | None = None) -> str | None:
    """One line when a source decoded short of what its duration promises (a cut or damaged file) or had
    corrupt packets; None when all is well. Frames within 10% (at least 2) of the promise are not
    "short": containers round durations and variable-rate streams do not fill their average rate."""
    short = expected is not None and frames < min(expected * 0.9, expected - 2)
    if not short and not damaged:
        return None
    corrupt = f"{damaged} corrupt packet{'s' if damaged != 1 else ''} skipped or concealed"
    if short:
        span = "" if not start and duration is None else " of the chosen span"
        promise = f" ({expected / info.fps:.2f} s at {info.fps:g} fps{span})" if info.fps else span
        what = f"decoded only {frames} of the {expected} frames its duration promises{promise}, " + (
            corrupt if damaged else "no corrupt packets: the file is probably cut short")
    else:
        what = f"{corrupt} ({frames} frames decoded)"
    return f"upshade: warning: {src}: {what}; the output has what decoded"


def run(args) -> int:
    from .gpu import create_headless_context
    from .image_cmd import output_size, parse_params, shader_chain
    from .video import probe

    inp, out = Path(args.input), Path(args.output)
    check_output_path(out, [inp])
    params = parse_params(args.param)
    # a broken shader is reported before the video is touched
    chain = shader_chain(args.model, args.shader, args.no_model)
    info = probe(inp)
    size = output_size(info.width, info.height, args.scale, args.size)
    from .encode import available_encoder, encoder_options

    encoder_options(available_encoder(args.codec), args.crf, args.preset)  # fail before any GL work
    ctx = create_headless_context()
    try:
        files = chain(ctx, info)
        n = upscale_video(
            ctx, inp, out, shaders=files, params=params, size=size, codec=args.codec, crf=args.crf,
            preset=args.preset, pix_fmt=args.pix_fmt, start=args.start, duration=args.duration,
            fbo_format=args.fbo_format, info=info,
        )
    finally:
        ctx.release()
    print(f"{chain.describe(files, (info.width, info.height), size, info)}: wrote {out}, {n} frames", file=sys.stderr)
    return 0
