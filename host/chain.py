"""What runs on a source: the shader chain (a shipped model, then ``--shader`` files), its
``--param`` values and the output size; and running a chain on an image array.

The one home of these for every command (image, upscale, play, bench, demo):
``add_model_arguments`` / ``add_render_arguments`` declare the options,
``shader_chain`` checks ``--model`` and parses the ``--shader`` files before any
GL or media work, ``ShaderChain`` loads the model's export for a GL context
(``paths.model_shader``: fragment or compute by renderer) and names what ran in
one line, ``parse_size`` is the one ``WxH`` parser (1..``MAX_SIDE`` per side).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from .argtypes import positive_float
from .automodel import PLAYER_STAGES, REFUSED as AUTO_REFUSED, is_auto, model_files
from .errors import UpshadeError
from .frames import MAX_SIDE
from .hookparse import load_shader, resolve_params, validate_chain
from .imageio import image_to_frame
from .paths import (DEFAULT_SIZE, MODEL_VARIANTS, choose_variant, default_model, model_shader, model_stem, resolve_model,
                    shipped_shader, split_model, stages_for)
from .pipeline import Renderer

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
MAX_ENTRIES = 9   # the player's keys 1-9


# --------------------------------------------------------------------------- options


def add_model_arguments(parser, shader_help: str = "mpv user shader to apply (repeatable, applied in order)",
                        auto: bool = False) -> None:
    """--shader, --model and --no-model (image, upscale, play, demo); ``auto``: --model auto is the default (play)."""
    parser.add_argument("--shader", action="append", default=[], metavar="FILE", help=shader_help)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="auto|S|M|L[-clean|-real]" if auto else "S|M|L[-clean|-real]",
                       help="a shipped upshade model, run before any --shader; a bare size lets the host pick its "
                            "variant per source (clean: images, lossless and high-bit-rate video; real: compressed "
                            "video), -clean/-real pins one " + (
                                "(default without --shader: auto, the largest model that holds the frame rate, "
                                "chosen and re-chosen while playing)" if auto else
                                f"(default without --shader: {DEFAULT_SIZE})"))
    which.add_argument("--no-model", action="store_true",
                       help="no network: the plain bicubic scaler (plus any --shader)")


def add_param_arguments(parser) -> None:
    """--param and --fbo-format: how the chain runs (image, upscale, play)."""
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a shader //!PARAM (repeatable)")
    parser.add_argument("--fbo-format", choices=("auto", "rgba16f", "rgba32f"), default="auto",
                        help="format of intermediate textures (default: auto, see `upshade info`)")


def add_render_arguments(parser) -> None:
    """The chain and the output size: the options of the commands that render to a file (image, upscale)."""
    add_model_arguments(parser)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=positive_float, metavar="F", help="output size as a factor of the input (default 2)")
    size.add_argument("--size", metavar="WxH", help="exact output size, e.g. 1920x1080")
    add_param_arguments(parser)


def parse_params(items) -> dict[str, str]:
    """``--param NAME=VALUE`` items -> {name: value text} (checked against the shaders by the renderer)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UpshadeError(f"--param {item!r}: expected NAME=VALUE")
        out[name] = value.strip()
    return out


def parse_size(text: str, option: str = "--size") -> tuple[int, int]:
    """``WxH`` -> (w, h), each side 1..MAX_SIDE: the one size parser of every command."""
    m = _SIZE.match(text)
    if not m:
        raise UpshadeError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    w, h = int(m.group(1)), int(m.group(2))
    _check_side(w, h)
    return w, h


def _check_side(w: int, h: int) -> None:
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise UpshadeError(f"output size {w}x{h} is out of range (1..{MAX_SIDE} per side)")


def output_size(w: int, h: int, scale: float | None, size: str | None) -> tuple[int, int]:
    """The output size of a ``w`` x ``h`` source from ``--size WxH`` or ``--scale F`` (default x2)."""
    if size is not None:
        return parse_size(size)
    s = 2.0 if scale is None else scale
    if not (s > 0) or not math.isfinite(s):
        raise UpshadeError(f"--scale {scale}: must be a positive number")
    fw, fh = w * s, h * s
    if not (fw <= MAX_SIDE and fh <= MAX_SIDE):  # also catches inf (a scale of 1e308)
        raise UpshadeError(f"--scale {s:g}: {w}x{h} scaled by it would exceed {MAX_SIDE} pixels per side")
    ow, oh = max(1, round(fw)), max(1, round(fh))
    _check_side(ow, oh)
    return ow, oh


# --------------------------------------------------------------------------- the chain


