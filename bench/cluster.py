"""Batches on Dask: one machine two ways, side by side, and k machines projected on paper.

    python bench/cluster.py                      # the quick suite: 1 worker x all cores, then 1 thread per worker
    python bench/cluster.py --lessons            # and the lessons sweep (3 seeds x 2 sources) both ways
    python bench/cluster.py --project-only       # re-table the projection from what is recorded

On a machine with C usable cores the two ways are ``--workers 1`` (one notebook at a time with C
threads) and ``--workers C`` (C notebooks at a time with 1 thread each), both through the kit's
engine (`cifarkit.course.engine.run_batch`), in that order, each into a fresh folder under ``--out``. The
wall-clock seconds of each way and every notebook's own seconds are recorded in
``bench/cluster_results.json`` (the lessons sweep's only with ``--lessons``). `python
bench/run_all.py` tables them into bench/results.md (section "cluster") together with the
projection (`project`): what k such machines would take for the lessons sweep, from the per-notebook
seconds of ``bench/lessons_quick.json`` and the notebooks' dependencies, as a greedy schedule (longest
remaining chain first) next to the two lower bounds (work / slots, longest chain). A benchmark, not a
test: nothing here is timed against a target.
"""
from __future__ import annotations

import argparse
import heapq
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import lessons  # noqa: E402
from cifarkit.course.engine import dependencies, run_batch, usable_cores  # noqa: E402

RECORD = HERE / "cluster_results.json"
#: cluster sizes the projection tables
MACHINES = (1, 2, 3, 6, 12)


def ways(cores: int) -> dict[str, int]:
    """The two ways of one machine: ``{label: workers}``, all cores for one notebook, or one each."""
    return {f"1 worker x {cores} threads": 1, f"{cores} workers x 1 thread": cores}


def timed(notebooks_dir: Path, runs: list, profile: str, only, workers: int) -> dict:
    """Run `runs` (``(folder, parameters)``) on a LocalCluster of `workers`; wall seconds, and each
    run's notebooks' seconds and statuses."""
    for folder, _ in runs:
        if folder.exists():
            shutil.rmtree(folder)
    t0 = time.perf_counter()
    done = run_batch(notebooks_dir, runs, profile=profile, only=only, workers=workers,
                     labels=[folder.name for folder, _ in runs])
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "workers": workers,
            "runs": {r.run_dir.name: {nb.name: round(nb.duration_s, 1) for nb in r.notebooks} for r in done},
            "failed": [f"{r.run_dir.name}: {name}" for r in done for name in r.failed]}


# --------------------------------------------------------------------------- the projection

def project(seconds: Mapping[str, Mapping[str, float]], deps: Mapping[str, Sequence[str]], slots: int) -> float:
    """Seconds to run every notebook of every run (``{run: {notebook: seconds}}``) on `slots` equal
    task slots (k machines x notebooks at a time on each), a notebook only after the notebooks of its
    run that it depends on (``{notebook: [producers]}``): a greedy list schedule, the ready notebook
    with the longest remaining chain first, as the engine's priorities ask Dask. No start-up cost,
    no data movement: on paper."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    tasks = {(run, nb): float(s) for run, nbs in seconds.items() for nb, s in nbs.items()}
    preds = {t: [(t[0], p) for p in deps.get(t[1], []) if (t[0], p) in tasks] for t in tasks}
    succs: dict = {t: [] for t in tasks}
    for t, ps in preds.items():
        for p in ps:
            succs[p].append(t)
    chain: dict = {}

    def remaining(t) -> float:
        if t not in chain:
            chain[t] = tasks[t] + max((remaining(s) for s in succs[t]), default=0.0)
        return chain[t]

    waiting = {t: len(ps) for t, ps in preds.items()}
    ready = [(-remaining(t), t) for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    running: list = []
    now, free = 0.0, slots
    while ready or running:
        while ready and free:
            _, t = heapq.heappop(ready)
            heapq.heappush(running, (now + tasks[t], t))
            free -= 1
        now, t = heapq.heappop(running)
        free += 1
        for s in succs[t]:
            waiting[s] -= 1
            if waiting[s] == 0:
                heapq.heappush(ready, (-remaining(s), s))
    return now


def lower_bound(seconds: Mapping[str, Mapping[str, float]], deps: Mapping[str, Sequence[str]], slots: int) -> float:
    """No schedule beats the larger of the work per slot and the longest dependency chain."""
    work = sum(s for nbs in seconds.values() for s in nbs.values())
    longest = max(project({run: nbs}, deps, len(nbs)) for run, nbs in seconds.items())
    return max(work / slots, longest)


def scaled(seconds: Mapping[str, Mapping[str, float]], factor: Mapping[str, float]) -> dict:
    """`seconds` with each notebook's times multiplied by its `factor` (1 where none is known)."""
    return {run: {nb: s * factor.get(nb, 1.0) for nb, s in nbs.items()} for run, nbs in seconds.items()}


