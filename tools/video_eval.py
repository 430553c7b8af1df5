"""`upshade eval-video`: score upscalers on a real clip degraded like a stream, flicker included.

    upshade eval-video CLIP [--crf 23 30] [--kernel bicubic] [--model M-real] [--shader F.glsl] [--frames N]

The clip's frames (cropped to a multiple of 4) are the reference. Each is halved
by swscale (``--kernel``, default bicubic, what ``ffmpeg -vf scale`` does), the
halves are encoded as ONE clip by libx264 at each CRF (preset medium, default
GOP: an I frame, then P and B frames; yuv420p, BT.709, limited range), decoded,
and every method upscales the decoded frames x2 through the GL host (exactly
`upshade image`'s pipeline). Per method and CRF:

* Y-PSNR: mean over frames of the protocol's score (BT.601 Y, 2 px shaved);
* gain over bicubic (the host with no shader) in dB;
* flicker: Y-PSNR of the frame-to-frame differences, ``SR[t] - SR[t-1]``
  against ``HR[t] - HR[t-1]`` (pooled over the clip): lower means the output
  changes between frames in ways the source does not.

The stream's bits per pixel is printed too: the number by which the host picks
a model variant for a video (host/paths.py).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..host.api import (MediaError, UpshadeError, atomic_output, check_output_path, create_headless_context,
                        progress, shipped_shader)
from . import degrade as G
from .evaluate import GLMethod
from .metrics import crop_to_multiple, rgb_to_y

SHAVE = 2


@dataclass
class ClipScore:
    psnr: float
    flicker: float


def read_clip(path: Path, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames (0: all) of a video as RGB uint8, cropped to a multiple of 4."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    out = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                out.append(np.ascontiguousarray(crop_to_multiple(frame.to_ndarray(format="rgb24"), 4)))
                if frames and len(out) >= frames:
                    break
    except av.FFmpegError as exc:
        raise MediaError(f"{path}: cannot decode ({exc})") from None
    if len(out) < 2:
        raise MediaError(f"{path}: needs at least 2 video frames, decoded {len(out)}")
    return out


def degrade_clip(hr: list[np.ndarray], kernel: str, crf: int) -> tuple[list[np.ndarray], float]:
    """Halve every frame with swscale ``kernel``, then one libx264 clip at ``crf``; (LR frames, bits per pixel)."""
    stats: dict = {}
    lr = G.codec_roundtrip([G.swscale_down(f, kernel) for f in hr], "h264", crf, preset="medium", stats=stats)
    return lr, stats["bits_per_pixel"]


def _shaved_y(rgb: np.ndarray) -> np.ndarray:
    return rgb_to_y(rgb)[SHAVE:-SHAVE, SHAVE:-SHAVE]


def score_clip(sr: list[np.ndarray], hr_y: list[np.ndarray]) -> ClipScore:
    """Mean per-frame Y-PSNR and the pooled Y-PSNR of frame differences."""
    sr_y = [_shaved_y(f) for f in sr]
    psnrs = [10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-10)) for a, b in zip(sr_y, hr_y)]
    diff_mse = np.mean([np.mean(((sr_y[t] - sr_y[t - 1]) - (hr_y[t] - hr_y[t - 1])) ** 2) for t in range(1, len(sr_y))])
    return ClipScore(float(np.mean(psnrs)), float(10 * np.log10(255.0**2 / max(diff_mse, 1e-10))))


def method_shaders(models, shaders) -> list[tuple[str, list[Path]]]:
    """(label, shader files) per method: bicubic first, then shipped models, then shader files."""
    out: list[tuple[str, list[Path]]] = [("bicubic", [])]
    out += [(m, [shipped_shader(m)]) for m in models]
    out += [(Path(s).stem, [Path(s)]) for s in shaders]
    return out


def run_eval(clip: Path, crfs, kernel: str, models, shaders, frames: int, show=True) -> dict:
    methods = method_shaders(models, shaders)
    hr = read_clip(clip, frames)
    hr_y = [_shaved_y(f) for f in hr]
    ctx = create_headless_context()
    results: dict = {"clip": str(clip), "frames": len(hr), "size": [hr[0].shape[1], hr[0].shape[0]],
                     "kernel": kernel, "codec": "libx264 preset medium, default GOP", "crf": {}}
    built = []
    try:
        built = [(label, GLMethod(ctx, files, label=label)) for label, files in methods]
        bar = progress(total=len(crfs) * len(built) * len(hr), desc="eval-video", unit="frame", disable=not show)
        for crf in crfs:
            lr, bpp = degrade_clip(hr, kernel, crf)
            rows = {}
            for label, method in built:
                sr = []
                for f in lr:
                    sr.append(method.upscale(f))
                    bar.update(1)
                rows[label] = score_clip(sr, hr_y).__dict__
            base = rows["bicubic"]["psnr"]
            for r in rows.values():
                r["gain"] = r["psnr"] - base
            results["crf"][str(crf)] = {"bits_per_pixel": bpp, "methods": rows}
        bar.close()
    finally:
        for _, m in built:
            m.release()
        ctx.release()
    return results


def format_results(res: dict) -> str:
    lines = [f"{res['clip']}: {res['frames']} frames {res['size'][0]}x{res['size'][1]}, halved by swscale "
             f"{res['kernel']}, {res['codec']}"]
    for crf, r in res["crf"].items():
        lines.append(f"\nCRF {crf} ({r['bits_per_pixel']:.3f} bits per LR pixel)")
        lines.append(f"  {'method':<24} {'Y-PSNR':>8} {'gain':>7} {'flicker':>8}")
        for label, m in r["methods"].items():
            lines.append(f"  {label:<24} {m['psnr']:8.3f} {m['gain']:+7.3f} {m['flicker']:8.3f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clip", type=Path, metavar="CLIP", help="reference video (its frames are the HR)")
    parser.add_argument("--crf", type=int, nargs="+", default=[23, 30], metavar="N", help="libx264 CRFs (default 23 30)")
    parser.add_argument("--kernel", default="bicubic", choices=G.PROTOCOL_KERNELS, help="swscale downscaler (default bicubic)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME", help="shipped model, e.g. M-real (repeatable)")
    parser.add_argument("--shader", action="append", default=[], metavar="FILE", help="hook shader (repeatable)")
    parser.add_argument("--frames", type=int, default=0, metavar="N", help="first N frames only (default all)")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write the scores as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    for crf in args.crf:
        if not 0 <= crf <= 51:
            raise UpshadeError(f"--crf {crf}: must be 0-51")
    if args.frames < 0:
        raise UpshadeError(f"--frames {args.frames}: must be >= 0")
    if not G.codec_available("h264"):
        raise UpshadeError("this PyAV build has no libx264 encoder: install a PyAV wheel with libx264")
    if args.json is not None:
        check_output_path(args.json, [args.clip, *args.shader])
    res = run_eval(args.clip, args.crf, args.kernel, args.model, args.shader, args.frames, not args.no_progress)
    print(format_results(res))
    if args.json is not None:
        with atomic_output(args.json, [args.clip]) as tmp:
            tmp.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
