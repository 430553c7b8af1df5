"""The built-in scaler: separable bicubic (Keys, a = -0.5, i.e. Catmull-Rom), clamp-to-edge.

Used for chroma -> luma alignment (mpv's cscale) and for the main scale to the
output size (mpv's scale/dscale). When downscaling, the kernel is widened by the
scale factor (antialiasing, like mpv's correct-downscaling and MATLAB imresize).
Both directions go through the ``Plane`` placement, so chroma location,
prescaler offsets and ``//!OFFSET`` shifts are compensated here.
"""

from __future__ import annotations

import moderngl

from .glsl import GLSL_VERSION
from .gltex import FullscreenProgram, Plane, TexturePool

CUBIC_A = -0.5

RESAMPLE_FS = GLSL_VERSION + """
layout(binding = 0) uniform sampler2D src;
uniform int axis;        // 0: along x, 1: along y
uniform float ratio;     // source texels per destination texel
uniform float shift;     // source coordinate (texel-centre units) of destination coordinate 0
uniform float support;   // kernel radius in source texels
uniform float kscale;    // kernel argument per source texel (1/ratio when downscaling)
out vec4 color;

float cubic(float x) {
    const float a = """ + repr(CUBIC_A) + """;
    x = abs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    return 0.0;
}

void main() {
    ivec2 d = ivec2(gl_FragCoord.xy);
    int n = textureSize(src, 0)[axis];
    float c = float(d[axis]) * ratio + shift;
    int lo = int(ceil(c - support));
    int hi = int(floor(c + support));
    vec4 acc = vec4(0.0);
    float wsum = 0.0;
    for (int i = lo; i <= hi; i++) {
        float w = cubic((float(i) - c) * kscale);
        ivec2 p = d;
        p[axis] = clamp(i, 0, n - 1);
        acc += w * texelFetch(src, p, 0);
        wsum += w;
    }
    color = acc / wsum;
}
"""


# Upscaling (ratio <= 1) always touches exactly 4 source texels whose Catmull-Rom
# weights sum to 1: a fixed, unrolled kernel is much cheaper than the general loop.
# ``upshade_cubic4(t)``: the weights of source texels floor(c)-1 .. floor(c)+2
# for a destination at source coordinate c, t = fract(c). The merge pass of the
# pipeline uses it too, to fold the vertical chroma pass into the YCbCr -> RGB one.
CUBIC4_GLSL = """
vec4 upshade_cubic4(float t) {
    const float a = """ + repr(CUBIC_A) + """;
    // Keys cubic at distances 1+t, t, 1-t, 2-t
    return vec4(
        ((a * (1.0 + t) - 5.0 * a) * (1.0 + t) + 8.0 * a) * (1.0 + t) - 4.0 * a,
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
        ((a + 2.0) * (1.0 - t) - (a + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0,
        ((a * (2.0 - t) - 5.0 * a) * (2.0 - t) + 8.0 * a) * (2.0 - t) - 4.0 * a);
}
"""

UPSAMPLE_FS = GLSL_VERSION + """
layout(binding = 0) uniform sampler2D src;
uniform int axis;
uniform float ratio;
uniform float shift;
out vec4 color;
""" + CUBIC4_GLSL + """
void main() {
    ivec2 d = ivec2(gl_FragCoord.xy);
    int n = textureSize(src, 0)[axis];
    float c = float(d[axis]) * ratio + shift;
    float base = floor(c);
    vec4 w = upshade_cubic4(c - base);
    int i0 = int(base) - 1;
    ivec2 p0 = d, p1 = d, p2 = d, p3 = d;
    p0[axis] = clamp(i0, 0, n - 1);
    p1[axis] = clamp(i0 + 1, 0, n - 1);
    p2[axis] = clamp(i0 + 2, 0, n - 1);
    p3[axis] = clamp(i0 + 3, 0, n - 1);
    color = w.x * texelFetch(src, p0, 0) + w.y * texelFetch(src, p1, 0)
          + w.z * texelFetch(src, p2, 0) + w.w * texelFetch(src, p3, 0);
}
"""


def axis_mapping(src_s: float, src_t: float, dst_s: float, dst_t: float) -> tuple[float, float]:
    """(ratio, shift): source coordinate in texel-centre units = d * ratio + shift for destination texel d."""
    ratio = src_s / dst_s
    # image x of destination texel centre d+0.5 is (d + 0.5 - dst_t) / dst_s
    offset = src_t - src_s * dst_t / dst_s
    return ratio, 0.5 * ratio + offset - 0.5


class Scaler:
    def __init__(self, ctx: moderngl.Context, pool: TexturePool):
        self.pool = pool
        self.program = FullscreenProgram(ctx, RESAMPLE_FS)
        self.upsample = FullscreenProgram(ctx, UPSAMPLE_FS)

    def _pass(self, src: moderngl.Texture, w: int, h: int, axis: int, ratio: float, shift: float,
              comps: int, dtype: str | None) -> moderngl.Texture:
        out = self.pool.acquire(w, h, comps, dtype)
        p = self.upsample if ratio <= 1.0 else self.program
        p.set("axis", axis)
        p.set("ratio", ratio)
        p.set("shift", shift)
        if p is self.program:
            p.set("support", 2.0 * ratio)
            p.set("kscale", 1.0 / ratio)
        src.use(0)
        p.draw(self.pool.fbo(out))
        return out

    @staticmethod
    def _target(target: Plane | tuple) -> tuple:
        if isinstance(target, Plane):
            return target.w, target.h, target.sx, target.sy, target.tx, target.ty
        return target

    def is_identity(self, plane: Plane, target: Plane | tuple) -> bool:
        """Whether resampling ``plane`` onto ``target`` would return it unchanged."""
        w, h, sx, sy, tx, ty = self._target(target)
        return plane.placed_like(Plane(plane.tex, w, h, plane.comps, sx, sy, tx, ty))

    def resample(self, plane: Plane, target: Plane | tuple, *, axes: str = "xy", dtype: str | None = None) -> Plane:
        """Resample ``plane`` onto the placement of ``target`` (a Plane, or (w, h, sx, sy, tx, ty)).

        ``axes="x"`` resamples only horizontally: the result keeps the plane's
        rows (height and vertical placement), for a caller that does the vertical
        taps itself. ``dtype`` is the texture format of the last pass (default:
        the pool's float format).
        """
        w, h, sx, sy, tx, ty = self._target(target)
        rx, shx = axis_mapping(plane.sx, plane.tx, sx, tx)
        ry, shy = axis_mapping(plane.sy, plane.ty, sy, ty)
        identity_x = plane.w == w and abs(rx - 1.0) < 1e-9 and abs(shx) < 1e-6
        identity_y = "y" not in axes or (plane.h == h and abs(ry - 1.0) < 1e-9 and abs(shy) < 1e-6)
        tex = plane.tex
        cur_w = plane.w
        if not identity_x:
            tex = self._pass(tex, w, plane.h, 0, rx, shx, plane.comps, None if not identity_y else dtype)
            cur_w = w
        if "y" not in axes:
            return Plane(tex, w, plane.h, plane.comps, sx, plane.sy, tx, plane.ty)
        if not identity_y:
            tex = self._pass(tex, cur_w, h, 1, ry, shy, plane.comps, dtype)
        return Plane(tex, w, h, plane.comps, sx, sy, tx, ty)

    def release(self) -> None:
        self.program.release()
        self.upsample.release()
