"""``upshade play FILE``: play a video upscaled live through hook shaders in a GLFW window.

The loop is single-threaded on the GL side: decoding runs in the Decoder's
thread and audio in PortAudio's, while ``Player.step`` takes the frame that is
due on the clock (dropping the ones already too late), renders it through the
Renderer of the selected shader entry at the size of the letterboxed video
rectangle, and blits it 1:1 to the window. ``step`` is public so that tests can
drive playback one iteration at a time with a deterministic clock.
"""

from __future__ import annotations

import collections
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import moderngl
import numpy as np

from .errors import UpshadeError
from .window import KeyEvent, MouseEvent, Rect, Window, collect_garbage, initial_window_size, letterbox

SEEK_SMALL = 5.0
SEEK_LARGE = 60.0
STAT_ALPHA = 0.1  # smoothing of the per-stage timings shown by the overlay

_BLIT_VS = """
#version 430
void main() {
    vec2 p = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2);
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
"""

# Draws the pipeline output 1:1 into the video rectangle: texel rows run top-down (row 0 is the
# picture's top, as Renderer.read_rgb reads them) while window rows run bottom-up. ``rotation``
# (clockwise degrees) turns the picture for display; the texture is then rect-sized after turning.
_BLIT_FS = """
#version 430
layout(binding = 0) uniform sampler2D src;
uniform ivec4 rect;      // x, y, w, h of the video rectangle in window pixels
uniform int rotation;
out vec4 color;
void main() {
    ivec2 d = ivec2(floor(gl_FragCoord.xy)) - rect.xy;
    d.y = rect.w - 1 - d.y;                      // (column, row) in display space, rows top-down
    ivec2 s;
    if (rotation == 90)       s = ivec2(d.y, rect.z - 1 - d.x);
    else if (rotation == 180) s = ivec2(rect.z - 1 - d.x, rect.w - 1 - d.y);
    else if (rotation == 270) s = ivec2(rect.w - 1 - d.y, d.x);
    else                      s = d;
    color = vec4(texelFetch(src, s, 0).rgb, 1.0);
}
"""


def sample_aspect_ratio(path) -> float:
    """Pixel aspect ratio (width / height of one pixel) of the first video stream; 1.0 when unknown."""
    import av

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


