"""Audio playback that is also the master clock of ``upshade play``.

A thread decodes one of the file's audio streams (the first by default) with PyAV and resamples it to
float32 stereo at the device rate; PortAudio (through sounddevice) pulls the
samples in its callback. The clock reads the media time of the sample being
heard: the time of the samples handed to the device, minus the device's output
latency, interpolated between callbacks with the monotonic clock.
"""

from __future__ import annotations

import collections
import logging
import math
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np

from .clock import MonotonicClock

log = logging.getLogger("upshade.audio")

CHANNELS = 2
DEFAULT_RATE = 48000
QUEUE_SECONDS = 0.5  # decoded audio kept ahead of the device: enough to ride out a slow frame


class AudioUnavailable(Exception):
    """No way to play sound here (no PortAudio, no output device, device refused the format)."""


# What to install, said where sound is missing (the player goes on silently).
INSTALL_SOUNDDEVICE = "pip install 'upshade[audio]'"
INSTALL_PORTAUDIO = "apt-get install libportaudio2 (PortAudio; brew install portaudio on macOS)"


def _import_sounddevice():
    try:
        import sounddevice as sd
    except ImportError:
        raise AudioUnavailable(f"the sounddevice package is not installed: {INSTALL_SOUNDDEVICE}") from None
    except OSError as exc:  # sounddevice is there, the PortAudio library it loads is not
        raise AudioUnavailable(f"the PortAudio library is missing ({exc}): {INSTALL_PORTAUDIO}") from None
    return sd


def _sounddevice_stream(samplerate: int, channels: int, callback):
    sd = _import_sounddevice()
    try:
        dev = sd.query_devices(kind="output")
    except Exception as exc:  # PortAudioError, ValueError: no default output device
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise AudioUnavailable(f"PortAudio finds no audio output device ({detail}); a sound card, or an ALSA, "
                               f"PulseAudio or PipeWire output, is needed") from None
    rate = samplerate or int(dev.get("default_samplerate") or DEFAULT_RATE)
    try:
        return sd.OutputStream(samplerate=rate, channels=channels, dtype="float32", callback=callback)
    except Exception as exc:
        raise AudioUnavailable(f"cannot open the audio output device: {exc}") from None


