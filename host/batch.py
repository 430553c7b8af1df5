"""``upshade upscale IN... -o OUTDIR``: a whole library, one file after another, resumable.

The job list: files and folders (``--recursive``, ``--glob``) expanded to
sources, each mapped to ``OUTDIR/<its name, or its path inside the folder given>``
with the chosen container's extension. An output that exists under its final
name is complete (every output is written under a hidden temporary name and
renamed only on success, host/fileio.AtomicOutput), so it is skipped: a
second run after a crash or Ctrl-C picks up where the first stopped
(``--overwrite`` redoes them). One failing file never stops the others; the
run ends with a summary table and exits 1 if any file failed.

Directory mode (rather than the one-file ``upscale IN -o OUT``): several
inputs, a folder input, ``-o`` naming an existing folder or ending in ``/``.

``run_local`` renders the jobs here on one GL context; host/cluster.py runs
the same jobs on Ray. Both report through ``Report`` (an overall progress
bar in frames, a line per file) and ``summary``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from .chain import output_size, parse_params, parse_size, shader_chain
from .encode import available_encoder, check_container, check_pix_fmt, encoder_options, open_output
from .errors import UpshadeError
from .fileio import check_output_path
from .gpu import create_headless_context
from .progress import progress
from .subdraw import burn_file
from .transcode import upscale_video
from .video import probe

# What a folder input contributes without --glob: the usual video containers.
VIDEO_EXTENSIONS = frozenset({
    ".mkv", ".mp4", ".m4v", ".mov", ".avi", ".webm", ".ts", ".m2ts", ".mts", ".mpg", ".mpeg", ".wmv",
    ".flv", ".ogv", ".vob", ".3gp", ".y4m",
})
CONTAINERS = ("mkv", "mp4", "mov", "webm")
DEFAULT_CONTAINER = "mkv"


@dataclass(frozen=True)
class RenderSettings:
    """How every file of a run is rendered and encoded: the ``upscale`` options, picklable (Ray
    ships them to workers; shader paths are absolute so that they mean the same file there)."""

    model: str | None = None
    shaders: tuple[str, ...] = ()
    no_model: bool = False
    params: tuple[tuple[str, str], ...] = ()
    scale: float | None = None
    size: str | None = None
    codec: str = "h264"
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    start: float = 0.0
    duration: float | None = None
    fbo_format: str = "auto"
    burn_subs: str | None = None

    @classmethod
    def from_args(cls, args) -> "RenderSettings":
        return cls(model=args.model, shaders=tuple(args.shader), no_model=args.no_model,
                   params=tuple(parse_params(args.param).items()), scale=args.scale, size=args.size,
                   codec=args.codec, crf=args.crf, preset=args.preset, pix_fmt=args.pix_fmt, start=args.start,
                   duration=args.duration, fbo_format=args.fbo_format, burn_subs=args.burn_subs)

    def absolute(self) -> "RenderSettings":
        """These settings with the shader and subtitle files' paths made absolute: they mean the same files
        to Ray's workers, whatever their working folder."""
        burn = burn_file(self.burn_subs)
        return dataclasses.replace(self, shaders=tuple(str(Path(s).absolute()) for s in self.shaders),
                                   burn_subs=self.burn_subs if burn is None else str(burn.absolute()))

    def check(self):
        """Fail before any file is touched on what is wrong for every file alike: the chain (model, shader
        files, --param), the encoder options and pixel format, --size, a subtitle file to burn in. Returns
        the chain."""
        burn_file(self.burn_subs)
        chain = shader_chain(self.model, self.shaders, self.no_model)
        chain.check(dict(self.params))
        encoder = available_encoder(self.codec)
        encoder_options(encoder, self.crf, self.preset)
        if self.pix_fmt:
            check_pix_fmt(encoder, self.pix_fmt)
        if self.size:
            parse_size(self.size)
        return chain

    @property
    def splittable(self) -> bool:
        """Whether a file may be cut into segments (host/segments.py): whole files only, no burned subtitles."""
        return not self.start and self.duration is None and not self.burn_subs


