"""cifarkit run on Dask (issue 29): a real `dask scheduler` and `dask worker` processes on
127.0.0.1, and LocalClusters, running tiny notebooks of a few seconds each.

Everything started here is stopped here: the scheduler and the workers run in process groups of
their own that a finalizer kills, every `cifarkit run` runs in a session of its own, and the tests
check that nothing of that session outlives it. Each test is bounded by pytest-timeout.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from conftest import REPO
from cifarkit.course import engine
from cifarkit.course.engine import STATE_DIR, dependencies, declared_artifacts, usable_cores

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and /proc")

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
       "CIFARKIT_HEADLESS": "1"}

#: A cell that records what its kernel saw, sleeps, and writes <stem>.metrics.json.
RECORD = """import json, os, time
from pathlib import Path
started = time.time()
art = Path(os.environ["CIFARKIT_ARTIFACTS"])
art.mkdir(parents=True, exist_ok=True)
(art / (__STEM__ + ".running")).touch()  # tests wait for it: the kernel is in this cell
time.sleep(__SLEEP__)
found = {n: (art / n).is_file() for n in __NEEDS__}
art.mkdir(parents=True, exist_ok=True)
for n in __MAKES__:
    (art / n).write_text("made by " + __STEM__)
Path(os.environ["CIFARKIT_RESULTS_DIR"], __STEM__ + ".metrics.json").write_text(json.dumps({
    "seed": seed, "data_source": data_source, "started": started, "found": found,
    "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "CIFARKIT_NOTEBOOK", "CIFARKIT_RESULTS_DIR",
                                           "MALLOC_TRIM_THRESHOLD_")}}))
