"""The evaluation protocol: MATLAB imresize, BT.601 Y, PSNR/SSIM, against references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from upshade.tools import metrics as M


def _matlab_imresize_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """A direct, loop-by-loop transcription of MATLAB's imresize (bicubic), independent of metrics.py."""

    def cubic(x):
        ax = abs(x)
        if ax <= 1:
            return 1.5 * ax**3 - 2.5 * ax**2 + 1
        if ax <= 2:
            return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
        return 0.0

    def resize_dim(a, out_len):  # along axis 0
        in_len = a.shape[0]
        s = out_len / in_len
        width = 4 / s if s < 1 else 4
        res = np.zeros((out_len,) + a.shape[1:])
        for x in range(1, out_len + 1):
            u = x / s + 0.5 * (1 - 1 / s)
            left = math.floor(u - width / 2)
            ws, idx = [], []
            for j in range(left, left + math.ceil(width) + 2):
                d = u - j
                ws.append(s * cubic(s * d) if s < 1 else cubic(d))
                k = j - 1  # 0-based, then symmetric reflection
                while k < 0 or k >= in_len:
                    k = -k - 1 if k < 0 else 2 * in_len - k - 1
                idx.append(k)
            tot = sum(ws)
            for w, k in zip(ws, idx):
                res[x - 1] += (w / tot) * a[k]
        return res

    out = resize_dim(img.astype(np.float64), out_h)
    out = resize_dim(out.swapaxes(0, 1), out_w).swapaxes(0, 1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape,out", [((12, 10, 3), (6, 5)), ((9, 14, 3), (18, 28)), ((7, 8), (3, 4))])
def test_imresize_matches_matlab_transcription(shape, out):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    got = M.imresize(img, out)
    want = _matlab_imresize_reference(img, *out)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_resize_matrix_rows_sum_to_one_and_keep_constants():
    for n_in, n_out in [(128, 64), (64, 128), (37, 18)]:
        m = M.resize_matrix(n_in, n_out)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    flat = np.full((20, 30, 3), 77, np.uint8)
    np.testing.assert_array_equal(M.imresize_down(flat, 2), np.full((10, 15, 3), 77, np.uint8))


def test_float32_batch_path_agrees_with_float64():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    fast = M.imresize_down(batch, 2, dtype=np.float32)
    exact = np.stack([M.imresize_down(b, 2) for b in batch])
    # Only exact .5 ties may round differently, by one code value.
    assert np.abs(fast.astype(int) - exact).max() <= 1
    assert np.mean(fast != exact) < 1e-3


def test_imresize_down_rejects_non_multiple():
    with pytest.raises(ValueError, match="not a multiple"):
        M.imresize_down(np.zeros((11, 10, 3), np.uint8), 2)


def test_crop_to_multiple_and_as_rgb():
    img = np.zeros((11, 13, 3), np.uint8)
    assert M.crop_to_multiple(img, 2).shape == (10, 12, 3)
    assert M.as_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert M.as_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)


def test_rgb_to_y_range_and_full_range_relation():
    assert M.rgb_to_y(np.array([0, 0, 0])) == pytest.approx(16.0)
    assert M.rgb_to_y(np.array([255, 255, 255])) == pytest.approx(235.0)
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3))
    np.testing.assert_allclose(M.rgb_to_y(rgb), 16 + 219 * M.rgb_to_luma_full(rgb, np.float64), atol=1e-9)


def test_psnr_y_known_values_and_inputs():
    hr = np.full((20, 20), 100.0)
    sr = hr + 5.0  # MSE 25
    assert M.psnr_y(sr, hr, shave=2) == pytest.approx(10 * math.log10(255**2 / 25))
    assert M.psnr_y(hr, hr, shave=0) == math.inf
    # Errors only in the shaved border do not count.
    sr2 = hr.copy()
    sr2[0, :] = 0
    assert M.psnr_y(sr2, hr, shave=2) == math.inf
    rgb = np.random.default_rng(2).integers(0, 256, (16, 16, 3)).astype(np.uint8)
    assert M.psnr_y(rgb, rgb) == math.inf
    with pytest.raises(ValueError, match="differ in size"):
        M.psnr_y(np.zeros((10, 10)), np.zeros((10, 12)))


def test_ssim_properties():
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 255, (40, 40))
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255)
    assert M.ssim(a, a) == pytest.approx(1.0)
    s = M.ssim(a, b)
    assert 0 < s < 1
    assert M.ssim(b, a) == pytest.approx(s)
    assert M.ssim_y(b, a, shave=2) != pytest.approx(s)  # shaving changes the window set
    with pytest.raises(ValueError, match="smaller than the 11x11"):
        M.ssim(np.zeros((8, 8)), np.zeros((8, 8)))


def test_bicubic_set5_reference(data_dir):
    """README: a careful implementation of the protocol gives bicubic Set5 ~= 33.68 dB."""
    from upshade.tools.data import read_rgb

    files = sorted((data_dir / "set5").glob("*.png"))
    assert len(files) == 5
    ps, ss = [], []
    for f in files:
        hr = M.crop_to_multiple(read_rgb(f), 2)
        sr = M.imresize_up(M.imresize_down(hr, 2), 2)
        ps.append(M.psnr_y(sr, hr, 2))
        ss.append(M.ssim_y(sr, hr, 2))
    assert np.mean(ps) == pytest.approx(33.68, abs=0.01)
    assert np.mean(ss) == pytest.approx(0.930, abs=0.002)  # literature: 0.9299