def one_thread_factors(record: Mapping) -> dict[str, float]:
    """Per notebook: its seconds with 1 thread (the second way) over its seconds with all cores
    (the first way), from the suite measured both ways; empty when it was not."""
    suite = record.get("suite") or {}
    if len(suite) != 2:
        return {}
    (_, fast), (_, slow) = suite.items()
    a, b = next(iter(fast["runs"].values())), next(iter(slow["runs"].values()))
    return {nb: b[nb] / a[nb] for nb in a if nb in b and a[nb] > 0}


def projection_lines(lessons_record: Mapping, deps: Mapping[str, Sequence[str]], cores: int,
                     factors: Mapping[str, float]) -> list[str]:
    """The projection table: the lessons sweep on k machines of `cores` cores, one notebook at a time
    per machine (the recorded all-core seconds) and, when `factors` are known, `cores` at a time with
    1 thread each."""
    seconds = {run: {nb: e["seconds"] for nb, e in nbs.items()} for run, nbs in lessons_record["runs"].items()}
    n = sum(len(nbs) for nbs in seconds.values())
    split = scaled(seconds, factors) if factors else None
    head = f"| machines | 1 notebook at a time, {cores} threads (hours) | lower bound |"
    rule = "| ---: | ---: | ---: |"
    if split:
        head += f" {cores} at a time, 1 thread each (hours) | lower bound |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for k in MACHINES:
        row = f"| {k} | {project(seconds, deps, k) / 3600:.2f} | {lower_bound(seconds, deps, k) / 3600:.2f} |"
        if split:
            row += (f" {project(split, deps, k * cores) / 3600:.2f} | "
                    f"{lower_bound(split, deps, k * cores) / 3600:.2f} |")
        lines.append(row)
    chain = max(project({r: nbs}, deps, len(nbs)) for r, nbs in seconds.items())
    work = sum(s for nbs in seconds.values() for s in nbs.values())
    lines += ["", f"From the per-notebook seconds of bench/lessons_quick.json ({n} executions in {len(seconds)} runs, "
              f"{work / 3600:.2f} hours of notebooks, as recorded on {lessons_record.get('machine', '?')}); however many "
              f"machines, one run takes at least {chain / 60:.1f} minutes, its dependency chain (01 -> 03 -> 04) "
              "with the other notebooks beside it. A greedy schedule, longest remaining chain first, without "
              "start-up or copying costs: on paper."
              + (" The 1-thread column scales each notebook by its 1-thread / all-core ratio in the suite "
                 "measured above." if split else " The 1-thread column needs the suite measured both ways.")]
    return lines


