"""Scheduling for ``upshade play``: which decoded frame is due when.

``Scheduler`` owns the decoder (a background thread, host/video.py) and the
clock (the audio clock of host/audio.py, or a clock of host/clock.py). It
hands out the frame whose time has come, drops frames that are already late
(so the delay never grows), and handles pause, seek and switching the audio
track. It draws nothing and knows no window: the player asks it for the next
frame and tells it when that frame was presented.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import av

from .audio import open_clock
from .clock import SteppedClock
from .video import Decoder

STAT_ALPHA = 0.1  # smoothing of the per-stage timings shown by the overlay


class Stats:
    """Presented/dropped counts, presented frame rate over the last second, smoothed stage times (ms)."""

    def __init__(self):
        self.presented = 0
        self.dropped = 0
        self.ms: dict[str, float] = {}
        self._times: collections.deque = collections.deque(maxlen=240)

    def add(self, stage: str, seconds: float) -> None:
        ms = seconds * 1000.0
        old = self.ms.get(stage)
        self.ms[stage] = ms if old is None else old + STAT_ALPHA * (ms - old)

    def frame_presented(self, now: float) -> None:
        self.presented += 1
        self._times.append(now)

    @property
    def fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def audio_streams(path) -> list[str]:
    """Codec names of the file's audio streams, in order (``--aid 1`` is the first)."""
    try:
        with av.open(str(path)) as c:
            return [s.codec_context.name for s in c.streams.audio]
    except (av.FFmpegError, OSError):
        return []


class Scheduler:
    """Decoder + clock: ``next_frame()`` returns the frame to present now, or None.

    ``clock`` is "auto" (the audio clock when the file's audio can play, else the system clock),
    "stepped" (time advances only by presented frames: deterministic, never sleeps; for tests) or
    a clock object. ``aid`` is the audio stream (0-based) or None for none.
    """

    def __init__(self, path, info, *, start: float = 0.0, clock="auto", audio: bool = True, aid: int | None = 0,
                 notify=None, stats: Stats | None = None):
        self.path = Path(path)
        self.info = info
        self.notify = notify
        self.stats = stats or Stats()
        self.audio = audio
        self.aid = aid if info.has_audio else None
        self.paused = False
        self.current = None           # the frame on screen
        self._pending = None          # decoded, not yet due
        self._eof = False
        self._resync = False          # set the system clock from the next frame (start, seek)
        self._show_next = False       # present one frame even while paused (after a seek)
        self._seek_pos: float | None = None  # target of a seek whose first frame is not shown yet
        self._clock_mode = clock if isinstance(clock, str) else "object"
        self.clock = None
        self.decoder = Decoder(self.path, start=start, info=info)
        try:
            if not isinstance(clock, str):
                self.clock = clock  # any object with the clock interface (tests)
            elif clock == "stepped":
                self.clock = SteppedClock(start)
            elif clock == "auto":
                self.clock = self._open_clock(start)
            else:
                raise ValueError(f"clock must be 'auto', 'stepped' or a clock object, not {clock!r}")
        except BaseException:
            self.decoder.close()
            raise
        self._resync = self.system_clock

    def _open_clock(self, start: float):
        return open_clock(self.path, self.aid is not None, start, audio=self.audio, notify=self.notify,
                          stream=self.aid or 0)

    @property
    def system_clock(self) -> bool:
        return self.clock.kind == "system clock"

    # --- state -------------------------------------------------------------------------------
    @property
    def position(self) -> float:
        """Media time of the frame on screen (the clock's time before the first one).

        While a seek is pending it is the seek target, so that repeated seek keys add up.
        """
        if self._seek_pos is not None:
            return self._seek_pos
        if self.current is not None and self.current.pts is not None:
            return float(self.current.pts)
        return self.clock.time()

    @property
    def ended(self) -> bool:
        """The file is played to its end (nothing decoded is waiting)."""
        return self._eof and self._pending is None

    @property
    def wants_frame(self) -> bool:
        """Whether a frame should be fetched now: playing, or a seek's frame to show while paused."""
        return not self.paused or self._show_next

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        if paused:
            self.clock.pause()
        else:
            self.clock.resume()
            self._resync = self.system_clock

    def seek(self, t: float) -> float:
        """Jump to ``t`` seconds (clamped to the file); the next frame shown is the first at or after it."""
        end = self.info.duration
        t = max(0.0, float(t))
        if end is not None:
            t = min(t, max(0.0, end - 1.0 / max(1.0, self.info.fps)))
        self.decoder.seek(t)
        self.clock.seek(t)
        self._seek_pos = t
        self._pending = None
        self._eof = False
        self._resync = self.system_clock
        self._show_next = True
        return t

    def set_audio(self, aid: int | None) -> None:
        """Play audio stream ``aid`` (0-based) from the current position, or none (the system clock)."""
        self.aid = aid
        if self._clock_mode != "auto":
            return  # a test's clock or the stepped clock: nothing plays
        pos = self.position
        old = self.clock
        self.clock = self._open_clock(pos)
        old.close()
        if self.paused:
            self.clock.pause()
        self._resync = self.system_clock
        self._show_next = self._show_next or self.paused

    # --- frames ------------------------------------------------------------------------------
    def frame_duration(self, frame) -> float:
        d = frame.extra.get("duration") if frame.extra else None
        return float(d) if d else 1.0 / max(1.0, self.info.fps)

    def _next_decoded(self):
        t0 = time.perf_counter()
        try:
            frame = next(self.decoder)
        except StopIteration:
            self._eof = True
            frame = None
        self.stats.add("decode", time.perf_counter() - t0)
        return frame

    def next_frame(self):
        """The frame to present now, or None (not due yet: waited a little; or end of file)."""
        if self._pending is None:
            self._pending = self._next_decoded()
            if self._pending is None:
                return None
        if self._show_next or (self._resync and self._pending.pts is not None):
            # After a start or seek the first frame defines the time (system clock) or is shown at once.
            if self._resync:
                self.clock.seek(self._pending.pts)
                self._resync = False
            frame, self._pending = self._pending, None
            return self._taken(frame)
        now = self.clock.time()
        # Drop frames whose display interval is already over: skipping them keeps the delay bounded.
        while self._pending.pts is not None and self._pending.pts + self.frame_duration(self._pending) <= now:
            nxt = self._next_decoded()
            if nxt is None:
                break
            self.stats.dropped += 1
            self._pending = nxt
            now = self.clock.time()
        pts = self._pending.pts
        if pts is not None and pts > now:
            self.clock.wait(min(pts - now, 0.01))
            if pts > self.clock.time():
                return None
        frame, self._pending = self._pending, None
        return self._taken(frame)

    def _taken(self, frame):
        self._show_next = False
        self._seek_pos = None
        self.current = frame
        return frame

    def presented(self, frame) -> None:
        """``frame`` is on screen now (the stepped clock advances by it)."""
        self.clock.presented(frame.pts or 0.0, self.frame_duration(frame))
        self.stats.frame_presented(time.monotonic())

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        if self.clock is not None:
            self.clock.close()
            self.clock = None
        self.current = self._pending = None
