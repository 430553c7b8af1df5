"""The tiled export: fused compute passes, each invocation a block of pixels.

``upshade export CKPT -o shaders/upshade_X_tiled.glsl --tiled`` (or ``--form tiled``)
writes the same network as the fragment and compute exports (same weights, the
same function: tests/test_parity.py, tests/test_tiled.py) with fewer passes and
texture round trips:

* **Fusion.** The conv layers are cut into a few *groups*; one compute pass runs
  a whole group. Its invocation fetches the group's input around its block once
  (the halo the group's layers need) and computes every layer of the group in
  registers, the earlier layers on the block plus the halo the later ones read,
  so no intermediate layer goes through a texture.
* **The final conv runs as it goes.** The final conv is linear in the
  concatenation of every block's CReLU output, so each pass adds the share of
  every layer it has in registers (at the 3x3 neighbourhood of its block) to a
  running sum of the 4 output sub-pixels, and hands the sum on beside the last
  layer's features: a pass stores ``groups + 1`` texels per pixel (the
  features, then the sum), rows interleaved (``//!HEIGHT LUMA.h 2 *`` for 4
  channels). The last pass adds the residual and writes the x2 output itself
  (depth-to-space), as the compute export does. The concatenation stays exact:
  every layer's output is used, at full float32.
* **Blocks.** An invocation computes ``bx x by`` pixels; each input texel is
  fetched once per block (luma 2 x 2 texels per ``textureGather``) and feeds
  every output cell whose window covers it.

Edges: a layer computed in registers over the halo must hold, outside the image,
the value of the nearest pixel inside (replicate padding, as PyTorch and the
texture fetches at clamped coordinates do), not a value computed there; after
each such layer, cells outside the image take their inner neighbour's values
(one select per cell and axis).

Measured on llvmpipe (shaders/README.md, "Tiled form"), it ran within noise of
the compute export for S and M and slower for L, and compiles 10-15x longer, so
the host keeps the compute export there: llvmpipe scalarises every image store
per SIMD lane, and the halo a fused pass recomputes costs about what the stores
it saves did. Workgroup ``shared`` memory (the usual way to share a tile on a
GPU) is not used: on llvmpipe (Mesa 22.3) a ``shared`` store costs ~70% of an
image store, a ``shared`` load as much as a texel fetch, and a ``barrier()`` ~2 ms
per 960x540 frame at one invocation per pixel. So this form needs compute
shaders but no shared memory (its header says so). Its passes are large: a GPU
runs the fragment export faster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..host.api import UpshadeError
from .export import (
    BICUBIC_EVEN,
    BICUBIC_ODD,
    MAX_BINDS,
    Lowered,
    _identifier,
    _num,
    _Pass,
    _vec4,
)

__all__ = ["TiledPlan", "default_plan", "tiled_passes", "TILED_REQUIREMENTS"]

# What the file needs from the player; written into its header.
TILED_REQUIREMENTS = (
    "compute shaders (mpv: OpenGL 4.3+, Vulkan or D3D11; no shared memory used); "
    "without them use the fragment export upshade_<size>.glsl"
)


@dataclass(frozen=True)
class TiledPlan:
    """How the network is cut into passes and invocations.

    ``groups``: conv layers fused into each pass (they sum to the model's blocks);
    ``block``: source pixels each invocation computes (x, y);
    ``threads``: invocations per work group (x, y).
    """

    groups: tuple[int, ...]
    block: tuple[int, int] = (8, 2)
    threads: tuple[int, int] = (8, 1)

    def check(self, low: Lowered) -> "TiledPlan":
        body, tail = self.groups[:-1], (self.groups or (-1,))[-1]
        if sum(self.groups) != low.blocks or any(g < 1 for g in body) or tail < 0:
            raise UpshadeError(f"tiled plan {self.groups} does not cut {low.blocks} layers into groups of >= 1 "
                               f"(the last may be 0: a pass of the final conv alone)")
        if min(self.block) < 1 or min(self.threads) < 1:
            raise UpshadeError(f"tiled plan: block {self.block} and threads {self.threads} must be >= 1")
        if self.threads[0] * self.threads[1] > 128:
            raise UpshadeError("tiled plan: more than 128 invocations per work group")
        return self


def default_plan(low: Lowered) -> TiledPlan:
    """The plan measured fastest on llvmpipe (shaders/README.md): pairs of layers per pass, 4 x 4 blocks.

    M (7 layers) runs as 2 + 2 + 2 + 1, S (3) as 2 + 1. Deeper groups recompute a
    wider halo than they save (3 + 2 + 2 and 4 + 3 were slower, and 4 layers in one
    pass took minutes to compile); one layer per pass stores twice as many texels.
    Models wider than 4 channels (L: 8 textures of features per layer) take 4 x 2
    blocks, so a pass's code stays the size of the narrow models' 4 x 4 ones.
    """
    n = low.blocks
    groups = [2] * (n // 2) + [1] * (n % 2)
    block = (4, 4) if low.groups == 1 else (4, 2)
    return TiledPlan(tuple(groups), block, (8, 1)).check(low)


# ------------------------------------------------------------------ GLSL helpers


class _Grid:
    """A square-halo grid of cells around the block: radius ``r``; cell (i, j) is offset (i - r, j - r)."""

    def __init__(self, name: str, r: int, block: tuple[int, int]):
        self.name, self.r = name, r
        self.w, self.h = block[0] + 2 * r, block[1] + 2 * r

    def cells(self):
        return [(i, j) for j in range(self.h) for i in range(self.w)]

    def at(self, dx: int, dy: int) -> tuple[int, int]:
        """The cell index of block offset (dx, dy)."""
        return dx + self.r, dy + self.r


def _mat(m: np.ndarray) -> str:
    """``mat4(...) * v`` computes ``m @ v`` for a 4 x 4 ``m``: GLSL constructors take columns."""
    return "mat4(" + ", ".join(_num(v) for v in m.T.reshape(-1)) + ")"


class _Body:
    """GLSL statements of one pass, with weight constants declared once and named."""

    def __init__(self):
        self.consts: list[str] = []
        self.lines: list[str] = []
        self._names: dict[str, str] = {}

    def const(self, kind: str, literal: str) -> str:
        name = self._names.get(literal)
        if name is None:
            name = self._names[literal] = f"w{len(self._names)}"
            self.consts.append(f"    const {kind} {name} = {literal};")
        return name

    def add(self, line: str) -> None:
        self.lines.append("    " + line)

    def text(self) -> list[str]:
        return self.consts + self.lines


def _feature(layer: int, u: int, i: int, j: int) -> str:
    return f"f{layer}_{u}_{i}_{j}"


def _pos(layer: int, t: int, i: int, j: int) -> str:
    return f"a{layer}_{t}_{i}_{j}"


def _neg(layer: int, t: int, i: int, j: int) -> str:
    return f"n{layer}_{t}_{i}_{j}"


def _luma(i: int, j: int) -> str:
    return f"l{i}_{j}"


def _fix_edges(body: _Body, layer: int, g: int, grid: _Grid) -> None:
    """Cells outside the image take the value of their inner neighbour (replicate padding)."""
    r = grid.r
    for axis, n, other in (("x", grid.w, grid.h), ("y", grid.h, grid.w)):
        def cell(a, b):
            return (a, b) if axis == "x" else (b, a)

        # left / top: offset a - r < 0 can happen only for a < r (the block origin is inside)
        for a in range(r - 1, -1, -1):
            cond = f"o.{axis} < {r - a}"
            for b in range(other):
                for u in range(g):
                    dst, src = _feature(layer, u, *cell(a, b)), _feature(layer, u, *cell(a + 1, b))
                    body.add(f"{dst} = {cond} ? {src} : {dst};")
        # right / bottom: offset a - r > 0 can pass the last pixel
        for a in range(r + 1, n):
            cond = f"o.{axis} + {a - r} > lim.{axis}"
            for b in range(other):
                for u in range(g):
                    dst, src = _feature(layer, u, *cell(a, b)), _feature(layer, u, *cell(a - 1, b))
                    body.add(f"{dst} = {cond} ? {src} : {dst};")


def _first_layer(body: _Body, low: Lowered, luma: _Grid, out: _Grid) -> None:
    """Layer 1 from the luma grid: 4 taps per matrix."""
    w, b = low.convs[0]
    taps = [(ky, kx) for ky in range(3) for kx in range(3)]
    cells = out.cells()
    for u in range(low.groups):
        bias = _vec4(b[4 * u:4 * u + 4])
        for i, j in cells:
            body.add(f"vec4 {_feature(1, u, i, j)} = {bias};")
    for start in range(0, 9, 4):
        chunk = taps[start:start + 4]
        for u in range(low.groups):
            cols = np.stack([w[4 * u:4 * u + 4, 0, ky, kx] for ky, kx in chunk], axis=1)  # (4, n)
            if len(chunk) == 4:
                name = body.const("mat4", _mat(cols))
            for i, j in cells:
                dx, dy = i - out.r, j - out.r
                lum = [_luma(*luma.at(dx + kx - 1, dy + ky - 1)) for ky, kx in chunk]
                f = _feature(1, u, i, j)
                if len(chunk) == 4:
                    body.add(f"{f} += {name} * vec4({', '.join(lum)});")
                else:
                    for col, lv in zip(cols.T, lum):
                        body.add(f"{f} += {body.const('vec4', _vec4(col))} * {lv};")


def _sweep(body: _Body, low: Lowered, layer: int, src: _Grid, out: _Grid | None, final: bool,
           block: tuple[int, int]) -> None:
    """Layer ``layer + 1`` on ``out``'s cells from the CReLU of layer ``layer`` on ``src`` and/or (``final``)
    layer ``layer``'s share of the final conv, input cell by input cell.

    Each input texel is CReLU'd where it is first used and feeds every output cell (and
    block pixel) whose window covers it before the next one is touched, so inputs live
    briefly (the compute export's order): with all inputs live at once (weight by weight)
    LLVM spent minutes allocating registers for the larger passes and spilled more.
    """
    g = low.groups
    kf = low.final_w.shape[-1]
    rf = kf // 2
    single = low.n_out == 1
    if out is not None:
        w, b = low.convs[layer]
        for u in range(g):
            bias = _vec4(b[4 * u:4 * u + 4])
            for i, j in out.cells():
                body.add(f"vec4 {_feature(layer + 1, u, i, j)} = {bias};")
    for si, sj in src.cells():
        dx, dy = si - src.r, sj - src.r  # block offset of this input cell
        conv_uses = []
        if out is not None:
            for i, j in out.cells():
                kx, ky = dx - (i - out.r) + 1, dy - (j - out.r) + 1
                if 0 <= kx < 3 and 0 <= ky < 3:
                    conv_uses.append((i, j, kx, ky))
        final_uses = []
        if final:
            for qy in range(block[1]):
                for qx in range(block[0]):
                    kx, ky = dx - qx + rf, dy - qy + rf
                    if 0 <= kx < kf and 0 <= ky < kf:
                        final_uses.append((qx, qy, kx, ky))
        for t in range(g):
            ch = ((layer - 1) * g + t) * 8
            for half, ref in ((0, _pos), (1, _neg)):
                lo = 8 * t + 4 * half
                terms = []
                for i, j, kx, ky in conv_uses:
                    for u in range(g):
                        m = w[4 * u:4 * u + 4, lo:lo + 4, ky, kx]
                        if np.any(m):
                            terms.append((_feature(layer + 1, u, i, j), body.const("mat4", _mat(m)), False))
                for qx, qy, kx, ky in final_uses:
                    m = low.final_w[:, ch + 4 * half:ch + 4 * half + 4, ky, kx]
                    if np.any(m):
                        name = body.const("vec4", _vec4(m[0])) if single else body.const("mat4", _mat(m))
                        terms.append((f"s{qx}_{qy}", name, single))
                if not terms:
                    continue
                v = ref(layer, t, si, sj)
                f = _feature(layer, t, si, sj)
                body.add(f"vec4 {v} = max({'' if half == 0 else '-'}{f}, 0.0);")
                for acc, name, dot in terms:
                    body.add(f"{acc} += dot({name}, {v});" if dot else f"{acc} += {name} * {v};")


def _bilinear(body: _Body, luma: _Grid, qx: int, qy: int) -> str:
    """The x2 bilinear residual (align_corners=False) of block pixel (qx, qy) as a vec4 of its 4 sub-pixels."""
    def col(dx):
        return f"vec3({', '.join(_luma(*luma.at(qx + dx, qy + dy)) for dy in (-1, 0, 1))})"

    he, ho = f"he{qx}_{qy}", f"ho{qx}_{qy}"
    body.add(f"vec3 {he} = 0.25 * {col(-1)} + 0.75 * {col(0)}, {ho} = 0.75 * {col(0)} + 0.25 * {col(1)};")
    return f"vec4(dot({he}.xy, up), dot({ho}.xy, up), dot({he}.yz, down), dot({ho}.yz, down))"


def _bicubic(body: _Body, luma: _Grid, qx: int, qy: int) -> str:
    """torch's x2 bicubic of block pixel (qx, qy), rows first then columns, as a vec4 of its 4 sub-pixels."""
    he, ho = f"he{qx}_{qy}", f"ho{qx}_{qy}"
    rows_e, rows_o = [], []
    for dy in range(-2, 3):
        even = ", ".join(_luma(*luma.at(qx + dx, qy + dy)) for dx in range(-2, 2))
        odd = ", ".join(_luma(*luma.at(qx + dx, qy + dy)) for dx in range(-1, 3))
        rows_e.append(f"dot(vec4({even}), we)")
        rows_o.append(f"dot(vec4({odd}), wo)")
    body.add(f"vec4 {he} = vec4({', '.join(rows_e[:4])}), {ho} = vec4({', '.join(rows_o[:4])});")
    body.add(f"float {he}2 = {rows_e[4]}, {ho}2 = {rows_o[4]};")
    return f"vec4(dot({he}, we), dot({ho}, we), dot(vec4({he}.yzw, {he}2), wo), dot(vec4({ho}.yzw, {ho}2), wo))"


def _luma_grid(body: _Body, luma: _Grid) -> None:
    """The luma around the block, 2 x 2 texels per ``textureGather`` (a quarter of the fetches).

    Gathering at the corner between texels (x, y) and (x + 1, y + 1) returns those 4
    texels; the video texture clamps to its edge, so texels outside the image are
    the edge's, exactly replicate padding (as clamped ``texelFetch`` coordinates).
    """
    have = set(luma.cells())
    for j in range(0, luma.h, 2):
        for i in range(0, luma.w, 2):
            g = f"g{i}_{j}"
            body.add(f"vec4 {g} = HOOKED_mul * textureGather(HOOKED_raw, "
                     f"vec2(o + ivec2({i - luma.r + 1}, {j - luma.r + 1})) * HOOKED_pt, 0);")
            # textureGather's components: x (i, j+1), y (i+1, j+1), z (i+1, j), w (i, j)
            for comp, (di, dj) in zip("wzxy", ((0, 0), (1, 0), (0, 1), (1, 1))):
                if (i + di, j + dj) in have:
                    body.add(f"float {_luma(i + di, j + dj)} = {g}.{comp};")


def _inside(qx: int, qy: int) -> str:
    # Vulkan leaves stores outside the image undefined (GL drops them): a partial block skips them.
    return f"if (o.x + {qx} <= lim.x && o.y + {qy} <= lim.y)"


# ------------------------------------------------------------------ passes


def tiled_passes(low: Lowered, name: str, plan: TiledPlan | None = None) -> list[_Pass]:
    """The network as ``len(plan.groups)`` fused compute passes (see the module docstring)."""
    plan = (plan or default_plan(low)).check(low)
    if low.groups + 1 > MAX_BINDS:  # never: lower() already limits groups
        raise UpshadeError(f"width {low.width} is too wide for the tiled export")
    passes: list[_Pass] = []
    first = 1
    for index in range(len(plan.groups)):
        passes.append(_fused_pass(_FusedPass.of_group(low, plan, name, index, first)))
        first += plan.groups[index]
    return passes


@dataclass
class _FusedPass:
    """One fused pass being written: the group of layers it runs, the grids it computes them on,
    the windows it reads around its block, and its GLSL body."""

    low: Lowered
    plan: TiledPlan
    name: str
    index: int                # the pass's position: 0 starts from the luma, the others from the pass before's texture
    first: int                # its first conv layer (1-based)
    depth: int                # how many layers it runs (0: the final conv alone)
    last: bool                # it finishes the final conv and writes the x2 output
    grids: dict[int, _Grid]   # each layer's cells: the block and the halo the later layers read
    r_in: int                 # radius of the group's input around the block
    luma: _Grid | None        # the luma it reads around the block (None: none)
    body: _Body = field(default_factory=_Body)

    @classmethod
    def of_group(cls, low: Lowered, plan: TiledPlan, name: str, index: int, first: int) -> "_FusedPass":
        depth = plan.groups[index]
        last = index == len(plan.groups) - 1
        rf = low.final_w.shape[-1] // 2
        # Radius of every layer's grid: the last layer of a group is needed on the block only,
        # except in the last pass, where the final conv reads it around the block.
        radii = {layer: (rf if last else 0) + (first + depth - 1 - layer) for layer in range(first, first + depth)}
        grids = {layer: _Grid(f"f{layer}", r, plan.block) for layer, r in radii.items()}
        r_in = radii[first] + 1 if depth else rf
        r_luma = r_in if index == 0 else 0   # the first layer's input
        if last:   # the residual's window
            r_luma = max(r_luma, 2 if low.residual == "bicubic" else 1)
        luma = _Grid("l", r_luma, plan.block) if r_luma else None
        return cls(low, plan, name, index, first, depth, last, grids, r_in, luma)

    @property
    def layers(self) -> list[int]:
        return list(range(self.first, self.first + self.depth))

    @property
    def rows(self) -> int:
        """Texels per pixel handed from one pass to the next: features, then the running sum."""
        return self.low.groups + 1

    @property
    def prefix(self) -> str:
        return "UPSHADE_" + _identifier(self.name)

    @property
    def src_tex(self) -> str | None:
        """The texture the previous pass saved (None in the first pass)."""
        return f"{self.prefix}_T{self.index}" if self.index else None

    @property
    def binds(self) -> list[str]:
        """The previous pass's texture, and the video where its luma is read (first layer, residual)."""
        binds = [self.src_tex] if self.src_tex else []
        if self.index == 0 or self.last:
            binds.append("HOOKED")
        return binds

    @property
    def reach(self) -> int:
        """Radius of the widest window this pass reads around its block."""
        return max(self.r_in, self.luma.r if self.luma else 0)

    @property
    def single(self) -> bool:
        return self.low.n_out == 1

    @property
    def block_px(self) -> list[tuple[int, int]]:
        bx, by = self.plan.block
        return [(qx, qy) for qy in range(by) for qx in range(bx)]

    def coord(self, dx: int, dy: int) -> tuple[str, str]:
        """The clamped coordinates (names declared by :func:`_coordinates`) of block offset (dx, dy)."""
        return f"x{dx + self.reach}", f"y{dy + self.reach}"


def _fused_pass(p: _FusedPass) -> _Pass:
    """The pass's GLSL, in the order it runs, and how the pass is declared."""
    _coordinates(p)
    if p.luma:
        _luma_grid(p.body, p.luma)
    _running_sums(p)
    _layers(p, _previous_features(p))
    (bx, by), (tx, ty) = p.plan.block, p.plan.threads
    if p.last:
        _store_output(p)
        return _Pass(_describe(p), p.binds, p.body.text(), upscale=True, compute=(2 * bx * tx, 2 * by * ty, tx, ty))
    _store_partial(p)
    return _Pass(_describe(p), p.binds, p.body.text(), save=f"{p.prefix}_T{p.index + 1}",
                 compute=(bx * tx, p.rows * by * ty, tx, ty), height_mul=p.rows)


def _coordinates(p: _FusedPass) -> None:
    """The block's origin ``o``, the last pixel ``lim``, and the clamped coordinates of the widest window read."""
    bx, by = p.plan.block
    p.body.add("ivec2 o = ivec2(gl_GlobalInvocationID.xy) * ivec2(%d, %d);" % (bx, by))
    if "HOOKED" in p.binds:
        p.body.add("ivec2 lim = ivec2(HOOKED_size) - 1;")
    else:
        p.body.add(f"ivec2 lim = ivec2({p.src_tex}_size) / ivec2(1, {p.rows}) - 1;")
    reach = p.reach
    for axis, n in (("x", bx), ("y", by)):
        decl = ", ".join(f"{axis}{i} = clamp(o.{axis} + {i - reach}, 0, lim.{axis})" for i in range(n + 2 * reach))
        p.body.add(f"int {decl};")


def _running_sums(p: _FusedPass) -> None:
    """The running sum of the final conv for every block pixel: its bias, or the sum the previous pass saved."""
    low, single = p.low, p.single
    acc_t = "float" if single else "vec4"
    for qx, qy in p.block_px:
        if p.index == 0:
            init = _num(low.final_b[0]) if single else _vec4(low.final_b)
        else:
            cx, cy = p.coord(qx, qy)
            init = f"texelFetch({p.src_tex}_raw, ivec2({cx}, {p.rows} * {cy} + {low.groups}), 0)" + (".x" if single else "")
        p.body.add(f"{acc_t} s{qx}_{qy} = {init};")


def _previous_features(p: _FusedPass) -> _Grid | None:
    """The group's input: the previous pass's last layer around the block (None in the first pass, which
    starts from the luma). It is CReLU'd where the sweeps use it."""
    if p.index == 0:
        return None
    prev = p.first - 1
    src = _Grid(f"f{prev}", p.r_in, p.plan.block)
    for i, j in src.cells():
        cx, cy = p.coord(i - p.r_in, j - p.r_in)
        for t in range(p.low.groups):
            p.body.add(f"vec4 {_feature(prev, t, i, j)} = texelFetch({p.src_tex}_raw, ivec2({cx}, {p.rows} * {cy} + {t}), 0);")
    return src


def _layers(p: _FusedPass, src: _Grid | None) -> None:
    """The group's layers in registers from ``src``, adding each input's share of the final conv on the way."""
    # Whether the final conv still needs the share of the layer on ``src`` (the input, or the
    # previous layer of this group): added in the same sweep as the next layer's conv.
    src_final = bool(p.index)
    layers = p.layers
    for layer in layers:
        grid = p.grids[layer]
        if layer == 1:
            _first_layer(p.body, p.low, p.luma, grid)
        else:
            _sweep(p.body, p.low, layer - 1, src, grid, src_final, p.plan.block)
        needed_around = layer != layers[-1] or p.last
        if needed_around and grid.r > 0:
            _fix_edges(p.body, layer, p.low.groups, grid)
        src, src_final = grid, needed_around
    if src_final:  # the last pass: the last layer's share (or the input's, in a pass of the final conv alone)
        _sweep(p.body, p.low, p.first + p.depth - 1, src, None, True, p.plan.block)


def _store_partial(p: _FusedPass) -> None:
    """Hand the last layer's features and the running sums on to the next pass, ``rows`` texels a pixel."""
    g, rows, last = p.low.groups, p.rows, p.layers[-1]
    for qx, qy in p.block_px:
        p.body.add(f"{_inside(qx, qy)} {{")
        q = f"ivec2(o.x + {qx}, {rows} * (o.y + {qy})"
        for u in range(g):
            p.body.add(f"    imageStore(out_image, {q} + {u}), {_feature(last, u, *p.grids[last].at(qx, qy))});")
        s = f"vec4(s{qx}_{qy}, 0.0, 0.0, 0.0)" if p.single else f"s{qx}_{qy}"
        p.body.add(f"    imageStore(out_image, {q} + {g}), {s});")
        p.body.add("}")


def _store_output(p: _FusedPass) -> None:
    """The final conv's sums plus the residual, written as the x2 output (depth-to-space)."""
    bicubic = p.low.residual == "bicubic"
    if bicubic:
        p.body.add(f"const vec4 we = {_vec4(BICUBIC_EVEN)};")
        p.body.add(f"const vec4 wo = {_vec4(BICUBIC_ODD)};")
    else:
        p.body.add("const vec2 up = vec2(0.25, 0.75), down = vec2(0.75, 0.25);")
    for qx, qy in p.block_px:
        res = (_bicubic if bicubic else _bilinear)(p.body, p.luma, qx, qy)
        s = f"vec4(s{qx}_{qy})" if p.single else f"s{qx}_{qy}"
        p.body.add(f"vec4 y{qx}_{qy} = {s} + {res};")
        p.body.add(f"{_inside(qx, qy)} {{")
        p.body.add(f"    ivec2 q = 2 * (o + ivec2({qx}, {qy}));")
        for c, (sx, sy) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
            p.body.add(f"    imageStore(out_image, q + ivec2({sx}, {sy}), vec4(y{qx}_{qy}.{'xyzw'[c]}, 0.0, 0.0, 1.0));")
        p.body.add("}")


def _describe(p: _FusedPass) -> str:
    """The pass's ``//!DESC``: its convs, then the partial sum or the final conv and residual."""
    low, layers = p.low, p.layers
    convs = ""
    if layers:
        span = f"conv{layers[0]}" + (f"-{layers[-1]}" if p.depth > 1 else "")
        convs = f"{span} ({2 * low.width if layers[0] > 1 else 1}->{low.width}, fused) + "
    tag = f"upshade {p.name} tiled {convs}"
    if not p.last:
        return f"{tag}final conv partial sum"
    cin = low.blocks * 2 * low.width
    n_out = 4 if low.config["upscale"] == "pixel_shuffle" else 1
    return f"{tag}final ({cin}->{n_out}) + depth-to-space + {low.residual} residual (x2)"
