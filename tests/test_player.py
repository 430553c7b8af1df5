"""`upshade play`: window geometry, clocks, audio clock, overlay font, and the player in a real
GLFW window under a private Xvfb (Mesa llvmpipe GLX), driven step by step with a deterministic clock."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from media import make_audio_only, make_clip
from upshade.host.audio import AudioClock, AudioUnavailable, open_clock
from upshade.host.clock import MonotonicClock, SteppedClock
from upshade.host.errors import MediaError, UpshadeError
from upshade.host.overlay import CELL_H, CELL_W, GLYPH_H, GLYPH_W, TextOverlay, _FONT, glyph, render_text_cpu
from upshade.host.presenter import LABEL_MARGIN
from upshade.host.window import Rect, fit_size, initial_window_size, letterbox

REPO = Path(__file__).resolve().parent.parent

INVERT_LUMA = """//!HOOK LUMA
//!BIND HOOKED
//!DESC invert luma (makes the network's half unmistakable)
vec4 hook() {
    vec4 c = HOOKED_tex(HOOKED_pos);
    c.x = 1.0 - c.x;
    return c;
}
"""
# A second, different chain for shader switching: luma halved.
DARKEN_LUMA = INVERT_LUMA.replace("c.x = 1.0 - c.x;", "c.x = 0.5 * c.x;").replace("invert", "halve")


# --- pure geometry ---------------------------------------------------------------------------

def test_fit_size_keeps_aspect_and_never_upscales():
    assert fit_size(640, 480, 1920, 1080) == (640, 480)
    assert fit_size(3840, 2160, 1920, 1080) == (1920, 1080)
    assert fit_size(4000, 1000, 1000, 1000) == (1000, 250)
    assert fit_size(1000, 4000, 1000, 1000) == (250, 1000)
    with pytest.raises(ValueError):
        fit_size(0, 10, 100, 100)


def test_initial_window_is_twice_the_video_fitted_to_the_work_area():
    assert initial_window_size(320, 240, (1920, 1080)) == (640, 480)
    w, h = initial_window_size(1280, 720, (1920, 1080))
    assert w <= 1920 * 0.95 and h <= 1080 * 0.92
    assert abs(w / h - 16 / 9) < 0.01


@pytest.mark.parametrize(
    "fb, src, rect",
    [
        ((200, 120), (64, 48), Rect(20, 0, 160, 120)),   # pillarbox
        ((200, 300), (64, 48), Rect(0, 75, 200, 150)),   # letterbox
        ((128, 96), (64, 48), Rect(0, 0, 128, 96)),      # exact
        ((0, 10), (64, 48), Rect(0, 0, 0, 0)),           # minimised window
    ],
)
def test_letterbox(fb, src, rect):
    assert letterbox(*fb, *src) == rect


# --- clocks ----------------------------------------------------------------------------------

def test_monotonic_clock_pause_resume_seek():
    now = [100.0]
    c = MonotonicClock(2.0, now=lambda: now[0])
    now[0] += 0.5
    assert c.time() == pytest.approx(2.5)
    c.pause()
    now[0] += 3
    assert c.time() == pytest.approx(2.5)
    c.resume()
    now[0] += 0.25
    assert c.time() == pytest.approx(2.75)
    c.seek(10.0)
    now[0] += 1
    assert c.time() == pytest.approx(11.0)


def test_stepped_clock_advances_only_by_presented_frames():
    c = SteppedClock(0.0)
    assert c.time() == 0.0
    c.presented(0.0, 0.04)
    assert c.time() == pytest.approx(0.04)
    c.wait(0.5)  # waiting for a later frame jumps to it instead of sleeping
    assert c.time() == pytest.approx(0.54)
    c.pause()
    c.wait(1.0)
    assert c.time() == pytest.approx(0.54)
    c.seek(3.0)
    assert c.time() == 3.0


# --- audio -----------------------------------------------------------------------------------

class FakeStream:
    """Stands in for a sounddevice.OutputStream; the test pulls samples like PortAudio would."""

    def __init__(self, samplerate, channels, callback, latency=0.05):
        self.samplerate = samplerate or 48000
        self.channels = channels
        self.latency = latency
        self.callback = callback
        self.started = self.closed = False

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True

    def pull(self, n):
        out = np.full((n, self.channels), 7.0, np.float32)
        self.callback(out, n, None, None)
        return out


def tone(t0, n, rate=48000):
    t = t0 + np.arange(n) / rate
    return (np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1) * 0.3).astype(np.float32)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return make_audio_only(tmp_path_factory.mktemp("audio") / "tone.wav", duration=1.0, codec="pcm_s16le")


def pull_until_sound(stream, n=480, tries=200):
    import time

    for _ in range(tries):
        out = stream.pull(n)
        if np.any(out != 0):
            return out
        time.sleep(0.005)
    raise AssertionError("audio thread delivered nothing")


def test_audio_clock_plays_exact_samples_and_tracks_time(wav):
    now = [0.0]
    streams = []

    def factory(rate, ch, cb):
        streams.append(FakeStream(rate, ch, cb))
        return streams[-1]

    clock = AudioClock(wav, 0.25, stream_factory=factory, now=lambda: now[0])
    try:
        s = streams[0]
        assert s.started and clock.rate == 48000
        assert clock.time() == pytest.approx(0.25 - 0.05)  # nothing heard yet: start minus latency
        out = pull_until_sound(s)
        np.testing.assert_allclose(out, tone(0.25, 480), atol=1e-4)  # float32 stereo, from the seek point
        # The sample being heard is the first of this block minus the output latency...
        assert clock.time() == pytest.approx(0.25 - 0.05)
        now[0] += 0.004
        assert clock.time() == pytest.approx(0.254 - 0.05)
        # ...and the clock never runs past the audio delivered (10 ms here): it stalls with the sound.
        now[0] += 0.5
        assert clock.time() == pytest.approx(0.26 - 0.05)
        out = s.pull(480)
        np.testing.assert_allclose(out, tone(0.26, 480), atol=1e-4)

        clock.pause()
        frozen = clock.time()
        assert np.all(s.pull(256) == 0)  # silence while paused, nothing consumed
        now[0] += 2
        assert clock.time() == frozen
        clock.resume()
        out = s.pull(480)
        np.testing.assert_allclose(out, tone(0.27, 480), atol=1e-4)

        clock.seek(0.6)
        assert clock.time() == pytest.approx(0.6 - 0.05)
        out = pull_until_sound(s)
        np.testing.assert_allclose(out, tone(0.6, 480), atol=1e-4)
    finally:
        clock.close()
    assert streams[0].closed


def test_audio_clock_runs_on_after_the_audio_ends(wav):
    now = [0.0]
    holder = []
    clock = AudioClock(wav, 0.9, stream_factory=lambda r, c, cb: holder.append(FakeStream(r, c, cb)) or holder[-1],
                       now=lambda: now[0])
    try:
        import time

        pull_until_sound(holder[0], 2400)
        deadline = time.monotonic() + 10
        while not (clock._ended_gen == clock._gen and clock._queued == 0):
            holder[0].pull(2400)
            time.sleep(0.002)
            assert time.monotonic() < deadline, "audio never ended"
        holder[0].pull(2400)
        t = clock.time()
        assert t == pytest.approx(1.0 - 0.05, abs=0.06)
        now[0] += 1.0
        # Past the end there is nothing to wait for: a longer video keeps playing on the clock.
        assert clock.time() == pytest.approx(t + 1.0)
    finally:
        clock.close()


def test_open_clock_falls_back_to_the_system_clock_with_one_notice(wav):
    lines = []

    def no_device(rate, ch, cb):
        raise AudioUnavailable("no audio output device (test)")

    c = open_clock(wav, True, 0.5, notify=lines.append, stream_factory=no_device)
    assert isinstance(c, MonotonicClock) and c.time() == pytest.approx(0.5, abs=0.05)
    assert len(lines) == 1 and "no audio output device (test)" in lines[0] and "\n" not in lines[0]
    # No audio track, or --no-audio: the system clock, silently.
    assert isinstance(open_clock(wav, False, 0.0, notify=lines.append), MonotonicClock)
    assert isinstance(open_clock(wav, True, 0.0, audio=False, notify=lines.append), MonotonicClock)
    assert len(lines) == 1


def test_open_clock_with_the_real_sound_library(wav):
    # Either a device plays (audio clock) or one line says why not; never an exception.
    lines = []
    c = open_clock(wav, True, 0.0, notify=lines.append)
    try:
        if isinstance(c, AudioClock):
            assert not lines
        else:
            assert isinstance(c, MonotonicClock) and len(lines) == 1
    finally:
        c.close()


# --- overlay font ----------------------------------------------------------------------------

def test_font_glyphs_are_well_formed_and_distinct():
    seen = {}
    for ch, rows in _FONT.items():
        parts = rows.split()
        assert len(parts) == GLYPH_H and all(len(p) == GLYPH_W and set(p) <= {".", "#"} for p in parts), ch
        key = rows
        assert key not in seen, f"{ch!r} looks like {seen.get(key)!r}"
        seen[key] = ch
    assert np.array_equal(glyph("a"), glyph("A"))       # lowercase drawn as capitals
    assert np.array_equal(glyph("\u00e9"), glyph("?"))  # unknown characters visibly marked
    for ch in "0123456789 .:-/()%=x":
        assert ch in _FONT


def test_text_overlay_draws_the_glyphs(gl_ctx):
    lines = ["FPS 24.0", "dropped 3  12.5 ms"]
    scale, margin = 2, 4
    w, h = 320, 80
    tex = gl_ctx.texture((w, h), 4)
    fbo = gl_ctx.framebuffer([tex])
    ov = TextOverlay(gl_ctx, cols=32, rows=4, scale=scale, margin=margin)
    try:
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 1.0)
        ov.set_text(lines)
        ov.draw(h)
        img = np.frombuffer(fbo.read(components=3), np.uint8).reshape(h, w, 3)[::-1]
        expect = render_text_cpu(lines, scale)
        eh, ew = expect.shape
        box = img[margin:margin + eh, margin:margin + ew, 0]
        assert np.array_equal(box == 255, expect)
        # Unused cells (beyond the longest line, the box, the rest of the frame) are not inked.
        assert not np.any(img[margin + eh:, :, 0] == 255)
        assert not np.any(img[:, margin + ew:, 0] == 255)
        assert ew == len(lines[1]) * CELL_W * scale and eh == 2 * CELL_H * scale
    finally:
        ov.release()
        fbo.release()
        tex.release()


# --- the player in a window --------------------------------------------------------------------

@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("play")
    (d / "invert.glsl").write_text(INVERT_LUMA)
    (d / "darken.glsl").write_text(DARKEN_LUMA)
    return {
        "dir": d,
        # 8 s at 10 fps: long enough for 5 s seeks, small enough to decode at once.
        "long": make_clip(d / "long.mp4", width=32, height=24, frames=80, fps=10, audio=True, gop=10),
        "short": make_clip(d / "short.mp4", width=64, height=48, frames=8, fps=25),
        "invert": d / "invert.glsl",
        "darken": d / "darken.glsl",
    }


@pytest.fixture
def make_player(xdisplay, media, tmp_path):
    from upshade.host.hookparse import load_shader
    from upshade.host.player import Player

    players = []

    def make(clip="long", shaders=("invert",), **kw):
        entries = [(f"{name}.glsl", [load_shader(media[name])]) if name != "bicubic" else ("bicubic", [])
                   for name in shaders]
        kw.setdefault("clock", "stepped")
        kw.setdefault("vsync", False)
        kw.setdefault("window_size", (200, 120))
        kw.setdefault("screenshot_dir", tmp_path)
        kw.setdefault("notify", lambda m: None)
        p = Player(media[clip], entries, **kw)
        players.append(p)
        return p

    yield make
    for p in players:
        p.close()


def offscreen(p, frame=None, enabled=True, size=None):
    """The player's own Renderer run on an FBO for the frame on screen (the reference)."""
    rect = p.video_rect
    frame = frame or p.current
    tex = p.renderer.render(frame, size or (rect.w, rect.h), frame_index=frame.index, enabled=enabled)
    return p.renderer.read_rgb(tex, np.uint8)[..., :3]


