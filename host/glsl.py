"""GLSL source generation for hook passes and the built-in stages, plus compile-error mapping.

A hook pass is compiled as: generated prelude (mpv's ``hook_prelude`` macros
per bound texture, globals, parameters, user textures/buffers), then
``#line <body_line>`` and the pass body exactly as written in the shader file,
then a generated ``main()``. Generated lines are numbered from ``GENERATED_LINE``
upwards, so a driver message with a smaller line number belongs to the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ShaderError
from .hookfmt import BufferDef, HookPass, ParamDef, TextureDef

GLSL_VERSION = "#version 450\n"
# Line numbers of generated code: far beyond any real shader file. (Mesa ignores
# the source-string number of #line in its messages, so lines are the only tag.)
GENERATED_LINE = 1_000_000

FULLSCREEN_VS = GLSL_VERSION + """
// One triangle covering the viewport: no vertex buffer, three gl_VertexIDs.
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
"""


@dataclass(frozen=True)
class TexBinding:
    """A pass texture (stage or saved) on sampler unit ``unit``, reachable under ``names``."""

    unit: int
    names: tuple[str, ...]


@dataclass(frozen=True)
class UserTexBinding:
    """A //!TEXTURE bound as a plain sampler (or image, if STORAGE) named after the texture."""

    unit: int
    tex: TextureDef
    glsl_format: str      # image layout qualifier, e.g. "rgba16f" (storage only)
    sampler_prefix: str   # "" for float, "u"/"i" for integer formats


@dataclass(frozen=True)
class BufferBinding:
    binding: int
    buf: BufferDef


def _num(v, typ: str) -> str:
    if typ == "float":
        s = repr(float(v))
        return s if ("e" in s or "." in s or "n" in s) else s + ".0"
    if typ == "uint":
        return f"{int(v)}u"
    return str(int(v))


def param_decls(params: tuple[ParamDef, ...], values) -> str:
    out = []
    for p in params:
        v = values.get(p.name, p.default)
        for i, name in enumerate(p.enum_names):
            out.append(f"#define {name} {i}\n")
        if p.kind == "DEFINE":
            out.append(f"#define {p.name} {_num(v, p.type)}\n")
        elif p.kind == "CONSTANT":
            out.append(f"const {p.type} {p.name} = {_num(v, p.type)};\n")
        else:
            out.append(f"uniform {p.type} {p.name};\n")
    return "".join(out)


def _texture_macros(name: str, i: int) -> str:
    n = name
    return (
        f"#define {n}_raw texture{i}\n"
        f"#define {n}_pos texcoord{i}\n"
        f"#define {n}_size texture_size{i}\n"
        f"#define {n}_rot texture_rot{i}\n"
        f"#define {n}_off texture_off{i}\n"
        f"#define {n}_pt pixel_size{i}\n"
        f"#define {n}_map texmap{i}\n"
        f"#define {n}_mul 1.0\n"
        f"#define {n}_tex(pos) ({n}_mul * vec4(texture({n}_raw, pos)))\n"
        f"#define {n}_texOff(off) {n}_tex({n}_pos + {n}_pt * vec2(off))\n"
        f"#define {n}_gather(pos, c) ({n}_mul * vec4(textureGather({n}_raw, pos, c)))\n"
    )


_DIM_SUFFIX = {1: "1D", 2: "2D", 3: "3D"}

# libplacebo gives passes ``linearize``/``delinearize`` (vec4 -> vec4) for the
# source's transfer function; mpv has none. Frames carry no transfer tag here,
# so ``upshade_trc`` follows what mpv/libplacebo assume for untagged content:
# 0 = sRGB (RGB images), 1 = BT.1886 with an ideal black point, i.e. a pure 2.4
# power (video). Negative values are clamped first, as libplacebo does.
_TRC_HELPERS = """uniform int upshade_trc;
vec4 upshade_linearize(vec4 color) {
    color.rgb = max(color.rgb, vec3(0.0));
    if (upshade_trc == 0)
        color.rgb = mix(color.rgb * vec3(1.0 / 12.92), pow((color.rgb + vec3(0.055)) / vec3(1.055), vec3(2.4)),
                        lessThan(vec3(0.04045), color.rgb));
    else
        color.rgb = pow(color.rgb, vec3(2.4));
    return color;
}
vec4 upshade_delinearize(vec4 color) {
    color.rgb = max(color.rgb, vec3(0.0));
    if (upshade_trc == 0)
        color.rgb = mix(color.rgb * vec3(12.92), vec3(1.055) * pow(color.rgb, vec3(1.0 / 2.4)) - vec3(0.055),
                        lessThan(vec3(0.0031308), color.rgb));
    else
        color.rgb = pow(color.rgb, vec3(1.0 / 2.4));
    return color;
}
"""
_USES_TRC = re.compile(r"\b(?:de)?linearize\b")
# A body (written for mpv) that brings its own function or macro of that name keeps it.
_DEFINES_TRC = re.compile(r"(?:#[ \t]*define[ \t]+|\b(?:float|[bdiu]?vec[234]|double|void)\s+)((?:de)?linearize)\b")


def _trc_helpers(body: str) -> str:
    if not _USES_TRC.search(body):
        return ""
    own = set(_DEFINES_TRC.findall(body))
    out = [_TRC_HELPERS]
    for name in ("linearize", "delinearize"):
        if name not in own:
            out.append(f"#define {name} upshade_{name}\n")
    return "".join(out)


_EXTENSION = re.compile(r"^[ \t]*#[ \t]*extension\b.*$", re.M)


