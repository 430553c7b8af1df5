"""A text overlay drawn with a built-in 5x7 bitmap font (no font files, no extra dependency).

The font becomes one small R8 atlas texture; the text is a grid of character
codes in an R8UI texture; one fragment shader looks both up. Changing the
text writes a few hundred bytes into a texture allocated once.
"""

from __future__ import annotations

import moderngl
import numpy as np

from .glsl import FULLSCREEN_VS, GLSL_VERSION

GLYPH_W, GLYPH_H = 5, 7
CELL_W, CELL_H = GLYPH_W + 1, GLYPH_H + 2  # one column and two rows of spacing

# Rows top to bottom, "#" = ink. Lowercase letters are drawn as capitals.
_FONT = {
    " ": "..... ..... ..... ..... ..... ..... .....",
    "0": ".###. #...# #..## #.#.# ##..# #...# .###.",
    "1": "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
    "2": ".###. #...# ....# ...#. ..#.. .#... #####",
    "3": "####. ....# ....# .###. ....# ....# ####.",
    "4": "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
    "5": "##### #.... ####. ....# ....# #...# .###.",
    "6": ".###. #.... #.... ####. #...# #...# .###.",
    "7": "##### ....# ...#. ..#.. .#... .#... .#...",
    "8": ".###. #...# #...# .###. #...# #...# .###.",
    "9": ".###. #...# #...# .#### ....# ....# .###.",
    "A": ".###. #...# #...# ##### #...# #...# #...#",
    "B": "####. #...# #...# ####. #...# #...# ####.",
    "C": ".###. #...# #.... #.... #.... #...# .###.",
    "D": "####. #...# #...# #...# #...# #...# ####.",
    "E": "##### #.... #.... ####. #.... #.... #####",
    "F": "##### #.... #.... ####. #.... #.... #....",
    "G": ".###. #...# #.... #.### #...# #...# .####",
    "H": "#...# #...# #...# ##### #...# #...# #...#",
    "I": ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
    "J": "..### ...#. ...#. ...#. ...#. #..#. .##..",
    "K": "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
    "L": "#.... #.... #.... #.... #.... #.... #####",
    "M": "#...# ##.## #.#.# #.#.# #...# #...# #...#",
    "N": "#...# #...# ##..# #.#.# #..## #...# #...#",
    "O": ".###. #...# #...# #...# #...# #...# .###.",
    "P": "####. #...# #...# ####. #.... #.... #....",
    "Q": ".###. #...# #...# #...# #.#.# #..#. .##.#",
    "R": "####. #...# #...# ####. #.#.. #..#. #...#",
    "S": ".#### #.... #.... .###. ....# ....# ####.",
    "T": "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
    "U": "#...# #...# #...# #...# #...# #...# .###.",
    "V": "#...# #...# #...# #...# #...# .#.#. ..#..",
    "W": "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
    "X": "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
    "Y": "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
    "Z": "##### ....# ...#. ..#.. .#... #.... #####",
    ".": "..... ..... ..... ..... ..... .##.. .##..",
    ",": "..... ..... ..... ..... .##.. ..#.. .#...",
    ":": "..... .##.. .##.. ..... .##.. .##.. .....",
    ";": "..... .##.. .##.. ..... .##.. ..#.. .#...",
    "-": "..... ..... ..... ##### ..... ..... .....",
    "+": "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
    "=": "..... ..... ##### ..... ##### ..... .....",
    "_": "..... ..... ..... ..... ..... ..... #####",
    "/": "....# ....# ...#. ..#.. .#... #.... #....",
    "\\": "#.... #.... .#... ..#.. ...#. ....# ....#",
    "%": "##..# ##..# ...#. ..#.. .#... #..## #..##",
    "(": "...#. ..#.. .#... .#... .#... ..#.. ...#.",
    ")": ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
    "[": ".###. .#... .#... .#... .#... .#... .###.",
    "]": ".###. ...#. ...#. ...#. ...#. ...#. .###.",
    "<": "...#. ..#.. .#... #.... .#... ..#.. ...#.",
    ">": ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
    "!": "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
    "?": ".###. #...# ....# ...#. ..#.. ..... ..#..",
    "'": "..#.. ..#.. .#... ..... ..... ..... .....",
    '"': ".#.#. .#.#. ..... ..... ..... ..... .....",
    "*": "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
    "#": ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    "x": "..... ..... #...# .#.#. ..#.. .#.#. #...#",
}
_CHARS = list(_FONT)
_INDEX = {c: i for i, c in enumerate(_CHARS)}
_UNKNOWN = _INDEX["?"]


def glyph(ch: str) -> np.ndarray:
    """The 7x5 ink mask (bool) of a character as the overlay draws it."""
    rows = _FONT[_CHARS[char_code(ch)]].split()
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


def char_code(ch: str) -> int:
    """Atlas index of a character; lowercase letters map to capitals, unknown ones to '?'."""
    if ch in _INDEX:
        return _INDEX[ch]
    return _INDEX.get(ch.upper(), _UNKNOWN)