def window_video(p, img):
    r = p.video_rect
    fh = img.shape[0]
    return img[fh - r.y - r.h: fh - r.y, r.x: r.x + r.w]


def test_player_presents_frames_matching_the_offscreen_render(make_player):
    p = make_player()
    assert p.window.framebuffer_size() == (200, 120)
    assert p.video_rect == Rect(20, 0, 160, 120)  # 4:3 in 5:3: bars left and right
    for _ in range(5):
        assert p.step()
    assert p.stats.presented == 5 and p.stats.dropped == 0
    assert p.current.pts == pytest.approx(0.4)  # 10 fps, deterministic clock
    img = p.present(capture=True)
    assert img.shape == (120, 200, 3)
    assert np.all(img[:, :20] == 0) and np.all(img[:, 180:] == 0)  # black bars
    shown = window_video(p, img).astype(int)
    ref = offscreen(p).astype(int)
    assert np.abs(shown - ref).max() <= 1
    # The network visibly ran: bicubic differs by far more than rounding.
    assert np.abs(shown - offscreen(p, enabled=False).astype(int)).mean() > 20


def test_network_toggle_shader_switch_and_pause(make_player):
    import glfw

    p = make_player(shaders=("invert", "darken"))
    p.step()
    p.handle_key(glfw.KEY_N)
    assert not p.network and "network off" in p._title()
    img = window_video(p, p.present(capture=True)).astype(int)
    assert np.abs(img - offscreen(p, enabled=False)).max() <= 1
    p.handle_key(glfw.KEY_N)
    p.handle_key(glfw.KEY_2)
    assert p.entry_index == 1 and "darken.glsl" in p._title()
    renderers = [e.renderer for e in p.entries]
    img = window_video(p, p.present(capture=True)).astype(int)
    assert np.abs(img - offscreen(p)).max() <= 1
    assert np.abs(img - offscreen(p, enabled=False)).mean() > 5
    p.handle_key(glfw.KEY_9)  # no ninth entry: ignored
    p.handle_key(glfw.KEY_1)
    assert p.entry_index == 0 and [e.renderer for e in p.entries] == renderers  # created once, kept

    p.handle_key(glfw.KEY_SPACE)
    assert p.paused and "paused" in p._title()
    pts = p.current.pts
    for _ in range(3):
        assert p.step()
    assert p.current.pts == pts and p.stats.presented == 1
    p.handle_key(glfw.KEY_SPACE)
    p.step()
    assert p.current.pts == pytest.approx(pts + 0.1)


