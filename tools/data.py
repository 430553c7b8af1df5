"""Training pairs made on the fly, exactly as the evaluation protocol makes them.

A training sample is a random HR crop (default 128x128) of an RGB image,
randomly flipped/rotated; its LR is the protocol's MATLAB-bicubic downscale of
that RGB crop, rounded to uint8 (the very LR ``upshade eval`` feeds a model).
The network sees full-range BT.601 luma of the LR (what the GL host hands a
LUMA hook for an RGB image) and is trained towards the same luma of the HR crop.

Images are decoded once into RAM (uint8); batches are built in numpy in the
training process itself: with 2 CPU cores, DataLoader worker processes would
only fight the training thread for them.

Named sources (under ``data_root``, default ``../shared/data``)::

    synla:train   SYNLA-1024 minus its last 128 files by name   (line art)
    synla:val     SYNLA-1024, the last 128 files by name         (fixed split)
    synla         all of SYNLA-1024
    t91  set5  set14
    skimage       the natural photos bundled with scikit-image (CC0/public
                  domain; installed with the ``train`` extra, never copied here)
    openclipart   line art: a fixed subset of Debian's ``openclipart-svg``
                  drawings (public domain), rasterised once by ``rsvg-convert``
                  (``librsvg2-bin``) on white into the cache; never copied here
    any other string is taken as a folder of images
"""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bank import CATEGORIES, KERNEL_NAMES, cache_dir
from .degrade import degrade, parse_spec
from ..host.api import UpshadeError, read_image
from .metrics import as_rgb, crop_to_multiple, imresize, imresize_down, rgb_to_luma_full, rgb_to_y

IMAGE_EXTS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
SYNLA_VAL_COUNT = 128
DEFAULT_DATA_ROOT = Path("..") / "shared" / "data"
_FOLDERS = {"synla": "synla1024", "t91": "t91", "set5": "set5", "set14": "set14"}
# Names resolve_source() understands besides folders.
NAMED_SOURCES = frozenset(_FOLDERS) | {"skimage", "openclipart"}
OPENCLIPART_DIR = Path("/usr/share/openclipart/svg")
OPENCLIPART_COUNT = 400  # drawings taken, evenly spread over the sorted list
OPENCLIPART_SIDE = 384  # raster width (height keeps the aspect ratio)
# scikit-image's bundled samples that are lossless natural photographs. Left
# out: JPEGs (their block artefacts would be learnt as detail), the
# motion-blurred clock, the stereo twin of motorcycle_left, and the synthetic
# or tiny ones (logo, phantom, chessboards, microaneurysms, horse silhouette).
SKIMAGE_PHOTOS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins", "grass",
    "gravel", "ihc", "moon", "motorcycle_left", "page", "text",
)


