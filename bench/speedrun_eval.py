"""Evaluation-only changes to finished `speedrun` models: more test-time views, and BatchNorm
statistics re-estimated on training images ("precise BN"). Nothing is trained.

    python bench/speedrun_eval.py bench/runs/speedrun-8ep/checkpoint.pt bench/runs/speedrun-8ep-seed2/checkpoint.pt
    python bench/speedrun_eval.py CKPT [CKPT ...] --bn-images 5000 20000 --out bench/runs/speedrun-eval

Each CKPT is the final checkpoint of a `bench/accuracy.py` run of the recipe (``--recipe``, default
speedrun). Every model is scored on the same test images in every way, so the differences between rows
are paired. The recipe's own evaluation (`evaluate` with its ``tta_flip`` / ``tta_shift``) is the first
row.

Views: each is a translation (dy, dx) of the test image (border reflected) averaged with its mirror
image; a view set gives each translation a weight. Precise BN: the running mean and variance of every
BatchNorm layer are reset and re-estimated as the plain average over ``--bn-images`` un-augmented
training images (``torch.optim.swa_utils.update_bn``), instead of the training's running average
(momentum 0.4, about the last few batches), then the recipe's own views are scored.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import update_bn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import accuracy  # noqa: E402
import speedrun_ablation  # noqa: E402

import cifarkit as ck  # noqa: E402
from cifarkit import devices  # noqa: E402
from cifarkit.resume import read_checkpoint  # noqa: E402
from cifarkit.recipes import get_recipe  # noqa: E402
from cifarkit.pruning import load_pruned_state_dict  # noqa: E402

#: name -> {(dy, dx): weight}; every view is averaged with its mirror image
VIEW_SETS = {
    "flip only (2 views)": {(0, 0): 1.0},
    "10 views: 4 diagonal shifts of 1 px": {(0, 0): .5, (-1, -1): .125, (1, 1): .125, (-1, 1): .125, (1, -1): .125},
    "10 views: 4 axis shifts of 1 px": {(0, 0): .5, (0, 1): .125, (0, -1): .125, (1, 0): .125, (-1, 0): .125},
    "18 views: 8 neighbours, half weight on the plain pair": {
        (0, 0): .5, **{(dy, dx): .0625 for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)}},
    "18 views: 8 neighbours, equal weights": {(dy, dx): 1 / 9 for dy in (-1, 0, 1) for dx in (-1, 0, 1)},
    "10 views: diagonal shifts of 1 and 2 px": {(0, 0): .5, (-1, -1): .125, (1, 1): .125, (-2, -2): .125,
                                                 (2, 2): .125},
}


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`x` moved by (dy, dx) pixels, the border reflected (as `tta_logits` moves its views)."""
    if (dy, dx) == (0, 0):
        return x
    pad = max(abs(dy), abs(dx))
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    out = padded[..., pad + dy: pad + dy + h, pad + dx: pad + dx + w]
    return out.contiguous(memory_format=torch.channels_last if x.stride(1) == 1 else torch.contiguous_format)


@torch.inference_mode()
def view_logits(model, loader, shifts, precision: str, device) -> dict:
    """{(dy, dx): logits of every test image, the view and its mirror averaged}, in loader order."""
    out = {s: [] for s in shifts}
    model.eval()
    for x, _ in loader:
        with devices.autocast(precision, device):
            for s in shifts:
                v = shifted(x, *s)
                out[s].append(((model(v) + model(v.flip(3))) / 2).float())
    return {s: torch.cat(v) for s, v in out.items()}


def precise_bn(model, data, n_images: int, precision: str, device, seed: int = 0) -> None:
    """Re-estimate every BatchNorm's running statistics on `n_images` un-augmented training images."""
    layout = torch.channels_last if precision != "32" else torch.contiguous_format
    loader = ck.TensorLoader(data.x_train, data.y_train, 500, shuffle=True, seed=seed, n=n_images, device=device,
                             memory_format=layout)
    with torch.inference_mode(False), torch.no_grad(), devices.autocast(precision, device):
        update_bn(loader, model)


def hits(right: torch.Tensor, n_exact: int) -> tuple[float, float | None]:
    """Accuracy from a bool tensor of right answers, on all images and on the first `n_exact` (the
    copy's exact pixels; None if 0)."""
    return right.sum().item() / len(right), (right[:n_exact].sum().item() / n_exact if n_exact else None)


def own_views(model, test, recipe, precision: str, n_exact: int) -> tuple[float, float | None]:
    """The recipe's own evaluation (`evaluate` with its TTA flags), as accuracies."""
    right = ck.evaluate(model, test, precision=precision, tta_flip=recipe.tta_flip, tta_shift=recipe.tta_shift,
                        per_image=True)["correct"]
    return hits(right, n_exact)