def test_seek_keys_move_the_position(make_player):
    import glfw

    p = make_player()
    p.run(max_frames=3)
    assert p.current.pts == pytest.approx(0.2)
    p.handle_key(glfw.KEY_RIGHT)
    p.step()
    assert p.current.pts == pytest.approx(5.2)
    p.step()
    assert p.current.pts == pytest.approx(5.3)  # plays on from there
    p.handle_key(glfw.KEY_LEFT, repeat=True)  # arrows auto-repeat
    p.step()
    assert p.current.pts == pytest.approx(0.3)
    p.handle_key(glfw.KEY_RIGHT)  # keys pressed before the seek's frame arrives add up: +5 - 5
    p.handle_key(glfw.KEY_LEFT)
    p.step()
    assert p.current.pts == pytest.approx(0.3)
    p.handle_key(glfw.KEY_UP)  # past the end: clamped to the last frame
    p.step()
    assert p.current.pts == pytest.approx(7.9)
    p.handle_key(glfw.KEY_DOWN)
    p.step()
    assert p.current.pts == pytest.approx(0.0)
    # Seeking while paused shows the new frame and stays paused.
    p.handle_key(glfw.KEY_SPACE)
    p.handle_key(glfw.KEY_RIGHT)
    p.step()
    assert p.paused and p.current.pts == pytest.approx(5.0)
    p.step()
    assert p.current.pts == pytest.approx(5.0)


