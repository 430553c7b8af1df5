"""x4: the chained exports (`upshade export --stages 2`, shaders/upshade_X_x4*.glsl) in the host.

Which file the host picks (paths.stages_for, the same test as the files' WHEN gates), the
sizes and placement of the two stages (a ramp stays where it belongs), the chain against the
PyTorch network run twice, and the quality at x4 on Set5 against the x2 file + bicubic.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from upshade.host import cli, paths
from upshade.host.errors import UpshadeError
from upshade.host.frames import Frame, FrameFormat, PlaneFormat
from upshade.host.hookparse import load_shader, parse_shader, rpn_eval
from upshade.host.imageio import read_image, write_image
from upshade.host.pipeline import Renderer


def gray_frame(g: np.ndarray) -> Frame:
    h, w = g.shape
    fmt = FrameFormat(kind="gray", planes=(PlaneFormat("Y", w, h, 1, 1),), matrix="bt601", range="full")
    return Frame(fmt, [g])


def stages_fired(sf, src, out) -> int:
    """How many x2 stages of a chained file fire for ``src`` -> ``out``: the WHEN of each stage's
    first pass, on the luma the stages before it doubled (what mpv and the host evaluate)."""
    firsts = [p for p in sf.passes if " conv1 " in p.desc]
    luma, n = src, 0
    for p in firsts:
        if rpn_eval(p.when, {"OUTPUT": out, "LUMA": luma, "HOOKED": luma, "NATIVE_CROPPED": src}):
            luma, n = (2 * luma[0], 2 * luma[1]), n + 1
    return n


# ----------------------------------------------------------------- which file


def test_stages_for_is_the_x4_files_own_gate():
    sf = load_shader(paths.shipped_shader("M", stages=2))
    assert [p.desc for p in sf.passes if " conv1 " in p.desc] == ["upshade M conv1 (1->4)",
                                                                  "upshade M stage 2 conv1 (1->4)"]
    cases = [((640, 360), (1280, 720)), ((854, 480), (1920, 1080)), ((720, 480), (1920, 1080)),
             ((640, 360), (1920, 1080)), ((1280, 720), (3840, 2160)), ((100, 100), (220, 220)),
             ((100, 100), (221, 221)), ((100, 100), (400, 150)), ((320, 240), (330, 250))]
    cases += [((w, h), (ow, oh)) for w, h in ((64, 48), (97, 33)) for ow in range(60, 420, 23) for oh in (50, 110, 300)]
    for src, out in cases:
        assert paths.stages_for(src, out) == max(1, stages_fired(sf, src, out)), (src, out)
    assert paths.stages_for((854, 480), (1920, 1080)) == 2    # DVD 16:9 -> 1080p: 2.25x
    assert paths.stages_for((720, 480), (1920, 1080)) == 2    # DVD 720x480 shown at 1080p: 2.67 x 2.25
    assert paths.stages_for((960, 540), (1920, 1080)) == 1
    assert paths.stages_for((100, 100), (220, 220)) == 1      # exactly 2.2x: not more


def test_shipped_x4_file_names():
    assert paths.shipped_shader("M", stages=2) == paths.SHADERS_DIR / "upshade_M_x4.glsl"
    assert paths.shipped_shader("L-real", "compute", 2) == paths.SHADERS_DIR / "upshade_L-real_x4_compute.glsl"
    for name in paths.MODEL_NAMES:
        for form in ("fragment", "compute"):
            assert paths.shipped_shader(name, form, 2).is_file()
    with pytest.raises(UpshadeError, match="no shipped shader runs model M 3 times"):
        paths.shipped_shader("M", stages=3)


# ----------------------------------------------------------------- in the host: sizes, placement, parity


@pytest.fixture(scope="module")
def nets(torch):
    from upshade.tools import export, model

    return model, export


def chained(nets, torch, form, *, zero=False, seed=4):
    model_mod, export = nets
    torch.manual_seed(seed)
    m = model_mod.UpshadeNet(model_mod.ModelConfig(blocks=2, width=4)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.zero_() if zero else (p.mul_(1.5) if p.dim() > 1 else p.uniform_(-0.3, 0.3))
    text = export.export_shader(m, name="T", form=form, stages=2)
    return m, parse_shader(text, "upshade_T_x4.glsl")


@pytest.mark.gl
@pytest.mark.torch
@pytest.mark.parametrize("form", ["fragment", "compute"])
def test_chained_export_is_the_network_run_twice(gl_ctx, torch, nets, form):
    """At 4x the host runs both stages: the PyTorch network applied twice; at 2x only the first."""
    m, sf = chained(nets, torch, form)
    y = np.random.default_rng(5).random((19, 26), dtype=np.float32)
    with torch.no_grad():
        once = m(torch.from_numpy(y)[None, None])
        twice = m(once)[0, 0].numpy()
    with Renderer(gl_ctx, [sf], fbo_format="rgba32f") as r:
        got4 = r.render_luma(y, (104, 76))
        got2 = r.render_luma(y, (52, 38))
    assert got4.shape == twice.shape == (76, 104)
    assert float(np.abs(got4 - twice).max()) <= 2e-3
    assert got2.shape == (38, 52) and float(np.abs(got2 - once[0, 0].numpy()).max()) <= 2e-3


@pytest.mark.gl
@pytest.mark.torch
@pytest.mark.parametrize("form", ["fragment", "compute"])
def test_chained_export_keeps_a_ramp_in_place(gl_ctx, torch, nets, form):
    """A network of zeros is its bilinear residual: x2 twice keeps a linear ramp exactly, so each output
    pixel must read the ramp at its own source position, at 4x (the chain alone) and at 3x and 2.5x
    (the chain, then the scaler down; its widened kernel bends the ramp by up to 0.3/255). A half-pixel
    slip would be off by 1.5/255 (x4) to 2.4/255 (x2.5)."""
    _, sf = chained(nets, torch, form, zero=True)
    y, x = np.mgrid[0:12, 0:16]
    lr = (12 * x + 10 * y).astype(np.uint8)
    with Renderer(gl_ctx, [sf], fbo_format="rgba32f") as r:
        for out, luma, tol in (((64, 48), (64, 48), 1e-5), ((48, 36), (64, 48), 2e-3), ((40, 30), (64, 48), 2e-3),
                               ((34, 26), (32, 24), 2e-3), ((32, 24), (32, 24), 1e-5)):
            got = r.read_rgb(r.render(gray_frame(lr), out), np.float32)[..., 0]
            assert r.last_sizes["LUMA"] == luma, (out, r.last_sizes["LUMA"])
            sx, sy = out[0] / 16, out[1] / 12
            v, u = np.mgrid[0:out[1], 0:out[0]]
            want = (12 * ((u + 0.5) / sx - 0.5) + 10 * ((v + 0.5) / sy - 0.5)) / 255
            m = int(np.ceil(3 * max(sx, sy)))  # clamped edges bend the ramp within ~2 source pixels
            err = float(np.abs(got - want)[m:-m, m:-m].max())
            assert err < tol, (out, err)


@pytest.mark.gl
@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_shipped_x4_keeps_a_ramp_in_place(gl_ctx, size):
    """The shipped x4 files (the form this renderer runs) on a smooth ramp: the output is the ramp, placed
    where it belongs. Measured mean error 0.03-0.18/255 (max 1.08, L's ripple on the ramp); the same output
    half a pixel off would be 0.5-0.7 on average."""
    sf = load_shader(paths.model_shader(size, gl_ctx, 2))
    y, x = np.mgrid[0:24, 0:32]
    lr = (40 + 5 * x + 3 * y).astype(np.uint8)
    with Renderer(gl_ctx, [sf]) as r:
        got = r.read_rgb(r.render(gray_frame(lr), (128, 96)), np.float32)[..., 0]
        assert r.last_sizes["LUMA"] == (128, 96)
    v, u = np.mgrid[0:96, 0:128]
    want = (40 + 5 * ((u + 0.5) / 4 - 0.5) + 3 * ((v + 0.5) / 4 - 0.5)) / 255
    err = np.abs(got - want)[16:-16, 16:-16] * 255
    assert float(err.mean()) < 0.3 and float(err.max()) < 1.5, (float(err.mean()), float(err.max()))


# ----------------------------------------------------------------- the commands pick it


@pytest.mark.gl
def test_image_command_runs_the_x4_file_beyond_2_2x(shared_ctx, tmp_path, capsys):
    src = tmp_path / "in.png"
    write_image(src, np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    runs = {("--scale", "4"): ("x4", (160, 120)), ("--size", "90x68"): ("x4", (90, 68)),
            ("--scale", "2.1"): ("x2", (84, 63)), ("--scale", "1.1"): ("x2", (44, 33))}
    for opts, (which, size) in runs.items():
        out = tmp_path / f"out{size[0]}.png"
        assert cli.main(["image", str(src), "-o", str(out), "--model", "S", *opts]) == 0
        line = capsys.readouterr().err
        name = re.search(r"(upshade_S[\w-]*\.glsl)", line).group(1)
        assert ("_x4" in name) == (which == "x4"), (opts, line)
        assert f"40x30 -> {size[0]}x{size[1]}" in line
        assert read_image(out).shape == (size[1], size[0], 3)


@pytest.mark.gl
def test_upscale_command_runs_the_x4_file_beyond_2_2x(shared_ctx, tmp_path, capsys):
    """The bundled 640x360 clip to 1440x810 (2.25x, DVD-to-1080p-like): the x4 file; to 1280x720 the x2 file."""
    for size, which in (("1440x810", "_x4"), ("1280x720", "")):
        out = tmp_path / f"out{size}.mkv"
        assert cli.main(["upscale", str(paths.sample()), "-o", str(out), "--model", "S", "--size", size,
                         "--duration", "0.2"]) == 0
        line = capsys.readouterr().err
        assert re.search(rf"upshade_S(-real)?{which}(_compute|_tiled)?\.glsl", line), line
        assert f"640x360 -> {size}" in line and out.stat().st_size > 0


# ----------------------------------------------------------------- quality at x4 (the protocol)


@pytest.mark.gl
@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_x4_file_beats_x2_then_bicubic_on_set5(gl_ctx, data_dir, size):
    """Set5 at x4 (MATLAB-bicubic LR at 1/4, 4 px shaved): bicubic < x2 file + bicubic < x4 file."""
    from upshade.tools import evaluate as ev

    s5 = ev.load_set(data_dir / "set5", scale=4)
    methods = [ev.GLMethod(gl_ctx), ev.GLMethod(gl_ctx, [paths.model_shader(size, gl_ctx, 1)]),
               ev.GLMethod(gl_ctx, [paths.model_shader(size, gl_ctx, 2)])]
    try:
        bic, x2, x4 = (r.scores["set5"].psnr for r in ev.evaluate(methods, [s5], show_progress=False))
    finally:
        for m in methods:
            m.release()
    assert abs(bic - 28.42) < 0.05  # the literature's bicubic x4 on Set5
    assert x4 > x2 + 0.1 and x2 > bic + 1.0, (bic, x2, x4)
