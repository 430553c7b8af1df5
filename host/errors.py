"""Error types. Every user-facing failure is an UpshadeError with a one-line message.

The CLI prints ``upshade: error: <message>`` and exits non-zero; nothing else
(tracebacks are for bugs, not for bad input).
"""

from __future__ import annotations


class UpshadeError(Exception):
    """A failure caused by the user's input or environment, reported in one line."""

    exit_code = 1


class ShaderError(UpshadeError):
    """A problem in a hook shader file, located as ``file:line``."""

    def __init__(self, file: str, line: int, message: str):
        self.file = str(file)
        self.line = int(line)
        self.message = message
        super().__init__(f"{self.file}:{self.line}: {message}")


class MediaError(UpshadeError):
    """A problem with an image or video file (missing, unreadable, unsupported)."""


class GLUnavailableError(UpshadeError):
    """No usable OpenGL context (EGL headless or a window) could be created."""
