"""``upshade upscale IN -o OUT``: upscale a video file offline through hook shaders (host/transcode.py);
``upshade upscale IN... -o OUTDIR``: a library of them (host/batch.py), ``--ray``: on Ray (host/cluster.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import batch, cluster
from .argtypes import integer, nonnegative_float, positive_float
from .chain import add_render_arguments, output_size
from .encode import CODECS
from .errors import UpshadeError
from .fileio import check_output_path
from .gpu import create_headless_context
from .video import probe


class _RayAddress(argparse.Action):
    """``--ray [ADDRESS]``: a value that is no address but an existing path is an input that followed
    the bare option (``--ray in.mkv -o out/``)."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value is not None and not cluster.is_address(value):
            if not Path(value).exists():
                parser.error(f"--ray {value}: expected auto, HOST:PORT or ray://HOST:PORT (or no address: "
                             f"a local Ray instance)")
            namespace.ray_inputs = [*getattr(namespace, "ray_inputs", []), value]
            value = None
        namespace.ray = value or "local"


def add_arguments(parser) -> None:
    parser.add_argument("input", nargs="*", metavar="IN",
                        help="input video (anything FFmpeg reads); several, or folders, with an output folder")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output video; the container follows the extension (.mkv keeps any subtitles). "
                             "An output folder (several inputs, a folder input, an existing folder or a trailing /) "
                             "gets one output per input, named as the input")
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
    many = parser.add_argument_group("many files (an output folder)")
    many.add_argument("--recursive", action="store_true", help="also the files in the subfolders of folder inputs")
    many.add_argument("--glob", action="append", default=[], metavar="PATTERN",
                      help="which files of folder inputs to take, e.g. '*.mkv' (repeatable; default: video extensions)")
    many.add_argument("--container", choices=batch.CONTAINERS, metavar="EXT",
                      help=f"container of the outputs in the folder ({', '.join(batch.CONTAINERS)}; default mkv)")
    many.add_argument("--overwrite", action="store_true",
                      help="redo outputs that exist (default: skip them; outputs appear only when complete)")
    ray = parser.add_argument_group("on Ray (pip install 'upshade[cluster]')")
    ray.add_argument("--ray", nargs="?", const=None, default=None, action=_RayAddress, metavar="ADDRESS",
                     help="render on Ray: a local instance, or the cluster at ADDRESS (auto, HOST:PORT); "
                          "long files are cut into segments rendered in parallel")
    ray.add_argument("--workers", type=integer, metavar="N",
                     help="render tasks at once on a local Ray instance (default: one per CPU, or per GPU)")
    ray.add_argument("--segment", type=positive_float, default=60.0, metavar="SECONDS",
                     help="length of the segments a file is cut into at keyframes (default 60)")


def run(args) -> int:
    inputs = [*args.input, *getattr(args, "ray_inputs", [])]
    if not inputs:
        raise UpshadeError("no input given: upshade upscale IN... -o OUT")
    directory = batch.directory_mode(inputs, args.output)
    if args.container and not directory:
        raise UpshadeError(f"--container {args.container}: for an output folder; the extension of "
                           f"{args.output} chooses its container")
    if directory or args.ray is not None:
        return run_many(args, inputs, directory)
    inp, out = Path(inputs[0]), Path(args.output)
    check_output_path(out, [inp])
    settings = batch.RenderSettings.from_args(args)
    chain = settings.check()  # a broken shader or option is reported before the video is touched
    info = probe(inp)
    output_size(info.width, info.height, settings.scale, settings.size)  # and before any GL work
    ctx = create_headless_context()
    try:
        n, what = batch.render_file(ctx, chain, inp, out, settings, info=info, progress=True)
    finally:
        ctx.release()
    print(f"{what}: wrote {out}, {n} frames", file=sys.stderr)
    return 0


def run_many(args, inputs, directory: bool) -> int:
    """An output folder, or --ray: the job list, run here or on Ray, then the summary table."""
    if args.ray is not None:
        cluster.import_ray()  # not installed: say so before anything else
    elif args.workers is not None:
        raise UpshadeError(f"--workers {args.workers}: for --ray (a local Ray instance)")
    if args.workers is not None and args.workers < 1:
        raise UpshadeError(f"--workers {args.workers}: must be at least 1")
    jobs, settings, overwrite = batch.prepare(args, inputs, directory)
    t0 = time.monotonic()
    if args.ray is None:
        results = batch.run_local(jobs, settings, overwrite)
    else:
        results = cluster.run_cluster(jobs, settings, address=None if args.ray == "local" else args.ray,
                                      workers=args.workers, segment_seconds=args.segment, overwrite=overwrite)
    print(batch.summary(results, time.monotonic() - t0), file=sys.stderr)
    return 1 if any(r.status == "failed" for r in results) else 0
