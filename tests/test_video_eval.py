"""upshade eval-video: a clip degraded like a stream, scored per method with flicker."""

from __future__ import annotations

import json

import numpy as np
import pytest

from upshade.host import cli
from upshade.tools import video_eval as V

from media import make_clip


@pytest.fixture
def clip(tmp_path):
    return make_clip(tmp_path / "c.mkv", width=96, height=64, frames=8, pattern="patches", lossless=True)


def test_flicker_and_psnr_measure_what_they_say():
    rng = np.random.default_rng(0)
    hr = [np.clip(rng.normal(128, 30, (20, 20, 3)), 0, 255).astype(np.uint8) for _ in range(4)]
    hr_y = [V._shaved_y(f) for f in hr]
    perfect = V.score_clip(hr, hr_y)
    assert perfect.psnr >= 99 and perfect.flicker >= 99
    # A constant offset costs PSNR but adds no flicker; an alternating one adds both.
    shifted = [np.clip(f.astype(int) + 4, 0, 255).astype(np.uint8) for f in hr]
    wobble = [np.clip(f.astype(int) + (4 if i % 2 else -4), 0, 255).astype(np.uint8) for i, f in enumerate(hr)]
    s, w = V.score_clip(shifted, hr_y), V.score_clip(wobble, hr_y)
    assert s.psnr < 40 and s.flicker > 50
    assert w.flicker < s.flicker - 10


def test_degrade_clip_reports_bits_and_keeps_frame_order(clip):
    hr = V.read_clip(clip, 0)
    assert len(hr) == 8 and hr[0].shape == (64, 96, 3)
    lo, lo_bpp = V.degrade_clip(hr, "bicubic", 40)
    hi, hi_bpp = V.degrade_clip(hr, "bicubic", 10)
    assert hi_bpp > lo_bpp > 0
    assert len(hi) == 8 and hi[0].shape == (32, 48, 3)
    # Frame t decodes to the downscale of frame t (the patches pattern moves between frames).
    for t in (1, 5):
        assert np.abs(hi[t].astype(int) - V.G.swscale_down(hr[t], "bicubic")).mean() < \
            np.abs(hi[t].astype(int) - V.G.swscale_down(hr[t - 1], "bicubic")).mean()


def test_cli_scores_methods_and_writes_json(clip, shared_ctx, tmp_path, capsys):
    out = tmp_path / "v.json"
    assert cli.main(["eval-video", str(clip), "--crf", "20", "--model", "S", "--json", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "CRF 20" in text and "bicubic" in text and "flicker" in text
    res = json.loads(out.read_text())
    rows = res["crf"]["20"]["methods"]
    assert set(rows) == {"bicubic", "S"} and rows["bicubic"]["gain"] == 0.0
    assert rows["S"]["psnr"] > 20 and res["crf"]["20"]["bits_per_pixel"] > 0


@pytest.mark.parametrize("argv,msg", [(["--crf", "60"], "must be 0-51"), (["--frames", "-1"], "must be >= 0")])
def test_bad_options_are_one_line(clip, argv, msg, capsys):
    assert cli.main(["eval-video", str(clip), *argv]) != 0
    assert msg in capsys.readouterr().err


def test_unreadable_clip_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video" * 100)
    assert cli.main(["eval-video", str(bad), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1
