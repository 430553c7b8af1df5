"""``upshade image IN -o OUT``: upscale one image through hook shaders on a headless GL context."""

from __future__ import annotations

import re
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


def add_render_arguments(parser) -> None:
    """Options shared by the commands that render through hook shaders (image, upscale)."""
    parser.add_argument("--shader", action="append", default=[], metavar="FILE",
                        help="mpv user shader to apply (repeatable, applied in order)")
    parser.add_argument("--model", metavar="S|M|L", help="use a shipped upshade model (before any --shader)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scale", type=float, metavar="F", help="output size as a factor of the input (default 2)")
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
        if not (s > 0) or s != s:
            raise UpshadeError(f"--scale {scale}: must be a positive number")
        ow, oh = max(1, round(w * s)), max(1, round(h * s))
    if not (1 <= ow <= MAX_SIZE and 1 <= oh <= MAX_SIZE):
        raise UpshadeError(f"output size {ow}x{oh} is out of range (1..{MAX_SIZE} per side)")
    return ow, oh


def shader_chain(model: str | None, shaders):
    """Check ``--model`` and parse the ``--shader`` files now, before any GL or media work.

    Returns a function of the GL context giving the chain: the model's shader in
    the export that suits that renderer (see paths.SHADER_FORMS), then the files.
    """
    from .hookparse import load_shader
    from .paths import model_shader, shipped_shader

    if model:
        shipped_shader(model)  # unknown size or missing file: one clear error, early
    files = [load_shader(p) for p in shaders]
    return lambda ctx: ([load_shader(model_shader(model, ctx))] if model else []) + files


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
    chain = shader_chain(args.model, args.shader)
    arr = read_image(inp)
    size = output_size(arr.shape[1], arr.shape[0], args.scale, args.size)
    ctx = create_headless_context()
    try:
        result = upscale_array(ctx, arr, chain(ctx), size, params=params, fbo_format=args.fbo_format)
    finally:
        ctx.release()
    with atomic_output(out_path, [inp]) as tmp:
        write_image(tmp, result)
    return 0
