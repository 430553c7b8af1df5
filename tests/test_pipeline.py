"""The GL hook runtime (host/pipeline.py) against numpy references, on llvmpipe."""

from __future__ import annotations

import numpy as np
import pytest

from upshade.host.colorspace import rgb_to_ycbcr, ycbcr_to_rgb
from upshade.host.errors import ShaderError, UpshadeError
from upshade.host.frames import Frame, FrameFormat, PlaneFormat
from upshade.host.hookparse import parse_shader
from upshade.host.pipeline import Renderer

pytestmark = pytest.mark.gl


# -- numpy references ---------------------------------------------------------


def cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def resize_matrix(n_in: int, n_out: int, shift: float = 0.0) -> np.ndarray:
    """Rows: output samples; bicubic a=-0.5, clamp-to-edge, widened when downscaling. ``shift`` in source texels."""
    ratio = n_in / n_out
    widen = max(1.0, ratio)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        c = (i + 0.5) * ratio - 0.5 + shift
        for k in range(int(np.ceil(c - 2 * widen)), int(np.floor(c + 2 * widen)) + 1):
            m[i, min(max(k, 0), n_in - 1)] += cubic((k - c) / widen)
    return m / m.sum(axis=1, keepdims=True)


def bicubic(img: np.ndarray, w: int, h: int, shift=(0.0, 0.0)) -> np.ndarray:
    """img: HxWxC float."""
    mx = resize_matrix(img.shape[1], w, shift[0])
    my = resize_matrix(img.shape[0], h, shift[1])
    return np.einsum("yh,hwc,xw->yxc", my, img, mx)


def bilinear2x(plane: np.ndarray) -> np.ndarray:
    """What GL linear filtering gives when a 2x-size pass samples a texture at proportional positions."""
    h, w = plane.shape

    def axis(n):
        m = np.zeros((2 * n, n))
        for i in range(2 * n):
            c = (i + 0.5) / 2 - 0.5
            k = int(np.floor(c))
            f = c - k
            m[i, min(max(k, 0), n - 1)] += 1 - f
            m[i, min(max(k + 1, 0), n - 1)] += f
        return m

    return axis(h) @ plane @ axis(w).T


def rgb_frame(img: np.ndarray) -> Frame:
    h, w, c = img.shape
    bps = img.dtype.itemsize
    fmt = FrameFormat(kind="rgb", planes=(PlaneFormat("RGB" if c == 3 else "RGBA", w, h, c, bps),),
                      bit_depth=8 * bps, matrix="bt601", range="full", has_alpha=c == 4)
    return Frame(fmt, [img.reshape(h, w * c)])


def shader(tmp_path, text: str, name="test.glsl"):
    p = tmp_path / name
    p.write_text(text)
    return parse_shader(text, str(p))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(1)
    # Smooth-ish content plus noise: exercises overshoot and clamping of the cubic.
    y, x = np.mgrid[0:24, 0:32]
    base = np.stack([x / 31, y / 23, (x + y) / 54], axis=-1)
    img = np.clip(base + rng.normal(0, 0.2, base.shape), 0, 1)
    return np.rint(img * 255).astype(np.uint8)


def render(ctx, shaders, frame, size, **kw):
    params = kw.pop("params", None)
    fbo = kw.pop("fbo_format", "auto")
    with Renderer(ctx, shaders, params=params, fbo_format=fbo) as r:
        tex = r.render(frame, size, **kw)
        return r.read_rgb(tex, np.float32), dict(r.last_sizes)


def to_u8(a):
    return np.rint(np.clip(a, 0, 1) * 255).astype(np.int32)


# -- no shader ------------------------------------------------------------------


@pytest.mark.parametrize("fbo", ["rgba16f", "rgba32f"])
@pytest.mark.parametrize("size", [(64, 48), (45, 31), (20, 15)])
def test_no_shader_is_bicubic(gl_ctx, image, fbo, size):
    out, _ = render(gl_ctx, [], rgb_frame(image), size, fbo_format=fbo)
    ref = bicubic(image / 255.0, *size)
    assert out.shape == (size[1], size[0], 3)
    assert np.abs(to_u8(out) - to_u8(ref)).max() <= 1


def test_rgba_alpha_is_scaled_and_kept(gl_ctx, image):
    alpha = np.linspace(0, 255, image.shape[1]).astype(np.uint8)[None, :].repeat(image.shape[0], 0)
    rgba = np.dstack([image, alpha])
    out, _ = render(gl_ctx, [], rgb_frame(rgba), (64, 48))
    assert out.shape == (48, 64, 4)
    ref = bicubic(rgba / 255.0, 64, 48)
    assert np.abs(to_u8(out) - to_u8(ref)).max() <= 1


def test_16bit_rgb(gl_ctx, image):
    img16 = image.astype(np.uint16) * 257 + 100
    with Renderer(gl_ctx) as r:
        out = r.read_rgb(r.render(rgb_frame(img16), (64, 48)), np.uint16)
    ref = bicubic(img16 / 65535.0, 64, 48)
    assert out.dtype == np.uint16
    assert np.abs(out.astype(np.float64) - np.clip(ref, 0, 1) * 65535).max() < 65535 * 2e-3


