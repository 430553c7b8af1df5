"""Real-world degradations: protocol specs, kernels with phase, codec round trips, training banks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from upshade.host.errors import UpshadeError
from upshade.tools import bank as B
from upshade.tools import degrade as G
from upshade.tools.metrics import imresize_down, psnr


def _image(h=96, w=128, seed=0):
    """Smooth gradients plus a few hard edges: compressible but not trivial."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x + y) * 127 // (h + w))], -1).astype(np.float64)
    for _ in range(6):
        y0, x0 = rng.integers(0, h - 16), rng.integers(0, w - 16)
        img[y0:y0 + 12, x0:x0 + 12] = rng.integers(0, 256, 3)
    return img.astype(np.uint8)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSHADE_CACHE", str(tmp_path / "cache"))


# ---------------------------------------------------------------- specs


@pytest.mark.parametrize("text,name", [("clean", "clean"), ("x264:23", "x264:23"), (" X264:0 ", "x264:0"),
                                       ("kernel:area", "kernel:area"), ("kernel:LANCZOS", "kernel:lanczos")])
def test_specs_parse(text, name):
    assert G.parse_spec(text).name == name


@pytest.mark.parametrize("text,msg", [("x264:52", "CRF must be"), ("x264:2.5", "CRF must be"), ("x264:", "expected"),
                                      ("kernel:nearest", "unknown kernel 'nearest'"), ("jpeg:90", "expected"),
                                      ("clean:1", "expected"), ("", "expected")])
def test_bad_specs_are_one_clear_error(text, msg):
    with pytest.raises(UpshadeError, match=msg):
        G.parse_spec(text)


def test_parse_specs_keeps_order_and_drops_repeats():
    assert [s.name for s in G.parse_specs(["x264:28", "clean", "x264:28"])] == ["x264:28", "clean"]


def test_protocol_degradations():
    hr = _image()
    assert np.array_equal(G.degrade(hr, G.parse_spec("clean")), imresize_down(hr, 2))
    lrs = {s: G.degrade(hr, G.parse_spec(s)) for s in ("x264:18", "x264:40", "kernel:area", "kernel:bilinear")}
    for lr in lrs.values():
        assert lr.shape == (48, 64, 3) and lr.dtype == np.uint8
    # Area on a 2x2-constant image is exact averaging: blocks survive unchanged.
    blocks = np.repeat(np.repeat(_image(48, 64, 3), 2, 0), 2, 1)
    assert np.abs(G.degrade(blocks, G.parse_spec("kernel:area")).astype(int) - _image(48, 64, 3)).max() <= 1
    clean = imresize_down(hr, 2)
    # Stronger compression loses more; both stay recognisably the image.
    assert psnr(lrs["x264:18"], clean) > psnr(lrs["x264:40"], clean) > 22
    # Deterministic: the same LR twice.
    assert np.array_equal(G.degrade(hr, G.parse_spec("x264:40")), lrs["x264:40"])
    with pytest.raises(UpshadeError, match="multiple of 4"):
        G.degrade(hr[:94], G.parse_spec("clean"))


def test_hevc_refuses_pictures_it_cannot_encode_safely():
    with pytest.raises(UpshadeError, match="too small"):
        G.codec_roundtrip([_image(48, 96)], "hevc", 30)


def test_bank_sends_small_clips_to_h264():
    # A 100x100 image leaves HEVC no 64x64 LR frame: every clip must be H.264.
    bank = B.build_bank([_image(100, 100, s) for s in range(4)],
                        _small_cfg(share={"codec": 1}, codecs={"hevc": 1}, frame=96), "t")
    assert {r["codec"] for r in bank.records} == {"h264"}


def test_missing_encoder_is_named(monkeypatch):
    import av

    monkeypatch.setattr(av, "codecs_available", set(av.codecs_available) - {"libx264"})
    with pytest.raises(UpshadeError, match="no libx264 encoder"):
        G.degrade(_image(), G.parse_spec("x264:23"))


# ---------------------------------------------------------------- kernels


@pytest.mark.parametrize("kernel,param", [("cubic", -0.5), ("cubic", -0.9), ("mitchell", 0), ("bspline", 0),
                                          ("triangle", 0), ("box", 0), ("lanczos", 3), ("gauss", 0.5)])
def test_kernel_matrices_preserve_flat_fields(kernel, param):
    for phase in (0.0, 0.25, -0.1875):
        m = G.kernel_matrix(40, kernel, param, phase)
        assert m.shape == (20, 40)
        assert np.allclose(m.sum(axis=1), 1.0)


