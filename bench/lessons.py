"""Do the lessons hold? Run every notebook's quick profile for several seeds on both data sources.

    python bench/lessons.py                         # the sized seeds x (synthetic, CIFAR-10 copy), all notebooks
    python bench/lessons.py --only 01,03 --seeds 0 1 --sources synthetic
    python bench/lessons.py --profile full --sources cifar10-unverified --seeds 0   # the full profiles
    python bench/lessons.py --workers 2             # two notebooks at a time, 1 thread each
    python bench/lessons.py --scheduler tcp://10.0.0.5:8786   # on a Dask cluster (docs/cluster.md)

Each (data source, seed) pair is one run folder of the sweep, all of them executed by the kit's
engine (`cifarkit.course.engine.run_batch`: the runner of `cifarkit run`, on Dask; notebooks 03 and 04
find notebook 01's model in their own run folder and start after it) into
``bench/runs/lessons/<profile>-<source>-seed<seed>/``; the default, ``--workers 1``, runs one
notebook at a time with every core, as a sweep always did. A pair whose run directory already
holds the ``summary.json`` of a run that Ctrl-C did not cut short is read, not run again (delete the
folder to re-measure), so an interrupted sweep resumes where it stopped. Every notebook records its claims with their
verdicts (`cifarkit.course.claims`); this script tables claim x run -> verdict into
``bench/lessons_<profile>.json`` and prints the Markdown table that `bench/run_all.py` puts into
bench/results.md (section "lessons"). A benchmark, not a test: nothing here is timed against a
target.

The CIFAR-10 source needs a prepared copy (``python -m cifarkit data prepare --from DIR
--no-verify``; ``$CIFARKIT_DATA`` points at it); a source that is not on this machine is skipped
with a note.
"""
from __future__ import annotations

import argparse
import json
import shlex
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from cifarkit.course.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE  # noqa: E402
from cifarkit.course.sweep import claims_table as table, collect  # noqa: E402,F401  (the claim x run table)
from cifarkit.course.notebooks import SIZED_SEEDS  # noqa: E402  (the seeds the course asserts its verdicts on)

SOURCES = ("synthetic", "cifar10-unverified")


def run_label(source: str, seed: int) -> str:
    """The column of a (source, seed) pair in the tables: ``synthetic seed 0``, ``CIFAR-10 copy seed 1``."""
    return f"{'synthetic' if source == 'synthetic' else 'CIFAR-10 copy'} seed {seed}"


def pairs(profile: str, sources, seeds, out_root: Path) -> list[tuple[Path, dict]]:
    """The sweep's runs, ``(run folder, {"seed", "data_source"})`` for each (source, seed) pair."""
    return [(out_root / f"{profile}-{source}-seed{seed}", {"seed": seed, "data_source": source})
            for source in sources for seed in seeds]


