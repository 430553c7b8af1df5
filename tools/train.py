"""Train an upshade model.

    upshade train --config train.json --size M --out runs/M
    upshade train --config train.json --size L lr=2e-3 schedule=cosine epochs=120 --out runs/L
    upshade train --config train.json --out runs/M --resume          # continue exactly
    upshade train --config train.json loss=l1:1,content:0.01 --vgg-weights vgg19-dcbb9e9d.pth

The JSON config holds any TrainConfig field below (unknown keys are errors);
``key=value`` arguments override it (values parsed as JSON when they can be,
e.g. ``betas=[0.9,0.99]``, else taken as strings). Everything that decides the
result lives in the config, which is stored in every checkpoint, so a run is
reproducible from its checkpoint alone and ``--resume`` refuses a different one.

Output folder: ``last.pt`` (every epoch, atomically: everything needed to
resume), ``best.pt`` (best validation PSNR on ``select_on``), ``metrics.json``
and ``loss.png`` (train/validation loss and validation PSNR per epoch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..host.api import UpshadeError, atomic_output, progress as progress_bar
from . import data as D
from .bank import BankConfig, bank_for
from .degrade import parse_specs
from .metrics import psnr_y, ssim_y
from .model import SIZES, ModelConfig, UpshadeNet, flops_per_output_pixel, load_checkpoint, param_count, size_config
from .modelcard import model_card, selection_text

# ---------------------------------------------------------------- config


@dataclass
class TrainConfig:
    size: str = "M"  # base model config: S, M or L (see model.SIZES)
    model: dict = field(default_factory=dict)  # overrides of ModelConfig fields, e.g. {"residual": "bicubic"}
    data_root: str = str(D.DEFAULT_DATA_ROOT)
    # source -> share of training samples (sources: see upshade.tools.data)
    # The paper trained on SYNLA alone; T91 (natural images, some under 128 px) needs patch <= 78.
    train_sets: dict = field(default_factory=lambda: {"synla:train": 1.0})
    train_scales: list = field(default_factory=lambda: [1.0])  # extra downscaled copies of every train image
    val_sets: list = field(default_factory=lambda: ["set5", "synla:val"])
    select_on: str = "set5"  # best.pt = best Y-PSNR on this validation set (never Set14: it is the test set)
    patch: int = 128  # HR crop size
    batch: int = 96
    epochs: int = 400
    steps_per_epoch: int = 0  # 0: one crop per training image per epoch (the paper's epoch)
    loss: str = "mse"  # weighted terms, e.g. "l1", "charbonnier", "l1:1,content:0.01"
    lr: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau (ReduceLROnPlateau on val loss) | cosine | constant
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    min_lr: float = 1e-6  # floor of plateau decay; end value of cosine
    warmup_epochs: int = 0  # linear warmup (cosine only)
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    seed: int = 0
    init: str = ""  # start from this checkpoint's weights (same model config), e.g. to fine-tune with another loss
    # "crop": LR made per HR crop on the CPU (numpy); "image": LR made once per whole image (as evaluation
    # does) and crops gathered on the training device: what keeps a GPU busy; "bank": crops of the
    # real-world degraded banks of tools/bank.py (random kernels, phases, H.264/HEVC clips), cached.
    pairs: str = "crop"
    bank: dict = field(default_factory=dict)  # overrides of bank.BankConfig fields (pairs=bank)
    # share of bank frames per category (pairs=bank): clean protocol LR, other kernels, compressed clips
    bank_mix: dict = field(default_factory=lambda: {"clean": 0.15, "kernel": 0.3, "codec": 0.55})
    # real-world protocol specs every validation set is scored under (tools/degrade.py); metric keys are
    # "<set>_psnr" for clean and "<set>@<spec>_psnr" for the others, e.g. "set5@x264:23_psnr"
    val_specs: list = field(default_factory=lambda: ["clean"])
    # best.pt = best weighted mean of these validation keys' PSNR, e.g. {"set5": 1, "set5@x264:23": 1};
    # empty: select_on alone
    select_mix: dict = field(default_factory=dict)
    # > 0: train every conv as a k x k conv to `expand` channels then a 1x1 back (model.LinearBlock),
    # collapsed exactly into the plain net for checkpoints and export. 0: train the plain net.
    expand: int = 0

    def validate(self) -> "TrainConfig":
        size_config(self.size)
        self.model_config()
        for name in ("patch", "batch", "epochs"):
            if int(getattr(self, name)) < 1:
                raise UpshadeError(f"train config: {name} must be >= 1, got {getattr(self, name)}")
        if self.patch % 2:
            raise UpshadeError(f"train config: patch must be even, got {self.patch}")
        if self.lr <= 0:
            raise UpshadeError(f"train config: lr must be > 0, got {self.lr}")
        if self.schedule not in ("plateau", "cosine", "constant"):
            raise UpshadeError(f"train config: schedule must be plateau, cosine or constant, got {self.schedule!r}")
        if not isinstance(self.train_sets, dict) or not self.train_sets:
            raise UpshadeError("train config: train_sets must be a non-empty mapping of source -> weight")
        if not self.val_sets:
            raise UpshadeError("train config: val_sets must name at least one validation source")
        if self.select_on not in [D.source_label(s) for s in self.val_sets]:
            labels = ", ".join(D.source_label(s) for s in self.val_sets)
            raise UpshadeError(f"train config: select_on {self.select_on!r} is not one of the validation sets ({labels})")
        if self.pairs not in ("crop", "image", "bank"):
            raise UpshadeError(f"train config: pairs must be crop, image or bank, got {self.pairs!r}")
        specs = [s.name for s in parse_specs(self.val_specs)]
        if "clean" not in specs:
            raise UpshadeError("train config: val_specs must include clean (select_on scores it)")
        keys = val_keys(self.val_sets, self.val_specs)
        bad = sorted(set(self.select_mix) - set(keys))
        if bad:
            raise UpshadeError(f"train config: select_mix names {', '.join(bad)}, not among {', '.join(keys)}")
        if self.select_mix and sum(float(v) for v in self.select_mix.values()) <= 0:
            raise UpshadeError("train config: select_mix weights must sum to more than 0")
        if self.pairs == "bank":
            BankConfig.from_dict(self.bank)
            D.check_bank_mix(self.bank_mix)
        if self.expand < 0:
            raise UpshadeError(f"train config: expand must be >= 0, got {self.expand}")
        if self.expand and self.expand < max(self.model_config().width, 4):
            raise UpshadeError(f"train config: expand {self.expand} is narrower than the layers it widens")
        if len(self.betas) != 2:
            raise UpshadeError(f"train config: betas must be two numbers, got {self.betas}")
        parse_loss(self.loss)
        return self

    def model_config(self) -> ModelConfig:
        base = size_config(self.size).to_dict()
        unknown = sorted(set(self.model) - set(base))
        if unknown:
            raise UpshadeError(f"train config: unknown model field(s) {', '.join(unknown)}")
        return ModelConfig(**{**base, **self.model})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def val_keys(val_sets, val_specs) -> list[str]:
    """Metric labels of every (validation set, spec): 'set5', 'set5@x264:23', ..."""
    return [D.source_label(v) + ("" if sp.kind == "clean" else f"@{sp.name}")
            for v in val_sets for sp in parse_specs(val_specs)]


def selection_score(cfg: "TrainConfig", metrics: dict) -> float:
    """What chooses best.pt: select_on's PSNR, or the select_mix-weighted mean of PSNRs."""
    if not cfg.select_mix:
        return metrics[f"{cfg.select_on}_psnr"]
    total = sum(float(w) for w in cfg.select_mix.values())
    return sum(float(w) * metrics[f"{k}_psnr"] for k, w in cfg.select_mix.items()) / total


