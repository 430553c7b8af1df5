"""upshade train: tiny runs, exact resume, outputs, losses (content loss with a random VGG), errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from upshade.host import cli
from upshade.host.errors import UpshadeError
from upshade.host.imageio import write_image


@pytest.fixture(scope="module")
def T(torch):
    from upshade.tools import train

    return train


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for name, n in (("train", 3), ("val", 2)):
        (root / name).mkdir()
        for i in range(n):
            base = rng.integers(0, 256, (9, 9, 3)).astype(np.uint8)
            img = np.repeat(np.repeat(base, 4, 0), 4, 1)[:34, :34]
            write_image(root / name / f"{i}.png", img)
    return root


def _cfg(T, folders, **kw):
    base = {
        "size": "S",
        "model": {"blocks": 2, "width": 2},
        "train_sets": {str(folders / "train"): 1.0},
        "val_sets": [str(folders / "val")],
        "select_on": "val",
        "patch": 16,
        "batch": 4,
        "steps_per_epoch": 3,
        "epochs": 2,
        "loss": "l1",
        "lr": 1e-2,
    }
    base.update(kw)
    return T.TrainConfig(**base).validate()


def test_two_epochs_then_resume_matches_an_uninterrupted_run(torch, T, folders, tmp_path):
    for schedule in ("plateau", "cosine"):
        cfg = _cfg(T, folders, schedule=schedule, plateau_patience=0)
        full = T.train(cfg, tmp_path / f"full_{schedule}", threads=1, progress=False)
        part = tmp_path / f"part_{schedule}"
        T.train(cfg, part, threads=1, stop_after=1, progress=False)
        first = torch.load(part / "last.pt", weights_only=True)
        assert first["epoch"] == 1
        resumed = T.train(cfg, part, resume=True, threads=1, progress=False)
        assert resumed["epoch"] == full["epoch"] == 2
        for k in full["model"]:
            assert torch.equal(full["model"][k], resumed["model"][k]), k
        strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
        assert strip(resumed["history"]) == strip(full["history"])
        assert resumed["optimizer"]["state"][0]["step"] == full["optimizer"]["state"][0]["step"] == 6
        # The model really trained (weights moved away from the seed's init).
        assert not torch.equal(first["model"]["final.weight"], full["model"]["final.weight"])


def test_outputs_and_checkpoint_contents(torch, T, folders, tmp_path):
    from upshade.tools.model import load_checkpoint

    out = tmp_path / "run"
    ckpt = T.train(_cfg(T, folders), out, threads=1, progress=False)
    assert set(ckpt) == {"config", "train_config", "model", "optimizer", "scheduler", "epoch", "history", "metrics", "rng"}
    assert len(ckpt["history"]) == 2 and {"train_loss", "val_loss", "lr", "val_psnr", "val_ssim"} <= set(ckpt["history"][0])
    best = torch.load(out / "best.pt", weights_only=True)
    assert "optimizer" not in best and best["metrics"]["val_psnr"] == max(h["val_psnr"] for h in ckpt["history"])
    model, _ = load_checkpoint(out / "best.pt")
    assert (model.cfg.blocks, model.cfg.width) == (2, 2)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["epochs_done"] == 2 and summary["best"] == best["metrics"]
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*part*"))  # no temporary files left behind
    # shipped form: what weights/ holds
    assert set(T.shipped_checkpoint(ckpt)) == {"config", "train_config", "model", "epoch", "history", "metrics"}


def test_resume_refuses_a_different_config_and_missing_runs(T, folders, tmp_path):
    out = tmp_path / "run"
    T.train(_cfg(T, folders, epochs=1), out, threads=1, progress=False)
    with pytest.raises(UpshadeError, match=r"already holds a run"):
        T.train(_cfg(T, folders, epochs=1), out, threads=1, progress=False)
    with pytest.raises(UpshadeError, match=r"cannot resume with a different config \(lr: 0.01 -> 0.001\)"):
        T.train(_cfg(T, folders, lr=1e-3, epochs=2), out, resume=True, threads=1, progress=False)
    # A plateau run may be extended; a cosine one may not (its schedule depends on the length).
    T.train(_cfg(T, folders, epochs=2), out, resume=True, threads=1, progress=False)
    T.train(_cfg(T, folders, epochs=1, schedule="cosine"), tmp_path / "cos", threads=1, progress=False)
    with pytest.raises(UpshadeError, match="a cosine schedule is fixed by its length"):
        T.train(_cfg(T, folders, epochs=3, schedule="cosine"), tmp_path / "cos", resume=True, threads=1, progress=False)
    with pytest.raises(UpshadeError, match="nothing to resume"):
        T.train(_cfg(T, folders), tmp_path / "empty", resume=True, threads=1, progress=False)
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "last.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(UpshadeError, match="last.pt: not a readable checkpoint"):
        T.train(_cfg(T, folders), tmp_path / "corrupt", resume=True, threads=1, progress=False)


@pytest.fixture(scope="module")
def vgg_file(torch, T, tmp_path_factory):
    """A randomly initialised VGG19 saved with torchvision's key names (features.N.weight, classifier.*)."""
    torch.manual_seed(0)
    feats = T.vgg19_features(36)  # the whole torchvision `features`, so slicing to layer 34 is exercised
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return path