def finished(run_dir: Path) -> bool:
    """Whether a pair's run folder holds the report of a run that was not interrupted."""
    try:
        notebooks = json.loads((run_dir / "summary.json").read_text())["notebooks"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return not any(str(nb.get("error") or "").startswith("KeyboardInterrupt") for nb in notebooks)


def run_pairs(profile: str, runs: list, only, workers=None, scheduler=None, notebooks_dir=REPO / "notebooks") -> None:
    """Run the pairs whose folder holds no finished ``summary.json`` through the engine (an
    interrupted pair's folder is started again), all in one batch; say each pair's seconds."""
    from cifarkit.course.engine import run_batch

    todo = []
    for run_dir, params in runs:
        if finished(run_dir):
            print(f"reusing {run_dir}", flush=True)
            continue
        if run_dir.exists():  # an interrupted run: start the pair again
            import shutil
            shutil.rmtree(run_dir)
        todo.append((run_dir, params))
    if not todo:
        return
    done = run_batch(notebooks_dir, todo, profile=profile, only=only, workers=workers, scheduler=scheduler,
                     labels=[run_label(p["data_source"], p["seed"]) for _, p in todo])
    for (_, params), result in zip(todo, done):
        print(f"{profile} {params['data_source']} seed {params['seed']}: {result.duration_s:.0f} s", flush=True)


def totals(results: dict) -> dict:
    """Verdict counts over every claim of every run, and the seconds each run took."""
    counts = {v: 0 for v in (HOLDS, FAILS, INCONCLUSIVE, NOT_TESTABLE)}
    seconds = {}
    for run, nbs in results.items():
        seconds[run] = round(sum(e["seconds"] for e in nbs.values()), 1)
        for entry in nbs.values():
            for c in entry["claims"]:
                counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    return {"verdicts": counts, "seconds": seconds}


def merged(path: Path, results: dict, command: str) -> tuple[dict, list[str]]:
    """`results` merged into the runs already recorded in `path` (a sweep of some notebooks
    replaces those notebooks' entries and keeps the others), and the commands behind them."""
    if not path.is_file():
        return results, [command]
    old = json.loads(path.read_text())
    runs = {label: dict(nbs) for label, nbs in old.get("runs", {}).items()}
    for label, nbs in results.items():
        runs.setdefault(label, {}).update(nbs)
    commands = [c for c in old.get("command", "").split("; ") if c and c != command] + [command]
    return runs, commands


def render(summary: dict) -> list[str]:
    """Markdown for bench/results.md from a saved summary (``bench/lessons_<profile>.json``)."""
    counts = summary["verdicts"]
    seconds = summary["seconds"]
    lines = [f"Profile `{summary['profile']}`, measured {summary['measured']} on {summary.get('machine', 'this machine')}. "
             f"Verdicts over all claims of all runs: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + ".", ""]
    lines += table(summary["runs"]) + [""]
    lines += ["Seconds per run (the sum of its notebooks' times, the runner's own timing; notebooks of one run "
              "that were swept at different times, on a machine busy or not, add up here, so only a run swept "
              "whole in one invocation times the quick suite): "
              + ", ".join(f"{run} {s:.0f}" for run, s in seconds.items()) + "."]
    for note in summary.get("skipped", []):
        lines.append(f"Skipped: {note}.")
    lines += ["", f"Reproduce: `{summary['command']}`", ""]
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", choices=("quick", "full"))
    p.add_argument("--seeds", type=int, nargs="+", default=list(SIZED_SEEDS))
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--only", help="notebook prefixes, e.g. 01,03")
    p.add_argument("--out", default=str(HERE / "runs" / "lessons"))
    engine = p.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=int, default=None, help="Dask worker processes on this machine (default 1)")
    engine.add_argument("--scheduler", help="the address of a running Dask scheduler (docs/cluster.md)")
    args = p.parse_args(argv)
    from cifarkit import data as ckdata

    only = args.only.split(",") if args.only else None
    sources, skipped = [], []
    for source in args.sources:
        if source != "synthetic":
            try:
                ckdata.load_data(source, 10, 10, verbose=False)
            except Exception as e:  # noqa: BLE001 - any reason the copy cannot be loaded skips it
                skipped.append(f"{source}: {e}")
                continue
        sources.append(source)
    runs = pairs(args.profile, sources, args.seeds, Path(args.out))
    workers = args.workers if args.workers or args.scheduler else 1
    run_pairs(args.profile, runs, only, workers=workers, scheduler=args.scheduler)
    results = {run_label(params["data_source"], params["seed"]): collect(run_dir) for run_dir, params in runs}
    path = HERE / f"lessons_{args.profile}.json"
    results, commands = merged(path, results, shlex.join(["python", "bench/lessons.py", *(argv or sys.argv[1:])]))
    summary = {"profile": args.profile, "command": "; ".join(commands),
               "measured": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(), "skipped": skipped,
               "runs": results, **totals(results)}
    path.write_text(json.dumps(summary, indent=1))
    print("\n".join(render(summary)))
    return summary


def _machine() -> str:
    """The CPU model, core count and CPU mode (absolute times mean nothing without them; AVX2 mode,
    ``CIFARKIT_CPU=avx2``, also decides the precision the notebooks trained in)."""
    import platform
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from cifarkit import settings
    return f"{model}, {os.cpu_count()} cores" + (", AVX2 mode (fp32)" if settings.cpu_mode() == "avx2" else "")


if __name__ == "__main__":
    main()
