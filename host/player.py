"""``upshade play FILE``: play a video upscaled live through hook shaders in a GLFW window.

The player is built from small parts, each with one job:

* host/playback.py ``Scheduler``: the decoder thread, the clock (audio or
  system), which frame is due, drops, pause, seek, the audio track;
* host/presenter.py ``Presenter``: where a frame is drawn (video, compare
  halves and their labels, subtitles, the overlay, the buffer swap);
* host/input.py ``InputHandler``: where a key press goes (the bindings);
* host/subtitles.py ``Subtitles``: subtitle tracks and what shows when;
* host/readout.py ``Readout``: the overlay's numbers (stage times, the network's
  time, first-frame latency) and its text;
* host/gltimer.py ``NetworkMeter``: the network passes' time per frame (GL timer
  queries, or the CPU's clock on software renderers), for the overlay and auto;
* host/automodel.py ``AutoPlay``: ``--model auto``, the ladder of models
  (host/ladder.py) switched by the measured time;
* ``Player`` (here) holds them together with the window and one Renderer per
  shader entry, keeps the user-visible state (paused, compare, network, ...)
  and offers the actions the bindings call.

``Player.step`` runs one iteration (events, the due frame, drawing); it is
public so that tests can drive playback one iteration at a time with a
deterministic clock.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import av
import moderngl
import numpy as np

from . import automodel
from .chain import MAX_ENTRIES, add_model_arguments, add_param_arguments, parse_params, shader_chain
from .errors import UpshadeError
from .gltimer import NetworkMeter
from .gpu import shader_form
from .input import HELP, SEEK_LARGE, SEEK_SMALL, InputHandler  # noqa: F401 - re-exported
from .pipeline import Renderer
from .playback import Scheduler, Stats, audio_streams  # noqa: F401 - Stats re-exported
from .presenter import Presenter, Scene, write_screenshot
from .readout import Readout
from .subtitles import Subtitles
from .video import probe
from .window import Rect, Window, initial_window_size, letterbox

OSD_SECONDS = 2.0   # how long a track or visibility change is announced on screen


def sample_aspect_ratio(path) -> float:
    """Pixel aspect ratio (width / height of one pixel) of the first video stream; 1.0 when unknown."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    except (av.FFmpegError, OSError, IndexError):
        return 1.0
    if not sar or sar.numerator <= 0 or sar.denominator <= 0:
        return 1.0
    value = float(sar)
    return value if 0.1 <= value <= 10.0 else 1.0  # absurd tags: ignore rather than squash the picture


@dataclass
class Entry:
    """One switchable shader chain (a key 1-9): its label and its Renderer, created once."""

    label: str
    renderer: object


