"""The user-shader parser: every directive, every error text, RPN evaluation, fuzzing, real shaders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upshade.host.errors import ShaderError, UpshadeError
from upshade.host.hookfmt import HOOK_POINTS, RPN, Num, Op, Param, Size
from upshade.host.hookparse import (
    KNOWN_HOOK_POINTS,
    TEXTURE_FORMATS,
    load_shader,
    parse_shader,
    resolve_params,
    rpn_eval,
    texture_format,
    validate_chain,
)

BODY = "vec4 hook() { return HOOKED_texOff(0); }\n"


def err(text: str, path: str = "s.glsl") -> str:
    with pytest.raises(ShaderError) as info:
        parse_shader(text, path)
    return str(info.value)


def chain_err(*texts: str) -> str:
    files = [parse_shader(t, f"f{i}.glsl") for i, t in enumerate(texts)]
    with pytest.raises(ShaderError) as info:
        validate_chain(files)
    return str(info.value)


# ---------------------------------------------------------------- passes


def test_pass_every_directive():
    text = (
        "// licence text before the first directive is skipped\n"  # 1
        "//!DESC  a test pass\n"                                    # 2
        "//!HOOK LUMA\n"                                            # 3
        "//!HOOK CHROMA\n"                                          # 4
        "//!BIND HOOKED\n"                                          # 5
        "//!BIND LUMA\n"                                            # 6
        "//!SAVE FEAT\n"                                            # 7
        "//!WIDTH HOOKED.w 2 *\n"                                   # 8
        "//!HEIGHT HOOKED.height 2 *\n"                             # 9
        "//!WHEN OUTPUT.w HOOKED.width / 1.2 >\n"                   # 10
        "//!OFFSET -0.5 0.25\n"                                     # 11
        "//!COMPONENTS 2\n"                                         # 12
        "\n"                                                        # 13
        + BODY                                                      # 14
    )
    sf = parse_shader(text, "x.glsl")
    (p,) = sf.passes
    assert p.file == "x.glsl" and p.line == 2
    assert p.desc == "a test pass"
    assert p.hooks == ("LUMA", "CHROMA")
    assert p.binds == ("HOOKED", "LUMA") and p.bind_lines == (5, 6)
    assert p.save == "FEAT"
    assert p.width.tokens == (Size("HOOKED", "w"), Num(2.0), Op("*"))
    assert p.height.tokens == (Size("HOOKED", "h"), Num(2.0), Op("*"))
    assert p.width.textures == ("HOOKED",)
    assert p.width.line == 8 and p.height.line == 9 and p.when.line == 10
    assert p.when.source == "OUTPUT.w HOOKED.width / 1.2 >"
    assert p.offset == (-0.5, 0.25)
    assert p.components == 2
    assert p.compute is None
    assert p.body_line == 13
    assert p.body == "\n" + BODY
    assert sf.textures == () and sf.params == ()


def test_pass_defaults_offset_align_and_compute():
    sf = parse_shader("//!HOOK MAIN\n//!BIND HOOKED\n//!OFFSET ALIGN\n//!COMPUTE 32 16\nvoid hook() {}\n"
                      "//!HOOK MAIN\n//!COMPUTE 32 32 8 4\n//!SAVE HOOKED\nvoid hook() {}\n")
    a, b = sf.passes
    assert a.offset == "ALIGN" and a.compute == (32, 16, 32, 16)
    assert a.save is None and a.desc is None and a.width is None and a.when is None and a.components is None
    assert b.compute == (32, 32, 8, 4) and b.save is None  # SAVE HOOKED == default
    assert b.line == 6 and b.body_line == 9 and b.body == "void hook() {}\n"


def test_multi_pass_body_lines_and_crlf():
    text = (
        "//!HOOK MAIN\r\n//!BIND HOOKED\r\n//!SAVE A\r\n" + BODY.replace("\n", "\r\n")  # 1-4
        + "\r\n"                                                                          # 5
        "//!HOOK MAIN\r\n//!BIND A\r\n" + "vec4 hook()\r\n{ return A_tex(A_pos); }\r\n"  # 6-9
    )
    a, b = parse_shader(text).passes
    assert (a.line, a.body_line, b.line, b.body_line) == (1, 4, 6, 8)
    assert "\r" not in a.body + b.body
    assert a.body == BODY + "\n"
    assert b.body.splitlines()[0] == "vec4 hook()"


def test_all_hook_points_accepted():
    for hp in KNOWN_HOOK_POINTS:
        assert parse_shader(f"//!HOOK {hp}\n{BODY}").passes[0].hooks == (hp,)
    assert set(HOOK_POINTS) <= set(KNOWN_HOOK_POINTS) and "PREOUTPUT" in KNOWN_HOOK_POINTS


def test_sixteen_binds_ok():
    binds = "".join(f"//!BIND T{i}\n" for i in range(16))
    assert len(parse_shader(f"//!HOOK MAIN\n{binds}{BODY}").passes[0].binds) == 16


# ---------------------------------------------------------------- textures, params, buffers


def test_texture_block_rgba32f_multiline_hex():
    vals = np.arange(12, dtype="<f4")
    hexdata = vals.tobytes().hex()
    text = (f"//!HOOK MAIN\n//!BIND LUT\n{BODY}\n"
            "//!TEXTURE LUT\n//!SIZE 3\n//!FORMAT rgba32f\n//!FILTER LINEAR\n//!BORDER MIRROR\n"
            f"{hexdata[:40]}\n  {hexdata[40:70].upper()}\n{hexdata[70:]}\n")
    sf = parse_shader(text)
    (t,) = sf.textures
    assert (t.name, t.size, t.format, t.filter, t.border, t.storage, t.line) == (
        "LUT", (3,), "rgba32f", "LINEAR", "MIRROR", False, 5)
    assert np.array_equal(np.frombuffer(t.data, "<f4"), vals)
    validate_chain([sf])


def test_texture_defaults_3d_and_storage_without_data():
    sf = parse_shader("//!TEXTURE A\n//!FORMAT r8\nff\n\n"
                      "//!TEXTURE B\n//!SIZE 2 2 2\n//!FORMAT rg16hf\n//!STORAGE\n//!BORDER REPEAT\n\n"
                      "//!TEXTURE C\n//!SIZE 1 2\n//!FORMAT r16u\n0100ffff\n")
    a, b, c = sf.textures
    assert (a.size, a.filter, a.border, a.data) == ((1, 1), "NEAREST", "CLAMP", b"\xff")
    assert (b.size, b.storage, b.border, b.data) == ((2, 2, 2), True, "REPEAT", b"")
    assert np.frombuffer(c.data, "<u2").tolist() == [1, 0xFFFF]


def test_texture_formats_table():
    assert TEXTURE_FORMATS["rgba16f"] == (4, np.dtype("<f4"), False)  # GL uploads 16f from float32 data
    assert TEXTURE_FORMATS["rgba16hf"] == (4, np.dtype("<f2"), False)
    assert TEXTURE_FORMATS["r8"] == (1, np.dtype("u1"), True)
    assert TEXTURE_FORMATS["rg16"] == (2, np.dtype("<u2"), True)
    assert TEXTURE_FORMATS["rgba32f"].texel_size == 16
    assert TEXTURE_FORMATS["rgb8s"].normalized and TEXTURE_FORMATS["r32i"].is_integer
    comps, dtype, norm = TEXTURE_FORMATS["rg8u"]
    assert (comps, dtype, norm) == (2, np.dtype("u1"), False)
    assert texture_format("r32f").components == 1
    with pytest.raises(UpshadeError, match="unknown texture FORMAT 'rgba16x'"):
        texture_format("rgba16x")


def test_param_blocks_all_types():
    text = (
        "//!PARAM strength\n//!DESC How strong\n//!TYPE float\n//!MINIMUM 0\n//!MAXIMUM 2.5\n0.5\n\n"  # 1-7
        "//!PARAM taps\n//!TYPE DEFINE\n//!MINIMUM 0\n//!MAXIMUM 5\n2\n\n"                             # 8-13
        "//!PARAM n\n//!TYPE CONSTANT uint\n7\n\n"                                                      # 14-17
        "//!PARAM k\n//!TYPE DYNAMIC int\n-3\n\n"                                                       # 18-21
        "//!PARAM mode\n//!TYPE ENUM int\nFAST\nGOOD\n\nBEST\n\n"                                      # 22-28
        "//!HOOK MAIN\n//!WHEN strength 0 > mode GOOD = *\n" + BODY
    )
    sf = parse_shader(text)
    s, taps, n, k, mode = sf.params
    assert (s.name, s.type, s.kind, s.default, s.minimum, s.maximum, s.desc, s.line) == (
        "strength", "float", "DYNAMIC", 0.5, 0.0, 2.5, "How strong", 1)
    assert (taps.type, taps.kind, taps.default, taps.minimum, taps.maximum) == ("int", "DEFINE", 2, 0, 5)
    assert (n.type, n.kind, n.default) == ("uint", "CONSTANT", 7)
    assert (k.type, k.kind, k.default, k.minimum) == ("int", "DYNAMIC", -3, None)
    assert (mode.enum_names, mode.default, mode.minimum, mode.maximum) == (("FAST", "GOOD", "BEST"), 0, 0, 2)
    assert isinstance(taps.default, int) and isinstance(s.default, float)
    assert sf.param_defaults() == {"strength": 0.5, "taps": 2, "n": 7, "k": -3, "mode": 0}
    when = sf.passes[0].when
    # the enum value name became a constant; the parameter name stays a lookup
    assert when.tokens == (Param("strength"), Num(0.0), Op(">"), Param("mode"), Num(1.0), Op("="), Op("*"))
    vals = resolve_params([sf], {})
    assert rpn_eval(when, {}, vals) == 0.0
    assert rpn_eval(when, {}, resolve_params([sf], {"mode": "GOOD"})) == 1.0


def test_buffer_blocks_std140_and_std430():
    text = ("//!BUFFER ubo\n//!VAR float a\n//!VAR vec3 b\n//!VAR float c[2]\n"
            + "00" * 64 + "\n\n"
            "//!BUFFER ssbo\n//!VAR vec2 p\n//!VAR int big[32];\n//!STORAGE\n")
    u, s = parse_shader(text).buffers
    # std140: a@0, vec3 aligned to 16 -> @16 (12 bytes), float[2] strides 16 -> @32, 32 bytes
    assert [(v.name, v.offset) for v in u.vars] == [("a", 0), ("b", 16), ("c", 32)]
    assert u.size == 64 and not u.storage and len(u.data) == 64
    # std430: vec2@0, int[32] stride 4 -> @8
    assert [(v.name, v.type, v.array, v.offset) for v in s.vars] == [("p", "vec2", None, 0), ("big", "int", 32, 8)]
    assert s.size == 8 + 128 and s.storage and s.data == b""


# ---------------------------------------------------------------- error messages (exact text)


@pytest.mark.parametrize("text, message", [
    ("//!HOOK MAIN\n//!FOO bar\n" + BODY, "s.glsl:2: unknown directive //!FOO"),
    ("//!HOOK MAIN\n//!BIDN X\n" + BODY, "s.glsl:2: unknown directive //!BIDN (did you mean 'BIND'?)"),
    ("//!HOOK MAIN\n//!SIZE 2\n" + BODY,
     "s.glsl:2: unknown directive //!SIZE (it belongs in a //!TEXTURE, //!PARAM or //!BUFFER block)"),
    ("//!TEXTURE T\n//!FORMAT r8\n//!HOOK MAIN\nff\n",
     "s.glsl:3: unknown directive //!HOOK in a TEXTURE block"),
    ("//!HOOK MAIN\n//!TEXTURE T\n" + BODY,
     "s.glsl:2: //!TEXTURE must be the first directive of its block (end the previous pass with a blank line first)"),
    ("//!HOOK MAIN\n//!\n" + BODY, "s.glsl:2: empty directive //! (a directive name must follow '//!' directly)"),
    ("//!HOOK FOO\n" + BODY, "s.glsl:1: unknown hook point 'FOO' (known: " + ", ".join(KNOWN_HOOK_POINTS) + ")"),
    ("//!HOOK\n" + BODY, "s.glsl:1: //!HOOK needs a hook point name"),
    ("//!HOOK MAIN\n//!HOOK MAIN\n" + BODY, "s.glsl:2: pass hooks 'MAIN' twice"),
    ("//!HOOK MAIN\n" + "".join(f"//!BIND T{i}\n" for i in range(17)) + BODY,
     "s.glsl:18: more than 16 //!BIND directives in one pass"),
    ("//!HOOK MAIN\n//!BIND A\n//!BIND A\n" + BODY, "s.glsl:3: texture 'A' is bound twice (first on line 2)"),
    ("//!HOOK MAIN\n//!BIND my-tex\n" + BODY, "s.glsl:2: //!BIND name 'my-tex' is not a valid GLSL identifier"),
    ("//!HOOK MAIN\n//!SAVE A\n//!SAVE B\n" + BODY, "s.glsl:3: duplicate //!SAVE (first given on line 2)"),
    ("//!HOOK MAIN\n//!COMPONENTS 5\n" + BODY, "s.glsl:2: //!COMPONENTS must be 1, 2, 3 or 4, not '5'"),
    ("//!HOOK MAIN\n//!COMPONENTS x\n" + BODY, "s.glsl:2: //!COMPONENTS must be 1, 2, 3 or 4, not 'x'"),
    ("//!HOOK MAIN\n//!COMPUTE 32\nvoid hook(){}\n",
     "s.glsl:2: bad //!COMPUTE '32': expected 'bw bh' or 'bw bh tw th' (positive integers)"),
    ("//!HOOK MAIN\n//!COMPUTE 32 32 8\nvoid hook(){}\n",
     "s.glsl:2: bad //!COMPUTE '32 32 8': expected 'bw bh' or 'bw bh tw th' (positive integers)"),
    ("//!HOOK MAIN\n//!COMPUTE 0 8\nvoid hook(){}\n",
     "s.glsl:2: bad //!COMPUTE '0 8': expected 'bw bh' or 'bw bh tw th' (positive integers)"),
    ("//!HOOK MAIN\n//!OFFSET 1\n" + BODY, "s.glsl:2: bad //!OFFSET '1': expected 'ox oy' (two numbers) or 'ALIGN'"),
    ("//!DESC x\n" + BODY, "s.glsl:1: pass has no //!HOOK directive, so it would never run"),
    ("//!HOOK MAIN\n//!BIND HOOKED\nvoid main() {}\n", "s.glsl:1: pass body defines no vec4 hook() function"),
    ("just GLSL, no directives\n", "s.glsl:1: no //! directives: this is not an mpv user shader"),
    ("", "s.glsl:1: no //! directives: this is not an mpv user shader"),
])
def test_pass_errors(text, message):
    assert err(text) == message


@pytest.mark.parametrize("expr, why", [
    ("", "empty"),
    ("HOOKED.w +", "stack underflow at '+' (it needs two values)"),
    ("!", "stack underflow at '!' (it needs one value)"),
    ("HOOKED.w 2", "leaves 2 values on the stack (it must leave exactly 1)"),
    ("HOOKED.w 2 ^", "unknown token '^'"),
    ("HOOKED.w -2 *", "unknown token '-2'"),
    ("HOOKED.depth", "unknown token 'HOOKED.depth'"),
    ("2x", "'2x' is not a number"),
    ("1e999", "'1e999' is not a finite number"),
])
def test_rpn_parse_errors(expr, why):
    assert err(f"//!HOOK MAIN\n//!WIDTH {expr}\n{BODY}") == f"s.glsl:2: bad RPN expression '{expr}' in //!WIDTH: {why}"


def test_rpn_unknown_identifier_error():
    assert err(f"//!HOOK MAIN\n//!WHEN strength 0 >\n{BODY}") == (
        "s.glsl:2: bad RPN expression 'strength 0 >' in //!WHEN: unknown token 'strength' "
        "(not a number, an operator, NAME.w/NAME.h or a //!PARAM of this file)")


@pytest.mark.parametrize("text, message", [
    ("//!TEXTURE T\n//!SIZE 2 2\n//!FORMAT rgba8\n" + "00" * 15 + "\n",
     "s.glsl:4: TEXTURE 'T' data is 15 bytes, expected 16 (SIZE 2x2 of rgba8, 4 bytes per texel)"),
    ("//!TEXTURE T\n//!SIZE 2\n//!FORMAT rgba16f\n" + "00" * 16 + "\n",
     "s.glsl:4: TEXTURE 'T' data is 16 bytes, expected 32 (SIZE 2 of rgba16f, 16 bytes per texel)"),
    ("//!TEXTURE T\n//!FORMAT r8\n\n",
     "s.glsl:1: TEXTURE 'T' data is 0 bytes, expected 1 (SIZE 1x1 of r8, 1 bytes per texel)"),
    ("//!TEXTURE T\n//!FORMAT r8\n0\n", "s.glsl:3: TEXTURE 'T' data has an odd number of hex digits (1)"),
    ("//!TEXTURE T\n//!FORMAT r8\nfg\n", "s.glsl:3: TEXTURE 'T' data: 'g' is not a hex digit"),
    ("//!TEXTURE T\n//!SIZE 2 0\n//!FORMAT r8\n0000\n",
     "s.glsl:2: bad //!SIZE '2 0': expected 1 to 3 positive integers (w [h [d]])"),
    ("//!TEXTURE T\n//!SIZE 1 1 1 1\n//!FORMAT r8\n00\n",
     "s.glsl:2: bad //!SIZE '1 1 1 1': expected 1 to 3 positive integers (w [h [d]])"),
    ("//!TEXTURE T\n//!SIZE 1\n00\n", "s.glsl:1: TEXTURE 'T' has no //!FORMAT"),
    ("//!TEXTURE T\n//!FORMAT r8\n//!FILTER CUBIC\n00\n", "s.glsl:3: bad //!FILTER 'CUBIC': expected LINEAR or NEAREST"),
    ("//!TEXTURE T\n//!FORMAT r8\n//!BORDER WRAP\n00\n",
     "s.glsl:3: bad //!BORDER 'WRAP': expected CLAMP, REPEAT or MIRROR"),
    ("//!TEXTURE T\n//!FORMAT r8u\n//!FILTER LINEAR\n00\n",
     "s.glsl:3: TEXTURE 'T': FILTER LINEAR is impossible with integer format 'r8u'"),
    ("//!TEXTURE\n//!FORMAT r8\n00\n", "s.glsl:1: //!TEXTURE needs a texture name"),
    # checked here, not first when the renderer creates the texture (the parser is the one validator)
    ("//!TEXTURE T\n//!FORMAT rgb8\n//!STORAGE\n",
     "s.glsl:3: TEXTURE 'T': 3-component format 'rgb8' cannot be a STORAGE image (GL has no rgb image formats)"),
    ("//!TEXTURE T\n//!FORMAT r8\n00\n\n//!TEXTURE T\n//!FORMAT r8\n00\n",
     "s.glsl:5: TEXTURE 'T' is already defined at s.glsl:1"),
])
def test_texture_errors(text, message):
    assert err(text) == message


def test_offset_align_without_hooked_is_a_parse_error():
    text = "//!HOOK CHROMA\n//!BIND LUMA\n//!OFFSET ALIGN\n" + BODY
    assert err(text) == "s.glsl:3: //!OFFSET ALIGN needs the pass to BIND HOOKED"
    # binding the hooked stage by its own name is binding HOOKED
    assert parse_shader("//!HOOK CHROMA\n//!BIND CHROMA\n//!OFFSET ALIGN\n" + BODY, "s.glsl").passes[0].offset == "ALIGN"


def test_storage_texture_without_data_is_valid():
    sf = parse_shader("//!TEXTURE BIG\n//!SIZE 2 2\n//!FORMAT r32f\n//!STORAGE\n", "s.glsl")
    assert sf.textures[0].storage and sf.textures[0].data == b""


def test_texture_unknown_format_lists_known():
    msg = err("//!TEXTURE T\n//!FORMAT rgba16q\n00\n")
    assert msg.startswith("s.glsl:2: unknown texture FORMAT 'rgba16q' (did you mean 'rgba16")
    assert "(known: r8, rg8" in msg and "rgba32f" in msg


@pytest.mark.parametrize("text, message", [
    ("//!PARAM p\n1\n", "s.glsl:1: PARAM 'p' has no //!TYPE"),
    ("//!PARAM p\n//!TYPE float\n\n", "s.glsl:1: PARAM 'p' has no default value (the block body)"),
    ("//!PARAM p\n//!TYPE vec2\n1\n",
     "s.glsl:2: bad //!TYPE 'vec2': expected [ENUM] [DYNAMIC|CONSTANT] int|uint|float, or [ENUM] DEFINE"),
    ("//!PARAM p\n//!TYPE DEFINE int\n1\n",
     "s.glsl:2: bad //!TYPE 'DEFINE int': expected [ENUM] [DYNAMIC|CONSTANT] int|uint|float, or [ENUM] DEFINE"),
    ("//!PARAM p\n//!TYPE ENUM float\nA\n", "s.glsl:2: //!TYPE ENUM needs type int or DEFINE"),
    ("//!PARAM p\n//!TYPE int\n1.5\n", "s.glsl:3: PARAM 'p': default '1.5' is not a valid int"),
    ("//!PARAM p\n//!TYPE uint\n-1\n", "s.glsl:3: PARAM 'p': default '-1' is not a valid uint"),
    ("//!PARAM p\n//!TYPE float\nnan\n", "s.glsl:3: PARAM 'p': default 'nan' is not a valid float"),
    ("//!PARAM p\n//!TYPE float\n1\n2\n", "s.glsl:4: PARAM 'p': the default value must be a single line"),
    ("//!PARAM p\n//!TYPE float\n//!MINIMUM x\n1\n", "s.glsl:3: PARAM 'p': //!MINIMUM 'x' is not a valid float"),
    ("//!PARAM p\n//!TYPE float\n//!MINIMUM 2\n1\n", "s.glsl:4: PARAM 'p': default 1.0 is below //!MINIMUM 2.0"),
    ("//!PARAM p\n//!TYPE int\n//!MAXIMUM 0\n1\n", "s.glsl:4: PARAM 'p': default 1 is above //!MAXIMUM 0"),
    ("//!PARAM p\n//!TYPE int\n//!MINIMUM 3\n//!MAXIMUM 1\n2\n", "s.glsl:4: PARAM 'p': //!MAXIMUM 1 is below //!MINIMUM 3"),
    ("//!PARAM p\n//!TYPE ENUM DEFINE\nA\nA\n", "s.glsl:4: PARAM 'p': enum value 'A' is listed twice"),
    ("//!PARAM p\n//!TYPE ENUM int\n1x\n", "s.glsl:3: PARAM 'p': enum value '1x' is not a valid GLSL identifier"),
    ("//!PARAM p\n//!TYPE float\n//!FORMAT r8\n1\n", "s.glsl:3: unknown directive //!FORMAT in a PARAM block"),
    ("//!PARAM 9p\n//!TYPE float\n1\n", "s.glsl:1: //!PARAM name '9p' is not a valid GLSL identifier"),
    ("//!PARAM T\n//!TYPE float\n1\n\n//!TEXTURE T\n//!FORMAT r8\n00\n",
     "s.glsl:5: TEXTURE 'T' is already the name of a PARAM at s.glsl:1"),
])
def test_param_errors(text, message):
    assert err(text) == message


@pytest.mark.parametrize("text, message", [
    ("//!BUFFER b\n//!VAR float a\n0000\n", "s.glsl:3: BUFFER 'b' data is 2 bytes, expected 4 (std140 layout)"),
    ("//!BUFFER b\n//!VAR float a\n\n", "s.glsl:1: BUFFER 'b' data is 0 bytes, expected 4 (std140 layout)"),
    ("//!BUFFER b\n//!VAR double a\n", "s.glsl:2: //!VAR type 'double' is not a GLSL scalar, vector or matrix type"),
    ("//!BUFFER b\n//!VAR float\n", "s.glsl:2: bad //!VAR 'float': expected '<type> <name>' or '<type> <name>[N]'"),
    ("//!BUFFER b\n//!STORAGE\n", "s.glsl:1: BUFFER 'b' has no //!VAR"),
])
def test_buffer_errors(text, message):
    assert err(text) == message


def test_load_shader_errors(tmp_path):
    with pytest.raises(UpshadeError, match=r"missing\.glsl: no such shader file$"):
        load_shader(tmp_path / "missing.glsl")
    with pytest.raises(UpshadeError, match=r": is a directory, not a shader file$"):
        load_shader(tmp_path)
    bad = tmp_path / "latin1.glsl"
    bad.write_bytes(b"//!HOOK MAIN\n// caf\xe9\n" + BODY.encode())
    with pytest.raises(UpshadeError) as info:
        load_shader(bad)
    assert str(info.value) == f"{bad}:2: not UTF-8 text (byte 0xe9 at offset 19)"
    good = tmp_path / "ok.glsl"
    good.write_bytes(b"\xef\xbb\xbf//!HOOK MAIN\r\n" + BODY.encode())
    sf = load_shader(good)
    assert sf.path == str(good) and sf.passes[0].hooks == ("MAIN",)
    broken = tmp_path / "broken.glsl"
    broken.write_text("//!HOOK MAIN\n//!COMPONENTS 9\n" + BODY)
    with pytest.raises(ShaderError, match=rf"^{broken}:2: //!COMPONENTS must be"):
        load_shader(broken)


# ---------------------------------------------------------------- chains


def test_chain_bind_of_unsaved_texture():
    assert chain_err("//!HOOK MAIN\n//!BIND HOOKED\n//!BIND FEATURES\n" + BODY) == (
        "f0.glsl:3: BIND of texture 'FEATURES' that no pass saves")
    assert chain_err("//!HOOK MAIN\n//!SAVE FEATURES\n" + BODY,
                     "//!HOOK MAIN\n//!BIND FEATUERS\n" + BODY) == (
        "f1.glsl:2: BIND of texture 'FEATUERS' that no pass saves (did you mean 'FEATURES'?)")
    assert chain_err("//!HOOK MAIN\n//!WIDTH NOPE.w\n" + BODY) == (
        "f0.glsl:2: RPN expression 'NOPE.w' refers to texture 'NOPE' that no pass saves")


def test_chain_accepts_saved_textures_from_any_file_and_builtins():
    files = [
        parse_shader("//!HOOK LUMA\n//!BIND LATER\n//!BIND LUT\n//!BIND ubo\n//!BIND NATIVE\n"
                     "//!WIDTH LATER.w NATIVE_CROPPED.w +\n" + BODY, "a.glsl"),
        parse_shader("//!HOOK MAIN\n//!BIND MAIN\n//!SAVE LATER\n" + BODY
                     + "//!TEXTURE LUT\n//!FORMAT r8\n00\n\n//!BUFFER ubo\n//!VAR float x\n00000000\n", "b.glsl"),
    ]
    validate_chain(files)


def test_chain_duplicate_names():
    tex = "//!TEXTURE LUT\n//!FORMAT r8\n00\n"
    par = "//!PARAM gain\n//!TYPE float\n1\n"
    assert chain_err(tex, "\n" + tex) == "f1.glsl:2: TEXTURE 'LUT' is already defined at f0.glsl:1"
    assert chain_err(par, par) == "f1.glsl:1: PARAM 'gain' is already defined at f0.glsl:1"
    assert chain_err(tex, "//!PARAM LUT\n//!TYPE float\n1\n") == (
        "f1.glsl:1: PARAM 'LUT' is already the name of a TEXTURE at f0.glsl:1")


# ---------------------------------------------------------------- parameters from the CLI


PARAMS = ("//!PARAM gain\n//!TYPE float\n//!MINIMUM 0\n//!MAXIMUM 2\n1.0\n\n"
          "//!PARAM taps\n//!TYPE DEFINE\n//!MINIMUM 1\n3\n\n"
          "//!PARAM mode\n//!TYPE ENUM int\nA\nB\n\n"
          "//!PARAM count\n//!TYPE uint\n4\n")


def test_resolve_params_overrides():
    sf = parse_shader(PARAMS, "p.glsl")
    assert resolve_params([sf], {}) == {"gain": 1.0, "taps": 3, "mode": 0, "count": 4}
    got = resolve_params([sf], {"gain": "0.25", "taps": "7", "mode": "B", "count": "0"})
    assert got == {"gain": 0.25, "taps": 7, "mode": 1, "count": 0}
    assert isinstance(got["taps"], int) and isinstance(got["gain"], float)
    assert resolve_params([sf], {"mode": "1"})["mode"] == 1


@pytest.mark.parametrize("overrides, message", [
    ({"gian": "1"}, "--param gian=1: unknown parameter 'gian' (known: count, gain, mode, taps)"),
    ({"gain": "lots"}, "--param gain=lots: 'lots' is not a valid float (PARAM at p.glsl:1)"),
    ({"taps": "2.5"}, "--param taps=2.5: '2.5' is not a valid int (PARAM at p.glsl:7)"),
    ({"count": "-1"}, "--param count=-1: '-1' is not a valid uint (PARAM at p.glsl:17)"),
    ({"gain": "3"}, "--param gain=3: above the maximum 2.0 (PARAM at p.glsl:1)"),
    ({"gain": "-0.5"}, "--param gain=-0.5: below the minimum 0.0 (PARAM at p.glsl:1)"),
    ({"taps": "0"}, "--param taps=0: below the minimum 1 (PARAM at p.glsl:7)"),
    ({"mode": "C"}, "--param mode=C: expected one of A, B (PARAM at p.glsl:12)"),
    ({"mode": "2"}, "--param mode=2: above the maximum 1 (PARAM at p.glsl:12)"),
])
def test_resolve_params_errors(overrides, message):
    sf = parse_shader(PARAMS, "p.glsl")
    with pytest.raises(UpshadeError) as info:
        resolve_params([sf], overrides)
    assert str(info.value) == message


def test_resolve_params_without_any_param():
    with pytest.raises(UpshadeError) as info:
        resolve_params([parse_shader("//!HOOK MAIN\n" + BODY)], {"x": "1"})
    assert str(info.value) == "--param x=1: unknown parameter 'x' (known: the loaded shaders have no //!PARAM)"


# ---------------------------------------------------------------- RPN evaluation


def rpn(src: str, text_params: str = "") -> RPN:
    return parse_shader(f"{text_params}//!HOOK MAIN\n//!WHEN {src}\n{BODY}", "r.glsl").passes[0].when


@pytest.mark.parametrize("src, value", [
    ("1.5", 1.5),
    ("2 3 +", 5.0),
    ("2 3 -", -1.0),
    ("2 3 *", 6.0),
    ("3 2 /", 1.5),
    ("7 3 %", 1.0),
    ("0 7 - 3 %", -1.0),  # fmod keeps the dividend's sign
    ("3 2 >", 1.0), ("2 3 >", 0.0),
    ("2 3 <", 1.0), ("3 2 <", 0.0),
    ("2 2 =", 1.0), ("2 2.0000001 =", 1.0), ("2 2.01 =", 0.0),
    ("0 !", 1.0), ("5 !", 0.0), ("0 ! !", 0.0),
    ("HOOKED.w 2 *", 200.0),
    ("HOOKED.height", 50.0),
    ("OUTPUT.w MAIN.w / 1.200 > OUTPUT.h MAIN.h / 1.200 > *", 1.0),
])
def test_rpn_eval_operators(src, value):
    sizes = {"HOOKED": (100, 50), "MAIN": (100, 50), "OUTPUT": (200, 100)}
    assert rpn_eval(rpn(src), sizes) == pytest.approx(value, rel=1e-12)


def test_rpn_eval_params_and_aliases():
    expr = rpn("gain 2 *", "//!PARAM gain\n//!TYPE float\n0.5\n\n")
    assert rpn_eval(expr, {}, {"gain": 4.0}) == 8.0
    with pytest.raises(ShaderError) as info:
        rpn_eval(expr, {})
    assert str(info.value) == "r.glsl:6: RPN expression 'gain 2 *': parameter 'gain' has no value"
    assert rpn_eval(rpn("MAIN.w"), {"MAINPRESUB": (640, 360)}) == 640.0


def test_rpn_eval_unknown_texture_and_bad_arithmetic():
    with pytest.raises(ShaderError) as info:
        rpn_eval(rpn("FEAT.w 2 *"), {"HOOKED": (10, 10), "MAIN": (10, 10)})
    assert str(info.value) == ("r.glsl:2: RPN expression 'FEAT.w 2 *': texture 'FEAT' is unknown at this point "
                               "(known now: HOOKED, MAIN)")
    with pytest.raises(ShaderError) as info:
        rpn_eval(rpn("1 0 /"), {})
    assert str(info.value) == "r.glsl:2: RPN expression '1 0 /': 1 / 0 has no finite value"
    with pytest.raises(ShaderError, match="1 % 0 has no finite value"):
        rpn_eval(rpn("1 0 %"), {})


# ---------------------------------------------------------------- fuzzing

FRAGMENTS = [
    "//!HOOK MAIN", "//!HOOK LUMA", "//!HOOK NOPE", "//!HOOK", "//!BIND HOOKED", "//!BIND X", "//!BIND",
    "//!SAVE X", "//!SAVE", "//!DESC hi", "//!WIDTH HOOKED.w 2 *", "//!WIDTH + +", "//!HEIGHT X.h",
    "//!WHEN 1", "//!WHEN p 0 >", "//!WHEN", "//!OFFSET 1 2", "//!OFFSET ALIGN", "//!OFFSET x",
    "//!COMPONENTS 3", "//!COMPONENTS 0", "//!COMPUTE 8 8", "//!COMPUTE 8 8 4", "//!TEXTURE T",
    "//!TEXTURE", "//!SIZE 1 1", "//!SIZE -1", "//!SIZE 1 1 1 1", "//!FORMAT r8", "//!FORMAT rgba16f",
    "//!FORMAT zz", "//!FILTER LINEAR", "//!BORDER MIRROR", "//!STORAGE", "//!PARAM p", "//!TYPE float",
    "//!TYPE ENUM int", "//!TYPE DEFINE", "//!MINIMUM 0", "//!MAXIMUM 1e400", "//!BUFFER b", "//!VAR vec3 v",
    "//!VAR int a[0]", "//!", "//!FOO", "//!SIZE " + "9" * 5000, "//!COMPUTE 1 " + "9" * 5000, "9" * 5000,
    "//!MINIMUM " + "9" * 5000, "//!TYPE int", "//!WIDTH " + "9" * 5000, "ff", "00ff", "0", "1.5", "A", "vec4 hook() { return vec4(0); }",
    "void hook() {}", "", " ", "\r", "\t//!HOOK MAIN", "\x00", "\ufeff", "é", "//!SIZE \u00b2",
    "//!COMPUTE \u0663 1", "//!WIDTH \u00b2", "//!COMPONENTS \u0663", "//!OFFSET \u0663 1", "\u0663\u0663",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=14),
       st.sampled_from(["\n", "\r\n"]))
def test_fuzz_parser_only_raises_shader_errors(parts, eol):
    text = eol.join(parts)
    try:
        sf = parse_shader(text, "fuzz.glsl")
    except ShaderError as exc:
        assert str(exc).startswith("fuzz.glsl:") and "\n" not in str(exc)
        return
    try:
        validate_chain([sf])
        resolve_params([sf], {})
    except ShaderError as exc:
        assert exc.file == "fuzz.glsl"


# ---------------------------------------------------------------- a real shader


def anime4k_path() -> Path:
    spec = importlib.util.find_spec("anime4k_python")
    assert spec is not None and spec.origin, "anime4k-python is a test dependency (pip install '.[test]')"
    return Path(spec.origin).parent / "shaders" / "Anime4K_ModeA.glsl"


def test_real_anime4k_mode_a():
    path = anime4k_path()
    sf = load_shader(path)
    validate_chain([sf])
    passes = sf.passes
    assert len(passes) == 49 and sf.textures == () and sf.params == ()
    first = passes[0]
    assert (first.line, first.desc, first.hooks, first.binds, first.save, first.components) == (
        24, "Anime4K-v4.0-De-Ring-Compute-Statistics", ("MAIN",), ("HOOKED",), "STATSMAX", 1)
    assert first.body_line == 29 and "vec4 hook()" in first.body
    clamp = passes[2]
    assert clamp.hooks == ("PREKERNEL",) and clamp.binds == ("HOOKED", "STATSMAX") and clamp.save is None
    last = passes[-1]
    assert last.binds == ("MAIN", "conv2d_last_tf") and last.save == "MAIN"
    assert last.width.tokens == (Size("conv2d_last_tf", "w"), Num(2.0), Op("*"))
    sizes = {"MAIN": (960, 540), "OUTPUT": (1920, 1080), "conv2d_last_tf": (960, 540)}
    assert rpn_eval(last.width, sizes) == 1920 and rpn_eval(last.height, sizes) == 1080
    assert rpn_eval(last.when, sizes) == 1.0
    assert rpn_eval(last.when, {**sizes, "OUTPUT": (1000, 600)}) == 0.0
    # every pass is a fragment pass that saves a name later bound (or writes MAIN / the hooked texture)
    saved = {p.save for p in passes}
    bound = {b for p in passes for b in p.binds}
    assert saved - {None, "MAIN"} <= bound
    assert all(p.compute is None and p.body_line > p.line for p in passes)
    assert max(len(p.binds) for p in passes) == 15
    # bodies map back to the file: the line body_line of the file is the body's first line
    lines = path.read_text().split("\n")
    for p in passes:
        assert p.body.split("\n")[0] == lines[p.body_line - 1]