def test_content_loss_with_a_random_vgg(torch, T, vgg_file):
    loss = T.Loss("l1:1,content:0.01", str(vgg_file))
    feats = loss.content.features
    assert len(feats) == T.CONTENT_LAYER + 1 and isinstance(feats[-1], torch.nn.Conv2d)  # conv5_4, pre-ReLU
    assert all(not p.requires_grad for p in feats.parameters())
    hr = torch.rand(2, 1, 32, 32)
    sr = (hr + 0.1 * torch.randn_like(hr)).requires_grad_(True)
    value = loss(sr, hr)
    content = loss.content(sr, hr).detach()
    assert torch.isfinite(value) and float(content) > 0
    assert float(value.detach()) == pytest.approx(float(torch.nn.functional.l1_loss(sr.detach(), hr) + 0.01 * content), rel=1e-5)
    value.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0
    assert float(loss.content(hr, hr)) == 0.0


def test_content_loss_errors(torch, T, tmp_path):
    with pytest.raises(UpshadeError, match="needs VGG19 weights: pass --vgg-weights"):
        T.Loss("content")
    with pytest.raises(UpshadeError, match="vgg.pth: VGG19 weights file not found"):
        T.Loss("mse,content:0.1", str(tmp_path / "vgg.pth"))
    other = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, other)
    with pytest.raises(UpshadeError, match="not torchvision vgg19 weights"):
        T.Loss("content", str(other))
    bad_shape = tmp_path / "shape.pth"
    sd = {f"features.{k}": v for k, v in T.vgg19_features(2).state_dict().items()}
    sd["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(sd, bad_shape)
    with pytest.raises(UpshadeError, match=r"features.0.weight has shape \(64, 1, 3, 3\)"):
        T.load_vgg19_features(bad_shape, upto=2)


def test_losses_and_schedules(torch, T, folders):
    assert T.parse_loss("l1:1, content:0.01") == [("l1", 1.0), ("content", 0.01)]
    a, b = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    assert float(T.Loss("mse")(a, b)) == pytest.approx(0.25)
    assert float(T.Loss("l1:2")(a, b)) == pytest.approx(1.0)
    assert float(T.Loss("charbonnier")(a, b)) == pytest.approx(0.5, abs=1e-5)
    for spec, msg in (("huber", "unknown term 'huber'"), ("l1:x", "weight 'x' of l1 is not a number")):
        with pytest.raises(UpshadeError, match=msg):
            T.parse_loss(spec)
    cfg = _cfg(T, folders, schedule="cosine", warmup_epochs=1, epochs=4, min_lr=1e-4)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = T.make_scheduler(cfg, opt, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)  # linear warmup
    assert max(lrs) == pytest.approx(1e-2) and opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_defaults_are_the_papers(T):
    cfg = T.TrainConfig().validate()
    assert (cfg.batch, cfg.patch, cfg.epochs, cfg.lr, cfg.betas, cfg.schedule, cfg.plateau_factor) == (
        96, 128, 400, 1e-4, [0.9, 0.999], "plateau", 0.1
    )
    assert cfg.model_config() == T.size_config("M") and cfg.train_sets == {"synla:train": 1.0}


def test_config_loading_and_overrides(T, folders, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"lr": 0.001, "patch": 64, "train_sets": {"t91": 1}}))
    cfg = T.load_config(str(path), ["lr=2e-3", "loss=l1:1,charbonnier:0.5", "betas=[0.9,0.99]", "epochs=7"], "l")
    assert (cfg.lr, cfg.patch, cfg.loss, cfg.betas, cfg.epochs, cfg.size) == (
        2e-3, 64, "l1:1,charbonnier:0.5", [0.9, 0.99], 7, "L"
    )
    assert (cfg.model_config().blocks, cfg.model_config().width) == (9, 7)
    bad = tmp_path / "bad.json"
    bad.write_text('{"lr": 0.1,\n "epochs": }')
    for args, msg in (
        ((str(bad), []), r"bad.json:2: invalid JSON"),
        ((str(tmp_path / "none.json"), []), "config file not found"),
        ((None, ["lrr=1"]), r"unknown field\(s\) lrr"),
        ((None, ["epochs=many"]), "epochs must be int, got 'many'"),
        ((None, ["lr"]), "expected KEY=VALUE"),
        ((None, ["schedule=step"]), "schedule must be plateau, cosine or constant"),
        ((None, ["select_on=set14"]), "select_on 'set14' is not one of the validation sets"),
        ((None, ['model={"depth": 3}']), r"unknown model field\(s\) depth"),
        ((None, ['model={"scale": 4}']), "only scale 2"),
    ):
        with pytest.raises(UpshadeError, match=msg):
            T.load_config(args[0], args[1], None)


