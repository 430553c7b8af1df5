"""Video encoding with PyAV: RGB or ready YCbCr frames in, a finished file out (atomically).

``Encoder`` converts and encodes in its own thread from a small bounded queue,
so that RGB->YUV conversion and the codec overlap the GPU work of the caller.
Callers that convert on the GPU (host/upscale.PlaneReadback, with
``ycbcr_matrix``) hand in ``av.VideoFrame``s already in the output pixel
format, and the thread only encodes.
The source's audio and subtitle streams are copied packet for packet (never
re-encoded), trimmed to ``start``/``duration`` and interleaved with the video
by time. The output goes to a temporary sibling file, renamed into place only
when everything succeeded (host/fileio.atomic_output).

Colour: the RGB frames are converted to YCbCr with the matrix the source was
decoded with (``VideoInfo.format.matrix``: BT.601, BT.709 or BT.2020), in
limited range, and the output is tagged with exactly that matrix and range
(plus the source's primaries and transfer, or the ones players would have
guessed for it). Decoding the output therefore undoes the conversion, and a
player shows the same colours as for the source.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .colorspace import KR_KB, default_matrix, is_hd
from .errors import UpshadeError
from .fileio import AtomicOutput
from .video import _video_stream, probe

log = logging.getLogger("upshade.encode")

# Our codec names -> FFmpeg encoders to try, in order of preference.
CODECS: dict[str, tuple[str, ...]] = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
}
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63), "libaom-av1": (0, 63), "librav1e": (0, 255)}
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")

_SWS_MATRIX = {"bt601": "ITU601", "bt709": "ITU709", "bt2020nc": "BT2020"}
_AV_MATRIX = {"bt601": 6, "bt709": 1, "bt2020nc": 9}          # AVColorSpace
_AV_PRIMARIES = {"bt709": 1, "bt470bg": 5, "smpte170m": 6, "bt2020": 9}
_AV_TRC = {"bt709": 1, "smpte170m": 6, "bt2020-10": 14}

# Tags that describe the old file rather than its content (muxer brands,
# Matroska statistics): writing them into the new file would be false.
_DROP_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration", "number_of_frames",
              "number_of_bytes", "bps", "_statistics_tags", "_statistics_writing_app", "_statistics_writing_date_utc"}

_END = object()
_ABORT = object()


def available_encoder(codec: str) -> str:
    """The FFmpeg encoder for one of our codec names, or an UpshadeError saying what is missing."""
    try:
        candidates = CODECS[codec]
    except KeyError:
        raise UpshadeError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}") from None
    for name in candidates:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.FFmpegError, ValueError):
            continue
    raise UpshadeError(
        f"codec {codec}: this FFmpeg build (PyAV {av.__version__}) has none of the encoders {', '.join(candidates)}"
    )


def encoder_options(encoder: str, crf: int | None, preset: str | None) -> dict[str, str]:
    opts: dict[str, str] = {}
    if crf is not None:
        lo, hi = CRF_RANGE.get(encoder, (0, 63))
        if not lo <= int(crf) <= hi:
            raise UpshadeError(f"--crf {crf}: {encoder} takes {lo}..{hi}")
        opts["crf"] = str(int(crf))
    if preset is not None:
        preset = str(preset)
        if encoder in ("libx264", "libx265"):
            if preset not in X26X_PRESETS:
                raise UpshadeError(f"--preset {preset}: {encoder} presets are {', '.join(X26X_PRESETS)}")
        elif encoder == "libsvtav1":
            if not preset.lstrip("-").isdigit() or not -1 <= int(preset) <= 13:
                raise UpshadeError(f"--preset {preset}: libsvtav1 presets are numbers -1..13 (higher is faster)")
        elif encoder == "libaom-av1":
            if not preset.isdigit() or not 0 <= int(preset) <= 8:
                raise UpshadeError(f"--preset {preset}: libaom-av1 takes cpu-used 0..8 (higher is faster)")
            opts["cpu-used"] = preset
            preset = None
        elif encoder == "librav1e":
            opts["speed"] = preset
            preset = None
        if preset is not None:
            opts["preset"] = preset
    if encoder == "libx265":
        opts["x265-params"] = "log-level=error"  # x265 prints its whole configuration otherwise
    if encoder == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # errors only; SVT-AV1 reads this when the encoder opens
    return opts


def check_pix_fmt(encoder: str, pix_fmt: str) -> None:
    """One line when ``encoder`` does not take frames in ``pix_fmt``."""
    formats = [f.name for f in av.codec.Codec(encoder, "w").video_formats or ()]
    if formats and pix_fmt not in formats:
        raise UpshadeError(f"{encoder} cannot encode pixel format {pix_fmt}; it takes {', '.join(formats)}")


def ycbcr_matrix(matrix: str, bits: int) -> np.ndarray:
    """3x4 affine map from R'G'B' in 0..1 to limited-range Y, Cb, Cr codes of ``bits`` bits (unrounded).

    The conversion ``Encoder`` applies to RGB frames (through swscale) and tags
    its output with: Y = (16 + 219 Y') * 2^(bits-8), Cb/Cr = (128 + 224 C') * 2^(bits-8).
    """
    try:
        kr, kb = KR_KB[matrix]
    except KeyError:
        raise UpshadeError(f"unknown colour matrix {matrix!r}") from None
    luma = np.array([kr, 1.0 - kr - kb, kb])
    cb = (np.array([0.0, 0.0, 1.0]) - luma) / (2.0 * (1.0 - kb))
    cr = (np.array([1.0, 0.0, 0.0]) - luma) / (2.0 * (1.0 - kr))
    s = float(1 << (bits - 8))
    return np.array([[*(219.0 * s * luma), 16.0 * s],
                     [*(224.0 * s * cb), 128.0 * s],
                     [*(224.0 * s * cr), 128.0 * s]])


def _output_matrix(matrix: str | None, info, width: int, height: int) -> str:
    """The matrix the output is converted with and tagged as: ``matrix``, else the one the source was
    decoded with (YCbCr or grey sources), else the rule for untagged video of the output's size."""
    if matrix is None:
        src_fmt = info.format if info is not None else None
        if src_fmt is not None and src_fmt.kind in ("yuv", "gray"):
            matrix = src_fmt.matrix
        else:
            matrix = default_matrix(width, height)
    if matrix not in _SWS_MATRIX:
        raise UpshadeError(f"unknown colour matrix {matrix!r}")
    return matrix


