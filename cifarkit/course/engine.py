"""Run notebooks on Dask: ``cifarkit run --workers N`` (a `LocalCluster` on this machine) or
``--scheduler ADDRESS`` (a cluster that is already running), one run folder or many (a sweep).

The entry point is `run_batch`: a list of runs, each a folder and its parameters, executed
by Dask workers; every run folder gets the report `cifarkit.course.runner.run_notebooks` writes (the same
``summary.json``, ``summary.md`` and figures), in which each notebook names the worker that ran it.
Without ``workers`` and ``scheduler`` it is `run_notebooks`, one run after another, unchanged.

Who does what
-------------
Dask places the tasks on the workers, moves them when a worker dies and keeps the queue; this
module only says when a notebook may be submitted. A notebook declares the artifacts it makes and
needs in its metadata (the notebook file is their one home; names as in `cifarkit.course`)::

    "metadata": {"cifarkit": {"makes": ["resnet18_pruned10", ...], "needs": ["resnet18_logits"]}}

Within one run (one set of parameters) a notebook is submitted when every selected notebook that
makes something it needs has finished, ok or failed (notebooks 03 and 04 train their own model when
an artifact is missing, so the order is about reuse, not about whether they can run); the others
are submitted at once and run in parallel, producers first (a Dask priority). A result is fetched
the moment its task ends, so a worker lost later costs nothing.

Threads
-------
Each notebook runs in its own process (``python -m cifarkit.course.engine JOB``, which runs papermill and
its kernel). Its kernel is told its share of its machine's cores through ``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` (torch reads the first): the usable cores divided
by the task slots (worker threads) on that host, at least 1. ``--workers N`` makes N single-thread
worker processes, so on a 2-core machine ``--workers 1`` gives one notebook 2 threads and
``--workers 2`` gives two notebooks 1 thread each.

Faults
------
* A worker that dies mid-notebook (``kill -9``): Dask gives the task to another worker, which runs
  the notebook again from the start; a second death is final, the notebook is reported failed with
  the workers that died (`MAX_ATTEMPTS`; the scheduler's ``distributed.scheduler.allowed-failures``
  must be at least 2, its default is 3). Each attempt leaves a marker in the run folder's
  ``.cifarkit-engine/`` (host, worker, pid, start), which is how the count survives the worker.
* Every notebook has a time limit (``time_limit``, default `DEFAULT_TIME_LIMIT_S` by profile): its
  process is stopped (SIGTERM, then SIGKILL after `STOP_GRACE_S`) and the notebook reported failed.
  The run never hangs: a task without an answer `STUCK_GRACE_S` after its limit, or a cluster left
  without workers for `NO_WORKER_S`, is reported failed too.
* Ctrl-C cancels what is queued, stops the running notebooks (their executed copies and the
  finished notebooks are kept), writes the reports of what ran and re-raises ``KeyboardInterrupt``.
* The executed copy is written under a hidden name and renamed when the notebook stops, metrics
  and reports are written atomically (`cifarkit.files`): nothing is left half-written, and a full
  disk is one line naming the file.

The run folder must be reachable from every worker, at the same path: on one machine it is; on a
cluster of several it must be on a shared file system (NFS, ...). `run_batch` checks that before
the first notebook (each worker reads a file the run wrote and writes one the run reads) and stops
with one line naming the folder and the worker otherwise. ``docs/cluster.md`` says how to set a
cluster up.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..files import atomic_write_text
from .notebook_params import plan_parameters
from .params import SCHEMA, Spec
from .runner import (OFFLINE_LINE, RunResult, _check_kernels, _one_line, _prepare_out_dir,
                     check_run_arguments, execute_notebook, kernel_engine_kwargs, network_for, notebook_result,
                     now_iso, progress_line, run_notebooks, write_report)
from .summary import worker_label

__all__ = ["run_batch", "declared_artifacts", "dependencies", "usable_cores", "Cluster", "run_task",
           "DEFAULT_TIME_LIMIT_S", "MAX_ATTEMPTS"]

#: How many times a notebook is started when its workers die under it: once, and once again.
MAX_ATTEMPTS = 2
#: A notebook's time limit in seconds when none is given, by profile (other profiles: "full"'s).
DEFAULT_TIME_LIMIT_S = {"quick": 2 * 3600.0, "full": 72 * 3600.0}
#: Seconds a stopped notebook gets to end cleanly (SIGTERM) before it is killed (SIGKILL).
STOP_GRACE_S = 10.0
#: Seconds past its time limit after which a task whose worker does not answer is given up.
STUCK_GRACE_S = 120.0
#: Seconds a cluster may stay without any worker before the notebooks still queued are failed.
NO_WORKER_S = 120.0
#: Seconds to reach a scheduler, and to wait for its first worker.
CONNECT_TIMEOUT_S = 30.0
WORKER_WAIT_S = 60.0
#: How often a task looks at its notebook's process, and the run at its tasks (seconds).
POLL_S = 0.5
WATCH_S = 2.0
#: The hidden folder of a run folder where attempts, logs and answers are kept while it runs.
STATE_DIR = ".cifarkit-engine"
CANCEL_FILE = "CANCEL"
#: The variables that tell a kernel how many threads it may use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Dask's nanny gives its workers ``MALLOC_TRIM_THRESHOLD_=65536`` (its config
#: ``distributed.nanny.pre-spawn-environ``), which keeps a worker's own memory small. Inherited by a
#: training kernel, it makes glibc hand each batch's tensors back to the system and fault them in
#: again: a third of the kernel's CPU time in page faults (bench/results.md section 13). A notebook's process
#: does not inherit it, and a LocalCluster of this engine does not set it at all.
NANNY_MEMORY_VARIABLES = ("MALLOC_TRIM_THRESHOLD_",)
INTERRUPTED = "KeyboardInterrupt: run interrupted by the user"


# --------------------------------------------------------------------------
# Dependencies: what each notebook makes and needs
# --------------------------------------------------------------------------

def declared_artifacts(path: str | os.PathLike) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(needs, makes)``: the artifact names in the notebook's ``metadata.cifarkit`` (empty when
    it declares none). A malformed declaration is a one-line ValueError naming the notebook."""
    path = Path(path)
    try:
        metadata = json.loads(path.read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path.name}: cannot read its metadata ({_one_line(exc)})") from None
    declared = metadata.get("cifarkit") or {}
    if not isinstance(declared, dict):
        raise ValueError(f"{path.name}: metadata 'cifarkit' must be an object with 'needs' and 'makes' lists")
    out = []
    for key in ("needs", "makes"):
        names = declared.get(key) or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ValueError(f"{path.name}: metadata cifarkit.{key} must be a list of artifact names, got {names!r}")
        out.append(tuple(names))
    return out[0], out[1]


