"""`upshade export`: lowering math (against torch), shader structure, determinism, CLI.

GL parity of the exported shaders lives in test_parity.py.
"""

from __future__ import annotations

import hashlib
import re
import shutil

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError
from upshade.host.hookparse import load_shader, parse_shader, rpn_eval
from upshade.host.paths import SHADERS_DIR, WEIGHTS_DIR, shipped_shader

pytestmark = pytest.mark.torch

SIZES = ("S", "M", "L")
SHIPPED = SIZES + tuple(f"{s}-real" for s in SIZES)  # every size and its compressed-video variant


@pytest.fixture(scope="module")
def exp(torch):
    from upshade.tools import export

    return export


@pytest.fixture(scope="module")
def mdl(torch):
    from upshade.tools import model

    return model


def make_model(mdl, torch, seed=0, **cfg):
    torch.manual_seed(seed)
    m = mdl.UpshadeNet(mdl.ModelConfig(**cfg)).eval()
    with torch.no_grad():  # larger biases than the default init, so CReLU's sign split matters
        for p in m.parameters():
            if p.dim() == 1:
                p.uniform_(-0.3, 0.3)
    return m


def save_ckpt(torch, m, path, metrics=None):
    torch.save({"config": m.cfg.to_dict(), "model": m.state_dict(), "metrics": metrics or {}}, path)
    return path


# ----------------------------------------------------------------- reference of what the shader computes


def _shift(x, dy, dx):
    """x[..., clamp(i+dy), clamp(j+dx)]: clamp-to-edge texture sampling."""
    h, w = x.shape[-2:]
    rows = np.clip(np.arange(h) + dy, 0, h - 1)
    cols = np.clip(np.arange(w) + dx, 0, w - 1)
    return x[..., rows[:, None], cols[None, :]]


def _conv(x, w, b):
    k = w.shape[-1]
    r = k // 2
    out = np.broadcast_to(b[:, None, None], (w.shape[0],) + x.shape[1:]).copy()
    for ky in range(k):
        for kx in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, ky, kx], _shift(x, ky - r, kx - r))
    return out