def _guessed_primaries(width: int, height: int) -> int:
    """The primaries players assume for untagged video of this size (as mpv does)."""
    if is_hd(width, height):
        return _AV_PRIMARIES["bt709"]
    if height in (576, 288) or (500 < height < 600):
        return _AV_PRIMARIES["bt470bg"]
    return _AV_PRIMARIES["smpte170m"]


def _clean_tags(tags: dict) -> dict:
    return {k: v for k, v in tags.items() if k.lower() not in _DROP_TAGS and not k.upper().startswith("_STATISTICS")}


class Encoder:
    """Encode frames into ``out_path``, copying the source's audio and subtitles.

    Use as a context manager: a clean exit finishes and renames the file; an
    exception (Ctrl-C included) leaves nothing behind::

        with Encoder(out, source_path=src, width=w, height=h) as enc:
            for rgb, t in frames:
                enc.write(rgb, t)

    ``write`` takes ownership of the array or frame (it is converted and
    encoded later, in the encoder thread): do not modify it afterwards.
    ``pts`` are source times in seconds; with ``start`` the output starts at 0
    (as ``ffmpeg -ss``).
    """

    def __init__(
        self,
        out_path,
        *,
        source_path=None,
        width: int,
        height: int,
        codec: str = "h264",
        crf: int | None = None,
        preset: str | None = None,
        pix_fmt: str = "yuv420p",
        start: float = 0.0,
        duration: float | None = None,
        queue_size: int = 4,
        source_info=None,
        matrix: str | None = None,
        rotation: int | None = None,
        copy_streams: bool = True,
        threads: int = 0,
        skip_streams=(),
    ):
        """``skip_streams``: source stream indices not to copy (a subtitle track burned into the picture)."""
        self.out_path = Path(out_path)
        self.source_path = Path(source_path) if source_path is not None else None
        self.width, self.height = int(width), int(height)
        self.start = float(start or 0.0)
        self.end = self.start + float(duration) if duration is not None else None
        self.frames_written = 0
        self._skip_streams = frozenset(skip_streams)
        self._error: BaseException | None = None
        self._closed = False

        self.encoder_name, opts = self._check_format(codec, pix_fmt, crf, preset)
        self.pix_fmt = pix_fmt
        info = source_info
        if info is None and self.source_path is not None:
            info = probe(self.source_path)
        self.source_info = info
        self.matrix = _output_matrix(matrix, info, self.width, self.height)
        self.rotation = int(rotation if rotation is not None else (info.rotation if info is not None else 0)) % 360

        self._file = AtomicOutput(self.out_path, inputs=[self.source_path] if self.source_path else [])
        self._out = None
        self._src = None
        try:
            self._setup(info, opts, copy_streams, threads)
            self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
            self._thread = threading.Thread(target=self._run, name=f"encode:{self.out_path.name}", daemon=True)
            self._thread.start()
        except BaseException as exc:  # Ctrl-C included: the temporary file goes
            self._close_containers()
            err = self._file.discard(exc)
            if err is not exc:
                raise err from None
            if isinstance(exc, av.FFmpegError):
                raise UpshadeError(f"{self.out_path}: cannot write: {exc.strerror or exc}") from None
            raise

    # --- setup (caller's thread) -------------------------------------------

    def _check_format(self, codec: str, pix_fmt: str, crf: int | None, preset: str | None) -> tuple[str, dict]:
        """(FFmpeg encoder, its options), after checking that it takes ``pix_fmt`` at this size."""
        encoder = available_encoder(codec)
        check_pix_fmt(encoder, pix_fmt)
        opts = encoder_options(encoder, crf, preset)
        if self.width <= 0 or self.height <= 0:
            raise UpshadeError(f"{self.out_path}: invalid output size {self.width}x{self.height}")
        fmt = av.VideoFormat(pix_fmt)
        cw = 2 if fmt.chroma_width(2) == 1 else 1
        ch = 2 if fmt.chroma_height(2) == 1 else 1
        if self.width % cw or self.height % ch:
            raise UpshadeError(
                f"{self.out_path}: {pix_fmt} needs a width divisible by {cw} and a height divisible by {ch}; "
                f"got {self.width}x{self.height}"
            )
        return encoder, opts

    def _setup(self, info, opts, copy_streams: bool, threads: int) -> None:
        """Open the output and the source, add the streams, write the header."""
        out = self._out = open_output(self.out_path, self._file.tmp)
        check_container(out, self.encoder_name, self.out_path)
        supported = out.supported_codecs
        src = self._src = av.open(str(self.source_path)) if self.source_path is not None else None
        src_video = _video_stream(src, self.source_path) if src is not None else None
        self._video = self._add_video_stream(out, info, opts, threads, src_video)
        self._side: dict[int, av.stream.Stream] = {}
        if src is not None:
            self._copy_source_data(src, src_video, out, supported, copy_streams)
        self._pending = None        # next side packet, not yet due
        self._side_done = not self._side
        out.start_encoding()        # write the header now: container problems surface before any work

    def _add_video_stream(self, out, info, opts, threads: int, src_video):
        """The video stream: rate, time base, threads, colour tags, rotation and pixel aspect."""
        rate = info.frame_rate if info is not None and info.frame_rate else Fraction(25)
        tb = info.time_base if info is not None and info.time_base else Fraction(1, 90000)
        if tb.denominator < 1000:  # too coarse for VFR times after trimming
            tb = Fraction(1, 90000)
        vs = out.add_stream(self.encoder_name, rate=rate, options=opts)
        vs.width, vs.height, vs.pix_fmt = self.width, self.height, self.pix_fmt
        cc = vs.codec_context
        cc.time_base = tb
        vs.time_base = tb
        cc.framerate = rate
        cc.thread_type = "AUTO"
        cc.thread_count = threads
        self._tb = tb
        self._rate = rate
        self._tags = self._colour_tags(info, src_video)
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = self._tags
        if self.rotation:
            vs.set_display_rotation(-self.rotation % 360)  # PyAV takes counter-clockwise degrees
        sar = output_sample_aspect(info, self.width, self.height)
        if sar is not None:
            # In the codec (H.264/HEVC VUI, AV1 via the container) and in the container (Matroska
            # display size, MP4 pasp): players disagree about which one they read.
            cc.sample_aspect_ratio = sar
            vs.sample_aspect_ratio = sar
        self.sample_aspect = sar
        return vs

    def _colour_tags(self, info, src_video) -> tuple[int, int, int, int]:
        """(matrix, range, primaries, transfer) of the output: the matrix we convert with, limited range,
        and the source's primaries/transfer (or what a player would have assumed for the source, so
        the picture does not shift)."""
        prim, trc = (src_video.codec_context.color_primaries, src_video.codec_context.color_trc) if src_video else (2, 2)
        if prim in (0, 2):
            if self.matrix == "bt2020nc":
                prim = _AV_PRIMARIES["bt2020"]
            elif info is not None:
                prim = _guessed_primaries(info.width, info.height)
            else:
                prim = _guessed_primaries(self.width, self.height)
        if trc in (0, 2):
            trc = _AV_TRC["bt2020-10"] if self.matrix == "bt2020nc" else _AV_TRC["bt709"]
        return _AV_MATRIX[self.matrix], 1, prim, trc

    def _copy_source_data(self, src, src_video, out, supported, copy_streams: bool) -> None:
        """Tags, chapters and (with ``copy_streams``) the audio and subtitle streams of the source."""
        out.metadata.update(_clean_tags(dict(src.metadata)))
        self._video.metadata.update(_clean_tags(dict(src_video.metadata)))
        if copy_streams:
            self._add_side_streams(src, out, supported)
        chapters = _trim_chapters(src.chapters(), self.start, self.end)
        if chapters:
            out.set_chapters(chapters)
        if self._side:
            if self.start > 0:
                try:
                    src.seek(int(self.start * av.time_base), backward=True)
                except av.FFmpegError:
                    pass  # unseekable: read from the beginning and filter
            self._side_iter = src.demux(*[s for s in src.streams if s.index in self._side])
        else:
            src.close()
            self._src = None

    def _add_side_streams(self, src, out, supported) -> None:
        self._side.update(add_side_streams(src, out, self.out_path, self._skip_streams, supported))

    def _close_containers(self) -> None:
        for c in (self._out, self._src):
            if c is not None:
                try:
                    c.close()
                except Exception:
                    pass

    # --- caller side -------------------------------------------------------

    def write(self, image: np.ndarray | av.VideoFrame, pts: float | None = None,
              duration: float | None = None) -> None:
        """Queue one frame shown at ``pts`` seconds for ``duration``.

        ``image`` is an HxWx3 (or HxWx4) uint8/uint16 RGB array, converted here
        with the encoder's matrix, or an ``av.VideoFrame`` already in
        ``pix_fmt`` with limited-range codes of ``matrix`` (see ``ycbcr_matrix``),
        encoded as it is.
        """
        if self._closed:
            raise UpshadeError(f"{self.out_path}: encoder already closed")
        if isinstance(image, av.VideoFrame):
            if image.format.name != self.pix_fmt or (image.width, image.height) != (self.width, self.height):
                raise ValueError(f"{image.format.name} frame of {image.width}x{image.height}; expected "
                                 f"{self.pix_fmt} of {self.width}x{self.height}")
        elif image.shape[:2] != (self.height, self.width) or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"frame of shape {image.shape}; expected ({self.height}, {self.width}, 3 or 4)")
        self._put(("frame", image, pts, duration))

    def _put(self, item) -> None:
        while True:
            self._raise_error()
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    self._raise_error()
                    raise UpshadeError(f"{self.out_path}: encoder thread stopped")

    def _raise_error(self) -> None:
        if self._error is not None:
            err = self._error
            if isinstance(err, av.FFmpegError):
                raise UpshadeError(f"{self.out_path}: encoding failed: {err.strerror or err}") from err
            raise err

    def close(self) -> Path:
        """Finish the file (flush, trailer) and move it into place. Returns the output path."""
        if self._closed:
            return self.out_path
        try:
            self._put(_END)
            self._thread.join()
            self._raise_error()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._closed = True
        self._file.commit()
        return self.out_path

    def abort(self, exc: BaseException | None = None) -> None:
        """Stop and delete the partial output."""
        if self._closed:
            return
        self._closed = True
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(_ABORT)
        self._thread.join()
        exc = exc or UpshadeError("aborted")
        err = self._file.discard(exc)
        if err is not exc:
            raise err from None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort(exc)

    # --- encoder thread ----------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _ABORT:
                    return
                if item is _END:
                    self._finish()
                    return
                if self._error is None:
                    self._encode(*item[1:])
        except BaseException as exc:
            self._error = exc
            # Keep consuming so that a producer blocked on a full queue wakes up and sees the error.
            while True:
                item = self._queue.get()
                if item is _ABORT or item is _END:
                    break
        finally:
            for c in (self._out, self._src):
                if c is not None:
                    try:
                        c.close()
                    except Exception as exc:
                        if self._error is None:
                            self._error = exc

    def _to_ticks(self, seconds: float) -> int:
        return int(round(seconds / self._tb))

    def _encode(self, image: np.ndarray | av.VideoFrame, pts: float | None, duration: float | None) -> None:
        if pts is None:
            pts = self.start + self.frames_written / float(self._rate)
        if pts < self.start - 1e-6 or (self.end is not None and pts >= self.end - 1e-6):
            return
        frame = image if isinstance(image, av.VideoFrame) else self._convert(image)
        frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc = self._tags
        t = pts - self.start
        ticks = self._to_ticks(t)
        if self.frames_written and ticks <= self._last_ticks:
            ticks = self._last_ticks + 1  # encoders reject repeated timestamps
        self._last_ticks = ticks
        frame.pts = ticks
        frame.time_base = self._tb
        if duration:
            frame.duration = max(1, self._to_ticks(duration))
        self._out.mux(self._video.encode(frame))
        self.frames_written += 1
        self._mux_side(until=t)

    def _convert(self, rgb: np.ndarray) -> av.VideoFrame:
        deep = rgb.dtype == np.uint16
        layout = ("rgb48le" if deep else "rgb24") if rgb.shape[2] == 3 else ("rgba64le" if deep else "rgba")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=layout)
        return frame.reformat(format=self.pix_fmt, dst_colorspace=_SWS_MATRIX[self.matrix], dst_color_range="MPEG")

    def _mux_side(self, until: float | None) -> None:
        """Copy side packets due up to ``until`` output seconds (None: all that remain in range)."""
        while not self._side_done:
            p = self._pending
            if p is None:
                try:
                    p = next(self._side_iter)
                except StopIteration:
                    self._side_done = True
                    return
                except av.FFmpegError as exc:
                    log.warning("%s: stopped copying audio/subtitles at damaged data: %s", self.source_path, exc)
                    self._side_done = True
                    return
                if p.size == 0 or (p.pts is None and p.dts is None):
                    continue
                ts = p.pts if p.pts is not None else p.dts
                t = float(ts * p.time_base)
                if self.start > 0 and t < self.start - 1e-6:
                    continue
                if self.end is not None and t >= self.end - 1e-6:
                    # Other streams may still have packets in range, but demuxers interleave
                    # within seconds: far past the end nothing more can be due.
                    if t > self.end + 30.0:
                        self._side_done = True
                        return
                    continue
                if self.start > 0:
                    shift = int(round(self.start / p.time_base))
                    if p.pts is not None:
                        p.pts -= shift
                    if p.dts is not None:
                        p.dts -= shift
                p.stream = self._side[p.stream_index]
                self._pending = p
            t_out = float((p.dts if p.dts is not None else p.pts) * p.time_base)
            if until is not None and t_out > until:
                return
            self._pending = None
            self._out.mux(p)

    def _finish(self) -> None:
        self._out.mux(self._video.encode(None))
        self._mux_side(until=None)
        if self.frames_written == 0:
            raise UpshadeError(f"{self.out_path}: no video frames to write")


