"""How a low-resolution image is made from a high-resolution one.

Two users share these functions:

* the real-world evaluation protocol (``upshade eval --degrade SPEC``,
  ``../shared/data/README.md``), fixed and deterministic::

      clean          the standard protocol: MATLAB-style antialiased bicubic, uint8
      x264:CRF       the clean LR -> swscale yuv420p (BT.709, limited range) -> one
                     frame of libx264 at that CRF, preset medium -> decoded -> RGB
      kernel:NAME    HR -> exactly half size by swscale with that scaler
                     (NAME: bilinear, area, lanczos, bicubic), RGB

* the training banks (``tools/bank.py``), which draw random kernels, phases and
  codecs from the primitives below: :func:`kernel_down` (any antialiased kernel
  with a sub-pixel phase), :func:`swscale_down` (FFmpeg's scalers, as players and
  encoders use them) and :func:`codec_roundtrip` (a short clip through a real
  H.264/HEVC encoder and decoder, P/B frames included).

Images are ``(H, W, 3)`` uint8 RGB arrays.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Interpolation

from ..host.api import UpshadeError
from .metrics import imresize_down

# swscale's scaler flags by the protocol's names (plus two more the training banks use).
SWS_KERNELS = ("bilinear", "area", "lanczos", "bicubic", "gauss", "spline")
PROTOCOL_KERNELS = ("bilinear", "area", "lanczos", "bicubic")
# libav encoder and decoder per codec family.
CODECS = {"h264": ("libx264", "h264"), "hevc": ("libx265", "hevc")}
SPEC_HELP = "clean, x264:CRF (CRF 0-51), kernel:NAME (NAME: " + ", ".join(PROTOCOL_KERNELS) + ")"


# ---------------------------------------------------------------- protocol specs


@dataclass(frozen=True)
class Spec:
    """One degradation of the real-world protocol."""

    kind: str  # "clean" | "x264" | "kernel"
    arg: str = ""  # CRF for x264, scaler name for kernel

    @property
    def name(self) -> str:
        return self.kind if not self.arg else f"{self.kind}:{self.arg}"

    def __str__(self) -> str:
        return self.name


def parse_spec(text: str) -> Spec:
    """``clean`` | ``x264:CRF`` | ``kernel:NAME``; anything else is one clear error."""
    kind, sep, arg = str(text).strip().lower().partition(":")
    if kind == "clean" and not sep:
        return Spec("clean")
    if kind == "x264" and arg:
        try:
            crf = int(arg)
        except ValueError:
            crf = -1
        if 0 <= crf <= 51 and str(crf) == arg:
            return Spec("x264", arg)
        raise UpshadeError(f"--degrade {text!r}: CRF must be an integer 0-51")
    if kind == "kernel" and arg:
        if arg in PROTOCOL_KERNELS:
            return Spec("kernel", arg)
        raise UpshadeError(f"--degrade {text!r}: unknown kernel {arg!r} (choose {', '.join(PROTOCOL_KERNELS)})")
    raise UpshadeError(f"--degrade {text!r}: expected {SPEC_HELP}")


def parse_specs(items) -> list[Spec]:
    """Parse several specs, keeping their order and dropping repeats."""
    out: list[Spec] = []
    for item in items:
        spec = parse_spec(item)
        if spec not in out:
            out.append(spec)
    return out


def degrade(hr: np.ndarray, spec: Spec) -> np.ndarray:
    """The protocol's LR of an HR image whose sides are multiples of 4 (even LR sides)."""
    h, w = hr.shape[:2]
    if h % 4 or w % 4:
        raise UpshadeError(f"degrade: HR {w}x{h} is not a multiple of 4 (crop it first)")
    if spec.kind == "clean":
        return imresize_down(hr, 2)
    if spec.kind == "kernel":
        return swscale_down(hr, spec.arg)
    if spec.kind == "x264":
        return codec_roundtrip([imresize_down(hr, 2)], "h264", int(spec.arg), preset="medium")[0]
    raise UpshadeError(f"unknown degradation {spec.name!r}")


