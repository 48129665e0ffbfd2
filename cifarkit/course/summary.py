"""The run report: ``summary.json`` and ``summary.md`` from the notebooks' recorded metrics.

Also the markdown pieces the slides reuse (`run_table_markdown`, `notebooks_table_markdown`,
`claims_markdown`, `verdicts_markdown`, `metrics_markdown`, `md_cell`, `joined`), the claim
checks that `cifarkit.course.results.record_results` applies (`check_claims`), and `read_summary`, which
reads a ``summary.json`` back and says in one line what is wrong with it.

Claims
------
A notebook records its lesson as claims with computed verdicts: the metrics JSON carries
``"claims"``, a list of ``{"name", "statement", "verdict", "case", "evidence", "reason"}`` dicts
(`CLAIM_KEYS`), ``verdict`` one of `VERDICTS` (from `cifarkit.course.claims`, which computes them).
``summary.json`` keeps each notebook's list under ``notebooks[i]["claims"]`` and counts them
under ``"verdicts"``: ``{"total": {verdict: n}, "by_notebook": {notebook: {verdict: n}}}``.

Statuses
--------
A notebook ends ``"ok"`` (`OK`), ``"differs"`` (`DIFFERS`: it ran to the end under settings the
course was not sized for and some claims came out differently from the course's expected verdicts,
as its metrics record under ``"course_case"``; shown as "ok, differs from the course") or
``"failed"`` (`FAILED`: it stopped with an error, a broken invariant for one). `ran` says whether a
status means the notebook ran to the end (`RAN`); `status_label` words a status for a table.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .claims import VERDICTS, claims_markdown, md_cell, verdict_counts

#: How synthetic data is labelled in every human-readable report.
SYNTHETIC_LABEL = "SYNTHETIC (not CIFAR-10)"

#: Keys of a metrics JSON that describe the run rather than a result.
RUN_KEYS = ("profile", "device", "precision", "data_source", "torch_version")

#: Keys of a metrics JSON shown elsewhere in the report than the metrics table.
NOT_METRICS = RUN_KEYS + ("claims", "course_case")

#: The statuses of a notebook in a run (see the module docstring).
OK, DIFFERS, FAILED = "ok", "differs", "failed"
#: The statuses of a notebook that ran to the end.
RAN = (OK, DIFFERS)
_STATUS_LABELS = {OK: "ok", DIFFERS: "ok, differs from the course", FAILED: "**FAILED**"}


def ran(status: Any) -> bool:
    """True when `status` says the notebook ran to the end (`OK` or `DIFFERS`)."""
    return status in RAN


def status_label(status: Any) -> str:
    """A status for a Markdown table: ``ok``, ``ok, differs from the course`` or ``**FAILED**``."""
    return _STATUS_LABELS[status if status in RAN else FAILED]


def differing_claims(metrics: Any) -> list[str]:
    """The claims a notebook's metrics record as differing from the course (``"course_case"``,
    written by `record_results` from a `cifarkit.Claims` table); [] when none or malformed."""
    case = metrics.get("course_case") if isinstance(metrics, Mapping) else None
    names = case.get("differs") if isinstance(case, Mapping) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def notebook_status(error: str | None, metrics: Any) -> str:
    """`FAILED` when the notebook stopped with `error`, else `DIFFERS` when its `metrics` record
    claims that came out differently from the course (`differing_claims`), else `OK`."""
    if error is not None:
        return FAILED
    return DIFFERS if differing_claims(metrics) else OK

#: The fields of a claim; ``reason`` may be None.
CLAIM_KEYS = ("name", "statement", "verdict", "case", "evidence", "reason")


# --------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------

@dataclass
class NotebookResult:
    """What happened to one notebook of a run.

    ``status`` is ``"ok"``, ``"differs"`` or ``"failed"`` (`notebook_status`); ``error`` is a one-line summary
    (exception name and message) when it failed. ``output`` is the executed
    copy in the run directory (``None`` if papermill could not write one),
    ``metrics`` the content of ``<stem>.metrics.json`` (``None`` if the
    notebook wrote none), ``figures`` the PNG files extracted from it. ``worker`` says where a
    Dask worker ran it (``host``, ``worker``, ``attempts``, ``started_at``, ``finished_at``, ...;
    see `cifarkit.course.engine`); None when the run executed it in its own process.
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
    worker: dict[str, Any] | None = None

    @property
    def stem(self) -> str:
        """File name without ``.ipynb``."""
        return Path(self.name).stem

    @property
    def ok(self) -> bool:
        """True when the notebook ran to the end (its status is ``"ok"`` or ``"differs"``)."""
        return ran(self.status)



