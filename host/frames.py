"""CPU-side frame description shared by decoders (video, images) and the GL uploader.

A decoder produces ``Frame`` objects whose planes are numpy views straight
from the decoder's buffers (no colour conversion on the CPU); the runtime
uploads each plane as a texture and converts to YCbCr/RGB on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Colour matrices and ranges understood by the GPU conversion (host/colorspace.py).
MATRICES = ("bt601", "bt709", "bt2020nc")
RANGES = ("limited", "full")
# Chroma sample position for subsampled chroma (mpv/FFmpeg names): "left" is the
# MPEG-2/H.264 default (co-sited horizontally, centred vertically), "center" is
# JPEG/MPEG-1, "topleft" is co-sited in both directions (common for 4:2:2 / BT.2020).
CHROMA_LOCATIONS = ("left", "center", "topleft")
# The largest picture side anything here takes (a video, an output size): the largest texture
# side GL drivers commonly allow.
MAX_SIDE = 16384


@dataclass(frozen=True)
class PlaneFormat:
    """Layout of one plane as it sits in memory."""

    role: str            # "Y", "U", "V", "UV" (interleaved, nv12), "RGB", "RGBA", "A", "G", "B", "R"
    width: int           # valid pixels per row
    height: int          # rows
    components: int      # samples per pixel in this plane (1, 2, 3 or 4)
    bytes_per_sample: int  # 1 (8-bit) or 2 (9..16-bit, little-endian, LSB-aligned)


@dataclass(frozen=True)
class FrameFormat:
    """Everything the GPU needs to turn a stream's planes into YCbCr and RGB. Constant per stream."""

    kind: str                          # "yuv", "rgb" or "gray"
    planes: tuple[PlaneFormat, ...]
    bit_depth: int = 8                 # significant bits per sample (8, 10, 12, 16)
    matrix: str = "bt709"              # for kind "yuv" (and "gray": Y only)
    range: str = "limited"             # "limited" (TV, 16-235) or "full" (PC, 0-255)
    chroma_location: str = "left"
    has_alpha: bool = False
    rotation: int = 0                  # clockwise degrees to apply for display: 0, 90, 180, 270

    @property
    def width(self) -> int:
        return self.planes[0].width

    @property
    def height(self) -> int:
        return self.planes[0].height

    @property
    def chroma_subsampling(self) -> tuple[int, int]:
        """(horizontal, vertical) subsampling factor of the chroma planes (1 or 2)."""
        if self.kind != "yuv" or len(self.planes) < 2:
            return (1, 1)
        c = self.planes[1]
        return (max(1, round(self.width / max(1, c.width))), max(1, round(self.height / max(1, c.height))))


@dataclass
class Frame:
    """One decoded frame: plane arrays plus timing.

    ``planes[i]`` is a 2-D array of shape (rows, row_samples) with dtype uint8
    or uint16 (matching ``bytes_per_sample``); ``row_samples`` may exceed
    ``width * components`` because decoders pad rows (``plane.line_size``):
    the uploader honours the padding and never copies to strip it.
    """

    format: FrameFormat
    planes: list[np.ndarray]
    pts: float | None = None           # presentation time in seconds
    index: int = 0                     # decode order index
    extra: dict = field(default_factory=dict)  # e.g. the av.VideoFrame to keep buffers alive