# ---------------------------------------------------------------- swscale


def _sws_flag(name: str):
    if name not in SWS_KERNELS:
        raise UpshadeError(f"unknown swscale kernel {name!r} (choose {', '.join(SWS_KERNELS)})")
    return getattr(Interpolation, name.upper())


def swscale_down(rgb: np.ndarray, kernel: str) -> np.ndarray:
    """RGB -> exactly half width and height by FFmpeg's swscale with ``kernel``."""
    h, w = rgb.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    out = frame.reformat(width=w // 2, height=h // 2, format="rgb24", interpolation=_sws_flag(kernel))
    return out.to_ndarray()


# ---------------------------------------------------------------- kernels with phase


def _keys_cubic(a: float):
    def f(x):
        ax = np.abs(x)
        return np.where(ax <= 1, ((a + 2) * ax - (a + 3)) * ax * ax + 1,
                        np.where(ax < 2, ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a, 0.0))
    return f, 2.0


def _bc_spline(b: float, c: float):
    """Mitchell-Netravali (B, C) cubic family: (1/3, 1/3) Mitchell, (1, 0) B-spline."""
    def f(x):
        ax = np.abs(x)
        near = ((12 - 9 * b - 6 * c) * ax**3 + (-18 + 12 * b + 6 * c) * ax**2 + (6 - 2 * b)) / 6
        far = ((-b - 6 * c) * ax**3 + (6 * b + 30 * c) * ax**2 + (-12 * b - 48 * c) * ax + (8 * b + 24 * c)) / 6
        return np.where(ax < 1, near, np.where(ax < 2, far, 0.0))
    return f, 2.0


def _lanczos(lobes: int):
    def f(x):
        return np.where(np.abs(x) < lobes, np.sinc(x) * np.sinc(x / lobes), 0.0)
    return f, float(lobes)


def _triangle():
    return (lambda x: np.maximum(0.0, 1.0 - np.abs(x))), 1.0


def _box():
    # Half-open so that abutting boxes share no sample (area averaging).
    return (lambda x: ((x >= -0.5) & (x < 0.5)).astype(np.float64)), 0.5


def _gauss(sigma: float):
    return (lambda x: np.exp(-0.5 * (x / sigma) ** 2)), 3.0 * sigma


def kernel_function(name: str, param: float = 0.0):
    """(f, support) of a named kernel in LR-pixel units before widening.

    ``cubic`` takes Keys' a (MATLAB: -0.5), ``mitchell`` is B = C = 1/3,
    ``bspline`` B = 1, ``lanczos`` takes the lobe count, ``gauss`` sigma in LR pixels.
    """
    if name == "cubic":
        return _keys_cubic(param or -0.5)
    if name == "mitchell":
        return _bc_spline(1 / 3, 1 / 3)
    if name == "bspline":
        return _bc_spline(1.0, 0.0)
    if name == "lanczos":
        return _lanczos(int(param or 3))
    if name == "triangle":
        return _triangle()
    if name == "box":
        return _box()
    if name == "gauss":
        return _gauss(param or 0.5)
    raise UpshadeError(f"unknown kernel {name!r}")


@functools.lru_cache(maxsize=512)
def kernel_matrix(in_len: int, kernel: str, param: float = 0.0, phase: float = 0.0) -> np.ndarray:
    """``(in_len / 2, in_len)`` antialiased x1/2 resampling matrix of a named kernel.

    Pixel k's centre is at k + 0.5, so output pixel i is centred at input
    coordinate ``2 (i + 0.5 + phase)``, between input pixels 2i and 2i + 1 as
    in MATLAB (a phase in LR pixels shifts the grid, as scalers with other
    conventions or cropped sources do); the kernel is widened by 2
    (antialiasing) and taps outside the image are mirrored, as MATLAB does.
    """
    f, support = kernel_function(kernel, param)
    out_len = in_len // 2
    centre = 2.0 * (np.arange(out_len) + 0.5 + phase)
    width = 2.0 * support
    left = np.floor(centre - width).astype(np.int64)
    taps = int(math.ceil(2 * width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = f((idx + 0.5 - centre[:, None]) / 2.0)
    sums = w.sum(axis=1, keepdims=True)
    w = w / np.where(sums == 0, 1.0, sums)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = mirror[np.mod(idx, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), cols.ravel()), w.ravel())
    mat.setflags(write=False)
    return mat


def kernel_down(rgb: np.ndarray, kernel: str, param: float = 0.0, phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Halve an RGB image with a named kernel and a (y, x) sub-pixel phase; uint8 result."""
    h, w = rgb.shape[:2]
    mh = kernel_matrix(h, kernel, float(param), float(phase[0]))
    mw = kernel_matrix(w, kernel, float(param), float(phase[1]))
    x = rgb.astype(np.float64)
    out = np.einsum("oh,hwc->owc", mh, x, optimize=True)
    out = np.einsum("pw,owc->opc", mw, out, optimize=True)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- codecs


def codec_available(codec: str) -> bool:
    return CODECS[codec][0] in av.codecs_available


def codec_roundtrip(frames: list[np.ndarray], codec: str, crf: int, preset: str = "medium",
                    options: dict | None = None, stats: dict | None = None) -> list[np.ndarray]:
    """RGB frames -> yuv420p (BT.709, limited) -> ``codec`` at ``crf`` -> decoded -> RGB.

    Several frames make one clip with the encoder's default GOP (an I frame then
    P/B frames), so inter-frame artefacts appear as in real video; one frame is
    an intra-coded still, as the protocol's ``x264:CRF`` uses. libx264 runs on one
    thread (``options`` may override it) so that the bytes do not depend on the
    machine's core count (libx265 likewise runs one frame thread and one pool).
    ``stats``, when given, receives the encoded size: ``bytes`` and ``bits_per_pixel``.
    """
    if codec not in CODECS:
        raise UpshadeError(f"unknown codec {codec!r} (choose {', '.join(CODECS)})")
    enc_name, dec_name = CODECS[codec]
    if enc_name not in av.codecs_available:
        raise UpshadeError(f"this PyAV build has no {enc_name} encoder: install a PyAV wheel with {enc_name}")
    h, w = frames[0].shape[:2]
    if codec == "hevc" and min(h, w) < 64:
        # libx265 (3.5, as PyAV bundles it) writes past its buffers on such pictures.
        raise UpshadeError(f"libx265: frames of {w}x{h} are too small (64x64 at least)")
    enc = av.CodecContext.create(enc_name, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = Fraction(1, 25)
    enc.framerate = Fraction(25, 1)
    enc.color_range = 1  # MPEG (limited)
    enc.colorspace = 1  # BT.709
    # libx264's output depends on its thread count (Set14 x264:28 bicubic: 26.864 dB
    # with 1 thread, 26.855 with 2, 26.849 with 4) and its default is "auto", i.e.
    # the machine's cores: one thread keeps every result the same on every machine.
    opts = {"crf": str(crf), "preset": preset}
    if codec == "h264":
        opts["threads"] = "1"
    if codec == "hevc":
        opts["x265-params"] = "log-level=error:pools=1:frame-threads=1"
    opts.update(options or {})
    enc.options = opts
    packets = []
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        yuv = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        yuv.pts = i
        packets += enc.encode(yuv)
    packets += enc.encode(None)
    if stats is not None:
        stats["bytes"] = sum(p.size for p in packets)
        stats["bits_per_pixel"] = 8.0 * stats["bytes"] / (len(frames) * w * h)
    dec = av.CodecContext.create(dec_name, "r")
    if enc.extradata:
        dec.extradata = enc.extradata
    out = []
    for pkt in packets:
        out += dec.decode(pkt)
    out += dec.decode(None)
    if len(out) != len(frames):
        raise UpshadeError(f"{enc_name}: {len(frames)} frames in, {len(out)} decoded")
    out.sort(key=lambda f: f.pts if f.pts is not None else 0)
    return [f.reformat(format="rgb24", src_colorspace="ITU709", src_color_range="MPEG").to_ndarray() for f in out]
