"""Still images in and out, through FFmpeg (PyAV): no Pillow, no GL.

Images are numpy arrays of shape (H, W, C), C = 1 (grey), 2 (grey + alpha),
3 (RGB) or 4 (RGBA), dtype uint8 or uint16 (sources with more than 8 bits per
sample keep 16 bits). ``image_to_frame`` wraps one as a ``Frame`` for the GPU
uploader.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .errors import MediaError
from .frames import Frame, FrameFormat, PlaneFormat

# FFmpeg pixel formats that already are one of our layouts: name -> (channels, sample dtype).
_DIRECT = {
    "gray": (1, np.dtype("u1")), "ya8": (2, np.dtype("u1")),
    "rgb24": (3, np.dtype("u1")), "rgba": (4, np.dtype("u1")),
    "gray16le": (1, np.dtype("<u2")), "ya16le": (2, np.dtype("<u2")),
    "rgb48le": (3, np.dtype("<u2")), "rgba64le": (4, np.dtype("<u2")),
    "gray16be": (1, np.dtype(">u2")), "ya16be": (2, np.dtype(">u2")),
    "rgb48be": (3, np.dtype(">u2")), "rgba64be": (4, np.dtype(">u2")),
}
# What to convert anything else to: (colour, alpha, 16-bit) -> pixel format.
_TARGET = {
    (False, False, False): "gray", (False, True, False): "ya8",
    (True, False, False): "rgb24", (True, True, False): "rgba",
    (False, False, True): "gray16le", (False, True, True): "ya16le",
    (True, False, True): "rgb48le", (True, True, True): "rgba64le",
}
# PNG encoder input formats by (channels, 16-bit).
_PNG_FORMATS = {
    (1, False): "gray", (2, False): "ya8", (3, False): "rgb24", (4, False): "rgba",
    (1, True): "gray16be", (2, True): "ya16be", (3, True): "rgb48be", (4, True): "rgba64be",
}


def _is_image_container(name: str) -> bool:
    # FFmpeg's still-image demuxers are "<codec>_pipe" (png_pipe, jpeg_pipe, ...)
    # and "image2" (by file extension); GIF and APNG are images with frames.
    return name == "image2" or name.endswith("_pipe") or name in ("gif", "apng")


def read_image(path) -> np.ndarray:
    """Decode the first picture of an image file to an (H, W, C) uint8/uint16 array."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except OSError as exc:
        raise MediaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if p.is_dir():
        raise MediaError(f"{path}: is a directory, not an image")
    if st.st_size == 0:
        raise MediaError(f"{path}: empty file, not an image")
    if not os.access(p, os.R_OK):
        raise MediaError(f"{path}: cannot read: permission denied")
    try:
        with av.open(str(p), "r") as container:
            kind = container.format.name
            if not _is_image_container(kind):
                raise MediaError(f"{path}: not an image (FFmpeg reads it as '{kind}')")
            if not container.streams.video:
                raise MediaError(f"{path}: not an image (no picture in it)")
            frame = next(container.decode(container.streams.video[0]), None)
            if frame is None:
                raise MediaError(f"{path}: no picture could be decoded (truncated or corrupt file)")
            return _frame_to_array(frame)
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: not a readable image ({_ffmpeg_reason(exc)})") from None


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    reason = exc.strerror or str(exc)
    return reason[0].lower() + reason[1:] if reason else "FFmpeg error"


def _frame_to_array(frame: av.VideoFrame) -> np.ndarray:
    name = frame.format.name
    if name not in _DIRECT:
        fmt = frame.format
        if fmt.has_palette:
            frame = frame.reformat(format="rgba")
            rgba = _plane_array(frame, 4, np.dtype("u1"))
            # Palette PNGs carry alpha only if tRNS gives some entry transparency.
            return rgba if (rgba[..., 3] != 255).any() else np.ascontiguousarray(rgba[..., :3])
        comps = fmt.components
        alpha = any(c.is_alpha for c in comps)
        colour = fmt.is_rgb or sum(1 for c in comps if not c.is_alpha) >= 3
        deep = max(c.bits for c in comps) > 8
        name = _TARGET[(colour, alpha, deep)]
        frame = frame.reformat(format=name)
    channels, dtype = _DIRECT[name]
    return _plane_array(frame, channels, dtype)


