"""`upshade eval`: protocol scoring of bicubic, shaders and torch models; outputs and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.imageio import write_image

from upshade.tools import evaluate as ev  # imports no torch at module level: torch tests use the fixture


def _picture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth shapes plus a little texture: something an upscaler can do better or worse on."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([120 + 90 * np.sin(xx / (4 + c) + seed) * np.cos(yy / (5 + c)) for c in range(3)], axis=2)
    img[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(h, w) / 4) ** 2] = (230, 40, 60)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def tiny_set(tmp_path) -> Path:
    d = tmp_path / "tiny"
    d.mkdir()
    write_image(d / "a.png", _picture(40, 48, 1))
    write_image(d / "b.png", _picture(37, 35, 2))  # odd sizes: cropped to 36x34
    return d




@pytest.fixture
def random_model(torch, tmp_path):
    """A small random-weight model, its checkpoint file and its exported shader."""
    from upshade.tools.export import export_shader
    from upshade.tools.model import ModelConfig, UpshadeNet

    torch.manual_seed(3)
    model = UpshadeNet(ModelConfig(blocks=2, width=4)).eval()
    ckpt = tmp_path / "rand.pt"
    torch.save({"config": model.cfg.to_dict(), "model": model.state_dict()}, ckpt)
    shader = tmp_path / "rand.glsl"
    shader.write_text(export_shader(model, name="rand"))
    return model, ckpt, shader


# ---------------------------------------------------------------- pure parts


def test_load_set_crops_and_downscales(tiny_set):
    s = ev.load_set(tiny_set)
    assert s.name == "tiny"
    assert [i.name for i in s.images] == ["a", "b"]
    a, b = s.images
    assert a.hr.shape == (40, 48, 3) and a.lr.shape == (20, 24, 3)
    assert b.hr.shape == (36, 34, 3) and b.lr.shape == (18, 17, 3)
    assert a.lr.dtype == np.uint8


def test_load_set_greyscale_is_replicated(tmp_path):
    d = tmp_path / "grey"
    d.mkdir()
    write_image(d / "g.png", _picture(32, 32, 5)[..., :1])
    img = ev.load_set(d).images[0]
    assert img.hr.shape == (32, 32, 3)
    assert (img.hr[..., 0] == img.hr[..., 2]).all()


def test_load_set_16_bit_png_is_scaled_to_8_bits(tmp_path):
    d = tmp_path / "deep"
    d.mkdir()
    img16 = (_picture(20, 22, 7).astype(np.uint16) * 257 + 100).astype(np.uint16)
    write_image(d / "d.png", img16)
    hr = ev.load_set(d).images[0].hr
    assert hr.dtype == np.uint8
    assert np.array_equal(hr, np.round(img16.astype(np.float64) / 257).astype(np.uint8))


def test_perfect_psnr_is_null_in_json():
    r = ev.MethodResult("x", "shader", None, None, {"s": ev.SetScore(float("inf"), 1.0, {"a": (float("inf"), 1.0)})})
    j = r.to_json()
    assert j["sets"]["s"]["psnr"] is None and j["sets"]["s"]["images"]["a"]["psnr"] is None


def test_bicubic_up_keeps_constants_and_ramps():
    const = np.full((7, 9), 0.3)
    assert np.allclose(ev.bicubic_up(const), 0.3)
    ramp = np.tile(np.arange(10, dtype=np.float64), (6, 1))
    up = ev.bicubic_up(ramp)
    assert up.shape == (12, 20)
    # Cubic convolution reproduces linear signals away from the clamped edges: x_src = (x + 0.5) / 2 - 0.5.
    xs = (np.arange(20) + 0.5) / 2 - 0.5
    assert np.allclose(up[:, 3:-3], xs[None, 3:-3])


def test_pareto_front_and_table():
    pts = [(10.0, 30.0), (5.0, 29.0), (20.0, 29.5), (40.0, 31.0)]
    assert ev.pareto_front(pts) == [1, 0, 3]
    # A model's shader and its slower torch twin score the same up to noise: only the faster is on the front.
    assert ev.pareto_front([(100.0, 36.38310), (400.0, 36.38311), (50.0, 33.0)]) == [2, 0]
    r = ev.MethodResult("bicubic", "bicubic", None, 0, {"tiny": ev.SetScore(30.123, 0.91234)}, 12.34)
    table = ev.format_table([r], ["tiny"])
    lines = table.splitlines()
    assert lines[0].split() == ["method", "params", "tiny", "PSNR/SSIM", "ms/1080p"]
    assert "30.12 / 0.9123" in lines[2] and "12.3" in lines[2]


# ---------------------------------------------------------------- real-world protocol (--degrade)


def test_load_sets_crop_and_degrade(tiny_set):
    """Clean alone keeps today's crop (2); any other spec crops every column to 4; each LR is its spec's."""
    from upshade.tools.degrade import degrade, parse_spec, swscale_down
    from upshade.tools.metrics import imresize_down

    (clean_only,) = ev.load_sets(tiny_set, ["clean"])
    assert [i.hr.shape for i in clean_only.images] == [(40, 48, 3), (36, 34, 3)]
    cols = ev.load_sets(tiny_set, ["clean", "x264:30", "kernel:lanczos"])
    assert [c.degrade.name for c in cols] == ["clean", "x264:30", "kernel:lanczos"]
    assert [i.hr.shape for i in cols[0].images] == [(40, 48, 3), (36, 32, 3)]
    for k in range(2):
        hr = cols[0].images[k].hr
        assert all(c.images[k].hr is hr for c in cols)  # one HR array shared by all columns
        assert np.array_equal(cols[0].images[k].lr, imresize_down(hr, 2))
        assert np.array_equal(cols[1].images[k].lr, degrade(hr, parse_spec("x264:30")))
        assert np.array_equal(cols[2].images[k].lr, swscale_down(hr, "lanczos"))
        assert cols[1].images[k].lr.shape == cols[0].images[k].lr.shape
    assert not np.array_equal(cols[1].images[0].lr, cols[0].images[0].lr)  # the codec did something
    assert ev.hr_multiple([c.degrade for c in cols]) == 4 and ev.hr_multiple([ev.CLEAN]) == 2


def test_x264_degradation_is_the_same_on_every_machine():
    """Same bytes twice, and libx264 pinned to one thread: its default (the core count) changes the output."""
    from upshade.tools.degrade import codec_roundtrip, degrade, parse_spec

    hr = _picture(256, 320, 4)
    clean = ev.imresize_down(hr, 2)
    lr = degrade(hr, parse_spec("x264:28"))
    assert np.array_equal(lr, degrade(hr, parse_spec("x264:28")))
    one = codec_roundtrip([clean], "h264", 28, options={"threads": "1"})[0]
    four = codec_roundtrip([clean], "h264", 28, options={"threads": "4"})[0]
    assert not np.array_equal(one, four), "this picture no longer shows libx264's thread dependence"
    assert np.array_equal(lr, one)


def test_name_columns():
    def col(name, spec):
        return ev.TestSet(name, Path(name), [], ev.parse_spec(spec))

    clean = ev.name_columns([[col("a", "clean")], [col("a", "clean")], [col("b", "clean")]])
    assert [c.name for c in clean] == ["a", "a#2", "b"]
    board = ev.name_columns([[col("a", "clean"), col("a", "x264:23")], [col("a", "clean"), col("a", "x264:23")]])
    assert [c.name for c in board] == ["a clean", "a x264:23", "a#2 clean", "a#2 x264:23"]
    assert [c.set_name for c in board] == ["a", "a", "a#2", "a#2"]


def test_cli_real_world_board(tiny_set, random_model, shared_ctx, tmp_path, capsys, monkeypatch):
    """Several specs: a column per (set, spec) in table and JSON; each LR made once for all methods."""
    _, _, shader = random_model
    calls = []
    real = ev.degrade
    monkeypatch.setattr(ev, "degrade", lambda hr, spec: calls.append(spec.name) or real(hr, spec))
    out = tmp_path / "board.json"
    specs = ["clean", "x264:28", "kernel:area", "x264:28"]  # a repeat is scored once
    assert cli.main(["eval", "--set", str(tiny_set), "--shader", str(shader), "--degrade", *specs,
                     "--no-timing", "--json", str(out)]) == 0
    assert sorted(calls) == ["kernel:area"] * 2 + ["x264:28"] * 2  # 2 images x 2 specs, not x 2 methods
    text = capsys.readouterr().out
    assert "clean PSNR/SSIM" in text and "x264:28 PSNR/SSIM" in text and "kernel:area PSNR/SSIM" in text
    data = json.loads(out.read_text())
    cols = ["tiny clean", "tiny x264:28", "tiny kernel:area"]
    assert list(data["sets"]) == cols
    assert [data["sets"][c]["degrade"] for c in cols] == ["clean", "x264:28", "kernel:area"]
    assert {data["sets"][c]["set"] for c in cols} == {"tiny"}
    assert data["protocol"]["hr_crop_multiple"] == 4
    assert "libx264 CRF 28" in data["protocol"]["degrade"]["x264:28"]
    assert [m["label"] for m in data["methods"]] == ["bicubic", "rand"]
    for m in data["methods"]:
        assert list(m["sets"]) == cols
        # Compression costs the bicubic baseline and a random net alike.
        assert m["sets"]["tiny x264:28"]["psnr"] < m["sets"]["tiny clean"]["psnr"]
    # The clean column of a real-world board is the clean protocol at the crop of 4.
    clean4 = ev.load_sets(tiny_set, ["clean", "kernel:area"])[0]
    bic = ev.GLMethod(shared_ctx)
    try:
        (ref,) = ev.evaluate([bic], [clean4], show_progress=False)
    finally:
        bic.release()
    assert data["methods"][0]["sets"]["tiny clean"]["psnr"] == pytest.approx(ref.scores["tiny"].psnr, abs=1e-9)


def test_cli_clean_default_is_todays_protocol(tiny_set, shared_ctx, tmp_path):
    """No --degrade and --degrade clean: the same board as always (crop to 2, columns named by set)."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli.main(["eval", "--set", str(tiny_set), "--no-timing", "--json", str(a)]) == 0
    assert cli.main(["eval", "--set", str(tiny_set), "--degrade", "clean", "--no-timing", "--json", str(b)]) == 0
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ja["methods"] == jb["methods"] and list(ja["sets"]) == ["tiny"]
    assert "degrade" not in ja["protocol"]
    bic = ev.GLMethod(shared_ctx)
    try:
        (ref,) = ev.evaluate([bic], [ev.load_set(tiny_set)], show_progress=False)
    finally:
        bic.release()
    assert ja["methods"][0]["sets"]["tiny"]["psnr"] == pytest.approx(ref.scores["tiny"].psnr, abs=1e-9)


