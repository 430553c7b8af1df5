"""Parser for mpv / libplacebo user-shader ("hook") files: text -> ``ShaderFile``.

Follows the mpv manual ("USER SHADERS") and libplacebo ``docs/custom-shaders.md``,
matching ``custom_mpv.c`` / ``user_shaders.c`` where the documents are silent,
with two deliberate differences: every error is raised at once as a
``ShaderError`` located at ``file:line`` (mpv and libplacebo log a bare message
and drop the shader), and things the reference parsers accept silently but that
can only be mistakes (a pass without ``//!HOOK``, a repeated ``//!SAVE``, a
texture name that is not a GLSL identifier) are errors too.

The file is split into blocks: a block is a run of ``//!`` directive lines and
the text after it, up to the next directive line. Text before the first
directive (licence comments) is ignored. A block whose first directive is
``//!TEXTURE``, ``//!PARAM`` or ``//!BUFFER`` is of that kind; any other block
is a shader pass. RPN expressions (``WIDTH``, ``HEIGHT``, ``WHEN``) are
tokenised and checked here once; ``rpn_eval`` evaluates them per frame.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from .errors import ShaderError, UpshadeError
from .hookfmt import (
    HOOK_POINTS,
    RPN,
    BufferDef,
    BufferVar,
    HookPass,
    Num,
    Op,
    Param,
    ParamDef,
    ParamValue,
    ShaderFile,
    Size,
    TextureDef,
    Token,
)

MAX_HOOKS = 16
MAX_BINDS = 16  # libplacebo's limit (older mpv allowed 6)

# libplacebo adds PREOUTPUT (before the final output conversion) to mpv's list.
KNOWN_HOOK_POINTS = HOOK_POINTS + ("PREOUTPUT",)

# Texture names that exist without any pass saving them: the hooked texture,
# every hook point's texture, and libplacebo's NATIVE_CROPPED (RPN only).
BUILTIN_TEXTURES = frozenset(KNOWN_HOOK_POINTS) | {"HOOKED", "NATIVE_CROPPED"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_POSITIVE_INT = re.compile(r"0*[1-9][0-9]{0,9}")  # at most 10 digits; the value is checked too
# C-style decimal numbers only: Python's float() would also take "1_000", "inf" and non-ASCII digits.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _float(text: str) -> float:
    """A finite decimal number, else ValueError."""
    if not _FLOAT.fullmatch(text):
        raise ValueError(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value
_EMPTY: Mapping = MappingProxyType({})


# --------------------------------------------------------------------------
# Texture formats


class TexFormat(NamedTuple):
    """How a //!TEXTURE FORMAT is stored: the hex data is ``components`` values of ``dtype`` per texel."""

    components: int
    dtype: np.dtype     # host (hex data) type of one component, little-endian
    normalized: bool    # integer data sampled as [0,1] (unsigned) / [-1,1] (signed) floats

    @property
    def texel_size(self) -> int:
        return self.components * self.dtype.itemsize

    @property
    def is_integer(self) -> bool:
        return self.dtype.kind in "iu" and not self.normalized


def _build_formats() -> dict[str, TexFormat]:
    u8, u16, u32 = np.dtype("u1"), np.dtype("<u2"), np.dtype("<u4")
    i8, i16, i32 = np.dtype("i1"), np.dtype("<i2"), np.dtype("<i4")
    f16, f32 = np.dtype("<f2"), np.dtype("<f4")
    kinds = (  # name suffix, host dtype, normalized
        ("8", u8, True), ("16", u16, True), ("8s", i8, True), ("16s", i16, True),
        # mpv and libplacebo on OpenGL upload the 16-bit float formats from
        # 32-bit float host data (GL_FLOAT), so their hex data is float32;
        # libplacebo's Vulkan names the half-float host layout "...16hf".
        ("16f", f32, False), ("16hf", f16, False), ("32f", f32, False),
        ("8u", u8, False), ("16u", u16, False), ("32u", u32, False),
        ("8i", i8, False), ("16i", i16, False), ("32i", i32, False),
    )
    table: dict[str, TexFormat] = {}
    for suffix, dtype, normalized in kinds:
        for n, pre in enumerate(("r", "rg", "rgb", "rgba"), start=1):
            table[pre + suffix] = TexFormat(n, dtype, normalized)
    return table


TEXTURE_FORMATS: Mapping[str, TexFormat] = MappingProxyType(_build_formats())


