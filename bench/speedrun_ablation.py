"""Which ingredient of `speedrun` matters: train it, and it with each ingredient removed.

    python bench/speedrun_ablation.py                      # the recipe + 7 variants, 8 epochs each
    nohup python bench/speedrun_ablation.py > bench/runs/speedrun-ablation.log 2>&1 &
    python bench/speedrun_ablation.py --only no-muon       # one variant (repeatable)
    python bench/speedrun_ablation.py --table              # only re-write the table from the runs
    python bench/speedrun_ablation.py --table --record     # ... and keep it in bench/speedrun_record.json
    python bench/speedrun_ablation.py --timing             # a speedrun run vs speedrun-v2 epochs, alternately
    python bench/speedrun_ablation.py --timing --compile both --n-train 2000   # small proxy
    python bench/speedrun_ablation.py --compare-muon       # kit MuonSGD vs torch.optim.Muon

Training goes through `bench/accuracy.py`'s `main` (the same data, checkpointing, evaluation on
the full test split and on its exact first 1,000 images), once per variant, each in its own
folder ``OUT/<variant>/`` with a checkpoint after every epoch: running the same command again
resumes where it stopped, and skips finished variants (``--redo`` trains them again). The
settings of the first invocation (data, subset sizes, epochs, seed) are kept in ``OUT/run.json``
and a later invocation with other settings is refused, so a smoke run's checkpoints never end up
in a real table. ``no-tta`` trains nothing: it is the baseline's model (its finished checkpoint)
evaluated on plain test images.

The table (``OUT/table.md``, printed too, ready for bench/results.md) has one row per variant:
epochs, test accuracy, with TTA, the exact 1,000 with the variant's TTA, training seconds per
epoch and their ratio to the baseline's. Rows whose training and the baseline's did not all
happen in one invocation of this script are marked, since a busy machine skews such ratios.

``--timing`` answers the goal's yardstick (a whole `speedrun` run in at most 6.9 epochs of
``speedrun-v2``, the recipe that was ``speedrun`` when the goal was set): it times whole runs of
the one and epochs of the other (after ``--warmup-epochs`` untimed ones) alternately in this one
process, with ``--compile off|on|both`` (``torch.compile`` of the model). Times are per image,
scaled to the full 50,000-image split, so a small ``--n-train`` is a fair proxy of the ratio.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import accuracy  # noqa: E402

import cifarkit as ck  # noqa: E402
from cifarkit import devices, optim  # noqa: E402
from cifarkit.resume import read_checkpoint  # noqa: E402
from cifarkit.recipes import get_recipe, train_recipe  # noqa: E402

RECIPE = "speedrun"
BASELINE = "speedrun"
#: the goal's yardstick: the recipe that was `speedrun` when the goal was set
YARDSTICK = "speedrun-v2"
#: the tracked copy of the finished tables (`--record`), which bench/run_all.py puts in results.md
RECORD = HERE / "speedrun_record.json"
#: the model settings of `speedrun` without the record's initialisation: those of `speedrun-torch-init`
TORCH_INIT_MODEL_KWARGS = get_recipe("speedrun-torch-init").model_kwargs
#: variant -> (recipe fields changed, what it removes); the first is the baseline
VARIANTS = {
    BASELINE: ({}, "the recipe, every ingredient"),
    "no-muon": ({"muon": False}, "Nesterov SGD on the conv filters too (lr 1.46e-3 per image, momentum 0.85)"),
    "random-flip": ({"alternating_flip": False}, "random flip instead of alternating flip"),
    "learnable-bn-scale": ({"freeze_bn_weights": False}, "BatchNorm scales learn (not frozen at 1)"),
    "no-whitening": ({"whitening": False}, "a learnable 2x2 conv stem instead of the fixed whitening"),
    "label-smoothing": ({"label_smoothing": 0.2}, "the record recipe's label smoothing 0.2 instead of none"),
    "no-progressive-resizing": ({"image_sizes": None}, "every epoch on the full 32-pixel images"),
    "torch-init": ({"model_kwargs": TORCH_INIT_MODEL_KWARGS},
                   "torch's default start: head weights at std 0.036, whitening bias zero (speedrun-torch-init)"),
    "no-tta": ({"tta_flip": False, "tta_shift": 0}, "no test-time augmentation (the baseline's model)"),
}
REUSES_BASELINE = {"no-tta"}  # test-time only: the baseline's trained model, evaluated differently
FULL_EPOCH_IMAGES = 50_000
GOAL_EPOCHS_OF_SPEEDRUN = 6.9


# --------------------------------------------------------------------------- the ablation

def _settings(args) -> dict:
    """What a folder's runs depend on: the recipe's own settings too (its summary), so a folder
    trained before the recipe changed is refused rather than resumed or tabled as the new one."""
    recipe = get_recipe(RECIPE)
    return {"recipe": RECIPE, "recipe_summary": recipe.summary(), "epochs": args.epochs or recipe.epochs,
            "source": args.source, "n_train": args.n_train, "n_test": args.n_test, "seed": args.seed,
            "set": list(args.set)}


def _check_settings(out: Path, args) -> None:
    """Record this folder's settings, or refuse settings that differ from the recorded ones."""
    path, mine = out / "run.json", _settings(args)
    if path.exists():
        theirs = json.loads(path.read_text())["settings"]
        if theirs != mine:
            diff = ", ".join(f"{k} {theirs.get(k)!r} there, {mine[k]!r} now" for k in mine if theirs.get(k) != mine[k])
            raise SystemExit(f"{out} holds runs with other settings ({diff}); use another --out")
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": mine, "variants": {}}, indent=1))


