"""Frame planes -> GPU: raw uploads, then unpacking into the float stage textures.

Each plane is written as-is into a texture as wide as its padded rows
(``row_samples / components`` texels), so decoder buffers are never copied to
strip padding; the unpack pass reads only the valid region with texelFetch.
8-bit planes use normalised R8-style textures, 9..16-bit planes R16; the
unpack pass rescales LSB-aligned samples so that LUMA/CHROMA hold
``code / (2**bits - 1)`` as mpv's hooks expect.
"""

from __future__ import annotations

from dataclasses import dataclass

import moderngl
import numpy as np

from .errors import MediaError
from .frames import Frame, FrameFormat, PlaneFormat
from .glsl import GLSL_VERSION
from .gltex import FullscreenProgram, Plane, TexturePool

# Chroma sample positions: is the chroma sample co-sited with the first luma
# sample (True) or centred between the luma samples it covers (False), per axis.
_COSITED = {"left": (True, False), "center": (False, False), "topleft": (True, True)}

_CHANNEL = "rgba"


@dataclass(frozen=True)
class _Source:
    plane: int
    channel: int


def _roles(fmt: FrameFormat) -> dict[str, _Source]:
    """Where each logical component (Y, Cb, Cr, R, G, B, A) lives."""
    out: dict[str, _Source] = {}
    for i, p in enumerate(fmt.planes):
        role = p.role
        if role in ("Y", "G") and fmt.kind == "gray":
            out["Y"] = _Source(i, 0)
            if p.components >= 2:
                out["A"] = _Source(i, 1)
        elif role == "Y":
            out["Y"] = _Source(i, 0)
            if p.components >= 2:
                out["A"] = _Source(i, 1)
        elif role == "U":
            out["Cb"] = _Source(i, 0)
        elif role == "V":
            out["Cr"] = _Source(i, 0)
        elif role == "UV":
            out["Cb"] = _Source(i, 0)
            out["Cr"] = _Source(i, 1)
        elif len(role) == p.components > 1 and set(role) <= set("RGBAX") and {"R", "G", "B"} <= set(role):
            # Packed RGB: the role spells the component order in memory (BGRA, XRGB...); X is padding.
            for k, ch in enumerate(role):
                if ch != "X":
                    out[ch] = _Source(i, k)
        elif role in ("R", "G", "B", "A"):
            out[role] = _Source(i, 0)
        else:
            raise MediaError(f"unsupported plane role {role!r} in a {fmt.kind} frame")
    return out


def _unpack_source(sources: list[_Source], muls: list[float]) -> str:
    used = sorted({s.plane for s in sources})
    decl = "".join(f"layout(binding = {i}) uniform sampler2D plane{i};\n" for i in used)
    body = "".join(
        f"    color.{_CHANNEL[k]} = texelFetch(plane{s.plane}, p, 0).{_CHANNEL[s.channel]} * {muls[s.plane]!r};\n"
        for k, s in enumerate(sources)
    )
    return (
        GLSL_VERSION + decl + "out vec4 color;\nvoid main() {\n    ivec2 p = ivec2(gl_FragCoord.xy);\n"
        "    color = vec4(0.0, 0.0, 0.0, 1.0);\n" + body + "}\n"
    )