def texture_format(name: str) -> TexFormat:
    """The ``TexFormat`` of a FORMAT name; UpshadeError for an unknown one."""
    try:
        return TEXTURE_FORMATS[name]
    except KeyError:
        raise UpshadeError(f"unknown texture FORMAT '{name}'{_did_you_mean(name, TEXTURE_FORMATS)}") from None


# --------------------------------------------------------------------------
# RPN expressions

_OPS2 = frozenset("+-*/%><=")
_OPS1 = frozenset("!")


def _parse_rpn(src: str, file: str, line: int, directive: str) -> RPN:
    def bad(why: str) -> ShaderError:
        return ShaderError(file, line, f"bad RPN expression '{src}' in //!{directive}: {why}")

    tokens: list[Token] = []
    depth = 0
    words = src.split()
    if not words:
        raise bad("empty")
    for word in words:
        if word in _OPS2:
            if depth < 2:
                raise bad(f"stack underflow at '{word}' (it needs two values)")
            depth -= 1
            tokens.append(Op(word))
            continue
        if word in _OPS1:
            if depth < 1:
                raise bad(f"stack underflow at '{word}' (it needs one value)")
            tokens.append(Op(word))
            continue
        if word[0] in "0123456789" or (word[0] == "." and word[1:2] in tuple("0123456789")):
            if not _FLOAT.fullmatch(word):
                raise bad(f"'{word}' is not a number")
            value = float(word)
            if not math.isfinite(value):
                raise bad(f"'{word}' is not a finite number")
            tokens.append(Num(value))
        else:
            name, dot, attr = word.rpartition(".")
            if dot and attr in ("w", "width", "h", "height") and _IDENT.match(name):
                tokens.append(Size(name, attr[0]))
            elif not dot and _IDENT.match(word):
                tokens.append(Param(word))  # checked against the file's PARAMs at the end
            else:
                raise bad(f"unknown token '{word}'")
        depth += 1
    if depth != 1:
        raise bad(f"leaves {depth} values on the stack (it must leave exactly 1)")
    return RPN(source=" ".join(words), tokens=tuple(tokens), file=file, line=line)


def _fuzzy_eq(a: float, b: float) -> bool:
    # libplacebo's "around 1 ppm" tolerance, made symmetric for negative values.
    return abs(a - b) <= 1e-6 * max(abs(a), abs(b))


def _binary(expr: RPN, op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return a / b if b != 0 else math.nan
    if op == "%":
        return math.fmod(a, b) if b != 0 and math.isfinite(a) else math.nan
    if op == ">":
        return 1.0 if a > b else 0.0
    if op == "<":
        return 1.0 if a < b else 0.0
    if op == "=":
        return 1.0 if _fuzzy_eq(a, b) else 0.0
    raise ShaderError(expr.file, expr.line, f"RPN expression '{expr.source}': unknown operator '{op}'")


def rpn_eval(
    expr: RPN,
    sizes: Mapping[str, tuple[float, float]],
    params: Mapping[str, float] = _EMPTY,
) -> float:
    """Evaluate ``expr`` given the current texture sizes (name -> (w, h)) and parameter values."""
    stack: list[float] = []
    push = stack.append
    for tok in expr.tokens:
        match tok:
            case Num(value):
                push(value)
            case Size(name, dim):
                size = sizes.get(name)
                if size is None and name in ("MAIN", "MAINPRESUB"):
                    # libplacebo treats the two as one texture; mpv keeps both.
                    size = sizes.get("MAINPRESUB" if name == "MAIN" else "MAIN")
                if size is None:
                    known = ", ".join(sorted(sizes)) or "none"
                    raise ShaderError(
                        expr.file, expr.line,
                        f"RPN expression '{expr.source}': texture '{name}' is unknown at this point "
                        f"(known now: {known})",
                    )
                push(float(size[0] if dim == "w" else size[1]))
            case Param(name):
                if name not in params:
                    raise ShaderError(expr.file, expr.line,
                                      f"RPN expression '{expr.source}': parameter '{name}' has no value")
                push(float(params[name]))
            case Op("!"):
                if not stack:
                    raise ShaderError(expr.file, expr.line, f"RPN expression '{expr.source}': stack underflow")
                stack[-1] = 0.0 if stack[-1] else 1.0
            case Op(op):
                if len(stack) < 2:
                    raise ShaderError(expr.file, expr.line, f"RPN expression '{expr.source}': stack underflow")
                b = stack.pop()
                a = stack.pop()
                r = _binary(expr, op, a, b)
                if not math.isfinite(r):
                    raise ShaderError(expr.file, expr.line,
                                      f"RPN expression '{expr.source}': {a:g} {op} {b:g} has no finite value")
                push(r)
            case _:
                raise ShaderError(expr.file, expr.line, f"RPN expression '{expr.source}': bad token {tok!r}")
    if len(stack) != 1:
        raise ShaderError(expr.file, expr.line,
                          f"RPN expression '{expr.source}' leaves {len(stack)} values on the stack")
    return stack[0]


# --------------------------------------------------------------------------
# Block splitting


class _Directive(NamedTuple):
    line: int
    name: str
    arg: str


class _Block(NamedTuple):
    directives: list[_Directive]
    body_line: int
    body: list[str]        # raw lines (no line terminators)


def _is_directive(line: str) -> bool:
    return line.lstrip().startswith("//!")


def _split_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    i, n = 0, len(lines)
    while i < n and not _is_directive(lines[i]):
        i += 1
    while i < n:
        directives = []
        while i < n and _is_directive(lines[i]):
            name, _, arg = lines[i].strip()[3:].partition(" ")
            if "\t" in name:  # tab-separated argument
                name, _, rest = name.partition("\t")
                arg = rest + " " + arg
            directives.append(_Directive(i + 1, name, arg.strip()))
            i += 1
        start = i
        while i < n and not _is_directive(lines[i]):
            i += 1
        blocks.append(_Block(directives, start + 1, lines[start:i]))
    return blocks


def _parse_value(text: str, typ: str) -> ParamValue:
    """Parse a PARAM value of GLSL type ``typ``; ValueError if it is not one."""
    text = text.strip()
    if typ == "float":
        return _float(text)
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", text):
        raise ValueError(text)
    v = int(text)
    lo, hi = (0, 2**32 - 1) if typ == "uint" else (-(2**31), 2**31 - 1)
    if not lo <= v <= hi:
        raise ValueError(text)
    return v


def _positive_ints(parts: list[str]) -> list[int] | None:
    """The values of ``parts`` if each is an integer in 1 .. 2**31-1, else None."""
    if not all(_POSITIVE_INT.fullmatch(p) for p in parts):
        return None
    values = [int(p) for p in parts]
    return values if all(v < 2**31 for v in values) else None


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.75)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --------------------------------------------------------------------------
# Block parsers

