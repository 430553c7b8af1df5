"""Where the shipped shaders and weights live.

Both in a source checkout (host/../shaders) and in an installed wheel
(site-packages/upshade/host/../shaders) they sit next to this package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SHADERS_DIR = PACKAGE_ROOT / "shaders"
WEIGHTS_DIR = PACKAGE_ROOT / "weights"

# Shipped model sizes, usable as `--model S|M|L` in the runtime commands.
MODEL_SIZES = ("S", "M", "L")


def shipped_shader(size: str) -> Path:
    """Path of the exported hook shader for a shipped model size (S, M or L)."""
    from .errors import UpshadeError

    key = size.upper()
    if key not in MODEL_SIZES:
        raise UpshadeError(f"unknown model {size!r}: choose one of {', '.join(MODEL_SIZES)}")
    path = SHADERS_DIR / f"upshade_{key}.glsl"
    if not path.is_file():
        raise UpshadeError(f"{path}: shipped shader for model {key} is missing (re-export it with `upshade export`)")
    return path