# -- hooks ------------------------------------------------------------------------

INVERT_LUMA = """//!HOOK LUMA
//!BIND HOOKED
//!DESC invert
vec4 hook() {
    return vec4(1.0 - LUMA_tex(LUMA_pos).x, 0.0, 0.0, 0.0);
}
"""


def ycbcr_of(img01):
    m, off = rgb_to_ycbcr("bt601", "full", 8)
    return img01 @ m.T + off


def rgb_of(ycc):
    m, off = ycbcr_to_rgb("bt601", "full", 8)
    return ycc @ m.T + off


def test_luma_invert(gl_ctx, tmp_path, image):
    out, sizes = render(gl_ctx, [shader(tmp_path, INVERT_LUMA)], rgb_frame(image), (64, 48))
    ycc = ycbcr_of(image / 255.0)
    ycc[..., 0] = 1 - ycc[..., 0]
    ref = bicubic(rgb_of(ycc), 64, 48)
    assert np.abs(to_u8(out) - to_u8(ref)).max() <= 1
    assert sizes["LUMA"] == (32, 24)


def test_disabled_bypasses_hooks(gl_ctx, tmp_path, image):
    out, _ = render(gl_ctx, [shader(tmp_path, INVERT_LUMA)], rgb_frame(image), (64, 48), enabled=False)
    assert np.abs(to_u8(out) - to_u8(bicubic(image / 255.0, 64, 48))).max() <= 1


PRESCALER = """//!HOOK LUMA
//!BIND HOOKED
//!SAVE HALF
//!COMPONENTS 1
vec4 hook() { return HOOKED_texOff(0) * 0.5; }

//!HOOK LUMA
//!BIND HOOKED
//!BIND HALF
//!WIDTH HALF.w 2 *
//!HEIGHT HALF.h 2 *
//!COMPONENTS 1
vec4 hook() { return HALF_tex(HALF_pos) * 2.0; }

//!HOOK MAIN
//!BIND HOOKED
//!BIND LUMA
//!SAVE SEEN
//!WIDTH LUMA.w
//!HEIGHT LUMA.h
vec4 hook() { return HOOKED_tex(HOOKED_pos); }
"""


def test_prescaler_chain_runs_rest_at_doubled_size(gl_ctx, tmp_path, image):
    out, sizes = render(gl_ctx, [shader(tmp_path, PRESCALER)], rgb_frame(image), (64, 48))
    assert sizes["HALF"] == (32, 24)
    assert sizes["LUMA"] == (64, 48)
    assert sizes["NATIVE"] == (64, 48)
    assert sizes["MAIN"] == (64, 48)
    assert sizes["SEEN"] == (64, 48)
    ycc = ycbcr_of(image / 255.0)
    y2 = bilinear2x(ycc[..., 0])
    c2 = bicubic(ycc[..., 1:], 64, 48)
    ref = rgb_of(np.dstack([y2, c2]))
    assert np.abs(to_u8(out) - to_u8(ref)).max() <= 1
    # and it is not just the plain bicubic result
    assert np.abs(to_u8(out) - to_u8(bicubic(image / 255.0, 64, 48))).max() > 3


COMPUTE_INVERT = """//!HOOK LUMA
//!BIND HOOKED
//!COMPUTE 16 8 8 8
//!DESC compute invert, two pixels per thread through shared memory
shared float tile[8][16];
void hook() {
    ivec2 base = ivec2(gl_WorkGroupID) * ivec2(16, 8);
    ivec2 l = ivec2(gl_LocalInvocationID);
    for (int k = 0; k < 2; k++) {
        ivec2 p = base + ivec2(l.x + 8 * k, l.y);
        tile[l.y][l.x + 8 * k] = HOOKED_tex((vec2(p) + 0.5) * HOOKED_pt).x;
    }
    barrier();
    for (int k = 0; k < 2; k++) {
        // read the neighbour's value: proves the shared array is shared
        int x = l.x + 8 * k;
        ivec2 p = base + ivec2(x, l.y);
        imageStore(out_image, p, vec4(1.0 - tile[l.y][x], 0.0, 0.0, 1.0));
    }
}
"""


def test_compute_hook_equals_fragment(gl_ctx, tmp_path, image):
    frame = rgb_frame(image)
    a, _ = render(gl_ctx, [shader(tmp_path, COMPUTE_INVERT)], frame, (64, 48))
    b, _ = render(gl_ctx, [shader(tmp_path, INVERT_LUMA, "b.glsl")], frame, (64, 48))
    assert np.abs(a - b).max() < 1e-5


LUT = """//!TEXTURE LUT
//!SIZE 2 2
//!FORMAT r32f
//!FILTER NEAREST
0000803e 0000403f 0000003f 0000803f

//!HOOK MAIN
//!BIND HOOKED
//!BIND LUT
vec4 hook() {
    return vec4(texture(LUT, vec2(0.25, 0.25)).x, LUT_tex(vec2(0.75, 0.25)).x, texture(LUT, vec2(0.25, 0.75)).x, 1.0);
}
"""


