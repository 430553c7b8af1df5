"""`pip install .` (a real wheel, not only editable) ships shaders/, weights/ and the samples under `upshade`."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO


def test_wheel_ships_runtime_shaders_and_weights(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True,
        cwd=tmp_path,  # keep build/ out of the repository
    )
    (wheel,) = tmp_path.glob("upshade-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("upshade-")}
    assert tops == {"upshade"}, f"generic top-level names would be installed: {tops}"
    assert "upshade/host/cli.py" in names
    assert "upshade/tools/__init__.py" in names
    # The sample media that `upshade demo` and the README's first command need (and their licence).
    for name in ("bbb_640x360.mkv", "bbb_640x360.png", "README.md"):
        assert f"upshade/host/samples/{name}" in names, f"sample {name} missing from the wheel"
    for folder in ("shaders", "weights"):
        shipped = sorted(p.name for p in (REPO / folder).iterdir() if p.is_file() and not p.name.startswith((".", "__")))
        missing = [n for n in shipped if f"upshade/{folder}/{n}" not in names]
        assert not missing, f"files of {folder}/ missing from the wheel: {missing}"
    entry = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    ).decode()
    assert "upshade = upshade.host.cli:main" in entry
