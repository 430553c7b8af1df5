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

import contextlib
import math
import sys
from pathlib import Path

from .errors import UpshadeError
from .fileio import check_output_path
from .readback import encoder_readback


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
    parser.add_argument("--burn-subs", nargs="?", const="auto", default=None, metavar="TRACK",
                        help="render a subtitle track into the picture at the output size (TRACK: a number as "
                             "`play --sid`, or a subtitle file; default: the track `play` would show); "
                             "the other subtitle tracks are still copied")


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
    burn_subs=None,
) -> int:
    """Decode ``src``, render every frame through ``shaders`` at ``size``, encode to ``out``. Returns frames written.

    A damaged source (cut short, corrupt packets) is upscaled as far as it decodes, and ``notify``
    (default: stderr) gets one warning line with the counts (``damage_warning``); that is not an error.
    ``burn_subs``: a subtitle track ("auto", a number as ``play --sid``, or a file) blended into the
    frames at the output size (host/subdraw.SubtitleBurner); that track is then not copied.
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
    burner = None
    if burn_subs:
        from .subdraw import SubtitleBurner

        burner = SubtitleBurner(ctx, src, info, burn_subs)  # a track that cannot be drawn fails here
    skip = (burner.stream_index,) if burner is not None and burner.stream_index is not None else ()
    with (burner or contextlib.nullcontext()), \
            Renderer(ctx, shaders, params=params, fbo_format=fbo_format, output=output) as renderer, \
            Decoder(src, start=start, info=info, warn_damage=False) as decoder, \
            Encoder(out, source_path=src, source_info=info, width=ow, height=oh, codec=codec, crf=crf,
                    preset=preset, pix_fmt=pix_fmt, start=start, duration=duration, skip_streams=skip) as encoder, \
            encoder_readback(ctx, encoder) as readback, \
            progress_bar(total=_frame_budget(info, start, duration), unit="frame", desc=src.name,
                         disable=not progress) as bar:
        n = 0
        for frame in decoder:
            if end is not None and frame.pts is not None and frame.pts >= end - 1e-6:
                break
            tex = renderer.render(frame, (ow, oh), frame_index=n)
            if burner is not None:
                burner.burn(tex, frame.pts)
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
            fbo_format=args.fbo_format, info=info, burn_subs=args.burn_subs,
        )
    finally:
        ctx.release()
    print(f"{chain.describe(files, (info.width, info.height), size, info)}: wrote {out}, {n} frames", file=sys.stderr)
    return 0