def test_texture_lut(gl_ctx, tmp_path, image):
    out, _ = render(gl_ctx, [shader(tmp_path, LUT)], rgb_frame(image), (40, 30))
    assert np.allclose(out, [0.25, 0.75, 0.5], atol=1e-3)


def test_3d_texture_linear(gl_ctx, tmp_path, image):
    data = np.array([0.0, 1.0] * 4, dtype=np.float32).tobytes().hex()
    text = f"""//!TEXTURE CUBE
//!SIZE 2 2 2
//!FORMAT r32f
//!FILTER LINEAR
{data}

//!HOOK MAIN
//!BIND HOOKED
//!BIND CUBE
vec4 hook() {{ return vec4(texture(CUBE, vec3(0.5)).x, texture(CUBE, vec3(0.75, 0.5, 0.5)).x, 0.0, 1.0); }}
"""
    out, _ = render(gl_ctx, [shader(tmp_path, text)], rgb_frame(image), (40, 30))
    assert np.allclose(out[..., 0], 0.5, atol=1e-3) and np.allclose(out[..., 1], 1.0, atol=1e-3)


SHIFT = """//!HOOK LUMA
//!BIND HOOKED
//!COMPONENTS 1
{offset}
vec4 hook() {{ return HOOKED_texOff(vec2(-1.0, 0.0)); }}
"""


def test_offset_is_compensated(gl_ctx, tmp_path, image):
    frame = rgb_frame(image)
    plain, _ = render(gl_ctx, [], frame, (64, 48))
    comp, _ = render(gl_ctx, [shader(tmp_path, SHIFT.format(offset="//!OFFSET 1 0"))], frame, (64, 48))
    raw, _ = render(gl_ctx, [shader(tmp_path, SHIFT.format(offset=""), "raw.glsl")], frame, (64, 48))
    inner = (slice(None), slice(8, -8))
    assert np.abs(comp[inner] - plain[inner]).max() < 2e-3
    assert np.abs(raw[inner] - plain[inner]).max() > 0.05  # without OFFSET the picture is shifted


def test_offset_align(gl_ctx, tmp_path, image):
    text = SHIFT.format(offset="//!OFFSET 1 0") + """
//!HOOK LUMA
//!BIND HOOKED
//!OFFSET ALIGN
//!COMPONENTS 1
vec4 hook() { return HOOKED_tex(HOOKED_pos); }
"""
    frame = rgb_frame(image)
    plain, _ = render(gl_ctx, [], frame, (64, 48))
    aligned, _ = render(gl_ctx, [shader(tmp_path, text)], frame, (64, 48))
    inner = (slice(None), slice(8, -8))
    assert np.abs(aligned[inner] - plain[inner]).max() < 2e-3


PARAMS = """//!PARAM gain
//!TYPE float
//!MINIMUM 0.0
1.0

//!PARAM bias
//!TYPE CONSTANT float
0.0

//!PARAM zero_green
//!TYPE DEFINE
0

//!HOOK MAIN
//!BIND HOOKED
vec4 hook() {
    vec4 c = HOOKED_tex(HOOKED_pos) * gain + bias;
#if zero_green
    c.y = 0.0;
#endif
    return c;
}
"""


def test_params_and_overrides(gl_ctx, tmp_path, image):
    sf = shader(tmp_path, PARAMS)
    frame = rgb_frame(image)
    base, _ = render(gl_ctx, [sf], frame, (32, 24))
    assert np.abs(base - image / 255.0).max() < 2e-3
    out, _ = render(gl_ctx, [sf], frame, (32, 24), params={"gain": "0.5", "bias": "0.25", "zero_green": "1"})
    exp = image / 255.0 * 0.5 + 0.25
    exp[..., 1] = 0
    assert np.abs(out - exp).max() < 2e-3


WHEN = """//!HOOK MAIN
//!BIND HOOKED
//!WHEN OUTPUT.w MAIN.w 1.5 * >
vec4 hook() { return vec4(0.0, 0.0, 0.0, 1.0); }

//!HOOK LUMA
//!BIND HOOKED
//!BIND LATER
vec4 hook() { return vec4(1.0); }

//!HOOK MAIN
//!BIND HOOKED
//!SAVE LATER
vec4 hook() { return HOOKED_tex(HOOKED_pos); }
"""


def test_when_and_missing_bind_skip(gl_ctx, tmp_path, image):
    sf = shader(tmp_path, WHEN)
    frame = rgb_frame(image)
    big, _ = render(gl_ctx, [sf], frame, (64, 48))
    assert np.abs(big).max() < 1e-3  # 2x: the WHEN pass ran
    small, sizes = render(gl_ctx, [sf], frame, (40, 30))  # 1.25x: skipped; LATER pass skipped on LUMA
    assert "LATER" in sizes
    ref = bicubic(image / 255.0, 40, 30)
    assert np.abs(to_u8(small) - to_u8(ref)).max() <= 1


