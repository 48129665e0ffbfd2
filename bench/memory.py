"""Peak memory of a full-profile training epoch of each notebook, measured a few steps at a time.

A training epoch's memory peak comes in its first steps and then repeats: the whole split sits in
memory as a uint8 tensor from the start, and every later step allocates what the first ones did.
So each case below loads the *full* data (50,000 training images), builds the loader, model and
optimizer with the notebook's `full` profile settings (batch size, image size, what is trained),
runs `--steps` training steps and one evaluation batch, and reports the process's peak resident
memory (and the GPU's peak allocation on a GPU). Each case runs in its own process, so the peaks
do not mix. The heaviest training step of each notebook is the case:

    01-04   ResNetForCifar (ResNet-18 body, 512-100-10 head), every layer trained (notebook 01's profile)
    05-head ResNet-152, frozen backbone, head trained through it at the notebook's image size
    05-ablation  the skip-connection ablation: the notebook's `blocks` unfrozen and without shortcuts
    06      GatedCNN at the notebook's widths, crop + flip
    07      SpeedrunNet at the notebook's widths and batch size

    python bench/memory.py [--steps 3] [--source cifar10-unverified] [--only 06,07] [--json out.json]

Weights are random (ImageNet weights cost the same memory and need a download).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cifarkit as ck  # noqa: E402



def full_profile(notebook: str) -> dict:
    """The `full` profile of `notebooks/<notebook>.ipynb` (defined in `cifarkit.course.notebooks.PROFILES`)."""
    return ck.notebook_profiles(notebook)["full"]


def _resnet18(data):
    cfg = full_profile("01_softmax_vs_logits")
    model = ck.ResNetForCifar(weights=None)
    return model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]), dict(batch_size=cfg["batch_size"],
                                                                          augment=cfg["augment"])


def _resnet152(ablation: bool):
    def build(data):
        cfg = full_profile("05_resnet152_transfer")
        model = ck.resnet152_transfer(num_classes=10, weights=None, frozen_bn_eval=False)
        batch_size, lr = cfg["batch_size"], cfg["lr"]
        if ablation:
            blocks = list(ck.course.ABLATION_BLOCKS)  # notebook 05's ablation
            ck.remove_skip_connections(model, blocks)
            ck.unfreeze(model, blocks)
            batch_size, lr = cfg["ablation_batch_size"], cfg["ablation_lr"]
        ck.set_frozen_bn_eval(model)
        params = ck.trainable_parameters(model)
        return model, torch.optim.Adam(params, lr=lr), dict(batch_size=batch_size, resize=cfg["image_size"])
    return build


def _gated(data):
    cfg = full_profile("06_gated_cnn")
    recipe = ck.get_recipe("gated-improved", model_kwargs={"widths": cfg["widths"], "gate_init": "open"})
    model = recipe.build_model()
    return model, recipe.build_optimizer(model), dict(batch_size=cfg["batch_size"], augment=recipe.augment)


def _speedrun(data):
    cfg = full_profile("07_speedrun")
    recipe = ck.get_recipe("speedrun").with_model_kwargs(widths=cfg["widths"]).with_batch_size(cfg["batch_size"])
    model = recipe.build_model()
    return model, recipe.build_optimizer(model), dict(batch_size=recipe.batch_size, augment=recipe.augment,
                                                      crop_padding=recipe.crop_padding, pad_mode=recipe.pad_mode)


CASES = {
    "01-04": ("notebooks 01-04: ResNet-18 body, all layers trained, 32 px", _resnet18),
    "05-head": ("notebook 05: ResNet-152, frozen backbone, head trained through it", _resnet152(False)),
    "05-ablation": ("notebook 05: skip ablation, the notebook's ResNet-152 blocks trained without shortcuts",
                    _resnet152(True)),
    "06": ("notebook 06: GatedCNN", _gated),
    "07": ("notebook 07: SpeedrunNet", _speedrun),
}


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _describe(description: str, model, train) -> str:
    """The case's words plus what was measured: widths, image size, batch."""
    widths = getattr(model, "widths", None)
    size = getattr(train, "resize", None) or 32
    return (description + (f" {tuple(widths)}" if widths else "") + f", {size} px" * (size != 32)
            + f", batch {train.batch_size}")


def run_case(name: str, steps: int, source: str) -> dict:
    """Measure one case in this process; returns its numbers."""
    description, build = CASES[name]
    ck.seed_everything(0)
    data = ck.load_data(source, None, None, seed=0, verbose=False)
    device = ck.resolve_device("auto")
    model, optimizer, loader_kw = build(data)
    train = ck.TensorLoader(data.x_train, data.y_train, shuffle=True, drop_last=True, device=device,
                            **loader_kw)
    test_kw = {k: v for k, v in loader_kw.items() if k in ("batch_size", "resize")}
    test = ck.TensorLoader(data.x_test[:test_kw["batch_size"]], data.y_test[:test_kw["batch_size"]],
                           device=device, **test_kw)
    after_data = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    trainer = ck.Trainer(1, device=device, progress=False, log=False, limit_train_batches=steps)
    trainer.fit(model, train, optimizer=optimizer)
    ck.evaluate(model, test)
    seconds = time.perf_counter() - start
    return {
        "case": name, "description": _describe(description, model, train), "steps": steps,
        "batch_size": train.batch_size,
        "data": data.label, "n_train": len(data.y_train), "device": str(device),
        "precision": trainer.precision, "trainable_parameters": ck.count_parameters(model, trainable_only=True),
        "rss_after_data_mib": after_data, "peak_rss_mib": peak_rss_mib(),
        "gpu_peak_mib": (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None),
        "seconds_per_step": seconds / steps,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3, help="training steps per case (at least 2)")
    p.add_argument("--source", default="cifar10-unverified",
                   help="data source (synthetic: 5,000 generated images, for smoke tests only)")
    p.add_argument("--only", help="comma-separated cases: " + ",".join(CASES))
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: measure one case in this process
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.steps < 2:
        p.error("--steps must be at least 2 (the first step allocates the optimizer state)")
    if args.case:
        result = run_case(args.case, args.steps, args.source)
        print(json.dumps(result))
        return result
    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    results = {}
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--case", name, "--steps", str(args.steps),
                               "--source", args.source], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"case {name} failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:12} peak {r['peak_rss_mib']:8,.0f} MiB (after loading the data {r['rss_after_data_mib']:,.0f}), "
              f"{r['seconds_per_step']:.1f} s/step  {r['description']}", flush=True)
    out = {"cases": results, "command": f"python bench/memory.py --steps {args.steps} --source {args.source}"}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
