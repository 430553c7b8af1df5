"""Subtitles: tracks, libass text (ASS styles and positions, SubRip), DVD/PGS bitmaps, keys v/j/#,
--sub/--sid/--aid, errors, and ``upscale --burn-subs``; in a real window under Xvfb with llvmpipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import IN_CI
from media import make_bitmap_subtitle_clip, make_clip
from upshade.host import libass
from upshade.host.errors import UpshadeError
from upshade.host.subtitles import (
    Subtitles, TextStore, TrackInfo, auto_subtitle_files, choose_track, list_tracks, read_text_file,
)

# PlayRes 320x240 on a 4:3 clip: script coordinates are window pixels in a 320x240 window.
# Two solid boxes (ASS vector drawings, no outline or shadow): one colour and place before 2 s,
# another after 5 s.
RED = (224, 80, 48)      # &H003050E0 (ASS colours are &HAABBGGRR)
BLUE = (32, 160, 240)    # &H00F0A020
RED_BOX = (40, 30, 100, 60)      # x0, y0, x1, y1 in script pixels (top-left origin)
BLUE_BOX = (200, 160, 280, 200)
ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 320
PlayResY: 240

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Box,DejaVu Sans,20,&H003050E0,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,0,0,7,0,0,0,1
Style: Blue,DejaVu Sans,20,&H00F0A020,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,0,0,7,0,0,0,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.00,0:00:02.00,Box,,0,0,0,,{\\pos(40,30)\\p1}m 0 0 l 60 0 60 30 0 30{\\p0}
Dialogue: 0,0:00:05.00,0:00:07.00,Blue,,0,0,0,,{\\pos(200,160)\\p1}m 0 0 l 80 0 80 40 0 40{\\p0}
"""
SRT = "1\n00:00:00,000 --> 00:00:07,900\nHello there\n\n"


def clip_with_subs(path, tracks, attachments=(), **video) -> Path:
    """A clip of tests/media.make_clip remuxed with subtitle tracks ``[(ext, text, language), ...]`` and
    Matroska attachments ``[(name, mimetype, data), ...]``."""
    path = Path(path)
    base = make_clip(path.with_name(path.stem + "_video.mkv"), **video)
    with av.open(str(base)) as src, av.open(str(path), "w") as out:
        for name, mime, data in attachments:
            out.add_attachment(name, mime, data)
        omap = {s.index: out.add_stream_from_template(s) for s in src.streams}
        subs = []
        for i, (ext, text, lang) in enumerate(tracks):
            f = path.with_name(f"{path.stem}_{i}.{ext}")
            f.write_text(text, encoding="utf-8")
            sin = av.open(str(f))
            o = out.add_stream_from_template(sin.streams.subtitles[0])
            if lang:
                o.metadata["language"] = lang
            subs.append((sin, o))
        for p in src.demux():
            if p.dts is None or p.size == 0:
                continue
            p.stream = omap[p.stream.index]
            out.mux(p)
        for sin, o in subs:
            for p in sin.demux(sin.streams.subtitles[0]):
                if p.dts is None or p.size == 0:
                    continue
                p.stream = o
                out.mux(p)
            sin.close()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("subs")
    video = dict(width=64, height=48, frames=80, fps=10, gop=10)
    return {
        "dir": d,
        # 8 s: track 1 the ASS boxes, track 2 SubRip text; with audio for --aid and '#'.
        "two": clip_with_subs(d / "two.mkv", [("ass", ASS, "eng"), ("srt", SRT, "fre")], audio=True, **video),
        "plain": make_clip(d / "plain.mkv", **video),
        # 1 s, the same two tracks: for command lines that play in real time.
        "short": clip_with_subs(d / "short.mkv", [("ass", ASS, "eng"), ("srt", SRT, "fre")], audio=True,
                                **{**video, "frames": 10}),
        "dvd": make_bitmap_subtitle_clip(d / "dvd.mkv", "dvdsub"),
        "pgs": make_bitmap_subtitle_clip(d / "pgs.mkv", "pgs"),
    }


def need_libass():
    if not libass.available():
        if IN_CI:
            pytest.fail("libass is not installed (CI installs libass9)")
        pytest.skip("libass is not installed (apt-get install libass9)")


# --- tracks, files, choices (no window) ----------------------------------------------------------