def test_cubic_at_phase_zero_is_matlab_and_phase_shifts_the_grid():
    hr = _image()
    assert np.abs(G.kernel_down(hr, "cubic", -0.5).astype(int) - imresize_down(hr, 2).astype(int)).max() <= 1
    ramp = np.tile(np.arange(0, 256, 2, dtype=np.uint8)[None, :, None], (8, 1, 3))  # slope 2 per HR pixel
    base = G.kernel_down(ramp, "triangle").astype(float)
    shifted = G.kernel_down(ramp, "triangle", phase=(0.0, 0.25)).astype(float)
    # A quarter LR pixel = half an HR pixel = +1 code on this ramp, away from the mirrored borders.
    assert np.allclose((shifted - base)[:, 4:-4], 1.0, atol=0.51)


def test_box_is_two_by_two_average():
    img = _image(32, 32, 5).astype(np.float64)
    want = img.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.abs(G.kernel_down(img.astype(np.uint8), "box").astype(float) - want).max() <= 0.5


# ---------------------------------------------------------------- codecs


def test_codec_round_trip_keeps_frames_in_order():
    frames = [np.roll(_image(64, 64, 1), 3 * i, axis=1) for i in range(6)]
    for codec in ("h264", "hevc"):
        out = G.codec_roundtrip(frames, codec, 12, preset="veryfast")
        assert len(out) == 6
        for f, o in zip(frames, out):
            assert o.shape == f.shape
            # Each decoded frame matches its own source far better than its neighbour's.
            assert psnr(o, f) > 22  # 4:2:0 chroma bounds RGB PSNR on saturated colours
        assert psnr(out[2], frames[2]) > psnr(out[2], frames[3]) + 5


# ---------------------------------------------------------------- banks


def _small_cfg(**kw):
    return B.BankConfig(**{"clips_per_image": 4, "frame": 48, "clip_frames": 4, "keep_frames": 2,
                           "presets": ["ultrafast"], **kw}).validate()


def test_bank_is_reproducible_aligned_and_mixed():
    images = [_image(96, 128, s) for s in range(3)]
    cfg = _small_cfg(share={"clean": 1, "kernel": 1, "codec": 2})
    a = B.build_bank(images, cfg, "t")
    b = B.build_bank(images, cfg, "t")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a.hr + a.lr, b.hr + b.lr))
    assert a.records == b.records
    assert set(a.category.tolist()) == {0, 1, 2}
    for hr, lr, cat, rec in zip(a.hr, a.lr, a.category, a.records):
        assert hr.dtype == lr.dtype == np.uint8 and hr.shape == (2 * lr.shape[0], 2 * lr.shape[1])
        if B.CATEGORIES[cat] == "codec":
            assert rec["codec"] in G.CODECS and cfg.crf[rec["codec"]][0] <= rec["crf"] <= cfg.crf[rec["codec"]][1]
            assert hr.shape[0] <= 48 and hr.shape[1] <= 48
        # The LR is a downscale of this very HR (aligned), not of a neighbouring window.
        up = np.repeat(np.repeat(lr.astype(float), 2, 0), 2, 1)
        moved = np.roll(up, 6, axis=1)
        assert np.mean(np.abs(up - hr)) < np.mean(np.abs(moved - hr))
    other = B.build_bank(images, _small_cfg(seed=1, share={"clean": 1, "kernel": 1, "codec": 2}), "t")
    assert other.records != a.records


def test_bank_cache_round_trip_and_refusals(tmp_path):
    images = [_image(64, 64, 2)]
    cfg = _small_cfg()
    bank = B.build_bank(images, cfg, "t")
    path = tmp_path / "b.npz"
    B.save_bank(bank, path, "abc", cfg)
    back = B.load_bank(path, "abc")
    assert back.records == bank.records and all(np.array_equal(x, y) for x, y in zip(back.hr, bank.hr))
    with pytest.raises(UpshadeError, match="another config"):
        B.load_bank(path, "xyz")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UpshadeError, match="unreadable bank cache"):
        B.load_bank(path, "abc")


def test_bank_config_errors():
    with pytest.raises(UpshadeError, match="unknown field"):
        B.BankConfig.from_dict({"frames": 3})
    with pytest.raises(UpshadeError, match="multiple of 4"):
        B.BankConfig.from_dict({"frame": 50})
    with pytest.raises(UpshadeError, match="size bound"):
        B.build_bank([_image(96, 96, s) for s in range(3)], _small_cfg(max_mb=0), "t")


def test_bank_for_caches_by_config(tmp_path):
    from upshade.tools.data import TrainSet

    img = _image(64, 64, 4)
    f = tmp_path / "a.png"
    f.write_bytes(b"x")  # only its name and size enter the key
    ts = TrainSet("toy", [img], [f])
    first = B.bank_for(ts, _small_cfg())
    files = list(B.cache_dir().glob("toy-*.npz"))
    assert len(files) == 1
    again = B.bank_for(ts, _small_cfg())
    assert again.records == first.records
    B.bank_for(ts, _small_cfg(seed=5))
    assert len(list(B.cache_dir().glob("toy-*.npz"))) == 2
    meta = json.loads(bytes(np.load(files[0])["meta"]).decode())
    assert meta["config"]["frame"] == 48


