"""``upshade upscale ... --ray [ADDRESS]``: the same jobs as host/batch.py, rendered by Ray tasks.

Ray is optional (the ``cluster`` extra) and imported only here, when ``--ray``
is given. Without an address a local Ray instance is started (``--workers N``
render tasks at once, default one per CPU or GPU); ``auto`` or ``HOST:PORT``
joins a running cluster (``ray start --head`` and ``ray start --address ...``
on the workers). Paths travel to the workers as they are (made absolute): the
sources, the shader files and the output folder must be on storage that every
node sees under the same path.

Per file: a *plan* task demuxes the video packets (no decoding) and cuts the
file at keyframes about ``--segment`` seconds apart (host/segments.py); each
segment is a *render* task (one GL context per worker process, created once and
kept; ``num_gpus=1`` where the cluster has GPUs, ``num_cpus=1`` otherwise)
writing a hidden video-only file beside the output; a *join* task, which Ray
starts when every segment of the file is there, copies their packets and the
source's other streams into the output. A file too short to split is one
render task writing the output directly. Every write is atomic, a task whose
worker died is run again (``max_retries``; the retry overwrites the same
segment file, so nothing is lost or counted twice), and errors in the input
(a damaged file) fail only that file. The driver (the head, or wherever
``upshade`` runs) only submits tasks, counts frames and cleans up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .batch import Job, RenderSettings, Report, Result, failure_reason, make_folder, render_file, split_skipped
from .errors import UpshadeError
from .gpu import create_headless_context, signals_held
from .segments import check_joinable, join_segments, plan_segments, remove_segments, render_segment, segment_path
from .transcode import damage_warning, frame_budget
from .video import probe

MAX_RETRIES = 3           # reruns of a task whose worker process died
CONNECT_TIMEOUT = 10.0    # seconds to reach a cluster's address before saying there is none
# Test hook: a folder; the first attempt of segment 1 of every file then kills its worker process
# (os._exit) after its first frame, as a crashed or preempted node would.
KILL_ENV = "UPSHADE_TEST_KILL_SEGMENT"

_ADDRESS = re.compile(r"^(auto|local|(ray://)?[\w.\-\[\]:]+:\d+)$")


def is_address(text: str) -> bool:
    """Whether ``--ray``'s value reads as an address (``auto``, ``local``, ``HOST:PORT``, ``ray://HOST:PORT``)."""
    return bool(_ADDRESS.match(text))


# --------------------------------------------------------------------------- connecting


def import_ray():
    try:
        import ray
    except ImportError:
        raise UpshadeError("--ray needs Ray, which is not installed: pip install 'upshade[cluster]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """Where ``address`` points (``auto``: the cluster this machine last started or joined)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
            address = canonicalize_bootstrap_address_or_die("auto")
        except ImportError:
            return None  # a Ray without that helper: let ray.init find it
        except ConnectionError:
            raise UpshadeError("--ray auto: no Ray cluster runs on or was joined from this machine "
                               "(start one with `ray start --head`, or give HOST:PORT)") from None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes (ray.init retries an unreachable address for a long time)."""
    where = _host_port(address)
    if where is None:
        return
    try:
        socket.create_connection(where, timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UpshadeError(f"--ray {address}: no Ray cluster at {where[0]}:{where[1]} "
                           f"({exc.strerror or exc})") from None


def connect(address: str | None, workers: int | None = None):
    """Ray, initialised: a local instance (``address`` None or ``local``; ``workers`` CPUs) or the
    cluster at ``address``. Returns (ray, whether we started it and so must shut it down)."""
    ray = import_ray()
    local = address in (None, "local")
    if not local:
        if workers is not None:
            raise UpshadeError(f"--workers {workers}: for a local Ray instance; a cluster has the workers "
                               f"`ray start` gave it")
        _check_reachable(address)
    if ray.is_initialized():
        return ray, False
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    try:
        # Ctrl-C mid-start of a local instance would leave the processes started so far running: it takes
        # effect after (joining a cluster starts none, and may take long: it stays at once)
        with signals_held() if local else contextlib.nullcontext(), _signal_handlers_kept():
            if local:
                ray.init(num_cpus=workers, **quiet)
            else:
                quiet.pop("include_dashboard")
                with _stderr_silenced():  # Ray's C++ client logs every retry against a wrong address
                    ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if local:
            raise UpshadeError(f"--ray: cannot start a local Ray instance ({detail})") from None
        auth = "" if os.environ.get("RAY_AUTH_MODE") else (
            "; a cluster with token authentication, which `ray start` turns on, also needs RAY_AUTH_MODE=token "
            "and its token (`ray get-auth-token` on the head) in ~/.ray/auth_token or RAY_AUTH_TOKEN")
        raise UpshadeError(f"--ray {address}: no Ray cluster at {address} ({detail}){auth}") from None
    except BaseException:  # a signal held back while Ray started
        ray.shutdown()
        raise
    return ray, True


@contextlib.contextmanager
def _signal_handlers_kept():
    """The command's SIGINT, SIGTERM and SIGHUP handlers as they were before the block: ``ray.init``
    replaces SIGTERM's, in Python (an exit) and in its C++ core (an abort that skips every clean-up,
    leaving the segment files and the local instance's processes behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for the block (native libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def task_resources(ray) -> dict:
    """A render task's resources: a GPU where the cluster has any (one GL context each), else a CPU."""
    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1, "num_cpus": 1}
    return {"num_cpus": 1}


