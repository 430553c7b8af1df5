"""`upshade demo`: the default model on the bundled sample, in a window or (without a display) as files."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from upshade.host import demo, paths
from upshade.host.imageio import read_image

pytestmark = [pytest.mark.gl]


def _demo(*args, env=None, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "upshade.host.cli", "demo", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def test_samples_are_bundled_and_small():
    from upshade.host.video import probe

    video, image = paths.sample("video"), paths.sample("image")
    assert video.stat().st_size + image.stat().st_size < 1_500_000
    info = probe(video)
    assert (info.width, info.height) == (640, 360) and 3.0 <= info.duration <= 4.0
    assert info.has_audio and len(info.subtitle_streams) == 1
    assert read_image(image).shape == (360, 640, 3)
    assert "CC-BY 3.0" in (paths.SAMPLES_DIR / "README.md").read_text()


@pytest.mark.slow
def test_without_a_display_it_writes_the_comparison_and_the_clip(tmp_path):
    """No DISPLAY: one note on stderr, then the two files in the current folder, their paths on stdout."""
    from upshade.host.video import probe

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = _demo("--model", "S", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == "upshade: no display here, so the demo writes files instead of opening a window"
    assert re.search(r"^upshade: model S-(clean|real) \(upshade_S(-real)?(_compute|_tiled)?\.glsl, (fragment|compute) passes\), "
                     r"640x360 -> 1280x720$", r.stderr, re.M)
    lines = r.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == [demo.COMPARE_NAME, demo.CLIP_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([demo.COMPARE_NAME, demo.CLIP_NAME])
    clip = probe(tmp_path / demo.CLIP_NAME)
    assert (clip.width, clip.height) == (1280, 720) and clip.has_audio and len(clip.subtitle_streams) == 1
    picture = read_image(tmp_path / demo.COMPARE_NAME)
    # Two columns of 1280 (+ an 8 px gap), each: label, the x2 frame, label, the 4x zoom; an attribution bar.
    assert picture.shape[1] == 2 * 1280 + 8 and picture.shape[0] > 720 + 720
    left, right = picture[:, :1280].astype(int), picture[:, 1288:].astype(int)
    label_h = demo._label("x", 1280).shape[0]
    frame_l, frame_r = left[label_h:label_h + 720], right[label_h:label_h + 720]
    assert np.abs(frame_l - frame_r).mean() > 0.5  # the network's picture differs from bicubic's
    # The labels are drawn: white ink on black in the top bar.
    assert (left[:label_h] == 255).any() and (left[:label_h] == 0).any()


def test_files_go_to_out_dir_and_a_missing_one_is_an_error(tmp_path, capsys):
    from upshade.host import cli

    assert cli.main(["demo", "--files", "--out-dir", str(tmp_path / "nope")]) == 1
    assert capsys.readouterr().err == f"upshade: error: --out-dir {tmp_path / 'nope'}: no such directory\n"


def test_compare_image_layout():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (720, 1280, 3), np.uint8)
    b = 255 - a
    pic = demo.compare_image(a, b, "model")
    label_h = demo._label("x", 1280).shape[0]
    x, y, w, h = demo.CROP
    # the zoom under each frame is its crop, each pixel repeated ZOOM x ZOOM times
    zoom_top = label_h + 720 + demo._label("x", 1280, 2).shape[0]  # label, frame, zoom label
    zl = pic[zoom_top:, :1280]
    zl = zl[: h * demo.ZOOM, : w * demo.ZOOM]
    assert np.array_equal(zl[:: demo.ZOOM, :: demo.ZOOM][3:-3, 3:-3], a[y:y + h, x:x + w][3:-3, 3:-3])
    inner = pic[label_h + y + 3:label_h + y + h - 3, 1288 + x + 3:1288 + x + w - 3]
    assert np.array_equal(inner, b[y + 3:y + h - 3, x + 3:x + w - 3])


@pytest.mark.display
@pytest.mark.slow
def test_with_a_display_it_plays_the_sample_in_compare_mode(xdisplay, tmp_path):
    r = _demo("--loops", "1", "--no-audio", "--model", "S", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"upshade: model S-(clean|real) \(upshade_S(-real)?_x4(_compute)?\.glsl, (fragment|compute) passes\), "
                        r"640x360 -> \d+x\d+, network (once \(twice|twice \() beyond 2\.2x per side\), "
                        r"compare mode: bicubic left, network right "
                        r"\(drag the divider; q quits\)\n", r.stderr), r.stderr
    assert list(tmp_path.iterdir()) == []  # a window, no files