def section(record: Mapping | None, lessons_record: Mapping | None, deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Markdown for bench/results.md from the records (nothing is measured here)."""
    lines = ["## 11. Batches on Dask: one machine two ways, k machines on paper (bench/cluster.py)", ""]
    cores = (record or {}).get("cores", 2)
    if not record or not record.get("suite"):
        lines += [f"_Not measured yet. Reproduce: `python bench/cluster.py --lessons` on an otherwise idle "
                  f"{cores}-core machine (both ways of the quick suite, then of the lessons sweep)._", ""]
    else:
        lines += [f"Measured {record['measured']} on {record['machine']}: the same batch through the kit's engine "
                  "(`cifarkit run --workers N`), first one way, then the other.", "",
                  "| batch | " + " | ".join(record["suite"]) + " |", "| --- |" + " ---: |" * len(record["suite"])]
        for what in ("suite", "lessons"):
            if record.get(what):
                label = "quick suite (minutes)" if what == "suite" else "lessons sweep (minutes)"
                cells = [f"{w['wall_s'] / 60:.1f}" + (" (failed: " + ", ".join(w["failed"]) + ")" if w["failed"] else "")
                         for w in record[what].values()]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
        fast, slow = (next(iter(w["runs"].values())) for w in record["suite"].values())
        lines += ["", "| notebook | " + " | ".join(f"{w} (s)" for w in record["suite"]) + " |",
                  "| --- |" + " ---: |" * len(record["suite"])]
        lines += [f"| {nb} | {fast[nb]:.0f} | {slow.get(nb, float('nan')):.0f} |" for nb in fast]
        lines += ["", f"Reproduce: `{record['command']}`", ""]
    if lessons_record and lessons_record.get("runs"):
        lines += ["### The lessons sweep on k such machines, projected", "",
                  *projection_lines(lessons_record, deps, cores, one_thread_factors(record or {})), ""]
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", choices=("quick", "full"))
    p.add_argument("--only", help="notebook prefixes, e.g. 01,03")
    p.add_argument("--lessons", action="store_true", help="time the lessons sweep both ways too (hours)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the lessons sweep's seeds")
    p.add_argument("--sources", nargs="+", default=list(lessons.SOURCES), choices=lessons.SOURCES)
    p.add_argument("--notebooks", default=str(REPO / "notebooks"), help="folder of notebooks (tests use tiny ones)")
    p.add_argument("--out", default=str(HERE / "runs" / "cluster"))
    p.add_argument("--record", default=str(RECORD))
    p.add_argument("--project-only", action="store_true", help="measure nothing; print the section")
    args = p.parse_args(argv)
    record_path, notebooks = Path(args.record), Path(args.notebooks)
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    if not args.project_only:
        only = args.only.split(",") if args.only else None
        cores, out = usable_cores(), Path(args.out)
        record = {"measured": time.strftime("%Y-%m-%d %H:%M"), "machine": lessons._machine(), "cores": cores,
                  "command": shlex.join(["python", "bench/cluster.py", *(argv if argv is not None else sys.argv[1:])]),
                  "suite": {}, "lessons": {}}
        for label, workers in ways(cores).items():
            tag = f"{workers}w"
            record["suite"][label] = timed(notebooks, [(out / f"suite-{tag}", {})], args.profile, only, workers)
            print(f"quick suite, {label}: {record['suite'][label]['wall_s']:.0f} s", flush=True)
        if args.lessons:
            for label, workers in ways(cores).items():
                runs = lessons.pairs(args.profile, args.sources, args.seeds, out / f"lessons-{workers}w")
                record["lessons"][label] = timed(notebooks, runs, args.profile, only, workers)
                print(f"lessons sweep, {label}: {record['lessons'][label]['wall_s']:.0f} s", flush=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")
    lessons_path = HERE / f"lessons_{args.profile}.json"
    lessons_record = json.loads(lessons_path.read_text()) if lessons_path.is_file() else None
    print("\n".join(section(record, lessons_record, dependencies(sorted(notebooks.glob("*.ipynb"))))))
    return record


if __name__ == "__main__":
    main()
