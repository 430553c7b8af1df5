"""`upshade upscale`: decode -> GL render -> readback -> encode, end to end on headless EGL."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from media import (assert_patches, corrupted_copy, make_clip, make_vfr_clip, packets, truncated_copy,
                   video_frame_times)
from upshade.host import cli
from upshade.host import readback as readback_mod
from upshade.host import transcode as transcode_mod
from upshade.host.errors import UpshadeError
from upshade.host.pipeline import Renderer
from upshade.host.readback import PlaneReadback, Readback
from upshade.host.transcode import upscale_video
from upshade.host.video import Decoder, probe

pytestmark = pytest.mark.gl

GAIN = ("//!PARAM gain\n//!TYPE float\n1.0\n\n//!HOOK MAIN\n//!BIND HOOKED\n"
        "vec4 hook() { return vec4(HOOKED_tex(HOOKED_pos).rgb * gain, 1.0); }\n")


def run_cli(*args) -> int:
    return cli.main(["upscale", *map(str, args)])


def errors(capsys, *args) -> str:
    assert run_cli(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("upshade: error: "), err
    return err[-1]


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if ".part-" in p.name)


def test_mkv_doubles_size_keeps_frames_streams_and_colours(gl_ctx, tmp_path):
    src = make_clip(tmp_path / "src.mkv", frames=12, audio="flac", subtitles="ass", metadata={"title": "T"})
    out = tmp_path / "out.mkv"
    assert run_cli(src, "-o", out, "--preset", "ultrafast", "--crf", "12", "--no-model") == 0
    a, b = probe(src), probe(out)
    assert (b.width, b.height) == (128, 96)
    assert video_frame_times(out) == pytest.approx(video_frame_times(src), abs=1e-6)
    assert b.duration == pytest.approx(a.duration, abs=1e-3)
    assert packets(out, "audio") == packets(src, "audio") != []
    assert packets(out, "subtitle") == packets(src, "subtitle") != []
    assert b.metadata.get("title") == "T"
    with Decoder(out) as d:
        frames = list(d)
    assert len(frames) == 12
    for i, f in enumerate(frames):
        assert_patches(f, i, 8)  # patch centres are flat: the bicubic x2 keeps them, encode adds a little
    assert leftovers(tmp_path) == []


def test_mp4_vfr_with_aac_and_a_shader(gl_ctx, tmp_path):
    times = [0.0, 0.04, 0.1, 0.13, 0.3, 0.31, 0.5, 0.62]
    src = make_vfr_clip(tmp_path / "v.mkv", times=times)
    sh = tmp_path / "gain.glsl"
    sh.write_text(GAIN)
    out = tmp_path / "o.mkv"
    assert run_cli(src, "-o", out, "--shader", sh, "--param", "gain=0", "--size", "96x72",
                   "--preset", "ultrafast") == 0
    assert video_frame_times(out) == pytest.approx(times, abs=1e-3)
    info = probe(out)
    assert (info.width, info.height) == (96, 72)
    with Decoder(out) as d:
        for f in d:
            y = f.planes[0][:72, :96]
            assert np.abs(y.astype(int) - 16).max() <= 2  # gain 0: black, limited range
    src2 = make_clip(tmp_path / "a.mp4", frames=10, audio=True)
    out2 = tmp_path / "a2.mp4"
    assert run_cli(src2, "-o", out2, "--preset", "ultrafast", "--no-model") == 0
    assert packets(out2, "audio") == packets(src2, "audio")
    assert probe(out2).frames == 10


def test_start_duration_and_10_bit(gl_ctx, tmp_path):
    src = make_clip(tmp_path / "s.mkv", frames=25, audio="flac", gop=5)
    out = tmp_path / "o.mkv"
    n = upscale_video(gl_ctx, src, out, start=0.2, duration=0.4, pix_fmt="yuv420p10le", preset="ultrafast",
                      progress=False)
    assert n == 10
    info = probe(out)
    assert info.pix_fmt == "yuv420p10le" and info.format.bit_depth == 10
    assert video_frame_times(out) == pytest.approx([i * 0.04 for i in range(10)], abs=1e-6)
    with Decoder(out) as d:
        for k, f in enumerate(d):
            assert_patches(f, 5 + k, 8)
    want = [d for t, d in packets(src, "audio") if 0.2 - 1e-6 <= t < 0.6 - 1e-6]
    assert [d for _, d in packets(out, "audio")] == want != []


def test_readback_is_ordered_and_lagged(gl_ctx):
    w, h = 8, 4
    ramp = np.linspace(0, 1, w * h * 4, dtype=np.float32).reshape(h, w, 4)
    tex = gl_ctx.texture((w, h), 4, dtype="f4")
    try:
        for deep, dtype, peak in ((False, np.uint8, 255), (True, np.uint16, 65535)):
            with Readback(gl_ctx, (w, h), deep=deep, lag=2) as rb:
                got = []
                for k in range(5):
                    tex.write((ramp * (k + 1) / 5).tobytes())
                    ready = rb.submit(tex, k)
                    assert len(ready) == (1 if k >= 2 else 0)
                    got += ready
                got += rb.drain()
            assert [t for _, t in got] == list(range(5))
            for arr, k in got:
                assert arr.dtype == dtype and arr.shape == (h, w, 3)
                want = np.rint(np.clip(ramp[..., :3] * (k + 1) / 5, 0, 1) * peak)
                assert np.abs(arr.astype(np.int64) - want).max() <= 1
    finally:
        tex.release()


@pytest.mark.parametrize("exc,code", [(KeyboardInterrupt, 130), (RuntimeError, None)])
def test_interrupt_or_error_leaves_nothing(gl_ctx, tmp_path, monkeypatch, exc, code):
    src = make_clip(tmp_path / "s.mkv", frames=20, audio="flac")
    out = tmp_path / "o.mkv"
    real = Renderer.render
    calls = []

    def render(self, frame, size, **kw):
        calls.append(1)
        if len(calls) == 8:
            raise exc("stop")
        return real(self, frame, size, **kw)

    monkeypatch.setattr(Renderer, "render", render)
    if code is not None:
        assert run_cli(src, "-o", out, "--preset", "ultrafast") == code
    else:
        with pytest.raises(exc):
            upscale_video(gl_ctx, src, out, preset="ultrafast", progress=False)
    assert not out.exists() and leftovers(tmp_path) == []


def test_bad_input_and_options(gl_ctx, tmp_path, capsys):
    src = make_clip(tmp_path / "s.mkv", frames=3, subtitles="srt")
    out = tmp_path / "o.mkv"
    assert "same file as the input" in errors(capsys, src, "-o", src)
    assert "missing.mkv: no such file" in errors(capsys, tmp_path / "missing.mkv", "-o", out)
    assert "--start 9.0: " in errors(capsys, src, "-o", out, "--start", "9")
    assert "yuv420p needs a width divisible by 2" in errors(capsys, src, "-o", out, "--size", "65x48")
    assert "--crf 80: libx264 takes 0..51" in errors(capsys, src, "-o", out, "--crf", "80")
    assert "cannot hold the source's subtitle stream" in errors(capsys, src, "-o", tmp_path / "o.mp4")
    assert "no such shader file" in errors(capsys, src, "-o", out, "--shader", tmp_path / "none.glsl")
    assert "unknown model 'X'" in errors(capsys, src, "-o", out, "--model", "X")
    bad = tmp_path / "bad.glsl"
    bad.write_text("//!HOOK MAIN\n//!BIND HOOKED\nvec4 hook() { return oops; }\n")
    assert f"{bad}:" in errors(capsys, src, "-o", out, "--shader", bad)
    text = tmp_path / "t.mkv"
    text.write_text("not a video\n" * 10)
    assert f"{text}: not a readable media file" in errors(capsys, text, "-o", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["s.mkv", "s_subs.srt", "bad.glsl", "t.mkv"])


def test_frame_budget_for_progress():
    class Info:
        estimated_frames = 100
        fps = 25.0
        duration = 4.0

    assert transcode_mod.frame_budget(Info, 0.0, None) == 100
    assert transcode_mod.frame_budget(Info, 1.0, None) == 75
    assert transcode_mod.frame_budget(Info, 1.0, 0.4) == 10
    assert transcode_mod.frame_budget(Info, 3.8, 2.0) == 5
    with pytest.raises(UpshadeError):
        upscale_video(None, Path("/nonexistent.mkv"), Path("/tmp/x.mkv"))


@pytest.mark.parametrize("kw", [
    dict(pix_fmt="yuvj420p"),                                              # JPEG full range, BT.601
    dict(pix_fmt="yuv420p10le", colorspace="bt709"),
    dict(pix_fmt="yuv444p", colorspace="bt2020", color_range="full", codec="ffv1"),
    dict(pix_fmt="rgb24", codec="libx264rgb", options={"qp": "0"}),      # decodes as planar RGB (gbrp)
    dict(pix_fmt="gray", codec="ffv1"),
    dict(pix_fmt="bgr0", codec="ffv1"),                                    # packed, role BGRX
    dict(pix_fmt="bgra", codec="ffv1"),                                    # packed with alpha, role BGRA
], ids=["yuvj420p", "10bit-709", "444-2020-full", "gbrp", "gray", "bgr0", "bgra"])
def test_source_colours_survive_the_gpu_round_trip(gl_ctx, tmp_path, kw):
    src = make_clip(tmp_path / "s.mkv", frames=3, **kw)
    out = tmp_path / "o.mkv"
    assert upscale_video(gl_ctx, src, out, crf=8, preset="ultrafast", progress=False) == 3
    assert probe(out).pix_fmt == ("yuv420p10le" if "10" in kw["pix_fmt"] else "yuv420p")
    with Decoder(out) as d:
        for i, f in enumerate(d):
            assert f.format.range == "limited"
            if kw["pix_fmt"] == "gray":
                # grey in, grey out: chroma neutral
                assert np.abs(f.planes[1][:48, :64].astype(int) - 128).max() <= 2
            assert_patches(f, i, 8, gray=kw["pix_fmt"] == "gray")


# --------------------------------------------------------------- YCbCr on the GPU (PlaneReadback)

SWS_MATRIX = {"bt601": "ITU601", "bt709": "ITU709", "bt2020nc": "BT2020"}


def rgb_texture(ctx, rgb: np.ndarray):
    """An RGBA texture holding exactly ``rgb`` (uint8 -> rgba8, uint16 -> rgba16 unorm)."""
    h, w, _ = rgb.shape
    alpha = np.full((h, w, 1), np.iinfo(rgb.dtype).max, rgb.dtype)
    return ctx.texture((w, h), 4, np.concatenate([rgb, alpha], -1).tobytes(),
                       dtype="f1" if rgb.dtype == np.uint8 else "nu2")


def gpu_frame(ctx, rgb: np.ndarray, pix_fmt: str, matrix: str):
    tex = rgb_texture(ctx, rgb)
    try:
        with PlaneReadback(ctx, (rgb.shape[1], rgb.shape[0]), pix_fmt, matrix) as rb:
            out = rb.submit(tex, None) + rb.drain()
    finally:
        tex.release()
    assert len(out) == 1
    return out[0][0]


def swscale_frame(rgb: np.ndarray, pix_fmt: str, matrix: str):
    import av

    layout = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
    return av.VideoFrame.from_ndarray(rgb, format=layout).reformat(
        format=pix_fmt, dst_colorspace=SWS_MATRIX[matrix], dst_color_range="MPEG")


def planes_of(frame) -> list[np.ndarray]:
    """Y, Cb, Cr codes of an av.VideoFrame as int arrays (row padding stripped)."""
    dtype = np.dtype("<u2") if frame.format.components[0].bits > 8 else np.dtype(np.uint8)
    out = []
    for p in frame.planes:
        rows = np.frombuffer(p, np.uint8)[: p.height * p.line_size].reshape(p.height, p.line_size)
        out.append(rows[:, : p.width * dtype.itemsize].copy().view(dtype).astype(np.int64))
    return out


def reference_planes(rgb: np.ndarray, pix_fmt: str, matrix: str) -> list[np.ndarray]:
    """The documented conversion in float64: matrix of encode.ycbcr_matrix; chroma on even columns with
    [1 2 1]/4, midway between row pairs as their average (4:2:0), border pixels repeated."""
    import av

    from upshade.host.encode import ycbcr_matrix

    fmt = av.VideoFormat(pix_fmt)
    bits = fmt.components[0].bits
    m = ycbcr_matrix(matrix, bits)
    x = rgb.astype(np.float64) / np.iinfo(rgb.dtype).max
    h, w, _ = x.shape
    sx, sy = (2 if fmt.chroma_width(2) == 1 else 1), (2 if fmt.chroma_height(2) == 1 else 1)
    cols = np.arange(fmt.chroma_width(w)) * sx
    rows = np.arange(fmt.chroma_height(h)) * sy

    def at(ys, xs):
        return x[np.clip(ys, 0, h - 1)][:, np.clip(xs, 0, w - 1)]

    def hfilt(ys):
        return 0.25 * (at(ys, cols - 1) + at(ys, cols + 1)) + 0.5 * at(ys, cols) if sx == 2 else at(ys, cols)

    c = 0.5 * (hfilt(rows) + hfilt(rows + 1)) if sy == 2 else hfilt(rows)

    def code(v, r):
        return np.clip(np.floor(v @ m[r, :3] + m[r, 3] + 0.5), 0, (1 << bits) - 1).astype(np.int64)

    return [code(x, 0), code(c, 1), code(c, 2)]


def gentle_gradient(w: int, h: int, deep: bool) -> np.ndarray:
    """Smooth ramps in every channel (2-2.5 codes per pixel), where the half-pixel difference between
    our chroma siting and swscale's moves chroma by less than a code."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([40 + 2.0 * xx, 220 - 2.5 * yy, 60 + 1.2 * (xx + yy)], -1)
    assert rgb.min() >= 0 and rgb.max() <= 255
    if deep:
        return np.rint(rgb * 257).astype(np.uint16)
    return np.rint(rgb).astype(np.uint8)