def _update_run(out: Path, variant: str, invocation: str | None, entry: dict, fresh: bool = False) -> None:
    """Keep `entry` for `variant`, and `invocation` among those that trained some of its epochs
    (`fresh`: forget the earlier ones, the variant was trained again from scratch)."""
    path = out / "run.json"
    run = json.loads(path.read_text())
    record = run["variants"].setdefault(variant, {"timed_in": []})
    if fresh:
        record["timed_in"] = []
    if invocation is not None and invocation not in record["timed_in"]:
        record["timed_in"].append(invocation)
    record["entry"] = entry
    path.write_text(json.dumps(run, indent=1))


def _epochs_done(checkpoint: Path) -> int:
    return int(read_checkpoint(checkpoint)["epoch"]) if checkpoint.exists() else 0


def _finished(folder: Path) -> bool:
    result = folder / "result.json"
    return result.exists() and json.loads(result.read_text()).get("complete", False)


def accuracy_argv(variant: str, args, out: Path) -> list[str]:
    """The `bench/accuracy.py` command line that trains `variant` into ``out/variant``."""
    argv = [RECIPE, "--out", str(out / variant), "--results", str(out / "results.json"),
            "--source", args.source, "--seed", str(args.seed), "--device", args.device]
    for flag, value in (("--epochs", args.epochs), ("--n-train", args.n_train), ("--n-test", args.n_test),
                        ("--root", args.root), ("--stop-after", args.stop_after), ("--jpeg-twins", args.jpeg_twins)):
        if value is not None:
            argv += [flag, str(value)]
    if args.n_test is not None and args.jpeg_twins is None:
        argv += ["--jpeg-twins", ""]  # a test subset's first images are not the archive's exact ones
    if args.allow_synthetic:
        argv.append("--allow-synthetic")
    for item in args.set:  # first, so that a variant's own change wins
        argv += ["--set", item]
    for field, value in VARIANTS[variant][0].items():
        argv += ["--set", f"{field}={value!r}"]
    return argv


