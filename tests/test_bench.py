"""`upshade bench`: the table's rows and ratios, the PBO readback path, and errors (no timing assertions)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from upshade.host import bench, cli
from upshade.host.hookparse import load_shader

ROWS = ("network (GL)", "network (PyTorch CPU)", "GL only (whole frame)", "playback (no display)", "encode")
NUM = r"(\d+\.\d+|-)"




@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A 2-block random checkpoint and its exported shader (tiny: benchmarks here check structure only)."""
    try:
        import torch
    except ImportError:
        from conftest import need

        need("PyTorch is not installed (pip install '.[train]')")
    from upshade.tools.export import export_shader
    from upshade.tools.model import ModelConfig, UpshadeNet

    d = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = UpshadeNet(ModelConfig(blocks=2, width=2))
    ckpt = d / "tiny.pt"
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict()}, ckpt)
    shader = d / "tiny.glsl"
    shader.write_text(export_shader(model, name="tiny"))
    return ckpt, shader


def parse_table(out: str) -> dict:
    rows = {}
    for name in ROWS:
        m = re.search(rf"^{re.escape(name)}\s+{NUM}\s+{NUM}\s*(.*)$", out, re.M)
        assert m, f"row {name!r} missing in:\n{out}"
        rows[name] = (None if m.group(1) == "-" else float(m.group(1)),
                      None if m.group(2) == "-" else float(m.group(2)), m.group(3))
    head = re.search(r"^stage\s+ms/frame\s+fps\s+note$", out, re.M)
    assert head, out
    ratios = {}
    for key, pat in (("speedup", r"GL vs PyTorch speed-up \(network\):\s+(\d+\.\d+)x"),
                     ("playback", r"playback throughput:\s+(\d+\.\d+)% of GL-only"),
                     ("encode", r"encode throughput:\s+(\d+\.\d+)% of GL-only")):
        m = re.search(pat, out)
        ratios[key] = float(m.group(1)) if m else None
    return {"rows": rows, "ratios": ratios}


