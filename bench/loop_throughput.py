"""Training-loop throughput: the kit's Trainer + TensorLoader against the textbook loop.

Both train the same model (the course's GatedCNN) on the same images, measured side by side in one
process and interleaved (textbook, kit, textbook, kit, ...) so machine load hits both alike.

* textbook: `DataLoader` over PIL images with torchvision transforms (RandomCrop, Flip, ToTensor,
  Normalize), fp32, and `loss.item()` plus an accuracy `.item()` every batch, as most tutorials do;
* kit: `TensorLoader` (uint8 tensors, batch augmentation) + `Trainer.fit` with its defaults
  (bfloat16 autocast where the CPU supports it, channels_last);
* kit-fp32: the same with precision "32", to separate the data path from the precision.

    python bench/loop_throughput.py [--images 1536] [--batch 128] [--repeats 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn as nn

import cifarkit as ck
from cifarkit.data import textbook_loader


def textbook_epoch(model, loader, opt, loss_fn) -> int:
    model.train()
    seen, running_loss, correct = 0, 0.0, 0
    for x, y in loader:
        out = model(x)
        loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running_loss += loss.item()
        correct += (out.argmax(1) == y).sum().item()
        seen += len(y)
    return seen


def kit_epoch(model, loader, precision) -> int:
    ck.Trainer(1, precision=precision, progress=False, log=False).fit(model, loader)
    return loader.num_samples


def measure(args) -> dict:
    torch.manual_seed(0)
    data = ck.synthetic_cifar(args.images, 0, seed=0)
    tb_loader = textbook_loader(data, train=True, batch_size=args.batch, num_workers=args.workers)
    kit_loader = ck.TensorLoader(data.x_train, data.y_train, args.batch, shuffle=True, augment=True)
    loss_fn = nn.CrossEntropyLoss()
    models = {name: ck.GatedCNN() for name in ("textbook", "kit", "kit-fp32")}
    tb_opt = torch.optim.Adam(models["textbook"].parameters(), lr=1e-3)
    runs = {
        "textbook": lambda: textbook_epoch(models["textbook"], tb_loader, tb_opt, loss_fn),
        "kit": lambda: kit_epoch(models["kit"], kit_loader, "auto"),
        "kit-fp32": lambda: kit_epoch(models["kit-fp32"], kit_loader, "32"),
    }
    for run in runs.values():  # warm-up: first-call allocations, autocast caches, worker start
        run()
    rates = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            n = run()
            rates[name].append(n / (time.perf_counter() - start))
    best = {name: max(r) for name, r in rates.items()}
    return {
        "images_per_s": best,
        "ratio_kit_vs_textbook": best["kit"] / best["textbook"],
        "ratio_kit_fp32_vs_textbook": best["kit-fp32"] / best["textbook"],
        "precision_auto": ck.resolve_precision("auto", "cpu"),
        "threads": torch.get_num_threads(),
        "images": args.images, "batch": args.batch, "repeats": args.repeats, "workers": args.workers,
        "command": "python bench/loop_throughput.py " + " ".join(
            f"--{k} {v}" for k, v in (("images", args.images), ("batch", args.batch),
                                      ("repeats", args.repeats), ("workers", args.workers))),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1536)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for the textbook loop")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    result = measure(args)
    for name, rate in result["images_per_s"].items():
        print(f"{name:>9}: {rate:7.1f} images/s")
    print(f"kit / textbook: {result['ratio_kit_vs_textbook']:.2f}x  "
          f"(kit fp32 / textbook: {result['ratio_kit_fp32_vs_textbook']:.2f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
