"""``upshade image IN -o OUT``: upscale one image through hook shaders on a headless GL context."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import numpy as np

from .errors import UpshadeError
from .fileio import atomic_output, check_output_path

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
MAX_SIZE = 16384


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="IN", help="input image (PNG, JPEG, ...; 8 or 16 bit, grey/RGB/RGBA)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output PNG (same bit depth as the input)")
    add_render_arguments(parser)


def add_model_arguments(parser, shader_help: str = "mpv user shader to apply (repeatable, applied in order)") -> None:
    """--shader, --model and --no-model (image, upscale, play, bench, demo)."""
    from .paths import default_model

    parser.add_argument("--shader", action="append", default=[], metavar="FILE", help=shader_help)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="S|M|L",
                       help=f"a shipped upshade model, run before any --shader (default without --shader: "
                            f"{default_model()})")
    which.add_argument("--no-model", action="store_true",
                       help="no network: the plain bicubic scaler (plus any --shader)")


def add_render_arguments(parser) -> None:
    """Options shared by the commands that render through hook shaders (image, upscale)."""
    from .argtypes import positive_float

    add_model_arguments(parser)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=positive_float, metavar="F", help="output size as a factor of the input (default 2)")
    size.add_argument("--size", metavar="WxH", help="exact output size, e.g. 1920x1080")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a shader //!PARAM (repeatable)")
    parser.add_argument("--fbo-format", choices=("auto", "rgba16f", "rgba32f"), default="auto",
                        help="format of intermediate textures (default: auto, see `upshade info`)")


def parse_params(items) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UpshadeError(f"--param {item!r}: expected NAME=VALUE")
        out[name] = value.strip()
    return out


def output_size(w: int, h: int, scale: float | None, size: str | None) -> tuple[int, int]:
    if size is not None:
        m = _SIZE.match(size)
        if not m:
            raise UpshadeError(f"--size {size!r}: expected WxH, e.g. 1920x1080")
        ow, oh = int(m.group(1)), int(m.group(2))
    else:
        s = 2.0 if scale is None else scale
        if not (s > 0) or not math.isfinite(s):
            raise UpshadeError(f"--scale {scale}: must be a positive number")
        fw, fh = w * s, h * s
        if not (fw <= MAX_SIZE and fh <= MAX_SIZE):  # also catches inf (a scale of 1e308)
            raise UpshadeError(f"--scale {s:g}: {w}x{h} scaled by it would exceed {MAX_SIZE} pixels per side")
        ow, oh = max(1, round(fw)), max(1, round(fh))
    if not (1 <= ow <= MAX_SIZE and 1 <= oh <= MAX_SIZE):
        raise UpshadeError(f"output size {ow}x{oh} is out of range (1..{MAX_SIZE} per side)")
    return ow, oh


class ShaderChain:
    """What runs on a source: an optional shipped model, then the ``--shader`` files.

    Calling it with a GL context gives the list of parsed shader files, the model
    first in the export that suits that renderer (see paths.SHADER_FORMS).
    Without ``--model``, ``--shader`` or ``--no-model`` the model is
    ``paths.default_model(source)``.
    """

    def __init__(self, model: str | None, files, use_default: bool):
        self.model = model.upper() if model else None
        self.files = list(files)
        self.use_default = use_default

    def model_for(self, source=None) -> str | None:
        from .paths import default_model

        return self.model or (default_model(source) if self.use_default else None)

    def __call__(self, ctx, source=None) -> list:
        from .hookparse import load_shader
        from .paths import model_shader

        model = self.model_for(source)
        return ([load_shader(model_shader(model, ctx))] if model else []) + self.files

    def describe(self, files, in_size, out_size, source=None) -> str:
        """One line naming what ran: ``upshade: model M (upshade_M_compute.glsl, compute passes), 640x360 -> 1280x720``."""
        return f"upshade: {describe_chain(files, self.model_for(source))}, " \
               f"{in_size[0]}x{in_size[1]} -> {out_size[0]}x{out_size[1]}"


def shader_form_of(sf) -> str:
    """``fragment``, ``compute`` or ``fragment+compute``: the kind of passes a shader file has."""
    kinds = {"compute" if ps.compute else "fragment" for ps in sf.passes}
    return "+".join(k for k in ("fragment", "compute") if k in kinds) or "no"


def describe_chain(files, model: str | None) -> str:
    """``model M (upshade_M.glsl, fragment passes) + shader x.glsl (compute passes)``, or the plain scaler."""
    parts = []
    rest = list(files)
    if model and rest:
        sf = rest.pop(0)
        parts.append(f"model {model} ({Path(sf.path).name}, {shader_form_of(sf)} passes)")
    parts += [f"shader {Path(sf.path).name} ({shader_form_of(sf)} passes)" for sf in rest]
    return " + ".join(parts) if parts else "no model (plain bicubic scaler)"


def shader_chain(model: str | None, shaders, no_model: bool = False) -> ShaderChain:
    """Check ``--model`` and parse the ``--shader`` files now, before any GL or media work."""
    from .hookparse import load_shader
    from .paths import default_model, shipped_shader

    use_default = not model and not shaders and not no_model
    if model or use_default:
        shipped_shader(model or default_model())  # unknown size or missing file: one clear error, early
    return ShaderChain(model, [load_shader(p) for p in shaders], use_default)


def upscale_array(ctx, arr: np.ndarray, files, size: tuple[int, int], params=None, fbo_format="auto") -> np.ndarray:
    """Run an image array through the shader chain; same dtype and channel layout (grey stays grey) as the input."""
    from .imageio import image_to_frame
    from .pipeline import Renderer

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


def run(args) -> int:
    from .gpu import create_headless_context
    from .imageio import read_image, write_image

    inp = Path(args.input)
    out_path = Path(args.output)
    if out_path.suffix.lower() != ".png":
        raise UpshadeError(f"{out_path}: output must be a .png file (PNG keeps 16-bit and alpha)")
    check_output_path(out_path, [inp])
    params = parse_params(args.param)
    chain = shader_chain(args.model, args.shader, args.no_model)
    arr = read_image(inp)
    size = output_size(arr.shape[1], arr.shape[0], args.scale, args.size)
    source = {"kind": "image", "width": arr.shape[1], "height": arr.shape[0],
              "channels": 1 if arr.ndim == 2 else arr.shape[2], "bits": 8 * arr.dtype.itemsize}
    ctx = create_headless_context()
    try:
        files = chain(ctx, source)
        result = upscale_array(ctx, arr, files, size, params=params, fbo_format=args.fbo_format)
    finally:
        ctx.release()
    with atomic_output(out_path, [inp]) as tmp:
        write_image(tmp, result)
    print(f"{chain.describe(files, (arr.shape[1], arr.shape[0]), size, source)}: wrote {out_path}", file=sys.stderr)
    return 0