def test_bench_with_a_model_fills_every_row_and_ratio(tiny_model, shared_ctx, capsys, tmp_path):
    ckpt, _ = tiny_model
    out_json = tmp_path / "bench.json"
    assert cli.main(["bench", "--model", str(ckpt), "--size", "64x48", "--frames", "3", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert [r["stage"] for r in data["rows"]] == list(ROWS)
    assert all(r["ms_per_frame"] > 0 for r in data["rows"])
    assert set(data["ratios"]) == {"gl_vs_torch_speedup", "playback_pct_of_gl_only", "encode_pct_of_gl_only"}
    assert all(v > 0 for v in data["ratios"].values())
    assert data["input"] == [64, 48] and data["output"] == [128, 96]
    assert "64x48 -> 128x96, 3 frames" in out
    assert out.count("median of 3 rounds") == 4  # GL network, GL frame, playback, encode: interleaved
    # First-frame latency: creating the renderer, compiling the passes, the first frame decoded and rendered.
    m = re.search(r"^first-frame latency:\s+(\d+\.\d{3}) s \(renderer created, shaders compiled and linked",
                  out, re.M)
    assert m and data["first_frame_s"] > 0 and float(m.group(1)) == pytest.approx(data["first_frame_s"], abs=5e-4)
    t = parse_table(out)
    h = 0.005  # the table prints ms with 2 decimals: every check allows for that rounding
    for name in ROWS:
        ms, fps, _ = t["rows"][name]
        assert ms is not None and ms > 0 and fps is not None
        assert 1000.0 / (ms + h) - 0.05 <= fps <= 1000.0 / max(ms - h, 1e-3) + 0.05
    assert "3 frames" in t["rows"]["playback (no display)"][2]
    assert "3 frames" in t["rows"]["encode"][2]
    assert "yuv420p on the GPU" in t["rows"]["encode"][2]   # the encoder's planes come from the GPU
    net, torch_ms = t["rows"]["network (GL)"][0], t["rows"]["network (PyTorch CPU)"][0]
    gl = t["rows"]["GL only (whole frame)"][0]
    play, enc = t["rows"]["playback (no display)"][0], t["rows"]["encode"][0]
    assert net <= gl + h  # the shader passes are part of the frame's GL work
    r = t["ratios"]

    def within(value, lo, hi, slack):
        return lo - slack <= value <= hi + slack

    assert within(r["speedup"], (torch_ms - h) / (net + h), (torch_ms + h) / max(net - h, 1e-3), 0.005)
    assert within(r["playback"], 100 * (gl - h) / (play + h), 100 * (gl + h) / max(play - h, 1e-3), 0.05)
    assert within(r["encode"], 100 * (gl - h) / (enc + h), 100 * (gl + h) / max(enc - h, 1e-3), 0.05)


def test_bench_on_a_file_with_a_shader(tiny_model, shared_ctx, tmp_path, capsys):
    _, shader = tiny_model
    clip = bench.make_test_clip(tmp_path / "clip.mp4", (48, 32), 3)
    assert cli.main(["bench", str(clip), "--shader", str(shader), "--frames", "5"]) == 0
    out = capsys.readouterr().out
    assert "48x32 -> 96x64" in out
    t = parse_table(out)
    assert t["rows"]["network (PyTorch CPU)"][0] is None
    assert "--model" in t["rows"]["network (PyTorch CPU)"][2]
    assert t["ratios"]["speedup"] is None
    assert t["ratios"]["playback"] is not None and t["ratios"]["encode"] is not None
    # The clip has 3 frames although 5 were asked for: the pipelines say what they ran.
    assert "3 frames" in t["rows"]["encode"][2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_bench_runs_without_torch(tiny_model, tmp_path):
    """The runtime command must work where torch is not installed (and leaves no temp files)."""
    _, shader = tiny_model
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from upshade.host.cli import main\n"
        f"rc = main(['bench', '--shader', {str(shader)!r}, '--size', '32x32', '--frames', '2'])\n"
        "assert sys.modules['torch'] is None\n"
        "sys.exit(rc)\n"
    )
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    t = parse_table(proc.stdout)
    assert t["rows"]["network (GL)"][0] > 0
    assert list(tmpdir.iterdir()) == []  # the generated clip and the encode output are gone


def test_import_does_not_load_torch():
    code = "import sys, upshade.host.bench; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ratios_and_missing_values():
    r = bench.BenchResult("x", (2, 2), (4, 4), 3, bench.Row("a", 8.0), bench.Row("b", 20.0),
                          bench.Row("f", 10.0), bench.Row("c", 11.0), bench.Row("d", 20.0))
    ratios = r.ratios()
    assert ratios["gl_vs_torch_speedup"] == pytest.approx(2.5)
    assert ratios["playback_pct_of_gl_only"] == pytest.approx(100 * 10 / 11)
    assert ratios["encode_pct_of_gl_only"] == pytest.approx(50.0)
    r.network_torch = bench.Row("b", None, "PyTorch not installed")
    assert r.ratios()["gl_vs_torch_speedup"] is None
    text = r.format()
    assert "GL vs PyTorch speed-up (network): -" in text and "50.0% of GL-only" in text
    r.network_gl = bench.Row("a", None, "no shader")
    assert r.ratios()["encode_pct_of_gl_only"] == pytest.approx(50.0)


def test_offscreen_present_shows_the_rendered_frame(tiny_model, gl_ctx):
    """The playback measurement presents exactly the rendered frame (as a window's back buffer would)."""
    from upshade.host.imageio import image_to_frame
    from upshade.host.pipeline import Renderer

    _, shader = tiny_model
    img = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    renderer = Renderer(gl_ctx, [load_shader(shader)])
    target = bench.RGBA8Target(gl_ctx, (20, 24))
    try:
        tex = renderer.render(image_to_frame(img), (20, 24))
        expected = renderer.read_rgb(tex)
        target.draw(tex)
        shown = np.frombuffer(target.fbo.read(components=4, alignment=1), np.uint8).reshape(24, 20, 4)
        with pytest.raises(Exception, match="does not fit"):
            target.draw(renderer.render(image_to_frame(img), (22, 24)))
    finally:
        target.release()
        renderer.release()
    assert (shown[..., 3] == 255).all()
    assert np.abs(shown[..., :3].astype(int) - expected.astype(int)).max() <= 1


def test_same_weights(tiny_model, tmp_path):
    ckpt, shader = tiny_model
    from upshade.tools.export import export_shader

    exported = tmp_path / "from_file.glsl"
    exported.write_text(export_shader(ckpt))
    assert bench.same_weights(exported, ckpt) is True
    other = tmp_path / "other.pt"
    other.write_bytes(ckpt.read_bytes() + b"x")
    assert bench.same_weights(exported, other) is False
    plain = tmp_path / "plain.glsl"
    plain.write_text("//!HOOK LUMA\n//!BIND HOOKED\nvec4 hook() { return HOOKED_tex(HOOKED_pos); }\n")
    assert bench.same_weights(plain, ckpt) is None


def test_make_test_clip(tmp_path):
    from upshade.host.video import probe

    info = probe(bench.make_test_clip(tmp_path / "c.mp4", (64, 36), 4))
    assert (info.width, info.height) == (64, 36)
    assert info.estimated_frames == 4


def _err(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("upshade: error: "), err
    return err


def test_errors(tmp_path, capsys):
    assert "--frames" in _err(capsys, ["bench", "--shader", "x.glsl", "--frames", "1"])
    assert "--rounds" in _err(capsys, ["bench", "--shader", "x.glsl", "--rounds", "0"])
    assert "WIDTHxHEIGHT" in _err(capsys, ["bench", "--shader", "x.glsl", "--size", "big"])
    assert "even" in _err(capsys, ["bench", "--shader", "x.glsl", "--size", "63x48"])
    assert "--preset" in _err(capsys, ["bench", "--shader", "x.glsl", "--preset", "warp9"])
    shader = tmp_path / "ok.glsl"
    shader.write_text("//!HOOK LUMA\n//!BIND HOOKED\nvec4 hook() { return HOOKED_tex(HOOKED_pos); }\n")
    missing = tmp_path / "none.mp4"
    assert str(missing) in _err(capsys, ["bench", str(missing), "--shader", str(shader)])
    assert "conflicts" in _err(capsys, ["bench", str(missing), "--size", "64x48"])
    assert "does not exist" in _err(capsys, ["bench", "--shader", "x.glsl", "--json", str(tmp_path / "no" / "b.json")])
    assert str(tmp_path / "no.glsl") in _err(capsys, ["bench", "--shader", str(tmp_path / "no.glsl")])
    assert str(tmp_path / "no.pt") in _err(capsys, ["bench", "--model", str(tmp_path / "no.pt")])
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert str(text) in _err(capsys, ["bench", str(text), "--shader", str(shader)])


def test_bad_shader_is_one_line(tmp_path, shared_ctx, capsys):
    bad = tmp_path / "bad.glsl"
    bad.write_text("//!HOOK LUMA\n//!BIND HOOKED\nvec4 hook() { return nope; }\n")
    assert str(bad) in _err(capsys, ["bench", "--shader", str(bad), "--size", "32x32", "--frames", "2"])


@pytest.mark.parametrize("extra, what", [
    ([], r"model M-clean \(for no source to judge; upshade_M(_compute|_tiled)?\.glsl, (fragment|compute) passes\)"),
    (["--no-model"], r"no model \(plain bicubic scaler\)"),
])
def test_bench_runs_the_default_model_or_none(shared_ctx, capsys, extra, what):
    """Without --model/--shader, bench measures the shipped default model (paths.default_model), named in
    one stderr line; --no-model measures the plain scaler's pipelines."""
    from upshade.host import paths

    assert paths.default_model() == "M-clean"
    assert cli.main(["bench", "--size", "32x32", "--frames", "2", "--rounds", "1", *extra]) == 0
    captured = capsys.readouterr()
    assert re.search(rf"^upshade: {what}, 32x32 -> 64x64$", captured.err, re.M), captured.err
    t = parse_table(captured.out)
    assert (t["rows"]["network (GL)"][0] is None) == bool(extra)
