"""Argument checks shared by the kit's public functions. Each returns the value (ints as `int`,
numbers as `float`) or raises one line naming the argument, the accepted range and what was given,
e.g. ``grad_clip must be a positive number or None, got -1``: `WrongTypeError` (a `TypeError` and a
`ValueError`) for a wrong type, `ValueError` for a value outside the range, NaN and infinity included.
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path

__all__ = ["WrongTypeError", "integer", "positive_int", "non_negative_int", "int_in", "number",
           "positive_number", "number_in", "output_file"]


class WrongTypeError(TypeError, ValueError):
    """An argument of the wrong type. A `TypeError`, and a `ValueError` for older callers."""


def _or_none(optional: bool) -> str:
    return " or None" if optional else ""


def _shown(value) -> str:
    return f"{value!r} (a bool)" if isinstance(value, bool) else repr(value)


def _int_range(lo, hi) -> str:
    if lo is None and hi is None:
        return "an int"
    if hi is None:
        return {0: "a non-negative int", 1: "a positive int"}.get(lo, f"an int >= {lo}")
    if lo is None:
        return f"an int <= {hi}"
    return f"an int from {lo} to {hi}"


def integer(name: str, value, lo: int | None = None, hi: int | None = None, optional: bool = False):
    """`value` as an `int` in ``[lo, hi]`` (either bound may be None), or None when `optional`.

    Refuses bools (``True`` is not a count), floats (even ``2.0``) and strings with
    `WrongTypeError`; out-of-range ints with `ValueError`. NumPy integers are accepted.
    """
    if value is None and optional:
        return None
    wanted = f"{name} must be {_int_range(lo, hi)}{_or_none(optional)}, got {_shown(value)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise WrongTypeError(wanted)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(wanted)
    return int(value)


def positive_int(name: str, value, optional: bool = False):
    """`value` as an int >= 1 (see `integer`)."""
    return integer(name, value, lo=1, optional=optional)


def non_negative_int(name: str, value, optional: bool = False):
    """`value` as an int >= 0 (see `integer`)."""
    return integer(name, value, lo=0, optional=optional)


def int_in(name: str, value, lo: int, hi: int, optional: bool = False):
    """`value` as an int from `lo` to `hi`, both included (see `integer`)."""
    return integer(name, value, lo=lo, hi=hi, optional=optional)


def flag(name: str, value) -> bool:
    """`value` when it is True or False; anything else (1, "yes", None) raises `WrongTypeError`."""
    if not isinstance(value, bool):
        raise WrongTypeError(f"{name} must be True or False, got {value!r}")
    return value


def positive_ints(name: str, values, count: int | None = None, what: str = "") -> tuple:
    """`values` as a tuple of ints >= 1 (exactly `count` of them when given, at least one
    otherwise); `what` explains the count in the message. A string or a lone number is refused
    with the same one-line message (a `WrongTypeError`)."""
    amount = f"exactly {count}" if count is not None else "one or more"
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise WrongTypeError(f"{name} must be {amount} positive ints{what}, got {values!r}")
    values = tuple(values)
    if (len(values) != count if count is not None else not values) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"{name} must be {amount} positive ints{what}, got {values!r}")
    return tuple(int(v) for v in values)


def _interval(lo, hi, lo_open: bool, hi_open: bool) -> str:
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def number(name: str, value, wanted: str = "a finite number", optional: bool = False) -> float | None:
    """`value` as a finite `float`, or None when `optional`. Bools and strings raise
    `WrongTypeError`, NaN and infinities `ValueError`; `wanted` words the message."""
    if value is None and optional:
        return None
    message = f"{name} must be {wanted}{_or_none(optional)}, got {_shown(value)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WrongTypeError(message)
    if not math.isfinite(value):
        raise ValueError(message)
    return float(value)


def positive_number(name: str, value, optional: bool = False) -> float | None:
    """`value` as a finite float > 0 (see `number`)."""
    checked = number(name, value, "a positive number", optional)
    if checked is not None and checked <= 0:
        raise ValueError(f"{name} must be a positive number{_or_none(optional)}, got {_shown(value)}")
    return checked


def number_in(name: str, value, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False,
              optional: bool = False) -> float | None:
    """`value` as a finite float in the interval from `lo` to `hi` (closed unless `lo_open` /
    `hi_open`), e.g. ``number_in("decay", d, 0, 1, hi_open=True)`` for ``[0, 1)``."""
    wanted = f"a number in {_interval(lo, hi, lo_open, hi_open)}"
    checked = number(name, value, wanted, optional)
    if checked is None:
        return None
    if checked < lo or checked > hi or (lo_open and checked == lo) or (hi_open and checked == hi):
        raise ValueError(f"{name} must be {wanted}{_or_none(optional)}, got {_shown(value)}")
    return checked


def output_file(name: str, path) -> Path:
    """`path` as a `Path` that a file can be written to, checked without leaving anything behind.

    Refuses a non-path (`WrongTypeError`), an empty name, a directory, and a location whose nearest
    existing folder is a file or cannot be written to (`ValueError`). Folders that do not exist
    yet are fine (they are created at the first write). Writability is tested by really opening
    an anonymous temporary file there, so a read-only mount is caught even when running as root.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise WrongTypeError(f"{name} must be a file path (str or os.PathLike), got {type(path).__name__}")
    if str(path) in ("", ".") or "\0" in str(path):
        raise ValueError(f"{name} must name a file, got {str(path)!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a directory; give a file name inside it, "
                         f"e.g. {str(path / 'checkpoint.pt')!r}")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be created: {str(folder)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{name} {str(path)!r} cannot be written: the folder {str(folder)!r} is not "
                         f"writable ({e.strerror or type(e).__name__})") from None
    return path