def _plane_array(frame: av.VideoFrame, channels: int, dtype: np.dtype) -> np.ndarray:
    """Copy plane 0 (packed samples, padded rows) out as a contiguous native-endian (H, W, C) array."""
    plane = frame.planes[0]
    h, w = frame.height, frame.width
    rows = np.frombuffer(plane, dtype=dtype).reshape(h, plane.line_size // dtype.itemsize)
    out = np.empty((h, w, channels), dtype=dtype.newbyteorder("="))
    out.reshape(h, w * channels)[...] = rows[:, : w * channels]
    return out


def _check_array(arr, where: str = "image array") -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise MediaError(f"{where}: shape {arr.shape} is not (H, W) or (H, W, C) with C in 1..4")
    if arr.dtype.kind != "u" or arr.dtype.itemsize not in (1, 2):
        raise MediaError(f"{where}: dtype {arr.dtype} is not uint8 or uint16")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise MediaError(f"{where}: shape {arr.shape} has no pixels")
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def encode_png(arr, where: str = "image array") -> bytes:
    """PNG file bytes of an (H, W[, C]) uint8/uint16 array (16-bit stays 16-bit)."""
    arr = _check_array(arr, where)
    h, w, c = arr.shape
    deep = arr.dtype == np.uint16
    fmt = _PNG_FORMATS[(c, deep)]
    frame = av.VideoFrame(w, h, fmt)
    plane = frame.planes[0]
    dst = np.frombuffer(plane, dtype=np.uint8).reshape(h, plane.line_size)
    src = arr.astype(">u2", copy=False) if deep else arr
    dst[:, : w * c * src.dtype.itemsize] = src.reshape(h, w * c).view(np.uint8)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = w, h, fmt
    codec.time_base = Fraction(1, 1)
    codec.options = {"pred": "paeth"}  # far smaller files than the default (no prediction)
    packets = codec.encode(frame) + codec.encode(None)
    return b"".join(bytes(pkt) for pkt in packets)


def write_image(path, arr) -> None:
    """Write ``arr`` as a PNG to exactly ``path`` (callers wrap this in ``atomic_output``)."""
    data = encode_png(arr, f"{path}: cannot write image array")
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise MediaError(f"{path}: cannot write: {exc.strerror or exc}") from None


def image_to_frame(arr) -> Frame:
    """Wrap an image array as a full-range ``Frame`` (RGB kinds converted to BT.601 YCbCr on the GPU).

    RGB/RGBA become one packed plane (role "RGB"/"RGBA") viewed without a copy;
    grey becomes a "Y" plane, and grey + alpha is split into "Y" and "A" planes
    (the uploader has no two-component luma role).
    """
    arr = _check_array(arr)
    h, w, c = arr.shape
    bps = arr.dtype.itemsize
    bit_depth = 8 * bps
    if c == 2:
        planes = [np.ascontiguousarray(arr[:, :, 0]), np.ascontiguousarray(arr[:, :, 1])]
        fmts = (PlaneFormat("Y", w, h, 1, bps), PlaneFormat("A", w, h, 1, bps))
    else:
        # A view for the usual C-contiguous image; only a strided input is copied.
        planes = [np.ascontiguousarray(arr).reshape(h, w * c)]
        fmts = (PlaneFormat({1: "Y", 3: "RGB", 4: "RGBA"}[c], w, h, c, bps),)
    kind = "rgb" if c >= 3 else "gray"
    fmt = FrameFormat(kind=kind, planes=fmts, bit_depth=bit_depth, matrix="bt601", range="full",
                      has_alpha=c in (2, 4))
    return Frame(format=fmt, planes=planes, pts=0.0, index=0)