_PASS_DIRECTIVES = ("HOOK", "BIND", "SAVE", "DESC", "WIDTH", "HEIGHT", "WHEN", "OFFSET", "COMPONENTS", "COMPUTE")
_TEXTURE_DIRECTIVES = ("TEXTURE", "SIZE", "FORMAT", "FILTER", "BORDER", "STORAGE")
_PARAM_DIRECTIVES = ("PARAM", "DESC", "TYPE", "MINIMUM", "MAXIMUM")
_BUFFER_DIRECTIVES = ("BUFFER", "VAR", "STORAGE")
_BLOCK_STARTS = ("TEXTURE", "PARAM", "BUFFER")


class _Parser:
    def __init__(self, path: str):
        self.path = path

    def err(self, line: int, msg: str) -> ShaderError:
        return ShaderError(self.path, line, msg)

    def _unknown(self, d: _Directive, kind: str, allowed: tuple[str, ...]) -> ShaderError:
        if d.name in _BLOCK_STARTS:
            return self.err(d.line, f"//!{d.name} must be the first directive of its block "
                                    f"(end the previous {kind} with a blank line first)")
        if not d.name:
            return self.err(d.line, "empty directive //! (a directive name must follow '//!' directly)")
        where = "" if kind == "pass" else f" in a {kind} block"
        hint = _did_you_mean(d.name, allowed)
        if not hint and kind == "pass" and d.name in _TEXTURE_DIRECTIVES + _PARAM_DIRECTIVES + _BUFFER_DIRECTIVES:
            hint = " (it belongs in a //!TEXTURE, //!PARAM or //!BUFFER block)"
        return self.err(d.line, f"unknown directive //!{d.name}{where}{hint}")

    def _once(self, seen: dict[str, int], d: _Directive) -> None:
        if d.name in seen:
            raise self.err(d.line, f"duplicate //!{d.name} (first given on line {seen[d.name]})")
        seen[d.name] = d.line

    def _ident(self, d: _Directive, what: str) -> str:
        if not d.arg:
            raise self.err(d.line, f"//!{d.name} needs a {what}")
        if not _IDENT.match(d.arg):
            raise self.err(d.line, f"//!{d.name} name '{d.arg}' is not a valid GLSL identifier")
        return d.arg

    # -- passes ---------------------------------------------------------------

    def pass_block(self, block: _Block) -> HookPass:
        first = block.directives[0].line
        hooks: list[str] = []
        binds: list[str] = []
        bind_lines: list[int] = []
        seen: dict[str, int] = {}
        f: dict = {}
        for d in block.directives:
            if d.name == "HOOK":
                if not d.arg:
                    raise self.err(d.line, "//!HOOK needs a hook point name")
                if d.arg not in KNOWN_HOOK_POINTS:
                    raise self.err(d.line, f"unknown hook point '{d.arg}' (known: {', '.join(KNOWN_HOOK_POINTS)})")
                if d.arg in hooks:
                    raise self.err(d.line, f"pass hooks '{d.arg}' twice")
                if len(hooks) == MAX_HOOKS:
                    raise self.err(d.line, f"more than {MAX_HOOKS} //!HOOK directives in one pass")
                hooks.append(d.arg)
            elif d.name == "BIND":
                name = self._ident(d, "texture name")
                if name in binds:
                    raise self.err(d.line, f"texture '{name}' is bound twice "
                                           f"(first on line {bind_lines[binds.index(name)]})")
                if len(binds) == MAX_BINDS:
                    raise self.err(d.line, f"more than {MAX_BINDS} //!BIND directives in one pass")
                binds.append(name)
                bind_lines.append(d.line)
            elif d.name == "SAVE":
                self._once(seen, d)
                name = self._ident(d, "texture name")
                # "SAVE HOOKED" means the default: replace the hooked texture.
                f["save"] = None if name == "HOOKED" else name
            elif d.name == "DESC":
                self._once(seen, d)
                f["desc"] = d.arg
            elif d.name in ("WIDTH", "HEIGHT", "WHEN"):
                self._once(seen, d)
                f[d.name.lower()] = _parse_rpn(d.arg, self.path, d.line, d.name)
            elif d.name == "OFFSET":
                self._once(seen, d)
                f["offset"] = self._offset(d)
            elif d.name == "COMPONENTS":
                self._once(seen, d)
                if d.arg not in ("1", "2", "3", "4"):
                    raise self.err(d.line, f"//!COMPONENTS must be 1, 2, 3 or 4, not '{d.arg}'")
                f["components"] = int(d.arg)
            elif d.name == "COMPUTE":
                self._once(seen, d)
                f["compute"] = self._compute(d)
            else:
                raise self._unknown(d, "pass", _PASS_DIRECTIVES)
        if not hooks:
            raise self.err(first, "pass has no //!HOOK directive, so it would never run")
        if f.get("offset") == "ALIGN" and "HOOKED" not in binds and not all(h in binds for h in hooks):
            raise self.err(seen["OFFSET"], "//!OFFSET ALIGN needs the pass to BIND HOOKED")
        body = "".join(ln + "\n" for ln in block.body)
        if not re.search(r"\bhook\b", body):
            what = "void hook()" if "compute" in f else "vec4 hook()"
            raise self.err(first, f"pass body defines no {what} function")
        return HookPass(
            file=self.path, line=first, hooks=tuple(hooks), binds=tuple(binds), bind_lines=tuple(bind_lines),
            body=body, body_line=block.body_line, **f,
        )

    def _offset(self, d: _Directive):
        if d.arg == "ALIGN":
            return "ALIGN"
        parts = d.arg.split()
        try:
            if len(parts) != 2:
                raise ValueError
            ox, oy = _float(parts[0]), _float(parts[1])
        except ValueError:
            raise self.err(d.line, f"bad //!OFFSET '{d.arg}': expected 'ox oy' (two numbers) or 'ALIGN'") from None
        return (ox, oy)

    def _compute(self, d: _Directive) -> tuple[int, int, int, int]:
        parts = d.arg.split()
        v = _positive_ints(parts) if len(parts) in (2, 4) else None
        if v is not None:
            return (v[0], v[1], v[2], v[3]) if len(v) == 4 else (v[0], v[1], v[0], v[1])
        raise self.err(d.line, f"bad //!COMPUTE '{d.arg}': expected 'bw bh' or 'bw bh tw th' (positive integers)")

    # -- textures -------------------------------------------------------------

    def _hex(self, block: _Block, what: str) -> tuple[bytes, int | None]:
        """Decode a block body of hex digits (whitespace anywhere); also return its first line."""
        chunks = []
        first = None
        for k, raw in enumerate(block.body):
            text = "".join(raw.split())
            if not text:
                continue
            if first is None:
                first = block.body_line + k
            bad = re.search(r"[^0-9A-Fa-f]", text)
            if bad:
                raise self.err(block.body_line + k, f"{what} data: '{bad.group()}' is not a hex digit")
            chunks.append(text)
        digits = "".join(chunks)
        if len(digits) % 2:
            raise self.err(first, f"{what} data has an odd number of hex digits ({len(digits)})")
        return bytes.fromhex(digits), first

    def texture_block(self, block: _Block) -> TextureDef:
        head = block.directives[0]
        name = self._ident(head, "texture name")
        seen: dict[str, int] = {}
        size: tuple[int, ...] = (1, 1)
        fmt_name = None
        filt, border, storage = "NEAREST", "CLAMP", False
        for d in block.directives[1:]:
            if d.name == "SIZE":
                self._once(seen, d)
                parts = d.arg.split()
                dims = _positive_ints(parts) if 1 <= len(parts) <= 3 else None
                if dims is None:
                    raise self.err(d.line, f"bad //!SIZE '{d.arg}': expected 1 to 3 positive integers (w [h [d]])")
                size = tuple(dims)
            elif d.name == "FORMAT":
                self._once(seen, d)
                if d.arg not in TEXTURE_FORMATS:
                    raise self.err(d.line, f"unknown texture FORMAT '{d.arg}'{_did_you_mean(d.arg, TEXTURE_FORMATS)}"
                                           f" (known: {', '.join(TEXTURE_FORMATS)})")
                fmt_name = d.arg
            elif d.name == "FILTER":
                self._once(seen, d)
                if d.arg not in ("LINEAR", "NEAREST"):
                    raise self.err(d.line, f"bad //!FILTER '{d.arg}': expected LINEAR or NEAREST")
                filt = d.arg
            elif d.name == "BORDER":
                self._once(seen, d)
                if d.arg not in ("CLAMP", "REPEAT", "MIRROR"):
                    raise self.err(d.line, f"bad //!BORDER '{d.arg}': expected CLAMP, REPEAT or MIRROR")
                border = d.arg
            elif d.name == "STORAGE":
                self._once(seen, d)
                if d.arg:
                    raise self.err(d.line, f"//!STORAGE takes no argument, got '{d.arg}'")
                storage = True
            else:
                raise self._unknown(d, "TEXTURE", _TEXTURE_DIRECTIVES)
        if fmt_name is None:
            raise self.err(head.line, f"TEXTURE '{name}' has no //!FORMAT")
        fmt = TEXTURE_FORMATS[fmt_name]
        if filt == "LINEAR" and fmt.is_integer:
            raise self.err(seen["FILTER"], f"TEXTURE '{name}': FILTER LINEAR is impossible with "
                                           f"integer format '{fmt_name}'")
        if storage and fmt.components == 3:
            raise self.err(seen["STORAGE"], f"TEXTURE '{name}': 3-component format '{fmt_name}' cannot be "
                                            f"a STORAGE image (GL has no rgb image formats)")
        data, first = self._hex(block, f"TEXTURE '{name}'")
        texels = math.prod(size)
        expected = texels * fmt.texel_size
        # A storage image may start uninitialised (libplacebo zero-fills it).
        if len(data) != expected and not (storage and not data):
            dims = "x".join(map(str, size))
            raise self.err(first or head.line,
                           f"TEXTURE '{name}' data is {len(data)} bytes, expected {expected} "
                           f"(SIZE {dims} of {fmt_name}, {fmt.texel_size} bytes per texel)")
        return TextureDef(file=self.path, line=head.line, name=name, size=size, format=fmt_name, data=data,
                          filter=filt, border=border, storage=storage)

    # -- parameters -----------------------------------------------------------

    _SCALARS = ("int", "uint", "float")

    def param_block(self, block: _Block) -> ParamDef:
        head = block.directives[0]
        name = self._ident(head, "parameter name")
        seen: dict[str, int] = {}
        typ = kind = None
        is_enum = False
        desc = None
        bounds: dict[str, tuple[int, str]] = {}
        for d in block.directives[1:]:
            if d.name == "TYPE":
                self._once(seen, d)
                words = d.arg.split()
                is_enum = bool(words) and words[0] == "ENUM"
                if is_enum:
                    words = words[1:]
                kind = "DYNAMIC"  # no qualifier: a plain uniform, same as DYNAMIC for a GL runtime
                if words[:1] == ["DEFINE"]:
                    kind, typ = "DEFINE", "int"
                    ok = len(words) == 1
                else:
                    if words[:1] in (["DYNAMIC"], ["CONSTANT"]):
                        kind = words.pop(0)
                    ok = len(words) == 1 and words[0] in self._SCALARS
                    typ = words[0] if ok else None
                if not ok:
                    raise self.err(d.line, f"bad //!TYPE '{d.arg}': expected [ENUM] [DYNAMIC|CONSTANT] "
                                           f"int|uint|float, or [ENUM] DEFINE")
                if is_enum and typ != "int":
                    raise self.err(d.line, "//!TYPE ENUM needs type int or DEFINE")
            elif d.name == "DESC":
                self._once(seen, d)
                desc = d.arg
            elif d.name in ("MINIMUM", "MAXIMUM"):
                self._once(seen, d)
                bounds[d.name] = (d.line, d.arg)
            else:
                raise self._unknown(d, "PARAM", _PARAM_DIRECTIVES)
        if typ is None:
            raise self.err(head.line, f"PARAM '{name}' has no //!TYPE")
        body = [(block.body_line + k, t.strip()) for k, t in enumerate(block.body) if t.strip()]
        if not body:
            raise self.err(head.line, f"PARAM '{name}' has no default value (the block body)")
        if is_enum:
            names: list[str] = []
            for line, t in body:
                if not _IDENT.match(t):
                    raise self.err(line, f"PARAM '{name}': enum value '{t}' is not a valid GLSL identifier")
                if t in names:
                    raise self.err(line, f"PARAM '{name}': enum value '{t}' is listed twice")
                names.append(t)
            if bounds:
                line = min(ln for ln, _ in bounds.values())
                raise self.err(line, f"PARAM '{name}': an ENUM takes no //!MINIMUM or //!MAXIMUM")
            return ParamDef(file=self.path, line=head.line, name=name, type="int", default=0, kind=kind,
                            minimum=0, maximum=len(names) - 1, desc=desc, enum_names=tuple(names))
        if len(body) > 1:
            raise self.err(body[1][0], f"PARAM '{name}': the default value must be a single line")
        line, text = body[0]
        try:
            default = _parse_value(text, typ)
        except ValueError:
            raise self.err(line, f"PARAM '{name}': default '{text}' is not a valid {typ}") from None
        lim: dict[str, ParamValue] = {}
        for which, (bline, btext) in bounds.items():
            try:
                lim[which] = _parse_value(btext, typ)
            except ValueError:
                raise self.err(bline, f"PARAM '{name}': //!{which} '{btext}' is not a valid {typ}") from None
        lo, hi = lim.get("MINIMUM"), lim.get("MAXIMUM")
        if lo is not None and hi is not None and lo > hi:
            raise self.err(bounds["MAXIMUM"][0], f"PARAM '{name}': //!MAXIMUM {hi} is below //!MINIMUM {lo}")
        if lo is not None and default < lo:
            raise self.err(line, f"PARAM '{name}': default {default} is below //!MINIMUM {lo}")
        if hi is not None and default > hi:
            raise self.err(line, f"PARAM '{name}': default {default} is above //!MAXIMUM {hi}")
        return ParamDef(file=self.path, line=head.line, name=name, type=typ, default=default, kind=kind,
                        minimum=lo, maximum=hi, desc=desc)

    # -- buffers --------------------------------------------------------------

    def buffer_block(self, block: _Block) -> BufferDef:
        head = block.directives[0]
        name = self._ident(head, "buffer name")
        storage = False
        seen: dict[str, int] = {}
        decls: list[tuple[int, str, str, int | None]] = []
        for d in block.directives[1:]:
            if d.name == "VAR":
                m = re.fullmatch(r"(\w+)\s+([A-Za-z_]\w*)\s*(?:\[\s*(\d+)\s*\])?\s*;?", d.arg)
                if not m:
                    raise self.err(d.line, f"bad //!VAR '{d.arg}': expected '<type> <name>' or '<type> <name>[N]'")
                typ, vname, n = m.group(1), m.group(2), m.group(3)
                if typ not in _GLSL_TYPES:
                    raise self.err(d.line, f"//!VAR type '{typ}' is not a GLSL scalar, vector or matrix type")
                if n is not None and int(n) < 1:
                    raise self.err(d.line, f"//!VAR '{vname}': array size must be at least 1")
                if any(vname == other for _, _, other, _ in decls):
                    raise self.err(d.line, f"//!VAR '{vname}' is declared twice in BUFFER '{name}'")
                decls.append((d.line, typ, vname, int(n) if n is not None else None))
            elif d.name == "STORAGE":
                self._once(seen, d)
                if d.arg:
                    raise self.err(d.line, f"//!STORAGE takes no argument, got '{d.arg}'")
                storage = True
            else:
                raise self._unknown(d, "BUFFER", _BUFFER_DIRECTIVES)
        if not decls:
            raise self.err(head.line, f"BUFFER '{name}' has no //!VAR")
        offset = 0
        out_vars = []
        for _, typ, vname, n in decls:
            off, size = _std_layout(offset, typ, n, std140=not storage)
            out_vars.append(BufferVar(type=typ, name=vname, array=n, offset=off))
            offset = off + size
        data, first = self._hex(block, f"BUFFER '{name}'")
        if len(data) != offset and not (storage and not data):
            layout = "std430" if storage else "std140"
            raise self.err(first or head.line,
                           f"BUFFER '{name}' data is {len(data)} bytes, expected {offset} ({layout} layout)")
        return BufferDef(file=self.path, line=head.line, name=name, vars=tuple(out_vars), size=offset,
                         data=data, storage=storage)