def test_tracks_are_numbered_as_mpv_and_auto_loaded_files_follow(clips, tmp_path):
    video = tmp_path / "film.mkv"
    video.write_bytes(clips["two"].read_bytes())
    for name in ("film.srt", "film.en.ass", "film.english.srt", "other.srt", "film.txt"):
        (tmp_path / name).write_text(SRT)
    assert [p.name for p in auto_subtitle_files(video)] == ["film.en.ass", "film.srt"]
    tracks = list_tracks(video, [tmp_path / "other.srt"])
    assert [(t.id, t.codec, t.kind, t.language) for t in tracks] == [
        (1, "ssa", "text", "eng"), (2, "srt", "text", "fre"),
        (3, "srt", "text", None), (4, "ass", "text", "en"), (5, "srt", "text", None)]
    assert [t.file.name for t in tracks[2:]] == ["other.srt", "film.en.ass", "film.srt"]
    assert list_tracks(video, auto=False)[-1].id == 2
    # auto: an external file first (the one given), else a default/forced embedded track, else the first.
    assert choose_track(tracks, "auto")[0].id == 3
    assert choose_track(tracks[:2], "auto")[0].id == 1
    flagged = [TrackInfo(1, "ass", "text"), TrackInfo(2, "ass", "text", default=True)]
    assert choose_track(flagged, None)[0].id == 2
    assert choose_track(tracks, "no") == (None, None)
    assert choose_track(tracks, "2")[0].id == 2
    track, warning = choose_track(tracks, "9")
    assert track is None and warning.startswith("--sid 9: no such subtitle track (the file has: 1: ssa eng")
    assert choose_track(tracks, "x")[1] == "--sid x: not a track number, 'auto' or 'no'"


def test_subtitle_files_must_be_utf8(tmp_path):
    good = tmp_path / "a.srt"
    good.write_bytes(b"\xef\xbb\xbf" + SRT.encode())
    assert read_text_file(good) == SRT.encode()            # BOM dropped
    utf16 = tmp_path / "b.srt"
    utf16.write_bytes(SRT.encode("utf-16"))
    assert read_text_file(utf16) == SRT.encode()
    bad = tmp_path / "c.srt"
    bad.write_bytes("1\n00:00:00,000 --> 00:00:01,000\nCaf\u00e9\n".encode("cp1252"))
    with pytest.raises(UpshadeError, match=r"c\.srt: not UTF-8 text \(byte 35\); convert it first, e\.g\. iconv"):
        read_text_file(bad)
    with pytest.raises(UpshadeError, match="nope.srt: no such subtitle file"):
        read_text_file(tmp_path / "nope.srt")


def test_text_events_read_twice_are_kept_once():
    store = TextStore(b"[Script Info]\n")
    store.add(b"0,0,Default,,0,0,0,,Hello", 1000, 500)
    store.add(b"7,0,Default,,0,0,0,,Hello", 1000, 500)   # the same event after a seek: new ReadOrder
    store.add(b"1,0,Default,,0,0,0,,Hello", 2000, 500)   # same text, other time: another event
    events, n = store.since(0)
    assert n == 2 and [e[0] for e in events] == [b"0,0,Default,,0,0,0,,Hello", b"1,0,Default,,0,0,0,,Hello"]
    assert store.since(2) == ([], 2)


def test_libass_renders_a_styled_box_where_the_script_puts_it():
    need_libass()
    lib = libass.Library()
    track = lib.read_script(ASS.encode())
    renderer = libass.Renderer(lib)
    try:
        assert track.play_res == (320, 240) and track.n_events == 2
        renderer.set_size((640, 480), (64, 48))       # twice the script's size
        images, changed = renderer.render(track, 500)
        assert changed
        x, y, rgba = libass.composite(images, (640, 480))
        x0, y0, x1, y1 = (2 * v for v in RED_BOX)
        ys, xs = np.nonzero(rgba[..., 3])
        assert near((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1), (x0, y0, x1, y1))
        inner = rgba[y0 + 1 - y:y1 - 1 - y, x0 + 1 - x:x1 - 1 - x]
        assert np.all(inner[..., 3] == 255) and np.all(np.abs(inner[..., :3].astype(int) - RED) <= 1)
        assert not renderer.render(track, 600)[1]      # nothing moved: libass says so
        assert renderer.render(track, 3000)[0] == []   # between the events
    finally:
        renderer.close()
        track.close()
        lib.close()