def dependencies(notebooks: Sequence[Path]) -> dict[str, list[str]]:
    """``{notebook file name: [the selected notebooks that make what it needs]}``, from
    `declared_artifacts`. A cycle is a one-line ValueError."""
    declared = {p.name: declared_artifacts(p) for p in notebooks}
    deps = {name: [other for other, (_, makes) in declared.items()
                   if other != name and set(needs) & set(makes)]
            for name, (needs, _) in declared.items()}
    state: dict[str, int] = {}  # 1: on the path being followed, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError("the notebooks' artifacts depend on each other in a cycle: "
                             + " -> ".join(path[path.index(name):] + [name]))
        state[name] = 1
        for producer in deps[name]:
            visit(producer, path + [name])
        state[name] = 2

    for name in deps:
        visit(name, [])
    return deps


def _weights(deps: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """How many notebooks wait, directly or not, on each notebook, plus one (a Dask priority)."""
    dependents: dict[str, set[str]] = {name: set() for name in deps}
    for name, producers in deps.items():
        for producer in producers:
            dependents[producer].add(name)

    def below(name: str) -> set[str]:
        found = set(dependents[name])
        for d in dependents[name]:
            found |= below(d)
        return found
    return {name: 1 + len(below(name)) for name in deps}


# --------------------------------------------------------------------------
# On a worker: one notebook in its own process
# --------------------------------------------------------------------------

def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system tells, else all)."""
    with contextlib.suppress(AttributeError, OSError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _worker_info() -> dict[str, Any]:
    """This Dask worker: host, address, name, threads (outside a worker: this process)."""
    info: dict[str, Any] = {"host": socket.gethostname(), "address": None, "name": None, "nthreads": 1}
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        worker = get_worker()
        info.update(address=worker.address, nthreads=int(getattr(worker, "nthreads", 1) or 1))
        if str(worker.name) != worker.address:
            info["name"] = str(worker.name)
    return info


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _attempts(state: Path, key: str) -> list[dict[str, Any]]:
    """The attempts started so far for task `key`, from their markers, in order."""
    found = [(_read_json(p) or {}) for p in state.glob(f"{key}.attempt-*.json")]
    return sorted(found, key=lambda a: a.get("attempt", 0))


def _where(attempt: Mapping[str, Any]) -> str:
    return worker_label({k: attempt.get(k) for k in ("host", "name", "address")})


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the notebook's process stops its kernel and keeps its executed copy), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _supervise(proc: subprocess.Popen, limit: float | None, cancel: Path, reply: Path) -> str | None:
    """Wait for the notebook's process; stop it at the time limit or when the run is cancelled,
    unless it has answered already (then it is only ending). Returns None, ``"timeout"`` or
    ``"cancelled"``."""
    deadline = None if limit is None else time.monotonic() + limit
    while True:
        try:
            proc.wait(timeout=POLL_S)
            return None
        except subprocess.TimeoutExpired:
            pass
        why = "cancelled" if cancel.exists() else \
            "timeout" if deadline is not None and time.monotonic() > deadline else None
        if why is None:
            continue
        if reply.exists():  # the notebook has finished: let its process end, within the grace
            try:
                proc.wait(timeout=STOP_GRACE_S)
                return None
            except subprocess.TimeoutExpired:
                pass
        _stop(proc)
        return why


def _log_tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].strip()[:300]
    return "no output"


def _nanny_environ() -> dict[str, Any]:
    """What Dask's nanny puts in its workers' environment (empty without Dask)."""
    try:
        import dask
    except ImportError:
        return {}
    return dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})


def run_task(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one notebook on this worker and return its outcome (the Dask task of `run_batch`).

    `spec` (JSON-able) holds ``key``, ``notebook``, ``run_dir``, ``state_dir``, ``parameters``,
    ``kernel_name``, ``env`` (values None are removed), ``time_limit`` and ``threads`` (threads per
    notebook by worker address). The outcome: ``key``, ``error`` (None when it ran through),
    ``duration_s`` and ``worker`` (host, name, address, attempts, threads, started_at, finished_at,
    earlier). It is also kept in the state folder, so a task Dask runs again after losing the
    result returns it instead of running the notebook twice.
    """
    state, key = Path(spec["state_dir"]), spec["key"]
    answer = state / f"{key}.result.json"
    known = _read_json(answer)
    if known is not None:
        return known
    info = _worker_info()
    earlier = _attempts(state, key)
    where = {k: info[k] for k in ("host", "name", "address")}
    if (state / CANCEL_FILE).exists():
        return {"key": key, "error": INTERRUPTED, "duration_s": 0.0, "worker": None, "cancelled": True}
    if len(earlier) >= MAX_ATTEMPTS:
        died = ", then ".join(_where(a) for a in earlier)
        outcome = {"key": key, "duration_s": 0.0, "worker": dict(where, attempts=len(earlier)),
                   "error": f"WorkerDied: the worker running it died during each of its {len(earlier)} "
                            f"attempts ({died}); not started again"}
        atomic_write_text(answer, json.dumps(outcome))
        return outcome

    attempt = len(earlier) + 1
    started = time.time()
    atomic_write_text(state / f"{key}.attempt-{attempt}.json",
                      json.dumps(dict(where, attempt=attempt, pid=os.getpid(), started=started)))
    run_dir, notebook = Path(spec["run_dir"]), Path(spec["notebook"])
    (run_dir / f"{notebook.stem}.metrics.json").unlink(missing_ok=True)  # an earlier attempt's
    for stale in state.glob(f"{key}.partial-*"):
        stale.unlink(missing_ok=True)
    threads = spec.get("threads", {}).get(info["address"]) or max(1, usable_cores() // info["nthreads"])
    env = dict(os.environ)
    nanny_set = _nanny_environ()
    for name in NANNY_MEMORY_VARIABLES:
        if name in nanny_set and env.get(name) == str(nanny_set[name]):
            env.pop(name)
    for name, value in {**spec["env"], **{v: str(threads) for v in THREAD_VARIABLES}}.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    base = f"{state / key}.{attempt}"  # the attempt's job, answer and log (the marker alone is .attempt-N.json)
    job = {"notebook": str(notebook), "output": str(run_dir / notebook.name), "run_dir": str(run_dir),
           "partial": str(state / f"{key}.partial-{attempt}.ipynb"), "parameters": spec["parameters"],
           "kernel_name": spec.get("kernel_name"), "reply": base + ".reply.json", "parent": os.getpid()}
    atomic_write_text(base + ".job.json", json.dumps(job))
    with open(base + ".log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cifarkit.course.engine", base + ".job.json"], env=env,
                                cwd=run_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        stopped = _supervise(proc, spec.get("time_limit"), state / CANCEL_FILE, Path(job["reply"]))
    reply = _read_json(Path(job["reply"]))
    if reply is not None and not reply.get("stopped"):  # it ran to its end, whatever came after
        error = reply.get("error")
    elif stopped == "timeout":
        error = (f"TimeoutError: still running after its time limit of {spec['time_limit']:g} s, "
                 "so it was stopped (cifarkit run --time-limit)")
    elif stopped == "cancelled":
        error = INTERRUPTED
    elif reply is None:
        error = (f"the notebook's process ended (exit code {proc.returncode}) without an answer: "
                 f"{_log_tail(Path(base + '.log'))}")
    else:
        error = "the notebook's process was stopped by a signal (SIGTERM) that this run did not send"
    finished = time.time()
    worker = dict(where, attempts=attempt, threads=threads,
                  started_at=_iso(started), finished_at=_iso(finished),
                  **({"earlier": [_where(a) for a in earlier]} if earlier else {}))
    outcome = {"key": key, "error": error, "duration_s": finished - started, "worker": worker}
    atomic_write_text(answer, json.dumps(outcome))
    return outcome


def _iso(t: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def _exit_with_parent(parent: int) -> None:
    """End this process when its parent (the worker) is gone; its kernel follows it (ipykernel
    watches its own parent)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_S)
        os._exit(70)
    threading.Thread(target=watch, daemon=True).start()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cifarkit.course.engine JOB.json``: execute one notebook as `run_task` asked (the
    kernel environment is this process's), move its executed copy into place, write the answer."""
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    _exit_with_parent(int(job["parent"]))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        error = execute_notebook(Path(job["notebook"]), Path(job["output"]), Path(job["run_dir"]),
                                 job["parameters"], job["kernel_name"], kernel_engine_kwargs(),
                                 partial=Path(job["partial"]))
    except KeyboardInterrupt:  # SIGTERM: the time limit or Ctrl-C; run_task words it
        atomic_write_text(job["reply"], json.dumps({"error": None, "stopped": True}))
        return 0
    atomic_write_text(job["reply"], json.dumps({"error": error}))
    return 0


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------

def _probe(folders: Sequence[str], token: str) -> str | None:
    """On a worker: read each folder's probe file and write one back; None, or what went wrong."""
    me = _worker_info()
    for folder in folders:
        probe = Path(folder) / STATE_DIR / f"probe-{token}"
        try:
            if probe.read_text(encoding="utf-8") != token:
                return f"{probe} holds something else"
            atomic_write_text(Path(folder) / STATE_DIR / f"probe-{token}-{secrets.token_hex(4)}",
                              json.dumps(me))
        except OSError as exc:
            return f"{folder}: {exc.strerror or _one_line(exc)} (on {me['host']})"
    return None


def _restore_environ(saved: Mapping[str, str]) -> None:
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    os.environ.update(saved)


class Cluster:
    """A Dask client: on a new `LocalCluster` of `workers` single-thread processes on 127.0.0.1,
    or connected to the scheduler at `scheduler`. A context manager; closing it stops what it
    started (a LocalCluster's workers, and with them the notebooks they run)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None):
        if (workers is None) == (scheduler is None):
            raise ValueError("give either workers (a LocalCluster) or scheduler (an address), not both")
        self.workers, self.scheduler = workers, scheduler
        self.client: Any = None
        self._cluster: Any = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Cluster":
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise RuntimeError(f"--workers and --scheduler need Dask ({exc}); install the kit's locked "
                               "dependencies (make install) or pip install 'dask[distributed]'") from None

        for name in ("distributed", "tornado"):  # a worker's death is reported by the run, in one line
            logger = logging.getLogger(name)
            self._stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.CRITICAL)
        if self.workers is not None:
            # The nanny's environment for its workers (see NANNY_MEMORY_VARIABLES) would also be
            # written into this process's os.environ, and from there reach every kernel it starts
            # later, with OMP_NUM_THREADS=1: none of it is needed here, and what the nanny still
            # writes (PYTHONHASHSEED, its parent's pid) is undone when the cluster closes.
            self._stack.callback(_restore_environ, dict(os.environ))
            self._stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": MAX_ATTEMPTS,
                                                       "distributed.nanny.pre-spawn-environ": {}}))
            self._cluster = self._stack.enter_context(LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, worker_dashboard_address=None, memory_limit=0,
                silence_logs=logging.CRITICAL))
            self.client = self._stack.enter_context(Client(self._cluster, timeout=CONNECT_TIMEOUT_S))
            return
        try:
            self.client = self._stack.enter_context(Client(self.scheduler, timeout=CONNECT_TIMEOUT_S))
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler!r}: {_one_line(exc)}") from None
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"no Dask worker joined the scheduler at {self.scheduler!r} within "
                               f"{WORKER_WAIT_S:g} s; start one with `dask worker {self.scheduler}`") from exc

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()

    def worker_hosts(self) -> dict[str, dict[str, Any]]:
        """``{address: {"host", "nthreads", "name"}}`` of the workers connected now."""
        info = _scheduler_workers(self.client)
        return {addr: {"host": w.get("host"), "nthreads": int(w.get("nthreads") or 1), "name": w.get("name")}
                for addr, w in info.items()}

    def threads_by_worker(self) -> dict[str, int]:
        """Threads for each notebook, by worker: its host's usable cores divided by the task slots
        (worker threads) of all workers on that host, at least 1."""
        workers = self.worker_hosts()
        cores = self.client.run(usable_cores)
        slots: dict[str, int] = {}
        for w in workers.values():
            slots[w["host"]] = slots.get(w["host"], 0) + w["nthreads"]
        return {addr: max(1, int(cores.get(addr, 1)) // slots[w["host"]]) for addr, w in workers.items()}

    def describe(self, threads: Mapping[str, int]) -> dict[str, Any]:
        """The engine, for the report: what kind, how many workers, threads per notebook."""
        workers = self.worker_hosts()
        hosts = sorted({w["host"] for w in workers.values()})
        per = sorted(set(threads.values()))
        share = f"{'/'.join(str(t) for t in per)} thread{'s' if per != [1] else ''} per notebook"
        where = (f"Dask LocalCluster, {len(workers)} worker{'s' if len(workers) != 1 else ''}"
                 if self.workers is not None else
                 f"Dask scheduler {self.scheduler}, {len(workers)} worker{'s' if len(workers) != 1 else ''} "
                 f"on {len(hosts)} host{'s' if len(hosts) != 1 else ''}")
        return {"description": f"{where}, {share}", "kind": "local" if self.workers is not None else "scheduler",
                "scheduler": self.scheduler, "workers": len(workers), "hosts": hosts,
                "threads_per_notebook": dict(threads)}

    def check_shared(self, folders: Sequence[Path]) -> None:
        """Every worker reads a file written here into each folder's state folder and writes one
        back; one-line OSError naming the folder and the worker when one cannot."""
        token = secrets.token_hex(8)
        for folder in folders:
            atomic_write_text(folder / STATE_DIR / f"probe-{token}", token)
        try:
            replies = self.client.run(_probe, [str(f) for f in folders], token)
            workers = self.worker_hosts()
            for addr, problem in replies.items():
                if problem:
                    raise OSError(f"the run folder is not reachable from the Dask worker {addr}: {problem}; on a "
                                  "cluster of several machines the run folder (--out) must be on a file system "
                                  "that every worker mounts at the same path (docs/cluster.md)")
            for folder in folders:
                seen = len(list((folder / STATE_DIR).glob(f"probe-{token}-*")))
                if seen < len(replies):
                    raise OSError(f"{len(replies) - seen} Dask worker(s) wrote into the run folder {folder} where this "
                                  f"machine cannot see it; the run folder (--out) must be on a file system that every "
                                  f"worker mounts at the same path (docs/cluster.md); workers: {', '.join(workers)}")
        finally:
            for folder in folders:
                for probe in (folder / STATE_DIR).glob(f"probe-{token}*"):
                    probe.unlink(missing_ok=True)


def _scheduler_workers(client: Any) -> dict[str, Any]:
    """The scheduler's ``{address: worker info}`` for every worker (older clients list all anyway)."""
    try:
        return client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before n_workers
        return client.scheduler_info()["workers"]


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------

@dataclass
class Task:
    """One notebook of one run: what `run_task` gets, and the keys it waits for."""

    key: str
    run: int
    path: Path
    spec: dict[str, Any]
    needs: list[str] = field(default_factory=list)
    priority: int = 1


def _check_engine(workers: Any, scheduler: Any, time_limit: Any) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(f"scheduler must be an address such as tcp://10.0.0.5:8786, got {scheduler!r}")
    if workers is not None and scheduler is not None:
        raise ValueError("give --workers (a cluster on this machine) or --scheduler (an existing one), not both")
    if time_limit is not None:
        if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0 \
                or time_limit == float("inf"):
            raise ValueError(f"time limit must be a number of seconds > 0, got {time_limit!r}")
        if workers is None and scheduler is None:
            raise ValueError("--time-limit needs --workers or --scheduler (a run in this process has no "
                             "per-notebook limit)")


def _check_runs(runs: Any) -> list[tuple[Path, dict[str, Any]]]:
    if isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Iterable):
        raise TypeError(f"runs must be a list of (folder, parameters) pairs, got {type(runs).__name__}")
    out = []
    for i, run in enumerate(runs):
        if not (isinstance(run, (tuple, list)) and len(run) == 2 and isinstance(run[0], (str, os.PathLike))
                and isinstance(run[1], Mapping)):
            raise TypeError(f"runs[{i}] must be a (folder, parameters dict) pair, got {run!r}")
        out.append((Path(run[0]), dict(run[1])))
    if not out:
        raise ValueError("runs is empty: nothing to run")
    folders = [p.resolve() for p, _ in out]
    if len(set(folders)) < len(folders):
        raise ValueError("two runs share one folder; every run needs its own")
    return out


def run_batch(notebooks_dir: str | os.PathLike, runs: Sequence[tuple[str | os.PathLike, Mapping[str, Any]]],
              profile: str = "quick", only: str | Iterable[str] | None = None, kernel_name: str | None = None,
              schema: Mapping[str, Spec] | None = None, workers: int | None = None, scheduler: str | None = None,
              time_limit: float | None = None, progress: bool = True,
              labels: Sequence[str] | None = None) -> list[RunResult]:
    """Run the selected notebooks once per run, each run a ``(folder, parameters)`` pair; return
    one `~cifarkit.course.runner.RunResult` per run, in order.

    Every folder must be new or empty, and gets what `run_notebooks` writes into its run directory.
    With `workers` (a LocalCluster of that many single-thread worker processes on 127.0.0.1) or
    `scheduler` (the address of a running Dask scheduler) the notebooks of all runs go to Dask
    workers (see the module docstring: dependencies, threads, faults); `time_limit` is each
    notebook's limit in seconds (default `DEFAULT_TIME_LIMIT_S`). With neither, the runs are
    `run_notebooks` calls one after another. `labels` name the runs in the progress lines (default:
    the folder names when there are several runs). Arguments, parameters, kernels and the notebooks'
    declarations are checked before anything is created or runs (one-line errors). Ctrl-C: see the
    module docstring; ``KeyboardInterrupt`` is re-raised after the reports are written.
    """
    notebooks, specs = check_run_arguments(notebooks_dir, profile, only, None, progress, kernel_name, schema)
    runs = _check_runs(runs)
    _check_engine(workers, scheduler, time_limit)
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"labels must name each of the {len(runs)} runs, got {len(labels)}")
    plans = [plan_parameters(specs, params, profile, SCHEMA if schema is None else schema) for _, params in runs]
    deps = dependencies(notebooks)
    _check_kernels(notebooks, kernel_name)
    if workers is None and scheduler is None:
        return [run_notebooks(notebooks_dir, profile, only, folder, params, progress, kernel_name, schema)
                for folder, params in runs]
    folders = [_prepare_out_dir(folder).resolve() for folder, _ in runs]
    if labels is None:
        labels = [f.name for f in folders] if len(folders) > 1 else [""]
    limit = float(time_limit) if time_limit is not None else DEFAULT_TIME_LIMIT_S.get(profile, DEFAULT_TIME_LIMIT_S["full"])
    return _Batch(notebooks, specs, deps, folders, [p for _, p in runs], plans, list(labels), profile, kernel_name,
                  limit, progress).run(workers, scheduler)


