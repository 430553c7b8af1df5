"""The GL runtime: runs a chain of mpv hook shaders on frames, in mpv's stage order.

Stages (each a hook point where passes may run)::

    planes -> [RGB] -> LUMA / CHROMA / ALPHA -> CHROMA_SCALED / ALPHA_SCALED (chroma
    resampled onto the luma grid) -> NATIVE (merged YCbCr) -> MAINPRESUB, MAIN
    (RGB) -> LINEAR -> SIGMOID -> PREKERNEL -> main scaler -> POSTKERNEL -> SCALED
    -> PREOUTPUT -> OUTPUT

``Renderer._build_plan`` writes this order down once per (input format, output
size, enabled) as a list of steps on named plane slots; texture lifetimes follow
from which later step reads which slot, and ``render`` runs the steps in a loop.

RGB inputs are converted on the GPU to full-range BT.601 YCbCr, so luma hooks
(the CNN) apply to images too. Every stage texture is a ``Plane`` that knows
where it sits in the source image, so prescalers (a LUMA pass that doubles the
size), chroma location and ``//!OFFSET`` are compensated by the later
resampling exactly like mpv's transform tracking.

Supported: every mpv/libplacebo hook point (PREOUTPUT too; XYZ never fires, RGB
only for RGB input, ALPHA only with alpha, as in mpv), BIND/SAVE/COMPONENTS/DESC,
WIDTH/HEIGHT/WHEN, OFFSET ox oy and ALIGN, COMPUTE (shared memory, out_image),
TEXTURE (1D/2D/3D, FILTER, BORDER CLAMP/REPEAT/MIRROR, STORAGE images), PARAM
(DYNAMIC/CONSTANT/DEFINE/ENUM), BUFFER (std140 uniform / std430 storage), and
libplacebo's ``linearize``/``delinearize`` helpers (sRGB for RGB input, BT.1886
otherwise: frames carry no transfer tag).
Shader files are validated in one place, the parser (host/hookparse.py: OFFSET
ALIGN without BIND HOOKED, integer TEXTUREs with FILTER LINEAR, 3-component
STORAGE textures, TEXTURE data of the wrong length, ...); this runtime trusts
the parsed form (a STORAGE TEXTURE without data starts zero-filled, as in
libplacebo). Rejected here, with a ShaderError at file:line, only what depends
on the frame: resizing or shifting POSTKERNEL..OUTPUT (already the output),
pass sizes beyond the GPU's limit, GLSL the driver refuses.
LINEAR and SIGMOID fire on the unchanged MAIN texture (no linear-light scaling);
``FrameFormat.rotation`` is left to the display/encoder (the caller).
"""

from __future__ import annotations

import functools
import math
import random as _random
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import moderngl
import numpy as np

from .colorspace import RGB_INPUT_REPR, neutral_chroma, rgb_to_ycbcr, ycbcr_to_rgb
from .errors import ShaderError, UpshadeError
from .frames import Frame, FrameFormat
from .glsl import GLSL_VERSION
from .gltex import OUTPUT_DTYPES, FullscreenProgram, Plane, TexturePool
from .gpu import choose_fbo_format
from .hookfmt import ShaderFile
from .hookparse import resolve_params, rpn_eval, validate_chain
from .passes import ChainPrograms
from .scalers import CUBIC4_GLSL, Scaler, axis_mapping
from .upload import FrameUnpacker

# Stages whose texture is already at the output size: passes there may not resize (mpv refuses too).
_FIXED_SIZE_STAGES = ("POSTKERNEL", "SCALED", "PREOUTPUT", "OUTPUT")
_MAIN_STAGES = ("MAINPRESUB", "MAIN", "LINEAR", "SIGMOID", "PREKERNEL")
_PRE_NATIVE_STAGES = ("LUMA", "CHROMA", "ALPHA", "CHROMA_SCALED", "ALPHA_SCALED", "NATIVE")

AFFINE_FS = GLSL_VERSION + """
layout(binding = 0) uniform sampler2D src;
uniform mat4 m;
uniform vec4 off;
out vec4 color;
void main() {
    color = m * texelFetch(src, ivec2(gl_FragCoord.xy), 0) + off;
}
"""

