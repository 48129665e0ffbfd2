"""Run the course notebooks headless with papermill and write a report.

The entry point is `run_notebooks`. It executes every selected notebook
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
  the others alone. An unknown name raises `ParameterError` listing
  the valid names.
* Every value is checked against the parameter schema,
  `cifarkit.course.params.SCHEMA` (type, range or choices, None allowed or
  not), before any kernel starts: ``epochs=abc``, ``epochs=0``,
  ``data_source=bogus`` or ``weights=bogus`` fail at once with one line
  naming the parameter, the value and what is accepted. A string value for a
  non-string parameter is read as on the command line (see
  `parse_cli_parameters`). A selected notebook that declares a
  parameter the schema lacks, or whose default does not fit its entry, is
  refused the same way. ``run_notebooks(schema=...)`` swaps in another
  schema (the tests do, for their fixture notebooks).

Kernel environment
------------------
Each notebook's kernel sees these variables (restored when the run ends):

* ``CIFARKIT_RESULTS_DIR``: the run directory (metrics files go there);
* ``CIFARKIT_ARTIFACTS``: ``<run directory>/artifacts``, whatever the
  caller's shell says, so checkpoints shared between notebooks stay inside
  the run;
* ``CIFARKIT_HEADLESS=1``;
* ``CIFARKIT_NOTEBOOK``: the notebook's file stem, so ``record_results(metrics, cfg)`` writes
  ``<stem>.metrics.json`` even for a renamed copy of a course notebook;
* ``CIFARKIT_PROFILE`` is removed, so that the injected ``profile``
  parameter is the only source of truth;
* ``CIFARKIT_NETWORK``: ``"1"`` or ``"0"``, whether the network answered
  when the runner asked ``cifarkit.data.network_available()`` once for the
  whole run (so that a data-source "auto" fallback is decided and announced
  once per run, not once per notebook). The probe runs only when some
  selected notebook gets ``data_source="auto"`` and that function exists
  (it honours ``CIFARKIT_OFFLINE=1`` and a ``CIFARKIT_NETWORK`` already set
  in the caller's environment without probing); otherwise the variable is left
  unset and each notebook decides for itself. When the answer is ``0`` the
  run's first line says so (`OFFLINE_LINE`), once.

On Dask
-------
``cifarkit run --workers N`` / ``--scheduler ADDRESS`` and sweeps (``-p seed=0,1,2``) go through
`cifarkit.course.engine.run_batch`, which runs each notebook with the functions below
(`execute_notebook`, `notebook_result`, `write_report`) on a Dask worker, with the
same kernel environment plus its share of the cores (``OMP_NUM_THREADS``), and writes the same
report with a Worker column. Without those, ``cifarkit run`` is `run_notebooks`, unchanged.

Kernels talk to the runner over CurveZMQ-encrypted sockets when pyzmq and
the kernelspec support it (ipykernel >= 7 kernelspecs do), which is also what
keeps ipykernel's "Kernel is running over TCP without encryption" warning out
of the run's output. The tqdm progress bar is shown only when stderr is a
terminal; either way one line per finished notebook (name, status, seconds)
is printed.
"""
from __future__ import annotations

import ast
import base64
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["RunResult", "new_run_dir", "run_notebooks", "format_failures", "main_run", "default_notebooks_dir"]

from ..files import atomic_write_text, disk_full_error
from .notebook_params import (ParameterError, ParamSpec, list_notebooks, notebook_parameters,
                              parse_cli_parameters, plan_parameters)
