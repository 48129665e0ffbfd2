"""Sweeps: the notebooks once per combination of parameter values, each in a folder of its own.

    python -m cifarkit run -p seed=0,1,2 -p data_source=synthetic,cifar10-unverified --workers 2

expands into 3 x 2 = 6 executions of every selected notebook (`cifarkit.course.notebook_params.
parse_cli_sweep` reads the commas), run by `cifarkit.course.engine.run_batch` (on Dask with ``--workers``
or ``--scheduler``, else one after another in this process)::

    runs/20250101-120000-quick/
        seed=0_data_source=synthetic/      a run directory, exactly as `cifarkit run` writes one
        seed=0_data_source=cifar10-unverified/
        ...
        summary.json                       the sweep: every combination's notebooks and verdicts
        summary.md                         notebook x combination, then claim x combination

The claim x run table (`claims_table`, from each run folder's ``summary.json`` as `collect` reads
it) is also the one ``bench/lessons.py`` prints.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .claims import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE, VERDICTS
from ..files import atomic_write_text
from .notebook_params import plan_parameters
from .params import SCHEMA, Spec
from .runner import RunResult, _prepare_out_dir, check_run_arguments, new_run_dir, now_iso
from .summary import SYNTHETIC_LABEL, md_cell, ran, status_label, worker_label

__all__ = ["combinations", "swept_names", "combination_label", "combination_folders", "collect",
           "claims_table", "run_sweep", "SweepResult", "MARKS"]

#: How a verdict reads in a claim x run table.
MARKS = {HOLDS: "holds", FAILS: "**FAILS**", INCONCLUSIVE: "*inconclusive*", NOT_TESTABLE: "n/t"}


def combinations(sweep: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the values of `sweep` (``{name: [values]}``), the first name varying
    slowest: ``{"seed": [0, 1], "x": ["a"]}`` -> ``[{"seed": 0, "x": "a"}, {"seed": 1, "x": "a"}]``."""
    names = list(sweep)
    return [dict(zip(names, values)) for values in itertools.product(*(sweep[n] for n in names))]


def swept_names(sweep: Mapping[str, Sequence[Any]]) -> list[str]:
    """The names that take more than one value (the ones that tell the combinations apart)."""
    return [name for name, values in sweep.items() if len(values) > 1]


def combination_label(combination: Mapping[str, Any], names: Sequence[str]) -> str:
    """``"seed=0, data_source=synthetic"``: the swept values of one combination."""
    return ", ".join(f"{name}={_text(combination[name])}" for name in names) or "defaults"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else repr(value)


