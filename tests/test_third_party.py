"""A real community shader, unmodified: Anime4K ModeA (from the anime4k-python package) via `upshade image`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.imageio import read_image, write_image

from conftest import need

pytestmark = [pytest.mark.gl, pytest.mark.slow]


def anime4k_path() -> Path:
    try:
        import anime4k_python
    except ImportError:
        need("anime4k-python is not installed (pip install '.[test]')")
    p = Path(anime4k_python.__file__).parent / "shaders" / "Anime4K_ModeA.glsl"
    if not p.is_file():
        need(f"{p} is missing from the anime4k-python package")
    return p


def y_psnr(a: np.ndarray, b: np.ndarray, shave: int = 2) -> float:
    def y(img):
        img = img.astype(np.float64)
        return 16 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255
    d = (y(a) - y(b))[shave:-shave, shave:-shave]
    return 10 * np.log10(255**2 / np.mean(d**2))


def sample_frame() -> np.ndarray:
    from upshade.host.paths import sample

    return read_image(sample("image"))  # the bundled Big Buck Bunny frame


def line_art(n: int = 128, seed: int = 0) -> np.ndarray:
    """Anime-style line art, ModeA's domain: flat discs with dark outlines and dark strokes, drawn 4x
    supersampled and box-averaged (anti-aliased edges), n x n x 3 uint8."""
    rng = np.random.default_rng(seed)
    ss = 4
    yy, xx = (np.mgrid[0:n * ss, 0:n * ss] + 0.5) / ss
    img = np.empty((n * ss, n * ss, 3))
    img[:] = rng.integers(150, 250, 3)
    for _ in range(6):
        cx, cy, r = *rng.uniform(0, n, 2), rng.uniform(10, 40)
        d = np.hypot(xx - cx, yy - cy)
        img[d < r] = rng.integers(60, 250, 3)
        img[np.abs(d - r) < rng.uniform(0.8, 2.0)] = 20
    for _ in range(5):
        x0, y0, x1, y1 = rng.uniform(0, n, 4)
        t = np.clip(((xx - x0) * (x1 - x0) + (yy - y0) * (y1 - y0)) / ((x1 - x0) ** 2 + (y1 - y0) ** 2), 0, 1)
        img[np.hypot(xx - (x0 + t * (x1 - x0)), yy - (y0 + t * (y1 - y0))) < rng.uniform(0.7, 1.8)] = 15
    return np.rint(img.reshape(n, ss, n, ss, 3).mean(axis=(1, 3))).astype(np.uint8)


def test_anime4k_mode_a(gl_ctx, tmp_path):
    hr = line_art(128, seed=0)
    # LR by 2x2 box averaging (independent of the renderer's own scaler).
    # ModeA's Restore CNN sharpens for anime line art (on photos and soft 3D renders it costs PSNR:
    # measured, Set14 crops sit 1-2 dB under bicubic); on line art it beats nearest-neighbour by
    # ~5.8 dB (and bicubic by ~3.3 dB).
    lr = np.rint(hr.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
    src, out = tmp_path / "lr.png", tmp_path / "sr.png"
    write_image(src, lr)
    assert cli.main(["image", str(src), "-o", str(out), "--shader", str(anime4k_path())]) == 0
    sr = read_image(out)
    assert sr.shape == (128, 128, 3) and sr.dtype == np.uint8
    nearest = lr.repeat(2, axis=0).repeat(2, axis=1)
    p_sr, p_nn = y_psnr(sr, hr), y_psnr(nearest, hr)
    assert p_sr > p_nn + 3.0, (p_sr, p_nn)


def test_anime4k_runs_its_cnn(gl_ctx):
    """The x2 CNN passes (gated by WHEN on OUTPUT/MAIN sizes) actually fire and double MAIN."""
    from upshade.host.hookparse import load_shader
    from upshade.host.imageio import image_to_frame
    from upshade.host.pipeline import Renderer

    lr = np.ascontiguousarray(sample_frame()[40:88, 200:248, :3])
    with Renderer(gl_ctx, [load_shader(anime4k_path())]) as r:
        out = r.read_rgb(r.render(image_to_frame(lr), (96, 96)), np.float32)
        sizes = r.last_sizes
        assert sizes["conv2d_last_tf"] == (48, 48)
        assert sizes["MAIN"] == (96, 96)
        assert np.isfinite(out).all() and out.shape == (96, 96, 3)
        r.render(image_to_frame(lr), (50, 50))  # 1.04x: the WHEN conditions skip the upscale CNN
        assert r.last_sizes["MAIN"] == (48, 48)
        assert "conv2d_last_tf" not in r.last_sizes