def test_init_from_checkpoint(torch, T, folders, tmp_path):
    first = T.train(_cfg(T, folders, epochs=1), tmp_path / "a", threads=1, progress=False)
    cfg = _cfg(T, folders, epochs=1, lr=1e-9, loss="mse", init=str(tmp_path / "a" / "last.pt"))
    second = T.train(cfg, tmp_path / "b", threads=1, progress=False)
    # lr ~ 0: the fine-tune starts (and stays) at the init weights
    assert torch.allclose(first["model"]["final.weight"], second["model"]["final.weight"], atol=1e-6)
    info = T.ship_run(tmp_path / "b", tmp_path / "w" / "upshade_Y", test_sets=(str(folders / "val"),))
    assert [(i["path"], i["epoch"]) for i in info["init"]] == [(cfg.init, 1)]
    assert f"initialised from `{cfg.init}`: epoch 1 of a run with data {folders / 'train'}, loss l1" in (tmp_path / "w" / "upshade_Y.md").read_text()
    with pytest.raises(UpshadeError, match="nonexistent.pt: init checkpoint not found"):
        T.train(_cfg(T, folders, init=str(tmp_path / "nonexistent.pt")), tmp_path / "d", threads=1, progress=False)
    with pytest.raises(UpshadeError, match="differs from this run's"):
        T.train(_cfg(T, folders, epochs=1, model={"blocks": 3, "width": 2}, init=cfg.init), tmp_path / "c",
                threads=1, progress=False)


def test_cli_errors_and_a_tiny_cli_run(torch, folders, tmp_path, capsys):
    assert cli.main(["train", "--config", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: config file not found" in capsys.readouterr().err
    cfgfile = tmp_path / "t.json"
    cfgfile.write_text(json.dumps({
        "model": {"blocks": 2, "width": 2}, "train_sets": {str(folders / "train"): 1},
        "val_sets": [str(folders / "val")], "select_on": "val", "patch": 16, "batch": 2,
        "steps_per_epoch": 2, "epochs": 1,
    }))
    out = tmp_path / "cli_run"
    assert cli.main(["train", "--config", str(cfgfile), "--size", "S", "--out", str(out), "--threads", "1"]) == 0
    assert (out / "best.pt").is_file()
    # Resuming needs no config file: the checkpoint's is used, overrides may extend a plateau run.
    assert cli.main(["train", "--out", str(out), "--resume", "epochs=2", "--threads", "1", "--no-progress"]) == 0
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    assert cli.main(["train", "--config", str(cfgfile), "loss=content", "--out", str(tmp_path / "x")]) == 1
    assert "--vgg-weights" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(cfgfile), "train_sets={\"" + str(tmp_path / "nope") + "\": 1}",
                     "--out", str(tmp_path / "y")]) == 1
    assert "nope: image folder not found" in capsys.readouterr().err


def test_ship_run_writes_weights_card_metrics_and_plot(torch, T, folders, tmp_path, capsys):
    from upshade.tools.model import load_checkpoint

    run = tmp_path / "run"
    T.train(_cfg(T, folders, epochs=3), run, threads=1, stop_after=2, progress=False)
    info = T.ship_run(run, tmp_path / "w" / "upshade_X", test_sets=(str(folders / "train"),))
    stem = tmp_path / "w" / "upshade_X"
    model, ckpt = load_checkpoint(stem.with_suffix(".pt"))
    assert "optimizer" not in ckpt and "rng" not in ckpt and ckpt["metrics"]["test_train_psnr"] == info["test"]["train_psnr"]
    assert not info["finished"] and info["epochs_done"] == 2 and info["epochs_planned"] == 3
    card = stem.with_suffix(".md").read_text()
    assert "STILL TRAINING when shipped: best of 2 of 3 planned epochs" in card and "386" in card
    assert json.loads(stem.with_suffix(".json").read_text())["params"] == 386
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["train", "--ship", str(stem)]) == 1
    assert "--ship needs --out" in capsys.readouterr().err


