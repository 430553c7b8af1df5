"""Subtitle tracks for ``upshade play`` and ``upshade upscale --burn-subs``.

What a track is and where its events come from:

* embedded tracks of the video file, numbered 1, 2, ... in stream order as
  mpv's ``--sid`` numbers them, then external files (``--sub FILE`` and
  same-name ``.ass/.ssa/.srt/.vtt`` files beside the video, mpv's
  ``sub-auto=exact``: ``video.srt``, ``video.en.srt``);
* bitmap codecs (DVD ``dvdsub``, Blu-ray ``pgssub``, DVB) are decoded by PyAV
  into palette images placed on the track's canvas (DVD: the size in its
  .idx header, PGS: the presentation size in each display set);
* text codecs (ASS/SSA, SubRip, WebVTT, mov_text, ...) are decoded by PyAV
  into ASS event lines and rendered by libass (host/libass.py), with the
  fonts attached to the file;
* every event is timed by the stream's own timestamps. Embedded events are
  read by one background thread per file (``EmbeddedReader``) that keeps a
  record of the stretches of the file it has read, jumps to where playback
  seeks and fills the rest later, so seeking anywhere shows the events there.

``Subtitles`` is what the player and the encoder use: track selection,
visibility, and ``images(t, size)`` -- the premultiplied RGBA pictures to blend
over the video rectangle at media time ``t``. Drawing them is
host/subdraw.py's job.
"""

from __future__ import annotations

import bisect
import ctypes
import itertools
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .errors import UpshadeError
from .video import probe

AUTO_EXTENSIONS = (".ass", ".ssa", ".srt", ".vtt")
# Identities of picture sources for SubImage keys (never reused, unlike id() of a collected object).
_UIDS = itertools.count(1)
PRELOAD_BEFORE = 10.0    # s read before a seek target: events that started earlier and still show
WAIT_SLICE = 0.005


def _warn_default(line: str) -> None:
    print(line, file=sys.stderr)


# --- tracks -------------------------------------------------------------------------------------


@dataclass
class TrackInfo:
    """One selectable subtitle track (mpv's numbering: ``id`` starts at 1)."""

    id: int
    codec: str
    kind: str | None              # "text", "bitmap", or None: no decoder draws this codec
    language: str | None = None
    title: str | None = None
    stream_index: int | None = None   # embedded: the container's stream index
    file: Path | None = None          # external file
    default: bool = False
    forced: bool = False

    @property
    def external(self) -> bool:
        return self.file is not None

    def describe(self) -> str:
        parts = [f"{self.id}: {self.codec}"]
        if self.language:
            parts.append(self.language)
        if self.title and self.file is None:
            parts.append(repr(self.title))
        if self.file is not None:
            parts.append(f"external {self.file.name}")
        return " ".join(parts)


def codec_kind(name: str) -> str | None:
    """"bitmap" or "text" for subtitle codecs FFmpeg decodes; None when it has no decoder for ``name``."""
    try:
        codec = av.Codec(name, "r")
    except Exception:
        return None
    if codec.bitmap_sub:
        return "bitmap"
    if codec.text_sub:
        return "text"
    return None


def auto_subtitle_files(video: Path) -> list[Path]:
    """Same-name subtitle files beside ``video`` (``video.srt``, ``video.en.ass``), as mpv's sub-auto=exact."""
    video = Path(video)
    folder = video.parent
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return []
    stem = video.stem
    found = []
    for p in names:
        if p.suffix.lower() not in AUTO_EXTENSIONS or p == video:
            continue
        rest = p.name[: -len(p.suffix)]
        if rest == stem or (rest.startswith(stem + ".") and re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z]+)?", rest[len(stem) + 1:])):
            found.append(p)
    return found


