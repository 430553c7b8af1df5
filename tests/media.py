"""Tiny synthetic video clips for tests, written with PyAV.

Every generator writes into a path the test gives (a ``tmp_path`` file) and
returns it. Clips are a few dozen pixels and frames so that the whole video
suite stays fast on two CPU cores.

The "patches" pattern is a grid of flat colour patches whose colours rotate by
one palette entry per frame: every frame differs, and the expected colour at
the centre of each patch is known (``patch_rgb``), so tests can check colours
after a decode -> GPU -> encode round trip. Patch edges fall on multiples of 16
pixels when the size allows, so 4:2:0 chroma and codec blocks stay inside one
patch.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from upshade.host.colorspace import ycbcr_to_rgb
from upshade.host.frames import Frame

# Saturated and neutral colours: every matrix/range mistake moves at least one
# of these by far more than codec noise.
PALETTE = np.array(
    [
        (230, 30, 30),    # red
        (30, 200, 40),    # green
        (40, 50, 220),    # blue
        (240, 240, 240),  # near white
        (20, 20, 20),     # near black
        (128, 128, 128),  # mid grey
        (240, 220, 40),   # yellow
        (40, 210, 220),   # cyan
        (210, 40, 200),   # magenta
        (250, 140, 30),   # orange
        (100, 60, 20),    # brown
        (160, 200, 250),  # sky
    ],
    dtype=np.uint8,
)
GRID = (3, 4)  # rows, cols

SRT = (
    "1\n00:00:00,040 --> 00:00:00,160\nHello <i>world</i>\n\n"
    "2\n00:00:00,200 --> 00:00:00,320\nSecond line\n\n"
)
ASS = """[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:00.04,0:00:00.16,Default,,0,0,0,,Hello {\\i1}world{\\i0}
Dialogue: 0,0:00:00.20,0:00:00.32,Default,,0,0,0,,Second line
"""


def patch_edges(size: int, n: int) -> list[int]:
    """Patch boundaries along one axis (multiples of 16 where the size allows)."""
    step = size / n
    if size >= 16 * n:
        step = max(16, int(step) // 16 * 16)
        edges = [min(size, i * step) for i in range(n)] + [size]
    else:
        edges = [round(i * step) for i in range(n + 1)]
    return edges


def patch_index(index: int, row: int, col: int) -> int:
    return (row * GRID[1] + col + index) % len(PALETTE)


def patch_rgb(index: int, row: int, col: int) -> np.ndarray:
    """Expected RGB of patch (row, col) in frame ``index`` of the "patches" pattern."""
    return PALETTE[patch_index(index, row, col)]


def patch_centres(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(row, col, y, x) of every patch centre, in pixel coordinates of a width x height frame."""
    ys, xs = patch_edges(height, GRID[0]), patch_edges(width, GRID[1])
    return [
        (r, c, (ys[r] + ys[r + 1]) // 2, (xs[c] + xs[c + 1]) // 2)
        for r in range(GRID[0])
        for c in range(GRID[1])
    ]


def pattern_rgb(width: int, height: int, index: int, pattern: str = "patches") -> np.ndarray:
    """Frame ``index`` of a test pattern as an HxWx3 uint8 RGB array."""
    if pattern == "patches":
        img = np.empty((height, width, 3), np.uint8)
        ys, xs = patch_edges(height, GRID[0]), patch_edges(width, GRID[1])
        for r in range(GRID[0]):
            for c in range(GRID[1]):
                img[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = patch_rgb(index, r, c)
        return img
    if pattern == "noise":
        return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if pattern == "gradient":
        x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        img = np.stack(np.broadcast_arrays((x + index * 8) % 256, y, 255 - x), axis=-1)
        return img.astype(np.uint8)
    raise ValueError(f"unknown pattern {pattern!r}")


def _default_codec(pix_fmt: str, width: int, height: int) -> str:
    x264 = {f.name for f in av.codec.Codec("libx264", "w").video_formats}
    even = width % 2 == 0 and height % 2 == 0
    if pix_fmt in x264 and (even or pix_fmt in ("yuv444p", "yuv444p10le", "gray", "gray10le")):
        return "libx264"
    ffv1 = {f.name for f in av.codec.Codec("ffv1", "w").video_formats}
    if pix_fmt in ffv1:
        return "ffv1"
    return "rawvideo"


def _audio_frames(codec_ctx, duration: float, rate: int):
    """A stereo 440/660 Hz tone of ``duration`` seconds in the encoder's frame size."""
    size = codec_ctx.frame_size or 1024
    total = int(round(duration * rate))
    fmt = codec_ctx.format.name
    t0 = 0
    while t0 < total:
        n = min(size, total - t0) if codec_ctx.frame_size == 0 else size
        t = (np.arange(t0, t0 + n) / rate).astype(np.float64)
        sig = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]) * 0.3
        if fmt == "fltp":
            arr = sig.astype(np.float32)
        elif fmt == "s16":
            arr = (sig.T.reshape(1, -1) * 32767).astype(np.int16)
        elif fmt == "s32":
            arr = (sig.T.reshape(1, -1) * 2**31 * 0.99).astype(np.int32)
        elif fmt == "flt":
            arr = sig.T.reshape(1, -1).astype(np.float32)
        else:
            raise ValueError(f"test audio: unhandled sample format {fmt}")
        frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout="stereo")
        frame.sample_rate = rate
        frame.pts = t0
        frame.time_base = Fraction(1, rate)
        yield frame
        t0 += n


