"""The tiled export (fused compute passes, tools/export_tiled.py): structure, plans, CLI, and parity with PyTorch.

The shipped ``upshade_X_tiled.glsl`` files are byte-compared with a fresh export and
checked against PyTorch in test_export.py / test_parity.py alongside the other forms;
here: random models of every upscale mode under several plans (fusion depths, block
shapes, a final pass of its own), borders and images smaller than a block.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError
from upshade.host.hookparse import parse_shader

pytestmark = pytest.mark.torch

TOL = {"rgba32f": 2e-3, "rgba16f": 1e-2}

CONFIGS = [
    dict(upscale="pixel_shuffle", final_kernel=3, residual="bilinear"),
    dict(upscale="pixel_shuffle", final_kernel=1, residual="bicubic"),
    dict(upscale="nearest_conv", final_kernel=3, residual="bicubic"),
    dict(upscale="nearest_conv", final_kernel=1, residual="bilinear"),
    dict(upscale="nearest_conv", final_kernel=3, residual="bilinear", width=6),
    dict(upscale="pixel_shuffle", final_kernel=3, residual="bicubic", width=5),
]


@pytest.fixture(scope="module")
def mods(torch):
    from upshade.tools import export, export_tiled, model

    return model, export, export_tiled


def random_model(model_mod, torch, seed, **cfg):
    torch.manual_seed(seed)
    m = model_mod.UpshadeNet(model_mod.ModelConfig(**cfg)).eval()
    with torch.no_grad():  # stronger weights than the init: errors would grow through the layers
        for p in m.parameters():
            p.mul_(1.5) if p.dim() > 1 else p.uniform_(-0.3, 0.3)
    return m


def images():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:29, 0:41].astype(np.float32)
    smooth = 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 3.0)
    return {"random": rng.random((37, 53), dtype=np.float32), "smooth": smooth.astype(np.float32)}


def check(gl_ctx, torch, m, shader, y, fmt="rgba32f"):
    from upshade.host.pipeline import Renderer

    with torch.no_grad():
        ref = m(torch.from_numpy(y)[None, None]).numpy()[0, 0]
    with Renderer(gl_ctx, [shader], fbo_format=fmt) as r:
        got = np.asarray(r.render_luma(y), dtype=np.float32)
    assert got.shape == ref.shape == (2 * y.shape[0], 2 * y.shape[1])
    err = float(np.abs(got - ref).max())
    assert err <= TOL[fmt], f"max abs error {err:.3g} > {TOL[fmt]} ({fmt})"
    return err


def tiled(export, m, plan=None):
    return parse_shader(export.export_shader(m, name="T", form="tiled", plan=plan), "upshade_T_tiled.glsl")


# ----------------------------------------------------------------- structure


@pytest.mark.parametrize("cfg", [dict(blocks=7, width=4), dict(blocks=9, width=7), dict(blocks=3, width=4),
                                 dict(blocks=16, width=8, residual="bicubic")],
                         ids=lambda c: f"{c['blocks']}x{c['width']}")
def test_structure_follows_the_plan(mods, torch, cfg):
    model_mod, export, et = mods
    m = random_model(model_mod, torch, 1, **cfg)
    low = export.lower(m.cfg.to_dict(), m.state_dict())
    plan = et.default_plan(low)
    text = export.export_shader(m, name="T", form="tiled")
    sf = parse_shader(text, "t.glsl")
    assert sum(plan.groups) == cfg["blocks"] and len(sf.passes) == len(plan.groups)
    assert f"// needs: {et.TILED_REQUIREMENTS}" in text.split("//!")[0]
    # registers only: no shared memory to declare, no barriers
    assert not any(re.search(r"\bshared\b", p.body) or "barrier()" in p.body for p in sf.passes)
    rows = low.groups + 1
    saved = set()
    bx, by = plan.block
    tx, ty = plan.threads
    for p in sf.passes:
        assert p.hooks == ("LUMA",) and p.desc.startswith("upshade T tiled ")
        assert p.when.source == "OUTPUT.w LUMA.w / 1.200 > OUTPUT.h LUMA.h / 1.200 > *"
        assert p.body.lstrip().startswith("void hook() {") and len(p.binds) <= 16
        assert all(b == "HOOKED" or b in saved for b in p.binds)
        if p is sf.passes[-1]:
            assert p.save is None and p.width.source == "LUMA.w 2 *" and p.height.source == "LUMA.h 2 *"
            assert p.compute == (2 * bx * tx, 2 * by * ty, tx, ty) and "HOOKED" in p.binds
        else:
            # features + the final conv's running sum, one texel row each per source row
            assert p.save and p.components == 4 and p.width is None and p.height.source == f"LUMA.h {rows} *"
            assert p.compute == (bx * tx, rows * by * ty, tx, ty)
            saved.add(p.save)
    assert tx * ty <= 128


def test_plan_is_checked(mods, torch):
    model_mod, export, et = mods
    m = random_model(model_mod, torch, 2, blocks=3)
    for plan in (et.TiledPlan((2, 2)), et.TiledPlan((3, 0, 0)), et.TiledPlan((0, 3)),
                 et.TiledPlan((3,), threads=(16, 16)), et.TiledPlan((3,), block=(0, 2))):
        with pytest.raises(UpshadeError, match="tiled plan"):
            export.export_shader(m, form="tiled", plan=plan)
    with pytest.raises(UpshadeError, match="unknown shader form"):
        export.export_shader(m, form="tiles")


def test_export_is_deterministic(mods, torch, tmp_path):
    model_mod, export, _ = mods
    m = random_model(model_mod, torch, 3, blocks=3, residual="bicubic")
    path = tmp_path / "upshade_Q.pt"
    torch.save({"config": m.cfg.to_dict(), "model": m.state_dict(), "metrics": {"set5_psnr_y": 30.0}}, path)
    a = export.export_shader(path, form="tiled")
    assert a == export.export_shader(path, form="tiled") and str(tmp_path) not in a
    assert "//!DESC upshade Q tiled conv1" in a and "set5_psnr_y=30" in a
    assert a != export.export_shader(path, form="compute")


def test_cli_tiled_and_form(mods, torch, tmp_path, capsys):
    model_mod, export, _ = mods
    m = random_model(model_mod, torch, 4, blocks=2)
    ckpt = tmp_path / "m.pt"
    torch.save({"config": m.cfg.to_dict(), "model": m.state_dict(), "metrics": {}}, ckpt)
    out = tmp_path / "o.glsl"
    assert cli.main(["export", str(ckpt), "-o", str(out), "--name", "t", "--tiled"]) == 0
    assert out.read_text() == export.export_shader(ckpt, name="t", form="tiled")
    assert "passes" in capsys.readouterr().out and "tiled" in out.read_text()
    assert cli.main(["export", str(ckpt), "-o", str(out), "--name", "t", "--form", "compute"]) == 0
    assert out.read_text() == export.export_shader(ckpt, name="t", compute=True)
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", str(ckpt), "-o", str(out), "--tiled", "--compute"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert cli.main(["export", str(ckpt), "-o", str(tmp_path / "o.onnx"), "--tiled"]) == 1
    assert "--tiled is a shader option" in capsys.readouterr().err


# ----------------------------------------------------------------- parity (GL)


@pytest.mark.gl
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_random_model_matches_torch(gl_ctx, torch, mods, cfg):
    model_mod, export, _ = mods
    m = random_model(model_mod, torch, 5, blocks=3, **cfg)
    shader = tiled(export, m)
    assert all(p.compute is not None for p in shader.passes)
    imgs = images()
    check(gl_ctx, torch, m, shader, imgs["random"], "rgba32f")
    check(gl_ctx, torch, m, shader, imgs["smooth"], "rgba16f")


PLANS = {
    # one pass for everything; a block wider than the images below; odd blocks and work groups
    "one-pass": lambda et, n: et.TiledPlan((n,), block=(5, 3), threads=(4, 2)),
    "unfused": lambda et, n: et.TiledPlan((1,) * n, block=(3, 1), threads=(8, 1)),
    "final-alone": lambda et, n: et.TiledPlan((2, n - 2, 0), block=(2, 4), threads=(8, 2)),
}


@pytest.mark.gl
@pytest.mark.parametrize("plan", PLANS)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[2], CONFIGS[5]], ids=["ps-3-bilinear", "nc-3-bicubic", "w5"])
def test_plans_match_torch_at_every_size(gl_ctx, torch, mods, cfg, plan):
    """Fusion depth, block shape and a final pass of its own change nothing; borders and partial blocks clamp."""
    model_mod, export, et = mods
    m = random_model(model_mod, torch, 6, blocks=4, **cfg)
    shader = tiled(export, m, PLANS[plan](et, 4))
    y = images()["random"]
    check(gl_ctx, torch, m, shader, y, "rgba32f")
    for h, w in ((1, 1), (1, 6), (5, 1), (2, 3), (7, 9), (13, 17)):
        check(gl_ctx, torch, m, shader, np.ascontiguousarray(y[:h, :w]), "rgba32f")


@pytest.mark.gl
def test_edges_are_replicate_padding_not_computed_outside(gl_ctx, torch, mods):
    """A bright border column: a layer computed in registers outside the image would differ from PyTorch there."""
    model_mod, export, et = mods
    m = random_model(model_mod, torch, 8, blocks=5)
    y = np.full((11, 14), 0.1, np.float32)
    y[:, 0] = y[0, :] = 1.0
    y[-1, -3:] = 0.9
    shader = tiled(export, m, et.TiledPlan((5,), block=(4, 4), threads=(8, 1)))
    check(gl_ctx, torch, m, shader, y, "rgba32f")


# ----------------------------------------------------------------- bench --forms (structure only, no timing)


@pytest.mark.gl
def test_bench_compares_forms_side_by_side(mods, torch, shared_ctx, tmp_path, capsys):
    import json

    model_mod, export, _ = mods
    m = random_model(model_mod, torch, 9, blocks=2, width=2)
    ckpt = tmp_path / "tiny.pt"
    torch.save({"config": m.cfg.to_dict(), "model": m.state_dict()}, ckpt)
    other = tmp_path / "other.glsl"
    other.write_text(export.export_shader(m, name="other"))
    out_json = tmp_path / "forms.json"
    assert cli.main(["bench", "--model", str(ckpt), "--size", "48x32", "--forms", "compute,tiled,fragment",
                     "--vs", str(other), "--frames", "2", "--rounds", "2", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert [r["row"] for r in data["rows"]] == ["tiny compute", "tiny tiled", "tiny fragment", "other"]
    assert all(r["network_ms"] > 0 and r["gl_frame_ms"] > 0 and len(r["network_rounds"]) == 2 for r in data["rows"])
    assert data["rows"][0]["speedup_vs_first"] == 1.0 and data["input"] == [48, 32] and data["output"] == [96, 64]
    assert "2 frames x 2 interleaved rounds, medians" in out and "network vs tiny compute" in out
    for argv, msg in ((["--forms", "compute,tiles"], "unknown form 'tiles'"),
                      (["--forms", "tiled,tiled"], "listed twice"),
                      (["--vs", str(tmp_path / "missing.glsl")], "does not exist")):
        assert cli.main(["bench", "--model", str(ckpt), "--size", "48x32", "--frames", "2", *argv]) == 1
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
