"""YCbCr <-> RGB as one affine map on *normalised code values*.

The GPU keeps plane samples as ``n = code / (2**bits - 1)`` (what mpv's hook
shaders see in LUMA/CHROMA: no range expansion before MAIN). The conversion to
RGB is then ``rgb = M @ (y, cb, cr) + off``, with the range expansion and the
bit-depth scaling folded into M and off, so the shader does one mat3 multiply.
"""

from __future__ import annotations

import numpy as np

# (Kr, Kb) luma coefficients of each matrix (ITU-R BT.601, BT.709, BT.2020 non-constant luminance).
KR_KB = {
    "bt601": (0.299, 0.114),
    "bt709": (0.2126, 0.0722),
    "bt2020nc": (0.2627, 0.0593),
}


def _ycbcr_matrix(matrix: str) -> np.ndarray:
    """Y'CbCr (Y in 0..1, Cb/Cr in -0.5..0.5) -> R'G'B'."""
    try:
        kr, kb = KR_KB[matrix]
    except KeyError:
        raise ValueError(f"unknown colour matrix {matrix!r}") from None
    kg = 1.0 - kr - kb
    return np.array(
        [
            [1.0, 0.0, 2.0 * (1.0 - kr)],
            [1.0, -2.0 * (1.0 - kb) * kb / kg, -2.0 * (1.0 - kr) * kr / kg],
            [1.0, 2.0 * (1.0 - kb), 0.0],
        ],
        dtype=np.float64,
    )


def _range_scale(range_: str, bit_depth: int) -> tuple[float, float, float, float]:
    """(ay, by, ac, bc): Y' = ay*n + by, C' = ac*n + bc for normalised code values n."""
    peak = float(2**bit_depth - 1)
    k = float(2 ** (bit_depth - 8))
    if range_ == "limited":
        return peak / (219.0 * k), -16.0 / 219.0, peak / (224.0 * k), -128.0 / 224.0
    if range_ == "full":
        return 1.0, 0.0, 1.0, -(2 ** (bit_depth - 1)) / peak
    raise ValueError(f"unknown range {range_!r}")


def ycbcr_to_rgb(matrix: str, range_: str, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(M, off) with rgb = M @ ycbcr_normalised + off."""
    t = _ycbcr_matrix(matrix)
    ay, by, ac, bc = _range_scale(range_, bit_depth)
    m = t @ np.diag([ay, ac, ac])
    off = t @ np.array([by, bc, bc])
    return m, off


def rgb_to_ycbcr(matrix: str, range_: str, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact inverse of :func:`ycbcr_to_rgb`: ycbcr_normalised = M @ rgb + off."""
    m, off = ycbcr_to_rgb(matrix, range_, bit_depth)
    inv = np.linalg.inv(m)
    return inv, -inv @ off


def neutral_chroma(range_: str, bit_depth: int) -> float:
    """The normalised code value of zero chroma (grey)."""
    _, _, ac, bc = _range_scale(range_, bit_depth)
    return -bc / ac


# The colour representation used for RGB inputs: the GPU converts RGB to
# full-range BT.601 YCbCr so that LUMA/CHROMA hooks (the CNN) run on images too,
# and converts back with the exact inverse at MAIN.
RGB_INPUT_REPR = ("bt601", "full", 8)


def is_hd(width: int, height: int) -> bool:
    """HD by the rule players use for untagged video (mpv, FFmpeg): 720 rows or 1280 columns and up."""
    return height >= 720 or width >= 1280


def default_matrix(width: int, height: int) -> str:
    """The matrix of untagged video: BT.709 for HD, BT.601 for SD (as mpv and FFmpeg assume)."""
    return "bt709" if is_hd(width, height) else "bt601"
