"""A small ctypes binding of libass, the ASS/SSA subtitle renderer mpv and FFmpeg use (ISC licence).

Only what the player and ``upscale --burn-subs`` need: a library with fonts
(system fonts through fontconfig, plus fonts attached to the video file), a
renderer sized to the video rectangle, tracks built from a whole script or
from the events a decoder hands out one by one, and ``render(track, ms)``
returning the images to blend. Debian/Ubuntu: ``apt-get install libass9``.

libass objects are not thread-safe: one thread (the GL thread) renders, and
tracks are filled under the owner's lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from .errors import UpshadeError

INSTALL_HINT = "apt-get install libass9 (brew install libass on macOS)"

_FONTPROVIDER_AUTODETECT = 1
_SHAPING_COMPLEX = 1


class LibassUnavailable(UpshadeError):
    """libass cannot be loaded: text subtitles are not drawn."""


class _Image(ctypes.Structure):
    pass


_Image._fields_ = [
    ("w", ctypes.c_int), ("h", ctypes.c_int), ("stride", ctypes.c_int),
    ("bitmap", ctypes.POINTER(ctypes.c_ubyte)),
    ("color", ctypes.c_uint32),
    ("dst_x", ctypes.c_int), ("dst_y", ctypes.c_int),
    ("next", ctypes.POINTER(_Image)),
    ("type", ctypes.c_int),
]


class _TrackHead(ctypes.Structure):
    """The leading, public fields of ASS_Track (ass_types.h; stable across libass 0.1x ABI)."""

    _fields_ = [
        ("n_styles", ctypes.c_int), ("max_styles", ctypes.c_int),
        ("n_events", ctypes.c_int), ("max_events", ctypes.c_int),
        ("styles", ctypes.c_void_p), ("events", ctypes.c_void_p),
        ("style_format", ctypes.c_char_p), ("event_format", ctypes.c_char_p),
        ("track_type", ctypes.c_int),
        ("PlayResX", ctypes.c_int), ("PlayResY", ctypes.c_int),
    ]


_MSG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p)


@lru_cache(maxsize=1)
def _lib():
    names = ["libass.so.9", ctypes.util.find_library("ass"), "libass.dylib", "libass-9.dll", "libass.dll"]
    errors = []
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            errors.append(str(exc))
            continue
        _declare(lib)
        return lib
    raise LibassUnavailable(f"libass is not installed ({INSTALL_HINT})")


def _declare(lib) -> None:
    vp, ip, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    sig = {
        "ass_library_version": (ip, []),
        "ass_library_init": (vp, []),
        "ass_library_done": (None, [vp]),
        "ass_set_message_cb": (None, [vp, _MSG_CB, vp]),
        "ass_set_extract_fonts": (None, [vp, ip]),
        "ass_add_font": (None, [vp, cp, cp, ip]),
        "ass_renderer_init": (vp, [vp]),
        "ass_renderer_done": (None, [vp]),
        "ass_set_frame_size": (None, [vp, ip, ip]),
        "ass_set_storage_size": (None, [vp, ip, ip]),
        "ass_set_shaper": (None, [vp, ip]),
        "ass_set_fonts": (None, [vp, cp, cp, ip, cp, ip]),
        "ass_render_frame": (ctypes.POINTER(_Image), [vp, vp, ctypes.c_longlong, ctypes.POINTER(ip)]),
        "ass_new_track": (vp, [vp]),
        "ass_free_track": (None, [vp]),
        "ass_process_codec_private": (None, [vp, cp, ip]),
        "ass_process_chunk": (None, [vp, cp, ip, ctypes.c_longlong, ctypes.c_longlong]),
        "ass_read_memory": (vp, [vp, cp, ctypes.c_size_t, cp]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args


def available() -> bool:
    try:
        _lib()
        return True
    except LibassUnavailable:
        return False


def version() -> str:
    v = _lib().ass_library_version()
    return f"{v >> 28 & 0xF:x}.{v >> 20 & 0xFF:x}.{v >> 12 & 0xFF:x}"


class Library:
    """An ASS_Library: fonts shared by the tracks and renderers made from it."""

    def __init__(self):
        lib = _lib()
        self._lib = lib
        self.handle = lib.ass_library_init()
        if not self.handle:
            raise LibassUnavailable("libass could not initialise")
        # libass logs every font lookup to stderr by default: keep the terminal quiet.
        self._cb = _MSG_CB(lambda level, fmt, va, data: None)
        lib.ass_set_message_cb(self.handle, self._cb, None)
        lib.ass_set_extract_fonts(self.handle, 1)   # fonts embedded in [Fonts] sections

    def add_font(self, name: str, data: bytes) -> None:
        """A font file attached to the video (Matroska attachment): usable by every track's styles."""
        self._lib.ass_add_font(self.handle, name.encode("utf-8", "replace"), data, len(data))

    def new_track(self) -> "Track":
        return Track(self, self._lib.ass_new_track(self.handle))

    def read_script(self, text: bytes) -> "Track":
        """A whole .ass/.ssa script (UTF-8)."""
        handle = self._lib.ass_read_memory(self.handle, text, len(text), None)
        if not handle:
            raise UpshadeError("not a valid ASS/SSA script")
        return Track(self, handle)

    def close(self) -> None:
        if self.handle:
            self._lib.ass_library_done(self.handle)
            self.handle = None