def test_bitmap_subtitles_decode_with_their_palette(clips):
    for kind in ("dvd", "pgs"):
        subs = Subtitles(clips[kind], wait=None)
        try:
            assert subs.current is not None and subs.current.kind == "bitmap"
            [img] = subs.images(0.15, (64, 48))
            assert (img.x, img.y, img.w, img.h) == (4, 4, 16, 8) and img.rgba.shape == (8, 16, 4)
            assert np.all(img.rgba[..., 3] > 0)
            assert subs.images(0.35, (64, 48)) == []      # shown 0.2 s from 0.1
            assert len(subs.images(0.5, (64, 48))) == 1
            [big] = subs.images(0.85, (320, 240))         # scaled from the canvas to the rectangle
            assert (big.x, big.y, big.w, big.h) == (20, 20, 80, 40)
        finally:
            subs.close()


def test_picture_keys_are_never_shared_between_tracks(clips):
    """The GL layer keeps a texture per picture key: a key reused by another track (a renderer's id()
    handed on after it is freed) drew the old track's picture in the new one's place."""
    need_libass()
    subs = Subtitles(clips["two"], wait=None)
    owner = {}
    try:
        for _ in range(15):
            for track in (1, 2):
                subs.select(track)
                [img] = subs.images(0.5, (320, 240))
                assert owner.setdefault(img.key, track) == track
    finally:
        subs.close()


