"""`make bench`: run the benchmarks and write bench/results.md (never part of `make test`).

Every figure is a ratio measured side by side in one run on this machine, with the command that
reproduces it. Results of long real-data trainings (bench/accuracy.py, run by hand in the
background) are read from bench/accuracy_results.json and tabled, not re-measured.

    python bench/run_all.py [--skip-suite] [--only loop,caching,precision,suite,memory,lessons,book]

Sections "speedrun" and "cluster" are always re-tabled from their records (bench/speedrun_ablation.py
--record, bench/cluster.py), whose measurements take hours and run by hand.

With `--only`, the sections not re-measured are kept from the current results.md (each section
says when it was measured); `--only accuracy` measures nothing and just rewrites the table of
bench/accuracy.py's runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import accuracy  # noqa: E402
import book_build  # noqa: E402
import cpu_modes  # noqa: E402
import cluster  # noqa: E402
import feature_caching  # noqa: E402
import lessons  # noqa: E402
import kernel_env  # noqa: E402
import loop_throughput  # noqa: E402
import memory  # noqa: E402
import precision  # noqa: E402
from cifarkit.recipes import get_recipe  # noqa: E402

SEED_FIGURES = {"gated-seed": 0.835, "gated-improved": 0.835, "speedrun": None}


def machine() -> str:
    return f"{accuracy.hardware()}, torch {torch.__version__}"


def loop_section() -> list[str]:
    r = loop_throughput.main(["--images", "1536", "--repeats", "2"])
    return [
        "## 1. Training-loop throughput (GatedCNN, batch 128, crop+flip augmentation)", "",
        "| loop | images/s |", "| --- | ---: |",
        *[f"| {name} | {rate:.1f} |" for name, rate in r["images_per_s"].items()], "",
        f"**kit / textbook: {r['ratio_kit_vs_textbook']:.2f}x** (target: at least 1.5x); with fp32 on "
        f"both sides the data path alone gives {r['ratio_kit_fp32_vs_textbook']:.2f}x. Kit precision: "
        f"{r['precision_auto']}.", "", f"Reproduce: `{r['command']}`", "",
    ]


def caching_section() -> list[str]:
    r = feature_caching.main([])
    weights = "random backbone weights (no ImageNet file offline; the cost is the same)" \
        if r["random_weights"] else "ImageNet backbone weights"
    return [
        "## 2. Feature caching (frozen ResNet-152 at 224x224, head trained 5 epochs)", "",
        f"{r['train']} training and {r['test']} test images of {r['data']}, {weights}, precision "
        f"{r['precision']}.", "",
        "| run | seconds |", "| --- | ---: |",
        f"| uncached (backbone in the loop) | {r['uncached_s']:.1f} |",
        f"| cached (extraction {r['extract_s']:.1f} s included) | {r['cached_s']:.1f} |", "",
        f"**cached / uncached: {r['speedup']:.2f}x faster** (target: at least 4x). Largest difference "
        f"between the two test-accuracy curves: {r['max_acc_gap']:.4f}.", "",
        f"Reproduce: `{r['command']}`", "",
    ]


def precision_section() -> list[str]:
    r = precision.main([])
    rows = [f"| {name} | {v['images_per_s']:.0f} | {v['first_epoch_s']:.1f} | {v['test_acc']:.2%} |"
            for name, v in r["runs"].items()]
    choices = [f"| {name} | **{ratio:.2f}x** |" for name, ratio in r["ratios"].items()]
    return [
        "## 3. CPU engineering: bfloat16 autocast, channels-last, torch.compile (speedrun recipe)", "",
        f"{r['epochs']} epochs at batch {r['batch_size']} on {r['n_train']:,} training images of {r['data']} at full "
        f"size; test on {r['n_test']:,}. Settings alternated over {r['rounds']} round(s); images/s is the median "
        f"of the epochs after the first, whose seconds (compilation included) are listed apart. The recipe, "
        f"shortened: {r['recipe']}.", "",
        "| setting | training images/s | epoch 1 seconds | test accuracy |", "| --- | ---: | ---: | ---: |", *rows, "",
        "| choice | images/s with it / without it |", "| --- | ---: |", *choices, "",
        f"The kit trains with `{precision.KIT_CHOICE}` on a CPU with native bfloat16; `torch.compile` is a recipe "
        "field (`compile=True`), off by default.", "", f"Reproduce: `{r['command']}`", "",
    ]


def suite_section() -> list[str]:
    out = REPO / "build" / "bench-suite"
    if out.exists():
        subprocess.run(["rm", "-rf", str(out)], check=True)
    env = dict(os.environ, CIFARKIT_RESULTS_DIR="")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cifarkit", "run", "--profile", "quick", "--out", str(out)],
                          cwd=REPO, env=env)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    rows = [f"| {nb['name']} | {nb['status']} | {nb['duration_s']:.0f} |" for nb in summary.get("notebooks", [])]
    return [
        "## 4-5. Main job (`make run`: every notebook, quick profile) and its memory", "",
        "| notebook | status | seconds |", "| --- | --- | ---: |", *rows, "",
        f"**Whole quick suite: {wall / 60:.1f} minutes** (target: 12 or less), exit code "
        f"{proc.returncode}. Data: {', '.join(summary.get('data_source') or ['?'])}.", "",
        f"**Peak resident memory: {peak_mb:,.0f} MiB** (the largest process of the suite, a notebook "
        "kernel; `getrusage(RUSAGE_CHILDREN)`).", "",
        "Reproduce: `python -m cifarkit run --profile quick` (or `make run`)", "",
    ]


def accuracy_section() -> list[str]:
    path = HERE / "accuracy_results.json"
    if not path.exists():
        return ["## Real-data accuracy", "", "_No runs of bench/accuracy.py recorded yet._", ""]
    table = json.loads(path.read_text())
    lines = [
        "## Real-data accuracy (bench/accuracy.py, full 50,000-image training split)", "",
        "The CIFAR-10 copy used here has exact pixels for train images 0-3,999 and test images 0-999 "
        "only; all other images were decoded from JPEG copies (mean absolute error about 5.8/255). "
        "The last column is the accuracy on the 1,000 exact test images and, in brackets, on the same "
        "1,000 images as the copy's JPEG step decoded them (scored from the shared folder's archive): "
        "the difference is what JPEG pixels cost the same model on the same images.", "",
        "| recipe | epochs | seed figure | test acc | with TTA | minutes to 90% / 93% / 94% | training minutes | images/s | hardware | exact 1,000 (as JPEG) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for key, e in sorted(table.items()):
        seed = SEED_FIGURES.get(e["recipe"])
        tta = e.get("time_to_accuracy", {})
        times = " / ".join(f"{tta[t]['minutes']:.1f}" if t in tta else "-" for t in ("0.90", "0.93", "0.94"))
        epochs = str(e["epochs"]) if e.get("complete", True) else f"{e['epochs']} of {e['planned_epochs']} (paused, resumable)"
        tta_acc = e.get("test_acc_tta")
        flip = f"{tta_acc:.2%} ({e.get('tta', 'flip')})" if tta_acc is not None else "-"
        twin_acc = e.get("jpeg_twin_first_1000_acc")
        twin = f" ({twin_acc:.2%})" if twin_acc is not None else ""
        lines.append(
            f"| {e.get('label', e['recipe'])} | {epochs} | {f'{seed:.1%} (30 epochs)' if seed else '-'} | "
            f"{e['test_acc']:.2%} | {flip} | {times} | {e['train_minutes']:.1f} | "
            f"{e['images_per_s']:.0f} | {e['hardware']} | {accuracy.percent(e.get('exact_first_1000_acc'))}{twin} |")
    lines.append("")
    for key, e in sorted(table.items()):
        curve = ", ".join(f"{100 * a:.1f}" for a in e.get("val_acc_per_epoch", []))
        minutes = ", ".join(f"{m:.1f}" for m in e.get("train_minutes_by_epoch", []))
        lines.append(f"- `{key}` test accuracy (%) after each epoch, no TTA: {curve}"
                     + (f"; training minutes so far: {minutes}" if minutes else ""))
    lines += ["", "Reproduce: the `command` of each entry in bench/accuracy_results.json.", ""]
    return lines


def memory_section() -> list[str]:
    r = memory.main([])
    rows = [f"| {c['description']} | {c['rss_after_data_mib']:,.0f} | **{c['peak_rss_mib']:,.0f}** |"
            for c in r["cases"].values()]
    first = next(iter(r["cases"].values()))
    return [
        "## 5b. Memory of a full-profile training epoch, per notebook", "",
        f"Each notebook's heaviest training step with its `full` profile settings, in a fresh process: the "
        f"full {first['n_train']:,}-image training split in memory, the full batch and image size, "
        f"{first['steps']} training steps and one evaluation batch (an epoch's peak comes in its first "
        f"steps). Device: {first['device']}, precision {first['precision']}.", "",
        "| case | resident MiB after loading the data | peak resident MiB |",
        "| --- | ---: | ---: |", *rows, "", f"Reproduce: `{r['command']}`", "",
    ]


def lessons_section(measure: bool = True) -> list[str]:
    """Section 6: run every quick profile for `bench/lessons.py`'s default seeds and sources (`measure`), or table what
    bench/lessons_quick.json recorded (each `python bench/lessons.py` sweep merges into it)."""
    path = HERE / "lessons_quick.json"
    if measure:
        lessons.main([])
    if not path.is_file():
        return []
    runs = list(json.loads(path.read_text()).get("runs", {}))
    seeds = len({label.rpartition(" seed ")[2] for label in runs})
    sources = len({label.rpartition(" seed ")[0] for label in runs})
    return [f"## 6. Do the lessons hold? (bench/lessons.py: quick profile, {seeds} seeds x {sources} data sources)", "",
            "Every notebook's claims, with the verdict each run computed from its own numbers (`holds`, "
            "**FAILS** = does not hold, *inconclusive*, n/t = not testable here; `-`: the notebook version "
            "of that run did not state the claim). A benchmark, not a test.", "",
            *lessons.render(json.loads(path.read_text())), *full_lessons_section()]


def full_lessons_section() -> list[str]:
    """The full-profile verdicts on the CIFAR-10 copy, when bench/lessons_full.json has them (long
    background runs: `python bench/lessons.py --profile full --sources cifar10-unverified --seeds 0`)."""
    path = HERE / "lessons_full.json"
    if not path.is_file():
        return ["Full profiles: not yet recorded (see bench/lessons.py).", ""]
    return ["### Full profiles", "", *lessons.render(json.loads(path.read_text()))]


def recorded_runs(table: dict, recipe: str) -> tuple[dict, dict]:
    """The complete runs recorded as ``bench/accuracy.py <recipe>`` (their ``base_recipe``) whose
    recorded summary is what their ``--set`` changes give the recipe as it is now (so runs of an older
    recipe drop out by themselves): ``(own, tried)``, the recipe's own runs by ``(seed, epochs)`` and
    the changed runs by change, each a list of ``(seed, entry)``."""
    own, tried = {}, {}
    for e in table.values():
        name, seed, sets = e.get("base_recipe"), e.get("seed"), e.get("settings", [])
        if name != recipe or not e.get("complete", True) or e.get("test_acc_tta") is None:
            continue
        try:
            now = accuracy.changed_recipe(get_recipe(recipe, epochs=e.get("planned_epochs", e["epochs"])), sets).summary()
        except (ValueError, TypeError):
            continue
        if now != e.get("summary"):
            continue
        if sets:
            tried.setdefault(" ".join(f"`{item}`" for item in sets), []).append((seed, e))
        else:
            own.setdefault((seed, e["epochs"]), []).append(e)
    return own, tried


def paired_rows(label: str, runs: list, base: dict) -> tuple[str | None, set, list]:
    """One table row: `runs` (``(seed, entry)``) against the `base` run of the same seed and epochs,
    on the same CPU where one was recorded, else starred; the ``(run CPU, base CPU)`` of the starred;
    and the differences with TTA, in points."""
    pairs = [(seed, e, min(base[(seed, e["epochs"])], key=lambda b: b.get("hardware") != e.get("hardware")))
             for seed, e in sorted(runs, key=lambda r: (r[0], str(r[1].get("hardware")))) if (seed, e["epochs"]) in base]
    if not pairs:
        return None, set(), []
    deltas = [100 * (e["test_acc_tta"] - b["test_acc_tta"]) for _, e, b in pairs]
    plain = [100 * (e["test_acc"] - b["test_acc"]) for _, e, b in pairs]
    # a pair trained on two kinds of CPU: its seed is starred and the note below names the machines
    moved = [(e.get("hardware"), b.get("hardware")) if e.get("hardware") != b.get("hardware") else None
             for _, e, b in pairs]
    seeds = ", ".join(f"{seed}{'*' if m else ''}" for (seed, _, _), m in zip(pairs, moved))
    row = (f"| {label} | {seeds} | {', '.join(f'{d:+.2f}' for d in deltas)} | **{sum(deltas) / len(deltas):+.2f}** | "
           f"{sum(plain) / len(plain):+.2f} | {', '.join(accuracy.percent(e['test_acc_tta']) for _, e, _ in pairs)} |")
    return row, {m for m in moved if m}, deltas


PAIRED_HEADER = ["| change | seeds | Δ with TTA, per seed | mean Δ with TTA | mean Δ without TTA | with TTA |",
                 "| --- | --- | ---: | ---: | ---: | ---: |"]


def _star_note(elsewhere: set, what: str) -> list[str]:
    if not elsewhere:
        return []
    return [f"\\* {what} ran on {' and '.join(sorted({a for a, _ in elsewhere}))}, the partner run of that seed "
            f"on {' and '.join(sorted({b for _, b in elsewhere}))}: the same initial weights and data order, but other "
            "arithmetic kernels, so the two runs drift apart by more than the change alone.", ""]


def tried_changes(table: dict, recipe: str = "speedrun") -> list[str]:
    """The changes tried on `recipe`, each paired by seed with the recipe's own run: a markdown table
    from bench/accuracy_results.json (`recorded_runs` says which runs count); the partner is the
    complete run of the unchanged recipe with the same seed and epochs, on the same CPU where one was
    recorded (a pair from two kinds of CPU is starred). Empty when nothing pairs."""
    base, tried = recorded_runs(table, recipe)
    rows, elsewhere = [], set()
    for change, runs in sorted(tried.items()):
        row, moved, _ = paired_rows(change, runs, base)
        if row:
            rows.append(row)
            elsewhere |= moved
    if not rows:
        return []
    spread = ""
    own = [100 * b["test_acc_tta"] for (_, epochs), bs in base.items() if epochs == get_recipe(recipe).epochs for b in bs]
    if len(own) > 1:
        sd = statistics.stdev(own)
        spread = (f" The recipe's own {len(own)} runs spread by sd {sd:.2f} points, so one seed's Δ within about "
                  f"±{2 * sd:.1f} points is inside the noise.")
    return [f"### Changes tried on `{recipe}`, paired by seed (bench/accuracy_results.json)", "",
            "Each row: runs of `bench/accuracy.py " + recipe + " --seed N --set ...` (one setting changed), each paired "
            "with the unchanged recipe's run of the same seed (same data order and initial weights). "
            f"Δ: points of test accuracy with TTA, change minus recipe.{spread}", "",
            *PAIRED_HEADER, *rows, "", *_star_note(elsewhere, "The change")]


#: Student's t, two-sided 95%, by degrees of freedom (a few seeds: the normal 1.96 would be too narrow)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def recipe_against(table: dict, recipe: str, previous: str) -> list[str]:
    """`recipe`'s own runs against `previous`'s (an earlier recipe, or another one), paired by seed (same CPU where recorded, else
    starred), with each recipe's mean and sd over its seeds: a markdown table; empty when nothing pairs."""
    new, _ = recorded_runs(table, recipe)
    old, _ = recorded_runs(table, previous)
    runs = [(seed, e) for (seed, _), es in new.items() for e in es]
    row, moved, deltas = paired_rows(f"`{recipe}` - `{previous}`", runs, old)
    if row is None:
        return []
    lines = [f"### `{recipe}` against `{previous}`, paired by seed (bench/accuracy_results.json)", "",
             f"Each seed's run of `{recipe}` minus the run of `{previous}` with the same seed, in points of test "
             "accuracy.", "", *PAIRED_HEADER, row, ""]
    if 1 < len(deltas) <= len(T95) + 1:
        mean, sd = statistics.mean(deltas), statistics.stdev(deltas)
        half = T95[len(deltas) - 1] * sd / len(deltas) ** 0.5
        lines += [f"Paired differences with TTA: mean {mean:+.2f}, sd {sd:.2f} over {len(deltas)} seeds; 95% interval "
                  f"{mean - half:+.2f} to {mean + half:+.2f} points (Student's t, {len(deltas) - 1} degrees of freedom).", ""]
    for name, runs_by in ((recipe, new), (previous, old)):
        for hw in sorted({e.get("hardware") for es in runs_by.values() for e in es}):
            accs = [(seed, e) for (seed, _), es in sorted(runs_by.items()) for e in es if e.get("hardware") == hw]
            tta = [100 * e["test_acc_tta"] for _, e in accs]
            exact = [100 * e["exact_first_1000_acc"] for _, e in accs if e.get("exact_first_1000_acc") is not None]
            spread = f"{statistics.mean(tta):.2f}% ± {statistics.stdev(tta):.2f} with TTA (mean ± sd)" if len(tta) > 1 \
                else f"{tta[0]:.2f}% with TTA"
            lines.append(f"- `{name}` on {hw}, seed{'s' if len(accs) > 1 else ''} {', '.join(str(s) for s, _ in accs)}: "
                         f"{spread}" + (f"; exact 1,000: {', '.join(f'{x:.1f}%' for x in exact)}" if exact else ""))
    return lines + ["", *_star_note(moved, f"The `{recipe}` run")]


