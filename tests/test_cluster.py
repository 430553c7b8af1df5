"""`upshade upscale ... --ray`: files cut at keyframes, segments rendered by Ray tasks, joined by stream copy.

Ray runs here only: a local instance (2 CPUs) that this module starts once and stops, every step
bounded in time (SIGALRM). Tests skip where Ray is not installed, never in CI (.ci/run installs the
``cluster`` extra).
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import av
import pytest

from conftest import need
from media import make_clip, packets, truncated_copy, video_frame_times
from upshade.host import batch, cli, cluster, segments
from upshade.host.errors import UpshadeError

pytestmark = pytest.mark.gl

# Lossless and deterministic: frames compare exactly against the one-process output.
SETTINGS = ("--crf", "0", "--preset", "ultrafast")
# A shader whose output depends on the frame number: segments must number their frames as the whole file does.
FRAME_SHADER = ("//!HOOK MAIN\n//!BIND HOOKED\n"
                "vec4 hook() { float k = (frame % 3 == 0) ? 1.0 : 0.6; "
                "return vec4(HOOKED_tex(HOOKED_pos).rgb * k, 1.0); }\n")


@contextmanager
def deadline(seconds: int, what: str):
    def expire(signum, frame):
        raise TimeoutError(f"{what} took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def ray_module():
    try:
        import ray
    except ImportError:
        need("Ray is not installed (pip install '.[cluster]')")
    return ray


@pytest.fixture(scope="module")
def local_ray(ray_module):
    """A local Ray instance with 2 CPUs for this module: the CLI's --ray uses the instance it finds."""
    with deadline(120, "starting Ray"):
        ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    yield ray_module
    with deadline(60, "stopping Ray"):
        ray_module.shutdown()


def run_cli(*args) -> int:
    with deadline(180, "upscale --ray"):
        return cli.main(["upscale", *map(str, args)])


def decoded(path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p").tobytes() for f in c.decode(video=0)]


def hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob(".*"))


def test_no_cluster_at_the_address_is_one_line(ray_module, tmp_path, capsys):
    src = make_clip(tmp_path / "a.mkv", frames=2)
    assert run_cli(src, "-o", tmp_path / "out/", "--ray", "127.0.0.1:1", "--no-model") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("upshade: error: --ray 127.0.0.1:1: no Ray cluster at 127.0.0.1:1"), err
    assert not (tmp_path / "out").exists()


SIGTERM_AFTER_CONNECT = """
import os, signal, time
from upshade.host import cluster
got = []
signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
ray, started = cluster.connect(None, 1)
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
finally:
    ray.shutdown()
print("handled", got)
"""


def test_sigterm_still_reaches_the_command_after_ray_starts(ray_module, tmp_path):
    """ray.init replaced SIGTERM's handler (its C++ core aborted the process: no clean-up, segment files
    and the local instance's processes left behind); connect puts the command's handler back."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", SIGTERM_AFTER_CONNECT], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "handled [15]" in proc.stdout


CTRL_C_WHILE_RAY_STARTS = """
import os, signal, threading
from upshade.host import cluster
threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    cluster.connect(None, 1)
except KeyboardInterrupt:
    print("interrupted")
"""


def _alive_in_session(sid: int) -> dict[int, str]:
    """{pid: command line} of the live processes of session ``sid``."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                found[int(pid)] = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
        except (OSError, IndexError, ValueError):
            pass
    return found


