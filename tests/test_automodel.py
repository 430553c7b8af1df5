"""``--model auto`` outside the window: its rungs for a source, how the network is timed (and what
`upshade info` says of it), ``bench --ladder``, and the commands that refuse auto."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from media import make_clip
from upshade.host import automodel, cli, gltimer, info, paths
from upshade.host.hookparse import load_shader, parse_shader
from upshade.host.ladder import Ladder
from upshade.host.pipeline import Renderer
from upshade.host.video import Decoder, probe

TWO_PASSES = """//!HOOK LUMA
//!BIND HOOKED
//!SAVE A
vec4 hook() { return HOOKED_tex(HOOKED_pos); }

//!HOOK LUMA
//!BIND A
vec4 hook() { return 1.0 - A_tex(A_pos); }
"""


class Ctx:  # what timing_method reads of a context
    def __init__(self, renderer, version_code, extensions=()):
        self.info, self.version_code, self.extensions = {"GL_RENDERER": renderer}, version_code, set(extensions)


def test_rungs_are_the_models_largest_first_in_the_sources_variant():
    video = probe(paths.sample())
    assert automodel.ladder_models(video) == ["L-real", "M-real", "S-real"]   # compressed video: the real variant
    assert automodel.ladder_models() == ["L-clean", "M-clean", "S-clean"]
    rungs = automodel.rungs(video)
    assert [r.name for r in rungs] == ["L-real", "M-real", "S-real", "none"]
    costs = [r.cost for r in rungs]
    assert costs == sorted(costs, reverse=True) and costs[-1] == 0.0
    assert 2.0 < costs[1] / costs[2] < 2.5 and 3.5 < costs[0] / costs[1] < 4.0   # measured: 2.0-2.2, 3.1-3.7
    lad = automodel.new_ladder(video, 25)
    assert lad.rungs[lad.current].name == "M-real" and lad.interval == pytest.approx(0.04)
    labels = [label for label, _ in automodel.entries(video)]
    assert labels == ["upshade_L-real.glsl", "upshade_M-real.glsl", "upshade_S-real.glsl", "bicubic"]
    assert automodel.is_auto(" Auto") and not automodel.is_auto("M") and not automodel.is_auto(None)


@pytest.mark.gl
def test_player_chains_run_each_model_twice_only_beyond_2_2x(gl_ctx, tmp_path):
    """The player's chain for a model (its rungs, and a pinned --model: automodel.model_files) is the
    model's x4 file. Up to 2.2x per side it is the x2 file: the same pixels, the same passes, stage 2
    not even compiled; beyond, the network runs twice (the luma 4x, twice the passes), as `image`'s
    chain (ShaderChain with the sizes) runs it there."""
    from upshade.host.chain import ShaderChain

    for model, make in [(m, f) for (label, f), m in zip(automodel.entries(), automodel.ladder_models())] + \
            [("S-clean", ShaderChain("S-clean", [], False).entries()[0][1])]:
        [sf] = make(gl_ctx)
        assert Path(sf.path) == paths.model_shader(model, gl_ctx, 2), model
    with Decoder(make_clip(tmp_path / "v.mp4", width=64, height=48, frames=2)) as dec:
        frame = next(dec)
    x2 = paths.model_shader("S", gl_ctx, 1)
    n2 = len(load_shader(x2).passes)
    meter = gltimer.NetworkMeter(gl_ctx)
    with Renderer(gl_ctx, automodel.model_files("S", gl_ctx)) as player, Renderer(gl_ctx, [load_shader(x2)]) as once:
        for size, twice in (((128, 96), False), ((140, 105), False), ((141, 106), True), ((160, 120), True)):
            assert (paths.stages_for((64, 48), size) == 2) == twice
            image = ShaderChain("S", [], False)(gl_ctx, None, ((64, 48), size))   # what `image` runs there
            with Renderer(gl_ctx, image) as ref:
                want = ref.read_rgb(ref.render(frame, size))
            meter.attach(player)
            for _ in range(2):                                 # the first render at a size is left out
                got = player.read_rgb(player.render(frame, size))
                meter.rendered(size)
            [(_, passes)] = meter.poll(wait=True)
            assert np.array_equal(got, want), size
            assert automodel.stages_run(player) == (2 if twice else 1) and passes == (2 if twice else 1) * n2
            assert player.last_sizes["LUMA"] == ((256, 192) if twice else (128, 96))
            if not twice:
                assert len(player.programs.compiled) == n2     # stage 2 compiles only once it fires
                assert np.array_equal(got, once.read_rgb(once.render(frame, size)))
            else:
                assert np.abs(got.astype(int) - once.read_rgb(once.render(frame, size))).mean() > 0.2
        assert len(player.programs.compiled) == 2 * n2
    meter.attach(None)
    meter.release()
    assert automodel.stages_note((64, 48), (140, 105)) == "network once (twice beyond 2.2x per side)"
    assert automodel.stages_note((64, 48), (141, 106)) == "network twice (beyond 2.2x per side)"


def test_timing_method_follows_the_renderer():
    method, why = gltimer.timing_method(Ctx("llvmpipe (LLVM 15.0.6, 256 bits)", 450))
    assert method == "cpu" and why.startswith("software renderer")
    assert gltimer.timing_method(Ctx("NVIDIA H100 80GB HBM3/PCIe/SSE2", 460))[0] == "gpu"
    assert gltimer.timing_method(Ctx("Mali-G78", 320, ["GL_ARB_timer_query"]))[0] == "gpu"
    method, why = gltimer.timing_method(Ctx("Mali-G78", 320))   # no timer queries: the CPU's clock
    assert method == "cpu" and why.startswith("no GL timer queries")


@pytest.mark.parametrize("method", ["cpu", "gpu"])
def test_meter_times_the_hook_passes_and_leaves_out_first_renders(gl_ctx, tmp_path, monkeypatch, method):
    monkeypatch.setattr(gltimer, "timing_method", lambda ctx: (method, "test"))
    with Decoder(make_clip(tmp_path / "v.mp4", frames=2)) as dec:
        frame = next(dec)
    meter = gltimer.NetworkMeter(gl_ctx)
    assert meter.label == {"cpu": "CPU time", "gpu": "GPU timer"}[method]
    with Renderer(gl_ctx, [parse_shader(TWO_PASSES, "two.glsl")]) as r:
        meter.attach(r)
        for enabled in (True, True, False, True):
            r.render(frame, (128, 96), enabled=enabled)
            meter.rendered((0, enabled))
        r.render(frame, (256, 192))
        meter.discard()                       # e.g. a screenshot: timed, never reported
        r.render(frame, (128, 96))
        meter.rendered((0, True))
        done = meter.poll(wait=True)
        assert [n for _, n in done] == [2, 2, 2]   # the first render of (0, True) and of (0, False) left out
        assert all(s > 0 for s, _ in done)
        meter.attach(None)
        assert r.pass_timer is None
    meter.release()


@pytest.mark.parametrize("method", ["cpu", "gpu"])
def test_meter_drops_the_unpolled_frames_of_the_chain_it_leaves(gl_ctx, tmp_path, monkeypatch, method):
    """The player polls after presenting; timer queries finish a frame or two late, so the frames of the
    chain just left came back as the new chain's times (to the ladder: a lagging L frame made the model
    it had just stepped down to look too slow)."""
    monkeypatch.setattr(gltimer, "timing_method", lambda ctx: (method, "test"))
    with Decoder(make_clip(tmp_path / "v.mp4", frames=2)) as dec:
        frame = next(dec)
    meter = gltimer.NetworkMeter(gl_ctx)
    one = parse_shader(TWO_PASSES, "two.glsl")
    with Renderer(gl_ctx, [one]) as old, Renderer(gl_ctx, [one, one]) as new:
        meter.attach(old)
        for _ in range(3):
            old.render(frame, (128, 96))
            meter.rendered(("old",))
        meter.attach(new)
        for _ in range(3):
            new.render(frame, (128, 96))
            meter.rendered(("new",))
        assert [n for _, n in meter.poll(wait=True)] == [4, 4]   # the new chain's, its first render left out
        meter.attach(None)
    meter.release()


def test_info_says_how_the_network_is_timed(shared_ctx, capsys, monkeypatch):
    assert cli.main(["info"]) == 0
    row = re.search(r"^network timing +(.*)$", capsys.readouterr().out, re.M).group(1)
    assert row.startswith("CPU time (software renderer") or row.startswith("GPU timer (GL timer queries")
    monkeypatch.setattr(info, "timing_method", lambda ctx: gltimer.timing_method(Ctx("Mali-G78", 320)))
    assert cli.main(["info"]) == 0
    assert re.search(r"^network timing +CPU time \(no GL timer queries", capsys.readouterr().out, re.M)


def test_bench_ladder_measures_every_rung_and_picks_as_the_player(shared_ctx, tmp_path, capsys):
    clip = make_clip(tmp_path / "v.mp4", width=32, height=24, frames=4, fps=50)
    out = tmp_path / "ladder.json"
    assert cli.main(["bench", str(clip), "--ladder", "--output-size", "80x60", "--frames", "3", "--rounds", "1",
                     "--json", str(out)]) == 0
    captured = capsys.readouterr()
    v = paths.choose_variant(probe(clip))[0]
    assert re.search(rf"^upshade: model auto \(L-{v} > M-{v} > S-{v} > none by the frame rate, starting at M-{v}; "
                     rf"{v} variants for h264 at [^;]+; (compute|fragment) passes\), 32x24 -> 80x60$", captured.err, re.M)
    r = json.loads(out.read_text())
    assert [x["rung"] for x in r["rungs"]] == [f"L-{v}", f"M-{v}", f"S-{v}", "none"]
    assert r["output"] == [80, 60] and r["interval_ms"] == pytest.approx(20.0) and r["budget_ms"] == pytest.approx(14)
    ms = [x["network_ms"] for x in r["rungs"]]
    assert ms[0] > ms[2] > 0 and ms[3] == 0.0
    # The pick is the player's ladder settling on these times.
    lad = automodel.new_ladder(probe(clip), 50)
    assert r["pick"] == lad.rungs[lad.settle([m / 1000 for m in ms])].name
    assert re.search(rf"^auto picks {r['pick']} \(last change: ", captured.out, re.M)
    assert re.search(rf"^{r['pick']} .*<- auto$", captured.out, re.M)
    # 80x60 is 2.5x per side: every model ran twice, as the player runs it there (its x4 file); at 2x once.
    once = [len(load_shader(paths.model_shader(m, shared_ctx, 1)).passes) for m in automodel.ladder_models(probe(clip))]
    assert r["network_stages"] == 2 and [x["passes"] for x in r["rungs"]] == [2 * n for n in once] + [0]
    assert "; the network twice (beyond 2.2x per side)" in captured.out
    assert cli.main(["bench", str(clip), "--ladder", "--output-size", "64x48", "--frames", "3", "--rounds", "1",
                     "--json", str(out)]) == 0
    r2 = json.loads(out.read_text())
    assert r2["network_stages"] == 1 and [x["passes"] for x in r2["rungs"]] == once + [0]
    assert "; the network once (twice beyond 2.2x per side)" in capsys.readouterr().out
    assert r2["rungs"][0]["network_ms"] < ms[0]   # L's second stage, at 4x the pixels, is most of its time


@pytest.mark.parametrize("argv, message", [
    (["bench", "--ladder", "--model", "S"], "--ladder measures every shipped model"),
    (["bench", "--output-size", "64x64"], "--output-size goes with --ladder"),
    (["bench", "--model", "auto", "--size", "32x32"], automodel.REFUSED),
    (["image", "{image}", "-o", "{tmp}/out.png", "--model", "auto"], automodel.REFUSED),
    (["upscale", "{video}", "-o", "{tmp}/out.mkv", "--model", "AUTO"], automodel.REFUSED),
])
def test_auto_outside_the_player_is_one_line(shared_ctx, capsys, tmp_path, argv, message):
    """A file has no frame rate to hold: ``--model auto`` is refused in one line (README, Player)."""
    argv = [a.format(image=paths.sample("image"), video=paths.sample(), tmp=tmp_path) for a in argv]
    assert cli.main(argv) == 1
    assert not list(tmp_path.iterdir())
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_ladder_of_a_source_settles_like_its_policy():
    lad = automodel.new_ladder(None, 25)
    assert isinstance(lad, Ladder) and lad.settle([1.0, 1.0, 1.0, 0.0]) == 3


def test_resuming_after_a_pin_judges_from_then_on():
    """Key a: the ladder's counts start over (what it counted before the pin is stale) and frames dropped
    while pinned are not taken as late."""
    from upshade.host.ladder import Rung

    auto = automodel.AutoPlay(Ladder([Rung("M", 2.3), Rung("S", 1.0), Rung("none", 0.0)], 1 / 25, start=1))
    calm = auto.ladder.calm_frames
    calm_frame = ([(0.001, 1)], )
    changes = [auto.frame(*calm_frame, has_network=True, dropped=0, key=(64, 48)) for _ in range(calm - 1)]
    assert changes == [None] * (calm - 1)    # one calm frame short of stepping up to M
    auto.active = False                       # a key 1-9 pinned another chain; 50 frames dropped meanwhile
    auto.resume(dropped=50)
    assert auto.active and auto.frame(*calm_frame, has_network=True, dropped=50, key=(64, 48)) is None
    changes = [auto.frame(*calm_frame, has_network=True, dropped=50, key=(64, 48)) for _ in range(calm + 2)]
    assert [i for i, c in enumerate(changes) if c] == [calm], changes   # 2 settling frames, then calm ones
