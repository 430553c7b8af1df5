"""Degraded LR banks: the real-world training pipeline, run once per source and cached.

Encoding video is slow on a small machine, so training does not degrade on the
fly: every HR image of a source is turned into a few aligned (HR, LR) luma
frames by the random pipeline below, the result is cached on disk (never in the
repository), and training samples random crops from it (``pairs=bank``).

The random pipeline (:class:`BankConfig`, every number a config field). Each
HR image yields ``clips_per_image`` items of one of three categories:

``clean``  the evaluation protocol's LR (MATLAB-style antialiased bicubic, uint8).
``kernel`` a random downscaler, no compression: Keys cubic with a in [-0.9, -0.3]
           (MATLAB's is -0.5), Mitchell, B-spline, triangle (bilinear), box
           (area), Lanczos-3, a Gaussian, each antialiased and, for a
           ``phase_share`` of them, shifted by a random sub-pixel phase; or
           FFmpeg's own swscale scalers (bilinear, area, lanczos, bicubic,
           spline, gauss) as players and encoders run them.
``codec``  a random downscaler as above, then a short clip through a real
           encoder: ``clip_frames`` frames of a slow pan over the image (a
           random integer LR velocity, so motion compensation and P/B frames
           are exercised), converted to yuv420p (BT.709, limited range) and
           encoded by libx264 (``h264``) or libx265 (``hevc``) at a random CRF
           and preset, decoded and converted back to RGB; ``keep_frames`` of
           its frames are kept (the first, intra-coded, with probability
           ``keep_intra``).

Frames are stored as full-range BT.601 luma, uint8 (what the host feeds the
LUMA hook for RGB input, to 8 bits). Every item records its category, kernel,
codec and CRF, so one bank serves several training mixes (``bank_mix``).

Reproducible: item ``i`` of image ``j`` is drawn from a generator seeded by
``(seed, j)``; the cache file's name carries a hash of the config, the
source's files and the code version, and loading a file made by another
config is refused with one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..host.api import UpshadeError, atomic_output
from . import degrade as G
from .metrics import crop_to_multiple, imresize_down, rgb_to_luma_full

BANK_VERSION = 3
CATEGORIES = ("clean", "kernel", "codec")
# Custom kernels (name, parameter range or value, weight) and swscale's, drawn by weight.
KERNEL_CHOICES: tuple[tuple[str, object, float], ...] = (
    ("matlab", None, 0.18),
    ("cubic", (-0.9, -0.3), 0.14),
    ("mitchell", None, 0.05),
    ("bspline", None, 0.03),
    ("triangle", None, 0.07),
    ("box", None, 0.09),
    ("lanczos", 3, 0.07),
    ("gauss", (0.35, 0.7), 0.05),
    ("sws:bilinear", None, 0.08),
    ("sws:area", None, 0.09),
    ("sws:lanczos", None, 0.07),
    ("sws:bicubic", None, 0.06),
    ("sws:spline", None, 0.01),
    ("sws:gauss", None, 0.01),
)
KERNEL_NAMES = tuple(k for k, _, _ in KERNEL_CHOICES)
HEVC_MIN_SIDE = 64  # LR pixels; smaller clips go to libx264


@dataclass
class BankConfig:
    seed: int = 0
    clips_per_image: int = 3
    frame: int = 192  # HR side of a codec clip's frames (multiple of 4); smaller images use what fits
    clip_frames: int = 5  # frames encoded per codec clip
    keep_frames: int = 2  # frames kept per codec clip
    keep_intra: float = 0.3  # probability that the kept frames include the first (intra) frame
    share: dict = field(default_factory=lambda: {"clean": 0.15, "kernel": 0.3, "codec": 0.55})
    codecs: dict = field(default_factory=lambda: {"h264": 0.75, "hevc": 0.25})
    crf: dict = field(default_factory=lambda: {"h264": [16, 36], "hevc": [18, 38]})
    presets: list = field(default_factory=lambda: ["veryfast", "fast", "medium", "medium", "slow"])
    max_speed: int = 3  # LR pixels per frame of the pan, per axis
    phase_share: float = 0.3  # share of custom-kernel downscales with a random sub-pixel phase
    phase_max: float = 0.25  # LR pixels
    max_mb: int = 1024  # refuse to build a bank larger than this

    def validate(self) -> "BankConfig":
        if self.frame % 4 or self.frame < 32:
            raise UpshadeError(f"bank config: frame must be a multiple of 4 and >= 32, got {self.frame}")
        if not 1 <= self.keep_frames <= self.clip_frames:
            raise UpshadeError("bank config: need 1 <= keep_frames <= clip_frames")
        if set(self.share) - set(CATEGORIES) or sum(self.share.values()) <= 0:
            raise UpshadeError(f"bank config: share must weigh {', '.join(CATEGORIES)}, got {self.share}")
        if set(self.codecs) - set(G.CODECS) or set(self.codecs) - set(self.crf):
            raise UpshadeError(f"bank config: codecs {self.codecs} need a crf range each, from {', '.join(G.CODECS)}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "BankConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise UpshadeError(f"bank config: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**d).validate()


@dataclass
class Bank:
    """Aligned HR/LR luma frames (uint8) with what made each."""

    hr: list[np.ndarray]
    lr: list[np.ndarray]
    category: np.ndarray  # index into CATEGORIES
    records: list[dict]  # per item: kernel, phase, codec, crf, preset, frame index
    name: str = ""

    def __len__(self) -> int:
        return len(self.hr)

    def summary(self) -> str:
        counts = {c: int((self.category == i).sum()) for i, c in enumerate(CATEGORIES)}
        mb = sum(a.nbytes for a in self.hr + self.lr) / 2**20
        return f"{self.name}: {len(self)} frames ({', '.join(f'{k} {v}' for k, v in counts.items())}), {mb:.0f} MB"


# ---------------------------------------------------------------- drawing one item


def _pick(rng: np.random.Generator, weights: dict) -> str:
    keys = list(weights)
    w = np.asarray([float(weights[k]) for k in keys])
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _draw_kernel(rng: np.random.Generator, cfg: BankConfig) -> dict:
    w = np.asarray([c[2] for c in KERNEL_CHOICES])
    name, arg, _ = KERNEL_CHOICES[int(rng.choice(len(KERNEL_CHOICES), p=w / w.sum()))]
    rec: dict = {"kernel": name}
    if isinstance(arg, tuple):
        rec["param"] = round(float(rng.uniform(*arg)), 2)
    elif arg is not None:
        rec["param"] = float(arg)
    if not name.startswith("sws:") and rng.random() < cfg.phase_share:
        # Sixteenths of an LR pixel: few distinct resampling matrices to cache.
        rec["phase"] = [float(np.round(rng.uniform(-cfg.phase_max, cfg.phase_max) * 16) / 16) for _ in range(2)]
    return rec


def downscale(hr: np.ndarray, rec: dict) -> np.ndarray:
    """HR RGB (sides multiples of 4) -> LR RGB by the kernel a record names."""
    name = rec["kernel"]
    if name == "matlab":
        return imresize_down(hr, 2)
    if name.startswith("sws:"):
        return G.swscale_down(hr, name[4:])
    return G.kernel_down(hr, name, rec.get("param", 0.0), tuple(rec.get("phase", (0.0, 0.0))))


def _pan(rng, h: int, w: int, cfg: BankConfig):
    """Even HR offsets of ``clip_frames`` frames of side (fh, fw) panning inside an (h, w) image."""
    n = cfg.clip_frames
    vy, vx = (int(v) for v in rng.integers(-cfg.max_speed, cfg.max_speed + 1, size=2))
    fh = min(cfg.frame, (h - 2 * abs(vy) * (n - 1)) // 4 * 4)
    fw = min(cfg.frame, (w - 2 * abs(vx) * (n - 1)) // 4 * 4)
    if fh < 32 or fw < 32:  # too small to pan: a still clip
        vy = vx = 0
        fh, fw = min(cfg.frame, h // 4 * 4), min(cfg.frame, w // 4 * 4)
    # LR start so that every frame stays inside the image.
    ly0 = int(rng.integers(max(0, -vy * (n - 1)), (h - fh) // 2 - max(0, vy * (n - 1)) + 1))
    lx0 = int(rng.integers(max(0, -vx * (n - 1)), (w - fw) // 2 - max(0, vx * (n - 1)) + 1))
    return [(2 * (ly0 + vy * i), 2 * (lx0 + vx * i)) for i in range(n)], (fh, fw), (vy, vx)


def make_items(hr: np.ndarray, rng: np.random.Generator, cfg: BankConfig) -> list[tuple[np.ndarray, np.ndarray, str, dict]]:
    """One draw of the pipeline on an HR RGB image: [(hr_rgb, lr_rgb, category, record), ...]."""
    hr = crop_to_multiple(hr, 4)
    cat = _pick(rng, cfg.share)
    if cat == "clean":
        return [(hr, imresize_down(hr, 2), cat, {"kernel": "matlab"})]
    rec = _draw_kernel(rng, cfg)
    lr = downscale(hr, rec)
    if cat == "kernel":
        return [(hr, lr, cat, rec)]
    codec = _pick(rng, cfg.codecs)
    lo, hi = cfg.crf[codec]
    crf = int(rng.integers(int(lo), int(hi) + 1))
    preset = str(cfg.presets[int(rng.integers(len(cfg.presets)))])
    offsets, (fh, fw), speed = _pan(rng, *hr.shape[:2], cfg)
    if codec == "hevc" and min(fh, fw) < 2 * HEVC_MIN_SIDE:
        codec = "h264"  # libx265 corrupts memory on pictures under 64x64 (measured: 48x48, 30x44)
    clip = [np.ascontiguousarray(lr[y // 2: (y + fh) // 2, x // 2: (x + fw) // 2]) for y, x in offsets]
    decoded = G.codec_roundtrip(clip, codec, crf, preset=preset)
    rest = list(range(1, len(offsets)))
    keep = list(rng.choice(rest, size=min(len(rest), cfg.keep_frames), replace=False)) if rest else [0]
    if rng.random() < cfg.keep_intra:
        keep[0] = 0
    out = []
    for i in sorted(set(int(k) for k in keep)):
        y, x = offsets[i]
        item = {**rec, "codec": codec, "crf": crf, "preset": preset, "frame": i, "speed": list(speed)}
        out.append((hr[y: y + fh, x: x + fw], decoded[i], cat, item))
    return out


def _luma8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb_to_luma_full(rgb, np.float64) * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- building and caching


def cache_dir() -> Path:
    base = os.environ.get("UPSHADE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "upshade")
    return Path(base) / "banks"


def bank_key(cfg: BankConfig, name: str, paths, scales) -> str:
    """Hash of everything that decides a bank's content."""
    files = [(Path(p).name, Path(p).stat().st_size) for p in paths]
    blob = json.dumps({"version": BANK_VERSION, "config": dataclasses.asdict(cfg), "source": name,
                       "files": files, "scales": list(scales)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_bank(images: list[np.ndarray], cfg: BankConfig, name: str = "", progress=None) -> Bank:
    """Run the random pipeline ``clips_per_image`` times over every image."""
    cfg.validate()
    for codec, share in cfg.codecs.items():
        if share > 0 and cfg.share.get("codec", 0) > 0 and not G.codec_available(codec):
            raise UpshadeError(f"bank: this PyAV build has no {G.CODECS[codec][0]} encoder (set its share in codecs to 0)")
    hr_out, lr_out, cats, recs = [], [], [], []
    budget = cfg.max_mb * 2**20
    size = 0
    for j, img in enumerate(images):
        rng = np.random.default_rng([cfg.seed, j])
        for _ in range(cfg.clips_per_image):
            for hr, lr, cat, rec in make_items(img, rng, cfg):
                hr_out.append(_luma8(hr))
                lr_out.append(_luma8(lr))
                cats.append(CATEGORIES.index(cat))
                recs.append({**rec, "image": j})
                size += hr_out[-1].nbytes + lr_out[-1].nbytes
        if size > budget:
            raise UpshadeError(f"bank {name}: over its size bound of {cfg.max_mb} MB after {j + 1} of {len(images)} "
                               "images (raise max_mb or lower clips_per_image/frame)")
        if progress is not None:
            progress.update(1)
    return Bank(hr_out, lr_out, np.asarray(cats, dtype=np.int8), recs, name)


def save_bank(bank: Bank, path: Path, key: str, cfg: BankConfig) -> None:
    hw = np.asarray([a.shape for a in bank.hr], dtype=np.int64).reshape(-1, 2)
    meta = json.dumps({"key": key, "version": BANK_VERSION, "name": bank.name,
                       "config": dataclasses.asdict(cfg), "records": bank.records})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, hr=np.concatenate([a.ravel() for a in bank.hr]) if bank.hr else np.zeros(0, np.uint8),
                     lr=np.concatenate([a.ravel() for a in bank.lr]) if bank.lr else np.zeros(0, np.uint8),
                     hw=hw, category=bank.category, meta=np.frombuffer(meta.encode(), dtype=np.uint8))


def load_bank(path: Path, key: str) -> Bank:
    """Read a cached bank; a file made by another config or a damaged one is one clear error."""
    try:
        with np.load(path) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("key") != key:
                raise UpshadeError(f"{path}: bank cache made by another config (key {meta.get('key')}, "
                                   f"expected {key}); delete it or change the bank seed")
            hr_flat, lr_flat, hw, cat = z["hr"], z["lr"], z["hw"], z["category"]
    except UpshadeError:
        raise
    except (OSError, ValueError, KeyError, json.JSONDecodeError, EOFError, zipfile.BadZipFile) as exc:
        raise UpshadeError(f"{path}: unreadable bank cache ({type(exc).__name__}); delete it to rebuild") from None
    hr, lr, oh, ol = [], [], 0, 0
    for h, w in hw:
        hr.append(hr_flat[oh: oh + h * w].reshape(h, w))
        lr.append(lr_flat[ol: ol + h * w // 4].reshape(h // 2, w // 2))
        oh, ol = oh + h * w, ol + h * w // 4
    return Bank(hr, lr, cat, meta["records"], meta.get("name", ""))


def bank_for(train_set, cfg: BankConfig, scales=(1.0,), progress_factory=None) -> Bank:
    """The cached bank of a loaded training set, built (and saved) on first use."""
    key = bank_key(cfg, train_set.name, train_set.paths, scales)
    label = train_set.name.replace(":", "_").replace("/", "_")
    path = cache_dir() / f"{label}-{key}.npz"
    if path.is_file():
        bank = load_bank(path, key)
        bank.name = train_set.name
        return bank
    t0 = time.monotonic()
    bar = progress_factory(len(train_set.images), f"bank {train_set.name}") if progress_factory else None
    try:
        bank = build_bank(train_set.images, cfg, train_set.name, bar)
    finally:
        if bar is not None:
            bar.close()
    save_bank(bank, path, key, cfg)
    print(f"{bank.summary()}; built in {time.monotonic() - t0:.0f}s -> {path}", flush=True)
    return bank
