"""``upshade demo``: what the default model does, on the bundled sample (no other files needed).

With a display, the sample clip plays in a window in compare mode (left: the
plain bicubic scaler, right: the network; drag the divider), looping until
q/Esc. Without one (or with ``--files``) it writes two files into the
current folder (or ``--out-dir``) and prints their paths:

- ``upshade_demo_compare.png``: the sample frame upscaled x2 by the plain
  scaler and by the model, side by side and labelled, over a 4x zoom of the
  same crop of both (nearest-neighbour, so every output pixel shows);
- ``upshade_demo_x2.mkv``: the sample clip upscaled x2 by the model, its
  audio and subtitles copied.

The sample is 3.6 s of Big Buck Bunny ((c) Blender Foundation, CC-BY 3.0; see
host/samples/README.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .argtypes import integer
from .automodel import stages_note
from .chain import describe_chain, shader_chain, upscale_array
from .errors import UpshadeError
from .fileio import atomic_output, check_output_path
from .gpu import create_headless_context
from .hookparse import load_shader
from .imageio import read_image, write_image
from .overlay import render_text_cpu
from .paths import DEFAULT_SIZE, MODEL_NAMES, model_shader, resolve_model, sample
from .transcode import upscale_video
from .video import probe

COMPARE_NAME = "upshade_demo_compare.png"
CLIP_NAME = "upshade_demo_x2.mkv"
SCALE = 2
ZOOM = 4
# The zoomed crop, in pixels of the x2 output of the sample frame: the bunny's face and raised arm.
CROP = (320, 40, 320, 180)   # x, y, w, h
LABEL_SCALE = 4              # 5x7 glyphs drawn 4x: 20x28 pixels
PAD = 12
ATTRIBUTION = "Big Buck Bunny (c) Blender Foundation, CC-BY 3.0 - upscaled by upshade"


def add_arguments(parser) -> None:
    parser.add_argument("--model", choices=MODEL_NAMES, metavar="S|M|L[-clean|-real]",
                        help=f"the shipped model to show (default: {DEFAULT_SIZE}, in the variant the host picks "
                             "for the sample clip)")
    parser.add_argument("--files", action="store_true",
                        help="write the comparison PNG and the upscaled clip even when a window could open")
    parser.add_argument("--out-dir", default=".", metavar="DIR",
                        help="where the files go when there is no display (default: the current folder)")
    parser.add_argument("--no-audio", action="store_true", help="play the sample without sound")
    parser.add_argument("--loops", type=_loops, default=0, metavar="N",
                        help="play the sample N times, then close (default: until q/Esc)")


def _loops(text: str) -> int:
    n = integer(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must not be negative")
    return n


# --------------------------------------------------------------------------- the comparison picture


def _label(text: str, width: int, scale: int = LABEL_SCALE) -> np.ndarray:
    """A black bar of ``width`` pixels with ``text`` in white (the player overlay's 5x7 font), HxWx3 uint8."""
    ink = render_text_cpu([text.upper()], scale)  # the font's capitals (its lowercase x is a small x)
    h = ink.shape[0] + 2 * PAD
    bar = np.zeros((h, width, 3), np.uint8)
    w = min(ink.shape[1], width - 2 * PAD)
    bar[PAD:PAD + ink.shape[0], PAD:PAD + w][ink[:, :w]] = 255
    return bar


def _frame_rect(img: np.ndarray, rect, colour=(255, 220, 0), thickness: int = 3) -> np.ndarray:
    x, y, w, h = rect
    out = img.copy()
    t = thickness
    out[y:y + t, x:x + w] = colour
    out[y + h - t:y + h, x:x + w] = colour
    out[y:y + h, x:x + t] = colour
    out[y:y + h, x + w - t:x + w] = colour
    return out


def compare_image(plain: np.ndarray, model: np.ndarray, model_label: str) -> np.ndarray:
    """Side by side, labelled: [bicubic | model] over [bicubic zoom | model zoom] (HxWx3 uint8)."""
    if plain.shape != model.shape:
        raise ValueError(f"shapes differ: {plain.shape} vs {model.shape}")
    h, w = plain.shape[:2]
    x, y, cw, ch = CROP
    cw, ch = min(cw, w - x), min(ch, h - y)
    rect = (x, y, cw, ch)

    def zoom(img):
        crop = img[y:y + ch, x:x + cw]
        return crop.repeat(ZOOM, 0).repeat(ZOOM, 1)

    def column(img, label):
        z = zoom(img)
        width = max(w, z.shape[1])
        full = np.zeros((h, width, 3), np.uint8)
        full[:, :w] = _frame_rect(img, rect)
        zz = np.zeros((z.shape[0], width, 3), np.uint8)
        zz[:, :z.shape[1]] = z
        return np.concatenate([_label(label, width), full,
                               _label(f"{ZOOM}x zoom of the yellow box", width, 2), zz], axis=0)

    left = column(plain, "bicubic (no model)")
    right = column(model, model_label)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    body = np.concatenate([left, gap, right], axis=1)
    return np.concatenate([body, _label(ATTRIBUTION, body.shape[1], 2)], axis=0)


def write_compare(ctx, model: str, out: Path) -> Path:
    """Upscale the sample frame with and without ``model``; write the labelled comparison PNG."""
    img = read_image(sample("image"))
    size = (img.shape[1] * SCALE, img.shape[0] * SCALE)
    shader = model_shader(model, ctx)
    plain = upscale_array(ctx, img, [], size)
    net = upscale_array(ctx, img, [load_shader(shader)], size)
    picture = compare_image(plain, net, f"upshade {model} ({shader.name})")
    with atomic_output(out) as tmp:
        write_image(tmp, picture)
    return out


# --------------------------------------------------------------------------- the command


def _play(model: str, audio: bool, loops: int) -> None:
    from .player import Player   # the window system: only when a window is wanted

    video = sample("video")
    with Player(video, shader_chain(model, []).entries(), audio=audio, compare=True) as player:
        rect = player.video_rect
        in_size = (player.info.width, player.info.height)
        print(f"upshade: {describe_chain(player.renderer.shaders, model)}, {in_size[0]}x{in_size[1]} "
              f"-> {rect.w}x{rect.h}, {stages_note(in_size, player.render_size)}, compare mode: bicubic left, "
              f"network right (drag the divider; q quits)", file=sys.stderr)
        played = 0
        while True:
            player.run()
            played += 1
            if player.stopped_by_user or (loops and played >= loops):
                break
            player.seek(0.0)


def _files(model: str, out_dir: Path) -> list[tuple[Path, str]]:
    video = sample("video")
    compare, clip = out_dir / COMPARE_NAME, out_dir / CLIP_NAME
    for p in (compare, clip):
        check_output_path(p, [video])
    info = probe(video)
    size = (info.width * SCALE, info.height * SCALE)
    ctx = create_headless_context()
    try:
        files = [load_shader(model_shader(model, ctx))]
        print(f"upshade: {describe_chain(files, model)}, {info.width}x{info.height} -> {size[0]}x{size[1]}",
              file=sys.stderr)
        write_compare(ctx, model, compare)
        n = upscale_video(ctx, video, clip, shaders=files, size=size, info=info)
    finally:
        ctx.release()
    return [
        (compare, f"the sample frame x{SCALE}: bicubic | model {model}, over a {ZOOM}x zoom of both"),
        (clip, f"the {info.duration:.1f} s sample x{SCALE} ({size[0]}x{size[1]}, {n} frames) by model {model}, "
               f"audio and subtitles kept"),
    ]


def run(args) -> int:
    from .window import NoDisplayError

    sample("video"), sample("image")  # a broken installation says so before anything else
    model = resolve_model(args.model or DEFAULT_SIZE, probe(sample("video")))
    out_dir = Path(args.out_dir)
    if not args.files:
        try:
            _play(model, audio=not args.no_audio, loops=args.loops)
            return 0
        except NoDisplayError:
            print("upshade: no display here, so the demo writes files instead of opening a window",
                  file=sys.stderr)
    if not out_dir.is_dir():
        raise UpshadeError(f"--out-dir {out_dir}: no such directory")
    written = _files(model, out_dir)
    width = max(len(str(p)) for p, _ in written)
    for path, what in written:
        print(f"{str(path):<{width}}  {what}")
    return 0