class Player:
    """A playback session: window, decoder, clock, one Renderer per shader entry.

    ``entries`` is a list of ``(label, [ShaderFile, ...])``: each is one chain that
    keys 1-9 switch to; an empty list means plain bicubic. The list may also be a
    callable taking the window's GL context (our models pick their export by
    renderer). ``clock="stepped"`` makes time advance only by presented frames
    (deterministic, never sleeps); ``clock`` may also be a clock object (see
    host/clock.py).
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
    ):
        from .video import Decoder, probe

        self.path = Path(path)
        self.info = probe(self.path)  # MediaError for a missing or non-video file, before any window
        self.screenshot_dir = Path(screenshot_dir)
        if not self.screenshot_dir.is_dir():
            raise UpshadeError(f"{self.screenshot_dir}: screenshot directory does not exist")
        self._notify = notify or (lambda m: print(m, file=sys.stderr))
        self.rotation = self.info.rotation % 360
        # Anamorphic video (DVD: 720x480 at 8:9 pixels) is shown with square pixels, as mpv does:
        # the width is scaled by the sample aspect ratio, the height kept.
        self.sample_aspect = sample_aspect_ratio(self.path)
        w, h = max(1, round(self.info.width * self.sample_aspect)), self.info.height
        self.display_size = (h, w) if self.rotation in (90, 270) else (w, h)
        self.paused = False
        self.network = True
        self.compare = bool(compare)
        self.show_info = False
        self.divider = 0.5
        self.entry_index = 0
        self.screenshots: list[Path] = []
        self.stats = Stats()
        self.current = None           # the Frame on screen
        self._pending = None          # decoded, not yet due
        self._eof = False
        self._resync = False          # set the system clock from the next frame (start, seek)
        self._idle = False            # nothing to draw last step: wait for events instead of spinning
        self._show_next = False       # present one frame even while paused (after a seek)
        self._seek_pos: float | None = None  # target of a seek whose first frame is not shown yet
        self._info_at = -1.0          # when the overlay text was last refreshed
        self._dirty_info = True       # refresh it now (state changed)
        self._dirty = True
        self._quit = False
        self.window = None
        self.decoder = None
        self.clock = None
        self.entries: list[Entry] = []
        self._blit = self._blit_vao = self._overlay = None
        try:
            dw, dh = self.display_size
            size = window_size or (lambda area: initial_window_size(dw, dh, area))
            self.window = Window(size, self._title(), vsync=vsync, visible=visible)
            self.ctx: moderngl.Context = self.window.ctx
            from .pipeline import Renderer

            for label, files in entries or [("bicubic", [])]:
                files = files(self.ctx) if callable(files) else files
                # The window is 8 bits per channel: an 8-bit output is as good and cheaper to write.
                self.entries.append(Entry(label, Renderer(self.ctx, list(files), params=params, fbo_format=fbo_format,
                                                          output="unorm8")))
            self._blit = self.ctx.program(vertex_shader=_BLIT_VS, fragment_shader=_BLIT_FS)
            self._blit_vao = self.ctx.vertex_array(self._blit, [])
            from .overlay import TextOverlay

            self._overlay = TextOverlay(self.ctx)
            self.decoder = Decoder(self.path, start=start, info=self.info)
            if not isinstance(clock, str):
                self.clock = clock  # any object with the clock interface (tests)
            elif clock == "stepped":
                from .clock import SteppedClock

                self.clock = SteppedClock(start)
            elif clock == "auto":
                from .audio import open_clock

                self.clock = open_clock(self.path, self.info.has_audio, start, audio=audio, notify=self._notify)
            else:
                raise ValueError(f"clock must be 'auto', 'stepped' or a clock object, not {clock!r}")
            self._system_clock = self.clock.kind == "system clock"
            self._resync = self._system_clock
            if fullscreen:
                self.window.set_fullscreen(True)
            self._update_title()
        except BaseException:
            self.close()
            raise

    # --- state -------------------------------------------------------------------------------
    @property
    def renderer(self):
        return self.entries[self.entry_index].renderer

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
    def video_rect(self) -> Rect:
        fw, fh = self.window.framebuffer_size()
        return letterbox(fw, fh, *self.display_size)

    def _title(self) -> str:
        parts = [self.path.name]
        if self.entries:
            parts.append(self.entries[self.entry_index].label)
        state = ["paused" if self.paused else "playing", f"network {'on' if self.network else 'off'}"]
        if self.compare:
            state.append("compare: bicubic | network")
        return " - ".join(parts) + " [" + ", ".join(state) + "] - upshade"

    def _update_title(self) -> None:
        self.window.set_title(self._title())
        self._dirty = self._dirty_info = True

    # --- input ------------------------------------------------------------------------------
    def handle_key(self, key: int, repeat: bool = False) -> None:
        """React to a GLFW key code (glfw.KEY_*); auto-repeat only moves seeks."""
        import glfw

        seeks = {glfw.KEY_LEFT: -SEEK_SMALL, glfw.KEY_RIGHT: SEEK_SMALL, glfw.KEY_DOWN: -SEEK_LARGE, glfw.KEY_UP: SEEK_LARGE}
        if key in seeks:
            self.seek(self.position + seeks[key])
            return
        if repeat:
            return
        if key in (glfw.KEY_Q, glfw.KEY_ESCAPE):
            self._quit = True
            self.window.request_close()
        elif key == glfw.KEY_SPACE:
            self.set_paused(not self.paused)
        elif key == glfw.KEY_F:
            self.window.set_fullscreen(not self.window.fullscreen)
            self._dirty = True
        elif key == glfw.KEY_C:
            self.compare = not self.compare
            self._update_title()
        elif key == glfw.KEY_N:
            self.network = not self.network
            self._update_title()
        elif key == glfw.KEY_I:
            self.show_info = not self.show_info
            self._dirty_info = True
            for e in self.entries:
                e.renderer.profile = self.show_info  # per-stage timing costs a GPU sync: only while shown
            self._dirty = True
        elif key == glfw.KEY_S:
            self.screenshot()
        elif glfw.KEY_1 <= key <= glfw.KEY_9:
            index = key - glfw.KEY_1
            if index < len(self.entries) and index != self.entry_index:
                self.entry_index = index
                self.renderer.profile = self.show_info
                self._update_title()

    def handle_mouse(self, x: float, y: float, pressed: bool) -> None:
        """Left-button state at window position (x, y) (top-left origin): a drag moves the compare divider."""
        if not (pressed and self.compare):
            return
        fx, _fy = self.window.to_framebuffer(x, y)
        rect = self.video_rect
        if rect.w > 0:
            self.divider = min(1.0, max(0.0, (fx - rect.x) / rect.w))
            self._dirty = True

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        if paused:
            self.clock.pause()
        else:
            self.clock.resume()
            self._resync = self._system_clock
        self._update_title()

    def seek(self, t: float) -> None:
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
        self._resync = self._system_clock
        self._show_next = True

    # --- the loop ---------------------------------------------------------------------------
    def _frame_duration(self, frame) -> float:
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

    def _due_frame(self):
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
            return frame
        now = self.clock.time()
        # Drop frames whose display interval is already over: skipping them keeps the delay bounded.
        while self._pending.pts is not None and self._pending.pts + self._frame_duration(self._pending) <= now:
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
        return frame

    def step(self) -> bool:
        """One iteration: handle input, present the due frame (or redraw); False when playback is over."""
        self.window.make_current()
        for ev in self.window.poll(0.05 if self._idle else None):
            if isinstance(ev, KeyEvent):
                self.handle_key(ev.key, ev.repeat)
            elif isinstance(ev, MouseEvent):
                self.handle_mouse(ev.x, ev.y, ev.pressed)
        if self._quit or self.window.should_close:
            return False
        if self.window.resized:
            self.window.resized = False
            self._dirty = True
        new = None
        if not self.paused or self._show_next:
            new = self._due_frame()
            if new is None and self._eof and self._pending is None:
                return False
        if new is not None:
            self._show_next = False
            self._seek_pos = None
            self.current = new
            self._dirty = True
        self._idle = False
        if self._dirty:
            self.present()
            if new is not None:
                self.clock.presented(new.pts or 0.0, self._frame_duration(new))
                self.stats.frame_presented(time.monotonic())
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
    def _render(self, frame, size, enabled: bool) -> moderngl.Texture:
        return self.renderer.render(frame, size, frame_index=frame.index, enabled=enabled)

    def _draw(self, tex: moderngl.Texture, rect: Rect, scissor: tuple[int, int, int, int] | None) -> None:
        screen = self.ctx.screen
        screen.use()
        self.ctx.viewport = rect.viewport
        self.ctx.scissor = scissor
        tex.use(0)
        self._blit["rect"].value = rect.viewport
        self._blit["rotation"].value = self.rotation
        self._blit_vao.render(moderngl.TRIANGLES, vertices=3)
        self.ctx.scissor = None

    def present(self, capture: bool = False) -> np.ndarray | None:
        """Draw the current frame into the window and swap; with ``capture``, return the window's
        pixels as drawn (HxWx3 uint8, rows top-down) read back before the swap."""
        self._dirty = False
        self.window.make_current()
        ctx = self.ctx
        fw, fh = self.window.framebuffer_size()
        ctx.screen.use()
        ctx.scissor = None
        ctx.viewport = (0, 0, fw, fh)
        ctx.clear(0.0, 0.0, 0.0, 1.0)  # the letterbox bars
        rect = self.video_rect
        frame = self.current
        t_rendered = time.perf_counter()
        if frame is not None and rect.w > 0 and rect.h > 0:
            size = (rect.h, rect.w) if self.rotation in (90, 270) else (rect.w, rect.h)
            renderer = self.renderer
            if self.compare:
                split = rect.x + int(round(self.divider * rect.w))
                tex = self._render(frame, size, enabled=False)
                self._draw(tex, rect, (rect.x, rect.y, split - rect.x, rect.h))
                tex = self._render(frame, size, enabled=True)
                t_rendered = time.perf_counter()
                self._draw(tex, rect, (split, rect.y, rect.x + rect.w - split, rect.h))
                ctx.screen.use()
                line = (max(rect.x, split - 1), rect.y, 2, rect.h)
                ctx.screen.clear(1.0, 1.0, 1.0, 1.0, viewport=line)
            else:
                tex = self._render(frame, size, enabled=self.network)
                t_rendered = time.perf_counter()
                self._draw(tex, rect, None)
            if self.show_info:
                st = renderer.stage_times
                upload = st.get("upload", 0.0) + st.get("unpack", 0.0)
                self.stats.add("upload", upload)
                self.stats.add("network", max(0.0, sum(st.values()) - upload))
        if self.show_info:
            ctx.screen.use()
            ctx.viewport = (0, 0, fw, fh)
            now = time.monotonic()
            if now - self._info_at >= 0.25 or self._dirty_info:
                # A few refreshes a second are readable; every frame would only flicker the digits.
                self._info_at = now
                self._dirty_info = False
                self._overlay.set_text(self._info_lines())
            self._overlay.draw(fh)
        image = None
        t_capture = 0.0
        if capture:  # tests and tools only: a synchronous readback of the back buffer
            t = time.perf_counter()
            raw = ctx.screen.read(viewport=(0, 0, fw, fh), components=3, alignment=1)
            image = np.frombuffer(raw, np.uint8).reshape(fh, fw, 3)[::-1].copy()
            t_capture = time.perf_counter() - t
        self.window.swap()
        if self.show_info:
            # Present: blit, divider, overlay and swap (the render's GPU work was finished by its profiling).
            self.stats.add("present", time.perf_counter() - t_rendered - t_capture)
        collect_garbage(ctx)  # ctx.gc(): delete GL objects Python dropped since the last frame, context current
        return image

    def _info_lines(self) -> list[str]:
        ms = self.stats.ms
        pos = self.position
        return [
            f"{self.path.name[:40]}  {self.info.width}x{self.info.height} -> {self.video_rect.w}x{self.video_rect.h}",
            f"t {pos:8.3f} s   fps {self.stats.fps:5.1f}   dropped {self.stats.dropped}",
            f"decode {ms.get('decode', 0):6.2f} ms   upload {ms.get('upload', 0):6.2f} ms",
            f"network {ms.get('network', 0):6.2f} ms   present {ms.get('present', 0):6.2f} ms",
            f"{self.entries[self.entry_index].label[:30]}   network {'on' if self.network else 'off'}"
            f"   clock: {self.clock.kind}",
        ]

    # --- screenshots ------------------------------------------------------------------------
    def screenshot(self) -> Path | None:
        """Write the current frame upscaled x2 (the pipeline output, not the window) as a PNG.

        x2 of the display size: rotated and with square pixels, like the picture in the window.
        """
        from .fileio import atomic_output
        from .imageio import write_image

        frame = self.current
        if frame is None:
            return None
        self.window.make_current()
        dw, dh = self.display_size
        size = (2 * dh, 2 * dw) if self.rotation in (90, 270) else (2 * dw, 2 * dh)
        tex = self._render(frame, size, enabled=self.network)
        rgb = self.renderer.read_rgb(tex, np.uint8)[..., :3]
        if self.rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, -self.rotation // 90))
        label = Path(self.entries[self.entry_index].label).stem if self.network else "bicubic"
        pts = frame.pts or 0.0
        stem = f"{self.path.stem}-{int(pts // 60):02d}m{pts % 60:06.3f}s-{label}"
        out = self.screenshot_dir / f"{stem}.png"
        n = 1
        while out.exists():
            out = self.screenshot_dir / f"{stem}-{n}.png"
            n += 1
        with atomic_output(out, [self.path]) as tmp:
            write_image(tmp, rgb)
        self.screenshots.append(out)
        self._notify(f"upshade: screenshot written to {out}")
        self._dirty = True
        return out

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release everything (GL objects, decoder, audio) and terminate GLFW; safe to call twice."""
        try:
            if self.window is not None:
                self.window.make_current()  # the GL objects below belong to this window's context
            if self.decoder is not None:
                self.decoder.close()
                self.decoder = None
            if self.clock is not None:
                self.clock.close()
                self.clock = None
            self.current = self._pending = None
            for e in self.entries:
                e.renderer.release()
            self.entries = []
            for obj in (self._overlay, self._blit_vao, self._blit):
                if obj is not None:
                    obj.release()
            self._overlay = self._blit_vao = self._blit = None
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
    from .image_cmd import add_model_arguments

    parser.add_argument("file", metavar="FILE", help="video file to play")
    add_model_arguments(parser, "mpv user shader; repeat to load several and switch with keys 1-9")
    parser.add_argument("--compare", action="store_true", help="start in split-screen compare mode (bicubic | network)")
    parser.add_argument("--no-audio", action="store_true", help="do not play sound (time by the system clock)")
    parser.add_argument("--fullscreen", action="store_true", help="start fullscreen")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a shader //!PARAM (repeatable)")
    parser.add_argument("--fbo-format", choices=("auto", "rgba16f", "rgba32f"), default="auto",
                        help="format of intermediate textures (default: auto, see `upshade info`)")
    parser.add_argument("--screenshot-dir", default=".", metavar="DIR", help="where the s key writes PNGs (default: .)")
    parser.epilog = ("keys: space pause, left/right seek 5 s, up/down 60 s, f fullscreen, c compare, "
                     "n network on/off, 1-9 shader, s screenshot, i info, q/Esc quit")