def run_variant(variant: str, args, out: Path, invocation: str) -> dict | None:
    """Train (or resume, or skip when finished) one variant; its result entry, or None if it
    has to wait for the baseline."""
    folder = out / variant
    if _finished(folder) and not args.redo:
        print(f"{variant}: finished earlier, kept (--redo trains it again)", flush=True)
        return json.loads((folder / "result.json").read_text())
    if args.redo and folder.exists():
        shutil.rmtree(folder)
    if variant in REUSES_BASELINE:
        if not _finished(out / BASELINE):
            print(f"{variant}: waits for a finished {BASELINE} run", flush=True)
            return None
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / BASELINE / "checkpoint.pt", folder / "checkpoint.pt")
    before = _epochs_done(folder / "checkpoint.pt")
    print(f"\n=== {variant}: {VARIANTS[variant][1]}", flush=True)
    entry = accuracy.main(accuracy_argv(variant, args, out))
    entry["variant"] = variant
    _update_run(out, variant, invocation if entry["epochs"] > before else None, entry, fresh=args.redo)
    return entry


def table(out: Path) -> list[str]:
    """The markdown table of the recorded runs in `out`."""
    run = json.loads((out / "run.json").read_text())
    records = run["variants"]
    if BASELINE not in records:
        return [f"(no {BASELINE} run recorded in {out} yet)"]
    base = records[BASELINE]
    base_entry, base_times = base["entry"], base["timed_in"]

    def per_epoch(entry):
        return entry["train_minutes"] * 60 / max(entry["epochs"], 1)

    def headline(entry):
        return entry["test_acc_tta"] if entry["test_acc_tta"] is not None else entry["test_acc"]

    lines = ["| variant | what changes | epochs | test acc | with TTA | exact 1,000 (TTA) | Δ vs baseline | "
             "s / epoch | time vs baseline |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    marked = False
    for variant, (_, words) in VARIANTS.items():
        if variant not in records:
            continue
        entry, times = records[variant]["entry"], records[variant]["timed_in"]
        if variant in REUSES_BASELINE:
            ratio = "1.00 (same training)"
        else:
            same = times == base_times and len(times) == 1
            marked |= not same
            ratio = f"{per_epoch(entry) / per_epoch(base_entry):.2f}" + ("" if same else " *")
        delta = (headline(entry) - headline(base_entry)) * 100
        epochs = f"{entry['epochs']}" + ("" if entry["complete"] else f" of {entry['planned_epochs']}")
        lines.append(f"| {variant} | {words} | {epochs} | {accuracy.percent(entry['test_acc'])} | {accuracy.percent(entry['test_acc_tta'])} "
                     f"| {accuracy.percent(entry['exact_first_1000_acc'])} | {delta:+.2f} | {per_epoch(entry):.1f} | {ratio} |")
    s = run["settings"]
    lines += ["", f"Measured on {base_entry['hardware']}, torch {base_entry['torch']}, "
                  f"{base_entry['finished'][:10]}; data {base_entry['data']}, {base_entry['n_train']} training / "
                  f"{base_entry['n_test']} test images, seed {s['seed']}. Δ: the variant's headline accuracy "
                  "(with TTA where it has TTA) minus the baseline's, in points. s / epoch: training only "
                  "(evaluation excluded)."]
    if marked:
        lines.append("\\* not trained in one invocation together with the baseline (resumed, or run on its own): "
                     "the time ratio mixes machine states.")
    if base_entry["n_test"] < 10_000:
        lines.append("The test split is a subset here, so the exact-1,000 column scores its first images, "
                     "not the copy's exact ones.")
    lines += ["", f"Command: `{_command(out, s)}`"]
    return lines


def _command(out: Path, settings: dict) -> str:
    """The command line that (re)makes the runs of `settings` in `out`."""
    words = ["python bench/speedrun_ablation.py", "--out", str(out), "--epochs", str(settings["epochs"]),
             "--source", settings["source"], "--seed", str(settings["seed"])]
    words += [w for flag in ("n_train", "n_test") if settings[flag] is not None
              for w in (f"--{flag.replace('_', '-')}", str(settings[flag]))]
    words += ["--allow-synthetic"] if settings["source"] == "synthetic" else []
    words += [f'--set "{item}"' for item in settings.get("set", [])]
    return " ".join(words)


def ablation(args) -> list[str]:
    out = Path(args.out or HERE / "runs" / f"speedrun-ablation-{_settings(args)['epochs']}ep")
    if not args.table:
        _check_settings(out, args)
        invocation = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        chosen = args.only or list(VARIANTS)
        unknown = sorted(set(chosen) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
        for variant in [v for v in VARIANTS if v in chosen]:
            run_variant(variant, args, out, invocation)
    lines = table(out)
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines), flush=True)
    if args.record:
        record("ablation", lines, args.record, args.argv)
    return lines