def open_output(out_path, file=None):
    """An output container in the format of ``out_path``'s extension, writing to ``file`` (its temporary
    name; default ``out_path``). Nothing is written before ``start_encoding``: opened and closed, it
    checks what a container can hold."""
    out_path = Path(out_path)
    options = {}
    if out_path.suffix.lower() in (".mp4", ".m4v", ".mov"):
        options["movflags"] = "+faststart"  # index first: playable while downloading
    try:
        return av.open(str(file or out_path), "w", options=options)
    except ValueError as exc:  # PyAV: no muxer for this extension
        raise UpshadeError(f"{out_path}: unknown output container {out_path.suffix!r} ({exc})") from None


def check_container(out, encoder: str, out_path) -> None:
    """One line naming ``out_path`` when the output container ``out`` cannot hold ``encoder``'s video."""
    supported = out.supported_codecs
    if encoder not in supported and codec_id_name(encoder) not in supported:
        raise UpshadeError(f"{out_path}: the {out.format.name} container cannot hold {encoder} video")


def add_side_streams(src, out, out_path, skip=(), supported=None) -> dict:
    """Add copies of the source's audio and subtitle streams (not those in ``skip``) to ``out``, and
    its attachments (fonts for ASS subtitles) when ``out`` is Matroska. Returns {source index: output
    stream}; the packets are the caller's to copy (``Encoder``, host/segments.join_segments)."""
    supported = out.supported_codecs if supported is None else supported
    side = {}
    for s in src.streams:
        if s.type not in ("audio", "subtitle") or s.index in skip:
            continue
        name = s.codec_context.name
        if name not in supported and s.codec_context.codec.canonical_name not in supported:
            raise UpshadeError(
                f"{out_path}: the {out.format.name} container cannot hold the source's "
                f"{s.type} stream #{s.index} ({name}); write to .mkv instead"
            )
        o = out.add_stream_from_template(s)
        o.metadata.update(_clean_tags(dict(s.metadata)))
        try:
            o.disposition = s.disposition
        except (AttributeError, TypeError, ValueError):
            pass
        side[s.index] = o
    if out.format.name in ("matroska", "webm"):
        for a in src.streams.attachments:
            try:
                out.add_attachment(a.name, a.mimetype, bytes(a.data))
            except (av.FFmpegError, ValueError, TypeError, AttributeError) as exc:
                log.warning("%s: attachment %s not copied: %s", src.name, a.name, exc)
    return side