def test_a_run_with_the_content_loss(torch, T, folders, vgg_file, tmp_path):
    cfg = _cfg(T, folders, epochs=1, steps_per_epoch=2, loss="l1:1,content:0.01")
    ckpt = T.train(cfg, tmp_path / "vgg_run", vgg_weights=str(vgg_file), threads=1, progress=False)
    assert ckpt["epoch"] == 1 and np.isfinite(ckpt["history"][0]["train_loss"])
    # The frozen VGG is a loss, never part of the model's checkpoint.
    assert not any(k.startswith("features") or "content" in k for k in ckpt["model"])


def test_expanded_run_on_image_pairs_checkpoints_the_collapsed_net_and_resumes_exactly(torch, T, folders, tmp_path):
    from upshade.tools.model import load_checkpoint

    cfg = _cfg(T, folders, pairs="image", expand=8, schedule="cosine")
    full = T.train(cfg, tmp_path / "full", threads=1, progress=False)
    part = tmp_path / "part"
    T.train(cfg, part, threads=1, stop_after=1, progress=False)
    resumed = T.train(cfg, part, resume=True, threads=1, progress=False)
    for k in full["train_model"]:
        assert torch.equal(full["train_model"][k], resumed["train_model"][k]), k
    # best.pt holds the plain net (export and eval read it) and it scores what training validated.
    model, best = load_checkpoint(tmp_path / "full" / "best.pt")
    assert not model.expand and "train_model" not in best
    val = {"val": T.D.load_val_set(str(folders / "val"))}
    _, vm = T.validate(model, val, T.Loss("l1"), torch.device("cpu"))
    assert abs(vm["val_psnr"] - best["metrics"]["val_psnr"]) < 1e-6
    assert full["history"][0]["device"].startswith("cpu")
    info = T.ship_run(tmp_path / "full", tmp_path / "w" / "upshade_Z", test_sets=(str(folders / "val"),))
    card = (tmp_path / "w" / "upshade_Z.md").read_text()
    assert "k x k conv to 8 channels then a 1x1 back" in card and "whole image" in card
    assert "training wall time" in card and info["wall_seconds"] > 0
    # Fine-tuning a plain net from it, or an expanded one from a plain checkpoint, starts where it left off.
    tuned = T.train(_cfg(T, folders, epochs=1, lr=1e-9, expand=8, init=str(tmp_path / "full" / "best.pt")),
                    tmp_path / "ft", threads=1, progress=False)
    for k, v in best["model"].items():
        assert torch.allclose(tuned["model"][k], v, atol=1e-5), k


def test_new_config_fields_are_checked_and_old_runs_still_resume(torch, T, folders, tmp_path):
    with pytest.raises(UpshadeError, match="pairs must be crop, image or bank"):
        _cfg(T, folders, pairs="tiles")
    with pytest.raises(UpshadeError, match="expand 2 is narrower"):
        _cfg(T, folders, expand=2)
    out = tmp_path / "old"
    T.train(_cfg(T, folders, epochs=1), out, threads=1, progress=False)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    for key in ("pairs", "expand", "bank", "bank_mix", "val_specs", "select_mix"):  # a run from before these fields existed
        del ckpt["train_config"][key]
    torch.save(ckpt, out / "last.pt")
    assert T.train(_cfg(T, folders, epochs=2), out, resume=True, threads=1, progress=False)["epoch"] == 2


@pytest.mark.parametrize("item", ["lr=nan", "lr=Infinity", "min_lr=-Infinity", "weight_decay=NaN"])
def test_non_finite_overrides_are_refused(T, item):
    with pytest.raises(UpshadeError, match="must be (a finite number|float), got"):
        T.load_config(None, [item], "S")


@pytest.mark.parametrize("pairs, words", [
    ("bank", "banks of degraded frames (tools/bank.py: downscalers, H.264/HEVC clips, clean protocol LR), sampled by "
             "bank_mix (clean 0.1, codec 0.9)"),
    ("image", "protocol's downscale of the whole image"),
    ("crop", "LR made per crop by the protocol's downscale"),
])
def test_card_says_how_the_training_lr_was_made(pairs, words):
    from upshade.tools.modelcard import _lr_how

    assert words in _lr_how({"pairs": pairs, "bank_mix": {"clean": 0.1, "codec": 0.9}})
