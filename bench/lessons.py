"""Do the lessons hold? Run every notebook's quick profile for several seeds on both data sources.

    python bench/lessons.py                         # 3 seeds x (synthetic, CIFAR-10 copy), all notebooks
    python bench/lessons.py --only 01,03 --seeds 0 1 --sources synthetic
    python bench/lessons.py --profile full --sources cifar10-unverified --seeds 0   # the full profiles

Each (data source, seed) pair is one run of `cifarkit run` (the same runner as `make run`, so
notebooks 03 and 04 find notebook 01's model in the same run directory) into
``bench/runs/lessons/<profile>-<source>-seed<seed>/``; a pair whose run directory already holds
a finished ``summary.json`` is read, not run again (delete the folder to re-measure), so an
interrupted sweep resumes where it stopped. Every notebook records its claims with their
verdicts (`cifarkit.claims`); this script tables claim x run -> verdict into
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

from cifarkit.claims import FAILS, HOLDS, INCONCLUSIVE, NOT_TESTABLE  # noqa: E402

SOURCES = ("synthetic", "cifar10-unverified")
MARKS = {HOLDS: "holds", FAILS: "**FAILS**", INCONCLUSIVE: "*inconclusive*", NOT_TESTABLE: "n/t"}


def run_pair(profile: str, source: str, seed: int, only, out_root: Path) -> Path:
    """Run (or reuse) the notebooks for one (source, seed) pair; return the run directory."""
    from cifarkit.runner import run_notebooks

    run_dir = out_root / f"{profile}-{source}-seed{seed}"
    summary = run_dir / "summary.json"
    if summary.is_file():
        print(f"reusing {run_dir}", flush=True)
        return run_dir
    if run_dir.exists():  # an interrupted run: start the pair again
        import shutil
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    run_notebooks(REPO / "notebooks", profile=profile, only=only, out=run_dir,
                  parameters={"seed": seed, "data_source": source})
    print(f"{profile} {source} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    return run_dir


def collect(run_dir: Path) -> dict:
    """{notebook: {"status", "seconds", "claims": [...]}} from a run directory's summary.json."""
    summary = json.loads((run_dir / "summary.json").read_text())
    out = {}
    for nb in summary["notebooks"]:
        metrics = nb.get("metrics") or {}
        out[nb["name"]] = {"status": nb["status"], "seconds": nb["duration_s"], "error": nb.get("error"),
                           "claims": metrics.get("claims") or []}
    return out


def table(results: dict) -> list[str]:
    """Markdown: one row per claim, one column per run, the verdict in each cell."""
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
                    cells.append("FAILED" if entry.get("status") not in (None, "ok") else "-")
            lines.append(f"| {nb} | {statement} | " + " | ".join(cells) + " |")
        failed = [run for run in runs if results[run].get(nb, {}).get("status") not in (None, "ok")]
        if failed:
            lines.append(f"| {nb} | (notebook failed in: {', '.join(failed)}) |" + " |" * len(runs))
    return lines


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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--only", help="notebook prefixes, e.g. 01,03")
    p.add_argument("--out", default=str(HERE / "runs" / "lessons"))
    args = p.parse_args(argv)
    from cifarkit import data as ckdata

    only = args.only.split(",") if args.only else None
    results, skipped = {}, []
    for source in args.sources:
        if source != "synthetic":
            try:
                ckdata.load_data(source, 10, 10, verbose=False)
            except Exception as e:  # noqa: BLE001 - any reason the copy cannot be loaded skips it
                skipped.append(f"{source}: {e}")
                continue
        for seed in args.seeds:
            run_dir = run_pair(args.profile, source, seed, only, Path(args.out))
            label = f"{'synthetic' if source == 'synthetic' else 'CIFAR-10 copy'} seed {seed}"
            results[label] = collect(run_dir)
    path = HERE / f"lessons_{args.profile}.json"
    results, commands = merged(path, results, shlex.join(["python", "bench/lessons.py", *(argv or sys.argv[1:])]))
    summary = {"profile": args.profile, "command": "; ".join(commands),
               "measured": time.strftime("%Y-%m-%d %H:%M"), "machine": _machine(), "skipped": skipped,
               "runs": results, **totals(results)}
    path.write_text(json.dumps(summary, indent=1))
    print("\n".join(render(summary)))
    return summary


def _machine() -> str:
    """The CPU model and core count (absolute times mean nothing without them)."""
    import platform
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
