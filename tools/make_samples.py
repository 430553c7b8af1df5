"""Regenerate the bundled sample media (host/samples/) from the Big Buck Bunny excerpt.

    python -m upshade.tools.make_samples [../shared/data/video/bigbuckbunny_720p25_aac.mp4]

Needs only PyAV and numpy (no torch, no ffmpeg binary). Writes, replacing what is there:

- ``bbb_640x360.mkv``: the first 3.6 s of the excerpt, area-downscaled 2x to 640x360
  (H.264 yuv420p, tagged BT.709 like its HD source, 25 fps), its audio downmixed to
  stereo AAC, and a subtitle track (SubRip) of two short events written here;
- ``bbb_640x360.png``: frame 50 (2.0 s) of the same span, area-downscaled to 640x360
  from the decoded HD frame (BT.709 -> RGB), 8-bit RGB.

The libx264 encoder runs on one thread with fixed settings, so a rerun with the
same FFmpeg build gives the same bytes. Big Buck Bunny is (c) Blender Foundation,
CC-BY 3.0 (https://peach.blender.org); see host/samples/README.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..host.api import SAMPLES_DIR, atomic_output, write_image

DEFAULT_SOURCE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "video" / \
    "bigbuckbunny_720p25_aac.mp4"

VIDEO_NAME = "bbb_640x360.mkv"
IMAGE_NAME = "bbb_640x360.png"
SIZE = (640, 360)
FRAMES = 90          # 3.6 s at 25 fps
IMAGE_FRAME = 50     # the bunny stretching: fur, grass, sky
CRF = "21"
AUDIO_RATE = 48000
AUDIO_BITRATE = 96_000

SUBTITLES = (
    "1\n00:00:00,300 --> 00:00:01,700\nBig Buck Bunny (c) Blender Foundation, CC-BY 3.0\n\n"
    "2\n00:00:01,900 --> 00:00:03,400\nupshade sample: 640x360, upscaled x2 by a shader network\n\n"
)


def make_samples(source: Path, out_dir: Path = SAMPLES_DIR) -> list[Path]:
    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise SystemExit(f"make_samples: {source}: no such file (the Big Buck Bunny excerpt)")
    out_dir.mkdir(parents=True, exist_ok=True)
    video_out, image_out = out_dir / VIDEO_NAME, out_dir / IMAGE_NAME
    rate = Fraction(25)
    end = FRAMES / rate

    with tempfile.TemporaryDirectory() as tmpdir, atomic_output(video_out, [source]) as tmp_video, \
            atomic_output(image_out, [source]) as tmp_image:
        srt = Path(tmpdir) / "subs.srt"
        srt.write_text(SUBTITLES)
        with av.open(str(source)) as src, av.open(str(srt)) as subs, av.open(str(tmp_video), "w", options={"fflags": "+bitexact"}) as out:
            out.metadata["title"] = "Big Buck Bunny (excerpt), upshade sample"
            out.metadata["copyright"] = "(c) copyright 2008, Blender Foundation / www.bigbuckbunny.org"
            out.metadata["license"] = "CC-BY 3.0"
            vs = out.add_stream("libx264", rate=rate, options={
                "crf": CRF, "preset": "slow", "threads": "1",
                "x264-params": "keyint=50:min-keyint=25:scenecut=0"})
            vs.width, vs.height, vs.pix_fmt = *SIZE, "yuv420p"
            vs.codec_context.time_base = 1 / rate
            cc = vs.codec_context
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1  # BT.709, limited
            aus = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            aus.codec_context.bit_rate = AUDIO_BITRATE
            sub_out = out.add_stream_from_template(subs.streams.subtitles[0])
            sub_out.metadata["language"] = "eng"
            sub_out.metadata["title"] = "Attribution"

            # Video: decoded HD frames, area-downscaled 2x in YCbCr (no matrix change), tagged BT.709.
            for i, frame in enumerate(src.decode(video=0)):
                if i >= FRAMES:
                    break
                if i == IMAGE_FRAME:
                    rgb = frame.to_ndarray(format="rgb24", width=SIZE[0], height=SIZE[1], interpolation="AREA",
                                           src_colorspace="ITU709", dst_colorspace="ITU709")
                    write_image(tmp_image, np.ascontiguousarray(rgb))
                small = frame.reformat(width=SIZE[0], height=SIZE[1], format="yuv420p", interpolation="AREA")
                small.pts, small.time_base = i, 1 / rate
                small.colorspace, small.color_primaries, small.color_trc, small.color_range = 1, 1, 1, 1
                out.mux(vs.encode(small))
            out.mux(vs.encode(None))

            # Audio: 5.1 -> stereo AAC, the same span.
            src.seek(0)
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            done = 0
            total = int(end * AUDIO_RATE)
            for aframe in src.decode(audio=0):
                for f in resampler.resample(aframe):
                    keep = min(f.samples, total - done)
                    if keep <= 0:
                        break
                    if keep < f.samples:
                        arr = f.to_ndarray()[:, :keep]
                        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format="fltp", layout="stereo")
                        f.sample_rate = AUDIO_RATE
                    f.pts, f.time_base = done, Fraction(1, AUDIO_RATE)
                    done += f.samples
                    out.mux(aus.encode(f))
                if done >= total:
                    break
            out.mux(aus.encode(None))

            for packet in subs.demux(subs.streams.subtitles[0]):
                if packet.dts is None or packet.size == 0:
                    continue
                packet.stream = sub_out
                out.mux(packet)
    return [video_out, image_out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m upshade.tools.make_samples", description=__doc__.split("\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help=f"the Big Buck Bunny excerpt (default: {DEFAULT_SOURCE})")
    parser.add_argument("--out-dir", type=Path, default=SAMPLES_DIR, help=f"where to write (default: {SAMPLES_DIR})")
    args = parser.parse_args(argv)
    for p in make_samples(args.source, args.out_dir):
        print(f"{p}: {p.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