# Fields that may change on --resume without changing what the run has done so far.
RESUMABLE_CHANGES = {"epochs"}


def load_config(path: str | None, overrides: list[str], size: str | None, base: dict | None = None) -> TrainConfig:
    """Config from ``base`` (e.g. a checkpoint's), then the JSON file, then KEY=VALUE overrides, then --size."""
    raw: dict = dict(base or {})
    if path:
        p = Path(path)
        try:
            loaded = json.loads(p.read_text())
        except FileNotFoundError:
            raise UpshadeError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UpshadeError(f"{p}: cannot read config ({exc})") from None
        except json.JSONDecodeError as exc:
            raise UpshadeError(f"{p}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if not isinstance(loaded, dict):
            raise UpshadeError(f"{p}: config must be a JSON object")
        raw.update(loaded)
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UpshadeError(f"override {item!r}: expected KEY=VALUE")
        try:
            raw[key] = json.loads(value)
        except json.JSONDecodeError:
            raw[key] = value
    if size:
        raw["size"] = size.upper()
    names = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise UpshadeError(f"train config: unknown field(s) {', '.join(unknown)} (known: {', '.join(names)})")
    defaults = TrainConfig()
    for key, value in raw.items():
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            raw[key] = float(value)
        elif not isinstance(raw[key], want) or isinstance(value, bool) != (want is bool):
            raise UpshadeError(f"train config: {key} must be {want.__name__}, got {value!r}")
        if want is float and not math.isfinite(raw[key]):
            raise UpshadeError(f"train config: {key} must be a finite number, got {value!r}")
    return TrainConfig(**raw).validate()


# ---------------------------------------------------------------- losses


def parse_loss(spec: str) -> list[tuple[str, float]]:
    terms = []
    for part in str(spec).split(","):
        name, _, weight = part.strip().partition(":")
        name = name.strip().lower()
        if name not in ("mse", "l1", "charbonnier", "content"):
            raise UpshadeError(f"loss {spec!r}: unknown term {name!r} (mse, l1, charbonnier, content)")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise UpshadeError(f"loss {spec!r}: weight {weight!r} of {name} is not a number") from None
        terms.append((name, w))
    return terms


# torchvision's vgg19 "features": numbers are conv widths, "M" a 2x2 max-pool.
VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
CONTENT_LAYER = 34  # conv5_4 before its ReLU, as in SRGAN/ESRGAN's "VGG54"


def vgg19_features(upto: int = CONTENT_LAYER) -> nn.Sequential:
    """VGG19 ``features[: upto + 1]`` with torchvision's module indices (so its state-dict keys load)."""
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_LAYOUT:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = v
    return nn.Sequential(*layers[: upto + 1])


def load_vgg19_features(path: str | os.PathLike | None, upto: int = CONTENT_LAYER) -> nn.Sequential:
    """Frozen VGG19 features from a torchvision-format weights file (e.g. vgg19-dcbb9e9d.pth)."""
    if not path:
        raise UpshadeError("the content loss needs VGG19 weights: pass --vgg-weights PATH (torchvision vgg19 .pth)")
    p = Path(path)
    if not p.is_file():
        raise UpshadeError(f"{p}: VGG19 weights file not found")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UpshadeError(f"{p}: not a readable PyTorch weights file ({first[:160]})") from None
    if isinstance(state, nn.Module):  # pragma: no cover - weights_only refuses modules
        state = state.state_dict()
    if not isinstance(state, dict):
        raise UpshadeError(f"{p}: expected a state dict of torchvision's vgg19")
    feats = vgg19_features(upto)
    wanted = feats.state_dict()
    picked = {}
    for key in wanted:
        for cand in (f"features.{key}", key):
            if cand in state:
                picked[key] = state[cand]
                break
        else:
            raise UpshadeError(f"{p}: not torchvision vgg19 weights (missing features.{key})")
        if tuple(picked[key].shape) != tuple(wanted[key].shape):
            raise UpshadeError(
                f"{p}: features.{key} has shape {tuple(picked[key].shape)}, vgg19 needs {tuple(wanted[key].shape)}"
            )
    feats.load_state_dict(picked)
    feats.eval()
    for prm in feats.parameters():
        prm.requires_grad_(False)
    return feats


class ContentLoss(nn.Module):
    """Mean squared distance of frozen VGG19 conv5_4 features (the paper's content loss, per element)."""

    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        # Luma stands in for all three channels of the grey image VGG sees.
        def f(y):
            return self.features((y.expand(-1, 3, -1, -1) - self.mean) / self.std)

        with torch.no_grad():
            target = f(hr)
        return F.mse_loss(f(sr), target)


class Loss(nn.Module):
    def __init__(self, spec: str, vgg_weights: str | None = None):
        super().__init__()
        self.terms = parse_loss(spec)
        self.content = None
        if any(name == "content" for name, _ in self.terms):
            self.content = ContentLoss(load_vgg19_features(vgg_weights))

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        total = sr.new_zeros(())
        for name, w in self.terms:
            if name == "mse":
                term = F.mse_loss(sr, hr)
            elif name == "l1":
                term = F.l1_loss(sr, hr)
            elif name == "charbonnier":
                term = torch.sqrt((sr - hr) ** 2 + 1e-6).mean()  # eps 1e-3 on a 0..1 signal
            else:
                term = self.content(sr, hr)
            total = total + w * term
        return total


# ---------------------------------------------------------------- schedule


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int):
    """Plateau steps once per epoch on the validation loss; cosine/constant step per batch."""
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
    total = cfg.epochs * steps_per_epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    floor = cfg.min_lr / cfg.lr

    def factor(step: int) -> float:
        if cfg.schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ---------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: UpshadeNet, val: dict[str, list[D.ValImage]], loss_fn: Loss, device) -> tuple[float, dict]:
    """Loss and protocol Y-PSNR/SSIM per validation set; val loss = mean of the per-set losses."""
    model.eval()
    metrics, losses = {}, []
    for label, images in val.items():
        ps, ss, ls = [], [], []
        for im in images:
            lr = torch.from_numpy(im.lr_luma).to(device)
            hr = torch.from_numpy(im.hr_luma).to(device)
            sr = model(lr)
            ls.append(float(loss_fn(sr, hr)))
            y = D.scoring_y(sr[0, 0].cpu().numpy())
            ps.append(psnr_y(y, im.hr_y, shave=2))
            ss.append(ssim_y(y, im.hr_y, shave=2))
        metrics[f"{label}_psnr"] = float(np.mean(ps))
        metrics[f"{label}_ssim"] = float(np.mean(ss))
        metrics[f"{label}_loss"] = float(np.mean(ls))
        losses.append(float(np.mean(ls)))
    model.train()
    return float(np.mean(losses)), metrics


