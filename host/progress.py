"""Progress reporting for every command that shows it: a bar on a terminal, lines in a log.

``progress(total=..., desc=..., unit=...)`` takes tqdm's arguments and returns a
tqdm bar when the stream (stderr by default) is a terminal. Otherwise (``2>log``,
a pipe, CI, systemd) a bar's carriage-return redraws would pile up as hundreds
of fragments in the file, so it returns a ``LineProgress`` instead: one plain
line every ``interval`` seconds (default 10) and a summary line when it ends::

    bench: 120/480 frames (25%), 8.1 frames/s, 15 s, ~44 s left
    bench: 480/480 frames in 58 s (8.3 frames/s)

Both have the same interface (``update``, ``set_postfix_str``, ``close``, a
context manager, ``n``, ``total``), so callers do not care which they got.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

DEFAULT_INTERVAL = 10.0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress(*, total=None, desc: str | None = None, unit: str = "it", disable: bool = False, file=None,
             interval: float | None = None, **tqdm_kwargs):
    """A tqdm bar on a terminal, else a ``LineProgress`` (same interface, plain lines)."""
    stream = sys.stderr if file is None else file
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=stream, dynamic_ncols=True,
                    **tqdm_kwargs)
    return LineProgress(total=total, desc=desc, unit=unit, disable=disable, file=stream,
                        interval=DEFAULT_INTERVAL if interval is None else interval,
                        initial=tqdm_kwargs.get("initial", 0))


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class LineProgress:
    """tqdm's interface, printing a whole line at most every ``interval`` seconds and a summary at the end."""

    def __init__(self, *, total=None, desc=None, unit="it", disable=False, file=None,
                 interval: float = DEFAULT_INTERVAL, initial: int = 0, clock=time.monotonic):
        self.total = total
        self.desc = desc or ""
        self.unit = unit
        self.disable = disable
        self.file = sys.stderr if file is None else file
        self.interval = float(interval)
        self.n = initial
        self._initial = initial
        self.postfix = ""
        self._clock = clock
        self._start = self._last = clock()
        self._closed = False

    def _rate(self, now: float) -> float | None:
        elapsed = now - self._start
        done = self.n - self._initial
        return done / elapsed if elapsed > 0 and done > 0 else None

    def _print(self, text: str) -> None:
        try:
            print(text, file=self.file, flush=True)
        except (OSError, ValueError):  # the log went away: progress is not worth failing for
            self.disable = True

    def _count(self) -> str:
        units = self.unit if self.unit.endswith("s") else self.unit + "s"
        return f"{self.n}/{self.total} {units}" if self.total else f"{self.n} {units}"

    def _line(self, now: float) -> str:
        head = f"{self.desc}: " if self.desc else ""
        count = self._count()
        if self.total:
            count += f" ({100.0 * self.n / self.total:.0f}%)"
        parts = [count]
        rate = self._rate(now)
        if rate is not None:
            parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(_duration(now - self._start))
        if rate and self.total and self.n < self.total:
            parts.append(f"~{_duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(self.postfix)
        return head + ", ".join(parts)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or self._closed:
            return
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._print(self._line(now))

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def write(self, text: str) -> None:
        """A message line of its own (tqdm.write's role), printed even when progress is off."""
        try:
            print(text, file=self.file, flush=True)
        except (OSError, ValueError):
            pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.disable:
            return
        now = self._clock()
        head = f"{self.desc}: " if self.desc else ""
        count = self._count()
        rate = self._rate(now)
        speed = f" ({rate:.3g} {self.unit}/s)" if rate is not None else ""
        self._print(f"{head}{count} in {_duration(now - self._start)}{speed}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # an error or Ctrl-C: its own line says what happened, no summary
