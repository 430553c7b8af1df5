"""The GL side of a shader chain's passes: programs compiled per (pass, hook point) on first use
(uniform locations looked up once), and the chain's //!TEXTURE and //!BUFFER objects.

The renderer (host/pipeline.py) decides which pass runs when and on which textures;
this module turns a parsed pass (host/hookfmt.HookPass) into a program and runs it.
Shader files were validated by the parser (host/hookparse.py); what is checked here
depends on the driver only (a texture it cannot create, GLSL it refuses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import moderngl

from . import rawgl
from .errors import ShaderError
from .glsl import BufferBinding, TexBinding, UserTexBinding, compile_error, hook_source, param_decls
from .gltex import FullscreenProgram, Plane, TexturePool
from .hookfmt import HookPass, ParamValue, ShaderFile, TextureDef
from .hookparse import TEXTURE_FORMATS

# moderngl dtype for (numpy kind, itemsize, normalized) of a //!TEXTURE format.
_USER_DTYPES = {
    ("u", 1, True): "f1", ("u", 2, True): "nu2", ("i", 1, True): "ni1", ("i", 2, True): "ni2",
    ("f", 2, False): "f2", ("f", 4, False): "f4",
    ("u", 1, False): "u1", ("u", 2, False): "u2", ("u", 4, False): "u4",
    ("i", 1, False): "i1", ("i", 2, False): "i2", ("i", 4, False): "i4",
}
_IMAGE_SUFFIX = {
    ("u", 1, True): "8", ("u", 2, True): "16", ("i", 1, True): "8_snorm", ("i", 2, True): "16_snorm",
    ("f", 2, False): "16f", ("f", 4, False): "32f",
    ("u", 1, False): "8ui", ("u", 2, False): "16ui", ("u", 4, False): "32ui",
    ("i", 1, False): "8i", ("i", 2, False): "16i", ("i", 4, False): "32i",
}



@dataclass
class PassInfo:
    index: int
    ps: HookPass
    file: ShaderFile


@dataclass
class Compiled:
    program: object                     # FullscreenProgram or moderngl.ComputeShader
    compute: bool
    plane_binds: list[tuple[str, int]]  # (texture name to look up, sampler unit)
    user: list[tuple[moderngl.Texture, int, bool]]  # (texture, unit, storage)
    buffers: list[tuple[moderngl.Buffer, int, bool]]
    uniforms: dict[str, object]         # uniform name -> moderngl Uniform (only those that survived linking)
    unit_uniforms: dict[int, tuple]     # unit -> (size, pixel_size, offset) uniforms or None
    align_unit: int | None              # sampler unit of HOOKED when //!OFFSET ALIGN
    out_comps: int = 4                  # components of a compute pass's out_image



class ChainPrograms:
    """GL objects of a shader chain: its passes by hook point, their programs, its textures and buffers."""

    def __init__(self, ctx: moderngl.Context, shaders: Sequence[ShaderFile], param_values: dict[str, ParamValue],
                 fbo_format: str):
        self.ctx = ctx
        self.param_values = param_values
        self.fbo_format = fbo_format
        self.passes: list[PassInfo] = []
        self.by_stage: dict[str, list[PassInfo]] = {}
        for sf in shaders:
            for ps in sf.passes:
                info = PassInfo(len(self.passes), ps, sf)
                self.passes.append(info)
                for stage in ps.hooks:
                    self.by_stage.setdefault(stage, []).append(info)
        self.compiled: dict[tuple[int, str], Compiled] = {}
        self.textures: dict[str, tuple[TextureDef, moderngl.Texture, str, str]] = {}
        self.buffers: dict[str, tuple[object, moderngl.Buffer]] = {}
        try:
            for sf in shaders:
                for td in sf.textures:
                    self.textures[td.name] = self._create_texture(td)
                for bd in sf.buffers:
                    data = bd.data if bd.data else bytes(bd.size)
                    self.buffers[bd.name] = (bd, ctx.buffer(data.ljust(max(bd.size, 4), b"\0")))
        except BaseException:
            self.release()
            raise

    def is_resource(self, name: str) -> bool:
        """Whether ``name`` is one of the chain's //!TEXTURE or //!BUFFER names (always bindable)."""
        return name in self.textures or name in self.buffers

    def program(self, info: PassInfo, stage: str) -> Compiled:
        """The pass compiled for hook point ``stage`` (compiled on first use)."""
        key = (info.index, stage)
        comp = self.compiled.get(key)
        if comp is None:
            comp = self.compiled[key] = self._compile(info, stage)
        return comp

    def precompile(self) -> None:
        for info in self.passes:
            for stage in info.ps.hooks:
                self.program(info, stage)

    def _create_texture(self, td: TextureDef):
        # The definition was validated by the parser (host/hookparse.py is the one place that
        # checks a shader file): format known, no FILTER LINEAR on integers, no rgb STORAGE image,
        # data of the right length or, for a STORAGE image, none at all (zero-filled, as libplacebo).
        fmt = TEXTURE_FORMATS[td.format]
        key = (fmt.dtype.kind, fmt.dtype.itemsize, fmt.normalized)
        dtype = _USER_DTYPES[key]
        comps = fmt.components
        dims = len(td.size)
        integer = fmt.is_integer
        data = td.data or bytes(math.prod(td.size) * fmt.texel_size)
        if (dims == 1 or td.border == "MIRROR") and not rawgl.available():
            raise ShaderError(td.file, td.line, f"TEXTURE '{td.name}': 1D textures and BORDER MIRROR need "
                                                "libOpenGL/libGL, which cannot be loaded here")
        try:
            if dims == 1:
                tex = rawgl.Texture1D(self.ctx, td.size[0], comps, data, dtype, td.filter == "LINEAR", td.border)
            elif dims == 2:
                tex = self.ctx.texture(td.size, comps, data, dtype=dtype, alignment=1)
            else:
                tex = self.ctx.texture3d(td.size, comps, data, dtype=dtype, alignment=1)
        except (moderngl.Error, OSError) as exc:
            raise ShaderError(td.file, td.line, f"TEXTURE '{td.name}': cannot create it: {exc}") from None
        if dims > 1:
            filt = moderngl.LINEAR if td.filter == "LINEAR" else moderngl.NEAREST
            tex.filter = (filt, filt)
            rep = td.border == "REPEAT"
            tex.repeat_x = rep
            tex.repeat_y = rep
            if dims == 3:
                tex.repeat_z = rep
            if td.border == "MIRROR":
                # moderngl only knows clamp and repeat
                rawgl.set_wrap(tex, rawgl.GL_TEXTURE_2D if dims == 2 else rawgl.GL_TEXTURE_3D, "MIRROR", dims)
        glsl_fmt = ("r", "rg", "rgb", "rgba")[comps - 1] + _IMAGE_SUFFIX[key]
        prefix = ("u" if fmt.dtype.kind == "u" else "i") if integer else ""
        return td, tex, glsl_fmt, prefix

    def _compile(self, info: PassInfo, stage: str) -> Compiled:
        ps = info.ps
        texs: list[TexBinding] = []
        plane_binds: list[tuple[str, int]] = []
        user_bindings: list[UserTexBinding] = []
        user: list[tuple[moderngl.Texture, int, bool]] = []
        buf_bindings: list[BufferBinding] = []
        buffers: list[tuple[moderngl.Buffer, int, bool]] = []
        hooked_unit = None
        align_unit = None
        n_units = 0
        n_images = 1  # image unit 0 is out_image
        n_ubo = n_ssbo = 0
        for name in ps.binds:
            if name in ("HOOKED", stage):
                if hooked_unit is None:
                    hooked_unit = n_units
                    n_units += 1
                    texs.append(TexBinding(hooked_unit, ("HOOKED", stage)))
                    plane_binds.append(("HOOKED", hooked_unit))
                continue
            if name in self.textures:
                td, tex, glsl_fmt, prefix = self.textures[name]
                if td.storage:
                    unit = n_images
                    n_images += 1
                else:
                    unit = n_units
                    n_units += 1
                user_bindings.append(UserTexBinding(unit, td, glsl_fmt, prefix))
                user.append((tex, unit, td.storage))
                continue
            if name in self.buffers:
                bd, buf = self.buffers[name]
                if bd.storage:
                    binding, n_ssbo = n_ssbo, n_ssbo + 1
                else:
                    binding, n_ubo = n_ubo, n_ubo + 1
                buf_bindings.append(BufferBinding(binding, bd))
                buffers.append((buf, binding, bd.storage))
                continue
            texs.append(TexBinding(n_units, (name,)))
            plane_binds.append((name, n_units))
            n_units += 1
        if ps.offset == "ALIGN":
            align_unit = hooked_unit  # the parser made sure an ALIGN pass binds HOOKED
        comps = ps.components or 4
        own_params = info.file.params
        # A compute pass's out_image is declared in its texture's format: with COMPONENTS
        # given, only those (writing r32f instead of rgba32f measured ~3x cheaper on llvmpipe).
        out_comps = TexturePool.storage_components(ps.components) if ps.components else 4
        out_format = {1: "r", 2: "rg", 4: "rgba"}[out_comps] + self.fbo_format[len("rgba"):]
        src = hook_source(ps, texs, user_bindings, buf_bindings, param_decls(own_params, self.param_values),
                          comps, out_format)
        try:
            if ps.compute is not None:
                program = self.ctx.compute_shader(src)
                prog = program
            else:
                program = FullscreenProgram(self.ctx, src)
                prog = program.prog
        except moderngl.Error as exc:
            raise compile_error(exc, ps) from None
        uniforms = {}
        for name in ("frame", "random", "input_size", "target_size", "tex_offset", "upshade_out_pt", "upshade_trc"):
            u = prog.get(name, None)
            if u is not None:
                uniforms[name] = u
        unit_uniforms = {}
        for _, unit in plane_binds:
            unit_uniforms[unit] = tuple(prog.get(f"{n}{unit}", None) for n in ("texture_size", "pixel_size", "texture_off"))
        for p in own_params:
            if p.kind == "DYNAMIC":
                u = prog.get(p.name, None)
                if u is not None:
                    u.value = self.param_values.get(p.name, p.default)
        return Compiled(program, ps.compute is not None, plane_binds, user, buffers, uniforms, unit_uniforms,
                         align_unit, out_comps)

    def dispatch(self, comp: Compiled, ps: HookPass, hooked: Plane, st, lookup: Callable[[str], Plane],
                 out: moderngl.Texture, fbo: Callable[[moderngl.Texture], moderngl.Framebuffer]) -> None:
        """Run one pass into ``out``: per-frame uniforms from ``st`` (the renderer's frame state),
        bound stage textures from ``lookup``, user textures and buffers, then draw or dispatch."""
        w, h = out.size
        u = comp.uniforms
        if "frame" in u:
            u["frame"].value = st.frame_index
        if "random" in u:
            u["random"].value = st.rng.random()
        if "input_size" in u:
            u["input_size"].value = tuple(float(v) for v in st.input_size)
        if "target_size" in u:
            u["target_size"].value = tuple(float(v) for v in st.out_size)
        if "tex_offset" in u:
            u["tex_offset"].value = (hooked.tx, hooked.ty)
        if "upshade_out_pt" in u:
            u["upshade_out_pt"].value = (1.0 / w, 1.0 / h)
        if "upshade_trc" in u:
            u["upshade_trc"].value = st.trc
        for name, unit in comp.plane_binds:
            p = hooked if name == "HOOKED" else lookup(name)
            p.tex.use(unit)
            u_size, u_pt, u_off = comp.unit_uniforms[unit]
            if u_size is not None:
                u_size.value = (float(p.w), float(p.h))
            if u_pt is not None:
                u_pt.value = (1.0 / p.w, 1.0 / p.h)
            if u_off is not None:
                u_off.value = (p.tx, p.ty) if unit == comp.align_unit else (0.0, 0.0)
        for tex, unit, storage in comp.user:
            if storage:
                tex.bind_to_image(unit, read=True, write=True)
            else:
                tex.use(unit)
        for buf, binding, storage in comp.buffers:
            if storage:
                buf.bind_to_storage_buffer(binding)
            else:
                buf.bind_to_uniform_block(binding)
        if comp.compute:
            bw, bh, _, _ = ps.compute
            out.bind_to_image(0, read=False, write=True)
            comp.program.run(-(-w // bw), -(-h // bh), 1)
            self.ctx.memory_barrier()
        else:
            comp.program.draw(fbo(out))
            if comp.user and any(s for _, _, s in comp.user) or any(s for _, _, s in comp.buffers):
                self.ctx.memory_barrier()

    def release(self) -> None:
        for comp in self.compiled.values():
            comp.program.release()
        self.compiled.clear()
        for _, tex, _, _ in self.textures.values():
            tex.release()
        self.textures.clear()
        for _, buf in self.buffers.values():
            buf.release()
        self.buffers.clear()