class ShaderChain:
    """What runs on a source: an optional shipped model, then the ``--shader`` files.

    Calling it with a GL context gives the list of parsed shader files, the model
    first in the export that suits that renderer (see paths.SHADER_FORMS).
    Without ``--model``, ``--shader`` or ``--no-model`` the model is
    ``paths.default_model(source)``.
    """

    def __init__(self, model: str | None, files, use_default: bool):
        self.model = model or None
        self.files = list(files)
        self.use_default = use_default

    def model_for(self, source=None) -> str | None:
        """The shipped model that runs on ``source``, its variant resolved (``M-real``), or None."""
        if self.model:
            return resolve_model(self.model, source)
        return default_model(source) if self.use_default else None

    def why(self, source=None) -> str | None:
        """Why the model's variant was chosen, when the host chose it (a bare size or the default)."""
        if not self.model_for(source) or (self.model and split_model(self.model)[1]):
            return None
        return choose_variant(source)[1]

    def check(self, params=None) -> None:
        """What a Renderer checks of the chain before its first frame (names across the files, BIND
        targets, ``--param``), done now with the model in each variant a source may get: a library run
        stops at a mistake in the options once, rather than failing every file on it."""
        if not self.files and not params:
            return   # the shipped model alone, no overrides: nothing that can be wrong
        model = self.model or (DEFAULT_SIZE if self.use_default else None)
        heads: list[list] = [[]]
        if model:
            size, variant = split_model(model)
            heads = [[load_shader(shipped_shader(f"{size}-{v}"))] for v in ([variant] if variant else MODEL_VARIANTS)]
        for head in heads:
            validate_chain(head + self.files)
            resolve_params(head + self.files, params or {})

    def __call__(self, ctx, source=None, sizes=None) -> list:
        """``sizes`` = (source size, output size) when known: beyond 2.2x per side the model's x4
        file (the network twice, paths.stages_for); without it, the x2 file."""
        model = self.model_for(source)
        stages = stages_for(*sizes) if sizes else 1
        return ([load_shader(model_shader(model, ctx, stages))] if model else []) + self.files

    def entries(self, source=None) -> list[tuple[str, object]]:
        """Switchable chains (the player's keys 1-9): the model first (its files chosen once the
        window's context exists, so a callable: its x4 file, the network twice only beyond 2.2x per
        side, automodel.model_files), then each ``--shader`` file on its own; the plain scaler when
        there is neither."""
        model = self.model_for(source)
        entries: list[tuple[str, object]] = []
        if model:
            shipped_shader(model, stages=PLAYER_STAGES)  # unknown size or missing file: fail before a window opens
            entries.append((f"{model_stem(model)}.glsl", lambda ctx: model_files(model, ctx)))
        entries += [(Path(sf.path).name, [sf]) for sf in self.files]
        if not entries:
            entries.append(("bicubic", []))
        if len(entries) > MAX_ENTRIES:
            raise UpshadeError(f"{len(entries)} shaders given: keys 1-{MAX_ENTRIES} switch among at most "
                               f"{MAX_ENTRIES}")
        return entries

    def describe(self, files, in_size, out_size, source=None) -> str:
        """One line naming what ran: ``upshade: model M-real (for h264 at 0.05 bits/pixel; upshade_M-real_compute.glsl,
        compute passes), 640x360 -> 1280x720``."""
        return f"upshade: {describe_chain(files, self.model_for(source), self.why(source))}, " \
               f"{in_size[0]}x{in_size[1]} -> {out_size[0]}x{out_size[1]}"


def shader_form_of(sf) -> str:
    """``fragment``, ``compute`` or ``fragment+compute``: the kind of passes a shader file has."""
    kinds = {"compute" if ps.compute else "fragment" for ps in sf.passes}
    return "+".join(k for k in ("fragment", "compute") if k in kinds) or "no"


def describe_chain(files, model: str | None, why: str | None = None) -> str:
    """``model M-real (for h264 at 0.05 bits/pixel; upshade_M-real.glsl, fragment passes) + shader x.glsl
    (compute passes)``, or the plain scaler; ``why`` says why the host chose the model's variant."""
    parts = []
    rest = list(files)
    if model and rest:
        sf = rest.pop(0)
        chosen = f"for {why}; " if why else ""
        parts.append(f"model {model} ({chosen}{Path(sf.path).name}, {shader_form_of(sf)} passes)")
    parts += [f"shader {Path(sf.path).name} ({shader_form_of(sf)} passes)" for sf in rest]
    return " + ".join(parts) if parts else "no model (plain bicubic scaler)"


def shader_chain(model: str | None, shaders, no_model: bool = False) -> ShaderChain:
    """Check ``--model`` and parse the ``--shader`` files now, before any GL or media work."""
    if is_auto(model):
        raise UpshadeError(AUTO_REFUSED)   # --model auto is the player's, which handles it before asking here
    use_default = not model and not shaders and not no_model
    if model or use_default:
        size, variant = split_model(model or DEFAULT_SIZE)  # unknown model: one clear error, early
        for v in [variant] if variant else MODEL_VARIANTS:  # every variant a source may get must be there
            shipped_shader(f"{size}-{v}")
    return ShaderChain(model, [load_shader(p) for p in shaders], use_default)


# --------------------------------------------------------------------------- running it on an image


def upscale_array(ctx, arr: np.ndarray, files, size: tuple[int, int], params=None, fbo_format="auto") -> np.ndarray:
    """Run an image array through the shader chain; same dtype and channel layout (grey stays grey) as the input."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    with Renderer(ctx, files, params=params, fbo_format=fbo_format) as renderer:
        out = renderer.read_rgb(renderer.render(image_to_frame(arr), size), arr.dtype)
    if arr.shape[2] in (1, 2):
        rgb = out[..., :3].astype(np.int64)
        # A grey input stays grey unless a shader actually put colour in.
        if np.abs(rgb[..., 0] - rgb[..., 1]).max(initial=0) <= 1 and np.abs(rgb[..., 1] - rgb[..., 2]).max(initial=0) <= 1:
            grey = out[..., 1:2]
            out = np.concatenate([grey, out[..., 3:4]], axis=-1) if arr.shape[2] == 2 else grey
    return out
