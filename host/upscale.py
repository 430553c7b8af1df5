"""``upshade upscale IN -o OUT``: upscale a video file offline through hook shaders.

Three stages overlap: a decoder thread (host/video.Decoder) fills a small
queue of frames, the main thread uploads each one and renders it on a headless
GL context, and an encoder thread (host/encode.Encoder) converts and encodes.
Readback never waits for the frame just rendered: the output is converted to
packed RGB on the GPU and copied into one of a ring of pixel buffers, and is
read on the CPU only ``LAG`` frames later, when the copy has long finished.

The output keeps the source's orientation tag (frames are processed as
stored), its audio and subtitle streams (copied), its frame times (VFR
included) and its colour matrix (see host/encode.py).
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import numpy as np

from .errors import UpshadeError
from .fileio import check_output_path

# Frames between issuing a readback and reading it: 2 keeps the GPU one frame
# ahead of the CPU copy even with a frame still queued in the driver.
LAG = 2

TO_RGB_FS = """#version 450
layout(binding = 0) uniform sampler2D src;
out vec4 color;
void main() {
    color = vec4(clamp(texelFetch(src, ivec2(gl_FragCoord.xy), 0).rgb, 0.0, 1.0), 1.0);
}
"""


class Readback:
    """GPU float RGBA texture -> packed HxWx3 uint8/uint16 arrays, asynchronously via pixel buffers.

    ``submit(tex, tag)`` converts and starts copying ``tex`` (which may be
    reused right after); it returns the frames whose copies were started
    ``LAG`` submits earlier, as ``(array, tag)``. ``drain()`` returns the rest.
    """

    def __init__(self, ctx, size: tuple[int, int], *, deep: bool = False, lag: int = LAG):
        from .gltex import FullscreenProgram

        self.ctx = ctx
        self.size = (int(size[0]), int(size[1]))
        self.dtype = np.uint16 if deep else np.uint8
        self._gl_dtype = "nu2" if deep else "f1"
        w, h = self.size
        self._tex = ctx.texture(self.size, 4, dtype=self._gl_dtype)
        self._fbo = ctx.framebuffer(color_attachments=[self._tex])
        self._prog = FullscreenProgram(ctx, TO_RGB_FS)
        nbytes = w * h * 3 * np.dtype(self.dtype).itemsize
        self._ring = [ctx.buffer(reserve=nbytes, dynamic=True) for _ in range(lag + 1)]
        self._lag = lag
        self._next = 0
        self._pending: deque = deque()

    def submit(self, tex, tag) -> list[tuple[np.ndarray, object]]:
        if tuple(tex.size) != self.size:
            raise UpshadeError(f"renderer produced {tex.size[0]}x{tex.size[1]}, expected {self.size[0]}x{self.size[1]}")
        tex.use(0)
        self._prog.draw(self._fbo)
        buf = self._ring[self._next]
        self._next = (self._next + 1) % len(self._ring)
        self._fbo.read_into(buf, components=3, alignment=1, dtype=self._gl_dtype)
        self._pending.append((buf, tag))
        ready = []
        while len(self._pending) > self._lag:
            ready.append(self._collect())
        return ready

    def drain(self) -> list[tuple[np.ndarray, object]]:
        out = []
        while self._pending:
            out.append(self._collect())
        return out

    def _collect(self) -> tuple[np.ndarray, object]:
        buf, tag = self._pending.popleft()
        w, h = self.size
        arr = np.frombuffer(buf.read(), dtype=self.dtype).reshape(h, w, 3)
        return arr, tag

    def release(self) -> None:
        for b in self._ring:
            b.release()
        self._ring = []
        self._pending.clear()
        self._prog.release()
        self._fbo.release()
        self._tex.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def add_arguments(parser) -> None:
    from .encode import CODECS
    from .image_cmd import add_render_arguments

    parser.add_argument("input", metavar="IN", help="input video (anything FFmpeg reads)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output video; the container follows the extension (.mkv keeps any subtitles)")
    add_render_arguments(parser)
    parser.add_argument("--codec", choices=tuple(CODECS), default="h264", help="video codec (default h264)")
    parser.add_argument("--crf", type=int, metavar="N", help="constant quality (lower is better; encoder default)")
    parser.add_argument("--preset", metavar="P", help="encoder speed preset (x264/x265 names, SVT-AV1 numbers)")
    parser.add_argument("--pix-fmt", metavar="FMT",
                        help="output pixel format (default: yuv420p, or yuv420p10le for sources deeper than 8 bits)")
    parser.add_argument("--start", type=float, default=0.0, metavar="T", help="start at T seconds")
    parser.add_argument("--duration", type=float, metavar="D", help="process only D seconds")


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
) -> int:
    """Decode ``src``, render every frame through ``shaders`` at ``size``, encode to ``out``. Returns frames written."""
    import av
    from tqdm import tqdm

    from .encode import Encoder
    from .pipeline import Renderer
    from .video import Decoder, probe

    src, out = Path(src), Path(out)
    check_output_path(out, [src])
    info = info or probe(src)
    if start < 0:
        raise UpshadeError(f"--start {start}: must not be negative")
    if duration is not None and not duration > 0:
        raise UpshadeError(f"--duration {duration}: must be positive")
    if info.duration is not None and start >= info.duration:
        raise UpshadeError(f"--start {start}: {src} is only {info.duration:.3f} s long")
    ow, oh = size or (2 * info.width, 2 * info.height)
    if pix_fmt is None:
        pix_fmt = default_pix_fmt(info, codec)
    end = start + duration if duration is not None else None
    try:
        deep = av.VideoFormat(pix_fmt).components[0].bits > 8
    except ValueError:
        raise UpshadeError(f"--pix-fmt {pix_fmt}: unknown pixel format") from None

    with Renderer(ctx, shaders, params=params, fbo_format=fbo_format) as renderer, \
            Readback(ctx, (ow, oh), deep=deep) as readback, \
            Decoder(src, start=start, info=info) as decoder, \
            Encoder(out, source_path=src, source_info=info, width=ow, height=oh, codec=codec, crf=crf,
                    preset=preset, pix_fmt=pix_fmt, start=start, duration=duration) as encoder, \
            tqdm(total=_frame_budget(info, start, duration), unit="frame", desc=src.name,
                 disable=not progress, dynamic_ncols=True, file=sys.stderr) as bar:
        n = 0
        for frame in decoder:
            if end is not None and frame.pts is not None and frame.pts >= end - 1e-6:
                break
            tex = renderer.render(frame, (ow, oh), frame_index=n)
            tag = (frame.pts, frame.extra.get("duration"))
            del frame  # hand the decoder's buffer back before waiting on anything
            for rgb, (pts, dur) in readback.submit(tex, tag):
                encoder.write(rgb, pts, dur)
                bar.update(1)
            n += 1
        for rgb, (pts, dur) in readback.drain():
            encoder.write(rgb, pts, dur)
            bar.update(1)
        if n == 0:
            raise UpshadeError(f"{src}: no video frames between {start} s and "
                               f"{'the end' if end is None else f'{end} s'}")
    return n


def run(args) -> int:
    from .gpu import create_headless_context
    from .hookparse import load_shader
    from .image_cmd import output_size, parse_params, shader_paths
    from .video import probe

    inp, out = Path(args.input), Path(args.output)
    check_output_path(out, [inp])
    params = parse_params(args.param)
    files = [load_shader(p) for p in shader_paths(args.model, args.shader)]
    info = probe(inp)
    size = output_size(info.width, info.height, args.scale, args.size)
    from .encode import available_encoder, encoder_options

    encoder_options(available_encoder(args.codec), args.crf, args.preset)  # fail before any GL work
    ctx = create_headless_context()
    try:
        n = upscale_video(
            ctx, inp, out, shaders=files, params=params, size=size, codec=args.codec, crf=args.crf,
            preset=args.preset, pix_fmt=args.pix_fmt, start=args.start, duration=args.duration,
            fbo_format=args.fbo_format, info=info,
        )
    finally:
        ctx.release()
    print(f"{out}: {n} frames, {size[0]}x{size[1]}", file=sys.stderr)
    return 0
