"""The schema of every notebook parameter: its type, range or choices, whether None is allowed.

`SCHEMA` maps each name that a course notebook declares in its ``parameters`` cell to a spec.
`cifarkit run` checks every ``-p NAME=VALUE`` (and every value passed to `run_notebooks`)
against it before any kernel starts, and refuses to run a notebook that declares a parameter the
schema does not know. Inside a notebook, `check_parameters` checks the values papermill injected
(or that someone typed into the parameters cell)::

    from cifarkit.course.params import check_parameters
    check_parameters(dict(profile=profile, data_source=data_source, epochs=epochs, seed=seed))

Adding a parameter
------------------
Add one line to `SCHEMA`, built from the specs below (``help`` is the one-line description that
error messages and ``--help`` texts show)::

    "stem": Choice("imagenet", "cifar", help="first layer: 7x7 ImageNet stem or 3x3 CIFAR stem"),
    "lr": Float(min=0, min_inclusive=False, help="learning rate"),
    "seeds": OneOf(Int(min=1), ListOf(Int(min=0)), help="how many seeds, or which"),
    "weights": OneOf(Choice("auto", "imagenet", none=True), File(), help="..."),

Specs: `Int`, `Float`, `Bool`, `Str`, `Choice`, `File` (an existing file; the path is made absolute
because kernels run in the run directory), `ListOf(spec)` and `OneOf(spec, ...)`. Every spec takes
``none=True`` to allow None and ``help=``. A spec's ``check(value)`` returns the (normalised) value
or raises `ParameterError`; ``parse(text)`` reads a command-line value; ``accepts`` says in words
what is accepted. The notebook's own default must pass its entry (a test checks every notebook).
``stem`` and ``seeds`` are in already, for the notebooks that are about to declare them.
"""
from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

__all__ = ["ParameterError", "Spec", "Int", "Float", "Bool", "Str", "Choice", "File", "ListOf", "OneOf",
           "SCHEMA", "DATA_SOURCES", "PROFILES", "check_parameters", "check_value", "describe_schema"]

#: `load_data` sources, in the order the notebooks document them.
DATA_SOURCES = ("auto", "cifar10", "cifar10-unverified", "synthetic")
#: Run profiles every course notebook defines.
PROFILES = ("quick", "full")

_NONE_WORDS = {"none", "null"}
_TRUE_WORDS = {"true", "yes"}
_FALSE_WORDS = {"false", "no"}
_MAX_SHOWN = 80


class ParameterError(ValueError):
    """A notebook parameter is unknown, malformed, of the wrong type or out of range."""


class _Rejected(Exception):
    """Internal: a value does not fit a spec (the caller words the error)."""


def _shown(value: Any) -> str:
    """``repr(value)`` (shortened), with the type for non-strings: ``True (bool)``."""
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN - 3] + "..."
    return text if isinstance(value, str) else f"{text} ({type(value).__name__})"


def _text_candidates(text: str) -> Iterator[Any]:
    """The values a command-line text could mean, most specific first; the text itself last."""
    stripped = text.strip()
    low = stripped.lower()
    if low in _NONE_WORDS:
        yield None
    if low in _TRUE_WORDS | _FALSE_WORDS:
        yield low in _TRUE_WORDS
    try:
        yield ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        yield json.loads(stripped)
    except (ValueError, RecursionError):
        pass
    yield text