# Merges luma, chroma and alpha (all on the luma grid) into one texture and,
# when nothing hooks NATIVE, converts to RGB in the same pass. With ``chroma_v``
# it also does the vertical half of the chroma upscale (4 Catmull-Rom taps, the
# scaler's own kernel and placement): when nothing hooks CHROMA_SCALED, that
# saves writing and re-reading a full-size chroma texture. The matrix and the
# plane layout are compiled in, not uniforms: on llvmpipe a uniform mat4 and
# uniform-guarded fetches made this full-size pass ~1.6x slower.
def _merge_source(chroma_v: bool, has_chroma: bool, has_alpha: bool, m_off, neutral: float) -> str:
    m, off = m_off
    consts = (f"const mat4 M = mat4({', '.join(repr(float(v)) for v in m)});\n"
              f"const vec4 OFF = vec4({', '.join(repr(float(v)) for v in off)});\n"
              f"const vec2 NEUTRAL = vec2({float(neutral)!r});\n")
    return GLSL_VERSION + f"#define CHROMA_V {int(chroma_v)}\n#define HAS_CHROMA {int(has_chroma)}\n" \
        f"#define HAS_ALPHA {int(has_alpha)}\n" + consts + """
layout(binding = 0) uniform sampler2D luma;
layout(binding = 1) uniform sampler2D chroma;
layout(binding = 2) uniform sampler2D alpha;
uniform float vratio;   // CHROMA_V: chroma rows per output row
uniform float vshift;   // CHROMA_V: chroma row coordinate (texel-centre units) of output row 0
out vec4 color;
""" + CUBIC4_GLSL + """
void main() {
    ivec2 p = ivec2(gl_FragCoord.xy);
    vec4 ycc;
    ycc.x = texelFetch(luma, p, 0).x;
#if !HAS_CHROMA
    ycc.yz = NEUTRAL;
#elif CHROMA_V
    float c = float(p.y) * vratio + vshift;
    float base = floor(c);
    vec4 w = upshade_cubic4(c - base);
    int i0 = int(base) - 1, last = textureSize(chroma, 0).y - 1;
    ycc.yz = w.x * texelFetch(chroma, ivec2(p.x, clamp(i0, 0, last)), 0).xy
           + w.y * texelFetch(chroma, ivec2(p.x, clamp(i0 + 1, 0, last)), 0).xy
           + w.z * texelFetch(chroma, ivec2(p.x, clamp(i0 + 2, 0, last)), 0).xy
           + w.w * texelFetch(chroma, ivec2(p.x, clamp(i0 + 3, 0, last)), 0).xy;
#else
    ycc.yz = texelFetch(chroma, p, 0).xy;
#endif
#if HAS_ALPHA
    ycc.w = texelFetch(alpha, p, 0).x;
#else
    ycc.w = 1.0;
#endif
    color = M * ycc + OFF;
}
"""


_IDENTITY4 = (tuple(float(v) for v in np.eye(4).reshape(-1)), (0.0, 0.0, 0.0, 0.0))
# RGBA -> the alpha plane (in x), for an RGB input with alpha whose planes are hooked.
_ALPHA_OF_RGBA = (tuple(1.0 if i == 12 else 0.0 for i in range(16)), (0.0, 0.0, 0.0, 1.0))  # column-major: m[0][3]

def _affine(m3: np.ndarray, off3: np.ndarray, rows: Sequence[int], alpha_from: int | None):
    """A 4x4 affine map (column-major mat4 + vec4) selecting ``rows`` of (m3, off3) into x, y, ... ."""
    m = np.zeros((4, 4))
    off = np.zeros(4)
    for k, r in enumerate(rows):
        m[k, :3] = m3[r]
        off[k] = off3[r]
    if alpha_from is None:
        off[3] = 1.0
    else:
        m[3, alpha_from] = 1.0
    return tuple(float(v) for v in m.T.reshape(-1)), tuple(float(v) for v in off)


