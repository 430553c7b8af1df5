"""host/video.py: probing, pixel-format mapping, threaded decoding, seeking, damage, errors."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from media import (
    assert_patches,
    corrupted_copy,
    make_audio_only,
    make_clip,
    make_vfr_clip,
    to_rgb,
    truncated_copy,
)
from upshade.host.errors import MediaError
from upshade.host.frames import Frame
from upshade.host import video as video_mod
from upshade.host.video import SUPPORTED_PIX_FMTS, Decoder, frame_format, plane_arrays, probe


def decode_all(path, **kw) -> list[Frame]:
    with Decoder(path, **kw) as d:
        return list(d)


# (pix_fmt, codec, container, size, expected kind, planes (role, components, bytes), bit depth, tolerance)
FORMATS = [
    ("yuv420p", "libx264", "mp4", (64, 48), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1)], 8, 4),
    ("yuv420p", "ffv1", "mkv", (65, 37), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1)], 8, 4),
    ("yuvj420p", "libx264", "mp4", (64, 48), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1)], 8, 4),
    ("yuv422p", "libx264", "mkv", (64, 48), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1)], 8, 4),
    ("yuv444p", "libx264", "mkv", (65, 37), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1)], 8, 4),
    ("nv12", "rawvideo", "nut", (65, 37), "yuv", [("Y", 1, 1), ("UV", 2, 1)], 8, 4),
    ("gray", "ffv1", "mkv", (65, 37), "gray", [("Y", 1, 1)], 8, 4),
    ("gray10le", "ffv1", "mkv", (64, 48), "gray", [("Y", 1, 2)], 10, 2),
    ("yuv420p10le", "libx264", "mkv", (64, 48), "yuv", [("Y", 1, 2), ("U", 1, 2), ("V", 1, 2)], 10, 2),
    ("yuv422p10le", "ffv1", "mkv", (65, 37), "yuv", [("Y", 1, 2), ("U", 1, 2), ("V", 1, 2)], 10, 2),
    ("yuv444p10le", "libx264", "mkv", (65, 37), "yuv", [("Y", 1, 2), ("U", 1, 2), ("V", 1, 2)], 10, 2),
    ("yuv420p12le", "ffv1", "mkv", (64, 48), "yuv", [("Y", 1, 2), ("U", 1, 2), ("V", 1, 2)], 12, 2),
    ("yuva420p", "ffv1", "mkv", (64, 48), "yuv", [("Y", 1, 1), ("U", 1, 1), ("V", 1, 1), ("A", 1, 1)], 8, 4),
    ("rgb24", "rawvideo", "nut", (65, 37), "rgb", [("RGB", 3, 1)], 8, 0),
    ("rgba", "rawvideo", "nut", (65, 37), "rgb", [("RGBA", 4, 1)], 8, 0),
    ("bgra", "rawvideo", "nut", (65, 37), "rgb", [("BGRA", 4, 1)], 8, 0),
    ("bgr0", "ffv1", "mkv", (65, 37), "rgb", [("BGRX", 4, 1)], 8, 0),
    ("gbrp", "libx264rgb", "mkv", (65, 37), "rgb", [("G", 1, 1), ("B", 1, 1), ("R", 1, 1)], 8, 0),
    ("gbrp10le", "ffv1", "mkv", (65, 37), "rgb", [("G", 1, 2), ("B", 1, 2), ("R", 1, 2)], 10, 1),
]


@pytest.mark.parametrize(
    "pix_fmt,codec,ext,size,kind,planes,bits,tol", FORMATS, ids=[f"{f[0]}-{f[1]}" for f in FORMATS]
)
def test_pixel_formats_decode_to_the_right_planes_and_colours(
    tmp_path, pix_fmt, codec, ext, size, kind, planes, bits, tol
):
    w, h = size
    src_fmt = "rgb24" if codec == "libx264rgb" else pix_fmt
    opts = {"qp": "0"} if codec.startswith("libx264") else None
    path = make_clip(tmp_path / f"c.{ext}", width=w, height=h, frames=3, pix_fmt=src_fmt, codec=codec, options=opts)
    info = probe(path)
    assert info.format.kind == kind
    assert [(p.role, p.components, p.bytes_per_sample) for p in info.format.planes] == planes
    assert info.format.bit_depth == bits
    assert (info.width, info.height) == (w, h)
    frames = decode_all(path)
    assert len(frames) == 3
    for i, fr in enumerate(frames):
        assert fr.format == info.format
        for arr, pf in zip(fr.planes, fr.format.planes):
            assert arr.ndim == 2 and arr.shape[0] == pf.height
            assert arr.shape[1] >= pf.width * pf.components
            assert arr.dtype == (np.uint8 if pf.bytes_per_sample == 1 else np.uint16)
        assert_patches(fr, i, tol)


def test_planes_are_views_of_the_decoder_buffers_with_padding(tmp_path):
    # 65 pixels wide: FFmpeg pads rows to its alignment, so line_size > width
    path = make_clip(tmp_path / "odd.mkv", width=65, height=37, pix_fmt="yuv444p", codec="libx264",
                     options={"qp": "0"}, frames=2)
    with Decoder(path) as d:
        fr = next(d)
        avf = fr.extra["av_frame"]
        assert isinstance(avf, av.VideoFrame)
        for arr, plane in zip(fr.planes, avf.planes):
            assert arr.shape[1] == plane.line_size > 65
            assert arr.ctypes.data == plane.buffer_ptr  # no copy
        assert_patches(fr, 0, 4)


def test_odd_sized_420_has_rounded_up_chroma(tmp_path):
    path = make_clip(tmp_path / "odd.mkv", width=81, height=45, pix_fmt="yuv420p", codec="ffv1", frames=2)
    fr = decode_all(path)[0]
    assert [(p.width, p.height) for p in fr.format.planes] == [(81, 45), (41, 23), (41, 23)]
    assert fr.format.chroma_subsampling == (2, 2)
    assert_patches(fr, 0, 4)


@pytest.mark.parametrize("pix_fmt", sorted(SUPPORTED_PIX_FMTS))
def test_every_supported_format_maps_planes_of_the_right_shape(pix_fmt):
    # Frames allocated by FFmpeg itself (with its own padding) for formats no test encoder writes (p010le...).
    f = av.VideoFrame(67, 35, pix_fmt)
    fmt = frame_format(pix_fmt, 67, 35)
    assert len(fmt.planes) == len(f.planes)
    arrays = plane_arrays(f, fmt)
    for arr, plane, pf in zip(arrays, f.planes, fmt.planes):
        assert arr.shape == (pf.height, plane.line_size // pf.bytes_per_sample)
        assert (pf.width, pf.height) == (plane.width, plane.height)
        assert arr.shape[1] >= pf.width * pf.components
    assert fmt.kind in ("yuv", "rgb", "gray")


def test_p010_is_described_as_16_bit_semi_planar():
    fmt = frame_format("p010le", 64, 48)
    assert [(p.role, p.components, p.bytes_per_sample) for p in fmt.planes] == [("Y", 1, 2), ("UV", 2, 2)]
    # 10-bit limited black (64) sits in the high bits: 64 << 6 == 16 << 8
    assert fmt.bit_depth == 16 and fmt.range == "limited"


# rgb8 is 3-3-2 bits: 100 quantises to (108, 108, 85)
@pytest.mark.parametrize("src,dst,tol", [("uyvy422", "yuv422p", 3), ("yuv410p", "yuv420p", 3), ("rgb8", "rgb24", 16)])
def test_formats_without_a_gpu_path_are_converted_and_say_so(tmp_path, src, dst, tol):
    path = tmp_path / "c.nut"
    with av.open(str(path), "w") as c:
        s = c.add_stream("rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = 32, 16, src
        for i in range(2):
            f = av.VideoFrame.from_ndarray(np.full((16, 32, 3), 100, np.uint8), format="rgb24").reformat(format=src)
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    info = probe(path)
    assert info.pix_fmt == src and info.converted_from == src
    assert info.format == frame_format(dst, 32, 16)
    frames = decode_all(path)
    assert len(frames) == 2 and frames[0].format == info.format
    assert np.abs(to_rgb(frames[0])[8, 16] - 100).max() <= tol


def test_unsupported_pixel_format_is_named(tmp_path):
    path = tmp_path / "f.nut"
    with av.open(str(path), "w") as c:
        s = c.add_stream("rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = 16, 8, "gbrpf32le"
        f = av.VideoFrame(16, 8, "gbrpf32le")
        f.pts = 0
        c.mux(s.encode(f))
        c.mux(s.encode(None))
    with pytest.raises(MediaError) as e:
        probe(path)
    msg = str(e.value)
    assert str(path) in msg and "unsupported pixel format gbrpf32le" in msg and "yuv420p" in msg
    assert "\n" not in msg


def test_probe_reports_rate_duration_streams(tmp_path):
    path = make_clip(tmp_path / "a.mkv", frames=10, fps=25, audio="flac", subtitles="srt")
    info = probe(path)
    assert info.frame_rate == 25 and info.fps == 25.0
    assert info.duration == pytest.approx(0.4, abs=0.05)
    assert info.estimated_frames == 10
    assert info.has_audio and info.audio_codecs == ("flac",)
    assert [s.codec for s in info.subtitle_streams] == ["srt"]
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    mp4 = probe(make_clip(tmp_path / "b.mp4", frames=7, audio=True))
    assert mp4.frames == 7 and mp4.audio_codecs == ("aac",) and not mp4.subtitle_streams


def test_colour_defaults_and_tags(tmp_path):
    sd = probe(make_clip(tmp_path / "sd.mkv", frames=1))
    assert (sd.format.matrix, sd.format.range, sd.format.chroma_location) == ("bt601", "limited", "left")
    hd = probe(make_clip(tmp_path / "hd.mkv", width=1280, height=720, frames=1))
    assert (hd.format.matrix, hd.format.range) == ("bt709", "limited")
    tagged = probe(make_clip(tmp_path / "t.mkv", frames=1, colorspace="bt709", color_range="full"))
    assert (tagged.format.matrix, tagged.format.range) == ("bt709", "full")
    bt2020 = probe(make_clip(tmp_path / "u.mkv", frames=1, colorspace="bt2020", pix_fmt="yuv420p10le"))
    assert bt2020.format.matrix == "bt2020nc"
    jpeg = probe(make_clip(tmp_path / "j.mp4", frames=1, pix_fmt="yuvj420p"))
    assert (jpeg.format.range, jpeg.format.chroma_location) == ("full", "center")


def test_tagged_colours_decode_to_the_pattern(tmp_path):
    path = make_clip(tmp_path / "t.mkv", frames=2, colorspace="bt709", color_range="full", codec="libx264",
                     pix_fmt="yuv444p", options={"qp": "0"})
    fr = decode_all(path)[1]
    assert (fr.format.matrix, fr.format.range) == ("bt709", "full")
    assert_patches(fr, 1, 3)


@pytest.mark.parametrize("ccw,cw", [(90, 270), (-90, 90), (180, 180), (0, 0)])
def test_rotation_from_display_matrix(tmp_path, ccw, cw):
    info = probe(make_clip(tmp_path / "r.mp4", frames=2, rotation=ccw))
    assert info.rotation == cw and info.format.rotation == cw
    assert decode_all(info.path)[0].format.rotation == cw


def test_pts_are_seconds_and_monotonic(tmp_path):
    frames = decode_all(make_clip(tmp_path / "c.mp4", frames=12, fps=25))
    assert [f.pts for f in frames] == pytest.approx([i / 25 for i in range(12)], abs=1e-6)
    assert [f.index for f in frames] == list(range(12))
    times = [0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5, 0.62]
    vfr = decode_all(make_vfr_clip(tmp_path / "v.mkv", times=times))
    assert [f.pts for f in vfr] == pytest.approx(times, abs=1e-6)
    assert all(isinstance(f.pts, float) for f in vfr)
    for i, f in enumerate(vfr):
        assert_patches(f, i, 6)


def test_seek_lands_on_the_first_frame_at_or_after_t(tmp_path):
    path = make_clip(tmp_path / "s.mp4", frames=50, fps=25, gop=10)
    with Decoder(path, queue_size=2) as d:
        first = [next(d) for _ in range(3)]
        assert first[0].pts == pytest.approx(0.0)
        d.seek(1.0)                      # exactly on frame 25 (not a keyframe)
        f = next(d)
        assert f.pts == pytest.approx(1.0)
        assert_patches(f, 25, 6)
        d.seek(0.33)                     # between frames 8 (0.32) and 9 (0.36)
        f = next(d)
        assert f.pts == pytest.approx(0.36)
        rest = list(d)
        assert [round(x.pts * 25) for x in rest] == list(range(10, 50))
        with pytest.raises(StopIteration):
            next(d)
        d.seek(0.0)                      # seeking after the end starts again
        assert next(d).pts == pytest.approx(0.0)
        assert_patches(next(d), 1, 6)


def test_start_skips_earlier_frames(tmp_path):
    path = make_clip(tmp_path / "s.mkv", frames=20, fps=25, gop=8)
    frames = decode_all(path, start=0.5)
    assert frames[0].pts == pytest.approx(0.52)  # 0.5 is not a frame time; 13 * 0.04 is the next
    assert len(frames) == 7


def test_seek_in_mpeg_ts_with_b_frames_keeps_the_keyframe_it_needs(tmp_path):
    """MPEG-TS seeks by decode time: seeking to a keyframe's time landed on the packet after it (its
    decode time is earlier, B-frames), so the decoder resumed a GOP later and 12 frames were lost
    (--start, and a Ray segment starting there)."""
    path = make_clip(tmp_path / "b.ts", frames=60, fps=25, options={
        "preset": "fast", "x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2:b-adapt=0"})
    everything = [round(f.pts, 3) for f in decode_all(path)]
    assert len(everything) == 60
    for t in (everything[24], everything[24] - 0.01, everything[30]):   # a keyframe, just before it, a P/B frame
        frames = [round(f.pts, 3) for f in decode_all(path, start=t)]
        assert frames == [x for x in everything if x >= t - 1e-6], t


def test_close_stops_a_blocked_thread(tmp_path):
    path = make_clip(tmp_path / "c.mkv", frames=30)
    before = threading.active_count()
    d = Decoder(path, queue_size=1)
    next(d)
    d.close()
    assert not d._thread.is_alive()
    assert threading.active_count() == before


def test_thread_errors_reach_the_consumer(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "c.mkv", frames=5)

    def boom(self, f, index):
        raise RuntimeError("boom in the decoder thread")

    monkeypatch.setattr(Decoder, "_make_frame", boom)
    with Decoder(path) as d:
        with pytest.raises(RuntimeError, match="boom"):
            next(d)


def test_corrupt_packets_warn_once_and_keep_going(tmp_path, caplog):
    src = make_clip(tmp_path / "n.mp4", frames=40, width=64, height=48, pattern="noise", gop=10)
    bad = corrupted_copy(src, tmp_path / "bad.mp4", start=0.5, length=300)
    with caplog.at_level(logging.WARNING, logger="upshade.video"):
        with Decoder(bad) as d:
            frames = list(d)
    assert 20 <= len(frames) <= 40
    assert frames[-1].pts == pytest.approx(39 / 25)  # decoding went on past the damage to the end
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(bad) in warnings[0].getMessage()
    assert d.errors >= 1


def test_truncated_streamable_file_ends_cleanly(tmp_path):
    src = make_clip(tmp_path / "n.mkv", frames=30, pattern="noise")
    cut = truncated_copy(src, tmp_path / "cut.mkv", 0.5)
    frames = decode_all(cut)
    assert 5 <= len(frames) < 30
    pts = [f.pts for f in frames]
    assert pts == sorted(pts)


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path):
    src = make_clip(tmp_path / "n.mp4", frames=10)
    cut = truncated_copy(src, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(MediaError, match="cut.mp4: not a readable media file"):
        probe(cut)


def test_bad_inputs_give_one_line_naming_the_file(tmp_path):
    cases = {}
    cases["no such file"] = tmp_path / "missing.mp4"
    (tmp_path / "text.mp4").write_text("hello, I am not a video\n" * 20)
    cases["not a readable media file"] = tmp_path / "text.mp4"
    (tmp_path / "empty.mkv").write_bytes(b"")
    cases["empty file"] = tmp_path / "empty.mkv"
    cases["audio-only"] = make_audio_only(tmp_path / "sound.m4a")
    (tmp_path / "dir.mkv").mkdir()
    cases["is a directory"] = tmp_path / "dir.mkv"
    cases["exceeds the supported maximum"] = make_clip(
        tmp_path / "huge.nut", width=20000, height=2, frames=1, pix_fmt="gray", codec="rawvideo"
    )
    for expected, path in cases.items():
        with pytest.raises(MediaError) as e:
            probe(path)
        msg = str(e.value)
        assert msg.startswith(str(path)) and expected in msg and "\n" not in msg, msg
        with pytest.raises(MediaError):
            Decoder(path)


def test_size_limits(tmp_path):
    for w, h in ((0, 10), (10, 0), (-2, 5), (16385, 8)):
        with pytest.raises(MediaError, match=f"x.mkv: .*{w}x{h}"):
            video_mod._check_size(Path("x.mkv"), w, h)
    video_mod._check_size(Path("x.mkv"), 16384, 1)
