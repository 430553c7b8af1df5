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


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path next to ``out``; rename it to ``out`` on success, delete it on failure."""
    out = check_output_path(out, inputs)
    tmp = temp_name(out)
    try:
        yield tmp
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # The temporary name means nothing to the user: errors name the output they asked for.
        if isinstance(exc, UpshadeError) and str(tmp) in str(exc):
            exc.args = tuple(a.replace(str(tmp), str(out)) if isinstance(a, str) else a for a in exc.args)
        elif isinstance(exc, OSError) and (exc.errno in _WRITE_ERRNOS or str(exc.filename) == str(tmp)):
            raise UpshadeError(f"{out}: cannot write: {exc.strerror or exc}") from None
        raise
    if not tmp.exists():
        raise UpshadeError(f"{out}: nothing was written")
    try:
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise UpshadeError(f"{out}: cannot write: {exc.strerror or exc}") from None