def _round_size(v: float) -> int:
    return int(math.floor(v + 0.5))


@dataclass
class _FrameState:
    out_size: tuple[int, int]
    input_size: tuple[int, int]
    frame_index: int
    enabled: bool
    rng: _random.Random
    trc: int = 1                 # transfer of linearize(): 0 sRGB (RGB input), 1 BT.1886 (video)
    saved: dict[str, Plane] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Planes a later step of the plan still reads: hook passes must not recycle their textures.
    held: tuple[Plane, ...] = ()
    # (ratio, shift) when chroma reaches the merge still on its own rows (see _merge_source).
    chroma_v: tuple[float, float] | None = None


@dataclass(frozen=True)
class _Step:
    """One step of a frame: ``writes = run(state, *reads)`` on the plan's plane slots."""

    group: str                     # where ``Renderer.profile`` books its time (``stage_times``)
    reads: tuple[str, ...]
    writes: str
    run: Callable[..., Plane]


@dataclass(frozen=True)
class _Plan:
    """The steps of a frame for one (input format, output size, enabled) and this renderer's chain.

    ``live[i]`` names the slots whose value after step ``i`` a later step reads: what the
    texture pool must keep; everything else is recycled (texture lifetimes follow from it).
    """

    steps: tuple[_Step, ...]
    live: tuple[frozenset[str], ...]
    has_alpha: bool

    @classmethod
    def of(cls, steps: Sequence[_Step], has_alpha: bool) -> "_Plan":
        live, needed = [], {"out"}   # the frame's result
        for step in reversed(steps):
            live.append(frozenset(needed))
            needed = (needed - {step.writes}) | set(step.reads)
        return cls(tuple(steps), tuple(reversed(live)), has_alpha)


