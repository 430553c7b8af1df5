"""The upshade network: one definition, one config, one checkpoint format.

    Y (N,1,H,W) --conv3x3+CReLU--> f1 --conv3x3+CReLU--> f2 ... fB
    cat(f1..fB) --final conv--> pixel_shuffle x2 (or nearest x2 -> final conv)
    out = that + interpolate(Y, x2, bilinear|bicubic)

The net only learns a residual over an interpolation the GPU gives nearly for
free (bilinear texture sampling), so even a few thousand weights beat bicubic.
All convs pad with 'replicate' because that is what texture sampling with
clamp-to-edge does in the exported shader: the torch model and the shader then
agree on every pixel, borders included.

    upshade model-info                       # table of S, M, L
    upshade model-info --size M runs/M/best.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..host.api import MODEL_SIZES, UpshadeError

UPSCALE_MODES = ("pixel_shuffle", "nearest_conv")
RESIDUAL_MODES = ("bilinear", "bicubic")


@dataclass
class ModelConfig:
    blocks: int = 7  # number of 3x3 conv blocks
    width: int = 4  # output channels per block before CReLU (CReLU doubles them)
    scale: int = 2  # only 2 supported
    upscale: str = "pixel_shuffle"  # or "nearest_conv" (the seed paper's nearest-then-conv)
    final_kernel: int = 3  # kernel of the final conv (1 or 3)
    residual: str = "bilinear"  # or "bicubic" (torch bicubic, align_corners=False)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "ModelConfig":
        for name in ("blocks", "width", "scale", "final_kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UpshadeError(f"model config: {name} must be an integer, got {value!r}")
        if self.blocks < 1:
            raise UpshadeError(f"model config: blocks must be >= 1, got {self.blocks}")
        if self.width < 1:
            raise UpshadeError(f"model config: width must be >= 1, got {self.width}")
        if self.scale != 2:
            raise UpshadeError(f"model config: only scale 2 is supported, got {self.scale}")
        if self.upscale not in UPSCALE_MODES:
            raise UpshadeError(f"model config: upscale must be one of {', '.join(UPSCALE_MODES)}, got {self.upscale!r}")
        if self.final_kernel not in (1, 3):
            raise UpshadeError(f"model config: final_kernel must be 1 or 3, got {self.final_kernel}")
        if self.residual not in RESIDUAL_MODES:
            raise UpshadeError(f"model config: residual must be one of {', '.join(RESIDUAL_MODES)}, got {self.residual!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise UpshadeError(f"model config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UpshadeError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)


# The shipped sizes, named and shaped in one place (host/paths.MODEL_SIZES, which the runtime reads too).
SIZES: dict[str, ModelConfig] = {name: ModelConfig(blocks=b, width=w) for name, (b, w) in MODEL_SIZES.items()}


def size_config(size: str) -> ModelConfig:
    key = str(size).upper()
    if key not in SIZES:
        raise UpshadeError(f"unknown model size {size!r}: choose one of {', '.join(SIZES)}")
    return dataclasses.replace(SIZES[key])


def crelu(x: torch.Tensor) -> torch.Tensor:
    """Concatenated ReLU: keeps the negative half too, so no information is lost per block."""
    return torch.cat((F.relu(x), F.relu(-x)), 1)


def _conv(cin: int, cout: int, k: int, expand: int) -> nn.Module:
    if expand:
        return LinearBlock(cin, cout, k, expand)
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="replicate")


class LinearBlock(nn.Module):
    """A k x k conv (cin -> expand) then a 1x1 conv (expand -> cout), nothing between.

    Training-time over-parameterisation (SESR, Bhardwaj et al. 2022; RepVGG's
    idea for plain nets): two linear maps compose into one, so the block
    collapses exactly into a single k x k conv (cin -> cout) for export, while
    the wide factorisation trains to a better optimum than that conv would on
    its own. Replicate padding commutes with the pointwise 1x1, so borders
    collapse exactly too.
    """

    def __init__(self, cin: int, cout: int, k: int, expand: int):
        super().__init__()
        self.wide = nn.Conv2d(cin, expand, k, padding=k // 2, padding_mode="replicate")
        self.project = nn.Conv2d(expand, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.wide(x))

    @torch.no_grad()
    def collapsed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weight (cout, cin, k, k), bias (cout,))`` of the equivalent single conv."""
        p = self.project.weight[:, :, 0, 0].double()
        weight = torch.einsum("oe,eikl->oikl", p, self.wide.weight.double())
        bias = p @ self.wide.bias.double() + self.project.bias.double()
        return weight.to(self.wide.weight.dtype), bias.to(self.wide.bias.dtype)

    @torch.no_grad()
    def embed(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set this block to compute exactly the conv ``(weight, bias)`` (needs expand >= cout).

        The first cout wide channels carry the conv; the others keep their
        random init behind a zero projection, so training can recruit them.
        """
        cout = weight.shape[0]
        if self.wide.out_channels < cout:
            raise UpshadeError(f"expand {self.wide.out_channels} is narrower than the {cout} channels it must carry")
        self.wide.weight[:cout] = weight
        self.wide.bias[:cout] = bias
        self.project.weight.zero_()
        self.project.weight[:, :cout, 0, 0] = torch.eye(cout, dtype=weight.dtype, device=weight.device)
        self.project.bias.zero_()


class UpshadeNet(nn.Module):
    """The network; ``expand > 0`` gives its training form (every conv a :class:`LinearBlock`).

    The training form computes the same function class with more weights;
    :meth:`collapsed` turns it into the plain net that checkpoints, the exporter
    and the evaluator use.
    """

    def __init__(self, cfg: ModelConfig | None = None, expand: int = 0):
        super().__init__()
        self.cfg = (cfg or ModelConfig()).validate()
        if not isinstance(expand, int) or expand < 0:
            raise UpshadeError(f"expand must be an integer >= 0, got {expand!r}")
        self.expand = expand
        w = self.cfg.width
        self.convs = nn.ModuleList(_conv(1 if i == 0 else 2 * w, w, 3, expand) for i in range(self.cfg.blocks))
        out_ch = self.cfg.scale * self.cfg.scale if self.cfg.upscale == "pixel_shuffle" else 1
        self.final = _conv(self.cfg.blocks * 2 * w, out_ch, self.cfg.final_kernel, expand)

    def _layers(self):
        return [*self.convs, self.final]

    def collapsed(self) -> "UpshadeNet":
        """The plain (export) form of this net: the same function, one conv per layer."""
        if not self.expand:
            return self
        plain = UpshadeNet(self.cfg).to(self.final.wide.weight)  # same device and dtype
        with torch.no_grad():
            for src, dst in zip(self._layers(), plain._layers()):
                weight, bias = src.collapsed()
                dst.weight.copy_(weight)
                dst.bias.copy_(bias)
        plain.train(self.training)
        return plain

    @torch.no_grad()
    def load_plain(self, plain: "UpshadeNet") -> None:
        """Start from a plain net's weights: afterwards ``self`` computes exactly what ``plain`` does."""
        if plain.cfg != self.cfg:
            raise UpshadeError(f"model {plain.cfg} differs from {self.cfg}")
        if not self.expand:
            self.load_state_dict(plain.state_dict())
            return
        for src, dst in zip(plain._layers(), self._layers()):
            dst.embed(src.weight.to(dst.wide.weight), src.bias.to(dst.wide.bias))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = y
        feats = []
        for conv in self.convs:
            h = crelu(conv(h))
            feats.append(h)
        cat = torch.cat(feats, 1)
        if self.cfg.upscale == "pixel_shuffle":
            out = F.pixel_shuffle(self.final(cat), self.cfg.scale)
        else:
            out = self.final(F.interpolate(cat, scale_factor=self.cfg.scale, mode="nearest"))
        base = F.interpolate(y, scale_factor=self.cfg.scale, mode=self.cfg.residual, align_corners=False)
        return out + base


def param_count(cfg: ModelConfig) -> int:
    """Weights + biases."""
    w, b, k = cfg.width, cfg.blocks, cfg.final_kernel
    convs = (1 * 9 * w + w) + (b - 1) * (2 * w * 9 * w + w)
    out_ch = cfg.scale * cfg.scale if cfg.upscale == "pixel_shuffle" else 1
    final = b * 2 * w * k * k * out_ch + out_ch
    return convs + final


def flops_per_output_pixel(cfg: ModelConfig) -> float:
    """FLOPs (2 x multiply-adds, biases and the residual ignored) per output (HR) pixel.

    The blocks run once per input pixel, i.e. once per scale^2 output pixels;
    pixel_shuffle's final conv too (it emits scale^2 values at once), while
    nearest_conv runs its final conv at output resolution.
    """
    w, b, k, s2 = cfg.width, cfg.blocks, cfg.final_kernel, cfg.scale * cfg.scale
    block_macs = 9 * w + (b - 1) * 2 * w * 9 * w
    if cfg.upscale == "pixel_shuffle":
        per_out = (block_macs + b * 2 * w * k * k * s2) / s2
    else:
        per_out = block_macs / s2 + b * 2 * w * k * k
    return 2.0 * per_out


# ---------------------------------------------------------------- checkpoints


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[UpshadeNet, dict]:
    """Rebuild the model of a checkpoint; returns ``(model in eval mode, checkpoint dict)``."""

    def _weights_mismatch(model: nn.Module, weights, exc: BaseException) -> str:
        """What differs between a model's tensors and a checkpoint's, in whole names (never cut mid-name)."""

        def names(items, limit=3):
            items = sorted(items)
            shown = ", ".join(items[:limit])
            return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")

        if not isinstance(weights, dict):
            return f"'model' is a {type(weights).__name__}, not a dict of tensors"
        want = model.state_dict()
        missing = set(want) - set(weights)
        unexpected = set(weights) - set(want)
        shapes = [f"{k} {tuple(getattr(weights[k], 'shape', ()))} instead of {tuple(want[k].shape)}"
                  for k in sorted(set(want) & set(weights))
                  if tuple(getattr(weights[k], "shape", ())) != tuple(want[k].shape)]
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {names(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} of another shape: {names(shapes, 2)}")
        return "; ".join(parts) or " ".join(str(exc).split())[:160]

    p = Path(path)
    if not p.exists():
        raise UpshadeError(f"{p}: checkpoint not found")
    if p.is_dir():
        raise UpshadeError(f"{p}: is a directory, not a checkpoint file")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: all mean "not a readable checkpoint"
        if not zipfile.is_zipfile(p):
            # torch.save writes a zip archive; anything else (a text file, random bytes) fails deep
            # inside the unpickler with messages such as KeyError(101) that say nothing.
            raise UpshadeError(f"{p}: not a readable PyTorch checkpoint (not the zip archive "
                               f"torch.save writes)") from None
        first = " ".join(str(exc).split()) or type(exc).__name__
        if len(first) > 160:
            first = first[:160].rsplit(" ", 1)[0] + " ..."
        raise UpshadeError(f"{p}: not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt or "model" not in ckpt:
        raise UpshadeError(f"{p}: not an upshade checkpoint (expected a dict with 'config' and 'model')")
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
    except (TypeError, UpshadeError) as exc:
        raise UpshadeError(f"{p}: bad model config in checkpoint: {exc}") from None
    model = UpshadeNet(cfg)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise UpshadeError(f"{p}: weights do not match its config "
                           f"(blocks={cfg.blocks}, width={cfg.width}: {_weights_mismatch(model, ckpt['model'], exc)})"
                           ) from None
    model.eval()
    return model, ckpt


# ---------------------------------------------------------------- CLI: upshade model-info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoints", nargs="*", metavar="CKPT", help="checkpoint files to describe (besides the sizes)"
    )
    parser.add_argument(
        "--size",
        action="append",
        choices=sorted(SIZES),
        type=str.upper,
        help="describe this shipped size (repeatable); default: all sizes when no CKPT is given",
    )


def _row(name: str, cfg: ModelConfig) -> tuple[str, ...]:
    return (
        name,
        str(cfg.blocks),
        str(cfg.width),
        cfg.upscale,
        str(cfg.final_kernel),
        cfg.residual,
        f"{param_count(cfg):,}",
        f"{flops_per_output_pixel(cfg):,.0f}",
    )


def run(args: argparse.Namespace) -> int:
    rows = []
    sizes = args.size or ([] if args.checkpoints else list(SIZES))
    for s in sizes:
        rows.append(_row(s, SIZES[s]))
    for path in args.checkpoints:
        model, _ = load_checkpoint(path)
        rows.append(_row(str(path), model.cfg))
    head = ("model", "blocks", "width", "upscale", "final_k", "residual", "params", "FLOPs/out px")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {1, 2, 4, 6, 7}
    for r in [head, *rows]:
        print("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    print("FLOPs = 2 x multiply-adds per output (x2) pixel; biases and the residual interpolation not counted.")
    return 0