def record(kind: str, lines: list[str], path, argv: list[str], script: str = "bench/speedrun_ablation.py",
           recipe: str = RECIPE) -> None:
    """Keep `lines` (a finished table of `recipe`) as `kind` ("ablation", "timing", or
    bench/speedrun_eval.py's "evaluation") in the tracked record `path` (default
    bench/speedrun_record.json, which `bench/run_all.py` tables in results.md): bench/runs/ is not
    part of the repository. `script` and `argv` make the recorded command."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data[kind] = {"table": lines, "recorded": time.strftime("%Y-%m-%d %H:%M"), "recipe": recipe,
                  "command": shlex.join(["python", script, *argv])}
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"recorded the {kind} table in {path}", flush=True)


# --------------------------------------------------------------------------- timing

def time_recipes(args) -> dict:
    """The goal's yardstick, timed alternately in this one process: the training seconds of a
    whole `speedrun` run (every epoch of its schedule, the small ones of progressive resizing
    included) against the seconds per epoch of `speedrun-v2` (after ``--warmup-epochs`` untimed
    ones), eager and/or compiled; per image, scaled to the full 50,000-image split."""
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    data = ck.load_data(args.source, args.n_train, args.n_test or 500, seed=args.seed, root=args.root)
    names = (YARDSTICK, RECIPE)
    samples: dict[tuple, list[float]] = {(n, c): [] for c in modes for n in names}
    order = list(samples)
    for r in range(args.rounds):
        for name, compiled in (order if r % 2 == 0 else order[::-1]):  # ABAB.. then ..BABA: drift cancels
            if name == YARDSTICK:
                recipe = get_recipe(name, epochs=args.warmup_epochs + args.timed_epochs, compile=compiled)
            else:  # --set changes the candidate only, e.g. --set micro_batch=250
                recipe = accuracy.changed_recipe(get_recipe(name, compile=compiled, **(
                    {"epochs": args.epochs} if args.epochs else {})), args.set)
            result = train_recipe(recipe, data, device=args.device, seed=args.seed, progress=False, log=False,
                                  eval_batch_size=500)
            full = FULL_EPOCH_IMAGES // recipe.batch_size * recipe.batch_size
            seconds = [full / rate for rate in result.history["images_per_s"]]
            samples[(name, compiled)] += seconds[args.warmup_epochs:] if name == YARDSTICK else [sum(seconds)]
            print(f"round {r + 1}: {name}{' compiled' if compiled else ''}: "
                  + ", ".join(f"{s:.1f}" for s in seconds) + " s per full epoch"
                  + ("" if name == YARDSTICK else f" (run {sum(seconds):.1f} s)"), flush=True)
    median = {f"{n}{' compiled' if c else ''}": statistics.median(v) for (n, c), v in samples.items()}
    report = {"seconds": median, "samples": {f"{n}|{c}": v for (n, c), v in samples.items()},
              "hardware": accuracy.hardware(), "torch": torch.__version__, "n_train": len(data.y_train),
              "data": data.label, "when": time.strftime("%Y-%m-%d %H:%M"),
              "command": shlex.join(["python", "bench/speedrun_ablation.py", *args.argv])}
    lines = [f"| recipe | compile | training seconds (full split) | in {YARDSTICK} epochs |",
             "| --- | --- | ---: | ---: |"]
    for compiled in modes:
        tag = " compiled" if compiled else ""
        base, run = median[f"{YARDSTICK}{tag}"], median[f"{RECIPE}{tag}"]
        report[f"run_in_yardstick_epochs{'_compiled' if compiled else ''}"] = run / base
        lines += [f"| {YARDSTICK}, one epoch | {'on' if compiled else 'off'} | {base:.1f} | 1 |",
                  f"| {RECIPE}, the whole run | {'on' if compiled else 'off'} | {run:.1f} | "
                  f"{run / base:.2f} (goal ≤ {GOAL_EPOCHS_OF_SPEEDRUN}) |"]
    if len(modes) == 2:
        for name in names:
            ratio = median[f"{name} compiled"] / median[name]
            report[f"compile_ratio_{name}"] = ratio
            lines.append(f"\n{name}: compiled / eager training time = {ratio:.3f}")
    lines.append(f"\n{report['hardware']}, torch {report['torch']}, {report['when']}; {report['n_train']} training "
                 f"images of {report['data']} (times scaled per image to {FULL_EPOCH_IMAGES}); median of "
                 f"{args.rounds} round(s); {YARDSTICK}: {args.timed_epochs} epoch(s) after {args.warmup_epochs} untimed.")
    report["table"] = lines
    print("\n".join(lines), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "timing.json").write_text(json.dumps(report, indent=1))
        (Path(args.out) / "timing.md").write_text("\n".join(lines) + "\n")
    if args.record:
        record("timing", lines, args.record, args.argv)
    return report


# --------------------------------------------------------------------------- Muon, kit vs torch

def compare_muon(args) -> dict:
    """Time one step over the speedrun's conv filters with `MuonSGD` and with ``torch.optim.Muon`` (on 2-D
    copies, 3 Newton-Schulz steps, no decay, the weights renormalised by a pre-hook so both do
    airbench's update), single-threaded, and measure how far their weights end up apart."""
    from cifarkit.optim import MuonSGD
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        net = get_recipe(RECIPE).build_model()
        filters = [p.detach().clone() for p in net.parameters() if p.dim() == 4 and p.requires_grad]
        with torch.no_grad():
            for w in filters:
                w.mul_(len(w) ** 0.5 / w.norm())
        grads = [[torch.randn_like(w) for w in filters] for _ in range(args.muon_steps_timed + 3)]
        kit = [torch.nn.Parameter(w.clone()) for w in filters]
        kit32 = [torch.nn.Parameter(w.clone()) for w in filters]
        flat = [torch.nn.Parameter(w.clone().reshape(len(w), -1)) for w in filters]
        kit_opt = MuonSGD(kit, lr=0.24, momentum=0.6, orthogonalize=True, ns_steps=3, ns_dtype=torch.bfloat16)
        kit32_opt = MuonSGD(kit32, lr=0.24, momentum=0.6, orthogonalize=True, ns_steps=3, ns_dtype=torch.float32)
        torch_opt = torch.optim.Muon(flat, lr=0.24, momentum=0.6, nesterov=True, weight_decay=0.0, ns_steps=3)

        def renormalise(opt, *_):
            with torch.no_grad():
                for p in opt.param_groups[0]["params"]:
                    p.mul_(len(p) ** 0.5 / p.norm())

        torch_opt.register_step_pre_hook(renormalise)

        def run(params, opt, g_list, shape2d):
            for p, g in zip(params, g_list):
                p.grad = g.reshape(len(g), -1) if shape2d else g
            opt.step()

        for g_list in grads[:3]:  # the same three steps from the same start: how far apart?
            run(kit, kit_opt, g_list, False)
            run(flat, torch_opt, g_list, True)
        gap = max(((a.detach().reshape(len(a), -1) - b.detach()).abs().max() / 0.24).item() for a, b in zip(kit, flat))
        contenders = (("kit MuonSGD (4-D filters), Newton-Schulz in bf16", kit, kit_opt, False),
                      ("kit MuonSGD (4-D filters), Newton-Schulz in fp32", kit32, kit32_opt, False),
                      ("torch.optim.Muon (2-D views, renorm hook)", flat, torch_opt, True))
        times: dict[str, list[float]] = {name: [] for name, *_ in contenders}
        for r in range(5):  # alternate, so a busy machine weighs on both alike
            for name, params, opt, shape2d in (contenders if r % 2 == 0 else contenders[::-1]):
                start = time.perf_counter()
                for g_list in grads[3:]:
                    run(params, opt, g_list, shape2d)
                times[name].append((time.perf_counter() - start) / args.muon_steps_timed * 1000)
        timings = {name: statistics.median(v) for name, v in times.items()}
    finally:
        torch.set_num_threads(threads)
    report = {"ms_per_step": timings, "max_weight_gap_in_lr_units_after_3_steps": gap,
              "native_bf16": devices.cpu_has_fast_bf16(),
              "shapes": [tuple(w.shape) for w in filters], "hardware": accuracy.hardware()}
    for name, ms in timings.items():
        print(f"{name}: {ms:.1f} ms per step over {len(filters)} filter tensors (1 thread, median of 5)")
    print(f"after 3 identical steps the weights differ by at most {gap:.4f} x lr (bf16 rounding)")
    bf16, fp32 = timings[contenders[0][0]], timings[contenders[1][0]]
    print(f"Newton-Schulz in bf16 / fp32: {bf16 / fp32:.2f}x the time per step "
          f"({'native' if report['native_bf16'] else 'emulated'} bf16 on this CPU; "
          f"the kit's default uses {optim.fast_matmul_dtype('cpu')})")
    return report


