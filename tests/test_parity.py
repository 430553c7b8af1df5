"""Exported shaders through the GL host versus the PyTorch forward pass.

The shader is run by ``Renderer.render_luma`` (LUMA hooks only) on llvmpipe;
the reference is ``UpshadeNet.forward`` in float32. Both export modes are
checked (fragment passes, the default, ``--compute`` and ``--tiled``; the tiled form's own
tests are in test_tiled.py). Bounds: 2e-3 with rgba32f
intermediate textures (float rounding only), 1e-2 with rgba16f (every stored
pre-activation is rounded to 11 bits).
"""

from __future__ import annotations

import numpy as np
import pytest

from upshade.host.hookparse import load_shader, parse_shader
from upshade.host.paths import WEIGHTS_DIR, shipped_shader

pytestmark = [pytest.mark.gl, pytest.mark.torch]

TOL = {"rgba32f": 2e-3, "rgba16f": 1e-2}


@pytest.fixture(scope="module")
def nets(torch):
    from upshade.tools import export, model

    return model, export


@pytest.fixture(scope="module")
def images():
    """A random image and two crops of a real picture's luma (the bundled sample frame), odd sizes included."""
    from upshade.host.imageio import read_image
    from upshade.host.paths import sample
    from upshade.tools.metrics import rgb_to_luma_full

    rng = np.random.default_rng(7)
    out = {"random": rng.random((37, 53), dtype=np.float32)}
    frame = rgb_to_luma_full(read_image(sample("image"))[..., :3])
    out["face"] = np.ascontiguousarray(frame[40:71, 205:253], dtype=np.float32)   # eyes, ear: sharp edges
    out["grass"] = np.ascontiguousarray(frame[280:321, 500:525], dtype=np.float32)  # fine texture
    return out


def torch_forward(torch, model, y):
    with torch.no_grad():
        return model(torch.from_numpy(y)[None, None]).numpy()[0, 0]


def render_luma(gl_ctx, shader, y, fmt):
    from upshade.host.pipeline import Renderer

    r = Renderer(gl_ctx, [shader], fbo_format=fmt)
    try:
        return np.asarray(r.render_luma(y), dtype=np.float32)
    finally:
        r.release()


def random_model(model_mod, torch, seed, **cfg):
    torch.manual_seed(seed)
    m = model_mod.UpshadeNet(model_mod.ModelConfig(**cfg)).eval()
    with torch.no_grad():  # stronger weights than the init: errors would grow through the layers
        for p in m.parameters():
            p.mul_(1.5) if p.dim() > 1 else p.uniform_(-0.3, 0.3)
    return m


def check(gl_ctx, torch, m, shader, y, fmt):
    ref = torch_forward(torch, m, y)
    got = render_luma(gl_ctx, shader, y, fmt)
    assert got.shape == ref.shape == (2 * y.shape[0], 2 * y.shape[1])
    err = float(np.abs(got - ref).max())
    assert err <= TOL[fmt], f"max abs error {err:.3g} > {TOL[fmt]} ({fmt})"
    return err


@pytest.mark.parametrize("fmt", ["rgba32f", "rgba16f"])
@pytest.mark.parametrize("form", ["fragment", "compute", "tiled"])
@pytest.mark.parametrize("size", ["S", "M", "L"])
def test_shipped_shader_matches_torch(gl_ctx, torch, nets, images, size, form, fmt):
    model_mod, _ = nets
    m, _ = model_mod.load_checkpoint(WEIGHTS_DIR / f"upshade_{size}.pt")
    shader = load_shader(shipped_shader(size, form))
    assert all((p.compute is not None) == (form != "fragment") for p in shader.passes)
    for name in ("face", "random"):
        check(gl_ctx, torch, m, shader, images[name], fmt)


CONFIGS = [
    dict(upscale="pixel_shuffle", final_kernel=3, residual="bilinear"),
    dict(upscale="pixel_shuffle", final_kernel=1, residual="bicubic"),
    dict(upscale="nearest_conv", final_kernel=3, residual="bicubic"),
    dict(upscale="nearest_conv", final_kernel=1, residual="bilinear"),
    dict(upscale="nearest_conv", final_kernel=3, residual="bilinear", width=6),
    dict(upscale="pixel_shuffle", final_kernel=3, residual="bicubic", width=5),
]