def test_ctrl_c_while_ray_starts_leaves_none_of_its_processes(ray_module):
    """Ctrl-C mid-ray.init left the local instance's dashboard and runtime-env agents running; the start now
    holds it back and shuts down what it started."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_WHILE_RAY_STARTS], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in out, err[-2000:]
    time.sleep(1)
    left = _alive_in_session(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # the test's own leftovers
    assert list(left.values()) == []


def test_segments_are_frame_exact_against_one_process(local_ray, gl_ctx, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    src = make_clip(tmp_path / "src" / "clip.mkv", frames=40, options={"g": "10"}, audio="flac", subtitles="srt", chapters=[(0, 0.5, "one"), (0.5, 1.6, "two")],
                    metadata={"title": "T"})
    for p in (tmp_path / "src").glob("*.srt"):
        p.unlink()
    shader = tmp_path / "frame.glsl"
    shader.write_text(FRAME_SHADER)
    plan = segments.plan_segments(src, 0.3)
    assert [(s.start, s.end, s.first_index, s.frames) for s in plan] == [
        (None, 0.4, 0, 10), (0.4, 0.8, 10, 10), (0.8, 1.2, 20, 10), (1.2, None, 30, 10)]

    single = tmp_path / "single.mkv"
    assert run_cli(src, "-o", single, "--no-model", "--shader", shader, *SETTINGS) == 0
    out = tmp_path / "out"
    assert run_cli(src, "-o", f"{out}/", "--ray", "--segment", "0.3", "--no-model", "--shader", shader, *SETTINGS) == 0
    err = capsys.readouterr().err
    assert "upshade: 1 done, 0 skipped, 0 failed; 40 frames" in err
    joined = out / "clip.mkv"
    assert decoded(joined) == decoded(single)
    assert video_frame_times(joined) == video_frame_times(single)
    assert packets(joined, "audio") == packets(single, "audio") != []
    assert packets(joined, "subtitle") == packets(single, "subtitle") != []
    with av.open(str(joined)) as a, av.open(str(single)) as b:
        assert a.chapters() == b.chapters() and len(a.chapters()) == 2
        assert a.metadata.get("title") == "T"
        va, vb = a.streams.video[0], b.streams.video[0]
        assert (va.average_rate, va.codec_context.colorspace, va.codec_context.color_range) == \
               (vb.average_rate, vb.codec_context.colorspace, vb.codec_context.color_range)
        # every segment starts with a keyframe: 4 of them, where the source has them
        keys = [float(p.pts * p.time_base) for p in a.demux(va) if p.is_keyframe]
        assert [0.0, 0.4, 0.8, 1.2] == [k for k in keys if k in (0.0, 0.4, 0.8, 1.2)]
    assert hidden(out) == []

    # a second run skips the complete output
    assert run_cli(src, "-o", f"{out}/", "--ray", "--segment", "0.3", "--no-model", *SETTINGS) == 0
    assert "upshade: 0 done, 1 skipped, 0 failed" in capsys.readouterr().err


def test_a_worker_killed_mid_segment_is_retried_and_a_corrupt_file_fails_alone(local_ray, gl_ctx, tmp_path, capsys,
                                                                               monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    src = make_clip(lib / "c.mkv", frames=30, options={"g": "10"}, audio="flac")
    (lib / "bad.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really matroska " * 40)
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv(cluster.KILL_ENV, str(marks))
    out = tmp_path / "out"
    assert run_cli(lib, "-o", out, "--ray", "--segment", "0.3", "--no-model", *SETTINGS) == 1
    err = capsys.readouterr().err
    killed = [p.name for p in marks.iterdir()]  # segment 1's worker died once, mid-segment
    assert len(killed) == 1 and killed[0].startswith(".c.seg-") and killed[0].endswith("-0001.mp4.killed")
    assert "bad.mkv: not a readable media file" in err and "1 done, 0 skipped, 1 failed; 30 frames" in err
    assert sorted(p.name for p in out.iterdir()) == ["c.mkv"]
    assert hidden(out) == []  # the dead worker's half-written segment went with the others

    monkeypatch.delenv(cluster.KILL_ENV)
    single = tmp_path / "single.mkv"
    assert run_cli(src, "-o", single, "--no-model", *SETTINGS) == 0
    assert decoded(out / "c.mkv") == decoded(single)
    assert packets(out / "c.mkv", "audio") == packets(single, "audio")


def test_a_damaged_file_and_an_output_that_cannot_be_joined_are_told_as_one_process_tells_them(
        local_ray, gl_ctx, tmp_path, capsys, monkeypatch):
    """A segmented file that decodes short warns as one process does (it did not); messages name the paths
    given, not the absolute ones the workers got; a container that cannot hold a source's subtitles fails
    the file at its plan, before any segment is rendered (it failed at the join, after all of them)."""
    monkeypatch.chdir(tmp_path)
    lib = Path("lib")
    lib.mkdir()
    full = make_clip(tmp_path / "full.mkv", frames=40, options={"g": "10"})
    truncated_copy(full, lib / "cut.mkv", 0.6)
    make_clip(lib / "subs.mkv", frames=40, options={"g": "10"}, subtitles="ass")
    for p in lib.glob("*_subs.ass"):
        p.unlink()
    (lib / "s1").mkdir()
    make_clip(lib / "s1" / "in.mkv", frames=40, options={"g": "10"})
    Path("out").mkdir()
    Path("out", "s1").write_bytes(b"")  # a file where the output's folder goes
    settings = batch.RenderSettings(no_model=True)
    with pytest.raises(UpshadeError, match="mp4 container cannot hold the source's subtitle stream"):
        cluster.plan_task(str(lib / "subs.mkv"), str(tmp_path / "o.mp4"), 0.3, settings)
    assert len(segments.plan_segments(lib / "cut.mkv", 0.3)) > 1

    assert run_cli(lib, "-o", "out/", "--recursive", "--container", "mp4", "--ray", "--segment", "0.3",
                   "--no-model", *SETTINGS) == 1
    err = capsys.readouterr().err
    assert "upshade: warning: lib/cut.mkv: decoded only " in err
    assert "lib/subs.mkv: out/subs.mp4: the mp4 container cannot hold the source's subtitle stream" in err
    # the driver made the folders and a file in the way ended the whole run with a traceback
    assert "lib/s1/in.mkv: out/s1/in.mp4: out/s1 is a file, not a directory" in err
    assert "1 done, 0 skipped, 2 failed" in err
    assert str(tmp_path) not in err
    assert sorted(p.name for p in Path("out").iterdir()) == ["cut.mp4", "s1"]


def test_trimmed_files_are_one_task_each(local_ray, gl_ctx, tmp_path, capsys):
    src = make_clip(tmp_path / "t.mkv", frames=30, options={"g": "10"})
    out = tmp_path / "out.mkv"
    (tmp_path / "elsewhere.mkv").write_bytes(b"kept")
    out.symlink_to(tmp_path / "elsewhere.mkv")  # replaced, as one process replaces it; its target kept
    assert run_cli(src, "-o", out, "--ray", "--segment", "0.3", "--start", "0.2", "--duration", "0.6",
                   "--no-model", *SETTINGS) == 0
    assert not out.is_symlink() and (tmp_path / "elsewhere.mkv").read_bytes() == b"kept"
    assert len(decoded(out)) == 15
    assert video_frame_times(out)[0] == 0.0


def test_segments_of_a_video_only_clip_join_in_one_process(gl_ctx, tmp_path):
    """The segment steps without Ray: plan, render each, join into MP4; a join that does not hold the
    frames the segments rendered writes nothing."""
    src = make_clip(tmp_path / "v.mp4", frames=20, options={"g": "5"})
    settings = batch.RenderSettings(no_model=True, crf=0, preset="ultrafast")
    chain = settings.check()
    plan = segments.plan_segments(src, 0.2)
    assert [s.start for s in plan] == [None, 0.2, 0.4, 0.6]
    out = tmp_path / "out.mp4"
    parts = [segments.segment_path(out, "t", s.index) for s in plan]
    rendered = [segments.render_segment(gl_ctx, chain, src, s, p, settings)[0] for s, p in zip(plan, parts)]
    assert rendered == [5, 5, 5, 5]
    with pytest.raises(UpshadeError, match="the segments hold 20 frames, 21 were rendered"):
        segments.join_segments(src, parts, out, expected=21)
    assert not out.exists() and sorted(p.name for p in tmp_path.glob(".out.*")) == sorted(p.name for p in parts)
    assert segments.join_segments(src, parts, out, expected=20) == 20
    one = tmp_path / "one.mp4"
    batch.render_file(gl_ctx, chain, src, one, settings)
    assert decoded(out) == decoded(one)
    assert video_frame_times(out) == video_frame_times(one)
    segments.remove_segments(out, "t")
    assert hidden(tmp_path) == []
