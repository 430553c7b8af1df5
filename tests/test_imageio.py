"""Image files through PyAV: round trips, real files, errors, and the Frame layout for the GPU."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from upshade.host.errors import MediaError
from upshade.host.fileio import atomic_output
from upshade.host.imageio import encode_png, image_to_frame, read_image, write_image

RNG = np.random.default_rng(1234)


def random_image(h: int, w: int, c: int, dtype) -> np.ndarray:
    return RNG.integers(0, np.iinfo(dtype).max + 1, size=(h, w, c), dtype=dtype)


def encode(codec: str, fmt: str, frame: av.VideoFrame, path, **options) -> None:
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = frame.width, frame.height, fmt, Fraction(1, 25)
    if options:
        ctx.options = options
    path.write_bytes(b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None)))


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip(tmp_path, channels, dtype):
    arr = random_image(7, 5, channels, dtype)  # odd sizes: rows get padded inside FFmpeg
    path = tmp_path / "img.png"
    write_image(path, arr)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = read_image(path)
    assert back.dtype == dtype and back.shape == (7, 5, channels)
    assert back.flags.c_contiguous
    np.testing.assert_array_equal(back, arr)
    if dtype == np.uint16:
        assert back.max() > 255  # 16 bits survive, not rounded to 8


def test_round_trip_2d_grey_and_big_endian_input(tmp_path):
    grey = random_image(4, 6, 1, np.uint8)[:, :, 0]
    write_image(tmp_path / "g.png", grey)
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[:, :, 0], grey)
    be = random_image(3, 3, 3, np.uint16).astype(">u2")
    write_image(tmp_path / "be.png", be)
    back = read_image(tmp_path / "be.png")
    assert back.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(back, be.astype(np.uint16))


def test_write_exact_path_and_atomic_output(tmp_path):
    arr = random_image(2, 3, 3, np.uint8)
    odd = tmp_path / "out.partial"  # no .png suffix: the bytes are PNG regardless
    write_image(odd, arr)
    np.testing.assert_array_equal(read_image(odd), arr)
    out = tmp_path / "final.png"
    with atomic_output(out) as tmp:
        assert tmp.suffix == ".png"
        write_image(tmp, arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.png", "out.partial"]
    np.testing.assert_array_equal(read_image(out), arr)
    assert encode_png(arr) == out.read_bytes()


# ---------------------------------------------------------------- other decodable inputs


def palette_png(path, alpha: int) -> None:
    frame = av.VideoFrame(4, 2, "pal8")
    idx = np.frombuffer(frame.planes[0], np.uint8).reshape(2, frame.planes[0].line_size)
    idx[:, :4] = [[0, 1, 2, 3], [3, 2, 1, 0]]
    pal = np.frombuffer(frame.planes[1], np.uint8).reshape(256, 4)  # BGRA entries
    for i, (r, g, b, a) in enumerate([(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255), (10, 20, 30, alpha)]):
        pal[i] = (b, g, r, a)
    encode("png", "pal8", frame, path)


def test_palette_png_opaque_is_rgb_and_transparent_is_rgba(tmp_path):
    palette_png(tmp_path / "p.png", 255)
    rgb = read_image(tmp_path / "p.png")
    assert rgb.shape == (2, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]
    palette_png(tmp_path / "t.png", 128)
    rgba = read_image(tmp_path / "t.png")
    assert rgba.shape == (2, 4, 4)
    assert rgba[1, 0].tolist() == [10, 20, 30, 128] and rgba[0, 0].tolist() == [255, 0, 0, 255]


def test_jpeg_decodes_to_rgb(tmp_path):
    rgb = np.empty((16, 16, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
    encode("mjpeg", "yuvj444p", frame, tmp_path / "c.jpg", qmin="1", qmax="1")
    back = read_image(tmp_path / "c.jpg")
    assert back.shape == (16, 16, 3) and back.dtype == np.uint8
    assert np.abs(back.astype(int) - rgb).max() <= 3


def test_one_bit_png_is_grey(tmp_path):
    frame = av.VideoFrame(16, 2, "monob")
    np.frombuffer(frame.planes[0], np.uint8)[:] = 0xF0
    encode("png", "monob", frame, tmp_path / "m.png")
    back = read_image(tmp_path / "m.png")
    assert back.shape == (2, 16, 1)
    assert back[0, :8, 0].tolist() == [255] * 4 + [0] * 4


def test_real_image():
    from upshade.host.paths import sample

    img = read_image(sample("image"))  # the bundled Big Buck Bunny frame
    assert img.shape == (360, 640, 3) and img.dtype == np.uint8
    assert 60 < img.mean() < 200 and img.std() > 20  # a picture, not a flat or garbage buffer
    frame = image_to_frame(img)
    assert (frame.format.width, frame.format.height) == (640, 360)


# ---------------------------------------------------------------- errors


def read_error(path) -> str:
    with pytest.raises(MediaError) as info:
        read_image(path)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_read_errors(tmp_path):
    assert read_error(tmp_path / "nope.png") == f"{tmp_path / 'nope.png'}: no such file"
    assert read_error(tmp_path) == f"{tmp_path}: is a directory, not an image"
    (tmp_path / "empty.png").write_bytes(b"")
    assert read_error(tmp_path / "empty.png") == f"{tmp_path / 'empty.png'}: empty file, not an image"
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    assert read_error(tmp_path / "junk.png").startswith(f"{tmp_path / 'junk.png'}: not a readable image (")
    (tmp_path / "notes.txt").write_text("hello world\n" * 10)
    assert read_error(tmp_path / "notes.txt").startswith(f"{tmp_path / 'notes.txt'}: not a")
    full = encode_png(random_image(64, 64, 3, np.uint8))
    (tmp_path / "cut.png").write_bytes(full[: len(full) // 2])
    msg = read_error(tmp_path / "cut.png")
    assert msg.startswith(f"{tmp_path / 'cut.png'}: ") and ("readable" in msg or "decoded" in msg)


def test_read_video_file_is_not_an_image(tmp_path):
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert read_error(path).startswith(f"{path}: not an image (FFmpeg reads it as 'mov,mp4")


def test_read_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    write_image(path, random_image(2, 2, 1, np.uint8))
    # chmod 0 does not stop root (CI runs as root), so deny access the way the OS would report it
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    assert read_error(path) == f"{path}: cannot read: permission denied"


def test_write_errors(tmp_path):
    out = tmp_path / "o.png"
    with pytest.raises(MediaError) as info:
        write_image(out, np.zeros((4, 4, 5), np.uint8))
    assert str(info.value) == f"{out}: cannot write image array: shape (4, 4, 5) is not (H, W) or (H, W, C) with C in 1..4"
    with pytest.raises(MediaError) as info:
        write_image(out, np.zeros((4, 4, 3), np.float32))
    assert str(info.value) == f"{out}: cannot write image array: dtype float32 is not uint8 or uint16"
    with pytest.raises(MediaError) as info:
        write_image(out, np.zeros((0, 4, 3), np.uint8))
    assert str(info.value) == f"{out}: cannot write image array: shape (0, 4, 3) has no pixels"
    missing = tmp_path / "no" / "dir.png"
    with pytest.raises(MediaError) as info:
        write_image(missing, np.zeros((2, 2), np.uint8))
    assert str(info.value) == f"{missing}: cannot write: No such file or directory"
    assert not out.exists()


# ---------------------------------------------------------------- Frame layout


@pytest.mark.parametrize("channels, role, kind", [(3, "RGB", "rgb"), (4, "RGBA", "rgb"), (1, "Y", "gray")])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_image_to_frame_packed(channels, role, kind, dtype):
    img = random_image(6, 10, channels, dtype)
    frame = image_to_frame(img)
    fmt = frame.format
    assert (fmt.kind, fmt.matrix, fmt.range, fmt.bit_depth) == (kind, "bt601", "full", 8 * np.dtype(dtype).itemsize)
    assert fmt.has_alpha == (channels == 4)
    (pf,) = fmt.planes
    assert (pf.role, pf.width, pf.height, pf.components, pf.bytes_per_sample) == (
        role, 10, 6, channels, np.dtype(dtype).itemsize)
    (plane,) = frame.planes
    assert plane.shape == (6, 10 * channels) and plane.dtype == dtype
    assert np.shares_memory(plane, img)  # a view, not a copy
    np.testing.assert_array_equal(plane.reshape(6, 10, channels), img)
    assert fmt.chroma_subsampling == (1, 1)


def test_image_to_frame_grey_alpha_splits_planes():
    img = random_image(5, 3, 2, np.uint16)
    frame = image_to_frame(img)
    fmt = frame.format
    assert fmt.kind == "gray" and fmt.has_alpha and fmt.bit_depth == 16
    assert [(p.role, p.components, p.bytes_per_sample) for p in fmt.planes] == [("Y", 1, 2), ("A", 1, 2)]
    y, a = frame.planes
    assert y.shape == a.shape == (5, 3) and y.flags.c_contiguous and a.flags.c_contiguous
    np.testing.assert_array_equal(y, img[:, :, 0])
    np.testing.assert_array_equal(a, img[:, :, 1])


def test_image_to_frame_strided_input_is_packed():
    big = random_image(8, 8, 3, np.uint8)
    view = big[::2, ::2]  # not contiguous: must become packed rows
    frame = image_to_frame(view)
    plane = frame.planes[0]
    assert plane.shape == (4, 12) and plane.flags.c_contiguous
    np.testing.assert_array_equal(plane.reshape(4, 4, 3), view)
    with pytest.raises(MediaError, match="dtype int32 is not uint8 or uint16"):
        image_to_frame(np.zeros((2, 2, 3), np.int32))
