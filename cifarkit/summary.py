"""The run report: ``summary.json`` and ``summary.md`` from the notebooks' recorded metrics.

Also the small markdown helpers the slides reuse (`metrics_markdown`, `md_cell`, `joined`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from .runner import NotebookResult

#: How synthetic data is labelled in every human-readable report.
SYNTHETIC_LABEL = "SYNTHETIC (not CIFAR-10)"

#: Keys of a metrics JSON that describe the run rather than a result.
RUN_KEYS = ("profile", "device", "precision", "data_source")


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