def test_compare_split_follows_the_mouse(make_player):
    import glfw

    p = make_player()
    p.step()
    p.handle_key(glfw.KEY_C)
    assert p.compare and "compare" in p._title()
    p.handle_mouse(70, 60, True)  # window x 70 -> 50 px into the 160 px video rectangle
    assert p.divider == pytest.approx(50 / 160)
    img = p.present(capture=True)
    split = 70
    assert np.all(img[:, split - 1:split + 1] == 255)  # the divider line
    bic, net = offscreen(p, enabled=False).astype(int), offscreen(p).astype(int)
    shown = window_video(p, img).astype(int)
    left, right = split - 1 - 20, split + 1 - 20  # in video-rectangle columns, beside the line
    # The right half is labelled with the shader's name at the top, right of the divider (scale 2); the
    # left half is too narrow here for "bicubic" even at scale 1 and stays unlabelled.
    ink = render_text_cpu(["invert"], 2)
    band = LABEL_MARGIN + ink.shape[0]
    label = img[LABEL_MARGIN:band, split + LABEL_MARGIN: split + LABEL_MARGIN + ink.shape[1], 0]
    assert np.array_equal(label == 255, ink)
    assert np.abs(shown[:, :left] - bic[:, :left]).max() <= 1
    assert np.abs(shown[band:, right:] - net[band:, right:]).max() <= 1
    assert np.abs(bic - net).mean() > 20  # so the halves really come from different renders
    # A release does not move it; a drag does.
    p.handle_mouse(150, 60, False)
    assert p.divider == pytest.approx(50 / 160)
    p.handle_mouse(150, 60, True)
    img = p.present(capture=True)
    assert np.all(img[:, 149:151] == 255) and not np.all(img[:, 69:71] == 255)
    p.handle_mouse(-50, 0, True)
    assert p.divider == 0.0
    # Outside compare mode the mouse does nothing.
    p.handle_key(glfw.KEY_C)
    p.handle_mouse(100, 60, True)
    assert p.divider == 0.0