def _glsl_types() -> dict[str, tuple[int, int]]:
    """GLSL type name -> (vector size, columns) for the types a BUFFER VAR may have."""
    t: dict[str, tuple[int, int]] = {"float": (1, 1), "int": (1, 1), "uint": (1, 1)}
    for n in (2, 3, 4):
        for p in ("", "i", "u"):
            t[f"{p}vec{n}"] = (n, 1)
        t[f"mat{n}"] = (n, n)
        for r in (2, 3, 4):
            t[f"mat{n}x{r}"] = (r, n)  # GLSL matCxR: C columns of R rows
    return t


_GLSL_TYPES = _glsl_types()


def _std_layout(offset: int, typ: str, array: int | None, std140: bool) -> tuple[int, int]:
    """(aligned offset, byte size) of a buffer member under std140 / std430 rules (as libplacebo)."""
    dim_v, dim_m = _GLSL_TYPES[typ]
    stride = 4 * dim_v
    align = stride + (4 if dim_v == 3 else 0)
    count = dim_m * (array or 1)
    if count > 1:
        stride = align = (align + 15) // 16 * 16 if std140 else align
    offset = (offset + align - 1) // align * align
    return offset, stride * count


# --------------------------------------------------------------------------
# Files


def parse_shader(text: str, path: str = "<string>") -> ShaderFile:
    """Parse one user-shader file. Raises ShaderError("path:line: ...") on the first problem."""
    path = str(path)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines[-1] == "":  # the final newline ends the last line; it does not start another
        lines.pop()
    p = _Parser(path)
    blocks = _split_blocks(lines)
    if not blocks:
        raise ShaderError(path, 1, "no //! directives: this is not an mpv user shader")
    passes: list[HookPass] = []
    textures: list[TextureDef] = []
    params: list[ParamDef] = []
    buffers: list[BufferDef] = []
    names: dict[str, tuple[str, int]] = {}  # TEXTURE / PARAM / BUFFER names within this file

    def claim(kind: str, name: str, line: int) -> None:
        if name in names:
            other_kind, other_line = names[name]
            what = "already defined" if other_kind == kind else f"already the name of a {other_kind}"
            raise ShaderError(path, line, f"{kind} '{name}' is {what} at {path}:{other_line}")
        names[name] = (kind, line)

    for block in blocks:
        first = block.directives[0].name
        if first == "TEXTURE":
            t = p.texture_block(block)
            claim("TEXTURE", t.name, t.line)
            textures.append(t)
        elif first == "PARAM":
            prm = p.param_block(block)
            claim("PARAM", prm.name, prm.line)
            params.append(prm)
        elif first == "BUFFER":
            b = p.buffer_block(block)
            claim("BUFFER", b.name, b.line)
            buffers.append(b)
        else:
            passes.append(p.pass_block(block))

    passes = [_bind_params(ps, params) for ps in passes]
    return ShaderFile(path=path, passes=tuple(passes), textures=tuple(textures), params=tuple(params),
                      buffers=tuple(buffers))


