"""Where the shipped shaders, weights and sample media live.

Both in a source checkout (host/../shaders) and in an installed wheel
(site-packages/upshade/host/../shaders) they sit next to this package; the
samples are inside it (host/samples).
"""

from __future__ import annotations

from pathlib import Path

from .errors import UpshadeError
from .gpu import shader_form

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHADERS_DIR = PACKAGE_ROOT / "shaders"
WEIGHTS_DIR = PACKAGE_ROOT / "weights"
# Bundled sample media (CC-BY 3.0 Big Buck Bunny, see samples/README.md): package data of upshade.host.
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
SAMPLE_VIDEO = SAMPLES_DIR / "bbb_640x360.mkv"   # 3.6 s, 640x360 H.264 + stereo AAC + SubRip subtitles
SAMPLE_IMAGE = SAMPLES_DIR / "bbb_640x360.png"   # one frame of it, 8-bit RGB

# The shipped model sizes, usable as `--model S|M|L` in the runtime commands: name -> (blocks, width)
# of the network (tools/model.SIZES makes them ModelConfigs; the one place the names are listed).
# M is the seed paper's 7 blocks x 4 channels; S keeps 3 of its blocks, sized so 640x360 -> 720p
# runs at 30+ fps even on a 2-core CPU rasteriser (llvmpipe); L is 9 blocks x 7 (11,722 weights,
# FSRCNN-sized), chosen over 7 x 8 (11,076) on Set5 after the same training.
MODEL_SIZES: dict[str, tuple[int, int]] = {"S": (3, 4), "M": (7, 4), "L": (9, 7)}
# Each size comes in two variants (same architecture, other training data; tools/bank.py):
#   clean  clean and other-kernel downscales: stills, Blu-ray-grade and lossless video
#          (upshade_M.glsl, upshade_M_compute.glsl, ...; weights/upshade_M.pt)
#   real   mostly H.264/HEVC-compressed clips: web streams, low-bit-rate encodes
#          (upshade_M-real.glsl, ...; weights/upshade_M-real.pt)
# `--model M` lets the host pick the variant per source (choose_variant); `--model M-real` pins one.
MODEL_VARIANTS = ("clean", "real")
DEFAULT_SIZE = "M"
MODEL_NAMES = tuple(MODEL_SIZES) + tuple(f"{s}-{v}" for s in MODEL_SIZES for v in MODEL_VARIANTS)


# The two exports of every shipped model (same weights, same output):
#   upshade_M.glsl          fragment passes, one pixel per invocation: what GPUs run fastest
#                           (2-3.3x faster than the compute form on an NVIDIA H100) and what
#                           every mpv backend accepts; the file to give mpv.
#   upshade_M_compute.glsl  compute passes, 2x2 pixels per invocation sharing their texel
#                           fetches: 28-36% faster on a CPU rasteriser (llvmpipe), where
#                           fetches cost most; on a GPU its register pressure makes it slower.
#   upshade_M_tiled.glsl    fused compute passes (a few layers per pass in registers, blocks of
#                           pixels per invocation, the final conv as a running sum): fewer
#                           passes and texture round trips (tools/export_tiled.py).
SHADER_FORMS = ("fragment", "compute", "tiled")
# Every pass of our exports runs only when the output is more than STAGE_MIN_SCALE times its
# LUMA in both directions (`//!WHEN OUTPUT.w LUMA.w / 1.200 > ...`). The x4 files
# (upshade_M_x4.glsl, upshade_M_x4_compute.glsl; `upshade export --stages 2`) run the network
# a second time on the luma the first doubled when the output is more than LATER_STAGE_MIN_SCALE
# times that, i.e. from 2.2x the source per side (DVD 480p -> 1080p is 2.25x, 720p -> 4K 3x):
# there x4 then the scaler down already beat x2 then bicubic by 0.2-0.25 dB on Set5 + SYNLA-val
# (S and M, measured at 2.05-3x). The scaler then fits the exact size.
STAGE_MIN_SCALE = 1.2
LATER_STAGE_MIN_SCALE = 1.1
SHIPPED_STAGES = (1, 2)   # x2 files, x4 files (fragment and compute forms; no tiled x4)


def split_model(name: str) -> tuple[str, str | None]:
    """``"m-real"`` -> ``("M", "real")``; ``"M"`` -> ``("M", None)`` (the variant is chosen per source)."""
    size, dash, variant = str(name).strip().partition("-")
    size, variant = size.upper(), variant.lower()
    if size not in MODEL_SIZES or (dash and variant not in MODEL_VARIANTS):
        raise UpshadeError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    return size, (variant or None)


def is_model_name(text: str) -> bool:
    """A shipped model's name (S, m-real, ...), as opposed to a checkpoint or shader path."""
    return str(text).strip().upper() in {n.upper() for n in MODEL_NAMES}


def model_stem(name: str) -> str:
    """File stem of a shipped model: ``upshade_M`` (its clean variant, also for a bare size) or ``upshade_M-real``."""
    size, variant = split_model(name)
    return f"upshade_{size}" if variant in (None, "clean") else f"upshade_{size}-{variant}"


