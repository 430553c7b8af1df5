"""``--model auto``: the ladder of shipped models for a source, and the player's side of it.

The rungs are the shipped sizes, largest first, each in the variant chosen for
the source as ``--model S|M|L`` would get (paths.choose_variant), then no
network: ``L-real > M-real > S-real > none``. Their costs, which only predict
one rung's time from another's, are blocks x width^2 of paths.MODEL_SIZES
(M/S 2.3, L/M 3.9; measured M/S 2.2 and L/M 3.7 on llvmpipe, 2.0 and 3.1 on an
H100: a smaller model is never predicted slower than it is). The ladder starts
at the default size (paths.DEFAULT_SIZE). The policy is host/ladder.py's;
``AutoPlay`` feeds it the player's frames, and ``upshade bench --ladder``
feeds it the same meter's numbers (host/gltimer.NetworkMeter).

Every rung runs its model's x4 file (``model_files``): the files' WHEN gates fire the second x2
stage only beyond 2.2x per side (paths.stages_for), so below that it is the x2 file pass for pass
(the same output, passes and time), and beyond it the network runs twice as ``image`` and
``upscale`` run it there, decided per frame by the output size. The ladder needs nothing more: its
memory is per output size, so a resize across 2.2x re-decides like any other, and the rungs' cost
ratios hold as much for two stages as for one.

Only the player picks the model as it plays: ``image``, ``upscale`` and
``bench`` without ``--ladder`` refuse ``--model auto`` in one line
(``REFUSED``), since a file has no frame rate to hold.
"""

from __future__ import annotations

import math
from pathlib import Path

from .hookparse import load_shader
from .ladder import Change, Ladder, Policy, Rung
from .paths import (DEFAULT_SIZE, LATER_STAGE_MIN_SCALE, MODEL_SIZES, SHIPPED_STAGES, choose_variant, model_shader,
                    model_stem, resolve_model, stages_for)

AUTO = "auto"
NONE = "none"
REFUSED = ("--model auto is the player's (it picks, while playing, the largest model that holds the frame rate): "
           "give S, M or L here; `upshade bench --ladder FILE` shows which one auto picks on this machine")


def is_auto(model: str | None) -> bool:
    return model is not None and str(model).strip().lower() == AUTO


def model_cost(size: str) -> float:
    """Relative network time per frame of a shipped size: blocks x width^2 (its 3x3 convolutions' work)."""
    blocks, width = MODEL_SIZES[size]
    return float(blocks * width * width)


def ladder_models(source=None) -> list[str]:
    """The shipped models, largest first, in the variant ``source`` gets (``["L-real", "M-real", "S-real"]``)."""
    return [resolve_model(s, source) for s in sorted(MODEL_SIZES, key=model_cost, reverse=True)]


def rungs(source=None) -> list[Rung]:
    return [Rung(m, model_cost(m.split("-")[0])) for m in ladder_models(source)] + [Rung(NONE, 0.0)]


def new_ladder(source, fps: float, policy: Policy = Policy()) -> Ladder:
    """The ladder for ``source`` at ``fps`` frames per second, starting at the default size."""
    start = ladder_models(source).index(resolve_model(DEFAULT_SIZE, source))
    return Ladder(rungs(source), 1.0 / max(1.0, fps or 0.0), start=start, policy=policy)


# The player loads every shipped model as its x4 file: the second stage fires only beyond TWICE_FROM.
PLAYER_STAGES = max(SHIPPED_STAGES)
TWICE_FROM = 2 * LATER_STAGE_MIN_SCALE   # 2.2x per side


def model_files(model: str, ctx) -> list:
    """The chain the player (and ``bench --ladder``) runs for a shipped model on ``ctx``: its x4 file in
    the form that suits the renderer. Below 2.2x per side its second stage never fires (the x2 file's
    output, passes and time); beyond, the network runs twice, then the scaler fits the window."""
    return [load_shader(model_shader(model, ctx, PLAYER_STAGES))]


