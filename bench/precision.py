"""CPU precision: bfloat16 autocast (+ channels_last) against fp32, in speed and in accuracy.

The same short run of the `speedrun` recipe twice, same seed and data, once with the Trainer's
``precision="32"`` and once with ``"bf16-mixed"`` (which turns channels_last on). Reported: the
training images/s of each, their ratio, and the final test accuracy of each (real CIFAR-10 when a
copy is found under the data root, else the synthetic stand-in, and the output says which).

    python bench/precision.py [--train 10000] [--test 2000] [--epochs 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cifarkit as ck  # noqa: E402
from cifarkit.recipes import get_recipe, train_recipe  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=256,
                   help="the recipe's learning rate is scaled to it (a short run needs more steps)")
    p.add_argument("--source", default="auto")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if ck.resolve_precision("auto", "cpu") == "32":
        print("this CPU has no fast bfloat16: autocast would not help, nothing to compare")
    data = ck.load_data(args.source, args.train, args.test, seed=0, verbose=False)
    recipe = get_recipe("speedrun", epochs=args.epochs).with_batch_size(args.batch_size)
    runs = {}
    for precision in ("32", "bf16-mixed"):
        res = train_recipe(recipe, data, device="cpu", precision=precision, progress=False, log=False)
        runs[precision] = {"images_per_s": res.images_per_s, "test_acc": res.test["acc"],
                           "test_acc_tta": res.final_acc}
        print(f"{precision:>10}: {res.images_per_s:6.0f} images/s, test accuracy {res.test['acc']:.2%}", flush=True)
    result = {
        "runs": runs, "data": data.label, "n_train": len(data.y_train), "n_test": len(data.y_test),
        "epochs": args.epochs, "batch_size": args.batch_size, "recipe": recipe.summary(),
        "speedup": runs["bf16-mixed"]["images_per_s"] / runs["32"]["images_per_s"],
        "acc_diff_points": 100 * (runs["bf16-mixed"]["test_acc"] - runs["32"]["test_acc"]),
        "command": f"python bench/precision.py --train {args.train} --test {args.test} "
                   f"--epochs {args.epochs} --batch-size {args.batch_size} --source {args.source}",
    }
    print(f"bf16 / fp32: {result['speedup']:.2f}x images/s; accuracy {result['acc_diff_points']:+.2f} points")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
