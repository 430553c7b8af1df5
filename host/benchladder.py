"""``upshade bench --ladder``: which model ``--model auto`` picks on this machine, and the times behind it.

Every rung of the player's ladder (host/automodel.py: the shipped models largest
first, in the variant the source gets, then no network) renders the same
decoded frames of FILE (or a generated clip) at the output size, timed by the
player's own ``NetworkMeter`` (host/gltimer.py: GL timer queries, or the CPU's
clock on software renderers), the chain's first render left out as in the
player. Each model runs the player's chain for it (automodel.model_files, its x4
file): beyond 2.2x per side the network twice, below it the x2 file's passes.
Rounds interleave the rungs, so a slow spell of a shared machine hits them
alike; a rung's time is the median over all its frames. Those times are fed to
the player's ``Ladder`` (host/ladder.py) at the source's frame rate, and where
it settles is the pick.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from . import automodel
from .chain import parse_size
from .errors import UpshadeError
from .fileio import atomic_output
from .gltimer import NetworkMeter
from .gpu import create_headless_context, shader_form
from .pipeline import Renderer
from .progress import progress
from .video import Decoder, probe


def check_args(args) -> None:
    """``--ladder`` measures every shipped model: no --shader, --no-model or other --model than auto."""
    if args.shader or args.no_model or (args.model and not automodel.is_auto(args.model)):
        raise UpshadeError("--ladder measures every shipped model as --model auto would: "
                           "give no --model (or --model auto), --shader or --no-model")
    if args.forms or args.vs:
        raise UpshadeError("--ladder and --forms/--vs are separate measurements: give one")


def decode_frames(clip: Path, n: int) -> list:
    with Decoder(clip) as dec:
        frames = [f for _, f in zip(range(n), dec)]
    if not frames:
        raise UpshadeError(f"{clip}: no video frames could be decoded")
    return frames


def measure_rungs(meter: NetworkMeter, renderers: list, frames: list, out_size, rounds: int,
                  tick=lambda: None, passes: list | None = None) -> list[list[float]]:
    """Per renderer (None: the no-network rung), the network seconds of every frame of every round;
    ``passes`` (a list) gets, per renderer, the most hook passes one of its frames ran."""
    if passes is not None:
        passes[:] = [0] * len(renderers)
    for i, renderer in enumerate(renderers):   # first renders compile: the meter leaves them out
        if renderer is not None:
            meter.attach(renderer)
            renderer.render(frames[0], out_size)
            meter.rendered((i, out_size))
            meter.poll(wait=True)
    times: list[list[float]] = [[] for _ in renderers]
    for _ in range(rounds):
        for i, renderer in enumerate(renderers):
            if renderer is None:
                times[i] += [0.0] * len(frames)
                continue
            meter.attach(renderer)
            for n, frame in enumerate(frames):
                renderer.render(frame, out_size, frame_index=n)
                meter.rendered((i, out_size))
                times[i] += _seconds(meter.poll(), passes, i)
                tick()
            times[i] += _seconds(meter.poll(wait=True), passes, i)
    meter.attach(None)
    return times


def _seconds(polled, passes: list | None, i: int) -> list[float]:
    if passes is not None:
        passes[i] = max([passes[i]] + [n for _, n in polled])
    return [s if n else 0.0 for s, n in polled]


def run_ladder(args, make_clip) -> int:
    """``make_clip(path, size, frames)`` writes the clip measured without FILE (bench's generated clip)."""
    check_args(args)
    if args.frames < 2 or args.rounds < 1:
        raise UpshadeError("--frames must be at least 2 and --rounds at least 1")
    with tempfile.TemporaryDirectory(prefix="upshade-bench-") as tmp:
        load_before = os.getloadavg()[0]
        clip = args.file if args.file is not None else \
            make_clip(Path(tmp) / "synthetic.mp4", parse_size(args.size) if args.size else (640, 360), args.frames)
        info = probe(clip)
        source = info if args.file is not None else None   # as bench's other rows: a generated clip is no source
        out_size = parse_size(args.output_size, "--output-size") if args.output_size else \
            (2 * info.width, 2 * info.height)
        frames = decode_frames(clip, args.frames)
        ctx = create_headless_context()
        renderers, meter = [], None
        try:
            ladder = automodel.new_ladder(source, info.fps)
            for rung in ladder.rungs[:-1]:
                renderers.append(Renderer(ctx, automodel.model_files(rung.name, ctx), output="unorm8"))
            renderers.append(None)
            meter = NetworkMeter(ctx)
            print(automodel.describe(source, shader_form(ctx)[0], (info.width, info.height), out_size),
                  file=sys.stderr, flush=True)
            with progress(total=args.rounds * (len(renderers) - 1) * len(frames), unit="frame",
                          desc="bench --ladder") as bar:
                passes: list[int] = []
                times = measure_rungs(meter, renderers, frames, out_size, args.rounds, lambda: bar.update(1), passes)
            stages = max(automodel.stages_run(r) for r in renderers if r is not None)   # as the overlay says it
            timing = f"{meter.label} ({meter.why})"
            device = f"{ctx.info.get('GL_RENDERER', '?')}, {os.cpu_count()} CPUs, load average {load_before:.1f} " \
                     f"before the run"
        finally:
            if meter is not None:
                meter.release()
            for r in renderers:
                if r is not None:
                    r.release()
            ctx.release()
    medians = [statistics.median(t) for t in times]
    pick = ladder.settle(medians)
    result = {
        "source": Path(clip).name if args.file is not None else "generated clip", "input": [info.width, info.height],
        "output": list(out_size), "fps": info.fps, "interval_ms": 1000 * ladder.interval,
        "budget_ms": 1000 * ladder.budget_s, "step_up_ms": 1000 * ladder.up_s, "timing": timing, "device": device,
        "frames": len(frames), "rounds": args.rounds, "network_stages": stages,
        "rungs": [{"rung": r.name, "network_ms": 1000 * m, "passes": n}
                  for r, m, n in zip(ladder.rungs, medians, passes)],
        "pick": ladder.rungs[pick].name, "reason": ladder.reason,
    }
    print(format_result(result))
    if args.json is not None:
        with atomic_output(args.json) as tmp_json:
            tmp_json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def format_result(r: dict) -> str:
    (iw, ih), (ow, oh) = r["input"], r["output"]
    lines = [f"--model auto on this machine: {r['source']}, {iw}x{ih} -> {ow}x{oh} at {r['fps']:.3g} fps: "
             f"{r['interval_ms']:.1f} ms a frame, budget {r['budget_ms']:.1f} ms, step up under {r['step_up_ms']:.1f} ms",
             f"network timed by {r['timing']}; "
             + (f"the network twice (beyond {automodel.TWICE_FROM:g}x per side)" if r["network_stages"] > 1 else
                f"the network once (twice beyond {automodel.TWICE_FROM:g}x per side)"),
             f"on {r['device']}; {r['frames']} frames x {r['rounds']} interleaved rounds, medians", ""]
    width = max(len(x["rung"]) for x in r["rungs"])
    lines.append(f"{'rung':<{width}}  network ms  of the frame")
    for x in r["rungs"]:
        ms = x["network_ms"]
        verdict = "no network" if x["rung"] == automodel.NONE else "over the budget" if ms > r["budget_ms"] else \
            "fits" if ms >= r["step_up_ms"] else "fits, under the step-up margin"
        pick = "   <- auto" if x["rung"] == r["pick"] else ""
        lines.append(f"{x['rung']:<{width}}  {ms:10.2f}  {100 * ms / r['interval_ms']:10.0f}%  {verdict}{pick}")
    lines += ["", f"auto picks {r['pick']} (last change: {r['reason']})"]
    return "\n".join(lines)