@dataclass(frozen=True)
class Job:
    src: Path
    out: Path


@dataclass
class Result:
    job: Job
    status: str                 # "done", "skipped" or "failed"
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float | None:
        return self.frames / self.seconds if self.frames and self.seconds > 0 else None


# --------------------------------------------------------------------------- the job list


def directory_mode(inputs, output: str) -> bool:
    """Whether ``-o`` names a folder of outputs rather than one output file."""
    return (len(inputs) > 1 or any(Path(i).is_dir() for i in inputs)
            or output.endswith(("/", os.sep)) or Path(output).is_dir())


def _wanted(name: str, globs) -> bool:
    if name.startswith("."):
        return False  # hidden files, our own temporary outputs among them
    if globs:
        return any(fnmatch.fnmatch(name, g) for g in globs)
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


def _files_in(folder: Path, recursive: bool, globs) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and _wanted(p.name, globs))
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root, f) for f in sorted(files) if _wanted(f, globs)]
    return found


def find_sources(inputs, recursive: bool = False, globs=()) -> list[tuple[Path, Path]]:
    """(source, its name relative to the output folder) for every input: a file as itself (its name),
    a folder as the matching files in it (their paths inside it)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += [(f, f.relative_to(item)) for f in _files_in(item, recursive, globs)]
        elif item.exists():
            found.append((item, Path(item.name)))
        else:
            raise UpshadeError(f"{item}: no such file or folder")
    return found


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def plan_jobs(inputs, outdir, container: str = DEFAULT_CONTAINER, recursive: bool = False, globs=()) -> list[Job]:
    """The jobs of a directory-mode run. Refuses, in one line each: an output folder inside an input
    folder, two inputs mapping to the same output, an output that is an input."""
    outdir = Path(outdir)
    for folder in (Path(i) for i in inputs if Path(i).is_dir()):
        if _inside(outdir, folder):
            raise UpshadeError(f"{outdir}: the output folder is inside the input folder {folder}; "
                               f"its outputs would be read as inputs (choose a folder outside it)")
    sources = find_sources(inputs, recursive, globs)
    if not sources:
        where = ", ".join(map(str, inputs))
        raise UpshadeError(f"{where}: no video files found ({', '.join(sorted(VIDEO_EXTENSIONS))}; "
                           f"--glob PATTERN picks others, --recursive looks into subfolders)")
    jobs, by_out, seen = [], {}, set()
    for src, rel in sources:
        key = src.resolve()
        if key in seen:
            continue  # the same file named twice (directly and through its folder)
        seen.add(key)
        out = outdir / rel.with_suffix("." + container)
        other = by_out.get(out.resolve())
        if other is not None:
            raise UpshadeError(f"{out}: two inputs map to this output: {other} and {src} "
                               f"(rename one, or upscale them into separate folders)")
        if out.resolve() == key:
            raise UpshadeError(f"{out}: output is the same file as the input; refusing to overwrite it")
        by_out[out.resolve()] = src
        jobs.append(Job(src, out))
    return jobs


def split_skipped(jobs, overwrite: bool) -> tuple[list[Job], list[Result]]:
    """(jobs to run, results of those skipped because their output is complete: a file; a folder of that
    name is no output, and fails)."""
    if overwrite:
        return list(jobs), []
    todo, skipped = [], []
    for job in jobs:
        if job.out.is_file():
            skipped.append(Result(job, "skipped", reason=f"{job.out} exists"))
        else:
            todo.append(job)
    return todo, skipped


def prepare(args, inputs, directory: bool) -> tuple[list[Job], RenderSettings, bool]:
    """(jobs, settings, overwrite) of an ``upscale`` run, everything checked before any work."""
    settings = RenderSettings.from_args(args)
    settings.check()
    if not directory:
        src, out = Path(inputs[0]), Path(args.output)
        check_output_path(out, [src])
        return [Job(src, out)], settings, True
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise UpshadeError(f"{outdir}: not a folder (several inputs or a folder need an output folder)")
    check_writable(outdir)
    container = args.container or DEFAULT_CONTAINER
    with open_output(Path(f"any.{container}")) as probe_out:  # every output is one: one line, not one per file
        check_container(probe_out, available_encoder(settings.codec), f"--container {container}")
    jobs = plan_jobs(inputs, outdir, container, args.recursive, args.glob)
    return jobs, settings, args.overwrite


def check_writable(outdir: Path) -> None:
    """The output folder (or, before it exists, the nearest folder above it) must take new files: one line
    now, not a failure per input."""
    folder = next(p for p in (outdir, *outdir.absolute().parents) if p.exists())
    if not os.access(folder, os.W_OK | os.X_OK):
        where = "" if folder == outdir else f" (it would be created in {folder})"
        raise UpshadeError(f"{outdir}: the output folder is not writable{where}")


# --------------------------------------------------------------------------- rendering one file


def make_folder(out: Path) -> None:
    """Create the folder of ``out`` (a subfolder mirrored from an input folder); a file in the way, or a
    folder that cannot be created, is one line naming it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        check_output_path(out)  # names the file that stands where a folder should be
        raise
    except OSError as exc:
        raise UpshadeError(f"{out}: cannot create its folder {out.parent}: {exc.strerror or exc}") from None