def make_clip(
    path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 10,
    fps: int | Fraction = 25,
    pix_fmt: str = "yuv420p",
    codec: str | None = None,
    audio: bool | str = False,
    subtitles: bool | str = False,
    pattern: str = "patches",
    times: list[float] | None = None,
    colorspace: str | None = None,
    color_range: str | None = None,
    rotation: int = 0,
    lossless: bool = False,
    gop: int | None = None,
    options: dict | None = None,
    metadata: dict | None = None,
    chapters: list[tuple[float, float, str]] | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    sample_aspect: Fraction | None = None,
) -> Path:
    """Write a small clip and return its path.

    ``codec`` defaults to libx264 where it accepts the pixel format and size,
    else ffv1, else rawvideo. ``lossless`` makes libx264 run at qp 0 (ffv1 and
    rawvideo are always lossless). ``audio``: True/"aac", "flac", "libopus",
    "pcm_s16le". ``subtitles``: True/"srt" or "ass" (muxed from a text file,
    the path needs a container that holds them: .mkv). ``times`` gives explicit
    presentation times in seconds (VFR); the stream time base is then 1/1000.
    ``colorspace`` ("bt601"/"bt709"/"bt2020") and ``color_range``
    ("limited"/"full") are used both for the RGB->YUV conversion and as tags.
    ``rotation`` is the display rotation, counter-clockwise degrees (as
    PyAV's ``set_display_rotation``). ``metadata``: container tags (title...).
    ``chapters``: (start s, end s, title); ``attachments``: (name, mimetype,
    data) for Matroska (fonts for ASS subtitles). ``sample_aspect``: the pixel
    aspect ratio (e.g. 8/9 for NTSC DVD), tagged in the codec and the container.
    """
    path = Path(path)
    codec = codec or _default_codec(pix_fmt, width, height)
    fps = Fraction(fps)
    if times is not None:
        frames = len(times)
        time_base = Fraction(1, 1000)
        pts = [int(round(t * 1000)) for t in times]
    else:
        time_base = 1 / fps
        pts = list(range(frames))
    duration = float((pts[-1] + (1 if times is None else 40)) * time_base)

    sws_cs = {"bt601": "ITU601", "bt709": "ITU709", "bt2020": "BT2020", None: None}[colorspace]
    tag_cs = {"bt601": 6, "bt709": 1, "bt2020": 9, None: None}[colorspace]
    sws_range = {"limited": "MPEG", "full": "JPEG", None: None}[color_range]
    tag_range = {"limited": 1, "full": 2, None: None}[color_range]

    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        if chapters:
            out.set_chapters([
                {"id": i + 1, "start": int(a * 1000), "end": int(b * 1000), "time_base": Fraction(1, 1000),
                 "metadata": {"title": title}}
                for i, (a, b, title) in enumerate(chapters)
            ])
        for name, mimetype, data in attachments or ():
            out.add_attachment(name, mimetype, data)
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        vs.codec_context.time_base = time_base
        vs.time_base = time_base
        opts = dict(options or {})
        if codec == "libx264":
            opts.setdefault("preset", "ultrafast")
            if lossless:
                opts["qp"] = "0"
            if gop:
                opts["keyint"] = str(gop)
        elif gop:
            vs.codec_context.gop_size = gop
        vs.options = opts
        if tag_cs is not None:
            vs.codec_context.colorspace = tag_cs
        if tag_range is not None:
            vs.codec_context.color_range = tag_range
        if rotation:
            vs.set_display_rotation(rotation)
        if sample_aspect is not None:
            vs.codec_context.sample_aspect_ratio = Fraction(sample_aspect)
            vs.sample_aspect_ratio = Fraction(sample_aspect)

        aus = None
        if audio:
            acodec = "aac" if audio is True else audio
            aus = out.add_stream(acodec, rate=48000, layout="stereo")
        sub_in = None
        if subtitles:
            kind = "srt" if subtitles is True else subtitles
            sub_path = path.with_name(path.stem + "_subs." + kind)
            sub_path.write_text(SRT if kind == "srt" else ASS)
            sub_in = av.open(str(sub_path))
            sub_out = out.add_stream_from_template(sub_in.streams.subtitles[0])

        for i in range(frames):
            rgb = pattern_rgb(width, height, i, pattern)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pix_fmt != "rgb24":
                frame = frame.reformat(
                    format=pix_fmt, dst_colorspace=sws_cs, dst_color_range=sws_range
                )
            if tag_cs is not None:
                frame.colorspace = tag_cs
            if tag_range is not None:
                frame.color_range = tag_range
            frame.pts = pts[i]
            frame.time_base = time_base
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))

        if aus is not None:
            for af in _audio_frames(aus.codec_context, duration, 48000):
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
        if sub_in is not None:
            for packet in sub_in.demux(sub_in.streams.subtitles[0]):
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = sub_out
                out.mux(packet)
            sub_in.close()
    return path


