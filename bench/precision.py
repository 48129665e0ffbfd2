"""CPU engineering of the speedrun, one choice at a time: bfloat16 autocast, channels-last and
``torch.compile``, each against the same run without it, in speed and in accuracy.

The same short run of the `speedrun` recipe (full-size images, no progressive resizing, so every
epoch costs the same) once per setting, same seed and data:

* ``fp32``: ``precision="32"``, contiguous tensors: the textbook baseline;
* ``bf16``: bfloat16 autocast, contiguous tensors;
* ``bf16 + channels_last``: the kit's choice on a CPU with native bfloat16 (`Trainer`'s default);
* ``bf16 + channels_last + compile``: the same with ``torch.compile`` of the model (``compile=True``).

Settings alternate (ABCD, then DCBA, ...) over ``--rounds``, so a drift of the machine's speed
cancels; each setting's speed is the median over rounds of its training images/s in the epochs
after the first (the first pays the compilation and the allocator's warm-up; its seconds are
reported apart). Reported: images/s per setting, each choice's ratio (what adding it gives), the
final test accuracy of each (real CIFAR-10 when a copy is found under the data root, else the
synthetic stand-in, and the output says which).

    python bench/precision.py [--train 10000] [--test 2000] [--epochs 3] [--rounds 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cifarkit as ck  # noqa: E402
from cifarkit.recipes import get_recipe, train_recipe  # noqa: E402

#: setting -> (precision, channels_last, compile)
SETTINGS = {
    "fp32": ("32", False, False),
    "bf16": ("bf16-mixed", False, False),
    "bf16 + channels_last": ("bf16-mixed", True, False),
    "bf16 + channels_last + compile": ("bf16-mixed", True, True),
}
#: each choice: (name, the setting without it, the setting with it)
CHOICES = (
    ("bf16 autocast (contiguous tensors)", "fp32", "bf16"),
    ("channels_last (under bf16)", "bf16", "bf16 + channels_last"),
    ("torch.compile (on the kit's choice)", "bf16 + channels_last", "bf16 + channels_last + compile"),
    ("all three against fp32", "fp32", "bf16 + channels_last + compile"),
    ("the kit's choice against fp32", "fp32", "bf16 + channels_last"),
)
KIT_CHOICE = "bf16 + channels_last"


def choice_ratios(speed: dict[str, float]) -> dict[str, float]:
    """Each choice in `CHOICES` as the ratio of images/s with it to without it (settings measured)."""
    return {name: speed[on] / speed[off] for name, off, on in CHOICES if on in speed and off in speed}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=10000)
    p.add_argument("--test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=3, help="at least 2: the first epoch is timed apart")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of every setting")
    p.add_argument("--batch-size", type=int, default=500, help="the speedrun's own batch by default")
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), help="measure these settings only")
    p.add_argument("--source", default="auto")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.epochs < 2:
        p.error(f"--epochs must be at least 2 (the first epoch is timed apart), got {args.epochs}")
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    if ck.resolve_precision("auto", "cpu") == "32":
        print("this CPU has no fast bfloat16: the kit would train in fp32 here", flush=True)
    data = ck.load_data(args.source, args.train, args.test, seed=0, verbose=False)
    recipe = get_recipe("speedrun", epochs=args.epochs, image_sizes=None).with_batch_size(args.batch_size)
    names = args.only or list(SETTINGS)
    samples: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            precision, channels_last, compiled = SETTINGS[name]
            res = train_recipe(recipe.replace(compile=compiled), data, device="cpu", precision=precision,
                               channels_last=channels_last, progress=False, log=False, eval_batch_size=500)
            rates = res.history["images_per_s"]
            samples[name].append({"images_per_s": statistics.median(rates[1:]), "first_epoch_s": res.history["seconds"][0],
                                  "test_acc": res.test["acc"], "test_acc_tta": res.final_acc})
            print(f"round {r + 1}: {name:>32}: {samples[name][-1]['images_per_s']:6.0f} images/s after epoch 1 "
                  f"(epoch 1: {samples[name][-1]['first_epoch_s']:.1f} s), test accuracy {res.test['acc']:.2%}",
                  flush=True)
    runs = {n: {"images_per_s": statistics.median(s["images_per_s"] for s in v),
                "first_epoch_s": statistics.median(s["first_epoch_s"] for s in v),
                "test_acc": v[0]["test_acc"], "test_acc_tta": v[0]["test_acc_tta"], "samples": v}
            for n, v in samples.items()}
    ratios = choice_ratios({n: v["images_per_s"] for n, v in runs.items()})
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}x images/s", flush=True)
    result = {
        "runs": runs, "ratios": ratios, "data": data.label, "n_train": len(data.y_train), "n_test": len(data.y_test),
        "epochs": args.epochs, "rounds": args.rounds, "batch_size": args.batch_size, "recipe": recipe.summary(),
        "command": shlex.join(["python", "bench/precision.py", *(sys.argv[1:] if argv is None else argv)]),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
