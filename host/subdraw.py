"""Blending subtitle pictures (host/subtitles.SubImage) over a picture on the GPU.

The same layer draws into the player's window (rows bottom-up) and into the
upscaled frame of ``upscale --burn-subs`` (a texture whose row 0 is the
picture's top). Pictures are premultiplied RGBA; each becomes a texture,
kept while it is shown, and one quad blended with (ONE, ONE_MINUS_SRC_ALPHA).
Bitmap subtitles are scaled from their canvas with linear filtering; text is
drawn 1:1 at the size libass rendered it.
"""

from __future__ import annotations

from pathlib import Path

import moderngl
import numpy as np

from .errors import UpshadeError
from .subtitles import Subtitles

_VS = """
#version 430
uniform vec4 dst;    // framebuffer pixels of texture corners (0,0) and (1,1): x0, y0, x1, y1
uniform vec2 fb;     // framebuffer size
out vec2 uv;
void main() {
    vec2 c = vec2(gl_VertexID & 1, gl_VertexID >> 1);
    uv = c;
    gl_Position = vec4(mix(dst.xy, dst.zw, c) / fb * 2.0 - 1.0, 0.0, 1.0);
}
"""

_FS = """
#version 430
layout(binding = 0) uniform sampler2D tex;
in vec2 uv;
out vec4 color;
void main() {
    color = texture(tex, uv);
}
"""


class ImageLayer:
    """Draws SubImages placed in a video rectangle into the bound framebuffer."""

    def __init__(self, ctx: moderngl.Context):
        self.ctx = ctx
        self._prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self._vao = ctx.vertex_array(self._prog, [])
        self._textures: dict[tuple, moderngl.Texture] = {}

    def _texture(self, img) -> moderngl.Texture:
        """The picture's texture, kept under its key while it is shown (a keyless one is made each time)."""
        tex = self._textures.get(img.key) if img.key else None
        if tex is None:
            rgba = np.ascontiguousarray(img.rgba)
            tex = self.ctx.texture((rgba.shape[1], rgba.shape[0]), 4, rgba.tobytes(), alignment=1)
            tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
            tex.repeat_x = tex.repeat_y = False
            self._textures[img.key or ("once", len(self._textures))] = tex
        return tex

    def draw(self, images, rect, fb_size: tuple[int, int], *, top_down: bool = False) -> None:
        """Blend ``images`` over ``rect`` (x, y, w, h: GL framebuffer pixels, y from the bottom; with
        ``top_down`` the framebuffer's row 0 is the picture's top, as in Renderer output textures)."""
        used = set()
        if images:
            fw, fh = fb_size
            self.ctx.viewport = (0, 0, fw, fh)
            self.ctx.scissor = None
            self.ctx.enable(moderngl.BLEND)
            self.ctx.blend_func = moderngl.ONE, moderngl.ONE_MINUS_SRC_ALPHA
            self._prog["fb"].value = (float(fw), float(fh))
            rx, ry, rw, rh = rect
            try:
                for img in images:
                    tex = self._texture(img)
                    if img.key:
                        used.add(img.key)
                    x0, x1 = rx + img.x, rx + img.x + img.w
                    if top_down:
                        y0, y1 = ry + img.y, ry + img.y + img.h
                    else:
                        y0, y1 = ry + rh - img.y, ry + rh - img.y - img.h
                    self._prog["dst"].value = (float(x0), float(y0), float(x1), float(y1))
                    tex.use(0)
                    self._vao.render(moderngl.TRIANGLE_STRIP, vertices=4)
            finally:
                self.ctx.disable(moderngl.BLEND)
        for key in [k for k in self._textures if k not in used]:
            self._textures.pop(key).release()

    def release(self) -> None:
        for tex in self._textures.values():
            tex.release()
        self._textures.clear()
        self._vao.release()
        self._prog.release()


def burn_file(track) -> Path | None:
    """The subtitle file a ``--burn-subs`` value names, checked that it is one; None for ``auto``, ``no``
    or a track number."""
    if track in (None, "auto") or str(track) == "no" or str(track).strip().lstrip("-").isdigit():
        return None
    if not Path(track).is_file():
        raise UpshadeError(f"--burn-subs {track}: no such subtitle file or track number")
    return Path(track)


class SubtitleBurner:
    """``upscale --burn-subs``: blends one subtitle track into each upscaled frame (a Renderer output
    texture, row 0 at the top) at the output resolution, with the player's renderers.

    ``track``: "auto" (as ``play`` chooses), a track number as ``--sid`` numbers them, or a subtitle
    file. A track that cannot be drawn is an error here, before any frame is encoded."""

    def __init__(self, ctx, path, info, track="auto", *, display_size=None):

        self.ctx = ctx
        external = ()
        sid = track
        file = burn_file(track)
        if file is not None:
            external, sid = (file,), "auto"   # a file: it becomes the (only external) track
        self.subtitles = Subtitles(path, info, external=external, auto_load=not external, sid=sid, strict=True,
                                   display_size=display_size, wait=None, option="--burn-subs")
        if self.subtitles.current is None:
            raise UpshadeError(f"--burn-subs: {Path(path).name} has no subtitle track to burn in")
        self.track = self.subtitles.current
        self.layer = ImageLayer(ctx)

    @property
    def stream_index(self) -> int | None:
        """The burned track's stream in the source (not copied to the output), None for a file."""
        return self.track.stream_index

    def burn(self, tex, t: float | None) -> bool:
        """Blend the subtitles at media time ``t`` into ``tex``; whether anything was drawn."""
        w, h = tex.size
        images = self.subtitles.images(t, (w, h))
        if not images:
            self.layer.draw([], (0, 0, w, h), (w, h))   # frees the textures of the last picture
            return False
        fbo = self.ctx.framebuffer(color_attachments=[tex])
        try:
            fbo.use()
            self.layer.draw(images, (0, 0, w, h), (w, h), top_down=True)
        finally:
            fbo.release()
        return True

    def release(self) -> None:
        self.layer.release()
        self.subtitles.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