def make_vfr_clip(path, times=(0.0, 0.04, 0.10, 0.13, 0.30, 0.31, 0.50, 0.62), **kw) -> Path:
    """A clip whose frames sit at irregular times (seconds)."""
    return make_clip(path, times=list(times), **kw)


def make_audio_only(path, duration: float = 0.5, codec: str = "aac") -> Path:
    path = Path(path)
    with av.open(str(path), "w") as out:
        aus = out.add_stream(codec, rate=48000, layout="stereo")
        for af in _audio_frames(aus.codec_context, duration, 48000):
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    return path


def truncated_copy(src, dst, fraction: float = 0.6) -> Path:
    """The first ``fraction`` of a file's bytes, as an interrupted download leaves it."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def corrupted_copy(src, dst, start: float = 0.4, length: int = 600, seed: int = 1) -> Path:
    """A copy with ``length`` random bytes overwritten from ``start`` (fraction of the size)."""
    data = bytearray(Path(src).read_bytes())
    at = int(len(data) * start)
    rng = np.random.default_rng(seed)
    data[at:at + length] = rng.integers(0, 256, min(length, len(data) - at), dtype=np.uint8).tobytes()
    dst = Path(dst)
    dst.write_bytes(bytes(data))
    return dst


def packets(path, kind: str) -> list[tuple[float, bytes]]:
    """(time in seconds, bytes) of every packet of every stream of ``kind`` ("audio", "subtitle")."""
    result = []
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        for p in c.demux(*streams):
            if p.size == 0 or p.pts is None:
                continue
            result.append((float(p.pts * p.time_base), bytes(p)))
    return result


def video_frame_times(path) -> list[float]:
    """Presentation times (seconds) of every decoded video frame."""
    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


# --- checking decoded frames ---------------------------------------------------


def valid(frame: Frame, i: int) -> np.ndarray:
    """The valid samples of plane i (padding stripped), shaped (h, w, components)."""
    pf = frame.format.planes[i]
    a = frame.planes[i][:, : pf.width * pf.components]
    return a.reshape(pf.height, pf.width, pf.components).astype(np.float64)


def to_rgb(frame: Frame) -> np.ndarray:
    """Reference CPU conversion of a Frame to RGB 0..255 (nearest-neighbour chroma), for checks only."""
    fmt = frame.format
    w, h = fmt.width, fmt.height
    if fmt.kind == "rgb":
        peak = 2.0 ** fmt.bit_depth - 1
        if len(fmt.planes) == 1:
            role = fmt.planes[0].role
            a = valid(frame, 0)
            return np.stack([a[..., role.index(c)] for c in "RGB"], -1) / peak * 255
        by_role = {pf.role: valid(frame, i)[..., 0] for i, pf in enumerate(fmt.planes)}
        return np.stack([by_role[c] for c in "RGB"], -1) / peak * 255

    def up(a):
        sy, sx = -(-h // a.shape[0]), -(-w // a.shape[1])
        return np.repeat(np.repeat(a, sy, 0), sx, 1)[:h, :w]

    y = valid(frame, 0)[..., 0]
    if fmt.kind == "gray":
        cb = cr = np.full_like(y, 2 ** (fmt.bit_depth - 1))
    elif fmt.planes[1].role == "UV":
        uv = valid(frame, 1)
        cb, cr = up(uv[..., 0]), up(uv[..., 1])
    else:
        cb, cr = up(valid(frame, 1)[..., 0]), up(valid(frame, 2)[..., 0])
    peak = 2.0 ** fmt.bit_depth - 1
    m, off = ycbcr_to_rgb(fmt.matrix, fmt.range, fmt.bit_depth)
    ycc = np.stack([y, cb, cr], -1) / peak
    return np.clip(ycc @ m.T + off, 0, 1) * 255


def assert_patches(frame: Frame, index: int, tol: float, gray: bool = False) -> None:
    """Every patch centre of ``frame`` has the colour of frame ``index`` of the pattern (BT.601 luma if grey)."""
    rgb = to_rgb(frame)
    for r, c, y, x in patch_centres(frame.format.width, frame.format.height):
        got = rgb[y, x]
        want = patch_rgb(index, r, c).astype(np.float64)
        if gray or frame.format.kind == "gray":
            want = np.full(3, 0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2])
        assert np.abs(got - want).max() <= tol, (frame.format.kind, r, c, got, want)


# --- bitmap subtitles (DVD and Blu-ray), written by hand: no encoder for them is needed ----------


def dvd_spu(width: int = 16, height: int = 8, x: int = 4, y: int = 4, colour: int = 1, ticks: int = 20) -> bytes:
    """One DVD subpicture unit: a ``width`` x ``height`` box of one colour at (x, y), shown for ``ticks``
    x 1024/90000 s (the SPU control sequence's delay unit). Every line is the RLE code "fill the rest
    of the line with ``colour``"."""
    import struct

    line = struct.pack(">H", colour)
    top = line * (height // 2)
    pixels = top + line * (height - height // 2)
    ctrl = 4 + len(pixels)
    x2, y2 = x + width - 1, y + height - 1
    coords = bytes([x >> 4, ((x & 0xF) << 4) | (x2 >> 8), x2 & 0xFF, y >> 4, ((y & 0xF) << 4) | (y2 >> 8), y2 & 0xFF])
    show = (b"\x01" + b"\x03\x32\x10" + b"\x04\xff\xf0" + b"\x05" + coords
            + b"\x06" + struct.pack(">HH", 4, 4 + len(top)) + b"\xff")
    second = ctrl + 4 + len(show)
    body = pixels + struct.pack(">HH", 0, second) + show + struct.pack(">HH", ticks, second) + b"\x02\xff"
    return struct.pack(">HH", 4 + len(body), ctrl) + body


def pgs_display_set(pts: int, width: int = 64, height: int = 48, show: bool = True, number: int = 0) -> bytes:
    """One PGS (Blu-ray) display set as a .sup file holds it: a 16x8 box of palette entry 1, or (``show``
    False) the set that clears the screen. ``pts`` in 1/90000 s."""
    import struct

    def seg(kind, data):
        return b"PG" + struct.pack(">IIBH", pts, 0, kind, len(data)) + data

    if show:
        pcs = struct.pack(">HHBHBBBB", width, height, 0x10, number, 0x80, 0, 0, 1) + struct.pack(">HBBHH", 0, 0, 0, 4, 4)
        rle = (bytes([1]) * 16 + b"\x00\x00") * 8
        ods_body = struct.pack(">HH", 16, 8) + rle
        ods = struct.pack(">HBB", 0, 0, 0xC0) + len(ods_body).to_bytes(3, "big") + ods_body
        return (seg(0x16, pcs) + seg(0x17, struct.pack(">BBHHHH", 1, 0, 4, 4, 16, 8))
                + seg(0x14, struct.pack(">BBBBBBB", 0, 0, 1, 235, 128, 128, 255)) + seg(0x15, ods) + seg(0x80, b""))
    pcs = struct.pack(">HHBHBBBB", width, height, 0x10, number, 0x00, 0, 0, 0)
    return seg(0x16, pcs) + seg(0x17, struct.pack(">BBHHHH", 1, 0, 4, 4, 16, 8)) + seg(0x80, b"")


def make_bitmap_subtitle_clip(path, kind: str, *, frames: int = 25, width: int = 64, height: int = 48,
                              events=(0.1, 0.45, 0.8)) -> Path:
    """A clip with a DVD (``kind`` "dvdsub") or PGS ("pgs") subtitle track: one picture at each time in
    ``events`` (seconds), shown 0.2 s. Stands in for ripped DVD/Blu-ray files."""
    path = Path(path)
    sup = None
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        if kind == "dvdsub":
            ss = out.add_stream("dvdsub")
            ss.time_base = Fraction(1, 1000)
        elif kind == "pgs":
            data = b"".join(pgs_display_set(int(round(t * 90000)), width, height, True, 2 * i)
                            + pgs_display_set(int(round((t + 0.2) * 90000)), width, height, False, 2 * i + 1)
                            for i, t in enumerate(events))
            sup_path = path.with_name(path.stem + "_subs.sup")
            sup_path.write_bytes(data)
            sup = av.open(str(sup_path))
            ss = out.add_stream_from_template(sup.streams.subtitles[0])
        else:
            raise ValueError(f"unknown bitmap subtitle kind {kind!r}")
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern_rgb(width, height, i), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if sup is None:
            for t in events:
                p = av.Packet(dvd_spu(ticks=int(round(0.2 * 90000 / 1024))))
                p.stream, p.time_base = ss, Fraction(1, 1000)
                p.pts = p.dts = int(round(t * 1000))
                out.mux(p)
        else:
            for p in sup.demux(sup.streams.subtitles[0]):
                if p.dts is None or p.size == 0:
                    continue
                p.stream = ss
                out.mux(p)
            sup.close()
    return path
