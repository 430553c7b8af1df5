"""``upshade upscale IN -o OUT``: upscale a video file offline through hook shaders (host/transcode.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from .argtypes import integer, nonnegative_float, positive_float
from .chain import add_render_arguments, output_size, parse_params, shader_chain
from .encode import CODECS, available_encoder, encoder_options
from .fileio import check_output_path
from .gpu import create_headless_context
from .transcode import upscale_video
from .video import probe


def add_arguments(parser) -> None:
    parser.add_argument("input", metavar="IN", help="input video (anything FFmpeg reads)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output video; the container follows the extension (.mkv keeps any subtitles)")
    add_render_arguments(parser)
    parser.add_argument("--codec", choices=tuple(CODECS), default="h264", help="video codec (default h264)")
    parser.add_argument("--crf", type=integer, metavar="N", help="constant quality (lower is better; encoder default)")
    parser.add_argument("--preset", metavar="P", help="encoder speed preset (x264/x265 names, SVT-AV1 numbers)")
    parser.add_argument("--pix-fmt", metavar="FMT",
                        help="output pixel format (default: yuv420p, or yuv420p10le for sources deeper than 8 bits)")
    parser.add_argument("--start", type=nonnegative_float, default=0.0, metavar="T", help="start at T seconds")
    parser.add_argument("--duration", type=positive_float, metavar="D", help="process only D seconds")
    parser.add_argument("--burn-subs", nargs="?", const="auto", default=None, metavar="TRACK",
                        help="render a subtitle track into the picture at the output size (TRACK: a number as "
                             "`play --sid`, or a subtitle file; default: the track `play` would show); "
                             "the other subtitle tracks are still copied")


def run(args) -> int:
    inp, out = Path(args.input), Path(args.output)
    check_output_path(out, [inp])
    params = parse_params(args.param)
    # a broken shader is reported before the video is touched
    chain = shader_chain(args.model, args.shader, args.no_model)
    info = probe(inp)
    size = output_size(info.width, info.height, args.scale, args.size)
    encoder_options(available_encoder(args.codec), args.crf, args.preset)  # fail before any GL work
    ctx = create_headless_context()
    try:
        files = chain(ctx, info)
        n = upscale_video(
            ctx, inp, out, shaders=files, params=params, size=size, codec=args.codec, crf=args.crf,
            preset=args.preset, pix_fmt=args.pix_fmt, start=args.start, duration=args.duration,
            fbo_format=args.fbo_format, info=info, burn_subs=args.burn_subs,
        )
    finally:
        ctx.release()
    print(f"{chain.describe(files, (info.width, info.height), size, info)}: wrote {out}, {n} frames", file=sys.stderr)
    return 0