def _entries(model: str | None, shaders: Sequence[str], no_model: bool = False,
             source=None) -> list[tuple[str, object]]:
    """The switchable chains (keys 1-9): ``--model`` (else the default model, unless ``--shader`` or
    ``--no-model`` is given) first, then each ``--shader`` file."""
    from .hookparse import load_shader
    from .paths import default_model, model_shader, shipped_shader

    entries: list[tuple[str, object]] = []
    if not model and not shaders and not no_model:
        model = default_model(source)
    if model:
        shipped_shader(model)  # unknown size or missing file: fail before a window opens
        key = model.upper()
        entries.append((f"upshade_{key}.glsl", lambda ctx: [load_shader(model_shader(key, ctx))]))
    entries += [(Path(s).name, [load_shader(s)]) for s in shaders]
    if not entries:
        entries.append(("bicubic", []))
    if len(entries) > 9:
        raise UpshadeError(f"{len(entries)} shaders given: keys 1-9 switch among at most 9")
    return entries


def run(args) -> int:
    from .image_cmd import describe_chain, parse_params
    from .paths import default_model
    from .video import probe

    params = parse_params(args.param)
    info = probe(args.file)  # a bad file is reported before shaders are compiled or a window opens
    entries = _entries(args.model, args.shader, args.no_model, info)
    model = args.model or (default_model(info) if not args.shader and not args.no_model else None)
    with Player(args.file, entries, params=params, fbo_format=args.fbo_format, audio=not args.no_audio,
                fullscreen=args.fullscreen, compare=args.compare, screenshot_dir=args.screenshot_dir) as player:
        rect = player.video_rect
        print(f"upshade: {describe_chain(player.renderer.shaders, model and model.upper())}, "
              f"{info.width}x{info.height} -> {rect.w}x{rect.h}", file=sys.stderr)
        player.run()
    return 0