# --------------------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="output folder (default bench/runs/speedrun-ablation-<epochs>ep)")
    p.add_argument("--only", action="append", metavar="VARIANT", help=f"one of {', '.join(VARIANTS)} (repeatable)")
    p.add_argument("--table", action="store_true", help="train nothing; re-write the table from the recorded runs")
    p.add_argument("--redo", action="store_true", help="train finished variants again")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (default: the goal's 8)")
    accuracy.add_data_arguments(p)
    p.add_argument("--stop-after", type=int, help="train each variant at most this many more epochs now")
    p.add_argument("--jpeg-twins", help="passed to bench/accuracy.py")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of every variant, as bench/accuracy.py's --set (e.g. smaller widths for "
                        "a smoke run); a variant's own change wins. With --timing: of speedrun only")
    p.add_argument("--timing", action="store_true", help="time speedrun runs and speedrun-v2 epochs alternately")
    p.add_argument("--compile", default="off", choices=("off", "on", "both"), help="--timing: torch.compile")
    p.add_argument("--rounds", type=int, default=2, help="--timing: rounds of both recipes")
    p.add_argument("--warmup-epochs", type=int, default=1, help="--timing: untimed epochs before the timed ones")
    p.add_argument("--timed-epochs", type=int, default=1, help="--timing: timed epochs per round and recipe")
    p.add_argument("--compare-muon", action="store_true", help="time kit MuonSGD against torch.optim.Muon")
    p.add_argument("--record", nargs="?", const=str(RECORD), metavar="FILE",
                   help=f"also keep the table (ablation or --timing) in FILE (default {RECORD.relative_to(HERE.parent)})")
    p.add_argument("--muon-steps-timed", type=int, default=10)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the recorded command lines
    if args.source == "synthetic" and not args.allow_synthetic:
        p.error("--source synthetic measures nothing about CIFAR-10; add --allow-synthetic for a smoke test")
    if args.compare_muon:
        return compare_muon(args)
    if args.timing:
        return time_recipes(args)
    return ablation(args)


if __name__ == "__main__":
    main()