def process_age() -> float:
    """Seconds since this process started (interpreter start-up and imports included); 0 if unknown."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])   # field 22 of stat(5): start time, clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def choose_audio(n_tracks: int, aid) -> tuple[int | None, str | None]:
    """(0-based audio stream or None, warning) for ``--aid`` "auto" / "no" / N (1-based, as mpv)."""
    aid = "auto" if aid is None else str(aid).strip().lower()
    if aid == "no" or n_tracks == 0:
        return None, None
    if aid == "auto":
        return 0, None
    try:
        n = int(aid)
    except ValueError:
        return None, f"--aid {aid}: not a track number, 'auto' or 'no'; playing without sound"
    if not 1 <= n <= n_tracks:
        return None, f"--aid {n}: no such audio track (the file has {n_tracks}); playing without sound"
    return n - 1, None


class Player:
    """A playback session: window, scheduler, presenter, input, subtitles, one Renderer per shader entry.

    ``entries`` is a list of ``(label, [ShaderFile, ...])``: each is one chain that
    keys 1-9 switch to; an empty list means plain bicubic. The list may also be a
    callable taking the window's GL context (our models pick their export by
    renderer). ``clock="stepped"`` makes time advance only by presented frames
    (deterministic, never sleeps); ``clock`` may also be a clock object (see
    host/clock.py). ``subs``: external subtitle files (``--sub``); ``sub_auto``: load
    same-name files beside the video; ``sid``/``aid``: "auto", "no" or a track number
    as mpv numbers them. ``subtitle_wait``: how long the first frame after a start or seek
    waits for its subtitles to be read (None: always wait; tests). ``started_at``: the
    ``time.perf_counter()`` the first-frame latency counts from (default: now). ``auto``: a
    host/ladder.Ladder whose rungs are the first entries, in order: ``--model auto`` (keys 1-9 pin).
    """

    def __init__(
        self,
        path,
        entries: Sequence[tuple[str, Sequence]] = (),
        *,
        params=None,
        fbo_format: str = "auto",
        audio: bool = True,
        fullscreen: bool = False,
        compare: bool = False,
        screenshot_dir=".",
        clock="auto",
        vsync: bool = True,
        visible: bool = True,
        window_size: tuple[int, int] | None = None,
        start: float = 0.0,
        notify=None,
        subs: Sequence = (),
        sub_auto: bool = True,
        sid="auto",
        aid="auto",
        subtitle_wait: float | None = 0.25,
        started_at: float | None = None,
        auto=None,
    ):
        self.started_at = time.perf_counter() if started_at is None else started_at
        self.path = Path(path)
        self.info = probe(self.path)  # MediaError for a missing or non-video file, before any window
        self.screenshot_dir = Path(screenshot_dir)
        if not self.screenshot_dir.is_dir():
            raise UpshadeError(f"{self.screenshot_dir}: screenshot directory does not exist")
        self._notify = notify or (lambda m: print(m, file=sys.stderr))
        self._init_picture()
        self._init_state(compare)
        aid_index = self._choose_audio(aid)
        self._init_resources()
        self.auto = automodel.AutoPlay(auto) if auto is not None else None
        try:
            self._open_window(window_size, vsync, visible)
            self._create_renderers(entries, params, fbo_format)
            if self.auto is not None:
                self._start_on_ladder()
            self.meter = NetworkMeter(self.ctx)
            self._measure()
            self.presenter = Presenter(self.window)
            self.scheduler = Scheduler(self.path, self.info, start=start, clock=clock, audio=audio,
                                       aid=aid_index, notify=self._notify, stats=self.stats)
            self._open_subtitles(subs, sub_auto, sid, subtitle_wait, start)
            self.input = InputHandler(self)
            if fullscreen:
                self.window.set_fullscreen(True)
            self._update_title()
        except BaseException:
            self.close()   # releases what was created so far
            raise

    # --- set-up (in __init__'s order) --------------------------------------------------------
    def _init_picture(self) -> None:
        """How the video is shown: its rotation and its size on screen."""
        self.rotation = self.info.rotation % 360
        # Anamorphic video (DVD: 720x480 at 8:9) is shown with square pixels, as mpv does:
        # the width is scaled by the sample aspect ratio, the height kept.
        self.sample_aspect = sample_aspect_ratio(self.path)
        w, h = max(1, round(self.info.width * self.sample_aspect)), self.info.height
        self.display_size = (h, w) if self.rotation in (90, 270) else (w, h)

    def _init_state(self, compare: bool) -> None:
        """The user-visible state, the counters and what the loop has left to redraw."""
        self.network = True
        self.compare = bool(compare)
        self.show_info = False
        self.divider = 0.5
        self.entry_index = 0
        self.screenshots: list[Path] = []
        self.stats = Stats()
        self.readout = Readout(self.stats)   # the overlay's numbers (measured while it shows)
        self._idle = False            # nothing to draw last step: wait for events instead of spinning
        self._dirty = True
        self._dirty_info = True       # refresh the overlay text now (state changed)
        self._quit = False
        self._osd: tuple[str, float] | None = None

    def _choose_audio(self, aid) -> int | None:
        """The file's audio tracks, and the one ``--aid`` asks for (0-based; None: none, with a warning
        when the request cannot be met)."""
        self.audio_tracks = audio_streams(self.path) if self.info.has_audio else []
        aid_index, warning = choose_audio(len(self.audio_tracks), aid)
        if warning:
            self._notify(f"upshade: warning: {warning}")
        return aid_index

    def _init_resources(self) -> None:
        """Nothing created yet: from here on :meth:`close` releases whatever has been."""
        self.window = None
        self.scheduler = None
        self.presenter = None
        self.subtitles = None
        self.entries: list[Entry] = []
        self.meter = None

    def _open_window(self, window_size, vsync: bool, visible: bool) -> None:
        """The window (``window_size``, or sized to the picture and the screen) and its GL context."""
        dw, dh = self.display_size
        size = window_size or (lambda area: initial_window_size(dw, dh, area))
        self.window = Window(size, self._title(), vsync=vsync, visible=visible)
        self.ctx: moderngl.Context = self.window.ctx

    def _create_renderers(self, entries, params, fbo_format: str) -> None:
        """One Renderer per shader entry (plain bicubic without any), each added as soon as it is built."""
        for label, files in entries or [("bicubic", [])]:
            files = files(self.ctx) if callable(files) else files
            # The window is 8 bits per channel: an 8-bit output is as good and cheaper to write.
            self.entries.append(Entry(label, Renderer(self.ctx, list(files), params=params, fbo_format=fbo_format,
                                                      output="unorm8")))

    def _start_on_ladder(self) -> None:
        """``--model auto``: the first entries are the ladder's rungs; show the one it starts on."""
        if len(self.entries) < len(self.auto.ladder.rungs):
            raise ValueError("--model auto: fewer entries than the ladder has rungs")
        self.entry_index = self.auto.rung

    def _open_subtitles(self, subs, sub_auto: bool, sid, wait: float | None, start: float) -> None:
        """The subtitle tracks (embedded, ``subs`` files and same-name files), ready at ``start``."""
        self.subtitles = Subtitles(self.path, self.info, external=subs, auto_load=sub_auto, sid=sid,
                                   notify=self._notify, display_size=self.display_size, wait=wait)
        if start:
            self.subtitles.seek(start)

    # --- state -------------------------------------------------------------------------------
    @property
    def renderer(self):
        return self.entries[self.entry_index].renderer

    @property
    def label(self) -> str:
        return self.entries[self.entry_index].label

    @property
    def clock(self):
        return self.scheduler.clock if self.scheduler is not None else None

    @property
    def _system_clock(self) -> bool:
        return self.scheduler.system_clock

    @property
    def current(self):
        return self.scheduler.current if self.scheduler is not None else None

    @property
    def paused(self) -> bool:
        return self.scheduler.paused if self.scheduler is not None else False

    @property
    def audio_track(self) -> int | None:
        """The audio track playing, 1-based as ``--aid`` (None: none)."""
        aid = self.scheduler.aid
        return None if aid is None else aid + 1

    @property
    def position(self) -> float:
        """Media time of the frame on screen (the seek target while a seek is pending)."""
        return self.scheduler.position

    @property
    def video_rect(self) -> Rect:
        fw, fh = self.window.framebuffer_size()
        return letterbox(fw, fh, *self.display_size)

    def _title(self) -> str:
        parts = [self.path.name]
        if self.entries:
            parts.append(self.label)
        state = ["paused" if self.paused else "playing", f"network {'on' if self.network else 'off'}"]
        if self.compare:
            state.append(f"compare: bicubic | {self.label if self.entries else 'network'}")
        if self.subtitles is not None:
            state.append(self.subtitles.describe())
        return " - ".join(parts) + " [" + ", ".join(state) + "] - upshade"

    def _update_title(self) -> None:
        self.window.set_title(self._title())
        self._dirty = self._dirty_info = True

    def _announce(self, text: str) -> None:
        """Show ``text`` on screen for a moment (a track or visibility change)."""
        self._osd = (text, time.monotonic() + OSD_SECONDS)
        self._update_title()

    # --- actions (what the key bindings call, see host/input.py) ------------------------------
    def handle_key(self, key: int, repeat: bool = False) -> None:
        """React to a GLFW key code (glfw.KEY_*); auto-repeat only moves seeks."""
        self.input.key(key, repeat)

    def handle_char(self, ch: str) -> None:
        """React to a typed character (mpv's bindings by character: v, j, J, #)."""
        self.input.char(ch)

    def handle_mouse(self, x: float, y: float, pressed: bool) -> None:
        """Left-button state at window position (x, y) (top-left origin): a drag moves the compare divider."""
        self.input.mouse(x, y, pressed)

    def quit(self) -> None:
        self._quit = True
        self.window.request_close()

    def toggle_pause(self) -> None:
        self.set_paused(not self.paused)

    def set_paused(self, paused: bool) -> None:
        self.scheduler.set_paused(paused)
        self._update_title()

    def seek(self, t: float) -> None:
        """Jump to ``t`` seconds (clamped to the file); the next frame shown is the first at or after it."""
        t = self.scheduler.seek(t)
        self.subtitles.seek(t)
        if self.auto is not None:
            self.auto.seeked()

    def seek_by(self, dt: float) -> None:
        self.seek(self.position + dt)

    def toggle_fullscreen(self) -> None:
        self.window.set_fullscreen(not self.window.fullscreen)
        self._dirty = True

    def toggle_compare(self) -> None:
        self.compare = not self.compare
        self._update_title()

    def toggle_network(self) -> None:
        self.network = not self.network
        self._update_title()

    def toggle_info(self) -> None:
        self.show_info = not self.show_info
        self.readout.enable(self.renderer, self.show_info)
        self._measure()
        self._dirty = self._dirty_info = True

    def select_entry(self, index: int) -> None:
        """Keys 1-9: show chain ``index``; it stays (``--model auto`` stops choosing)."""
        if index < len(self.entries):
            if self.auto is not None:
                self.auto.active = False
            self._show_entry(index)

    def resume_auto(self) -> None:
        """Key a: ``--model auto`` chooses again (after a key 1-9 pinned a chain)."""
        if self.auto is not None and not self.auto.active:
            self.auto.resume(self.stats.dropped)
            self._show_entry(self.auto.rung)
            self._announce(f"auto: {self.label}")

    def _show_entry(self, index: int) -> None:
        if index != self.entry_index:
            self.readout.enable(self.renderer, False)
            self.entry_index = index
            self.readout.enable(self.renderer, self.show_info)
            self._measure()
            self._update_title()

    def _measure(self) -> None:
        """Time the network of the chain on screen while the overlay or ``--model auto`` needs it."""
        needed = self.show_info or (self.auto is not None and self.auto.active)
        self.meter.attach(self.renderer if needed else None)

    def toggle_subtitles(self) -> None:
        """mpv's ``v``."""
        visible = self.subtitles.toggle()
        self._announce("subtitles visible" if visible else "subtitles hidden")

    def cycle_subtitles(self, step: int = 1) -> None:
        """mpv's ``j`` (``J`` backwards): the next subtitle track, then off."""
        track = self.subtitles.cycle(step)
        self._announce(f"subtitles {track.describe()}" if track is not None else "subtitles off")

    def cycle_audio(self, step: int = 1) -> None:
        """mpv's ``#``: the next audio track, then none."""
        n = len(self.audio_tracks)
        if n == 0:
            self._announce("audio: the file has none")
            return
        options = list(range(n)) + [None]
        cur = self.scheduler.aid
        nxt = options[(options.index(cur) + step) % len(options)]
        self.scheduler.set_audio(nxt)
        self._announce("audio off" if nxt is None else f"audio {nxt + 1}: {self.audio_tracks[nxt]}")

    def drag_divider(self, x: float, y: float) -> None:
        if not self.compare:
            return
        fx, _fy = self.window.to_framebuffer(x, y)
        rect = self.video_rect
        if rect.w > 0:
            self.divider = min(1.0, max(0.0, (fx - rect.x) / rect.w))
            self._dirty = True

    # --- the loop ---------------------------------------------------------------------------
    def step(self) -> bool:
        """One iteration: handle input, present the due frame (or redraw); False when playback is over."""
        self.window.make_current()
        self.input.dispatch(self.window.poll(0.05 if self._idle else None))
        if self._quit or self.window.should_close:
            return False
        if self.window.resized:
            self.window.resized = False
            self._dirty = True
        if self._osd is not None and time.monotonic() > self._osd[1]:
            self._osd = None
            self._dirty = True
        new = None
        if self.scheduler.wants_frame:
            new = self.scheduler.next_frame()
            if new is None and self.scheduler.ended:
                return False
        if new is not None:
            self._dirty = True
        self._idle = False
        if self._dirty:
            self.present()
            if new is not None:
                self.scheduler.presented(new)
                if self.readout.first_frame_s is None:
                    self.readout.first_frame_s = time.perf_counter() - self.started_at
                    self._dirty_info = True
        elif self.paused:
            self._idle = True  # nothing to do until an event: the next step sleeps in the window system
        return True

    @property
    def stopped_by_user(self) -> bool:
        """Whether playback ended on a quit key or the window's close button (not at the end of the file)."""
        return self._quit or self.window.should_close

    def run(self, max_frames: int | None = None, until: float | None = None) -> None:
        """Play until the end, a quit key, ``max_frames`` presented frames or position ``until`` seconds."""
        start = self.stats.presented
        while self.step():
            if max_frames is not None and self.stats.presented - start >= max_frames:
                break
            if until is not None and self.current is not None and self.position >= until:
                break

    # --- drawing ----------------------------------------------------------------------------
    @property
    def first_frame_s(self) -> float | None:
        """Seconds from start to the first picture on screen (None before it)."""
        return self.readout.first_frame_s

    @property
    def network_passes(self) -> int:
        return self.readout.network_passes

    @property
    def network_stages(self) -> int:
        """How many times the last frame drawn doubled the luma in its hook passes: 2 where a model's x4
        file ran the network twice (the window beyond 2.2x the source per side), 1 once, 0 none."""
        return automodel.stages_run(self.renderer)

    @property
    def render_size(self) -> tuple[int, int]:
        """The size frames are rendered at: the video rectangle, turned for a rotated video."""
        rect = self.video_rect
        return (rect.h, rect.w) if self.rotation in (90, 270) else (rect.w, rect.h)

    def _render(self, frame, size, enabled: bool):
        tex = self.renderer.render(frame, size, frame_index=frame.index, enabled=enabled)
        self.meter.rendered((self.entry_index, enabled, tuple(size)))
        return tex

    def present(self, capture: bool = False) -> np.ndarray | None:
        """Draw the current frame into the window and swap; with ``capture``, return the window's
        pixels as drawn (HxWx3 uint8, rows top-down) read back before the swap."""
        self._dirty = False
        osd = self._osd[0] if self._osd is not None else None
        scene = Scene(
            frame=self.current, render=self._render, rect=self.video_rect, rotation=self.rotation,
            network=self.network, compare=self.compare, divider=self.divider,
            labels=("bicubic", Path(self.label).stem), subtitles=self.subtitles,
            info=self._info_lines if self.show_info else None, force_info=self._dirty_info, osd=osd)
        self._dirty_info = False
        image = self.presenter.present(scene, capture=capture)
        network = self.meter.poll()
        if self.show_info:
            self.readout.collect(self.renderer, self.current is not None, scene.times, time.perf_counter(), network)
        if self.auto is not None and self.auto.active and self.network and self.current is not None:
            rect = self.video_rect
            change = self.auto.frame(network, has_network=bool(self.renderer.shaders), dropped=self.stats.dropped,
                                     key=(rect.w, rect.h))
            if change is not None:
                self._show_entry(change.rung)
        return image

    def _info_lines(self) -> list[str]:
        return self.readout.lines(self)

    # --- screenshots ------------------------------------------------------------------------
    def screenshot(self) -> Path | None:
        """Write the current frame upscaled x2 (the pipeline output, not the window) as a PNG.

        x2 of the display size: rotated and with square pixels, like the picture in the window.
        """
        frame = self.current
        if frame is None:
            return None
        self.window.make_current()
        label = Path(self.label).stem if self.network else "bicubic"
        out = write_screenshot(self.renderer, frame, display_size=self.display_size, rotation=self.rotation,
                               network=self.network, label=label, video=self.path, folder=self.screenshot_dir)
        self.meter.discard()   # the screenshot's passes are not a frame's
        self.screenshots.append(out)
        self._notify(f"upshade: screenshot written to {out}")
        self._dirty = True
        return out

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release everything (GL objects, decoder, audio, subtitles) and terminate GLFW; safe to call twice."""
        try:
            if self.window is not None:
                self.window.make_current()  # the GL objects below belong to this window's context
            if self.scheduler is not None:
                self.scheduler.close()
            if self.subtitles is not None:
                self.subtitles.close()
            if self.meter is not None:
                self.meter.release()
                self.meter = None
            for e in self.entries:
                e.renderer.release()
            self.entries = []
            if self.presenter is not None:
                self.presenter.release()
                self.presenter = None
        finally:
            if self.window is not None:
                self.window.close()
                self.window = None

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="video file to play")
    add_model_arguments(parser, "mpv user shader; repeat to load several and switch with keys 1-9", auto=True)
    parser.add_argument("--compare", action="store_true", help="start in split-screen compare mode (bicubic | network)")
    parser.add_argument("--no-audio", action="store_true", help="do not play sound (time by the system clock)")
    parser.add_argument("--fullscreen", action="store_true", help="start fullscreen")
    add_param_arguments(parser)
    parser.add_argument("--screenshot-dir", default=".", metavar="DIR", help="where the s key writes PNGs (default: .)")
    parser.add_argument("--sub", action="append", default=[], metavar="FILE",
                        help="external subtitle file (.ass/.ssa/.srt/.vtt; repeatable), as mpv's --sub-file")
    parser.add_argument("--sub-auto", choices=("exact", "no"), default="exact",
                        help="load same-name subtitle files beside the video (video.srt, video.en.ass; default exact)")
    parser.add_argument("--sid", default="auto", metavar="N|no|auto",
                        help="subtitle track to show, numbered as mpv: embedded tracks first, then files (default auto)")
    parser.add_argument("--aid", default="auto", metavar="N|no|auto", help="audio track to play (default auto: the first)")
    parser.epilog = HELP


def run(args) -> int:
    started = time.perf_counter() - process_age()
    params = parse_params(args.param)
    info = probe(args.file)  # a bad file is reported before shaders are compiled or a window opens
    # --model auto, the player's default (no --model, --shader or --no-model): the ladder of models.
    auto = automodel.is_auto(args.model) or not (args.model or args.shader or args.no_model)
    chain = shader_chain(None if auto else args.model, args.shader, args.no_model or auto)
    entries = automodel.entries(info, chain.files) if auto else chain.entries(info)
    if len(entries) > MAX_ENTRIES:
        raise UpshadeError(f"{len(chain.files)} shaders with --model auto: its {len(entries) - len(chain.files)} "
                           f"chains and the shaders share keys 1-{MAX_ENTRIES}")
    ladder = automodel.new_ladder(info, info.fps) if auto else None
    with Player(args.file, entries, params=params, fbo_format=args.fbo_format, audio=not args.no_audio,
                fullscreen=args.fullscreen, compare=args.compare, screenshot_dir=args.screenshot_dir,
                subs=args.sub, sub_auto=args.sub_auto != "no", sid=args.sid, aid=args.aid,
                started_at=started, auto=ladder) as player:
        rect = player.video_rect
        in_size, out_size = (info.width, info.height), (rect.w, rect.h)
        line = automodel.describe(info, shader_form(player.ctx)[0], in_size, out_size) if auto else \
            chain.describe(player.renderer.shaders, in_size, out_size, info)
        if auto or chain.model_for(info):
            line += f", {automodel.stages_note(in_size, player.render_size)}"
        print(line, file=sys.stderr)
        player.run()
    return 0