def list_tracks(path, external=(), *, auto: bool = True) -> list[TrackInfo]:
    """Embedded subtitle tracks of ``path``, then external files (``external`` first, then auto-loaded)."""
    tracks: list[TrackInfo] = []
    try:
        with av.open(str(path)) as c:
            for s in c.streams.subtitles:
                name = s.codec_context.name
                disp = int(s.disposition or 0)
                tracks.append(TrackInfo(
                    len(tracks) + 1, name, codec_kind(name), s.metadata.get("language"), s.metadata.get("title"),
                    stream_index=s.index, default=bool(disp & int(av.stream.Disposition.default)),
                    forced=bool(disp & int(av.stream.Disposition.forced))))
    except (av.FFmpegError, OSError):
        pass
    files = [Path(f) for f in external if Path(f).is_file()]   # a missing one is reported by the caller
    if auto:
        seen = {f.resolve() for f in files if f.exists()}
        files += [f for f in auto_subtitle_files(Path(path)) if f.resolve() not in seen]
    for f in files:
        ext = f.suffix.lower().lstrip(".")
        codec = {"vtt": "webvtt", "ssa": "ass"}.get(ext, ext)   # the names FFmpeg gives such streams
        m = re.search(r"\.([A-Za-z]{2,3})$", f.stem)
        tracks.append(TrackInfo(len(tracks) + 1, codec, "text", m.group(1) if m else None, f.name, file=f))
    return tracks


def choose_track(tracks: list[TrackInfo], sid, option: str = "--sid") -> tuple[TrackInfo | None, str | None]:
    """The track to show for ``sid`` ("auto", "no" or a number) and a warning line, if any.

    auto: an external file (the ones given with --sub first), else the first embedded track flagged
    default or forced, else the first embedded track: a file's subtitles show unless ``--sid no``.
    """
    sid = "auto" if sid is None else str(sid).strip().lower()
    if sid == "no":
        return None, None
    if sid == "auto":
        usable = [t for t in tracks if t.kind is not None]
        for pick in ([t for t in usable if t.external], [t for t in usable if t.default or t.forced], usable):
            if pick:
                return pick[0], None
        return None, None
    try:
        n = int(sid)
    except ValueError:
        return None, f"{option} {sid}: not a track number, 'auto' or 'no'"
    for t in tracks:
        if t.id == n:
            return t, None
    have = ", ".join(t.describe() for t in tracks) or "none"
    return None, f"{option} {n}: no such subtitle track (the file has: {have})"


# --- events ---------------------------------------------------------------------------------------


@dataclass
class BitmapEvent:
    start: float
    end: float | None                  # None: until the next event
    canvas: tuple[int, int]            # coordinate space of the rects (w, h)
    rects: list[tuple[int, int, np.ndarray]]   # (x, y, premultiplied RGBA uint8 (h, w, 4))
    serial: int = 0


class BitmapStore:
    """Decoded bitmap events sorted by start; an event ends at its own end or at the next event."""

    def __init__(self):
        self.lock = threading.Lock()
        self.uid = next(_UIDS)
        self._starts: list[float] = []
        self._events: list[BitmapEvent] = []
        self._serial = 0

    def add(self, ev: BitmapEvent) -> None:
        with self.lock:
            i = bisect.bisect_left(self._starts, ev.start)
            if i < len(self._starts) and abs(self._starts[i] - ev.start) < 1e-6:
                return  # read twice (a seek went back over it)
            self._serial += 1
            ev.serial = self._serial
            self._starts.insert(i, ev.start)
            self._events.insert(i, ev)

    def at(self, t: float) -> BitmapEvent | None:
        with self.lock:
            i = bisect.bisect_right(self._starts, t + 1e-6) - 1
            if i < 0:
                return None
            ev = self._events[i]
        if not ev.rects or (ev.end is not None and t >= ev.end - 1e-6):
            return None
        return ev

    def __len__(self) -> int:
        return len(self._events)


class TextStore:
    """ASS event lines of one text track, in the order read (filled by the reader thread; libass, which
    is not thread-safe, takes them on the rendering thread with ``since``). Each distinct event gets
    one ReadOrder, so an event read twice (after a seek back) is stored once."""

    def __init__(self, header: bytes = b"", converted: bool = True):
        self.lock = threading.Lock()
        self.header = header
        self.converted = converted     # SubRip/WebVTT...: FFmpeg's 384x288 canvas, to widen to the video
        self._events: list[tuple[bytes, int, int]] = []
        self._seen: set[tuple] = set()

    def add(self, line: bytes, start_ms: int, duration_ms: int) -> None:
        # The decoder's ReadOrder restarts after every seek: ours is stable per (time, text).
        rest = line.split(b",", 1)[1] if b"," in line else line
        key = (start_ms, duration_ms, rest)
        with self.lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self._events.append((b"%d," % len(self._events) + rest, start_ms, duration_ms))

    def since(self, i: int) -> tuple[list[tuple[bytes, int, int]], int]:
        """Events from the ``i``-th on, and the index after them."""
        with self.lock:
            return self._events[i:], len(self._events)

    def __len__(self) -> int:
        return len(self._events)