def block_font() -> bytes:
    """A TrueType font, family "UpshadeBlock", whose "A" is a solid box filling its whole advance."""
    import io

    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def box(w):
        pen = TTGlyphPen(None)
        if w:
            pen.moveTo((0, -200))
            pen.lineTo((0, 800))
            pen.lineTo((w, 800))
            pen.lineTo((w, -200))
            pen.closePath()
        return pen.glyph()

    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", "A"])
    fb.setupCharacterMap({ord("A"): "A"})
    fb.setupGlyf({".notdef": box(0), "A": box(600)})
    fb.setupHorizontalMetrics({".notdef": (600, 0), "A": (600, 0)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "UpshadeBlock", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, sTypoDescender=-200, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    out = io.BytesIO()
    fb.save(out)
    return out.getvalue()


def test_fonts_attached_to_the_file_are_used(tmp_path):
    """ASS styles name fonts that travel in the Matroska file: libass gets them (the block font's "AAAA"
    is one solid bar; without the attachment a system font draws letters)."""
    need_libass()
    script = ASS.replace("Style: Box,DejaVu Sans,20", "Style: Box,UpshadeBlock,40").replace(
        "{\\pos(40,30)\\p1}m 0 0 l 60 0 60 30 0 30{\\p0}", "{\\pos(40,30)}AAAA")
    video = dict(width=64, height=48, frames=10, fps=10)
    fill = {}
    for name, attachments in (("with", [("block.ttf", "application/x-truetype-font", block_font())]),
                              ("without", [])):
        clip = clip_with_subs(tmp_path / f"{name}.mkv", [("ass", script, None)], attachments, **video)
        subs = Subtitles(clip, wait=None)
        try:
            [img] = subs.images(0.5, (320, 240))
        finally:
            subs.close()
        ink = img.rgba[..., 3] > 128
        ys, xs = np.nonzero(ink)
        fill[name] = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1].mean()
    assert fill["with"] > 0.95 and fill["without"] < 0.7, fill


# --- in the player ------------------------------------------------------------------------------

@pytest.fixture
def make_player(xdisplay, clips, tmp_path):
    from upshade.host.player import Player

    players = []

    def make(clip, **kw):
        kw.setdefault("clock", "stepped")
        kw.setdefault("vsync", False)
        kw.setdefault("window_size", (320, 240))
        kw.setdefault("screenshot_dir", tmp_path)
        kw.setdefault("subtitle_wait", None)   # deterministic: the first frame waits for its subtitles
        kw.setdefault("notify", lambda m: None)
        p = Player(clips.get(clip, clip), [], **kw)
        players.append(p)
        return p

    yield make
    for p in players:
        p.close()


def near(box, expect, tol=1) -> bool:
    return box is not None and all(abs(int(a) - int(b)) <= tol for a, b in zip(box, expect))


def shown_and_plain(p):
    """The window as drawn (without the on-screen message a key press shows for 2 s), and the same
    frame rendered without subtitles (both HxWx3 int)."""
    p._osd = None
    img = p.present(capture=True).astype(int)
    r = p.video_rect
    tex = p.renderer.render(p.current, (r.w, r.h), frame_index=p.current.index)
    plain = np.zeros_like(img)
    fh = img.shape[0]
    plain[fh - r.y - r.h: fh - r.y, r.x: r.x + r.w] = p.renderer.read_rgb(tex, np.uint8)[..., :3]
    return img, plain


def changed_box(img, plain, tol=3):
    ys, xs = np.nonzero(np.abs(img - plain).max(2) > tol)
    return (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else None


def test_ass_box_shows_in_its_colour_and_place_and_v_hides_it(make_player):
    need_libass()
    p = make_player("two")
    p.run(max_frames=6)
    assert p.subtitles.current.id == 1 and abs(p.current.pts - 0.5) < 1e-6
    img, plain = shown_and_plain(p)
    assert near(changed_box(img, plain), RED_BOX)
    x0, y0, x1, y1 = RED_BOX
    assert np.all(np.abs(img[y0 + 1:y1 - 1, x0 + 1:x1 - 1] - RED) <= 2)
    p.handle_char("v")
    assert not p.subtitles.visible and "hidden" in p._title()
    # mpv-style on-screen message, top left, for a moment
    from upshade.host.overlay import render_text_cpu

    ink = render_text_cpu(["subtitles hidden"], 2)
    osd = p.present(capture=True)[8:8 + ink.shape[0], 8:8 + ink.shape[1], 0]
    assert np.array_equal(osd == 255, ink)
    img, plain = shown_and_plain(p)
    assert changed_box(img, plain) is None     # exactly the video: no subtitle
    p.handle_char("v")
    assert near(changed_box(*shown_and_plain(p)), RED_BOX)


def test_j_cycles_tracks_and_seeks_show_the_right_event(make_player):
    need_libass()
    p = make_player("two")
    p.run(max_frames=3)
    p.handle_char("j")                            # track 2: SubRip text, bottom centre, white
    assert p.subtitles.current.id == 2 and "subtitles 2: srt fre" in p._title()
    img, plain = shown_and_plain(p)
    x0, y0, x1, y1 = changed_box(img, plain)
    assert y0 > 160 and y1 <= 240 and abs((x0 + x1) / 2 - 160) < 8 and x1 - x0 > 60
    assert (img[y0:y1, x0:x1].min(2) > 220).sum() >= 20   # white glyphs (FFmpeg's SubRip style)
    p.handle_char("j")                            # off
    assert p.subtitles.current is None
    assert changed_box(*shown_and_plain(p)) is None
    p.handle_char("J")                            # backwards: track 2 again
    assert p.subtitles.current.id == 2
    p.handle_char("j")
    p.handle_char("j")                            # round to track 1
    assert p.subtitles.current.id == 1
    assert near(changed_box(*shown_and_plain(p)), RED_BOX)
    import glfw

    p.handle_key(glfw.KEY_RIGHT)                  # +5 s: the blue box's event, not the red one's
    p.step()
    assert p.current.pts >= 5.0
    img, plain = shown_and_plain(p)
    assert near(changed_box(img, plain), BLUE_BOX)
    assert np.all(np.abs(img[170:190, 210:270] - BLUE) <= 2)
    p.handle_key(glfw.KEY_LEFT)
    p.step()
    assert near(changed_box(*shown_and_plain(p)), RED_BOX)


def test_subtitles_follow_the_video_rectangle_letterboxed_and_in_compare(make_player):
    need_libass()
    p = make_player("two", window_size=(400, 240))   # pillarbox: the video is 320x240 at x = 40
    p.run(max_frames=2)
    x0, y0, x1, y1 = RED_BOX
    assert near(changed_box(*shown_and_plain(p)), (x0 + 40, y0, x1 + 40, y1))
    import glfw

    p.handle_key(glfw.KEY_C)                       # compare: subtitles over both halves, unchanged
    img = p.present(capture=True).astype(int)
    assert np.all(np.abs(img[y0 + 1:y1 - 1, x0 + 41:x1 + 39] - RED) <= 2)


@pytest.mark.parametrize("kind", ["dvd", "pgs"])
def test_bitmap_tracks_show_at_their_times(make_player, kind):
    p = make_player(kind)                          # 64x48 clip in 320x240: x5
    p.run(until=0.12)
    img, plain = shown_and_plain(p)
    assert changed_box(img, plain, tol=8) == (20, 20, 100, 60)
    p.run(until=0.36)                              # between two events
    assert changed_box(*shown_and_plain(p), tol=8) is None
    p.seek(0.8)
    p.step()
    assert changed_box(*shown_and_plain(p), tol=8) == (20, 20, 100, 60)


@pytest.mark.parametrize("name, t, box", [
    # DVD: 720x480 canvas (the track's .idx header) on 720x478 video; "[squawk]"-sized line at the bottom.
    ("popeye_478p_hevc_dvdsub.mkv", 22.0, (293, 417, 131, 27)),
    # PGS: a 1920x1080 presentation on 1440x1074 video.
    ("popeye_1074p_hevc_pgs.mkv", 20.5, None),
])
def test_shared_dvd_and_pgs_samples(make_player, data_dir, name, t, box):
    path = data_dir / "video" / name
    if not path.exists():
        pytest.skip(f"{path} is not in the data folder")
    p = make_player(path, window_size=(480, 360), start=t - 0.3)
    p.run(until=t)
    img, plain = shown_and_plain(p)
    found = changed_box(img, plain, tol=30)
    assert found is not None, "no subtitle drawn"
    r = p.video_rect
    fh = img.shape[0]
    top = fh - r.y - r.h
    assert found[1] > top + 0.8 * r.h            # near the bottom of the picture, as in the file
    if box is not None:
        x, y, w, h = box
        sx, sy = r.w / 720, r.h / 480
        expect = (r.x + x * sx, top + y * sy, r.x + (x + w) * sx, top + (y + h) * sy)
        assert all(abs(a - b) <= 3 for a, b in zip(found, expect)), (found, expect)
    p.seek(5.0)                                    # before the first subtitle: nothing
    p.step()
    assert changed_box(*shown_and_plain(p), tol=30) is None


def test_external_and_same_name_files(make_player, clips, tmp_path):
    need_libass()
    video = tmp_path / "film.mkv"
    video.write_bytes(clips["plain"].read_bytes())
    (tmp_path / "film.ass").write_text(ASS)       # auto-loaded
    lines = []
    p = make_player(video, notify=lines.append)
    p.run(max_frames=2)
    assert p.subtitles.current.file.name == "film.ass" and not lines
    assert near(changed_box(*shown_and_plain(p)), RED_BOX)
    bad = tmp_path / "latin1.srt"
    bad.write_bytes("1\n00:00:00,000 --> 00:00:05,000\nCaf\u00e9\n".encode("cp1252"))
    q = make_player(video, subs=[bad, tmp_path / "missing.srt"], notify=lines.append)
    q.run(max_frames=2)                            # plays on
    assert q.stats.presented == 2
    assert lines[0] == f"upshade: warning: {tmp_path / 'missing.srt'}: no such subtitle file"
    assert len(lines) == 2 and lines[1].startswith("upshade: warning: subtitle track 1: srt external latin1.srt: ")
    assert "not UTF-8 text" in lines[1]
    # The broken file was the choice (given with --sub); the same-name file is one j away.
    q.handle_char("j")
    assert q.subtitles.current.file.name == "film.ass"
    r = make_player(video, sub_auto=False)
    assert r.subtitles.current is None and r.subtitles.tracks == []


def test_sid_aid_and_the_audio_key(make_player):
    lines = []
    p = make_player("two", sid="2", aid="auto", clock="auto", audio=False, notify=lines.append)
    assert p.subtitles.current.id == 2 and p.audio_track == 1
    p.handle_char("#")
    assert p.audio_track is None and "audio off" in p._osd[0]
    p.handle_char("#")
    assert p.audio_track == 1 and p.clock.kind == "system clock"
    p.run(max_frames=2)
    assert not lines
    q = make_player("two", sid="7", aid="3", notify=lines.append)
    assert q.subtitles.current is None and q.audio_track is None
    assert lines == ["upshade: warning: --aid 3: no such audio track (the file has 1); playing without sound",
                     "upshade: warning: --sid 7: no such subtitle track (the file has: 1: ssa eng, 2: srt fre); "
                     "playing without subtitles"]
    q.run(max_frames=2)
    assert q.stats.presented == 2
    assert make_player("two", sid="no").subtitles.current is None


def test_without_libass_text_subtitles_are_skipped_with_one_line(make_player, monkeypatch, clips):
    def missing():
        raise libass.LibassUnavailable(f"libass is not installed ({libass.INSTALL_HINT})")

    monkeypatch.setattr(libass, "_lib", missing)
    monkeypatch.setattr(libass, "available", lambda: False)
    lines = []
    p = make_player("two", notify=lines.append)
    p.run(max_frames=3)
    assert p.stats.presented == 3 and p.subtitles.current is None
    assert len(lines) == 1 and "text subtitles need libass" in lines[0] and "apt-get install libass9" in lines[0]
    # Bitmap subtitles need no libass.
    q = make_player("dvd", notify=lines.append)
    assert q.subtitles.current is not None and len(lines) == 1


def test_a_codec_without_decoder_is_reported_once(make_player, monkeypatch):
    from upshade.host import subtitles

    real = subtitles.codec_kind
    monkeypatch.setattr(subtitles, "codec_kind", lambda name: None if name == "srt" else real(name))
    lines = []
    p = make_player("two", sid="2", notify=lines.append)
    p.run(max_frames=2)
    assert p.stats.presented == 2 and p.subtitles.current is None
    assert lines == ["upshade: warning: subtitle track 2: srt fre: FFmpeg has no decoder for srt subtitles "
                     "here; the track is not shown"]


# --- burned in ----------------------------------------------------------------------------------

def _frames(path):
    with av.open(str(path)) as c:
        return {round(f.time, 3): f.to_ndarray(format="rgb24").astype(int) for f in c.decode(video=0)}


def test_burn_subs_changes_exactly_the_subtitle_region(clips, tmp_path, shared_ctx):
    need_libass()
    from upshade.host.transcode import upscale_video

    src = clips["two"]
    plain, burned = tmp_path / "plain.mkv", tmp_path / "burned.mkv"
    common = dict(size=(128, 96), crf=0, progress=False)   # lossless: only the burned pixels differ
    upscale_video(shared_ctx, src, plain, **common)
    upscale_video(shared_ctx, src, burned, burn_subs="1", **common)
    a, b = _frames(plain), _frames(burned)
    assert a.keys() == b.keys() and len(a) == 80
    for t, scale_box in ((0.5, RED_BOX), (5.5, BLUE_BOX), (3.0, None)):
        diff = np.abs(a[t] - b[t]).max(2) > 3
        if scale_box is None:
            assert not diff.any()
            continue
        x0, y0, x1, y1 = (round(v * 0.4) for v in scale_box)   # 320x240 script -> 128x96 output
        inside = diff[y0:y1, x0:x1]
        assert inside[1:-1, 1:-1].all()
        outside = diff.copy()
        outside[y0 - 2:y1 + 2, x0 - 2:x1 + 2] = False           # 4:2:0 chroma bleeds one sample
        assert not outside.any()
    with av.open(str(burned)) as c:   # the burned track is not copied; audio and the other track are
        kinds = [(s.type, s.codec_context.name, s.metadata.get("language")) for s in c.streams]
    assert kinds == [("video", "h264", None), ("audio", "aac", None), ("subtitle", "srt", "fre")]


def test_burn_subs_errors_before_any_work(clips, tmp_path, shared_ctx):
    from upshade.host.transcode import upscale_video

    out = tmp_path / "o.mkv"
    with pytest.raises(UpshadeError, match=r"^--burn-subs 5: no such subtitle track \(the file has: 1: ssa eng"):
        upscale_video(shared_ctx, clips["two"], out, burn_subs="5", progress=False)
    with pytest.raises(UpshadeError, match="plain.mkv has no subtitle track to burn in"):
        upscale_video(shared_ctx, clips["plain"], out, burn_subs="auto", progress=False)
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "upshade.host.cli", "upscale", str(clips["plain"]), "-o", str(out),
                        "--no-model", "--burn-subs", str(tmp_path / "none.srt")], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip() == (f"upshade: error: --burn-subs {tmp_path / 'none.srt'}: "
                                                      f"no such subtitle file or track number")


def test_command_lines(xdisplay, clips, tmp_path):
    """The options reach the player and the encoder: play with --sub/--sid/--aid, upscale --burn-subs N."""
    sub = tmp_path / "extra.srt"
    sub.write_text(SRT)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "upshade.host.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    r = cli("play", clips["short"], "--no-model", "--no-audio", "--sub", sub, "--sid", "3", "--aid", "no")
    assert r.returncode == 0 and r.stderr.count("\n") == 1, r.stderr   # one line naming what runs
    r = cli("play", clips["short"], "--no-model", "--no-audio", "--sid", "9")
    assert r.returncode == 0 and "upshade: warning: --sid 9: no such subtitle track" in r.stderr
    out = tmp_path / "burned.mkv"
    r = cli("upscale", clips["short"], "-o", out, "--no-model", "--burn-subs", "2")
    assert r.returncode == 0, r.stderr
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.subtitles] == ["ssa"]   # track 2 burned, 1 copied
