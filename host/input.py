"""Where a key press goes in ``upshade play``: the key bindings, as data, and the mouse.

Keys are bound by GLFW key code (``KEYS``: space, arrows, letters that have
always been here) or, as mpv binds them, by the character typed (``CHARS``:
``v``, ``j``/``J``, ``#``: layout and Shift applied, so ``#`` works on any
keyboard). Each binding names a ``Player`` method and its arguments;
``InputHandler`` only looks the event up and calls it. The mouse moves the
compare divider while the left button is held.
"""

from __future__ import annotations

SEEK_SMALL = 5.0
SEEK_LARGE = 60.0


def _key_bindings() -> dict[int, tuple]:
    import glfw

    keys = {
        glfw.KEY_LEFT: ("seek_by", -SEEK_SMALL),
        glfw.KEY_RIGHT: ("seek_by", SEEK_SMALL),
        glfw.KEY_DOWN: ("seek_by", -SEEK_LARGE),
        glfw.KEY_UP: ("seek_by", SEEK_LARGE),
        glfw.KEY_SPACE: ("toggle_pause",),
        glfw.KEY_Q: ("quit",),
        glfw.KEY_ESCAPE: ("quit",),
        glfw.KEY_F: ("toggle_fullscreen",),
        glfw.KEY_C: ("toggle_compare",),
        glfw.KEY_N: ("toggle_network",),
        glfw.KEY_I: ("toggle_info",),
        glfw.KEY_S: ("screenshot",),
        glfw.KEY_A: ("resume_auto",),
    }
    for i in range(9):
        keys[glfw.KEY_1 + i] = ("select_entry", i)
    return keys


# Bound by character, as in mpv's input.conf.
CHARS = {
    "v": ("toggle_subtitles",),
    "j": ("cycle_subtitles", 1),
    "J": ("cycle_subtitles", -1),
    "#": ("cycle_audio", 1),
}

# Only these repeat while a key is held (auto-repeat); everything else acts once per press.
REPEATING = {"seek_by"}

HELP = ("keys: space pause, left/right seek 5 s, up/down 60 s, f fullscreen, c compare, n network on/off, "
        "1-9 shader (pins it), a auto model again, v subtitles on/off, j next subtitle track, # next audio track, s screenshot, i info, "
        "q/Esc quit")


class InputHandler:
    """Turns window events into calls on ``target`` (the Player)."""

    def __init__(self, target):
        self.target = target
        self.keys = _key_bindings()
        self.chars = dict(CHARS)

    def _call(self, binding: tuple | None, repeat: bool = False) -> bool:
        if binding is None:
            return False
        name, *args = binding
        if repeat and name not in REPEATING:
            return False
        getattr(self.target, name)(*args)
        return True

    def key(self, key: int, repeat: bool = False) -> bool:
        """A GLFW key code pressed (or auto-repeated); whether it did something."""
        return self._call(self.keys.get(key), repeat)

    def char(self, ch: str) -> bool:
        """A typed character; whether it did something."""
        return self._call(self.chars.get(ch))

    def mouse(self, x: float, y: float, pressed: bool) -> None:
        """Left-button state at window position (x, y) (top-left origin): a drag moves the compare divider."""
        if pressed:
            self.target.drag_divider(x, y)

    def dispatch(self, events) -> None:
        from .window import CharEvent, KeyEvent, MouseEvent

        for ev in events:
            if isinstance(ev, KeyEvent):
                self.key(ev.key, ev.repeat)
            elif isinstance(ev, CharEvent):
                self.char(ev.char)
            elif isinstance(ev, MouseEvent):
                self.mouse(ev.x, ev.y, ev.pressed)