def test_compile_error_maps_to_file_line(gl_ctx, tmp_path, image):
    text = "// header\n//!HOOK MAIN\n//!BIND HOOKED\nvec4 hook() {\n    vec4 c = HOOKED_tex(HOOKED_pos);\n    return c + undefined_thing;\n}\n"
    sf = shader(tmp_path, text, "bad.glsl")
    with Renderer(gl_ctx, [sf]) as r:
        with pytest.raises(ShaderError) as ei:
            r.render(rgb_frame(image), (40, 30))
    msg = str(ei.value)
    assert msg.startswith(f"{tmp_path / 'bad.glsl'}:6: GLSL compile error:")
    assert "undefined_thing" in msg


def test_precompile_reports_errors_before_rendering(gl_ctx, tmp_path):
    good = shader(tmp_path, INVERT_LUMA, "good.glsl")
    bad = shader(tmp_path, "//!HOOK OUTPUT\n//!BIND HOOKED\n//!WHEN 0\nvec4 hook() {\n    return oops;\n}\n", "never.glsl")
    with Renderer(gl_ctx, [good, bad]) as r:
        with pytest.raises(ShaderError, match=r"never.glsl:5: GLSL compile error"):
            r.precompile()


def test_fixed_size_stage_refuses_resize(gl_ctx, tmp_path, image):
    text = "//!HOOK OUTPUT\n//!BIND HOOKED\n//!WIDTH HOOKED.w 2 *\nvec4 hook() { return HOOKED_tex(HOOKED_pos); }\n"
    with Renderer(gl_ctx, [shader(tmp_path, text)]) as r:
        with pytest.raises(ShaderError, match=r"test.glsl:1: a pass hooking OUTPUT may not change its size"):
            r.render(rgb_frame(image), (40, 30))


def test_1d_texture_and_mirror_border(gl_ctx, tmp_path, image):
    ramp = np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32).tobytes().hex()
    text = f"""//!TEXTURE RAMP
//!SIZE 4
//!FORMAT r32f
//!FILTER LINEAR
{ramp}

//!TEXTURE M
//!SIZE 2 1
//!FORMAT r32f
//!BORDER MIRROR
{np.array([0.0, 1.0], dtype=np.float32).tobytes().hex()}

//!HOOK MAIN
//!BIND HOOKED
//!BIND RAMP
//!BIND M
vec4 hook() {{
    // 1D: linear between texels 1 and 2; MIRROR: x = 1.25 reflects to 0.75 (texel 1)
    return vec4(texture(RAMP, 0.5).x, texelFetch(RAMP, 3, 0).x, texture(M, vec2(1.25, 0.5)).x, 1.0);
}}
"""
    out, _ = render(gl_ctx, [shader(tmp_path, text)], rgb_frame(image), (8, 6))
    assert np.allclose(out, [0.375, 1.0, 1.0], atol=1e-4)


def test_negative_values_survive_and_render_luma(gl_ctx, tmp_path):
    text = "//!HOOK LUMA\n//!BIND HOOKED\nvec4 hook() { return HOOKED_tex(HOOKED_pos) * 2.0 - 0.75; }\n"
    y = np.linspace(-0.5, 1.5, 7 * 5, dtype=np.float32).reshape(5, 7)
    with Renderer(gl_ctx, [shader(tmp_path, text)], fbo_format="rgba32f") as r:
        out = r.render_luma(y)
    assert out.dtype == np.float32 and out.shape == (5, 7)
    np.testing.assert_allclose(out, y * 2 - 0.75, atol=1e-6)
    with Renderer(gl_ctx, [shader(tmp_path, PRESCALER.split("//!HOOK MAIN")[0])], fbo_format="rgba32f") as r:
        out = r.render_luma(y)
    np.testing.assert_allclose(out, bilinear2x(y), atol=1e-5)


# -- YCbCr inputs ----------------------------------------------------------------

PATCHES = np.array([[200, 30, 40], [20, 180, 60], [40, 60, 220], [230, 230, 230]], dtype=np.float64)