# Odd heights are left out of 4:2:0 here: swscale scales 2k+1 rows to k+1 chroma rows with the ratio
# (2k+1)/(k+1), which drifts (by 3/4 of a row at the bottom of 21 rows) from the rows 2j, 2j+1 that
# chroma row j stands for. The documented filter is checked on odd sizes below.
@pytest.mark.parametrize("pix_fmt,size,matrix", [
    ("yuv420p", (64, 48), "bt601"),
    ("yuv420p", (37, 22), "bt709"),       # odd width: 19 chroma columns, padded rows
    ("yuv422p", (37, 19), "bt709"),
    ("yuv444p", (33, 17), "bt2020nc"),
    ("yuv420p10le", (64, 48), "bt709"),
    # 10 bits at a width divisible by 16: at 35..40, swscale (FFmpeg 8) now and then writes eight wrong
    # luma codes at the start of a row (rgb48le -> yuv420p10le; 11 of 300 conversions at 36x20)
    ("yuv420p10le", (48, 20), "bt2020nc"),
])
def test_gpu_planes_match_swscale(gl_ctx, pix_fmt, size, matrix):
    w, h = size
    deep = "10" in pix_fmt
    tol = 4 if deep else 1
    patch = np.empty((h, w, 3), np.uint16 if deep else np.uint8)
    patch[:] = (200 * 257, 100 * 257, 50 * 257) if deep else (200, 100, 50)
    for rgb in (patch, gentle_gradient(w, h, deep)):
        got = gpu_frame(gl_ctx, rgb, pix_fmt, matrix)
        want = swscale_frame(rgb, pix_fmt, matrix)
        assert got.format.name == pix_fmt and (got.width, got.height) == (w, h)
        for name, a, b in zip("Y Cb Cr".split(), planes_of(got), planes_of(want)):
            assert a.shape == b.shape, name
            assert np.abs(a - b).max() <= tol, (name, np.abs(a - b).max())


