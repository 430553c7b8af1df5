"""`upshade eval`: score bicubic, torch models and hook shaders on SR test sets.

Protocol (``../shared/data/README.md``, x2): HR -> RGB -> crop to a multiple of
2 -> LR by MATLAB bicubic -> SR (uint8, the method's x2 output) -> PSNR / SSIM
on BT.601 Y (16..235) with 2 pixels shaved from every border.

``--scale 4`` is the same protocol at x4 (crop to a multiple of 4, MATLAB bicubic
LR at 1/4, 4 pixels shaved): a GL method renders at 4x (an x2 file runs its
network once and the host's bicubic does the rest; an x4 file runs it twice), a
torch model is applied twice. Only the clean LR exists at x4.

``--degrade SPEC ...`` scores the real-world protocol too (tools/degrade.py):
``clean`` is the LR above, ``x264:CRF`` that LR through one libx264 frame,
``kernel:NAME`` the HR halved by swscale. Every (set, spec) pair is a board
column (``set14 x264:23``); each spec's LR images are made once and shared by
all methods. With any spec other than ``clean`` every HR (clean included) is
cropped to a multiple of 4, as that protocol says (the LR then has even
sides, which yuv420p needs); a clean-only run keeps the multiple of 2 and its
columns keep the set names, so today's numbers do not move (Set14 has four
images whose sides are not multiples of 4; Set5 and SYNLA-val have none).

Every GL method runs the whole RGB pipeline exactly as ``upshade image`` does
(LR RGB -> Frame -> Renderer.render at 2x -> uint8 RGB), so the bicubic
baseline is the host with no shader and a shader's score is what a user sees.
A torch model is scored the way the host would run its exported shader: full
range BT.601 luma of the LR through the network, chroma upscaled by bicubic
(a = -0.5, clamped edges), back to RGB and rounded; the model and its shader
therefore score within a few hundredths of a dB of each other.

Speed is milliseconds per 1920x1080 output frame on this machine: GL is the
median of N renders 960x540 -> 1920x1080 each followed by glFinish (which waits
for the GPU); torch is the median forward time of the network on a 960x540 luma
at its faster thread count (1 or all cores: busy machines punish OpenMP).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import av
import numpy as np

from ..host.api import (
    MODEL_NAMES,
    MediaError,
    Renderer,
    UpshadeError,
    WEIGHTS_DIR,
    atomic_output,
    check_output_path,
    create_headless_context,
    image_to_frame,
    is_model_name,
    load_shader,
    model_stem,
    progress,
    read_image,
)
from .data import NAMED_SOURCES, list_images, resolve_source, source_label
from .degrade import CODECS, SPEC_HELP, Spec, codec_available, degrade, parse_spec, parse_specs
from .metrics import as_rgb, crop_to_multiple, imresize_down, psnr_y, ssim_y

SCALE = 2
SHAVE = SCALE
SCALES = (2, 4)   # --scale: the x2 protocol, and the same at x4 (clean LR only)
# Timing frame: the output size every method is compared at (1080p from 540p at x2).
TIMING_IN = (960, 540)
TIMING_OUT = (1920, 1080)


def min_hr_side(scale: int = SCALE) -> int:
    """Smallest HR side that still leaves an 11x11 SSIM window after shaving ``scale`` pixels per border."""
    return 11 + 2 * scale + 1


def timing_in(scale: int = SCALE) -> tuple[int, int]:
    """The source size timed at ``scale``: TIMING_OUT divided by it (960x540 at x2, 480x270 at x4)."""
    return TIMING_OUT[0] // scale, TIMING_OUT[1] // scale


MIN_HR_SIDE = min_hr_side(SCALE)


# ---------------------------------------------------------------- test sets


CLEAN = Spec("clean")


@dataclass
class TestImage:
    name: str
    hr: np.ndarray   # (H, W, 3) uint8, cropped to a multiple of the scale (of 2 * SCALE when degraded)
    lr: np.ndarray   # (H/scale, W/scale, 3) uint8


@dataclass
class TestSet:
    """One board column: a set's HR images and their LR under one degradation."""

    name: str
    path: Path
    images: list[TestImage]
    degrade: Spec = CLEAN
    set_name: str = ""  # the set's own name (``name`` adds the spec on a real-world board)
    scale: int = SCALE  # the LR is 1/scale of the HR; methods upscale by it, scores shave it

    def __post_init__(self):
        self.set_name = self.set_name or self.name