def speedrun_section() -> list[str]:
    """Section 7: the speedrun's ablation and the goal's yardstick, as `bench/speedrun_ablation.py
    --record` kept them in bench/speedrun_record.json (hours of training: re-tabled, not measured)."""
    path = HERE / "speedrun_record.json"
    if not path.is_file():
        return []
    record = json.loads(path.read_text())
    lines = ["## 7. Speedrun: which ingredient matters, and the time yardstick (bench/speedrun_ablation.py)", ""]
    for kind, title in (("timing", "Time of a whole `{}` run in epochs of `speedrun-v2`, timed side by side"),
                        ("ablation", "Ablation: `{}` with one ingredient removed at a time, 8 epochs each, "
                                     "full training split"),
                        ("evaluation", "Evaluation-only changes on `{}`'s finished models (bench/speedrun_eval.py)")):
        if kind in record:  # each table names the recipe it measured (records before 2026-12-06 name none)
            of = record[kind].get("recipe", "speedrun")
            lines += [f"### {title.format(of)}", "", *record[kind]["table"], "",
                      f"Recorded {record[kind]['recorded']}: `{record[kind]['command']}`", ""]
    results = HERE / "accuracy_results.json"
    if results.is_file():
        table = json.loads(results.read_text())
        lines += recipe_against(table, "speedrun", "speedrun-torch-init")
        lines += recipe_against(table, "speedrun", "airbench94-muon")  # against the record recipe's settings
        lines += tried_changes(table) + tried_changes(table, "speedrun-torch-init")
    return lines