def test_gpu_planes_exact_codes(gl_ctx):
    # Flat colours: codes from the BT.709 / BT.601 definitions, written out by hand.
    cases = [
        ("yuv420p", "bt709", (255, 255, 255), (235, 128, 128)),
        ("yuv420p", "bt709", (0, 0, 0), (16, 128, 128)),
        ("yuv420p", "bt709", (255, 0, 0), (63, 102, 240)),
        ("yuv420p", "bt601", (0, 255, 0), (145, 54, 34)),
        ("yuv420p10le", "bt709", (65535, 65535, 65535), (940, 512, 512)),
        ("yuv420p10le", "bt709", (0, 0, 0), (64, 512, 512)),
        ("yuv420p10le", "bt709", (65535, 0, 0), (250, 409, 960)),
        ("yuv420p10le", "bt601", (0, 0, 65535), (164, 960, 439)),
    ]
    for pix_fmt, matrix, colour, codes in cases:
        rgb = np.empty((6, 10, 3), np.uint16 if max(colour) > 255 else np.uint8)
        rgb[:] = colour
        for plane, want in zip(planes_of(gpu_frame(gl_ctx, rgb, pix_fmt, matrix)), codes):
            assert (plane == want).all(), (pix_fmt, matrix, colour, np.unique(plane), want)