class Renderer:
    """Runs a shader chain on frames. Build once per chain; call ``render`` per frame."""

    def __init__(
        self,
        ctx: moderngl.Context,
        shaders: Sequence[ShaderFile] = (),
        *,
        params: Mapping[str, str] | None = None,
        fbo_format: str = "auto",
        output: str = "float",
    ):
        """``output``: format of the texture ``render`` returns when a built-in pass writes it last:
        "float" (the intermediate format: values outside [0, 1] survive), or "unorm8" /
        "unorm16" (clamped; cheaper to write and read back: for a window or an encoder).
        """
        if output not in OUTPUT_DTYPES:
            raise UpshadeError(f"unknown renderer output {output!r}: use one of {', '.join(OUTPUT_DTYPES)}")
        self.ctx = ctx
        self._out_dtype = OUTPUT_DTYPES[output]
        self.shaders = tuple(shaders)
        self.fbo_format, self.fbo_format_reason = choose_fbo_format(ctx, fbo_format)
        validate_chain(self.shaders)
        self.param_values = resolve_params(self.shaders, params or {})
        self.stage_times: dict[str, float] = {}
        self._max_texture_size = int(ctx.info.get("GL_MAX_TEXTURE_SIZE") or 16384)
        self.profile = False
        # Brackets every hook pass (and only those) with begin()/end(): host/gltimer.PassTimer.
        self.pass_timer = None
        self._released = False

        self.programs: ChainPrograms | None = None
        # Stage textures worth keeping under their name (bound or sized by some pass).
        self._needed: set[str] = set()
        for ps in (ps for sf in self.shaders for ps in sf.passes):
            self._needed.update(ps.binds)
            for expr in (ps.width, ps.height, ps.when):
                if expr is not None:
                    self._needed.update(expr.textures)

        self.pool = TexturePool(ctx, self.fbo_format)
        self.scaler = Scaler(ctx, self.pool)
        self._affine = FullscreenProgram(ctx, AFFINE_FS)
        self._merges: dict[tuple, FullscreenProgram] = {}   # merge variants, see _merge_source
        self._geometry: tuple[int, int, int, int] | None = None  # (out w, out h, frame w, frame h) the pool holds
        self._unpacker: FrameUnpacker | None = None
        self._luma_input: moderngl.Texture | None = None
        self._plans: dict[tuple, _Plan] = {}   # (frame format, output size, enabled) -> steps of a frame
        self._output_alpha = False
        # Stage/texture sizes of the last frame (name -> (w, h)), for diagnostics and tests.
        self.last_sizes: dict[str, tuple[int, int]] = {}
        try:
            self.programs = ChainPrograms(ctx, self.shaders, self.param_values, self.fbo_format)
        except BaseException:
            self.release()
            raise

    # -- resources -------------------------------------------------------------

    # -- hooks -----------------------------------------------------------------

    def _lookup(self, st: _FrameState, name: str) -> Plane | None:
        p = st.saved.get(name)
        if p is None and name in ("MAIN", "MAINPRESUB"):
            p = st.saved.get("MAINPRESUB" if name == "MAIN" else "MAIN")
        return p

    def _keep(self, st: _FrameState, *planes: Plane):
        keep = [p.tex for p in st.saved.values()]
        keep += [p.tex for p in st.held]
        keep += [p.tex for p in planes]
        return keep

    def _run_hooks(self, stage: str, plane: Plane, st: _FrameState) -> Plane:
        st.sizes[stage] = (plane.w, plane.h)
        if stage in self._needed:
            st.saved[stage] = plane
        if not st.enabled:
            return plane
        sizes = st.sizes
        for info in self.programs.by_stage.get(stage, ()):
            ps = info.ps
            # HOOKED is not a stage: it is rebound before every pass (no per-pass dict copies).
            sizes["HOOKED"] = (plane.w, plane.h)
            if ps.when is not None and not rpn_eval(ps.when, sizes, self.param_values):
                continue
            # mpv: a pass binding a texture that does not exist (yet) is skipped.
            if any(
                not (n in ("HOOKED", stage) or self.programs.is_resource(n) or self._lookup(st, n) is not None)
                for n in ps.binds
            ):
                continue
            w = _round_size(rpn_eval(ps.width, sizes, self.param_values)) if ps.width else plane.w
            h = _round_size(rpn_eval(ps.height, sizes, self.param_values)) if ps.height else plane.h
            limit = self._max_texture_size
            if not (1 <= w <= limit and 1 <= h <= limit):
                expr = ps.width if not (1 <= w <= limit) else ps.height
                raise ShaderError(ps.file, (expr or ps).line,
                                  f"pass output size {w}x{h} is out of range (1..{limit} on this GPU)")
            comp = self.programs.program(info, stage)
            comps = ps.components or plane.comps
            out = self.pool.acquire(w, h, comp.out_comps if comp.compute else comps)
            timer = self.pass_timer
            if timer is not None:
                timer.begin()
            self.programs.dispatch(comp, ps, plane, st, functools.partial(self._lookup, st), out, self.pool.fbo)
            if timer is not None:
                timer.end()
            kx, ky = w / plane.w, h / plane.h
            if ps.offset == "ALIGN":
                tx, ty = 0.0, 0.0
            else:
                ox, oy = ps.offset if ps.offset else (0.0, 0.0)
                tx, ty = plane.tx * kx + ox, plane.ty * ky + oy
            result = Plane(out, w, h, comps, plane.sx * kx, plane.sy * ky, tx, ty)
            name = ps.save or stage
            if name == stage:
                if stage in _FIXED_SIZE_STAGES and not result.placed_like(plane.replaced(tex=out, comps=comps)):
                    raise ShaderError(ps.file, ps.line, f"a pass hooking {stage} may not change its size or offset "
                                                        f"({plane.w}x{plane.h} -> {w}x{h}): it is already the output")
                plane = result
            st.saved[name] = result
            st.sizes[name] = (w, h)
            self.pool.collect(self._keep(st, plane))
        if stage in self._needed:
            st.saved[stage] = plane
        return plane

    # -- built-in stages ---------------------------------------------------------

    def _apply_affine(self, src: Plane, m_off, comps: int) -> Plane:
        out = self.pool.acquire(src.w, src.h, comps)
        self._affine.set("m", m_off[0])
        self._affine.set("off", m_off[1])
        src.tex.use(0)
        self._affine.draw(self.pool.fbo(out))
        return src.replaced(tex=out, comps=comps)

    def _merge_native(self, luma: Plane, chroma: Plane | None, alpha: Plane | None, neutral: float,
                      m_off=_IDENTITY4, *, chroma_v: tuple[float, float] | None = None,
                      dtype: str | None = None) -> Plane:
        """One texture of luma + chroma (+ alpha), through ``m_off``.

        ``chroma_v`` = (ratio, shift): ``chroma`` is still on its own rows and
        is resampled vertically here (see ``_merge_source``).
        """
        comps = 4 if alpha is not None else 3
        out = self.pool.acquire(luma.w, luma.h, comps, dtype)
        key = (chroma_v is not None, chroma is not None, alpha is not None, m_off, neutral)
        prog = self._merges.get(key)
        if prog is None:
            prog = self._merges[key] = FullscreenProgram(self.ctx, _merge_source(*key))
        luma.tex.use(0)
        if chroma is not None:
            chroma.tex.use(1)
        if alpha is not None:
            alpha.tex.use(2)
        if chroma_v is not None:
            prog.set("vratio", chroma_v[0])
            prog.set("vshift", chroma_v[1])
        prog.draw(self.pool.fbo(out))
        return luma.replaced(tex=out, comps=comps)

    def _align(self, plane: Plane, ref: Plane) -> Plane:
        return plane if plane.placed_like(ref) else self.scaler.resample(plane, ref)

    def _hooks_before_native(self) -> bool:
        return any(s in self.programs.by_stage for s in _PRE_NATIVE_STAGES) or bool(self._needed & set(_PRE_NATIVE_STAGES))

    def _mark(self, name: str, t0: float) -> float:
        if not self.profile:
            return t0
        self.ctx.finish()
        t = time.perf_counter()
        self.stage_times[name] = self.stage_times.get(name, 0.0) + (t - t0)
        return t

    # -- public API ------------------------------------------------------------

    def precompile(self) -> None:
        """Compile every pass for every stage it hooks now, so GLSL errors surface before a long job starts.

        ``render`` compiles lazily (passes that WHEN never enables cost nothing); call this
        first where failing mid-stream would be worse than the extra compile time.
        """
        self.programs.precompile()

    def render(self, frame: Frame, out_size: tuple[int, int], *, frame_index: int = 0,
               enabled: bool = True) -> moderngl.Texture:
        """Run all stages on ``frame``; the returned RGBA texture (``out_size``) stays valid until the next call."""
        if self._released:
            raise UpshadeError("Renderer used after release()")
        ow, oh = self._check_sizes(frame, out_size)
        if self.profile:
            self.stage_times = {}
        t = time.perf_counter()
        plan = self._plan_for(frame, (ow, oh), bool(enabled))
        self.pool.begin_frame()
        self._unpacker.upload(frame)
        t = self._mark("upload", t)
        fmt = frame.format
        st = _FrameState((ow, oh), (fmt.width, fmt.height), frame_index, enabled, _random.Random(frame_index),
                         trc=0 if fmt.kind == "rgb" else 1)
        st.sizes["OUTPUT"] = (ow, oh)
        st.sizes["NATIVE_CROPPED"] = (fmt.width, fmt.height)
        slots = {name.lower(): plane for name, plane in self._unpacker.unpack(self.pool).items()}
        t = self._mark("unpack", t)
        out = self._execute(plan, slots, st, t)
        self._output_alpha = plan.has_alpha
        st.sizes.pop("HOOKED", None)
        self.last_sizes = dict(st.sizes)
        st.saved.clear()
        self.pool.collect([out.tex])
        return out.tex

    def _check_sizes(self, frame: Frame, out_size: tuple[int, int]) -> tuple[int, int]:
        ow, oh = int(out_size[0]), int(out_size[1])
        if ow < 1 or oh < 1:
            raise UpshadeError(f"output size {ow}x{oh} is empty")
        fmt = frame.format
        limit = self._max_texture_size
        widest = max((a.shape[1] // p.components for a, p in zip(frame.planes, fmt.planes)), default=0)
        if max(ow, oh, widest, fmt.width, fmt.height) > limit:
            raise UpshadeError(f"frame {fmt.width}x{fmt.height} -> {ow}x{oh} exceeds this GPU's maximum "
                               f"texture size of {limit}")
        return ow, oh

    def _plan_for(self, frame: Frame, out_size: tuple[int, int], enabled: bool) -> _Plan:
        """The frame's plan, built on first use of its (format, output size, enabled); the unpacker
        for its format; the texture pool trimmed when the sizes change."""
        fmt = frame.format
        geometry = (*out_size, fmt.width, fmt.height)
        if geometry != self._geometry:
            # New sizes (a resized window, another clip): free the textures of the old ones.
            self.pool.begin_frame()
            self.pool.trim()
            self._geometry = geometry
        row_samples = tuple(int(a.shape[1]) for a in frame.planes)
        if self._unpacker is None or not self._unpacker.matches(fmt, row_samples):
            if self._unpacker is not None:
                self._unpacker.release()
                self._unpacker = None
            self._unpacker = FrameUnpacker(self.ctx, fmt, row_samples)
            self._plans.clear()
        key = (fmt, out_size, enabled)
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 8:   # a window being resized: keep only recent sizes
                self._plans.clear()
            plan = self._plans[key] = self._build_plan(fmt, self._unpacker.has_alpha, out_size, enabled)
        return plan

    def _execute(self, plan: _Plan, slots: dict[str, Plane], st: _FrameState, t: float) -> Plane:
        """Run ``plan`` on the unpacked planes in ``slots``; return the output plane."""
        group = plan.steps[0].group
        for step, live in zip(plan.steps, plan.live):
            if step.group != group:
                t = self._mark(group, t)
                group = step.group
            st.held = tuple(slots[n] for n in live if n != step.writes and n in slots)
            slots[step.writes] = step.run(st, *(slots[n] for n in step.reads))
            for name in [n for n in slots if n not in live]:
                del slots[name]
        self._mark(group, t)
        return slots["out"]

    def _build_plan(self, fmt: FrameFormat, has_alpha: bool, out_size: tuple[int, int], enabled: bool) -> _Plan:
        """The stage order of a frame, in one place (see the module docstring).

        Slots: ``rgb`` (the picture as RGB: an RGB input, then MAIN), ``luma``/``chroma``/``alpha``
        (the planes), ``native`` (merged YCbCr, when something hooks NATIVE), ``out`` (at the output
        size). Every hook point runs through ``_run_hooks`` even when nothing hooks it: it records
        the stage's size (and saves it when some pass binds it) for later WHEN/WIDTH/HEIGHT.
        """
        steps: list[_Step] = []

        def add(group: str, reads: Sequence[str], writes: str, run: Callable[..., Plane]) -> None:
            steps.append(_Step(group, tuple(reads), writes, run))

        def hooks(group: str, stage: str, slot: str) -> None:
            add(group, [slot], slot, lambda st, plane: self._run_hooks(stage, plane, st))

        hooked = functools.partial(self._hooked, enabled=enabled)
        ow, oh = out_size
        output = (ow, oh, ow / fmt.width, oh / fmt.height, 0.0, 0.0)   # placement of the output
        if fmt.kind == "rgb":
            hooks("planes", "RGB", "rgb")
            if enabled and self._hooks_before_native():
                repr_ = RGB_INPUT_REPR
                m, off = rgb_to_ycbcr(*repr_)
                to_luma, to_chroma = _affine(m, off, [0], None), _affine(m, off, [1, 2], None)
                add("planes", ["rgb"], "luma", lambda st, rgb: self._apply_affine(rgb, to_luma, 1))
                add("planes", ["rgb"], "chroma", lambda st, rgb: self._apply_affine(rgb, to_chroma, 2))
                if has_alpha:
                    add("planes", ["rgb"], "alpha", lambda st, rgb: self._apply_affine(rgb, _ALPHA_OF_RGBA, 1))
                has_chroma = True
            else:
                repr_ = None   # nothing looks at YCbCr planes: skip the round trip (exact, and 4 passes cheaper)
        else:
            repr_ = (fmt.matrix, fmt.range, fmt.bit_depth)
            has_chroma = fmt.kind == "yuv"

        if repr_ is not None:
            planes = ["luma"] + ["chroma"] * has_chroma + ["alpha"] * has_alpha
            for slot in planes:
                hooks("planes", slot.upper(), slot)
            native_hooked = hooked("NATIVE")
            if has_chroma:
                if native_hooked or hooked("CHROMA_SCALED"):
                    add("native", ["chroma", "luma"], "chroma",
                        lambda st, c, luma: self._to_luma_grid("CHROMA_SCALED", c, luma, st))
                else:
                    add("native", ["chroma", "luma"], "chroma", self._chroma_for_merge)
            if has_alpha:
                add("native", ["alpha", "luma"], "alpha",
                    lambda st, a, luma: self._to_luma_grid("ALPHA_SCALED", a, luma, st))
            m, off = ycbcr_to_rgb(*repr_)
            to_rgb = _affine(m, off, [0, 1, 2], 3 if has_alpha else None)
            neutral = neutral_chroma(repr_[1], repr_[2])
            if native_hooked:
                add("native", planes, "native", self._merge_step(has_chroma, has_alpha, neutral, _IDENTITY4))
                hooks("native", "NATIVE", "native")
                add("native", ["native"], "rgb",
                    lambda st, native: self._apply_affine(native, to_rgb, 4 if has_alpha else 3))
            else:
                # Nothing sees NATIVE: merge and convert in one pass; with nothing after it either (no
                # MAIN..OUTPUT hooks, no scaling) it writes the output format.
                last = not any(hooked(s) for s in _MAIN_STAGES + _FIXED_SIZE_STAGES)
                add("native", planes, "rgb",
                    self._merge_step(has_chroma, has_alpha, neutral, to_rgb, output if last else None))

        for stage in _MAIN_STAGES:
            hooks("main", stage, "rgb")
        last = not any(hooked(s) for s in _FIXED_SIZE_STAGES)
        dtype = self._out_dtype if last else None
        add("scale", ["rgb"], "out", lambda st, main: self.scaler.resample(main, output, dtype=dtype))
        for stage in _FIXED_SIZE_STAGES:
            hooks("output", stage, "out")
        return _Plan.of(steps, has_alpha)

    def _hooked(self, stage: str, enabled: bool) -> bool:
        """Whether a pass runs at ``stage`` or some pass binds or sizes itself by it."""
        return (enabled and stage in self.programs.by_stage) or stage in self._needed

    def _to_luma_grid(self, stage: str, plane: Plane, luma: Plane, st: _FrameState) -> Plane:
        """CHROMA_SCALED / ALPHA_SCALED: ``plane`` resampled onto the luma grid, hooked, and kept there."""
        return self._align(self._run_hooks(stage, self._align(plane, luma), st), luma)

    def _chroma_for_merge(self, st: _FrameState, chroma: Plane, luma: Plane) -> Plane:
        """Nothing looks at CHROMA_SCALED or NATIVE: resample chroma horizontally here and let the
        merge pass do the vertical taps (one full-size pass less)."""
        ry, shy = axis_mapping(chroma.sy, chroma.ty, luma.sy, luma.ty)
        if ry > 1.0:
            return self._to_luma_grid("CHROMA_SCALED", chroma, luma, st)
        chroma = self.scaler.resample(chroma, luma, axes="x")
        if not (chroma.h == luma.h and abs(ry - 1.0) < 1e-9 and abs(shy) < 1e-6):
            st.chroma_v = (ry, shy)
        st.sizes["CHROMA_SCALED"] = (luma.w, luma.h)
        return chroma

    def _merge_step(self, has_chroma: bool, has_alpha: bool, neutral: float, m_off,
                    output: tuple | None = None) -> Callable[..., Plane]:
        """The step merging luma, chroma and alpha through ``m_off``; with ``output`` (the output
        placement) it writes the output format when no scaling follows (RGB and NATIVE are then
        the output)."""
        def run(st: _FrameState, luma: Plane, *rest: Plane) -> Plane:
            chroma = rest[0] if has_chroma else None
            alpha = rest[-1] if has_alpha else None
            if m_off is _IDENTITY4:
                return self._merge_native(luma, chroma, alpha, neutral)
            st.sizes["NATIVE"] = (luma.w, luma.h)
            last = output is not None and self.scaler.is_identity(luma, output)
            return self._merge_native(luma, chroma, alpha, neutral, m_off, chroma_v=st.chroma_v,
                                      dtype=self._out_dtype if last else None)
        return run

    def read_rgb(self, tex: moderngl.Texture, dtype=np.uint8) -> np.ndarray:
        """Read an output texture back: HxWx3 (x4 if the last frame had alpha), clamped to the dtype's range."""
        w, h = tex.size
        dtype = np.dtype(dtype)
        comps = 4 if self._output_alpha else 3
        if tex.dtype in ("f1", "nu2"):  # an unorm output (see ``output``)
            stored = np.uint8 if tex.dtype == "f1" else np.uint16
            arr = np.frombuffer(tex.read(), dtype=stored).reshape(h, w, tex.components)[..., :comps]
            if dtype == stored:
                return arr.copy()
            arr = arr.astype(np.float32) / float(np.iinfo(stored).max)
        else:
            raw = np.frombuffer(tex.read(), dtype=np.float16 if tex.dtype == "f2" else np.float32)
            arr = raw.reshape(h, w, tex.components)[..., :comps].astype(np.float32)
        if dtype.kind == "f":
            return arr.astype(dtype)
        peak = float(np.iinfo(dtype).max)
        return np.rint(np.clip(arr, 0.0, 1.0) * peak).astype(dtype)

    def render_luma(self, y: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """Run only the LUMA hooks on a float32 HxW plane (values as-is) and read back the hooked LUMA.

        ``out_size`` is what ``OUTPUT`` means to WHEN/WIDTH/HEIGHT expressions (default: twice the input).
        """
        if self._released:
            raise UpshadeError("Renderer used after release()")
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.ndim != 2:
            raise UpshadeError(f"render_luma needs a 2-D plane, got shape {y.shape}")
        h, w = y.shape
        if self._luma_input is None or self._luma_input.size != (w, h):
            if self._luma_input is not None:
                self._luma_input.release()
            self._luma_input = self.ctx.texture((w, h), 1, dtype="f4")
            self._luma_input.filter = (moderngl.LINEAR, moderngl.LINEAR)
            self._luma_input.repeat_x = False
            self._luma_input.repeat_y = False
        self._luma_input.write(y)
        out_size = out_size or (2 * w, 2 * h)
        self.pool.begin_frame()
        st = _FrameState(tuple(out_size), (w, h), 0, True, _random.Random(0))
        st.sizes["OUTPUT"] = tuple(out_size)
        st.sizes["NATIVE_CROPPED"] = (w, h)
        plane = self._run_hooks("LUMA", Plane(self._luma_input, w, h, 1), st)
        st.saved.clear()
        if plane.tex is self._luma_input:
            return y.copy()
        raw = np.frombuffer(plane.tex.read(), dtype=np.float16 if plane.tex.dtype == "f2" else np.float32)
        return raw.reshape(plane.h, plane.w, plane.tex.components)[..., 0].astype(np.float32)

    def release(self) -> None:
        """Release every GL object this renderer created (idempotent)."""
        if self._released:
            return
        self._released = True
        if self.programs is not None:
            self.programs.release()
        if self._unpacker is not None:
            self._unpacker.release()
            self._unpacker = None
        if self._luma_input is not None:
            self._luma_input.release()
            self._luma_input = None
        for prog in getattr(self, "_merges", {}).values():
            prog.release()
        for obj in (getattr(self, "scaler", None), getattr(self, "_affine", None), getattr(self, "pool", None)):
            if obj is not None:
                obj.release()

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