class _Batch:
    """One `run_batch` on Dask: the tasks, their outcomes, the reports."""

    def __init__(self, notebooks, specs, deps, folders, parameters, plans, labels, profile, kernel_name, limit,
                 progress):
        self.notebooks, self.specs, self.deps = notebooks, specs, deps
        self.folders, self.parameters, self.plans, self.labels = folders, parameters, plans, labels
        self.profile, self.kernel_name, self.limit, self.progress = profile, kernel_name, limit, progress
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.results: dict[str, Any] = {}
        self.tasks: dict[str, Task] = {}

    def say(self, line: str) -> None:
        if self.progress:
            print(line, flush=True)

    def _make_tasks(self, network: str | None, threads: Mapping[str, int]) -> None:
        token = secrets.token_hex(3)
        weights = _weights(self.deps)
        for i, (folder, plan) in enumerate(zip(self.folders, self.plans)):
            keys = {path.name: f"cifarkit-{token}-{i}-{path.stem}" for path in self.notebooks}
            env = {"CIFARKIT_RESULTS_DIR": str(folder), "CIFARKIT_ARTIFACTS": str(folder / "artifacts"),
                   "CIFARKIT_HEADLESS": "1", "CIFARKIT_PROFILE": None}
            if network is not None:
                env["CIFARKIT_NETWORK"] = network
            for path in self.notebooks:
                spec = {"key": keys[path.name], "notebook": str(path.resolve()), "run_dir": str(folder),
                        "state_dir": str(folder / STATE_DIR), "parameters": plan[path.name],
                        "kernel_name": self.kernel_name, "env": dict(env, CIFARKIT_NOTEBOOK=path.stem),
                        "time_limit": self.limit, "threads": dict(threads)}
                self.tasks[keys[path.name]] = Task(keys[path.name], i, path, spec,
                                                   [keys[p] for p in self.deps[path.name]], weights[path.name])

    def run(self, workers: int | None, scheduler: str | None) -> list[RunResult]:
        started_at, t0 = now_iso(), time.perf_counter()
        network = network_for(self.specs, self.plans)
        if network == "0":
            self.say(OFFLINE_LINE)
        interrupted = None
        with Cluster(workers=workers, scheduler=scheduler) as cluster:
            try:
                for folder in self.folders:
                    (folder / STATE_DIR).mkdir(parents=True, exist_ok=True)
                cluster.check_shared(self.folders)
                threads = cluster.threads_by_worker()
            except BaseException:  # nothing ran: leave the folders as they were made
                for folder in self.folders:
                    shutil.rmtree(folder / STATE_DIR, ignore_errors=True)
                raise
            self.engine = cluster.describe(threads)
            self.say(f"engine: {self.engine['description']}")
            self._make_tasks(network, threads)
            try:
                self._schedule(cluster.client)
            except KeyboardInterrupt:
                interrupted = self._cancel(cluster.client)
        return self._reports(started_at, time.perf_counter() - t0, interrupted)

    # -- scheduling ------------------------------------------------------------------------------

    def _schedule(self, client: Any) -> None:
        self.waiting = dict(self.tasks)
        self.futures: dict[Any, str] = {}
        no_worker_since, watched = None, time.monotonic()
        self._submit_ready(client)
        while self.futures:
            finished = [future for future in self.futures if future.done()]  # this run's client, whichever is default
            if not finished:
                time.sleep(POLL_S)
            for future in finished:
                key = self.futures.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - KilledWorker, a cancelled task: reported
                    outcome = {"key": key, "error": _lost(exc), "duration_s": 0.0, "worker": self._last_worker(key)}
                self._done(key, outcome)
                future.release()
            self._submit_ready(client)
            if time.monotonic() - watched > WATCH_S:
                no_worker_since, watched = self._watch(client, no_worker_since), time.monotonic()

    def _submit_ready(self, client: Any) -> None:
        for key, task in list(self.waiting.items()):
            if all(need in self.outcomes for need in task.needs):
                future = client.submit(run_task, task.spec, key=key, pure=False, priority=task.priority)
                self.futures[future] = key
                del self.waiting[key]

    def _done(self, key: str, outcome: Mapping[str, Any]) -> None:
        task = self.tasks[key]
        folder = self.folders[task.run]
        self.outcomes[key] = dict(outcome)
        nb = notebook_result(task.path, folder / task.path.name, folder, task.spec["parameters"],
                             outcome.get("error"), float(outcome.get("duration_s") or 0.0), outcome.get("worker"))
        self.results[key] = nb
        where = f"  on {worker_label(nb.worker)}" if nb.worker else ""
        label = f"  [{self.labels[task.run]}]" if self.labels[task.run] else ""
        self.say(progress_line(nb, label + where))

    def _last_worker(self, key: str) -> dict[str, Any] | None:
        task = self.tasks[key]
        attempts = _attempts(Path(task.spec["state_dir"]), key)
        if not attempts:
            return None
        last = attempts[-1]
        return {"host": last.get("host"), "name": last.get("name"), "address": last.get("address"),
                "attempts": len(attempts)}

    def _answered(self, key: str) -> dict[str, Any] | None:
        """The outcome of a notebook whose process answered before its worker could record it (a
        worker that Ctrl-C ended a moment too early): from the attempt's marker and answer."""
        state = Path(self.tasks[key].spec["state_dir"])
        attempts = _attempts(state, key)
        reply_file = state / f"{key}.{len(attempts)}.reply.json"
        reply = _read_json(reply_file) if attempts else None
        if reply is None:
            return None
        started, finished = float(attempts[-1].get("started", 0.0)), reply_file.stat().st_mtime
        worker = dict(self._last_worker(key) or {}, started_at=_iso(started), finished_at=_iso(finished))
        return {"key": key, "error": INTERRUPTED if reply.get("stopped") else reply.get("error"),
                "duration_s": finished - started, "worker": worker}

    def _watch(self, client: Any, no_worker_since: float | None) -> float | None:
        """Fail what can no longer finish: tasks whose worker is silent past their time limit, and
        everything queued when the cluster has had no worker for `NO_WORKER_S`."""
        now = time.time()
        for future, key in list(self.futures.items()):
            attempts = _attempts(Path(self.tasks[key].spec["state_dir"]), key)
            if attempts and now - float(attempts[-1].get("started", now)) > self.limit + STOP_GRACE_S + STUCK_GRACE_S:
                client.cancel([future])
                del self.futures[future]
                self._done(key, {"key": key, "duration_s": now - float(attempts[-1]["started"]),
                                 "worker": self._last_worker(key),
                                 "error": f"TimeoutError: its worker gave no answer {STUCK_GRACE_S:g} s after the "
                                          f"time limit of {self.limit:g} s"})
        try:
            alive = len(_scheduler_workers(client))
        except Exception:  # noqa: BLE001 - a scheduler that does not answer: as good as no worker
            alive = 0
        if alive:
            return None
        if no_worker_since is None:
            return now
        if now - no_worker_since > NO_WORKER_S:
            client.cancel(list(self.futures))
            message = f"RuntimeError: no Dask worker was left to run it (none for {NO_WORKER_S:g} s)"
            for key in list(self.futures.values()) + list(self.waiting):
                self._done(key, {"key": key, "error": message, "duration_s": 0.0, "worker": self._last_worker(key)})
            self.futures.clear()
            self.waiting.clear()
        return no_worker_since

    def _cancel(self, client: Any) -> int:
        """Ctrl-C: tell the running notebooks to stop, cancel the queued, keep what ran; return how
        many queued notebooks never started."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                atomic_write_text(folder / STATE_DIR / CANCEL_FILE, "cancelled by Ctrl-C\n")
        futures = dict(getattr(self, "futures", {}))
        with contextlib.suppress(Exception):
            client.cancel(list(futures))
        started = [key for key in futures.values()
                   if _attempts(Path(self.tasks[key].spec["state_dir"]), key)]
        deadline = time.monotonic() + 2 * STOP_GRACE_S + 5  # each stops within STOP_GRACE_S, on a busy CPU later
        while started and time.monotonic() < deadline:
            if all((Path(self.tasks[k].spec["state_dir"]) / f"{k}.result.json").exists() for k in started):
                break
            time.sleep(POLL_S)
        for key in started:  # each as its task left it (finished, or stopped), else as interrupted
            state = Path(self.tasks[key].spec["state_dir"])
            self._done(key, _read_json(state / f"{key}.result.json") or self._answered(key) or
                       {"key": key, "error": INTERRUPTED, "duration_s": 0.0, "worker": self._last_worker(key)})
        return len(futures) - len(started) + len(getattr(self, "waiting", {}))

    # -- reports ---------------------------------------------------------------------------------

    def _reports(self, started_at: str, wall_s: float, interrupted: int | None) -> list[RunResult]:
        reports = []
        for i, folder in enumerate(self.folders):
            nbs = [self.results[t.key] for t in self.tasks.values() if t.run == i and t.key in self.results]
            if interrupted is not None and not nbs:  # nothing of it started: no report, an empty folder
                shutil.rmtree(folder / STATE_DIR, ignore_errors=True)
                continue
            spans = [(nb.worker["started_at"], nb.worker["finished_at"]) for nb in nbs
                     if nb.worker and nb.worker.get("started_at")]
            duration = _span_s(spans) if spans else wall_s
            reports.append(write_report(nbs, folder, self.profile, self.parameters[i], started_at, duration,
                                        self.kernel_name, engine=self.engine))
            if interrupted is None:
                shutil.rmtree(folder / STATE_DIR, ignore_errors=True)
        ran = [nb for r in reports for nb in r.notebooks]
        ok = sum(nb.ok for nb in ran)
        where = reports[0].summary_md if len(reports) == 1 else f"{len(reports)} run folders"
        if not reports:
            where = "no report: no notebook had started"
        self.say(f"{ok}/{len(ran)} notebooks ok in {wall_s:.1f} s; report: {where}")
        if interrupted is not None:
            raise KeyboardInterrupt(f"run interrupted; {interrupted} queued notebook(s) cancelled; partial "
                                    f"report{'s' if len(reports) > 1 else ''}: {where}")
        return reports


def _span_s(spans: Sequence[tuple[str, str]]) -> float:
    """Seconds from the first start to the last finish of ISO time pairs."""
    from datetime import datetime

    start = min(datetime.fromisoformat(a) for a, _ in spans)
    end = max(datetime.fromisoformat(b) for _, b in spans)
    return (end - start).total_seconds()


def _lost(exc: BaseException) -> str:
    """The one line for a task Dask could not finish (KilledWorker: workers died; cancelled)."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return (f"KilledWorker: the workers running it died more often than the scheduler allows "
                f"(distributed.scheduler.allowed-failures; keep it at {MAX_ATTEMPTS} or more)")
    if name in ("CancelledError", "FutureCancelledError"):
        return "CancelledError: the Dask scheduler cancelled it (did the scheduler restart?)"
    return f"{name}: {_one_line(exc)}"


if __name__ == "__main__":
    raise SystemExit(main())
