"""Training pairs are exactly the protocol's LR/HR; sources, splits and errors."""

from __future__ import annotations

import numpy as np
import pytest

from upshade.host.errors import UpshadeError
from upshade.host.imageio import write_image
from upshade.tools import data as D
from upshade.tools import metrics as Mx


def _folder(tmp_path, sizes, name="imgs", seed=0):
    rng = np.random.default_rng(seed)
    folder = tmp_path / name
    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        # Smooth-ish content so resampling is not trivially a constant.
        base = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
        img = np.repeat(np.repeat(base, 4, 0), 4, 1)[:h, :w]
        img = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        write_image(folder / f"img{i:02d}.png", img)
    return folder


def test_pairs_are_the_protocol_downscale_of_the_crop(tmp_path):
    folder = _folder(tmp_path, [(40, 50), (36, 36), (64, 48)])
    ts = D.load_train_set(str(folder), patch=24)
    sampler = D.PairSampler([ts], [1.0], patch=24)
    crops = sampler.crops(6, np.random.default_rng(5))
    lr, hr = sampler.batch(6, np.random.default_rng(5))  # same RNG stream -> same crops
    assert lr.shape == (6, 1, 12, 12) and hr.shape == (6, 1, 24, 24)
    assert lr.dtype == hr.dtype == np.float32
    for i in range(6):
        want_lr = Mx.imresize_down(crops[i], 2)  # float64 protocol path, uint8-rounded
        np.testing.assert_allclose(lr[i, 0], Mx.rgb_to_luma_full(want_lr), atol=1e-6)
        np.testing.assert_allclose(hr[i, 0], Mx.rgb_to_luma_full(crops[i]), atol=1e-6)
    assert 0.0 <= lr.min() and lr.max() <= 1.0


def test_crops_come_from_the_images_up_to_a_square_symmetry(tmp_path):
    folder = _folder(tmp_path, [(30, 40)])
    ts = D.load_train_set(str(folder), patch=16)
    img = ts.images[0]
    plain = D.PairSampler([ts], [1.0], patch=16, augment=False).crops(4, np.random.default_rng(1))
    windows = np.lib.stride_tricks.sliding_window_view(img, (16, 16, 3))[..., :, :, :].reshape(-1, 16, 16, 3)
    for c in plain:
        assert any(np.array_equal(c, w) for w in windows)
    aug = D.PairSampler([ts], [1.0], patch=16, augment=True).crops(16, np.random.default_rng(2))
    for c in aug:
        variants = [np.rot90(v, k) for v in (c, c[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(v, w) for v in variants for w in windows)


def test_set_weights_and_scale_augmentation(tmp_path):
    a = D.load_train_set(str(_folder(tmp_path, [(32, 32)], "a", seed=1)), patch=16)
    b = D.load_train_set(str(_folder(tmp_path, [(32, 32)], "b", seed=2)), patch=16, scales=(1.0, 0.6, 0.4))
    # 0.4 * 32 = 13 < 16: that derived copy is dropped, the 0.6 one kept.
    assert len(b.images) == 2 and b.images[1].shape == (19, 19, 3)
    only_b = D.PairSampler([a, b], [0.0, 1.0], patch=16, augment=False).crops(8, np.random.default_rng(0))
    wins_a = np.lib.stride_tricks.sliding_window_view(a.images[0], (16, 16, 3)).reshape(-1, 16, 16, 3)
    assert not any(np.array_equal(c, w) for c in only_b for w in wins_a)
    with pytest.raises(UpshadeError, match="bad training-set weights"):
        D.PairSampler([a, b], [0.0, 0.0], patch=16)
    with pytest.raises(UpshadeError, match="not a multiple of the scale"):
        D.PairSampler([a], [1.0], patch=15)


def test_synla_split_is_fixed_and_disjoint(data_dir):
    train = D.resolve_source("synla:train", data_dir)
    val = D.resolve_source("synla:val", data_dir)
    allf = D.resolve_source("synla", data_dir)
    assert len(val) == D.SYNLA_VAL_COUNT and len(train) + len(val) == len(allf)
    assert val == sorted(allf)[-128:] and not set(train) & set(val)
    assert D.source_label("synla:val") == "synla_val" and D.source_label("set5") == "set5"
    with pytest.raises(UpshadeError, match="unknown SYNLA split"):
        D.resolve_source("synla:test", data_dir)
    with pytest.raises(UpshadeError, match="only synla has splits"):
        D.resolve_source("t91:val", data_dir)


def test_val_set_follows_the_protocol(data_dir):
    val = D.load_val_set("set5", data_dir)
    assert [v.name for v in val] == sorted(p.name for p in (data_dir / "set5").glob("*.png"))
    v = val[0]
    hr = Mx.crop_to_multiple(D.read_rgb(data_dir / "set5" / v.name), 2)
    np.testing.assert_array_equal(v.hr_y, Mx.rgb_to_y(hr))
    np.testing.assert_allclose(v.lr_luma[0, 0], Mx.rgb_to_luma_full(Mx.imresize_down(hr, 2)), atol=1e-7)
    assert v.hr_luma.shape[-2:] == (2 * v.lr_luma.shape[-2], 2 * v.lr_luma.shape[-1])


def test_scoring_y_maps_full_range_luma_to_studio_y():
    np.testing.assert_allclose(D.scoring_y(np.array([0.0, 1.0, 1.5, -0.2])), [16, 235, 235, 16])


def test_read_rgb_converts_grey_and_16_bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1) * 20
    write_image(tmp_path / "g.png", grey)
    rgb = D.read_rgb(tmp_path / "g.png")
    assert rgb.shape == (3, 4, 3) and np.array_equal(rgb[..., 1], grey[..., 0])
    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4, 1) * 5000).repeat(3, 2)
    write_image(tmp_path / "d.png", deep)
    got = D.read_rgb(tmp_path / "d.png")
    assert got.dtype == np.uint8 and np.array_equal(got, np.round(deep / 257).astype(np.uint8))