# ---------------------------------------------------------------- reading


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB (greyscale replicated, alpha dropped).

    16-bit images are rounded to 8 bits: the protocol works on uint8 RGB.
    """
    arr = read_image(path)  # MediaError (an UpshadeError) names the file on failure
    if arr.dtype == np.uint16:
        arr = ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 2:  # grey + alpha
        arr = arr[:, :, :1]
    return np.ascontiguousarray(as_rgb(arr))


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.exists():
        raise UpshadeError(f"{folder}: image folder not found")
    if not folder.is_dir():
        raise UpshadeError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UpshadeError(f"{folder}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
    return files


def resolve_source(spec: str, data_root: str | Path = DEFAULT_DATA_ROOT) -> list[Path]:
    """Image files of a named source (see the module docstring) or of a folder."""
    name, _, split = spec.partition(":")
    key = name.lower()
    if key == "skimage":
        return skimage_photos()
    if key == "openclipart":
        return openclipart_rasters()
    if key in _FOLDERS:
        files = list_images(Path(data_root) / _FOLDERS[key])
        if key == "synla" and split:
            if len(files) <= SYNLA_VAL_COUNT:
                raise UpshadeError(f"{Path(data_root) / 'synla1024'}: needs more than {SYNLA_VAL_COUNT} images to split")
            if split == "train":
                return files[:-SYNLA_VAL_COUNT]
            if split == "val":
                return files[-SYNLA_VAL_COUNT:]
            raise UpshadeError(f"unknown SYNLA split {split!r} in {spec!r}: use synla:train or synla:val")
        if split:
            raise UpshadeError(f"source {spec!r}: only synla has splits (synla:train, synla:val)")
        return files
    return list_images(spec)


def skimage_photos() -> list[Path]:
    """Paths of :data:`SKIMAGE_PHOTOS` inside the installed scikit-image."""
    try:
        import skimage
    except ImportError:
        raise UpshadeError(
            "training source 'skimage' needs scikit-image: pip install 'upshade[train]'"
        ) from None
    folder = Path(skimage.__file__).parent / "data"
    paths = [folder / f"{n}.png" for n in SKIMAGE_PHOTOS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UpshadeError(f"{folder}: scikit-image's sample photos {', '.join(missing)} are missing")
    return paths


def openclipart_rasters(count: int = OPENCLIPART_COUNT, side: int = OPENCLIPART_SIDE) -> list[Path]:
    """PNG rasters of ``count`` openclipart drawings, made once into the cache.

    Drawings that fail to render or come out nearly blank are left out (the
    same ones every time, so the list is reproducible).
    """

    if not OPENCLIPART_DIR.is_dir():
        raise UpshadeError(f"{OPENCLIPART_DIR}: not found: apt-get install openclipart-svg (training source 'openclipart')")
    out_dir = cache_dir().parent / f"openclipart-{count}-{side}"
    done = out_dir / "LIST"
    if done.is_file():
        return [out_dir / n for n in done.read_text().split()]
    if not shutil.which("rsvg-convert"):
        raise UpshadeError("rsvg-convert not found: apt-get install librsvg2-bin (training source 'openclipart')")
    svgs = sorted({p.resolve() for p in OPENCLIPART_DIR.rglob("*.svg")})
    pick = [svgs[int(i)] for i in np.linspace(0, len(svgs) - 1, count)]
    out_dir.mkdir(parents=True, exist_ok=True)
    kept = []
    for i, svg in enumerate(pick):
        png = out_dir / f"{i:04d}.png"
        cmd = ["rsvg-convert", "--width", str(side), "--keep-aspect-ratio", "--background-color", "white",
               "--format", "png", "--output", str(png), str(svg)]
        try:
            ok = subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok or not png.is_file():
            continue
        img = read_rgb(png)
        if min(img.shape[:2]) < 96 or img.std() < 8:  # too thin a strip, or nearly blank
            png.unlink()
            continue
        kept.append(png)
    done.write_text("\n".join(p.name for p in kept) + "\n")
    return kept


def source_label(spec: str) -> str:
    """Short key for metrics: 'set5', 'synla_val', or a folder's name."""
    name, _, split = spec.partition(":")
    if name.lower() in NAMED_SOURCES:
        return name.lower() + (f"_{split}" if split else "")
    return Path(spec).name or spec


# ---------------------------------------------------------------- training pairs


@dataclass
class TrainSet:
    """Preloaded HR images of one source, sampled in proportion to their area."""

    name: str
    images: list[np.ndarray]
    paths: list[Path]
    probs: np.ndarray = field(init=False)

    def __post_init__(self):
        area = np.array([im.shape[0] * im.shape[1] for im in self.images], dtype=np.float64)
        self.probs = area / area.sum()

    @property
    def pixels(self) -> int:
        return int(sum(im.shape[0] * im.shape[1] for im in self.images))


def load_train_set(spec: str, patch: int, data_root=DEFAULT_DATA_ROOT, scales=(1.0,), progress=None) -> TrainSet:
    """Decode every image of ``spec``; optionally add downscaled copies (FSRCNN-style scale augmentation).

    An original image smaller than the crop is an error naming it; a scaled
    copy smaller than the crop is just not added (it is derived data).
    """
    paths = resolve_source(spec, data_root)
    images, kept = [], []
    for p in paths:
        img = read_rgb(p)
        h, w = img.shape[:2]
        if h < patch or w < patch:
            raise UpshadeError(
                f"{p}: image {w}x{h} is smaller than the {patch}x{patch} training crop (choose a smaller patch)"
            )
        for s in scales:
            if s == 1.0:
                images.append(img)
                kept.append(p)
                continue
            sh, sw = int(round(h * s)), int(round(w * s))
            if sh >= patch and sw >= patch:
                images.append(imresize(img, (sh, sw)))
                kept.append(p)
        if progress is not None:
            progress.update(1)
    return TrainSet(spec, images, kept)


