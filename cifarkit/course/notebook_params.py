"""Which parameters a notebook takes, and turning ``-p NAME=VALUE`` into checked values.

`notebook_parameters` asks papermill which names and defaults each notebook's ``parameters``
cell declares; `parse_cli_parameters` parses command-line values, `parse_cli_sweep` reads
``-p seed=0,1,2`` as a sweep (one value per comma-separated piece) and `plan_parameters` decides
what each notebook gets. Values are checked against the parameter schema of `cifarkit.course.params`
(type, range or choices, None allowed or not); a notebook parameter missing from the schema, or a
notebook default that does not fit it, is an error. Used by `cifarkit.course.runner`.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .params import SCHEMA, ListOf, OneOf, ParameterError, Spec

_TRUE_WORDS = {"true", "yes", "1"}
_FALSE_WORDS = {"false", "no", "0"}
_NONE_WORDS = {"none", "null"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------
# Notebook selection and parameter inspection
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a notebook's ``parameters`` cell.

    ``kind`` is the Python type name of the default value (``"int"``,
    ``"float"``, ``"bool"``, ``"str"``, ``"list"``, ``"tuple"``, ``"dict"``,
    ``"NoneType"``) or ``"any"`` when the default is not a plain literal and
    there is no usable type annotation. ``default`` is the default's source
    text, as papermill reports it.
    """

    name: str
    kind: str
    default: str
    help: str = ""

    @classmethod
    def from_papermill(cls, name: str, info: Mapping[str, Any]) -> "ParamSpec":
        """Build a spec from one entry of ``papermill.inspect_notebook``."""
        default = str(info.get("default", "") or "")
        kind = "any"
        try:
            value = ast.literal_eval(default)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            annotated = str(info.get("inferred_type_name") or "None").strip()
            if annotated in {"int", "float", "bool", "str", "list", "tuple", "dict"}:
                kind = annotated
        else:
            kind = type(value).__name__
            if kind not in {"int", "float", "bool", "str", "list", "tuple", "dict", "NoneType"}:
                kind = "any"
        return cls(name=name, kind=kind, default=default, help=str(info.get("help") or ""))


def _split_only(only: str | Iterable[str] | None) -> list[str] | None:
    if only is None:
        return None
    if isinstance(only, str):
        items = [p.strip() for p in only.split(",")]
    elif isinstance(only, (list, tuple, set, frozenset)) and all(isinstance(p, str) for p in only):
        items = [p.strip() for p in only]
    else:
        raise TypeError(f"only must be a comma-separated string or a list of notebook prefixes "
                        f"such as ['01', '05'], got {only!r}")
    items = [p for p in items if p]
    return items or None


def list_notebooks(notebooks_dir: str | os.PathLike = "notebooks",
                   only: str | Iterable[str] | None = None) -> list[Path]:
    """Return the ``*.ipynb`` files of ``notebooks_dir`` in name order.

    ``only`` is a list of prefixes (``["01", "05"]``; a comma-separated
    string also works) matched against the file names. Every prefix must
    match at least one notebook, otherwise a ``ValueError`` lists the valid
    choices. Hidden files and Jupyter checkpoints are ignored.
    """
    if not isinstance(notebooks_dir, (str, os.PathLike)):
        raise TypeError(f"notebooks_dir must be a path, got {notebooks_dir!r}")
    root = Path(notebooks_dir)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"notebooks directory {str(root)!r} is a file, not a directory")
    if not root.is_dir():
        raise FileNotFoundError(f"notebooks directory not found: {str(root)!r}")
    notebooks = sorted(
        p for p in root.glob("*.ipynb")
        if p.is_file() and not p.name.startswith((".", "_"))
    )
    if not notebooks:
        raise ValueError(f"no notebooks (*.ipynb) found in {str(root)!r}")
    prefixes = _split_only(only)
    if prefixes is None:
        return notebooks
    choices = ", ".join(p.name for p in notebooks)
    unmatched = [pre for pre in prefixes if not any(p.name.startswith(pre) for p in notebooks)]
    if unmatched:
        raise ValueError(
            f"no notebook in {str(root)!r} matches {', '.join(repr(u) for u in unmatched)}; "
            f"valid choices: {choices}"
        )
    return [p for p in notebooks if any(p.name.startswith(pre) for pre in prefixes)]


