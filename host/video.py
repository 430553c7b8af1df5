"""Video probing and decoding with PyAV.

``Decoder`` demuxes and decodes in a background thread into a small bounded
queue, so that decoding overlaps the GPU work of the consumer. Frames carry the
decoder's own plane buffers as numpy views (rows may be padded: ``line_size``);
colour conversion happens on the GPU, never here.

Packed RGB planes name their component order in ``PlaneFormat.role``, one
letter per component in memory order: "RGB", "BGR", "RGBA", "BGRA", "ARGB",
"ABGR", and "RGBX"/"BGRX"/"XRGB"/"XBGR" where X is padding to ignore. Planar
RGB (gbrp) has one plane per role "G", "B", "R" (and "A"), in that memory
order.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .colorspace import default_matrix
from .errors import MediaError
from .frames import MAX_SIDE, Frame, FrameFormat, PlaneFormat

log = logging.getLogger("upshade.video")


# --- pixel formats -----------------------------------------------------------

# name -> (log2 chroma width, log2 chroma height, bit depth)
_PLANAR_YUV: dict[str, tuple[int, int, int]] = {}
for _sub, (_cw, _ch) in {"420": (1, 1), "422": (1, 0), "444": (0, 0), "440": (0, 1)}.items():
    _PLANAR_YUV[f"yuv{_sub}p"] = (_cw, _ch, 8)
    _PLANAR_YUV[f"yuvj{_sub}p"] = (_cw, _ch, 8)
    for _bits in (9, 10, 12, 14, 16):
        _PLANAR_YUV[f"yuv{_sub}p{_bits}le"] = (_cw, _ch, _bits)
for _n in ("yuv440p9le", "yuv440p14le", "yuv440p16le"):
    _PLANAR_YUV.pop(_n)  # FFmpeg has no such formats

_PLANAR_YUVA = {
    "yuva420p": (1, 1, 8), "yuva422p": (1, 0, 8), "yuva444p": (0, 0, 8),
    "yuva420p10le": (1, 1, 10), "yuva422p10le": (1, 0, 10), "yuva444p10le": (0, 0, 10),
    "yuva420p16le": (1, 1, 16), "yuva422p16le": (1, 0, 16), "yuva444p16le": (0, 0, 16),
}

# Semi-planar: Y plane + interleaved UV plane. P010/P016 keep their samples in
# the *high* bits of 16; described as 16-bit data this is exact for limited
# range (64<<6 == 16<<8, 940<<6 == 235<<8), so no CPU shift is needed.
_SEMI_PLANAR = {
    "nv12": (1, 1, 8, 1), "nv16": (1, 0, 8, 1), "nv24": (0, 0, 8, 1),
    "nv20le": (1, 0, 10, 2),
    "p010le": (1, 1, 16, 2), "p016le": (1, 1, 16, 2),
    "p210le": (1, 0, 16, 2), "p216le": (1, 0, 16, 2),
    "p410le": (0, 0, 16, 2), "p416le": (0, 0, 16, 2),
}

_GRAY = {"gray": 8, "gray9le": 9, "gray10le": 10, "gray12le": 12, "gray14le": 14, "gray16le": 16}

# Packed RGB: name -> (role = component order in memory, bytes per sample)
_PACKED_RGB = {
    "rgb24": ("RGB", 1), "bgr24": ("BGR", 1),
    "rgba": ("RGBA", 1), "bgra": ("BGRA", 1), "argb": ("ARGB", 1), "abgr": ("ABGR", 1),
    "rgb0": ("RGBX", 1), "bgr0": ("BGRX", 1), "0rgb": ("XRGB", 1), "0bgr": ("XBGR", 1),
    "rgb48le": ("RGB", 2), "bgr48le": ("BGR", 2), "rgba64le": ("RGBA", 2), "bgra64le": ("BGRA", 2),
}

_PLANAR_RGB = {
    "gbrp": 8, "gbrp9le": 9, "gbrp10le": 10, "gbrp12le": 12, "gbrp14le": 14, "gbrp16le": 16,
}
_PLANAR_RGBA = {"gbrap": 8, "gbrap10le": 10, "gbrap12le": 12, "gbrap16le": 16}

# Formats the GPU path cannot take as they are but that convert losslessly (or
# nearly) into one it can. Converting costs a CPU pass per frame, so it is
# limited to layouts that real files use and the GPU path lacks.
_CONVERT = {
    "nv21": "nv12", "nv42": "nv24",
    "yuyv422": "yuv422p", "uyvy422": "yuv422p", "yvyu422": "yuv422p",
    "yuv411p": "yuv422p", "yuvj411p": "yuvj422p", "yuv410p": "yuv420p",
    "pal8": "rgba", "monow": "gray", "monob": "gray", "ya8": "gray",
    "rgb565le": "rgb24", "rgb555le": "rgb24", "bgr565le": "rgb24", "bgr555le": "rgb24",
    "bgr8": "rgb24", "rgb8": "rgb24", "bgr4_byte": "rgb24", "rgb4_byte": "rgb24",
}

SUPPORTED_PIX_FMTS = tuple(
    sorted(set(_PLANAR_YUV) | set(_PLANAR_YUVA) | set(_SEMI_PLANAR) | set(_GRAY)
           | set(_PACKED_RGB) | set(_PLANAR_RGB) | set(_PLANAR_RGBA))
)

# AVColorSpace -> our matrix. FCC and SMPTE 240M are close enough to 601/709
# that mapping them is better than refusing the file; BT.2020 constant
# luminance is decoded as non-constant (a small error on rare content).
_MATRIX = {1: "bt709", 4: "bt601", 5: "bt601", 6: "bt601", 7: "bt709", 9: "bt2020nc", 10: "bt2020nc"}
_RANGE = {1: "limited", 2: "full"}


def native_pix_fmt(name: str) -> str | None:
    """The supported format that ``name`` must be converted to on the CPU, or None if none is needed.

    Raises ValueError for a format that is not usable at all.
    """
    if name in SUPPORTED_PIX_FMTS:
        return None
    if name in _CONVERT:
        return _CONVERT[name]
    if name.endswith("be") and name[:-2] + "le" in SUPPORTED_PIX_FMTS:
        return name[:-2] + "le"
    raise ValueError(name)


def _ceil_shift(n: int, s: int) -> int:
    return -((-n) >> s)


def frame_format(
    pix_fmt: str,
    width: int,
    height: int,
    *,
    colorspace: int = 2,
    color_range: int = 0,
    rotation: int = 0,
) -> FrameFormat:
    """Describe frames of a supported pixel format.

    ``colorspace`` and ``color_range`` are FFmpeg's AVColorSpace / AVColorRange
    values (2 and 0 mean unspecified); unspecified values get the usual
    defaults: BT.709 for HD (height >= 720 or width >= 1280), BT.601 for SD,
    limited range except for the JPEG (``yuvj``) formats and grey.
    """
    matrix = _MATRIX.get(colorspace) or default_matrix(width, height)
    jpeg = pix_fmt.startswith("yuvj")
    # swscale treats untagged grey as full range (its handle_jpeg()); following
    # it keeps grey files written by FFmpeg tools right.
    range_ = _RANGE.get(color_range) or ("full" if jpeg or pix_fmt in _GRAY else "limited")
    # JPEG/MPEG-1 site chroma in the centre; everything else (MPEG-2, H.264,
    # HEVC, AV1 4:2:0 default) co-sites it on the left.
    chroma_location = "center" if jpeg else "left"
    common = dict(matrix=matrix, range=range_, chroma_location=chroma_location, rotation=rotation)

    def P(role, w, h, comps, bps):
        return PlaneFormat(role=role, width=w, height=h, components=comps, bytes_per_sample=bps)

    if pix_fmt in _PLANAR_YUV or pix_fmt in _PLANAR_YUVA:
        cw, ch, bits = _PLANAR_YUV.get(pix_fmt) or _PLANAR_YUVA[pix_fmt]
        bps = 1 if bits == 8 else 2
        w2, h2 = _ceil_shift(width, cw), _ceil_shift(height, ch)
        planes = [P("Y", width, height, 1, bps), P("U", w2, h2, 1, bps), P("V", w2, h2, 1, bps)]
        alpha = pix_fmt in _PLANAR_YUVA
        if alpha:
            planes.append(P("A", width, height, 1, bps))
        return FrameFormat(kind="yuv", planes=tuple(planes), bit_depth=bits, has_alpha=alpha, **common)
    if pix_fmt in _SEMI_PLANAR:
        cw, ch, bits, bps = _SEMI_PLANAR[pix_fmt]
        planes = (P("Y", width, height, 1, bps), P("UV", _ceil_shift(width, cw), _ceil_shift(height, ch), 2, bps))
        return FrameFormat(kind="yuv", planes=planes, bit_depth=bits, **common)
    if pix_fmt in _GRAY:
        bits = _GRAY[pix_fmt]
        return FrameFormat(kind="gray", planes=(P("Y", width, height, 1, 1 if bits == 8 else 2),),
                           bit_depth=bits, **common)
    rgb = dict(matrix=matrix, range="full", chroma_location="left", rotation=rotation)
    if pix_fmt in _PACKED_RGB:
        role, bps = _PACKED_RGB[pix_fmt]
        return FrameFormat(kind="rgb", planes=(P(role, width, height, len(role), bps),),
                           bit_depth=8 * bps, has_alpha="A" in role, **rgb)
    if pix_fmt in _PLANAR_RGB or pix_fmt in _PLANAR_RGBA:
        bits = _PLANAR_RGB.get(pix_fmt) or _PLANAR_RGBA[pix_fmt]
        bps = 1 if bits == 8 else 2
        roles = ("G", "B", "R", "A") if pix_fmt in _PLANAR_RGBA else ("G", "B", "R")
        return FrameFormat(kind="rgb", planes=tuple(P(r, width, height, 1, bps) for r in roles),
                           bit_depth=bits, has_alpha=len(roles) == 4, **rgb)
    raise ValueError(f"unsupported pixel format {pix_fmt!r}")


def _describe(frame: av.VideoFrame, cc, target: str | None, rotation: int) -> FrameFormat:
    """FrameFormat of a decoded frame; colour tags missing on the frame come from the codec context."""
    return frame_format(
        target or frame.format.name, frame.width, frame.height,
        colorspace=frame.colorspace if frame.colorspace != 2 else cc.colorspace,
        color_range=frame.color_range or cc.color_range,
        rotation=rotation,
    )


def _unsupported(path, pix_fmt: str) -> MediaError:
    return MediaError(
        f"{path}: unsupported pixel format {pix_fmt}; supported: "
        + ", ".join(SUPPORTED_PIX_FMTS) + " (and " + ", ".join(sorted(_CONVERT)) + " via conversion)"
    )


def _rotation_cw(frame: av.VideoFrame | None, stream) -> int:
    """Clockwise display rotation in degrees (0/90/180/270) from the display matrix or 'rotate' tag."""
    ccw = 0.0
    if frame is not None:
        try:
            ccw = float(frame.rotation or 0)
        except (AttributeError, TypeError, ValueError):
            ccw = 0.0
    if not ccw:
        tag = stream.metadata.get("rotate")
        if tag:
            try:
                return int(round(float(tag) / 90.0)) % 4 * 90
            except ValueError:
                pass
    # FFmpeg's display matrix angle is counter-clockwise.
    return int(round(-ccw / 90.0)) % 4 * 90


# --- probing -----------------------------------------------------------------


@dataclass(frozen=True)
class SubtitleStreamInfo:
    index: int
    codec: str
    language: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    codec: str
    pix_fmt: str                   # as decoded (before any CPU conversion)
    format: FrameFormat            # what Decoder frames look like
    time_base: Fraction
    frame_rate: Fraction | None    # average rate; None if the container does not say
    duration: float | None         # seconds
    frames: int | None             # exact count when the container records it
    start_time: float = 0.0        # pts of the first frame, seconds
    rotation: int = 0              # clockwise degrees for display
    has_audio: bool = False
    audio_codecs: tuple[str, ...] = ()
    subtitle_streams: tuple[SubtitleStreamInfo, ...] = ()
    converted_from: str | None = None  # set when frames are converted on the CPU
    metadata: dict = field(default_factory=dict)
    sample_aspect: Fraction | None = None  # pixel aspect ratio (width / height of a pixel) when not square
    bit_rate: int | None = None    # video bits per second: the stream's, else estimated from the container

    @property
    def bits_per_pixel(self) -> float | None:
        """Video bits per pixel per frame: how hard the encoder squeezed (paths.choose_variant)."""
        if not self.bit_rate or not self.fps:
            return None
        return self.bit_rate / (self.width * self.height * self.fps)

    @property
    def fps(self) -> float:
        return float(self.frame_rate) if self.frame_rate else 0.0

    @property
    def estimated_frames(self) -> int | None:
        """Exact frame count if known, else duration x rate (for progress bars)."""
        if self.frames:
            return self.frames
        if self.duration and self.frame_rate:
            return max(1, round(self.duration * float(self.frame_rate)))
        return None


def _open_input(path: Path):
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a video file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: empty file")
    try:
        return av.open(str(path), "r")
    except PermissionError:
        raise MediaError(f"{path}: permission denied") from None
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise MediaError(f"{path}: not a readable media file ({detail})") from None


def _video_stream(container, path: Path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        if "audio" in kinds:
            raise MediaError(f"{path}: no video stream (audio-only file)")
        raise MediaError(f"{path}: no video stream" + (f" (only {', '.join(kinds)})" if kinds else ""))
    # Cover art in audio files is a video stream of one attached picture; prefer real video.
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        raise MediaError(f"{path}: no video stream (only an attached picture)")
    return streams[0]


def _check_size(path: Path, w: int, h: int) -> None:
    if w <= 0 or h <= 0:
        raise MediaError(f"{path}: invalid video size {w}x{h}")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise MediaError(f"{path}: video size {w}x{h} exceeds the supported maximum {MAX_SIDE}x{MAX_SIDE}")


def _first_frame(container, stream, path: Path) -> av.VideoFrame:
    errors = 0
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.FFmpegError:
                errors += 1
                if errors > 50:
                    break
    except av.FFmpegError:
        pass
    raise MediaError(f"{path}: no decodable video frame (damaged file or unsupported codec)")


def _tag_duration(metadata) -> float | None:
    """Matroska's per-stream DURATION tag ("HH:MM:SS.nnnnnnnnn"), in seconds."""
    tag = metadata.get("DURATION") or metadata.get("duration")
    if not tag:
        return None
    try:
        h, m, sec = tag.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _video_bit_rate(container, stream, audio, duration: float | None) -> int | None:
    """The video stream's bit rate: as tagged, else the container's less the tagged audio, else size / duration."""
    if stream.bit_rate:
        return int(stream.bit_rate)
    total = container.bit_rate
    if not total and duration and container.size:
        total = 8 * container.size / duration
    if not total:
        return None
    rest = total - sum(int(a.bit_rate or 0) for a in audio)
    return int(rest) if rest > 0 else int(total)


