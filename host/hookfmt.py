"""The parsed form of an mpv user-shader ("hook") file: pure data, no GL.

Text -> ``parse_shader()`` (in ``host/hookparse.py``) -> ``ShaderFile``.
The GL runtime (``host/pipeline.py``) consumes these objects; it never looks at
the text again except for the GLSL bodies, which keep their source line numbers
so compile errors can be mapped back with ``#line``.

Specification: mpv manual, option ``--glsl-shaders`` / section "USER SHADERS",
and libplacebo ``docs/custom-shaders.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Union

# Hook points in the order mpv/libplacebo fire them.
HOOK_POINTS = (
    "RGB", "LUMA", "CHROMA", "ALPHA", "XYZ",
    "CHROMA_SCALED", "ALPHA_SCALED",
    "NATIVE", "MAINPRESUB", "MAIN", "LINEAR", "SIGMOID",
    "PREKERNEL", "POSTKERNEL", "SCALED", "OUTPUT",
)


@dataclass(frozen=True, slots=True)
class Num:
    """An RPN number."""

    value: float


@dataclass(frozen=True, slots=True)
class Size:
    """``TEX.w`` / ``TEX.h`` (``.width`` / ``.height``): a texture's size at evaluation time."""

    texture: str
    dim: str                       # "w" | "h"


@dataclass(frozen=True, slots=True)
class Param:
    """A //!PARAM of the file, by name (the parser checks that it exists; ENUM names become ``Num``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Op:
    """An operator: binary ``+ - * / % > < =`` or unary ``!``."""

    op: str


Token = Union[Num, Size, Param, Op]


@dataclass(frozen=True)
class RPN:
    """A reverse-Polish size/condition expression, tokenised once at parse time.

    Evaluate per frame with ``rpn_eval`` (in hookparse) given the current
    texture sizes and parameter values.
    """

    source: str
    tokens: tuple[Token, ...]
    file: str
    line: int

    @property
    def textures(self) -> tuple[str, ...]:
        """The texture names whose size the expression reads (``TEX.w`` / ``TEX.h``)."""
        return tuple(t.texture for t in self.tokens if isinstance(t, Size))


@dataclass(frozen=True)
class HookPass:
    file: str
    line: int                      # line of the pass's first `//!` directive
    hooks: tuple[str, ...]         # //!HOOK (repeatable)
    binds: tuple[str, ...]         # //!BIND (<= 16), in order
    body: str                      # GLSL source of the pass
    body_line: int                 # file line of the body's first line (for #line)
    desc: str | None = None        # //!DESC
    save: str | None = None        # //!SAVE (None: replaces the hooked texture)
    components: int | None = None  # //!COMPONENTS (None: 4)
    width: RPN | None = None       # //!WIDTH  (None: HOOKED.w)
    height: RPN | None = None      # //!HEIGHT (None: HOOKED.h)
    when: RPN | None = None        # //!WHEN   (None: always)
    offset: tuple[float, float] | str | None = None  # //!OFFSET ox oy | "ALIGN"
    compute: tuple[int, int, int, int] | None = None  # //!COMPUTE bw bh tw th (tw/th default bw/bh)
    bind_lines: tuple[int, ...] = ()  # file line of each //!BIND, parallel to ``binds``


@dataclass(frozen=True)
class TextureDef:
    """A //!TEXTURE block: a constant texture (LUT) with its data decoded from hex."""

    file: str
    line: int
    name: str
    size: tuple[int, ...]          # 1 to 3 dimensions
    format: str                    # mpv/libplacebo format name, e.g. "rgba16f", "r8", "rgba32f"
    data: bytes
    filter: str = "NEAREST"        # "LINEAR" | "NEAREST"
    border: str = "CLAMP"          # "CLAMP" | "REPEAT" | "MIRROR"
    storage: bool = False          # //!STORAGE: bound as an image for compute passes


ParamValue = Union[int, float]


@dataclass(frozen=True)
class ParamDef:
    """A //!PARAM block: a user-tunable value (overridable with --param NAME=VALUE)."""

    file: str
    line: int
    name: str
    type: str                      # GLSL type: "int", "uint", "float" (as libplacebo)
    default: ParamValue
    kind: str = "DYNAMIC"          # "DYNAMIC" (uniform; also a TYPE without qualifier) | "CONSTANT" (const) | "DEFINE" (#define)
    minimum: ParamValue | None = None
    maximum: ParamValue | None = None
    desc: str | None = None
    # //!TYPE ENUM: the body lists one name per value; value i is names[i] and
    # each name is #defined to its index in the GLSL (as libplacebo does).
    enum_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BufferVar:
    """One //!VAR of a //!BUFFER block, with its byte offset in the block's layout."""

    type: str                      # GLSL type: float, vec2..4, int, ivec2..4, uint, uvec2..4, mat2..4, matCxR
    name: str
    array: int | None              # N for `name[N]`, None for a plain variable
    offset: int                    # std140 (uniform) or std430 (storage) byte offset


@dataclass(frozen=True)
class BufferDef:
    """A //!BUFFER block (libplacebo): a uniform block, or a storage block with //!STORAGE."""

    file: str
    line: int
    name: str
    vars: tuple[BufferVar, ...]
    size: int                      # bytes the layout occupies
    data: bytes                    # initial contents (empty: zero-filled; storage only)
    storage: bool = False


@dataclass(frozen=True)
class ShaderFile:
    path: str
    passes: tuple[HookPass, ...]
    textures: tuple[TextureDef, ...] = ()
    params: tuple[ParamDef, ...] = ()
    buffers: tuple[BufferDef, ...] = ()

    def param_defaults(self) -> Mapping[str, ParamValue]:
        return {p.name: p.default for p in self.params}