def notebook_parameters(notebooks: Iterable[str | os.PathLike]) -> dict[str, dict[str, ParamSpec]]:
    """Inspect the ``parameters`` cell of each notebook with papermill.

    Returns ``{notebook file name: {parameter name: ParamSpec}}`` in the
    order given. A notebook without a ``parameters`` cell maps to ``{}``.
    """
    import papermill

    out: dict[str, dict[str, ParamSpec]] = {}
    for path in notebooks:
        path = Path(path)
        info = papermill.inspect_notebook(str(path))
        out[path.name] = {name: ParamSpec.from_papermill(name, v) for name, v in info.items()}
    return out


def _is_param_entry(value: Any) -> bool:
    """A ParamSpec or one raw entry of ``papermill.inspect_notebook``."""
    return isinstance(value, ParamSpec) or (
        isinstance(value, Mapping) and "inferred_type_name" in value)


def _is_nested(specs: Mapping[str, Any]) -> bool:
    """True for ``{notebook: {name: spec}}`` (as opposed to ``{name: spec}``)."""
    return bool(specs) and all(
        isinstance(v, Mapping) and not _is_param_entry(v)
        and all(_is_param_entry(x) for x in v.values())
        for v in specs.values()
    )


def _kinds_by_name(notebook_params: Mapping[str, Any] | None) -> dict[str, set[str]] | None:
    """Normalise the accepted ``notebook_params`` shapes to name -> kinds."""
    if notebook_params is None:
        return None
    groups = notebook_params.values() if _is_nested(notebook_params) else [notebook_params]
    kinds: dict[str, set[str]] = {}
    for group in groups:
        for name, spec in group.items():
            if isinstance(spec, ParamSpec):
                kind = spec.kind
            elif _is_param_entry(spec):  # raw papermill dict
                kind = ParamSpec.from_papermill(name, spec).kind
            else:  # a plain default value
                kind = type(spec).__name__ if spec is not None else "NoneType"
            kinds.setdefault(name, set()).add(kind)
    return kinds


def _valid_names_message(notebook_params: Mapping[str, Any] | None) -> str:
    """Describe the valid parameter names (per notebook if they differ)."""
    if not notebook_params:
        return "the selected notebooks declare no parameters"
    if _is_nested(notebook_params):
        per_nb = {nb: sorted(n for n in specs if n != "profile")
                  for nb, specs in notebook_params.items()}
        distinct = {tuple(v) for v in per_nb.values()}
        if len(distinct) > 1:
            parts = [f"{nb}: {', '.join(names) or '(none)'}" for nb, names in per_nb.items()]
            return "valid parameters per notebook (a name is injected only where it exists): " + "; ".join(parts)
        names = next(iter(per_nb.values()))
    else:
        names = sorted(n for n in notebook_params if n != "profile")
    return "valid parameters: " + (", ".join(names) if names else "(none)")


def _unknown_error(name: str, notebook_params: Mapping[str, Any] | None,
                   known: Iterable[str]) -> ParameterError:
    hint = difflib.get_close_matches(name, [k for k in known if k != "profile"], n=1)
    did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ParameterError(
        f"unknown parameter {name!r}{did_you_mean}; " + _valid_names_message(notebook_params)
    )


def _profile_error() -> ParameterError:
    return ParameterError(
        "'profile' is set with the profile argument (--profile), not as a NAME=VALUE parameter"
    )


# --------------------------------------------------------------------------
# Value parsing and type checks
# --------------------------------------------------------------------------