def probe(path) -> VideoInfo:
    """Read a file's video properties (decodes the first frame). Raises MediaError with one line."""
    path = Path(path)
    container = _open_input(path)
    try:
        stream = _video_stream(container, path)
        cc = stream.codec_context
        if cc.width > MAX_SIDE or cc.height > MAX_SIDE:
            _check_size(path, cc.width, cc.height)  # refuse before allocating a gigantic frame
        try:
            first = _first_frame(container, stream, path)
        except MediaError:
            _check_size(path, cc.width, cc.height)  # a 0x0 stream explains the failure better
            raise
        w, h = first.width, first.height
        _check_size(path, w, h)
        pix_fmt = first.format.name
        try:
            target = native_pix_fmt(pix_fmt)
        except ValueError:
            raise _unsupported(path, pix_fmt) from None
        rotation = _rotation_cw(first, stream)
        fmt = _describe(first, cc, target, rotation)
        tb = stream.time_base or Fraction(1, 1000)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if rate is not None and (rate <= 0 or rate > 1000):
            rate = None
        if stream.duration:
            duration = float(stream.duration * tb)
        elif _tag_duration(stream.metadata) is not None:
            duration = _tag_duration(stream.metadata)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        first_time = first.time if first.time is not None else 0.0
        sar = stream.sample_aspect_ratio or cc.sample_aspect_ratio
        # Unset (0/1), square, or absurd (a damaged tag would squash the picture): None.
        sample_aspect = Fraction(sar) if sar and sar > 0 and sar != 1 and 0.1 <= sar <= 10 else None
        audio = [s for s in container.streams.audio]
        subs = tuple(
            SubtitleStreamInfo(s.index, s.codec_context.name, s.metadata.get("language"), s.metadata.get("title"))
            for s in container.streams.subtitles
        )
        return VideoInfo(
            bit_rate=_video_bit_rate(container, stream, audio, duration),
            path=path, width=w, height=h, codec=cc.codec.canonical_name, pix_fmt=pix_fmt, format=fmt,
            time_base=tb, frame_rate=Fraction(rate) if rate else None, duration=duration,
            frames=stream.frames or None, start_time=float(first_time), rotation=rotation,
            has_audio=bool(audio), audio_codecs=tuple(s.codec_context.name for s in audio),
            subtitle_streams=subs, converted_from=pix_fmt if target else None,
            metadata=dict(container.metadata), sample_aspect=sample_aspect,
        )
    finally:
        container.close()


