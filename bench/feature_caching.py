"""Feature caching: train a frozen ResNet-152's head for 5 epochs, cached against uncached.

Both runs start from the same weights and see the same batches in the same order at the seed's
224x224 resolution (bilinear resize on the batches, no augmentation). The uncached run pushes
every batch through the frozen backbone every epoch; the cached run extracts the backbone's
features once per split (`cifarkit.features`) and trains the head on them. Reported: both wall
times (extraction included), their ratio, and the largest difference between the two test
accuracy curves.

    python bench/feature_caching.py [--train 128] [--test 64] [--epochs 5] [--json out.json]

The backbone's weights do not change the cost: the script uses ImageNet weights when they are in
the torch hub cache, and random ones (said in the output) otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cifarkit as ck  # noqa: E402
from cifarkit.features import extract_features, split_head  # noqa: E402


def build(seed: int):
    ck.seed_everything(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ck.resnet152_transfer(weights="auto")
    return model, bool(caught)


def measure(args) -> dict:
    data = ck.load_data(args.source, args.train, args.test, seed=0, verbose=False)
    loaders = dict(resize=224, device="cpu", tag=data.label)
    train = ck.TensorLoader(data.x_train, data.y_train, args.batch, shuffle=True, seed=0, **loaders)
    test = ck.TensorLoader(data.x_test, data.y_test, args.batch, **loaders)

    def trainer():
        return ck.Trainer(args.epochs, device="cpu", progress=False, log=False)

    model, random_weights = build(0)
    start = time.perf_counter()
    uncached = trainer().fit(model, train, test, optimizer=torch.optim.Adam(model.fc.parameters(), lr=1e-3))
    uncached_s = time.perf_counter() - start

    model, _ = build(0)
    backbone, head = split_head(model)
    start = time.perf_counter()
    plain_train = ck.TensorLoader(data.x_train, data.y_train, args.batch, **loaders)
    train_feats = extract_features(backbone, plain_train, progress=False)
    test_feats = extract_features(backbone, test, progress=False)
    cached = trainer().fit(head, train_feats.loader(args.batch, shuffle=True, seed=0, device="cpu"),
                           test_feats.loader(args.batch, device="cpu"),
                           optimizer=torch.optim.Adam(head.parameters(), lr=1e-3))
    cached_s = time.perf_counter() - start
    gap = max(abs(a - b) for a, b in zip(uncached["val_acc"], cached["val_acc"]))
    return {
        "uncached_s": uncached_s, "cached_s": cached_s, "speedup": uncached_s / cached_s,
        "extract_s": train_feats.seconds + test_feats.seconds,
        "uncached_val_acc": list(uncached["val_acc"]), "cached_val_acc": list(cached["val_acc"]),
        "max_acc_gap": gap, "random_weights": random_weights, "data": data.label,
        "precision": uncached.meta.get("precision"),
        "command": f"python bench/feature_caching.py --train {args.train} --test {args.test} "
                   f"--epochs {args.epochs} --batch {args.batch} --source {args.source}",
        "train": args.train, "test": args.test, "epochs": args.epochs,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=128)
    p.add_argument("--test", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--source", default="auto")
    p.add_argument("--json")
    args = p.parse_args(argv)
    r = measure(args)
    print(f"uncached {r['uncached_s']:.1f} s, cached {r['cached_s']:.1f} s (extraction "
          f"{r['extract_s']:.1f} s): {r['speedup']:.2f}x; largest test-accuracy gap {r['max_acc_gap']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