@pytest.mark.parametrize("pix_fmt,size", [("yuv420p", (37, 21)), ("yuv420p", (40, 24)), ("yuv422p", (21, 9)),
                                          ("yuv444p", (13, 7)), ("yuv420p10le", (35, 19)),
                                          ("yuv422p10le", (18, 11)), ("yuv444p12le", (9, 5))])
def test_gpu_planes_follow_the_documented_filter(gl_ctx, pix_fmt, size):
    """Random 16-bit RGB: every code equals the float64 reference (siting, taps, edges, rounding)."""
    w, h = size
    rgb = np.random.default_rng(w * h).integers(0, 65536, (h, w, 3), dtype=np.uint16)
    got = planes_of(gpu_frame(gl_ctx, rgb, pix_fmt, "bt709"))
    for a, b in zip(got, reference_planes(rgb, pix_fmt, "bt709")):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 1          # a float32 rounding tie, at most
        assert (a != b).mean() < 0.01


def test_gpu_siting_is_left_for_420(gl_ctx):
    """One bright blue pixel: on an even column it lands on one chroma column (weight 1/2), on an odd
    column it is shared by two (1/4 each); vertically only chroma row y // 2 sees it (weight 1/2)."""
    for x0, y0, want_cols in ((6, 4, {3: 2}), (7, 4, {3: 1, 4: 1}), (6, 5, {3: 2}), (0, 11, {0: 3})):
        rgb = np.zeros((12, 16, 3), np.uint16)
        rgb[y0, x0, 2] = 65535
        cb = planes_of(gpu_frame(gl_ctx, rgb, "yuv420p10le", "bt709"))[1] - 512
        assert set(zip(*np.nonzero(cb))) == {(y0 // 2, c) for c in want_cols}
        full = 896 * 0.5                                   # Cb of pure blue minus neutral, in 10-bit codes
        for c, wc in want_cols.items():                    # (at column 0 the repeated border adds 1/4)
            assert cb[y0 // 2, c] == pytest.approx(full * wc / 4 / 2, abs=0.5)


def test_plane_readback_lags_and_copies_into_any_row_stride(gl_ctx, monkeypatch):
    w, h = 37, 21
    rgb = [np.random.default_rng(k).integers(0, 256, (h, w, 3), dtype=np.uint8) for k in range(5)]
    texs = [rgb_texture(gl_ctx, a) for a in rgb]
    wrong = gl_ctx.texture((36, 21), 4)
    want = [reference_planes(a, "yuv420p", "bt601") for a in rgb]
    try:
        for pad in (0, 64):
            real = readback_mod.ffmpeg_strides
            # pad > 0: the pixel buffer's rows are longer than the frame's, which are copied row by row
            monkeypatch.setattr(readback_mod, "ffmpeg_strides", lambda *a: [s + pad for s in real(*a)])
            with PlaneReadback(gl_ctx, (w, h), "yuv420p", "bt601", lag=2) as rb:
                got = []
                for k, tex in enumerate(texs):
                    ready = rb.submit(tex, k)
                    assert len(ready) == (1 if k >= 2 else 0)
                    got += ready
                got += rb.drain()
                with pytest.raises(UpshadeError, match="expected 37x21"):
                    rb.submit(wrong, 9)
            monkeypatch.undo()
            assert [k for _, k in got] == list(range(5))
            for frame, k in got:
                assert frame.planes[0].line_size > w and frame.planes[1].line_size > 19   # FFmpeg pads rows
                for a, b in zip(planes_of(frame), want[k]):
                    assert np.abs(a - b).max() <= 1
    finally:
        for t in (*texs, wrong):
            t.release()


def test_encoder_readback_picks_gpu_or_swscale(gl_ctx, tmp_path):
    from upshade.host.encode import Encoder

    for pix_fmt, kind in (("yuv420p", PlaneReadback), ("yuv420p10le", PlaneReadback), ("yuv444p", PlaneReadback),
                          ("nv12", Readback), ("gray", Readback), ("yuvj420p", Readback)):
        out = tmp_path / f"{pix_fmt}.mkv"
        enc = Encoder(out, width=64, height=48, pix_fmt=pix_fmt, preset="ultrafast")
        try:
            with readback_mod.encoder_readback(gl_ctx, enc) as rb:
                assert type(rb) is kind, pix_fmt
        finally:
            enc.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "nv12"])   # GPU 4:4:4, and the RGB + swscale fallback
def test_other_pixel_formats_end_to_end(gl_ctx, tmp_path, pix_fmt):
    src = make_clip(tmp_path / "s.mkv", frames=3)
    out = tmp_path / "o.mkv"
    assert upscale_video(gl_ctx, src, out, pix_fmt=pix_fmt, crf=8, preset="ultrafast", progress=False) == 3
    assert probe(out).pix_fmt == {"nv12": "yuv420p"}.get(pix_fmt, pix_fmt)   # H.264 decodes nv12 as planar
    with Decoder(out) as d:
        for i, f in enumerate(d):
            assert_patches(f, i, 8)


def test_interrupt_in_the_gpu_readback_leaves_nothing(gl_ctx, tmp_path, monkeypatch):
    src = make_clip(tmp_path / "s.mkv", frames=12)
    out = tmp_path / "o.mkv"
    real = PlaneReadback._finish
    calls = []

    def finish(self, buf):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, buf)

    monkeypatch.setattr(PlaneReadback, "_finish", finish)
    assert run_cli(src, "-o", out, "--preset", "ultrafast") == 130
    assert len(calls) == 4 and not out.exists() and leftovers(tmp_path) == []