def cpu_section() -> list[str]:
    """Section 8: native mode against AVX2 mode, as bench/cpu_modes.py recorded it in bench/cpu_modes.json."""
    path = HERE / "cpu_modes.json"
    return cpu_modes.render(json.loads(path.read_text())) if path.is_file() else []


def gpu_section() -> list[str]:
    """Section 9: the runs of bench/gpu_check.sh (bench/gpu_results.json), one row per card and date."""
    path = HERE / "gpu_results.json"
    lines = ["## 9. On a GPU (bench/gpu_check.sh: the quick suite and one 8-epoch `speedrun`)", ""]
    if not path.is_file():
        return lines + ["_Not yet run on a GPU: `bash bench/gpu_check.sh` on a machine with one records it here._", ""]
    lines += ["| card | compute capability | precision | data | quick suite s | verdicts | speedrun with TTA | "
              "speedrun training min | measured |", "| --- | --- | --- | --- | ---: | --- | ---: | ---: | --- |"]
    for e in json.loads(path.read_text()).values():
        sp = e["speedrun"]
        lines.append(f"| {e['card']} | {'.'.join(map(str, e['capability']))} | {e['precision']} | {e['source']} | "
                     f"{e['suite_wall_s']:.0f} ({'ok' if e['suite_ok'] else 'FAILED'}) | {e.get('verdicts')} | "
                     f"{sp['test_acc_tta']:.2%} | {sp['train_minutes']:.1f} | {e['measured']}, torch {e['torch']} |")
    return lines + [""]