# --- reading bitmap rects through PyAV ----------------------------------------------------------

class _RectHead(ctypes.Structure):
    """The start of FFmpeg's AVSubtitleRect (x, y, w, h, nb_colors, data[4], linesize[4])."""

    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int),
                ("nb_colors", ctypes.c_int), ("data", ctypes.c_void_p * 4), ("linesize", ctypes.c_int * 4)]


class BitmapReadError(UpshadeError):
    pass


def _rect_pointer(rect) -> int:
    """Address of the AVSubtitleRect behind a PyAV BitmapSubtitle.

    PyAV exposes the indices (plane 0) but not the palette (data[1]). Its Subtitle object holds
    (proxy, ptr, type) after the object header; the pointer found there is only used once every field
    PyAV does expose (x, y, w, h, colours, the plane's address) matches it."""
    base = id(rect) + ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    words = (ctypes.c_void_p * 3).from_address(base)
    if words[2] != id(rect.type):
        raise BitmapReadError("this PyAV version lays out subtitles differently: bitmap subtitles cannot be read")
    return words[1]


def bitmap_rgba(rect) -> np.ndarray:
    """A PyAV BitmapSubtitle as premultiplied RGBA uint8 (h, w, 4)."""
    ptr = _rect_pointer(rect)
    head = _RectHead.from_address(ptr)
    plane = np.frombuffer(rect.planes[0], np.uint8)
    if (head.x, head.y, head.w, head.h, head.nb_colors) != (rect.x, rect.y, rect.width, rect.height, rect.nb_colors) \
            or head.data[0] != plane.ctypes.data or not head.data[1] or not 0 < head.nb_colors <= 256:
        raise BitmapReadError("this PyAV version lays out subtitles differently: bitmap subtitles cannot be read")
    w, h, stride = head.w, head.h, head.linesize[0]
    raw = np.ctypeslib.as_array(ctypes.cast(head.data[0], ctypes.POINTER(ctypes.c_ubyte)), shape=(stride * h,))
    idx = raw.reshape(h, stride)[:, :w]
    pal = np.ctypeslib.as_array(ctypes.cast(head.data[1], ctypes.POINTER(ctypes.c_uint32)), shape=(head.nb_colors,))
    argb = np.zeros(256, np.uint32)
    argb[: head.nb_colors] = pal
    a = (argb >> 24 & 0xFF).astype(np.float32)
    lut = np.stack([(argb >> 16 & 0xFF) * a / 255.0, (argb >> 8 & 0xFF) * a / 255.0, (argb & 0xFF) * a / 255.0, a], 1)
    lut = np.clip(lut + 0.5, 0, 255).astype(np.uint8)
    return lut[idx]