def _set_shares(sets: list[TrainSet], weights: list[float], patch: int, scale: int) -> np.ndarray:
    """The samplers' common checks; returns the weights normalised to shares."""
    if not sets:
        raise UpshadeError("no training images")
    if patch % scale:
        raise UpshadeError(f"patch {patch} is not a multiple of the scale {scale}")
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(sets) or np.any(w < 0) or w.sum() <= 0:
        raise UpshadeError(f"bad training-set weights {list(weights)}")
    return w / w.sum()


class PairSampler:
    """Random (LR luma, HR luma) batches from weighted training sets.

    ``weights[i]`` is the share of samples drawn from ``sets[i]``; within a set
    an image is picked with probability proportional to its area, so every HR
    pixel is equally likely to be seen.
    """

    def __init__(self, sets: list[TrainSet], weights: list[float], patch: int = 128, scale: int = 2, augment: bool = True):
        self.sets, self.set_probs = sets, _set_shares(sets, weights, patch, scale)
        self.patch, self.scale, self.augment = patch, scale, augment

    def crops(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, patch, patch, 3)`` uint8 HR crops, randomly flipped/rotated."""
        p = self.patch
        out = np.empty((n, p, p, 3), dtype=np.uint8)
        set_idx = rng.choice(len(self.sets), size=n, p=self.set_probs)
        for i in range(n):
            ts = self.sets[set_idx[i]]
            img = ts.images[rng.choice(len(ts.images), p=ts.probs)]
            h, w = img.shape[:2]
            y = int(rng.integers(0, h - p + 1))
            x = int(rng.integers(0, w - p + 1))
            crop = img[y : y + p, x : x + p]
            if self.augment:
                # The 8 symmetries of the square; bicubic resampling commutes with
                # all of them, so the LR of the transformed crop is still exact.
                k = int(rng.integers(0, 8))
                if k & 4:
                    crop = crop[:, ::-1]
                crop = np.rot90(crop, k & 3)
            out[i] = crop
        return out

    def batch(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(lr (n,1,p/s,p/s), hr (n,1,p,p))`` float32 full-range luma in 0..1."""
        hr_rgb = self.crops(n, rng)
        # float32 resampling: same uint8 LR as the float64 protocol except on
        # exact .5 ties (measured: none in practice), at half the cost.
        lr_rgb = imresize_down(hr_rgb, self.scale, dtype=np.float32)
        lr = rgb_to_luma_full(lr_rgb)[:, None]
        hr = rgb_to_luma_full(hr_rgb)[:, None]
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)