def patch_image(w=64, h=16):
    img = np.zeros((h, w, 3))
    for i, c in enumerate(PATCHES):
        img[:, i * w // 4:(i + 1) * w // 4] = c
    return img / 255.0


def yuv_planes(img01, matrix="bt709", bits=8, sub=(2, 2)):
    m, off = rgb_to_ycbcr(matrix, "limited", bits)
    ycc = img01 @ m.T + off
    peak = 2**bits - 1
    h, w, _ = img01.shape
    y = np.rint(ycc[..., 0] * peak)
    c = ycc[..., 1:].reshape(h // sub[1], sub[1], w // sub[0], sub[0], 2).mean(axis=(1, 3))
    c = np.rint(c * peak)
    dt = np.uint8 if bits == 8 else np.uint16
    return y.astype(dt), c[..., 0].astype(dt), c[..., 1].astype(dt)


def yuv_frame(y, u, v, bits=8, pad=0, nv12=False, matrix="bt709", loc="center"):
    h, w = y.shape
    ch, cw = u.shape
    bps = 1 if bits == 8 else 2

    def padded(a, fill):
        if not pad:
            return a
        out = np.full((a.shape[0], a.shape[1] + pad), fill, dtype=a.dtype)
        out[:, : a.shape[1]] = a
        return out

    big = 255 if bits == 8 else 65535
    if nv12:
        uv = np.stack([u, v], axis=-1).reshape(ch, cw * 2)
        planes = [padded(y, big), padded(uv, big)]
        pf = (PlaneFormat("Y", w, h, 1, bps), PlaneFormat("UV", cw, ch, 2, bps))
    else:
        planes = [padded(y, big), padded(u, big), padded(v, big)]
        pf = (PlaneFormat("Y", w, h, 1, bps), PlaneFormat("U", cw, ch, 1, bps), PlaneFormat("V", cw, ch, 1, bps))
    fmt = FrameFormat(kind="yuv", planes=pf, bit_depth=bits, matrix=matrix, range="limited", chroma_location=loc)
    return Frame(fmt, planes)


def patch_interiors(out, w=32):
    # chroma is 4:2:0 and bicubic-upsampled: stay 3 chroma samples away from patch edges
    return [out[4:-4, i * w // 4 + 6:(i + 1) * w // 4 - 6].reshape(-1, out.shape[-1]) for i in range(4)]


@pytest.mark.parametrize("variant", ["yuv420p", "padded", "nv12", "10bit", "10bit-padded-nv12", "left", "bt601"])
def test_yuv420_colour_patches(gl_ctx, variant):
    bits = 10 if variant.startswith("10bit") else 8
    matrix = "bt601" if variant == "bt601" else "bt709"
    y, u, v = yuv_planes(patch_image(), matrix=matrix, bits=bits)
    frame = yuv_frame(y, u, v, bits=bits, pad=13 if "padded" in variant else 0, nv12="nv12" in variant,
                      matrix=matrix, loc="left" if variant == "left" else "center")
    with Renderer(gl_ctx) as r:
        out = r.read_rgb(r.render(frame, (64, 16)), np.float32)
    for got, want in zip(patch_interiors(out, 64), PATCHES / 255.0):
        assert np.abs(got - want).max() < 3 / 255, variant


@pytest.mark.parametrize("sub", [(2, 1), (1, 1)])
def test_yuv422_444_patches(gl_ctx, sub):
    y, u, v = yuv_planes(patch_image(), sub=sub)
    with Renderer(gl_ctx) as r:
        out = r.read_rgb(r.render(yuv_frame(y, u, v), (64, 16)), np.float32)
    for got, want in zip(patch_interiors(out, 64), PATCHES / 255.0):
        assert np.abs(got - want).max() < 3 / 255


def test_odd_sized_420(gl_ctx):
    """33x17 luma with 17x9 chroma (FFmpeg rounds chroma sizes up)."""
    img = np.zeros((17, 33, 3))
    img[:] = PATCHES[0] / 255.0
    m, off = rgb_to_ycbcr("bt709", "limited", 8)
    ycc = img @ m.T + off
    y = np.rint(ycc[..., 0] * 255).astype(np.uint8)
    u = np.full((9, 17), np.rint(ycc[0, 0, 1] * 255), np.uint8)
    v = np.full((9, 17), np.rint(ycc[0, 0, 2] * 255), np.uint8)
    with Renderer(gl_ctx) as r:
        out = r.read_rgb(r.render(yuv_frame(y, u, v), (66, 34)), np.float32)
    assert out.shape == (34, 66, 3)
    assert np.abs(out - PATCHES[0] / 255.0).max() < 3 / 255


def test_padding_is_ignored(gl_ctx):
    rng = np.random.default_rng(3)
    y = rng.integers(16, 236, (16, 24), dtype=np.uint8)
    u = rng.integers(16, 241, (8, 12), dtype=np.uint8)
    v = rng.integers(16, 241, (8, 12), dtype=np.uint8)
    with Renderer(gl_ctx) as r:
        a = r.read_rgb(r.render(yuv_frame(y, u, v), (48, 32)))
        b = r.read_rgb(r.render(yuv_frame(y, u, v, pad=40), (48, 32)))
    assert np.array_equal(a, b)


def test_gray_frame(gl_ctx):
    g = np.arange(0, 240, 10, dtype=np.uint8).reshape(4, 6)
    fmt = FrameFormat(kind="gray", planes=(PlaneFormat("Y", 6, 4, 1, 1),), matrix="bt601", range="full")
    with Renderer(gl_ctx) as r:
        out = r.read_rgb(r.render(Frame(fmt, [g]), (6, 4)), np.float32)
    assert out.shape == (4, 6, 3)
    assert np.abs(out - (g / 255.0)[..., None]).max() < 1e-3


# -- resources -----------------------------------------------------------------


def test_no_per_frame_allocation_or_compilation(gl_ctx, tmp_path, image):
    frame = rgb_frame(image)
    with Renderer(gl_ctx, [shader(tmp_path, PRESCALER)]) as r:
        r.render(frame, (64, 48))
        allocs, programs = r.pool.allocations, len(r.programs.compiled)
        for i in range(3):
            r.render(frame, (64, 48), frame_index=i + 1)
        assert r.pool.allocations == allocs
        assert len(r.programs.compiled) == programs


def test_release_is_idempotent_and_final(gl_ctx, image):
    r = Renderer(gl_ctx)
    r.render(rgb_frame(image), (40, 30))
    r.release()
    r.release()
    with pytest.raises(UpshadeError):
        r.render(rgb_frame(image), (40, 30))


@pytest.mark.parametrize("loc,shift", [("center", (0.0, 0.0)), ("left", (0.25, 0.0)), ("topleft", (0.25, 0.25))])
def test_chroma_location(gl_ctx, loc, shift):
    """Chroma is upsampled onto the luma grid with the chroma-location shift (in chroma texels)."""
    rng = np.random.default_rng(7)
    h, w = 16, 24
    y = np.full((h, w), 128, np.uint8)
    u = rng.integers(60, 200, (h // 2, w // 2), dtype=np.uint8)
    v = rng.integers(60, 200, (h // 2, w // 2), dtype=np.uint8)
    pf = (PlaneFormat("Y", w, h, 1, 1), PlaneFormat("U", w // 2, h // 2, 1, 1), PlaneFormat("V", w // 2, h // 2, 1, 1))
    fmt = FrameFormat(kind="yuv", planes=pf, matrix="bt601", range="full", chroma_location=loc)
    with Renderer(gl_ctx, fbo_format="rgba32f") as r:
        out = r.read_rgb(r.render(Frame(fmt, [y, u, v]), (w, h)), np.float32)
    c = np.dstack([u, v]) / 255.0
    cs = bicubic(c, w, h, shift=shift)
    ref = rgb_of(np.dstack([np.full((h, w), 128 / 255.0), cs]))
    assert np.abs(out - ref).max() < 1e-4
    if loc != "center":
        centred = rgb_of(np.dstack([np.full((h, w), 128 / 255.0), bicubic(c, w, h)]))
        assert np.abs(out - centred).max() > 0.02


BUFFERS = """//!BUFFER tint
//!VAR vec4 colour
//!VAR float scale[2]
0000803f 0000003f 0000803e 00000000
0000803f 00000000 00000000 00000000
00000040 00000000 00000000 00000000

//!BUFFER counter
//!VAR uint hits
//!STORAGE

//!HOOK MAIN
//!BIND HOOKED
//!BIND tint
//!BIND counter
vec4 hook() {
    atomicAdd(hits, 1u);
    return colour * scale[1] * 0.5 + vec4(0.0, 0.0, 0.0, float(hits > 0u) * 0.0);
}
"""


def test_uniform_and_storage_buffers(gl_ctx, tmp_path, image):
    with Renderer(gl_ctx, [shader(tmp_path, BUFFERS)]) as r:
        out = r.read_rgb(r.render(rgb_frame(image), (32, 24)), np.float32)
        hits = np.frombuffer(r.programs.buffers["counter"][1].read(), np.uint32)[0]
    assert np.allclose(out, [1.0, 0.5, 0.25], atol=1e-3)
    assert hits == 32 * 24  # one fragment per MAIN pixel wrote to the storage buffer


def test_stage_times_when_profiling(gl_ctx, tmp_path, image):
    with Renderer(gl_ctx, [shader(tmp_path, INVERT_LUMA)]) as r:
        r.profile = True
        r.render(rgb_frame(image), (64, 48))
        assert {"upload", "planes", "scale"} <= set(r.stage_times)
        assert all(t >= 0 for t in r.stage_times.values())


STORAGE = f"""//!TEXTURE ACC
//!SIZE 4 4
//!FORMAT r32f
//!STORAGE
{bytes(64).hex()}

//!HOOK MAIN
//!BIND HOOKED
//!BIND ACC
//!COMPUTE 8 8
void hook() {{
    if (gl_GlobalInvocationID.xy == uvec2(1, 1))
        imageStore(ACC, ivec2(1, 1), vec4(0.5));
    imageStore(out_image, ivec2(gl_GlobalInvocationID.xy), HOOKED_tex(HOOKED_pos));
}}

//!HOOK MAIN
//!BIND HOOKED
//!BIND ACC
vec4 hook() {{ return vec4(imageLoad(ACC, ivec2(1, 1)).x, HOOKED_tex(HOOKED_pos).yz, 1.0); }}
"""


def test_storage_texture_and_compute_positions(gl_ctx, tmp_path, image):
    out, _ = render(gl_ctx, [shader(tmp_path, STORAGE)], rgb_frame(image), (32, 24))
    assert np.allclose(out[..., 0], 0.5, atol=1e-4)
    # the compute pass copied MAIN through HOOKED_pos: compute positions are pixel centres
    assert np.abs(out[..., 1:] - image[..., 1:] / 255.0).max() < 1e-3


def test_storage_texture_without_data_starts_zero_filled(gl_ctx, tmp_path, image):
    """A STORAGE //!TEXTURE may omit its data (libplacebo zero-fills it): the parser accepts it and the
    renderer must create it, zeroed, rather than refuse it."""
    text = STORAGE.replace(bytes(64).hex() + "\n", "").replace(
        "imageStore(ACC, ivec2(1, 1), vec4(0.5));", "imageStore(ACC, ivec2(1, 1), imageLoad(ACC, ivec2(2, 3)) + 0.25);")
    assert "//!STORAGE\n\n//!HOOK" in text
    out, _ = render(gl_ctx, [shader(tmp_path, text)], rgb_frame(image), (32, 24))
    assert np.allclose(out[..., 0], 0.25, atol=1e-4)  # 0 (zero-filled texel) + 0.25


EXTENSION = """//!HOOK LUMA
//!BIND HOOKED
//!COMPONENTS 1
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : enable
#ifdef GL_EXT_shader_explicit_arithmetic_types_float16
#define F float16_t
#else
#define F float
#endif
vec4 hook() { F v = F(HOOKED_tex(HOOKED_pos).x); return vec4(1.0 - float(v)); }
"""


def test_extension_directives_in_body(gl_ctx, tmp_path, image):
    """libplacebo-style shaders put #extension in the pass body: hoisted, still compiles."""
    a, _ = render(gl_ctx, [shader(tmp_path, EXTENSION)], rgb_frame(image), (64, 48))
    b, _ = render(gl_ctx, [shader(tmp_path, INVERT_LUMA, "b.glsl")], rgb_frame(image), (64, 48))
    assert np.abs(a - b).max() < 1e-5
    text = EXTENSION.replace("#extension GL_EXT_shader_explicit_arithmetic_types_float16 : enable",
                             "#extension GL_UPSHADE_no_such_thing : require")
    with Renderer(gl_ctx, [shader(tmp_path, text, "req.glsl")]) as r:
        with pytest.raises(ShaderError, match=r"req.glsl:4: GLSL compile error: .*GL_UPSHADE_no_such_thing"):
            r.render(rgb_frame(image), (64, 48))


def test_oversized_output_is_a_clear_error(gl_ctx, image):
    with Renderer(gl_ctx) as r:
        with pytest.raises(UpshadeError, match="maximum texture size"):
            r.render(rgb_frame(image), (10**6, 10))


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020nc"])
@pytest.mark.parametrize("bits", [8, 10, 16])
def test_colorspace_limited_range_anchors(matrix, bits):
    from upshade.host.colorspace import neutral_chroma

    m, off = ycbcr_to_rgb(matrix, "limited", bits)
    k = 2 ** (bits - 8)
    peak = 2**bits - 1
    black = m @ np.array([16 * k, 128 * k, 128 * k]) / peak + off
    white = m @ np.array([235 * k, 128 * k, 128 * k]) / peak + off
    np.testing.assert_allclose(black, 0, atol=1e-9)
    np.testing.assert_allclose(white, 1, atol=1e-9)
    assert neutral_chroma("limited", bits) == pytest.approx(128 * k / peak)
    # full range: code 0 / peak are black / white, and the inverse is exact
    mf, of = ycbcr_to_rgb(matrix, "full", bits)
    np.testing.assert_allclose(mf @ np.array([peak, 2 ** (bits - 1), 2 ** (bits - 1)]) / peak + of, 1, atol=1e-9)
    mi, oi = rgb_to_ycbcr(matrix, "full", bits)
    rgb = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(mf @ (mi @ rgb + oi) + of, rgb, atol=1e-12)


# -- fast paths -------------------------------------------------------------------

# Hooking CHROMA_SCALED (with a pass that changes nothing) forces the general
# path: chroma resampled onto the luma grid in two passes, then merged.
CHROMA_SCALED_NOOP = """//!HOOK CHROMA_SCALED
//!BIND HOOKED
vec4 hook() { return HOOKED_tex(HOOKED_pos); }
"""

LUMA_X2 = """//!HOOK LUMA
//!BIND HOOKED
//!WIDTH HOOKED.w 2 *
//!HEIGHT HOOKED.h 2 *
//!COMPONENTS 1
vec4 hook() { return HOOKED_tex(HOOKED_pos) * 0.9 + 0.05; }
"""


@pytest.mark.parametrize("case", ["420-center", "420-left", "422", "444", "odd", "prescaled", "prescaled-odd"])
def test_fused_chroma_merge_equals_general_path(gl_ctx, tmp_path, case):
    """With nothing hooking CHROMA_SCALED/NATIVE, the vertical chroma taps run inside the
    merge pass: same placement and kernel as the two-pass scaler, so the same output."""
    rng = np.random.default_rng(7)
    h, w = (17, 33) if "odd" in case else (16, 32)
    sub = {"422": (2, 1), "444": (1, 1)}.get(case, (2, 2))
    y = rng.integers(16, 236, (h, w), dtype=np.uint8)
    ch, cw = -(-h // sub[1]), -(-w // sub[0])
    u = rng.integers(16, 241, (ch, cw), dtype=np.uint8)
    v = rng.integers(16, 241, (ch, cw), dtype=np.uint8)
    frame = yuv_frame(y, u, v, loc="left" if case == "420-left" else "center")
    luma = [shader(tmp_path, LUMA_X2, "x2.glsl")] if "prescaled" in case else []
    noop = shader(tmp_path, CHROMA_SCALED_NOOP, "noop.glsl")
    size = (2 * w, 2 * h) if "prescaled" in case else (w + 7, h + 5)
    fast, sizes = render(gl_ctx, luma, frame, size)
    general, _ = render(gl_ctx, luma + [noop], frame, size)
    assert np.abs(fast - general).max() < 1e-5
    assert sizes["CHROMA_SCALED"] == sizes["LUMA"]


@pytest.mark.parametrize("output, dtype", [("unorm8", np.uint8), ("unorm16", np.uint16)])
def test_unorm_output_matches_float_output(gl_ctx, tmp_path, image, output, dtype):
    frame = rgb_frame(image)
    with Renderer(gl_ctx) as r:
        want = r.read_rgb(r.render(frame, (50, 37)), dtype)
    with Renderer(gl_ctx, output=output) as r:
        tex = r.render(frame, (50, 37))
        assert tex.dtype == {"unorm8": "f1", "unorm16": "nu2"}[output]
        got = r.read_rgb(tex, dtype)
        as_float = r.read_rgb(tex, np.float32)
    assert np.abs(got.astype(np.int64) - want).max() <= 1
    assert np.abs(as_float - got / np.iinfo(dtype).max).max() < 1e-6
    # An OUTPUT hook needs float input and writes the output itself: the format stays float.
    with Renderer(gl_ctx, [shader(tmp_path, "//!HOOK OUTPUT\n//!BIND HOOKED\nvec4 hook() { return HOOKED_tex(HOOKED_pos); }\n")],
                  output=output) as r:
        assert r.render(frame, (50, 37)).dtype in ("f2", "f4")
    with pytest.raises(UpshadeError, match="unknown renderer output"):
        Renderer(gl_ctx, output="rgb565")


def test_targets_hold_only_the_components_a_pass_produces(gl_ctx, tmp_path, image):
    """A COMPONENTS 1 pass gets a one-channel target; reading its other channels gives
    (0, 0, 1) exactly as mpv's rule for unproduced components says."""
    probe = """//!HOOK LUMA
//!BIND HOOKED
//!SAVE ONE
//!COMPONENTS 1
vec4 hook() { return vec4(0.25, 0.5, 0.75, 0.125); }

//!HOOK LUMA
//!BIND ONE
//!COMPONENTS 1
vec4 hook() { vec4 v = ONE_tex(ONE_pos); return vec4(v.x + v.y + v.z + 10.0 * (v.w - 1.0)); }
"""
    with Renderer(gl_ctx, [shader(tmp_path, probe)]) as r:
        y = r.render_luma(np.zeros((6, 8), np.float32))
        channels = {key[:3] for key in r.pool._keys.values()}
    assert (8, 6, 1) in channels and (8, 6, 4) not in channels
    assert np.allclose(y, 0.25)


def test_texture_pool_is_trimmed_when_sizes_change(gl_ctx, tmp_path, image):
    """A resizing window must not keep the textures of every size it went through."""
    frame = rgb_frame(image)
    with Renderer(gl_ctx, [shader(tmp_path, PRESCALER)]) as r:
        lives = []
        for i in range(20):
            r.render(frame, (40 + 3 * i, 30 + 2 * i), frame_index=i)
            lives.append(r.pool.live)
        assert r.pool.allocations >= 3 * 20  # every size needed textures of its own...
        assert max(lives) <= min(lives) + 2  # ...and the old ones were freed


def test_compute_pass_out_image_has_the_declared_components(gl_ctx, tmp_path):
    """COMPONENTS 1 on a compute pass: out_image is declared r32f/r16f and its target has one channel."""
    src = """//!HOOK LUMA
//!BIND HOOKED
//!WIDTH HOOKED.w 2 *
//!HEIGHT HOOKED.h 2 *
//!COMPONENTS 1
//!COMPUTE 8 8
void hook() {
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    imageStore(out_image, p, vec4(HOOKED_tex((vec2(p / 2) + 0.5) * HOOKED_pt).x + 0.125, 9.0, 9.0, 9.0));
}
"""
    y = np.arange(35, dtype=np.float32).reshape(5, 7) / 64.0
    for fmt in ("rgba32f", "rgba16f"):
        with Renderer(gl_ctx, [shader(tmp_path, src)], fbo_format=fmt) as r:
            out = r.render_luma(y)
            channels = {key[:3] for key in r.pool._keys.values()}
        assert (14, 10, 1) in channels and (14, 10, 4) not in channels, fmt
        np.testing.assert_allclose(out, np.repeat(np.repeat(y, 2, 0), 2, 1) + 0.125, atol=1e-3)
