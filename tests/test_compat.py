"""Constructs of the community shaders (RAVU, NNEDI3, FSRCNNX, CuNNy, ArtCNN, Anime4K,
KrigBilateral), each reproduced by a small hand-written shader and checked against
numpy. /work/notes/compat.md (README) lists the real files run through `upshade image`.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from upshade.host.colorspace import rgb_to_ycbcr
from upshade.host.frames import Frame, FrameFormat, PlaneFormat
from upshade.host.hookparse import parse_shader
from upshade.host.imageio import image_to_frame
from upshade.host.pipeline import Renderer

pytestmark = pytest.mark.gl


def shader(text: str, name: str = "compat.glsl"):
    return parse_shader(text, name)


def gray_frame(g: np.ndarray) -> Frame:
    h, w = g.shape
    fmt = FrameFormat(kind="gray", planes=(PlaneFormat("Y", w, h, 1, 1),), matrix="bt601", range="full")
    return Frame(fmt, [g])


def f32_hex(*values: float) -> str:
    return struct.pack("<%df" % len(values), *values).hex()


# RAVU-lite's structure: step 1 stores the LR pixel and its three interpolated
# neighbours in 4 components (weights from an rgba16f LUT, whose hex data is
# float32 as in mpv); step 2 doubles the size with OFFSET -0.5 -0.5 and picks a
# component by sub-pixel position. Here the "kernel" is bilinear, so a ramp must
# come out as the same ramp, exactly placed, after the main scaler.
RAVU_LITE_LIKE = f"""
//!DESC step1
//!HOOK LUMA
//!BIND HOOKED
//!BIND weights
//!SAVE ravu_int
//!COMPONENTS 4
vec4 hook() {{
    float c = HOOKED_texOff(vec2(0.0, 0.0)).x, r = HOOKED_texOff(vec2(1.0, 0.0)).x;
    float d = HOOKED_texOff(vec2(0.0, 1.0)).x, rd = HOOKED_texOff(vec2(1.0, 1.0)).x;
    vec4 w = texture(weights, vec2(0.5, 0.5));
    return vec4(c, w.x * (c + d), w.y * (c + r), w.z * (c + r + d + rd));
}}
//!DESC step2
//!HOOK LUMA
//!BIND HOOKED
//!BIND ravu_int
//!WIDTH 2 HOOKED.w *
//!HEIGHT 2 HOOKED.h *
//!OFFSET -0.500000 -0.500000
#pragma optionNV(fastprecision on)
vec4 hook() {{
    vec2 dir = fract(HOOKED_pos * HOOKED_size) - 0.5;
    int idx = int(dir.x > 0.0) * 2 + int(dir.y > 0.0);
    return vec4(ravu_int_texOff(-dir)[idx], 0.0, 0.0, 0.0);  // NNEDI3's last step has the same shape
}}
//!TEXTURE weights
//!SIZE 1 1
//!FORMAT rgba16f
//!FILTER NEAREST
{f32_hex(0.5, 0.5, 0.25, 0.0)}
"""


def test_ravu_lite_style_prescaler_is_placed_exactly(gl_ctx):
    y, x = np.mgrid[0:8, 0:16]
    lr = (12 * x + 10 * y).astype(np.uint8)
    with Renderer(gl_ctx, [shader(RAVU_LITE_LIKE)]) as r:
        out = r.read_rgb(r.render(gray_frame(lr), (32, 16)), np.float32)[..., 0]
        assert r.last_sizes["LUMA"] == (32, 16)
    # HR pixel u sits at LR coordinate (u + 0.5) / 2 - 0.5; a half-pixel slip would be off by >= 3/255.
    v, u = np.mgrid[0:16, 0:32]
    want = (12 * ((u + 0.5) / 2 - 0.5) + 10 * ((v + 0.5) / 2 - 0.5)) / 255
    assert np.abs(out - want)[3:-3, 3:-3].max() < 2e-3


# FSRCNNX reads its 5x5 window with textureGatherOffset and a const ivec2 array
# indexed in a loop, at a position on the texel corner, scaled by LUMA_mul.
GATHER_LIKE = """
//!HOOK LUMA
//!BIND LUMA
vec4 hook() {
    vec2 p = (LUMA_pos * LUMA_size - vec2(0.5)) * LUMA_pt;
    const ivec2 offs[2] = {{1, 1}, {-1, 0}};
    vec4 q[2];
    for (int i = 0; i < 2; i++) { q[i] = LUMA_mul * textureGatherOffset(LUMA_raw, p, offs[i], 0); }
    float err = abs(q[0].w - float(LUMA_texOff(vec2(0, 0))))
              + abs(q[1].x - LUMA_texOff(vec2(-2, 0)).x)
              + abs(q[1].z - LUMA_texOff(vec2(-1, -1)).x)
              + abs(LUMA_gather(p, 0).y - LUMA_tex(LUMA_pos).x)
              + abs(LUMA_texOff(0).x - LUMA_tex(LUMA_pos).x);  // FSRCNNX passes a scalar 0
    return vec4(err + 1.0, 0.0, 0.0, 0.0);
}
"""


def test_texture_gather_offsets_like_fsrcnnx(gl_ctx):
    y = np.random.default_rng(3).random((10, 14)).astype(np.float32)
    with Renderer(gl_ctx, [shader(GATHER_LIKE)]) as r:
        out = r.render_luma(y)
    assert out.shape == (10, 14)
    assert np.abs(out[2:-2, 2:-2] - 1.0).max() < 1e-4


# CuNNy: //!COMPUTE 16 8 8 8 (each 8x8 workgroup covers a 16x8 block), a shared
# tile with a 1-pixel halo loaded by texelFetch(LUMA_raw) and LUMA_mul, barrier(),
# two imageStore()s to out_image per thread, and a float16 #extension it may lack.
CUNNY_LIKE = """
//!HOOK LUMA
//!COMPUTE 16 8 8 8
//!BIND LUMA
//!WIDTH LUMA.w 2 *
//!HEIGHT LUMA.h
//!COMPONENTS 1
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : enable
#ifdef GL_EXT_shader_explicit_arithmetic_types_float16
#	define F float16_t
#else
#	define F float
#endif
#define l0(x, y) F((LUMA_mul * texelFetch(LUMA_raw, clamp(pos + ivec2(x, y), ivec2(0), sz), 0)).r)
shared F G[1][10][10];
void hook() {
	ivec2 xy = ivec2(gl_LocalInvocationID.xy);
	ivec2 pos = ivec2(gl_WorkGroupID.xy) * ivec2(8, 8) + xy;
	ivec2 opos = pos * ivec2(2, 1);
	ivec2 sz = ivec2(LUMA_size) - ivec2(1);
	for (int y = 0; y < 10; y += 8) {
		int ay = xy.y + y;
		if (ay >= 10) break;
		for (int x = 0; x < 10; x += 8) {
			int ax = xy.x + x;
			if (ax >= 10) break;
			G[0][ay][ax] = l0(x - 1, y - 1);
		}
	}
	barrier();
	float box = 0.0;
	for (int j = 0; j < 3; j++)
		for (int i = 0; i < 3; i++)
			box += float(G[0][xy.y + j][xy.x + i]);
	imageStore(out_image, opos, vec4(box / 9.0, 0.0, 0.0, 1.0));
	imageStore(out_image, opos + ivec2(1, 0), vec4(float(G[0][xy.y + 1][xy.x + 1]), 0.0, 0.0, 1.0));
}
"""


def test_shared_memory_compute_like_cunny(gl_ctx):
    y = np.random.default_rng(4).random((13, 21)).astype(np.float32)  # not a multiple of the 8x8 tile
    with Renderer(gl_ctx, [shader(CUNNY_LIKE)]) as r:
        out = r.render_luma(y)
    assert out.shape == (13, 42)
    pad = np.pad(y, 1, mode="edge")
    box = sum(pad[j:j + 13, i:i + 21] for j in range(3) for i in range(3)) / 9
    assert np.abs(out[:, 1::2] - y).max() < 1e-6
    assert np.abs(out[:, 0::2] - box).max() < 1e-5


def test_compute_map_macro(gl_ctx):
    text = """//!HOOK LUMA
