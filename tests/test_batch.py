"""`upshade upscale IN... -o OUTDIR`: a folder of clips, resumable, one failure never stops the others."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from media import make_clip, packets, video_frame_times
from upshade.host import batch, cli
from upshade.host.errors import UpshadeError

pytestmark = pytest.mark.gl

FAST = ("--no-model", "--preset", "ultrafast")


def run_cli(*args) -> int:
    return cli.main(["upscale", *map(str, args)])


def hidden(d: Path) -> list[str]:
    """Temporary files (``.NAME.part-...``, segments) anywhere under ``d``."""
    return sorted(str(p.relative_to(d)) for p in d.rglob(".*"))


def frames(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


@pytest.fixture
def library(tmp_path) -> Path:
    """A folder: a clip with audio, one with a subtitle stream, a corrupt one, a text file (ignored)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    make_clip(lib / "a.mkv", frames=8, audio="flac")
    make_clip(lib / "b.mkv", frames=6, subtitles="srt")
    (lib / "bad.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really matroska " * 40)
    (lib / "notes.txt").write_text("not a video")
    for p in lib.glob("*_subs.srt"):
        p.unlink()
    return lib


def test_a_folder_is_upscaled_the_corrupt_file_reported_and_a_second_run_skips(gl_ctx, library, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(library, "-o", f"{out}/", *FAST) == 1
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.mkv", "b.mkv"]
    for name in ("a.mkv", "b.mkv"):
        src, dst = library / name, out / name
        assert frames(dst) == frames(src)
        assert video_frame_times(dst) == pytest.approx(video_frame_times(src), abs=1e-6)
        assert packets(dst, "audio") == packets(src, "audio")
        assert packets(dst, "subtitle") == packets(src, "subtitle")
    assert packets(out / "a.mkv", "audio") and packets(out / "b.mkv", "subtitle")
    assert "upshade: failed [" in err and "bad.mkv: not a readable media file" in err
    assert "upshade: 2 done, 0 skipped, 1 failed; 14 frames" in err
    assert hidden(out) == []

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert run_cli(library, "-o", out, *FAST) == 1  # an existing folder: directory mode without the slash
    err = capsys.readouterr().err
    assert "upshade: 0 done, 2 skipped, 1 failed" in err
    assert f"({out / 'a.mkv'} exists)" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    assert run_cli(library / "a.mkv", library / "b.mkv", "-o", out, "--overwrite", *FAST) == 0
    assert "upshade: 2 done, 0 skipped, 0 failed" in capsys.readouterr().err
    assert (out / "a.mkv").stat().st_mtime_ns != stamps["a.mkv"]


def test_recursive_glob_and_container(gl_ctx, tmp_path, capsys):
    lib = tmp_path / "lib"
    (lib / "s1").mkdir(parents=True)
    make_clip(lib / "s1" / "e1.mkv", frames=3, audio=True)
    make_clip(lib / "top.mov", frames=3)
    make_clip(lib / "skip.mkv", frames=3)
    out = tmp_path / "out"
    assert run_cli(lib, "-o", f"{out}/", "--recursive", "--glob", "e*.mkv", "--glob", "*.mov",
                   "--container", "mp4", *FAST) == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["s1/e1.mp4", "top.mp4"]
    assert frames(out / "s1" / "e1.mp4") == 3 and packets(out / "s1" / "e1.mp4", "audio")
    # without --recursive only the folder's own files
    assert run_cli(lib, "-o", tmp_path / "flat", *FAST) == 0
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == ["skip.mkv", "top.mkv"]


def test_a_folder_or_a_file_in_the_way_of_an_output_fails_that_file_in_one_line(gl_ctx, tmp_path, capsys):
    """A folder named as an output was skipped as complete; a file where a mirrored subfolder goes gave a
    FileExistsError line."""
    lib = tmp_path / "lib"
    (lib / "s1").mkdir(parents=True)
    make_clip(lib / "a.mkv", frames=2)
    make_clip(lib / "s1" / "b.mkv", frames=2)
    make_clip(lib / "c.mkv", frames=2)
    out = tmp_path / "out"
    (out / "a.mkv").mkdir(parents=True)
    (out / "s1").write_bytes(b"")
    assert run_cli(lib, "-o", out, "--recursive", *FAST) == 1
    err = capsys.readouterr().err
    assert f"{lib / 'a.mkv'}: {out / 'a.mkv'}: output path is a directory" in err
    assert f"{lib / 's1' / 'b.mkv'}: {out / 's1' / 'b.mkv'}: {out / 's1'} is a file, not a directory" in err
    assert "1 done, 0 skipped, 2 failed" in err and "Error:" not in err
    assert frames(out / "c.mkv") == 2


def test_directory_mode_rules(tmp_path):
    f = make_clip(tmp_path / "a.mkv", frames=1)
    assert not batch.directory_mode([f], str(tmp_path / "o.mkv"))
    assert batch.directory_mode([f], str(tmp_path / "new") + "/")
    assert batch.directory_mode([f], str(tmp_path))  # an existing folder
    assert batch.directory_mode([f, f], str(tmp_path / "o"))
    assert batch.directory_mode([tmp_path], str(tmp_path / "o"))


def error(capsys, *args) -> str:
    assert run_cli(*args) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("upshade"), lines
    return lines[0]


def test_errors_are_one_line_and_touch_nothing(tmp_path, capsys, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    make_clip(lib / "a.mkv", frames=2)
    make_clip(tmp_path / "a.mp4", frames=2)
    before = sorted(tmp_path.rglob("*"))

    line = error(capsys, lib, "-o", lib / "up/", *FAST)
    assert "the output folder is inside the input folder" in line and str(lib) in line
    line = error(capsys, lib / "a.mkv", tmp_path / "a.mp4", "-o", tmp_path / "out/", *FAST)
    assert "two inputs map to this output" in line and "a.mkv" in line and "a.mp4" in line
    line = error(capsys, lib / "a.mkv", "-o", tmp_path / "one.mkv", "--container", "mp4", *FAST)
    assert "--container mp4: for an output folder" in line
    line = error(capsys, tmp_path / "nope", lib, "-o", tmp_path / "out/", *FAST)
    assert "nope: no such file or folder" in line
    (tmp_path / "empty").mkdir()
    before.append(tmp_path / "empty")
    assert "no video files found" in error(capsys, tmp_path / "empty", "-o", tmp_path / "out/", *FAST)
    assert "--workers 2: for --ray" in error(capsys, lib, "-o", tmp_path / "out/", "--workers", "2", *FAST)
    # every output of the folder would fail alike: once, before any file
    line = error(capsys, lib, "-o", tmp_path / "out/", "--container", "webm", *FAST)
    assert line == "upshade: error: --container webm: the webm container cannot hold libx264 video"
    bad = tmp_path / "bad.glsl"
    bad.write_text("//!HOOK MAIN\n//!BIND FOO\nvec4 hook() { return FOO_tex(FOO_pos); }\n")
    before.append(bad)
    for options, message in [
            (("--shader", bad), "bad.glsl:2: BIND of texture 'FOO' that no pass saves"),
            (("--model", "S", "--param", "X=1"), "--param X=1: unknown parameter 'X'"),
            (("--param", "X=1"), "--param X=1: unknown parameter 'X'"),
            (("--no-model", "--pix-fmt", "foo"), "libx264 cannot encode pixel format foo"),
            (("--no-model", "--size", "abc"), "--size 'abc': expected WIDTHxHEIGHT"),
            (("--no-model", "--burn-subs", "nope.srt"), "--burn-subs nope.srt: no such subtitle file")]:
        line = error(capsys, lib, "-o", tmp_path / "out/", *options)
        assert message in line, line
    assert sorted(tmp_path.rglob("*")) == sorted(before)

    # a read-only output folder (simulated: the tests may run as root, which writes anywhere)
    (tmp_path / "ro").mkdir()
    before.append(tmp_path / "ro")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path / "ro" and real_access(p, mode))
    line = error(capsys, lib, "-o", tmp_path / "ro/", *FAST)
    assert line == f"upshade: error: {tmp_path / 'ro'}: the output folder is not writable"
    line = error(capsys, lib, "-o", tmp_path / "ro" / "new" / "", *FAST)
    assert line.endswith(f"{tmp_path / 'ro' / 'new'}: the output folder is not writable (it would be created in "
                         f"{tmp_path / 'ro'})")
    monkeypatch.setattr(os, "access", real_access)
    assert sorted(tmp_path.rglob("*")) == sorted(before)

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    line = error(capsys, lib, "-o", tmp_path / "out/", "--ray", *FAST)
    assert "--ray needs Ray" in line and "pip install 'upshade[cluster]'" in line
    # a bare --ray followed by an input: the input is not taken for an address
    line = error(capsys, "--ray", lib / "a.mkv", "-o", tmp_path / "out/", *FAST)
    assert "pip install 'upshade[cluster]'" in line
    with pytest.raises(SystemExit) as exit_:
        run_cli(lib, "-o", tmp_path / "o/", "--ray", "bogus")  # a usage error: argparse exits 2
    assert exit_.value.code == 2
    assert "--ray bogus: expected auto, HOST:PORT" in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == sorted(before)


def test_settings_keep_the_paths_given_and_go_to_ray_absolute(tmp_path, monkeypatch):
    """Messages name the files as given (a shader error named its absolute path); Ray's workers get them
    absolute."""
    monkeypatch.chdir(tmp_path)
    Path("x.glsl").write_text("//!HOOK MAIN\n//!BIND HOOKED\nvec4 hook() { return HOOKED_tex(HOOKED_pos); }\n")
    Path("s.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nHi\n")
    settings = batch.RenderSettings(shaders=("x.glsl",), burn_subs="s.srt")
    settings.check()
    assert settings.absolute() == batch.RenderSettings(shaders=(str(tmp_path / "x.glsl"),),
                                                       burn_subs=str(tmp_path / "s.srt"))
    assert batch.RenderSettings(burn_subs="2").absolute().burn_subs == "2"   # a track number


def test_ctrl_c_mid_batch_leaves_no_partial_file_and_the_next_run_resumes(gl_ctx, tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("1.mkv", "2.mkv", "3.mkv"):
        make_clip(lib / name, width=128, height=96, frames=60)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "upshade.host.cli", "upscale", str(lib), "-o", f"{out}/", *FAST],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(".part-" in p.name for p in out.iterdir()):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "upshade: interrupted" in err
    assert hidden(out) == []
    done = sorted(p.name for p in out.iterdir())
    assert len(done) < 3
    for name in done:
        assert frames(out / name) == 60

    assert run_cli(lib, "-o", out, *FAST) == 0
    err = capsys.readouterr().err
    assert f"{3 - len(done)} done, {len(done)} skipped, 0 failed" in err
    assert all(frames(out / n) == 60 for n in ("1.mkv", "2.mkv", "3.mkv"))


def test_plan_jobs_mirrors_names_and_dedupes(tmp_path):
    lib = tmp_path / "lib"
    (lib / "s").mkdir(parents=True)
    for rel in ("x.mp4", "s/y.avi", "s/.hidden.mkv"):
        (lib / rel).write_bytes(b"")
    jobs = batch.plan_jobs([lib, lib / "x.mp4"], tmp_path / "o", "mkv", recursive=True)
    assert [(j.src.relative_to(lib).as_posix(), j.out.relative_to(tmp_path / "o").as_posix()) for j in jobs] == [
        ("x.mp4", "x.mkv"), ("s/y.avi", "s/y.mkv")]
    with pytest.raises(UpshadeError, match="same file as the input"):
        batch.plan_jobs([lib / "x.mp4"], lib, "mp4")


COMPILE_LOOP = """
import os, signal, threading
from upshade.host.gpu import create_headless_context
ctx = create_headless_context()
src = '''#version 430
layout(local_size_x = 8, local_size_y = 8) in;
layout(rgba32f, binding = 0) uniform image2D img;
uniform float k%d;
void main() {
    ivec2 p = ivec2(gl_GlobalInvocationID.xy);
    vec4 v = imageLoad(img, p);
    for (int i = 0; i < 20; i++) v = sin(v * k%d + float(i));
    imageStore(img, p, v);
}'''
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
n = 0
try:
    while True:
        ctx.compute_shader(src % (n, n))
        n += 1
except KeyboardInterrupt:
    print("interrupted after", n, "compiles")
"""


def test_ctrl_c_during_a_shader_compile_interrupts_instead_of_crashing():
    """moderngl crashed (SIGSEGV) when Ctrl-C's KeyboardInterrupt surfaced inside its compile: a file's
    start-up, where a batch spends seconds per file on llvmpipe. gpu.signals_held holds it back."""
    proc = subprocess.run([sys.executable, "-c", COMPILE_LOOP], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "interrupted after" in proc.stdout