"""


def notebook(folder: Path, stem: str, sleep: float = 0.5, needs=(), makes=()) -> Path:
    """A tiny notebook taking profile/seed/data_source (the kit's schema) that sleeps `sleep` seconds
    and declares the artifacts it needs and makes in its metadata, as the course notebooks do."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["cifarkit"] = {"needs": list(needs), "makes": list(makes)}
    nb.cells = [nbformat.v4.new_code_cell('profile = "quick"\nseed = 0\ndata_source = "synthetic"\n',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(RECORD.replace("__SLEEP__", repr(sleep)).replace("__STEM__", repr(stem))
                                          .replace("__NEEDS__", repr(list(needs)))
                                          .replace("__MAKES__", repr(list(makes))))]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.ipynb"
    nbformat.write(nb, str(path))
    return path


def _session_pids(sid: int) -> list[int]:
    """The processes still alive in session `sid` (Linux /proc; zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid and "(Z)" not in (entry / "stat").read_text().split(")")[-1][:4]:
                    found.append(int(entry.name))
            except (OSError, ProcessLookupError):
                continue
    return found


def _processes_in(folder: Path) -> list[int]:
    """The processes (other than this one) working in `folder` or naming it on their command line:
    a notebook's process, its kernel (whose working folder is the run folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)) or str(folder) in cmdline:
            found.append(int(entry.name))
    return found


def _as_in_a_terminal() -> None:
    """Ctrl-C reaches a foreground command: a run started from a shell's background job (or CI's
    runner) would otherwise inherit SIGINT ignored, and the Ctrl-C tests would wait in vain."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """`python -m cifarkit run ...` in a session of its own (so Ctrl-C can go to its whole group)."""

    def __init__(self, *args: str, cwd: Path):
        self.cwd = cwd
        self.proc = subprocess.Popen([sys.executable, "-m", "cifarkit", "run", *args], cwd=cwd, env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, preexec_fn=_as_in_a_terminal)

    def finish(self, timeout: float = 600) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            self.kill()
        self.assert_nothing_left()
        return self.proc.returncode, out, err

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def assert_nothing_left(self, grace: float = 60.0) -> None:
        """No process of the run's session (a LocalCluster's workers) and no process working in the
        test's folder (notebook processes and kernels, wherever a worker started them) outlives it."""
        if not Path("/proc").is_dir():
            return
        deadline = time.time() + grace
        while (_session_pids(self.proc.pid) or _processes_in(self.cwd)) and time.time() < deadline:
            time.sleep(0.5)
        left = _session_pids(self.proc.pid) + _processes_in(self.cwd)
        self.kill()
        assert not left, f"processes of the run still alive: {left}"


class DaskCluster:
    """A `dask scheduler` and `dask worker` processes (no nanny, 1 thread each) on 127.0.0.1."""

    def __init__(self, root: Path):
        self.root, self.procs, self.workers = root, [], {}
        file = root / "scheduler.json"
        self.scheduler = self._start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                      "--port", "0", "--no-dashboard", "--scheduler-file", str(file)])
        deadline = time.time() + 60
        while not file.exists() and time.time() < deadline:
            assert self.scheduler.poll() is None, "the scheduler did not start"
            time.sleep(0.2)
        self.address = json.loads(file.read_text())["address"]
        from distributed import Client
        self.client = Client(self.address, timeout=30)

    def _start(self, argv: list[str]) -> subprocess.Popen:
        log = open(self.root / f"log-{len(self.procs)}.txt", "wb")
        # as under a nanny (`dask worker` starts one by default), whose memory setting kernels must not get
        env = dict(ENV, MALLOC_TRIM_THRESHOLD_="65536")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def add_worker(self, name: str) -> subprocess.Popen:
        proc = self._start([sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--name", name,
                            "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                            "--death-timeout", "60"])
        self.workers[name] = proc
        self.wait_for(lambda names: name in names, f"worker {name} to join")
        return proc

    def names(self) -> set[str]:
        return {str(w.get("name")) for w in self.client.scheduler_info(n_workers=-1)["workers"].values()}

    def wait_for(self, ok, what: str, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while not ok(self.names()):
            assert time.time() < deadline, f"waited {timeout} s for {what}"
            time.sleep(0.2)

    def kill_worker_with_pid(self, pid: int) -> str:
        name = next(n for n, p in self.workers.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        self.workers.pop(name).wait(timeout=30)
        self.wait_for(lambda names: name not in names, f"worker {name} to leave")
        return name

    def ensure_workers(self, n: int) -> None:
        k = 0
        while len(self.workers) < n:
            k += 1
            name = f"w{len(self.procs)}-{k}"
            self.add_worker(name)

    def stop(self) -> None:
        self.client.close()
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        c.ensure_workers(2)
        yield c
    finally:
        c.stop()


def _summary(folder: Path) -> dict:
    return {nb["name"]: nb for nb in json.loads((folder / "summary.json").read_text())["notebooks"]}


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _wait_for(paths, cli: "Cli | None" = None, timeout: float = 300) -> list[Path]:
    """The first files `paths` (callables returning lists) find; fails at once if `cli` ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [p for pattern in paths for p in pattern()]
        if found:
            return found
        if cli is not None and cli.proc.poll() is not None:
            raise AssertionError(f"the run ended first (exit {cli.proc.returncode}): {cli.proc.stderr.read()}")
        time.sleep(0.2)
    if cli is not None:
        cli.kill()  # a failed wait stops what the test started
    raise AssertionError(f"nothing appeared within {timeout} s")


# ---------------------------------------------------------------- declarations (no cluster)

def test_the_course_notebooks_declare_what_they_make_and_need_as_course_names_them():
    from cifarkit.course.notebooks import FINETUNED_CHECKPOINT, PROFILES
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    pruned = [f"resnet18_pruned{round(100 * a)}" for a in PROFILES["04_unpruning"]["quick"]["amounts"]]
    assert declared_artifacts(notebooks[0]) == ((), (FINETUNED_CHECKPOINT,))
    assert declared_artifacts(REPO / "notebooks" / "03_pruning.ipynb") == ((FINETUNED_CHECKPOINT,), tuple(pruned))
    assert declared_artifacts(REPO / "notebooks" / "04_unpruning.ipynb") == ((FINETUNED_CHECKPOINT, *pruned), ())
    deps = dependencies(notebooks)
    assert deps["03_pruning.ipynb"] == ["01_softmax_vs_logits.ipynb"]
    assert deps["04_unpruning.ipynb"] == ["01_softmax_vs_logits.ipynb", "03_pruning.ipynb"]
    assert all(not deps[n] for n in deps if n[:2] in ("01", "02", "05", "06", "07"))
    # --only 04 alone: nothing to wait for (it trains what is missing)
    assert dependencies([REPO / "notebooks" / "04_unpruning.ipynb"]) == {"04_unpruning.ipynb": []}


def test_a_cycle_or_a_malformed_declaration_is_one_line(tmp_path):
    a = notebook(tmp_path, "01_a", needs=["y"], makes=["x"])
    b = notebook(tmp_path, "02_b", needs=["x"], makes=["y"])
    with pytest.raises(ValueError, match=r"cycle: 01_a.ipynb -> 02_b.ipynb -> 01_a.ipynb|cycle: 02_b"):
        dependencies([a, b])
    bad = nbformat.read(str(a), as_version=4)
    bad.metadata["cifarkit"] = {"needs": "x"}
    nbformat.write(bad, str(a))
    with pytest.raises(ValueError, match=r"01_a.ipynb: metadata cifarkit.needs must be a list of artifact names"):
        declared_artifacts(a)


def test_engine_arguments_are_checked_before_anything_runs(tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a")
    for kwargs, message in [({"workers": 0}, "workers must be a whole number >= 1"),
                            ({"workers": 2, "scheduler": "tcp://x:1"}, "not both"),
                            ({"time_limit": 5}, "--time-limit needs --workers or --scheduler"),
                            ({"workers": 1, "time_limit": -1}, "time limit must be a number of seconds > 0")]:
        with pytest.raises(ValueError, match=message):
            engine.run_batch(nbs, [(tmp_path / "out", {})], progress=False, **kwargs)
    with pytest.raises(ValueError, match="every run needs its own"):
        engine.run_batch(nbs, [(tmp_path / "o", {}), (tmp_path / "o", {"seed": 1})], workers=1)
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    from cifarkit.course import cli
    monkeypatch.setattr(engine, "CONNECT_TIMEOUT_S", 2.0)
    notebook(tmp_path / "nbs", "01_a")
    assert cli.main(["run", "--notebooks", str(tmp_path / "nbs"), "--out", str(tmp_path / "run"),
                     "--scheduler", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cifarkit: error: cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'")
    assert not any((tmp_path / "run").iterdir())


def test_a_run_folder_some_worker_cannot_reach_is_one_line(tmp_path):
    class Client:  # a worker elsewhere: it cannot see the probe file
        def run(self, function, folders, token):
            return {"tcp://10.0.0.9:4000": f"{folders[0]}: No such file or directory (on node9)"}

        def scheduler_info(self, n_workers=-1):
            return {"workers": {"tcp://10.0.0.9:4000": {"host": "10.0.0.9", "nthreads": 1, "name": "w"}}}

    cluster = engine.Cluster(scheduler="tcp://10.0.0.1:8786")
    cluster.client = Client()
    (tmp_path / STATE_DIR).mkdir()
    with pytest.raises(OSError) as info:
        cluster.check_shared([tmp_path])
    message = str(info.value)
    assert message.startswith("the run folder is not reachable from the Dask worker tcp://10.0.0.9:4000: ")
    assert "(on node9)" in message and "docs/cluster.md" in message and "\n" not in message
    assert list((tmp_path / STATE_DIR).iterdir()) == [], "the probe file is removed"


# ---------------------------------------------------------------- a real scheduler and workers

@pytest.mark.timeout(900)
def test_two_notebooks_on_a_real_scheduler_and_two_workers(cluster, tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a", sleep=3)
    notebook(nbs, "02_b", sleep=3)
    code, out, err = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "run"), "--scheduler", cluster.address,
                         "-p", "seed=4", cwd=tmp_path).finish()
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"engine: Dask scheduler {cluster.address}, 2 workers on 1 host")
    nbs_run = _summary(tmp_path / "run")
    a, b = nbs_run["01_a.ipynb"], nbs_run["02_b.ipynb"]
    assert a["status"] == b["status"] == "ok" and a["metrics"]["seed"] == 4
    assert {a["worker"]["name"], b["worker"]["name"]} == cluster.names(), "one notebook on each worker"
    assert _t(a["worker"]["started_at"]) < _t(b["worker"]["finished_at"]) and \
        _t(b["worker"]["started_at"]) < _t(a["worker"]["finished_at"]), "the two ran at the same time"
    threads = str(max(1, usable_cores() // 2))  # two single-thread workers on this host
    assert a["metrics"]["env"] == {"OMP_NUM_THREADS": threads, "CIFARKIT_NOTEBOOK": "01_a",
                                   "CIFARKIT_RESULTS_DIR": str((tmp_path / "run").resolve()),
                                   "MALLOC_TRIM_THRESHOLD_": None}, "the nanny's memory setting stays with the worker"
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "| Engine | Dask scheduler" in md and "| Worker |" in md and f"({a['worker']['name']})" in md
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "01_a.ipynb", "01_a.metrics.json", "02_b.ipynb", "02_b.metrics.json", "artifacts", "summary.json",
        "summary.md"], "the engine's state folder is gone, no partial copy is left"


@pytest.mark.timeout(900)
def test_a_dependent_pair_runs_in_order_and_an_independent_one_beside_it(cluster, tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_model", sleep=3, makes=["model"])
    notebook(nbs, "02_free", sleep=3)
    notebook(nbs, "03_prune", sleep=0.5, needs=["model"])
    code, out, err = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "run"), "--scheduler", cluster.address,
                         cwd=tmp_path).finish()
    assert code == 0, err
    run = _summary(tmp_path / "run")
    first, free, then = run["01_model.ipynb"], run["02_free.ipynb"], run["03_prune.ipynb"]
    assert _t(then["worker"]["started_at"]) >= _t(first["worker"]["finished_at"]), "03 started after 01 finished"
    assert then["metrics"]["found"] == {"model": True}, "03 found 01's artifact"
    assert _t(free["worker"]["started_at"]) < _t(first["worker"]["finished_at"]), "02 did not wait for 01"


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_notebook_is_retried_once_then_reported_failed(cluster, tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_slow", sleep=6)
    state = tmp_path / "run" / STATE_DIR
    cli = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "run"), "--scheduler", cluster.address, cwd=tmp_path)
    first = json.loads(_wait_for([lambda: state.glob("*.attempt-1.json")], cli)[0].read_text())
    killed = cluster.kill_worker_with_pid(first["pid"])
    code, out, err = cli.finish()
    assert code == 0, err
    nb = _summary(tmp_path / "run")["01_slow.ipynb"]
    assert nb["status"] == "ok" and nb["worker"]["attempts"] == 2
    assert nb["worker"]["name"] != killed and killed in nb["worker"]["earlier"][0]
    assert nb["metrics"]["seed"] == 0, "the retry's metrics, complete"
    assert "attempt 2" in (tmp_path / "run" / "summary.md").read_text()

    # twice: the worker of each attempt dies; the third worker reports it failed, naming both
    cluster.ensure_workers(3)
    cli = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "again"), "--scheduler", cluster.address,
              cwd=tmp_path)
    state = tmp_path / "again" / STATE_DIR
    died = []
    for n in (1, 2):
        marker = json.loads(_wait_for([lambda: state.glob(f"*.attempt-{n}.json")], cli)[0].read_text())
        died.append(cluster.kill_worker_with_pid(marker["pid"]))
    code, out, err = cli.finish()
    assert code == 1
    nb = _summary(tmp_path / "again")["01_slow.ipynb"]
    assert nb["status"] == "failed"
    assert nb["error"].startswith("WorkerDied: the worker running it died during each of its 2 attempts (")
    assert all(name in nb["error"] for name in died)
    assert "01_slow.ipynb: WorkerDied" in err
    assert not (tmp_path / "again" / "01_slow.ipynb").exists() or \
        nbformat.read(str(tmp_path / "again" / "01_slow.ipynb"), as_version=4), "never a cut copy"
    cluster.ensure_workers(2)


@pytest.mark.timeout(900)
def test_ctrl_c_on_a_real_scheduler_stops_the_notebook_on_its_worker_and_keeps_the_workers(cluster, tmp_path):
    """The workers are not in the run's process group here (as on a cluster): the running notebook is
    stopped through the run folder, its executed copy kept whole, and the workers stay."""
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_done", sleep=0.2)
    notebook(nbs, "02_running", sleep=600)
    run = tmp_path / "run"
    workers = cluster.names()
    cli = Cli("--notebooks", str(nbs), "--out", str(run), "--scheduler", cluster.address, cwd=tmp_path)
    _wait_for([lambda: [run / "01_done.ipynb"] if (run / "01_done.ipynb").exists() else []], cli)
    _wait_for([lambda: (run / "artifacts").glob("02_running.running")], cli)  # its kernel is in the cell
    os.killpg(cli.proc.pid, signal.SIGINT)
    code, out, err = cli.finish(timeout=120)  # finish() also checks that its notebook process and kernel ended
    assert code == 130 and err.strip().splitlines()[-1] == "cifarkit: interrupted"
    summary = _summary(run)
    assert summary["01_done.ipynb"]["status"] == "ok"
    stopped = summary["02_running.ipynb"]
    assert stopped["error"] == "KeyboardInterrupt: run interrupted by the user" and stopped["worker"]["attempts"] == 1
    executed = nbformat.read(str(run / "02_running.ipynb"), as_version=4)
    assert executed.cells[-1].source.startswith("import json"), "the stopped notebook's copy, whole"
    assert cluster.names() == workers, "no worker died"


# ---------------------------------------------------------------- LocalCluster: limits, Ctrl-C, sweeps

@pytest.mark.timeout(900)
def test_the_time_limit_stops_a_notebook_and_the_others_finish(tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_quick", sleep=0.2)
    notebook(nbs, "02_endless", sleep=600)
    t0 = time.time()
    code, out, err = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "run"), "--workers", "2",
                         "--time-limit", "15", cwd=tmp_path).finish()  # these kernels import no torch: they start in seconds
    assert code == 1 and time.time() - t0 < 500
    run = _summary(tmp_path / "run")
    assert run["01_quick.ipynb"]["status"] == "ok"
    endless = run["02_endless.ipynb"]
    assert endless["error"] == ("TimeoutError: still running after its time limit of 15 s, so it was stopped "
                                "(cifarkit run --time-limit)")
    assert 15 <= endless["duration_s"] < 15 + engine.STOP_GRACE_S + 30
    executed = nbformat.read(str(tmp_path / "run" / "02_endless.ipynb"), as_version=4)  # whole, not cut
    assert executed.cells[-1].source.startswith("import json") and "injected-parameters" in executed.cells[1].metadata.tags
    assert not (tmp_path / "run" / STATE_DIR).exists()


@pytest.mark.timeout(900)
def test_ctrl_c_cancels_the_queued_and_keeps_the_finished(tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_done", sleep=0.2)
    notebook(nbs, "02_running", sleep=600, makes=["x"])
    notebook(nbs, "03_queued", sleep=0.2, needs=["x"])
    run = tmp_path / "run"
    cli = Cli("--notebooks", str(nbs), "--out", str(run), "--workers", "2", cwd=tmp_path)
    _wait_for([lambda: [run / "01_done.ipynb"] if (run / "01_done.ipynb").exists() else []], cli)
    _wait_for([lambda: (run / "artifacts").glob("02_running.running")], cli)  # its kernel is in the cell
    os.killpg(cli.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    code, out, err = cli.finish(timeout=120)
    assert code == 130 and err.strip().splitlines()[-1] == "cifarkit: interrupted"
    summary = _summary(run)
    assert summary["01_done.ipynb"]["status"] == "ok"
    assert summary["02_running.ipynb"]["status"] == "failed"
    assert summary["02_running.ipynb"]["error"] == "KeyboardInterrupt: run interrupted by the user"
    assert "03_queued.ipynb" not in summary and not (run / "03_queued.ipynb").exists()
    assert json.loads((run / "01_done.metrics.json").read_text())["seed"] == 0


@pytest.mark.timeout(900)
def test_a_sweep_on_a_local_cluster_tables_notebook_by_combination(tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs, "01_a", sleep=0.2, makes=["m"])
    notebook(nbs, "02_b", sleep=0.2, needs=["m"])
    code, out, err = Cli("--notebooks", str(nbs), "--out", str(tmp_path / "sweep"), "--workers", "2",
                         "-p", "seed=0,1", "-p", "data_source=synthetic,cifar10-unverified", cwd=tmp_path).finish()
    assert code == 0, err
    top = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert top["sweep"] == {"seed": [0, 1], "data_source": ["synthetic", "cifar10-unverified"]}
    assert [r["folder"] for r in top["runs"]] == [
        "seed=0_data_source=synthetic", "seed=0_data_source=cifar10-unverified",
        "seed=1_data_source=synthetic", "seed=1_data_source=cifar10-unverified"]
    for r in top["runs"]:
        run = _summary(tmp_path / "sweep" / r["folder"])
        assert run["01_a.ipynb"]["metrics"]["seed"] == r["parameters"]["seed"]
        assert run["01_a.ipynb"]["metrics"]["data_source"] == r["parameters"]["data_source"]
        assert run["02_b.ipynb"]["metrics"]["found"] == {"m": True}, "the artifact of its own combination"
        assert run["01_a.ipynb"]["metrics"]["env"]["MALLOC_TRIM_THRESHOLD_"] is None
        assert _t(run["02_b.ipynb"]["worker"]["started_at"]) >= _t(run["01_a.ipynb"]["worker"]["finished_at"])
    md = (tmp_path / "sweep" / "summary.md").read_text()
    assert "| Notebook | seed=0, data_source=synthetic | seed=0, data_source=cifar10-unverified |" in md
    assert md.count("| 01_a.ipynb | ok ") == 1 and "[seed=1, data_source=synthetic](seed=1_data_source=synthetic/summary.md)" in md


@pytest.mark.timeout(900)
def test_a_worker_that_cannot_see_the_run_folder_stops_the_run_before_any_notebook(cluster, tmp_path):
    """A real worker whose file system differs: it runs in a mount namespace of its own where an
    empty tmpfs hides the run folder's parent (root on Linux; skipped where unshare is refused)."""
    hidden = tmp_path / "shared"
    hidden.mkdir()
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs tmpfs {hidden} && test ! -e {hidden}/x"], capture_output=True,
                           timeout=30) if os.geteuid() == 0 and Path("/usr/bin/unshare").exists() else None
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot give a worker a mount namespace of its own here")
    worker = cluster._start(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount -t tmpfs tmpfs {hidden} && exec {sys.executable} -m distributed.cli.dask_worker "
                             f"{cluster.address} --name elsewhere --nthreads 1 --no-nanny --no-dashboard "
                             "--host 127.0.0.1"])
    try:
        cluster.wait_for(lambda names: "elsewhere" in names, "the worker in its own mount namespace")
        notebook(tmp_path / "nbs", "01_a", sleep=0.1)
        code, out, err = Cli("--notebooks", str(tmp_path / "nbs"), "--out", str(hidden / "run"),
                             "--scheduler", cluster.address, cwd=tmp_path).finish()
        assert code == 1
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cifarkit: error: the run folder is not reachable from the Dask "
                                                       "worker tcp://127.0.0.1:")
        assert "No such file or directory" in lines[0] and "docs/cluster.md" in lines[0]
        assert list((hidden / "run").iterdir()) == [], "no notebook ran, nothing was left"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        cluster.wait_for(lambda names: "elsewhere" not in names, "the worker to leave")


@pytest.mark.timeout(300)
def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    """Dask's nanny writes its workers' variables (OMP_NUM_THREADS=1, MALLOC_TRIM_THRESHOLD_) into
    the os.environ of the process that starts a LocalCluster; every kernel started from it later
    (nbval's, the runner's) would inherit them. The engine's cluster sets none."""
    before = dict(os.environ)
    with engine.Cluster(workers=1) as cluster:
        assert len(cluster.worker_hosts()) == 1
    assert dict(os.environ) == before

