"""Run the course notebooks headless with papermill and write a report.

The entry point is :func:`run_notebooks`. It executes every selected notebook
(``notebooks/NN_name.ipynb``) into a fresh run directory, keeps going when one
fails, pulls every PNG figure out of the executed copies and writes
``summary.json`` plus a readable ``summary.md``.

Layout of a run directory::

    runs/20250101-120000-quick/
        01_softmax_vs_logits.ipynb          executed copy (tracebacks kept)
        01_softmax_vs_logits.metrics.json   written by the notebook itself
        figures/01_softmax_vs_logits-1.png  k-th PNG output, in output order
        summary.json
        summary.md

Parameter rules
---------------
* ``profile`` is always injected into every notebook (it is the contract of
  the course notebooks). It is set with the ``profile`` argument, never
  through ``parameters``.
* Every other name in ``parameters`` must appear in the ``parameters`` cell
  of at least one selected notebook (as reported by
  ``papermill.inspect_notebook``). It is injected *only* into the notebooks
  that declare it, so ``epochs=5`` reaches the training notebooks and leaves
  the others alone. An unknown name raises :class:`ParameterError` listing
  the valid names.
* Values are checked against the type of the notebook's default: an ``int``
  default accepts ints, a ``float`` default accepts ints and floats, ``bool``
  only bools, ``str`` only strings, ``list``/``tuple`` lists or tuples,
  ``dict`` dicts. A string value given for a non-string parameter is parsed
  as on the command line (see :func:`parse_cli_parameters`). ``None`` is
  accepted for any parameter. A parameter whose default is ``None`` (or not
  a plain literal) accepts any value.

The kernel of each notebook sees ``CIFARKIT_RESULTS_DIR`` (the run directory)
and ``CIFARKIT_HEADLESS=1``; ``CIFARKIT_PROFILE`` is removed so that the
injected ``profile`` parameter is the only source of truth. The variables are
restored when the run ends.
"""
from __future__ import annotations

import ast
import base64
import difflib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "ParameterError",
    "ParamSpec",
    "NotebookResult",
    "RunResult",
    "list_notebooks",
    "notebook_parameters",
    "parse_cli_parameters",
    "new_run_dir",
    "run_notebooks",
    "format_failures",
    "main_run",
    "default_notebooks_dir",
    "data_source_label",
    "SYNTHETIC_LABEL",
]

#: How synthetic data is labelled in every human-readable report.
SYNTHETIC_LABEL = "SYNTHETIC (not CIFAR-10)"

#: Keys of a metrics JSON that describe the run rather than a result.
RUN_KEYS = ("profile", "device", "precision", "data_source")