# --------------------------------------------------------------------------- on the workers

_worker_ctx = None


def _worker_context():
    """The worker process's GL context, made once (on the GPU Ray gave this worker) and kept."""
    global _worker_ctx
    if _worker_ctx is None:
        ray = import_ray()
        gpus = ray.get_gpu_ids()
        if gpus:
            os.environ.setdefault("GLCONTEXT_DEVICE_INDEX", str(int(gpus[0])))  # moderngl's EGL device
        _worker_ctx = create_headless_context()
    return _worker_ctx


@dataclass
class TaskResult:
    frames: int
    described: str | None = None
    warnings: list[str] = field(default_factory=list)
    damaged: int = 0    # a segment's packets skipped or concealed (the join warns for the whole file)


def plan_task(src: str, out: str, seconds: float, settings: RenderSettings) -> tuple[list, int]:
    """(segments, frames expected) of a file; no segments when it is rendered whole. A file whose
    segments could not be joined into ``out`` fails here, before they are rendered."""
    if not settings.splittable:
        return [], 0
    segments = plan_segments(src, seconds)
    frames = sum(s.frames for s in segments)
    if len(segments) < 2:
        return [], frames
    check_joinable(src, out, settings.codec)
    make_folder(Path(out))  # where the segments go too
    return segments, frames


def whole_task(src: str, out: str, settings: RenderSettings) -> TaskResult:
    """Render a whole file into its output (a file too short to split, or a trimmed one)."""
    warnings: list[str] = []
    make_folder(Path(out))
    n, what = render_file(_worker_context(), settings.check(), src, out, settings, notify=warnings.append)
    return TaskResult(n, what, warnings)


def segment_task(src: str, segment, path: str, settings: RenderSettings, kill_dir: str | None = None) -> TaskResult:
    """Render one segment into its hidden file."""
    on_frame = None
    if kill_dir and segment.index == 1:
        marker = Path(kill_dir) / f"{Path(path).name}.killed"
        if not marker.exists():
            marker.touch()
            on_frame = lambda: os._exit(17)  # noqa: E731 - the test hook: die mid-segment
    n, what, damaged = render_segment(_worker_context(), settings.check(), src, segment, path, settings,
                                      on_frame=on_frame)
    return TaskResult(n, what, damaged=damaged)


def join_task(src: str, parts: list[str], out: str, *rendered: TaskResult) -> TaskResult:
    """Join the segments (Ray starts this once every ``rendered`` is there). The driver deletes them
    after, so that a join run again (its worker died after writing the output) still finds them. A
    damaged source gets the one-process run's warning (host/transcode.damage_warning)."""
    n = join_segments(src, parts, out, expected=sum(r.frames for r in rendered))
    info = probe(src)
    warning = damage_warning(src, info, n, frame_budget(info, 0.0, None), sum(r.damaged for r in rendered))
    return TaskResult(n, warnings=[warning] if warning else [])


# --------------------------------------------------------------------------- the driver


@dataclass
class _File:
    """One job in flight: its run token, its segment files and when its work began."""

    job: Job
    token: str
    started: float = 0.0
    parts: list = field(default_factory=list)


