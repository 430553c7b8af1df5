"""`upshade bench`: how fast a network runs on GL, in PyTorch, and inside the real pipelines.

Five measurements, side by side in one run on one frame size:

1. network on GL: the shader passes alone (the renderer's hook stages, each
   synced with glFinish), median ms per frame;
2. the same network in PyTorch on the CPU (only for our own models, ``--model``,
   when torch is installed): median forward time on the frame's luma;
3. GL only: a whole frame's GL work (upload, shaders, colour conversion, output
   scaling) on an already decoded frame, synced with glFinish: the pipelines'
   ceiling ("network-only throughput");
4. playback without a display: decode thread -> upload -> network -> present
   into an output-sized RGBA8 framebuffer (what a window's back buffer is), synced
   like a buffer swap, no readback;
5. encode: `upshade upscale`'s loop (decode thread -> upload -> network ->
   YCbCr planes on the GPU -> lagged PBO readback -> encoder thread) into a temporary file
   that is deleted afterwards; same codec settings as ``upshade upscale``.

Then the ratios: GL's speed-up over PyTorch on the network (1 vs 2), and
playback / encode throughput as a percentage of GL-only throughput (how much
decoding, presenting, reading back and encoding around the GL work cost).
Without FILE a short synthetic clip is generated first.

The runtime never needs torch: the PyTorch column imports it lazily (through
``upshade.tools``) and is simply left out when it is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import automodel, benchladder, offline
from .argtypes import integer
from .chain import ShaderChain, describe_chain, parse_size
from .encode import CODECS, Encoder, available_encoder, encoder_options
from .errors import UpshadeError
from .fileio import atomic_output, check_output_path
from .glsl import GLSL_VERSION
from .gltex import FullscreenProgram
from .gpu import create_headless_context, shader_form
from .hookparse import load_shader
from .paths import DEFAULT_SIZE as DEFAULT_MODEL, MODEL_NAMES, SHADER_FORMS, is_model_name, resolve_model, shipped_shader
from .pipeline import Renderer
from .progress import progress
from .readback import PlaneReadback, encoder_readback
from .transcode import default_pix_fmt, encode_frames
from .video import Decoder, probe

DEFAULT_SIZE = (640, 360)
DEFAULT_FRAMES = 60
DEFAULT_ROUNDS = 3
SCALE = 2
# Renderer.stage_times entries that time hook passes only (the rest is upload, colour and scaling).
HOOK_STAGES = ("planes", "main", "output")
TORCH_RUNS_MAX = 10  # PyTorch on 2 cores is slow; the median of 10 is stable enough

_TO_RGBA8_FS = GLSL_VERSION + """
// Copy the float output texture texel for texel into an RGBA8 target: the
// conversion (clamp + round) that presenting into a window's back buffer does.
uniform sampler2D src;
out vec4 color;
void main() {
    color = vec4(texelFetch(src, ivec2(gl_FragCoord.xy), 0).rgb, 1.0);
}
"""


# ---------------------------------------------------------------- GL helpers


class RGBA8Target:
    """An output-sized RGBA8 framebuffer standing in for a window's back buffer (playback without a display)."""

    def __init__(self, ctx, size: tuple[int, int]):
        self.ctx = ctx
        self.size = (int(size[0]), int(size[1]))
        self.tex = ctx.texture(self.size, 4, dtype="f1")
        self.fbo = ctx.framebuffer(color_attachments=[self.tex])
        self._prog = FullscreenProgram(ctx, _TO_RGBA8_FS)
        self._prog.set("src", 0)

    def draw(self, tex) -> None:
        if tex.size != self.size:
            raise UpshadeError(f"rendered frame {tex.size[0]}x{tex.size[1]} does not fit the "
                               f"{self.size[0]}x{self.size[1]} target")
        tex.use(0)
        self.fbo.viewport = (0, 0, *self.size)
        self._prog.draw(self.fbo)

    def release(self) -> None:
        self._prog.release()
        self.fbo.release()
        self.tex.release()


# ---------------------------------------------------------------- synthetic clip