_TRUE_WORDS = {"true", "yes", "1"}
_FALSE_WORDS = {"false", "no", "0"}
_NONE_WORDS = {"none", "null"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ParameterError(ValueError):
    """A notebook parameter is unknown, malformed or of the wrong type."""


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
    else:
        items = [str(p).strip() for p in only]
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
    root = Path(notebooks_dir)
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
            lines = [f"  {nb}: {', '.join(names) or '(none)'}" for nb, names in per_nb.items()]
            return "valid parameters per notebook (a name is injected only where it exists):\n" + "\n".join(lines)
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


def _guess_literal(text: str) -> Any:
    """Parse a value when the expected type is unknown."""
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
        return _guess_literal(text)
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
    return _guess_literal(text)


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


def _coerce(spec: ParamSpec, value: Any, where: str) -> Any:
    """Check an already parsed value against a notebook parameter."""
    try:
        if isinstance(value, str) and spec.kind not in {"str", "NoneType", "any"}:
            return _parse_as(spec.kind, value)
        return _check_kind(spec.kind, value)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ParameterError(
            f"parameter {spec.name!r}{where} expects {spec.kind} (default {spec.default}), "
            f"got {value!r} ({type(value).__name__}): {exc}"
        ) from None


def parse_cli_parameters(items: Sequence[str] | None,
                         notebook_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parse ``["NAME=VALUE", ...]`` from the command line into a dict.

    ``notebook_params`` says what the notebooks accept. It may be the
    output of :func:`notebook_parameters` (``{notebook: {name: ParamSpec}}``),
    a single notebook's ``{name: ParamSpec}``, papermill's raw
    ``inspect_notebook`` dict, or a plain ``{name: default value}``; ``None``
    skips name checks and guesses types.

    Values are parsed with the type of the notebook default:

    * ``int`` / ``float``: ``int(VALUE)`` / ``float(VALUE)``;
    * ``bool``: ``true/false``, ``yes/no``, ``1/0`` (any case);
    * ``str``: taken verbatim (one pair of surrounding quotes is removed);
    * ``list`` / ``tuple`` / ``dict``: JSON, else a Python literal;
    * default ``None`` or unknown: ``None``/``null``, ``true``/``false``,
      then a Python literal or JSON, else the plain string.

    ``None``/``null`` gives ``None`` for every non-string parameter. If a
    name has different types in different notebooks, the value is guessed
    and checked per notebook by :func:`run_notebooks`.

    Raises :class:`ParameterError` for an item without ``=``, a name that
    is not an identifier, a name given twice, ``profile`` (use the profile
    argument), an unknown name, or a value that does not fit the type.
    """
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
        if kinds is None:
            out[name] = _guess_literal(text)
            continue
        if name not in kinds:
            raise _unknown_error(name, notebook_params, kinds)
        kind_set = kinds[name]
        kind = next(iter(kind_set)) if len(kind_set) == 1 else "any"
        try:
            out[name] = _parse_as(kind, text)
        except (ValueError, TypeError, SyntaxError) as exc:
            raise ParameterError(
                f"parameter {name!r} expects {kind}, got {text!r}: {exc}"
            ) from None
    return out


def _plan_parameters(specs: Mapping[str, Mapping[str, ParamSpec]],
                     parameters: Mapping[str, Any] | None,
                     profile: str) -> dict[str, dict[str, Any]]:
    """Validate ``parameters`` and return what to inject into each notebook."""
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise _profile_error()
    known = {name for nb_specs in specs.values() for name in nb_specs}
    for name in parameters:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise ParameterError(f"parameter name {name!r} is not a valid Python name")
        if name not in known:
            raise _unknown_error(name, specs, known)
    plan: dict[str, dict[str, Any]] = {}
    for nb_name, nb_specs in specs.items():
        injected: dict[str, Any] = {"profile": profile}
        for name, value in parameters.items():
            if name in nb_specs:
                injected[name] = _coerce(nb_specs[name], value, f" of {nb_name}")
        plan[nb_name] = injected
    return plan


# --------------------------------------------------------------------------
# Run directory, kernels, environment
# --------------------------------------------------------------------------

def _safe_label(text: str) -> str:
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")
    return label or "run"


def new_run_dir(root: str | os.PathLike = "runs", profile: str = "quick",
                now: datetime | None = None) -> Path:
    """Create and return a fresh ``root/<YYYYmmdd-HHMMSS>-<profile>`` directory.

    The directory is created atomically; if the name is taken (two runs in
    the same second) ``-2``, ``-3``, ... is appended. Never reuses a
    directory.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_safe_label(profile)}"
    for k in range(1, 10_000):
        candidate = root / (base if k == 1 else f"{base}-{k}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not find a free run directory name under {str(root)!r}")


def _prepare_out_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"run directory {str(out)!r} exists and is not a directory")
        if any(out.iterdir()):
            raise FileExistsError(
                f"run directory {str(out)!r} already exists and is not empty; "
                "choose a new --out (runs are never overwritten)"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_kernels(notebooks: Sequence[Path], kernel_name: str | None) -> None:
    """Fail early (before creating anything) when a kernel cannot be found."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager

    available = set(KernelSpecManager().find_kernel_specs())
    wanted: dict[str, list[str]] = {}
    for path in notebooks:
        name = kernel_name
        if name is None:
            nb = nbformat.read(str(path), as_version=4)
            name = (nb.metadata.get("kernelspec") or {}).get("name")
            if not name:
                raise ValueError(
                    f"{path.name} has no kernelspec in its metadata; pass kernel_name "
                    f"(available: {', '.join(sorted(available)) or 'none'})"
                )
        wanted.setdefault(name, []).append(path.name)
    missing = {k: v for k, v in wanted.items() if k not in available}
    if missing:
        detail = "; ".join(f"{k!r} (needed by {', '.join(v)})" for k, v in missing.items())
        raise ValueError(
            f"no Jupyter kernel named {detail}; available kernels: "
            f"{', '.join(sorted(available)) or 'none'}. Pass kernel_name=... or register one with "
            "`python -m ipykernel install --user --name cifarkit`"
        )


class _KernelEnv:
    """Set the kernel's environment variables and restore them afterwards."""

    def __init__(self, run_dir: Path):
        self.values = {"CIFARKIT_RESULTS_DIR": str(run_dir), "CIFARKIT_HEADLESS": "1",
                       "CIFARKIT_PROFILE": None}
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> "_KernelEnv":
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        return self

    def __exit__(self, *exc: object) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

@dataclass
class NotebookResult:
    """What happened to one notebook of a run.

    ``status`` is ``"ok"`` or ``"failed"``; ``error`` is a one-line summary
    (exception name and message) when it failed. ``output`` is the executed
    copy in the run directory (``None`` if papermill could not write one),
    ``metrics`` the content of ``<stem>.metrics.json`` (``None`` if the
    notebook wrote none), ``figures`` the PNG files extracted from it.
    """

    name: str
    path: Path
    output: Path | None
    status: str
    duration_s: float
    parameters: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    metrics: dict[str, Any] | None = None
    metrics_note: str | None = None
    figures: list[Path] = field(default_factory=list)

    @property
    def stem(self) -> str:
        """File name without ``.ipynb``."""
        return Path(self.name).stem

    @property
    def ok(self) -> bool:
        """True when the notebook ran to the end."""
        return self.status == "ok"


@dataclass
class RunResult:
    """The outcome of :func:`run_notebooks`."""

    run_dir: Path
    notebooks: list[NotebookResult]
    profile: str
    started_at: str
    duration_s: float
    summary_json: Path
    summary_md: Path

    @property
    def ok(self) -> bool:
        """True when every notebook succeeded."""
        return all(nb.ok for nb in self.notebooks)

    @property
    def failed(self) -> list[str]:
        """File names of the notebooks that failed."""
        return [nb.name for nb in self.notebooks if not nb.ok]


def format_failures(result: RunResult) -> str:
    """A short message naming the failed notebooks ('' when all passed).

    Meant for the CLI, which prints it and exits non-zero.
    """
    failed = [nb for nb in result.notebooks if not nb.ok]
    if not failed:
        return ""
    lines = [f"{len(failed)} of {len(result.notebooks)} notebook(s) failed in {result.run_dir}:"]
    for nb in failed:
        where = f" (executed copy with traceback: {nb.output})" if nb.output else ""
        lines.append(f"  - {nb.name}: {nb.error}{where}")
    return "\n".join(lines)


def _error_summary(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:  # papermill.PapermillExecutionError
        text = f"{ename}: {evalue}" if evalue else str(ename)
        exec_count = getattr(exc, "exec_count", None)
        if exec_count is not None:
            text += f" (in cell [{exec_count}])"
    else:
        message = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return text if len(text) <= 500 else text[:497] + "..."


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    if not path.exists():
        return None, "no metrics file written"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable metrics file: {exc}"
    if not isinstance(data, dict):
        return None, "metrics file does not hold a JSON object"
    return data, None


def _extract_figures(executed: Path, figures_dir: Path, stem: str) -> list[Path]:
    """Write every image/png output of ``executed`` to ``figures_dir``."""
    import nbformat

    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # an unreadable copy has no figures to offer
        return []
    written: list[Path] = []
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            png = data.get("image/png")
            if not png:
                continue
            if isinstance(png, list):
                png = "".join(png)
            figures_dir.mkdir(parents=True, exist_ok=True)
            target = figures_dir / f"{stem}-{len(written) + 1}.png"
            target.write_bytes(base64.b64decode(png))
            written.append(target)
    return written


# --------------------------------------------------------------------------
# Summary (JSON and Markdown)
# --------------------------------------------------------------------------

def data_source_label(source: Any) -> str:
    """Human label for a data source; synthetic data is marked loudly."""
    if source is None:
        return "unknown"
    if str(source).lower() == "synthetic":
        return SYNTHETIC_LABEL
    return str(source)


def _distinct(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        if v is not None and v not in seen:
            seen.append(v)
    return seen


def format_value(value: Any, max_items: int = 8) -> str:
    """Compact text for one metric value (floats to 4 significant digits)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) <= max_items:
            return "[" + ", ".join(format_value(v) for v in value) + "]"
        return (f"[{len(value)} values: {format_value(value[0])}, {format_value(value[1])}, ..., "
                f"{format_value(value[-1])}]")
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten nested dicts into ``("a.b", value)`` pairs, skipping run keys."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if not prefix and key in RUN_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten_metrics(value, prefix=name + "."))
        else:
            rows.append((name, value))
    return rows


def md_cell(text: Any) -> str:
    """`text` made safe for one cell of a markdown table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def joined(values: Any, label=str) -> str:
    """``"a, b"`` for a summary field holding one value or a list of them; "unknown" if empty."""
    if isinstance(values, str):
        values = [values]
    return ", ".join(label(v) for v in values) if values else "unknown"


def metrics_markdown(metrics: Mapping[str, Any] | None, max_rows: int | None = None,
                     max_items: int = 8, overflow: str = "more") -> list[str]:
    """Markdown lines for one notebook's metrics: a synthetic-data marker, then a table.

    At most `max_rows` rows (all when None); the rest are counted in a last row that says
    ``"<n> <overflow>"``. An empty list when there are no metrics.
    """
    if not metrics:
        return []
    lines = []
    if str(metrics.get("data_source", "")).lower() == "synthetic":
        lines += [f"Data: **{SYNTHETIC_LABEL}**", ""]
    rows = flatten_metrics(metrics)
    if rows:
        shown = rows if max_rows is None else rows[:max_rows]
        lines += ["| Metric | Value |", "|---|---|"]
        lines += [f"| {md_cell(k)} | {md_cell(format_value(v, max_items=max_items))} |"
                  for k, v in shown]
        if len(rows) > len(shown):
            lines.append(f"| ... | {len(rows) - len(shown)} {overflow} |")
        lines.append("")
    return lines


def _summary_dict(result_nbs: list[NotebookResult], run_dir: Path, profile: str,
                  parameters: Mapping[str, Any], started_at: str, duration_s: float,
                  kernel_name: str | None) -> dict[str, Any]:
    metrics = [nb.metrics for nb in result_nbs if nb.metrics]
    sources = _distinct(m.get("data_source") for m in metrics)
    notebooks = []
    for nb in result_nbs:
        notebooks.append({
            "name": nb.name,
            "status": nb.status,
            "duration_s": round(nb.duration_s, 3),
            "error": nb.error,
            "executed": nb.output.name if nb.output else None,
            "parameters": nb.parameters,
            "metrics_file": f"{nb.stem}.metrics.json" if nb.metrics is not None else None,
            "metrics_note": nb.metrics_note,
            "metrics": nb.metrics,
            "figures": [f.relative_to(run_dir).as_posix() for f in nb.figures],
        })
    return {
        "run_name": run_dir.name,
        "run_dir": str(run_dir),
        "profile": profile,
        "parameters": dict(parameters),
        "kernel_name": kernel_name,
        "device": _distinct(m.get("device") for m in metrics),
        "precision": _distinct(m.get("precision") for m in metrics),
        "data_source": sources,
        "synthetic_data": any(str(s).lower() == "synthetic" for s in sources),
        "started_at": started_at,
        "duration_s": round(duration_s, 3),
        "ok": all(nb.ok for nb in result_nbs),
        "failed": [nb.name for nb in result_nbs if not nb.ok],
        "notebooks": notebooks,
        "figures": [f for nb in notebooks for f in nb["figures"]],
    }


def render_summary_markdown(summary: Mapping[str, Any]) -> str:
    """Render a ``summary.json`` dict as a Markdown report."""
    nbs = summary["notebooks"]
    n_ok = sum(1 for nb in nbs if nb["status"] == "ok")
    lines = [f"# cifarkit run `{summary['run_name']}`", ""]
    if summary.get("synthetic_data"):
        lines += [
            f"> **Warning: {SYNTHETIC_LABEL}.** At least one notebook trained on synthetic "
            "stand-in data, so its numbers say nothing about CIFAR-10 accuracy.", "",
        ]
    params = summary.get("parameters") or {}
    lines += [
        "| | |", "|---|---|",
        f"| Status | {'all notebooks passed' if summary['ok'] else 'FAILED: ' + md_cell(', '.join(summary['failed']))} ({n_ok}/{len(nbs)} ok) |",
        f"| Profile | `{summary['profile']}` |",
        f"| Parameters | {md_cell(', '.join(f'{k}={v!r}' for k, v in params.items())) if params else '(defaults)'} |",
        f"| Device | {md_cell(joined(summary['device']))} |",
        f"| Precision | {md_cell(joined(summary['precision']))} |",
        f"| Data source | {md_cell(joined(summary['data_source'], data_source_label))} |",
        f"| Started | {summary['started_at']} |",
        f"| Total duration | {summary['duration_s']:.1f} s |",
        "",
        "## Notebooks", "",
        "| Notebook | Status | Seconds | Data | Device | Precision | Error |",
        "|---|---|---:|---|---|---|---|",
    ]
    for nb in nbs:
        m = nb.get("metrics") or {}
        status = "ok" if nb["status"] == "ok" else "**FAILED**"
        lines.append(
            f"| {md_cell(nb['name'])} | {status} | {nb['duration_s']:.1f} | "
            f"{md_cell(data_source_label(m.get('data_source')) if m else '-')} | "
            f"{md_cell(m.get('device', '-'))} | {md_cell(m.get('precision', '-'))} | "
            f"{md_cell(nb['error'] or '')} |"
        )
    lines += ["", "## Results per notebook", ""]
    for nb in nbs:
        lines += [f"### {nb['name']}", ""]
        if nb["status"] != "ok":
            lines += [f"**FAILED**: `{nb['error']}`. The executed copy `{nb['executed']}` "
                      "keeps the traceback.", ""]
        m = nb.get("metrics")
        if m:
            lines += metrics_markdown(m)
        else:
            lines += [f"_No metrics ({nb.get('metrics_note') or 'none written'})._", ""]
        for k, fig in enumerate(nb["figures"], start=1):
            lines += [f"![{nb['name']} figure {k}]({fig})", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------

def run_notebooks(notebooks_dir: str | os.PathLike = "notebooks", profile: str = "quick",
                  only: str | Iterable[str] | None = None, out: str | os.PathLike | None = None,
                  parameters: Mapping[str, Any] | None = None, progress: bool = True,
                  kernel_name: str | None = None) -> RunResult:
    """Execute the course notebooks headless and write a run report.

    Parameters
    ----------
    notebooks_dir:
        Folder with the ``NN_name.ipynb`` notebooks.
    profile:
        Injected as the ``profile`` parameter of every notebook.
    only:
        Prefixes such as ``["01", "05"]`` selecting notebooks by file name.
    out:
        Run directory. Default: a new ``runs/<YYYYmmdd-HHMMSS>-<profile>/``
        (``-2``, ``-3``, ... when the name is taken). An existing non-empty
        directory is refused.
    parameters:
        Extra ``{name: value}`` parameters (already parsed, e.g. with
        :func:`parse_cli_parameters`). See the module docstring for the
        injection rules; problems raise :class:`ParameterError` before any
        notebook runs.
    progress:
        Show a tqdm bar and print one line per finished notebook.
    kernel_name:
        Jupyter kernel to use; default: the one in each notebook's metadata.

    A failing notebook does not stop the others. Returns a
    :class:`RunResult`; ``result.ok`` is False if any notebook failed.
    On Ctrl-C the run stops after the current notebook (marked failed), the
    summary of what ran is written, and ``KeyboardInterrupt`` is re-raised.
    """
    import papermill
    from tqdm.auto import tqdm

    if not isinstance(profile, str) or not profile.strip():
        raise ValueError(f"profile must be a non-empty string, got {profile!r}")
    notebooks = list_notebooks(notebooks_dir, only)
    specs = notebook_parameters(notebooks)
    plan = _plan_parameters(specs, parameters, profile)
    _check_kernels(notebooks, kernel_name)

    run_dir = (new_run_dir("runs", profile) if out is None else _prepare_out_dir(out)).resolve()
    figures_dir = run_dir / "figures"
    started_at = datetime.now().astimezone().isoformat(timespec="seconds")
    t_run = time.perf_counter()
    results: list[NotebookResult] = []
    interrupted = False

    def say(line: str) -> None:
        if progress:
            tqdm.write(line)

    bar = tqdm(notebooks, desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    with _KernelEnv(run_dir):
        for path in bar:
            bar.set_postfix_str(path.name)
            output = run_dir / path.name
            t0 = time.perf_counter()
            error = None
            try:
                papermill.execute_notebook(
                    str(path.resolve()), str(output), parameters=plan[path.name],
                    cwd=str(run_dir), kernel_name=kernel_name,
                    progress_bar=False, log_output=False,
                )
            except Exception as exc:  # noqa: BLE001 - one failure must not stop the run
                error = _error_summary(exc)
            except KeyboardInterrupt:
                error = "KeyboardInterrupt: run interrupted by the user"
                interrupted = True
            duration = time.perf_counter() - t0
            metrics, note = _read_metrics(run_dir / f"{path.stem}.metrics.json")
            figures = _extract_figures(output, figures_dir, path.stem) if output.exists() else []
            nb_result = NotebookResult(
                name=path.name, path=path, output=output if output.exists() else None,
                status="ok" if error is None else "failed", duration_s=duration,
                parameters=plan[path.name], error=error, metrics=metrics, metrics_note=note,
                figures=figures,
            )
            results.append(nb_result)
            tail = f"  {error}" if error else ""
            say(f"{path.name:<40s} {nb_result.status:<6s} {duration:7.1f} s{tail}")
            if interrupted:
                break
    bar.close()

    duration_s = time.perf_counter() - t_run
    summary = _summary_dict(results, run_dir, profile, parameters or {}, started_at,
                            duration_s, kernel_name)
    summary_json = run_dir / "summary.json"
    summary_md = run_dir / "summary.md"
    summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    summary_md.write_text(render_summary_markdown(summary), encoding="utf-8")
    result = RunResult(run_dir=run_dir, notebooks=results, profile=profile,
                       started_at=started_at, duration_s=duration_s,
                       summary_json=summary_json, summary_md=summary_md)
    say(f"{len(results) - len(result.failed)}/{len(results)} notebooks ok in {duration_s:.1f} s; "
        f"report: {summary_md}")
    if interrupted:  # the report covers what ran; let the caller see the interrupt
        raise KeyboardInterrupt(f"run interrupted; partial report in {summary_md}")
    return result


# --------------------------------------------------------------------------
# Command line glue (called by cifarkit.cli)
# --------------------------------------------------------------------------

def default_notebooks_dir() -> Path:
    """The kit's ``notebooks/`` folder (next to the package), else ``./notebooks``."""
    kit = Path(__file__).resolve().parent.parent / "notebooks"
    return kit if kit.is_dir() else Path("notebooks")


def main_run(args: Any) -> int:
    """Run ``cifarkit run`` from parsed arguments; return the exit status.

    ``args`` needs ``profile``, ``only`` (comma-separated prefixes or None),
    ``out``, ``notebooks`` (None: :func:`default_notebooks_dir`) and
    ``parameter`` (list of ``NAME=VALUE``); ``kernel`` is optional. Bad
    input raises ``ValueError``/``OSError`` before anything runs. Returns 0
    when every notebook passed, 1 otherwise (the failures are printed to
    stderr).
    """
    notebooks_dir = getattr(args, "notebooks", None) or default_notebooks_dir()
    only = getattr(args, "only", None)
    paths = list_notebooks(notebooks_dir, only)
    parameters = parse_cli_parameters(getattr(args, "parameter", None) or [], notebook_parameters(paths))
    result = run_notebooks(notebooks_dir, profile=getattr(args, "profile", "quick"), only=only,
                           out=getattr(args, "out", None), parameters=parameters,
                           kernel_name=getattr(args, "kernel", None))
    if result.ok:
        return 0
    sys.stderr.write(format_failures(result) + "\n")
    return 1