from .params import SCHEMA, Spec
from .summary import (DIFFERS, NotebookResult, differing_claims, notebook_status, render_summary_markdown,
                      summary_dict)


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
    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise TypeError(f"out must be a directory path, got {out!r}")
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"run directory {str(out)!r} exists and is not a directory")
        if any(out.iterdir()):
            raise FileExistsError(
                f"run directory {str(out)!r} already exists and is not empty; "
                "choose a new --out (runs are never overwritten)"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        _check_writable(out)
    except OSError as exc:  # same kind of error, one line that names the folder
        raise type(exc)(f"cannot write the run directory {str(out)!r}: {exc.strerror or exc}") from None
    return out


def _check_writable(folder: Path) -> None:
    """Create and delete a probe file, so that a read-only folder fails before any kernel runs."""
    fd, probe = tempfile.mkstemp(prefix=".cifarkit-write-check-", dir=folder)
    os.close(fd)
    os.unlink(probe)


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
    """Set environment variables for the kernels (None: remove one) and restore them afterwards."""

    def __init__(self, values: Mapping[str, str | None]):
        self.values = dict(values)
        self.saved: dict[str, str | None] = {}

    @classmethod
    def for_run(cls, run_dir: Path, network: str | None = None) -> "_KernelEnv":
        """The variables of a whole run (see the module docstring)."""
        values = {"CIFARKIT_RESULTS_DIR": str(run_dir), "CIFARKIT_HEADLESS": "1",
                  "CIFARKIT_PROFILE": None, "CIFARKIT_ARTIFACTS": str(run_dir / "artifacts")}
        if network is not None:
            values["CIFARKIT_NETWORK"] = network
        return cls(values)

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


def _wants_auto_data(specs: Mapping[str, Mapping[str, ParamSpec]],
                     plan: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when some notebook will run with ``data_source="auto"`` (injected or its default)."""
    for nb_name, nb_specs in specs.items():
        if "data_source" not in nb_specs:
            continue
        if "data_source" in plan[nb_name]:
            value = plan[nb_name]["data_source"]
        else:
            try:
                value = ast.literal_eval(nb_specs["data_source"].default)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                value = None
        if value == "auto":
            return True
    return False


def _probe_network() -> str | None:
    """``"1"``/``"0"`` from ``cifarkit.data.network_available()``; None when there is no answer.

    That function honours ``CIFARKIT_OFFLINE`` and an already set ``CIFARKIT_NETWORK`` itself.
    `getattr` keeps this working with a ``cifarkit.data`` that has no such function.
    """
    try:
        from .. import data
    except Exception:  # noqa: BLE001 - no data module, no probe
        return None
    probe = getattr(data, "network_available", None)
    if not callable(probe):
        return None
    try:
        return "1" if probe() else "0"
    except Exception:  # noqa: BLE001 - a failing probe (or a malformed variable) must not stop the run
        return None


#: The run's first line when the network does not answer (notebooks refer to it).
OFFLINE_LINE = ("network: not reachable (CIFARKIT_NETWORK=0 for every notebook), so data_source='auto' "
                "uses a local CIFAR-10 copy if there is one, else the SYNTHETIC stand-in (not CIFAR-10)")


def _kernel_config() -> Any:
    """traitlets config that turns on CurveZMQ transport encryption where it is supported.

    jupyter_client >= 8.8 provisions the keys for kernelspecs that declare
    ``supported_encryption: ["curve"]`` (ipykernel 7's do); ipykernel 7 otherwise logs
    "Kernel is running over TCP without encryption..." to the terminal for every notebook.
    None when pyzmq lacks curve or jupyter_client lacks the setting.
    """
    try:
        import zmq
        from jupyter_client.manager import KernelManager
        from traitlets.config import Config
    except ImportError:
        return None
    if not zmq.has("curve") or "transport_encryption" not in KernelManager.class_traits():
        return None
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------

@dataclass
class RunResult:
    """The outcome of `run_notebooks`."""

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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_metrics(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    if not path.exists():
        return None, "no metrics file written"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"unreadable metrics file: {_one_line(exc)}"
    except RecursionError:
        return None, "unreadable metrics file: nested too deeply"
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
# The runner
# --------------------------------------------------------------------------

def check_run_arguments(notebooks_dir: str | os.PathLike, profile: str, only: str | Iterable[str] | None,
                        out: str | os.PathLike | None, progress: bool, kernel_name: str | None,
                        schema: Mapping[str, Spec] | None) -> tuple[list[Path], dict[str, dict[str, ParamSpec]]]:
    """Check the arguments `run_notebooks` and `cifarkit.course.engine.run_batch` share (one-line errors
    naming the argument); return the selected notebooks and their parameter specs."""
    if not isinstance(profile, str) or not profile.strip():
        raise ValueError(f"profile must be a non-empty string, got {profile!r}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    if kernel_name is not None and (not isinstance(kernel_name, str) or not kernel_name.strip()):
        raise TypeError(f"kernel_name must be a kernel name (str) or None, got {kernel_name!r}")
    if out is not None and (not isinstance(out, (str, os.PathLike)) or not str(out).strip()):
        raise TypeError(f"out must be a directory path or None, got {out!r}")
    notebooks = list_notebooks(notebooks_dir, only)
    return notebooks, notebook_parameters(notebooks)


def network_for(specs: Mapping[str, Mapping[str, ParamSpec]],
                plans: Iterable[Mapping[str, Mapping[str, Any]]]) -> str | None:
    """The run's ``CIFARKIT_NETWORK`` (see the module docstring): probed once when some notebook of
    some plan gets ``data_source="auto"``, else None."""
    return _probe_network() if any(_wants_auto_data(specs, plan) for plan in plans) else None


def kernel_engine_kwargs() -> dict[str, Any]:
    """papermill's extra arguments for every kernel (the transport encryption, where supported)."""
    config = _kernel_config()
    return {} if config is None else {"config": config}


def execute_notebook(path: Path, output: Path, run_dir: Path, parameters: Mapping[str, Any],
                     kernel_name: str | None, engine_kwargs: Mapping[str, Any],
                     partial: Path | None = None) -> str | None:
    """Execute `path` with papermill into `output` (cwd `run_dir`); return None, or the one-line
    error when it failed. ``KeyboardInterrupt`` propagates.

    With `partial`, papermill writes there (it saves after every cell) and the copy is moved onto
    `output` in one rename when it stops, whatever stopped it, so `output` is never half-written;
    without it (`run_notebooks`) papermill writes `output` itself. A full disk is one line naming
    the file.
    """
    import papermill

    target = partial or output
    try:
        papermill.execute_notebook(
            str(path.resolve()), str(target), parameters=dict(parameters),
            cwd=str(run_dir), kernel_name=kernel_name,
            progress_bar=False, log_output=False, **engine_kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - one failure must not stop the run
        full = disk_full_error(exc, target)
        return _error_summary(full if full is not None else exc)
    finally:
        if partial is not None and partial.exists():
            os.replace(partial, output)
    return None


def notebook_result(path: Path, output: Path, run_dir: Path, parameters: Mapping[str, Any],
                    error: str | None, duration: float, worker: Mapping[str, Any] | None = None) -> NotebookResult:
    """What a finished notebook left in `run_dir`: its executed copy, metrics and figures."""
    metrics, note = _read_metrics(run_dir / f"{path.stem}.metrics.json")
    figures = _extract_figures(output, run_dir / "figures", path.stem) if output.exists() else []
    return NotebookResult(
        name=path.name, path=path, output=output if output.exists() else None,
        status=notebook_status(error, metrics), duration_s=duration,
        parameters=dict(parameters), error=error, metrics=metrics, metrics_note=note,
        figures=figures, worker=dict(worker) if worker else None,
    )


def progress_line(nb: NotebookResult, suffix: str = "") -> str:
    """The line printed when a notebook finishes: name, status, seconds (and `suffix`), its error."""
    tail = f"  {nb.error}" if nb.error else ""
    if nb.status == DIFFERS:
        tail = "  ran to the end; claims that differ from the course: " + ", ".join(differing_claims(nb.metrics))
    return f"{nb.name:<40s} {nb.status:<7s} {nb.duration_s:7.1f} s{suffix}{tail}"


def write_report(results: list[NotebookResult], run_dir: Path, profile: str, parameters: Mapping[str, Any],
                 started_at: str, duration_s: float, kernel_name: str | None,
                 engine: Mapping[str, Any] | None = None) -> RunResult:
    """Write ``summary.json`` and ``summary.md`` (atomically) for `results`; return the RunResult."""
    summary = summary_dict(results, run_dir, profile, parameters or {}, started_at, duration_s, kernel_name)
    if engine:
        summary["engine"] = dict(engine)
    summary_json = atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    summary_md = atomic_write_text(run_dir / "summary.md", render_summary_markdown(summary))
    return RunResult(run_dir=run_dir, notebooks=results, profile=profile, started_at=started_at,
                     duration_s=duration_s, summary_json=summary_json, summary_md=summary_md)


def now_iso() -> str:
    """The local time, for ``started_at``."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_notebooks(notebooks_dir: str | os.PathLike = "notebooks", profile: str = "quick",
                  only: str | Iterable[str] | None = None, out: str | os.PathLike | None = None,
                  parameters: Mapping[str, Any] | None = None, progress: bool = True,
                  kernel_name: str | None = None,
                  schema: Mapping[str, Spec] | None = None) -> RunResult:
    """Execute the course notebooks headless and write a run report.

    Args:
        notebooks_dir: folder with the ``NN_name.ipynb`` notebooks.
        profile: injected as the ``profile`` parameter of every notebook.
        only: prefixes such as ``["01", "05"]`` selecting notebooks by file name.
        out: run directory. Default: a new ``runs/<YYYYmmdd-HHMMSS>-<profile>/`` (``-2``, ``-3``, ...
            when the name is taken). An existing non-empty directory is refused.
        parameters: extra ``{name: value}`` parameters (already parsed, e.g. with
            `parse_cli_parameters`). See the module docstring for the injection rules; problems
            raise `ParameterError` before any notebook runs.
        progress: print one line per finished notebook (name, status, seconds), plus a tqdm bar
            on stderr when stderr is a terminal.
        kernel_name: Jupyter kernel to use; default: the one in each notebook's metadata.
        schema: parameter schema, ``{name: cifarkit.course.params.Spec}``; default
            `cifarkit.course.params.SCHEMA`. Every parameter of every selected notebook must be in it.

    Every argument is checked before anything is created or any kernel
    starts (``TypeError``/``ValueError``/``OSError`` with one line naming the
    argument).

    A failing notebook does not stop the others. Returns a
    `RunResult`; ``result.ok`` is False if any notebook failed.
    On Ctrl-C the run stops after the current notebook (marked failed), the
    summary of what ran is written, and ``KeyboardInterrupt`` is re-raised.
    The notebooks run one after another in this process;
    `cifarkit.course.engine.run_batch` runs them on Dask workers (``cifarkit
    run --workers N`` / ``--scheduler ADDRESS``) and sweeps.
    """
    from tqdm.auto import tqdm

    notebooks, specs = check_run_arguments(notebooks_dir, profile, only, out, progress, kernel_name, schema)
    plan = plan_parameters(specs, parameters, profile, SCHEMA if schema is None else schema)
    _check_kernels(notebooks, kernel_name)

    run_dir = (new_run_dir("runs", profile) if out is None else _prepare_out_dir(out)).resolve()
    started_at = now_iso()
    t_run = time.perf_counter()
    results: list[NotebookResult] = []
    interrupted = False

    def say(line: str) -> None:
        if progress:
            tqdm.write(line, file=sys.stdout)

    network = network_for(specs, [plan])
    if network == "0":
        say(OFFLINE_LINE)
    engine_kwargs = kernel_engine_kwargs()
    # a bar redraws itself with \r: fine on a terminal, one endless line in a CI log or a file
    show_bar = progress and _isatty(sys.stderr)
    bar = tqdm(notebooks, desc="notebooks", unit="nb", disable=not show_bar, file=sys.stderr)
    with _KernelEnv.for_run(run_dir, network):
        for path in bar:
            bar.set_postfix_str(path.name)
            output = run_dir / path.name
            t0 = time.perf_counter()
            try:
                with _KernelEnv({"CIFARKIT_NOTEBOOK": path.stem}):  # the metrics file the runner reads
                    error = execute_notebook(path, output, run_dir, plan[path.name], kernel_name, engine_kwargs)
            except KeyboardInterrupt:
                error = "KeyboardInterrupt: run interrupted by the user"
                interrupted = True
            nb_result = notebook_result(path, output, run_dir, plan[path.name], error, time.perf_counter() - t0)
            results.append(nb_result)
            say(progress_line(nb_result))
            if interrupted:
                break
    bar.close()

    result = write_report(results, run_dir, profile, parameters or {}, started_at,
                          time.perf_counter() - t_run, kernel_name)
    say(f"{len(results) - len(result.failed)}/{len(results)} notebooks ok in {result.duration_s:.1f} s; "
        f"report: {result.summary_md}")
    if interrupted:  # the report covers what ran; let the caller see the interrupt
        raise KeyboardInterrupt(f"run interrupted; partial report in {result.summary_md}")
    return result


# --------------------------------------------------------------------------
# Command line glue (called by cifarkit.course.cli)
# --------------------------------------------------------------------------

def default_notebooks_dir() -> Path:
    """The kit's ``notebooks/`` folder (next to the package), else ``./notebooks``."""
    kit = Path(__file__).resolve().parent.parent.parent / "notebooks"
    return kit if kit.is_dir() else Path("notebooks")


def main_run(args: Any) -> int:
    """Run ``cifarkit run`` from parsed arguments; return the exit status.

    ``args`` needs ``profile``, ``only`` (comma-separated prefixes or None),
    ``out``, ``notebooks`` (None: `default_notebooks_dir`) and
    ``parameter`` (list of ``NAME=VALUE``); ``kernel``, ``schema``,
    ``workers``, ``scheduler`` and ``time_limit`` are optional. A ``-p`` value
    with commas is a sweep (`cifarkit.course.sweep`); ``workers``/``scheduler``
    run the notebooks on Dask (`cifarkit.course.engine`); without either, and
    without a sweep, this is `run_notebooks`. Bad input raises
    ``ValueError``/``OSError`` before anything runs. Returns 0 when every
    notebook passed, 1 otherwise (the failures are printed to stderr).
    """
    from .notebook_params import parse_cli_sweep

    notebooks_dir = getattr(args, "notebooks", None) or default_notebooks_dir()
    only = getattr(args, "only", None)
    schema = getattr(args, "schema", None)
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    time_limit = getattr(args, "time_limit", None)
    paths = list_notebooks(notebooks_dir, only)
    sweep = parse_cli_sweep(getattr(args, "parameter", None) or [], notebook_parameters(paths), schema)
    profile, out, kernel = getattr(args, "profile", "quick"), getattr(args, "out", None), getattr(args, "kernel", None)
    if workers is None and scheduler is None and time_limit is None and all(len(v) == 1 for v in sweep.values()):
        result = run_notebooks(notebooks_dir, profile=profile, only=only, out=out,
                               parameters={name: values[0] for name, values in sweep.items()},
                               kernel_name=kernel, schema=schema)
        if result.ok:
            return 0
        sys.stderr.write(format_failures(result) + "\n")
        return 1
    from .sweep import run_sweep

    swept = run_sweep(notebooks_dir, sweep, profile=profile, only=only, out=out, kernel_name=kernel, schema=schema,
                      workers=workers, scheduler=scheduler, time_limit=time_limit)
    if swept.ok:
        return 0
    sys.stderr.write("\n".join(format_failures(r) for r in swept.runs if not r.ok) + "\n")
    return 1