def book_section() -> list[str]:
    r = book_build.main([])
    rows = [f"| {x['run']} | {x['notebooks']} | {x['cells']} | {x['figures']} | **{x['median_s']:.1f}** "
            f"({x['min_s']:.1f}-{x['max_s']:.1f}) | {x['site_mb']:.0f} |" for x in r["rows"]]
    return [
        "## 10. The book: `cifarkit book` on a 7-notebook run (bench/book_build.py)", "",
        f"Wall time of `python -m cifarkit book RUN --out NEW`, a fresh process each time (imports, the "
        f"slide decks, Sphinx), {r['repeats']} builds; load average {r['load']:.1f} when it ran. No executed "
        "run of the course was at hand: the fixture copies are executed, the course sources carry no outputs "
        "(see the script).", "",
        "| run | notebooks | cells | figures | seconds, median (min-max) | site MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |", *rows, "",
        f"Reproduce: `{r['command']}` (or `--run runs/<run>` for a real run)", "",
    ]


def cluster_section() -> list[str]:
    """Section 11: the quick suite and the lessons sweep on Dask, one machine two ways, as
    `python bench/cluster.py --lessons` recorded them in bench/cluster_results.json (hours: re-tabled,
    not measured), and the lessons sweep on k machines projected from bench/lessons_quick.json."""
    record = json.loads(cluster.RECORD.read_text()) if cluster.RECORD.is_file() else None
    path = HERE / "lessons_quick.json"
    return cluster.section(record, json.loads(path.read_text()) if path.is_file() else None,
                           cluster.dependencies(sorted((REPO / "notebooks").glob("*.ipynb"))))


