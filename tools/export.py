"""Export a trained UpshadeNet checkpoint to an mpv user shader ("hook" format).

``upshade export CKPT -o shaders/NAME.glsl`` writes a file that runs both in
mpv (``--glsl-shaders``) and in the upshade host, and matches the PyTorch
forward pass to float precision.

How the network maps onto hook passes (all hooked on LUMA):

* Every conv layer becomes one pass per group of 4 output channels. A pass
  stores its *pre-activation* values; the reading pass applies CReLU as
  ``max(v, 0.0)`` / ``max(-v, 0.0)``, so one RGBA texture carries 8 features.
* Replicate padding is ``texelFetch`` at clamped integer coordinates (the
  same values as clamp-to-edge sampling at texel centres, but no filtering
  work: about 20% faster on llvmpipe).
* The final layer is lowered to a low-resolution conv with one output channel
  per sub-pixel: pixel_shuffle already is one; nearest_conv's 3x3 conv over
  nearest-upsampled features equals, for each of the 4 sub-pixels, a conv of
  the low-resolution features with a folded kernel. So the expensive product
  runs once per source pixel instead of once per output pixel. It binds the
  saved textures of every block (the concatenation), split into partial-sum
  passes beyond 15 binds (16 in compute passes; see FRAGMENT_MAX_BINDS). A bicubic residual is added there too (its 4
  sub-pixel values come from one 5x5 neighbourhood).
* The last pass runs at twice the size: it picks the sub-pixel value for its
  output position (depth-to-space) and adds the bilinear residual with one
  hardware-filtered LUMA sample.

Compute passes (``--compute``; the default is the fragment form above): every
invocation computes a 2x2 block of source pixels, fetching the 4x4 texels its
four 3x3 windows share once (16 fetches instead of 36 per texture), and the
last final pass writes the 2x2 output pixels of each source pixel itself
(depth-to-space) with the residual computed from the luma it already read:
the sub-pixel texture and the full-size pass disappear. Same math, same
weights. On llvmpipe (640x360 -> 1280x720) the S network took 36% less time
(23.3 instead of 36.6 ms: conv passes -33%, final + depth-to-space -39%), L
about 30% less. Larger blocks (2x4) gained another 7% but doubled the code and
tripled the compile time; workgroup tiles in shared memory were slower than
registers there (barriers are costly on llvmpipe). On a GPU it is the other
way round: on an NVIDIA H100 the fragment form ran 2x (M) to 3.3x (L) faster
than the compute form (640x360 -> 720p: L 6.2 vs 16.5 ms), because the 2x2
block's 4x4 windows over every bound texture overflow the registers. So the
fragment form is the default and the shipped ``upshade_X.glsl`` (it also runs
on every mpv backend); ``upshade_X_compute.glsl`` is what the host picks on a
software rasteriser (see host/paths.py). Compute passes need OpenGL 4.3,
Vulkan or D3D11 in mpv.

Tiled passes (``--tiled``, tools/export_tiled.py): pairs of layers fused per
compute pass in registers on 4x4 blocks, the final conv kept as a running sum
handed from pass to pass; within noise of the compute form on llvmpipe (S, M;
slower for L) and far slower to compile, so the host does not pick it.

Chained stages (``--stages 2``: the ``_x4`` files): the x2 network twice in one
file, as Anime4K's x4 modes do. Stage 1 is the x2 file's passes unchanged;
stage 2 the same passes on textures of their own (``UPSHADE_M_STAGE2_*``),
hooked on the LUMA stage 1 doubled and gated from 2.2x the source per side,
only once stage 1 ran (see ``stage_gate``); the player's scaler fits the exact
size.

Weights are GLSL literals (on llvmpipe they ran 2.4x faster than uniform
arrays) printed with ``%.9g``, which round-trips float32 exactly. The output
is a pure function of the checkpoint: no timestamps, no absolute paths.

ONNX (``--format onnx``, or an ``-o`` ending in ``.onnx``): the same network as
one luma-in, luma-out graph for VapourSynth (vs-mlrt) and chaiNNer: input
``input`` (N, 1, H, W) float32, full-range luma in 0..1, output ``output``
(N, 1, 2H, 2W), the residual included and nothing clamped (what PyTorch
computes; N, H and W are dynamic). It is written by torch's own exporter
(``torch.onnx.export(dynamo=True)``, which needs ``onnx`` and ``onnxscript``;
the older TorchScript exporter is deprecated and spelled the replicate padding
as ~120 shape-computing nodes) at opset 18, the lowest that exporter
implements (ONNX Runtime >= 1.14, TensorRT 8.6+, OpenVINO): Pad (edge), Conv,
Relu, Neg, Concat, DepthToSpace (CRD) or Resize (nearest), Resize (linear or
cubic, half_pixel), Add. Weights are stored inside the one file; torch's
per-node debug metadata is dropped and upshade's (name, config, parameters,
source checkpoint) is added, so the bytes are a pure function of the checkpoint
too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..host.api import LATER_STAGE_MIN_SCALE, STAGE_MIN_SCALE, UpshadeError, atomic_output
from .model import ModelConfig, UpshadeNet, load_checkpoint, param_count

__all__ = ["Lowered", "lower", "export_shader", "export_onnx", "add_arguments", "run"]

# The network is skipped unless the output is enlarged by more than this
# factor in both directions (it only knows how to double). The host picks a chained
# (x4) file by the same number: host/paths.STAGE_MIN_SCALE.
WHEN_MIN_SCALE = STAGE_MIN_SCALE
LATER_WHEN_MIN_SCALE = LATER_STAGE_MIN_SCALE  # stages 2..: see stage_gate
MAX_BINDS = 16  # the hook format's (and mpv's) limit of textures per pass
# libplacebo (mpv's vo=gpu-next) gives every texture a fragment pass binds its own
# vertex attribute (its coordinates) beside the position, and OpenGL guarantees
# only 16 attributes: a fragment pass binding 16 textures fails to link there
# (seen with mpv 0.35 on Mesa). Compute passes have no vertex stage.
FRAGMENT_MAX_BINDS = MAX_BINDS - 1
# The shader exports of a model (see export_shader): one network, three kinds of passes.
SHADER_FORMS = ("fragment", "compute", "tiled")
# `--stages N`: the x2 network N times in one file (x4, x8, ...: Anime4K's x4 modes do the same),
# every stage gated by the same WHEN on the luma the stage before it doubled; the forms it supports.
MAX_STAGES = 4
STAGED_FORMS = ("fragment", "compute")

# torch's bicubic (a = -0.75, align_corners=False) at x2 samples the source
# at offsets -0.25 (even outputs: taps -2..1) and +0.25 (odd outputs: taps
# -1..2). These are its 4 weights for each, exact in binary (multiples of 1/256).
_A = -0.75


def _cubic_near(x: float) -> float:  # |x| <= 1
    return ((_A + 2) * x - (_A + 3)) * x * x + 1


def _cubic_far(x: float) -> float:  # 1 < |x| < 2
    return ((_A * x - 5 * _A) * x + 8 * _A) * x - 4 * _A


def _bicubic_taps(t: float) -> tuple[float, float, float, float]:
    return (_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t))


BICUBIC_EVEN = _bicubic_taps(0.75)  # output 2x: taps x-2, x-1, x, x+1
BICUBIC_ODD = _bicubic_taps(0.25)   # output 2x+1: taps x-1, x, x+1, x+2


# ------------------------------------------------------------------ lowering


@dataclass(frozen=True)
class Lowered:
    """The network in the shape the shader computes it, as float64 arrays.

    Feature textures hold 4 pre-activation channels each; ``groups`` textures
    per layer. Input channels of every conv after the first are in *texture
    order*: for texture ``t``, 4 channels of ``relu(v)`` then 4 of ``relu(-v)``
    (``8 * t + i`` and ``8 * t + 4 + i``), zero-padded where ``4 t + i >= width``.

    ``final_w`` is a low-resolution conv whose output channel ``k`` is the
    sub-pixel ``(k // 2, k % 2)`` (``n_out == 4``), or a single channel shared
    by all 4 sub-pixels (``n_out == 1``: nearest_conv with a 1x1 kernel).
    """

    config: dict
    width: int
    groups: int
    convs: tuple[tuple[np.ndarray, np.ndarray], ...]  # (4*groups, Cin, 3, 3), (4*groups,)
    final_w: np.ndarray                               # (n_out, blocks*groups*8, k, k)
    final_b: np.ndarray                               # (n_out,)
    residual: str                                     # "bilinear" | "bicubic"

    @property
    def blocks(self) -> int:
        return len(self.convs)

    @property
    def n_out(self) -> int:
        return self.final_w.shape[0]


def _texture_order(weight: np.ndarray, width: int, groups: int, sources: int) -> np.ndarray:
    """Reorder CReLU input channels (per source: W relu then W relu-neg) into texture order."""
    out_c, _, kh, kw = weight.shape
    res = np.zeros((out_c, sources * groups * 8, kh, kw), dtype=np.float64)
    for s in range(sources):
        base = s * 2 * width
        for c in range(width):
            t, i = divmod(c, 4)
            dst = (s * groups + t) * 8 + i
            res[:, dst] = weight[:, base + c]
            res[:, dst + 4] = weight[:, base + width + c]
    return res


def _pad_out(a: np.ndarray, n: int) -> np.ndarray:
    pad = np.zeros((n,) + a.shape[1:], dtype=np.float64)
    pad[: a.shape[0]] = a
    return pad


def _fold_nearest_conv(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A kxk conv over nearest-x2-upsampled features as a 4-channel conv at low resolution.

    Output row 2y+sy, tap ky reads upsampled row 2y+sy+ky-1, i.e. source row
    y + (sy+ky-1)//2; the same holds for columns. Clamping at the high- or the
    low-resolution edge picks the same source row, so replicate padding is
    preserved.
    """
    _, cin, k, _ = w.shape
    if k == 1:
        return w.astype(np.float64), b.astype(np.float64)
    folded = np.zeros((4, cin, 3, 3), dtype=np.float64)
    r = k // 2
    for sy in range(2):
        for sx in range(2):
            for ky in range(k):
                for kx in range(k):
                    ly = (sy + ky - r) // 2 + 1
                    lx = (sx + kx - r) // 2 + 1
                    folded[sy * 2 + sx, :, ly, lx] += w[0, :, ky, kx]
    return folded, np.repeat(b.astype(np.float64), 4)


def lower(config: Mapping[str, Any], state: Mapping[str, Any]) -> Lowered:
    """Check a config + state dict (tensors or arrays) and lower it to shader form."""
    mcfg = ModelConfig.from_dict(dict(config))   # the model's own defaults and checks
    cfg = mcfg.to_dict()
    blocks, width, k = mcfg.blocks, mcfg.width, mcfg.final_kernel
    groups = -(-width // 4)
    if groups > MAX_BINDS:
        raise UpshadeError(f"width {width} needs {groups} textures per layer; a pass can bind at most {MAX_BINDS}")

    def get(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in state:
            raise UpshadeError(f"weights lack {key!r} (not an upshade model of this config)")
        value = state[key]
        arr = (value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)).astype(np.float64)
        if arr.shape != shape:
            raise UpshadeError(f"weights {key!r} have shape {arr.shape}, the config needs {shape}")
        if not np.all(np.isfinite(arr)):
            raise UpshadeError(f"weights {key!r} contain NaN or infinity")
        return arr

    convs = []
    for i in range(blocks):
        cin = 1 if i == 0 else 2 * width
        w = get(f"convs.{i}.weight", (width, cin, 3, 3))
        b = get(f"convs.{i}.bias", (width,))
        if i > 0:
            w = _texture_order(w, width, groups, 1)
        convs.append((_pad_out(w, 4 * groups), _pad_out(b, 4 * groups)))

    n_final = 4 if cfg["upscale"] == "pixel_shuffle" else 1
    fw = get("final.weight", (n_final, blocks * 2 * width, k, k))
    fb = get("final.bias", (n_final,))
    fw = _texture_order(fw, width, groups, blocks)
    if cfg["upscale"] == "nearest_conv":
        fw, fb = _fold_nearest_conv(fw, fb)
    return Lowered(cfg, width, groups, tuple(convs), fw, fb, cfg["residual"])


# ------------------------------------------------------------------ GLSL text


def _num(v: float) -> str:
    s = "%.9g" % v
    # GLSL ES and strict compilers reject int literals where a float is needed.
    return s if any(c in s for c in ".e") else s + ".0"


def _vec4(values) -> str:
    return "vec4(" + ", ".join(_num(v) for v in values) + ")"


def _mat4(m: np.ndarray) -> str:
    """``mat4(...) * v`` computes ``m @ v``: GLSL constructors take columns."""
    return "mat4(" + ", ".join(_num(v) for v in m.T.reshape(-1)) + ")"


def _identifier(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
    return ident or "MODEL"


def _taps(k: int):
    r = k // 2
    return [(ky, kx, kx - r, ky - r) for ky in range(k) for kx in range(k)]


def _grid(ref: str, reach: int) -> list[str]:
    """Integer coordinates of this pass's texel and its neighbours up to ``reach`` away, clamped.

    All low-resolution textures share one grid, so one set serves every bind.
    Clamped ``texelFetch`` is exactly replicate padding, and on llvmpipe it is
    about 20% faster than filtered ``texture()`` reads at texel centres.
    """
    lines = [f"    ivec2 p = ivec2({ref}_pos * {ref}_size), lim = ivec2({ref}_size) - 1;"]
    lines += [f"    ivec2 m{d} = max(p - {d}, 0), p{d} = min(p + {d}, lim);" for d in range(1, reach + 1)]
    return lines


def _coord(dx: int, dy: int) -> str:
    def name(d: int) -> str:
        return "p" if d == 0 else (f"m{-d}" if d < 0 else f"p{d}")

    return name(dx) if dx == dy else f"ivec2({name(dx)}.x, {name(dy)}.y)"


def _fetch(tex: str, dx: int, dy: int) -> str:
    # Saved textures are float with multiplier 1; only the video plane needs HOOKED_mul.
    if tex == "HOOKED":
        return f"HOOKED_mul * texelFetch(HOOKED_raw, {_coord(dx, dy)}, 0).x"
    return f"texelFetch({tex}_raw, {_coord(dx, dy)}, 0)"


def _luma_vec4(offsets) -> str:
    """Four luma samples as one vec4 (``HOOKED_mul`` applied once)."""
    parts = ", ".join(f"texelFetch(HOOKED_raw, {_coord(dx, dy)}, 0).x" for dx, dy in offsets)
    return f"HOOKED_mul * vec4({parts})"


@dataclass
class _Pass:
    desc: str
    binds: list[str]
    body: list[str]
    save: str | None = None
    upscale: bool = False
    compute: tuple[int, int, int, int] | None = None  # //!COMPUTE bw bh tw th; the body is then `void hook()`
    height_mul: int = 1  # the saved texture is this many rows per source row (tiled export: features + sum)
    stage: int = 1  # which x2 stage of a chained export (see stage_gate)


def _crelu_terms(lines: list[str], acc: str, tex_w: np.ndarray, single: bool,
                 relu: tuple[str, str] = ("max(t, 0.0)", "max(-t, 0.0)")) -> None:
    """Append ``acc += W+ relu(t) + W- relu(-t)`` for one texture read into ``t``.

    ``tex_w`` is (n_out, 8): 4 positive then 4 negative input channels;
    ``relu`` the expressions for ``relu(t)`` and ``relu(-t)``.
    """
    for part, expr in ((tex_w[:, :4], relu[0]), (tex_w[:, 4:], relu[1])):
        if not np.any(part):
            continue
        if single:
            lines.append(f"    {acc} += dot({_vec4(part[0])}, {expr});")
        else:
            lines.append(f"    {acc} += {_mat4(part)} * {expr};")


def _conv_body(src: list[str], w: np.ndarray, b: np.ndarray) -> list[str]:
    lines = _grid(src[0], 1) + [f"    vec4 r = {_vec4(b)};", "    vec4 t;"]
    for ky, kx, dx, dy in _taps(3):
        for t, tex in enumerate(src):
            tw = w[:, t * 8:(t + 1) * 8, ky, kx]
            if not np.any(tw):
                continue
            lines.append(f"    t = {_fetch(tex, dx, dy)};")
            _crelu_terms(lines, "r", tw, single=False)
    lines.append("    return r;")
    return lines


def _first_conv_body(w: np.ndarray, b: np.ndarray) -> list[str]:
    """Layer 1 reads the single luma channel: group its 9 taps into vec4s of samples."""
    taps = _taps(3)
    lines = _grid("HOOKED", 1) + [f"    vec4 r = {_vec4(b)};"]
    for start in range(0, 9, 4):
        chunk = taps[start:start + 4]
        cols = np.stack([w[:, 0, ky, kx] for ky, kx, _, _ in chunk], axis=1)  # (4, n)
        if len(chunk) == 4:
            lines.append(f"    r += {_mat4(cols)} * ({_luma_vec4((dx, dy) for _, _, dx, dy in chunk)});")
        else:
            for j, (_, _, dx, dy) in enumerate(chunk):
                lines.append(f"    r += {_vec4(cols[:, j])} * ({_fetch('HOOKED', dx, dy)});")
    lines.append("    return r;")
    return lines


def _bicubic_lines(acc: str) -> list[str]:
    """torch's x2 bicubic for all 4 sub-pixels of this source pixel, from its 5x5 neighbourhood.

    Rows first (``he``/``ho``: even/odd output column, rows -2..1 in the vec4
    and row 2 in the float), then columns, as torch does; the clamped grid
    reproduces its clamped taps.
    """
    lines = [
        f"    const vec4 we = {_vec4(BICUBIC_EVEN)};",
        f"    const vec4 wo = {_vec4(BICUBIC_ODD)};",
        "    vec4 he, ho, s;",
        "    float he2, ho2, s2;",
    ]
    for row in range(-2, 3):
        lines.append(f"    s = {_luma_vec4((dx, row) for dx in range(-2, 2))};")
        lines.append(f"    s2 = {_fetch('HOOKED', 2, row)};")
        if row < 2:
            comp = "xyzw"[row + 2]
            lines.append(f"    he.{comp} = dot(s, we);")
            lines.append(f"    ho.{comp} = dot(vec4(s.yzw, s2), wo);")
        else:
            lines.append("    he2 = dot(s, we);")
            lines.append("    ho2 = dot(vec4(s.yzw, s2), wo);")
    lines.append(
        f"    {acc} += vec4(dot(he, we), dot(ho, we), dot(vec4(he.yzw, he2), wo), dot(vec4(ho.yzw, ho2), wo));"
    )
    return lines


def _final_chunks(feats: list[str], hooked_last: bool, limit: int = MAX_BINDS) -> list[list[str]]:
    """Split the final conv's inputs over passes of at most ``limit`` textures.

    Every pass after the first also binds the previous partial sum; the last
    one binds HOOKED too when ``hooked_last`` (for the residual it adds).
    """
    chunks: list[list[str]] = []
    rest = list(feats)
    while rest:
        cap = limit - (1 if chunks else 0)  # partial sum of the previous pass
        if len(rest) <= cap - hooked_last:
            chunks.append(rest)
            break
        take = min(cap, len(rest) - 1)
        chunks.append(rest[:take])
        rest = rest[take:]
    return chunks


def _conv_passes(low: Lowered, tag: str, layer_tex, compute: bool) -> list[_Pass]:
    passes = []
    g = low.groups
    grid = None
    if compute:
        (bx, by), (tx, ty) = BLOCK, CONV_THREADS
        grid = (bx * tx, by * ty, tx, ty)
    for i, (w, b) in enumerate(low.convs):
        cin = 1 if i == 0 else 2 * low.width
        for j, out in enumerate(layer_tex(i)):
            w_j, b_j = w[4 * j:4 * j + 4], b[4 * j:4 * j + 4]
            part = "" if g == 1 else f", out {4 * j}-{min(4 * j + 4, low.width) - 1}"
            desc = f"{tag} conv{i + 1} ({cin}->{low.width}{part})"
            src = ["HOOKED"] if i == 0 else layer_tex(i - 1)
            if compute:
                body = _compute_first_conv_body(w_j, b_j) if i == 0 else _compute_conv_body(src, w_j, b_j)
            else:
                body = _first_conv_body(w_j, b_j) if i == 0 else _conv_body(src, w_j, b_j)
            passes.append(_Pass(desc, src, body, save=out, compute=grid))
    return passes


def _final_passes(low: Lowered, tag: str, feats: list[str], prefix: str, sub_tex: str) -> list[_Pass]:
    """The final conv over all block features (+ bicubic residual), saved as 4 sub-pixel values."""
    passes = []
    bicubic = low.residual == "bicubic"
    chunks = _final_chunks(feats, bicubic, FRAGMENT_MAX_BINDS)
    single = low.n_out == 1
    acc_t = "float" if single else "vec4"
    k = low.final_w.shape[-1]
    cin = low.blocks * 2 * low.width
    offset = 0
    for c, chunk in enumerate(chunks):
        last = c == len(chunks) - 1
        binds = list(chunk)
        lines = _grid(chunk[0], 2 if last and bicubic else k // 2)
        if c == 0:
            lines.append(f"    {acc_t} r = {_num(low.final_b[0]) if single else _vec4(low.final_b)};")
        else:
            prev = f"{prefix}_SUM{c}"
            binds.insert(0, prev)
            lines.append(f"    {acc_t} r = texelFetch({prev}_raw, p, 0){'.x' if single else ''};")
        lines.append("    vec4 t;")
        for ky, kx, dx, dy in _taps(k):
            for t, tex in enumerate(chunk):
                ch = (offset + t) * 8
                tw = low.final_w[:, ch:ch + 8, ky, kx]
                if not np.any(tw):
                    continue
                lines.append(f"    t = {_fetch(tex, dx, dy)};")
                _crelu_terms(lines, "r", tw, single)
        offset += len(chunk)
        if last:
            desc = f"{tag} final ({cin}->{4 if low.config['upscale'] == 'pixel_shuffle' else 1})"
            if bicubic:
                binds.append("HOOKED")
                desc += " + bicubic residual"
                if single:
                    lines.append("    vec4 y = vec4(r);")
                    lines += _bicubic_lines("y")
                    lines.append("    return y;")
                else:
                    lines += _bicubic_lines("r")
                    lines.append("    return r;")
            else:
                lines.append(f"    return {'vec4(r)' if single else 'r'};")
            save = sub_tex
        else:
            desc = f"{tag} final ({cin}->{low.n_out}, partial sum {c + 1}/{len(chunks)})"
            lines.append(f"    return {'vec4(r, 0.0, 0.0, 0.0)' if single else 'r'};")
            save = f"{prefix}_SUM{c + 1}"
        passes.append(_Pass(desc, binds, lines, save=save))
    return passes


def _output_pass(low: Lowered, tag: str, sub_tex: str) -> _Pass:
    """Depth-to-space at twice the size, plus the bilinear residual (one filtered luma sample)."""
    bicubic = low.residual == "bicubic"
    body = [
        f"    vec2 lr = {sub_tex}_pos * {sub_tex}_size;",
        "    vec2 s = step(0.5, fract(lr));",
        f"    vec4 v = texelFetch({sub_tex}_raw, ivec2(lr), 0);",
        "    float y = mix(mix(v.x, v.y, s.x), mix(v.z, v.w, s.x), s.y);",
    ]
    binds = [sub_tex]
    if not bicubic:
        binds.insert(0, "HOOKED")
        body.append("    y += HOOKED_tex(HOOKED_pos).x;")
    body.append("    return vec4(y, 0.0, 0.0, 1.0);")
    desc = f"{tag} depth-to-space" + ("" if bicubic else " + bilinear residual") + " (x2)"
    return _Pass(desc, binds, body, upscale=True)


# ------------------------------------------------------------------ compute passes
#
# A fragment pass fetches the whole 3x3 neighbourhood of every input texture
# for each pixel. A compute invocation here computes a BLOCK of adjacent
# pixels from registers: a 2x2 block reads the 4x4 texels its four 3x3 windows
# share once (16 fetches instead of 36 per texture). The multiply-adds stay the
# same. The last pass also writes the 2x2 output pixels of each source pixel
# itself (depth-to-space) with the residual added, so the sub-pixel texture and
# the full-size pass that read it back disappear.

BLOCK = (2, 2)            # source pixels per invocation
CONV_THREADS = (32, 4)    # work group size (llvmpipe: small groups cost more than they save)
FINAL_THREADS = (32, 2)


def _block_grid(ref: str, reach: int) -> list[str]:
    """This invocation's block origin ``o`` and the clamped columns ``xi`` / rows ``yj`` around it.

    Index ``i`` is offset ``i - reach`` from the block's first column. Clamping
    keeps the reads of a partial block at the edge inside the texture.
    """
    bx, by = BLOCK
    lines = [f"    ivec2 o = ivec2(gl_GlobalInvocationID.xy) * ivec2({bx}, {by}), lim = ivec2({ref}_size) - 1;"]
    for axis, n in (("x", bx), ("y", by)):
        decl = ", ".join(f"{axis}{i} = clamp(o.{axis} + {i - reach}, 0, lim.{axis})" for i in range(n + 2 * reach))
        lines.append(f"    int {decl};")
    return lines


def _block_pixels():
    bx, by = BLOCK
    return [(ox, oy) for oy in range(by) for ox in range(bx)]


def _acc(ox: int, oy: int) -> str:
    return f"r{ox}_{oy}"


def _block_conv(lines: list[str], src: list[str], w: np.ndarray, reach: int, single: bool, ch0: int = 0) -> None:
    """Accumulate a kxk conv of ``src`` (CReLU at read) into every pixel's accumulator.

    Each texel of the block's neighbourhood is fetched once and feeds every
    pixel whose window covers it. ``w`` is (n_out, Cin, k, k) in texture order;
    ``src[t]`` holds its input channels ``ch0 + 8 t ...``.
    """
    bx, by = BLOCK
    k = w.shape[-1]
    r = k // 2
    for t, tex in enumerate(src):
        ch = ch0 + 8 * t
        for j in range(by + 2 * reach):
            for i in range(bx + 2 * reach):
                uses = []
                for ox, oy in _block_pixels():
                    kx, ky = i - reach - ox + r, j - reach - oy + r
                    if 0 <= kx < k and 0 <= ky < k and np.any(w[:, ch:ch + 8, ky, kx]):
                        uses.append((ox, oy, w[:, ch:ch + 8, ky, kx]))
                if not uses:
                    continue
                lines.append(f"    t = texelFetch({tex}_raw, ivec2(x{i}, y{j}), 0);")
                lines.append("    a = max(t, 0.0); b = max(-t, 0.0);")
                for ox, oy, tw in uses:
                    _crelu_terms(lines, _acc(ox, oy), tw, single, relu=("a", "b"))


def _luma(i: int, j: int) -> str:
    return f"l{i}_{j}"


def _luma_grid(reach: int) -> list[str]:
    bx, by = BLOCK
    names = [f"{_luma(i, j)} = HOOKED_mul * texelFetch(HOOKED_raw, ivec2(x{i}, y{j}), 0).x"
             for j in range(by + 2 * reach) for i in range(bx + 2 * reach)]
    return [f"    float {', '.join(names[n:n + 4])};" for n in range(0, len(names), 4)]


def _inside(ox: int, oy: int) -> str:
    # Vulkan leaves stores outside the image undefined (GL drops them): a partial block skips them.
    return f"if (all(lessThanEqual(o + ivec2({ox}, {oy}), lim)))"


def _store_block(lines: list[str], single: bool) -> None:
    for ox, oy in _block_pixels():
        v = f"vec4({_acc(ox, oy)}, 0.0, 0.0, 0.0)" if single else _acc(ox, oy)
        lines.append(f"    {_inside(ox, oy)} imageStore(out_image, o + ivec2({ox}, {oy}), {v});")


def _compute_first_conv_body(w: np.ndarray, b: np.ndarray) -> list[str]:
    lines = _block_grid("HOOKED", 1) + _luma_grid(1)
    taps = _taps(3)
    for ox, oy in _block_pixels():
        acc = _acc(ox, oy)
        lines.append(f"    vec4 {acc} = {_vec4(b)};")
        for start in range(0, 9, 4):
            chunk = taps[start:start + 4]
            cols = np.stack([w[:, 0, ky, kx] for ky, kx, _, _ in chunk], axis=1)  # (4, n)
            lums = [_luma(ox + 1 + dx, oy + 1 + dy) for _, _, dx, dy in chunk]
            if len(chunk) == 4:
                lines.append(f"    {acc} += {_mat4(cols)} * vec4({', '.join(lums)});")
            else:
                for col, lum in zip(cols.T, lums):
                    lines.append(f"    {acc} += {_vec4(col)} * {lum};")
    _store_block(lines, single=False)
    return lines


def _compute_conv_body(src: list[str], w: np.ndarray, b: np.ndarray) -> list[str]:
    lines = _block_grid(src[0], 1)
    lines += [f"    vec4 {_acc(ox, oy)} = {_vec4(b)};" for ox, oy in _block_pixels()]
    lines.append("    vec4 t, a, b;")
    _block_conv(lines, src, w, 1, single=False)
    _store_block(lines, single=False)
    return lines


def _compute_bicubic(lines: list[str], ox: int, oy: int, reach: int) -> str:
    """torch's x2 bicubic for the 4 sub-pixels of block pixel (ox, oy), as a vec4 expression.

    Rows first, then columns, as torch does (see ``_bicubic_lines``).
    """
    cx, cy = ox + reach, oy + reach
    he, ho = f"he{ox}_{oy}", f"ho{ox}_{oy}"
    rows_e, rows_o = [], []
    for dy in range(-2, 3):
        even = ", ".join(_luma(cx + dx, cy + dy) for dx in range(-2, 2))
        odd = ", ".join(_luma(cx + dx, cy + dy) for dx in range(-1, 3))
        rows_e.append(f"dot(vec4({even}), we)")
        rows_o.append(f"dot(vec4({odd}), wo)")
    lines.append(f"    vec4 {he} = vec4({', '.join(rows_e[:4])}), {ho} = vec4({', '.join(rows_o[:4])});")
    lines.append(f"    float {he}2 = {rows_e[4]}, {ho}2 = {rows_o[4]};")
    return (f"vec4(dot({he}, we), dot({ho}, we), dot(vec4({he}.yzw, {he}2), wo), "
            f"dot(vec4({ho}.yzw, {ho}2), wo))")


def _compute_bilinear(lines: list[str], ox: int, oy: int, reach: int) -> str:
    """The x2 bilinear (align_corners=False) for the 4 sub-pixels of block pixel (ox, oy), as a vec4.

    A sub-pixel sits a quarter texel from its source texel: weights 3/4 and 1/4
    towards the neighbour on its side, clamped as the texture sampler clamps.
    """
    cx, cy = ox + reach, oy + reach

    def col(dx):
        return f"vec3({', '.join(_luma(cx + dx, cy + dy) for dy in (-1, 0, 1))})"

    he, ho = f"he{ox}_{oy}", f"ho{ox}_{oy}"  # rows -1, 0, +1 of the even and the odd output column
    lines.append(f"    vec3 {he} = 0.25 * {col(-1)} + 0.75 * {col(0)}, {ho} = 0.75 * {col(0)} + 0.25 * {col(1)};")
    return (f"vec4(dot({he}.xy, up), dot({ho}.xy, up), dot({he}.yz, down), dot({ho}.yz, down))")


def _compute_final_passes(low: Lowered, tag: str, feats: list[str], prefix: str) -> list[_Pass]:
    """The final conv as compute passes; the last one writes the x2 output with the residual added."""
    bx, by = BLOCK
    tx, ty = FINAL_THREADS
    passes = []
    bicubic = low.residual == "bicubic"
    chunks = _final_chunks(feats, True)  # the last pass binds HOOKED for either residual
    single = low.n_out == 1
    acc_t = "float" if single else "vec4"
    k = low.final_w.shape[-1]
    cin = low.blocks * 2 * low.width
    n_out = 4 if low.config["upscale"] == "pixel_shuffle" else 1
    offset = 0
    for c, chunk in enumerate(chunks):
        last = c == len(chunks) - 1
        reach = max(k // 2, 2 if bicubic else 1) if last else k // 2
        binds = list(chunk)
        lines = _block_grid(chunk[0], reach)
        if c == 0:
            init = [_num(low.final_b[0]) if single else _vec4(low.final_b)] * (bx * by)
        else:
            prev = f"{prefix}_SUM{c}"
            binds.insert(0, prev)
            init = [f"texelFetch({prev}_raw, ivec2(x{ox + reach}, y{oy + reach}), 0){'.x' if single else ''}"
                    for ox, oy in _block_pixels()]
        lines += [f"    {acc_t} {_acc(ox, oy)} = {v};" for (ox, oy), v in zip(_block_pixels(), init)]
        lines.append("    vec4 t, a, b;")
        _block_conv(lines, chunk, low.final_w, reach, single, ch0=8 * offset)
        offset += len(chunk)
        if not last:
            _store_block(lines, single)
            desc = f"{tag} final ({cin}->{low.n_out}, partial sum {c + 1}/{len(chunks)})"
            passes.append(_Pass(desc, binds, lines, save=f"{prefix}_SUM{c + 1}", compute=(bx * tx, by * ty, tx, ty)))
            continue
        binds.append("HOOKED")
        lines += _luma_grid(reach)
        if bicubic:
            lines.append(f"    const vec4 we = {_vec4(BICUBIC_EVEN)};")
            lines.append(f"    const vec4 wo = {_vec4(BICUBIC_ODD)};")
        else:
            lines.append("    const vec2 up = vec2(0.25, 0.75), down = vec2(0.75, 0.25);")
        for ox, oy in _block_pixels():
            res = (_compute_bicubic if bicubic else _compute_bilinear)(lines, ox, oy, reach)
            y = f"s{ox}_{oy}"  # the 4 output sub-pixels of this source pixel
            lines.append(f"    vec4 {y} = {_acc(ox, oy)} + {res};")
            lines.append(f"    {_inside(ox, oy)} {{")
            lines.append(f"        ivec2 q = 2 * (o + ivec2({ox}, {oy}));")
            for s, (sx, sy) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
                lines.append(f"        imageStore(out_image, q + ivec2({sx}, {sy}), vec4({y}.{'xyzw'[s]}, 0.0, 0.0, 1.0));")
            lines.append("    }")
        desc = f"{tag} final ({cin}->{n_out}) + depth-to-space + {low.residual} residual (x2)"
        passes.append(_Pass(desc, binds, lines, upscale=True, compute=(2 * bx * tx, 2 * by * ty, tx, ty)))
    return passes


def stage_names(name: str, stage: int = 1) -> tuple[str, str]:
    """(texture prefix, description tag) of x2 stage ``stage`` of an export named ``name``.

    Stage 1 keeps the names of the plain x2 file, so a chained file starts with its passes;
    later stages get their own textures (``UPSHADE_M_STAGE2_C1``), which mpv needs to keep
    the two instances apart in one chain.
    """
    prefix, tag = "UPSHADE_" + _identifier(name), f"upshade {name}"
    return (prefix, tag) if stage == 1 else (f"{prefix}_STAGE{stage}", f"{tag} stage {stage}")


def _passes(low: Lowered, name: str, compute: bool, stage: int = 1) -> list[_Pass]:
    prefix, tag = stage_names(name, stage)
    sub_tex = f"{prefix}_SUB"

    def layer_tex(i: int) -> list[str]:
        return [f"{prefix}_C{i + 1}" + (f"_{j}" if low.groups > 1 else "") for j in range(low.groups)]

    feats = [t for i in range(low.blocks) for t in layer_tex(i)]
    convs = _conv_passes(low, tag, layer_tex, compute)
    if compute:
        return convs + _compute_final_passes(low, tag, feats, prefix)
    return convs + _final_passes(low, tag, feats, prefix, sub_tex) + [_output_pass(low, tag, sub_tex)]


def _header(low: Lowered, name: str, source: str, params: int, n_passes: int,
            metrics: Mapping[str, Any] | None, stages: int = 1) -> list[str]:
    cfg = " ".join(f"{k}={v}" for k, v in low.config.items())
    what = ": x2 CNN luma upscaler" if stages == 1 else f" x{2 ** stages}: the x2 CNN luma upscaler run {stages} times,"
    lines = [
        f"// upshade {name}{what} for mpv (--glsl-shaders) and the upshade host.",
        f"// Generated by `upshade export` from {source}: edit the model, not this file.",
        f"// config: {cfg}",
        f"// parameters: {params}, passes: {n_passes}",
    ]
    if stages > 1:
        lines.append(f"// stages: {stages}; stage 1 runs when the output is more than {WHEN_MIN_SCALE:g}x the video per "
                     f"side, stage k > 1")
        lines.append(f"//         when it is more than {LATER_WHEN_MIN_SCALE:g} * 2^(k-1)x (stage 2: from "
                     f"{2 * LATER_WHEN_MIN_SCALE:g}x); the scaler then fits the exact size")
    items = _flat_metrics(metrics or {})
    if items:
        row = "// metrics:"
        for item in items:
            if len(row) + len(item) + 1 > 100 and row != "// metrics:":
                lines.append(row)
                row = "//         "
            row += " " + item
        lines.append(row)
    lines.append("// MIT licence, like upshade.")
    return lines


def _flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Scalar metrics as ``key=value`` (nested dicts dotted; lists such as curves left out)."""
    out = []
    for key, value in metrics.items():
        key = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flat_metrics(value, key + ".")
        elif isinstance(value, bool) or isinstance(value, (int, np.integer)):
            out.append(f"{key}={value}")
        elif isinstance(value, (float, np.floating)) and math.isfinite(value):
            out.append(f"{key}={float(value):.6g}")
        elif isinstance(value, str) and "\n" not in value and len(value) <= 60:
            out.append(f"{key}={value}")
    return out


def stage_gate(stage: int = 1) -> str:
    """The WHEN of every pass of x2 stage ``stage``.

    Stage 1: the output is more than WHEN_MIN_SCALE times the luma per side. Later stages:
    more than LATER_WHEN_MIN_SCALE times the luma the stage before doubled, and that stage
    ran (the luma is already more than 0.75 x 2^(stage-1) times the source, NATIVE_CROPPED):
    x4 from 2.2x per side, where measured on Set5 and SYNLA-val it already beats x2 + bicubic.
    """
    if stage == 1:
        return f"OUTPUT.w LUMA.w / {WHEN_MIN_SCALE:.3f} > OUTPUT.h LUMA.h / {WHEN_MIN_SCALE:.3f} > *"
    ran = 0.75 * 2 ** (stage - 1)
    return (f"OUTPUT.w LUMA.w / {LATER_WHEN_MIN_SCALE:.3f} > OUTPUT.h LUMA.h / {LATER_WHEN_MIN_SCALE:.3f} > * "
            f"LUMA.w NATIVE_CROPPED.w / {ran:.3f} > *")


def _render(passes: list[_Pass], header: list[str]) -> str:
    out = list(header)
    for p in passes:
        out.append("")
        out.append(f"//!DESC {p.desc}")
        out.append("//!HOOK LUMA")
        out += [f"//!BIND {b}" for b in p.binds]
        if p.save:
            out.append(f"//!SAVE {p.save}")
            out.append("//!COMPONENTS 4")
        else:
            # The new LUMA: one component, so hosts that size targets by it (ours,
            # for compute passes too) write one float per pixel instead of four.
            out.append("//!COMPONENTS 1")
        if p.upscale:
            out.append("//!WIDTH LUMA.w 2 *")
            out.append("//!HEIGHT LUMA.h 2 *")
        elif p.height_mul > 1:
            out.append(f"//!HEIGHT LUMA.h {p.height_mul} *")
        out.append(f"//!WHEN {stage_gate(p.stage)}")
        if p.compute:
            out.append("//!COMPUTE " + " ".join(str(v) for v in p.compute))
        out.append("void hook() {" if p.compute else "vec4 hook() {")
        out += p.body
        out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ entry points


def _default_name(path: Path) -> str:
    stem = path.stem
    return stem[len("upshade_"):] if stem.lower().startswith("upshade_") and len(stem) > 8 else stem


def _load(path: Path):
    try:
        return load_checkpoint(path)
    except UpshadeError as exc:  # its messages already start with the path
        raise UpshadeError(str(exc)) from None


def _state_digest(state: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        digest.update(key.encode() + np.ascontiguousarray(arr, dtype="<f4").tobytes())
    return digest.hexdigest()[:16]


def export_shader(model_or_ckpt, name: str | None = None, *, compute: bool = False, form: str | None = None,
                  plan=None, stages: int = 1) -> str:
    """The hook shader text for a checkpoint path, a checkpoint dict or an UpshadeNet.

    ``name`` appears in pass descriptions and texture names (default: the
    checkpoint file name without ``upshade_``, e.g. ``M`` for ``upshade_M.pt``).
    ``form``: ``fragment`` (fragment passes only: any mpv GPU backend, e.g.
    OpenGL 4.1 on macOS, and the fast form on GPUs), ``compute`` (2x2 pixels per
    invocation; OpenGL 4.3 / Vulkan / D3D11) or ``tiled`` (fused compute passes,
    see export_tiled.py: the fast form on CPU rasterisers); ``compute=True`` is
    ``form="compute"``. ``plan``: a ``TiledPlan`` for the tiled form (default:
    the measured one). ``stages``: how many times the x2 network runs in the file (2: x4),
    each stage on the luma the one before doubled (see :func:`stage_names`).
    """
    form = form or ("compute" if compute else "fragment")
    if form not in SHADER_FORMS:
        raise UpshadeError(f"unknown shader form {form!r}: choose one of {', '.join(SHADER_FORMS)}")
    check_stages(stages, form)
    metrics = None
    if isinstance(model_or_ckpt, (str, Path)):
        path = Path(model_or_ckpt)
        model, ckpt = _load(path)
        config = model.cfg.to_dict()
        state = model.state_dict()
        metrics = ckpt.get("metrics")
        source = f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"
        name = name or _default_name(path)
        where = str(path)
    else:
        if isinstance(model_or_ckpt, Mapping):
            config, state, metrics = model_or_ckpt.get("config"), model_or_ckpt.get("model"), model_or_ckpt.get("metrics")
            if config is None or state is None:
                raise UpshadeError("checkpoint dict needs 'config' and 'model' entries")
        else:
            cfg = getattr(model_or_ckpt, "cfg", None)
            if cfg is None:
                raise UpshadeError(f"cannot export {type(model_or_ckpt).__name__}: it has no model config")
            config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
            state = model_or_ckpt.state_dict()
        source = f"in-memory weights (sha256 {_state_digest(state)})"
        name = name or "model"
        where = "model"
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    name = " ".join(str(name).split())
    try:
        low = lower(config, state)
    except UpshadeError as exc:
        raise UpshadeError(f"{where}: {exc}") from None
    params = param_count(ModelConfig.from_dict(low.config))
    if form == "tiled":
        from .export_tiled import TILED_REQUIREMENTS, tiled_passes   # it builds on this module

        passes = tiled_passes(low, name, plan)
        header = _header(low, name, source, params, len(passes), metrics)
        header.insert(4, f"// needs: {TILED_REQUIREMENTS}")
    else:
        passes = [dataclasses.replace(p, stage=k) for k in range(1, stages + 1)
                  for p in _passes(low, name, form == "compute", k)]
        header = _header(low, name, source, params, len(passes), metrics, stages)
    return _render(passes, header)


def check_stages(stages, form: str) -> None:
    """``stages`` must be a whole number in 1..MAX_STAGES, and above 1 only for fragment or compute passes."""
    if isinstance(stages, bool) or not isinstance(stages, int) or not 1 <= stages <= MAX_STAGES:
        raise UpshadeError(f"--stages {stages!r}: choose a whole number from 1 to {MAX_STAGES} "
                           f"(x2 to x{2 ** MAX_STAGES})")
    if stages > 1 and form not in STAGED_FORMS:
        raise UpshadeError(f"--stages {stages}: chained stages are exported as fragment or compute passes, "
                           f"not {form}")


# ------------------------------------------------------------------ ONNX

# The lowest opset torch's exporter implements (it cannot convert Pad below 18):
# ONNX Runtime >= 1.14, TensorRT >= 8.6 and current OpenVINO read it.
ONNX_OPSET = 18
ONNX_INPUT, ONNX_OUTPUT = "input", "output"
FORMATS = {"glsl": ".glsl", "onnx": ".onnx"}


def _onnx_model(model_or_ckpt, name: str | None):
    """(plain UpshadeNet in eval mode, name, source line, metrics) for a path, a checkpoint dict or a net."""
    if isinstance(model_or_ckpt, (str, Path)):
        path = Path(model_or_ckpt)
        model, ckpt = _load(path)
        source = f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"
        return model, name or _default_name(path), source, ckpt.get("metrics")
    if isinstance(model_or_ckpt, Mapping):
        config, state = model_or_ckpt.get("config"), model_or_ckpt.get("model")
        if config is None or state is None:
            raise UpshadeError("checkpoint dict needs 'config' and 'model' entries")
        model = UpshadeNet(ModelConfig.from_dict(dict(config)))
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise UpshadeError(f"checkpoint dict: weights do not match its config ({str(exc).splitlines()[0][:200]})") from None
        metrics = model_or_ckpt.get("metrics")
    elif isinstance(model_or_ckpt, UpshadeNet):
        model, metrics = model_or_ckpt, None
    else:
        raise UpshadeError(f"cannot export {type(model_or_ckpt).__name__}: not an upshade model or checkpoint")
    model = model.collapsed()
    return model, name or "model", f"in-memory weights (sha256 {_state_digest(model.state_dict())})", metrics


def _onnx_exporter():
    """torch, once what its ONNX exporter needs (onnx, onnxscript) imports; else one clear error."""
    import importlib

    missing = []
    for mod in ("onnx", "onnxscript"):
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise UpshadeError(f"ONNX export needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}: "
                           f"pip install 'upshade[train]'")
    import torch

    return torch


def export_onnx(model_or_ckpt, name: str | None = None, *, opset: int = ONNX_OPSET) -> bytes:
    """The network as an ONNX model (serialised bytes): luma (N, 1, H, W) in 0..1 -> (N, 1, 2H, 2W).

    ``model_or_ckpt``: a checkpoint path, a checkpoint dict or an UpshadeNet
    (its training form is collapsed first). Deterministic: the same weights
    give the same bytes.
    """
    torch = _onnx_exporter()
    model, name, source, metrics = _onnx_model(model_or_ckpt, name)
    name = " ".join(str(name).split())
    model = model.float().cpu().eval()
    example = (torch.rand(2, 1, 37, 53, generator=torch.Generator().manual_seed(0)),)
    dims = {0: torch.export.Dim("N"), 2: torch.export.Dim("H"), 3: torch.export.Dim("W")}
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        # The exporter reports progress on stdout and logs warnings (torchvision absent, deprecations).
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model, example, None, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                dynamic_shapes=(dims,), opset_version=opset, dynamo=True, external_data=False,
                optimize=True, report=False, verbose=False,
            )
            proto = program.model_proto
    except UpshadeError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UpshadeError(f"{name}: ONNX export failed ({type(exc).__name__}: {first[:200]})") from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    # torch's per-value debug metadata (node names, stack traces): not part of the network.
    graph = proto.graph
    for items in (graph.node, graph.input, graph.output, graph.value_info, graph.initializer):
        for item in items:
            del item.metadata_props[:]
            if hasattr(item, "doc_string"):
                item.doc_string = ""
    del graph.metadata_props[:]
    del proto.metadata_props[:]
    graph.name = re.sub(r"[^A-Za-z0-9_]+", "_", f"upshade_{name}")
    cfg = model.cfg.to_dict()
    params = param_count(model.cfg)
    proto.doc_string = (f"upshade {name}: x{cfg['scale']} luma upscaler. Input '{ONNX_INPUT}' (N, 1, H, W) float32, "
                        f"full-range luma in 0..1 (BT.601/709 Y' as the player decodes it); output '{ONNX_OUTPUT}' "
                        f"(N, 1, 2H, 2W), not clamped. Chroma is not part of the network (upscale it bicubically).")
    meta = {"name": name, "source": source, "params": str(params), "config": json.dumps(cfg, sort_keys=True)}
    if isinstance(metrics, Mapping):
        meta.update(("metrics." + k, v) for k, _, v in (line.partition("=") for line in _flat_metrics(metrics)))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"upshade.{key}", str(value)
    return proto.SerializeToString(deterministic=True)


def check_format(output: str | Path, fmt: str | None) -> str:
    """The export format: given (and checked against ``output``'s suffix) or told by a ``.onnx`` suffix."""
    out = Path(output)
    suffix = out.suffix.lower()
    if fmt is None:
        return "onnx" if suffix == ".onnx" else "glsl"
    if fmt not in FORMATS:
        raise UpshadeError(f"--format {fmt!r}: unknown format (choose {', '.join(FORMATS)})")
    if fmt == "onnx" and suffix != ".onnx":
        raise UpshadeError(f"{out}: --format onnx writes an .onnx file; name the output {out.stem}.onnx")
    if fmt == "glsl" and suffix == ".onnx":
        raise UpshadeError(f"{out}: --format glsl writes a hook shader, not an .onnx file; "
                           f"use --format onnx or name it {out.stem}.glsl")
    return fmt


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint written by `upshade train` (.pt)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.glsl|OUT.onnx",
                        help="the hook shader (or, with --format onnx, the ONNX model) to write")
    parser.add_argument("--format", metavar="glsl|onnx", default=None,
                        help="glsl: mpv hook shader (default); onnx: luma-in/luma-out ONNX model "
                             "(input (N,1,H,W) in 0..1, output (N,1,2H,2W)) for VapourSynth vs-mlrt, "
                             "chaiNNer, ONNX Runtime; default: onnx when OUT ends in .onnx")
    parser.add_argument(
        "--name",
        help="model name used in pass descriptions and texture names (default: from CKPT, e.g. M for upshade_M.pt)",
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--fragment", dest="form", action="store_const", const="fragment", default=None,
                      help="fragment passes, one pixel per invocation (default): fastest on GPUs, "
                           "runs on every mpv GPU backend (e.g. OpenGL 4.1 on macOS)")
    kind.add_argument("--compute", dest="form", action="store_const", const="compute",
                      help="compute passes, 2x2 pixels per invocation sharing their fetches: faster than "
                           "fragment passes on CPU rasterisers (llvmpipe); needs OpenGL 4.3, Vulkan or D3D11 in mpv")
    kind.add_argument("--tiled", dest="form", action="store_const", const="tiled",
                      help="fused compute passes (layers fused per pass, blocks of pixels per invocation): "
                           "the fastest form on CPU rasterisers (llvmpipe); needs compute shaders, like --compute")
    kind.add_argument("--form", dest="form", choices=SHADER_FORMS,
                      help="the shader form by name (fragment, compute or tiled)")
    parser.add_argument("--stages", type=int, default=1, metavar="N",
                        help=f"run the x2 network N times in the file (2: x4; 1..{MAX_STAGES}), each stage on the "
                             f"luma the one before doubled, with its own textures; stage k > 1 runs only when the "
                             f"output is more than {LATER_WHEN_MIN_SCALE:g} * 2^(k-1) times the video per side "
                             f"(fragment and compute forms)")


def run(args) -> int:
    ckpt = Path(args.checkpoint)
    fmt = check_format(args.output, getattr(args, "format", None))
    form = getattr(args, "form", None)
    if form is None and getattr(args, "compute", None) is not None:  # a namespace built for the old flags
        form = "compute" if args.compute else "fragment"
    stages = getattr(args, "stages", 1)
    if fmt == "onnx":
        if form is not None:
            raise UpshadeError(f"--{form} is a shader option; --format onnx has no passes")
        if stages != 1:
            raise UpshadeError(f"--stages {stages} is a shader option; the ONNX model is one x2 network "
                               f"(run it {stages} times)")
        data = export_onnx(ckpt, name=args.name)
        with atomic_output(args.output, inputs=[ckpt]) as tmp:
            tmp.write_bytes(data)
        print(f"{args.output}: ONNX opset {ONNX_OPSET}, luma (N,1,H,W) -> (N,1,2H,2W), from {ckpt.name}")
        return 0
    form = form or "fragment"
    check_stages(stages, form)  # before the checkpoint is read
    text = export_shader(ckpt, name=args.name, form=form, stages=stages)
    with atomic_output(args.output, inputs=[ckpt]) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    passes = text.count("\n//!HOOK ")
    chained = f" ({stages} x2 stages: x{2 ** stages})" if stages > 1 else ""
    print(f"{args.output}: {passes} {form} passes{chained} from {ckpt.name}")
    return 0