def test_errors_name_the_file(tmp_path):
    with pytest.raises(UpshadeError, match="image folder not found"):
        D.list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UpshadeError, match="empty: no images"):
        D.load_train_set(str(tmp_path / "empty"), patch=16)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage garbage")
    with pytest.raises(UpshadeError, match="broken.png"):
        D.load_train_set(str(bad), patch=16)
    small = _folder(tmp_path, [(40, 40), (20, 30)], "small")
    with pytest.raises(UpshadeError, match=r"img01.png: image 30x20 is smaller than the 32x32 training crop"):
        D.load_train_set(str(small), patch=32)
    with pytest.raises(UpshadeError, match="no training images"):
        D.PairSampler([], [], patch=16)


def test_skimage_source_is_the_bundled_photos():
    try:
        import skimage  # noqa: F401
    except ImportError:
        from conftest import need

        need("scikit-image is not installed (pip install '.[train]')")
    paths = D.resolve_source("skimage")
    assert [p.stem for p in paths] == list(D.SKIMAGE_PHOTOS)
    assert D.source_label("skimage") == "skimage"
    ts = D.load_train_set("skimage", patch=128)
    assert len(ts.images) == len(D.SKIMAGE_PHOTOS)
    assert all(im.ndim == 3 and im.shape[2] == 3 and im.dtype == np.uint8 for im in ts.images)


def test_image_pairs_are_aligned_crops_of_the_whole_image_protocol_lr(tmp_path, torch):
    folder = _folder(tmp_path, [(41, 50), (36, 36)])  # odd height: cropped to a multiple of 2 first
    ts = D.load_train_set(str(folder), patch=16)
    sampler = D.ImagePairSampler([ts], [1.0], patch=16, augment=False)
    lr, hr = sampler.batch(12, np.random.default_rng(3))
    assert tuple(lr.shape) == (12, 1, 8, 8) and tuple(hr.shape) == (12, 1, 16, 16)
    assert lr.dtype == hr.dtype == torch.float32
    whole = []
    for img in ts.images:
        h = Mx.crop_to_multiple(img, 2)
        whole.append((Mx.rgb_to_luma_full(Mx.imresize_down(h, 2)), Mx.rgb_to_luma_full(h)))
    for i in range(12):
        hr_i, lr_i = hr[i, 0].numpy(), lr[i, 0].numpy()
        hits = []
        for lw, hw in whole:
            for y in range(0, hw.shape[0] - 15, 2):
                for x in range(0, hw.shape[1] - 15, 2):
                    if np.array_equal(hw[y : y + 16, x : x + 16], hr_i):
                        hits.append(np.allclose(lw[y // 2 : y // 2 + 8, x // 2 : x // 2 + 8], lr_i, atol=1e-6))
        assert hits and all(hits), f"sample {i}: HR crop not found at an even offset, or its LR is not the image's"


def test_image_pair_symmetries_keep_lr_and_hr_aligned(tmp_path, torch):
    folder = _folder(tmp_path, [(48, 48)])
    ts = D.load_train_set(str(folder), patch=48)  # the crop is the whole image: only the symmetry varies
    plain = D.ImagePairSampler([ts], [1.0], patch=48, augment=False)
    lr0, hr0 = (t[0, 0] for t in plain.batch(1, np.random.default_rng(0)))
    aug = D.ImagePairSampler([ts], [1.0], patch=48)
    lr, hr = aug.batch(64, np.random.default_rng(1))
    seen = set()
    for i in range(64):
        for k in range(8):
            t = lambda a: torch.rot90(a.flip(-1) if k & 4 else a, k & 3, (0, 1))  # noqa: E731
            if torch.equal(t(hr0), hr[i, 0]):
                assert torch.equal(t(lr0), lr[i, 0]), "LR got another symmetry than its HR"
                seen.add(k)
                break
        else:
            raise AssertionError(f"sample {i} is not a symmetry of the image")
    assert len(seen) == 8


def test_image_pairs_follow_set_weights(tmp_path, torch):
    a = D.load_train_set(str(_folder(tmp_path, [(32, 32)], "a", seed=1)), patch=32)
    b = D.load_train_set(str(_folder(tmp_path, [(32, 32)], "b", seed=2)), patch=32)
    sampler = D.ImagePairSampler([a, b], [3.0, 1.0], patch=32, augment=False)
    _, hr = sampler.batch(400, np.random.default_rng(0))
    ref = torch.from_numpy(Mx.rgb_to_luma_full(a.images[0]))
    share_a = float(np.mean([torch.equal(hr[i, 0], ref) for i in range(400)]))
    assert 0.68 < share_a < 0.82
    with pytest.raises(UpshadeError, match="bad training-set weights"):
        D.ImagePairSampler([a, b], [1.0], patch=32)
    with pytest.raises(UpshadeError, match="not a multiple of the scale"):
        D.ImagePairSampler([a], [1.0], patch=31)
