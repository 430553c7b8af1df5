"""The ``--model auto`` policy (host/ladder.py) driven by made-up frame times: no GL, no clock."""

from __future__ import annotations

import random

import pytest

from upshade.host.ladder import Ladder, Policy, Rung

FPS = 25
T = 1.0 / FPS                       # 40 ms per frame: budget 28 ms, step-up margin 20 ms
RUNGS = [Rung("L", 9.2), Rung("M", 2.3), Rung("S", 1.0), Rung("none", 0.0)]
L, M, S, NONE = range(4)


def ladder(start=M, **policy) -> Ladder:
    return Ladder(RUNGS, T, start=start, policy=Policy(**policy))


def feed(lad: Ladder, times, late=False) -> list[tuple[int, int]]:
    """Observe each time (seconds, or a callable of the current rung); the (frame, rung) of every change."""
    changes = []
    for i, t in enumerate(times):
        c = lad.observe(t(lad.current) if callable(t) else t, late)
        if c is not None:
            changes.append((i, c.rung))
    return changes


def test_steps_down_within_the_down_frames_straight_to_the_rung_that_fits():
    lad = ladder(start=L)
    assert lad.observe(0.060) is None                     # one slow frame is not enough
    change = lad.observe(0.060)
    assert change is not None and change.rung == M       # M predicted 15 ms < 28 ms: L skipped to M at once
    assert change.reason.startswith("down: L 60.0 ms > 28.0 ms")
    # M turns out over the budget too: it goes down within settle + down frames.
    assert feed(lad, [0.035] * 4) == [(3, S)]
    # Far too slow at L: M (predicted 76 ms) and S (33 ms) are skipped too.
    lad = ladder(start=L, panic=100.0)
    assert feed(lad, [0.300] * 2) == [(1, NONE)]


def test_one_frame_far_over_the_budget_steps_down_at_once_even_while_settling():
    lad = ladder(start=L)                                 # panic: 3 budgets = 84 ms
    assert feed(lad, [0.085]) == [(0, M)]                 # one frame: M predicted 21 ms fits
    lad = ladder(start=L)
    lad.reset((640, 360), "resize")                       # settling: ordinary slow frames are not judged
    assert feed(lad, [0.080, 0.080]) == []
    assert feed(lad, [0.300]) == [(0, NONE)]              # but a frame of 300 ms is, at once


def test_steps_up_only_after_the_calm_frames():
    lad = ladder(start=S)
    calm = lad.calm_frames
    assert calm == 75                                     # 3 s at 25 fps
    changes = feed(lad, [0.005] * (calm + 10))            # S 5 ms: M predicted 11.5 ms < 20 ms
    assert changes == [(calm - 1, M)]
    assert lad.reason == "up: S calm, M ~11.5 ms < 20.0 ms"
    # One late frame (or one over the budget) starts the count again.
    lad = ladder(start=S)
    assert feed(lad, [0.005] * (calm - 1)) == []
    assert feed(lad, [0.005], late=True) == []
    assert feed(lad, [0.005] * (calm - 1)) == []
    assert feed(lad, [0.005]) == [(0, M)]


def test_never_steps_up_to_a_rung_measured_or_predicted_over_the_margin():
    lad = ladder(start=S)
    assert feed(lad, [0.010] * 500) == []                 # M predicted 23 ms: fits the budget, not the margin
    lad = ladder(start=M)
    assert feed(lad, [0.024] * 500) == []                 # M between the margins: stays, L not tried


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_steady_load_at_the_boundary_changes_at_most_once(seed):
    """M's time jitters around the budget for ten minutes: one step down, never back up."""
    rng = random.Random(seed)
    times = {L: 0.110, M: 0.028, S: 0.028 / 2.2, NONE: 0.0}
    lad = ladder(start=M)
    changes = feed(lad, [lambda r: times[r] * rng.uniform(0.93, 1.07)] * (600 * FPS))
    assert [rung for _, rung in changes] in ([], [S])


def test_a_mispredicted_rung_is_retried_ever_more_rarely():
    """S predicts M under the margin but M is over the budget: tried, left, then retried after 60 s,
    120 s, 240 s... (never oscillating frame to frame)."""
    times = {L: 0.2, M: 0.030, S: 0.008, NONE: 0.0}
    lad = ladder(start=S)
    changes = feed(lad, [lambda r: times[r]] * (20 * 60 * FPS))   # twenty minutes
    ups = [i for i, rung in changes if rung == M]
    assert 3 <= len(ups) <= 5
    gaps = [b - a for a, b in zip(ups, ups[1:])]
    assert gaps == sorted(gaps) and gaps[0] >= 60 * FPS
    assert all(rung in (M, S) for _, rung in changes)


def test_late_frames_step_down_only_when_the_network_is_a_large_share():
    lad = ladder(start=M)
    assert feed(lad, [0.010] * 20, late=True) == []        # 25%: the network is not why frames are late
    assert feed(lad, [0.022] * 2, late=True) == [(1, S)]   # 55% and late: down
    assert lad.reason == "down: M late, 22.0 ms > 20.0 ms"


def test_nothing_measured_holds_and_settle_frames_are_not_judged():
    lad = ladder(start=M)
    assert feed(lad, [None] * 200) == []                   # the model does not run at this size
    lad.reset((640, 360), "seek")
    assert feed(lad, [0.05, 0.05]) == []                   # right after a reset: not judged
    assert feed(lad, [0.05, 0.05]) == [(1, S)]


def test_a_new_size_re_decides_from_what_was_measured_there():
    lad = ladder(start=L)
    big, small = (1920, 1080), (640, 360)
    lad.reset(big, "window 1920x1080")
    assert feed(lad, [lambda r: {L: 0.06, M: 0.015}[r]] * 12) == [(3, M)]
    assert lad.reset(small, "window 640x360") is None        # nothing known there: keep M and measure
    assert feed(lad, [0.004] * (lad.calm_frames + 2))[0][1] == L   # calm, L predicted 16 ms: up
    assert feed(lad, [0.012] * 5) == []                            # L measured here: 12 ms
    change = lad.reset(big, "window 1920x1080")             # L was too slow here: down at once
    assert change.rung == M and change.reason == "window 1920x1080: L 60.0 ms here"
    assert lad.reset(small, "window 640x360").rung == L     # L measured fine here: up at once
    assert lad.reset(small, "seek") is None and lad.current == L


def test_settle_is_where_the_ladder_ends_for_steady_times():
    assert ladder(start=M).settle([0.100, 0.025, 0.010, 0.0]) == M   # M fits, L far over
    assert ladder(start=M).settle([0.100, 0.035, 0.012, 0.0]) == S   # M over: down to S, stays
    assert ladder(start=M).settle([0.015, 0.004, 0.002, 0.0]) == L   # M calm, L predicted 16 ms < 20 ms: up
    assert ladder(start=M).settle([0.015, 0.006, 0.003, 0.0]) == M   # L predicted 24 ms: not tried
    assert ladder(start=M).settle([0.5, 0.2, 0.05, 0.0]) == NONE     # S predicted 87 ms from M: not tried
    assert ladder(start=S).settle([0.030, 0.012, 0.005, 0.0]) == M   # up to M (12 ms), L predicted 48 ms