def kernel_env_section() -> list[str]:
    """Section 13: what Dask's malloc setting cost a kernel, as `python bench/kernel_env.py` recorded it."""
    return kernel_env.render(json.loads(kernel_env.RECORD.read_text()) if kernel_env.RECORD.is_file() else None)


def docstrings_section() -> list[str]:
    """Section 12: the figures issue 28 moved out of the package's docstrings (bench/from_docstrings.md)."""
    path = HERE / "from_docstrings.md"
    return ["## 12. Figures moved out of the package's docstrings (bench/from_docstrings.md)", "",
            *path.read_text().splitlines()] if path.is_file() else []


SECTIONS = {"loop": loop_section, "caching": caching_section, "precision": precision_section,
            "suite": suite_section, "memory": memory_section, "lessons": lessons_section,
            "speedrun": speedrun_section, "cpu": cpu_section, "gpu": gpu_section, "book": book_section,
            "cluster": cluster_section, "docstrings": docstrings_section, "kernelenv": kernel_env_section}
#: sections tabled from a record that a benchmark of their own keeps: re-tabled, never measured here
RECORDED = {"speedrun", "cpu", "gpu", "cluster", "docstrings", "kernelenv"}
MARK = "<!-- section: {} -->"


def previous_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an existing results.md, by name (from their markers)."""
    found, current = {}, None
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("<!-- section: "):
                current = line[len("<!-- section: "):-len(" -->")]
                found[current] = []
            elif current is not None:
                found[current].append(line)
    return found


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="comma-separated subset of " + ",".join(SECTIONS) + " (or: accuracy)")
    p.add_argument("--skip-suite", action="store_true", help="do not time the quick suite")
    args = p.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    if args.skip_suite and "suite" in chosen:
        chosen.remove("suite")
    unknown = set(chosen) - set(SECTIONS) - {"accuracy"}
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}, accuracy")
    chosen = [c for c in chosen if c != "accuracy"]  # the accuracy table is always rewritten
    results = HERE / "results.md"
    kept = previous_sections(results)
    lines = ["# Benchmarks", "", "Written by `make bench` (`python bench/run_all.py`). Sections are re-measured one at a "
             "time, so each names the date and the machine of its own measurement.", ""]
    for name in SECTIONS:
        if name in chosen and name not in RECORDED:
            print(f"== {name}", flush=True)
            body = SECTIONS[name]()
            body[1:1] = ["", f"_Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}._"]
        elif name == "lessons" and (HERE / "lessons_quick.json").is_file():
            body = lessons_section(measure=False)  # the recorded sweeps, re-tabled
        elif name in RECORDED:
            body = SECTIONS[name]()  # always re-tabled from its record
        elif name in kept:
            body = kept[name]
        else:
            continue
        lines += [MARK.format(name), *body]
    lines += [MARK.format("accuracy"), *accuracy_section()]
    results.write_text("\n".join(lines))
    print(f"wrote {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