def test_bank_sampler_crops_are_aligned_and_mix_is_checked(torch):
    from upshade.tools import data as D

    bank = B.build_bank([_image(96, 96, s) for s in range(2)], _small_cfg(), "t")
    sampler = D.BankPairSampler([bank], [1.0], {"clean": 1, "kernel": 1, "codec": 1}, patch=16, augment=False)
    lr, hr = sampler.batch(32, np.random.default_rng(0))
    assert lr.shape == (32, 1, 8, 8) and hr.shape == (32, 1, 16, 16)
    assert 0.0 <= float(lr.min()) and float(hr.max()) <= 1.0
    # Every LR crop is the 2x2 neighbourhood of its HR crop (crops start on even pixels).
    pooled = torch.nn.functional.avg_pool2d(hr, 2)
    assert float((pooled - lr).abs().mean()) < 0.05
    only_clean = B.build_bank([_image(96, 96, 7)], _small_cfg(share={"clean": 1}), "c")
    with pytest.raises(UpshadeError, match="no bank has codec frames"):
        D.BankPairSampler([only_clean], [1.0], {"clean": 1, "codec": 1}, patch=16)
    # A key one bank lacks gives its share to that bank's other keys; the other bank still serves it.
    both = D.BankPairSampler([only_clean, bank], [1.0, 1.0], {"clean": 1, "codec": 1}, patch=16)
    assert abs(both.probs.sum() - 1.0) < 1e-9
    with pytest.raises(UpshadeError, match="bank_mix"):
        D.BankPairSampler([only_clean], [1.0], {"noisy": 1}, patch=16)


def test_training_on_banks_with_degraded_validation(torch, tmp_path):
    from upshade.host.imageio import write_image
    from upshade.tools import train as T

    for name, n in (("train", 2), ("val", 2)):
        (tmp_path / name).mkdir()
        for i in range(n):
            write_image(tmp_path / name / f"{i}.png", _image(64, 64, 10 * n + i))
    cfg = T.TrainConfig(
        size="S", model={"blocks": 2, "width": 2}, train_sets={str(tmp_path / "train"): 1.0},
        val_sets=[str(tmp_path / "val")], select_on="val", patch=16, batch=4, steps_per_epoch=2, epochs=2,
        loss="l1", lr=1e-2, pairs="bank", bank={"clips_per_image": 2, "frame": 32, "presets": ["ultrafast"], "share": {"codec": 1}},
        bank_mix={"codec": 1},
        val_specs=["clean", "x264:30"], select_mix={"val@x264:30": 1.0},
    ).validate()
    ckpt = T.train(cfg, tmp_path / "run", threads=1, progress=False)
    rec = ckpt["history"][-1]
    assert {"val_psnr", "val@x264:30_psnr", "select_score"} <= set(rec)
    assert rec["select_score"] == rec["val@x264:30_psnr"]
    best = max(ckpt["history"], key=lambda h: h["val@x264:30_psnr"])
    assert ckpt["metrics"]["epoch"] == best["epoch"]
    with pytest.raises(UpshadeError, match="select_mix names"):
        T.TrainConfig(**{**cfg.to_dict(), "select_mix": {"val@x264:23": 1}}).validate()
    with pytest.raises(UpshadeError, match="must include clean"):
        T.TrainConfig(**{**cfg.to_dict(), "val_specs": ["x264:30"], "select_mix": {}}).validate()


def test_bank_mix_weighs_single_kernels():
    from upshade.tools import data as D

    bank = B.build_bank([_image(96, 96, s) for s in range(6)], _small_cfg(share={"kernel": 1}), "k")
    kernels = [r["kernel"] for r in bank.records]
    target = max(set(kernels), key=kernels.count)
    pairs = D.bank_pairs([bank], [1.0], {f"kernel:{target}": 3, "kernel": 1}, patch=16)
    by_kernel = {}
    for (hr, lr, w) in pairs:
        idx = next(i for i, h in enumerate(bank.hr) if h is hr)
        by_kernel[bank.records[idx]["kernel"]] = by_kernel.get(bank.records[idx]["kernel"], 0.0) + w
    assert abs(by_kernel[target] - 0.75) < 1e-9 and abs(sum(by_kernel.values()) - 1.0) < 1e-9
    with pytest.raises(UpshadeError, match="unknown kernel:nearest"):
        D.check_bank_mix({"kernel:nearest": 1})
    with pytest.raises(UpshadeError, match="bank_mix"):
        D.check_bank_mix({"clean": -1, "codec": 2})