# ---------------------------------------------------------------- outputs


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _atomic_text(text: str, path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def plot_history(history: list[dict], path: Path, title: str, select_on: str, stages: tuple = ()) -> None:
    """Loss and per-set PSNR curves; ``stages``: epochs after which a new run continued these weights."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    psnr_keys = [k for k in history[-1] if k.endswith("_psnr")]
    # One panel per validation set (its specs as lines): their PSNRs differ by several dB.
    groups: dict[str, list[str]] = {}
    for k in psnr_keys:
        groups.setdefault(k[: -len("_psnr")].split("@")[0], []).append(k)
    fig, axes = plt.subplots(1, 1 + len(groups), figsize=(5 * (1 + len(groups)), 4), squeeze=False)
    ax1 = axes[0, 0]
    ax1.plot(ep, [h["train_loss"] for h in history], label="train")
    ax1.plot(ep, [h["val_loss"] for h in history], label="validation")
    ax1.set_yscale("log")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for ax, (name, keys) in zip(axes[0, 1:], groups.items()):
        for key in keys:
            spec = key[: -len("_psnr")].partition("@")[2] or "clean"
            ax.plot(ep, [h.get(key, float("nan")) for h in history], label=spec)
        ax.set_xlabel("epoch")
        ax.set_ylabel("Y-PSNR (dB), x2 protocol")
        ax.set_title(name + (" (chooses best.pt)" if name == select_on else ""))
        if len(keys) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[0]:
        for b in stages:
            ax.axvline(b + 0.5, color="grey", linestyle=":", linewidth=1)
    fig.suptitle(title + (" (dotted: a new run continues the weights)" if stages else ""))
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def shipped_checkpoint(ckpt: dict) -> dict:
    """The checkpoint minus what only resuming needs (what weights/ ships)."""
    return {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "rng", "train_model")}


# ---------------------------------------------------------------- main loop


def _fields_help() -> str:
    lines = ["config fields (JSON file and/or KEY=VALUE; defaults are the seed paper's):"]
    for f in dataclasses.fields(TrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        lines.append(f"  {f.name} = {json.dumps(default)}")
    lines.append("sources: synla:train, synla:val (last 128 files by name), synla, t91, set5, set14, or a folder")
    lines.append("example: upshade train --size M patch=64 batch=64 lr=2e-3 schedule=cosine loss=l1 --out runs/M")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the field list's lines
    parser.epilog = _fields_help()
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config fields (JSON values)")
    parser.add_argument("--config", metavar="FILE.json", help="training config (TrainConfig fields)")
    parser.add_argument("--size", type=str.upper, choices=sorted(SIZES), help="model size (overrides the config)")
    parser.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/<size>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    parser.add_argument("--vgg-weights", metavar="PATH", help="torchvision vgg19 weights for the content loss")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--stop-after", type=int, default=0, metavar="N", help="stop after N epochs in this invocation")
    parser.add_argument("--time-limit", type=float, default=0, metavar="MIN", help="stop after the epoch that passes MIN minutes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    parser.add_argument(
        "--ship", metavar="STEM", help="do not train: copy --out's best.pt to STEM.pt with STEM.md/.json/.png (e.g. weights/upshade_M)"
    )


def run(args: argparse.Namespace) -> int:
    if args.ship:
        if not args.out:
            raise UpshadeError("--ship needs --out RUN_DIR (the run to ship)")
        info = ship_run(Path(args.out), Path(args.ship))
        print(f"shipped {args.out} epoch {info['best']['epoch']} -> {args.ship}.pt "
              f"({info['select_on']}: {selection_text(info)})")
        return 0
    base = None
    if args.resume and not args.config:
        # Resuming needs no config file: the checkpoint holds it (overrides may still extend epochs).
        if not args.out:
            raise UpshadeError("--resume without --config needs --out RUN_DIR")
        base = read_checkpoint(Path(args.out) / "last.pt")["train_config"]
    cfg = load_config(args.config, args.overrides, args.size, base)
    out = Path(args.out or Path("runs") / cfg.size)
    train(cfg, out, resume=args.resume, vgg_weights=args.vgg_weights, threads=args.threads,
          device=args.device, stop_after=args.stop_after, time_limit_min=args.time_limit,
          progress=not args.no_progress)
    return 0


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    """A training checkpoint (last.pt) for resuming, with one-line errors."""
    if not path.is_file():
        raise UpshadeError(f"{path}: nothing to resume (no checkpoint there)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UpshadeError(f"{path}: not a readable checkpoint ({first[:160]})") from None
    missing = [k for k in ("train_config", "model", "optimizer", "scheduler", "epoch", "history", "rng") if k not in ckpt]
    if not isinstance(ckpt, dict) or missing:
        raise UpshadeError(f"{path}: not a resumable training checkpoint (missing {', '.join(missing) or 'everything'})")
    return ckpt


def _check_resume(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = cfg.to_dict()
    # Fields added after a run started keep their defaults, which reproduce what it did.
    saved = {**{k: v for k, v in TrainConfig().to_dict().items() if k not in saved}, **saved}
    diffs = [k for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES]
    if "epochs" in saved and saved["epochs"] != now["epochs"] and cfg.schedule == "cosine":
        diffs.append("epochs (a cosine schedule is fixed by its length)")
    if diffs:
        shown = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" if k in now else k for k in diffs[:4])
        raise UpshadeError(f"{path}: cannot resume with a different config ({shown})")


def _banks(cfg: TrainConfig, sets, progress: bool):
    """The degraded bank of every training set (built and cached on first use)."""
    bcfg = BankConfig.from_dict(cfg.bank)

    def bar(total, desc):
        return progress_bar(total=total, desc=desc, unit="img", disable=not progress)

    banks = [bank_for(ts, bcfg, tuple(cfg.train_scales), bar) for ts in sets]
    for b in banks:
        print(b.summary(), flush=True)
    return banks


def load_validation(cfg: TrainConfig) -> dict[str, list[D.ValImage]]:
    """Every validation set under every spec, keyed as val_keys() names them."""
    specs = parse_specs(cfg.val_specs)
    keys = iter(val_keys(cfg.val_sets, cfg.val_specs))
    return {next(keys): D.load_val_set(v, cfg.data_root, degradation=sp.name) for v in cfg.val_sets for sp in specs}


@dataclass
class _State:
    """What a run carries from epoch to epoch (and a checkpoint restores)."""

    model: UpshadeNet
    opt: torch.optim.Optimizer
    sched: object
    rng: np.random.Generator
    epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)


def train(
    cfg: TrainConfig,
    out: Path,
    *,
    resume: bool = False,
    vgg_weights: str | None = None,
    threads: int = 0,
    device: str | None = None,
    stop_after: int = 0,
    time_limit_min: float = 0,
    progress: bool = True,
) -> dict:
    """Train (or resume) the run in ``out``; returns the last checkpoint dict."""
    cfg.validate()
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out)
    last_path = out / "last.pt"
    saved = _check_run_folder(cfg, out, resume, dev)   # everything that can be wrong, before the slow loading
    loss_fn = Loss(cfg.loss, vgg_weights).to(dev)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    sampler, n_images, steps = _training_data(cfg, dev, progress)
    val = load_validation(cfg)
    load_s = time.monotonic() - t0
    run = _start(cfg, dev, steps, saved)
    mcfg = cfg.model_config()
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    title = f"upshade {cfg.size} ({mcfg.blocks}x{mcfg.width}, {param_count(mcfg):,} params), loss {cfg.loss}"
    print(
        f"{title}: {n_images} train images ({', '.join(cfg.train_sets)}), "
        f"val {', '.join(f'{k} ({len(v)})' for k, v in val.items())}, loaded in {load_s:.1f}s; "
        f"{steps} steps/epoch of {cfg.batch}x{cfg.patch}px on {dev}"
        + (f", resuming after epoch {run.epoch}" if resume else ""),
        flush=True,
    )

    started = time.monotonic()
    done_here = 0
    bar = progress_bar(total=cfg.epochs * steps, initial=run.epoch * steps, unit="step", desc="train",
                       disable=not progress, smoothing=0.05)
    run.model.train()
    ckpt = None
    try:
        while run.epoch < cfg.epochs:
            epoch_t = time.monotonic()
            train_loss = _train_epoch(cfg, run, sampler, loss_fn, steps, dev, bar)
            run.epoch += 1
            plain = run.model.collapsed()  # validate exactly what the checkpoint will hold
            val_loss, vm = validate(plain, val, loss_fn, dev)
            if cfg.schedule == "plateau":
                run.sched.step(val_loss)
            rec = {"epoch": run.epoch, "train_loss": train_loss, "val_loss": val_loss,
                   "lr": run.opt.param_groups[0]["lr"], "seconds": time.monotonic() - epoch_t,
                   "device": device_name, **vm}
            run.history.append(rec)
            vm["select_score"] = rec["select_score"] = selection_score(cfg, vm)
            improved = not run.best or vm["select_score"] > run.best.get("select_score", selection_score(cfg, run.best))
            if improved:
                run.best = {"epoch": run.epoch, **vm}
            ckpt = _checkpoint(cfg, run, plain, dev)
            _save_epoch(cfg, out, ckpt, improved, title, rec)
            sets_txt = " ".join(f"{k[:-5]} {v:.3f}" for k, v in vm.items() if k.endswith("_psnr"))
            bar.write(
                f"epoch {run.epoch}/{cfg.epochs}: train {rec['train_loss']:.4g} val {val_loss:.4g} | {sets_txt} dB | "
                f"lr {rec['lr']:.2g} | {rec['seconds']:.0f}s" + (" *" if improved else "")
            )
            done_here += 1
            if stop_after and done_here >= stop_after:
                break
            if time_limit_min and time.monotonic() - started > 60 * time_limit_min:
                bar.write(f"time limit of {time_limit_min:g} min reached; resume with --resume")
                break
    finally:
        bar.close()
    if ckpt is None:
        ckpt = torch.load(last_path, map_location="cpu", weights_only=True) if last_path.exists() else {}
    return ckpt


def _check_run_folder(cfg: TrainConfig, out: Path, resume: bool, dev) -> dict | None:
    """The checkpoint to resume from (None for a new run), after checking that the run may start."""
    last_path = out / "last.pt"
    if resume:
        saved = read_checkpoint(last_path, map_location=dev)
        _check_resume(saved["train_config"], cfg, last_path)
        return saved
    if last_path.exists():
        raise UpshadeError(f"{out}: already holds a run (last.pt); use --resume to continue it or another --out")
    if cfg.init and not Path(cfg.init).is_file():
        raise UpshadeError(f"{cfg.init}: init checkpoint not found")
    return None


def _training_data(cfg: TrainConfig, dev, progress: bool):
    """(pair sampler, number of training images, steps per epoch)."""
    sets = [D.load_train_set(s, cfg.patch, cfg.data_root, tuple(cfg.train_scales)) for s in cfg.train_sets]
    weights = [float(w) for w in cfg.train_sets.values()]
    if cfg.pairs == "image":
        sampler = D.ImagePairSampler(sets, weights, cfg.patch, 2, device=dev)
    elif cfg.pairs == "bank":
        sampler = D.BankPairSampler(_banks(cfg, sets, progress), weights, cfg.bank_mix, cfg.patch, 2, device=dev)
    else:
        sampler = D.PairSampler(sets, weights, cfg.patch, 2)
    steps = cfg.steps_per_epoch or D.steps_for(sum(len(s.paths) for s in sets), cfg.batch)
    return sampler, sum(len(s.images) for s in sets), steps


def _start(cfg: TrainConfig, dev, steps: int, saved: dict | None) -> _State:
    """Model, optimiser, schedule and RNG of a new run (seeded, or from ``cfg.init``), or of the checkpoint."""
    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    model = UpshadeNet(mcfg, expand=cfg.expand).to(dev)
    if cfg.init and saved is None:
        init_model, _ = load_checkpoint(cfg.init)
        if init_model.cfg != mcfg:
            raise UpshadeError(f"{cfg.init}: its model {init_model.cfg} differs from this run's {mcfg}")
        model.load_plain(init_model.to(dev))  # exact, also into the expanded training form
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed batch shapes: pick the fastest conv kernels once
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    run = _State(model, opt, make_scheduler(cfg, opt, steps), np.random.default_rng(cfg.seed))
    if saved is not None:
        model.load_state_dict(saved["train_model"] if cfg.expand else saved["model"])
        opt.load_state_dict(saved["optimizer"])
        run.sched.load_state_dict(saved["scheduler"])
        run.epoch, run.history, run.best = saved["epoch"], saved["history"], saved["metrics"]
        torch.set_rng_state(saved["rng"]["torch"].cpu())
        run.rng.bit_generator.state = json.loads(saved["rng"]["numpy"])
        if dev.type == "cuda" and "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"].cpu())
    return run


def _train_epoch(cfg: TrainConfig, run: _State, sampler, loss_fn: "Loss", steps: int, dev, bar) -> float:
    """One epoch of ``steps`` optimiser steps; the mean training loss."""
    # The loss is summed on the device and read back only every few steps: a read per
    # step would make a GPU wait for the CPU each time.
    model, opt = run.model, run.opt
    total_t, count = torch.zeros((), device=dev), 0
    for _ in range(steps):
        if cfg.pairs in ("image", "bank"):
            lr_t, hr_t = sampler.batch(cfg.batch, run.rng)
        else:
            lr_np, hr_np = sampler.batch(cfg.batch, run.rng)
            lr_t = torch.from_numpy(lr_np).to(dev)
            hr_t = torch.from_numpy(hr_np).to(dev)
        loss = loss_fn(model(lr_t), hr_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if cfg.schedule != "plateau":
            run.sched.step()
        total_t += loss.detach()
        count += 1
        bar.update(1)
        if count % 25 == 0 or count == steps or dev.type == "cpu":
            best_psnr = run.best.get("select_score" if cfg.select_mix else cfg.select_on + "_psnr")
            bar.set_postfix_str(
                f"loss {float(total_t) / count:.3g} val {'-' if best_psnr is None else f'{best_psnr:.2f}'}dB "
                f"lr {opt.param_groups[0]['lr']:.2g}", refresh=False
            )
    return float(total_t) / count


def _checkpoint(cfg: TrainConfig, run: _State, plain: UpshadeNet, dev) -> dict:
    """The resumable checkpoint dict (last.pt) after ``run.epoch``: plain weights and everything to continue."""
    rng_state = {"torch": torch.get_rng_state(), "numpy": json.dumps(run.rng.bit_generator.state)}
    if dev.type == "cuda":
        rng_state["cuda"] = torch.cuda.get_rng_state()
    ckpt = {
        "config": cfg.model_config().to_dict(),
        "train_config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "epoch": run.epoch,
        "history": run.history,
        "metrics": run.best,
        "rng": rng_state,
    }
    if cfg.expand:
        ckpt["train_model"] = {k: v.detach().cpu() for k, v in run.model.state_dict().items()}
    return ckpt


def _save_epoch(cfg: TrainConfig, out: Path, ckpt: dict, improved: bool, title: str, rec: dict) -> None:
    """last.pt, best.pt (when improved), metrics.json and loss.png of the run folder."""
    _atomic_torch_save(ckpt, out / "last.pt")
    if improved:
        _atomic_torch_save(shipped_checkpoint(ckpt), out / "best.pt")
    mcfg = cfg.model_config()
    summary = {"title": title, "params": param_count(mcfg), "config": mcfg.to_dict(),
               "train_config": cfg.to_dict(), "epochs_done": ckpt["epoch"], "best": ckpt["metrics"], "last": rec}
    _atomic_text(json.dumps(summary, indent=2) + "\n", out / "metrics.json")
    plot_history(ckpt["history"], out / "loss.png", title, cfg.select_on)


# ---------------------------------------------------------------- shipping


def ship_run(run: Path, stem: Path, test_sets: tuple[str, ...] = ("set14",)) -> dict:
    """Ship a run's best checkpoint: STEM.pt (no optimizer), STEM.json, STEM.png and a model card STEM.md.

    The test sets are scored here for the card only; they never choose anything.
    """
    run, stem = Path(run), Path(stem)
    best_path = run / "best.pt"
    model, best = load_checkpoint(best_path)
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True) if (run / "last.pt").is_file() else best
    cfg = TrainConfig(**best["train_config"])
    mcfg = model.cfg
    # The test sets under every spec the run validated on (clean alone for older runs).
    test_data = load_validation(dataclasses.replace(cfg, val_sets=list(test_sets), select_on=D.source_label(test_sets[0]),
                                                    select_mix={}))
    _, test = validate(model, test_data, Loss("mse"), torch.device("cpu"))
    test = {k: v for k, v in test.items() if not k.endswith("_loss")}
    finished = last["epoch"] >= cfg.epochs
    info = {
        "size": cfg.size,
        "params": param_count(mcfg),
        "flops_per_output_pixel": flops_per_output_pixel(mcfg),
        "config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "select_on": "select_mix" if cfg.select_mix else cfg.select_on,
        "best": best["metrics"],
        "test": test,
        "epochs_done": last["epoch"],
        "epochs_planned": cfg.epochs,
        "finished": finished,
    }
    lineage, earlier = _lineage(cfg.init)
    if lineage:
        info["init"] = lineage
    # Wall time of every epoch that led to the shipped weights (earlier runs up to the epoch taken from them).
    chain = [*earlier, [h for h in last.get("history") or [] if h["epoch"] <= best["metrics"]["epoch"]]]
    info["wall_seconds"] = float(sum(h.get("seconds", 0.0) for hist in chain for h in hist))
    info["devices"] = sorted({h.get("device", "cpu") for hist in chain for h in hist})
    shipped = shipped_checkpoint(best)
    shipped["metrics"] = {**best["metrics"], **{f"test_{k}": v for k, v in test.items()}}
    stem.parent.mkdir(parents=True, exist_ok=True)
    _atomic_torch_save(shipped, stem.with_suffix(".pt"))
    _atomic_text(json.dumps(info, indent=2) + "\n", stem.with_suffix(".json"))
    if last.get("history"):
        # The whole chain of runs on one time axis, oldest first.
        history, stages, offset = [], [], 0
        for hist in [*reversed(earlier), last["history"]]:
            if history:
                stages.append(offset)
            history += [{**h, "epoch": h["epoch"] + offset} for h in hist]
            offset += len(hist)
        title = f"upshade {cfg.size} ({mcfg.blocks}x{mcfg.width}, {param_count(mcfg):,} params)"
        plot_history(history, stem.with_suffix(".png"), title, cfg.select_on, tuple(stages))
    _atomic_text(model_card(info, stem.name), stem.with_suffix(".md"))
    return info


def _lineage(init: str) -> tuple[list[dict], list[list[dict]]]:
    """The weights a run started from, and theirs, ... (the card then tells the whole recipe), and the
    history of each of those runs up to the epoch taken from it."""
    lineage, earlier, seen = [], [], set()
    while init and init not in seen and len(lineage) < 16:
        seen.add(init)
        p = Path(init)
        if not p.is_file():
            lineage.append({"path": init, "epoch": None, "train_config": None})
            break
        ic = torch.load(p, map_location="cpu", weights_only=True)
        tc = ic.get("train_config") or {}
        lineage.append({"path": init, "epoch": ic.get("epoch"), "train_config": tc})
        earlier.append([h for h in ic.get("history") or [] if h["epoch"] <= (ic.get("epoch") or 0)])
        init = tc.get("init", "")
    return lineage, earlier
