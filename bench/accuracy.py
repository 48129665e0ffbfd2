"""Train a named recipe on all of CIFAR-10's training split and report real test accuracy.

    python bench/accuracy.py speedrun                      # the recipe's own epochs
    python bench/accuracy.py gated-seed --stop-after 3     # 3 epochs now, resume later
    python bench/accuracy.py speedrun --set cutout=8       # a variant: any recipe field, as a literal
    nohup python bench/accuracy.py gated-improved > bench/runs/gated-improved.log 2>&1 &

Recipes are `cifarkit.recipes.RECIPES` (gated-seed, gated-improved, speedrun, airbench94-muon, speedrun-v2, speedrun-wide). The
whole training state is checkpointed after every epoch in ``OUT/checkpoint.pt``; running the same
command again resumes from it, so a long run survives the end of a session. ``--stop-after N`` ends
this invocation after N more epochs (a partial result, marked ``"complete": false``, is still
written). Results go to ``OUT/result.json`` and ``OUT/curve.png`` (OUT defaults to ``bench/runs/<recipe>-<epochs>ep``, ``-seed<N>`` added for a seed other than 0) and are merged into
``bench/accuracy_results.json``, which `make bench` turns into the table of bench/results.md; the
complete full-data speedruns are also written to ``cifarkit/course/records/speedruns.json``, the copy
notebook 07 reads (`cifarkit.course.records`).

Evaluation: the 10,000-image test split, and separately its first 1,000 images. In the copy of
CIFAR-10 built from ``../shared/data/cifar10`` those 1,000 have exact pixels while the other
images (train and test) were decoded from JPEG copies, so the two numbers bracket the effect.
That folder's archive also holds JPEG copies of the 1,000 exact images: when it is found
(``--jpeg-twins``, default ``../shared/data/cifar10/cifar10-jpeg.tar.gz``) the same 1,000 images
are scored a third time with the JPEG-decoded pixels, which isolates what the JPEG step costs.

Data: ``--source cifar10`` (the verified release, downloaded when missing: what users run) or
``cifar10-unverified`` (a trusted copy prepared with ``python -m cifarkit data prepare --from DIR
--no-verify``). ``synthetic`` is accepted only with ``--allow-synthetic`` (smoke tests).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import platform
import re
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cifarkit as ck  # noqa: E402
from cifarkit.course.notebook_params import parse_value  # noqa: E402
from cifarkit.course.records import write_speedrun_records  # noqa: E402
from cifarkit.recipes import RECIPES, get_recipe, train_recipe  # noqa: E402

EXACT_TEST_IMAGES = 1000
JPEG_TWINS = HERE.parent.parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"
#: JPEG twins further than this (mean absolute difference, 0-255 scale) from the exact images are
#: not copies of them (the copy's JPEG step measures about 5.8)
TWIN_MAX_MAE = 16.0


def jpeg_twins(archive: Path, exact: torch.Tensor) -> torch.Tensor:
    """The JPEG-decoded copies of the test images `exact` (N x 3 x 32 x 32 uint8, the split's first
    N) from the shared folder's archive (``test/00000.jpg`` ...), checked to be copies of them."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    n = len(exact)
    twins, found = torch.empty_like(exact), torch.zeros(n, dtype=torch.bool)
    with tarfile.open(archive) as tar:
        for member in tar:
            split, _, name = member.name.partition("/")
            if member.isfile() and split == "test" and name[:5].isdigit() and int(name[:5]) < n:
                i = int(name[:5])
                img = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                twins[i] = torch.from_numpy(np.array(img)).permute(2, 0, 1)
                found[i] = True
    if not found.all():
        raise ValueError(f"{archive} lacks JPEG copies of {int((~found).sum())} of the first {n} test images")
    mae = (twins.float() - exact.float()).abs().mean().item()
    if mae > TWIN_MAX_MAE:
        raise ValueError(f"the JPEG images in {archive} differ from this test split by {mae:.1f}/255 on "
                         "average: they are not copies of these images")
    return twins


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (GPU)"
    return f"{cpu}, {torch.get_num_threads()} threads"


