"""Progress: a redrawn bar only on a terminal; in a log, whole lines every few seconds and a summary."""

from __future__ import annotations

import io

import pytest

from upshade.host.progress import LineProgress, progress


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_lines_every_interval_and_a_summary():
    clock, log = Clock(), io.StringIO()
    bar = LineProgress(total=40, desc="clip.mkv", unit="frame", file=log, interval=5.0, clock=clock)
    with bar:
        for _ in range(40):
            clock.t += 0.5
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    # 20 s of work at one line per 5 s, then the summary
    assert lines[:4] == [
        "clip.mkv: 10/40 frames (25%), 2 frame/s, 5 s, ~15 s left",
        "clip.mkv: 20/40 frames (50%), 2 frame/s, 10 s, ~10 s left",
        "clip.mkv: 30/40 frames (75%), 2 frame/s, 15 s, ~5 s left",
        "clip.mkv: 40/40 frames (100%), 2 frame/s, 20 s",
    ]
    assert lines[4:] == ["clip.mkv: 40/40 frames in 20 s (2 frame/s)"]


def test_no_summary_after_an_error_and_none_when_disabled():
    log = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with LineProgress(total=3, file=log, interval=60.0) as bar:
            bar.update(1)
            raise KeyboardInterrupt
    assert log.getvalue() == ""
    with LineProgress(total=3, file=log, disable=True) as bar:
        bar.update(3)
    assert log.getvalue() == ""


def test_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    from tqdm import tqdm

    with progress(total=3, file=Tty()) as bar:
        assert isinstance(bar, tqdm)
    with progress(total=3, file=io.StringIO()) as bar:
        assert isinstance(bar, LineProgress)


def test_write_prints_messages_even_when_progress_is_off():
    log = io.StringIO()
    with LineProgress(total=3, file=log, disable=True) as bar:
        bar.write("epoch 1/3: done")
    assert log.getvalue() == "epoch 1/3: done\n"


def test_training_logs_lines_not_redraws(torch, tmp_path, capsys):
    """`upshade train 2>log`: epoch lines and progress lines, never a carriage return."""
    import numpy as np

    from upshade.host.imageio import write_image
    from upshade.tools import train as T

    for name in ("train", "val"):
        (tmp_path / name).mkdir()
        write_image(tmp_path / name / "a.png", np.random.default_rng(0).integers(0, 255, (32, 32, 3)).astype(np.uint8))
    cfg = T.TrainConfig(size="S", model={"blocks": 1, "width": 2}, train_sets={str(tmp_path / "train"): 1.0},
                        val_sets=[str(tmp_path / "val")], select_on="val", patch=16, batch=2,
                        steps_per_epoch=2, epochs=2).validate()
    T.train(cfg, tmp_path / "run", threads=1, progress=True)
    out = capsys.readouterr()
    assert "\r" not in out.err + out.out
    assert "epoch 2/2" in out.err + out.out
