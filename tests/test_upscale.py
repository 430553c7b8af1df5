"""`upshade upscale`: decode -> GL render -> readback -> encode, end to end on headless EGL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from media import assert_patches, make_clip, make_vfr_clip, packets, video_frame_times
from upshade.host import cli
from upshade.host import upscale as upscale_mod
from upshade.host.errors import UpshadeError
from upshade.host.pipeline import Renderer
from upshade.host.upscale import Readback, upscale_video
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
    assert run_cli(src, "-o", out, "--preset", "ultrafast", "--crf", "12") == 0
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
    assert run_cli(src2, "-o", out2, "--preset", "ultrafast") == 0
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
    assert "--duration -1.0: must be positive" in errors(capsys, src, "-o", out, "--duration", "-1")
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

    assert upscale_mod._frame_budget(Info, 0.0, None) == 100
    assert upscale_mod._frame_budget(Info, 1.0, None) == 75
    assert upscale_mod._frame_budget(Info, 1.0, 0.4) == 10
    assert upscale_mod._frame_budget(Info, 3.8, 2.0) == 5
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