def output_sample_aspect(info, width: int, height: int) -> Fraction | None:
    """The pixel aspect ratio that shows a ``width`` x ``height`` output of the source ``info`` at the
    source's display aspect ratio (its SAR when the size is scaled evenly), or None for square pixels.

    Anamorphic sources (DVD: 720x480 at 8:9) would otherwise come out with unset SAR and display
    12.5% too wide.
    """
    sar = getattr(info, "sample_aspect", None) if info is not None else None
    if not sar:
        return None
    out = Fraction(sar) * Fraction(info.width * height, info.height * width)
    out = out.limit_denominator(65535)  # H.264/HEVC VUI code each term in 16 bits
    while out.numerator > 65535:
        out = Fraction(out.numerator // 2, max(1, out.denominator // 2))
    return None if out == 1 else out


def _trim_chapters(chapters: list[dict], start: float, end: float | None) -> list[dict]:
    """Chapters overlapping [start, end), clipped to it and shifted so that ``start`` becomes 0."""
    out = []
    for ch in chapters:
        tb = ch["time_base"]
        if not tb:
            continue
        a, b = float(ch["start"] * tb), float(ch["end"] * tb)
        hi = b if end is None else min(b, end)
        lo = max(a, start)
        if hi <= lo:
            continue
        out.append(dict(ch, start=int(round((lo - start) / tb)), end=int(round((hi - start) / tb)),
                        id=len(out) + 1))
    return out


def codec_id_name(encoder: str) -> str:
    """The codec (not encoder) name a container lists as supported, e.g. libx264 -> h264."""
    try:
        return av.codec.Codec(encoder, "w").canonical_name
    except (av.FFmpegError, ValueError, AttributeError):
        return encoder
