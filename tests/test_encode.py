"""host/encode.py: threaded encoding, stream copy, timing, colour tags, atomic output, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from media import (
    assert_patches,
    make_bitmap_subtitle_clip,
    make_clip,
    make_vfr_clip,
    packets,
    pattern_rgb,
    video_frame_times,
)
from upshade.host import encode as encode_mod
from upshade.host.encode import Encoder, available_encoder
from upshade.host.errors import UpshadeError
from upshade.host.video import Decoder, probe


def upscale_nearest(rgb: np.ndarray, k: int = 2) -> np.ndarray:
    return np.repeat(np.repeat(rgb, k, 0), k, 1)


def transcode(src, out, *, scale=2, **kw) -> Path:
    """Decode ``src`` and re-encode its known pattern at ``scale`` x size (what `upshade upscale` does)."""
    info = probe(src)
    with Decoder(src, start=kw.get("start", 0.0)) as dec, Encoder(
        out, source_path=src, width=info.width * scale, height=info.height * scale, **kw
    ) as enc:
        for i, f in enumerate(dec):
            index = round(f.pts * info.fps) if info.fps else i
            enc.write(upscale_nearest(pattern_rgb(info.width, info.height, index), scale), f.pts,
                      f.extra["duration"])
    return Path(out)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".part-" in p.name)


def test_frames_size_duration_and_audio_packets_survive(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=12, fps=25, audio=True, metadata={"title": "Patches"})
    out = transcode(src, tmp_path / "out.mp4", crf=18, preset="ultrafast")
    a, b = probe(src), probe(out)
    assert (b.width, b.height) == (2 * a.width, 2 * a.height)
    assert b.frames == a.frames == 12
    assert b.duration == pytest.approx(a.duration, abs=1e-3)
    assert b.frame_rate == 25
    assert video_frame_times(out) == pytest.approx(video_frame_times(src), abs=1e-6)
    src_audio = packets(src, "audio")
    assert len(src_audio) > 5 and packets(out, "audio") == src_audio
    assert b.metadata.get("title") == "Patches"
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # faststart: playable while downloading
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("subs,audio", [("srt", "flac"), ("ass", "libopus")])
def test_subtitles_and_audio_are_copied_packet_for_packet(tmp_path, subs, audio):
    src = make_clip(tmp_path / "src.mkv", frames=10, audio=audio, subtitles=subs)
    out = transcode(src, tmp_path / "out.mkv", preset="ultrafast")
    with av.open(str(out)) as c:
        kinds = [(s.type, s.codec_context.name) for s in c.streams]
    with av.open(str(src)) as c:
        assert kinds == [(s.type, s.codec_context.name) for s in c.streams]
    assert packets(out, "subtitle") == packets(src, "subtitle") != []
    assert packets(out, "audio") == packets(src, "audio") != []


def test_start_and_duration_trim_every_stream(tmp_path):
    src = make_clip(tmp_path / "src.mkv", frames=30, fps=25, audio="flac", subtitles="srt", gop=5)
    out = transcode(src, tmp_path / "out.mkv", start=0.2, duration=0.4, preset="ultrafast")
    # frames 5..14 of the source, shifted to start at 0
    assert video_frame_times(out) == pytest.approx([i * 0.04 for i in range(10)], abs=1e-6)
    with Decoder(out) as d:
        for k, f in enumerate(d):
            assert_patches(f, 5 + k, 10)
    want = [(t - 0.2, data) for t, data in packets(src, "audio") if 0.2 - 1e-6 <= t < 0.6 - 1e-6]
    got = packets(out, "audio")
    assert [d for _, d in got] == [d for _, d in want] and want
    assert [t for t, _ in got] == pytest.approx([t for t, _ in want], abs=1e-3)
    # the second subtitle (0.20 .. 0.32) starts inside the range, the first (0.04) before it
    assert packets(out, "subtitle") == [(0.0, b"Second line")]


def test_vfr_timing_is_preserved(tmp_path):
    times = [0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5, 0.62]
    src = make_vfr_clip(tmp_path / "vfr.mkv", times=times)
    for ext in ("mkv", "mp4"):
        out = Path(tmp_path / f"out.{ext}")
        info = probe(src)
        with Decoder(src) as dec, Encoder(out, source_path=src, width=128, height=96, preset="ultrafast") as enc:
            for i, f in enumerate(dec):
                enc.write(upscale_nearest(pattern_rgb(64, 48, i)), f.pts, f.extra["duration"])
        assert video_frame_times(out) == pytest.approx(times, abs=1e-3), ext
        assert probe(out).duration == pytest.approx(info.duration, abs=0.002)
        with Decoder(out) as d:
            for i, f in enumerate(d):
                assert_patches(f, i, 10)


@pytest.mark.parametrize("colorspace,color_range,size,matrix", [
    (None, None, (64, 48), "bt601"),
    ("bt709", None, (64, 48), "bt709"),
    ("bt709", "full", (64, 48), "bt709"),     # full-range sources come out limited, tagged so
    (None, None, (640, 360), "bt601"),
])
def test_colours_round_trip_with_matching_tags(tmp_path, colorspace, color_range, size, matrix):
    src = make_clip(tmp_path / "src.mkv", width=size[0], height=size[1], frames=3, colorspace=colorspace,
                    color_range=color_range)
    out = transcode(src, tmp_path / "out.mkv", crf=10, preset="ultrafast")
    info = probe(out)
    # a 1280x720 output of an SD source keeps the SD matrix, tagged so players do not guess BT.709
    assert (info.format.matrix, info.format.range) == (matrix, "limited")
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.colorspace == {"bt601": 6, "bt709": 1}[matrix] and cc.color_range == 1
        assert cc.color_primaries != 2 and cc.color_trc != 2
    with Decoder(out) as d:
        for i, f in enumerate(d):
            assert_patches(f, i, 5)


@pytest.mark.parametrize("codec,pix_fmt", [("hevc", "yuv420p"), ("av1", "yuv420p"), ("h264", "yuv420p10le"),
                                           ("hevc", "yuv444p")])
def test_other_codecs_and_depths(tmp_path, codec, pix_fmt):
    src = make_clip(tmp_path / "src.mkv", width=64, height=64, frames=4)
    preset = "8" if codec == "av1" else "ultrafast"
    out = transcode(src, tmp_path / "out.mkv", codec=codec, pix_fmt=pix_fmt, preset=preset, crf=20)
    info = probe(out)
    assert info.codec == {"h264": "h264", "hevc": "hevc", "av1": "av1"}[codec]
    assert info.pix_fmt == pix_fmt and (info.width, info.height) == (128, 128)
    assert len(video_frame_times(out)) == 4
    with Decoder(out) as d:
        for i, f in enumerate(d):
            assert_patches(f, i, 12)


def test_rotation_is_kept(tmp_path):
    src = make_clip(tmp_path / "r.mp4", frames=2, rotation=90)
    out = transcode(src, tmp_path / "o.mp4", preset="ultrafast")
    assert probe(out).rotation == probe(src).rotation == 270


def test_output_appears_only_when_finished(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=3)
    out = tmp_path / "out.mp4"
    with Encoder(out, source_path=src, width=64, height=48, preset="ultrafast") as enc:
        enc.write(pattern_rgb(64, 48, 0), 0.0)
        assert not out.exists() and len(leftovers(tmp_path)) == 1
    assert out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_or_interrupt_leaves_nothing(tmp_path, exc):
    src = make_clip(tmp_path / "src.mp4", frames=3, audio=True)
    out = tmp_path / "out.mp4"
    out_old = tmp_path / "old.mp4"
    out_old.write_bytes(b"previous result")
    for target in (out, out_old):
        with pytest.raises(exc):
            with Encoder(target, source_path=src, width=64, height=48, preset="ultrafast") as enc:
                for i in range(3):
                    enc.write(pattern_rgb(64, 48, i), i / 25)
                raise exc()
    assert not out.exists()
    assert out_old.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == []


def test_errors_in_the_encoder_thread_reach_the_caller(tmp_path, monkeypatch):
    src = make_clip(tmp_path / "src.mp4", frames=3)

    def boom(self, *a):
        raise RuntimeError("boom in the encoder thread")

    monkeypatch.setattr(Encoder, "_encode", boom)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with Encoder(out, source_path=src, width=64, height=48, queue_size=1) as enc:
            for i in range(50):
                enc.write(pattern_rgb(64, 48, 0), i / 25)
    assert not out.exists() and leftovers(tmp_path) == []


def test_output_equal_to_input_is_refused(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=2)
    before = src.read_bytes()
    with pytest.raises(UpshadeError, match="same file as the input"):
        Encoder(src, source_path=src, width=64, height=48)
    assert src.read_bytes() == before and leftovers(tmp_path) == []


def test_bad_settings_are_clear_errors(tmp_path):
    src = make_clip(tmp_path / "src.mkv", frames=2, subtitles="srt")
    out = tmp_path / "out.mkv"
    cases = [
        (dict(codec="vp7"), "unknown codec 'vp7'"),
        (dict(crf=99), "--crf 99: libx264 takes 0..51"),
        (dict(preset="warp"), "--preset warp: libx264 presets are"),
        (dict(codec="av1", preset="fast"), "libsvtav1 presets are numbers"),
        (dict(pix_fmt="yuv444p", codec="av1"), "libsvtav1 cannot encode pixel format yuv444p"),
        (dict(width=65), "yuv420p needs a width divisible by 2"),
    ]
    for kw, msg in cases:
        args = dict(source_path=src, width=64, height=48) | kw
        with pytest.raises(UpshadeError, match=msg.replace("(", r"\(").replace(".", r"\.")):
            Encoder(out, **args)
    with pytest.raises(UpshadeError, match=r"out\.mp4: the mp4 container cannot hold the source's subtitle stream #1 \(srt\)"):
        Encoder(tmp_path / "out.mp4", source_path=src, width=64, height=48)
    with pytest.raises(UpshadeError, match="unknown output container '.xyz'"):
        Encoder(tmp_path / "out.xyz", source_path=src, width=64, height=48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mkv", "src_subs.srt"]


def test_missing_encoder_is_named(monkeypatch):
    monkeypatch.setitem(encode_mod.CODECS, "av1", ("libnonexistent-av1",))
    with pytest.raises(UpshadeError, match="codec av1: this FFmpeg build .* has none of the encoders libnonexistent-av1"):
        available_encoder("av1")
    assert available_encoder("h264") == "libx264"


def test_without_source_and_with_odd_inputs(tmp_path):
    out = tmp_path / "plain.mkv"
    with Encoder(out, width=32, height=32, preset="ultrafast") as enc:
        for i in range(5):
            enc.write(pattern_rgb(32, 32, i), None)        # no pts: 25 fps
        with pytest.raises(ValueError, match="expected"):
            enc.write(np.zeros((8, 8, 3), np.uint8), 1.0)
    assert video_frame_times(out) == pytest.approx([i * 0.04 for i in range(5)], abs=1e-3)
    out2 = tmp_path / "rgba.mkv"
    with Encoder(out2, width=64, height=48, preset="ultrafast") as enc:
        rgba = np.concatenate([pattern_rgb(64, 48, 0), np.full((48, 64, 1), 255, np.uint8)], -1)
        enc.write(rgba, 0.0)
        enc.write((pattern_rgb(64, 48, 1).astype(np.uint16) * 257), 0.04)   # 16-bit RGB
    with Decoder(out2) as d:
        for i, f in enumerate(d):
            assert_patches(f, i, 6)


@pytest.mark.parametrize("kind", ["dvdsub", "pgs"])
def test_bitmap_subtitles_are_copied(tmp_path, kind):
    """DVD and Blu-ray (PGS) picture subtitles are copied packet for packet, trimmed and shifted."""
    src = make_bitmap_subtitle_clip(tmp_path / f"{kind}.mkv", kind, frames=25, events=(0.1, 0.45, 0.8))
    start = 0.4
    out = tmp_path / "out.mkv"
    info = probe(src)
    with Decoder(src, start=start) as dec, Encoder(out, source_path=src, width=info.width, height=info.height,
                                                   start=start, duration=0.3, preset="ultrafast") as enc:
        grey = np.full((info.height, info.width, 3), 128, np.uint8)
        n = 0
        for f in dec:
            if f.pts >= start + 0.3:
                break
            enc.write(grey.copy(), f.pts)
            n += 1
    assert len(video_frame_times(out)) == n >= 7
    want = [(t - start, d) for t, d in packets(src, "subtitle") if start <= t < start + 0.3]
    got = packets(out, "subtitle")
    assert len(want) == (1 if kind == "dvdsub" else 2) and [d for _, d in got] == [d for _, d in want]
    assert [t for t, _ in got] == pytest.approx([t for t, _ in want], abs=1e-3)
    with av.open(str(out)) as c:
        assert c.streams.subtitles[0].codec_context.name == {"dvdsub": "dvdsub", "pgs": "pgssub"}[kind]


def test_pgs_subtitles_cannot_go_into_mp4(tmp_path):
    src = make_bitmap_subtitle_clip(tmp_path / "pgs.mkv", "pgs")
    with pytest.raises(UpshadeError, match=r"out\.mp4: the mp4 container cannot hold the source's subtitle "
                                           r"stream #1 \(pgssub\); write to \.mkv instead"):
        Encoder(tmp_path / "out.mp4", source_path=src, width=64, height=48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgs.mkv", "pgs_subs.sup"]


def test_chapters_and_attachments_are_kept(tmp_path):
    font = bytes(range(256)) * 4
    src = make_clip(tmp_path / "src.mkv", frames=25, subtitles="ass",
                    chapters=[(0.0, 0.3, "One"), (0.3, 0.6, "Two"), (0.6, 1.0, "Three")],
                    attachments=[("font.ttf", "font/ttf", font)])
    out = transcode(src, tmp_path / "out.mkv", preset="ultrafast")
    with av.open(str(out)) as c:
        chapters = [(float(ch["start"] * ch["time_base"]), ch["metadata"].get("title")) for ch in c.chapters()]
        atts = [(a.name, bytes(a.data)) for a in c.streams.attachments]
    assert chapters == [(0.0, "One"), (0.3, "Two"), (0.6, "Three")]
    assert atts == [("font.ttf", font)]
    trimmed = transcode(src, tmp_path / "trim.mkv", start=0.4, duration=0.4, preset="ultrafast")
    with av.open(str(trimmed)) as c:
        chapters = [(round(float(ch["start"] * ch["time_base"]), 3), round(float(ch["end"] * ch["time_base"]), 3),
                     ch["metadata"].get("title")) for ch in c.chapters()]
    assert chapters == [(0.0, 0.2, "Two"), (0.2, 0.4, "Three")]


def test_ycbcr_matrix_is_the_textbook_one():
    from upshade.host.encode import ycbcr_matrix

    # BT.601 in 8 bits: Y = 16 + 65.481 R + 128.553 G + 24.966 B, etc. (R, G, B in 0..1)
    want = [[65.481, 128.553, 24.966, 16], [-37.797, -74.203, 112.0, 128], [112.0, -93.786, -18.214, 128]]
    assert np.allclose(ycbcr_matrix("bt601", 8), want, atol=1e-3)
    m = ycbcr_matrix("bt709", 10)
    assert np.allclose(m @ [1, 1, 1, 1], [940, 512, 512]) and np.allclose(m @ [0, 0, 0, 1], [64, 512, 512])
    assert np.allclose(m[0, :3] / m[0, :3].sum(), [0.2126, 0.7152, 0.0722])
    assert np.allclose(ycbcr_matrix("bt2020nc", 8)[0, :3] / 219, [0.2627, 0.678, 0.0593])
    with pytest.raises(UpshadeError, match="unknown colour matrix"):
        ycbcr_matrix("bt470m", 8)


def test_ready_yuv_frames_are_encoded_as_they_are(tmp_path):
    """Frames already in the output pixel format skip the conversion (what the GPU readback hands in)."""
    src = make_clip(tmp_path / "src.mkv", frames=3)
    out = tmp_path / "out.mkv"
    with Encoder(out, source_path=src, width=64, height=48, pix_fmt="yuv420p10le", crf=4, preset="ultrafast") as enc:
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(pattern_rgb(64, 48, i), format="rgb24").reformat(
                format="yuv420p10le", dst_colorspace="ITU601", dst_color_range="MPEG")
            enc.write(frame, i / 25)
        with pytest.raises(ValueError, match="yuv420p frame of 64x48; expected yuv420p10le of 64x48"):
            enc.write(av.VideoFrame(64, 48, "yuv420p"), 1.0)
        with pytest.raises(ValueError, match="expected yuv420p10le of 64x48"):
            enc.write(av.VideoFrame(32, 48, "yuv420p10le"), 1.0)
        with pytest.raises(ValueError, match="expected"):
            enc.write(np.zeros((48, 64), np.uint8), 1.0)
    info = probe(out)
    assert info.pix_fmt == "yuv420p10le" and (info.format.matrix, info.format.range) == ("bt601", "limited")
    with Decoder(out) as d:
        for i, f in enumerate(d):
            assert_patches(f, i, 6)
