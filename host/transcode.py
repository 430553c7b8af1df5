"""Decode -> render -> read back -> encode: offline upscaling of a video file.

Three stages overlap: a decoder thread (host/video.Decoder) fills a small
queue of frames, the caller's thread uploads each one and renders it on a
headless GL context, and an encoder thread (host/encode.Encoder) encodes.
Readback never waits for the frame just rendered (host/readback.py).
``encode_frames`` is that loop, shared by ``upscale_video`` (the ``upscale``
command, the demo) and ``bench``'s encode row.

The output keeps the source's orientation tag (frames are processed as
stored), its audio and subtitle streams (copied), its frame times (VFR
included) and its colour matrix (see host/encode.py).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from pathlib import Path
from typing import Callable

import av

from .encode import Encoder, available_encoder
from .errors import UpshadeError
from .fileio import check_output_path
from .pipeline import Renderer
from .progress import progress as progress_bar
from .readback import encoder_readback
from .subdraw import SubtitleBurner
from .video import Decoder, probe


def frame_budget(info, start: float, duration: float | None) -> int | None:
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
    if info.format.bit_depth > 8:
        formats = {f.name for f in av.codec.Codec(available_encoder(codec), "w").video_formats or ()}
        if "yuv420p10le" in formats:
            return "yuv420p10le"
    return "yuv420p"


def renderer_output(pix_fmt: str) -> str:
    """The renderer output for an encoder of ``pix_fmt``: its last pass writes unorm texels as deep as
    the output (as exact as float for the encoder, and cheaper to write and convert)."""
    return "unorm16" if av.VideoFormat(pix_fmt).components[0].bits > 8 else "unorm8"


def encode_frames(frames, renderer, size: tuple[int, int], readback, encoder, *,
                  overlay: Callable | None = None, on_rendered: Callable[[], None] | None = None,
                  on_written: Callable[[], None] | None = None, first_index: int = 0) -> int:
    """Render each of ``frames`` at ``size`` (``overlay(texture, pts)`` may draw on it: burned
    subtitles), submit it to the lagged ``readback`` and hand what that returns to ``encoder``; then
    drain the readback. Returns the number of frames rendered.

    ``on_rendered`` runs after each frame is submitted, ``on_written`` after each frame the encoder
    takes (progress bars, timing). ``first_index``: the source frame number of the first of ``frames``
    (a segment of a file, host/segments.py), so that shaders see the same frame numbers as in one pass."""
    n = 0
    for frame in frames:
        tex = renderer.render(frame, size, frame_index=first_index + n)
        if overlay is not None:
            overlay(tex, frame.pts)
        tag = (frame.pts, frame.extra.get("duration"))
        del frame  # hand the decoder's buffer back before waiting on anything
        for image, (pts, dur) in readback.submit(tex, tag):
            encoder.write(image, pts, dur)
            if on_written is not None:
                on_written()
        n += 1
        if on_rendered is not None:
            on_rendered()
    for image, (pts, dur) in readback.drain():
        encoder.write(image, pts, dur)
        if on_written is not None:
            on_written()
    return n


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
    on_frame: Callable[[], None] | None = None,
) -> int:
    """Decode ``src``, render every frame through ``shaders`` at ``size``, encode to ``out``. Returns frames written.

    A damaged source (cut short, corrupt packets) is upscaled as far as it decodes, and ``notify``
    (default: stderr) gets one warning line with the counts (``damage_warning``); that is not an error.
    ``burn_subs``: a subtitle track ("auto", a number as ``play --sid``, or a file) blended into the
    frames at the output size (host/subdraw.SubtitleBurner); that track is then not copied.
    ``on_frame`` runs after each frame the encoder takes (a batch's overall progress bar).
    """
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

    burner = None
    if burn_subs:
        burner = SubtitleBurner(ctx, src, info, burn_subs)  # a track that cannot be drawn fails here
    skip = (burner.stream_index,) if burner is not None and burner.stream_index is not None else ()
    with (burner or contextlib.nullcontext()), \
            Renderer(ctx, shaders, params=params, fbo_format=fbo_format, output=renderer_output(pix_fmt)) as renderer, \
            Decoder(src, start=start, info=info, warn_damage=False) as decoder, \
            Encoder(out, source_path=src, source_info=info, width=ow, height=oh, codec=codec, crf=crf,
                    preset=preset, pix_fmt=pix_fmt, start=start, duration=duration, skip_streams=skip) as encoder, \
            encoder_readback(ctx, encoder) as readback, \
            progress_bar(total=frame_budget(info, start, duration), unit="frame", desc=src.name,
                         disable=not progress) as bar:
        frames = decoder if end is None else \
            itertools.takewhile(lambda f: f.pts is None or f.pts < end - 1e-6, decoder)
        n = encode_frames(frames, renderer, (ow, oh), readback, encoder,
                          overlay=burner.burn if burner is not None else None,
                          on_written=lambda: (bar.update(1), on_frame and on_frame()))
        if n == 0:
            raise UpshadeError(f"{src}: no video frames between {start} s and "
                               f"{'the end' if end is None else f'{end} s'}")
        damaged = decoder.errors
    warning = damage_warning(src, info, n, frame_budget(info, start, duration), damaged, start, duration)
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