def stages_run(renderer) -> int:
    """How many times ``renderer``'s last frame doubled the luma in its hook passes: 2 where a model's x4
    file ran the network twice, 1 once, 0 none (network off, or passes that keep the size)."""
    sizes = renderer.last_sizes
    luma, src = sizes.get("LUMA"), sizes.get("NATIVE_CROPPED")
    if not luma or not src or luma[0] < 2 * src[0]:
        return 0
    return round(math.log2(luma[0] / src[0]))


def stages_note(in_size, out_size) -> str:
    """What a model entry does at this size: ``network twice (beyond 2.2x per side)`` or
    ``network once (twice beyond 2.2x per side)``."""
    if stages_for(in_size, out_size) > 1:
        return f"network twice (beyond {TWICE_FROM:g}x per side)"
    return f"network once (twice beyond {TWICE_FROM:g}x per side)"


def entries(source=None, files=()) -> list[tuple[str, object]]:
    """The player's chains: one per rung (a model's export is chosen once the window's context exists:
    ``model_files``), the plain scaler for "none", then each ``--shader`` file on its own."""
    out: list[tuple[str, object]] = [
        (f"{model_stem(m)}.glsl", lambda ctx, m=m: model_files(m, ctx)) for m in ladder_models(source)]
    out.append(("bicubic", []))
    return out + [(Path(sf.path).name, [sf]) for sf in files]


def describe(source, form: str, in_size, out_size) -> str:
    """The one line naming what runs: ``upshade: model auto (L-real > M-real > S-real > none by the frame rate,
    starting at M-real; real variants for h264 at 0.05 bits/pixel; compute passes), 640x360 -> 1280x720``."""
    models = ladder_models(source)
    variant, why = choose_variant(source)
    start = resolve_model(DEFAULT_SIZE, source)
    return (f"upshade: model auto ({' > '.join(models + [NONE])} by the frame rate, starting at {start}; "
            f"{variant} variants for {why}; {form} passes), "
            f"{in_size[0]}x{in_size[1]} -> {out_size[0]}x{out_size[1]}")


class AutoPlay:
    """The player's side: one observation per frame for its Ladder, and which rung to show.

    ``active`` is False while a key 1-9 pins a chain (``a`` resumes)."""

    def __init__(self, ladder: Ladder):
        self.ladder = ladder
        self.active = True
        self.changes: list[Change] = []
        self._dropped = 0

    @property
    def rung(self) -> int:
        return self.ladder.current

    def resume(self, dropped: int) -> None:
        """Key a after a pin: choose again, judging from now on (the frames dropped while pinned, and the
        counts the ladder had when it stopped, say nothing of what it will run)."""
        self.active = True
        self._dropped = dropped
        self.ladder.reset(self.ladder.key, "resumed")

    def frame(self, samples, *, has_network: bool, dropped: int, key) -> Change | None:
        """After a frame is presented: ``samples``, the meter's (seconds, passes) since the last one (a
        frame without passes: the model is off at this size); ``has_network``: the rung runs shaders
        (else its time is 0); ``dropped``: the player's dropped count; ``key``: the output size."""
        late, self._dropped = dropped > self._dropped, dropped
        change = None
        if key != self.ladder.key:
            change = self.ladder.reset(key, f"window {key[0]}x{key[1]}")
        times = [s if n else None for s, n in samples] if has_network else [0.0]
        for t in times:
            if change is not None:
                break   # the rest timed the rung just left (timer queries report a frame or two late)
            change = self.ladder.observe(t, late)
        if change is not None:
            self.changes.append(change)
        return change

    def seeked(self) -> None:
        self.ladder.reset(self.ladder.key, "seek")

    def lines(self, stages: int = 1) -> list[str]:
        """The overlay's lines: the rung in use (``x4`` when ``stages``, what the last frame ran, is 2: the
        network twice), its measured time against the frame, why it is there."""
        lad = self.ladder
        if not self.active:
            return ["auto off: a key 1-9 pinned the chain (a: auto again)"]
        t = lad.measured()
        now = "-" if t is None else f"{t * 1000:.1f} ms"
        x4 = " x4" if stages > 1 else ""
        return [f"auto {lad.rungs[lad.current].name}{x4} {now} of {lad.interval * 1000:.1f} ms "
                f"(budget {lad.budget_s * 1000:.1f})",
                f"  {lad.reason}"[:64]]