MODES = {"compute": True, "fragment": False}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_random_model_matches_torch(gl_ctx, torch, nets, images, cfg, mode):
    model_mod, export = nets
    m = random_model(model_mod, torch, 3, blocks=3, **cfg)
    shader = parse_shader(export.export_shader(m, name="T", compute=MODES[mode]), "upshade_T.glsl")
    # compute: the final conv also writes the x2 output; fragment: a separate depth-to-space pass does
    assert len(shader.passes) == 3 * -(-m.cfg.width // 4) + (1 if MODES[mode] else 2)
    assert all((p.compute is not None) == MODES[mode] for p in shader.passes)
    check(gl_ctx, torch, m, shader, images["random"], "rgba32f")
    check(gl_ctx, torch, m, shader, images["grass"], "rgba16f")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: "-".join(str(v) for v in c.values()))
def test_tiny_and_odd_sizes(gl_ctx, torch, nets, images, cfg, mode):
    """Images smaller than one compute block, one pixel wide or tall, and odd sizes: edges clamp like torch."""
    model_mod, export = nets
    m = random_model(model_mod, torch, 6, blocks=2, **cfg)
    shader = parse_shader(export.export_shader(m, name="T", compute=MODES[mode]), "upshade_T.glsl")
    y = images["grass"]
    for h, w in ((1, 1), (1, 5), (4, 1), (2, 3), (3, 2), (7, 9)):
        check(gl_ctx, torch, m, shader, np.ascontiguousarray(y[:h, :w]), "rgba32f")


@pytest.mark.parametrize("block", [(1, 1), (3, 2)])
def test_other_compute_block_shapes_match_torch(gl_ctx, torch, nets, images, monkeypatch, block):
    """The compute lowering is generic in the block each invocation computes (the shipped one is 2x2)."""
    model_mod, export = nets
    monkeypatch.setattr(export, "BLOCK", block)
    for seed, cfg in enumerate(CONFIGS[1:3]):
        m = random_model(model_mod, torch, 7 + seed, blocks=2, **cfg)
        shader = parse_shader(export.export_shader(m, name="T", compute=True), "upshade_T.glsl")
        assert all(p.compute[0] == p.compute[2] * block[0] * (1 + (p is shader.passes[-1])) for p in shader.passes)
        check(gl_ctx, torch, m, shader, images["random"][:13, :17], "rgba32f")
        check(gl_ctx, torch, m, shader, images["random"][:2, :1], "rgba32f")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("residual", ["bicubic", "bilinear"])
def test_final_layer_split_over_bind_limit(gl_ctx, torch, nets, images, residual, mode):
    """16 blocks = 16 feature textures: more than a fragment pass may bind (15), and with HOOKED in the
    compute pass that adds the residual more than 16, so the final conv runs as two partial-sum passes."""
    model_mod, export = nets
    m = random_model(model_mod, torch, 4, blocks=16, width=4, residual=residual)
    shader = parse_shader(export.export_shader(m, name="T", compute=MODES[mode]), "upshade_T.glsl")
    assert sum(" final " in p.desc for p in shader.passes) == 2
    assert max(len(p.binds) for p in shader.passes) <= (16 if MODES[mode] else 15)
    check(gl_ctx, torch, m, shader, images["grass"][:13, :11], "rgba32f")


def test_when_gate_skips_network_unless_enlarged(gl_ctx, torch, nets, images):
    from upshade.host.imageio import image_to_frame
    from upshade.host.pipeline import Renderer

    model_mod, export = nets
    m = random_model(model_mod, torch, 5, blocks=2)
    shader = parse_shader(export.export_shader(m, name="T"), "upshade_T.glsl")
    y = images["grass"]
    h, w = y.shape
    with Renderer(gl_ctx, [shader], fbo_format="rgba32f") as r:
        for out in ((w, h), (w * 6 // 5, h * 6 // 5), (2 * w, h)):
            assert np.array_equal(r.render_luma(y, out_size=out), y), out
        assert r.render_luma(y, out_size=(w * 5 // 4, h * 5 // 4)).shape == (2 * h, 2 * w)

    # Through the whole pipeline: at 1:1 the output is exactly the shader-less one.
    frame = image_to_frame(np.rint(y * 255).astype(np.uint8)[..., None])
    with Renderer(gl_ctx, [shader], fbo_format="rgba32f") as r, Renderer(gl_ctx, [], fbo_format="rgba32f") as plain:
        same = r.read_rgb(r.render(frame, (w, h)), np.float32)
        assert np.array_equal(same, plain.read_rgb(plain.render(frame, (w, h)), np.float32))
        assert "UPSHADE_T_C1" not in r.last_sizes
        big = r.read_rgb(r.render(frame, (2 * w, 2 * h)), np.float32)
        assert "UPSHADE_T_C1" in r.last_sizes
        assert np.abs(big - plain.read_rgb(plain.render(frame, (2 * w, 2 * h)), np.float32)).max() > 0.01