def _parse_container(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        pass
    return ast.literal_eval(text)


def parse_value(text: str) -> Any:
    """The value of one ``NAME=VALUE`` text when the expected type is unknown: ``none``/``null``,
    ``true``/``false``, a Python or JSON literal, else the text itself. The kit's one parser for
    such values (`cifarkit run -p`, ``bench/accuracy.py --set``)."""
    low = text.strip().lower()
    if low in _NONE_WORDS:
        return None
    if low in {"true", "false"}:
        return low == "true"
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def _parse_as(kind: str, text: str) -> Any:
    """Parse ``text`` as a value of type ``kind``; raise ValueError if it is not."""
    stripped = text.strip()
    low = stripped.lower()
    if kind == "str":
        if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
            try:
                value = ast.literal_eval(stripped)
                if isinstance(value, str):
                    return value
            except (ValueError, SyntaxError):
                pass
        return text
    if kind in {"NoneType", "any"}:
        return parse_value(text)
    if low in _NONE_WORDS:
        return None
    if kind == "bool":
        if low in _TRUE_WORDS:
            return True
        if low in _FALSE_WORDS:
            return False
        raise ValueError("use true/false, yes/no or 1/0")
    if kind == "int":
        return int(stripped)
    if kind == "float":
        return float(stripped)
    if kind in {"list", "tuple", "dict"}:
        value = _parse_container(stripped)
        return _check_kind(kind, value)
    return parse_value(text)


def _check_kind(kind: str, value: Any) -> Any:
    """Return ``value`` converted to ``kind`` or raise ValueError/TypeError."""
    if value is None or kind in {"NoneType", "any"}:
        return value
    if kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
    elif kind == "tuple":
        if isinstance(value, (list, tuple)):
            return tuple(value)
    elif kind == "dict":
        if isinstance(value, dict):
            return value
    else:
        return value
    raise TypeError(f"got {value!r} ({type(value).__name__})")


def parse_cli_parameters(items: Sequence[str] | None,
                         notebook_params: Mapping[str, Any] | None = None,
                         schema: Mapping[str, Spec] | None = None) -> dict[str, Any]:
    """Parse ``["NAME=VALUE", ...]`` from the command line into a dict.

    ``notebook_params`` says which names the notebooks take. It may be the
    output of `notebook_parameters` (``{notebook: {name: ParamSpec}}``),
    a single notebook's ``{name: ParamSpec}``, papermill's raw
    ``inspect_notebook`` dict, or a plain ``{name: default value}``; ``None``
    skips name checks.

    A name in ``schema`` (default: `cifarkit.course.params.SCHEMA`) is read
    and checked by its schema entry (``none``/``null``, ``true``/``false``, a
    Python literal or JSON, else the plain text; see
    `cifarkit.course.params.Spec.parse`), so ``epochs=abc``, ``epochs=0`` or
    ``data_source=bogus`` fail here with a message saying what is accepted.
    Any other name is parsed with the type of the notebook default:

    * ``int`` / ``float``: ``int(VALUE)`` / ``float(VALUE)``;
    * ``bool``: ``true/false``, ``yes/no``, ``1/0`` (any case);
    * ``str``: taken verbatim (one pair of surrounding quotes is removed);
    * ``list`` / ``tuple`` / ``dict``: JSON, else a Python literal;
    * default ``None`` or unknown: ``None``/``null``, ``true``/``false``,
      then a Python literal or JSON, else the plain string;

    `run_notebooks` then refuses notebooks whose parameters are not
    all in the schema.

    Raises `ParameterError` for an item without ``=``, a name that
    is not an identifier, a name given twice, ``profile`` (use the profile
    argument), an unknown name, or a value that does not fit.
    """
    schema = SCHEMA if schema is None else schema
    kinds = _kinds_by_name(notebook_params)
    out: dict[str, Any] = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ParameterError(f"malformed parameter {item!r}: expected NAME=VALUE, e.g. epochs=5")
        name, text = item.split("=", 1)
        name = name.strip()
        if not _IDENTIFIER.match(name):
            raise ParameterError(
                f"malformed parameter {item!r}: {name!r} is not a valid Python name (expected NAME=VALUE)"
            )
        if name == "profile":
            raise _profile_error()
        if name in out:
            raise ParameterError(f"parameter {name!r} given more than once")
        if kinds is not None and name not in kinds:
            raise _unknown_error(name, notebook_params, kinds)
        if name in schema:
            out[name] = schema[name].parse(text, name)
            continue
        if kinds is None:
            out[name] = parse_value(text)
            continue
        kind_set = kinds[name]
        kind = next(iter(kind_set)) if len(kind_set) == 1 else "any"
        try:
            out[name] = _parse_as(kind, text)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise ParameterError(
                f"parameter {name!r} expects {kind}, got {text!r}: {exc}"
            ) from None
    return out


def split_top_level(text: str) -> list[str]:
    """`text` cut at its commas that stand outside brackets, braces, parentheses and quotes:
    ``"0,1"`` -> ``["0", "1"]``, ``"[1, 2],[3]"`` -> ``["[1, 2]", "[3]"]``, ``"'a,b'"`` -> one piece.
    Unbalanced brackets or quotes: the whole text, one piece (its parser then says what is wrong)."""
    pieces, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                return [text]
        elif char == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if depth or quote:
        return [text]
    return pieces + [text[start:]]


def _takes_lists(name: str, kinds: Mapping[str, set[str]] | None, schema: Mapping[str, Spec]) -> bool:
    """Whether parameter `name` accepts a list value (its schema entry, else its notebook default)."""
    def lists(spec: Spec) -> bool:
        return isinstance(spec, ListOf) or (isinstance(spec, OneOf) and any(lists(o) for o in spec.options))
    if name in schema:
        return lists(schema[name])
    return bool(kinds and kinds.get(name, set()) & {"list", "tuple", "dict"})


def parse_cli_sweep(items: Sequence[str] | None,
                    notebook_params: Mapping[str, Any] | None = None,
                    schema: Mapping[str, Spec] | None = None) -> dict[str, list[Any]]:
    """Parse ``["NAME=VALUE", ...]`` where a value may be a sweep: ``{name: [value, ...]}``.

    A value with commas outside brackets and quotes (`split_top_level`) is a sweep, one value per
    piece: ``seed=0,1,2`` -> ``[0, 1, 2]``, ``data_source=synthetic,cifar10-unverified`` -> two
    strings; any other value is a list of one. Each piece is parsed and checked exactly as
    `parse_cli_parameters` parses a single value, so ``model='a,b'`` stays one string. A parameter
    that takes lists (``seeds``, ``widths``) must bracket each list: ``seeds=[0,1,2]`` is one list,
    ``seeds=[0,1],[2]`` a sweep over two lists, and ``seeds=0,1,2`` is refused as ambiguous (it was
    one list before sweeps existed). A value repeated within one sweep is refused, and so is a name
    given twice. Raises `ParameterError` before anything runs.
    """
    schema = SCHEMA if schema is None else schema
    kinds = _kinds_by_name(notebook_params)
    out: dict[str, list[Any]] = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            parse_cli_parameters([item], notebook_params, schema)  # raises its one-line error
        name, text = item.split("=", 1)
        name = name.strip()
        pieces = split_top_level(text)
        if len(pieces) == 1:
            values = [parse_cli_parameters([item], notebook_params, schema)[name]]
        else:
            if _takes_lists(name, kinds, schema) and not all(p.strip()[:1] in ("[", "(") for p in pieces):
                raise ParameterError(
                    f"parameter {name!r} takes a list, so {name}={text} is ambiguous: write {name}=[{text}] "
                    f"for one list, or bracket each list ({name}=[0,1],[2]) to sweep over lists")
            if any(not p.strip() for p in pieces):
                raise ParameterError(f"parameter {name!r}: the sweep {text!r} has an empty value")
            values = [parse_cli_parameters([f"{name}={p.strip()}"], notebook_params, schema)[name] for p in pieces]
            repeated = [v for i, v in enumerate(values) if v in values[:i]]
            if repeated:
                raise ParameterError(f"parameter {name!r}: the sweep {text!r} names {repeated[0]!r} twice")
        if name in out:
            raise ParameterError(f"parameter {name!r} given more than once")
        out[name] = values
    return out


def schema_problems(specs: Mapping[str, Mapping[str, ParamSpec]],
                    schema: Mapping[str, Spec] | None = None) -> list[str]:
    """What is wrong between the notebooks' parameters and the schema, one line each.

    A parameter that a notebook declares but `schema` (default: the kit's) lacks, and a default
    (a plain literal) that does not fit its entry. Empty when everything fits.
    """
    schema = SCHEMA if schema is None else schema
    problems = []
    for nb_name, nb_specs in specs.items():
        for name, spec in nb_specs.items():
            if name not in schema:
                problems.append(f"{nb_name} declares parameter {name!r}, which the parameter schema "
                                "(cifarkit/course/params.py) does not list; add an entry for it there")
                continue
            try:
                default = ast.literal_eval(spec.default)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue  # not a literal: nothing to check before the kernel runs
            if not schema[name].fits(default):
                problems.append(f"{nb_name}: the default {name} = {spec.default} does not fit the schema "
                                f"({schema[name].accepts})")
    return problems


def plan_parameters(specs: Mapping[str, Mapping[str, ParamSpec]],
                     parameters: Mapping[str, Any] | None,
                     profile: str,
                     schema: Mapping[str, Spec] | None = None) -> dict[str, dict[str, Any]]:
    """Validate ``parameters`` (and the notebooks against the schema); return what to inject
    into each notebook. Raises `ParameterError` before anything runs."""
    schema = SCHEMA if schema is None else schema
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a dict of name -> value, got {type(parameters).__name__}")
    parameters = dict(parameters)
    if "profile" in parameters:
        raise _profile_error()
    if "profile" in schema:
        profile = schema["profile"].check(profile, "profile")
    problems = schema_problems(specs, schema)
    if problems:
        raise ParameterError("; ".join(problems))
    known = {name for nb_specs in specs.values() for name in nb_specs}
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ParameterError(f"parameter name {name!r} is not a valid Python name")
        if name not in known:
            raise _unknown_error(name, specs, known)
        checked[name] = schema[name].coerce(value, name)
    plan: dict[str, dict[str, Any]] = {}
    for nb_name, nb_specs in specs.items():
        injected: dict[str, Any] = {"profile": profile}
        injected.update({name: value for name, value in checked.items() if name in nb_specs})
        plan[nb_name] = injected
    return plan