class Spec:
    """Base class of the parameter specs: None handling, parsing and error wording."""

    def __init__(self, *, none: bool = False, help: str = ""):  # noqa: A002 - the natural name
        self.none = bool(none)
        self.help = help

    # subclasses: `_describe()` (what, without None) and `_check(value)` (value is not None)
    def _describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check(self, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def accepts(self) -> str:
        """What the spec accepts, in words: ``"int >= 1 or None"``."""
        return self._describe() + (" or None" if self.none else "")

    def fits(self, value: Any) -> bool:
        """True when `check` accepts `value`."""
        try:
            self._checked(value)
        except _Rejected:
            return False
        return True

    def _checked(self, value: Any) -> Any:
        if value is None:
            if self.none:
                return None
            raise _Rejected("None is not allowed")
        return self._check(value)

    def _parsed(self, text: str) -> Any:
        for candidate in _text_candidates(text):
            try:
                return self._checked(candidate)
            except _Rejected:
                continue
        raise _Rejected(text)

    def check(self, value: Any, name: str = "value") -> Any:
        """Return `value` (normalised: ints become floats for `Float`, tuples lists for `ListOf`,
        file paths absolute) or raise `ParameterError` naming `name`, the value and what fits."""
        try:
            return self._checked(value)
        except _Rejected:
            raise ParameterError(f"parameter {name!r} expects {self.accepts}, got {_shown(value)}") from None

    def parse(self, text: str, name: str = "value") -> Any:
        """Read a command-line value (``"5"``, ``"none"``, ``"[1, 2]"``, ``"synthetic"``) for this
        spec: None/true/false words, then a Python literal or JSON, then the plain text."""
        try:
            return self._parsed(text)
        except _Rejected:
            raise ParameterError(f"parameter {name!r} expects {self.accepts}, got {text!r}") from None

    def coerce(self, value: Any, name: str = "value") -> Any:
        """`check` for a Python value; a string that does not fit as it is is read with `parse`
        (so ``"5"`` works for an int, as on the command line)."""
        try:
            return self._checked(value)
        except _Rejected:
            if isinstance(value, str):
                return self.parse(value, name)
            raise ParameterError(f"parameter {name!r} expects {self.accepts}, got {_shown(value)}") from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.accepts}>"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bounds_text(lo: float | None, hi: float | None, lo_in: bool = True, hi_in: bool = True) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>=' if lo_in else '>'} {lo:g}")
    if hi is not None:
        parts.append(f"{'<=' if hi_in else '<'} {hi:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _in_bounds(value: float, lo, hi, lo_in: bool = True, hi_in: bool = True) -> bool:
    if lo is not None and (value < lo or (value == lo and not lo_in)):
        return False
    return not (hi is not None and (value > hi or (value == hi and not hi_in)))


class Int(Spec):
    """An int (bools refused) in ``[min, max]`` (either end optional)."""

    def __init__(self, *, min: int | None = None, max: int | None = None, **kw):  # noqa: A002
        super().__init__(**kw)
        self.min, self.max = min, max

    def _describe(self) -> str:
        return "int" + _bounds_text(self.min, self.max)

    def _check(self, value: Any) -> Any:
        if not _is_int(value) or not _in_bounds(value, self.min, self.max):
            raise _Rejected(value)
        return value


class Float(Spec):
    """A finite number (ints accepted and returned as floats; bools, NaN and inf refused)."""

    def __init__(self, *, min: float | None = None, max: float | None = None,  # noqa: A002
                 min_inclusive: bool = True, max_inclusive: bool = True, **kw):
        super().__init__(**kw)
        self.min, self.max, self.min_in, self.max_in = min, max, min_inclusive, max_inclusive

    def _describe(self) -> str:
        return "finite float" + _bounds_text(self.min, self.max, self.min_in, self.max_in)

    def _check(self, value: Any) -> Any:
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise _Rejected(value)
        if not _in_bounds(value, self.min, self.max, self.min_in, self.max_in):
            raise _Rejected(value)
        return float(value)


class Bool(Spec):
    """True or False; on the command line also yes/no and 1/0."""

    def _describe(self) -> str:
        return "bool (true/false)"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise _Rejected(value)
        return value

    def _parsed(self, text: str) -> Any:
        low = text.strip().lower()
        if low in {"1", "0"}:
            return low == "1"
        return super()._parsed(text)


class Str(Spec):
    """Any string (non-empty unless ``empty=True``)."""

    def __init__(self, *, empty: bool = False, **kw):
        super().__init__(**kw)
        self.empty = empty

    def _describe(self) -> str:
        return "str" if self.empty else "str (non-empty)"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str) or (not self.empty and not value.strip()):
            raise _Rejected(value)
        return value