# --- decoding ----------------------------------------------------------------


def plane_arrays(frame: av.VideoFrame, fmt: FrameFormat) -> list[np.ndarray]:
    """Numpy views of a frame's planes, shaped (rows, line_size / bytes_per_sample); no copy."""
    arrays = []
    for plane, pf in zip(frame.planes, fmt.planes):
        dtype = np.uint8 if pf.bytes_per_sample == 1 else np.dtype("<u2")
        line = plane.line_size
        if line < 0:
            raise MediaError("negative line sizes (bottom-up frames) are not supported")
        rows = pf.height
        buf = np.frombuffer(plane, dtype=np.uint8)
        if buf.size < line * rows or line < pf.width * pf.components * pf.bytes_per_sample:
            raise MediaError(f"decoder plane {pf.role} ({line} x {rows} bytes in {buf.size}) does not hold "
                             f"{pf.width}x{pf.height}x{pf.components} samples")
        arrays.append(buf[: line * rows].view(dtype).reshape(rows, line // pf.bytes_per_sample))
    return arrays


_END = "end"
_FRAME = "frame"
_ERROR = "error"


class Decoder:
    """Decode a video file's frames in a background thread.

    Iterate to get ``Frame`` objects in presentation order; ``seek(t)`` jumps
    (the next frame returned is the first at or after ``t``). Use as a context
    manager or call ``close()``. Damaged data is concealed or skipped with one
    warning; errors in the decoding thread are re-raised here.
    """

    def __init__(self, path, *, start: float = 0.0, queue_size: int = 4, info: VideoInfo | None = None,
                 threads: int = 0, warn_damage: bool = True):
        self.path = Path(path)
        self.info = info or probe(self.path)
        self._container = _open_input(self.path)
        try:
            self._stream = _video_stream(self._container, self.path)
            self._stream.thread_type = "AUTO"
            self._stream.codec_context.thread_count = threads
        except BaseException:
            self._container.close()
            raise
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._cv = threading.Condition()
        self._stop = False
        self._gen = 0                 # bumped by every seek; stale queue items carry an older one
        self._seek_req: tuple[float, int] | None = (float(start), 0) if start and start > 0 else None
        self._ended_gen = -1
        self._formats: dict[tuple, FrameFormat] = {}
        self._warned = not warn_damage  # False: the caller reports ``errors`` itself (upscale's summary)
        self.errors = 0               # damaged packets/frames seen so far
        self._thread = threading.Thread(target=self._run, name=f"decode:{self.path.name}", daemon=True)
        self._thread.start()

    # consumer side

    @property
    def format(self) -> FrameFormat:
        return self.info.format

    def __iter__(self):
        return self

    def __next__(self) -> Frame:
        while True:
            if self._ended_gen == self._gen:
                raise StopIteration
            try:
                kind, gen, payload = self._queue.get(timeout=0.5)
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError(f"{self.path}: decoder thread died") from None
                continue
            if gen != self._gen:
                continue  # decoded before the latest seek
            if kind == _FRAME:
                return payload
            if kind == _END:
                self._ended_gen = gen
                raise StopIteration
            self._ended_gen = gen
            raise payload

    def seek(self, t: float) -> None:
        """Continue from the first frame at or after ``t`` seconds."""
        with self._cv:
            self._gen += 1
            self._seek_req = (max(0.0, float(t)), self._gen)
            self._cv.notify_all()
        self._drain()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._drain()
        self._thread.join()
        self._drain()
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        # A forgotten decoder must not keep its thread (and file) alive forever.
        try:
            if self._thread.is_alive():
                with self._cv:
                    self._stop = True
                    self._cv.notify_all()
                self._drain()
        except Exception:
            pass

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    # decoding thread

    def _put(self, item) -> bool:
        """Queue an item; False when stopping or a newer seek makes it pointless."""
        while True:
            with self._cv:
                if self._stop or (self._seek_req is not None and item[1] != self._seek_req[1]):
                    return False
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue

    def _warn(self, what: str, t: float | None) -> None:
        self.errors += 1
        if not self._warned:
            self._warned = True
            at = f" near {t:.3f} s" if t is not None else ""
            log.warning("%s: %s%s; concealing/skipping and continuing (further damage not reported)",
                        self.path, what, at)

    def _make_frame(self, f: av.VideoFrame, index: int) -> Frame:
        name = f.format.name
        target = native_pix_fmt(name)
        key = (name, f.width, f.height, f.colorspace, f.color_range)
        fmt = self._formats.get(key)
        if fmt is None:
            _check_size(self.path, f.width, f.height)
            if target:
                log.info("%s: converting %s to %s on the CPU", self.path, name, target)
            fmt = _describe(f, self._stream.codec_context, target, self.info.rotation)
            self._formats[key] = fmt
        src = f
        if target:
            f = f.reformat(format=target)
        duration = float(src.duration * src.time_base) if src.duration and src.time_base else None
        return Frame(format=fmt, planes=plane_arrays(f, fmt), pts=f.time, index=index,
                     extra={"av_frame": f, "duration": duration, "key_frame": bool(src.key_frame)})

    def _do_seek(self, t: float) -> bool:
        """Seek to the keyframe at or before ``t``. Returns whether it can have landed too late: not when
        ``t`` is at the file's first frame or before, or the input was rewound."""
        stream = self._stream
        tb = stream.time_base
        landed = t > self.info.start_time + 1e-6
        try:
            self._container.seek(int(math.floor(t / tb)), stream=stream, backward=True)
        except av.FFmpegError:
            # Unseekable input: rewind if possible; dropping frames before t then still lands on t.
            landed = False
            try:
                self._container.seek(0, backward=True)
            except av.FFmpegError:
                pass
        stream.codec_context.flush_buffers()
        return landed

    def _run(self) -> None:
        gen = 0
        target = 0.0
        index = 0
        last_t: float | None = None
        demux = None
        flushed = False
        back = 0.0          # how far before the target the latest seek went
        landing = False     # the first frame after a seek that can have landed too late is to come
        reseek = False      # it did: seek again, from further back
        try:
            while True:
                with self._cv:
                    if self._stop:
                        return
                    req, self._seek_req = self._seek_req, None
                if req is not None:
                    target, gen = req
                    back = 0.0
                if req is not None or reseek:
                    landing, reseek = self._do_seek(target - back), False
                    demux = None
                    last_t = None
                    flushed = False
                if demux is None:
                    demux = self._container.demux(self._stream)
                try:
                    packet = next(demux)
                    eof = False
                except StopIteration:
                    packet, eof = None, True
                except av.FFmpegError as exc:
                    self._warn(f"read error ({exc.strerror or exc}), stopping at the damage", last_t)
                    packet, eof = None, True
                if eof and flushed:
                    frames = []
                else:
                    if packet is None or packet.size == 0:
                        flushed = True  # PyAV's demuxer ends with an empty packet that drains the decoder
                    try:
                        frames = self._stream.decode(packet)
                    except av.FFmpegError:
                        self._warn("damaged video data", last_t)
                        frames = []
                stale = False
                for f in frames:
                    if f.is_corrupt:
                        self._warn("damaged video frame", f.time)
                    t = f.time
                    if t is None:  # no timestamp: extrapolate from the previous frame
                        t = (last_t or 0.0) + (1.0 / self.info.fps if self.info.fps else 0.04)
                    if landing and t > target + 1e-6:
                        # Past the target: a container that seeks by decode time (MPEG-TS) can land just
                        # after the keyframe it needs, and the frames up to the next one would be lost.
                        # Seek again from further back (1, 2, 4 ... s; the frames before are dropped).
                        back, reseek = max(1.0, 2 * back), True
                        stale = True
                        break
                    landing = False
                    if t < target - 1e-6:
                        continue
                    last_t = t
                    fr = self._make_frame(f, index)
                    fr.pts = float(t)
                    index += 1
                    if not self._put((_FRAME, gen, fr)):
                        stale = True
                        break
                if stale:
                    continue
                if eof:
                    self._put((_END, gen, None))
                    with self._cv:
                        while not self._stop and self._seek_req is None:
                            self._cv.wait()
        except BaseException as exc:  # re-raised in the consumer
            if isinstance(exc, av.FFmpegError):
                exc = MediaError(f"{self.path}: decoding failed: {exc.strerror or exc}")
            self._put((_ERROR, gen, exc))
