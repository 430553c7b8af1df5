"""Safe output files: never overwrite an input, never leave a half-written file.

Usage::

    with atomic_output(out_path, inputs=[in_path]) as tmp:
        write_everything_to(tmp)
    # renamed to out_path only if the block finished without an exception
    # (KeyboardInterrupt included: the temporary file is removed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UpshadeError


# Failures of writing itself (disk full, file size limit, quota, I/O error, read-only file system).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO, errno.EROFS}


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate an output path: not an input, directory exists and is writable."""
    out = Path(out)
    for inp in inputs:
        if _same_file(out, Path(inp)):
            raise UpshadeError(f"{out}: output is the same file as the input; refusing to overwrite it")
    if out.is_dir():
        raise UpshadeError(f"{out}: output path is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        # The first existing ancestor tells which: a missing folder, or a file where a folder should be.
        blocker = next((a for a in (parent, *parent.parents) if a.exists() or a.is_symlink()), None)
        if blocker is not None and not blocker.is_dir():
            raise UpshadeError(f"{out}: {blocker} is a file, not a directory")
        raise UpshadeError(f"{out}: output directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UpshadeError(f"{out}: output directory {parent} is not writable")
    return out


def temp_name(out: Path) -> Path:
    """A temporary sibling of ``out`` that keeps its extension (muxers guess formats from it)."""
    return out.with_name(f".{out.stem}.part-{secrets.token_hex(4)}{out.suffix}")


class AtomicOutput:
    """``atomic_output`` as an object, for a writer whose output outlives one ``with`` block (the
    encoder, which finishes in its own thread): write to ``tmp``, then ``commit()`` or ``discard()``."""

    def __init__(self, out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()):
        self.out = check_output_path(out, inputs)
        self.tmp = temp_name(self.out)

    def commit(self) -> Path:
        """Move the finished temporary file into place."""
        if not self.tmp.exists():
            raise UpshadeError(f"{self.out}: nothing was written")
        try:
            os.replace(self.tmp, self.out)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
            raise UpshadeError(f"{self.out}: cannot write: {exc.strerror or exc}") from None
        return self.out

    def discard(self, exc: BaseException | None = None) -> BaseException | None:
        """Delete the temporary file after ``exc``; return the error to report: ``exc`` itself, or one
        naming the output instead of the temporary file (a failed write: disk full, ...)."""
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
        tmp, out = str(self.tmp), str(self.out)
        # The temporary name means nothing to the user: errors name the output they asked for.
        if isinstance(exc, UpshadeError) and tmp in str(exc):
            exc.args = tuple(a.replace(tmp, out) if isinstance(a, str) else a for a in exc.args)
        elif isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or str(exc.filename) == tmp):
            return UpshadeError(f"{out}: cannot write: {exc.strerror or exc}")
        return exc


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; rename it to ``out`` on success, delete it on failure."""
    f = AtomicOutput(out, inputs)
    try:
        yield f.tmp
    except BaseException as exc:
        err = f.discard(exc)
        if err is exc:
            raise
        raise err from None
    f.commit()