def _dvd_canvas(extradata: bytes | None) -> tuple[int, int] | None:
    m = re.search(rb"size:\s*(\d+)\s*x\s*(\d+)", extradata or b"")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _pgs_canvas(data: bytes) -> tuple[int, int] | None:
    """The presentation size in a PGS packet's composition segment (type 0x16)."""
    i = 0
    while i + 3 <= len(data):
        kind, size = data[i], int.from_bytes(data[i + 1:i + 3], "big")
        if kind == 0x16 and size >= 4 and i + 7 <= len(data):
            return int.from_bytes(data[i + 3:i + 5], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 3 + size
    return None


class StreamDecoder:
    """Turns one subtitle stream's packets into events in its store."""

    def __init__(self, stream, video_size: tuple[int, int], notify):
        self.stream = stream
        self.codec = stream.codec_context.name
        self.kind = codec_kind(self.codec)
        self.notify = notify
        self.failed = False
        cc = stream.codec_context
        if self.kind == "text":
            if not cc.is_open:
                cc.open()
            self.store = TextStore(bytes(cc.subtitle_header or b""), converted=self.codec not in ("ass", "ssa"))
        else:
            self.store = BitmapStore()
        self._canvas = _dvd_canvas(bytes(cc.extradata or b"")) or video_size
        self._video_size = video_size

    def flush(self) -> None:
        try:
            self.stream.codec_context.flush_buffers()
        except Exception:
            pass

    def feed(self, packet) -> None:
        if self.failed or self.kind is None or packet.pts is None or packet.size == 0:
            return
        tb = packet.time_base or self.stream.time_base
        t = float(packet.pts * tb)
        if self.kind == "bitmap" and self.codec in ("pgssub", "hdmv_pgs_subtitle"):
            self._canvas = _pgs_canvas(bytes(packet)) or self._canvas
        try:
            sub = self.stream.codec_context.decode2(packet)
        except av.FFmpegError:
            return  # a damaged packet: skip it, as players do
        if sub is None:
            return
        start = t + sub.start_display_time / 1000.0
        end_ms = sub.end_display_time
        end = None if end_ms in (0, 0xFFFFFFFF) else t + end_ms / 1000.0
        if end is None and packet.duration and self.kind == "text":
            end = t + float(packet.duration * tb)
        if self.kind == "text":
            for r in sub.rects:
                line = getattr(r, "ass", None)
                if line:
                    dur = (end - start) if end is not None else 3600.0
                    self.store.add(bytes(line), int(round(start * 1000)), max(1, int(round(dur * 1000))))
            return
        rects = []
        for r in sub.rects:
            if not hasattr(r, "planes") or not r.planes or r.width <= 0 or r.height <= 0:
                continue
            try:
                rects.append((r.x, r.y, bitmap_rgba(r)))
            except BitmapReadError as exc:
                self.failed = True
                self.notify(f"upshade: warning: {exc}; the {self.codec} track is not shown")
                return
        self.store.add(BitmapEvent(start, end, self._canvas, rects))


class EmbeddedReader:
    """Reads the subtitle streams of a file in a background thread.

    It starts at the beginning and reads on; ``request(t)`` (the player's seeks) moves it to a part
    not yet read, PRELOAD_BEFORE seconds early. It remembers the stretches read and, once at the
    end, goes back to fill the gaps. ``wait(t)`` waits until the events around ``t`` are read.
    Positions are packet times of any stream (subtitle packets alone are too sparse to tell).
    """

    def __init__(self, path, stream_indices, video_size, notify=_warn_default):
        self.path = Path(path)
        self._container = av.open(str(self.path))
        streams = {s.index: s for s in self._container.streams}
        self.decoders = {i: StreamDecoder(streams[i], video_size, notify) for i in stream_indices}
        self._cv = threading.Condition()
        self._intervals: list[list[float]] = []   # [start, end] read, sorted, disjoint
        self._want: float | None = None           # seek there next
        self._seg: list[float] | None = None      # [start, position] of the stretch being read
        self._eof_at: float | None = None         # time of the file's last packet, once seen
        self._done = False                        # everything is read
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"subs:{self.path.name}", daemon=True)
        self._thread.start()

    # consumer side

    def _covered(self, t: float) -> bool:
        if self._done:
            return True
        spans = self._intervals + ([self._seg] if self._seg else [])
        return any(a <= t and (b >= t + 1.0 or (self._eof_at is not None and b >= self._eof_at)) for a, b in spans)

    def covered(self, t: float) -> bool:
        with self._cv:
            return self._covered(t)

    def request(self, t: float) -> None:
        """Playback is at (or seeks to) ``t``: read there first unless it is read or about to be."""
        with self._cv:
            if self._covered(t):
                return
            seg = self._seg
            if seg is not None and seg[0] <= t <= seg[1] + 5.0:
                return  # reading towards it
            self._want = max(0.0, t - PRELOAD_BEFORE)
            self._cv.notify_all()

    def wait(self, t: float, timeout: float) -> bool:
        """Wait up to ``timeout`` s until the events around ``t`` are read; whether they are."""
        with self._cv:
            return self._cv.wait_for(lambda: self._covered(t) or self._stop or not self._thread.is_alive(),
                                     timeout=timeout)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout=5)
        try:
            self._container.close()
        except Exception:
            pass

    # reading thread (interval bookkeeping under the lock)

    def _close_segment(self) -> None:
        seg, self._seg = self._seg, None
        if seg is None:
            return
        iv = sorted(self._intervals + [list(seg)])
        merged = [iv[0]]
        for a, b in iv[1:]:
            if a <= merged[-1][1] + 1e-3:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self._intervals = merged
        self._cv.notify_all()

    def _next_gap(self) -> float | None:
        """Start of the first stretch not read, or None when the whole file is."""
        pos = 0.0
        for a, b in self._intervals:
            if a > pos + 0.5:
                return pos
            pos = max(pos, b)
        if self._eof_at is None or pos < self._eof_at - 1e-3:
            return pos
        return None

    def _seek(self, t: float) -> None:
        try:
            self._container.seek(int(t * av.time_base), backward=True)
        except av.FFmpegError:
            self._container.seek(0)
        for d in self.decoders.values():
            d.flush()

    def _run(self) -> None:
        try:
            demux = self._container.demux()
            seek_from = 0.0
            while True:
                with self._cv:
                    if self._stop:
                        return
                    want, self._want = self._want, None
                    if want is not None:
                        self._close_segment()
                if want is not None:
                    self._seek(want)
                    demux = self._container.demux()
                    seek_from = want
                try:
                    packet = next(demux)
                except (StopIteration, av.FFmpegError):
                    packet = None
                with self._cv:
                    if packet is None:
                        end = self._seg[1] if self._seg else seek_from
                        if self._seg is None:
                            self._seg = [seek_from, end]
                        self._eof_at = max(end, self._eof_at or 0.0)
                        self._close_segment()
                        gap = self._next_gap()
                        if gap is None:
                            self._done = True
                            self._cv.notify_all()
                            self._cv.wait_for(lambda: self._stop)
                            return
                        if self._want is None:
                            self._want = gap
                        continue
                    t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
                    if t is not None:
                        if self._seg is None:
                            self._seg = [min(t, seek_from), t]
                        self._seg[1] = max(self._seg[1], t)
                        # Caught up with a stretch read before: skip to its end (or the next gap).
                        for a, b in self._intervals:
                            if a <= t < b and a > self._seg[0] and self._want is None:
                                self._seg[1] = b
                                self._close_segment()
                                gap = self._next_gap()
                                self._want = gap if gap is not None else b
                                break
                        self._cv.notify_all()
                dec = self.decoders.get(packet.stream.index)
                if dec is not None:
                    dec.feed(packet)
        except BaseException as exc:  # never let a subtitle problem stop playback
            with self._cv:
                self._done = True
                self._cv.notify_all()
            if not isinstance(exc, (SystemExit, KeyboardInterrupt)):
                _warn_default(f"upshade: warning: {self.path}: reading subtitles failed ({exc}); "
                              f"subtitles may be missing")


