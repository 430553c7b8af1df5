"""The evaluation protocol of the SR literature (x2), in numpy.

Shared by training-time validation and ``upshade eval`` so that the number a
run prints while training is the number the evaluation reports:

1. HR -> RGB uint8 (greyscale replicated) -> :func:`crop_to_multiple` of the scale.
2. LR = :func:`imresize` by 1/scale with MATLAB semantics (cubic a = -0.5,
   antialiased when shrinking), rounded to uint8.
3. SR = the model's x2 output rounded to uint8.
4. :func:`psnr_y` / :func:`ssim_y` on BT.601 Y in 16..235 (:func:`rgb_to_y`),
   ``scale`` pixels shaved from every border.

Images are numpy arrays ``(H, W, 3)`` (RGB) or ``(H, W)``; uint8 or float in 0..255.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "as_rgb",
    "crop_to_multiple",
    "imresize",
    "imresize_down",
    "imresize_up",
    "rgb_to_y",
    "rgb_to_luma_full",
    "psnr_y",
    "ssim_y",
    "psnr",
    "ssim",
]


# ---------------------------------------------------------------- resampling


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic with a = -0.5 (MATLAB's imresize 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 matrix of MATLAB imresize's 1-D bicubic pass.

    Mirrors MATLAB's ``contributions()``: output pixel x (1-based) samples input
    coordinate ``u = x / s + 0.5 (1 - 1/s)``; when shrinking (s < 1) the kernel is
    widened by 1/s (antialiasing); taps outside the image are reflected
    symmetrically. Folding the reflected taps into a dense matrix turns each pass
    into one matmul, and caching it by size makes per-sample use in the data
    loader cheap (crops all have the same size).
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"cannot resize {in_len} -> {out_len} pixels")
    scale = out_len / in_len
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if antialias else _cubic(dist)
    w /= w.sum(axis=1, keepdims=True)
    # Symmetric reflection of out-of-range taps (MATLAB: aux = [1:n, n:-1:1]).
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    cols = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), cols.ravel()), w.ravel())
    mat.setflags(write=False)
    return mat


@functools.lru_cache(maxsize=256)
def _resize_matrix_f32(in_len: int, out_len: int) -> np.ndarray:
    mat = resize_matrix(in_len, out_len).astype(np.float32)
    mat.setflags(write=False)
    return mat


def imresize(img: np.ndarray, out_hw: tuple[int, int], *, round_uint8: bool = True, dtype=np.float64) -> np.ndarray:
    """MATLAB ``imresize(img, out_hw, 'bicubic')`` of an image or a batch of images.

    ``img`` is ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``. Rows are resized
    first, then columns, in floating point; the result is rounded and clipped to
    uint8 when ``round_uint8`` (what the protocol's LR images are), else returned
    as float. ``dtype=np.float32`` is the fast path used by the training loader
    (its rounding agrees with float64 except on exact .5 ties, which the tests
    bound).
    """
    img = np.asarray(img)
    oh, ow = int(out_hw[0]), int(out_hw[1])
    if img.ndim == 2:
        h, w = img.shape
        x = img.astype(dtype)
        mh = resize_matrix(h, oh) if dtype == np.float64 else _resize_matrix_f32(h, oh)
        mw = resize_matrix(w, ow) if dtype == np.float64 else _resize_matrix_f32(w, ow)
        out = mh @ x @ mw.T
    elif img.ndim in (3, 4):
        h, w = img.shape[-3], img.shape[-2]
        x = img.astype(dtype)
        mh = resize_matrix(h, oh) if dtype == np.float64 else _resize_matrix_f32(h, oh)
        mw = resize_matrix(w, ow) if dtype == np.float64 else _resize_matrix_f32(w, ow)
        # (..., H, W, C): contract H with mh, then W with mw.
        out = np.einsum("oh,...hwc->...owc", mh, x, optimize=True)
        out = np.einsum("pw,...owc->...opc", mw, out, optimize=True)
    else:
        raise ValueError(f"imresize: expected a 2-D, 3-D or 4-D array, got shape {img.shape}")
    if round_uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def imresize_down(img: np.ndarray, scale: int = 2, *, dtype=np.float64) -> np.ndarray:
    """The protocol's LR: MATLAB bicubic downscale by 1/scale, rounded to uint8.

    The image must already be a multiple of ``scale`` (see :func:`crop_to_multiple`).
    """
    h, w = np.asarray(img).shape[-3:-1] if np.asarray(img).ndim >= 3 else np.asarray(img).shape
    if h % scale or w % scale:
        raise ValueError(f"imresize_down: {w}x{h} is not a multiple of {scale}")
    return imresize(img, (h // scale, w // scale), round_uint8=True, dtype=dtype)


def imresize_up(img: np.ndarray, scale: int = 2, *, round_uint8: bool = True) -> np.ndarray:
    """MATLAB bicubic upscale by ``scale`` (the 'bicubic' baseline of the literature)."""
    arr = np.asarray(img)
    h, w = arr.shape[-3:-1] if arr.ndim >= 3 else arr.shape
    return imresize(arr, (h * scale, w * scale), round_uint8=round_uint8)


def crop_to_multiple(img: np.ndarray, scale: int) -> np.ndarray:
    """Drop the last rows/columns so that height and width are multiples of ``scale``."""
    h, w = img.shape[0], img.shape[1]
    return img[: h - h % scale, : w - w % scale]


# ---------------------------------------------------------------- colour


def as_rgb(img: np.ndarray) -> np.ndarray:
    """Greyscale ``(H, W)`` / ``(H, W, 1)`` -> ``(H, W, 3)``; RGBA drops alpha."""
    img = np.asarray(img)
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 4:
        return img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    raise ValueError(f"not an image array: shape {img.shape}")


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 'studio' luma in 16..235 (float64): the scoring Y of the protocol."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def rgb_to_luma_full(rgb: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Full-range BT.601 luma in 0..1: what the GL host hands to a LUMA hook for an RGB image.

    Note ``rgb_to_y(rgb) == 16 + 219 * rgb_to_luma_full(rgb)`` (65.481 = 219 * 0.299, ...),
    so a network trained on full-range luma is scored on the same signal.
    """
    rgb = np.asarray(rgb, dtype=dtype)
    return (dtype(0.299) * rgb[..., 0] + dtype(0.587) * rgb[..., 1] + dtype(0.114) * rgb[..., 2]) / dtype(255.0)


def _score_y(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return rgb_to_y(img[..., :3])
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"expected an (H, W, 3) RGB image or an (H, W) Y plane, got shape {img.shape}")
    return img.astype(np.float64)


def _shaved_pair(sr, hr, shave: int):
    ys, yh = _score_y(sr), _score_y(hr)
    if ys.shape != yh.shape:
        raise ValueError(f"SR {ys.shape[1]}x{ys.shape[0]} and HR {yh.shape[1]}x{yh.shape[0]} differ in size")
    if shave:
        if ys.shape[0] <= 2 * shave or ys.shape[1] <= 2 * shave:
            raise ValueError(f"image {ys.shape[1]}x{ys.shape[0]} is too small to shave {shave} pixels")
        ys, yh = ys[shave:-shave, shave:-shave], yh[shave:-shave, shave:-shave]
    return ys, yh


# ---------------------------------------------------------------- scores


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_y(sr: np.ndarray, hr: np.ndarray, shave: int = 2) -> float:
    """Protocol PSNR (peak 255) on BT.601 Y (16..235), ``shave`` pixels off every border.

    ``sr``/``hr`` are RGB ``(H, W, 3)`` images (converted with :func:`rgb_to_y`) or
    ``(H, W)`` arrays that already hold the scoring Y.
    """
    ys, yh = _shaved_pair(sr, hr, shave)
    return psnr(ys, yh)


@functools.lru_cache(maxsize=4)
def _gauss_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with a symmetric 1-D kernel (MATLAB filter2(..., 'valid'))."""
    k = len(g)
    h, w = img.shape
    rows = np.zeros((h - k + 1, w), dtype=np.float64)
    for i in range(k):
        rows += g[i] * img[i : i + h - k + 1, :]
    out = np.zeros((h - k + 1, w - k + 1), dtype=np.float64)
    for j in range(k):
        out += g[j] * rows[:, j : j + w - k + 1]
    return out


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Wang et al. SSIM: 11x11 Gaussian (sigma 1.5), K1 0.01, K2 0.03, 'valid' window positions."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if min(a.shape) < 11:
        raise ValueError(f"image {a.shape[1]}x{a.shape[0]} is smaller than the 11x11 SSIM window")
    g = _gauss_1d()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    saa = _filter_valid(a * a, g) - mu_a * mu_a
    sbb = _filter_valid(b * b, g) - mu_b * mu_b
    sab = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))


def ssim_y(sr: np.ndarray, hr: np.ndarray, shave: int = 2) -> float:
    """Protocol SSIM on BT.601 Y (16..235), ``shave`` pixels off every border."""
    ys, yh = _shaved_pair(sr, hr, shave)
    return ssim(ys, yh)