def font_atlas() -> np.ndarray:
    """All glyphs side by side: uint8 array (GLYPH_H, GLYPH_W * n), 255 = ink, row 0 = top."""
    return np.concatenate([glyph(c) for c in _CHARS], axis=1).astype(np.uint8) * 255


def render_text_cpu(lines: list[str], scale: int = 1) -> np.ndarray:
    """The overlay's ink mask for ``lines`` (bool, rows top-down), as the shader draws it; for tests."""
    cols = max((len(s) for s in lines), default=0)
    out = np.zeros((len(lines) * CELL_H, cols * CELL_W), dtype=bool)
    for r, line in enumerate(lines):
        for c, ch in enumerate(line):
            out[r * CELL_H + 1: r * CELL_H + 1 + GLYPH_H, c * CELL_W: c * CELL_W + GLYPH_W] = glyph(ch)
    return out.repeat(scale, 0).repeat(scale, 1)


# gl_FragCoord is relative to the framebuffer; `origin` is the top-left corner of the text box in
# framebuffer pixels (GL y-up), so rows count downward from it.
_FS = GLSL_VERSION + f"""
layout(binding = 0) uniform sampler2D atlas;
layout(binding = 1) uniform usampler2D text;
uniform ivec2 origin;
uniform int scale;
uniform ivec2 grid;      // columns, rows in use
out vec4 color;
void main() {{
    ivec2 p = ivec2(floor(gl_FragCoord.xy)) - ivec2(origin.x, 0);
    p.y = origin.y - 1 - p.y;
    p /= scale;
    ivec2 cell = p / ivec2({CELL_W}, {CELL_H});
    ivec2 in_cell = p - cell * ivec2({CELL_W}, {CELL_H}) - ivec2(0, 1);
    if (p.x < 0 || p.y < 0 || cell.x >= grid.x || cell.y >= grid.y) discard;
    float ink = 0.0;
    if (in_cell.x < {GLYPH_W} && in_cell.y >= 0 && in_cell.y < {GLYPH_H}) {{
        uint code = texelFetch(text, cell, 0).r;
        ink = texelFetch(atlas, ivec2(int(code) * {GLYPH_W} + in_cell.x, in_cell.y), 0).r;
    }}
    // White ink on a translucent black box, so the text reads on any picture.
    color = ink > 0.5 ? vec4(1.0) : vec4(0.0, 0.0, 0.0, 0.6);
}}
"""


class TextOverlay:
    """Draws up to ``rows`` x ``cols`` characters in the current framebuffer (top-left corner by default)."""

    def __init__(self, ctx: moderngl.Context, cols: int = 64, rows: int = 8, scale: int = 2, margin: int = 8):
        self.ctx = ctx
        self.cols, self.rows, self.scale, self.margin = cols, rows, scale, margin
        atlas = font_atlas()
        self._atlas = ctx.texture((atlas.shape[1], atlas.shape[0]), 1, np.ascontiguousarray(atlas).tobytes())
        self._atlas.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._codes = np.zeros((rows, cols), dtype=np.uint8)
        self._text = ctx.texture((cols, rows), 1, self._codes.tobytes(), dtype="u1")
        self._text.filter = (moderngl.NEAREST, moderngl.NEAREST)
        self._prog = ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=_FS)
        self._vao = ctx.vertex_array(self._prog, [])
        self._grid = (0, 0)
        self._lines: tuple[str, ...] = ()

    def set_text(self, lines: list[str]) -> None:
        lines = tuple(s[: self.cols] for s in lines[: self.rows])
        if lines == self._lines:
            return
        self._lines = lines
        self._codes.fill(_INDEX[" "])
        for r, line in enumerate(lines):
            for c, ch in enumerate(line):
                self._codes[r, c] = char_code(ch)
        self._text.write(self._codes.tobytes())
        self._grid = (max((len(s) for s in lines), default=0), len(lines))

    def text_size(self) -> tuple[int, int]:
        """(width, height) in pixels of the text box as drawn."""
        cols, rows = self._grid
        return cols * CELL_W * self.scale, rows * CELL_H * self.scale

    def draw(self, fb_height: int, origin: tuple[int, int] | None = None) -> None:
        """Blend the text over whatever is in the bound framebuffer (full-framebuffer viewport).

        ``origin``: the box's top-left corner in pixels from the framebuffer's top-left (default: the
        top-left corner, ``margin`` pixels in)."""
        if not self._lines:
            return
        x, y = origin if origin is not None else (self.margin, self.margin)
        self._prog["origin"].value = (int(x), fb_height - int(y))
        self._prog["scale"].value = self.scale
        self._prog["grid"].value = self._grid
        self._atlas.use(0)
        self._text.use(1)
        self.ctx.enable(moderngl.BLEND)
        self.ctx.blend_func = moderngl.SRC_ALPHA, moderngl.ONE_MINUS_SRC_ALPHA
        try:
            self._vao.render(moderngl.TRIANGLES, vertices=3)
        finally:
            self.ctx.disable(moderngl.BLEND)

    def release(self) -> None:
        for obj in (self._vao, self._prog, self._text, self._atlas):
            obj.release()