# --- external files -------------------------------------------------------------------------------


def read_text_file(path: Path) -> bytes:
    """A subtitle file's bytes as UTF-8 (a BOM is dropped); UpshadeError when unreadable or not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UpshadeError(f"{path}: no such subtitle file") from None
    except OSError as exc:
        raise UpshadeError(f"{path}: cannot read subtitle file ({exc.strerror or exc})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UpshadeError(f"{path}: not UTF-8 text (byte {exc.start}); convert it first, e.g. "
                           f"iconv -f CP1252 -t UTF-8 '{path.name}' > '{path.stem}.utf8{path.suffix}'") from None
    return data


def load_external(path: Path) -> tuple[str, object]:
    """("script", bytes) for .ass/.ssa, ("events", TextStore) for SubRip/WebVTT (decoded by PyAV)."""

    data = read_text_file(path)
    if path.suffix.lower() in (".ass", ".ssa"):
        return "script", data
    # Decode through FFmpeg's own demuxer and decoder, from the UTF-8 text checked above.
    with tempfile.TemporaryDirectory(prefix="upshade-sub-") as tmp:
        copy = Path(tmp) / ("s" + path.suffix.lower())
        copy.write_bytes(data)
        try:
            with av.open(str(copy)) as c:
                if not c.streams.subtitles:
                    raise UpshadeError(f"{path}: no subtitles in this file")
                s = c.streams.subtitles[0]
                dec = StreamDecoder(s, (0, 0), _warn_default)
                for p in c.demux(s):
                    dec.feed(p)
                return "events", dec.store
        except av.FFmpegError as exc:
            raise UpshadeError(f"{path}: not a readable subtitle file ({exc.strerror or exc})") from None


# --- what is shown --------------------------------------------------------------------------------


@dataclass
class SubImage:
    """A premultiplied RGBA picture placed in the video rectangle (top-left origin, rectangle pixels).

    ``w``/``h`` may differ from the picture's own size: bitmap subtitles are scaled from their
    canvas to the rectangle (linear filtering); text is rendered at the rectangle's size, 1:1."""

    x: float
    y: float
    w: float
    h: float
    rgba: np.ndarray
    key: tuple = field(default=())    # identifies the picture: equal keys, equal pixels


