from __future__ import annotations

import pytest

from upshade.host.errors import UpshadeError
from upshade.host.fileio import atomic_output


def test_renames_on_success(tmp_path):
    out = tmp_path / "out.png"
    with atomic_output(out) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert out.read_bytes() == b"x"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_leaves_nothing(tmp_path, exc):
    out = tmp_path / "out.mp4"
    with pytest.raises(exc):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"partial")
            raise exc()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_input(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(b"keep")
    with pytest.raises(UpshadeError, match="same file as the input"):
        with atomic_output(tmp_path / "." / "in.png", inputs=[src]):
            pass
    assert src.read_bytes() == b"keep"


def test_missing_directory(tmp_path):
    with pytest.raises(UpshadeError, match="does not exist"):
        with atomic_output(tmp_path / "nope" / "x.png"):
            pass


def test_parent_that_is_a_file(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(UpshadeError, match=rf"^{f}/sub/o.png: {f} is a file, not a directory$"):
        with atomic_output(f / "sub" / "o.png"):
            pass


def test_write_errors_name_the_output(tmp_path):
    """The temporary name (.o.part-XXXX.png) means nothing to the user: errors name the output."""
    import errno

    out = tmp_path / "o.png"
    with pytest.raises(UpshadeError, match=rf"^{out}: cannot write: No space left on device$"):
        with atomic_output(out) as tmp:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    with pytest.raises(UpshadeError) as info:
        with atomic_output(out) as tmp:
            raise UpshadeError(f"{tmp}: cannot write: disk quota exceeded")
    assert str(info.value) == f"{out}: cannot write: disk quota exceeded"
    assert list(tmp_path.iterdir()) == []