class Choice(Spec):
    """One of the given strings (exact, case-sensitive)."""

    def __init__(self, *choices: str, **kw):
        super().__init__(**kw)
        if not choices or not all(isinstance(c, str) for c in choices):
            raise TypeError("Choice needs one or more strings")
        self.choices = tuple(choices)

    def _describe(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def _check(self, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise _Rejected(value)
        return value


class File(Spec):
    """The path of an existing file; returned as an absolute path string (kernels run elsewhere)."""

    def _describe(self) -> str:
        return "the path of an existing file"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise _Rejected(value)
        path = Path(value).expanduser()
        if not path.is_file():
            raise _Rejected(value)
        return os.path.abspath(path)


class ListOf(Spec):
    """A list (or tuple) of `min_len` to `max_len` items, each fitting `item`; returned as a list."""

    def __init__(self, item: Spec, *, min_len: int = 1, max_len: int | None = None, **kw):
        super().__init__(**kw)
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def _describe(self) -> str:
        if self.max_len is None:
            size = f"at least {self.min_len} item{'s' if self.min_len != 1 else ''}"
        else:
            size = f"{self.min_len} to {self.max_len} items"
        return f"list of {self.item.accepts} ({size})"

    def _check(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise _Rejected(value)
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            raise _Rejected(value)
        return [self.item._checked(v) for v in value]


class OneOf(Spec):
    """Whatever the first of `options` that fits accepts."""

    def __init__(self, *options: Spec, **kw):
        super().__init__(**kw)
        if not options:
            raise TypeError("OneOf needs at least one spec")
        self.options = options

    def _describe(self) -> str:
        return ", or ".join(o.accepts for o in self.options)

    @property
    def accepts(self) -> str:
        """What the options accept, in words (None is mentioned by the option that allows it)."""
        extra = " or None" if self.none and not any(o.none for o in self.options) else ""
        return self._describe() + extra

    def _checked(self, value: Any) -> Any:
        if value is None and (self.none or any(o.none for o in self.options)):
            return None
        return super()._checked(value)

    def _check(self, value: Any) -> Any:
        for option in self.options:
            try:
                return option._checked(value)
            except _Rejected:
                continue
        raise _Rejected(value)


# --------------------------------------------------------------------------
# The schema: one line per parameter
# --------------------------------------------------------------------------

SCHEMA: dict[str, Spec] = {
    "profile": Choice(*PROFILES, help="run size: 'quick' (minutes on a CPU, CI) or 'full' (the course run)"),
    "data_source": Choice(*DATA_SOURCES, help="where the images come from ('auto': CIFAR-10 if found, else synthetic)"),
    "epochs": Int(min=1, none=True, help="training epochs; None: the profile's choice"),
    "seed": Int(min=0, help="seeds Python, NumPy and torch"),
    "weights": OneOf(Choice("auto", "imagenet", none=True), File(),
                     help="initial weights: 'auto', 'imagenet', None (random init) or a state-dict file"),
    "stem": Choice("imagenet", "cifar", help="ResNet first layer: 7x7 ImageNet stem or 3x3 CIFAR stem"),
    "seeds": OneOf(Int(min=1), ListOf(Int(min=0)), help="repeats: how many seeds (int), or which (list of ints)"),
}


def check_value(name: str, value: Any, schema: Mapping[str, Spec] | None = None) -> Any:
    """Check one value against ``schema[name]`` (default: `SCHEMA`) and return it normalised."""
    schema = SCHEMA if schema is None else schema
    if name not in schema:
        raise ParameterError(f"parameter {name!r} is not in the parameter schema (cifarkit/course/params.py); "
                             f"known: {', '.join(sorted(schema))}")
    return schema[name].check(value, name)


def check_parameters(values: Mapping[str, Any], schema: Mapping[str, Spec] | None = None,
                     where: str = "") -> dict[str, Any]:
    """Check a notebook's parameter values as the notebook sees them (no string parsing) and return
    them normalised (see `Spec.check`). Raises one `ParameterError` naming every bad parameter, its
    value and what is accepted; `where` (e.g. ``"notebook 03"``) is added to the message."""
    if not isinstance(values, Mapping):
        raise TypeError(f"check_parameters expects a dict of name -> value, got {type(values).__name__}")
    out: dict[str, Any] = {}
    problems = []
    for name, value in values.items():
        try:
            out[name] = check_value(name, value, schema)
        except ParameterError as exc:
            problems.append(str(exc))
    if problems:
        prefix = f"{where}: " if where else ""
        raise ParameterError(prefix + "; ".join(problems))
    return out


def describe_schema(schema: Mapping[str, Spec] | None = None) -> str:
    """One line per parameter: ``name: accepted values - help``."""
    schema = SCHEMA if schema is None else schema
    return "\n".join(f"{name}: {spec.accepts} - {spec.help}" for name, spec in schema.items())