def test_plot_shows_the_chosen_spec(tiny_set, shared_ctx, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(ev, "draw_plot", lambda results, names, out, device, scale: (drawn.append(list(names)),
                                                                                    Path(out).write_bytes(b"png")))
    argv = ["eval", "--set", str(tiny_set), "--set", str(tiny_set), "--degrade", "clean", "kernel:area",
            "--runs", "1", "--plot", str(tmp_path / "p.png")]
    assert cli.main(argv) == 0
    assert cli.main(argv + ["--plot-spec", "kernel:area"]) == 0
    assert drawn == [["tiny clean", "tiny#2 clean"], ["tiny kernel:area", "tiny#2 kernel:area"]]


# ---------------------------------------------------------------- GL + torch


def test_model_and_its_shader_score_the_same(tiny_set, gl_ctx, random_model):
    model, _, shader = random_model
    sets = [ev.load_set(tiny_set)]
    gl = ev.GLMethod(gl_ctx, [shader])
    try:
        res = ev.evaluate([gl, ev.TorchMethod(model, "torch")], sets, show_progress=False)
    finally:
        gl.release()
    g, t = res[0].scores["tiny"], res[1].scores["tiny"]
    assert res[0].params == res[1].params == sum(p.numel() for p in model.parameters())
    for name in ("a", "b"):
        assert abs(g.per_image[name][0] - t.per_image[name][0]) < 0.05, (name, g.per_image, t.per_image)
        assert abs(g.per_image[name][1] - t.per_image[name][1]) < 1e-3
    assert abs(g.psnr - t.psnr) < 0.05


def test_bicubic_baseline_beats_a_random_network(tiny_set, gl_ctx, random_model):
    model, _, _ = random_model
    sets = [ev.load_set(tiny_set)]
    bic = ev.GLMethod(gl_ctx)
    try:
        res = ev.evaluate([bic, ev.TorchMethod(model, "torch")], sets, show_progress=False)
    finally:
        bic.release()
    assert res[0].label == "bicubic" and res[0].params == 0
    assert 22.0 < res[0].scores["tiny"].psnr < 60.0
    assert res[0].scores["tiny"].psnr > res[1].scores["tiny"].psnr


def test_cli_writes_table_json_and_plot(tiny_set, random_model, tmp_path):
    """The real command in a fresh process (its own EGL context), timings included."""
    _, ckpt, shader = random_model
    out_json, out_png = tmp_path / "scores.json", tmp_path / "pareto.png"
    cmd = [sys.executable, "-m", "upshade.host.cli", "eval", "--set", str(tiny_set), "--shader", str(shader),
           "--model", str(ckpt), "--json", str(out_json), "--plot", str(out_png), "--runs", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("bicubic", "rand", "torch"))]
    assert [r.split()[0] for r in rows] == ["bicubic", "rand", "torch"]
    data = json.loads(out_json.read_text())
    assert [m["label"] for m in data["methods"]] == ["bicubic", "rand", "torch rand"]
    assert data["protocol"]["shave"] == 2 and data["sets"]["tiny"]["images"] == ["a", "b"]
    for m in data["methods"]:
        assert m["ms_per_1080p_frame"] > 0
        assert set(m["sets"]["tiny"]["images"]) == {"a", "b"}
    shader_m, torch_m = data["methods"][1], data["methods"][2]
    assert abs(shader_m["sets"]["tiny"]["psnr"] - torch_m["sets"]["tiny"]["psnr"]) < 0.05
    assert shader_m["params"] == torch_m["params"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*part-*"))


def test_cli_no_timing_json(tiny_set, shared_ctx, tmp_path, capsys):
    out = tmp_path / "s.json"
    assert cli.main(["eval", "--set", str(tiny_set), "--set", str(tiny_set), "--no-timing", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (bic,) = data["methods"]
    assert set(bic["sets"]) == {"tiny", "tiny#2"}  # two sets of the same name stay apart
    assert bic["ms_per_1080p_frame"] is None
    assert bic["sets"]["tiny"]["psnr"] == bic["sets"]["tiny#2"]["psnr"]


# ---------------------------------------------------------------- errors: one line naming the file


def _err(capsys, argv) -> str:
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("upshade: error: ")
    return err


def test_missing_and_empty_set(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert str(missing) in _err(capsys, ["eval", "--set", str(missing), "--no-timing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hi")
    err = _err(capsys, ["eval", "--set", str(empty), "--no-timing"])
    assert str(empty) in err and "no images" in err


def test_unreadable_and_tiny_image(tmp_path, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    assert str(d / "x.png") in _err(capsys, ["eval", "--set", str(d), "--no-timing"])
    d2 = tmp_path / "small"
    d2.mkdir()
    write_image(d2 / "s.png", _picture(10, 12, 0))
    err = _err(capsys, ["eval", "--set", str(d2), "--no-timing"])
    assert str(d2 / "s.png") in err and "too small" in err


def test_bad_checkpoint(tiny_set, tmp_path, capsys, torch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert str(bad) in _err(capsys, ["eval", "--set", str(tiny_set), "--model", str(bad), "--no-timing"])
    missing = tmp_path / "missing.pt"
    assert str(missing) in _err(capsys, ["eval", "--set", str(tiny_set), "--model", str(missing), "--no-timing"])


def test_bad_shader(tiny_set, tmp_path, shared_ctx, capsys):
    bad = tmp_path / "bad.glsl"
    bad.write_text("//!HOOK LUMA\n//!BIND HOOKED\nvec4 hook() { return undefined_thing; }\n")
    assert str(bad) in _err(capsys, ["eval", "--set", str(tiny_set), "--shader", str(bad), "--no-timing"])
    missing = tmp_path / "none.glsl"
    assert str(missing) in _err(capsys, ["eval", "--set", str(tiny_set), "--shader", str(missing), "--no-timing"])


def test_output_checks_happen_before_work(tiny_set, tmp_path, capsys):
    err = _err(capsys, ["eval", "--set", str(tiny_set), "--json", str(tmp_path / "no" / "x.json"), "--no-timing"])
    assert "does not exist" in err
    err = _err(capsys, ["eval", "--set", str(tiny_set), "--plot", str(tmp_path / "p.png"), "--no-timing"])
    assert "p.png" in err and "timing" in err


def test_bad_degrade_specs(tiny_set, tmp_path, capsys):
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "s.json"
    for spec, words in (("x264:99", "CRF"), ("kernel:nearest", "unknown kernel"), ("jpeg:50", "expected"),
                        ("x264", "expected")):
        err = _err(capsys, ["eval", "--set", str(tiny_set), "--degrade", "clean", spec, "--no-timing",
                            "--json", str(out)])
        assert spec in err and words in err, err
    err = _err(capsys, ["eval", "--set", str(tiny_set), "--degrade", "clean", "--plot-spec", "x264:23",
                        "--plot", str(outdir / "p.png")])
    assert "--plot-spec x264:23" in err and "clean" in err
    assert list(outdir.iterdir()) == []


def test_missing_codec_is_one_line_before_any_work(tiny_set, tmp_path, capsys, monkeypatch, shared_ctx):
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264"})
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "s.json"
    err = _err(capsys, ["eval", "--set", str(tiny_set), "--degrade", "clean", "x264:23", "--no-timing",
                        "--json", str(out)])
    assert "libx264" in err and "x264:23" in err
    assert list(outdir.iterdir()) == []
    # A board without x264 specs does not need the encoder.
    assert cli.main(["eval", "--set", str(tiny_set), "--degrade", "clean", "kernel:area", "--no-timing",
                     "--json", str(out)]) == 0
    assert list(json.loads(out.read_text())["sets"]) == ["tiny clean", "tiny kernel:area"]


def test_bicubic_set14_matches_the_real_world_reference(data_dir, gl_ctx):
    """The protocol's reference values for bicubic on Set14 (../shared/data/README.md)."""
    reference = {"clean": 30.33, "x264:23": 28.37, "x264:28": 26.86, "kernel:area": 30.52, "kernel:lanczos": 30.67}
    cols = ev.name_columns([ev.load_sets(data_dir / "set14", list(reference))])
    bic = ev.GLMethod(gl_ctx)
    try:
        (res,) = ev.evaluate([bic], cols, show_progress=False)
    finally:
        bic.release()
    got = {c.degrade.name: res.scores[c.name].psnr for c in cols}
    assert all(abs(got[k] - v) < 0.02 for k, v in reference.items()), got


def test_bicubic_set5_matches_the_protocol_reference(data_dir, gl_ctx):
    """The host's bicubic through the full RGB pipeline lands on the README's reference (33.68 dB)."""
    bic = ev.GLMethod(gl_ctx)
    try:
        (res,) = ev.evaluate([bic], [ev.load_set(data_dir / "set5")], show_progress=False)
    finally:
        bic.release()
    assert abs(res.scores["set5"].psnr - 33.68) < 0.03
    assert abs(res.scores["set5"].ssim - 0.930) < 0.002


def test_shaders_are_scored_without_torch(tiny_set, random_model, tmp_path):
    """Scoring shaders needs only the runtime: `upshade eval --shader` works where torch is absent."""
    _, _, shader = random_model
    out = tmp_path / "s.json"
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from upshade.host.cli import main\n"
        f"rc = main(['eval', '--set', {str(tiny_set)!r}, '--shader', {str(shader)!r}, '--no-timing',"
        f" '--json', {str(out)!r}])\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [m["label"] for m in json.loads(out.read_text())["methods"]] == ["bicubic", "rand"]


def test_sets_by_name_are_the_training_data_sources(data_dir, monkeypatch):
    """`--set synla:val` scores exactly the validation split training uses; `set5` the shared folder."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # names resolve under ../shared/data
    by_name = ev.load_set("set5")
    by_path = ev.load_set(data_dir / "set5")
    assert by_name.name == "set5" and [i.name for i in by_name.images] == [i.name for i in by_path.images]
    assert all(np.array_equal(a.hr, b.hr) for a, b in zip(by_name.images, by_path.images))
    from upshade.tools.data import resolve_source

    val = resolve_source("synla:val")
    assert len(val) == 128
    with pytest.raises(ev.UpshadeError, match="nosuchset: test set folder does not exist"):
        ev.load_set("nosuchset")


# ---------------------------------------------------------------- x4 (--scale 4)


def test_load_set_at_x4(tiny_set, tmp_path):
    """x4: HR cropped to a multiple of 4, LR the MATLAB-bicubic 1/4; only the clean LR; 4 px shaved need 20 px."""
    from upshade.tools.metrics import imresize_down

    s = ev.load_set(tiny_set, scale=4)
    assert s.scale == 4 and [i.hr.shape for i in s.images] == [(40, 48, 3), (36, 32, 3)]
    assert [i.lr.shape for i in s.images] == [(10, 12, 3), (9, 8, 3)]
    assert all(np.array_equal(i.lr, imresize_down(i.hr, 4)) for i in s.images)
    with pytest.raises(ev.UpshadeError, match="--scale 4: only the clean LR is defined at x4; drop --degrade x264:23"):
        ev.load_sets(tiny_set, ["clean", "x264:23"], scale=4)
    with pytest.raises(ev.UpshadeError, match="--scale 3"):
        ev.load_set(tiny_set, scale=3)
    small = tmp_path / "small"
    small.mkdir()
    write_image(small / "s.png", _picture(18, 30, 0))  # enough at x2 (16), not at x4 (20)
    assert ev.load_set(small).images[0].hr.shape == (18, 30, 3)
    with pytest.raises(ev.MediaError, match="too small to score \\(needs at least 20x20\\)"):
        ev.load_set(small, scale=4)


def test_cli_x4_board(tiny_set, random_model, shared_ctx, tmp_path, capsys, torch):
    """--scale 4: the protocol recorded in the JSON, the Markdown table of the same board, and a torch
    model run twice scoring what its x4 export scores through the host."""
    from upshade.tools.export import export_shader

    model, ckpt, shader = random_model
    x4 = tmp_path / "rand_x4.glsl"
    x4.write_text(export_shader(model, name="rand", stages=2))
    out, md = tmp_path / "b.json", tmp_path / "b.md"
    assert cli.main(["eval", "--scale", "4", "--set", str(tiny_set), "--shader", str(shader), "--shader", str(x4),
                     "--model", str(ckpt), "--no-timing", "--json", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    assert data["protocol"]["scale"] == data["protocol"]["shave"] == 4 and "1/4" in data["protocol"]["lr"]
    assert [m["label"] for m in data["methods"]] == ["bicubic", "rand", "rand_x4", "torch rand"]
    psnr = {m["label"]: m["sets"]["tiny"]["psnr"] for m in data["methods"]}
    assert abs(psnr["rand_x4"] - psnr["torch rand"]) < 0.05 and abs(psnr["rand_x4"] - psnr["rand"]) > 0.1
    table = md.read_text()
    assert table == ev.markdown_table(data)
    assert table.splitlines()[:2] == ["| method | params | tiny (x4) |", "|---|---|---|"]
    assert f"| `rand_x4` | 912 | {psnr['rand_x4']:.2f} / " in table
    assert "tiny PSNR/SSIM" in capsys.readouterr().out  # the plain table is printed as always
    err = _err(capsys, ["eval", "--scale", "4", "--set", str(tiny_set), "--degrade", "kernel:area", "--no-timing"])
    assert "only the clean LR is defined at x4" in err


def test_readme_x4_board_is_the_json():
    """The README's x4 board is `markdown_table` of weights/board_x4.json, not typed by hand."""
    root = Path(__file__).resolve().parent.parent
    board = json.loads((root / "weights" / "board_x4.json").read_text())
    assert board["protocol"]["scale"] == 4 and {"set5", "synla_val"} <= set(board["sets"])
    assert ev.markdown_table(board) in (root / "README.md").read_text(encoding="utf-8")