def check_claim(claim: Any, where: str = "claim") -> dict[str, Any]:
    """Return `claim` (a dict, or an object with ``to_dict()``) as a checked plain dict.

    ``name``, ``statement`` and ``verdict`` are required strings, ``verdict`` one of `VERDICTS`;
    ``case`` and ``evidence`` are strings ("" when missing), ``reason`` a string or None. Other
    keys are kept. Raises TypeError/ValueError naming `where` and the bad field.
    """
    to_dict = getattr(claim, "to_dict", None)
    if not isinstance(claim, Mapping) and callable(to_dict):
        claim = to_dict()
    if not isinstance(claim, Mapping):
        raise TypeError(f"{where} must be a dict or have a to_dict() method, got {type(claim).__name__}")
    out = dict(claim)
    for key in ("name", "statement", "verdict"):
        if key not in out:
            raise ValueError(f"{where} has no {key!r}")
    out.setdefault("case", "")
    out.setdefault("evidence", "")
    out.setdefault("reason", None)
    for key in ("name", "statement", "verdict", "case", "evidence"):
        if not isinstance(out[key], str):
            raise TypeError(f"{where}: {key!r} must be a string, got {type(out[key]).__name__}")
    if not out["name"].strip() or not out["statement"].strip():
        raise ValueError(f"{where}: 'name' and 'statement' must not be empty")
    if out["verdict"] not in VERDICTS:
        raise ValueError(f"{where}: verdict {out['verdict']!r} is not one of "
                         + ", ".join(repr(v) for v in VERDICTS))
    if out["reason"] is not None and not isinstance(out["reason"], str):
        raise TypeError(f"{where}: 'reason' must be a string or None, got {type(out['reason']).__name__}")
    return out