def _crelu_textures(h):
    parts = []
    for t in range(h.shape[0] // 4):
        v = h[4 * t:4 * t + 4]
        parts += [np.maximum(v, 0), np.maximum(-v, 0)]
    return np.concatenate(parts)


def run_lowered(exp, low, y):
    """The lowered network evaluated the way the passes do it (float64)."""
    h = _conv(y[None].astype(np.float64), *low.convs[0])
    feats = [h]
    for w, b in low.convs[1:]:
        h = _conv(_crelu_textures(h), w, b)
        feats.append(h)
    sub = _conv(np.concatenate([_crelu_textures(f) for f in feats]), low.final_w, low.final_b)
    if low.n_out == 1:
        sub = np.repeat(sub, 4, axis=0)
    if low.residual == "bicubic":
        for sy, wy, oy in ((0, exp.BICUBIC_EVEN, -2), (1, exp.BICUBIC_ODD, -1)):
            for sx, wx, ox in ((0, exp.BICUBIC_EVEN, -2), (1, exp.BICUBIC_ODD, -1)):
                for i in range(4):
                    for j in range(4):
                        sub[2 * sy + sx] += wy[i] * wx[j] * _shift(y, oy + i, ox + j)
    hh, ww = y.shape
    out = sub.reshape(2, 2, hh, ww).transpose(2, 0, 3, 1).reshape(2 * hh, 2 * ww)
    if low.residual == "bilinear":  # what one hardware-filtered sample at the output position gives
        for sy in range(2):
            for sx in range(2):
                oy, ox = (-1, 0) if sy == 0 else (0, 1), (-1, 0) if sx == 0 else (0, 1)
                ay, ax = (0.25, 0.75) if sy == 0 else (0.75, 0.25), (0.25, 0.75) if sx == 0 else (0.75, 0.25)
                acc = sum(ay[a] * ax[c] * _shift(y, oy[a], ox[c]) for a in range(2) for c in range(2))
                out[sy::2, sx::2] += acc
    return out


CONFIGS = [
    dict(blocks=2, width=4, upscale="pixel_shuffle", final_kernel=3, residual="bilinear"),
    dict(blocks=3, width=4, upscale="pixel_shuffle", final_kernel=1, residual="bicubic"),
    dict(blocks=2, width=4, upscale="nearest_conv", final_kernel=3, residual="bicubic"),
    dict(blocks=2, width=4, upscale="nearest_conv", final_kernel=1, residual="bilinear"),
    dict(blocks=2, width=6, upscale="nearest_conv", final_kernel=3, residual="bilinear"),
    dict(blocks=2, width=5, upscale="pixel_shuffle", final_kernel=3, residual="bicubic"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_lowered_network_matches_torch(exp, mdl, torch, cfg):
    m = make_model(mdl, torch, **cfg)
    rng = np.random.default_rng(1)
    y = rng.random((9, 14), dtype=np.float32)
    y[:3, :4] = 0.0  # flat dark corner: border clamping and both CReLU halves exercised
    with torch.no_grad():
        ref = m(torch.from_numpy(y)[None, None]).numpy()[0, 0]
    low = exp.lower(m.cfg.to_dict(), m.state_dict())
    got = run_lowered(exp, low, y.astype(np.float64))
    assert got.shape == ref.shape == (18, 28)
    assert np.abs(got - ref).max() < 2e-5


def test_bicubic_taps_are_torch_a_minus_075(exp, torch):
    import torch.nn.functional as F

    y = np.random.default_rng(2).random((7, 6)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(y)[None, None], scale_factor=2, mode="bicubic", align_corners=False)[0, 0]
    assert sum(exp.BICUBIC_EVEN) == sum(exp.BICUBIC_ODD) == 1.0
    assert exp.BICUBIC_EVEN == tuple(reversed(exp.BICUBIC_ODD))
    # Row 0 / column 1 of the output: even row taps -2..1, odd column taps -1..2, clamped.
    w = np.outer(exp.BICUBIC_EVEN, exp.BICUBIC_ODD)
    rows, cols = np.clip([-2, -1, 0, 1], 0, 6), np.clip([-1, 0, 1, 2], 0, 5)
    assert abs((w * y[np.ix_(rows, cols)]).sum() - float(ref[0, 1])) < 1e-6


# ----------------------------------------------------------------- shader text


@pytest.mark.parametrize(
    "cfg, passes",
    [
        # (compute, fragment): convs + final passes (+ the fragment depth-to-space pass);
        # compute passes bind up to 16 textures, fragment passes 15 (see export.FRAGMENT_MAX_BINDS)
        (dict(blocks=4, width=4), (4 + 1, 4 + 1 + 1)),
        (dict(blocks=7, width=8, upscale="nearest_conv", residual="bicubic"), (14 + 1, 14 + 1 + 1)),
        # 9 blocks x 2 textures = 18 feature textures: 16 + (1 partial + 2 + HOOKED) binds
        (dict(blocks=9, width=8), (18 + 2, 18 + 2 + 1)),
        (dict(blocks=15, width=8, residual="bicubic"), (30 + 2, 30 + 3 + 1)),
        (dict(blocks=15, width=1, final_kernel=1), (15 + 1, 15 + 1 + 1)),
        (dict(blocks=16, width=4), (16 + 2, 16 + 2 + 1)),  # compute: 16 + HOOKED; fragment: 16 > 15
    ],
)
@pytest.mark.parametrize("compute", [True, False], ids=["compute", "fragment"])
def test_shader_structure(exp, mdl, torch, cfg, passes, compute):
    m = make_model(mdl, torch, **cfg)
    text = exp.export_shader(m, name="T", compute=compute)
    sf = parse_shader(text, "t.glsl")
    assert len(sf.passes) == passes[0 if compute else 1]
    saved = set()
    for p in sf.passes:
        assert p.hooks == ("LUMA",)
        assert p.desc and p.desc.startswith("upshade T ")
        assert len(p.binds) <= (16 if compute else 15)
        assert p.when is not None and p.when.source == "OUTPUT.w LUMA.w / 1.200 > OUTPUT.h LUMA.h / 1.200 > *"
        for b in p.binds:  # only earlier saves (or the hooked luma) are read
            assert b == "HOOKED" or b in saved, b
        if p is not sf.passes[-1]:
            assert p.save and p.components == 4 and p.width is None
            saved.add(p.save)
        if compute:
            # Every invocation computes a BLOCK of source pixels: the block covers the work group's
            # threads times that (twice that in the last pass, which writes the x2 output).
            bw, bh, tw, th = p.compute
            k = 2 if p is sf.passes[-1] else 1
            assert (bw, bh) == (k * exp.BLOCK[0] * tw, k * exp.BLOCK[1] * th)
            assert tw * th <= 128  # within every GPU's guaranteed work group size
            assert p.body.lstrip().startswith("void hook() {") and "imageStore(out_image, " in p.body
        else:
            assert p.compute is None and p.body.lstrip().startswith("vec4 hook() {")
    last = sf.passes[-1]
    assert last.save is None and last.width.source == "LUMA.w 2 *" and last.height.source == "LUMA.h 2 *"
    assert "HOOKED" in last.binds or (not compute and cfg.get("residual") == "bicubic")
    # The final conv (and its partial sums) binds every block's saved textures exactly once.
    blocks_tex = {p.save for p in sf.passes if " conv" in p.desc}
    final_binds = [b for p in sf.passes if " final " in p.desc for b in p.binds if b in blocks_tex]
    assert sorted(final_binds) == sorted(blocks_tex)
    assert "conv2 (" + str(2 * cfg["width"]) + "->" + str(cfg["width"]) in text


@pytest.mark.parametrize("compute", [False, True], ids=["fragment", "compute"])
def test_chained_export_is_the_x2_passes_then_a_stage_of_its_own(exp, mdl, torch, compute):
    """--stages 2: the x2 file's passes unchanged, then the same network again on distinct textures."""
    m = make_model(mdl, torch, blocks=2, width=6)
    one = parse_shader(exp.export_shader(m, name="T", compute=compute), "t.glsl").passes
    text = exp.export_shader(m, name="T", compute=compute, stages=2)
    two = parse_shader(text, "t_x4.glsl").passes
    assert len(two) == 2 * len(one)
    src = lambda e: e and e.source  # noqa: E731
    fields = lambda p: (p.desc, p.save, p.binds, src(p.width), src(p.height), src(p.when), p.compute, p.body.rstrip())  # noqa: E731
    assert [fields(p) for p in two[:len(one)]] == [fields(p) for p in one]
    first, second = {p.save for p in one if p.save}, {p.save for p in two[len(one):] if p.save}
    assert len(second) == len(first) and not first & second and all("_STAGE2_" in t for t in second)
    for a, b in zip(one, two[len(one):]):
        assert b.desc == a.desc.replace("upshade T ", "upshade T stage 2 ", 1)
        assert src(b.width) == src(a.width) and b.compute == a.compute
        assert src(a.when) == exp.stage_gate(1) and src(b.when) == exp.stage_gate(2)
        assert all(n == "HOOKED" or n in second for n in b.binds)  # never the first stage's textures
        assert b.body.rstrip() == a.body.rstrip().replace("UPSHADE_T_", "UPSHADE_T_STAGE2_")
    head = text.split("//!")[0]
    assert head.startswith("// upshade T x4: the x2 CNN luma upscaler run 2 times,")
    assert f"passes: {len(two)}" in head and "stage 2: from 2.2x" in head


def test_stage_gates_fire_once_per_doubling(exp):
    """Stage 1 from 1.2x the source per side; stage 2 from 2.2x, and only on the luma stage 1 doubled."""
    gates = [parse_shader(f"//!HOOK LUMA\n//!WHEN {exp.stage_gate(k)}\nvec4 hook() {{ return vec4(0.0); }}\n",
                          "g.glsl").passes[0].when for k in (1, 2)]

    def run(out, src=(640, 360)):
        """How many stages fire, each on the luma the ones before it doubled."""
        luma, n = src, 0
        for gate in gates:
            sizes = {"OUTPUT": out, "LUMA": luma, "HOOKED": luma, "NATIVE_CROPPED": src}
            if rpn_eval(gate, sizes):
                luma, n = (2 * luma[0], 2 * luma[1]), n + 1
        return n

    assert run((700, 400)) == 0 and run((736, 414)) == 0   # 1.15x: stage 2's ratio passes, stage 1 did not run
    assert run((1280, 720)) == 1 and run((1400, 790)) == 1  # 2.19x
    assert run((1440, 810)) == 2 and run((2560, 1440)) == 2  # 2.25x (480p -> 1080p), 4x
    assert run((3840, 720)) == 1                            # both sides must be enlarged


@pytest.mark.parametrize("stages, error", [(0, "from 1 to 4"), (5, "from 1 to 4"), (1.5, "whole number")])
def test_stages_out_of_range(exp, mdl, torch, stages, error):
    with pytest.raises(UpshadeError, match=error):
        exp.export_shader(make_model(mdl, torch, blocks=1), stages=stages)
    with pytest.raises(UpshadeError, match="fragment or compute passes, not tiled"):
        exp.export_shader(make_model(mdl, torch, blocks=1), form="tiled", stages=2)


def test_when_gate_only_when_enlarged(exp, mdl, torch):
    sf = parse_shader(exp.export_shader(make_model(mdl, torch, blocks=1), name="T"), "t.glsl")
    gate = sf.passes[0].when

    def on(out_w, out_h):
        sizes = {"OUTPUT": (out_w, out_h), "LUMA": (640, 360), "HOOKED": (640, 360)}
        return bool(rpn_eval(gate, sizes))

    assert on(1280, 720) and on(1920, 1080)
    assert not on(640, 360) and not on(700, 400) and not on(1280, 360)


@pytest.mark.parametrize("compute", [True, False], ids=["compute", "fragment"])
def test_literals_round_trip_float32(exp, mdl, torch, compute):
    m = make_model(mdl, torch, blocks=2)
    text = exp.export_shader(m, name="T", compute=compute)
    first = text.split("hook() {")[1]
    bias = re.search(r"vec4 r(?:0_0)? = vec4\(([^)]*)\);", first).group(1)
    got = np.array([float(v) for v in bias.split(",")], dtype=np.float32)
    assert np.array_equal(got, m.convs[0].bias.detach().numpy())
    weights = re.findall(r"(?:vec4|mat4)\(([-\d.e+, ]+)\)", text)
    numbers = [n.strip() for group in weights for n in group.split(",")]
    assert len(numbers) > 16 * 9 * 2
    assert all(("." in n or "e" in n) for n in numbers)  # no int literals where floats go (GLSL ES)


def test_export_is_deterministic_and_path_free(exp, mdl, torch, tmp_path):
    m = make_model(mdl, torch, blocks=2, residual="bicubic")
    a = save_ckpt(torch, m, tmp_path / "upshade_X.pt", metrics={"set5_psnr_y": 34.5, "curve": [1, 2]})
    (tmp_path / "elsewhere").mkdir()
    b = shutil.copy(a, tmp_path / "elsewhere" / "upshade_X.pt")
    ta, tb = exp.export_shader(a), exp.export_shader(b)
    assert ta == tb == exp.export_shader(a)
    assert str(tmp_path) not in ta
    head = ta.split("//!")[0]
    assert hashlib.sha256(a.read_bytes()).hexdigest()[:16] in head
    assert "upshade_X.pt" in head and "blocks=2" in head and "residual=bicubic" in head
    assert f"parameters: {sum(p.numel() for p in m.parameters())}, passes: 4" in head  # 2 convs, final, depth-to-space
    assert "set5_psnr_y=34.5" in head and "curve" not in head
    assert "//!DESC upshade X conv1 (1->4)" in ta
    assert exp.export_shader(a, name="Q").count("UPSHADE_Q_C1") > 0


# ----------------------------------------------------------------- CLI


def test_cli_export_writes_shader(exp, mdl, torch, tmp_path, capsys):
    ckpt = save_ckpt(torch, make_model(mdl, torch, blocks=2), tmp_path / "upshade_S.pt")
    out = tmp_path / "out.glsl"
    assert cli.main(["export", str(ckpt), "-o", str(out), "--name", "tiny"]) == 0
    assert out.read_text() == exp.export_shader(ckpt, name="tiny")
    assert "out.glsl: 4 fragment passes" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert cli.main(["export", str(ckpt), "-o", str(out), "--name", "tiny", "--compute"]) == 0
    assert out.read_text() == exp.export_shader(ckpt, name="tiny", compute=True)
    assert cli.main(["export", str(ckpt), "-o", str(out), "--name", "tiny", "--fragment"]) == 0
    assert out.read_text() == exp.export_shader(ckpt, name="tiny", compute=False)
    assert "//!COMPUTE" not in out.read_text()
    assert "out.glsl: 4 fragment passes" in capsys.readouterr().out


def test_cli_export_stages(exp, mdl, torch, tmp_path, capsys):
    ckpt = save_ckpt(torch, make_model(mdl, torch, blocks=2), tmp_path / "upshade_S.pt")
    out = tmp_path / "upshade_S_x4_compute.glsl"
    assert cli.main(["export", str(ckpt), "-o", str(out), "--compute", "--stages", "2"]) == 0
    assert out.read_text() == exp.export_shader(ckpt, compute=True, stages=2)
    assert "upshade_S_x4_compute.glsl: 6 compute passes (2 x2 stages: x4) from upshade_S.pt" in capsys.readouterr().out
    for extra, msg in ((["--stages", "0"], "--stages 0: choose a whole number from 1 to 4"),
                       (["--tiled", "--stages", "2"], "--stages 2: chained stages are exported as fragment or compute"),
                       (["--format", "onnx", "--stages", "2"], "--stages 2 is a shader option")):
        target = tmp_path / ("o.onnx" if "onnx" in extra else "o.glsl")
        assert cli.main(["export", str(ckpt), "-o", str(target), *extra]) == 1
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err
        assert not target.exists()


def test_cli_compute_and_fragment_exclude_each_other(mdl, torch, tmp_path, capsys):
    ckpt = save_ckpt(torch, make_model(mdl, torch, blocks=1), tmp_path / "m.pt")
    with pytest.raises(SystemExit) as exc:
        cli.main(["export", str(ckpt), "-o", str(tmp_path / "o.glsl"), "--compute", "--fragment"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "o.glsl").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_cli_rejects_bad_checkpoint(torch, tmp_path, capsys, content):
    ckpt = tmp_path / "bad.pt"
    if content is None:  # a valid torch file that is not an upshade checkpoint
        torch.save({"weights": torch.zeros(3)}, ckpt)
    else:
        ckpt.write_bytes(content)
    out = tmp_path / "out.glsl"
    out.write_text("keep me")
    assert cli.main(["export", str(ckpt), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("upshade: error: ") and str(ckpt) in err and "\n" not in err
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "out.glsl"]


def test_cli_missing_checkpoint_and_mismatched_weights(mdl, torch, tmp_path, capsys):
    assert cli.main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "o.glsl")]) == 1
    assert "nope.pt" in capsys.readouterr().err
    m = make_model(mdl, torch, blocks=2)
    sd = m.state_dict()
    sd["final.weight"] = sd["final.weight"][:, :4]
    bad = tmp_path / "mismatch.pt"
    torch.save({"config": m.cfg.to_dict(), "model": sd, "metrics": {}}, bad)
    assert cli.main(["export", str(bad), "-o", str(tmp_path / "o.glsl")]) == 1
    err = capsys.readouterr().err
    assert "mismatch.pt" in err and err.count("\n") == 1
    assert not (tmp_path / "o.glsl").exists()


def test_cli_refuses_to_overwrite_the_checkpoint(mdl, torch, tmp_path, capsys):
    ckpt = save_ckpt(torch, make_model(mdl, torch, blocks=1), tmp_path / "m.pt")
    before = ckpt.read_bytes()
    assert cli.main(["export", str(ckpt), "-o", str(ckpt)]) == 1
    assert "same file" in capsys.readouterr().err
    assert ckpt.read_bytes() == before


def test_export_rejects_non_finite_weights(exp, mdl, torch):
    m = make_model(mdl, torch, blocks=1)
    with torch.no_grad():
        m.final.bias[0] = float("nan")
    with pytest.raises(UpshadeError, match="NaN"):
        exp.export_shader(m)


# ----------------------------------------------------------------- shipped shaders


@pytest.mark.parametrize("form", ["fragment", "compute"])
@pytest.mark.parametrize("size", SHIPPED)
def test_shipped_x4_shader_is_the_chained_export_of_its_weights(exp, size, form):
    """upshade_X_x4.glsl / upshade_X_x4_compute.glsl: `upshade export --stages 2`, byte for byte."""
    weights = WEIGHTS_DIR / f"upshade_{size}.pt"
    shader = shipped_shader(size, form, stages=2)
    assert shader.name == f"upshade_{size}_x4{'' if form == 'fragment' else '_' + form}.glsl"
    flag = "" if form == "fragment" else f" --{form}"
    assert shader.read_text(encoding="utf-8") == exp.export_shader(weights, name=size, form=form, stages=2), (
        f"{shader} is stale: run `upshade export {weights} -o {shader} --name {size} --stages 2{flag}`"
    )


@pytest.mark.parametrize("form", ["fragment", "compute", "tiled"])
@pytest.mark.parametrize("size", SHIPPED)
def test_shipped_shader_is_the_export_of_its_weights(exp, mdl, size, form):
    weights = WEIGHTS_DIR / f"upshade_{size}.pt"
    shader = shipped_shader(size, form)
    flag = "" if form == "fragment" else f" --{form}"
    assert weights.is_file(), f"{weights} is missing"
    assert shader.read_text(encoding="utf-8") == exp.export_shader(weights, name=size, form=form), (
        f"{shader} is stale: run `upshade export {weights} -o {shader} --name {size}{flag}`"
    )
    cfg = mdl.load_checkpoint(weights)[0].cfg
    descs = [p.desc for p in load_shader(shader).passes]
    if form == "tiled":  # its structure: test_tiled.py
        assert all(" tiled " in d for d in descs) and " final (" in descs[-1]
        return
    convs = cfg.blocks * -(-cfg.width // 4)
    assert all(" conv" in d for d in descs[:convs]) and all(" final" in d for d in descs[convs:-1])
    # compute: the last final pass also writes the x2 output; fragment: a depth-to-space pass follows
    assert (" final" in descs[-1]) == (form == "compute")


def test_free_form_name_gives_valid_identifiers(exp, mdl, torch):
    text = exp.export_shader(make_model(mdl, torch, blocks=1), name="my model v2!\nx")
    sf = parse_shader(text, "t.glsl")
    assert sf.passes[0].save == "UPSHADE_MY_MODEL_V2_X_C1"
    assert sf.passes[0].desc == "upshade my model v2! x conv1 (1->4)"


@pytest.mark.parametrize("size", SHIPPED)
def test_shaders_readme_describes_shipped_models(mdl, size):
    m, _ = mdl.load_checkpoint(WEIGHTS_DIR / f"upshade_{size}.pt")
    c = m.cfg
    passes = [len(load_shader(shipped_shader(size, form)).passes) for form in ("fragment", "compute", "tiled")]
    row = (f"| `upshade_{size}.glsl` | {c.blocks} x {c.width} | {c.upscale}, {c.residual} | "
           f"{mdl.param_count(c):,} | {passes[0]} / {passes[1]} / {passes[2]} | {mdl.flops_per_output_pixel(c):,.0f} |")
    assert row in (SHADERS_DIR / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "n, hooked, sizes",
    [(1, False, [1]), (16, False, [16]), (16, True, [15, 1]), (15, True, [15]),
     (17, False, [16, 1]), (31, False, [16, 15]), (32, False, [16, 15, 1]), (30, True, [16, 14])],
)
def test_final_chunks_respect_bind_limit(exp, n, hooked, sizes):
    feats = [f"T{i}" for i in range(n)]
    chunks = exp._final_chunks(feats, hooked)
    assert [len(c) for c in chunks] == sizes
    assert [t for c in chunks for t in c] == feats
    for limit in (16, 15, 4):
        chunks = exp._final_chunks(feats, hooked, limit)
        assert [t for c in chunks for t in c] == feats
        for i, c in enumerate(chunks):  # + the previous partial sum, + HOOKED in the last pass if it adds a residual
            assert len(c) + (i > 0) + (hooked and i == len(chunks) - 1) <= limit
    assert [len(c) for c in exp._final_chunks([f"T{i}" for i in range(18)], False, 15)] == [15, 3]