class AlignedPairSampler:
    """Random aligned (LR luma, HR luma) crops of whole (HR, LR) pairs held on the training device.

    ``pairs`` is a list of ``(hr_luma, lr_luma, weight)``: float or uint8 luma
    arrays (uint8 read as /255) with HR exactly ``scale`` times the LR, and the
    share of samples each pair gets. A batch is one gather from flat buffers
    plus flips/transposes, all on the device, so a GPU is not left waiting for
    numpy. HR crops start on multiples of the scale so that the LR crop is the
    LR of the HR crop exactly, and the 8 symmetries commute with symmetric
    downscale kernels.
    """

    def __init__(self, pairs, patch: int = 128, scale: int = 2, augment: bool = True, device="cpu"):
        import torch

        pairs = [(hr, lr, w) for hr, lr, w in pairs if min(hr.shape[:2]) >= patch and w > 0]
        if not pairs:
            raise UpshadeError(f"no training image or frame is at least {patch}x{patch} (choose a smaller patch)")
        self.patch, self.scale, self.augment = patch, scale, augment
        self.hr_hw = np.asarray([hr.shape[:2] for hr, _, _ in pairs], dtype=np.int64)
        probs = np.asarray([w for _, _, w in pairs], dtype=np.float64)
        self.probs = probs / probs.sum()
        sizes = self.hr_hw[:, 0] * self.hr_hw[:, 1]
        self.hr_off = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.lr_off = self.hr_off // (scale * scale)  # each LR image has exactly size / scale^2 pixels
        self.device = torch.device(device)

        def flat(arrays):
            parts = [a.ravel() for a in arrays]
            cat = np.concatenate(parts)
            t = torch.from_numpy(cat)
            return (t.float() / 255.0 if cat.dtype == np.uint8 else t.float()).to(self.device)

        self.hr = flat(hr for hr, _, _ in pairs)
        self.lr = flat(lr for _, lr, _ in pairs)
        self._grid = {p: torch.arange(p, device=self.device) for p in (patch, patch // scale)}

    def _gather(self, flat, off, y, x, width, p):
        g = self._grid[p]
        idx = off[:, None, None] + (y[:, None, None] + g[None, :, None]) * width[:, None, None] + x[:, None, None] + g[None, None, :]
        return flat[idx][:, None]

    def batch(self, n: int, rng: np.random.Generator):
        """``(lr (n,1,p/s,p/s), hr (n,1,p,p))`` float32 tensors on the device, full-range luma in 0..1."""
        import torch

        s, p = self.scale, self.patch
        img = rng.choice(len(self.probs), size=n, p=self.probs)
        h, w = self.hr_hw[img, 0], self.hr_hw[img, 1]
        y = rng.integers(0, (h - p) // s + 1) * s
        x = rng.integers(0, (w - p) // s + 1) * s
        sym = rng.integers(0, 8, size=n) if self.augment else np.zeros(n, dtype=np.int64)
        host = np.stack([self.hr_off[img], self.lr_off[img], y, x, w, sym])
        off_hr, off_lr, y, x, w, sym = torch.from_numpy(host).to(self.device, non_blocking=True)
        hr = self._gather(self.hr, off_hr, y, x, w, p)
        lr = self._gather(self.lr, off_lr, y // s, x // s, w // s, p // s)
        # Three independent binary choices (flip x, flip y, transpose) make the 8 symmetries of the square.
        for bit, op in ((1, lambda t: t.flip(-1)), (2, lambda t: t.flip(-2)), (4, lambda t: t.transpose(-1, -2))):
            m = ((sym & bit) != 0)[:, None, None, None]
            hr = torch.where(m, op(hr), hr)
            lr = torch.where(m, op(lr), lr)
        return lr.contiguous(), hr.contiguous()


def image_pairs(sets: list[TrainSet], weights: list[float], patch: int, scale: int = 2):
    """``pairs=image``: every whole image (cropped to the scale) with its protocol LR, made once."""
    shares = _set_shares(sets, weights, patch, scale)
    for ts, share in zip(sets, shares):
        for img, p_img in zip(ts.images, ts.probs):
            hr = crop_to_multiple(img, scale)
            lr = imresize_down(hr, scale)  # once per image: the exact float64 protocol
            yield rgb_to_luma_full(hr), rgb_to_luma_full(lr), share * p_img


def _mix_key(category: str, kernel: str, mix: dict) -> str | None:
    """The most specific ``bank_mix`` key an item falls under: ``kernel:box`` before ``kernel``."""
    specific = f"{category}:{kernel}"
    return specific if specific in mix else (category if category in mix else None)


def check_bank_mix(mix: dict) -> None:
    """Keys are categories (``clean``, ``kernel``, ``codec``) or ``CATEGORY:KERNEL`` (``kernel:sws:area``)."""
    ok = set(CATEGORIES) | {f"{c}:{k}" for c in CATEGORIES[1:] for k in KERNEL_NAMES}
    bad = sorted(set(mix) - ok)
    if bad or sum(float(v) for v in mix.values()) <= 0 or any(float(v) < 0 for v in mix.values()):
        raise UpshadeError(f"bank_mix {mix}: weigh {', '.join(CATEGORIES)} or CATEGORY:KERNEL "
                           f"(kernels: {', '.join(KERNEL_NAMES)})" + (f"; unknown {', '.join(bad)}" if bad else ""))


def bank_pairs(banks, weights: list[float], mix: dict, patch: int, scale: int = 2):
    """``pairs=bank``: frames of degraded banks (tools/bank.py), ``mix`` weighing their kinds.

    ``mix`` maps a category (``clean``, ``kernel``, ``codec``) or a category and
    kernel (``kernel:box``, ``codec:sws:area``) to its share of samples; a frame
    counts under its most specific key, so ``{"kernel:box": 1, "kernel": 1}``
    gives box downscales half the samples and every other kernel the other half.
    Within a key a frame is drawn in proportion to its area. A key a bank has no
    frame for gives its share to that bank's other keys (small sources lack rare
    kernels); a key no bank has a frame for is an error.
    """
    if patch % scale:
        raise UpshadeError(f"patch {patch} is not a multiple of the scale {scale}")
    check_bank_mix(mix)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    found: set[str] = set()
    out = []
    for bank, share in zip(banks, w):
        groups: dict[str, list[int]] = {k: [] for k, v in mix.items() if float(v) > 0}
        for i in range(len(bank)):
            key = _mix_key(CATEGORIES[bank.category[i]], bank.records[i].get("kernel", "matlab"), mix)
            if key in groups and min(bank.hr[i].shape) >= patch:
                groups[key].append(i)
        groups = {k: idx for k, idx in groups.items() if idx}
        found |= set(groups)
        total = sum(float(mix[k]) for k in groups)
        for key, idx in groups.items():
            area = np.asarray([bank.hr[i].size for i in idx], dtype=np.float64)
            out += [(bank.hr[i], bank.lr[i], share * float(mix[key]) / total * a) for i, a in zip(idx, area / area.sum())]
    missing = [k for k, v in mix.items() if float(v) > 0 and k not in found]
    if missing:
        raise UpshadeError(f"no bank has {', '.join(missing)} frames of at least {patch}x{patch} for bank_mix {mix}")
    return out


class ImagePairSampler(AlignedPairSampler):
    """Crops of whole images downscaled once by the protocol (``pairs=image``)."""

    def __init__(self, sets: list[TrainSet], weights: list[float], patch: int = 128, scale: int = 2,
                 augment: bool = True, device="cpu"):
        super().__init__(list(image_pairs(sets, weights, patch, scale)), patch, scale, augment, device)


class BankPairSampler(AlignedPairSampler):
    """Crops of degraded bank frames (``pairs=bank``), categories weighed by ``mix``."""

    def __init__(self, banks, weights: list[float], mix: dict, patch: int = 128, scale: int = 2,
                 augment: bool = True, device="cpu"):
        super().__init__(list(bank_pairs(banks, weights, mix, patch, scale)), patch, scale, augment, device)


# ---------------------------------------------------------------- validation


@dataclass
class ValImage:
    name: str
    lr_luma: np.ndarray  # (1, 1, h, w) float32 full-range luma of the protocol LR
    hr_luma: np.ndarray  # (1, 1, 2h, 2w) float32 full-range luma of the cropped HR
    hr_y: np.ndarray  # (2h, 2w) float64 scoring Y (16..235) of the cropped HR


def load_val_set(spec: str, data_root=DEFAULT_DATA_ROOT, scale: int = 2, degradation: str = "clean") -> list[ValImage]:
    """Whole images prepared by the protocol: crop to a multiple of the scale, LR by imresize.

    ``degradation`` other than ``clean`` is a real-world protocol spec (tools/degrade.py):
    HR is then cropped to a multiple of 4 and the LR made by that spec.
    """
    deg = parse_spec(degradation)
    out = []
    for p in resolve_source(spec, data_root):
        hr = crop_to_multiple(read_rgb(p), scale if deg.kind == "clean" else 4)
        if min(hr.shape[:2]) < 8 * scale:
            raise UpshadeError(f"{p}: image {hr.shape[1]}x{hr.shape[0]} is too small to validate on")
        lr = imresize_down(hr, scale) if deg.kind == "clean" else degrade(hr, deg)
        out.append(
            ValImage(
                p.name,
                rgb_to_luma_full(lr)[None, None],
                rgb_to_luma_full(hr)[None, None],
                rgb_to_y(hr),
            )
        )
    return out


def scoring_y(sr_luma: np.ndarray) -> np.ndarray:
    """Network output (full-range luma, 0..1) -> the protocol's scoring Y (16..235).

    The protocol scores Y of the uint8 SR RGB; with chroma taken from any
    upscale, that Y equals ``16 + 219 * luma`` up to RGB rounding (its effect on
    PSNR is ~0.003 dB at 32 dB), so validation scores the luma directly and
    rounds it to 8 bits like a display would.
    """
    luma = np.clip(np.asarray(sr_luma, dtype=np.float64), 0.0, 1.0)
    return 16.0 + 219.0 * (np.round(luma * 255.0) / 255.0)


def steps_for(images: int, batch: int) -> int:
    return max(1, math.ceil(images / batch))
