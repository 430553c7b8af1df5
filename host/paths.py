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


def shipped_shader(size: str, form: str = "fragment") -> Path:
    """Path of the exported hook shader for a shipped model size (S, M or L) in ``form``."""
    key = size.upper()
    if key not in MODEL_SIZES:
        raise UpshadeError(f"unknown model {size!r}: choose one of {', '.join(MODEL_SIZES)}")
    if form not in SHADER_FORMS:
        raise UpshadeError(f"unknown shader form {form!r}: choose one of {', '.join(SHADER_FORMS)}")
    path = SHADERS_DIR / (f"upshade_{key}.glsl" if form == "fragment" else f"upshade_{key}_{form}.glsl")
    if not path.is_file():
        raise UpshadeError(f"{path}: shipped shader for model {key} is missing (re-export it with `upshade export`)")
    return path


def model_shader(size: str, ctx) -> Path:
    """The shipped shader of ``size`` in the form that runs fastest on ``ctx``'s renderer."""
    return shipped_shader(size, shader_form(ctx)[0])


def default_model(source=None) -> str:
    """The shipped model that runs when a command is given neither ``--model`` nor ``--shader``.

    The one place that decides it (image, upscale, play, bench and demo all ask here).
    ``source`` describes what is about to be upscaled, when the caller knows it: a
    ``video.VideoInfo`` for a video (codec, size, frame rate, bit depth, tags), or for
    an image a mapping such as ``{"kind": "image", "width": w, "height": h}``. It is
    the hook for choosing per-source variants later (e.g. a model trained for clean
    sources and one for re-encoded video); today every source gets M, the paper's
    7 x 4 network, which plays in real time on a CPU rasteriser at 640x360.
    """
    del source  # not needed yet: one model for every source
    return "M"


def sample(kind: str = "video") -> Path:
    """The bundled sample video or image; a clear error if the installation lacks it."""
    path = {"video": SAMPLE_VIDEO, "image": SAMPLE_IMAGE}[kind]
    if not path.is_file():
        raise UpshadeError(f"{path}: bundled sample {kind} is missing (reinstall upshade, or regenerate it with "
                           f"`python -m upshade.tools.make_samples`)")
    return path