class AudioClock:
    """Plays ``path``'s audio from ``start`` seconds and tells the media time being heard.

    ``stream_factory(samplerate, channels, callback)`` returns an object with
    ``samplerate``, ``latency``, ``start()``, ``stop()`` and ``close()`` (a
    sounddevice.OutputStream by default; tests pass one they drive by hand).
    ``samplerate`` 0 means the device's default rate.
    """

    kind = "audio clock"

    def __init__(self, path, start: float = 0.0, *, stream_factory=None, samplerate: int = 0, now=time.monotonic,
                 stream: int = 0):
        """``stream``: which audio stream plays (0 = the first; ``--aid N`` is stream N - 1)."""
        self.path = Path(path)
        self._now = now
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise AudioUnavailable(f"{self.path}: cannot open for audio: {exc}") from None
        if len(self._container.streams.audio) <= stream:
            self._container.close()
            raise AudioUnavailable(f"{self.path}: no audio stream {stream + 1}")
        self._astream = self._container.streams.audio[stream]
        self._lock = threading.Condition()
        self._chunks: collections.deque = collections.deque()  # (gen, pts, float32 [n, 2]) in play order
        self._queued = 0                 # samples in _chunks
        self._offset = 0                 # samples of _chunks[0] already played
        self._gen = 0
        self._seek_to: float | None = float(start)
        self._ended_gen = -1
        self._stop = False
        self.paused = False
        self.underruns = 0
        # Clock state: the media time of the first sample of the last block given to the device, the
        # end of its real (non-silent) samples, and when that callback ran.
        self._block_pts = self._block_end = float(start)
        self._cb_time = now()
        self._frozen: float | None = None
        factory = stream_factory or _sounddevice_stream
        try:
            self._stream = factory(samplerate, CHANNELS, self._callback)
            self.rate = int(self._stream.samplerate)
        except BaseException:
            self._container.close()
            raise
        self._max_queued = int(self.rate * QUEUE_SECONDS)
        self._thread = threading.Thread(target=self._decode_loop, name=f"audio:{self.path.name}", daemon=True)
        self._thread.start()
        try:
            self._stream.start()
        except Exception as exc:
            self.close()
            raise AudioUnavailable(f"cannot start audio output: {exc}") from None

    # --- clock interface --------------------------------------------------------------------
    @property
    def latency(self) -> float:
        lat = self._stream.latency
        return float(lat[1] if isinstance(lat, (tuple, list)) else lat)

    def time(self) -> float:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            t = self._block_pts + (self._now() - self._cb_time)
            if self._ended_gen != self._gen:
                # Never run ahead of the audio actually delivered (underrun: the clock stalls with the sound).
                t = min(t, self._block_end)
            return t - self.latency

    def pause(self) -> None:
        if not self.paused:
            t = self.time()
            with self._lock:
                self._frozen = t
                self.paused = True

    def resume(self) -> None:
        with self._lock:
            if not self.paused:
                return
            self.paused = False
            # Hold the clock at the paused time until the device asks for (and plays) new samples.
            self._block_pts = self._block_end = self._frozen + self.latency
            self._cb_time = self._now()
            self._frozen = None

    def seek(self, t: float) -> None:
        t = max(0.0, float(t))
        with self._lock:
            self._gen += 1
            self._seek_to = t
            self._chunks.clear()
            self._queued = self._offset = 0
            # The first sample at t is heard one output latency after the device takes it.
            self._block_pts = self._block_end = t
            self._cb_time = self._now()
            if self._frozen is not None:
                self._frozen = t - self.latency
            self._lock.notify_all()

    def wait(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def presented(self, pts: float, duration: float) -> None:
        """Nothing to do: the sound card sets the pace."""

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        try:
            self._stream.stop()
            self._stream.close()
        except Exception:
            pass
        if self._thread.is_alive():
            self._thread.join(5)
        self._container.close()

    # --- device side --------------------------------------------------------------------------
    def _callback(self, outdata, frames, _time_info, _status) -> None:
        """PortAudio's thread: copy queued samples out; silence where there are none (paused, underrun)."""
        with self._lock:
            if self.paused:
                outdata.fill(0)
                return
            filled = 0
            first_pts = None
            while filled < frames and self._chunks:
                gen, pts, data = self._chunks[0]
                take = min(frames - filled, len(data) - self._offset)
                if first_pts is None:
                    first_pts = pts + self._offset / self.rate
                outdata[filled:filled + take] = data[self._offset:self._offset + take]
                filled += take
                self._offset += take
                self._queued -= take
                if self._offset >= len(data):
                    self._chunks.popleft()
                    self._offset = 0
            if filled < frames:
                outdata[filled:].fill(0)
                if self._ended_gen != self._gen:
                    self.underruns += 1
            if first_pts is not None:
                self._block_pts = first_pts
                self._block_end = first_pts + filled / self.rate
            else:
                self._block_pts = self._block_end = min(self._block_pts + (self._now() - self._cb_time), self._block_end)
            self._cb_time = self._now()
            self._lock.notify_all()

    # --- decoding thread ------------------------------------------------------------------------
    def _decode_loop(self) -> None:
        stream = self._astream
        resampler = None
        gen, target, pts = 0, 0.0, None
        packets = iter(())
        frames = iter(())
        while True:
            with self._lock:
                if self._stop:
                    return
                request = None
                if self._seek_to is not None:
                    request = gen, target = self._gen, self._seek_to
                    self._seek_to = None
                elif self._ended_gen == gen:
                    self._lock.wait(0.1)
                    continue
            if request is not None:
                try:
                    self._container.seek(int(math.floor(target / stream.time_base)), stream=stream, backward=True)
                except av.FFmpegError:
                    self._container.seek(0, backward=True)
                stream.codec_context.flush_buffers()
                resampler = av.AudioResampler(format="flt", layout="stereo", rate=self.rate)
                packets = self._container.demux(stream)
                frames = iter(())
                pts = None
            try:
                frame = next(frames, None)
                while frame is None:
                    packet = next(packets, None)
                    if packet is None:
                        frame = "end"
                        break
                    frames = iter(self._decode(packet))
                    frame = next(frames, None)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: audio decoding stopped: %s", self.path, exc)
                frame = "end"
            if frame == "end":
                out = resampler.resample(None)
                self._push_all(out, gen, target, pts)
                with self._lock:
                    if gen == self._gen:
                        self._ended_gen = gen
                continue
            if pts is None:
                pts = float(frame.time) if frame.time is not None else target
            pts = self._push_all(resampler.resample(frame), gen, target, pts)

    def _decode(self, packet):
        try:
            return packet.decode()
        except av.InvalidDataError:
            return []  # a damaged packet: skip it, as the video decoder conceals damage

    def _push_all(self, frames, gen: int, target: float, pts: float | None) -> float | None:
        """Queue resampled frames (dropping samples before ``target``); returns the next sample's time."""
        for f in frames:
            data = f.to_ndarray().reshape(-1, CHANNELS)
            if pts is None:
                pts = target
            if pts < target:  # seek landed before the target: drop the samples in between
                skip = min(len(data), int(round((target - pts) * self.rate)))
                data, pts = data[skip:], pts + skip / self.rate
            if len(data):
                self._push(gen, pts, np.ascontiguousarray(data, dtype=np.float32))
                pts += len(data) / self.rate
        return pts

    def _push(self, gen: int, pts: float, data: np.ndarray) -> None:
        with self._lock:
            while not self._stop and gen == self._gen and self._queued >= self._max_queued:
                self._lock.wait(0.1)
            if self._stop or gen != self._gen:
                return
            self._chunks.append((gen, pts, data))
            self._queued += len(data)


def open_clock(path, has_audio: bool, start: float = 0.0, *, audio: bool = True, notify=None, stream_factory=None,
               stream: int = 0):
    """The audio clock when the file has audio and a device can play it, else the system clock.

    When audio exists but cannot be played, ``notify`` (default: stderr) gets one line saying why.
    ``stream`` picks the audio stream (0 = the first).
    """
    if not (audio and has_audio):
        return MonotonicClock(start)
    try:
        return AudioClock(path, start, stream_factory=stream_factory, stream=stream)
    except AudioUnavailable as exc:
        message = f"upshade: no sound ({exc}); playing video only, timed by the system clock"
        (notify or (lambda m: print(m, file=sys.stderr)))(message)
        return MonotonicClock(start)