def shipped_shader(name: str, form: str = "fragment", stages: int = 1) -> Path:
    """Path of the exported hook shader of a shipped model (``M``, ``M-clean``, ``M-real``, ...) in ``form``;
    ``stages=2``: its x4 file (``upshade_M_x4.glsl``, ``upshade_M_x4_compute.glsl``).

    A bare size names its clean variant's file: resolve it with :func:`resolve_model` first
    where the source is known.
    """
    stem = model_stem(name) + ("" if stages == 1 else f"_x{2 ** stages}")
    if form not in SHADER_FORMS:
        raise UpshadeError(f"unknown shader form {form!r}: choose one of {', '.join(SHADER_FORMS)}")
    if stages not in SHIPPED_STAGES:
        raise UpshadeError(f"no shipped shader runs model {name} {stages} times: stages are one of "
                           f"{', '.join(map(str, SHIPPED_STAGES))}")
    path = SHADERS_DIR / (f"{stem}.glsl" if form == "fragment" else f"{stem}_{form}.glsl")
    if not path.is_file():
        raise UpshadeError(f"{path}: shipped shader for model {name} is missing (re-export it with `upshade export`)")
    return path


def model_shader(size: str, ctx, stages: int = 1) -> Path:
    """The shipped shader of ``size`` in the form that runs fastest on ``ctx``'s renderer
    (``stages``: 2 for its x4 file, see :func:`stages_for`)."""
    return shipped_shader(size, shader_form(ctx)[0], stages)


def stages_for(in_size: tuple[int, int], out_size: tuple[int, int]) -> int:
    """How many x2 stages of our models a ``in_size`` -> ``out_size`` upscale wants: 2 (the x4 file)
    when the x4 file's second stage would run (more than 2 x LATER_STAGE_MIN_SCALE per side), else 1.

    The same test as the files' WHEN gates, on the luma the first stage doubled, so the x4 file is
    picked exactly when it computes something the x2 file does not.
    """
    (w, h), (ow, oh) = in_size, out_size
    stages = 1
    while stages < max(SHIPPED_STAGES) and ow / (2 ** stages * w) > LATER_STAGE_MIN_SCALE \
            and oh / (2 ** stages * h) > LATER_STAGE_MIN_SCALE:
        stages += 1
    return stages


def default_model(source=None) -> str:
    """The shipped model that runs when a command is given neither ``--model`` nor ``--shader``.

    The one place that decides it (image, upscale, play, bench and demo all ask here): M,
    the paper's 7 x 4 network (real time on a CPU rasteriser at 640x360), in the variant
    :func:`choose_variant` picks for ``source`` (a ``video.VideoInfo``, or for an image a
    mapping such as ``{"kind": "image", "width": w, "height": h}``, or None).
    """
    return resolve_model(DEFAULT_SIZE, source)


def resolve_model(name: str, source=None) -> str:
    """A pinned name (``M-real``) as it is; a bare size gets the variant chosen for ``source``."""
    size, variant = split_model(name)
    return f"{size}-{variant or choose_variant(source)[0]}"


# Lossless and intra-only mastering codecs: whatever their bit rate, the picture is clean.
CLEAN_CODECS = frozenset({
    "rawvideo", "ffv1", "huffyuv", "ffvhuff", "utvideo", "magicyuv", "png", "qtrle", "prores", "dnxhd",
    "v210", "v410", "r210", "cfhd", "tiff", "bmp", "gif", "apng", "jpeg2000", "vc2",
})
# How many bits H.264 needs for the picture one bit of this codec gives (rough, from published
# encoder comparisons): the bits per pixel of later codecs count for more.
CODEC_EFFICIENCY = {"hevc": 1.6, "vp9": 1.5, "av1": 2.0, "vvc": 2.4, "mpeg2video": 0.6, "mpeg4": 0.8,
                    "mpeg1video": 0.5, "h263": 0.7, "msmpeg4v3": 0.7, "wmv3": 0.8, "vc1": 0.9}
# H.264-equivalent bits per pixel from which a video counts as clean. Measured with
# `upshade eval-video` on Big Buck Bunny (halved by swscale, libx264 CRF 0-33; README, "Which
# model for which video"): the real variant scores higher at every rate, but from about 0.5
# bits per pixel (CRF <= 12) the clean variant flickers less, within 0.17 dB.
CLEAN_BITS_PER_PIXEL = 0.5


def choose_variant(source=None) -> tuple[str, str]:
    """(variant, why) for what is about to be upscaled.

    Images (and no source) get ``clean``. A video gets ``clean`` when its codec is
    lossless or a mastering codec, or when its H.264-equivalent bits per pixel (the
    stream's, times :data:`CODEC_EFFICIENCY`) reach :data:`CLEAN_BITS_PER_PIXEL`;
    otherwise, and when its bit rate is unknown, ``real``.
    """
    if source is None:
        return "clean", "no source to judge"
    if isinstance(source, dict) or not hasattr(source, "codec"):
        return "clean", "an image"
    codec = str(source.codec)
    if codec in CLEAN_CODECS:
        return "clean", f"{codec}, a lossless or mastering codec"
    bpp = getattr(source, "bits_per_pixel", None)
    if not bpp:
        return "real", f"{codec} at an unknown bit rate"
    equiv = bpp * CODEC_EFFICIENCY.get(codec, 1.0)
    where = f"{codec} at {bpp:.3g} bits/pixel" + (f" (~{equiv:.3g} as H.264)" if codec in CODEC_EFFICIENCY else "")
    return ("clean" if equiv >= CLEAN_BITS_PER_PIXEL else "real"), where


def sample(kind: str = "video") -> Path:
    """The bundled sample video or image; a clear error if the installation lacks it."""
    path = {"video": SAMPLE_VIDEO, "image": SAMPLE_IMAGE}[kind]
    if not path.is_file():
        raise UpshadeError(f"{path}: bundled sample {kind} is missing (reinstall upshade, or regenerate it with "
                           f"`python -m upshade.tools.make_samples`)")
    return path