def test_rotated_video_is_displayed_turned(make_player, media):
    clip = make_clip(media["dir"] / "rot.mp4", width=32, height=24, frames=3, fps=10, rotation=90)
    media["rot"] = clip
    p = make_player("rot", window_size=(120, 200))
    assert p.rotation in (90, 270) and p.display_size == (24, 32)
    assert p.video_rect == Rect(0, 20, 120, 160)  # portrait now: bars top and bottom
    p.step()
    shown = window_video(p, p.present(capture=True)).astype(int)
    tex = p.renderer.render(p.current, (160, 120), frame_index=p.current.index)
    ref = np.rot90(p.renderer.read_rgb(tex, np.uint8)[..., :3], -p.rotation // 90).astype(int)  # clockwise
    assert shown.shape == ref.shape == (160, 120, 3)
    assert np.abs(shown - ref).max() <= 1
    out = p.screenshot()
    from upshade.host.imageio import read_image

    assert read_image(out).shape == (64, 48, 3)  # turned like the display


def test_anamorphic_video_gets_square_pixels(make_player, media):
    from upshade.host.imageio import read_image

    clip = make_clip(media["dir"] / "sar.mp4", width=32, height=24, frames=2, fps=10, options={"aspect": "8:9"})
    media["sar"] = clip
    p = make_player("sar", window_size=(300, 200))
    assert p.sample_aspect == pytest.approx(8 / 9) and p.display_size == (28, 24)
    assert p.video_rect == letterbox(300, 200, 28, 24) == Rect(33, 0, 233, 200)
    p.step()
    shown = window_video(p, p.present(capture=True)).astype(int)
    assert np.abs(shown - offscreen(p)).max() <= 1
    assert read_image(p.screenshot()).shape == (48, 56, 3)


def test_shader_entries_from_the_command_line(media, tmp_path):
    from upshade.host.chain import shader_chain
    from upshade.host.paths import SHADERS_DIR

    def _entries(model, shaders, no_model=False):
        return shader_chain(model, shaders, no_model).entries()

    entries = _entries(None, [str(media["invert"]), str(media["darken"])])
    assert [label for label, _ in entries] == ["invert.glsl", "darken.glsl"]
    assert all(len(files) == 1 for _, files in entries)  # each --shader is its own switchable entry
    with pytest.raises(UpshadeError, match="at most 9"):
        _entries(None, [str(media["invert"])] * 10)
    with pytest.raises(UpshadeError, match="nope.glsl"):
        _entries(None, [str(tmp_path / "nope.glsl")])
    assert (SHADERS_DIR / "upshade_M.glsl").is_file()
    [(label, files)] = _entries(None, [])  # no shader: our M model, its export chosen by the window's renderer
    assert label == "upshade_M.glsl" and callable(files)
    assert _entries(None, [], no_model=True) == [("bicubic", [])]  # --no-model: the plain scaler


def test_screenshot_writes_the_upscaled_frame(make_player, tmp_path):
    import glfw
    from upshade.host.imageio import read_image

    p = make_player()
    p.run(max_frames=4)
    p.handle_key(glfw.KEY_S)
    assert len(p.screenshots) == 1
    out = p.screenshots[0]
    assert out.parent == tmp_path and out.suffix == ".png" and "0.300" in out.name
    img = read_image(out)
    assert img.shape == (48, 64, 3)  # x2 of 32x24, whatever the window size
    assert np.abs(img.astype(int) - offscreen(p, size=(64, 48))).max() <= 1
    p.handle_key(glfw.KEY_S)  # a second one never overwrites the first
    assert len(p.screenshots) == 2 and p.screenshots[1] != out and out.exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temporary leftovers


def test_info_overlay_and_fullscreen(make_player):
    import glfw

    p = make_player()
    p.step()
    plain = p.present(capture=True)
    p.handle_key(glfw.KEY_I)
    p.step()
    p.step()
    with_info = p.present(capture=True)
    assert p.show_info and set(p.stats.ms) >= {"decode", "upload", "network", "present"}
    assert np.any(with_info[8:24, 8:100] == 255) and not np.array_equal(plain[8:24, 8:100], with_info[8:24, 8:100])
    assert any("dropped 0" in line for line in p._info_lines())
    p.handle_key(glfw.KEY_F)
    p.step()
    mode = glfw.get_video_mode(glfw.get_primary_monitor()).size
    assert p.window.fullscreen and p.window.framebuffer_size() == (mode.width, mode.height)
    assert p.video_rect == letterbox(mode.width, mode.height, 32, 24)
    p.handle_key(glfw.KEY_F)
    p.window.poll()
    assert not p.window.fullscreen and p.window.framebuffer_size() == (200, 120)


def test_overlay_times_the_network_passes_alone_and_marks_stale_values(make_player, media):
    """The network row is the GPU time of the hook passes (GL timer queries), not the whole render;
    with the network off it says so; values shown while paused are marked; first-frame latency shown."""
    import glfw

    (media["dir"] / "two_pass.glsl").write_text(INVERT_LUMA + "\n" + DARKEN_LUMA)
    media["two_pass"] = media["dir"] / "two_pass.glsl"
    p = make_player(shaders=("invert", "two_pass"))
    p.handle_key(glfw.KEY_I)
    p.run(max_frames=4)
    assert p.first_frame_s is not None and p.first_frame_s > 0
    lines = p._info_lines()
    assert f"first frame {p.first_frame_s:.2f} s after start" in lines
    assert p.stats.ms["network"] > 0 and p.network_passes == 1
    label = {"gpu": "GPU timer", "cpu": "CPU time"}[p.meter.method]    # CPU time on llvmpipe (software)
    assert any(line.startswith("network") and f"({label}, 1 passes)" in line for line in lines)
    p.handle_key(glfw.KEY_2)                      # the two-pass chain: both passes timed, nothing else
    p.run(max_frames=3)
    p.present()
    assert p.network_passes == 2
    p.handle_key(glfw.KEY_N)
    p.run(max_frames=2)
    assert "network off" in p._info_lines()
    p.handle_key(glfw.KEY_N)
    assert not any("*" in line for line in p._info_lines())
    p.handle_key(glfw.KEY_SPACE)
    lines = p._info_lines()
    assert lines[-1] == "paused: * = last values before the pause"
    assert "ms*" in lines[2] and "ms*" in lines[3]
    q = make_player(shaders=())                   # no shader: plain bicubic, nothing to time
    q.handle_key(glfw.KEY_I)
    q.run(max_frames=2)
    assert "network none (bicubic)" in q._info_lines()


def test_pass_timer_counts_hook_passes_only(gl_ctx, media):
    from upshade.host.gltimer import PassTimer, attach
    from upshade.host.hookparse import load_shader
    from upshade.host.pipeline import Renderer
    from upshade.host.video import Decoder

    (media["dir"] / "two_pass.glsl").write_text(INVERT_LUMA + "\n" + DARKEN_LUMA)
    with Decoder(media["short"]) as dec:
        frame = next(dec)
    timer = PassTimer()
    with Renderer(gl_ctx, [load_shader(media["dir"] / "two_pass.glsl")]) as r:
        assert attach(r, timer)
        for enabled in (True, True, False, True):
            r.render(frame, (128, 96), enabled=enabled)
            timer.end_frame(keep=len(timer._frames) > 0)   # the first (compiling) frame is not reported
        done = timer.poll(wait=True)
        assert [n for _, n in done] == [2, 0, 2]
        assert done[0][0] > 0 and done[1][0] == 0
        assert attach(r, None)                    # detached: nothing is timed any more
        r.render(frame, (128, 96))
        timer.end_frame()
        assert timer.poll(wait=True) == [(0.0, 0)]
    timer.release()


def test_late_frames_are_dropped_not_delayed(make_player):
    now = [0.0]
    clock = MonotonicClock(0.0, now=lambda: now[0])
    p = make_player(clock=clock)
    p.step()  # first frame: shown at once, sets the clock
    for _ in range(6):
        now[0] += 0.35  # the machine is 3.5x too slow for 10 fps
        p.step()
    assert p.stats.dropped >= 12
    # The frame on screen is the one for the clock's time, not one far behind it.
    assert now[0] - 0.1 <= p.current.pts <= now[0] + 1e-6
    assert p.stats.presented + p.stats.dropped == round(p.current.pts * 10) + 1


# --- --model auto: the ladder switching chains by their measured time ---------------------------

def busy_luma(fetches: int) -> str:
    """A LUMA pass costing ``fetches`` texture fetches per pixel: a rung of known relative cost."""
    return f"""//!HOOK LUMA
//!BIND HOOKED
//!DESC busy {fetches}
vec4 hook() {{
    vec4 c = HOOKED_tex(HOOKED_pos);
    float acc = 0.0;
    for (int i = 0; i < {fetches}; i++) acc += HOOKED_texOff(vec2(i % 7 - 3, i % 5 - 2)).x;
    c.x = mix(c.x, acc / {fetches}.0, 0.01);
    return c;
}}
"""


BUSY = {"busyL": 8192, "busyM": 256, "busyS": 32}


@pytest.fixture
def busy(media):
    """A 3 s clip at 50 fps (20 ms a frame) and three rungs costing 256 : 8 : 1, L far over the frame (4x its 20 ms here even on a fast CPU)."""
    from upshade.host.ladder import Ladder, Rung

    if "busy" not in media:
        media["busy"] = make_clip(media["dir"] / "busy.mp4", width=160, height=90, frames=150, fps=50, gop=25)
        for name, n in BUSY.items():
            (media["dir"] / f"{name}.glsl").write_text(busy_luma(n))
            media[name] = media["dir"] / f"{name}.glsl"
    return lambda start=0: Ladder([Rung(n, BUSY[n] / 32) for n in BUSY] + [Rung("none", 0.0)], 1 / 50, start=start)


def test_auto_leaves_a_model_far_over_the_frame_and_drops_fewer_frames_than_pinned(make_player, busy):
    """On the system clock (frames late are dropped): pinned to L, most frames are dropped; auto, started
    at L, steps down within a few frames and ends on a smaller rung, dropping far fewer."""
    rungs = ("busyL", "busyM", "busyS", "bicubic")
    pinned = make_player("busy", shaders=rungs[:1], clock=MonotonicClock(0.0))
    pinned.run(until=2.9)
    auto = make_player("busy", shaders=rungs, clock=MonotonicClock(0.0), auto=busy(start=0))
    auto.run(until=2.9)
    lad = auto.auto.ladder
    assert lad.estimate(0)[0] > 3 * lad.interval, "L must be far over the frame for this test to say anything"
    first = auto.auto.changes[0]
    assert first.reason.startswith("down: busyL ") and first.rung > 0
    assert lad.current > 0 and auto.label != "busyL.glsl"
    assert auto.stats.dropped < pinned.stats.dropped / 2, (auto.stats.dropped, pinned.stats.dropped)
    assert pinned.stats.presented + pinned.stats.dropped >= 140 and auto.stats.presented > pinned.stats.presented


def test_auto_keys_pin_a_chain_and_a_resumes(make_player, busy):
    """Keys 1-9 pin a chain (auto off, said in the overlay); a resumes auto; a new window size re-decides."""
    import glfw

    p = make_player("busy", shaders=("busyL", "busyM", "busyS", "bicubic"), auto=busy(start=2))
    assert p.label == "busyS.glsl" and p.meter.attached is p.renderer   # auto measures without the overlay
    p.handle_key(glfw.KEY_I)
    p.run(max_frames=4)
    lines = p._info_lines()
    assert lines[-2].startswith("auto busyS ") and "of 20.0 ms (budget 14.0)" in lines[-2]
    assert lines[-1] == "  start: busyS"
    assert p.auto.ladder.key == (p.video_rect.w, p.video_rect.h)
    p.handle_key(glfw.KEY_1)
    assert p.label == "busyL.glsl" and not p.auto.active
    p.run(max_frames=3)
    assert p.label == "busyL.glsl" and p.auto.changes == []              # pinned: nothing switches it
    assert p._info_lines()[-1] == "auto off: a key 1-9 pinned the chain (a: auto again)"
    p.handle_key(glfw.KEY_I)
    assert p.meter.attached is None                                       # pinned, no overlay: nothing timed
    p.handle_key(glfw.KEY_A)
    assert p.auto.active and p.label == "busyS.glsl" and p.meter.attached is p.renderer
    p.window.set_size(320, 180)
    p.window.poll()
    p.run(max_frames=2)
    assert p.auto.ladder.key == (p.video_rect.w, p.video_rect.h) == (320, 180)


def test_auto_runs_the_network_twice_beyond_2_2x_and_once_below(xdisplay, media):
    """The player's model chains (automodel.entries, as `play` builds them): in a 2x window the network
    runs once; resized beyond 2.2x per side the same rung runs it twice, the window showing what `image`'s
    chain (the x4 file there, the x2 file at 2x) renders for the frame; the overlay says so, and the
    ladder's key is the new size (what it measured at 2x is not taken for the time there)."""
    import glfw

    from upshade.host import automodel, paths
    from upshade.host.chain import ShaderChain
    from upshade.host.hookparse import load_shader
    from upshade.host.pipeline import Renderer
    from upshade.host.player import Player
    from upshade.host.video import probe

    info = probe(media["short"])                                          # 64x48
    with Player(media["short"], automodel.entries(info), auto=automodel.new_ladder(info, info.fps), clock="stepped",
                vsync=False, window_size=(128, 96), notify=lambda m: None) as p:
        model = p.auto.ladder.rungs[p.auto.rung].name                     # M in the source's variant
        for size, stages in (((128, 96), 1), ((160, 120), 2)):
            if size != (128, 96):
                p.window.set_size(*size)
                p.window.poll()
            p.run(max_frames=2)
            assert (p.video_rect.w, p.video_rect.h) == p.render_size == size and p.auto.ladder.key == size
            assert p.label == f"{paths.model_stem(model)}.glsl" and p.network_stages == stages
            shown = window_video(p, p.present(capture=True)).astype(int)
            chain = ShaderChain(model, [], False)(p.ctx, info, ((64, 48), size))   # what `image` runs at this size
            assert ("_x4" in Path(chain[0].path).name) == (stages == 2)
            with Renderer(p.ctx, chain, output="unorm8") as ref:
                want = ref.read_rgb(ref.render(p.current, size, frame_index=p.current.index), np.uint8)
            assert np.abs(shown - want).max() <= 1, size
            with Renderer(p.ctx, [load_shader(paths.model_shader(model, p.ctx, 1))], output="unorm8") as x2:
                once = x2.read_rgb(x2.render(p.current, size, frame_index=p.current.index), np.uint8)
            assert (np.abs(shown - once).mean() > 0.2) == (stages == 2)   # beyond 2.2x: not the x2 file + scaler
            p.handle_key(glfw.KEY_I)                                      # the overlay, for two frames
            p.run(max_frames=2)
            p.handle_key(glfw.KEY_I)
            lines = p._info_lines()
            n = len(load_shader(paths.model_shader(model, p.ctx, 1)).passes)
            assert p.network_passes == stages * n
            assert any(line.startswith("network") and line.endswith(f"{stages * n} passes{', twice' * (stages > 1)})")
                       for line in lines), lines
            assert lines[-2].startswith(f"auto {model}{' x4' * (stages > 1)} ")


def test_frames_follow_the_audio_clock(make_player, media):
    import time

    holder = []
    audio = AudioClock(media["long"], 0.0, stream_factory=lambda r, c, cb: holder.append(FakeStream(r, c, cb)) or holder[-1],
                       now=lambda: 0.0)  # time moves only as the "sound card" takes samples
    p = make_player(clock=audio)
    stream = holder[0]
    assert not p._system_clock
    p.step()
    assert p.current is None  # nothing heard yet: the first frame waits for the sound
    pull_until_sound(stream, 4800)  # 0.1 s per callback, like a sound card taking a block
    for _ in range(4):
        time.sleep(0.02)
        stream.pull(4800)
    # Last block starts at 0.4 s, heard 50 ms later: the clock reads 0.35 s; frame 0.3 s is on screen.
    assert audio.time() == pytest.approx(0.35, abs=0.002)
    p.step()
    assert p.current.pts == pytest.approx(0.3)
    assert p.stats.presented == 1 and p.stats.dropped == 3  # 0.0, 0.1, 0.2 were late
    p.step()
    assert p.stats.presented == 1  # 0.4 is not due until more sound is played
    p.handle_key(__import__("glfw").KEY_RIGHT)
    p.step()
    assert p.current.pts == pytest.approx(5.3)  # seek: the frame shows at once...
    assert audio.time() == pytest.approx(5.3 - 0.05)  # ...and the sound restarts there
    out = pull_until_sound(stream, 480)
    assert np.abs(out).max() > 0.05


def test_run_plays_to_the_end_and_q_quits(make_player):
    import glfw

    p = make_player("short")
    p.run()
    assert p.stats.presented == 8 and p.current.pts == pytest.approx(7 / 25)
    q = make_player("short")
    q.step()
    q.handle_key(glfw.KEY_Q)
    assert not q.step()
    q.run()  # returns at once
    assert q.stats.presented == 1
    q.close()
    assert q.window is None and q.entries == []
    assert glfw.init()  # GLFW was terminated cleanly and can start again
    glfw.terminate()


def test_audio_track_without_a_device_plays_on_the_system_clock(make_player):
    lines = []
    p = make_player(clock="auto", notify=lines.append)
    if p.clock.kind == "system clock":
        assert len(lines) == 1 and "system clock" in lines[0]
    p.step()
    assert p.current.pts == pytest.approx(0.0)
    q = make_player(clock="auto", audio=False, notify=lines.append)
    assert q.clock.kind == "system clock" and len(lines) <= 1


def _gl_wrappers() -> int:
    import moderngl

    kinds = (moderngl.Texture, moderngl.Framebuffer, moderngl.Program, moderngl.VertexArray, moderngl.Buffer)
    # isinstance() on every live object also touches deprecated module proxies (torch's), which warn.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, kinds))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
def test_soak_no_gl_or_memory_growth(make_player, media):
    clip = make_clip(media["dir"] / "soak.mp4", width=32, height=24, frames=2000, fps=100, gop=50)
    media["soak"] = clip
    p = make_player("soak", window_size=(64, 48))
    p.run(max_frames=300)

    def probe_name():
        probe = p.ctx.texture((4, 4), 4)
        name = probe.glo
        probe.release()
        return name

    name = probe_name()
    gc.collect()
    objects, rss, allocs = _gl_wrappers(), _rss_mb(), p.renderer.pool.allocations
    p.run()
    assert p.stats.presented == 2000 and p.stats.dropped == 0
    gc.collect()
    assert _gl_wrappers() <= objects
    assert p.renderer.pool.allocations == allocs
    assert probe_name() <= name + 2  # GL names are reused: no texture leaked behind moderngl's back
    assert _rss_mb() - rss < 16


# --- errors --------------------------------------------------------------------------------------

def _play(*args, env=None):
    return subprocess.run([sys.executable, "-m", "upshade.host.cli", "play", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_no_display_is_one_clear_line(media, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = _play(media["short"], "--shader", media["invert"], env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == ("upshade: error: no display available (DISPLAY is not set): "
                                "use `upshade upscale` to write an upscaled file instead")
    # A DISPLAY naming no server: GLFW cannot initialise, same advice, no traceback.
    from upshade.host.window import Window

    monkeypatch.setenv("DISPLAY", ":187")
    with pytest.raises(UpshadeError, match=r"^no display available \(GLFW could not initialise: .*upshade upscale"):
        Window((64, 48), "t")


def test_video_errors_before_any_window(media, tmp_path, monkeypatch):
    from upshade.host.player import Player

    monkeypatch.delenv("DISPLAY", raising=False)  # a window would fail differently: prove none is opened
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(MediaError, match="nothing.mp4"):
        Player(tmp_path / "nothing.mp4", [])
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="bogus.mp4"):
        Player(bogus, [])
    r = _play(tmp_path / "nothing.mp4", "--shader", media["invert"])
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nothing.mp4" in r.stderr
    r = _play(media["short"], "--shader", tmp_path / "missing.glsl")
    assert r.returncode == 1 and "missing.glsl" in r.stderr and "Traceback" not in r.stderr


def test_cli_plays_a_clip_to_the_end(xdisplay, media, tmp_path):
    r = _play(media["short"], "--shader", media["invert"], "--shader", media["darken"], "--no-audio",
              "--compare", "--screenshot-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    r = _play(media["short"], "--shader", media["invert"], "--screenshot-dir", tmp_path / "no-such-dir")
    assert r.returncode == 1 and "no-such-dir" in r.stderr
    r = _play(media["short"], "--shader", media["invert"], "--no-audio", "--param", "nope=1")
    assert r.returncode == 1 and "unknown parameter 'nope'" in r.stderr and r.stderr.count("\n") == 1


def test_cli_plays_our_model_in_the_export_that_suits_the_renderer(xdisplay, media, tmp_path):
    r = _play(media["short"], "--model", "S", "--no-audio", "--screenshot-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    # one line names what runs: the model, its export (form chosen by the renderer), in -> out size
    assert re.fullmatch(r"upshade: model S-(clean|real) \(for [^;]+; upshade_S(-real)?_x4(_compute)?\.glsl, "
                        r"(fragment|compute) passes\), "
                        r"\d+x\d+ -> \d+x\d+, network (once \(twice|twice \() beyond 2\.2x per side\)\n", r.stderr), r.stderr


def test_cli_plays_auto_by_default(xdisplay, media, tmp_path):
    """No --model, --shader or --no-model: --model auto, named in one line with its rungs."""
    for extra in ([], ["--model", "auto"]):
        r = _play(media["short"], *extra, "--no-audio", "--screenshot-dir", tmp_path)
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(r"upshade: model auto \(L-(clean|real) > M-\1 > S-\1 > none by the frame rate, starting at "
                            r"M-\1; \1 variants for [^;]+; (fragment|compute) passes\), \d+x\d+ -> \d+x\d+, "
                            r"network (once \(twice|twice \() beyond 2\.2x per side\)\n",
                            r.stderr), r.stderr
    r = _play(media["short"], "--model", "auto", *["--shader", media["invert"]] * 6, "--no-audio")
    assert r.returncode == 1 and r.stderr == ("upshade: error: 6 shaders with --model auto: its 4 chains and the "
                                              "shaders share keys 1-9\n"), r.stderr


@pytest.mark.parametrize("problem", ["no sounddevice", "no PortAudio", "no device"])
def test_missing_sound_says_what_to_install(wav, monkeypatch, problem):
    """`play` without the audio extra, without PortAudio or without a device: one line saying what to
    install (it said only "No module named 'sounddevice'"), and playback goes on with the system clock."""
    import builtins
    import types

    from upshade.host import audio

    real_import = builtins.__import__
    if problem == "no sounddevice":
        monkeypatch.setitem(sys.modules, "sounddevice", None)  # what `import` does when it is not installed
    elif problem == "no PortAudio":
        def fake_import(name, *a, **k):
            if name == "sounddevice":
                raise OSError("PortAudio library not found")  # what sounddevice raises without libportaudio2
            return real_import(name, *a, **k)

        monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
        monkeypatch.setattr(builtins, "__import__", fake_import)
    else:
        def query_devices(kind=None):
            raise ValueError("No output device matching ''")

        monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(query_devices=query_devices))
    lines = []
    clock = open_clock(wav, True, 0.0, notify=lines.append)
    assert isinstance(clock, MonotonicClock) and len(lines) == 1 and "\n" not in lines[0]
    assert lines[0].startswith("upshade: no sound (") and lines[0].endswith("playing video only, timed by the system clock")
    want = {"no sounddevice": audio.INSTALL_SOUNDDEVICE, "no PortAudio": "apt-get install libportaudio2",
            "no device": "PortAudio finds no audio output device (No output device matching '')"}[problem]
    assert want in lines[0]
    assert "pip install 'upshade[audio]'" in audio.INSTALL_SOUNDDEVICE
