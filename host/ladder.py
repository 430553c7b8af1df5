"""The ``--model auto`` policy: which model of a ladder runs, from the network's time per frame.

A ``Ladder`` holds rungs, largest model first and no network last (``L > M > S >
none``), and the frame interval of the video. It is fed one observation per
frame (the network passes' time, host/gltimer.NetworkMeter, and whether frames
were late) and answers with a ``Change`` when another rung should run. It knows
no GL and no clock, so tests drive it with made-up times; the player
(host/automodel.py) and ``upshade bench --ladder`` use the same object.

The policy (``Policy``'s fields; shares of the frame interval):

* keep the largest rung whose network time stays under ``budget`` (70%: the
  rest is for decoding, subtitles and presenting);
* step down at once on one frame over ``panic`` times the budget (even while
  settling: such a rung costs seconds before the usual count would act), else
  after ``down_frames`` consecutive frames over the budget, or late
  with the network over ``up_margin``: straight to the largest smaller rung whose
  time (measured at this size, else predicted from this one's by the rungs'
  costs, which never overestimates a smaller model) fits the budget;
* step up one rung only after ``calm_s`` of frames under the budget and none
  late, and only if the larger rung's time (measured here, else predicted)
  fits under ``up_margin`` (50%): between the two margins nothing moves, so a
  load sitting at a boundary never flips the choice back and forth;
* a rung that had to be left for being too slow is not tried again at that
  output size for ``forget_s`` (doubled after each further failure);
* a new output size (resize, fullscreen) or a seek re-decides: the counts start
  over, the next ``settle_frames`` frames are not judged (new textures, catching
  up), and what was measured at the new size picks the rung at once.
"""

from __future__ import annotations

import collections
import math
import statistics
from dataclasses import dataclass
from typing import Hashable, Sequence

RECENT = 5   # frames whose median is a rung's measured time


@dataclass(frozen=True)
class Policy:
    budget: float = 0.70        # a rung stays while its network time is under this share of the frame interval
    up_margin: float = 0.50     # a larger rung is tried only if its time fits under this share
    down_frames: int = 2        # consecutive frames over the budget (or late) that step down
    calm_s: float = 3.0         # seconds of frames under the budget, none late, before stepping up
    forget_s: float = 60.0      # a rung left for being too slow is not retried at that size for this long
    settle_frames: int = 2      # frames not judged after a change, a resize or a seek
    panic: float = 3.0          # one frame over this many budgets steps down at once


@dataclass(frozen=True)
class Rung:
    name: str
    cost: float   # relative network time per frame (0: no network); only the ratios between rungs matter


@dataclass(frozen=True)
class Change:
    rung: int     # index into the ladder's rungs
    reason: str   # one short line for the overlay