def _read_rgb(path: Path) -> np.ndarray:
    try:
        img = read_image(path)
    except UpshadeError:
        raise
    except Exception as exc:  # a decoder's own exception for a corrupt file
        raise MediaError(f"{path}: cannot read image ({exc})") from None
    img = np.asarray(img)
    if img.dtype == np.uint16:
        # 16-bit PNGs: the protocol works in 8 bits, like MATLAB's im2uint8.
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise MediaError(f"{path}: unsupported image sample type {img.dtype}")
    try:
        return np.ascontiguousarray(as_rgb(img))
    except ValueError as exc:
        raise MediaError(f"{path}: {exc}") from None


def load_set(path: str | os.PathLike, scale: int = SCALE) -> TestSet:
    """Read every image of a test set (sorted by name) and build its clean LR inputs at 1/``scale``.

    ``path`` is a folder, or one of the data sources the training uses by name
    (``set5``, ``set14``, ``synla:val``, ...; see tools/data.py) when no such folder exists.
    """
    return load_sets(path, [CLEAN], scale=scale)[0]


def hr_multiple(specs: Sequence[Spec], scale: int = SCALE) -> int:
    """HR sides are cropped to this: the scale for the clean protocol alone, 4 once any real-world spec is scored."""
    return scale if all(s == CLEAN for s in specs) else 2 * SCALE


def check_scale(scale: int, specs: Sequence[Spec]) -> None:
    """x2 takes every spec; x4 only the clean LR (the real-world protocol is defined at x2)."""
    if scale not in SCALES:
        raise UpshadeError(f"--scale {scale}: the protocol is defined at {' and '.join(map(str, SCALES))}")
    other = [s.name for s in specs if s != CLEAN]
    if scale != SCALE and other:
        raise UpshadeError(f"--scale {scale}: only the clean LR is defined at x{scale}; "
                           f"drop --degrade {' '.join(other)}")


def load_sets(path: str | os.PathLike, specs: Sequence[Spec | str], progress=None,
              scale: int = SCALE) -> list[TestSet]:
    """A test set under each degradation: one :class:`TestSet` per spec, sharing the HR arrays.

    The HR crop follows :func:`hr_multiple` of all ``specs``; each LR is made
    once here (``progress`` is ticked per image and spec). ``scale`` 4: the clean LR at 1/4.
    """
    specs = [s if isinstance(s, Spec) else parse_spec(s) for s in specs]
    check_scale(scale, specs)
    source = str(path)
    path = Path(path)
    if not path.exists():
        if source.partition(":")[0].lower() not in NAMED_SOURCES:
            raise UpshadeError(f"{path}: test set folder does not exist")
        files = resolve_source(source)
        name, where = source_label(source), files[0].parent
    else:
        files = list_images(path)  # the same folder rules (extensions, sorting, errors) as the training data
        name, where = path.name or str(path), path
    multiple = hr_multiple(specs, scale)
    least = min_hr_side(scale)
    hrs = []
    for f in files:
        hr = crop_to_multiple(_read_rgb(f), multiple)
        if min(hr.shape[:2]) < least:
            raise MediaError(f"{f}: image {hr.shape[1]}x{hr.shape[0]} is too small to score "
                             f"(needs at least {least}x{least})")
        hrs.append((f, np.ascontiguousarray(hr)))
    out = []
    for spec in specs:
        images = []
        for f, hr in hrs:
            images.append(TestImage(f.stem, hr, _degrade_checked(f, hr, spec, scale)))
            if progress is not None:
                progress.update(1)
        out.append(TestSet(name, where, images, spec, scale=scale))
    return out