def make_test_clip(path: str | os.PathLike, size: tuple[int, int], frames: int, fps: int = 25) -> Path:
    """Write a short H.264 clip with moving edges, gradients and texture (what upscalers work on)."""
    w, h = size
    path = Path(path)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(1)
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            t = i / fps
            base = np.stack([128 + 90 * np.sin((xx + 40 * t * (c + 1)) / (17.0 + 6 * c)) * np.cos(yy / 29.0 - t)
                             for c in range(3)], axis=2)
            cx, cy = w * (0.3 + 0.4 * (i % fps) / fps), h / 2
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (min(w, h) / 5) ** 2
            base[disc] = (235, 40, 60)
            base[(np.abs(xx - yy - 20 * t) < 1.5)] = (20, 20, 20)   # a thin moving line: aliasing-prone
            rgb = np.clip(base + grain, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


# ---------------------------------------------------------------- measurements


@dataclass
class Row:
    name: str
    ms: float | None          # ms per frame (None: not measured)
    note: str = ""

    @property
    def fps(self) -> float | None:
        return None if not self.ms else 1000.0 / self.ms


@dataclass
class BenchResult:
    title: str
    in_size: tuple[int, int]
    out_size: tuple[int, int]
    frames: int
    network_gl: Row
    network_torch: Row
    gl_frame: Row
    playback: Row
    encode: Row
    device: str = ""
    first_frame_s: float | None = None   # Renderer created -> first frame decoded, compiled, rendered, finished

    @property
    def rows(self) -> list[Row]:
        return [self.network_gl, self.network_torch, self.gl_frame, self.playback, self.encode]

    def ratios(self) -> dict[str, float | None]:
        n, t, f = self.network_gl.ms, self.network_torch.ms, self.gl_frame.ms
        return {
            "gl_vs_torch_speedup": (t / n) if n and t else None,
            "playback_pct_of_gl_only": (100.0 * f / self.playback.ms) if f and self.playback.ms else None,
            "encode_pct_of_gl_only": (100.0 * f / self.encode.ms) if f and self.encode.ms else None,
        }

    def to_json(self) -> dict:
        return {
            "title": self.title,
            "input": list(self.in_size),
            "output": list(self.out_size),
            "frames": self.frames,
            "device": self.device,
            "rows": [{"stage": r.name, "ms_per_frame": r.ms, "fps": r.fps, "note": r.note} for r in self.rows],
            "ratios": self.ratios(),
            "first_frame_s": self.first_frame_s,
        }

    def format(self) -> str:
        (iw, ih), (ow, oh) = self.in_size, self.out_size
        lines = [f"{self.title}: {iw}x{ih} -> {ow}x{oh}, {self.frames} frames"]
        if self.device:
            lines.append(f"on {self.device}")
        lines.append("")
        head = ("stage", "ms/frame", "fps", "note")
        body = [(r.name, "-" if r.ms is None else f"{r.ms:.2f}", "-" if r.fps is None else f"{r.fps:.1f}", r.note)
                for r in self.rows]
        widths = [max(len(x[i]) for x in [head, *body]) for i in range(3)]
        for cells in [head, *body]:
            lines.append("  ".join([cells[0].ljust(widths[0]), cells[1].rjust(widths[1]),
                                    cells[2].rjust(widths[2]), cells[3]]).rstrip())
        lines.append("")
        r = self.ratios()

        def pct(v):
            return "-" if v is None else f"{v:.1f}% of GL-only"

        lines.append("GL vs PyTorch speed-up (network): " + ("-" if r["gl_vs_torch_speedup"] is None
                                                            else f"{r['gl_vs_torch_speedup']:.2f}x"))
        lines.append("playback throughput:              " + pct(r["playback_pct_of_gl_only"]))
        lines.append("encode throughput:                " + pct(r["encode_pct_of_gl_only"]))
        lines.append("first-frame latency:              " + ("-" if self.first_frame_s is None else
                     f"{self.first_frame_s:.3f} s (renderer created, shaders compiled and linked, first frame "
                     f"decoded and rendered)"))
        return "\n".join(lines)


class Bench:
    """One renderer and one clip; each ``measure_*`` is a separate, self-contained measurement."""

    def __init__(self, ctx, shaders, clip: Path, frames: int, out_size: tuple[int, int] | None = None):
        self.ctx = ctx
        self.clip = Path(clip)
        self.info = probe(self.clip)
        self.in_size = (self.info.width, self.info.height)
        self.out_size = out_size or (self.info.width * SCALE, self.info.height * SCALE)
        self.frames = int(frames)
        # As `upshade play` and `upshade upscale` (8-bit clip) render: to an 8-bit output.
        self.renderer = Renderer(ctx, shaders, output="unorm8")
        self.target = RGBA8Target(ctx, self.out_size)
        self.tick = lambda: None   # called once per measured frame (a progress bar's update)
        self.encode_conversion = ""  # where measure_encode's YCbCr conversion ran

    def release(self) -> None:
        self.target.release()
        self.renderer.release()

    def _decoder(self):
        return Decoder(self.clip, info=self.info)

    def _first_frame(self):
        dec = self._decoder()
        try:
            frame = next(dec, None)
        finally:
            dec.close()
        if frame is None:
            raise UpshadeError(f"{self.clip}: no video frames could be decoded")
        return frame

    def first_frame(self, since: float) -> float:
        """Seconds from ``since`` (before this Bench and its Renderer were made) until the first frame is
        decoded and rendered with the GPU work finished: every pass is compiled and linked on the way,
        as when a player starts (the driver's own shader cache, Mesa's or NVIDIA's, may be warm)."""
        frame = self._first_frame()
        self.renderer.render(frame, self.out_size)
        self.ctx.finish()
        return time.perf_counter() - since

    def warm_up(self, frame=None) -> None:
        """Compile every pass and allocate every texture, so no measurement pays for it."""
        frame = frame or self._first_frame()
        for _ in range(2):
            self.renderer.render(frame, self.out_size)
        self.ctx.finish()

    def measure_gl(self) -> tuple[float | None, float]:
        """(network ms, GL-frame ms): medians over ``frames`` renders of one decoded frame.

        GL frame: render + glFinish (upload, shaders, colour, output scaling).
        Network: the hook stages of separate profiled renders, where the renderer
        finishes the GPU work at every stage boundary (None without any pass).
        """
        frame = self._first_frame()
        self.warm_up(frame)
        whole, hooks = [], []
        for i in range(max(1, self.frames)):
            t0 = time.perf_counter()
            self.renderer.render(frame, self.out_size, frame_index=i)
            self.ctx.finish()
            whole.append((time.perf_counter() - t0) * 1000.0)
            self.tick()
        self.renderer.profile = True
        try:
            for i in range(max(1, self.frames)):
                self.renderer.render(frame, self.out_size, frame_index=i)
                hooks.append(1000.0 * sum(self.renderer.stage_times.get(k, 0.0) for k in HOOK_STAGES))
                self.tick()
        finally:
            self.renderer.profile = False
        network = statistics.median(hooks) if self.renderer.shaders else None
        return network, statistics.median(whole)

    def _steady_ms(self, n_timed: int, t0: float | None) -> float | None:
        if t0 is None or n_timed < 1:
            return None
        return (time.perf_counter() - t0) * 1000.0 / n_timed

    def measure_playback(self) -> tuple[float | None, int]:
        """ms per frame of decode -> upload -> network -> present, excluding the first frame (start-up)."""
        t0, n = None, 0
        with self._decoder() as dec:
            for i, frame in enumerate(dec):
                if i >= self.frames:
                    break
                self.target.draw(self.renderer.render(frame, self.out_size, frame_index=i))
                # A buffer swap waits for the frame like this; without it llvmpipe would just queue work.
                self.ctx.finish()
                if t0 is None:
                    t0 = time.perf_counter()
                else:
                    n += 1
                self.tick()
        return self._steady_ms(n, t0), n + (t0 is not None)

    def measure_encode(self, codec: str, crf: int | None, preset: str | None) -> tuple[float | None, int]:
        """ms per frame of `upshade upscale`'s loop: decode -> upload -> network -> YCbCr planes (or packed
        RGB) on the GPU -> lagged PBO readback (its ``encoder_readback``) -> encoder thread, the encoder's
        flush and close included."""
        pix_fmt = default_pix_fmt(self.info, codec)
        ow, oh = self.out_size
        t0, n, written = None, 0, 0

        def rendered():
            nonlocal t0, n
            if t0 is None:
                # Start-up (first decode, encoder's first frame) stays out of the timing.
                t0 = time.perf_counter()
            else:
                n += 1
            self.tick()

        def wrote():
            nonlocal written
            written += 1

        with tempfile.TemporaryDirectory(prefix="upshade-bench-") as tmp:
            with Encoder(Path(tmp) / "bench.mkv", source_path=self.clip, source_info=self.info, width=ow,
                         height=oh, codec=codec, crf=crf, preset=preset, pix_fmt=pix_fmt) as enc, \
                    encoder_readback(self.ctx, enc) as readback, \
                    self._decoder() as dec:
                gpu = isinstance(readback, PlaneReadback)
                self.encode_conversion = f"{pix_fmt} {'on the GPU' if gpu else 'by swscale from RGB'}"
                encode_frames(itertools.islice(dec, self.frames), self.renderer, self.out_size, readback, enc,
                              on_rendered=rendered, on_written=wrote)
            ms = self._steady_ms(n, t0)   # after the encoder's close: its flush is part of the work
            if written != enc.frames_written:
                raise UpshadeError(f"encoder wrote {enc.frames_written} of {written} frames")
        return ms, written


def same_weights(shader: Path, ckpt: Path) -> bool | None:
    """Whether an exported shader says it came from this checkpoint (None: the shader does not say)."""
    m = re.search(r"sha256 ([0-9a-f]{8,64})", shader.read_text(errors="replace")[:2000])
    if not m:
        return None
    return hashlib.sha256(ckpt.read_bytes()).hexdigest().startswith(m.group(1))


def _torch_model_ms(spec: str, size: tuple[int, int], runs: int, tick=None,
                    shader: Path | None = None) -> tuple[float | None, str]:
    """PyTorch CPU forward time for one of our models, or (None, why not)."""
    try:
        method = offline.torch_model(spec)
    except offline.NoTorch as exc:
        return None, str(exc)
    except UpshadeError as exc:
        return None, f"not measured: {exc}"
    ms, threads = offline.torch_forward_ms(method.model, size, runs, tick=tick)
    note = f"median of {runs} forwards, best of 1 / {os.cpu_count()} threads: {threads}"
    if shader is not None and same_weights(shader, Path(method.source)) is False:
        note += f"; WARNING: {shader.name} was exported from other weights than {Path(method.source).name}"
    return ms, note


def _is_size(model: str) -> bool:
    """A shipped model (S, M-real, ...), not a checkpoint file of that name."""
    return is_model_name(model) and not Path(model).is_file()


def _chain(args, model: str | None, source, ctx, tmp: Path) -> tuple[list, str | None, str | None]:
    """The shader files that run, the model's name and why its variant (for the title): ``--shader``
    files, a shipped model in the export that suits this renderer, or a checkpoint exported in that form."""
    if args.shader:
        return [load_shader(p) for p in args.shader], None, None
    if model is None:
        return [], None, None
    if _is_size(model):
        chain = ShaderChain(model, [], False)
        return chain(ctx, source), chain.model_for(source), chain.why(source)
    ckpt = Path(model)
    try:
        text = offline.export_shader(ckpt, shader_form(ctx)[0])
    except offline.NoTorch:
        raise UpshadeError(f"{ckpt}: benchmarking a checkpoint needs PyTorch to export it: "
                           f"{offline.INSTALL} (or give --model S|M|L or --shader)") from None
    path = tmp / f"{ckpt.stem}.glsl"
    path.write_text(text)
    return [load_shader(path)], ckpt.name, None


# ---------------------------------------------------------------- CLI


def _median(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE",
                        help="video to benchmark with (default: a generated clip of --size)")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--shader", action="append", metavar="FILE", help="hook shader(s) to run (repeatable)")
    what.add_argument("--model", metavar="S|M|L|CKPT",
                      help=f"one of our models: a shipped model (S, M-real, ...; a bare size gets the variant the source "
                           f"would) or a checkpoint (default: {DEFAULT_MODEL})")
    what.add_argument("--no-model", action="store_true", help="no network: the plain scaler's pipelines")
    parser.add_argument("--size", metavar="WxH", help="input frame size of the generated clip (default 640x360)")
    parser.add_argument("--frames", type=integer, default=DEFAULT_FRAMES, metavar="N",
                        help=f"frames per measurement (default {DEFAULT_FRAMES})")
    parser.add_argument("--codec", default="h264", choices=tuple(CODECS),
                        help="codec of the encode pipeline (default h264)")
    parser.add_argument("--crf", type=integer, default=None, help="encoder quality (default: the encoder's)")
    parser.add_argument("--rounds", type=integer, default=DEFAULT_ROUNDS, metavar="R",
                        help=f"interleaved rounds of the GL, playback and encode measurements; each row is "
                             f"the median over rounds, so a slow spell of the machine hits all rows alike "
                             f"(default {DEFAULT_ROUNDS})")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="also write the table and ratios as JSON")
    parser.add_argument("--preset", default=None,
                        help="encoder preset for the encode pipeline (default: the encoder's, as `upshade upscale`)")
    parser.add_argument("--forms", metavar="F1,F2,...",
                        help=f"compare the model's shader forms side by side instead ({', '.join(SHADER_FORMS)}): "
                             f"the network alone and the whole GL frame per form, interleaved rounds, medians, "
                             f"ratios against the first")
    parser.add_argument("--vs", action="append", metavar="FILE",
                        help="with --forms (or alone, against the model's automatic form): another shader file "
                             "measured as a row of its own (repeatable), e.g. Anime4K_Upscale_CNN_x2_M.glsl")
    parser.add_argument("--ladder", action="store_true",
                        help="what `play --model auto` picks here: every shipped model's network time per frame "
                             "for FILE at --output-size, timed as the player times it, and the model its ladder "
                             "settles on at FILE's frame rate")
    parser.add_argument("--output-size", metavar="WxH",
                        help="with --ladder: the output (window) size (default: twice the source)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "ladder", False):
        return benchladder.run_ladder(args, make_test_clip)
    if getattr(args, "output_size", None):
        raise UpshadeError("--output-size goes with --ladder (the other rows measure x2 of the source)")
    if getattr(args, "forms", None) or getattr(args, "vs", None):
        return run_forms(args)
    size, source, model = _check_args(args)
    with tempfile.TemporaryDirectory(prefix="upshade-bench-") as tmp:
        # Other processes' load skews every number here: say how busy the machine was.
        load_before = os.getloadavg()[0]
        ctx = create_headless_context()
        bench = None
        try:
            shaders, model_name, why = _chain(args, model, source, ctx, Path(tmp))
            title = describe_chain(shaders, model_name, why)
            clip = args.file if args.file is not None else make_test_clip(Path(tmp) / "synthetic.mp4", size, args.frames)
            t_start = time.perf_counter()
            bench = Bench(ctx, shaders, clip, args.frames)
            first_s = bench.first_frame(t_start)
            bench.warm_up()  # compiles every pass: a broken shader fails here, before the progress bar
            # One line naming what runs (the table on stdout repeats it).
            print(f"upshade: {title}, {bench.in_size[0]}x{bench.in_size[1]} -> "
                  f"{bench.out_size[0]}x{bench.out_size[1]}", file=sys.stderr, flush=True)
            rows = _measure(bench, args, model, Path(shaders[0].path) if shaders else None)
            renderer = ctx.info.get("GL_RENDERER", "?")
            result = BenchResult(
                title=title, in_size=bench.in_size, out_size=bench.out_size, frames=args.frames, **rows,
                device=f"{renderer}, {os.cpu_count()} CPUs, load average {load_before:.1f} before the run",
                first_frame_s=first_s,
            )
        finally:
            if bench is not None:
                bench.release()
            ctx.release()
    print(result.format())
    if args.json is not None:
        with atomic_output(args.json) as tmp_json:
            tmp_json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _check_args(args) -> tuple[tuple[int, int], object, str | None]:
    """(size of the generated clip, the FILE's VideoInfo or None, the model to run or None), after every
    check that can fail before minutes of work."""
    if args.frames < 2:
        raise UpshadeError(f"--frames must be at least 2, got {args.frames}")
    if args.rounds < 1:
        raise UpshadeError(f"--rounds must be at least 1, got {args.rounds}")
    if args.file is not None and args.size:
        raise UpshadeError(f"--size conflicts with {args.file}: the frame size is the video's")
    size = DEFAULT_SIZE
    if args.size:
        size = parse_size(args.size)
        if size[0] % 2 or size[1] % 2:
            raise UpshadeError(f"--size {args.size}: width and height must be even (the generated clip is 4:2:0)")
    encoder_options(available_encoder(args.codec), args.crf, args.preset)  # fail before minutes of work
    source = probe(args.file) if args.file is not None else None  # a bad file fails here, in one line
    if automodel.is_auto(args.model):
        raise UpshadeError(automodel.REFUSED)
    model = None if args.shader or args.no_model else (args.model or DEFAULT_MODEL)
    if args.json is not None:
        check_output_path(args.json, [p for p in (args.file, *(args.shader or ())) if p])
    if model is not None and not _is_size(model) and not Path(model).is_file():
        raise UpshadeError(f"{model}: checkpoint file does not exist (or give a shipped model: {', '.join(MODEL_NAMES)})")
    for p in args.shader or ():
        if not Path(p).is_file():
            raise UpshadeError(f"{p}: shader file does not exist")
        load_shader(p)  # a broken shader fails before any GL or video work
    return size, source, model


def _measure(bench: Bench, args, model: str | None, shader: Path | None) -> dict[str, Row]:
    """The table's rows: medians over ``args.rounds`` interleaved rounds of the GL, playback and encode
    measurements (the machine's speed drifts on shared hosts, and the ratios are only fair if every
    row saw the same drift), and PyTorch once for our models."""
    torch_runs = min(args.frames, TORCH_RUNS_MAX) if model is not None else 0
    n_threads = len({1, max(1, os.cpu_count() or 1)})
    torch_ms, torch_note = None, "only for our models (--model)"
    nets, frames, plays, encs = [], [], [], []
    with progress(total=4 * args.frames * args.rounds + torch_runs * n_threads, unit="frame",
                  desc="bench") as bar:
        bench.tick = lambda: bar.update(1)
        for r in range(args.rounds):
            tag = f" {r + 1}/{args.rounds}" if args.rounds > 1 else ""
            bar.set_postfix_str("GL" + tag)
            net_ms, frame_ms = bench.measure_gl()
            nets.append(net_ms)
            frames.append(frame_ms)
            if model is not None and r == 0:
                bar.set_postfix_str("PyTorch")
                torch_ms, torch_note = _torch_model_ms(model, bench.in_size, torch_runs, bench.tick, shader)
            bar.set_postfix_str("playback" + tag)
            play_ms, play_n = bench.measure_playback()
            plays.append(play_ms)
            bar.set_postfix_str("encode" + tag)
            enc_ms, enc_n = bench.measure_encode(args.codec, args.crf, args.preset)
            encs.append(enc_ms)
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    return {
        "network_gl": Row("network (GL)", _median(nets), "shader passes alone, glFinish per stage" + rounds),
        "network_torch": Row("network (PyTorch CPU)", torch_ms, torch_note),
        "gl_frame": Row("GL only (whole frame)", _median(frames),
                        "upload + shaders + colour + output scaling, glFinish" + rounds),
        "playback": Row("playback (no display)", _median(plays),
                        f"decode thread + GL + present, {play_n} frames" + rounds),
        "encode": Row("encode", _median(encs), f"decode + GL + {bench.encode_conversion} + PBO readback + "
                                               f"{args.codec} thread (preset {args.preset or 'default'}), "
                                               f"{enc_n} frames" + rounds),
    }


# ---------------------------------------------------------------- forms side by side (--forms, --vs)


def _form_rows(args, model: str, tmp: Path) -> list[tuple[str, list]]:
    """(label, shaders) of every row: the model in each of ``--forms``, then each ``--vs`` file."""
    rows = []
    forms = [f.strip() for f in (args.forms or "").split(",") if f.strip()]
    for form in forms:
        if form not in SHADER_FORMS:
            raise UpshadeError(f"--forms {args.forms}: unknown form {form!r} (choose from {', '.join(SHADER_FORMS)})")
    if len(set(forms)) != len(forms):
        raise UpshadeError(f"--forms {args.forms}: a form is listed twice")
    for form in forms:
        if _is_size(model):
            name = model  # _check_args resolved a bare size to the variant the source gets
            path = shipped_shader(name, form)
            label = f"{name} {form}"
        else:
            ckpt = Path(model)
            try:
                text = offline.export_shader(ckpt, form)
            except offline.NoTorch:
                raise UpshadeError(f"{ckpt}: comparing a checkpoint's forms needs PyTorch to export it: "
                                   f"{offline.INSTALL} (or give --model S|M|L)") from None
            path = tmp / f"{ckpt.stem}_{form}.glsl"
            path.write_text(text)
            label = f"{ckpt.stem} {form}"
        rows.append((label, [load_shader(path)]))
    for p in args.vs or ():
        if not Path(p).is_file():
            raise UpshadeError(f"{p}: shader file does not exist")
        rows.append((Path(p).stem, [load_shader(p)]))
    return rows


def run_forms(args: argparse.Namespace) -> int:
    """``--forms F1,F2 [--vs FILE ...]``: the network alone in each form (and each other shader) side by side.

    Every row gets its own renderer on the same clip; the rounds interleave the rows
    (row 1, row 2, ..., row 1, ...) and each number is the median over rounds of
    per-round medians, so a slow spell of a shared machine hits every row alike and
    the ratios compare the same moments.
    """
    if args.shader or args.no_model:
        raise UpshadeError("--forms/--vs compare our model's forms and other shader files: "
                           "give --model (or nothing, for the default) and --vs FILE, not --shader/--no-model")
    size, source, model = _check_args(args)
    if not args.forms:
        args.forms = None
    with tempfile.TemporaryDirectory(prefix="upshade-bench-") as tmp:
        load_before = os.getloadavg()[0]
        ctx = create_headless_context()
        benches = []
        try:
            rows = _form_rows(args, model, Path(tmp))
            if not args.forms:  # --vs alone: against the model in the form chosen for this renderer
                form = shader_form(ctx)[0]
                rows.insert(0, (f"{model.upper() if _is_size(model) else Path(model).stem} {form} (auto)",
                                _form_rows(argparse.Namespace(forms=form, vs=()), model, Path(tmp))[0][1]))
            clip = args.file if args.file is not None else make_test_clip(Path(tmp) / "synthetic.mp4", size, args.frames)
            first = []
            for label, shaders in rows:
                t0 = time.perf_counter()
                bench = Bench(ctx, shaders, clip, args.frames)
                benches.append(bench)
                first.append(bench.first_frame(t0))
                bench.warm_up()
            b0 = benches[0]
            print(f"upshade: {len(rows)} rows, {b0.in_size[0]}x{b0.in_size[1]} -> {b0.out_size[0]}x{b0.out_size[1]}",
                  file=sys.stderr, flush=True)
            nets = [[] for _ in rows]
            frames = [[] for _ in rows]
            with progress(total=2 * args.frames * args.rounds * len(rows), unit="frame", desc="bench") as bar:
                for bench in benches:
                    bench.tick = lambda: bar.update(1)
                for r in range(args.rounds):
                    for i, bench in enumerate(benches):
                        bar.set_postfix_str(f"{rows[i][0]} {r + 1}/{args.rounds}")
                        net_ms, frame_ms = bench.measure_gl()
                        nets[i].append(net_ms)
                        frames[i].append(frame_ms)
            renderer = ctx.info.get("GL_RENDERER", "?")
        finally:
            for bench in benches:
                bench.release()
            ctx.release()
    table = [{"row": label, "network_ms": _median(n), "gl_frame_ms": _median(f), "first_frame_s": s,
              "network_rounds": n}
             for (label, _), n, f, s in zip(rows, nets, frames, first)]
    base = table[0]["network_ms"]
    for t in table:
        t["speedup_vs_first"] = (base / t["network_ms"]) if base and t["network_ms"] else None
    lines = [f"forms side by side: {b0.in_size[0]}x{b0.in_size[1]} -> {b0.out_size[0]}x{b0.out_size[1]}, "
             f"{args.frames} frames x {args.rounds} interleaved rounds, medians",
             f"on {renderer}, {os.cpu_count()} CPUs, load average {load_before:.1f} before the run", ""]
    head = ("row", "network ms", "GL frame ms", f"network vs {table[0]['row']}", "first frame s")
    body = [(t["row"], "-" if t["network_ms"] is None else f"{t['network_ms']:.2f}",
             f"{t['gl_frame_ms']:.2f}", "-" if t["speedup_vs_first"] is None else f"{t['speedup_vs_first']:.2f}x",
             f"{t['first_frame_s']:.1f}") for t in table]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    for cells in [head, *body]:
        lines.append("  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]))
    lines.append("")
    lines.append("network: the shader passes alone (glFinish per stage); GL frame: upload + shaders + colour + "
                 "output scaling; first frame: renderer created -> first frame compiled and rendered")
    print("\n".join(lines))
    if args.json is not None:
        with atomic_output(args.json) as tmp_json:
            tmp_json.write_text(json.dumps({"input": list(b0.in_size), "output": list(b0.out_size),
                                            "frames": args.frames, "rounds": args.rounds, "device": renderer,
                                            "rows": table}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