class Ladder:
    """Rungs largest first; ``interval``: seconds per frame of the video; ``start``: the first rung to run."""

    def __init__(self, rungs: Sequence[Rung], interval: float, start: int = 0, policy: Policy = Policy()):
        if not rungs or not interval > 0:
            raise ValueError("a ladder needs rungs and a positive frame interval")
        self.rungs = list(rungs)
        self.interval = float(interval)
        self.policy = policy
        self.current = min(max(0, start), len(self.rungs) - 1)
        self.reason = f"start: {self.rungs[self.current].name}"
        self.key: Hashable = None
        self.calm_frames = max(1, math.ceil(policy.calm_s / self.interval))
        self.forget_frames = max(1, math.ceil(policy.forget_s / self.interval))
        self._frame = 0
        self._memory: dict[tuple, tuple[float, int]] = {}   # (key, rung) -> (seconds, frame measured)
        self._blocked: dict[tuple, int] = {}                # (key, rung) -> frame from which it may be tried
        self._failures: collections.Counter = collections.Counter()
        self._recent: collections.deque = collections.deque(maxlen=RECENT)
        self._skip = self._bad = self._calm = 0

    # --- what the rungs cost ------------------------------------------------------------------
    @property
    def budget_s(self) -> float:
        return self.policy.budget * self.interval

    @property
    def up_s(self) -> float:
        return self.policy.up_margin * self.interval

    def measured(self) -> float | None:
        """The current rung's network time: the median of its last frames (None before any)."""
        return statistics.median(self._recent) if self._recent else None

    def _known(self, rung: int) -> float | None:
        """``rung``'s time measured at this output size within the last ``forget_s``, or None."""
        known = self._memory.get((self.key, rung))
        return known[0] if known is not None and self._frame - known[1] <= self.forget_frames else None

    def estimate(self, rung: int) -> tuple[float | None, str]:
        """(seconds, how) of ``rung`` at this output size: "=" measured, "~" predicted by the costs from the
        nearest measured rung (the current one first), "?" unknown."""
        known = self._known(rung)
        if known is not None:
            return known, "="
        base = [r for r in range(len(self.rungs)) if self.rungs[r].cost > 0 and self._known(r) is not None]
        if not base:
            return None, "?"
        b = min(base, key=lambda r: (abs(r - rung), r != self.current))
        return self._known(b) * self.rungs[rung].cost / self.rungs[b].cost, "~"

    # --- observations -------------------------------------------------------------------------
    def observe(self, seconds: float | None, late: bool = False) -> Change | None:
        """One frame: the network's time (None: nothing ran, e.g. the model is off at this size) and
        whether frames were dropped since the last observation."""
        self._frame += 1
        if seconds is not None and seconds > self.policy.panic * self.budget_s and self.current < len(self.rungs) - 1:
            self._recent.append(float(seconds))
            return self._step_down(False, frames=1)
        if self._skip > 0 or seconds is None:
            self._skip = max(0, self._skip - 1)
            return None
        self._recent.append(float(seconds))
        self._memory[(self.key, self.current)] = (self.measured(), self._frame)
        over = seconds > self.budget_s
        self._bad = self._bad + 1 if over or (late and seconds > self.up_s) else 0
        self._calm = self._calm + 1 if not (over or late) else 0
        if self._bad >= self.policy.down_frames and self.current < len(self.rungs) - 1:
            return self._step_down(late and not over)
        if self._calm >= self.calm_frames and self.current > 0:
            return self._step_up()
        return None

    def _step_down(self, late: bool, frames: int | None = None) -> Change:
        # Remembered as the least of the frames that stepped down (they were all too slow).
        slow, t = self.current, min(list(self._recent)[-(frames or self.policy.down_frames):])
        self._memory[(self.key, slow)] = (t, self._frame)
        n = self._failures[(self.key, slow)]
        self._failures[(self.key, slow)] += 1
        self._blocked[(self.key, slow)] = self._frame + self.forget_frames * 2 ** n
        why = f"late, {_ms(t)} > {_ms(self.up_s)}" if late else f"{_ms(t)} > {_ms(self.budget_s)}"
        return self._move(self._fitting_below(slow), f"down: {self.rungs[slow].name} {why}")

    def _fitting_below(self, rung: int) -> int:
        """The largest rung smaller than ``rung`` whose time (measured, predicted, or unknown) fits the budget."""
        last = len(self.rungs) - 1
        return next((r for r in range(rung + 1, last)
                     if (self.estimate(r)[0] or 0.0) < self.budget_s and not self._is_blocked(r)), last)

    def _is_blocked(self, rung: int) -> bool:
        return self._frame < self._blocked.get((self.key, rung), 0)

    def _step_up(self) -> Change | None:
        up = self.current - 1
        if self._is_blocked(up):
            return None
        t, how = self.estimate(up)
        if t is not None and t >= self.up_s:
            return None
        seen = "untried" if t is None else f"{how}{_ms(t)} < {_ms(self.up_s)}"
        return self._move(up, f"up: {self.rungs[self.current].name} calm, {self.rungs[up].name} {seen}")

    def _move(self, rung: int, reason: str) -> Change:
        self.current, self.reason = rung, reason
        self._restart()
        return Change(rung, reason)

    def _restart(self) -> None:
        self._recent.clear()
        self._skip, self._bad, self._calm = self.policy.settle_frames, 0, 0

    # --- re-deciding --------------------------------------------------------------------------
    def reset(self, key: Hashable, why: str) -> Change | None:
        """A new output size (``key``) or a seek (same key): the counts start over. At a size where rungs
        were measured, go at once where those times point: down if this rung was too slow here, up to the
        largest larger rung measured under the step-up margin here; else keep this rung and measure."""
        old, self.key = self.key, key
        self._restart()
        if key == old:
            return None
        cur = self.current
        t, how = self.estimate(cur)
        if (how == "=" and t > self.budget_s) or self._is_blocked(cur):
            return self._move(self._fitting_below(cur), f"{why}: {self.rungs[cur].name} {_ms(t)} here")
        for r in range(cur):
            t, how = self.estimate(r)
            if how == "=" and t < self.up_s and not self._is_blocked(r):
                return self._move(r, f"{why}: {self.rungs[r].name} {_ms(t)} here")
        return None

    def settle(self, times: Sequence[float]) -> int:
        """The rung this ladder ends on when every rung's network time is steady at ``times`` (seconds, one
        per rung): what ``--model auto`` picks for those measurements."""
        quiet, limit = 0, 4 * len(self.rungs) * (self.calm_frames + self.policy.down_frames + self.policy.settle_frames)
        for _ in range(limit):
            quiet = 0 if self.observe(times[self.current]) else quiet + 1
            if quiet > self.calm_frames + self.policy.settle_frames:
                break
        return self.current


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.1f} ms"