def combination_folders(combos: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[str]:
    """A folder name for each combination, ``seed=0_data_source=synthetic``: its swept values,
    characters other than letters, digits and ``._=-`` replaced, ``-2``, ``-3`` ... on a clash."""
    out: list[str] = []
    for combo in combos:
        base = "_".join(re.sub(r"[^A-Za-z0-9._=-]+", "-", f"{n}={_text(combo[n])}").strip("-") for n in names) or "run"
        name, k = base, 1
        while name in out:
            k += 1
            name = f"{base}-{k}"
        out.append(name)
    return out


def collect(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{notebook: {"status", "seconds", "error", "claims": [...], "metrics": {...}}}`` from a run
    directory's ``summary.json`` (``"worker"`` too, where a Dask worker ran it); ``metrics`` are the
    numbers the notebook recorded, which recorded sentences count over runs."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    out = {}
    for nb in summary["notebooks"]:
        metrics = nb.get("metrics") or {}
        out[nb["name"]] = {"status": nb["status"], "seconds": nb["duration_s"], "error": nb.get("error"),
                           "claims": metrics.get("claims") or [],
                           "metrics": {k: v for k, v in metrics.items() if k != "claims"}}
        if nb.get("worker"):
            out[nb["name"]]["worker"] = nb["worker"]
    return out


def claims_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Markdown: one row per claim, one column per run (``{run label: collect(run_dir)}``), the
    verdict in each cell (`MARKS`); FAILED where the notebook failed, ``-`` where it did not state
    the claim; a last row per notebook names the runs in which it failed."""
    runs = list(results)
    lines = ["| notebook | claim | " + " | ".join(runs) + " |", "|---|---|" + "---|" * len(runs)]
    notebooks = sorted({nb for r in results.values() for nb in r})
    for nb in notebooks:
        names = []
        for r in results.values():
            for c in r.get(nb, {}).get("claims", []):
                if c["name"] not in [n for n, _ in names]:
                    names.append((c["name"], c["statement"]))
        for name, statement in names:
            cells = []
            for run in runs:
                entry = results[run].get(nb, {})
                found = [c for c in entry.get("claims", []) if c["name"] == name]
                if found:
                    cells.append(MARKS.get(found[0]["verdict"], found[0]["verdict"]))
                else:
                    cells.append("FAILED" if entry.get("status") is not None and not ran(entry["status"]) else "-")
            lines.append(f"| {nb} | {statement} | " + " | ".join(cells) + " |")
        failed = [run for run in runs if results[run].get(nb, {}).get("status") is not None
                  and not ran(results[run][nb]["status"])]
        if failed:
            lines.append(f"| {nb} | (notebook failed in: {', '.join(failed)}) |" + " |" * len(runs))
    return lines


@dataclass
class SweepResult:
    """The outcome of `run_sweep`: one RunResult per combination, in order."""

    runs: list[RunResult]
    labels: list[str]
    run_dir: Path
    summary_md: Path
    summary_json: Path
    duration_s: float

    @property
    def failed(self) -> list[str]:
        """``"<combination>: <notebook>"`` for each failed execution."""
        return [f"{label}: {name}" for label, r in zip(self.labels, self.runs) for name in r.failed]

    @property
    def ok(self) -> bool:
        """True when every notebook of every combination succeeded."""
        return not self.failed


def run_sweep(notebooks_dir: str | os.PathLike, sweep: Mapping[str, Sequence[Any]], profile: str = "quick",
              only: str | Iterable[str] | None = None, out: str | os.PathLike | None = None,
              progress: bool = True, kernel_name: str | None = None, schema: Mapping[str, Spec] | None = None,
              workers: int | None = None, scheduler: str | None = None,
              time_limit: float | None = None) -> SweepResult:
    """Run the selected notebooks once per combination of `sweep` (``{name: [values]}``, as
    `parse_cli_sweep` returns it) and write the sweep's report; see the module docstring.

    `out` (default: a new ``runs/<timestamp>-<profile>/``) must be new or empty. With a single
    combination it is that run's own directory (no subfolder, no sweep report). `workers`,
    `scheduler` and `time_limit` go to `cifarkit.course.engine.run_batch`, which checks everything before
    anything runs. On Ctrl-C the reports of what ran are written and ``KeyboardInterrupt`` re-raised.
    """
    from .engine import _check_engine, run_batch

    if not isinstance(sweep, Mapping) or not all(isinstance(v, (list, tuple)) and v for v in sweep.values()):
        raise TypeError(f"sweep must be a dict of name -> non-empty list of values, got {sweep!r}")
    combos, names = combinations(sweep), swept_names(sweep)
    _, specs = check_run_arguments(notebooks_dir, profile, only, out, progress, kernel_name, schema)
    for combo in combos:  # every combination checked before the first one runs
        plan_parameters(specs, combo, profile, SCHEMA if schema is None else schema)
    _check_engine(workers, scheduler, time_limit)
    top = (new_run_dir("runs", profile) if out is None else _prepare_out_dir(out)).resolve()
    folders = [top] if len(combos) == 1 else [top / f for f in combination_folders(combos, names)]
    labels = [combination_label(c, names) for c in combos]
    started_at, t0 = now_iso(), time.perf_counter()
    done: list[RunResult] = []
    try:
        if workers is None and scheduler is None:  # one after another: each run's report as soon as it ends
            for folder, combo in zip(folders, combos):
                if progress and len(combos) > 1:
                    print(f"== {combination_label(combo, names)}", flush=True)
                done += run_batch(notebooks_dir, [(folder, combo)], profile, only, kernel_name, schema,
                                  progress=progress, time_limit=time_limit)
        else:
            done = run_batch(notebooks_dir, list(zip(folders, combos)), profile, only, kernel_name, schema,
                             workers, scheduler, time_limit, progress,
                             labels=labels if len(combos) > 1 else None)
    except KeyboardInterrupt:  # the sweep's report covers the combinations that have one
        reported = [(label, f) for label, f in zip(labels, folders) if (f / "summary.json").is_file()]
        if len(combos) > 1:
            _write_sweep(top, profile, sweep, names, [label for label, _ in reported],
                         [_read_run(f) for _, f in reported], started_at, time.perf_counter() - t0)
        raise
    except BaseException:
        if top.exists() and not any(top.iterdir()) and out is None:
            top.rmdir()  # refused before anything ran: no empty run folder left behind
        raise
    if len(combos) == 1:
        r = done[0]
        return SweepResult(done, labels, top, r.summary_md, r.summary_json, r.duration_s)
    return _write_sweep(top, profile, sweep, names, labels, done, started_at, time.perf_counter() - t0)


def _read_run(folder: Path) -> RunResult:
    """A RunResult for a run folder whose report is written (after an interrupted sweep)."""
    from .summary import NotebookResult, read_summary

    summary = read_summary(folder / "summary.json")
    nbs = [NotebookResult(nb["name"], folder / nb["name"], None, nb["status"], nb["duration_s"],
                          nb["parameters"], nb["error"], nb["metrics"], nb["metrics_note"], [], nb["worker"])
           for nb in summary["notebooks"]]
    return RunResult(folder, nbs, summary["profile"], summary["started_at"], summary["duration_s"],
                     folder / "summary.json", folder / "summary.md")


def _write_sweep(top: Path, profile: str, sweep: Mapping[str, Sequence[Any]], names: Sequence[str],
                 labels: Sequence[str], runs: Sequence[RunResult], started_at: str, duration_s: float) -> SweepResult:
    """The sweep's ``summary.json`` and ``summary.md`` in `top`."""
    results = {label: collect(r.run_dir) for label, r in zip(labels, runs)}
    engine = json.loads(runs[0].summary_json.read_text()).get("engine") if runs else None
    entries = []
    for label, r in zip(labels, runs):
        summary = json.loads(r.summary_json.read_text())
        entries.append({"label": label, "folder": r.run_dir.relative_to(top).as_posix(), "ok": r.ok,
                        "parameters": {n: v for n, v in summary["parameters"].items() if n in names},
                        "data_source": summary.get("data_source"), "verdicts": summary["verdicts"]["total"],
                        "duration_s": summary["duration_s"], "notebooks": results[label]})
    failed = [f"{label}: {name}" for label, r in zip(labels, runs) for name in r.failed]
    summary = {"run_name": top.name, "run_dir": str(top), "profile": profile,
               "sweep": {n: list(sweep[n]) for n in names},
               "parameters": {n: v[0] for n, v in sweep.items() if n not in names},
               "engine": engine, "started_at": started_at, "duration_s": round(duration_s, 3),
               "ok": not failed and len(runs) == len(combinations(sweep)), "failed": failed, "runs": entries}
    summary_json = atomic_write_text(top / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    summary_md = atomic_write_text(top / "summary.md", render_sweep_markdown(summary))
    return SweepResult(list(runs), list(labels), top, summary_md, summary_json, duration_s)


def render_sweep_markdown(summary: Mapping[str, Any]) -> str:
    """The sweep's report: the run, a notebook x combination table (status, seconds, verdicts,
    worker), the claim x combination verdicts, and a link to each combination's own report."""
    runs = summary["runs"]
    labels = [r["label"] for r in runs]
    n_total = sum(len(r["notebooks"]) for r in runs)
    n_ok = sum(ran(nb["status"]) for r in runs for nb in r["notebooks"].values())
    lines = [f"# cifarkit sweep `{summary['run_name']}`", ""]
    if any("synthetic" in [str(s).lower() for s in r.get("data_source") or []] for r in runs):
        lines += [f"> **Warning: {SYNTHETIC_LABEL}.** Some combinations trained on synthetic stand-in data; "
                  "their numbers say nothing about CIFAR-10 accuracy.", ""]
    status = "all executions passed" if summary["ok"] else "FAILED: " + md_cell(", ".join(summary["failed"]) or
                                                                              "interrupted")
    fixed = summary.get("parameters") or {}
    lines += ["| | |", "|---|---|",
              f"| Status | {status} ({n_ok}/{n_total} ok) |",
              f"| Profile | `{md_cell(summary['profile'])}` |",
              "| Swept | " + md_cell("; ".join(f"{n}: {', '.join(_text(v) for v in vs)}"
                                            for n, vs in summary["sweep"].items())) + " |",
              f"| Fixed parameters | {md_cell(', '.join(f'{k}={v!r}' for k, v in fixed.items())) or '(defaults)'} |",
              f"| Engine | {md_cell((summary.get('engine') or {}).get('description', 'this process, one notebook at a time'))} |",
              f"| Started | {md_cell(summary['started_at'])} |",
              f"| Total duration | {float(summary['duration_s']):.1f} s |", ""]
    lines += ["## Notebooks x combinations", "",
              "Each cell: status, seconds, the verdicts of the notebook's claims, and the worker that ran it.", "",
              "| Notebook | " + " | ".join(md_cell(label) for label in labels) + " |",
              "|---|" + "---|" * len(labels)]
    for nb in sorted({name for r in runs for name in r["notebooks"]}):
        cells = [_cell(r["notebooks"].get(nb)) for r in runs]
        lines.append(f"| {md_cell(nb)} | " + " | ".join(cells) + " |")
    lines += ["", "## Verdicts: claim x combination", "", *claims_table({r["label"]: r["notebooks"] for r in runs}), ""]
    lines += ["## Each combination's report", ""]
    lines += [f"- [{md_cell(r['label'])}]({r['folder']}/summary.md)" for r in runs]
    return "\n".join(lines).rstrip() + "\n"


def _cell(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "-"
    head = status_label(entry["status"])
    counts = {v: sum(c.get("verdict") == v for c in entry.get("claims", [])) for v in VERDICTS}
    verdicts = ", ".join(f"{MARKS[v]} {n}" for v, n in counts.items() if n)
    where = f" on {worker_label(entry['worker'])}" if entry.get("worker") else ""
    return md_cell(f"{head} {float(entry['seconds']):.1f} s" + (f"; {verdicts}" if verdicts else "") + where)