def _aspects(path) -> tuple:
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return v.sample_aspect_ratio, v.codec_context.sample_aspect_ratio


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_anamorphic_source_keeps_its_display_aspect(gl_ctx, tmp_path, ext):
    """SAR 8:9 (NTSC DVD) stays in the codec and the container; another output size gets the SAR that keeps
    the source's display aspect ratio. Unset, the output displayed 12.5% too wide."""
    src = make_clip(tmp_path / "dvd.mkv", width=72, height=48, frames=3, sample_aspect=Fraction(8, 9))
    assert probe(src).sample_aspect == Fraction(8, 9) and _aspects(src) == (Fraction(8, 9), Fraction(8, 9))
    out = tmp_path / f"x2.{ext}"
    assert run_cli(src, "-o", out, "--no-model", "--preset", "ultrafast") == 0
    assert _aspects(out) == (Fraction(8, 9), Fraction(8, 9)) and probe(out).sample_aspect == Fraction(8, 9)
    wide = tmp_path / f"wide.{ext}"
    assert run_cli(src, "-o", wide, "--no-model", "--size", "96x48", "--preset", "ultrafast") == 0
    sar = probe(wide).sample_aspect
    assert sar == Fraction(2, 3) and 96 * sar / 48 == 72 * Fraction(8, 9) / 48  # same display aspect, 4:3
    square = make_clip(tmp_path / "sq.mkv", frames=2)
    assert probe(square).sample_aspect is None
    assert upscale_video(gl_ctx, square, tmp_path / f"sq2.{ext}", preset="ultrafast", progress=False) == 2
    assert probe(tmp_path / f"sq2.{ext}").sample_aspect is None