def check_claims(claims: Any, where: str = "claims") -> list[dict[str, Any]]:
    """Check a list of claims (see `check_claim`); names must be unique. Returns plain dicts."""
    if isinstance(claims, (str, bytes, Mapping)) or not hasattr(claims, "__iter__"):
        raise TypeError(f"{where} must be a list of claims, got {type(claims).__name__}")
    out = [check_claim(c, f"{where}[{i}]") for i, c in enumerate(claims)]  # a list or a ck.Claims
    names = [c["name"] for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{where}: claim names must be unique, repeated: {', '.join(dupes)}")
    return out


def verdict_tally(notebooks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"total": {verdict: n}, "by_notebook": {name: {verdict: n}}}`` over the notebooks (dicts
    with ``name`` and ``claims``) that recorded claims."""
    by_notebook = {nb["name"]: verdict_counts(nb["claims"]) for nb in notebooks if nb.get("claims")}
    total = {v: sum(counts[v] for counts in by_notebook.values()) for v in VERDICTS}
    return {"total": total, "by_notebook": by_notebook}


def claims_from_metrics(metrics: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], str | None]:
    """The well-formed claims of a metrics dict, and a one-line note about any that were dropped."""
    raw = (metrics or {}).get("claims")
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        return [], f"claims ignored: 'claims' must be a list, got {type(raw).__name__}"
    kept, problems = [], []
    for i, claim in enumerate(raw):
        try:
            kept.append(check_claim(claim, f"claims[{i}]"))
        except (TypeError, ValueError) as exc:
            problems.append(str(exc))
    return kept, (f"{len(problems)} claim(s) ignored: " + "; ".join(problems)) if problems else None


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
    """Flatten nested dicts into ``("a.b", value)`` pairs, skipping `NOT_METRICS` keys."""
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if not prefix and key in NOT_METRICS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten_metrics(value, prefix=name + "."))
        else:
            rows.append((name, value))
    return rows


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


def summary_dict(result_nbs: list[NotebookResult], run_dir: Path, profile: str,
                  parameters: Mapping[str, Any], started_at: str, duration_s: float,
                  kernel_name: str | None) -> dict[str, Any]:
    metrics = [nb.metrics for nb in result_nbs if nb.metrics]
    sources = _distinct(m.get("data_source") for m in metrics)
    notebooks = []
    for nb in result_nbs:
        claims, claims_note = claims_from_metrics(nb.metrics)
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
            "claims": claims,
            "claims_note": claims_note,
            "figures": [f.relative_to(run_dir).as_posix() for f in nb.figures],
            **({"worker": nb.worker} if nb.worker else {}),  # only where a Dask worker ran it
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
        "differs": [nb.name for nb in result_nbs if nb.status == DIFFERS],
        "verdicts": verdict_tally(notebooks),
        "notebooks": notebooks,
        "figures": [f for nb in notebooks for f in nb["figures"]],
    }


# --------------------------------------------------------------------------
# Markdown pieces (shared with the slides)
# --------------------------------------------------------------------------

def run_table_markdown(summary: Mapping[str, Any]) -> list[str]:
    """The two-column table about the run: status, profile, parameters, device, data, timing."""
    nbs = summary["notebooks"]
    n_ok = sum(1 for nb in nbs if ran(nb["status"]))
    status = "all notebooks passed" if summary["ok"] else "FAILED: " + md_cell(", ".join(summary["failed"]))
    differs = [nb["name"] for nb in nbs if nb["status"] == DIFFERS]
    if differs:
        status += "; differs from the course under these settings: " + md_cell(", ".join(differs))
    params = summary.get("parameters") or {}
    shown = md_cell(", ".join(f"{k}={v!r}" for k, v in params.items())) if params else "(defaults)"
    return [
        "| | |", "|---|---|",
        f"| Status | {status} ({n_ok}/{len(nbs)} ok) |",
        f"| Profile | `{md_cell(summary['profile'])}` |",
        f"| Parameters | {shown} |",
        f"| Device | {md_cell(joined(summary['device']))} |",
        f"| Precision | {md_cell(joined(summary['precision']))} |",
        f"| Data source | {md_cell(joined(summary['data_source'], data_source_label))} |",
        f"| Started | {md_cell(summary['started_at'])} |",
        f"| Total duration | {float(summary['duration_s']):.1f} s |",
        *([f"| Engine | {md_cell(summary['engine'].get('description', '?'))} |"] if summary.get("engine") else []),
        "",
    ]


def worker_label(worker: Mapping[str, Any] | None) -> str:
    """Where a Dask worker ran a notebook, for a table: ``host (worker name)``, and the attempts
    when it took more than one; "-" when the run's own process ran it."""
    if not worker:
        return "-"
    label = str(worker.get("host") or "?")
    name = worker.get("name") or worker.get("address")
    if name:
        label += f" ({name})"
    attempts = worker.get("attempts")
    if isinstance(attempts, int) and attempts > 1:
        label += f", attempt {attempts}"
    return label


def notebooks_table_markdown(notebooks: Iterable[Mapping[str, Any]], compact: bool = False) -> list[str]:
    """One row per notebook: name, status, seconds, data (and device, precision, error unless
    `compact`, as on a slide; and the worker, when Dask workers ran them)."""
    notebooks = list(notebooks)
    workers = not compact and any(nb.get("worker") for nb in notebooks)
    head = ["Notebook", "Status", "Seconds", "Data"] + ([] if compact else ["Device", "Precision", "Error"])
    align = ["---", "---", "---:", "---"] + ([] if compact else ["---", "---", "---"])
    head, align = head + ["Worker"] * workers, align + ["---"] * workers
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for nb in notebooks:
        m = nb.get("metrics") or {}
        cells = [md_cell(nb["name"]), status_label(nb["status"]),
                 f"{float(nb['duration_s']):.1f}",
                 md_cell(data_source_label(m.get("data_source")) if m else "-")]
        if not compact:
            cells += [md_cell(m.get("device", "-")), md_cell(m.get("precision", "-")),
                      md_cell(nb.get("error") or "")]
        if workers:
            cells.append(md_cell(worker_label(nb.get("worker"))))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def verdicts_markdown(summary: Mapping[str, Any], heading: str = "## Verdicts") -> list[str]:
    """The "Verdicts" section: per notebook, how many claims hold, do not, ... (and a total)."""
    lines = [heading, ""]
    tally = verdict_tally(summary["notebooks"])
    by_notebook, total = tally["by_notebook"], tally["total"]
    if not by_notebook:
        return lines + ["_No notebook recorded claims._", ""]
    lines += ["| Notebook | " + " | ".join(VERDICTS) + " |", "|---|" + "---:|" * len(VERDICTS)]
    for name, counts in by_notebook.items():
        lines.append(f"| {md_cell(name)} | " + " | ".join(str(counts[v]) for v in VERDICTS) + " |")
    if len(by_notebook) > 1:
        lines.append("| **all** | " + " | ".join(f"**{total[v]}**" for v in VERDICTS) + " |")
    silent = [nb["name"] for nb in summary["notebooks"] if not nb.get("claims")]
    lines.append("")
    if silent:
        lines += [f"No claims recorded by: {md_cell(', '.join(silent))}.", ""]
    return lines


def differs_markdown(nb: Mapping[str, Any]) -> list[str]:
    """For a notebook whose status is `DIFFERS`: a paragraph naming the claims that came out
    differently and the settings that differ from the course's (else [])."""
    if nb.get("status") != DIFFERS:
        return []
    case = (nb.get("metrics") or {}).get("course_case") or {}
    changes = case.get("changes") if isinstance(case.get("changes"), list) else []
    text = (f"**Ran to the end; differs from the course**: under this run's settings "
            f"({md_cell('; '.join(map(str, changes)) or case.get('case', '?'))}) the claims "
            f"{md_cell(', '.join(differing_claims(nb.get('metrics'))))} came out differently from the "
            "course's expected verdicts, which are asserted only in the cases the course was sized for.")
    return [text, ""]


def render_summary_markdown(summary: Mapping[str, Any]) -> str:
    """Render a ``summary.json`` dict as a Markdown report."""
    nbs = summary["notebooks"]
    lines = [f"# cifarkit run `{summary['run_name']}`", ""]
    if summary.get("synthetic_data"):
        lines += [
            f"> **Warning: {SYNTHETIC_LABEL}.** At least one notebook trained on synthetic "
            "stand-in data, so its numbers say nothing about CIFAR-10 accuracy.", "",
        ]
    lines += run_table_markdown(summary)
    lines += ["## Notebooks", ""] + notebooks_table_markdown(nbs)
    lines += verdicts_markdown(summary)
    lines += ["## Results per notebook", ""]
    for nb in nbs:
        lines += [f"### {nb['name']}", ""]
        if not ran(nb["status"]):
            lines += [f"**FAILED**: `{nb['error']}`. The executed copy `{nb['executed']}` "
                      "keeps the traceback.", ""]
        lines += differs_markdown(nb)
        lines += claims_markdown(nb.get("claims") or [])
        if nb.get("claims_note"):
            lines += [f"_{md_cell(nb['claims_note'])}_", ""]
        m = nb.get("metrics")
        if m:
            lines += metrics_markdown(m)
        else:
            lines += [f"_No metrics ({nb.get('metrics_note') or 'none written'})._", ""]
        for k, fig in enumerate(nb["figures"], start=1):
            lines += [f"![{nb['name']} figure {k}]({fig})", ""]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------
# Reading a summary.json back
# --------------------------------------------------------------------------

_NUMBER = (int, float)
_REQUIRED = object()

#: field -> (accepted types, default when missing); None in the types means null is allowed.
_SUMMARY_FIELDS: dict[str, tuple[tuple, Any]] = {
    "run_name": ((str,), None), "profile": ((str,), "?"), "parameters": ((dict,), {}),
    "kernel_name": ((str, type(None)), None), "device": ((list, str), []), "precision": ((list, str), []),
    "data_source": ((list, str), []), "synthetic_data": ((bool,), False), "started_at": ((str,), "?"),
    "duration_s": (_NUMBER, 0.0), "ok": ((bool,), None), "failed": ((list,), None), "differs": ((list,), None),
    "verdicts": ((dict,), {}), "figures": ((list,), []), "engine": ((dict, type(None)), None),
}
_NOTEBOOK_FIELDS: dict[str, tuple[tuple, Any]] = {
    "name": ((str,), _REQUIRED), "status": ((str,), "failed"), "duration_s": (_NUMBER, 0.0),
    "error": ((str, type(None)), None), "executed": ((str, type(None)), None),
    "parameters": ((dict,), {}), "metrics": ((dict, type(None)), None),
    "metrics_note": ((str, type(None)), None), "claims": ((list,), []),
    "claims_note": ((str, type(None)), None), "figures": ((list, type(None)), None),
    "worker": ((dict, type(None)), None),
}


_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "true/false",
               int: "a number", float: "a number"}


