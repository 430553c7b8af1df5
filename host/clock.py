"""Playback clocks: media time in seconds that the player presents frames against.

All clocks share one small interface (``time``, ``pause``, ``resume``,
``seek``, ``wait``, ``presented``, ``close``): the audio clock (host/audio.py) when a
sound device plays the file's audio, otherwise ``MonotonicClock``; tests use
``SteppedClock``, which advances only when a frame is presented, so playback
is deterministic and never sleeps.
"""

from __future__ import annotations

import time


class MonotonicClock:
    """Media time from the system's monotonic clock, pausable and seekable."""

    kind = "system clock"

    def __init__(self, start: float = 0.0, now=time.monotonic):
        self._now = now
        self._base = float(start)
        self._anchor = now()
        self.paused = False

    def time(self) -> float:
        if self.paused:
            return self._base
        return self._base + (self._now() - self._anchor)

    def pause(self) -> None:
        if not self.paused:
            self._base = self.time()
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self._anchor = self._now()
            self.paused = False

    def seek(self, t: float) -> None:
        self._base = float(t)
        self._anchor = self._now()

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def presented(self, pts: float, duration: float) -> None:
        """Nothing to do: this clock runs by itself."""

    def close(self) -> None:
        pass


class SteppedClock:
    """Deterministic clock: after a frame is presented it reads that frame's end time.

    Every decoded frame is therefore exactly on time: none is dropped, none
    waited for. Tests use it to drive playback frame by frame.
    """

    kind = "stepped clock"

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self.paused = False

    def time(self) -> float:
        return self._t

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def seek(self, t: float) -> None:
        self._t = float(t)

    def wait(self, seconds: float) -> None:
        # Waiting for a frame that is due later means jumping to it: no sleeping under test.
        if seconds > 0 and not self.paused:
            self._t += seconds

    def presented(self, pts: float, duration: float) -> None:
        self._t = max(self._t, pts + duration)

    def close(self) -> None:
        pass