class _TextRenderer:
    """libass for one text track: a library with the file's fonts, a renderer, the track."""

    def __init__(self, fonts: list[tuple[str, bytes]]):
        from . import libass

        self.libass = libass
        self.library = libass.Library()
        for name, data in fonts:
            self.library.add_font(name, data)
        self.renderer = libass.Renderer(self.library)
        self.uid = next(_UIDS)
        self.track = None
        self.store: TextStore | None = None
        self._cursor = 0
        self._last = None
        self._gen = 0

    def load(self, source, storage: tuple[int, int]) -> None:
        """``source``: ("script", bytes) or ("events", TextStore)."""
        kind, payload = source
        if kind == "script":
            self.track = self.library.read_script(payload)
            return
        self.store = payload
        self.track = self.library.new_track()
        self.track.process_header(payload.header)
        # Converted formats (SubRip, WebVTT) come with FFmpeg's 384x288 canvas: widen it to the video's
        # aspect, as mpv does, so text is not stretched.
        px, py = self.track.play_res
        if payload.converted and storage[1] > 0 and px > 0 and py > 0:
            self.track.set_play_res_x(round(py * storage[0] / storage[1]))

    def images(self, t: float, size: tuple[int, int], storage: tuple[int, int]) -> list[SubImage]:
        if self.track is None:
            return []
        if self.store is not None:
            new, self._cursor = self.store.since(self._cursor)
            for line, start, dur in new:
                self.track.add_event(line, start, dur)
        self.renderer.set_size(size, storage)
        imgs, changed = self.renderer.render(self.track, int(round(t * 1000)))
        if changed or self._last is None or self._last[0] != size:
            self._gen += 1
            self._last = (size, self.libass.composite(imgs, size), self._gen)
        _size, comp, gen = self._last
        if comp is None:
            return []
        x, y, rgba = comp
        return [SubImage(x, y, rgba.shape[1], rgba.shape[0], rgba, ("text", self.uid, gen))]

    def close(self) -> None:
        for obj in (self.track, self.renderer, self.library):
            if obj is not None:
                obj.close()
        self.track = None