class FrameUnpacker:
    """Uploads a stream's frames and unpacks them into LUMA/CHROMA/ALPHA (or RGB) planes.

    Built once per ``FrameFormat`` (and per padded row width); every frame then
    costs one texture write per plane and one draw per output plane.
    """

    def __init__(self, ctx: moderngl.Context, fmt: FrameFormat, row_samples: tuple[int, ...]):
        self.ctx = ctx
        self.format = fmt
        self.row_samples = row_samples
        if fmt.kind not in ("yuv", "rgb", "gray"):
            raise MediaError(f"unsupported frame kind {fmt.kind!r}")
        self._textures: list[moderngl.Texture] = []
        self._copy_rows: list[bool] = []
        muls = []
        for p, rs in zip(fmt.planes, row_samples):
            if p.bytes_per_sample not in (1, 2):
                raise MediaError(f"unsupported sample size of {p.bytes_per_sample} bytes in plane {p.role}")
            # Padded rows go up as-is; only a row length that is not a whole
            # number of pixels (never produced by FFmpeg) forces a copy.
            whole = rs % p.components == 0
            tw = rs // p.components if whole else p.width
            self._copy_rows.append(not whole)
            dtype = "f1" if p.bytes_per_sample == 1 else "nu2"
            tex = ctx.texture((tw, p.height), p.components, dtype=dtype)
            tex.filter = (moderngl.NEAREST, moderngl.NEAREST)
            self._textures.append(tex)
            container_peak = 255.0 if p.bytes_per_sample == 1 else 65535.0
            muls.append(container_peak / (2**fmt.bit_depth - 1) if p.bytes_per_sample == 2 else 1.0)
        roles = _roles(fmt)
        self.has_alpha = "A" in roles
        # output name -> (program, components, size, placement)
        self._outputs: list[tuple[str, FullscreenProgram, int, tuple]] = []

        def add(name: str, comps: list[str], plane: PlaneFormat, placement: tuple):
            srcs = [roles[c] for c in comps]
            prog = FullscreenProgram(ctx, _unpack_source(srcs, muls))
            self._outputs.append((name, prog, len(comps), (plane.width, plane.height) + placement))

        if fmt.kind == "rgb":
            missing = [c for c in ("R", "G", "B") if c not in roles]
            if missing:
                raise MediaError(f"rgb frame without a {'/'.join(missing)} component")
            add("RGB", ["R", "G", "B"] + (["A"] if self.has_alpha else []), fmt.planes[roles["R"].plane],
                (1.0, 1.0, 0.0, 0.0))
        else:
            if "Y" not in roles:
                raise MediaError(f"{fmt.kind} frame without a Y plane")
            add("LUMA", ["Y"], fmt.planes[roles["Y"].plane], (1.0, 1.0, 0.0, 0.0))
            if fmt.kind == "yuv":
                if "Cb" not in roles or "Cr" not in roles:
                    raise MediaError("yuv frame without both chroma planes")
                c = fmt.planes[roles["Cb"].plane]
                subx, suby = fmt.chroma_subsampling
                cos_x, cos_y = _COSITED.get(fmt.chroma_location, (False, False))
                # Chroma texel u covers image x in [sub*u, sub*(u+1)); a co-sited
                # sample sits at luma centre sub*u + 0.5 instead of sub*u + sub/2.
                tx = (0.5 - 0.5 / subx) if (cos_x and subx > 1) else 0.0
                ty = (0.5 - 0.5 / suby) if (cos_y and suby > 1) else 0.0
                add("CHROMA", ["Cb", "Cr"], c, (1.0 / subx, 1.0 / suby, tx, ty))
            if self.has_alpha:
                add("ALPHA", ["A"], fmt.planes[roles["A"].plane], (1.0, 1.0, 0.0, 0.0))

    def matches(self, fmt: FrameFormat, row_samples: tuple[int, ...]) -> bool:
        return fmt == self.format and row_samples == self.row_samples

    def upload(self, frame: Frame) -> None:
        for i, (p, arr, tex) in enumerate(zip(self.format.planes, frame.planes, self._textures)):
            want = np.uint8 if p.bytes_per_sample == 1 else np.uint16
            if arr.dtype != want:
                raise MediaError(f"plane {i} ({p.role}) has dtype {arr.dtype}, expected {np.dtype(want)}")
            if arr.shape[0] < p.height:
                raise MediaError(f"plane {i} ({p.role}) has {arr.shape[0]} rows, expected {p.height}")
            if self._copy_rows[i]:
                arr = arr[: p.height, : p.width * p.components]
            elif arr.shape[0] != p.height:
                arr = arr[: p.height]
            tex.write(np.ascontiguousarray(arr))

    def unpack(self, pool: TexturePool) -> dict[str, Plane]:
        for i, tex in enumerate(self._textures):
            tex.use(i)
        out = {}
        for name, prog, comps, (w, h, sx, sy, tx, ty) in self._outputs:
            tex = pool.acquire(w, h, comps)
            prog.draw(pool.fbo(tex))
            out[name] = Plane(tex, w, h, comps, sx, sy, tx, ty)
        return out

    def release(self) -> None:
        for tex in self._textures:
            tex.release()
        for _, prog, _, _ in self._outputs:
            prog.release()
        self._textures.clear()
        self._outputs.clear()
