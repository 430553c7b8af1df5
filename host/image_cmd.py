"""``upshade image IN -o OUT``: upscale one image through hook shaders on a headless GL context."""

from __future__ import annotations

import sys
from pathlib import Path

from .chain import add_render_arguments, output_size, parse_params, shader_chain, upscale_array
from .errors import UpshadeError
from .fileio import atomic_output, check_output_path
from .gpu import create_headless_context
from .imageio import read_image, write_image


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="IN", help="input image (PNG, JPEG, ...; 8 or 16 bit, grey/RGB/RGBA)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output PNG (same bit depth as the input)")
    add_render_arguments(parser)


def run(args) -> int:
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
        files = chain(ctx, source, ((arr.shape[1], arr.shape[0]), size))
        result = upscale_array(ctx, arr, files, size, params=params, fbo_format=args.fbo_format)
    finally:
        ctx.release()
    with atomic_output(out_path, [inp]) as tmp:
        write_image(tmp, result)
    print(f"{chain.describe(files, (arr.shape[1], arr.shape[0]), size, source)}: wrote {out_path}", file=sys.stderr)
    return 0