def hook_source(
    ps: HookPass,
    texs: list[TexBinding],
    user_texs: list[UserTexBinding],
    buffers: list[BufferBinding],
    params_glsl: str,
    components: int,
    out_format: str,
) -> str:
    """Complete fragment (or compute) shader source for one pass."""
    compute = ps.compute is not None
    h = [GLSL_VERSION]
    body = ps.body
    # #extension must precede all code; shaders written for libplacebo put it
    # in the pass body, so hoist it (keeping its file line for error messages).
    if _EXTENSION.search(body):
        lines = body.split("\n")
        for i, line in enumerate(lines):
            if _EXTENSION.match(line):
                h.append(f"#line {ps.body_line + i}\n{line.strip()}\n")
                lines[i] = ""
        body = "\n".join(lines)
    if compute:
        bw, bh, tw, th = ps.compute
        h.append(f"layout(local_size_x = {tw}, local_size_y = {th}) in;\n")
    h.append(f"#line {GENERATED_LINE}\n")
    h.append(
        "uniform int frame;\nuniform float random;\nuniform vec2 input_size;\n"
        "uniform vec2 target_size;\nuniform vec2 tex_offset;\nuniform vec2 upshade_out_pt;\n"
        "#define upshade_outcoord(id) ((vec2(id) + vec2(0.5)) * upshade_out_pt)\n"
    )
    if compute:
        h.append("#define upshade_pos upshade_outcoord(gl_GlobalInvocationID.xy)\n")
        h.append(f"layout(binding = 0, {out_format}) writeonly uniform image2D out_image;\n")
    else:
        h.append("#define upshade_pos (gl_FragCoord.xy * upshade_out_pt)\n")
    for t in texs:
        i = t.unit
        h.append(
            f"layout(binding = {i}) uniform sampler2D texture{i};\n"
            f"uniform vec2 texture_size{i};\nuniform vec2 pixel_size{i};\nuniform vec2 texture_off{i};\n"
            f"#define texture_rot{i} mat2(1.0, 0.0, 0.0, 1.0)\n"
            f"#define texmap{i}(id) (texture_rot{i} * upshade_outcoord(id) + pixel_size{i} * texture_off{i})\n"
            f"#define texcoord{i} (upshade_pos + pixel_size{i} * texture_off{i})\n"
        )
        for name in t.names:
            h.append(_texture_macros(name, i))
    for u in user_texs:
        dim = _DIM_SUFFIX[len(u.tex.size)]
        if u.tex.storage:
            h.append(f"layout(binding = {u.unit}, {u.glsl_format}) uniform {u.sampler_prefix}image{dim} {u.tex.name};\n")
        else:
            h.append(f"layout(binding = {u.unit}) uniform {u.sampler_prefix}sampler{dim} {u.tex.name};\n")
            h.append(f"#define {u.tex.name}_tex(pos) (texture({u.tex.name}, pos))\n")
    for b in buffers:
        members = "".join(
            f"    {v.type} {v.name}{f'[{v.array}]' if v.array else ''};\n" for v in b.buf.vars
        )
        if b.buf.storage:
            h.append(f"layout(std430, binding = {b.binding}) buffer upshade_ssbo_{b.buf.name} {{\n{members}}};\n")
        else:
            h.append(f"layout(std140, binding = {b.binding}) uniform upshade_ubo_{b.buf.name} {{\n{members}}};\n")
    h.append(params_glsl)
    h.append(_trc_helpers(body))
    h.append(f"#line {ps.body_line}\n")
    h.append(body)
    if not body.endswith("\n"):
        h.append("\n")
    h.append(f"#line {GENERATED_LINE + 500}\n")
    if compute:
        h.append("void main() {\n    hook();\n}\n")
    else:
        # mpv's skip_unused(): components a pass does not produce read as 0 (alpha 1).
        tail = "".join(f"    color.{'rgba'[c]} = {'1.0' if c == 3 else '0.0'};\n" for c in range(components, 4))
        h.append(f"out vec4 upshade_color;\nvoid main() {{\n    vec4 color = hook();\n{tail}    upshade_color = color;\n}}\n")
    return "".join(h)


# Mesa: "0:12(5): error: msg"; NVIDIA: "0(12) : error C1008: msg"; AMD/Intel Windows: "ERROR: 0:12: msg".
_ERROR_PATTERNS = (
    re.compile(r"^\s*\d+:(\d+)\(\d+\):\s*error:\s*(.*)$", re.M),
    re.compile(r"^\s*\d+\((\d+)\)\s*:\s*error\s*\w*:\s*(.*)$", re.M),
    re.compile(r"^\s*ERROR:\s*\d+:(\d+):\s*(.*)$", re.M),
)


def compile_error(exc: Exception, ps: HookPass) -> ShaderError:
    """Turn a driver compile/link failure into a ShaderError at the shader file's line."""
    text = str(exc)
    for pat in _ERROR_PATTERNS:
        m = pat.search(text)
        if m:
            line, msg = int(m.group(1)), m.group(2).strip()
            if line >= GENERATED_LINE:
                # The driver blames code we generated from the pass's directives
                # (e.g. a BIND name clashing with a body identifier): point at the pass.
                return ShaderError(ps.file, ps.line, f"GLSL compile error (in the code generated for this pass): {msg}")
            return ShaderError(ps.file, line, f"GLSL compile error: {msg}")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip() and "=====" not in ln
                  and "failed" not in ln.lower() and not ln.strip().endswith("_shader")), text.strip())
    return ShaderError(ps.file, ps.line, f"GLSL compile/link error: {first}")