def render_file(ctx, chain, src, out, settings: RenderSettings, *, info=None, on_frame=None,
                notify=None, progress: bool = False) -> tuple[int, str]:
    """Upscale ``src`` into ``out`` (``upscale IN -o OUT``; ``progress``: its own bar). Returns (frames,
    the line naming what ran)."""
    info = info or probe(src)
    size = output_size(info.width, info.height, settings.scale, settings.size)
    files = chain(ctx, info, ((info.width, info.height), size))
    n = upscale_video(
        ctx, src, out, shaders=files, params=dict(settings.params), size=size, codec=settings.codec,
        crf=settings.crf, preset=settings.preset, pix_fmt=settings.pix_fmt, start=settings.start,
        duration=settings.duration, fbo_format=settings.fbo_format, info=info, progress=progress,
        notify=notify, burn_subs=settings.burn_subs, on_frame=on_frame,
    )
    return n, chain.describe(files, (info.width, info.height), size, info)


def failure_reason(exc: BaseException) -> str:
    """One line for the summary: the UpshadeError's message, else the exception's type and text."""
    if isinstance(exc, UpshadeError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def estimated_frames(src, settings: RenderSettings) -> int:
    """The frames ``src`` promises (within --start/--duration), from its headers alone: no decoding, so
    a library of thousands of files is counted in seconds. 0 when it does not say (or does not open)."""
    try:
        with av.open(str(src)) as c:
            s = next(s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
            if s.frames and not settings.start and settings.duration is None:
                return int(s.frames)
            rate = s.average_rate or s.guessed_rate
            length = float(s.duration * s.time_base) if s.duration else (c.duration or 0) / av.time_base
    except (av.FFmpegError, OSError, StopIteration, UnicodeDecodeError, ValueError):
        return 0
    span = max(0.0, length - settings.start)
    if settings.duration is not None:
        span = min(span, settings.duration)
    return round(span * float(rate)) if rate and span else 0


# --------------------------------------------------------------------------- reporting


class Report:
    """An overall progress bar in frames (total grows as files are measured) and one line per file;
    the bar is a tqdm bar on a terminal, plain lines every 10 s in a log (host/progress.py)."""

    def __init__(self, count: int, desc: str = "upscale"):
        self.count = count
        self.finished = 0
        self.bar = progress(total=None, unit="frame", desc=desc)
        self._described = None

    def add_total(self, frames: int) -> None:
        if frames:
            self.bar.total = (self.bar.total or 0) + frames
            self.bar.refresh()

    def frames(self, n: int = 1) -> None:
        self.bar.update(n)

    def current(self, job: Job) -> None:
        self.bar.set_postfix_str(f"file {self.finished + 1}/{self.count}: {job.src.name}")

    def say(self, line: str) -> None:
        self.bar.write(line)

    def describe(self, line: str | None) -> None:
        """The line naming what ran, once, and again only when a file gets something else (a variant)."""
        if line and line != self._described:
            self._described = line
            self.say(line)

    def file(self, result: Result) -> None:
        self.finished += 1
        for w in result.warnings:
            self.say(w)
        where = f"[{self.finished}/{self.count}] {result.job.src}"
        if result.status == "done":
            fps = f", {result.fps:.3g} fps" if result.fps else ""
            self.say(f"upshade: done {where} -> {result.job.out}: {result.frames} frames in "
                     f"{result.seconds:.1f} s{fps}")
        else:
            self.say(f"upshade: failed [{self.finished}/{self.count}] {about(result.job.src, result.reason)}")

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.bar.__exit__(exc_type, exc, tb)


def about(src, reason: str) -> str:
    """``reason`` naming ``src``: as it is when it does already (most errors name their file)."""
    return reason if str(src) in reason else f"{src}: {reason}"


def summary(results, seconds: float) -> str:
    """The table at the end: one row per file (status, frames, fps, file and what became of it), and
    the totals."""
    order = {"failed": 0, "done": 1, "skipped": 2}
    rows = []
    for r in sorted(results, key=lambda r: order[r.status]):
        what = {"done": f"{r.job.src} -> {r.job.out}", "skipped": f"{r.job.src} ({r.reason})",
                "failed": about(r.job.src, r.reason)}[r.status]
        rows.append((r.status, str(r.frames) if r.frames else "-", f"{r.fps:.3g}" if r.fps else "-", what))
    w = [max(len(row[i]) for row in rows + [("status", "frames", "fps", "")]) for i in range(3)]
    lines = [f"  {'status':<{w[0]}}  {'frames':>{w[1]}}  {'fps':>{w[2]}}  file"]
    lines += [f"  {a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}  {d}" for a, b, c, d in rows]
    count = {s: sum(r.status == s for r in results) for s in order}
    frames = sum(r.frames for r in results)
    rate = f" ({frames / seconds:.3g} fps)" if frames and seconds > 0 else ""
    lines.append(f"upshade: {count['done']} done, {count['skipped']} skipped, {count['failed']} failed; "
                 f"{frames} frames in {seconds:.1f} s{rate}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the local run


def run_local(jobs, settings: RenderSettings, overwrite: bool) -> list[Result]:
    """Render the jobs one after another on one headless GL context; a failure is recorded and the
    next file goes on. Ctrl-C stops at once (the file in progress leaves nothing) and propagates."""
    todo, results = split_skipped(jobs, overwrite)
    if not todo:
        return results
    chain = settings.check()
    ctx = create_headless_context()
    try:
        with Report(len(todo)) as report:
            report.add_total(sum(estimated_frames(job.src, settings) for job in todo))
            for job in todo:
                report.current(job)
                result = _render_job(ctx, chain, job, settings, report)
                results.append(result)
                report.file(result)
    finally:
        ctx.release()
    return results


def _render_job(ctx, chain, job: Job, settings: RenderSettings, report: Report) -> Result:
    warnings: list[str] = []
    t0 = time.monotonic()
    try:
        make_folder(job.out)
        n, what = render_file(ctx, chain, job.src, job.out, settings, on_frame=report.frames,
                              notify=warnings.append)
    except Exception as exc:  # one file's failure is its own: the batch goes on
        return Result(job, "failed", reason=failure_reason(exc), warnings=warnings)
    report.describe(what)
    return Result(job, "done", frames=n, seconds=time.monotonic() - t0, warnings=warnings)
