"""Drawing one screenful of ``upshade play``: video, compare halves, subtitles, overlay.

``Presenter.present(scene)`` is where a frame is drawn: the letterbox bars are
cleared, the frame is rendered through the shader chain at the size of the
video rectangle and copied 1:1 into it (turned for rotated video), in compare
mode the left part is drawn from a render with the network off and the parts
are labelled on screen, subtitles are blended on top at window resolution
(never through the network or the video scaler), then the text overlay, then
the buffer swap. ``write_screenshot`` writes the upscaled frame as a PNG.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import moderngl
import numpy as np

from .fileio import atomic_output
from .glsl import FULLSCREEN_VS, GLSL_VERSION
from .imageio import write_image
from .overlay import TextOverlay
from .subdraw import ImageLayer
from .window import Rect, collect_garbage

# Draws the pipeline output 1:1 into the video rectangle: texel rows run top-down (row 0 is the
# picture's top, as Renderer.read_rgb reads them) while window rows run bottom-up. ``rotation``
# (clockwise degrees) turns the picture for display; the texture is then rect-sized after turning.
_BLIT_FS = GLSL_VERSION + """
layout(binding = 0) uniform sampler2D src;
uniform ivec4 rect;      // x, y, w, h of the video rectangle in window pixels
uniform int rotation;
out vec4 color;
void main() {
    ivec2 d = ivec2(floor(gl_FragCoord.xy)) - rect.xy;
    d.y = rect.w - 1 - d.y;                      // (column, row) in display space, rows top-down
    ivec2 s;
    if (rotation == 90)       s = ivec2(d.y, rect.z - 1 - d.x);
    else if (rotation == 180) s = ivec2(rect.z - 1 - d.x, rect.w - 1 - d.y);
    else if (rotation == 270) s = ivec2(rect.w - 1 - d.y, d.x);
    else                      s = d;
    color = vec4(texelFetch(src, s, 0).rgb, 1.0);
}
"""

LABEL_MARGIN = 6      # px between a compare label and the divider / the top of the video
INFO_REFRESH = 0.25   # s between overlay text updates: every frame would only flicker the digits


@dataclass
class Scene:
    """What to draw: the player's state as the presenter needs it."""

    frame: object | None                      # host.frames.Frame on screen (None: nothing yet)
    render: Callable                          # render(frame, (w, h), enabled) -> texture
    rect: Rect                                # the video rectangle in the window
    rotation: int = 0
    network: bool = True
    compare: bool = False
    divider: float = 0.5                      # compare split, fraction of the rectangle's width
    labels: tuple[str, str] = ("bicubic", "network")
    subtitles: object | None = None           # host.subtitles.Subtitles
    info: Callable[[], list[str]] | None = None   # overlay lines (None: overlay hidden)
    force_info: bool = False                  # refresh the overlay text now
    osd: str | None = None                    # a short message (track changed...), below the overlay
    times: dict = field(default_factory=dict) # filled: "rendered" (perf_counter after the last render)