class Track:
    """An ASS_Track: styles and events."""

    def __init__(self, library: Library, handle):
        if not handle:
            raise UpshadeError("libass could not create a track")
        self.library = library
        self._lib = library._lib
        self.handle = handle

    def process_header(self, header: bytes) -> None:
        """The script header ([Script Info] and styles), as codecs carry it (FFmpeg's subtitle_header)."""
        if header:
            self._lib.ass_process_codec_private(self.handle, header, len(header))

    def add_event(self, line: bytes, start_ms: int, duration_ms: int) -> None:
        """One Matroska-style event line: ``ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text``.

        libass drops a line whose ReadOrder it has seen, so a ReadOrder identifies an event."""
        self._lib.ass_process_chunk(self.handle, line, len(line), int(start_ms), int(duration_ms))

    @property
    def _head(self) -> _TrackHead:
        return _TrackHead.from_address(self.handle)

    @property
    def play_res(self) -> tuple[int, int]:
        h = self._head
        return h.PlayResX, h.PlayResY

    def set_play_res_x(self, x: int) -> None:
        """Widen the script's canvas (mpv does this for converted SRT/WebVTT so text is not stretched)."""
        self._head.PlayResX = int(x)

    @property
    def n_events(self) -> int:
        return self._head.n_events

    def close(self) -> None:
        if self.handle:
            self._lib.ass_free_track(self.handle)
            self.handle = None


class Renderer:
    """An ASS_Renderer drawing at a frame size (the video rectangle, in output pixels)."""

    def __init__(self, library: Library):
        self.library = library
        self._lib = library._lib
        self.handle = self._lib.ass_renderer_init(library.handle)
        if not self.handle:
            raise LibassUnavailable("libass could not create a renderer (no FreeType/fontconfig?)")
        self._lib.ass_set_shaper(self.handle, _SHAPING_COMPLEX)
        # System fonts through fontconfig; "sans-serif" when a style's font is not found.
        self._lib.ass_set_fonts(self.handle, None, b"sans-serif", _FONTPROVIDER_AUTODETECT, None, 1)
        self._size: tuple[int, int] | None = None
        self._storage: tuple[int, int] | None = None

    def set_size(self, frame: tuple[int, int], storage: tuple[int, int]) -> None:
        """``frame``: where the picture is drawn (w, h pixels); ``storage``: the video's own size."""
        frame, storage = (int(frame[0]), int(frame[1])), (int(storage[0]), int(storage[1]))
        if frame != self._size:
            self._lib.ass_set_frame_size(self.handle, *frame)
            self._size = frame
        if storage != self._storage:
            self._lib.ass_set_storage_size(self.handle, *storage)
            self._storage = storage

    def render(self, track: Track, ms: int) -> tuple[list[tuple[int, int, np.ndarray, tuple[int, int, int, int]]], bool]:
        """The images to show at ``ms`` and whether they changed since the last call.

        Each image is ``(x, y, alpha, (r, g, b, a))``: a uint8 coverage bitmap (h, w) placed at
        (x, y) from the frame's top-left, drawn in one colour with opacity ``a`` (0..255).
        """
        change = ctypes.c_int(0)
        img = self._lib.ass_render_frame(self.handle, track.handle, int(ms), ctypes.byref(change))
        out = []
        while img:
            im = img.contents
            if im.w > 0 and im.h > 0:
                # The last row may be shorter than the stride: copy exactly what exists.
                n = im.stride * (im.h - 1) + im.w
                buf = np.ctypeslib.as_array(im.bitmap, shape=(n,))
                alpha = np.lib.stride_tricks.as_strided(buf, (im.h, im.w), (im.stride, 1)).copy()
                c = im.color
                rgba = (c >> 24 & 0xFF, c >> 16 & 0xFF, c >> 8 & 0xFF, 255 - (c & 0xFF))
                out.append((im.dst_x, im.dst_y, alpha, rgba))
            img = im.next
        return out, change.value != 0

    def close(self) -> None:
        if self.handle:
            self._lib.ass_renderer_done(self.handle)
            self.handle = None


def composite(images, size: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """Blend libass images into one premultiplied RGBA uint8 bitmap over their bounding box (clipped to
    ``size`` = (w, h)): ``(x, y, rgba)`` with (x, y) its top-left corner, or None when nothing shows."""
    w, h = size
    boxes = [(max(0, x), max(0, y), min(w, x + a.shape[1]), min(h, y + a.shape[0])) for x, y, a, _ in images]
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    acc = np.zeros((y1 - y0, x1 - x0, 4), np.float32)
    for x, y, alpha, (r, g, b, a) in images:   # back to front: shadows, outlines, then the glyphs
        cx0, cy0 = max(0, x), max(0, y)
        cx1, cy1 = min(w, x + alpha.shape[1]), min(h, y + alpha.shape[0])
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        cov = alpha[cy0 - y: cy1 - y, cx0 - x: cx1 - x].astype(np.float32) * (a / (255.0 * 255.0))
        dst = acc[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0]
        keep = 1.0 - cov
        dst *= keep[..., None]
        dst += cov[..., None] * np.array([r / 255.0, g / 255.0, b / 255.0, 1.0], np.float32)
    return x0, y0, np.clip(acc * 255.0 + 0.5, 0, 255).astype(np.uint8)