class Subtitles:
    """The subtitle tracks of one video and the one shown.

    ``images(t, size)``: what to blend over a ``size`` (w, h) video rectangle at media time ``t``.
    Problems (no libass, a file that is not UTF-8, an unknown track) are reported once through
    ``notify`` and the video goes on without that track.
    """

    def __init__(self, path, info=None, *, external=(), auto_load: bool = True, sid="auto",
                 notify=_warn_default, display_size: tuple[int, int] | None = None, wait: float | None = 0.25,
                 strict: bool = False, option: str = "--sid"):
        """``strict``: a track that cannot be shown is an error (UpshadeError), not a warning line
        (``upscale --burn-subs``: the user asked for that track)."""
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.notify = notify
        self.visible = True
        self.wait_timeout = wait
        self.display_size = display_size or (self.info.width, self.info.height)
        self.strict = strict
        self.tracks = list_tracks(self.path, external, auto=auto_load)
        for f in external:
            if not Path(f).is_file():
                self._problem(f"{f}: no such subtitle file")
        self._reader: EmbeddedReader | None = None
        self._fonts: list[tuple[str, bytes]] | None = None
        self._text: _TextRenderer | None = None
        self._bitmap: BitmapStore | None = None
        self._external: dict[int, object] = {}
        self._broken: set[int] = set()
        self._libass_error: str | None = None
        self.current: TrackInfo | None = None
        self._must_wait = True      # after a start, seek or track change: wait once for the reader
        track, warning = choose_track(self.tracks, sid, option)
        if warning:
            self._problem(warning + ("" if strict else "; playing without subtitles"))
        if track is not None:
            self.select(track.id)

    def _problem(self, text: str) -> None:
        if self.strict:
            raise UpshadeError(text)
        self.notify(f"upshade: warning: {text}")

    # --- selection -----------------------------------------------------------------------------
    def describe(self) -> str:
        if self.current is None:
            return "subtitles off"
        return f"subtitles {self.current.describe()}" + ("" if self.visible else " (hidden)")

    def select(self, track_id: int | None) -> TrackInfo | None:
        """Show track ``track_id`` (None: none); a track that cannot be shown is reported and skipped."""
        self._drop_renderers()
        self.current = None
        if track_id is None:
            return None
        track = next((t for t in self.tracks if t.id == track_id), None)
        if track is None:
            return None
        if track.id in self._broken:
            return None
        try:
            self._open(track)
        except UpshadeError as exc:
            self._broken.add(track.id)
            self._drop_renderers()
            self._problem(f"subtitle track {track.describe()}: {exc}")
            return None
        self.current = track
        self._must_wait = True
        return track

    def cycle(self, step: int = 1) -> TrackInfo | None:
        """mpv's ``j``: the next track, then off, then the first again (``J``: backwards)."""
        ids = [None] + [t.id for t in self.tracks]
        cur = self.current.id if self.current is not None else None
        i = ids.index(cur) if cur in ids else 0
        for _ in range(len(ids)):
            i = (i + step) % len(ids)
            if self.select(ids[i]) is not None or ids[i] is None:
                break
        return self.current

    def toggle(self) -> bool:
        self.visible = not self.visible
        return self.visible

    # --- loading -------------------------------------------------------------------------------
    def _attached_fonts(self) -> list[tuple[str, bytes]]:
        if self._fonts is None:
            self._fonts = []
            try:
                with av.open(str(self.path)) as c:
                    for a in c.streams.attachments:
                        mime = (a.mimetype or "").lower()
                        name = a.name or ""
                        if "font" in mime or name.lower().endswith((".ttf", ".otf", ".ttc")):
                            self._fonts.append((name, bytes(a.data)))
            except (av.FFmpegError, OSError, AttributeError):
                pass
        return self._fonts

    def _ensure_reader(self) -> EmbeddedReader:
        if self._reader is None:
            indices = [t.stream_index for t in self.tracks if t.stream_index is not None and t.kind is not None]
            self._reader = EmbeddedReader(self.path, indices, (self.info.width, self.info.height), self.notify)
        return self._reader

    def _open(self, track: TrackInfo) -> None:
        if track.kind is None:
            raise UpshadeError(f"FFmpeg has no decoder for {track.codec} subtitles here; the track is not shown")
        if track.kind == "text":
            from . import libass

            if not libass.available():
                raise UpshadeError(f"text subtitles need libass, which is not installed ({libass.INSTALL_HINT}); "
                                   f"playing without them")
        if track.external:
            source = self._external.get(track.id)
            if source is None:
                source = self._external[track.id] = load_external(track.file)
            self._text = _TextRenderer(self._attached_fonts())
            self._text.load(source, self.display_size)
            return
        reader = self._ensure_reader()
        dec = reader.decoders[track.stream_index]
        if track.kind == "text":
            self._text = _TextRenderer(self._attached_fonts())
            self._text.load(("events", dec.store), self.display_size)
        else:
            self._bitmap = dec.store

    def _drop_renderers(self) -> None:
        if self._text is not None:
            self._text.close()
            self._text = None
        self._bitmap = None

    # --- playback ------------------------------------------------------------------------------
    def seek(self, t: float) -> None:
        self._must_wait = True
        if self._reader is not None:
            self._reader.request(t)

    def images(self, t: float | None, size: tuple[int, int]) -> list[SubImage]:
        """Pictures to blend over a ``size`` video rectangle at media time ``t`` (empty when hidden)."""
        if t is None or self.current is None or not self.visible or size[0] <= 0 or size[1] <= 0:
            return []
        if self._reader is not None and not self.current.external:
            self._reader.request(t)
            if self._must_wait and not self._reader.covered(t):
                # The reader is not there yet (a start or a seek): wait for it, up to ``wait`` s. If it
                # stays behind, later frames do not wait again until the next seek (None: always wait).
                if not self._reader.wait(t, 3600.0 if self.wait_timeout is None else self.wait_timeout) \
                        and self.wait_timeout is not None:
                    self._must_wait = False
        if self._text is not None:
            return self._text.images(t, size, self.display_size)
        if self._bitmap is not None:
            ev = self._bitmap.at(t)
            if ev is None:
                return []
            cw, ch = ev.canvas
            sx, sy = size[0] / cw, size[1] / ch
            return [SubImage(x * sx, y * sy, rgba.shape[1] * sx, rgba.shape[0] * sy, rgba,
                             ("bitmap", self._bitmap.uid, ev.serial, i))
                    for i, (x, y, rgba) in enumerate(ev.rects)]
        return []

    def close(self) -> None:
        self._drop_renderers()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
