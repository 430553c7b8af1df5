"""The numbers the player's overlay (key i) shows, and how they are measured.

``Readout`` owns the measuring while the overlay is on: the renderer's
per-stage profiling for the upload, GL timer queries around the network's hook
passes alone (host/gltimer.py) for the network row, the present time, and the
first-frame latency; ``lines(player)`` formats them, marking values shown
while paused as stale. Nothing is measured while the overlay is off.
"""

from __future__ import annotations

from pathlib import Path

from . import gltimer


class Readout:
    def __init__(self, stats):
        self.stats = stats
        self.first_frame_s: float | None = None   # start to first picture on screen
        self.network_passes = 0                   # hook passes the last timed frame ran
        self._timer = None                        # gltimer.PassTimer, made when the overlay first shows
        self._rendered: set[tuple] = set()        # (entry, enabled, size) rendered at least once
        self._unavailable = ""                    # why the network row has no time

    def enable(self, renderer, on: bool) -> None:
        """Measure ``renderer``'s frames (or stop): upload by the renderer's profiling (a GPU sync per
        stage), the network by GL timer queries of its passes alone."""
        renderer.profile = on
        if on and self._timer is None:
            try:
                self._timer = gltimer.PassTimer()
            except OSError:
                self._timer = None
        if on and (self._timer is None or not gltimer.attach(renderer, self._timer)):
            self._unavailable = "n/a (no GL timer queries)"
        elif not on:
            gltimer.attach(renderer, None)

    def rendered(self, key: tuple) -> None:
        """A render of ``key`` = (entry, enabled, size) just ran. Its first one compiles its passes and
        allocates textures as they first run: timed, but only steady frames are reported."""
        if self._timer is not None:
            self._timer.end_frame(keep=key in self._rendered)
            self._rendered.add(key)

    def collect(self, renderer, has_frame: bool, times: dict, now: float) -> None:
        """After a present: the stage times of that frame (``times``: host/presenter.Scene.times)."""
        st = renderer.stage_times
        if has_frame:
            self.stats.add("upload", st.get("upload", 0.0) + st.get("unpack", 0.0))
        if self._timer is not None:
            for seconds, passes in self._timer.poll():
                if passes:
                    self.stats.add("network", seconds)
                    self.network_passes = passes
        # Present: blit, divider, subtitles, overlay and swap (the render's GPU work was finished by its profiling).
        self.stats.add("present", now - times.get("rendered", now) - times.get("capture", 0.0))

    def lines(self, p) -> list[str]:
        """The overlay's text for player ``p``."""
        ms = self.stats.ms
        stale = "*" if p.paused else ""   # timings shown while paused are the last frame's

        def v(stage: str) -> str:
            return f"{ms[stage]:6.2f} ms{stale}" if stage in ms else "     - ms"

        if not (p.network or p.compare):
            net = "network off"
        elif not p.renderer.shaders:
            net = "network none (bicubic)"
        elif self._unavailable:
            net = f"network {self._unavailable}"
        else:
            net = f"network {v('network')} (GPU timer, {self.network_passes} passes)"
        first = f"{self.first_frame_s:.2f} s" if self.first_frame_s is not None else "-"
        audio = f"audio {p.audio_track}: {p.audio_tracks[p.audio_track - 1]}" \
            if p.audio_track is not None else "audio off"
        rect = p.video_rect
        lines = [
            f"{Path(p.path).name[:40]}  {p.info.width}x{p.info.height} -> {rect.w}x{rect.h}",
            f"t {p.position:8.3f} s   fps {self.stats.fps:5.1f}{stale}   dropped {self.stats.dropped}",
            f"decode {v('decode')}   upload {v('upload')}   present {v('present')}",
            net,
            f"first frame {first} after start",
            f"{p.label[:30]}   network {'on' if p.network else 'off'}   clock: {p.clock.kind}",
            f"{p.subtitles.describe()[:40]}   {audio}",
        ]
        if stale:
            lines.append("paused: * = last values before the pause")
        return lines

    def release(self) -> None:
        if self._timer is not None:
            self._timer.release()
            self._timer = None