def _degrade_checked(f: Path, hr: np.ndarray, spec: Spec, scale: int = SCALE) -> np.ndarray:
    if spec == CLEAN:
        return imresize_down(hr, scale)  # the clean protocol at any crop (degrade() wants multiples of 4)
    try:
        lr = degrade(hr, spec)
    except UpshadeError as exc:
        raise UpshadeError(f"{f}: {spec}: {exc}") from None
    except Exception as exc:  # a codec's own failure on this image
        raise MediaError(f"{f}: {spec}: cannot degrade ({type(exc).__name__}: {exc})") from None
    h, w = hr.shape[:2]
    if lr.shape != (h // SCALE, w // SCALE, 3) or lr.dtype != np.uint8:
        raise UpshadeError(f"{f}: {spec}: LR {lr.shape} {lr.dtype} is not {w // SCALE}x{h // SCALE} RGB uint8")
    return np.ascontiguousarray(lr)


def check_specs_available(specs: Sequence[Spec]) -> None:
    """Fail before any work when the PyAV build lacks what a spec needs (libx264, swscale scalers)."""
    if any(s.kind == "x264" for s in specs):
        if not codec_available("h264"):
            enc = CODECS["h264"][0]
            names = " ".join(s.name for s in specs if s.kind == "x264")
            raise UpshadeError(f"--degrade {names}: this PyAV build has no {enc} encoder "
                               f"(install a PyAV wheel with {enc}, or leave out the x264 specs)")


def name_columns(groups: Sequence[Sequence[TestSet]]) -> list[TestSet]:
    """Name the board's columns (``groups``: each set's :func:`load_sets`, in order); returns them flat.

    Sets of the same name become ``name``, ``name#2``, ...; a real-world board
    (any spec but ``clean``) names every column ``set spec``, e.g. ``set14 x264:23``.
    """
    count: dict[str, int] = {}
    real_world = any(s.degrade != CLEAN for g in groups for s in g)
    out = []
    for group in groups:
        if not group:
            continue
        base = group[0].set_name
        n = count.get(base, 0)
        count[base] = n + 1
        unique = base if not n else f"{base}#{n + 1}"
        for s in group:
            s.set_name = unique
            s.name = f"{unique} {s.degrade}" if real_world else unique
            out.append(s)
    return out


# ---------------------------------------------------------------- torch-side colour handling


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """Keys' cubic, a = -0.5 (the host's bicubic)."""
    ax = np.abs(t)
    return np.where(ax <= 1, (1.5 * ax - 2.5) * ax * ax + 1.0,
                    np.where(ax < 2, ((-0.5 * ax + 2.5) * ax - 4.0) * ax + 2.0, 0.0))


def _upscale_matrix(n: int, scale: int = SCALE) -> np.ndarray:
    """Dense (n*scale, n) bicubic upscale with pixel-centre alignment and clamped edges (GL sampling)."""
    out = np.arange(n * scale, dtype=np.float64)
    src = (out + 0.5) / scale - 0.5
    base = np.floor(src).astype(np.int64)
    mat = np.zeros((n * scale, n), dtype=np.float64)
    for k in range(-1, 3):
        idx = base + k
        w = _cubic_weights(src - idx)
        np.add.at(mat, (np.arange(n * scale), np.clip(idx, 0, n - 1)), w)
    return mat


def bicubic_up(img: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Float bicubic (a = -0.5) x``scale`` of an (H, W) or (H, W, C) array, edges clamped."""
    img = np.asarray(img, dtype=np.float64)
    mh, mw = _upscale_matrix(img.shape[0], scale), _upscale_matrix(img.shape[1], scale)
    if img.ndim == 2:
        return mh @ img @ mw.T
    return np.einsum("oh,hwc->owc", mh, np.einsum("pw,hwc->hpc", mw, img))


# Full-range BT.601 (what the host's image_to_frame produces for an RGB image).
_RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                        [-0.168736, -0.331264, 0.5],
                        [0.5, -0.418688, -0.081312]])
_YCC_TO_RGB = np.linalg.inv(_RGB_TO_YCC)


def torch_upscale_rgb(model, lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """x``scale`` an RGB uint8 image with an x2 luma network (applied log2(scale) times, as the x4
    shader files chain it), colour handled as the GL host does it."""
    import torch

    rgb = lr.astype(np.float64) / 255.0
    ycc = rgb @ _RGB_TO_YCC.T                       # chroma centred on 0: the +0.5 offset cancels
    y = torch.from_numpy(ycc[..., 0].astype(np.float32))[None, None]
    with torch.inference_mode():
        for _ in range(round(math.log2(scale))):
            y = model(y)
    y2 = y[0, 0].double().numpy()
    h, w = lr.shape[:2]
    if y2.shape != (h * scale, w * scale):
        raise UpshadeError(f"model output {y2.shape[1]}x{y2.shape[0]} is not {scale}x the input {w}x{h}")
    chroma = bicubic_up(ycc[..., 1:], scale)
    out = np.concatenate([y2[..., None], chroma], axis=2) @ _YCC_TO_RGB.T
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- methods


def _median_ms(fn, runs: int, warmup: int = 1, tick=None) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        if tick is not None:
            tick()
    return statistics.median(times)


def _timing_rgb(size: tuple[int, int] = TIMING_IN) -> np.ndarray:
    """A smooth-plus-detail RGB frame (960x540): content is irrelevant to speed, but keep it natural."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    base = np.stack([128 + 100 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], axis=2)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


class Method:
    """One thing to score: ``upscale`` an LR RGB uint8 image x``scale``; ``time_ms`` at 1080p output
    (from 960x540 at x2, 480x270 at x4)."""

    label: str
    kind: str
    source: str | None
    params: int | None

    def upscale(self, lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
        raise NotImplementedError

    def time_ms(self, runs: int, scale: int = SCALE) -> float:
        raise NotImplementedError

    def release(self) -> None:
        pass


class GLMethod(Method):
    """The GL host with zero (bicubic) or more hook shaders: exactly `upshade image`'s pipeline."""

    def __init__(self, ctx, shader_paths: Sequence[str | os.PathLike] = (), label: str | None = None,
                 params: int | None = None):
        self.ctx = ctx
        self.shader_paths = [Path(p) for p in shader_paths]
        shaders = [_load_shader_checked(load_shader, p) for p in self.shader_paths]
        self.kind = "shader" if shaders else "bicubic"
        self.label = label or ("+".join(p.stem for p in self.shader_paths) if shaders else "bicubic")
        self.source = ", ".join(str(p) for p in self.shader_paths) or None
        self.params = params if params is not None else (_shader_params(self.shader_paths) if shaders else 0)
        try:
            self.renderer = Renderer(ctx, shaders)
        except UpshadeError:
            raise
        except Exception as exc:  # a compile/link failure the runtime did not locate
            raise UpshadeError(f"{self.source}: cannot build the shader pipeline ({exc})") from None
        try:
            # Passes compile on first use: run one small frame now so a broken
            # shader fails before minutes of evaluation, not in the middle.
            self.upscale(np.full((16, 16, 3), 128, np.uint8))
        except BaseException:
            self.renderer.release()
            raise

    def upscale(self, lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
        h, w = lr.shape[:2]
        tex = self.renderer.render(image_to_frame(lr), (w * scale, h * scale))
        return self.renderer.read_rgb(tex)

    def time_ms(self, runs: int, scale: int = SCALE) -> float:
        frame = image_to_frame(_timing_rgb(timing_in(scale)))

        def once():
            # glFinish waits for the GPU, so the time covers all the work of the frame (but not a
            # CPU-side float->uint8 conversion, which the torch timing does not pay either).
            self.renderer.render(frame, TIMING_OUT)
            self.ctx.finish()

        return _median_ms(once, runs)

    def release(self) -> None:
        self.renderer.release()


class TorchMethod(Method):
    """A PyTorch luma network (x2), colour handled as the GL host handles it."""

    kind = "torch"

    def __init__(self, model, label: str, source: str | None = None):
        self.model = model.eval()
        self.label = label
        self.source = source
        self.params = int(sum(p.numel() for p in model.parameters()))

    def upscale(self, lr: np.ndarray, scale: int = SCALE) -> np.ndarray:
        return torch_upscale_rgb(self.model, lr, scale)

    def time_ms(self, runs: int, scale: int = SCALE) -> float:
        w, h = timing_in(scale)  # x4: the network on 480x270, then on its 960x540 output
        sizes = [(w << k, h << k) for k in range(round(math.log2(scale)))]
        return sum(torch_forward_ms(self.model, size, runs) for size in sizes)


def torch_forward_ms(model, size: tuple[int, int], runs: int, tick=None) -> float:
    """Median CPU forward time of a luma network on a (1, 1, h, w) input, in milliseconds.

    ``tick()`` is called after each timed run (progress bars)."""
    return torch_forward_best(model, size, runs, tick=tick)[0]


def torch_forward_best(model, size: tuple[int, int], runs: int, tick=None) -> tuple[float, int]:
    """(median ms, threads) at PyTorch's best intra-op thread count: 1 or all cores.

    On a busy machine OpenMP's spinning threads can make 2 threads slower than 1;
    taking the faster keeps comparisons against PyTorch fair to PyTorch. The
    caller's thread setting is restored.
    """
    import torch

    w, h = size
    x = torch.rand(1, 1, h, w)
    model = model.eval()

    def once():
        with torch.inference_mode():
            model(x)

    before = torch.get_num_threads()
    best = None
    try:
        for threads in sorted({1, max(1, os.cpu_count() or 1)}):
            torch.set_num_threads(threads)
            ms = _median_ms(once, runs, tick=tick)
            if best is None or ms < best[0]:
                best = (ms, threads)
    finally:
        torch.set_num_threads(before)
    return best


def _load_shader_checked(load_shader, path: Path):
    if not path.is_file():
        raise UpshadeError(f"{path}: shader file does not exist")
    try:
        return load_shader(path)
    except UpshadeError:
        raise
    except Exception as exc:
        raise UpshadeError(f"{path}: cannot load hook shader ({exc})") from None


def _shader_params(paths: Sequence[Path]) -> int | None:
    """Parameter count of our exported shaders (declared in their header); None for others."""
    total = 0
    for p in paths:
        m = re.search(r"(?im)^//.*?\bparam(?:eter)?s\b\D{0,3}([\d,_]+)", p.read_text(errors="replace")[:4000])
        if not m:
            return None
        total += int(re.sub(r"[,_]", "", m.group(1)))
    return total


def resolve_checkpoint(spec: str) -> Path:
    """`--model` argument -> checkpoint path: a file, or a shipped model's name (S, M-real, ...) for its weights."""
    p = Path(spec)
    if p.is_file():
        return p
    if is_model_name(spec) and not p.suffix:
        stem = model_stem(spec)
        for ext in (".pt", ".safetensors", ".pth"):
            cand = WEIGHTS_DIR / f"{stem}{ext}"
            if cand.is_file():
                return cand
        raise UpshadeError(f"{WEIGHTS_DIR / f'{stem}.pt'}: shipped weights for model {spec} are missing")
    raise UpshadeError(f"{spec}: checkpoint file does not exist (or give a shipped model: {', '.join(MODEL_NAMES)})")


def load_torch_method(spec: str) -> TorchMethod:
    from .model import load_checkpoint

    path = resolve_checkpoint(spec)
    try:
        model, _ckpt = load_checkpoint(path)
    except UpshadeError:
        raise
    except Exception as exc:
        raise UpshadeError(f"{path}: not a valid upshade checkpoint ({exc})") from None
    label = spec.upper() if path.parent == _weights_dir() and spec.upper() in ("S", "M", "L") else path.stem
    return TorchMethod(model, label=f"torch {label}", source=str(path))


def _weights_dir() -> Path:
    return WEIGHTS_DIR


# ---------------------------------------------------------------- evaluation


@dataclass
class SetScore:
    psnr: float
    ssim: float
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)


def _finite(x: float) -> float | None:
    """JSON has no Infinity: a perfect reconstruction (PSNR = inf) is written as null."""
    return x if math.isfinite(x) else None


@dataclass
class MethodResult:
    label: str
    kind: str
    source: str | None
    params: int | None
    scores: dict[str, SetScore]
    ms_1080p: float | None = None

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "kind": self.kind,
            "source": self.source,
            "params": self.params,
            "ms_per_1080p_frame": self.ms_1080p,
            "sets": {
                name: {
                    "psnr": _finite(s.psnr),
                    "ssim": s.ssim,
                    "images": {n: {"psnr": _finite(p), "ssim": q} for n, (p, q) in s.per_image.items()},
                }
                for name, s in self.scores.items()
            },
        }


def score_method(method: Method, sets: Sequence[TestSet], progress=None) -> dict[str, SetScore]:
    out = {}
    for s in sets:
        per = {}
        for img in s.images:
            sr = method.upscale(img.lr, s.scale)
            if sr.shape != img.hr.shape:
                raise UpshadeError(f"{method.label}: output {sr.shape[1]}x{sr.shape[0]} for "
                                   f"{s.path / img.name} is not {img.hr.shape[1]}x{img.hr.shape[0]}")
            per[img.name] = (psnr_y(sr, img.hr, s.scale), ssim_y(sr, img.hr, s.scale))  # shave = scale
            if progress is not None:
                progress.update(1)
        out[s.name] = SetScore(
            psnr=float(np.mean([p for p, _ in per.values()])),
            ssim=float(np.mean([q for _, q in per.values()])),
            per_image=per,
        )
    return out


def evaluate(methods: Sequence[Method], sets: Sequence[TestSet], timing_runs: int = 0,
             show_progress: bool = True) -> list[MethodResult]:
    """Score every method on every set; time each at 1080p output when ``timing_runs`` > 0
    (at the sets' scale: one board has one)."""
    total = len(methods) * sum(len(s.images) for s in sets)
    scale = board_scale(sets)
    results = []
    with progress(total=total, unit="img", desc="eval", disable=not show_progress) as bar:
        for m in methods:
            bar.set_postfix_str(m.label)
            scores = score_method(m, sets, bar)
            ms = m.time_ms(timing_runs, scale) if timing_runs > 0 else None
            results.append(MethodResult(m.label, m.kind, m.source, m.params, scores, ms))
    return results


def board_scale(sets: Sequence[TestSet]) -> int:
    """The one scale of a board's sets (x2 when there are none)."""
    scales = {s.scale for s in sets} or {SCALE}
    if len(scales) > 1:
        raise UpshadeError(f"one board has one scale, not {' and '.join(map(str, sorted(scales)))}")
    return scales.pop()


# ---------------------------------------------------------------- reporting


def format_table(results: Sequence[MethodResult], set_names: Sequence[str],
                 titles: Sequence[str] | None = None) -> str:
    """Methods by columns (``set_names``, headed by ``titles`` when given) of PSNR / SSIM."""
    head = ["method", "params"] + [f"{n} PSNR/SSIM" for n in (titles or set_names)] + ["ms/1080p"]
    rows = []
    for r in results:
        row = [r.label, "-" if r.params is None else f"{r.params:,}"]
        for n in set_names:
            s = r.scores[n]
            row.append(f"{s.psnr:6.2f} / {s.ssim:.4f}")
        row.append("-" if r.ms_1080p is None else f"{r.ms_1080p:.1f}")
        rows.append(row)
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    return "\n".join(lines)


def pareto_front(points: Sequence[tuple[float, float]], tol: float = 0.005) -> list[int]:
    """Indices of the points no other point beats in both speed (lower x) and quality (higher y).

    Quality must improve by more than ``tol`` (dB): a model and its own shader
    score the same up to float noise, and the slower one is not on the front.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best + tol:
            front.append(i)
            best = points[i][1]
    return front


def _label_dy(pts: Sequence[tuple[float, float]], k: int) -> int:
    """Label above a point, or below when its nearest neighbour (log x, y) sits above it: keeps close labels apart."""
    x, y = pts[k]
    others = [(abs(math.log10(px / x)) * 5 + abs(py - y), py) for i, (px, py) in enumerate(pts) if i != k]
    if not others:
        return 6
    _, ny = min(others)
    return -12 if ny > y or (ny == y and k % 2) else 6


def draw_plot(results: Sequence[MethodResult], set_names: Sequence[str], out: Path, device: str,
              scale: int = SCALE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator

    timed = [r for r in results if r.ms_1080p is not None]
    fig = Figure(figsize=(6.5 * len(set_names), 5.0), layout="constrained")
    axes = fig.subplots(1, len(set_names), squeeze=False)[0]
    kinds = {"bicubic": ("tab:gray", "bicubic (GL)"), "shader": ("tab:blue", "hook shader (GL)"),
             "torch": ("tab:orange", "PyTorch (CPU)")}
    for ax, name in zip(axes, set_names):
        pts = [(r.ms_1080p, r.scores[name].psnr) for r in timed]
        for k, (r, (x, y)) in enumerate(zip(timed, pts)):
            ax.scatter([x], [y], color=kinds.get(r.kind, ("tab:green", ""))[0], zorder=3)
            ax.annotate(r.label, (x, y), textcoords="offset points", xytext=(6, _label_dy(pts, k)), fontsize=8)
        front = [pts[i] for i in pareto_front(pts)]
        if len(front) > 1:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:red",
                    alpha=0.5, linestyle="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.margins(x=0.25, y=0.12)
        ax.set_xlabel("ms per 1920x1080 output frame (log scale; lower is faster)")
        ax.set_ylabel(f"{name}: Y-PSNR x{scale} (dB)")
        ax.set_title(name)
        ax.grid(True, which="both", alpha=0.3)
        present = {r.kind for r in timed}
        handles = [Line2D([], [], marker="o", linestyle="", color=c, label=lbl)
                   for kind, (c, lbl) in kinds.items() if kind in present]
        handles.append(Line2D([], [], color="tab:red", alpha=0.5, linestyle="--", label="Pareto front"))
        ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.7)
    fig.suptitle(f"quality vs speed, measured on {device}", fontsize=10)
    fig.savefig(out, format="png", dpi=110)


def device_description(ctx) -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if ctx is not None:
        info["gl_renderer"] = ctx.info.get("GL_RENDERER")
        info["gl_version"] = ctx.info.get("GL_VERSION")
    return info


CLEAN_LR = "MATLAB imresize bicubic (a=-0.5, antialiased), rounded to uint8"


def describe_spec(spec: Spec) -> str:
    """What a degradation does, in words (the JSON's record of the protocol)."""
    if spec.kind == "clean":
        return CLEAN_LR
    if spec.kind == "x264":
        return (f"the clean LR -> swscale yuv420p (BT.709, limited range) -> one frame of libx264 CRF {spec.arg}, "
                f"preset medium, 1 thread -> decoded -> RGB (BT.709, limited range)")
    return f"HR -> exactly half width and height by swscale {spec.arg} (SWS_{spec.arg.upper()}), RGB"


def _codec_versions() -> dict:
    libs = {k: ".".join(map(str, v)) for k, v in sorted(getattr(av, "library_versions", {}).items())}
    return {"pyav": getattr(av, "__version__", None), **libs}


def results_json(results: Sequence[MethodResult], sets: Sequence[TestSet], device: dict, timing_runs: int) -> dict:
    specs = list(dict.fromkeys(s.degrade for s in sets)) or [CLEAN]
    scale = board_scale(sets)
    tw, th = timing_in(scale)
    protocol = {
        "scale": scale,
        "shave": scale,
        "lr": CLEAN_LR if scale == SCALE else f"{CLEAN_LR}, at 1/{scale}",
        "metric": "PSNR (peak 255) and SSIM (11x11 Gaussian, sigma 1.5) on BT.601 Y 16..235",
    }
    if specs != [CLEAN]:
        protocol["hr_crop_multiple"] = hr_multiple(specs)
        protocol["degrade"] = {s.name: describe_spec(s) for s in specs}
        protocol["libraries"] = _codec_versions()
    return {
        "protocol": protocol,
        "timing": {
            "unit": "ms per 1920x1080 output frame (median)",
            "gl": f"render {tw}x{th} -> {TIMING_OUT[0]}x{TIMING_OUT[1]} incl. upload, glFinish",
            "torch": f"network forward on a {tw}x{th} luma"
                     + ("" if scale == SCALE else f", then on each doubled output (x{scale})")
                     + ", CPU, best of 1 / all threads",
            "runs": timing_runs,
        },
        "device": device,
        "sets": {s.name: {"path": str(s.path), "set": s.set_name, "degrade": s.degrade.name,
                          "images": [i.name for i in s.images]} for s in sets},
        "methods": [r.to_json() for r in results],
    }


def markdown_table(board: dict) -> str:
    """A board (the ``--json`` data) as a Markdown table: a row per method, ``PSNR / SSIM`` per set.

    The README's boards are this function's output for the JSON beside the weights, so
    they are regenerated, not typed (``--markdown``).
    """
    names = list(board["sets"])
    scale = board["protocol"]["scale"]
    lines = ["| method | params | " + " | ".join(f"{n} (x{scale})" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for m in board["methods"]:
        params = "-" if m["params"] is None else f"{m['params']:,}"
        cells = []
        for n in names:
            s = m["sets"][n]
            cells.append(("inf" if s["psnr"] is None else f"{s['psnr']:.2f}") + f" / {s['ssim']:.4f}")
        lines.append(f"| `{m['label']}` | {params} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="sets", action="append", required=True, metavar="DIR|NAME",
                        help="folder of HR test images, or a named source of the shared data "
                             "(set5, set14, synla:val); repeatable")
    parser.add_argument("--shader", action="append", default=[], metavar="FILE",
                        help="hook shader to score through the GL host (repeatable)")
    parser.add_argument("--model", action="append", default=[], metavar="CKPT|S|M|L",
                        help="torch checkpoint, or a shipped model size, to score in PyTorch (repeatable)")
    parser.add_argument("--degrade", nargs="+", action="extend", metavar="SPEC",
                        help="how the LR is made, one board column per set and spec: " + SPEC_HELP
                             + " (default clean; several allowed, e.g. --degrade clean x264:23 kernel:area; "
                             "any spec but clean crops HR to a multiple of 4 for all)")
    parser.add_argument("--scale", type=int, default=SCALE, choices=SCALES,
                        help="the protocol's factor: 2 (default), or 4 (MATLAB-bicubic LR at 1/4, 4 px shaved; "
                             "clean LR only; torch models run twice)")
    parser.add_argument("--json", type=Path, metavar="OUT.json", help="write all scores and timings as JSON")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md", help="write the board as a Markdown table")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw PSNR against ms per 1080p frame")
    parser.add_argument("--plot-spec", metavar="SPEC",
                        help="the --degrade spec whose scores the plot shows (default: the first)")
    parser.add_argument("--no-timing", action="store_true", help="skip the speed measurement")
    parser.add_argument("--runs", type=int, default=10, metavar="N",
                        help="timed repetitions per method, median reported (default 10)")
    parser.add_argument("--no-bicubic", action="store_true", help="leave out the bicubic baseline")


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise UpshadeError(f"--runs must be at least 1, got {args.runs}")
    if args.plot is not None and args.no_timing:
        raise UpshadeError(f"{args.plot}: the plot needs timings; drop --no-timing")
    specs = parse_specs(args.degrade or ["clean"])
    plot_spec = parse_spec(args.plot_spec) if args.plot_spec is not None else specs[0]
    if plot_spec not in specs:
        raise UpshadeError(f"--plot-spec {plot_spec}: not among the scored specs "
                           f"(--degrade {' '.join(s.name for s in specs)})")
    scale = getattr(args, "scale", SCALE)
    check_scale(scale, specs)
    check_specs_available(specs)
    inputs = [*args.sets, *args.shader, *[m for m in args.model if Path(m).is_file()]]
    for out in (args.json, args.plot, args.markdown):
        if out is not None:
            check_output_path(out, inputs)
    # Checkpoints first: they fail fast, before the sets are read or GL starts.
    torch_methods = [load_torch_method(m) for m in args.model]
    sets = name_columns([load_sets(d, specs, scale=scale) for d in args.sets])

    ctx = create_headless_context()
    methods: list[Method] = []
    try:
        if not args.no_bicubic:
            methods.append(GLMethod(ctx))
        methods += [GLMethod(ctx, [s]) for s in args.shader]
        methods += torch_methods
        if not methods:
            raise UpshadeError("nothing to evaluate: give --shader or --model, or keep the bicubic baseline")
        runs = 0 if args.no_timing else args.runs
        results = evaluate(methods, sets, timing_runs=runs)
        device = device_description(ctx)
    finally:
        for m in methods:
            m.release()
        ctx.release()

    names = [s.name for s in sets]
    if all(s.degrade == CLEAN for s in sets):
        print(format_table(results, names))
    else:  # one table per set, a column per spec: a board of several sets stays readable
        groups = list(dict.fromkeys(s.set_name for s in sets))
        for i, g in enumerate(groups):
            cols = [s for s in sets if s.set_name == g]
            print(("\n" if i else "") + f"{g}:")
            print(format_table(results, [s.name for s in cols], [s.degrade.name for s in cols]))
    plotted = [s.name for s in sets if s.degrade == plot_spec]
    board = results_json(results, sets, device, runs)
    for out, text in ((args.json, lambda: json.dumps(board, indent=2, allow_nan=False) + "\n"),
                      (args.markdown, lambda: markdown_table(board))):
        if out is not None:
            with atomic_output(out, inputs) as tmp:
                tmp.write_text(text())
            print(f"wrote {out}")
    if args.plot is not None:
        with atomic_output(args.plot, inputs) as tmp:
            draw_plot(results, plotted, tmp, device.get("gl_renderer") or device["cpu"], scale=scale)
        print(f"wrote {args.plot}")
    return 0

