"""The boundary between the runtime (host/) and the offline tools (tools/), read from the source.

host/ never imports torch and reaches the tools only through host/offline.py (and
names their command modules in host/cli.py's table); tools/ uses the runtime only
through host/api.py. See host/api.py.
"""

from __future__ import annotations

import ast
import re

from conftest import REPO

TOOLS_MODULE = re.compile(r"upshade\.tools\.\w+\Z")


def imports(path):
    """(module, level, line) of every import in a file, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield (node.module or "", node.level, node.lineno)
            if node.level and not node.module:   # from .. import tools
                yield from ((alias.name, node.level, node.lineno) for alias in node.names)


def test_host_needs_no_torch_and_reaches_the_tools_only_through_offline():
    bad = []
    for path in sorted((REPO / "host").glob("*.py")):
        for module, level, line in imports(path):
            torch = level == 0 and module.split(".")[0] == "torch"
            tools = (level == 0 and module.startswith("upshade.tools")) or (level >= 2 and module.startswith("tools"))
            if (torch or tools) and path.name != "offline.py":
                bad.append(f"host/{path.name}:{line}: imports {'.' * level}{module}")
        strings = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
                   and isinstance(n.value, str) and TOOLS_MODULE.match(n.value)]
        if strings and path.name != "cli.py":
            bad += [f"host/{path.name}:{n.lineno}: names module {n.value!r}" for n in strings]
    assert not bad, "\n".join(bad)


def test_tools_use_the_runtime_only_through_host_api():
    bad = []
    for path in sorted((REPO / "tools").rglob("*.py")):
        for module, level, line in imports(path):
            host = (level == 0 and module.startswith("upshade.host")) or (level >= 2 and module.startswith("host"))
            if host and module not in ("host.api", "upshade.host.api"):
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {'.' * level}{module}")
    assert not bad, "\n".join(bad)

