"""`upshade image` and `upshade info` end to end (in-process CLI, headless EGL)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError
from upshade.host.imageio import read_image, write_image

pytestmark = pytest.mark.gl


def cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def bicubic(img: np.ndarray, w: int, h: int) -> np.ndarray:
    def mat(n_in, n_out):
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            c = (i + 0.5) * n_in / n_out - 0.5
            for k in range(int(np.floor(c)) - 1, int(np.floor(c)) + 3):
                m[i, min(max(k, 0), n_in - 1)] += cubic(k - c)
        return m
    return np.einsum("yh,hwc,xw->yxc", mat(img.shape[0], h), img, mat(img.shape[1], w))


def run_cli(*args) -> int:
    return cli.main(["image", *map(str, args)])


@pytest.fixture
def rgb8(tmp_path):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    p = tmp_path / "in.png"
    write_image(p, img)
    return p, img


def test_no_model_is_2x_bicubic(gl_ctx, tmp_path, rgb8, capsys):
    src, img = rgb8
    out = tmp_path / "out.png"
    assert run_cli(src, "-o", out, "--no-model") == 0
    res = read_image(out)
    assert res.shape == (24, 32, 3) and res.dtype == np.uint8
    ref = np.rint(np.clip(bicubic(img / 255.0, 32, 24), 0, 1) * 255)
    assert np.abs(res.astype(int) - ref).max() <= 1
    assert capsys.readouterr().err == f"upshade: no model (plain bicubic scaler), 16x12 -> 32x24: wrote {out}\n"


def test_default_runs_the_default_model_and_says_so(gl_ctx, tmp_path, rgb8, capsys):
    """No --model/--shader: the shipped default model runs (not a silent bicubic), named in one line."""
    from upshade.host import gpu, paths

    src, _ = rgb8
    outs = {name: tmp_path / f"{name}.png" for name in ("default", "model", "plain")}
    assert run_cli(src, "-o", outs["default"]) == 0
    form = gpu.shader_form(gl_ctx)[0]
    name = paths.shipped_shader(paths.default_model(), form).name
    kind = "fragment" if form == "fragment" else "compute"  # the tiled form is compute passes too
    assert capsys.readouterr().err == (f"upshade: model M-clean (for an image; {name}, {kind} passes), "
                                       f"16x12 -> 32x24: wrote {outs['default']}\n")
    assert run_cli(src, "-o", outs["model"], "--model", paths.default_model()) == 0
    assert run_cli(src, "-o", outs["plain"], "--no-model") == 0
    default, model, plain = (read_image(outs[k]).astype(int) for k in ("default", "model", "plain"))
    assert np.array_equal(default, model)
    assert np.abs(default - plain).mean() > 1.0  # the network changed the picture


def test_model_and_no_model_exclude_each_other(gl_ctx, tmp_path, rgb8, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(rgb8[0], "-o", tmp_path / "o.png", "--model", "S", "--no-model")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-model: not allowed with argument --model" in err


def test_16bit_rgba_keeps_depth_and_alpha(gl_ctx, tmp_path):
    rng = np.random.default_rng(6)
    img = rng.integers(0, 65536, (10, 14, 4), dtype=np.uint16)
    img[..., 3] = np.linspace(0, 65535, 14).astype(np.uint16)[None, :]
    src, out = tmp_path / "in16.png", tmp_path / "out16.png"
    write_image(src, img)
    assert run_cli(src, "-o", out, "--size", "21x15", "--fbo-format", "rgba32f", "--no-model") == 0
    res = read_image(out)
    assert res.shape == (15, 21, 4) and res.dtype == np.uint16
    ref = np.clip(bicubic(img / 65535.0, 21, 15), 0, 1) * 65535
    assert np.abs(res - ref).max() < 65535 * 1e-3


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (2, np.uint8), (1, np.uint16)])
def test_grey_stays_grey(gl_ctx, tmp_path, channels, dtype):
    peak = np.iinfo(dtype).max
    grey = np.tile(np.linspace(0, peak, 10).astype(dtype), (6, 1))
    img = grey if channels == 1 else np.dstack([grey, np.full_like(grey, peak // 3)])
    src, out = tmp_path / "g.png", tmp_path / "g2.png"
    write_image(src, img)
    assert run_cli(src, "-o", out, "--scale", "1.5", "--no-model") == 0
    res = read_image(out)
    assert res.shape == (9, 15, channels) and res.dtype == dtype
    ref = np.clip(bicubic(img.reshape(6, 10, channels) / peak, 15, 9), 0, 1) * peak
    assert np.abs(res - ref).max() <= peak * 2e-3 + 0.5


def test_shader_and_param(gl_ctx, tmp_path, rgb8):
    src, img = rgb8
    sh = tmp_path / "gain.glsl"
    sh.write_text("//!PARAM gain\n//!TYPE float\n1.0\n\n//!HOOK MAIN\n//!BIND HOOKED\n"
                  "vec4 hook() { return HOOKED_tex(HOOKED_pos) * gain; }\n")
    out = tmp_path / "o.png"
    assert run_cli(src, "-o", out, "--shader", sh, "--param", "gain=0", "--scale", "1") == 0
    assert read_image(out).max() == 0


def errors(capsys, *args) -> str:
    assert run_cli(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("upshade: error: ")
    return err[0]


def test_errors(gl_ctx, tmp_path, capsys, rgb8):
    src, _ = rgb8
    out = tmp_path / "o.png"
    assert "no such file" in errors(capsys, tmp_path / "missing.png", "-o", out)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all" * 10)
    assert "junk.png" in errors(capsys, junk, "-o", out)
    assert "same file as the input" in errors(capsys, src, "-o", src)
    assert "does not exist" in errors(capsys, src, "-o", tmp_path / "nodir" / "o.png")
    assert "must be a .png" in errors(capsys, src, "-o", tmp_path / "o.jpg")
    assert "--size" in errors(capsys, src, "-o", out, "--size", "big")
    bad = tmp_path / "bad.glsl"
    bad.write_text("//!HOOK MAIN\n//!BIND HOOKED\nvec4 hook() {\n  return nope;\n}\n")
    assert f"{bad}:4: GLSL compile error" in errors(capsys, src, "-o", out, "--shader", bad)
    assert "unknown parameter" in errors(capsys, src, "-o", out, "--param", "x=1")
    assert "no such shader file" in errors(capsys, src, "-o", out, "--shader", tmp_path / "none.glsl")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_output_under_a_regular_file(gl_ctx, tmp_path, capsys, rgb8):
    """A parent that is a file is named as such (it used to say "directory ... does not exist")."""
    src = rgb8[0]
    assert errors(capsys, src, "-o", src / "o.png") == f"upshade: error: {src / 'o.png'}: {src} is a file, not a directory"
    deeper = src / "sub" / "o.png"
    assert errors(capsys, src, "-o", deeper) == f"upshade: error: {deeper}: {src} is a file, not a directory"


def test_unwritable_dir(gl_ctx, tmp_path, capsys, rgb8):
    if os.geteuid() == 0:
        # root writes anywhere: use a path whose parent is a file instead (no skip: CI may run as root)
        assert "is a file, not a directory" in errors(capsys, rgb8[0], "-o", tmp_path / "in.png" / "o.png")
        return
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        assert "not writable" in errors(capsys, rgb8[0], "-o", d / "o.png")
    finally:
        d.chmod(0o700)


def test_missing_model_is_clear(gl_ctx, tmp_path, capsys, rgb8, monkeypatch):
    from upshade.host import paths

    monkeypatch.setattr(paths, "SHADERS_DIR", tmp_path / "noshaders")
    msg = errors(capsys, rgb8[0], "-o", tmp_path / "o.png", "--model", "M")
    assert re.search(r"noshaders/upshade_M(_compute|_tiled)?\.glsl: shipped shader for model M-clean is missing", msg)


def test_info(gl_ctx, capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("GL renderer", "GL version", "moderngl", "av (PyAV)", "glfw", "numpy", "window system", "fbo format"):
        assert key in out
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out.splitlines() if line.strip())
    renderer, fbo = rows["GL renderer"], rows["fbo format"]
    assert fbo.startswith("rgba32f" if "llvmpipe" in renderer else "rgba16f"), (renderer, fbo)
    from upshade.host import libass

    assert re.fullmatch(r"\d+\.\d+\.\d+ \(text subtitles\)", rows["libass"]) if libass.available() \
        else rows["libass"].startswith("not installed: text subtitles are not drawn (apt-get install libass9")


def test_model_shaders_follow_the_renderer(gl_ctx, capsys):
    from upshade.host import gpu, paths

    class Ctx:  # what shader_form reads of a context
        def __init__(self, renderer, version_code, extensions=()):
            self.info, self.version_code, self.extensions = {"GL_RENDERER": renderer}, version_code, set(extensions)

    # Measured: compute passes win on CPU rasterisers, fragment passes on GPUs (see shaders/README.md).
    soft = gpu.SOFTWARE_FORM
    assert soft in ("compute", "tiled")
    assert gpu.shader_form(Ctx("llvmpipe (LLVM 15.0.6, 256 bits)", 450))[0] == soft
    assert gpu.shader_form(Ctx("NVIDIA H100 80GB HBM3/PCIe/SSE2", 460))[0] == "fragment"
    assert gpu.shader_form(Ctx("AMD Radeon RX 7900 (radeonsi)", 460))[0] == "fragment"
    form, why = gpu.shader_form(Ctx("llvmpipe", 330))  # no compute shaders there: falls back, and says so
    assert form == "fragment" and "no compute shaders" in why and "falling back" in why
    assert gpu.shader_form(Ctx("softpipe", 330, ["GL_ARB_compute_shader"]))[0] == soft
    small = Ctx("llvmpipe", 450)
    small.info["GL_MAX_COMPUTE_WORK_GROUP_INVOCATIONS"] = 4  # fewer than a work group of the form needs
    assert gpu.shader_form(small)[0] == "fragment" and "invocations" in gpu.shader_form(small)[1]
    assert paths.model_shader("L", Ctx("NVIDIA", 460)) == paths.SHADERS_DIR / "upshade_L.glsl"
    assert paths.model_shader("l", Ctx("llvmpipe", 450)) == paths.SHADERS_DIR / f"upshade_L_{soft}.glsl"
    assert paths.shipped_shader("M", "tiled") == paths.SHADERS_DIR / "upshade_M_tiled.glsl"
    with pytest.raises(UpshadeError, match="unknown shader form 'vulkan'"):
        paths.shipped_shader("S", "vulkan")
    # The command line uses the same choice, and `upshade info` says which one.
    expect = gpu.shader_form(gl_ctx)[0]
    assert cli.main(["info"]) == 0
    assert re.search(rf"--model shaders +{expect} \(", capsys.readouterr().out)


# ---------------------------------------------------------------- model variants


def test_model_names_and_variants():
    from upshade.host import paths

    assert paths.split_model("m-real") == ("M", "real") and paths.split_model("S") == ("S", None)
    for bad in ("X", "M-noisy", "M-", ""):
        with pytest.raises(UpshadeError, match="unknown model"):
            paths.split_model(bad)
    assert paths.model_stem("M") == paths.model_stem("M-clean") == "upshade_M"
    assert paths.model_stem("L-real") == "upshade_L-real"
    for name in paths.MODEL_NAMES:  # every name the CLI accepts has its files shipped
        for form in paths.SHADER_FORMS:
            assert paths.shipped_shader(name, form).is_file()
    assert paths.resolve_model("S-real", None) == "S-real"  # a pinned variant stays pinned


def _video(codec, bit_rate, w=1280, h=720, fps=25):
    from fractions import Fraction
    from types import SimpleNamespace

    from upshade.host.video import VideoInfo

    return SimpleNamespace(codec=codec, bits_per_pixel=VideoInfo.bits_per_pixel.fget(
        SimpleNamespace(bit_rate=bit_rate, fps=float(Fraction(fps)), width=w, height=h)))


def test_variant_choice_per_source():
    from upshade.host import paths

    assert paths.choose_variant(None)[0] == paths.choose_variant({"kind": "image"})[0] == "clean"
    # 1 Mbit/s 720p25 H.264 (0.043 bits/pixel): a web stream
    assert paths.choose_variant(_video("h264", 1_000_000)) == ("real", "h264 at 0.0434 bits/pixel")
    # 25 Mbit/s (1.09 bits/pixel): Blu-ray grade
    assert paths.choose_variant(_video("h264", 25_000_000))[0] == "clean"
    # HEVC counts 1.6x: 0.35 bits/pixel of HEVC is ~0.56 as H.264
    hevc = paths.choose_variant(_video("hevc", 8_000_000))
    assert hevc[0] == "clean" and "as H.264" in hevc[1]
    assert paths.choose_variant(_video("h264", 8_000_000))[0] == "real"
    assert paths.choose_variant(_video("ffv1", 1))[0] == "clean"  # lossless, whatever the rate
    assert paths.choose_variant(_video("mpeg2video", None))[0] == "real"  # unknown rate: assume compressed
    assert paths.default_model(_video("h264", 1_000_000)) == "M-real"
    assert paths.resolve_model("l", _video("h264", 25_000_000)) == "L-clean"


def test_bits_per_pixel_of_real_files(tmp_path):
    """probe() reads the video bit rate (tagged or estimated): a harder squeeze gives fewer bits per pixel."""
    from media import make_clip

    from upshade.host.video import probe

    lo = probe(make_clip(tmp_path / "lo.mp4", width=128, height=96, frames=25, options={"crf": "40"}))
    hi = probe(make_clip(tmp_path / "hi.mp4", width=128, height=96, frames=25, options={"crf": "5"}))
    assert 0 < lo.bits_per_pixel < hi.bits_per_pixel


def test_image_gets_the_clean_variant_and_a_pinned_variant_runs(gl_ctx, tmp_path, rgb8, capsys):
    src, _ = rgb8
    assert run_cli(src, "-o", tmp_path / "a.png", "--model", "S") == 0
    assert "model S-clean (for an image; upshade_S" in capsys.readouterr().err
    assert run_cli(src, "-o", tmp_path / "b.png", "--model", "s-real") == 0
    err = capsys.readouterr().err
    assert "model S-real (upshade_S-real" in err and "for " not in err
    a, b = read_image(tmp_path / "a.png").astype(int), read_image(tmp_path / "b.png").astype(int)
    assert np.abs(a - b).max() > 0  # two sets of weights