def _bind_params(ps: HookPass, params: list[ParamDef]) -> HookPass:
    """Check the RPN parameter references of a pass; turn ENUM value names into constants."""
    by_name = {prm.name: prm for prm in params}
    enum_values = {v: float(i) for prm in params for i, v in enumerate(prm.enum_names)}
    changes = {}
    for field, directive in (("width", "WIDTH"), ("height", "HEIGHT"), ("when", "WHEN")):
        expr: RPN | None = getattr(ps, field)
        if expr is None:
            continue
        tokens: list[Token] = []
        for tok in expr.tokens:
            if isinstance(tok, Param) and tok.name not in by_name:
                if tok.name not in enum_values:
                    raise ShaderError(expr.file, expr.line,
                                      f"bad RPN expression '{expr.source}' in //!{directive}: unknown token "
                                      f"'{tok.name}' (not a number, an operator, NAME.w/NAME.h or a //!PARAM "
                                      f"of this file)")
                tok = Num(enum_values[tok.name])
            tokens.append(tok)
        if tuple(tokens) != expr.tokens:
            changes[field] = RPN(source=expr.source, tokens=tuple(tokens), file=expr.file, line=expr.line)
    return replace(ps, **changes) if changes else ps


def load_shader(path) -> ShaderFile:
    """Read and parse a shader file; UpshadeError naming the path if it cannot be read."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UpshadeError(f"{path}: no such shader file") from None
    except IsADirectoryError:
        raise UpshadeError(f"{path}: is a directory, not a shader file") from None
    except OSError as exc:
        raise UpshadeError(f"{path}: cannot read shader file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UpshadeError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    return parse_shader(text, str(path))


# --------------------------------------------------------------------------
# Chains


def validate_chain(files: Sequence[ShaderFile]) -> None:
    """Cross-file checks of a shader chain, in load order (TEXTURE/PARAM/BUFFER names, BIND targets)."""
    defined: dict[str, tuple[str, str, int]] = {}  # name -> (kind, file, line)

    def claim(kind: str, name: str, file: str, line: int) -> None:
        if name in defined:
            other_kind, ofile, oline = defined[name]
            what = "already defined" if other_kind == kind else f"already the name of a {other_kind}"
            raise ShaderError(file, line, f"{kind} '{name}' is {what} at {ofile}:{oline}")
        defined[name] = (kind, file, line)

    for sf in files:
        for t in sf.textures:
            claim("TEXTURE", t.name, t.file, t.line)
        for b in sf.buffers:
            claim("BUFFER", b.name, b.file, b.line)
        for prm in sf.params:
            claim("PARAM", prm.name, prm.file, prm.line)

    saved = {ps.save for sf in files for ps in sf.passes if ps.save}
    bindable = BUILTIN_TEXTURES | saved | {n for n, (k, _, _) in defined.items() if k in ("TEXTURE", "BUFFER")}
    sized = BUILTIN_TEXTURES | saved | {t.name for sf in files for t in sf.textures}

    for sf in files:
        for ps in sf.passes:
            lines = ps.bind_lines or (ps.line,) * len(ps.binds)
            for name, line in zip(ps.binds, lines):
                if name not in bindable:
                    raise ShaderError(ps.file, line, f"BIND of texture '{name}' that no pass saves"
                                                     f"{_did_you_mean(name, bindable)}")
            for expr in (ps.width, ps.height, ps.when):
                if expr is None:
                    continue
                for name in expr.textures:
                    if name not in sized:
                        raise ShaderError(expr.file, expr.line,
                                          f"RPN expression '{expr.source}' refers to texture '{name}' "
                                          f"that no pass saves{_did_you_mean(name, sized)}")


def resolve_params(files: Sequence[ShaderFile], overrides: Mapping[str, str]) -> dict[str, ParamValue]:
    """Parameter values of a chain: each PARAM's default, overridden by ``--param NAME=VALUE``."""
    defs: dict[str, ParamDef] = {}
    for sf in files:
        for prm in sf.params:
            defs.setdefault(prm.name, prm)
    values: dict[str, ParamValue] = {name: prm.default for name, prm in defs.items()}
    for name, text in overrides.items():
        prm = defs.get(name)
        if prm is None:
            known = ", ".join(sorted(defs)) if defs else "the loaded shaders have no //!PARAM"
            raise UpshadeError(f"--param {name}={text}: unknown parameter '{name}' (known: {known})")
        where = f"{prm.file}:{prm.line}"
        if prm.enum_names:
            if text.strip() in prm.enum_names:
                values[name] = prm.enum_names.index(text.strip())
                continue
            choices = ", ".join(prm.enum_names)
            try:
                v = _parse_value(text, "int")
            except ValueError:
                raise UpshadeError(f"--param {name}={text}: expected one of {choices} (PARAM at {where})") from None
        else:
            try:
                v = _parse_value(text, prm.type)
            except ValueError:
                raise UpshadeError(f"--param {name}={text}: '{text}' is not a valid {prm.type} "
                                   f"(PARAM at {where})") from None
        if prm.minimum is not None and v < prm.minimum:
            raise UpshadeError(f"--param {name}={text}: below the minimum {prm.minimum} (PARAM at {where})")
        if prm.maximum is not None and v > prm.maximum:
            raise UpshadeError(f"--param {name}={text}: above the maximum {prm.maximum} (PARAM at {where})")
        values[name] = v
    return values