def evaluate_checkpoint(path: Path, recipe, data, bn_images, device, precision: str, n_exact: int) -> dict:
    """Every row of the table for the model in `path`: {row name: (accuracy, exact-1,000 accuracy)}."""
    layout = torch.channels_last if precision != "32" else torch.contiguous_format  # as the Trainer's
    model = recipe.build_model().to(device, memory_format=layout)
    load_pruned_state_dict(model, read_checkpoint(path, map_location=device)["model"])
    test = ck.TensorLoader(data.x_test, data.y_test, 500, device=device, memory_format=layout)
    y = data.y_test.to(device)
    rows = {f"the recipe's own ({recipe.tta or 'no TTA'})": own_views(model, test, recipe, precision, n_exact)}
    shifts = sorted({s for views in VIEW_SETS.values() for s in views})
    logits = view_logits(model, test, shifts, precision, device)
    for name, views in VIEW_SETS.items():
        rows[name] = hits((sum(w * logits[s] for s, w in views.items()).argmax(1) == y).cpu(), n_exact)
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    for n in bn_images:
        precise_bn(model, data, n, precision, device)
        rows[f"precise BN on {n:,} training images, the recipe's views"] = own_views(model, test, recipe, precision,
                                                                                    n_exact)
        model.load_state_dict(saved)
    return rows


def table(results: dict[str, dict]) -> list[str]:
    """Markdown: one row per evaluation, mean ± sd over the checkpoints and the paired change."""
    names = list(next(iter(results.values())))
    base = [r[names[0]][0] for r in results.values()]
    lines = ["| evaluation | accuracy, mean ± sd | paired change vs the recipe's own (points) | exact 1,000, mean |",
             "| --- | ---: | ---: | ---: |"]
    for name in names:
        acc = [r[name][0] for r in results.values()]
        exact = [r[name][1] for r in results.values() if r[name][1] is not None]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        deltas = ", ".join(f"{100 * (a - b):+.2f}" for a, b in zip(acc, base))
        lines.append(f"| {name} | {100 * statistics.mean(acc):.2f}% ± {100 * sd:.2f} | {deltas} | "
                     + (f"{100 * statistics.mean(exact):.2f}%" if exact else "-") + " |")
    return lines


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path, help="final checkpoints of bench/accuracy.py runs")
    p.add_argument("--recipe", default="speedrun", help="the recipe the checkpoints were trained with")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="as bench/accuracy.py's --set, when the runs used one (e.g. other widths)")
    p.add_argument("--bn-images", type=int, nargs="*", default=[5000, 20000],
                   help="training images for the precise-BN rows (none: skip them)")
    p.add_argument("--out", type=Path, help="folder for eval.json and eval.md")
    p.add_argument("--record", nargs="?", const=str(speedrun_ablation.RECORD), metavar="FILE",
                   help="also keep the table as 'evaluation' in FILE (default bench/speedrun_record.json)")
    accuracy.add_data_arguments(p)
    args = p.parse_args(argv)
    if args.source == "synthetic" and not args.allow_synthetic:
        p.error("--source synthetic measures nothing about CIFAR-10; add --allow-synthetic for a smoke test")
    missing = [str(c) for c in args.checkpoints if not c.is_file()]
    if missing:
        p.error(f"no checkpoint at {missing[0]}")
    bad = [n for n in args.bn_images if n < 1]
    if bad:
        p.error(f"--bn-images wants positive counts, got {bad[0]}")
    try:
        recipe = accuracy.changed_recipe(get_recipe(args.recipe), args.set)
    except ValueError as e:
        p.error(str(e))
    device = devices.resolve_device(args.device)
    precision = devices.resolve_precision("auto", device)
    data = ck.load_data(args.source, args.n_train, args.n_test, seed=args.seed, root=args.root)
    n_exact = min(accuracy.EXACT_TEST_IMAGES, len(data.y_test)) if args.n_test is None else 0
    results = {}
    for path in args.checkpoints:
        results[str(path)] = evaluate_checkpoint(path, recipe, data, args.bn_images, device, precision, n_exact)
        print(f"{path}: " + ", ".join(f"{k} {v[0]:.2%}" for k, v in results[str(path)].items()), flush=True)
    lines = table(results)
    argv = list(sys.argv[1:] if argv is None else argv)
    lines += ["", f"{len(results)} model(s): {', '.join(f'`{k}`' for k in results)}; {data.label}, "
              f"{len(data.y_test):,} test images; {accuracy.hardware()}, torch {torch.__version__}, precision "
              f"{precision}, {time.strftime('%Y-%m-%d %H:%M')}. The paired changes are listed in that order."]
    print("\n" + "\n".join(lines), flush=True)
    if args.record:
        speedrun_ablation.record("evaluation", lines, args.record, argv, script="bench/speedrun_eval.py")
    report = {"results": results, "table": lines}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval.json").write_text(json.dumps(report, indent=1))
        (args.out / "eval.md").write_text("\n".join(lines) + "\n")
    return report


if __name__ == "__main__":
    main()
