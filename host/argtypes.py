"""argparse ``type=`` functions shared by every command's numeric options.

Each one rejects what Python's ``float()``/``int()`` would let through but no
option can mean: ``inf``, ``nan``, ``1e999`` (overflows to inf), and values
out of the option's range. argparse turns the ValueError/ArgumentTypeError
into the command's one-line usage error (see host/cli.py).
"""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """Any finite number (``inf``, ``nan`` and overflowing literals such as ``1e999`` are refused)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be positive")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must not be negative")
    return value


def integer(text: str) -> int:
    """A whole number written as one (``3``, ``-2``); ``3.5``, ``inf`` and ``nan`` are refused."""
    try:
        return int(str(text).strip(), 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


# A name argparse shows in "invalid <name> value" messages.
finite_float.__name__ = "number"
positive_float.__name__ = "positive number"
nonnegative_float.__name__ = "non-negative number"
integer.__name__ = "integer"
