"""The numbers the player's overlay (key i) shows, and how they are measured.

``Readout`` owns the measuring while the overlay is on: the renderer's
per-stage profiling for the upload, the present time, and the first-frame
latency; the network row is the player's ``NetworkMeter`` (host/gltimer.py: GL
timer queries around the network's hook passes alone, or the CPU's clock on a
software renderer), which the player polls and hands over. ``lines(player)``
formats them, marking values shown while paused as stale, and adds what
``--model auto`` runs and why (host/automodel.py). Nothing is measured for the
overlay while it is off.
"""

from __future__ import annotations

from pathlib import Path


class Readout:
    def __init__(self, stats):
        self.stats = stats
        self.first_frame_s: float | None = None   # start to first picture on screen
        self.network_passes = 0                   # hook passes the last timed frame ran

    def enable(self, renderer, on: bool) -> None:
        """Measure ``renderer``'s upload by its profiling (a GPU sync per stage), or stop."""
        renderer.profile = on

    def collect(self, renderer, has_frame: bool, times: dict, now: float, network=()) -> None:
        """After a present: the stage times of that frame (``times``: host/presenter.Scene.times) and the
        network's (``network``: the meter's (seconds, passes) since the last present)."""
        st = renderer.stage_times
        if has_frame:
            self.stats.add("upload", st.get("upload", 0.0) + st.get("unpack", 0.0))
        for seconds, passes in network:
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
        else:
            twice = ", twice" if p.network_stages > 1 else ""   # a model's x4 file beyond 2.2x per side
            net = f"network {v('network')} ({p.meter.label}, {self.network_passes} passes{twice})"
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
            f"{p.label[:30]}{' x4' if p.network_stages > 1 else ''}   network {'on' if p.network else 'off'}   "
            f"clock: {p.clock.kind}",
            f"{p.subtitles.describe()[:40]}   {audio}",
        ]
        if p.auto is not None:
            lines += p.auto.lines(p.network_stages)
        if stale:
            lines.append("paused: * = last values before the pause")
        return lines
