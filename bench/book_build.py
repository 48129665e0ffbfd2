"""Time `python -m cifarkit book` on 7-notebook runs (bench/results.md, section "book").

    python bench/book_build.py [--run RUN_DIR ...] [--repeats 3]

Each build is the command a user types, in a fresh process, into a new folder. Without --run two
7-notebook runs are timed:

* "fixture copies": tests/fixtures/book's two notebooks (math, a figure, claims) copied to seven
  (01..07) and executed by `cifarkit run` here (seconds);
* "course sources": the course's seven notebooks as they are in notebooks/, without outputs, in a
  run directory whose summary.json this script writes (nothing is executed): the prose and code of
  the real course, but none of its figures.

An executed run of the course (`make run`) is the real case: pass it with --run runs/<run>.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FIXTURES = REPO / "tests" / "fixtures" / "book"
COPIES = ["01_math", "02_second", "03_math", "04_second", "05_math", "06_second", "07_math"]


def fixture_copy(stem: str) -> str:
    """The text of the book fixture that `stem` copies, recording its metrics as `stem`."""
    source = FIXTURES / f"{'01_math' if stem.endswith('math') else '02_second'}.ipynb"
    return source.read_text().replace(f'\\"{source.stem}\\"', f'\\"{stem}\\"')


def fixture_copies_run(work: Path) -> Path:
    """The book fixtures copied to seven notebooks (each records its metrics under its own name),
    executed by `cifarkit run`."""
    nbs = work / "fixture-notebooks"
    nbs.mkdir()
    for stem in COPIES:
        (nbs / f"{stem}.ipynb").write_text(fixture_copy(stem))
    run = work / "fixture-copies"
    subprocess.run([sys.executable, "-m", "cifarkit", "run", "--notebooks", str(nbs), "--out", str(run)],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return run


def course_sources_run(work: Path) -> Path:
    """The course notebooks, unexecuted, in a run directory with a summary.json of its own."""
    run = work / "course-sources"
    run.mkdir()
    entries = []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copyfile(path, run / path.name)
        entries.append({"name": path.name, "status": "ok", "duration_s": 0.0, "executed": path.name,
                        "metrics": {"data_source": "synthetic"}, "claims": [], "figures": []})
    summary = {"run_name": run.name, "profile": "quick", "device": ["(not executed)"], "precision": ["-"],
               "data_source": ["synthetic"], "synthetic_data": True, "started_at": "(not executed)",
               "duration_s": 0.0, "notebooks": entries}
    (run / "summary.json").write_text(json.dumps(summary, indent=1))
    return run


def describe(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    cells = figures = 0
    for nb in summary["notebooks"]:
        data = json.loads((run / nb["executed"]).read_text())
        cells += len(data["cells"])
        figures += sum("image/png" in (o.get("data") or {}) for c in data["cells"] for o in c.get("outputs", []))
    return {"notebooks": len(summary["notebooks"]), "cells": cells, "figures": figures}


def time_builds(run: Path, work: Path, repeats: int) -> list[float]:
    times = []
    for k in range(repeats):
        out = work / f"site-{run.name}-{k}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cifarkit", "book", str(run), "--out", str(out)],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def site_mb(site: Path) -> float:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) / 2**20


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", default=[], help="an executed run directory (repeatable)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cifarkit-book-bench-") as tmp:
        work = Path(tmp)
        runs = [(Path(r).name, Path(r)) for r in args.run] or [
            ("fixture copies, executed", fixture_copies_run(work)),
            ("course sources, no outputs", course_sources_run(work))]
        for label, run in runs:
            times = time_builds(run, work, args.repeats)
            rows.append({"run": label, **describe(run), "median_s": statistics.median(times),
                         "min_s": min(times), "max_s": max(times),
                         "site_mb": site_mb(work / f"site-{run.name}-0")})
    command = "python bench/book_build.py" + "".join(f" --run {r}" for r in args.run) \
        + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
    return {"rows": rows, "repeats": args.repeats, "load": os.getloadavg()[0], "command": command}


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