def _type_name(value: Any) -> str:
    """How JSON would call the type of `value` ("a list", "null", ...)."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _fill_fields(obj: dict, fields: Mapping[str, tuple[tuple, Any]], where: str) -> dict:
    out = dict(obj)
    for key, (types, default) in fields.items():
        if key not in out:
            if default is _REQUIRED:
                raise ValueError(f"{where} has no {key!r}")
            out[key] = copy.deepcopy(default)
            continue
        value = out[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            wanted = " or ".join(dict.fromkeys(_TYPE_NAMES.get(t, t.__name__) for t in types))
            raise ValueError(f"{where}: {key!r} must be {wanted}, got {_type_name(value)}")
    return out


def check_summary(summary: Any, source: str = "summary.json") -> dict[str, Any]:
    """Check the shape of a ``summary.json`` dict and fill in fields an older run lacks.

    Raises ValueError with one line naming `source` and what is wrong (the top level not an
    object, ``notebooks`` not a list, a figure that is not a string, a bad claim, ...).
    """
    if not isinstance(summary, dict):
        raise ValueError(f"{source}: expected a JSON object at the top level, got {_type_name(summary)}")
    if "notebooks" not in summary:
        raise ValueError(f"{source}: has no 'notebooks' list")
    if not isinstance(summary["notebooks"], list):
        raise ValueError(f"{source}: 'notebooks' must be a list, got {_type_name(summary['notebooks'])}")
    out = _fill_fields(summary, _SUMMARY_FIELDS, source)
    notebooks = []
    for i, nb in enumerate(summary["notebooks"]):
        where = f"{source}: notebooks[{i}]"
        if not isinstance(nb, dict):
            raise ValueError(f"{where} must be an object, got {_type_name(nb)}")
        nb = _fill_fields(nb, _NOTEBOOK_FIELDS, where)
        for k, fig in enumerate(nb["figures"] or []):
            if not isinstance(fig, str) or not fig.strip():
                raise ValueError(f"{where}.figures[{k}] must be a file name (a string), got {_type_name(fig)}")
        try:
            nb["claims"] = check_claims(nb["claims"], f"{where}.claims")
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        notebooks.append(nb)
    for key in ("failed", "differs", "figures"):
        for k, item in enumerate(out[key] or []):
            if not isinstance(item, str):
                raise ValueError(f"{source}: {key}[{k}] must be a string, got {_type_name(item)}")
    out["notebooks"] = notebooks
    if out["ok"] is None:
        out["ok"] = all(ran(nb["status"]) for nb in notebooks)
    if out["failed"] is None:
        out["failed"] = [nb["name"] for nb in notebooks if not ran(nb["status"])]
    if out["differs"] is None:
        out["differs"] = [nb["name"] for nb in notebooks if nb["status"] == DIFFERS]
    return out


def read_summary(path: str | Path) -> dict[str, Any]:
    """Read and check a ``summary.json`` (see `check_summary`); every problem is one ValueError
    (or OSError) line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a summary.json file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text (is it really a summary.json?)") from None
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    try:
        summary = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    return check_summary(summary, str(path))
