"""A long video in keyframe-aligned segments: plan them, render each on its own, join by stream copy.

``plan_segments`` demuxes the video packets (no decoding) and cuts at keyframes
``k`` about ``seconds`` apart: segment i holds the source frames with
presentation times in ``[k_i, k_i+1)``. ``render_segment`` decodes from its
keyframe (frames before ``k_i``, the leading pictures of an open GOP among
them, belong to the segment before, which decodes them from their own
references), renders them with the frame numbers they have in the whole file,
and encodes them video-only, keeping the source's timestamps, into a hidden
temporary file beside the output. Every segment's encoder starts afresh, so it
starts with a keyframe, and with the same settings writes the same codec
headers (extradata: H.264 SPS/PPS, HEVC VPS/SPS/PPS, AV1 sequence header),
which ``join_segments`` checks before it copies the segments' packets in
order, with the source's audio, subtitle and attachment streams, chapters and
tags copied once, into the final output (atomically).

Segments are MP4 files: MP4 stores decode and presentation times both, in a
timescale that is a multiple of the stream's time base, so the packets come
back with exactly the timestamps the encoder gave them (Matroska and NUT
store presentation times only, and a demuxer's reconstructed decode times at
the first B-frames of a segment are missing). MP4 holds every codec
``upscale`` writes (H.264, HEVC, AV1).
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .batch import RenderSettings
from .chain import output_size
from .encode import (Encoder, _clean_tags, _trim_chapters, add_side_streams, available_encoder, check_container,
                     open_output)
from .errors import UpshadeError
from .fileio import AtomicOutput
from .pipeline import Renderer
from .readback import encoder_readback
from .transcode import default_pix_fmt, encode_frames, renderer_output
from .video import Decoder, _open_input, _video_stream, probe

SEGMENT_SUFFIX = ".mp4"


@dataclass(frozen=True)
class Segment:
    index: int
    start: float | None   # presentation time of its first keyframe, seconds; None: the file's start
    end: float | None     # the next segment's start (exclusive); None: the file's end
    first_index: int      # frames of the file before it
    frames: int           # frames in it (video packets with times in its span)


def scan(src) -> tuple[list[float], list[float]]:
    """(sorted presentation times of every video packet, times of the keyframes), by demuxing only.
    A read error ends the scan: what was read is what a decoder would get too."""
    src = Path(src)
    times, keys = [], []
    with contextlib.closing(_open_input(src)) as c:
        stream = _video_stream(c, src)
        try:
            for p in c.demux(stream):
                if p.size == 0 or p.pts is None:
                    continue
                t = float(p.pts * p.time_base)
                times.append(t)
                if p.is_keyframe:
                    keys.append(t)
        except av.FFmpegError:
            pass
    return sorted(times), sorted(set(keys))


def cut_points(times: list[float], keys: list[float], seconds: float) -> list[float]:
    """Keyframe times that start a new segment: at least ``seconds`` after the previous cut, and at
    least half of that before the end (no stub of a segment at the end)."""
    if not times:
        return []
    last, end = times[0], times[-1]
    cuts = []
    for k in keys:
        if k - last >= seconds - 1e-6 and end - k >= seconds / 2 - 1e-6:
            cuts.append(k)
            last = k
    return cuts


def plan_segments(src, seconds: float) -> list[Segment]:
    """The segments of ``src`` about ``seconds`` long, at keyframes; one segment for a short file."""
    times, keys = scan(src)
    bounds = [None, *cut_points(times, keys, seconds), None]
    segments = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        lo = 0 if a is None else bisect.bisect_left(times, a - 1e-6)
        hi = len(times) if b is None else bisect.bisect_left(times, b - 1e-6)
        segments.append(Segment(i, a, b, lo, hi - lo))
    return segments


def segment_path(out, token: str, index: int) -> Path:
    """The hidden temporary file of segment ``index`` of ``out`` in the run ``token``."""
    out = Path(out)
    return out.with_name(f".{out.stem}.seg-{token}-{index:04d}{SEGMENT_SUFFIX}")


def remove_segments(out, token: str) -> None:
    """Delete the segment files of ``out`` in the run ``token``, finished or half-written (a worker
    that died leaves its temporary file: ``..NAME.seg-TOKEN-0001.part-XXXX.mp4``)."""
    out = Path(out)
    prefix = f".{out.stem}.seg-{token}-"
    with contextlib.suppress(OSError):
        for p in out.parent.iterdir():
            if p.name.startswith((prefix, "." + prefix)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def render_segment(ctx, chain, src, seg: Segment, path, settings: RenderSettings, *,
                   on_frame=None) -> tuple[int, str, int]:
    """Render segment ``seg`` of ``src`` video-only into ``path`` (atomically), the source's timestamps
    kept. Returns (frames written, the line naming what ran, damaged packets the decoder skipped or
    concealed)."""
    src = Path(src)
    info = probe(src)
    size = output_size(info.width, info.height, settings.scale, settings.size)
    files = chain(ctx, info, ((info.width, info.height), size))
    pix_fmt = settings.pix_fmt or default_pix_fmt(info, settings.codec)
    with Renderer(ctx, files, params=dict(settings.params), fbo_format=settings.fbo_format,
                  output=renderer_output(pix_fmt)) as renderer, \
            Decoder(src, start=seg.start or 0.0, info=info, warn_damage=False) as decoder, \
            Encoder(path, source_path=src, source_info=info, width=size[0], height=size[1], codec=settings.codec,
                    crf=settings.crf, preset=settings.preset, pix_fmt=pix_fmt, copy_streams=False) as encoder, \
            encoder_readback(ctx, encoder) as readback:
        frames = decoder if seg.end is None else \
            itertools.takewhile(lambda f: f.pts is None or f.pts < seg.end - 1e-6, decoder)
        n = encode_frames(frames, renderer, size, readback, encoder, on_written=on_frame,
                          first_index=seg.first_index)
        if n == 0:
            raise UpshadeError(f"{src}: segment {seg.index} ({seg.start} s to {seg.end} s) decoded no frames")
        damaged = decoder.errors
    return n, chain.describe(files, (info.width, info.height), size, info), damaged


def check_joinable(src, out, codec: str) -> None:
    """Fail before any segment is rendered where ``join_segments`` would: ``out``'s container must hold
    the video codec and the source's audio and subtitle streams (as ``Encoder`` checks before its first
    frame). Writes nothing."""
    with contextlib.closing(_open_input(Path(src))) as source, open_output(out) as dst:
        check_container(dst, available_encoder(codec), out)
        add_side_streams(source, dst, out)


def _video_packets(parts, extradata: bytes, out: Path):
    """The video packets of ``parts`` in order, after checking each was encoded with the same headers."""
    for i, part in enumerate(parts):
        with av.open(str(part)) as c:
            stream = c.streams.video[0]
            if bytes(stream.codec_context.extradata or b"") != extradata:
                raise UpshadeError(f"{out}: segment {i} has other codec headers than segment 0 (different encoder "
                                   f"versions or settings on the workers?); cannot join them by stream copy")
            for p in c.demux(stream):
                if p.size:
                    yield p


def _side_packets(src, side: dict):
    """The source's packets of the streams in ``side`` that ``Encoder`` copies (whole file: all that
    have a time)."""
    if not side:
        return  # (demux() of no streams would demux them all)
    try:
        for p in src.demux(*[s for s in src.streams if s.index in side]):
            if p.size and (p.pts is not None or p.dts is not None):
                yield p
    except av.FFmpegError:
        return  # damaged data ends the copy, as in Encoder._mux_side


def _when(p) -> float:
    t = p.dts if p.dts is not None else p.pts
    return float(t * p.time_base)


def join_segments(src, parts, out, expected: int | None = None) -> int:
    """Join the segment files ``parts`` (in order) of ``src`` into ``out``: their video packets copied
    as they are, the source's audio, subtitles, attachments, chapters and tags copied once. Written
    atomically, and not at all unless it has the ``expected`` frames (what the segments rendered).
    Returns the number of video frames."""
    src, out = Path(src), Path(out)
    if not parts:
        raise UpshadeError(f"{out}: no segments to join")
    target = AtomicOutput(out, inputs=[src])
    try:
        with av.open(str(src)) as source, av.open(str(parts[0])) as first, \
                open_output(out, target.tmp) as dst:
            template = first.streams.video[0]
            extradata = bytes(template.codec_context.extradata or b"")
            video = _add_video(dst, template, source, probe(src))
            side = add_side_streams(source, dst, out)
            dst.metadata.update(_clean_tags(dict(source.metadata)))
            chapters = _trim_chapters(source.chapters(), 0.0, None)
            if chapters:
                dst.set_chapters(chapters)
            dst.start_encoding()
            n = _mux_all(dst, video, side, _video_packets(parts, extradata, out), _side_packets(source, side))
            if expected is not None and n != expected:
                raise UpshadeError(f"{out}: the segments hold {n} frames, {expected} were rendered")
    except BaseException as exc:
        err = target.discard(exc)
        if isinstance(err, av.FFmpegError):
            raise UpshadeError(f"{out}: joining segments failed: {err.strerror or err}") from None
        if err is exc:
            raise
        raise err from None
    target.commit()
    return n


def _add_video(dst, template, source, info):
    """The output's video stream as ``Encoder`` makes it: the segments' codec parameters and time base,
    the source's frame rate, tags and rotation, the segments' pixel aspect."""
    video = dst.add_stream_from_template(template, opaque=True)
    video.time_base = template.time_base
    video.codec_context.framerate = info.frame_rate or Fraction(25)
    video.metadata.update(_clean_tags(dict(_video_stream(source, info.path).metadata)))
    if info.rotation:
        video.set_display_rotation(-info.rotation % 360)
    if template.sample_aspect_ratio:
        video.sample_aspect_ratio = template.sample_aspect_ratio
    return video


def _mux_all(dst, video, side: dict, video_packets, side_packets) -> int:
    """Interleave the two packet sequences by decode time and mux them. Returns the video packets."""
    n = 0
    for p in heapq.merge(video_packets, side_packets, key=_when):
        if p.stream.type == "video":
            p.stream = video
            n += 1
        else:
            p.stream = side[p.stream_index]
        dst.mux(p)
    return n