class _Tasks:
    def __init__(self, ray, seconds: float, settings: RenderSettings):
        self.ray = ray
        self.seconds = seconds
        self.settings = settings
        light = dict(num_cpus=0.25, max_retries=MAX_RETRIES)
        self.plan = ray.remote(**light)(plan_task)
        self.join = ray.remote(**light)(join_task)
        render = dict(max_retries=MAX_RETRIES, **task_resources(ray))
        self.whole = ray.remote(**render)(whole_task)
        self.segment = ray.remote(**render)(segment_task)
        self.kill_dir = os.environ.get(KILL_ENV) or None

    def start(self, f: _File):
        return self.plan.remote(str(f.job.src), str(f.job.out), self.seconds, self.settings)

    def render(self, f: _File, segments):
        """The task that finishes ``f`` and the refs of its segment tasks."""
        src, out = str(f.job.src), str(f.job.out)
        if not segments:
            return self.whole.remote(src, out, self.settings), []
        f.parts = [str(segment_path(out, f.token, s.index)) for s in segments]
        refs = [self.segment.remote(src, s, p, self.settings, self.kill_dir) for s, p in zip(segments, f.parts)]
        return self.join.remote(src, f.parts, out, *refs), refs


def run_cluster(jobs, settings: RenderSettings, *, address: str | None = None, workers: int | None = None,
                segment_seconds: float = 60.0, overwrite: bool = False) -> list[Result]:
    """Render ``jobs`` on Ray (see the module's docstring). Returns a result per job."""
    todo, results = split_skipped(jobs, overwrite)
    if not todo:
        return results
    settings.check()
    ray, started = connect(address, workers)
    try:
        results += _drive(ray, _Tasks(ray, segment_seconds, settings.absolute()), todo)
    finally:
        if started:
            ray.shutdown()
    return results


def _drive(ray, tasks: _Tasks, todo) -> list[Result]:
    """Submit the plans, then each file's render tasks as its plan arrives; collect as they finish."""
    # absolute, not resolved: an output that is a symlink is replaced, as in one process, not its target
    files = [_File(Job(j.src.absolute(), j.out.absolute()), secrets.token_hex(4)) for j in todo]
    originals = {f.job: j for f, j in zip(files, todo)}
    pending = {tasks.start(f): ("plan", f) for f in files}
    results = []
    try:
        with Report(len(files), desc="upscale (ray)") as report:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    kind, f = pending.pop(ref)
                    result = _collect(ray, tasks, ref, kind, f, pending, report)
                    if result is not None:
                        result = _as_given(result, originals[f.job])
                        results.append(result)
                        report.file(result)
    except BaseException:
        _cancel(ray, pending)
        raise
    return results


def _as_given(result: Result, job: Job) -> Result:
    """``result`` of the absolute paths the workers were given, told with the paths as the user gave them."""
    given = {str(result.job.src): str(job.src), str(result.job.out): str(job.out),
             str(result.job.out.parent): str(job.out.parent)}

    def told(line: str) -> str:
        for absolute, path in given.items():
            line = line.replace(absolute, path)
        return line

    result.job, result.reason, result.warnings = job, told(result.reason), [told(w) for w in result.warnings]
    return result


def _collect(ray, tasks: _Tasks, ref, kind: str, f: _File, pending: dict, report: Report) -> Result | None:
    """Take one finished task: a plan submits the file's render tasks, a segment advances the bar, a
    finishing task (join or whole) gives the file's result."""
    try:
        value = ray.get(ref)
    except Exception as exc:
        if kind == "segment":
            return None  # its join fails with the same error and reports it
        remove_segments(f.job.out, f.token)
        return Result(f.job, "failed", reason=_task_error(exc))
    if kind == "plan":
        segments, frames = value
        report.add_total(frames)
        f.started = time.monotonic()
        done_ref, segment_refs = tasks.render(f, segments)
        pending[done_ref] = ("done", f)
        pending.update({r: ("segment", f) for r in segment_refs})
        return None
    if kind == "segment":
        report.frames(value.frames)
        report.describe(value.described)
        return None
    if not f.parts:
        report.frames(value.frames)
    report.describe(value.described)
    remove_segments(f.job.out, f.token)
    return Result(f.job, "done", frames=value.frames, seconds=time.monotonic() - f.started, warnings=value.warnings)


def _task_error(exc: BaseException) -> str:
    """One line for a task's failure: the error raised in the task, or what happened to its worker."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return failure_reason(cause)
    name = type(exc).__name__
    if "WorkerCrashed" in name or "NodeDied" in name or "OwnerDied" in name:
        return f"its worker died {MAX_RETRIES + 1} times ({name})"
    return failure_reason(exc)


def _cancel(ray, pending: dict) -> None:
    """Ctrl-C or an error in the driver: cancel what is running (a cancelled task unwinds, so its
    atomic output leaves nothing), wait a little for that, delete the segment files."""
    for ref in pending:
        try:
            ray.cancel(ref)
        except Exception:
            pass
    try:
        ray.wait(list(pending), num_returns=len(pending), timeout=10.0)
    except BaseException:
        pass
    for f in {id(f): f for _, f in pending.values()}.values():
        remove_segments(f.job.out, f.token)