def save_curve(history, title: str, path: Path) -> None:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 3.4), layout="constrained")
    ax = fig.subplots()
    minutes = torch.tensor(history["seconds"]).cumsum(0).div(60).tolist()
    ax.plot(minutes, history["val_acc"], "-o", ms=3, label="test")
    ax.plot(minutes, history["train_acc"], ":", label="train (augmented)")
    ax.set_xlabel("training minutes")
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title, fontsize="medium")
    fig.savefig(path, dpi=110)


#: test accuracies whose first crossing (epoch, training minutes; no TTA) each run records
TIMED_TARGETS = (0.80, 0.85, 0.90, 0.93, 0.94)


def changed_recipe(recipe, settings: list[str]):
    """`recipe` with ``FIELD=VALUE`` settings applied (values parsed as `cifarkit run -p` parses them:
    Python or JSON literals, true/false, none, else strings),
    renamed after them: ``speedrun`` + ``cutout=8`` -> ``speedrun+cutout-8``."""
    fields = {f.name for f in dataclasses.fields(recipe)} - {"name", "epochs", "description"}
    changes = {}
    for item in settings:
        field, eq, text = item.partition("=")
        if not eq or field not in fields:
            raise ValueError(f"--set wants FIELD=VALUE with FIELD one of {', '.join(sorted(fields))}; got {item!r}")
        changes[field] = parse_value(text)
    if not changes:
        return recipe
    suffix = "+".join(field.replace("_", "-") + "-" + re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-")
                      for field, value in changes.items())
    try:
        return recipe.replace(name=f"{recipe.name}+{suffix}", **changes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--set: {e}") from None


def percent(value) -> str:
    """An accuracy for a table: ``91.07%``, or ``-`` when it was not measured (None)."""
    return "-" if value is None else f"{value:.2%}"


def merge_results(entry: dict, path: Path) -> str:
    """Add `entry` to the results file under its key (recipe, epochs and seed), atomically, and
    return the key. A run on the same hardware replaces the recorded one; a run on another CPU
    never does: it gets a key of its own, ``<key>@<hardware>`` (e.g. ``speedrun-8ep@intel-xeon-processor``)."""
    table = json.loads(path.read_text()) if path.exists() else {}
    key = entry["key"]
    if key in table and table[key].get("hardware") != entry.get("hardware"):
        machine = re.sub(r"\((R|TM)\)|,.*", "", str(entry.get("hardware")))
        key = entry["key"] = f"{key}@{re.sub(r'[^a-z0-9]+', '-', machine.lower()).strip('-')}"
    table[key] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return key


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The options that choose the data, the seed and the device (bench/speedrun_ablation.py has them too)."""
    p.add_argument("--source", default="cifar10-unverified",
                   choices=("cifar10", "cifar10-unverified", "synthetic"))
    p.add_argument("--root", help="data root (default: $CIFARKIT_DATA or ~/.cache/cifarkit)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--n-train", type=int, help="train on a subset (smoke tests only)")
    p.add_argument("--n-test", type=int, help="test on a subset (smoke tests only)")
    p.add_argument("--allow-synthetic", action="store_true")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("recipe", choices=sorted(RECIPES))
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (the schedule follows)")
    add_data_arguments(p)
    p.add_argument("--out", help="output directory (default bench/runs/<recipe>-<epochs>ep)")
    p.add_argument("--results", default=str(HERE / "accuracy_results.json"))
    p.add_argument("--stop-after", type=int, help="train at most this many more epochs in this invocation")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a field of the recipe, e.g. --set cutout=8 (repeatable; the run is named "
                        "after its changes, e.g. speedrun+cutout-8)")
    p.add_argument("--jpeg-twins", default=str(JPEG_TWINS),
                   help="archive of the copy's JPEG images (skipped when missing or for synthetic data)")
    args = p.parse_args(argv)
    if args.source == "synthetic" and not args.allow_synthetic:
        p.error("--source synthetic measures nothing about CIFAR-10; add --allow-synthetic for a smoke test")

    recipe = get_recipe(args.recipe, **({"epochs": args.epochs} if args.epochs else {}))
    try:
        recipe = changed_recipe(recipe, args.set)
    except ValueError as e:
        p.error(str(e))
    run_name = f"{recipe.name}-{recipe.epochs}ep" + (f"-seed{args.seed}" if args.seed else "")  # seeds never share a run
    out = Path(args.out or HERE / "runs" / run_name)
    out.mkdir(parents=True, exist_ok=True)
    data = ck.load_data(args.source, args.n_train, args.n_test, seed=args.seed, root=args.root)
    print(recipe.summary(), flush=True)

    started = time.strftime("%Y-%m-%d %H:%M")
    stop = [ck.StopAfter(args.stop_after)] if args.stop_after else []
    result = train_recipe(recipe, data, device=args.device, seed=args.seed, callbacks=stop, targets=TIMED_TARGETS,
                          checkpoint=out / "checkpoint.pt", progress=False)
    hist = result.history
    # the split's first 1,000 images are the exact ones; a --n-test subset is a stratified sample
    # of the split, whose first images are others, so it scores neither them nor their JPEG twins
    n_exact = min(EXACT_TEST_IMAGES, len(data.y_test)) if args.n_test is None else 0
    exact = twin_acc = None
    if n_exact:
        exact_loader = ck.TensorLoader(data.x_test[:n_exact], data.y_test[:n_exact], 500, device=args.device)
        exact = ck.evaluate(result.model, exact_loader, tta_flip=recipe.tta_flip, tta_shift=recipe.tta_shift)["acc"]
    if n_exact and args.source != "synthetic" and Path(args.jpeg_twins).is_file():
        twins = jpeg_twins(Path(args.jpeg_twins), data.x_test[:n_exact])
        twin_loader = ck.TensorLoader(twins, data.y_test[:n_exact], 500, device=args.device)
        twin_acc = ck.evaluate(result.model, twin_loader, tta_flip=recipe.tta_flip, tta_shift=recipe.tta_shift)["acc"]
    entry = {
        "key": run_name,
        "recipe": recipe.name,
        # what the command asked for, so a table can pair a change with its recipe's run of the seed
        "base_recipe": args.recipe,
        "seed": args.seed,
        "settings": list(args.set),
        "summary": recipe.summary(),
        "epochs": len(hist),
        "planned_epochs": recipe.epochs,
        "complete": len(hist) == recipe.epochs,
        "data": data.label,
        "n_train": len(data.y_train),
        "n_test": len(data.y_test),
        "test_acc": result.test["acc"],
        "test_acc_tta": result.test_tta["acc"] if result.test_tta else None,
        "tta": recipe.tta,
        "exact_first_1000_acc": exact,
        "exact_note": "first 1000 test images; exact pixels in the shared copy (the rest JPEG-derived)",
        "jpeg_twin_first_1000_acc": twin_acc,
        "val_acc_per_epoch": list(hist["val_acc"]),
        "train_minutes": result.train_seconds / 60,
        "images_per_s": result.images_per_s,
        "time_to_accuracy": {f"{t:.2f}": {"epoch": e, "minutes": s / 60}
                             for t, (e, s) in sorted(result.time_to_accuracy.items())},
        "train_minutes_by_epoch": [sum(hist["seconds"][:i + 1]) / 60 for i in range(len(hist))],
        "hardware": hardware(),
        "precision": hist.meta.get("precision"),
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%d %H:%M"),
        "started_this_session": started,
        "command": shlex.join(["python", "bench/accuracy.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    save_curve(hist, f"{recipe.name} on {data.label}", out / "curve.png")
    key = merge_results(entry, Path(args.results))
    if Path(args.results).resolve() == (HERE / "accuracy_results.json").resolve():
        write_speedrun_records(json.loads(Path(args.results).read_text()))  # the copy notebook 07 reads
    (out / "result.json").write_text(json.dumps(entry, indent=1))
    print(f"{key}: test {entry['test_acc']:.2%}"
          + (f", with TTA ({recipe.tta}) {entry['test_acc_tta']:.2%}" if result.test_tta else "")
          + (f"; exact first {n_exact}: {exact:.2%}" if exact is not None else "; exact images not scored (--n-test subset)")
          + (f" (the same images JPEG-decoded: {twin_acc:.2%})" if twin_acc is not None else "")
          + f"; {entry['train_minutes']:.1f} training minutes "
          f"at {entry['images_per_s']:.0f} images/s ({entry['hardware']})", flush=True)
    return entry


if __name__ == "__main__":
    main()