def test_progress_in_a_log_is_whole_lines(gl_ctx, tmp_path, capsys):
    """stderr is not a terminal here: no carriage-return redraws, a summary line, then what ran."""
    src = make_clip(tmp_path / "s.mkv", frames=6)
    out = tmp_path / "o.mkv"
    assert run_cli(src, "-o", out, "--no-model", "--preset", "ultrafast") == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[-2].startswith("s.mkv: 6/6 frames in ")
    assert lines[-1] == f"upshade: no model (plain bicubic scaler), 64x48 -> 128x96: wrote {out}, 6 frames"


def test_damaged_input_is_upscaled_as_far_as_it_goes_with_one_warning(gl_ctx, tmp_path, capsys):
    """A Matroska file cut in half and an MP4 with random bytes in the middle: exit 0 (what decoded is
    written), and one warning line with the counts (it used to say nothing)."""
    src = make_clip(tmp_path / "n.mkv", frames=50, pattern="noise", gop=10)
    cut = truncated_copy(src, tmp_path / "cut.mkv", 0.5)
    out = tmp_path / "cut_x2.mkv"
    assert run_cli(cut, "-o", out, "--no-model", "--preset", "ultrafast") == 0
    n = len(video_frame_times(out))
    assert 5 <= n < 40
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert warnings == [f"upshade: warning: {cut}: decoded only {n} of the 50 frames its duration promises "
                        f"(2.00 s at 25 fps), no corrupt packets: the file is probably cut short; "
                        f"the output has what decoded"]
    mp4 = make_clip(tmp_path / "n.mp4", frames=40, pattern="noise", gop=10)
    bad = corrupted_copy(mp4, tmp_path / "bad.mp4", start=0.5, length=300)
    out = tmp_path / "bad_x2.mp4"
    assert run_cli(bad, "-o", out, "--no-model", "--preset", "ultrafast") == 0
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if "warning" in ln or "concealing" in ln]
    assert len(warnings) == 1, err
    assert re.fullmatch(rf"upshade: warning: {re.escape(str(bad))}: (decoded only \d+ of the 40 frames its "
                        rf"duration promises \(1.60 s at 25 fps\), )?[1-9]\d* corrupt packets? skipped or "
                        rf"concealed( \(\d+ frames decoded\))?; the output has what decoded", warnings[0])
    assert transcode_mod.damage_warning(src, probe(src), 50, 50, 0) is None
    assert transcode_mod.damage_warning(src, probe(src), 48, 50, 0) is None  # within rounding of the duration