//!BIND HOOKED
//!COMPUTE 8 8
void hook() {
    imageStore(out_image, ivec2(gl_GlobalInvocationID.xy), HOOKED_tex(HOOKED_map(gl_GlobalInvocationID.xy)));
}
"""
    y = np.random.default_rng(5).random((9, 11)).astype(np.float32)
    with Renderer(gl_ctx, [shader(text)]) as r:
        assert np.abs(r.render_luma(y) - y).max() < 1e-6


# KrigBilateral: a CHROMA pass that binds LUMA and resizes chroma to LUMA.w x LUMA.h.
# The result must keep the chroma siting: the later chroma alignment shifts it as
# mpv does (the pass output inherits the scaled chroma offset).
CHROMA_TO_LUMA = """
//!HOOK CHROMA
//!BIND HOOKED
//!BIND LUMA
//!WIDTH LUMA.w
//!HEIGHT LUMA.h
//!WHEN CHROMA.w LUMA.w <
vec4 hook() {
    return HOOKED_tex(HOOKED_pos) + 0.0 * LUMA_tex(LUMA_pos);
}
"""
# The RAVU chroma variants instead double the chroma plane with OFFSET ALIGN:
# HOOKED is bound shifted by the chroma siting and the output lands on the luma grid.
CHROMA_ALIGN = """
//!HOOK CHROMA
//!BIND HOOKED
//!BIND LUMA
//!WIDTH 2 HOOKED.w *
//!HEIGHT 2 HOOKED.h *
//!OFFSET ALIGN
//!WHEN CHROMA.w LUMA.w <
vec4 hook() {
    return HOOKED_tex(HOOKED_pos);
}
"""


@pytest.mark.parametrize("text", [CHROMA_TO_LUMA, CHROMA_ALIGN], ids=["resize", "align"])
@pytest.mark.parametrize("loc, first_sample", [("center", 0.5), ("left", 0.0)])
def test_chroma_hook_resized_to_luma_keeps_siting(gl_ctx, text, loc, first_sample):
    w, h = 32, 8
    y = np.full((h, w), 128, np.uint8)
    cb = np.tile(100 + 6 * np.arange(w // 2), (h // 2, 1)).astype(np.uint8)
    cr = np.full((h // 2, w // 2), 128, np.uint8)
    fmt = FrameFormat(kind="yuv", planes=(PlaneFormat("Y", w, h, 1, 1), PlaneFormat("U", w // 2, h // 2, 1, 1),
                                          PlaneFormat("V", w // 2, h // 2, 1, 1)),
                      bit_depth=8, matrix="bt601", range="full", chroma_location=loc)
    with Renderer(gl_ctx, [shader(text)]) as r:
        rgb = r.read_rgb(r.render(Frame(fmt, [y, cb, cr]), (w, h)), np.float32)
        assert r.last_sizes["CHROMA"] == (w, h)
    m, off = rgb_to_ycbcr("bt601", "full", 8)
    got = (rgb @ m.T + off)[..., 1] * 255
    # chroma sample k sits at luma x = 2k + first_sample
    want = 100 + 6 * (np.arange(w) - first_sample) / 2
    assert np.abs(got - want)[:, 6:-6].max() < 0.3


# libplacebo's helpers for the source transfer; mpv-era shaders may define their own.
LINEARIZE = """
//!HOOK MAIN
//!BIND HOOKED
vec4 hook() {
    return linearize(HOOKED_tex(HOOKED_pos));
}
"""
ROUND_TRIP = LINEARIZE.replace("linearize(HOOKED", "delinearize(linearize(HOOKED").replace(");\n}", "));\n}")
OWN_LINEARIZE = """
//!HOOK MAIN
//!BIND HOOKED
vec4 linearize(vec4 c) { return c * 0.5; }
vec4 hook() {
    return linearize(HOOKED_tex(HOOKED_pos));
}
"""


def srgb_eotf(v):
    return np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)


def run_main(ctx, text, frame, size):
    with Renderer(ctx, [shader(text)]) as r:
        return r.read_rgb(r.render(frame, size), np.float32)


def test_linearize_follows_the_source_transfer(gl_ctx):
    img = np.random.default_rng(6).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    v = img / 255.0
    assert np.abs(run_main(gl_ctx, LINEARIZE, image_to_frame(img), (8, 6)) - srgb_eotf(v)).max() < 2e-3
    assert np.abs(run_main(gl_ctx, ROUND_TRIP, image_to_frame(img), (8, 6)) - v).max() < 2e-3
    g = img[..., 0]
    out = run_main(gl_ctx, LINEARIZE, gray_frame(g), (8, 6))
    assert np.abs(out - ((g / 255.0) ** 2.4)[..., None]).max() < 2e-3  # video: BT.1886, pure 2.4 power
    assert np.abs(run_main(gl_ctx, OWN_LINEARIZE, image_to_frame(img), (8, 6)) - v * 0.5).max() < 2e-3