class Presenter:
    """Owns the GL objects that draw into the window: blit program, subtitle layer, text overlays."""

    def __init__(self, window):
        self.window = window
        self.ctx: moderngl.Context = window.ctx
        self._blit = self._vao = self._overlay = self._labels = self._subs = self._osd = None
        try:
            self._blit = self.ctx.program(vertex_shader=FULLSCREEN_VS, fragment_shader=_BLIT_FS)
            self._vao = self.ctx.vertex_array(self._blit, [])
            self._overlay = TextOverlay(self.ctx, rows=10)
            self._labels = (TextOverlay(self.ctx, cols=32, rows=1), TextOverlay(self.ctx, cols=32, rows=1))
            self._subs = ImageLayer(self.ctx)
            self._osd = TextOverlay(self.ctx, cols=60, rows=1)
        except BaseException:
            self.release()
            raise
        self._info_at = -1.0

    # --- pieces --------------------------------------------------------------------------------
    def _blit_into(self, tex, rect: Rect, rotation: int, scissor=None) -> None:
        ctx = self.ctx
        ctx.screen.use()
        ctx.viewport = rect.viewport
        ctx.scissor = scissor
        tex.use(0)
        self._blit["rect"].value = rect.viewport
        self._blit["rotation"].value = rotation
        self._vao.render(moderngl.TRIANGLES, vertices=3)
        ctx.scissor = None

    def _draw_labels(self, scene: Scene, split: int, fb_h: int) -> None:
        """"bicubic" left of the divider, the model's name right of it, at the top of the video; each in
        the largest of two sizes that fits its side (a side too narrow for it goes unlabelled)."""
        rect = scene.rect
        top = fb_h - (rect.y + rect.h) + LABEL_MARGIN       # rows from the window's top
        if scene.info is not None:   # below the overlay's box, not under it
            top = max(top, self._overlay.text_size()[1] + 2 * self._overlay.margin)
        self.ctx.viewport = (0, 0, *self.window.framebuffer_size())
        room = (split - rect.x - 2 * LABEL_MARGIN, rect.x + rect.w - split - 2 * LABEL_MARGIN)
        for side, (overlay, text) in enumerate(zip(self._labels, scene.labels)):
            overlay.set_text([text])
            for scale in (2, 1):
                overlay.scale = scale
                w, h = overlay.text_size()
                if w <= room[side] and h + 2 * LABEL_MARGIN <= rect.h:
                    x = split - LABEL_MARGIN - w if side == 0 else split + LABEL_MARGIN
                    overlay.draw(fb_h, origin=(x, top))
                    break

    # --- the frame -----------------------------------------------------------------------------
    def present(self, scene: Scene, capture: bool = False) -> np.ndarray | None:
        """Draw ``scene`` into the window and swap; with ``capture``, return the window's pixels as
        drawn (HxWx3 uint8, rows top-down), read back before the swap."""
        self.window.make_current()
        ctx = self.ctx
        fw, fh = self.window.framebuffer_size()
        ctx.screen.use()
        ctx.scissor = None
        ctx.viewport = (0, 0, fw, fh)
        ctx.clear(0.0, 0.0, 0.0, 1.0)  # the letterbox bars
        rect = scene.rect
        frame = scene.frame
        scene.times["rendered"] = time.perf_counter()
        if frame is not None and rect.w > 0 and rect.h > 0:
            size = (rect.h, rect.w) if scene.rotation in (90, 270) else (rect.w, rect.h)
            if scene.compare:
                split = rect.x + int(round(scene.divider * rect.w))
                tex = scene.render(frame, size, False)
                self._blit_into(tex, rect, scene.rotation, (rect.x, rect.y, split - rect.x, rect.h))
                tex = scene.render(frame, size, True)
                scene.times["rendered"] = time.perf_counter()
                self._blit_into(tex, rect, scene.rotation, (split, rect.y, rect.x + rect.w - split, rect.h))
                ctx.screen.use()
                line = (max(rect.x, split - 1), rect.y, 2, rect.h)
                ctx.screen.clear(1.0, 1.0, 1.0, 1.0, viewport=line)
            else:
                tex = scene.render(frame, size, scene.network)
                scene.times["rendered"] = time.perf_counter()
                self._blit_into(tex, rect, scene.rotation)
            if scene.subtitles is not None:
                ctx.screen.use()
                images = scene.subtitles.images(frame.pts, (rect.w, rect.h))
                self._subs.draw(images, rect.viewport, (fw, fh))
            if scene.compare:
                self._draw_labels(scene, split, fh)
        if scene.info is not None:
            ctx.screen.use()
            ctx.viewport = (0, 0, fw, fh)
            now = time.monotonic()
            if now - self._info_at >= INFO_REFRESH or scene.force_info:
                self._info_at = now
                self._overlay.set_text(scene.info())
            self._overlay.draw(fh)
        if scene.osd:
            ctx.screen.use()
            ctx.viewport = (0, 0, fw, fh)
            self._osd.set_text([scene.osd])
            below = self._overlay.text_size()[1] + 2 * self._overlay.margin if scene.info is not None else 0
            self._osd.draw(fh, origin=(self._osd.margin, self._osd.margin + below))
        image = None
        if capture:  # tests and tools only: a synchronous readback of the back buffer
            t = time.perf_counter()
            raw = ctx.screen.read(viewport=(0, 0, fw, fh), components=3, alignment=1)
            image = np.frombuffer(raw, np.uint8).reshape(fh, fw, 3)[::-1].copy()
            scene.times["capture"] = time.perf_counter() - t
        self.window.swap()
        collect_garbage(ctx)  # ctx.gc(): delete GL objects Python dropped since the last frame, context current
        return image

    def release(self) -> None:
        for obj in (self._subs, self._overlay, self._osd, *(self._labels or ()), self._vao, self._blit):
            if obj is not None:
                obj.release()
        self._subs = self._overlay = self._osd = self._labels = self._vao = self._blit = None


def write_screenshot(renderer, frame, *, display_size, rotation: int, network: bool, label: str,
                     video: Path, folder: Path) -> Path:
    """Write ``frame`` upscaled x2 of the display size (turned and with square pixels, like the
    picture in the window; the pipeline output, not the window) as a PNG in ``folder``."""
    dw, dh = display_size
    size = (2 * dh, 2 * dw) if rotation in (90, 270) else (2 * dw, 2 * dh)
    tex = renderer.render(frame, size, frame_index=frame.index, enabled=network)
    rgb = renderer.read_rgb(tex, np.uint8)[..., :3]
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, -rotation // 90))
    pts = frame.pts or 0.0
    stem = f"{video.stem}-{int(pts // 60):02d}m{pts % 60:06.3f}s-{label}"
    out = folder / f"{stem}.png"
    n = 1
    while out.exists():
        out = folder / f"{stem}-{n}.png"
        n += 1
    with atomic_output(out, [video]) as tmp:
        write_image(tmp, rgb)
    return out
